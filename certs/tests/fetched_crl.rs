//! CRLs installed from the network (`TrustStoreHandle::install_crl`): the
//! checks that refuse one (and leave the store alone), the new generation
//! that carries one into `verify` and the TLS store, directory reloads,
//! and the CRL Distribution Points of the trust directory's CAs.

use std::path::PathBuf;
use std::sync::OnceLock;

use certs::store::{CrlInstalled, CrlRefused, DistributionPoint};
use certs::{
    CertSpec, ChainError, CrlPolicy, CrlSpec, EntryKind, Issued, TrustStoreHandle, crl,
    device_cert, manufacturer_ca, mta_root,
};
use openssl::stack::Stack;
use openssl::x509::X509StoreContext;

const SKEW: i64 = 300;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn small() -> CertSpec {
    CertSpec::new().bits(1024)
}

struct Pki {
    root: Issued,
    mfr: Issued,
    /// Same name as `mfr`, another key.
    impostor: Issued,
    other_root: Issued,
    device: Issued,
    other_device: Issued,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = mta_root(small().org("Fetch Root")).unwrap();
        let mfr_spec = small().org("Acme").cn("Acme CA");
        let mfr = manufacturer_ca(
            &root,
            mfr_spec
                .clone()
                .crl_url("http://crl.example.net/root.crl")
                .crl_url("ldap://ldap.example.net/cn=Root?certificateRevocationList"),
        )
        .unwrap();
        let impostor = manufacturer_ca(&root, mfr_spec).unwrap();
        Pki {
            device: device_cert(&mfr, [0, 1, 2, 3, 4, 5], small()).unwrap(),
            other_device: device_cert(&mfr, [0, 1, 2, 3, 4, 6], small()).unwrap(),
            other_root: mta_root(small().cn("Other Root")).unwrap(),
            impostor,
            root,
            mfr,
        }
    })
}

