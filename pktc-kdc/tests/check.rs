//! `pktc-kdc check` as a separate process against dev realms made with
//! `pktc-kdc dev --init-only`, each broken in one way: the exit code and
//! the line naming the problem. Peers are real: `pktc-kdc mps-responder`
//! for the pkt-eue-7 probe, redis-server for PING.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certs::pki::{self, CertSpec, CrlSpec, Issued, Validity};
use krb::keytab::Keytab;
use pktc_kdc::cli::certs::load_ca;
use testkit::TempDir;

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
const DAY: i64 = 86_400;

/// A fresh dev realm (not served).
struct Realm {
    _tmp: TempDir,
    dir: PathBuf,
}

impl Realm {
    fn new() -> Realm {
        let tmp = TempDir::new("check");
        let dir = tmp.path("realm");
        testkit::init_dev_realm(Path::new(KDC), &dir);
        Realm { _tmp: tmp, dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// `pktc-kdc check --config DIR/config.toml ARGS`: (exit code, stdout + stderr).
    fn check(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(KDC)
            .arg("check")
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(args)
            .output()
            .expect("running pktc-kdc check");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().expect("exit code"), text)
    }

    fn edit_config(&self, edit: impl FnOnce(&mut String)) {
        let path = self.path("config.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        edit(&mut text);
        std::fs::write(&path, text).unwrap();
    }

    /// A line to add right after the `[mps]` header.
    fn add_to_mps(&self, line: &str) {
        self.edit_config(|c| {
            assert!(c.contains("\n[mps]\n"), "{c}");
            *c = c.replacen("\n[mps]\n", &format!("\n[mps]\n{line}\n"), 1);
        });
    }

    fn ca(&self, stem: &str, cert_dir: &str) -> Issued {
        load_ca(
            &self.path(&format!("{cert_dir}/{stem}.pem")),
            &self.path(&format!("pki/ca-keys/{stem}.key")),
        )
        .unwrap()
    }

    fn manifest(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.path("dev-realm.json")).unwrap())
            .unwrap()
    }

    /// Rewrites the keytab without `component0/...` entries.
    fn drop_keys(&self, first_component: &str) {
        let path = self.path("kdc.keytab");
        let mut kt = Keytab::read_file(&path).unwrap();
        let before = kt.entries.len();
        kt.entries
            .retain(|e| e.principal.components[0] != first_component);
        assert!(kt.entries.len() < before);
        kt.write_file(&path).unwrap();
    }
}

/// Asserts the exit code and that some output line contains all of `needles`.
#[track_caller]
fn expect(result: &(i32, String), code: i32, needles: &[&str]) {
    let (got, out) = result;
    assert_eq!(*got, code, "exit code; output:\n{out}");
    assert!(
        out.lines().any(|l| needles.iter().all(|n| l.contains(n))),
        "no line with {needles:?}; output:\n{out}"
    );
}

