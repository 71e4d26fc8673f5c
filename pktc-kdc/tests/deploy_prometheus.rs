//! `deploy/` checked against the product: the systemd unit verifies with
//! `systemd-analyze` (and stays hardened), the example configs and the
//! Kubernetes ConfigMap are valid `pktc-kdc` configs, the Kubernetes
//! manifests are consistent with that config and with each other, the
//! Prometheus config and alert rules pass `promtool` (including unit tests
//! of the alerts), and every metric the dashboard and the alerts use is in
//! docs/metrics.md with the labels it documents.
//!
//! promtool comes from Debian's `prometheus` package without installing
//! the server: `.ci/run` unpacks it to `target/tools/promtool`; `PROMTOOL`
//! overrides the path.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::KDC;
use pktc_kdc::config::Config;
use serde::Deserialize;
use serde_yaml_ng::Value;
use testkit::{TempDir, require_tool};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

// ------------------------------------------------------------------ systemd

const UNIT: &str = "deploy/systemd/pktc-kdc.service";
const INSTALLED_BINARY: &str = "/usr/bin/pktc-kdc";

/// `Key=value` lines of the unit, in order (comments and sections dropped).
fn unit_directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';', '[']))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let text = read(UNIT);
    let directives = unit_directives(&text);
    let get = |key: &str| -> Vec<&str> {
        directives
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        match get(key).as_slice() {
            [v] => v,
            other => panic!("{UNIT}: expected one {key}=, found {other:?}"),
        }
    };
    assert_eq!(
        one("ExecStart"),
        "/usr/bin/pktc-kdc serve --config /etc/pktc-kdc/config.toml"
    );
    assert_eq!(
        one("ExecStartPre"),
        "/usr/bin/pktc-kdc check --errors-only --config /etc/pktc-kdc/config.toml"
    );
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("Restart"), "on-failure");
    // Port 88 is the only privilege.
    assert_eq!(one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("ConfigurationDirectory", "pktc-kdc"),
        ("RuntimeDirectory", "pktc-kdc"),
    ] {
        assert_eq!(one(key), want, "{UNIT}: {key}");
    }
    assert!(
        get("SystemCallFilter").contains(&"@system-service"),
        "{UNIT}: SystemCallFilter=@system-service"
    );
    // The example config only writes where the sandbox lets it.
    let cfg: Config = toml::from_str(&read("deploy/systemd/config.toml"))
        .unwrap_or_else(|e| panic!("deploy/systemd/config.toml: {e}"));
    if let Some(pid) = &cfg.admin.pid_file {
        assert!(
            pid.starts_with("/run/pktc-kdc/"),
            "pid_file {pid:?} is outside RuntimeDirectory"
        );
    }
    assert!(
        matches!(cfg.log.audit.as_str(), "stdout" | "stderr" | "off")
            || cfg.log.audit.starts_with("/var/log/pktc-kdc/"),
        "log.audit {:?} is outside LogsDirectory",
        cfg.log.audit
    );

    // systemd-analyze verify needs the ExecStart binaries to exist: a copy
    // of the unit pointing at the binary under test.
    let analyze = require_tool("systemd-analyze", "systemd");
    let dir = TempDir::new("deploy-unit");
    let unit = dir.path("pktc-kdc.service");
    assert!(text.contains(INSTALLED_BINARY));
    std::fs::write(&unit, text.replace(INSTALLED_BINARY, KDC)).expect("write unit");
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("running systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown keys and bad values are warnings with exit code 0: any line
    // about our unit fails the test.
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("pktc-kdc.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify {UNIT}:\n{said}"
    );

    // And it stays hardened: systemd's own exposure score (0 best, 10 worst)
    // at most 2.0.
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("running systemd-analyze security");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{UNIT}: exposure above 2.0:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn example_systemd_config_is_a_valid_config() {
    // Config::load: deny_unknown_fields, path resolution and validate().
    let cfg = Config::load(&repo().join("deploy/systemd/config.toml"))
        .unwrap_or_else(|e| panic!("deploy/systemd/config.toml: {e:#}"));
    assert!(cfg.listen.udp.iter().all(|a| a.port() == 88));
    assert!(cfg.listen.tcp.iter().all(|a| a.port() == 88));
    assert!(cfg.pkinit.is_some() && cfg.mps.is_some() && cfg.certboot.is_some());
    assert!(!cfg.metrics.listen.is_empty());
}

// ------------------------------------------------------------------ Kubernetes

/// Every YAML document of `deploy/kubernetes/*.yaml`, with its file.
fn kubernetes_documents() -> Vec<(String, Value)> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML in deploy/kubernetes");
    let mut docs = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).expect("read manifest");
        for (i, de) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let doc = Value::deserialize(de)
                .unwrap_or_else(|e| panic!("{name}: document {} does not parse: {e}", i + 1));
            if !doc.is_null() {
                docs.push((name.clone(), doc));
            }
        }
    }
    docs
}

