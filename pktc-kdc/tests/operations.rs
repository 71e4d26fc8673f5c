//! Operations, over real processes and peers: the Prometheus endpoint after
//! real AS, TGS, PKINIT (MIT kinit, with its pkt-eue-7 lookup) and certboot
//! (curl) traffic, checked by `promtool check metrics` and by the exact
//! counter deltas; the JSON audit log; SIGHUP reloads with a broken and a
//! fixed trust directory; per-source rate limiting; KRB_ERR_RESPONSE_TOO_BIG
//! sending MIT's client to TCP; serving threads sharing the sockets and a
//! clean stop on SIGTERM.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KDC, Realm, error_code, rand_nonce};
use testkit::{DevKdc, require_tool};

/// One scrape: `name{labels}` → value.
type Scrape = BTreeMap<String, f64>;

fn scrape_text(kdc: &DevKdc) -> String {
    kdc.metrics()
}

fn parse(text: &str) -> Scrape {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn scrape(kdc: &DevKdc) -> Scrape {
    parse(&scrape_text(kdc))
}

fn get(s: &Scrape, key: &str) -> f64 {
    s.get(key).copied().unwrap_or(0.0)
}

fn delta(before: &Scrape, after: &Scrape, key: &str) -> f64 {
    get(after, key) - get(before, key)
}

/// `promtool check metrics` on a scrape (lint: names, types, help).
fn promtool_check(text: &str) {
    let promtool = promtool();
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// promtool from $PROMTOOL, target/tools/promtool (.ci/run fetches it from
/// Debian's prometheus package) or PATH.
fn promtool() -> PathBuf {
    if let Ok(p) = std::env::var("PROMTOOL") {
        return p.into();
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/promtool");
    if local.exists() {
        return local;
    }
    require_tool(
        "promtool",
        "prometheus (or run .ci/run, which extracts promtool into target/tools: \
         apt-get download prometheus && dpkg -x prometheus_*.deb x && cp x/usr/bin/promtool target/tools/)",
    )
}

/// MIT kinit PKINIT (RSA mode) with device `index`.
fn kinit_device(kdc: &DevKdc, conf_key: &str, index: usize, cc: &Path) -> (bool, String) {
    kdc.kinit_device(conf_key, index, &["-X", "flag_RSA_PROTOCOL=yes"], cc)
}

fn curl_profile(kdc: &DevKdc, index: usize) -> String {
    let dev = &kdc.manifest["devices"][index];
    let path = |k: &str| kdc.realm_path(dev[k].as_str().unwrap());
    kdc.certboot_status(&path("cert"), &path("key"))
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", l.join(","))
}

#[test]
fn metrics_after_real_traffic() {
    let kdc = DevKdc::start(Path::new(KDC));
    let before = scrape(&kdc);
    let realm = Realm::start(kdc);
    let options = krb::client::default_options();

    // AS: two tickets and one refused (clock skew) over UDP; TGS: one over TCP.
    for _ in 0..2 {
        let r = realm.kdc.udp(&realm.as_req(rand_nonce(), 0, options));
        assert_eq!(r[0], 0x6b, "AS-REP expected");
    }
    let skewed = realm.kdc.udp(&realm.as_req(rand_nonce(), -3600, options));
    assert_eq!(error_code(&skewed), 37);
    let tgt = realm.tgt(options);
    let tgs = realm.tgs_req(&tgt, &realm.service, rand_nonce(), 0, options);
    assert_eq!(realm.kdc.tcp(&tgs)[0], 0x6d, "TGS-REP expected");
    // PKINIT (RSA mode, MIT) for device 2: a pkt-eue-7 lookup that asks the
    // provisioning-server stand-in.
    let cc = realm.kdc.dir.path("cc");
    let (ok, out) = kinit_device(&realm.kdc, "krb5_conf_tcp", 1, &cc);
    assert!(ok, "kinit: {out}\n{}", realm.kdc.log());
    // Certificate bootstrapping: one profile.
    assert_eq!(curl_profile(&realm.kdc, 0), "200");

    let text = scrape_text(&realm.kdc);
    promtool_check(&text);
    let after = parse(&text);
    let d = |k: &str| delta(&before, &after, k);
    let replies = |exchange, form, outcome, code| {
        key(
            "pktc_replies_total",
            &[
                ("exchange", exchange),
                ("form", form),
                ("outcome", outcome),
                ("code", code),
            ],
        )
    };
    // tgt() is one more AS exchange over UDP.
    assert_eq!(d(&replies("as", "-", "ok", "0")), 3.0, "{text}");
    assert_eq!(d(&replies("as", "-", "error", "37")), 1.0);
    assert_eq!(d(&replies("tgs", "-", "ok", "0")), 1.0);
    assert_eq!(
        d(&key(
            "pktc_requests_total",
            &[("exchange", "as"), ("transport", "udp")]
        )),
        4.0
    );
    assert_eq!(
        d(&key(
            "pktc_requests_total",
            &[("exchange", "tgs"), ("transport", "tcp")]
        )),
        1.0
    );
    // MIT's kinit first sends an AS-REQ without padata (PREAUTH_REQUIRED, 25)
    // and then the PKINIT request.
    assert_eq!(
        d(&replies("pkinit", "rfc4556_rsa", "ok", "0")),
        1.0,
        "{text}"
    );
    assert_eq!(
        d(&key("pktc_mps_lookups_total", &[("outcome", "miss")])),
        1.0
    );
    assert_eq!(d("pktc_mps_lookup_duration_seconds_count"), 1.0);
    assert_eq!(
        d(&key(
            "pktc_certboot_handshakes_total",
            &[
                ("profile", "pktc"),
                ("outcome", "ok"),
                ("reason", "-"),
                ("version", "TLSv1.2"),
                ("cipher", "AES128-SHA"),
            ]
        )),
        1.0,
        "{text}"
    );
    assert_eq!(
        d(&key(
            "pktc_certboot_requests_total",
            &[("status", "200"), ("reason", "profile_served")]
        )),
        1.0
    );
    assert!(d("pktc_request_duration_seconds_count{exchange=\"as\"}") >= 4.0);
    assert_eq!(get(&after, "pktc_trust_generation{store=\"device\"}"), 1.0);
    assert!(text.contains("pktc_build_info{version="), "{text}");
    assert!(
        text.contains("pktc_cert_expiry_seconds{kind=\"kdc\",subject=\"C=US, O=PKTC Dev Realm, CN=kdc.pktc.test\"}"),
        "{text}"
    );
    assert!(
        text.contains("pktc_cert_expiry_seconds{kind=\"crl\""),
        "{text}"
    );
    assert!(
        text.contains("pktc_cert_expiry_seconds{kind=\"certboot_server\""),
        "{text}"
    );
    // Bounded labels: no MAC, FQDN or principal anywhere in the scrape.
    for needle in ["00:10:95", "mta-0010", "@PKTC.TEST", "127.0.0.1"] {
        assert!(!text.contains(needle), "{needle} in a label:\n{text}");
    }
}

/// JSON audit lines to a file, one per decision, with the fields an
/// operator greps for and no secret.
#[test]
fn audit_log_is_json_lines_in_its_own_file() {
    let audit_path = std::sync::Mutex::new(PathBuf::new());
    let kdc = DevKdc::start_prepared(Path::new(KDC), |dir, cfg| {
        let path = dir.join("audit.jsonl");
        *cfg = cfg.replace(
            "audit = \"stderr\"\naudit_format = \"human\"",
            &format!("audit = \"{}\"\naudit_format = \"json\"", path.display()),
        );
        assert!(cfg.contains("audit.jsonl"), "{cfg}");
        *audit_path.lock().unwrap() = path;
    });
    let path = audit_path.into_inner().unwrap();
    let realm = Realm::start(kdc);
    let (_, password) = realm.kdc.password();
    let _ = realm.tgt(krb::client::default_options());
    let cc = realm.kdc.dir.path("cc");
    let (ok, out) = kinit_device(&realm.kdc, "krb5_conf_tcp", 0, &cc);
    assert!(ok, "{out}");
    assert_eq!(curl_profile(&realm.kdc, 0), "200");

    let deadline = Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect();
        let has = |ex: &str| lines.iter().any(|v| v["exchange"] == ex);
        if (has("as") && has("pkinit") && has("lookup") && has("certboot"))
            || Instant::now() > deadline
        {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let find = |ex: &str, outcome: &str| {
        lines
            .iter()
            .find(|v| v["exchange"] == ex && v["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {ex} {outcome} event in {lines:#?}"))
    };
    let pk = find("pkinit", "ok");
    let mac = realm.kdc.manifest["devices"][0]["mac"].as_str().unwrap();
    let fqdn = realm.kdc.manifest["devices"][0]["fqdn"].as_str().unwrap();
    for field in [
        "timestamp",
        "source",
        "client",
        "error_code",
        "reason",
        "latency_us",
    ] {
        assert!(!pk[field].is_null(), "pkinit event lacks {field}: {pk}");
    }
    assert_eq!(pk["mac"], mac);
    assert_eq!(pk["fqdn"], fqdn);
    assert_eq!(pk["client"], realm.kdc.manifest["devices"][0]["principal"]);
    let lookup = find("lookup", "ok");
    assert_eq!(lookup["mac"], mac);
    assert_eq!(lookup["fqdn"], fqdn);
    assert!(!lookup["latency_us"].is_null());
    let as_ok = find("as", "ok");
    assert_eq!(as_ok["client"], realm.client.to_string().as_str());
    let cb = find("certboot", "ok");
    assert_eq!(cb["mac"], mac);
    // Only audit events in this file; never the password or a credential.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(lines.iter().all(|v| v["target"] == "audit"), "{text}");
    assert!(!text.contains(&password));
    let creds = std::fs::read_to_string(realm.kdc.realm_path("certboot-credentials.toml")).unwrap();
    for secret in creds
        .lines()
        .filter_map(|l| l.strip_prefix("credential = \""))
    {
        assert!(!text.contains(secret.trim_end_matches('"')));
    }
    // …and no audit events in the debug log.
    assert!(
        !realm.kdc.log().contains("exchange="),
        "{}",
        realm.kdc.log()
    );
}

fn sighup(kdc: &DevKdc) {
    let pid = std::fs::read_to_string(kdc.realm_path("pktc-kdc.pid")).expect("pid file");
    let ok = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sighup_with_a_broken_trust_directory_keeps_the_old_store() {
    // File watch off: only SIGHUP reloads.
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace("watch_interval_ms = 1000", "watch_interval_ms = 0");
        assert!(cfg.contains("watch_interval_ms = 0"));
    });
    let trust = kdc.realm_path("pki/trust/device");
    std::fs::write(
        trust.join("zz-broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    sighup(&kdc);
    assert!(
        kdc.wait_log(|l| l.contains("device trust reload failed") && l.contains("zz-broken.pem")),
        "{}",
        kdc.log()
    );
    let s = scrape(&kdc);
    assert_eq!(get(&s, "pktc_reload_failed{what=\"device_trust\"}"), 1.0);
    assert_eq!(
        get(
            &s,
            "pktc_reloads_total{what=\"device_trust\",result=\"error\"}"
        ),
        1.0
    );
    assert_eq!(get(&s, "pktc_trust_generation{store=\"device\"}"), 1.0);
    // Still serving PKINIT on the old store.
    let cc = kdc.dir.path("cc");
    let (ok, out) = kinit_device(&kdc, "krb5_conf_tcp", 0, &cc);
    assert!(ok, "PKINIT after a failed reload: {out}\n{}", kdc.log());

    std::fs::remove_file(trust.join("zz-broken.pem")).unwrap();
    sighup(&kdc);
    assert!(
        kdc.wait_log(|l| l.contains("device trust reloaded") && l.contains("generation=2")),
        "{}",
        kdc.log()
    );
    let s = scrape(&kdc);
    assert_eq!(get(&s, "pktc_reload_failed{what=\"device_trust\"}"), 0.0);
    assert_eq!(get(&s, "pktc_trust_generation{store=\"device\"}"), 2.0);
    let (ok, out) = kinit_device(&kdc, "krb5_conf_tcp", 1, &cc);
    assert!(ok, "{out}");
}

/// An AS-REQ from `from` over UDP; the reply's message type or error code.
fn as_from(realm: &Realm, from: &str) -> i32 {
    let s = UdpSocket::bind((from, 0)).expect("bind a loopback source");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr: SocketAddr = realm.kdc.addr;
    s.send_to(
        &realm.as_req(rand_nonce(), 0, krb::client::default_options()),
        addr,
    )
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = s.recv_from(&mut buf).expect("a reply");
    if buf[0] == 0x6b {
        0
    } else {
        error_code(&buf[..n])
    }
}

#[test]
fn a_source_over_its_bucket_is_refused_while_another_is_served() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        let before = cfg.clone();
        *cfg = cfg.replace(
            "[rate_limit]\nper_source_rate = 0.0",
            "[rate_limit]\nper_source_rate = 0.01",
        );
        *cfg = cfg.replace("per_source_burst = 40.0", "per_source_burst = 3.0");
        assert_ne!(*cfg, before, "{cfg}");
        assert!(cfg.contains("per_source_burst = 3.0"), "{cfg}");
    });
    let realm = Realm::start(kdc);
    let first: Vec<i32> = (0..5).map(|_| as_from(&realm, "127.0.0.1")).collect();
    assert_eq!(first, [0, 0, 0, 29, 29], "burst 3, then refused");
    // Another source is served.
    assert_eq!(as_from(&realm, "127.0.0.2"), 0);
    assert!(realm.kdc.wait_audit(
        |l| l.contains("reason=\"rate_limited_source\"") && l.contains("source=127.0.0.1")
    ));
    let s = scrape(&realm.kdc);
    assert_eq!(get(&s, "pktc_rate_limited_total{scope=\"source\"}"), 2.0);
    assert_eq!(
        get(
            &s,
            "pktc_replies_total{exchange=\"as\",form=\"-\",outcome=\"error\",code=\"29\"}"
        ),
        2.0
    );
}

/// A PKINIT reply (≈ 4.4 KB) over a UDP limit of 1400 bytes: the KDC sends
/// KRB_ERR_RESPONSE_TOO_BIG and MIT's kinit retries over TCP.
#[test]
fn udp_reply_too_big_sends_mit_kinit_to_tcp() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace("max_udp_reply_bytes = 65507", "max_udp_reply_bytes = 1400");
        assert!(cfg.contains("max_udp_reply_bytes = 1400"), "{cfg}");
    });
    let cc = kdc.dir.path("cc");
    let (ok, out) = kinit_device(&kdc, "krb5_conf_udp", 0, &cc);
    assert!(ok, "kinit did not fall back to TCP: {out}\n{}", kdc.log());
    assert!(kdc.wait_audit(|l| l.contains("transport=\"udp\"")
        && l.contains("reason=\"udp_reply_too_big\"")
        && l.contains("error_code=52")));
    assert!(kdc.wait_audit(|l| l.contains("exchange=\"pkinit\"")
        && l.contains("transport=\"tcp\"")
        && l.contains("outcome=\"ok\"")));
    let s = scrape(&kdc);
    assert!(get(&s, "pktc_udp_too_big_total") >= 1.0);
}