fn now() -> i64 {
    krb::msg::time::now().0
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn untouched_dev_realm_passes() {
    let realm = Realm::new();
    let r = realm.check(&[]);
    expect(&r, 0, &["ok: ", "config.toml (realm PKTC.TEST)"]);
    for part in [
        "KDC certificate SAN krbtgt/PKTC.TEST@PKTC.TEST",
        "KDC certificate O=PKTC Dev Realm",
        "KDC chain of 3 verified",
        "pkinit.kdc_key matches",
        "certboot.server_key matches",
        "keytab holds krbtgt/PKTC.TEST@PKTC.TEST, mtaprovsrvr/mps.pktc.test@PKTC.TEST",
        "listen address(es) free",
    ] {
        assert!(r.1.contains(part), "{part:?} missing:\n{}", r.1);
    }
    assert!(
        !r.1.contains("error:") && !r.1.contains("warning:"),
        "{}",
        r.1
    );

    let (code, out) = realm.check(&["--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["errors"], 0);
    assert_eq!(v["realm"], "PKTC.TEST");
    assert!(v["passed"].as_array().is_some_and(|p| p.len() > 5), "{v}");
}

/// A setting with a fixed set of values refuses any other value at load,
/// naming the valid ones (the config's enums, not strings checked later).
#[test]
fn a_bad_choice_is_refused_with_the_valid_values() {
    let realm = Realm::new();
    for (from, to, valid) in [
        (
            "crl_policy = \"require\"",
            "crl_policy = \"sometimes\"",
            "unknown variant `sometimes`, expected one of `require`, `if-present`, `off`",
        ),
        (
            "packetcable_reply_cipher = \"des-ede3-cbc\"",
            "packetcable_reply_cipher = \"3des\"",
            "unknown variant `3des`, expected `des-ede3-cbc` or `aes256-cbc`",
        ),
        (
            "audit_format = \"human\"",
            "audit_format = \"xml\"",
            "unknown variant `xml`, expected `human` or `json`",
        ),
        (
            "on_timeout = \"refuse\"",
            "on_timeout = \"allow\"",
            "unknown variant `allow`, expected `refuse` or `allow-if-cached`",
        ),
        (
            "min_tls_version = \"1.2\"",
            "min_tls_version = \"1.3\"",
            "unknown variant `1.3`, expected one of `1.0`, `1.1`, `1.2`",
        ),
    ] {
        realm.edit_config(|c| {
            assert!(c.contains(from), "{from} not in the dev config");
            *c = c.replace(from, to);
        });
        let r = realm.check(&[]);
        expect(&r, 1, &[valid]);
        realm.edit_config(|c| *c = c.replace(to, from));
    }
    expect(
        &realm.check(&[]),
        0,
        &["ok: ", "config.toml (realm PKTC.TEST)"],
    );
}

#[test]
fn config_errors_are_listed_one_per_line() {
    let realm = Realm::new();
    realm.edit_config(|c| {
        *c = c
            .replace("pool_queue = 256", "pool_queue = 0")
            .replace("clock_skew_secs = 300", "clock_skew_secs = 0");
    });
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &["error: config ", "pkinit.pool_queue must be at least 1"],
    );
    expect(
        &r,
        1,
        &["error: config ", "policy.clock_skew_secs must be 1..=3600"],
    );

    realm.edit_config(|c| c.push_str("\n[listen\nudp = 1\n"));
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &["error: config ", "cannot be parsed: line ", "fix: "],
    );
    assert!(r.1.contains("FAILED:"), "{}", r.1);

    let r = Command::new(KDC)
        .args(["check", "--config", "/nonexistent/pktc.toml"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stdout).contains("reading config /nonexistent/pktc.toml"));
}

#[test]
fn kdc_key_mismatch() {
    let realm = Realm::new();
    std::fs::copy(realm.path("pki/sp/tls.key"), realm.path("pki/sp/kdc.key")).unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "error: pkinit.kdc_key ",
            "kdc.key",
            "does not belong to the certificate",
            "kdc.pem",
        ],
    );
    assert!(!r.1.contains("certboot.server_key"), "{}", r.1);
}

#[test]
fn certboot_key_mismatch() {
    let realm = Realm::new();
    std::fs::copy(realm.path("pki/sp/kdc.key"), realm.path("pki/sp/tls.key")).unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "error: certboot.server_key ",
            "tls.key",
            "does not belong to the certificate",
        ],
    );
}

#[test]
fn broken_kdc_chain() {
    let realm = Realm::new();
    // Intermediates with the right names but other keys (a CA reissued
    // under a new root, say): the KDC certificate's signature fails.
    let root = pki::sp_root(CertSpec::new().org("PKTC Dev Realm")).unwrap();
    let spca = pki::sp_ca(&root, CertSpec::new().org("PKTC Dev Realm")).unwrap();
    let lsca = pki::local_system_ca(&spca, CertSpec::new().org("PKTC Dev Realm")).unwrap();
    let mut pem = lsca.cert_pem().unwrap();
    pem.extend(spca.cert_pem().unwrap());
    let chain = realm.path("pki/sp/kdc-intermediates.pem");
    std::fs::write(&chain, &pem).unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "error: pkinit.kdc_chain ",
            "is not signed by the key of the CN=Local System CA",
        ],
    );

    // Intermediates of another PKI altogether.
    let other = pki::sp_root(CertSpec::new().org("Other").cn("Other Root")).unwrap();
    let other_ca = pki::sp_ca(&other, CertSpec::new().org("Other").cn("Other CA")).unwrap();
    std::fs::write(&chain, other_ca.cert_pem().unwrap()).unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "error: pkinit.kdc_chain ",
            "the issuer of CN=kdc.pktc.test (CN=Local System CA) is not in it",
            "CN=Other CA",
        ],
    );
}

