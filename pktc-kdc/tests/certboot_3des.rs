//! TLS_RSA_WITH_3DES_EDE_CBC_SHA on the certificate-bootstrapping endpoint,
//! with GnuTLS's `gnutls-cli` as the device (Debian's `openssl s_client`
//! cannot offer 3DES). Built with `--features legacy-3des` (vendored OpenSSL
//! with weak ciphers) the suite is negotiated and the profile served; in the
//! default build the same client is refused at the handshake.

use std::path::Path;
use std::process::Command;

use testkit::{DevKdc, require_tool, run_bounded};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
const PRIORITY: &str = "NONE:+VERS-TLS1.2:+RSA:+3DES-CBC:+SHA1:+COMP-NULL:+SIGN-ALL:+CTYPE-X509";

fn gnutls_3des(kdc: &DevKdc) -> String {
    let url = kdc.get("certboot_url");
    let port = url.rsplit_once(':').unwrap().1.split('/').next().unwrap();
    let d = &kdc.manifest["devices"][0];
    let gnutls = require_tool("gnutls-cli", "gnutls-bin");
    let (out, err) = run_bounded(
        Command::new(gnutls)
            .args([
                "--port",
                port,
                "--priority",
                PRIORITY,
                "--verify-hostname",
                "localhost",
            ])
            .arg("--x509cafile")
            .arg(kdc.realm_path(&kdc.get("certboot_ca")))
            .arg("--x509certfile")
            .arg(kdc.realm_path(d["cert"].as_str().unwrap()))
            .arg("--x509keyfile")
            .arg(kdc.realm_path(d["key"].as_str().unwrap()))
            .arg("127.0.0.1"),
        b"GET /certboot/v1/profile HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "gnutls-cli",
    );
    out + &err
}

#[test]
fn three_des_suite_follows_the_build_feature() {
    let kdc = DevKdc::start(Path::new(KDC));
    let out = gnutls_3des(&kdc);
    if cfg!(feature = "legacy-3des") {
        assert!(
            out.contains("(3DES-CBC)-(SHA1)"),
            "gnutls-cli did not negotiate 3DES:\n{out}"
        );
        assert!(out.contains("HTTP/1.1 200"), "{out}");
        assert!(out.contains("<DeviceProfile"), "{out}");
        let found = kdc.wait_audit(|l| {
            l.contains("step=\"handshake\"") && l.contains("cipher=\"DES-CBC3-SHA\"")
        });
        assert!(found, "no 3DES handshake audit line:\n{}", kdc.log());
    } else {
        assert!(
            !out.contains("HTTP/1.1"),
            "3DES accepted without the feature:\n{out}"
        );
        let found = kdc.wait_audit(|l| l.contains("reason=\"no_shared_cipher\""));
        assert!(found, "no refusal audit line:\n{}", kdc.log());
    }
}
