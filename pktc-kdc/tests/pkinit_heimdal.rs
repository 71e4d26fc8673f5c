//! Heimdal 7.8's kinit (a second independent RFC 4556 client beside MIT's)
//! doing PKINIT with a dev device certificate against `pktc-kdc`: DH (its
//! default: MODP 14, clientDHNonce, no KDF list, so octetstring2key) and
//! RSA key transport (`--pk-use-enckey`), then `kgetcred` with the TGT.
//! Heimdal signs with SHA-512 / sha512WithRSAEncryption, names its signer
//! by subjectKeyIdentifier and sends only its leaf certificate.
//!
//! The tools come unpacked from Debian's packages (`.ci/run`), see
//! `testkit::heimdal`.

use std::path::Path;

use testkit::{DevKdc, heimdal, mit, run};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");

/// kinit.heimdal as device `index`, the audit line of a successful PKINIT
/// in `form`, then kgetcred for the provisioning server; MIT's klist reads
/// the resulting credential cache.
fn heimdal_pkinit_then_kgetcred(kdc: &DevKdc, transport: &str, extra: &[&str], form: &str) {
    let cc = kdc.dir.path(&format!("heimdal-cc-{transport}"));
    let (ok, out) = kdc.kinit_heimdal(transport, 0, extra, &cc);
    assert!(
        ok,
        "Heimdal kinit PKINIT failed: {out}\nHeimdal trace:\n{}\nKDC log:\n{}",
        kdc.heimdal_trace(),
        kdc.log()
    );
    assert!(
        kdc.wait_audit(|l| l.contains("exchange=\"pkinit\"")
            && l.contains(&format!("transport=\"{transport}\""))
            && l.contains(&format!("form=\"{form}\""))
            && l.contains("outcome=\"ok\"")),
        "no successful {form} PKINIT over {transport}:\n{}",
        kdc.log()
    );
    let svc = kdc.get("service_principal");
    let conf = kdc.heimdal_conf(transport);
    let (ok, out) = run(heimdal("kgetcred", &conf, &cc).arg(&svc), "");
    assert!(
        ok,
        "kgetcred with Heimdal's PKINIT TGT failed: {out}\nHeimdal trace:\n{}\nKDC log:\n{}",
        kdc.heimdal_trace(),
        kdc.log()
    );
    assert!(
        kdc.wait_audit(|l| l.contains("exchange=\"tgs\"")
            && l.contains(&format!("server=\"{svc}\""))
            && l.contains("outcome=\"ok\"")),
        "no successful TGS for {svc}:\n{}",
        kdc.log()
    );
    let principal = kdc.manifest["devices"][0]["principal"].as_str().unwrap();
    let (ok, listing) = run(
        &mut mit("klist", &kdc.realm_path(&kdc.get("krb5_conf")), &cc),
        "",
    );
    assert!(ok, "{listing}");
    for want in [
        format!("Default principal: {principal}"),
        format!("krbtgt/{0}@{0}", kdc.get("realm")),
        svc,
    ] {
        assert!(listing.contains(&want), "{want} not in:\n{listing}");
    }
}

#[test]
fn heimdal_pkinit_dh_over_tcp_then_kgetcred() {
    let kdc = DevKdc::start(Path::new(KDC));
    heimdal_pkinit_then_kgetcred(&kdc, "tcp", &[], "rfc4556_dh");
}

#[test]
fn heimdal_pkinit_rsa_over_udp_then_kgetcred() {
    let kdc = DevKdc::start(Path::new(KDC));
    heimdal_pkinit_then_kgetcred(&kdc, "udp", &["--pk-use-enckey"], "rfc4556_rsa");
}

/// With DH key reuse on, Heimdal's clientDHNonce allows it: the reply has
/// dhKeyExpiration and a serverDHNonce, and octetstring2key takes both
/// nonces; Heimdal refuses either field without the other and derives the
/// key itself, so a mismatch fails its kinit. Twice, the second time with
/// the key kept from the first.
#[test]
fn heimdal_pkinit_dh_with_kdc_key_reuse() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace("dh_key_reuse_secs = 0", "dh_key_reuse_secs = 600");
        assert!(cfg.contains("dh_key_reuse_secs = 600"), "{cfg}");
    });
    for round in 0..2 {
        let cc = kdc.dir.path(&format!("heimdal-cc-reuse-{round}"));
        let (ok, out) = kdc.kinit_heimdal("tcp", 1, &[], &cc);
        assert!(
            ok,
            "round {round}: {out}\nHeimdal trace:\n{}\nKDC log:\n{}",
            kdc.heimdal_trace(),
            kdc.log()
        );
    }
}