#[test]
fn trust_dir_that_does_not_load() {
    let realm = Realm::new();
    // A leaf certificate has no place in the trust directory.
    std::fs::copy(
        realm.path("pki/sp/kdc.pem"),
        realm.path("pki/trust/device/kdc.pem"),
    )
    .unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "error: pkinit.device_trust_dir ",
            "does not load",
            "kdc.pem",
            "is not a CA",
        ],
    );
}

#[test]
fn expiring_and_expired_certificates_and_crls() {
    let realm = Realm::new();
    let trust = realm.path("pki/trust/device");
    let mfr = realm.ca("manufacturer-ca", "pki/trust/device");
    let soon = CrlSpec {
        next_update: now() + 10 * DAY - 3600, // "in 9 days"
        ..CrlSpec::current()
    };
    let crl = pki::crl(&mfr, &[], soon).unwrap();
    std::fs::write(trust.join("manufacturer-ca.crl.pem"), crl.to_pem().unwrap()).unwrap();
    // The certboot server certificate: 5 days left.
    let lsca = realm.ca("local-system-ca", "pki/sp");
    let tls = pki::tls_server_cert(
        &lsca,
        &["kdc.pktc.test"],
        &[],
        CertSpec::new().validity(Validity::Range {
            not_before: now() - DAY,
            not_after: now() + 5 * DAY - 3600, // "in 4 days"
        }),
    )
    .unwrap();
    tls.write_pem(&realm.path("pki/sp"), "tls").unwrap();
    let mut chain = tls.cert_pem().unwrap();
    chain.extend(std::fs::read(realm.path("pki/sp/kdc-intermediates.pem")).unwrap());
    std::fs::write(realm.path("pki/sp/tls-chain.pem"), chain).unwrap();

    // Warnings only: exit 3.
    let r = realm.check(&[]);
    expect(
        &r,
        3,
        &[
            "warning: pkinit.device_trust_dir ",
            "manufacturer-ca.crl.pem",
            "is due for its next update",
            "(in 9 days, within --expiry-days 30)",
        ],
    );
    expect(
        &r,
        3,
        &[
            "warning: certboot.server_cert ",
            "tls.pem",
            "expires on",
            "(in 4 days",
        ],
    );
    assert!(r.1.contains("WARNINGS:"), "{}", r.1);
    // A shorter horizon: only the certificate; 0: no expiry warnings.
    let r = realm.check(&["--expiry-days", "7"]);
    assert_eq!(r.0, 3, "{}", r.1);
    assert!(!r.1.contains("crl.pem"), "{}", r.1);
    expect(&realm.check(&["--expiry-days", "0"]), 0, &["ok: "]);

    // An expired CRL and an expired KDC certificate: errors, exit 1.
    let root = realm.ca("mta-root", "pki/trust/device");
    let crl = pki::crl(&root, &[], CrlSpec::expired()).unwrap();
    std::fs::write(trust.join("mta-root.crl.pem"), crl.to_pem().unwrap()).unwrap();
    let kdc = pki::kdc_cert(
        &lsca,
        "PKTC.TEST",
        "PKTC Dev Realm",
        "kdc.pktc.test",
        CertSpec::new().validity(Validity::Expired),
    )
    .unwrap();
    kdc.write_pem(&realm.path("pki/sp"), "kdc").unwrap();
    let r = realm.check(&["--expiry-days", "0"]);
    expect(
        &r,
        1,
        &[
            "error: pkinit.device_trust_dir ",
            "mta-root.crl.pem",
            "was due for its next update on",
            "(30 days ago)",
        ],
    );
    expect(
        &r,
        1,
        &[
            "error: pkinit.kdc_cert ",
            "the KDC certificate expired on",
            "(365 days ago)",
            "fix: renew",
        ],
    );
}

