//! `pktc-kdc trust list|add|remove|reload` against a running service with
//! the file watch off: changes are validated on a copy first, applied
//! atomically, and `--reload` (SIGHUP through the pid file) makes the
//! service use them at once; the certificate-bootstrapping endpoint shows
//! the effect on a device from a new manufacturer.

use std::path::{Path, PathBuf};
use std::process::Command;

use certs::pki::{self, CertSpec, CrlSpec};
use pktc_kdc::cli::certs::{DeviceRequest, issue_device, load_ca};
use testkit::DevKdc;

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");

fn trust(kdc: &DevKdc, args: &[&str]) -> (bool, String) {
    let out = Command::new(KDC)
        .arg("trust")
        .arg(args[0])
        .arg("--config")
        .arg(kdc.realm_path("config.toml"))
        .args(&args[1..])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// HTTP status of a profile fetch by the device in `dir`, or "000" when
/// the handshake is refused.
fn fetch(kdc: &DevKdc, dir: &Path) -> String {
    kdc.certboot_status(&dir.join("cert.pem"), &dir.join("key.pem"))
}

#[test]
fn trust_commands_change_what_the_service_accepts() {
    let staged = std::sync::Mutex::new(PathBuf::new());
    let kdc = DevKdc::start_prepared(Path::new(KDC), |realm, cfg| {
        *cfg = cfg.replace("watch_interval_ms = 1000", "watch_interval_ms = 0");
        // A new manufacturer under the MTA root, with its CRL and a device,
        // staged outside the trust directory.
        let root = load_ca(
            &realm.join("pki/trust/device/mta-root.pem"),
            &realm.join("pki/ca-keys/mta-root.key"),
        )
        .unwrap();
        let mfr =
            pki::manufacturer_ca(&root, CertSpec::new().org("New Mfr").cn("New Mfr CA")).unwrap();
        let dir = realm.join("staged");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("new-mfr.pem"), mfr.cert_pem().unwrap()).unwrap();
        let crl = pki::crl(&mfr, &[], CrlSpec::current()).unwrap();
        std::fs::write(dir.join("new-mfr.crl.pem"), crl.to_pem().unwrap()).unwrap();
        std::fs::write(dir.join("garbage.pem"), "not a certificate").unwrap();
        issue_device(
            &mfr,
            &DeviceRequest::new([0, 0x10, 0x95, 0, 3, 1]),
            &dir.join("device"),
        )
        .unwrap();
        *staged.lock().unwrap() = dir;
    });
    let staged = staged.into_inner().unwrap();
    let s = |name: &str| staged.join(name).display().to_string();
    let device = staged.join("device");

    let (ok, out) = trust(&kdc, &["list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("anchor") && out.contains("mta-root.pem"),
        "{out}"
    );
    assert!(
        out.contains("crl") && out.contains("manufacturer-ca.crl.pem"),
        "{out}"
    );
    assert!(out.contains("days)"), "{out}");
    assert_eq!(
        fetch(&kdc, &device),
        "000",
        "new manufacturer refused at first"
    );

    // A file that is not a certificate: refused, nothing changes.
    let (ok, out) = trust(&kdc, &["add", &s("garbage.pem")]);
    assert!(!ok && out.contains("would not load"), "{out}");
    assert!(!kdc.realm_path("pki/trust/device/garbage.pem").exists());

    let (ok, out) = trust(
        &kdc,
        &["add", &s("new-mfr.pem"), &s("new-mfr.crl.pem"), "--reload"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("sent SIGHUP"), "{out}");
    assert!(
        kdc.wait_log(|l| l.contains("device trust reloaded") && l.contains("generation=2")),
        "{}",
        kdc.log()
    );
    // Accepted at the handshake; no credentials for it: 404.
    assert_eq!(fetch(&kdc, &device), "404");
    let (_, out) = trust(&kdc, &["list"]);
    assert!(out.contains("New Mfr CA"), "{out}");

    // The CA alone cannot go: its CRL would be orphaned.
    let (ok, out) = trust(&kdc, &["remove", "new-mfr.pem"]);
    assert!(!ok && out.contains("would not load"), "{out}");
    assert!(kdc.realm_path("pki/trust/device/new-mfr.pem").exists());

    let (ok, out) = trust(
        &kdc,
        &["remove", "new-mfr.pem", "new-mfr.crl.pem", "--reload"],
    );
    assert!(ok, "{out}");
    assert!(kdc.wait_log(|l| l.contains("device trust reloaded") && l.contains("generation=3")));
    assert_eq!(fetch(&kdc, &device), "000", "refused again");
    let (ok, out) = trust(&kdc, &["reload"]);
    assert!(ok, "{out}");
    assert!(kdc.wait_log(|l| l.contains("generation=4")));
}
