//! `[crl_fetch]` against a real HTTP server (Python's http.server on
//! loopback) publishing the dev realm's CRLs: a device revoked with
//! `pktc-kdc certs revoke` is refused by MIT kinit PKINIT
//! (KDC_ERR_REVOKED_CERTIFICATE) and by the certificate-bootstrapping TLS
//! endpoint once the new CRL is fetched, without a restart; garbage, a
//! CRL signed by the wrong key, an older CRL and a server that is down
//! each keep the CRL in use and are counted by reason; a root CRL found
//! through a CA's CRL Distribution Point revokes a whole manufacturer;
//! and a restart with the server still down starts from the CRL cache.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use certs::pki::{self, CertSpec, CrlSpec};
use openssl::nid::Nid;
use pktc_kdc::cli::certs::load_ca;
use testkit::{DevKdc, HttpServer, TempDir};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
const MFR_CRL: &str = "manufacturer-ca.crl";
const ROOT_CRL: &str = "mta-root.crl";

/// MIT kinit PKINIT (RSA mode, TCP) as device `index`.
fn kinit(kdc: &DevKdc, index: usize) -> (bool, String) {
    let cc = kdc.dir.path(&format!("cc-{index}"));
    kdc.kinit_device(
        "krb5_conf_tcp",
        index,
        &["-X", "flag_RSA_PROTOCOL=yes"],
        &cc,
    )
}

/// HTTP status of a certificate-bootstrapping profile fetch by device
/// `index` ("000": the TLS handshake was refused).
fn certboot(kdc: &DevKdc, index: usize) -> String {
    let dev = &kdc.manifest["devices"][index];
    let path = |k: &str| kdc.realm_path(dev[k].as_str().unwrap());
    kdc.certboot_status(&path("cert"), &path("key"))
}

fn device_cert(kdc: &DevKdc, index: usize) -> PathBuf {
    kdc.realm_path(kdc.manifest["devices"][index]["cert"].as_str().unwrap())
}

fn assert_revoked(kdc: &DevKdc, index: usize, what: &str) {
    let (ok, out) = kinit(kdc, index);
    assert!(
        !ok && out.contains("Revoked certificate"),
        "{what}: device {index} must be refused as revoked: {out}"
    );
}

fn assert_served(kdc: &DevKdc, index: usize, what: &str) {
    let (ok, out) = kinit(kdc, index);
    assert!(ok, "{what}: device {index} must get a ticket: {out}");
}