fn s<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// `a.b.c` into nested mappings.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// True if `selector` (labels) selects pods labelled `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

struct Manifests {
    docs: Vec<(String, Value)>,
}

impl Manifests {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|(_, d)| s(d, "kind") == Some(kind))
            .map(|(_, d)| d)
            .collect()
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.all(kind)
            .into_iter()
            .find(|d| s(d, "metadata.name") == Some(name))
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
    }

    /// Workloads (Deployment, StatefulSet) with their pod labels.
    fn workloads(&self) -> Vec<(&Value, BTreeMap<String, String>)> {
        self.docs
            .iter()
            .map(|(_, d)| d)
            .filter(|d| matches!(s(d, "kind"), Some("Deployment" | "StatefulSet")))
            .map(|d| (d, string_map(at(d, "spec.template.metadata.labels"))))
            .collect()
    }
}

/// Keys a ConfigMap or Secret provides as files.
fn data_keys(v: &Value) -> BTreeSet<String> {
    ["data", "binaryData", "stringData"]
        .iter()
        .filter_map(|k| v.get(k).and_then(Value::as_mapping))
        .flat_map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_string)))
        .collect()
}

/// Container ports by name: (port, protocol).
fn container_ports(container: &Value) -> BTreeMap<String, (u64, String)> {
    seq(container, "ports")
        .iter()
        .map(|p| {
            (
                s(p, "name")
                    .expect("every container port is named")
                    .to_string(),
                (
                    at(p, "containerPort")
                        .and_then(Value::as_u64)
                        .expect("containerPort"),
                    s(p, "protocol").unwrap_or("TCP").to_string(),
                ),
            )
        })
        .collect()
}

