//! The verified-device cache: a device's second request skips the chain
//! check, but never across a trust-store reload, outside the cached
//! result's validity window, or without its own signature checking out.

mod common;

use certs::pki::{self, CrlSpec, Issued};
use certs::store::{CrlPolicy, TrustStore, TrustStoreHandle};
use krb::msg::consts::err;
use krb::msg::time;
use openssl::pkey::PKey;
use openssl::x509::X509;
use pkinit::client;
use pkinit::cms::CertCache;
use pkinit::server::{self, PkinitError, RequestContext, VerifiedRequest};

const BODY: &[u8] = b"\x30\x03\x02\x01\x07";

fn ctx(cache: &CertCache, now: i64) -> RequestContext<'_> {
    RequestContext {
        req_body: BODY,
        now,
        skew: i64::MAX / 2,
        dh_min_bits: 2048,
        cert_cache: Some(cache),
    }
}

fn pa(l: &common::Lab) -> Vec<u8> {
    client::packetcable_padata(&l.device, BODY, 1, time::now(), None)
        .unwrap()
        .remove(0)
        .value
        .to_vec()
}

fn verify(
    pa: &[u8],
    cache: &CertCache,
    now: i64,
    trust: &TrustStore,
) -> Result<VerifiedRequest, PkinitError> {
    server::verify_request(14, pa, &ctx(cache, now), trust)
}

#[test]
fn second_request_skips_the_chain_check() {
    let l = common::lab();
    let cache = CertCache::new(16);
    let now = time::now().0;
    let first = verify(&pa(&l), &cache, now, &l.device_trust).unwrap();
    assert_eq!(cache.device_len(), 1);
    let chain_checks = l.device_trust.cache_hits() + l.device_trust.cache_len() as u64;
    let second = verify(&pa(&l), &cache, now, &l.device_trust).unwrap();
    // The same entry, and the trust store was not asked again.
    assert!(std::sync::Arc::ptr_eq(&first.device, &second.device));
    assert_eq!(
        l.device_trust.cache_hits() + l.device_trust.cache_len() as u64,
        chain_checks
    );
    assert_eq!(second.mac, [0x00, 0x10, 0x95, 0x00, 0x00, 0x01]);
    let ski = l.device.cert.subject_key_id().unwrap();
    assert_eq!(&second.public_key_hash()[..], ski.as_slice());
}

#[test]
fn signature_is_checked_on_a_cache_hit() {
    let l = common::lab();
    let cache = CertCache::new(16);
    let now = time::now().0;
    verify(&pa(&l), &cache, now, &l.device_trust).unwrap();
    // Same certificate, signature damaged (its last byte ends the padata).
    let mut forged = pa(&l);
    *forged.last_mut().unwrap() ^= 1;
    let e = verify(&forged, &cache, now, &l.device_trust).err().unwrap();
    assert_eq!(e.krb_error_code(), err::KDC_ERR_INVALID_SIG, "{e}");
}

#[test]
fn cached_result_is_not_used_outside_its_validity_window() {
    let l = common::lab();
    let cache = CertCache::new(16);
    let now = time::now().0;
    verify(&pa(&l), &cache, now, &l.device_trust).unwrap();
    // Long after the CRLs' nextUpdate and the certificates' notAfter.
    let e = verify(&pa(&l), &cache, now + 100 * 365 * 86400, &l.device_trust)
        .err()
        .unwrap();
    assert!(matches!(e, PkinitError::Chain(_)), "{e}");
}

