//! `deploy/prometheus/` and `deploy/grafana/` checked against the product:
//! the Prometheus config and alert rules pass `promtool` (including unit
//! tests of the alerts), and every metric the dashboard and the alerts use
//! is in docs/metrics.md with the labels it documents and in a real scrape.
//! The systemd unit and Containerfile: deploy_systemd.rs; Kubernetes:
//! deploy_kubernetes.rs.
//!
//! promtool comes from Debian's `prometheus` package without installing
//! the server: `.ci/run` unpacks it to `target/tools/promtool`; `PROMTOOL`
//! overrides the path.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{KDC, read, repo};
use serde::Deserialize;
use serde_yaml_ng::Value;
use testkit::TempDir;

// ------------------------------------------------------------------ promtool

fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return PathBuf::from(p);
    }
    let local = repo().join("target/tools/promtool");
    if local.is_file() {
        return local;
    }
    panic!(
        "promtool not found: set PROMTOOL, or unpack it from Debian's prometheus package to \
         target/tools/promtool as .ci/run does: \
         `cd $(mktemp -d) && apt-get download prometheus && dpkg -x prometheus_*.deb x && \
         mkdir -p {0}/target/tools && cp x/usr/bin/promtool {0}/target/tools/` (or run `bash .ci/run`)",
        repo().display()
    );
}

fn promtool_run(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    let dir = repo().join("deploy/prometheus");
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["check", "config", "prometheus.yml"],
        // Unit tests of the alert expressions on synthetic series.
        &["test", "rules", "alerts_test.yml"],
    ] {
        let (ok, text) = promtool_run(args, &dir);
        assert!(ok, "promtool {}:\n{text}", args.join(" "));
    }
    // The kubernetes_sd variant: only builds with Kubernetes discovery
    // (upstream; not Debian's) can check it.
    let (ok, text) = promtool_run(&["check", "config", "prometheus-kubernetes.yml"], &dir);
    if text.contains("field kubernetes_sd_configs not found") {
        eprintln!(
            "note: this promtool has no Kubernetes discovery; prometheus-kubernetes.yml only parsed as YAML"
        );
        let _: Value =
            serde_yaml_ng::from_str(&read("deploy/prometheus/prometheus-kubernetes.yml"))
                .expect("prometheus-kubernetes.yml parses");
    } else {
        assert!(
            ok,
            "promtool check config prometheus-kubernetes.yml:\n{text}"
        );
    }
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn alert_rules() -> Vec<Rule> {
    let file: RuleFile =
        serde_yaml_ng::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml");
    file.groups.into_iter().flat_map(|g| g.rules).collect()
}

/// GitHub-style anchors of the Markdown headings in `text`.
fn anchors(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn alert_rules_are_complete_and_use_documented_metrics() {
    let docs = documented_metrics();
    let guide = anchors(&read("docs/operations.md"));
    let rules = alert_rules();
    assert!(rules.len() >= 10);
    let mut used = BTreeSet::new();
    for r in &rules {
        let name = r.alert.as_deref().expect("alerting rules only");
        assert!(r.for_.is_some(), "{name}: no `for:`");
        assert!(
            matches!(
                r.labels.get("severity").map(String::as_str),
                Some("critical" | "warning" | "info")
            ),
            "{name}: severity label"
        );
        for a in ["summary", "description", "runbook"] {
            assert!(r.annotations.contains_key(a), "{name}: no {a} annotation");
        }
        let runbook = &r.annotations["runbook"];
        let anchor = runbook
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| panic!("{name}: runbook {runbook:?} is not docs/operations.md#..."));
        assert!(
            guide.contains(anchor),
            "{name}: docs/operations.md has no section #{anchor}"
        );
        used.extend(check_expr(&docs, &format!("alert {name}"), &r.expr));
    }
    // The alerts the operations issue asks for, by metric.
    for m in [
        "pktc_replies_total",
        "pktc_requests_total",
        "pktc_mps_lookups_total",
        "pktc_pkinit_rejections_total",
        "pktc_cert_expiry_seconds",
        "pktc_reload_failed",
        "pktc_reloads_total",
        "pktc_shed_total",
        "pktc_rate_limited_total",
        "pktc_certboot_handshakes_total",
        "pktc_redis_up",
    ] {
        assert!(used.contains(m), "no alert uses {m}");
    }
}

// ------------------------------------------------------------------ metrics

/// A documented metric: its type and label names.
struct Metric {
    kind: String,
    labels: BTreeSet<String>,
}

/// The metric tables of docs/metrics.md.
fn documented_metrics() -> BTreeMap<String, Metric> {
    let mut out = BTreeMap::new();
    for line in read("docs/metrics.md").lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `name` | type | labels | meaning |
        if cols.len() < 5 || !cols[1].starts_with("`pktc_") {
            continue;
        }
        let name = cols[1].trim_matches('`').to_string();
        // Label names are the backticked words outside parentheses.
        let mut labels = BTreeSet::new();
        let mut depth = 0;
        let mut word: Option<String> = None;
        for ch in cols[3].chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                '`' if depth == 0 => match word.take() {
                    Some(w) => {
                        labels.insert(w);
                    }
                    None => word = Some(String::new()),
                },
                c => {
                    if let Some(w) = word.as_mut() {
                        w.push(c);
                    }
                }
            }
        }
        out.insert(
            name,
            Metric {
                kind: cols[2].to_string(),
                labels,
            },
        );
    }
    assert!(out.len() >= 25, "docs/metrics.md: metric tables not found");
    out
}