#[test]
fn kdc_certificate_with_the_wrong_organization() {
    let realm = Realm::new();
    let lsca = realm.ca("local-system-ca", "pki/sp");
    let kdc = pki::kdc_cert(
        &lsca,
        "PKTC.TEST",
        "Other Org",
        "kdc.pktc.test",
        CertSpec::new(),
    )
    .unwrap();
    kdc.write_pem(&realm.path("pki/sp"), "kdc").unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "error: pkinit.kdc_cert ",
            "subject O=Other Org differs from pkinit.realm_org_name \"PKTC Dev Realm\"",
        ],
    );
    // Without realm_org_name, O= is information only.
    realm.edit_config(|c| *c = c.replace("realm_org_name = \"PKTC Dev Realm\"\n", ""));
    let r = realm.check(&[]);
    expect(
        &r,
        0,
        &[
            "info: pkinit.kdc_cert ",
            "subject O=Other Org",
            "realm_org_name",
        ],
    );
}

#[test]
fn kdc_certificate_for_another_realm() {
    let realm = Realm::new();
    let lsca = realm.ca("local-system-ca", "pki/sp");
    let kdc = pki::kdc_cert(
        &lsca,
        "OTHER.TEST",
        "PKTC Dev Realm",
        "kdc.other.test",
        CertSpec::new(),
    )
    .unwrap();
    kdc.write_pem(&realm.path("pki/sp"), "kdc").unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "error: pkinit.kdc_cert ",
            "id-pkinit-san is krbtgt/OTHER.TEST@OTHER.TEST, not krbtgt/PKTC.TEST@PKTC.TEST",
        ],
    );
    // A TLS server certificate has neither the SAN nor the EKU.
    std::fs::copy(realm.path("pki/sp/tls.pem"), realm.path("pki/sp/kdc.pem")).unwrap();
    std::fs::copy(realm.path("pki/sp/tls.key"), realm.path("pki/sp/kdc.key")).unwrap();
    let r = realm.check(&[]);
    expect(&r, 1, &["error: pkinit.kdc_cert ", "no id-pkinit-san"]);
    expect(
        &r,
        1,
        &[
            "error: pkinit.kdc_cert ",
            "lacks id-pkinit-KPKdc (1.3.6.1.5.2.3.5)",
        ],
    );
}

#[test]
fn keytab_without_krbtgt() {
    let realm = Realm::new();
    realm.drop_keys("krbtgt");
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "error: keytab ",
            "kdc.keytab",
            "has no key for krbtgt/PKTC.TEST@PKTC.TEST",
            "pktc-kdc keytab add",
        ],
    );
}

#[test]
fn keytab_without_the_mps_key() {
    let realm = Realm::new();
    realm.drop_keys("mtaprovsrvr");
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "error: keytab ",
            "has no key for mtaprovsrvr/mps.pktc.test@PKTC.TEST",
            "[mps] server mps.pktc.test",
        ],
    );
    // Keys only of an enctype the policy does not permit.
    let realm = Realm::new();
    realm.edit_config(|c| {
        let start = c.find("enctypes = [").unwrap();
        let end = start + c[start..].find(']').unwrap() + 1;
        c.replace_range(start..end, "enctypes = [\"aes128-cts-hmac-sha1-96\"]");
    });
    let path = realm.path("kdc.keytab");
    let mut kt = Keytab::read_file(&path).unwrap();
    kt.entries
        .retain(|e| e.principal.components[0] != "mtaprovsrvr" || e.enctype == 18);
    kt.write_file(&path).unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            "has keys for mtaprovsrvr/mps.pktc.test@PKTC.TEST, but none of an enctype in policy.enctypes",
        ],
    );
}

