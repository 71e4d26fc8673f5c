//! Hostile PKINIT requests are refused before the expensive work. Someone
//! with self-made certificates can pick the key the KDC checks a request's
//! signature with: a 16384-bit modulus, an exponent as long as the modulus
//! or DSA with a huge p make one check cost as much as many normal
//! requests. The KDC checks the signer's key (type, size, exponent, curve),
//! the digest, keyUsage and, for a certificate not in the device cache, the
//! chain against its own CAs before the signature.
//!
//! Each refusal is asserted (code and audit reason) and shown to be cheap:
//! the KDC's CPU per refused request, from /proc, against a normal PKINIT
//! request's measured in the same test (printed; run with --nocapture).
//!
//! Also here: a copy of a device's request from a wrong address must not
//! leave its refusal in the lookaside cache for the device.

mod pklab;

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use certs::pki::{CertSpec, mta_root};
use krb::msg::consts::err;
use krb::msg::time;
use openssl::bn::{BigNum, MsbOption};
use openssl::dsa::Dsa;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::KeyUsage;
use pkinit::client::Profile;
use pklab::{Device, Lab, code, next_pkinit_audit};
use testkit::DevKdc;

/// Requests per measured kind: enough clock ticks (10 ms) for a normal
/// request's cost to stand well above the resolution.
const N: u32 = 300;

fn random_odd(bits: i32) -> BigNum {
    let mut n = BigNum::new().unwrap();
    n.rand(bits, MsbOption::ONE, true).unwrap();
    n
}

/// The hostile device certificates, made before the KDC starts. Keys we
/// do not hold (a modulus that is just a random odd number) go with the
/// realm's device key in key.pem: the requests carry forged signatures.
fn prepare(realm: &Path, _cfg: &mut String) {
    let mfr = pklab::manufacturer(realm);
    let own = mta_root(CertSpec::new().org("Self Made").cn("Self Made CA")).unwrap();
    let self_made = (&own.cert, &*own.key);
    let device_key = PKey::private_key_from_pem(
        &std::fs::read(realm.join("pki/devices/001095000001/key.pem")).unwrap(),
    )
    .unwrap();
    let mac = |last: u8| [0x00, 0x10, 0x95, 0x00, 0x03, last];

    let rsa16k = PKey::from_rsa(
        Rsa::from_public_components(random_odd(16384), BigNum::from_u32(65537).unwrap()).unwrap(),
    )
    .unwrap();
    let cert = pklab::device_cert(self_made, mac(1), &rsa16k, None);
    pklab::write_variant(realm, "rsa-16384", &cert, &device_key, &[&own.cert]);

    let long_exponent =
        PKey::from_rsa(Rsa::from_public_components(random_odd(4096), random_odd(4095)).unwrap())
            .unwrap();
    let cert = pklab::device_cert(self_made, mac(2), &long_exponent, None);
    pklab::write_variant(realm, "rsa-long-exponent", &cert, &device_key, &[&own.cert]);

    let dsa = PKey::from_dsa(
        Dsa::from_public_components(
            random_odd(8192),
            random_odd(256),
            random_odd(8190),
            random_odd(8190),
        )
        .unwrap(),
    )
    .unwrap();
    let cert = pklab::device_cert(self_made, mac(3), &dsa, None);
    pklab::write_variant(realm, "dsa-8192", &cert, &device_key, &[&own.cert]);

    let k1 = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::SECP256K1).unwrap()).unwrap(),
    )
    .unwrap();
    let cert = pklab::device_cert(self_made, mac(4), &k1, None);
    pklab::write_variant(realm, "ec-secp256k1", &cert, &k1, &[&own.cert]);

    let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut ku = KeyUsage::new();
    ku.critical().key_encipherment();
    let cert = pklab::device_cert((&mfr.cert, &mfr.key), mac(5), &rsa, Some(ku));
    pklab::write_variant(realm, "no-digital-signature", &cert, &rsa, &[&mfr.cert]);

    let cert = pklab::device_cert(self_made, mac(6), &rsa, None);
    pklab::write_variant(realm, "self-made", &cert, &rsa, &[&own.cert]);

    // Issued in the real manufacturer CA's name with another key.
    let cert = pklab::device_cert((&mfr.cert, &own.key), mac(7), &rsa, None);
    pklab::write_variant(realm, "forged-issuer", &cert, &rsa, &[&mfr.cert]);
}