/// Each `pktc_*` name in a PromQL expression with the label names of the
/// matchers right after it.
fn metric_uses(expr: &str) -> Vec<(String, Vec<String>)> {
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = expr[i..].find("pktc_") {
        let start = i + off;
        let mut end = start;
        while end < b.len() && ident(b[end]) {
            end += 1;
        }
        if start > 0 && ident(b[start - 1]) {
            i = end;
            continue;
        }
        let name = expr[start..end].to_string();
        let mut labels = Vec::new();
        let mut j = end;
        if j < b.len() && b[j] == b'{' {
            j += 1;
            loop {
                while j < b.len() && (b[j] == b',' || b[j].is_ascii_whitespace()) {
                    j += 1;
                }
                if j >= b.len() || b[j] == b'}' {
                    j += 1;
                    break;
                }
                let l0 = j;
                while j < b.len() && ident(b[j]) {
                    j += 1;
                }
                labels.push(expr[l0..j].to_string());
                while j < b.len() && b[j] != b'"' {
                    j += 1;
                }
                j += 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                j += 1;
            }
        }
        out.push((name, labels));
        i = j.max(end);
    }
    out
}

/// The documented metric a sample name belongs to (histogram series have
/// `_bucket`, `_sum`, `_count`).
fn base_metric<'a>(docs: &'a BTreeMap<String, Metric>, name: &str) -> Option<(String, &'a Metric)> {
    if let Some(m) = docs.get(name) {
        return Some((name.to_string(), m));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(m) = docs.get(base)
            && m.kind == "histogram"
        {
            return Some((base.to_string(), m));
        }
    }
    None
}

/// Checks the metrics and label names of `expr` against the docs; returns
/// the documented names used.
fn check_expr(docs: &BTreeMap<String, Metric>, what: &str, expr: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (name, labels) in metric_uses(expr) {
        let (base, m) = base_metric(docs, &name)
            .unwrap_or_else(|| panic!("{what}: {name} is not in docs/metrics.md\n  {expr}"));
        for l in labels {
            let ok = m.labels.contains(&l)
                || matches!(l.as_str(), "job" | "instance")
                || (l == "le" && name.ends_with("_bucket"));
            assert!(
                ok,
                "{what}: {name} has no label {l:?} in docs/metrics.md\n  {expr}"
            );
        }
        used.insert(base);
    }
    used
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("deploy/grafana/pktc-kdc-dashboard.json")).expect("dashboard JSON")
}

/// (panel title, refId, expr) of every query, variables included.
fn dashboard_queries(d: &serde_json::Value) -> Vec<(String, String, String)> {
    fn panels(list: &serde_json::Value, out: &mut Vec<(String, String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    let r = t["refId"].as_str().unwrap_or("").to_string();
                    out.push((title.clone(), r, e.to_string()));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&d["panels"], &mut out);
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let q = v["query"]["query"].as_str().or(v["definition"].as_str());
        if v["type"] == "query"
            && let Some(q) = q
        {
            out.push((
                format!("variable {}", v["name"]),
                String::new(),
                q.to_string(),
            ));
        }
    }
    out
}

