//! `certs::TrustStoreHandle::install_crl`: what the CRL fetcher hands it is
//! whatever an HTTP server answered. Nothing may panic, and a CRL that gets
//! installed must verify with the key of the CA it names.
//!
//! `PKTC_FUZZ_WRITE_SEEDS=DIR` writes seed inputs to DIR (fuzz/README.md).
//! The PKI is made afresh per process, so seeds exercise the parsers and
//! the checks up to the signature.

#![no_main]

use std::sync::OnceLock;

use certs::store::CrlInstalled;
use certs::{CertSpec, CrlPolicy, CrlSpec, Issued, TrustStoreHandle, crl, manufacturer_ca, mta_root};
use libfuzzer_sys::fuzz_target;

struct Target {
    handle: TrustStoreHandle,
    mfr: Issued,
}

fn target() -> &'static Target {
    static T: OnceLock<Target> = OnceLock::new();
    T.get_or_init(|| {
        let root = mta_root(CertSpec::new().bits(1024)).unwrap();
        let mfr = manufacturer_ca(&root, CertSpec::new().bits(1024).cn("Fuzz Mfr CA")).unwrap();
        let dir = std::env::temp_dir().join(format!("pktc-fuzz-crl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("root.pem"), root.cert_pem().unwrap()).unwrap();
        std::fs::write(dir.join("mfr.pem"), mfr.cert_pem().unwrap()).unwrap();
        let spec = CrlSpec {
            this_update: CrlSpec::current().this_update - 86_400,
            ..CrlSpec::current()
        };
        let current = crl(&mfr, &[], spec).unwrap();
        std::fs::write(dir.join("mfr.crl.pem"), current.to_pem().unwrap()).unwrap();
        if let Some(out) = std::env::var_os("PKTC_FUZZ_WRITE_SEEDS") {
            let out = std::path::Path::new(&out);
            std::fs::create_dir_all(out).unwrap();
            let newer = crl(&mfr, &[(&root.cert, spec.this_update)], CrlSpec::current()).unwrap();
            std::fs::write(out.join("crl-der"), newer.to_der().unwrap()).unwrap();
            std::fs::write(out.join("crl-pem"), newer.to_pem().unwrap()).unwrap();
        }
        Target {
            handle: TrustStoreHandle::open(&dir, CrlPolicy::Require).unwrap(),
            mfr,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let t = target();
    let now = CrlSpec::current().this_update + 3600;
    if let Ok(CrlInstalled::Installed { .. }) = t.handle.install_crl(data, "fuzz", now, 300) {
        let key = t.mfr.cert.public_key().unwrap();
        for f in t.handle.load().fetched_crls() {
            assert!(f.crl().verify(&key).unwrap(), "installed an unsigned CRL");
        }
    }
});
