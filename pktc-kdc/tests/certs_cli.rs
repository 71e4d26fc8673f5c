//! `pktc-kdc certs` as a separate process: `init` writes a PKI that the
//! openssl CLI accepts, `issue-device` issues from the dev manufacturer CA,
//! `show` prints the chain and verifies it against a trust directory, and
//! `check` matches certificates with keys.

use std::path::Path;
use std::process::Command;

use testkit::{TempDir, require_tool, run};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");

/// Runs `pktc-kdc certs <args>`: (success, stdout, stderr).
fn certs(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(KDC)
        .arg("certs")
        .args(args)
        .output()
        .expect("running pktc-kdc certs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `certs init` with two devices (the second given explicitly at 1024 bits
/// would need a second PKI, so sizes are checked in `issue_device_*`).
fn init_pki(tmp: &TempDir) -> std::path::PathBuf {
    let dir = tmp.path("pki");
    let (ok, out, err) = certs(&["init", "--dir", s(&dir), "--devices", "2"]);
    assert!(ok, "certs init failed: {err}");
    assert!(out.contains("dev PKI written to"), "{out}");
    assert!(out.contains("001095000002"), "{out}");
    dir
}

#[test]
fn init_writes_a_pki_that_openssl_verifies() {
    let openssl = require_tool("openssl", "openssl");
    let tmp = TempDir::new("certs-init");
    let pki = init_pki(&tmp);
    for dev in ["001095000001", "001095000002"] {
        let (ok, text) = run(
            Command::new(&openssl)
                .arg("verify")
                .arg("-CAfile")
                .arg(pki.join("trust/device/mta-root.pem"))
                .arg("-untrusted")
                .arg(pki.join("trust/device/manufacturer-ca.pem"))
                .arg(pki.join(format!("devices/{dev}/cert.pem"))),
            "",
        );
        assert!(ok && text.contains(": OK"), "openssl verify {dev}: {text}");
    }
    // The KDC certificate chains to the SP root through kdc-chain.pem.
    let (ok, text) = run(
        Command::new(&openssl)
            .arg("verify")
            .arg("-CAfile")
            .arg(pki.join("trust/sp/sp-root.pem"))
            .arg("-untrusted")
            .arg(pki.join("sp/kdc-chain.pem"))
            .arg(pki.join("sp/kdc.pem")),
        "",
    );
    assert!(ok && text.contains(": OK"), "openssl verify kdc: {text}");
    // A device does not chain to the SP root.
    let (ok, _) = run(
        Command::new(&openssl)
            .arg("verify")
            .arg("-CAfile")
            .arg(pki.join("trust/sp/sp-root.pem"))
            .arg("-untrusted")
            .arg(pki.join("trust/device/manufacturer-ca.pem"))
            .arg(pki.join("devices/001095000001/cert.pem")),
        "",
    );
    assert!(!ok);
}

#[test]
fn init_with_explicit_macs_and_1024_bit_devices() {
    let tmp = TempDir::new("certs-init-mac");
    let dir = tmp.path("pki");
    let (ok, _, err) = certs(&[
        "init",
        "--dir",
        s(&dir),
        "--mac",
        "00:11:22:aa:bb:cc",
        "--mac",
        "001122AABBCD",
        "--device-bits",
        "1024",
        "--realm",
        "LAB.EXAMPLE",
        "--org",
        "Lab Org",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = certs(&[
        "show",
        "--cert",
        s(&dir.join("devices/001122AABBCD/cert.pem")),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("device MAC: 00:11:22:AA:BB:CD"), "{out}");
    assert!(out.contains("RSA 1024 bits"), "{out}");
    let (ok, out, _) = certs(&["show", "--cert", s(&dir.join("sp/kdc.pem"))]);
    assert!(ok);
    assert!(
        out.contains("PKINIT SAN: krbtgt/LAB.EXAMPLE@LAB.EXAMPLE"),
        "{out}"
    );
    assert!(out.contains("O=Lab Org, CN=kdc.lab.example"), "{out}");

    let (ok, _, err) = certs(&["init", "--dir", s(&dir), "--device-bits", "512"]);
    assert!(
        !ok && err.contains("--device-bits must be 1024 or 2048"),
        "{err}"
    );
}

#[test]
fn issue_device_and_show_with_trust_dir() {
    let tmp = TempDir::new("certs-issue");
    let pki = init_pki(&tmp);
    let ca_cert = pki.join("trust/device/manufacturer-ca.pem");
    let ca_key = pki.join("ca-keys/manufacturer-ca.key");
    let trust = pki.join("trust/device");

    let out_dir = tmp.path("new-device");
    let (ok, out, err) = certs(&[
        "issue-device",
        "--ca-cert",
        s(&ca_cert),
        "--ca-key",
        s(&ca_key),
        "--mac",
        "00-10-95-0a-0b-0c",
        "--bits",
        "1024",
        "--sha1",
        "--days",
        "30",
        "--out-dir",
        s(&out_dir),
    ]);
    assert!(ok, "issue-device failed: {err}");
    assert!(out.contains("issued device 00:10:95:0A:0B:0C"), "{out}");
    for f in ["cert.pem", "key.pem", "chain.pem"] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out_dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let (ok, out, err) = certs(&[
        "show",
        "--cert",
        s(&out_dir.join("cert.pem")),
        "--chain",
        s(&out_dir.join("chain.pem")),
        "--trust-dir",
        s(&trust),
    ]);
    assert!(ok, "show failed: {err}\n{out}");
    assert!(out.contains("verification: ok (3 certificates"), "{out}");
    assert!(out.contains("device MAC: 00:10:95:0A:0B:0C"), "{out}");
    assert!(out.contains("RSA 1024 bits"), "{out}");
    assert!(out.contains("sha1WithRSAEncryption"), "{out}");
    assert!(
        out.contains("29 days left") || out.contains("30 days left"),
        "{out}"
    );
    assert!(out.contains("O=Example Manufacturer"), "{out}");
    assert!(out.contains("(trust directory) subject:"), "{out}");
    assert!(out.contains("CN=MTA Root CA"), "{out}");

    // Expired device: the report names the error and its KRB-ERROR code.
    let expired = tmp.path("expired-device");
    let (ok, _, err) = certs(&[
        "issue-device",
        "--ca-cert",
        s(&ca_cert),
        "--ca-key",
        s(&ca_key),
        "--mac",
        "00:10:95:0a:0b:0d",
        "--validity",
        "expired",
        "--out-dir",
        s(&expired),
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = certs(&[
        "show",
        "--cert",
        s(&expired.join("cert.pem")),
        "--trust-dir",
        s(&trust),
    ]);
    assert!(!ok);
    assert!(out.contains("EXPIRED"), "{out}");
    assert!(
        out.contains("verification: FAILED: certificate expired at depth 0 (KRB-ERROR 71 KDC_ERR_INVALID_CERTIFICATE)"),
        "{out}"
    );
    assert!(err.contains("verification failed"), "{err}");

    // Against the wrong trust directory: unknown issuer, 70.
    let (ok, out, _) = certs(&[
        "show",
        "--cert",
        s(&out_dir.join("cert.pem")),
        "--trust-dir",
        s(&pki.join("trust/sp")),
    ]);
    assert!(!ok);
    assert!(out.contains("KRB-ERROR 70"), "{out}");
}

#[test]
fn issue_device_refuses_bad_input() {
    let tmp = TempDir::new("certs-issue-bad");
    let pki = init_pki(&tmp);
    let ca_cert = pki.join("trust/device/manufacturer-ca.pem");
    let (ok, _, err) = certs(&[
        "issue-device",
        "--ca-cert",
        s(&ca_cert),
        "--ca-key",
        s(&pki.join("ca-keys/manufacturer-ca.key")),
        "--mac",
        "00:10:95",
        "--out-dir",
        s(&tmp.path("x")),
    ]);
    assert!(!ok && err.contains("not a MAC address"), "{err}");
    // A CA key that is not the CA certificate's.
    let (ok, _, err) = certs(&[
        "issue-device",
        "--ca-cert",
        s(&ca_cert),
        "--ca-key",
        s(&pki.join("ca-keys/mta-root.key")),
        "--mac",
        "00:10:95:00:00:09",
        "--out-dir",
        s(&tmp.path("y")),
    ]);
    assert!(!ok && err.contains("do not match"), "{err}");
}

#[test]
fn check_matches_certificates_and_keys() {
    let tmp = TempDir::new("certs-check");
    let pki = init_pki(&tmp);
    let d1 = pki.join("devices/001095000001");
    let d2 = pki.join("devices/001095000002");
    let (ok, out, err) = certs(&[
        "check",
        "--cert",
        s(&d1.join("cert.pem")),
        "--key",
        s(&d1.join("key.pem")),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("match"));

    let out = Command::new(KDC)
        .args(["certs", "check", "--cert"])
        .arg(d1.join("cert.pem"))
        .arg("--key")
        .arg(d2.join("key.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate and key do not match"),
        "{out:?}"
    );

    // Not a key at all: an error, also exit 1.
    let (ok, _, err) = certs(&[
        "check",
        "--cert",
        s(&d1.join("cert.pem")),
        "--key",
        s(&d1.join("cert.pem")),
    ]);
    assert!(
        !ok && err.contains("not an unencrypted private key"),
        "{err}"
    );
}
