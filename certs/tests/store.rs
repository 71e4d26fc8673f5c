//! Trust store matrix, cache and reload.

use std::path::PathBuf;
use std::sync::OnceLock;

use certs::{
    CertSpec, ChainError, CrlPolicy, CrlSpec, EntryKind, Issued, LoadError, TrustStore,
    TrustStoreHandle, Validity, crl, device_cert, manufacturer_ca, mta_root,
};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509PurposeId, X509StoreContext};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn mac(n: u8) -> [u8; 6] {
    [0x00, 0x11, 0x22, 0xAA, 0xBB, n]
}

fn small() -> CertSpec {
    CertSpec::new().bits(1024)
}

/// One PKI shared by all tests (key generation is the slow part).
struct Pki {
    root: Issued,
    mfr: Issued,
    good: Issued,
    good_2048: Issued,
    expired: Issued,
    not_yet_valid: Issued,
    revoked: Issued,
    sha1: Issued,
    short_lived: Issued,
    other_mfr: Issued,
    unknown_root_dev: Issued,
    rogue_dev: Issued,
    impostor_dev: Issued,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = mta_root(CertSpec::new().org("Test MTA Root")).unwrap();
        let mfr_spec = CertSpec::new().org("Acme").cn("Acme Manufacturer CA");
        let mfr = manufacturer_ca(&root, mfr_spec.clone()).unwrap();
        let dev = |n: u8, spec: CertSpec| device_cert(&mfr, mac(n), spec.org("Acme")).unwrap();
        let other_root = mta_root(small().cn("Other Root")).unwrap();
        let other_mfr = manufacturer_ca(&other_root, small()).unwrap();
        let rogue_mfr = manufacturer_ca(&root, small().cn("Rogue Manufacturer CA")).unwrap();
        // Same subject name as the trusted manufacturer CA, different key.
        let impostor_mfr = manufacturer_ca(&root, mfr_spec.bits(1024)).unwrap();
        let t = now();
        Pki {
            good: dev(1, small()),
            good_2048: dev(2, CertSpec::new()),
            expired: dev(3, small().validity(Validity::Expired)),
            not_yet_valid: dev(4, small().validity(Validity::NotYetValid)),
            revoked: dev(5, small()),
            sha1: dev(6, small().sha1()),
            short_lived: dev(
                7,
                small().validity(Validity::Range {
                    not_before: t - 100,
                    not_after: t + 1000,
                }),
            ),
            unknown_root_dev: device_cert(&other_mfr, mac(8), small()).unwrap(),
            rogue_dev: device_cert(&rogue_mfr, mac(9), small()).unwrap(),
            impostor_dev: device_cert(&impostor_mfr, mac(10), small()).unwrap(),
            other_mfr,
            root,
            mfr,
        }
    })
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("certs-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Clone, Copy, PartialEq)]
enum MfrCrl {
    Current,
    Expired,
    Missing,
}

/// root.pem (PEM), manufacturer.der (DER), root CRL (PEM), manufacturer CRL (DER).
fn trust_dir(name: &str, mfr_crl: MfrCrl) -> PathBuf {
    let p = pki();
    let d = tmpdir(name);
    std::fs::write(d.join("root.pem"), p.root.cert_pem().unwrap()).unwrap();
    std::fs::write(d.join("manufacturer.der"), p.mfr.cert.to_der().unwrap()).unwrap();
    let root_crl = crl(&p.root, &[], CrlSpec::current()).unwrap();
    std::fs::write(d.join("root.crl.pem"), root_crl.to_pem().unwrap()).unwrap();
    let spec = match mfr_crl {
        MfrCrl::Current => Some(CrlSpec::current()),
        MfrCrl::Expired => Some(CrlSpec::expired()),
        MfrCrl::Missing => None,
    };
    if let Some(spec) = spec {
        let c = crl(&p.mfr, &[(&p.revoked.cert, now() - 3600)], spec).unwrap();
        std::fs::write(d.join("manufacturer.crl"), c.to_der().unwrap()).unwrap();
    }
    d
}

fn store(name: &str, mfr_crl: MfrCrl, policy: CrlPolicy) -> TrustStore {
    TrustStore::load_dir(&trust_dir(name, mfr_crl), policy).unwrap()
}

fn check(s: &TrustStore, leaf: &Issued, presented: &[&Issued]) -> Result<(), ChainError> {
    let presented: Vec<X509> = presented.iter().map(|i| i.cert.clone()).collect();
    s.verify(&leaf.cert, &presented, now()).map(|_| ())
}

#[test]
fn loads_and_classifies_directory() {
    let s = store("classify", MfrCrl::Current, CrlPolicy::Require);
    assert_eq!(s.generation(), 1);
    assert_eq!(s.anchors().len(), 1);
    assert_eq!(s.intermediates().len(), 1);
    assert_eq!(s.crls().len(), 2);
    let kinds: Vec<(String, EntryKind)> = s
        .entries()
        .iter()
        .map(|e| {
            (
                e.path.file_name().unwrap().to_string_lossy().into_owned(),
                e.kind,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("manufacturer.crl".to_owned(), EntryKind::Crl),
            ("manufacturer.der".to_owned(), EntryKind::Intermediate),
            ("root.crl.pem".to_owned(), EntryKind::Crl),
            ("root.pem".to_owned(), EntryKind::Anchor),
        ]
    );
    let mfr = &s.entries()[1];
    assert_eq!(mfr.subject, "C=US, O=Acme, CN=Acme Manufacturer CA");
    assert!(mfr.expires > now() + 19 * 365 * 86_400);
    assert!(s.entries()[0].expires < now() + 31 * 86_400);
}

#[test]
fn good_device_verifies() {
    let p = pki();
    let s = store("good", MfrCrl::Current, CrlPolicy::Require);
    for leaf in [&p.good, &p.good_2048] {
        let v = s.verify(&leaf.cert, &[], now()).expect("leaf only");
        assert_eq!(v.chain.len(), 3);
        assert_eq!(v.chain[0].to_der().unwrap(), leaf.cert.to_der().unwrap());
        assert_eq!(v.chain[2].to_der().unwrap(), p.root.cert.to_der().unwrap());
        assert_eq!(v.manufacturer, "C=US, O=Acme, CN=Acme Manufacturer CA");
        assert_eq!(
            v.leaf_fingerprint,
            openssl::sha::sha256(&leaf.cert.to_der().unwrap())
        );
        check(&s, leaf, &[&p.mfr]).expect("leaf + manufacturer");
    }
}

#[test]
fn unknown_root_and_wrong_manufacturer() {
    let p = pki();
    let s = store("unknown", MfrCrl::Current, CrlPolicy::Require);
    let e = check(&s, &p.unknown_root_dev, &[&p.other_mfr]).unwrap_err();
    assert!(matches!(e, ChainError::UnknownIssuer { .. }), "{e:?}");
    assert_eq!(e.krb_error_code(), 70);
    // Issued by a manufacturer CA the store does not hold.
    let e = check(&s, &p.rogue_dev, &[]).unwrap_err();
    assert_eq!(e, ChainError::UnknownIssuer { depth: 0 });
    // Issued by a CA with the trusted manufacturer's name but another key.
    let e = check(&s, &p.impostor_dev, &[]).unwrap_err();
    assert_eq!(e, ChainError::UnknownIssuer { depth: 0 });
}

#[test]
fn validity_period() {
    let p = pki();
    let s = store("validity", MfrCrl::Current, CrlPolicy::Require);
    let e = check(&s, &p.expired, &[]).unwrap_err();
    assert_eq!(e, ChainError::Expired { depth: 0 });
    assert_eq!(e.krb_error_code(), 71);
    let e = check(&s, &p.not_yet_valid, &[]).unwrap_err();
    assert_eq!(e, ChainError::NotYetValid { depth: 0 });
    assert_eq!(e.krb_error_code(), 71);
    // The same good cert, asked about 30 years from now.
    let e = s
        .verify(&p.good.cert, &[], now() + 30 * 365 * 86_400)
        .unwrap_err();
    assert_eq!(e, ChainError::Expired { depth: 0 });
}

#[test]
fn revocation_policies() {
    let p = pki();
    let s = store("revoked", MfrCrl::Current, CrlPolicy::Require);
    let e = check(&s, &p.revoked, &[]).unwrap_err();
    assert_eq!(e, ChainError::Revoked { depth: 0 });
    assert_eq!(e.krb_error_code(), 72);
    let s = store("revoked-ifpresent", MfrCrl::Current, CrlPolicy::IfPresent);
    assert_eq!(
        check(&s, &p.revoked, &[]).unwrap_err(),
        ChainError::Revoked { depth: 0 }
    );
    let s = store("revoked-off", MfrCrl::Current, CrlPolicy::Off);
    check(&s, &p.revoked, &[]).expect("no CRL checking");

    // No CRL from the manufacturer CA: fail closed under Require only.
    let s = store("crl-missing", MfrCrl::Missing, CrlPolicy::Require);
    let e = check(&s, &p.good, &[]).unwrap_err();
    assert_eq!(e, ChainError::CrlMissing { depth: 0 });
    assert_eq!(e.krb_error_code(), 73);
    let s = store(
        "crl-missing-ifpresent",
        MfrCrl::Missing,
        CrlPolicy::IfPresent,
    );
    check(&s, &p.good, &[]).expect("IfPresent accepts a CA without CRL");
    check(&s, &p.revoked, &[]).expect("and cannot know about the revocation");

    // Expired CRL: an error under Require and IfPresent.
    for (name, policy) in [
        ("crl-expired", CrlPolicy::Require),
        ("crl-expired-ifpresent", CrlPolicy::IfPresent),
    ] {
        let s = store(name, MfrCrl::Expired, policy);
        let e = check(&s, &p.good, &[]).unwrap_err();
        assert_eq!(e, ChainError::CrlExpired { depth: 0 });
        assert_eq!(e.krb_error_code(), 74);
    }
    // A current CRL asked about after its nextUpdate.
    let s = store("crl-later", MfrCrl::Current, CrlPolicy::Require);
    let e = s
        .verify(&p.good.cert, &[], now() + 40 * 86_400)
        .unwrap_err();
    assert!(matches!(e, ChainError::CrlExpired { .. }), "{e:?}");
}

#[test]
fn sha1_device_cert_is_accepted() {
    let p = pki();
    let s = store("sha1", MfrCrl::Current, CrlPolicy::Require);
    check(&s, &p.sha1, &[]).expect("SHA-1 signed RSA-1024 device");

    // Why the store needs its verify callback: at level 1 (the store's, and
    // what a default TLS context applies) OpenSSL 3 alone rates SHA-1
    // below 80 bits and refuses.
    let mut b = X509StoreBuilder::new().unwrap();
    b.add_cert(p.root.cert.clone()).unwrap();
    let mut param = X509VerifyParam::new().unwrap();
    param.set_auth_level(1);
    param.set_purpose(X509PurposeId::ANY).unwrap();
    b.set_param(&param).unwrap();
    let strict = b.build();
    let mut chain = Stack::new().unwrap();
    chain.push(p.mfr.cert.clone()).unwrap();
    let mut ctx = X509StoreContext::new().unwrap();
    let (ok, err) = ctx
        .init(&strict, &p.sha1.cert, &chain, |c| {
            Ok((c.verify_cert()?, c.error().as_raw()))
        })
        .unwrap();
    assert!(!ok);
    assert_eq!(err, 68, "X509_V_ERR_CA_MD_TOO_WEAK");
}

/// Security level 1 (with only SHA-1 signatures let through): a device key
/// under 80 bits of strength and an MD5-signed device are refused.
#[test]
fn weak_device_keys_and_md5_signatures_are_refused() {
    let p = pki();
    let s = store("weak", MfrCrl::Current, CrlPolicy::Off);
    let rsa512 = device_cert(&p.mfr, mac(0x51), CertSpec::new().bits(512).org("Acme")).unwrap();
    let e = check(&s, &rsa512, &[]).unwrap_err();
    assert!(matches!(e, ChainError::Other { depth: 0, .. }), "{e:?}");
    // The same device certificate re-issued with an MD5 signature.
    let mut b = openssl::x509::X509Builder::new().unwrap();
    let good = &p.good.cert;
    b.set_version(2).unwrap();
    b.set_serial_number(good.serial_number()).unwrap();
    b.set_subject_name(good.subject_name()).unwrap();
    b.set_issuer_name(good.issuer_name()).unwrap();
    b.set_pubkey(&p.good.key).unwrap();
    b.set_not_before(good.not_before()).unwrap();
    b.set_not_after(good.not_after()).unwrap();
    b.sign(&p.mfr.key, openssl::hash::MessageDigest::md5())
        .unwrap();
    let md5 = b.build();
    let e = s.verify(&md5, &[], now()).unwrap_err();
    assert!(matches!(e, ChainError::Other { depth: 0, .. }), "{e:?}");
    check(&s, &p.good, &[]).expect("the RSA-1024 SHA-256 device still verifies");
}

/// The DER-only first look at a new leaf: issuer named byte for byte by a
/// directory CA whose key verifies the leaf's signature.
#[test]
fn issuer_signature_checked_from_the_der() {
    let p = pki();
    let handle = certs::store::TrustStoreHandle::open(
        &trust_dir("issuer-sig", MfrCrl::Current),
        CrlPolicy::Off,
    )
    .unwrap();
    let s = handle.load();
    let der = |i: &Issued| i.cert.to_der().unwrap();
    s.check_issuer_signature(&der(&p.good), now()).unwrap();
    s.check_issuer_signature(&der(&p.sha1), now()).unwrap();
    for dev in [&p.unknown_root_dev, &p.impostor_dev] {
        assert_eq!(
            s.check_issuer_signature(&der(dev), now()),
            Err(ChainError::UnknownIssuer { depth: 0 })
        );
    }
    // A tampered leaf: its CA's signature no longer verifies.
    let mut tampered = der(&p.good);
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(
        s.check_issuer_signature(&tampered, now()),
        Err(ChainError::UnknownIssuer { depth: 0 })
    );
    assert!(
        s.check_issuer_signature(b"not a certificate", now())
            .is_err()
    );
    // Once the chain verified (cached), the leaf needs no second look: a
    // tampered copy still gets one.
    s.verify(&p.good.cert, &[], now()).unwrap();
    s.check_issuer_signature(&der(&p.good), now()).unwrap();
    assert!(s.check_issuer_signature(&tampered, now()).is_err());
    // A store that takes the peer's intermediates cannot tell: Ok.
    let from_peer = store("issuer-sig-peer", MfrCrl::Current, CrlPolicy::Off);
    from_peer
        .check_issuer_signature(&der(&p.unknown_root_dev), now())
        .unwrap();
}

#[test]
fn bad_signature() {
    let p = pki();
    let s = store("badsig", MfrCrl::Current, CrlPolicy::Require);
    let mut der = p.good.cert.to_der().unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01; // inside the signature BIT STRING
    let tampered = X509::from_der(&der).unwrap();
    let e = s.verify(&tampered, &[], now()).unwrap_err();
    assert_eq!(e, ChainError::BadSignature { depth: 0 });
    assert_eq!(e.krb_error_code(), 71);
}

#[test]
fn non_ca_intermediate_is_refused() {
    let p = pki();
    let s = store("nonca", MfrCrl::Current, CrlPolicy::Off);
    // A device certificate used as an issuer.
    let sub = device_cert(&p.good, mac(0xEE), small()).unwrap();
    let e = check(&s, &sub, &[&p.good, &p.mfr]).unwrap_err();
    assert_eq!(e, ChainError::NotCa { depth: 1 });
    assert_eq!(e.krb_error_code(), 71);
}

/// The server-side store (the handle) is the manufacturer allowlist: a
/// manufacturer CA the device presents does not extend the chain unless the
/// directory holds it; a plain store (a client's) uses presented CAs.
#[test]
fn handle_builds_chains_from_the_directory_only() {
    let p = pki();
    let d = tmpdir("allowlist");
    std::fs::write(d.join("root.pem"), p.root.cert_pem().unwrap()).unwrap();
    let handle = TrustStoreHandle::open(&d, CrlPolicy::Off).unwrap();
    assert_eq!(
        check(&handle.load(), &p.good, &[&p.mfr]).unwrap_err(),
        ChainError::UnknownIssuer { depth: 0 }
    );
    let client_side = TrustStore::load_dir(&d, CrlPolicy::Off).unwrap();
    check(&client_side, &p.good, &[&p.mfr]).expect("presented intermediate used");

    std::fs::write(d.join("mfr.pem"), p.mfr.cert_pem().unwrap()).unwrap();
    handle.reload_from_dir().unwrap();
    check(&handle.load(), &p.good, &[&p.mfr]).expect("listed manufacturer");
    check(&handle.load(), &p.good, &[]).expect("leaf alone");
}

#[test]
fn bad_directory_contents() {
    let p = pki();
    let d = trust_dir("bad-leaf", MfrCrl::Current);
    std::fs::write(d.join("device.pem"), p.good.cert_pem().unwrap()).unwrap();
    match TrustStore::load_dir(&d, CrlPolicy::Require) {
        Err(LoadError::NotCa { path, .. }) => assert!(path.ends_with("device.pem")),
        other => panic!("{other:?}"),
    }
    let d = trust_dir("bad-key", MfrCrl::Current);
    std::fs::write(d.join("root.key"), p.root.key_pem().unwrap()).unwrap();
    match TrustStore::load_dir(&d, CrlPolicy::Require) {
        Err(e @ LoadError::Unrecognized { .. }) => assert!(e.to_string().contains("root.key")),
        other => panic!("{other:?}"),
    }
    let d = trust_dir("bad-crl", MfrCrl::Current);
    let foreign = crl(&p.other_mfr, &[], CrlSpec::current()).unwrap();
    std::fs::write(d.join("foreign.crl.pem"), foreign.to_pem().unwrap()).unwrap();
    assert!(matches!(
        TrustStore::load_dir(&d, CrlPolicy::Require),
        Err(LoadError::CrlIssuerUnknown { .. })
    ));
    let d = tmpdir("no-anchor");
    std::fs::write(d.join("mfr.pem"), p.mfr.cert_pem().unwrap()).unwrap();
    assert!(matches!(
        TrustStore::load_dir(&d, CrlPolicy::Require),
        Err(LoadError::NoAnchor { .. })
    ));
    // Hidden files and subdirectories are ignored.
    let d = trust_dir("hidden", MfrCrl::Current);
    std::fs::write(d.join(".keep"), b"x").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    TrustStore::load_dir(&d, CrlPolicy::Require).unwrap();
}

#[test]
fn cache_hits_and_still_checks_time() {
    let p = pki();
    let s = store("cache", MfrCrl::Current, CrlPolicy::Require);
    let t = now();
    s.verify(&p.short_lived.cert, &[], t).unwrap();
    assert_eq!((s.cache_len(), s.cache_hits()), (1, 0));
    s.verify(&p.short_lived.cert, &[], t + 10).unwrap();
    assert_eq!((s.cache_len(), s.cache_hits()), (1, 1));
    // Presenting a different chain is a different cache entry.
    s.verify(&p.short_lived.cert, std::slice::from_ref(&p.mfr.cert), t)
        .unwrap();
    assert_eq!((s.cache_len(), s.cache_hits()), (2, 1));
    // After the leaf's notAfter the cached success must not be reused.
    let e = s.verify(&p.short_lived.cert, &[], t + 2000).unwrap_err();
    assert_eq!(e, ChainError::Expired { depth: 0 });
    assert_eq!(s.cache_hits(), 1);
    // Failures are not cached.
    let _ = check(&s, &p.revoked, &[]);
    assert_eq!(s.cache_len(), 2);
}

#[test]
fn reload_swaps_atomically() {
    let p = pki();
    let d = tmpdir("reload");
    std::fs::write(d.join("root.pem"), p.root.cert_pem().unwrap()).unwrap();
    let root_crl = crl(&p.root, &[], CrlSpec::current()).unwrap();
    std::fs::write(d.join("root.crl.pem"), root_crl.to_pem().unwrap()).unwrap();
    let handle = TrustStoreHandle::open(&d, CrlPolicy::Require).unwrap();
    let old = handle.load();
    assert_eq!(old.generation(), 1);
    assert_eq!(
        check(&old, &p.good, &[]).unwrap_err(),
        ChainError::UnknownIssuer { depth: 0 }
    );

    std::fs::write(d.join("manufacturer.pem"), p.mfr.cert_pem().unwrap()).unwrap();
    let mfr_crl = crl(&p.mfr, &[], CrlSpec::current()).unwrap();
    std::fs::write(d.join("manufacturer.crl.pem"), mfr_crl.to_pem().unwrap()).unwrap();
    assert_eq!(handle.reload_from_dir().unwrap(), 2);
    let new = handle.load();
    assert_eq!(new.generation(), 2);
    check(&new, &p.good, &[]).expect("known after reload");
    // A request that took the store before the reload keeps its answer.
    assert!(check(&old, &p.good, &[]).is_err());

    std::fs::write(
        d.join("zz-corrupt.pem"),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    match handle.reload_from_dir() {
        Err(e @ LoadError::Unrecognized { .. }) => {
            assert!(e.to_string().contains("zz-corrupt.pem"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(handle.load().generation(), 2);
    check(&handle.load(), &p.good, &[]).expect("old store still serving");
    std::fs::remove_file(d.join("zz-corrupt.pem")).unwrap();
    assert_eq!(handle.reload_from_dir().unwrap(), 3);
}

/// The store handed to the TLS endpoint completes the chain from its own
/// intermediates and applies the CRLs.
#[test]
fn x509_store_for_tls() {
    let p = pki();
    let s = store("tls", MfrCrl::Current, CrlPolicy::Require);
    let tls_store = s.tls_store().unwrap();
    let verify = |leaf: &Issued| -> (bool, i32) {
        let mut ctx = X509StoreContext::new().unwrap();
        let empty = Stack::new().unwrap();
        ctx.init(&tls_store, &leaf.cert, &empty, |c| {
            Ok((c.verify_cert()?, c.error().as_raw()))
        })
        .unwrap()
    };
    assert_eq!(verify(&p.good), (true, 0));
    assert_eq!(verify(&p.revoked), (false, 23), "X509_V_ERR_CERT_REVOKED");
    assert!(!verify(&p.expired).0);
    assert!(!verify(&p.rogue_dev).0);
}

/// The file watch reloads on an added, removed or broken file, reports a
/// broken directory once, and leaves the store alone while nothing changes.
#[test]
fn reload_if_changed_follows_the_directory() {
    let p = pki();
    let d = tmpdir("watch");
    std::fs::write(d.join("root.pem"), p.root.cert_pem().unwrap()).unwrap();
    let root_crl = crl(&p.root, &[], CrlSpec::current()).unwrap();
    std::fs::write(d.join("root.crl.pem"), root_crl.to_pem().unwrap()).unwrap();
    let handle = TrustStoreHandle::open(&d, CrlPolicy::Require).unwrap();
    assert_eq!(handle.reload_if_changed().unwrap(), None, "nothing changed");

    std::fs::write(d.join("manufacturer.pem"), p.mfr.cert_pem().unwrap()).unwrap();
    let mfr_crl = crl(&p.mfr, &[], CrlSpec::current()).unwrap();
    std::fs::write(d.join("manufacturer.crl.pem"), mfr_crl.to_pem().unwrap()).unwrap();
    assert_eq!(handle.reload_if_changed().unwrap(), Some(2));
    check(&handle.load(), &p.good, &[]).expect("new manufacturer trusted");
    assert_eq!(handle.reload_if_changed().unwrap(), None);

    std::fs::write(d.join("zz-broken.pem"), b"not a certificate").unwrap();
    assert!(handle.reload_if_changed().is_err(), "broken file reported");
    assert_eq!(handle.reload_if_changed().unwrap(), None, "reported once");
    assert_eq!(handle.load().generation(), 2, "old store kept");

    std::fs::remove_file(d.join("zz-broken.pem")).unwrap();
    std::fs::remove_file(d.join("manufacturer.pem")).unwrap();
    std::fs::remove_file(d.join("manufacturer.crl.pem")).unwrap();
    assert_eq!(handle.reload_if_changed().unwrap(), Some(3));
    assert_eq!(
        check(&handle.load(), &p.good, &[]).unwrap_err(),
        ChainError::UnknownIssuer { depth: 0 }
    );
}