struct Case {
    name: &'static str,
    device: &'static str,
    profile: Profile,
    code: i32,
    reason: &'static str,
}

fn forged(bytes: usize) -> Profile {
    Profile {
        forged_signature: Some(vec![0x5c; bytes]),
        ..Profile::default()
    }
}

/// `n` requests from `dev` (fresh nonces from `first`), then the KDC's CPU
/// per request while it answers them; checks each reply with `check`.
fn kdc_cpu_per_request(
    lab: &Lab,
    dev: &Device,
    profile: &Profile,
    first: u32,
    check: impl Fn(&[u8]),
) -> f64 {
    let requests: Vec<Vec<u8>> = (first..first + N)
        .map(|nonce| lab.rfc4556(dev, nonce, profile, None, |_| {}).bytes)
        .collect();
    let before = lab.kdc.cpu_ms();
    for r in &requests {
        check(&lab.kdc.tcp(r));
    }
    (lab.kdc.cpu_ms() - before) / f64::from(N)
}

#[test]
fn hostile_requests_are_refused_before_the_expensive_work() {
    let lab = Lab::new(DevKdc::start_prepared(Path::new(pklab::KDC), prepare));
    let normal_dev = lab.device(0);
    // Warm up (device cache, parsed CA, lazily built state), then measure
    // normal RSA-mode requests that get an AS-REP.
    for nonce in 1..=5 {
        let sent = lab.rfc4556(&normal_dev, nonce, &Profile::default(), None, |_| {});
        assert_eq!(code(&lab.kdc.tcp(&sent.bytes)), 0, "{}", lab.kdc.log());
    }
    let normal = kdc_cpu_per_request(&lab, &normal_dev, &Profile::default(), 100, |r| {
        assert_eq!(r.first(), Some(&0x6b), "a normal request was refused");
    });
    println!("normal PKINIT request (RSA mode, SHA-256): KDC CPU {normal:.3} ms per request");

    let cases = [
        Case {
            name: "RSA key of 16384 bits",
            device: "rsa-16384",
            profile: forged(2048),
            code: err::KDC_ERR_CLIENT_NOT_TRUSTED,
            reason: "pkinit_key_not_accepted",
        },
        Case {
            name: "RSA public exponent of 4095 bits",
            device: "rsa-long-exponent",
            profile: forged(512),
            code: err::KDC_ERR_CLIENT_NOT_TRUSTED,
            reason: "pkinit_key_not_accepted",
        },
        Case {
            name: "DSA key with an 8192-bit p",
            device: "dsa-8192",
            profile: forged(1024),
            code: err::KDC_ERR_CLIENT_NOT_TRUSTED,
            reason: "pkinit_key_not_accepted",
        },
        Case {
            name: "EC key on secp256k1 (not a P-curve)",
            device: "ec-secp256k1",
            profile: Profile {
                signature: pkinit::client::SignatureAlg::Ecdsa,
                ..forged(72)
            },
            code: err::KDC_ERR_CLIENT_NOT_TRUSTED,
            reason: "pkinit_key_not_accepted",
        },
        Case {
            name: "MD5 digest",
            device: "0",
            profile: Profile {
                digest: MessageDigest::md5(),
                ..Profile::default()
            },
            code: pkinit::server::KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED,
            reason: "pkinit_digest_not_accepted",
        },
        Case {
            name: "keyUsage without digitalSignature",
            device: "no-digital-signature",
            profile: Profile::default(),
            code: pkinit::server::KDC_ERR_INCONSISTENT_KEY_PURPOSE,
            reason: "pkinit_key_usage",
        },
        // The chain comes before the signature: a wrong signature from a
        // self-made certificate is refused for its issuer (before: 64).
        Case {
            name: "self-made certificate, wrong signature",
            device: "self-made",
            profile: forged(256),
            code: err::KDC_ERR_CANT_VERIFY_CERTIFICATE,
            reason: "cert_unknown_issuer",
        },
        Case {
            name: "certificate forged in the manufacturer CA's name",
            device: "forged-issuer",
            profile: forged(256),
            code: err::KDC_ERR_CANT_VERIFY_CERTIFICATE,
            reason: "cert_unknown_issuer",
        },
    ];
    let mut report = vec![format!("normal request: {normal:.3} ms")];
    for (i, case) in cases.iter().enumerate() {
        let dev = match case.device {
            "0" => lab.device(0),
            v => lab.variant(v),
        };
        let seen = lab.kdc.audit_lines().len();
        let first = 10_000 * (i as u32 + 1);
        let probe = lab.rfc4556(&dev, first - 1, &case.profile, None, |_| {});
        let reply = lab.kdc.tcp(&probe.bytes);
        let audit = next_pkinit_audit(&lab.kdc, seen);
        assert_eq!(code(&reply), case.code, "{}: {audit}", case.name);
        assert!(
            audit.contains(&format!("reason=\"{}\"", case.reason)),
            "{}: {audit}",
            case.name
        );
        let refused = kdc_cpu_per_request(&lab, &dev, &case.profile, first, |r| {
            assert_eq!(code(r), case.code, "{}", case.name);
        });
        println!(
            "{:<50} KRB-ERROR {} {:<26} KDC CPU {refused:.3} ms per request (normal {normal:.3} ms)",
            case.name, case.code, case.reason
        );
        report.push(format!("{}: {refused:.3} ms", case.name));
        assert!(
            refused < normal,
            "{} costs the KDC {refused:.3} ms per refused request, a normal request {normal:.3} ms",
            case.name
        );
    }
    println!("{}", report.join("; "));
}