/// The provisioning server answers only the KDC's pkt-eue-7 name, so it
/// must be one nobody can get tickets as: not a keyed principal (the demo
/// user), not a device name.
#[test]
fn mps_kdc_principal_that_others_can_hold() {
    for (name, why) in [
        ("demo@PKTC.TEST", "has keys in the keytab"),
        ("mta/x.pktc.test@PKTC.TEST", "is a device name"),
    ] {
        let realm = Realm::new();
        realm.edit_config(|c| {
            *c = c.replacen(
                "[mps]\n",
                &format!("[mps]\nkdc_principal = \"{name}\"\n"),
                1,
            );
        });
        expect(
            &realm.check(&[]),
            1,
            &[
                "error: mps.kdc_principal",
                "cannot be the KDC's pkt-eue-7 name",
                why,
            ],
        );
    }
    // A name without keys is fine.
    let realm = Realm::new();
    realm.edit_config(|c| {
        *c = c.replacen(
            "[mps]\n",
            "[mps]\nkdc_principal = \"pktc-kdc/kdc.pktc.test@PKTC.TEST\"\n",
            1,
        );
    });
    let (code, out) = realm.check(&[]);
    assert!(!out.contains("mps.kdc_principal"), "{out}");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn listen_port_in_use() {
    let realm = Realm::new();
    let kdc: SocketAddr = realm.manifest()["kdc"].as_str().unwrap().parse().unwrap();
    let _tcp = TcpListener::bind(kdc).unwrap();
    let _udp = UdpSocket::bind(kdc).unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[
            &format!("error: listen.tcp {kdc}: cannot be bound"),
            "in use",
            "ss -tlnp",
        ],
    );
    expect(
        &r,
        1,
        &[
            &format!("error: listen.udp {kdc}: cannot be bound"),
            "ss -ulnp",
        ],
    );

    // Before a reload: the running service (named by admin.pid_file)
    // holds its own ports. Here this test process plays the service.
    std::fs::write(realm.path("pktc-kdc.pid"), std::process::id().to_string()).unwrap();
    let r = realm.check(&[]);
    expect(
        &r,
        0,
        &[&format!(
            "info: listen.tcp {kdc}: in use by the running service (pid {}",
            std::process::id()
        )],
    );
    expect(
        &r,
        0,
        &[&format!(
            "info: listen.udp {kdc}: in use by the running service"
        )],
    );

    // One address for two listeners.
    let realm = Realm::new();
    let metrics = realm.manifest()["metrics_url"]
        .as_str()
        .unwrap()
        .to_string();
    let metrics = metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    realm.edit_config(|c| {
        *c = c.replacen(
            "[certboot]\nlisten = [\n",
            &format!("[certboot]\nlisten = [\n    \"{metrics}\",\n"),
            1,
        );
    });
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[&format!(
            "error: metrics.listen {metrics}: is also configured as certboot.listen"
        )],
    );
}

/// `pktc-kdc mps-responder` for the realm, killed on drop.
struct Responder(Child);