#[test]
fn reload_with_a_revocation_drops_the_cached_result() {
    let l = common::lab();
    let trust_dir = l.device_trust.dir().to_owned();
    let handle = TrustStoreHandle::open(&trust_dir, CrlPolicy::Require).unwrap();
    let cache = CertCache::new(16);
    let now = time::now().0;
    let pa = pa(&l);
    verify(&pa, &cache, now, &handle.load()).unwrap();
    let gen1 = handle.load();
    assert_eq!(cache.device_len(), 1);

    // The manufacturer CA revokes the device; the KDC reloads its trust.
    let pki_dir = trust_dir.parent().unwrap().parent().unwrap();
    let mfr = Issued {
        cert: X509::from_pem(&std::fs::read(trust_dir.join("manufacturer-ca.pem")).unwrap())
            .unwrap(),
        key: PKey::private_key_from_pem(
            &std::fs::read(pki_dir.join("ca-keys/manufacturer-ca.key")).unwrap(),
        )
        .unwrap(),
    };
    let crl = pki::crl(&mfr, &[(&l.device.cert, now - 60)], CrlSpec::current()).unwrap();
    std::fs::write(
        trust_dir.join("manufacturer-ca.crl.pem"),
        crl.to_pem().unwrap(),
    )
    .unwrap();
    handle.reload_from_dir().unwrap();

    let e = verify(&pa, &cache, now, &handle.load()).err().unwrap();
    assert_eq!(e.krb_error_code(), err::KDC_ERR_REVOKED_CERTIFICATE, "{e}");
    assert_eq!(cache.device_len(), 0);
    // A request still holding the old generation is answered as that
    // generation would, and does not bring its result back.
    verify(&pa, &cache, now, &gen1).unwrap();
    assert_eq!(cache.device_len(), 0);
    let e = verify(&pa, &cache, now, &handle.load()).err().unwrap();
    assert_eq!(e.krb_error_code(), err::KDC_ERR_REVOKED_CERTIFICATE, "{e}");
}

#[test]
fn stores_of_other_handles_do_not_share_entries() {
    let l = common::lab();
    let cache = CertCache::new(16);
    let now = time::now().0;
    verify(&pa(&l), &cache, now, &l.device_trust).unwrap();
    // Same directory and generation number, loaded separately.
    let other = TrustStore::load_dir(l.device_trust.dir(), CrlPolicy::Require).unwrap();
    assert_eq!(other.generation(), l.device_trust.generation());
    verify(&pa(&l), &cache, now, &other).unwrap();
    assert_eq!(
        other.cache_len(),
        1,
        "the chain was checked by the other store"
    );
}

#[test]
fn device_entries_are_bounded() {
    let l = common::lab();
    let now = time::now().0;
    let off = CertCache::new(16).with_device_capacity(0);
    verify(&pa(&l), &off, now, &l.device_trust).unwrap();
    assert_eq!(off.device_len(), 0);

    // Two devices of the same manufacturer, room for one.
    let pki_dir = l.device_trust.dir().parent().unwrap().parent().unwrap();
    let trust_dir = l.device_trust.dir();
    let mfr = Issued {
        cert: X509::from_pem(&std::fs::read(trust_dir.join("manufacturer-ca.pem")).unwrap())
            .unwrap(),
        key: PKey::private_key_from_pem(
            &std::fs::read(pki_dir.join("ca-keys/manufacturer-ca.key")).unwrap(),
        )
        .unwrap(),
    };
    let second = pki::device_cert(
        &mfr,
        [0x00, 0x10, 0x95, 0x00, 0x00, 0x02],
        pki::CertSpec::new().bits(1024),
    )
    .unwrap();
    let dev2 = client::DeviceIdentity {
        cert: second.cert,
        key: second.key,
        chain: vec![mfr.cert.clone()],
    };
    let pa2 = client::packetcable_padata(&dev2, BODY, 1, time::now(), None)
        .unwrap()
        .remove(0)
        .value
        .to_vec();
    let one = CertCache::new(16).with_device_capacity(1);
    verify(&pa(&l), &one, now, &l.device_trust).unwrap();
    let v = verify(&pa2, &one, now, &l.device_trust).unwrap();
    assert_eq!(v.mac, [0x00, 0x10, 0x95, 0x00, 0x00, 0x02]);
    assert_eq!(one.device_len(), 1);
    verify(&pa(&l), &one, now, &l.device_trust).unwrap();
    assert_eq!(one.device_len(), 1);
}