#[test]
fn dashboard_covers_the_documented_metrics() {
    let d = dashboard();
    let docs = documented_metrics();
    assert!(d["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    let vars = d["templating"]["list"].as_array().expect("variables");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a ${{datasource}} Prometheus variable"
    );
    let mut used = BTreeSet::new();
    let queries = dashboard_queries(&d);
    assert!(queries.len() > 30);
    for (title, r, expr) in &queries {
        used.extend(check_expr(&docs, &format!("panel {title:?} {r}"), expr));
    }
    // Every panel queries the chosen data source.
    fn panels_ds(list: &serde_json::Value) {
        for p in list.as_array().into_iter().flatten() {
            if p["type"] != "row" {
                assert_eq!(
                    p["datasource"]["uid"], "${datasource}",
                    "panel {}",
                    p["title"]
                );
            }
            panels_ds(&p["panels"]);
        }
    }
    panels_ds(&d["panels"]);
    let missing: Vec<&String> = docs.keys().filter(|m| !used.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "documented metrics no dashboard panel shows: {missing:?}"
    );
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // promtool parses PromQL in rule files: each query becomes a recording
    // rule, with Grafana's variables replaced by values.
    let d = dashboard();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (title, _, expr)) in dashboard_queries(&d).iter().enumerate() {
        if title.starts_with("variable ") {
            continue; // label_values(...) is Grafana's, not PromQL
        }
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let dir = TempDir::new("deploy-dashboard");
    std::fs::write(dir.path("dashboard.rules.yml"), rules).expect("write rules");
    let (ok, text) = promtool_run(&["check", "rules", "dashboard.rules.yml"], dir.root());
    assert!(ok, "dashboard queries:\n{text}");
}

// ------------------------------------------------------------------ live scrape

/// The metrics the dashboard and the alert rules use (documented base names).
fn used_metrics() -> BTreeSet<String> {
    let docs = documented_metrics();
    let mut used = BTreeSet::new();
    for (title, r, expr) in dashboard_queries(&dashboard()) {
        used.extend(check_expr(&docs, &format!("panel {title:?} {r}"), &expr));
    }
    for rule in alert_rules() {
        used.extend(check_expr(&docs, "alert", &rule.expr));
    }
    used
}

/// `GET url` over a plain TcpStream (HTTP/1.0: no chunking); the body of a 200.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    // The endpoint may come up just after the Kerberos listeners.
    let mut tries = 0;
    let mut s = loop {
        match std::net::TcpStream::connect(hostport) {
            Ok(s) => break s,
            Err(e) if tries == 50 => panic!("connect to the metrics endpoint {hostport}: {e}"),
            Err(_) => tries += 1,
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read the scrape");
    let text = String::from_utf8(buf).expect("UTF-8 scrape");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP header");
    let status = head.lines().next().unwrap_or("");
    assert!(status.contains(" 200"), "GET {url}: {status}");
    body.to_string()
}

/// Starts a dev realm sharing its pkt-eue-7 cache through a real
/// redis-server (as the Kubernetes deployment does), sends it a little
/// traffic (an AS exchange, a TGS exchange, a request with a skewed clock,
/// an undecodable datagram, plain HTTP to the certificate-bootstrapping
/// port), scrapes its `metrics_url` and returns the metric family names of
/// the `# TYPE` lines.
fn live_scrape_names() -> BTreeSet<String> {
    use krb::client;
    let redis = testkit::Redis::start();
    let url = redis.url();
    let kdc = testkit::DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replacen("[mps]\n", &format!("[mps]\nredis = \"{url}\"\n"), 1);
        assert!(cfg.contains("redis = "), "{cfg}");
    });
    let realm = common::Realm::start(kdc);
    let tgt = realm.tgt(client::default_options());
    let _ = realm.kdc.udp(&realm.tgs_req(
        &tgt,
        &realm.service,
        common::rand_nonce(),
        0,
        client::default_options(),
    ));
    let _ = realm
        .kdc
        .udp(&realm.as_req(common::rand_nonce(), 3600, client::default_options()));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = sock.send_to(b"not kerberos", realm.kdc.addr);
    if let Some(url) = realm.kdc.manifest["certboot_url"].as_str() {
        use std::io::{Read, Write};
        let hostport = url["https://".len()..].split('/').next().unwrap();
        if let Ok(mut s) = std::net::TcpStream::connect(hostport) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
    let url = realm.kdc.manifest["metrics_url"]
        .as_str()
        .expect("the dev realm's manifest has metrics_url")
        .to_string();
    // The listeners count each exchange as it ends, after its reply: scrape
    // until every used metric is there, for at most 10 s (the caller then
    // names what is still missing).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let names: BTreeSet<String> = http_get(&url)
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        if missing_from_scrape(&names).is_empty() || std::time::Instant::now() > deadline {
            return names;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The used metrics without a `# TYPE` line in `scraped`. OpenMetrics names
/// counter families without `_total` and info families without `_info`; the
/// Prometheus text format keeps them.
fn missing_from_scrape(scraped: &BTreeSet<String>) -> Vec<String> {
    let present = |m: &str| {
        scraped.contains(m)
            || [m.strip_suffix("_total"), m.strip_suffix("_info")]
                .into_iter()
                .flatten()
                .any(|b| scraped.contains(b))
    };
    used_metrics().into_iter().filter(|m| !present(m)).collect()
}

#[test]
fn dashboard_and_alert_metrics_exist_in_a_real_scrape() {
    let scraped = live_scrape_names();
    let missing = missing_from_scrape(&scraped);
    assert!(
        missing.is_empty(),
        "metrics the dashboard or alerts use have no `# TYPE` line in a real scrape \
         (every family must be exposed, also before its first sample): {missing:?}\nscraped: {scraped:?}"
    );
}

#[test]
fn metric_uses_parses_selectors() {
    let uses = metric_uses(
        r#"sum by (le) (rate(pktc_request_duration_seconds_bucket{job=~"$job",code!~"25|52", x="a\"}b"}[5m])) / pktc_up"#,
    );
    assert_eq!(
        uses,
        [
            (
                "pktc_request_duration_seconds_bucket".to_string(),
                vec!["job".to_string(), "code".to_string(), "x".to_string()]
            ),
            ("pktc_up".to_string(), vec![])
        ]
    );
    let docs = documented_metrics();
    assert_eq!(docs["pktc_replies_total"].labels.len(), 4);
    assert!(docs["pktc_cert_expiry_seconds"].labels.contains("subject"));
    assert!(docs["pktc_lookaside_hits_total"].labels.is_empty());
    assert!(
        base_metric(&docs, "pktc_requests_total_count").is_none(),
        "only histograms have _count series"
    );
}