#[test]
fn kubernetes_manifests_are_consistent() {
    let m = Manifests {
        docs: kubernetes_documents(),
    };
    // Every document names itself; no namespace (applied with -n).
    let mut seen = BTreeSet::new();
    for (file, d) in &m.docs {
        let kind = s(d, "kind").unwrap_or_else(|| panic!("{file}: a document without kind"));
        assert!(
            s(d, "apiVersion").is_some(),
            "{file}: {kind} without apiVersion"
        );
        let name =
            s(d, "metadata.name").unwrap_or_else(|| panic!("{file}: {kind} without metadata.name"));
        assert!(
            at(d, "metadata.namespace").is_none(),
            "{file}: {kind} {name} sets a namespace; the manifests are namespace-agnostic"
        );
        assert!(
            seen.insert((kind.to_string(), name.to_string())),
            "{file}: {kind} {name} defined twice"
        );
    }
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
        "StatefulSet",
    ] {
        assert!(!m.all(kind).is_empty(), "deploy/kubernetes has no {kind}");
    }

    // The config: a valid pktc-kdc config.
    let cm = m.get("ConfigMap", "pktc-kdc-config");
    let text = cm
        .get("data")
        .and_then(|d| d.get("config.toml")?.as_str())
        .expect("pktc-kdc-config has config.toml");
    let cfg: Config = toml::from_str(text)
        .unwrap_or_else(|e| panic!("ConfigMap pktc-kdc-config config.toml: {e}"));
    cfg.validate()
        .unwrap_or_else(|e| panic!("ConfigMap pktc-kdc-config config.toml: {e:#}"));

    // Redis URLs point at a Service of these manifests.
    let mps = cfg.mps.as_ref().expect("[mps]");
    let certboot = cfg.certboot.as_ref().expect("[certboot]");
    let urls = [
        mps.redis.as_deref().expect("[mps] redis"),
        certboot
            .credentials_redis
            .as_deref()
            .expect("[certboot] credentials_redis"),
    ];
    for url in urls {
        let hostport = url
            .strip_prefix("redis://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("{url}: not redis://host:port/"));
        let (host, port) = hostport.rsplit_once(':').expect("host:port");
        let svc = m.get("Service", host);
        assert!(
            seq(svc, "spec.ports")
                .iter()
                .any(|p| at(p, "port").and_then(Value::as_u64) == port.parse().ok()),
            "Service {host} has no port {port}"
        );
    }

    // The KDC Deployment.
    let dep = m.get("Deployment", "pktc-kdc");
    assert_eq!(at(dep, "spec.replicas").and_then(Value::as_u64), Some(3));
    let pod_labels = string_map(at(dep, "spec.template.metadata.labels"));
    assert!(
        selects(
            &string_map(at(dep, "spec.selector.matchLabels")),
            &pod_labels
        ),
        "Deployment selector does not match its pods"
    );
    let containers = seq(dep, "spec.template.spec.containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let ports = container_ports(c);

    // Container ports = the config's listen ports, with the right protocol.
    let port_of = |name: &str, proto: &str| -> u64 {
        let (p, pr) = ports
            .get(name)
            .unwrap_or_else(|| panic!("no container port {name}"));
        assert_eq!(pr, proto, "container port {name}");
        *p
    };
    let check = |what: &str, addrs: &[std::net::SocketAddr], port: u64| {
        assert!(!addrs.is_empty(), "config: {what} is empty");
        for a in addrs {
            assert_eq!(
                u64::from(a.port()),
                port,
                "config {what} {a} vs container port"
            );
        }
    };
    check(
        "listen.udp",
        &cfg.listen.udp,
        port_of("kerberos-udp", "UDP"),
    );
    check(
        "listen.tcp",
        &cfg.listen.tcp,
        port_of("kerberos-tcp", "TCP"),
    );
    let certboot_addrs: Vec<_> = certboot
        .listen
        .iter()
        .chain(&certboot.modern_listen)
        .copied()
        .collect();
    check(
        "certboot.listen",
        &certboot_addrs,
        port_of("certboot", "TCP"),
    );
    check(
        "metrics.listen",
        &cfg.metrics.listen,
        port_of("metrics", "TCP"),
    );
    for a in cfg
        .listen
        .udp
        .iter()
        .chain(&cfg.listen.tcp)
        .chain(&certboot_addrs)
        .chain(&cfg.metrics.listen)
    {
        assert!(
            a.ip().is_unspecified(),
            "{a}: a pod must listen on all addresses"
        );
    }
    // The choice made: unprivileged ports, no capability at all.
    assert!(
        ports.values().all(|(p, _)| *p > 1023),
        "container ports must be unprivileged (the Service maps 88)"
    );
    assert_eq!(
        seq(c, "securityContext.capabilities.drop"),
        &[Value::from("ALL")]
    );
    assert!(at(c, "securityContext.capabilities.add").is_none());
    assert_eq!(
        at(c, "securityContext.allowPrivilegeEscalation").and_then(Value::as_bool),
        Some(false)
    );
    assert_eq!(
        at(dep, "spec.template.spec.securityContext.runAsNonRoot").and_then(Value::as_bool),
        Some(true)
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(s(c, &format!("{probe}.httpGet.path")), Some("/metrics"));
        assert_eq!(s(c, &format!("{probe}.httpGet.port")), Some("metrics"));
    }
    assert!(
        at(c, "resources.requests.cpu").is_some() && at(c, "resources.limits.memory").is_some()
    );

    // Volumes: every ConfigMap and Secret exists; every mount has a volume.
    let volumes: BTreeMap<&str, &Value> = seq(dep, "spec.template.spec.volumes")
        .iter()
        .map(|v| (s(v, "name").expect("volume name"), v))
        .collect();
    let source = |volume: &str| -> &Value {
        let v = volumes
            .get(volume)
            .unwrap_or_else(|| panic!("no volume {volume}"));
        if let Some(name) = s(v, "configMap.name") {
            m.get("ConfigMap", name)
        } else if let Some(name) = s(v, "secret.secretName") {
            m.get("Secret", name)
        } else {
            panic!("volume {volume}: neither a ConfigMap nor a Secret")
        }
    };
    let mounts: Vec<(String, &str, Option<&str>)> = seq(c, "volumeMounts")
        .iter()
        .map(|vm| {
            let name = s(vm, "name").expect("mount name");
            source(name);
            (
                s(vm, "mountPath").expect("mountPath").to_string(),
                name,
                s(vm, "subPath"),
            )
        })
        .collect();

    // The image's entrypoint reads the mounted config.
    let config_path = entrypoint_config_path();
    let (_, vol, sub) = mounts
        .iter()
        .find(|(p, _, _)| *p == config_path)
        .unwrap_or_else(|| panic!("nothing mounted at {config_path} (the image's --config)"));
    assert!(data_keys(source(vol)).contains(sub.expect("config mounted with subPath")));

    // Every file the config names is mounted from a Secret or ConfigMap key.
    let base = Path::new(&config_path).parent().unwrap();
    let pkinit = cfg.pkinit.as_ref().expect("[pkinit]");
    let files = [
        Some(&cfg.keytab),
        Some(&pkinit.kdc_cert),
        Some(&pkinit.kdc_key),
        pkinit.kdc_chain.as_ref(),
        Some(&certboot.server_cert),
        Some(&certboot.server_key),
        certboot.server_chain.as_ref(),
        mps.redis_secret_file.as_ref(),
        cfg.redis.password_file.as_ref(),
    ];
    for file in files.into_iter().flatten() {
        let abs = base.join(file);
        let (mount, vol, _) = mounts
            .iter()
            .find(|(p, _, sub)| sub.is_none() && abs.parent() == Some(Path::new(p)))
            .unwrap_or_else(|| panic!("{}: its directory is not a mount", abs.display()));
        let key = abs.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            data_keys(source(vol)).contains(&key),
            "{}: volume {vol} at {mount} has no key {key}",
            abs.display()
        );
    }
    let trust = base.join(&pkinit.device_trust_dir);
    assert!(
        mounts
            .iter()
            .any(|(p, _, sub)| Path::new(p) == trust && sub.is_none()),
        "{}: the device trust directory must be a whole-directory mount (updates reach the file watch)",
        trust.display()
    );

    // Services select a workload's pods and target its named ports.
    let workloads = m.workloads();
    for svc in m.all("Service") {
        let name = s(svc, "metadata.name").unwrap();
        let selector = string_map(at(svc, "spec.selector"));
        let (wl, _) = workloads
            .iter()
            .find(|(_, labels)| selects(&selector, labels))
            .unwrap_or_else(|| panic!("Service {name} selects no workload's pods"));
        let wl_ports: BTreeMap<String, (u64, String)> = seq(wl, "spec.template.spec.containers")
            .iter()
            .flat_map(container_ports)
            .collect();
        for p in seq(svc, "spec.ports") {
            let proto = s(p, "protocol").unwrap_or("TCP");
            let target = s(p, "targetPort")
                .unwrap_or_else(|| panic!("Service {name}: targetPort by container port name"));
            let (_, wl_proto) = wl_ports
                .get(target)
                .unwrap_or_else(|| panic!("Service {name}: no container port {target}"));
            assert_eq!(wl_proto, proto, "Service {name} port {target}");
        }
    }
    let kerberos = m.get("Service", "pktc-kdc-kerberos");
    let mut kerberos_ports: Vec<(u64, &str)> = seq(kerberos, "spec.ports")
        .iter()
        .map(|p| {
            (
                at(p, "port").and_then(Value::as_u64).unwrap(),
                s(p, "protocol").unwrap_or("TCP"),
            )
        })
        .collect();
    kerberos_ports.sort();
    assert_eq!(kerberos_ports, [(88, "TCP"), (88, "UDP")]);
    assert_eq!(
        s(kerberos, "spec.externalTrafficPolicy"),
        Some("Local"),
        "the KDC needs the devices' own source addresses"
    );
    let certboot_svc = m.get("Service", "pktc-kdc-certboot");
    assert_eq!(
        seq(certboot_svc, "spec.ports")
            .iter()
            .filter_map(|p| at(p, "port").and_then(Value::as_u64))
            .collect::<Vec<_>>(),
        [8443]
    );

    // StatefulSets name an existing Service; PDBs and NetworkPolicies select pods.
    for sts in m.all("StatefulSet") {
        m.get("Service", s(sts, "spec.serviceName").expect("serviceName"));
    }
    let pdb = m.get("PodDisruptionBudget", "pktc-kdc");
    assert!(selects(
        &string_map(at(pdb, "spec.selector.matchLabels")),
        &pod_labels
    ));
    for np in m.all("NetworkPolicy") {
        let sel = string_map(at(np, "spec.podSelector.matchLabels"));
        assert!(
            workloads.iter().any(|(_, l)| selects(&sel, l)),
            "NetworkPolicy {} selects no pods",
            s(np, "metadata.name").unwrap()
        );
    }
}