/// The PKINIT signing certificate rotates on SIGHUP: a half-written pair
/// (new certificate, old key) is refused and the old identity keeps
/// signing; the complete pair is used for the next request.
#[test]
fn kdc_certificate_rotates_on_sighup() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace("watch_interval_ms = 1000", "watch_interval_ms = 0");
    });
    let expiry = |kdc: &DevKdc| {
        kdc.metrics()
            .lines()
            .find(|l| l.starts_with("pktc_cert_expiry_seconds{kind=\"kdc\""))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse::<f64>().unwrap())
            .expect("KDC certificate expiry series")
    };
    let five_years = expiry(&kdc);
    let lsca = pktc_kdc::cli::certs::load_ca(
        &kdc.realm_path("pki/sp/local-system-ca.pem"),
        &kdc.realm_path("pki/ca-keys/local-system-ca.key"),
    )
    .unwrap();
    let fresh = certs::pki::kdc_cert(
        &lsca,
        "PKTC.TEST",
        "PKTC Dev Realm",
        "kdc.pktc.test",
        certs::pki::CertSpec::new().years(2),
    )
    .unwrap();
    // The certificate first: the pair does not match yet.
    std::fs::write(kdc.realm_path("pki/sp/kdc.pem"), fresh.cert_pem().unwrap()).unwrap();
    sighup(&kdc);
    assert!(
        kdc.wait_log(|l| l.contains("KDC certificate reload failed")),
        "{}",
        kdc.log()
    );
    assert_eq!(kdc.metric("pktc_reload_failed{what=\"kdc_identity\"}"), 1.0);
    let cc = kdc.dir.path("cc");
    let (ok, out) = kinit_device(&kdc, "krb5_conf_tcp", 0, &cc);
    assert!(ok, "PKINIT on the old identity: {out}\n{}", kdc.log());

    std::fs::write(kdc.realm_path("pki/sp/kdc.key"), fresh.key_pem().unwrap()).unwrap();
    sighup(&kdc);
    assert!(
        kdc.wait_log(|l| l.contains("KDC certificate reloaded")),
        "{}",
        kdc.log()
    );
    assert_eq!(kdc.metric("pktc_reload_failed{what=\"kdc_identity\"}"), 0.0);
    let two_years = expiry(&kdc);
    assert!(
        two_years < five_years - 86_400.0 * 365.0,
        "{two_years} vs {five_years}"
    );
    // MIT's client checks the new KDC certificate (same SP chain) and accepts it.
    let (ok, out) = kinit_device(&kdc, "krb5_conf_tcp", 1, &cc);
    assert!(ok, "PKINIT with the new identity: {out}\n{}", kdc.log());
}