/// Waits up to 30 s for `series` to reach `at_least` (the fetcher runs
/// every second here); panics with the fetch log lines otherwise.
fn wait_metric(kdc: &DevKdc, series: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while kdc.metric(series) < at_least {
        if Instant::now() > deadline {
            let log: Vec<String> = kdc
                .log()
                .lines()
                .filter(|l| l.contains("CRL"))
                .map(str::to_string)
                .collect();
            panic!(
                "{series} did not reach {at_least} (now {}); CRL log:\n{}",
                kdc.metric(series),
                log.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fetches(url: &str, result: &str) -> String {
    format!("pktc_crl_fetches_total{{url=\"{url}\",result=\"{result}\"}}")
}

fn failures(url: &str, reason: &str) -> String {
    format!("pktc_crl_fetch_failures_total{{url=\"{url}\",reason=\"{reason}\"}}")
}

/// Replaces a published file atomically (the server reads it per request).
fn publish(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// `pktc-kdc certs revoke`: the CA's next CRL, written into `out`.
fn revoke(kdc: &DevKdc, ca: &str, current: &Path, cert: &Path, out: &Path) {
    let out = Command::new(KDC)
        .args(["certs", "revoke", "--ca-cert"])
        .arg(kdc.realm_path(&format!("pki/trust/device/{ca}.pem")))
        .arg("--ca-key")
        .arg(kdc.realm_path(&format!("pki/ca-keys/{ca}.key")))
        .arg("--crl")
        .arg(current)
        .arg("--cert")
        .arg(cert)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "certs revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn crls_are_fetched_checked_and_installed_without_a_restart() {
    let www = TempDir::new("crl-www");
    let mut http = HttpServer::start(www.root());
    let (mfr_url, root_url) = (http.url(MFR_CRL), http.url(ROOT_CRL));
    let config = format!(
        "\n[crl_fetch]\nurls = [\"{mfr_url}\"]\nrefresh_secs = 1\nretry_min_secs = 1\n\
         retry_max_secs = 1\ntimeout_ms = 2000\ncache_dir = \"crl-cache\"\n"
    );
    let root_cdp = root_url.clone();
    let www_dir = www.root().to_path_buf();
    let mut kdc = DevKdc::start_prepared(Path::new(KDC), |realm, cfg| {
        let trust = realm.join("pki/trust/device");
        // Publish the CRLs the trust directory holds.
        for (file, name) in [
            ("manufacturer-ca.crl.pem", MFR_CRL),
            ("mta-root.crl.pem", ROOT_CRL),
        ] {
            let crl = openssl::x509::X509Crl::from_pem(&std::fs::read(trust.join(file)).unwrap())
                .unwrap();
            publish(&www_dir, name, &crl.to_der().unwrap());
        }
        // A second manufacturer CA whose CRL Distribution Point names the
        // root's CRL: the fetcher finds that URL in the trust directory.
        let root = load_ca(
            &trust.join("mta-root.pem"),
            &realm.join("pki/ca-keys/mta-root.key"),
        )
        .unwrap();
        let second = pki::manufacturer_ca(
            &root,
            CertSpec::new()
                .org("Second Mfr")
                .cn("Second Mfr CA")
                .crl_url(&root_cdp),
        )
        .unwrap();
        std::fs::write(trust.join("second-mfr.pem"), second.cert_pem().unwrap()).unwrap();
        let crl = pki::crl(&second, &[], CrlSpec::current()).unwrap();
        std::fs::write(trust.join("second-mfr.crl.pem"), crl.to_pem().unwrap()).unwrap();
        cfg.push_str(&config);
    });
    let pid = kdc.pid();

    // Both sources are fetched; they serve what the store already has.
    wait_metric(&kdc, &fetches(&mfr_url, "unchanged"), 1.0);
    wait_metric(&kdc, &fetches(&root_url, "unchanged"), 1.0);
    assert_served(&kdc, 0, "before the revocation");
    assert_eq!(certboot(&kdc, 0), "200");
    let generation = kdc.metric("pktc_trust_generation{store=\"device\"}");

    // Revoke device 0 and publish the manufacturer's new CRL.
    let original = std::fs::read(www.path(MFR_CRL)).unwrap();
    let staged = kdc.dir.path("next.crl");
    revoke(
        &kdc,
        "manufacturer-ca",
        &www.path(MFR_CRL),
        &device_cert(&kdc, 0),
        &staged,
    );
    publish(www.root(), MFR_CRL, &std::fs::read(&staged).unwrap());
    wait_metric(&kdc, &fetches(&mfr_url, "installed"), 1.0);
    assert_revoked(&kdc, 0, "after the fetch");
    assert!(kdc.wait_audit(|l| l.contains("cert_revoked")));
    assert_served(&kdc, 1, "another device of the manufacturer");
    assert_eq!(certboot(&kdc, 0), "000", "certboot refuses the handshake");
    assert_eq!(certboot(&kdc, 1), "200");
    assert_eq!(kdc.pid(), pid, "no restart");
    let installed = kdc.metric("pktc_trust_generation{store=\"device\"}");
    assert!(installed > generation, "a new trust generation");
    let text = kdc.metrics();
    assert!(
        text.contains("pktc_crl_age_seconds{store=\"device\"")
            && text.contains(",source=\"fetched\"}"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "pktc_crl_fetch_consecutive_failures{{url=\"{mfr_url}\""
        )),
        "{text}"
    );

    // Failures keep the CRL in use: garbage, a CRL with the manufacturer
    // CA's name signed by another key (it would un-revoke device 0), and
    // the older CRL again.
    let real_name = |nid: Nid| {
        let ca = std::fs::read(kdc.realm_path("pki/trust/device/manufacturer-ca.pem")).unwrap();
        let ca = openssl::x509::X509::from_pem(&ca).unwrap();
        let v = ca.subject_name().entries_by_nid(nid).next().unwrap();
        v.data().to_string().unwrap().to_string()
    };
    let impostor_root = pki::mta_root(CertSpec::new().cn("Impostor Root")).unwrap();
    let impostor = pki::manufacturer_ca(
        &impostor_root,
        CertSpec::new()
            .country(&real_name(Nid::COUNTRYNAME))
            .org(&real_name(Nid::ORGANIZATIONNAME))
            .cn(&real_name(Nid::COMMONNAME)),
    )
    .unwrap();
    let forged = pki::crl(
        &impostor,
        &[],
        CrlSpec {
            number: 99,
            ..CrlSpec::current()
        },
    )
    .unwrap();
    for (bytes, reason) in [
        (b"<html>moved</html>".to_vec(), "unparseable"),
        (forged.to_der().unwrap(), "bad_signature"),
        (original, "older"),
    ] {
        publish(www.root(), MFR_CRL, &bytes);
        wait_metric(&kdc, &failures(&mfr_url, reason), 1.0);
        assert_revoked(&kdc, 0, reason);
        assert_eq!(
            kdc.metric("pktc_trust_generation{store=\"device\"}"),
            installed,
            "{reason}: the store stays"
        );
    }
    assert!(
        kdc.metric(&format!(
            "pktc_crl_fetch_consecutive_failures{{url=\"{mfr_url}\",issuer=\"C=US, O={}, CN={}\"}}",
            real_name(Nid::ORGANIZATIONNAME),
            real_name(Nid::COMMONNAME)
        )) >= 1.0
    );

    // The root's CRL, found through the second CA's distribution point,
    // revokes the manufacturer CA: its whole fleet is refused.
    let root_staged = kdc.dir.path("root-next.crl");
    revoke(
        &kdc,
        "mta-root",
        &www.path(ROOT_CRL),
        &kdc.realm_path("pki/trust/device/manufacturer-ca.pem"),
        &root_staged,
    );
    publish(www.root(), ROOT_CRL, &std::fs::read(&root_staged).unwrap());
    wait_metric(&kdc, &fetches(&root_url, "installed"), 1.0);
    assert_revoked(&kdc, 1, "manufacturer CA revoked by the root");
    assert_eq!(certboot(&kdc, 1), "000");

    // The server goes away: connection failures, the CRLs stay.
    http.stop();
    wait_metric(&kdc, &failures(&mfr_url, "connect"), 1.0);
    assert_revoked(&kdc, 0, "server down");

    // A restart with the server still down starts from the CRL cache.
    let cached = std::fs::read_dir(kdc.realm_path("crl-cache"))
        .unwrap()
        .count();
    assert_eq!(cached, 2, "one cache file per fetched issuer");
    kdc.restart();
    assert!(kdc.wait_log(|l| l.contains("cached CRL loaded")));
    assert_revoked(&kdc, 0, "after a restart, from the cache");
    assert_revoked(&kdc, 1, "after a restart, from the cache");
}