/// The `--config` path of the Containerfile's ENTRYPOINT (exec form).
fn entrypoint_config_path() -> String {
    let file = read("deploy/container/Containerfile");
    let line = file
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT "))
        .expect("Containerfile ENTRYPOINT");
    let args: Vec<String> =
        serde_json::from_str(line.trim_start_matches("ENTRYPOINT ")).expect("exec-form ENTRYPOINT");
    assert_eq!(args[..2], ["/usr/bin/pktc-kdc", "serve"]);
    let i = args.iter().position(|a| a == "--config").expect("--config");
    args[i + 1].clone()
}

#[test]
fn containerfile_matches_the_unit_and_the_defaults() {
    let file = read("deploy/container/Containerfile");
    assert_eq!(entrypoint_config_path(), "/etc/pktc-kdc/config.toml");
    let froms: Vec<&str> = file.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: build and runtime");
    assert!(
        froms[0].contains("rust:")
            && froms[0].contains("bookworm")
            && froms[0].ends_with(" AS build")
    );
    assert!(froms[1].contains("debian:bookworm-slim"));
    let expose: BTreeSet<&str> = file
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(str::split_whitespace)
        .collect();
    for p in ["88/udp", "88/tcp", "8443/tcp", "9188/tcp"] {
        assert!(expose.contains(p), "EXPOSE {p}");
    }
    let user = file
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    // 9188 is the metrics default.
    assert_eq!(
        pktc_kdc::config::MetricsConfig::default().listen[0].port(),
        9188
    );
}

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
    std::thread::sleep(std::time::Duration::from_millis(300));
    let url = realm.kdc.manifest["metrics_url"]
        .as_str()
        .expect("the dev realm's manifest has metrics_url")
        .to_string();
    http_get(&url)
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn dashboard_and_alert_metrics_exist_in_a_real_scrape() {
    let scraped = live_scrape_names();
    // OpenMetrics names counter families without `_total` and info
    // families without `_info`; the Prometheus text format keeps them.
    let present = |m: &str| {
        scraped.contains(m)
            || [m.strip_suffix("_total"), m.strip_suffix("_info")]
                .into_iter()
                .flatten()
                .any(|b| scraped.contains(b))
    };
    let missing: Vec<String> = used_metrics().into_iter().filter(|m| !present(m)).collect();
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