/// `listen.threads` serving threads share the sockets: with 3 the process
/// has exactly 3 `pktc-serve-*` threads, concurrent MIT kinit PKINIT over
/// UDP and TCP from several devices all succeed, the threads gauge says 3,
/// and SIGTERM ends the service with exit status 0.
#[test]
fn serving_threads_share_the_sockets_and_stop_on_sigterm() {
    let mut kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace("\nthreads = 0", "\nthreads = 3");
        assert!(cfg.contains("\nthreads = 3"));
    });
    let pid = kdc.pid().expect("running");
    let serving = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("pktc-serve-"))
        .count();
    assert_eq!(serving, 3);
    assert_eq!(kdc.metric("pktc_cpu_pool_threads"), 3.0);

    let devices = kdc.manifest["devices"].as_array().unwrap().len().min(3);
    let results: Vec<(bool, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..devices)
            .flat_map(|i| [("krb5_conf_udp", i), ("krb5_conf_tcp", i)])
            .map(|(conf, i)| {
                let (kdc, cc) = (&kdc, kdc.dir.path(&format!("cc-{conf}-{i}")));
                s.spawn(move || kinit_device(kdc, conf, i, &cc))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.len(), devices * 2);
    for (ok, out) in &results {
        assert!(ok, "{out}\n{}", kdc.log());
    }
    let status = kdc
        .stop()
        .expect("SIGTERM did not stop the service within 5 s");
    assert!(status.success(), "{status:?}");
}
