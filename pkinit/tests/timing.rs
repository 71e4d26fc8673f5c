//! Where a PKINIT request's time goes, in process (release build):
//! `cargo test -p pkinit --release --test timing -- --ignored --nocapture --test-threads=1`
//! (one test at a time, or the two disturb each other).
//! Prints only; never asserts on time.

mod common;

use std::time::Instant;

use krb::crypto::{EncType, Key};
use krb::msg::time;
use openssl::hash::MessageDigest;
use openssl::symm::Cipher;
use openssl::x509::X509;
use pkinit::client;
use pkinit::cms::CertCache;
use pkinit::server::{self, ReplyPolicy, RequestContext};

/// Milliseconds per call of `f`, over `n` calls.
fn ms_per(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e3 / n as f64
}

#[test]
#[ignore = "timing print only"]
fn timing() {
    let l = common::lab();
    let (kdc, dev) = (&l.kdc, &l.device);
    let trust = &l.device_trust;
    let cache = CertCache::new(64);
    let body = b"\x30\x03\x02\x01\x07";
    let policy = ReplyPolicy {
        packetcable_cipher: Cipher::des_ede3_cbc(),
        packetcable_digest: MessageDigest::sha1(),
    };
    let n = 300;
    for (name, pa) in [
        (
            "packetcable",
            client::packetcable_padata(dev, body, 1, time::now(), None)
                .unwrap()
                .remove(0),
        ),
        (
            "rfc4556",
            client::rfc4556_padata(dev, body, 1, time::now(), None, None, None).unwrap(),
        ),
    ] {
        let ctx = RequestContext {
            req_body: body,
            now: time::now().0,
            skew: 300,
            dh_min_bits: 2048,
            cert_cache: Some(&cache),
        };
        let v = server::verify_request(pa.r#type, &pa.value, &ctx, trust).unwrap();
        let verify = ms_per(n, || {
            server::verify_request(pa.r#type, &pa.value, &ctx, trust).unwrap();
        });
        // A device-cache miss: the device certificate is parsed and its
        // chain checked (intermediates still cached; the trust store's own
        // result cache answers the chain check).
        let no_devices = CertCache::new(64).with_device_capacity(0);
        let uncached = RequestContext {
            cert_cache: Some(&no_devices),
            ..ctx
        };
        let verify_miss = ms_per(n, || {
            server::verify_request(pa.r#type, &pa.value, &uncached, trust).unwrap();
        });
        let key = Key::random(EncType::Aes128CtsHmacSha196);
        let reply = ms_per(n, || {
            server::rsa_reply(&v, &key, b"as-req", kdc, &policy).unwrap();
        });
        let signed = pkinit::cms::verify_signed(
            &pkinit::request::parse(pa.r#type, &pa.value)
                .unwrap()
                .content_info,
        )
        .unwrap();
        let parse = ms_per(n, || {
            let _ = X509::from_der(&signed.signer.to_der().unwrap()).unwrap();
        });
        let md = if name == "packetcable" {
            MessageDigest::sha1()
        } else {
            MessageDigest::sha256()
        };
        let sign = ms_per(n, || {
            let _ = kdc
                .sign(
                    md,
                    pkinit::asn1::oid::RKEY_DATA,
                    b"0123456789abcdef0123456789abcdef",
                    time::now().0,
                )
                .unwrap();
        });
        // The one private-key operation alone, for reference.
        let digest = [7u8; 32];
        let rsa = ms_per(n, || {
            let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&kdc.key).unwrap();
            ctx.sign_init().unwrap();
            ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1).unwrap();
            ctx.set_signature_md(openssl::md::Md::sha256()).unwrap();
            let mut sig = Vec::new();
            ctx.sign_to_vec(&digest, &mut sig).unwrap();
        });
        let rid = pkinit::reply::issuer_and_serial(&dev.cert.to_der().unwrap()).unwrap();
        let dev_key = dev.cert.public_key().unwrap();
        let cipher = if name == "packetcable" {
            Cipher::des_ede3_cbc()
        } else {
            Cipher::aes_256_cbc()
        };
        let env = ms_per(n, || {
            let _ = pkinit::reply::enveloped_data(
                pkinit::asn1::oid::SIGNED_DATA,
                &[0u8; 3300],
                &dev_key,
                &rid,
                cipher,
            )
            .unwrap();
        });
        println!(
            "{name}: verify_request {verify:.3} ms (device cache miss {verify_miss:.3}, device cert parse {parse:.3}), rsa_reply {reply:.3} ms (SignedData {sign:.3} of which RSA-2048 signature {rsa:.3}, EnvelopedData of 3.3 KB {env:.3})"
        );
    }
}

#[test]
#[ignore = "timing print only"]
fn dh_timing() {
    use pkinit::dh::{ClientKey, Group, Kdf, ServerKey};
    let l = common::lab();
    let body = b"\x30\x03\x02\x01\x07";
    let cname =
        krb::principal::Principal::parse("mta/mta-001095000001.pktc.test@PKTC.TEST", None).unwrap();
    let sname = krb::principal::Principal::krbtgt("PKTC.TEST");
    let names = server::KdfNames {
        client: &cname,
        server: &sname,
    };
    let cache = CertCache::new(64);
    let n = 200;
    for group in [Group::Modp2048, Group::P256] {
        let ck = ClientKey::generate(group).unwrap();
        let pa = client::rfc4556_padata(
            &l.device,
            body,
            1,
            time::now(),
            Some(ck.spki()),
            Some(vec![Kdf::Sha256.algorithm_id()]),
            // A clientDHNonce lets the KDC reuse its key (the 60 s runs).
            Some(vec![7; 32]),
        )
        .unwrap();
        let ctx = RequestContext {
            req_body: body,
            now: time::now().0,
            skew: 300,
            dh_min_bits: 2048,
            cert_cache: Some(&cache),
        };
        let v = server::verify_request(pa.r#type, &pa.value, &ctx, &l.device_trust).unwrap();
        let server::KeyDelivery::Dh(dh) = &v.delivery else {
            panic!("expected DH")
        };
        let mut line = format!("{group:?}:");
        for reuse in [0, 60] {
            let keys = server::DhKeys::new(reuse);
            let ms = ms_per(n, || {
                server::dh_reply(
                    &v,
                    dh,
                    EncType::Aes256CtsHmacSha196,
                    b"as-req",
                    &names,
                    &l.kdc,
                    &keys,
                )
                .unwrap();
            });
            line += &format!(" dh_reply (key reuse {reuse} s) {ms:.3} ms,");
        }
        let keygen = ms_per(n, || {
            ServerKey::generate(group).unwrap();
        });
        let sk = ServerKey::generate(group).unwrap();
        let agree = ms_per(n, || {
            sk.agree(&dh.client_public).unwrap();
        });
        println!("{line} KDC key generation {keygen:.3} ms, agreement {agree:.3} ms");
    }
}
