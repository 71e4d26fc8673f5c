//! `deploy/kubernetes/` checked against the product: the ConfigMap is a
//! valid `pktc-kdc` config, and the manifests are consistent with that
//! config and with each other.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{entrypoint_config_path, repo};
use pktc_kdc::config::Config;
use serde::Deserialize;
use serde_yaml_ng::Value;

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