impl Responder {
    fn start(realm: &Realm) -> Responder {
        let log = realm.path("mps.log");
        let child = Command::new(KDC)
            .arg("mps-responder")
            .arg("--config")
            .arg(realm.path("mps-responder.toml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning pktc-kdc mps-responder");
        let responder = Responder(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("mps-responder serving") {
                return responder;
            }
            assert!(
                Instant::now() < deadline,
                "mps-responder did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn mps_probe() {
    let realm = Realm::new();
    let mps = realm.manifest()["mps"].as_str().unwrap().to_string();
    // Without --probe nothing is sent.
    expect(&realm.check(&[]), 0, &["info: mps.servers", "not probed"]);
    // Nobody listens.
    let r = realm.check(&["--probe"]);
    expect(
        &r,
        1,
        &[&format!(
            "error: mps.servers mps.pktc.test {mps}: no answer to a pkt-eue-7 request"
        )],
    );
    // The dev realm's provisioning-server stand-in answers ("unknown MAC").
    let _responder = Responder::start(&realm);
    let r = realm.check(&["--probe"]);
    expect(
        &r,
        0,
        &[&format!(
            "mps.servers mps.pktc.test {mps} answered pkt-eue-7"
        )],
    );
    // The stand-in logs the request after it has answered: wait for it.
    let read_log = || std::fs::read_to_string(realm.path("mps.log")).unwrap_or_default();
    let logged = testkit::wait_until(Duration::from_secs(10), || {
        read_log().contains("mac=02:70:6B:74:63:00")
    });
    assert!(logged, "{}", read_log());
}

#[test]
fn redis_unreachable_and_reachable() {
    let realm = Realm::new();
    let closed = format!("redis://127.0.0.1:{}/", closed_port());
    realm.add_to_mps(&format!("redis = \"{closed}\""));
    realm.edit_config(|c| {
        *c = c.replace(
            "credentials_file = \"certboot-credentials.toml\"",
            &format!("credentials_redis = \"{closed}\""),
        );
    });
    let r = realm.check(&[]);
    expect(
        &r,
        1,
        &[&format!("error: mps.redis {closed}: did not answer PING")],
    );
    expect(
        &r,
        1,
        &[&format!(
            "error: certboot.credentials_redis {closed}: did not answer PING"
        )],
    );

    let redis = testkit::Redis::start();
    let url = redis.url();
    realm.edit_config(|c| *c = c.replace(&closed, &url));
    let r = realm.check(&[]);
    expect(&r, 0, &["ok: ", &format!("mps.redis {url} answered PING")]);
    assert!(
        r.1.contains(&format!("certboot.credentials_redis {url} answered PING")),
        "{}",
        r.1
    );
}

/// `--errors-only` (the systemd pre-start check): warnings print but pass;
/// errors still fail.
#[test]
fn errors_only_passes_warnings_but_not_errors() {
    let realm = Realm::new();
    let config = realm.path("config.toml");
    let check = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pktc-kdc"))
            .arg("check")
            .arg("--config")
            .arg(&config)
            .args(extra)
            .output()
            .unwrap()
    };
    // The dev CRLs run for a year: a 400-day window makes them warnings.
    let warned = check(&["--expiry-days", "400"]);
    assert_eq!(
        warned.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&warned.stdout)
    );
    let passed = check(&["--expiry-days", "400", "--errors-only"]);
    assert_eq!(passed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&passed.stdout).contains("warning"));
    std::fs::remove_file(realm.path("kdc.keytab")).unwrap();
    assert_eq!(check(&["--errors-only"]).status.code(), Some(1));
}

/// With `[crl_fetch]`, an out-of-date CRL in the trust directory is a
/// warning (serve fetches a new one at start-up: `check --errors-only`
/// before a start must not stop it), and a current CRL in
/// `crl_fetch.cache_dir` replaces it, as it does for serve.
#[test]
fn crl_fetch_turns_an_expired_directory_crl_into_a_warning() {
    let realm = Realm::new();
    let root = realm.ca("mta-root", "pki/trust/device");
    let expired = pki::crl(&root, &[], CrlSpec::expired()).unwrap();
    std::fs::write(
        realm.path("pki/trust/device/mta-root.crl.pem"),
        expired.to_pem().unwrap(),
    )
    .unwrap();
    expect(
        &realm.check(&["--expiry-days", "0"]),
        1,
        &["error: pkinit.device_trust_dir ", "mta-root.crl.pem"],
    );

    realm.edit_config(|c| {
        c.push_str(
            "\n[crl_fetch]\nurls = [\"http://127.0.0.1:9/mta-root.crl\"]\ncache_dir = \"crl-cache\"\n",
        )
    });
    let r = realm.check(&["--expiry-days", "0", "--errors-only"]);
    expect(
        &r,
        0,
        &[
            "warning: pkinit.device_trust_dir ",
            "mta-root.crl.pem",
            "was due for its next update on",
            "[crl_fetch] fetches a current one at start-up",
        ],
    );

    // The cache holds a current CRL of the root: nothing left to say.
    std::fs::create_dir_all(realm.path("crl-cache")).unwrap();
    let current = pki::crl(&root, &[], CrlSpec::current()).unwrap();
    std::fs::write(realm.path("crl-cache/root.crl"), current.to_der().unwrap()).unwrap();
    let r = realm.check(&["--expiry-days", "0"]);
    assert_eq!(r.0, 0, "{}", r.1);
    assert!(!r.1.contains("mta-root.crl.pem"), "{}", r.1);
}