/// A copy of a device's request sent from an address that is not the
/// device's is refused with KRB_AP_ERR_BADADDR; the device's own request,
/// the same bytes from its address, is still served (the lookaside cache
/// keys on the source address too).
#[test]
fn a_copy_from_a_wrong_address_does_not_poison_the_lookaside_cache() {
    let lab = Lab::new(DevKdc::start(Path::new(pklab::KDC)));
    let dev = lab.device(0);
    assert_eq!(
        lab.kdc.manifest["devices"][0]["mac"].as_str(),
        Some("00:10:95:00:00:01"),
        "device 1 is bound to 127.0.0.1 only in the dev realm"
    );
    let request = lab.request(&dev, &lab.service, 77, |body| {
        pkinit::client::packetcable_padata(&dev.identity, body, 77, time::now(), None).unwrap()
    });
    let elsewhere = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    elsewhere
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    for attempt in 0..2 {
        elsewhere.send_to(&request, lab.kdc.addr).unwrap();
        let (n, _) = elsewhere.recv_from(&mut buf).expect("a reply to 127.0.0.2");
        assert_eq!(
            code(&buf[..n]),
            err::KRB_AP_ERR_BADADDR,
            "attempt {attempt} from 127.0.0.2\n{}",
            lab.kdc.log()
        );
    }
    let reply = lab.kdc.udp(&request);
    assert_eq!(
        reply.first(),
        Some(&0x6b),
        "the device's own request got KRB-ERROR {}\n{}",
        code(&reply),
        lab.kdc.log()
    );
    // Its retransmit is answered from the cache with the same AS-REP.
    assert_eq!(lab.kdc.udp(&request), reply);
}