/// root, manufacturer CA and their CRLs (the manufacturer's: empty,
/// issued an hour ago, number 1).
fn trust_dir(name: &str) -> PathBuf {
    let p = pki();
    let d = std::env::temp_dir().join(format!("certs-fetched-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("root.pem"), p.root.cert_pem().unwrap()).unwrap();
    std::fs::write(d.join("mfr.pem"), p.mfr.cert_pem().unwrap()).unwrap();
    let root_crl = crl(&p.root, &[], CrlSpec::current()).unwrap();
    std::fs::write(d.join("root.crl.pem"), root_crl.to_pem().unwrap()).unwrap();
    let mfr_crl = crl(&p.mfr, &[], CrlSpec::current()).unwrap();
    std::fs::write(d.join("mfr.crl.pem"), mfr_crl.to_pem().unwrap()).unwrap();
    d
}

/// A manufacturer CRL revoking `device`, thisUpdate `age` seconds ago.
fn revoking(signer: &Issued, age: i64, number: u64) -> Vec<u8> {
    let spec = CrlSpec {
        this_update: now() - age,
        number,
        ..CrlSpec::current()
    };
    crl(signer, &[(&pki().device.cert, now() - 60)], spec)
        .unwrap()
        .to_der()
        .unwrap()
}

fn verify(h: &TrustStoreHandle, leaf: &Issued) -> Result<(), ChainError> {
    h.load().verify(&leaf.cert, &[], now()).map(|_| ())
}

fn install(h: &TrustStoreHandle, der: &[u8]) -> Result<CrlInstalled, CrlRefused> {
    h.install_crl(der, "http://crl.example.net/acme.crl", now(), SKEW)
}

#[test]
fn a_newer_crl_is_installed_as_a_new_generation() {
    let p = pki();
    let h = TrustStoreHandle::open(&trust_dir("newer"), CrlPolicy::Require).unwrap();
    assert_eq!(verify(&h, &p.device), Ok(()));
    let before = h.load();

    let der = revoking(&p.mfr, 60, 2);
    let r = install(&h, &der).unwrap();
    let CrlInstalled::Installed {
        generation, issuer, ..
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(generation, 2);
    assert_eq!(issuer, certs::name_string(p.mfr.cert.subject_name()));
    assert_eq!(verify(&h, &p.device), Err(ChainError::Revoked { depth: 0 }));
    assert_eq!(verify(&h, &p.other_device), Ok(()));
    // A request holding the old generation still answers from it.
    assert!(before.verify(&p.device.cert, &[], now()).is_ok());

    // The expiry report lists the fetched CRL instead of the directory's.
    let s = h.load();
    let crls: Vec<_> = s
        .entries()
        .iter()
        .filter(|e| e.kind == EntryKind::Crl && e.subject == issuer)
        .collect();
    assert_eq!(crls.len(), 1, "{crls:?}");
    assert_eq!(
        crls[0].fetched_from.as_deref(),
        Some("http://crl.example.net/acme.crl")
    );
    assert_eq!(s.fetched_crls().len(), 1);
    assert_eq!(s.fetched_crls()[0].der(), &der[..]);

    // The TLS store (certificate bootstrapping) of the new generation has it.
    let tls = s.tls_store().unwrap();
    let mut ctx = X509StoreContext::new().unwrap();
    let (ok, err) = ctx
        .init(&tls, &p.device.cert, &Stack::new().unwrap(), |c| {
            Ok((c.verify_cert()?, c.error().as_raw()))
        })
        .unwrap();
    assert_eq!((ok, err), (false, 23), "X509_V_ERR_CERT_REVOKED");

    // The same CRL again changes nothing; PEM is accepted too.
    let pem = openssl::x509::X509Crl::from_der(&der)
        .unwrap()
        .to_pem()
        .unwrap();
    assert!(matches!(
        install(&h, &pem).unwrap(),
        CrlInstalled::Unchanged { .. }
    ));
    assert_eq!(h.load().generation(), 2);
}

#[test]
fn refused_crls_leave_the_store_alone() {
    let p = pki();
    let h = TrustStoreHandle::open(&trust_dir("refused"), CrlPolicy::Require).unwrap();
    install(&h, &revoking(&p.mfr, 60, 5)).unwrap();
    assert_eq!(h.load().generation(), 2);

    let expired = crl(&p.mfr, &[], CrlSpec::expired()).unwrap();
    let future = crl(
        &p.mfr,
        &[],
        CrlSpec {
            this_update: now() + 3600,
            next_update: now() + 7200,
            ..CrlSpec::current()
        },
    )
    .unwrap();
    let foreign = crl(&p.other_root, &[], CrlSpec::current()).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"<html>not found</html>".to_vec(), "unparseable"),
        ("empty", Vec::new(), "unparseable"),
        (
            "impostor key",
            revoking(&p.impostor, 10, 9),
            "bad_signature",
        ),
        ("unknown CA", foreign.to_der().unwrap(), "unknown_issuer"),
        (
            "thisUpdate ahead",
            future.to_der().unwrap(),
            "not_yet_valid",
        ),
        ("past nextUpdate", expired.to_der().unwrap(), "expired"),
        // Issued after the installed one but with a lower number, and
        // issued before it: both older.
        ("lower number", revoking(&p.mfr, 10, 4), "older"),
        ("earlier", revoking(&p.mfr, 600, 6), "older"),
        // The directory's own CRL, re-served after a newer one was fetched.
        (
            "the directory's CRL",
            {
                let d = std::fs::read(h.dir().join("mfr.crl.pem")).unwrap();
                openssl::x509::X509Crl::from_pem(&d)
                    .unwrap()
                    .to_der()
                    .unwrap()
            },
            "older",
        ),
        // Older than the directory's CRL of the root.
        (
            "root, earlier",
            {
                let spec = CrlSpec {
                    this_update: now() - 7200,
                    ..CrlSpec::current()
                };
                crl(&p.root, &[], spec).unwrap().to_der().unwrap()
            },
            "older",
        ),
    ];
    for (what, bytes, reason) in cases {
        let e = install(&h, &bytes).unwrap_err();
        assert_eq!(e.reason(), reason, "{what}: {e}");
        assert_eq!(h.load().generation(), 2, "{what}: the store stays");
        assert_eq!(
            verify(&h, &p.device),
            Err(ChainError::Revoked { depth: 0 }),
            "{what}: the installed CRL stays in use"
        );
    }
}

#[test]
fn fetched_crls_outlive_reloads_until_the_directory_has_a_newer_one() {
    let p = pki();
    let dir = trust_dir("reload");
    let h = TrustStoreHandle::open(&dir, CrlPolicy::Require).unwrap();
    install(&h, &revoking(&p.mfr, 60, 2)).unwrap();
    assert_eq!(h.reload_from_dir().unwrap(), 3);
    assert_eq!(
        verify(&h, &p.device),
        Err(ChainError::Revoked { depth: 0 }),
        "a reload of the unchanged directory keeps the fetched CRL"
    );
    assert_eq!(h.load().fetched_crls().len(), 1);

    // The operator drops in a newer CRL that no longer lists the device.
    let newer = crl(
        &p.mfr,
        &[],
        CrlSpec {
            this_update: now() - 10,
            number: 3,
            ..CrlSpec::current()
        },
    )
    .unwrap();
    std::fs::write(dir.join("mfr.crl.pem"), newer.to_pem().unwrap()).unwrap();
    h.reload_from_dir().unwrap();
    assert!(h.load().fetched_crls().is_empty());
    assert_eq!(verify(&h, &p.device), Ok(()));

    // Removing the CA drops its fetched CRL too.
    install(&h, &revoking(&p.mfr, 5, 4)).unwrap();
    std::fs::remove_file(dir.join("mfr.pem")).unwrap();
    std::fs::remove_file(dir.join("mfr.crl.pem")).unwrap();
    h.reload_from_dir().unwrap();
    assert!(h.load().fetched_crls().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn distribution_points_of_the_trust_directory() {
    let p = pki();
    let h = TrustStoreHandle::open(&trust_dir("cdp"), CrlPolicy::Require).unwrap();
    let root = certs::name_string(p.root.cert.subject_name());
    let mfr = certs::name_string(p.mfr.cert.subject_name());
    let dp = |url: &str| DistributionPoint {
        url: url.into(),
        named_by: mfr.clone(),
        crl_issuer: root.clone(),
    };
    assert_eq!(
        h.load().distribution_points(),
        vec![
            dp("http://crl.example.net/root.crl"),
            dp("ldap://ldap.example.net/cn=Root?certificateRevocationList"),
        ]
    );
}

/// Mutated CRLs (bytes flipped, cut, spliced) never panic, and whatever
/// gets installed verifies with the manufacturer CA's key (a stable
/// stand-in for the `crl_install` fuzz target).
#[test]
fn mutated_crls_are_refused_without_panicking() {
    let p = pki();
    let h = TrustStoreHandle::open(&trust_dir("mutated"), CrlPolicy::Require).unwrap();
    let seed = revoking(&p.mfr, 60, 2);
    let mut rng = testkit::Rng(0x05ee_dc41);
    let mut installed = 0;
    for _ in 0..3000 {
        let mut data = seed.clone();
        match rng.below(3) {
            0 => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(data.len());
                    data[i] ^= 1 << rng.below(8);
                }
            }
            1 => data.truncate(rng.below(data.len())),
            _ => {
                let i = rng.below(data.len());
                let n = rng.below(16);
                let extra = rng.bytes(n);
                data.splice(i..i, extra);
            }
        }
        if let Ok(CrlInstalled::Installed { .. }) = install(&h, &data) {
            installed += 1;
        }
    }
    let key = p.mfr.cert.public_key().unwrap();
    for f in h.load().fetched_crls() {
        assert!(f.crl().verify(&key).unwrap());
    }
    // Flips in the signature value or unsigned framing may still verify
    // (DER leniency); most mutations must not.
    assert!(installed < 100, "{installed} mutated CRLs installed");
}

/// `dev_pki` with a CRL URL base: the manufacturer CA names the root's CRL,
/// the devices the manufacturer's, and the DER CRLs are ready to publish.
#[test]
fn dev_pki_with_crl_urls() {
    let out = std::env::temp_dir().join(format!("certs-fetched-{}-devpki", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut opts = certs::DevPkiOptions::new("PKTC.TEST", "Org", &[[0, 0x10, 0x95, 0, 0, 1]]);
    opts.device_bits = 1024;
    opts.crl_url_base = Some("http://127.0.0.1:8080/crls/".into());
    let dev = certs::dev_pki(&opts, &out).unwrap();
    let h = TrustStoreHandle::open(&dev.device_trust_dir, CrlPolicy::Require).unwrap();
    let urls: Vec<String> = h
        .load()
        .distribution_points()
        .into_iter()
        .map(|d| d.url)
        .collect();
    assert_eq!(urls, ["http://127.0.0.1:8080/crls/mta-root.crl"]);
    let device = std::fs::read(dev.devices[0].join("cert.pem")).unwrap();
    let text = openssl::x509::X509::from_pem(&device)
        .unwrap()
        .to_text()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text)
            .contains("URI:http://127.0.0.1:8080/crls/manufacturer-ca.crl")
    );
    let publish = dev.crl_publish_dir.unwrap();
    for name in ["mta-root.crl", "manufacturer-ca.crl"] {
        let der = std::fs::read(publish.join(name)).unwrap();
        // The same CRL as the trust directory's: installing it changes nothing.
        assert!(matches!(
            install(&h, &der).unwrap(),
            CrlInstalled::Unchanged { .. }
        ));
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// Cost of installing a fetched CRL (parse, issuer signature, a new trust
/// generation) by its size, for docs/benchmarks.md. Not a test of speed:
/// run by hand with
/// `cargo test --release -p certs --test fetched_crl -- --ignored --nocapture measure_install_crl`.
#[test]
#[ignore]
fn measure_install_crl() {
    let p = pki();
    for entries in [1_000u64, 20_000, 100_000] {
        let h = TrustStoreHandle::open(
            &trust_dir(&format!("measure-{entries}")),
            CrlPolicy::Require,
        )
        .unwrap();
        let serials: Vec<_> = (0..entries)
            .map(|i| {
                (
                    openssl::bn::BigNum::from_dec_str(&(1_000_000 + i).to_string()).unwrap(),
                    now() - 60,
                )
            })
            .collect();
        let mut times = Vec::new();
        for number in 2..9u64 {
            let spec = CrlSpec {
                number,
                ..CrlSpec::current()
            };
            let der = certs::pki::crl_of_serials(&p.mfr, &serials, spec)
                .unwrap()
                .to_der()
                .unwrap();
            let started = std::time::Instant::now();
            let r = install(&h, &der).unwrap();
            times.push(started.elapsed());
            assert!(matches!(r, CrlInstalled::Installed { .. }), "{r:?}");
        }
        times.sort();
        println!(
            "install_crl entries={entries} bytes={} median={:?} min={:?} (7 installs)",
            certs::pki::crl_of_serials(&p.mfr, &serials, CrlSpec::current())
                .unwrap()
                .to_der()
                .unwrap()
                .len(),
            times[times.len() / 2],
            times[0]
        );
    }
}
