//! Client and server sides of PKINIT against each other, in process, over
//! a generated PacketCable PKI: both request forms, RSA key transport, and
//! the first refusals (skew, tampered body, unknown CA).

mod common;

use common::lab;
use krb::crypto::{EncType, Key};
use krb::msg::consts::err;
use krb::msg::time;
use openssl::hash::MessageDigest;
use openssl::symm::Cipher;
use pkinit::client;
use pkinit::request::Form;
use pkinit::server::{self, ReplyPolicy, RequestContext};

const BODY: &[u8] = b"\x30\x03\x02\x01\x07"; // stands in for the KDC-REQ-BODY bytes

fn ctx() -> RequestContext<'static> {
    RequestContext {
        req_body: BODY,
        now: time::now().0,
        skew: 300,
        dh_min_bits: 2048,
        cert_cache: None,
    }
}

fn policy() -> ReplyPolicy {
    ReplyPolicy {
        packetcable_cipher: Cipher::des_ede3_cbc(),
        packetcable_digest: MessageDigest::sha1(),
    }
}

#[test]
fn packetcable_form_round_trip() {
    let l = lab();
    let pa = client::packetcable_padata(&l.device, BODY, 77, time::now(), Some("mps.pktc.test"))
        .unwrap();
    assert_eq!((pa[0].r#type, pa[1].r#type), (14, -1));
    let v = server::verify_request(14, &pa[0].value, &ctx(), &l.device_trust).unwrap();
    assert_eq!(v.form, Form::PacketCable);
    // The pkt-eue-7 key hash is the RFC 5280 method-1 key identifier, which
    // OpenSSL put in the device certificate as its subjectKeyIdentifier.
    let ski = l
        .device
        .cert
        .subject_key_id()
        .expect("device cert has an SKI");
    assert_eq!(&v.public_key_hash()[..], ski.as_slice());
    assert_eq!(v.mac, [0x00, 0x10, 0x95, 0x00, 0x00, 0x01]);
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    let reply = server::rsa_reply(&v, &key, b"as-req", &l.kdc, &policy()).unwrap();
    assert_eq!(reply.r#type, 15);
    let got = client::open_packetcable_reply(&reply.value, &l.device, &l.sp_trust, 77).unwrap();
    assert_eq!(got.bytes(), key.bytes());
    assert!(client::open_packetcable_reply(&reply.value, &l.device, &l.sp_trust, 78).is_err());
    // The KDC chain must verify: against the device root it does not.
    assert!(matches!(
        client::open_packetcable_reply(&reply.value, &l.device, &l.device_trust, 77),
        Err(client::ClientError::KdcNotTrusted(_))
    ));
}

#[test]
fn rfc4556_rsa_round_trip() {
    let l = lab();
    let pa = client::rfc4556_padata(&l.device, BODY, 5, time::now(), None, None, None).unwrap();
    let v = server::verify_request(16, &pa.value, &ctx(), &l.device_trust).unwrap();
    assert_eq!(v.form, Form::Rfc4556);
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let reply = server::rsa_reply(&v, &key, b"the whole as-req", &l.kdc, &policy()).unwrap();
    assert_eq!(reply.r#type, 17);
    let got =
        client::open_rfc4556_rsa_reply(&reply.value, &l.device, &l.sp_trust, b"the whole as-req")
            .unwrap();
    assert_eq!(got.bytes(), key.bytes());
    assert!(
        client::open_rfc4556_rsa_reply(&reply.value, &l.device, &l.sp_trust, b"another as-req")
            .is_err()
    );
}

#[test]
fn first_refusals() {
    let l = lab();
    let now = time::now();
    let pa = client::packetcable_padata(&l.device, BODY, 9, now, None).unwrap();
    let code = |r: Result<server::VerifiedRequest, server::PkinitError>| {
        r.err().map(|e| (e.krb_error_code(), e.refusal().label()))
    };
    // The signed nonce is the one echoed; the body's is not compared
    // (RFC 4556 §3.2.1, for both forms).
    let v = server::verify_request(14, &pa[0].value, &ctx(), &l.device_trust).unwrap();
    assert_eq!(v.nonce, 9);
    // Body bytes differ from what paChecksum covers.
    let other = RequestContext {
        req_body: b"\x30\x00",
        ..ctx()
    };
    assert_eq!(
        code(server::verify_request(
            14,
            &pa[0].value,
            &other,
            &l.device_trust
        )),
        Some((err::KRB_AP_ERR_MODIFIED, "pkinit_checksum_mismatch"))
    );
    // Skew.
    let late = RequestContext {
        now: now.0 + 3600,
        ..ctx()
    };
    assert_eq!(
        code(server::verify_request(
            14,
            &pa[0].value,
            &late,
            &l.device_trust
        )),
        Some((err::KRB_AP_ERR_SKEW, "pkinit_skew"))
    );
    // The SP trust store does not know the device's CA.
    assert_eq!(
        code(server::verify_request(
            14,
            &pa[0].value,
            &ctx(),
            &l.sp_trust
        ))
        .map(|c| c.0),
        Some(err::KDC_ERR_CANT_VERIFY_CERTIFICATE)
    );
    // Draft-9 padata 15.
    assert_eq!(
        code(server::verify_request(
            15,
            &pa[0].value,
            &ctx(),
            &l.device_trust
        ))
        .map(|c| c.0),
        Some(err::KDC_ERR_PADATA_TYPE_NOSUPP)
    );
    // A flipped byte in the signed AuthPack.
    let mut bad = pa[0].value.to_vec();
    let n = bad.len();
    bad[n - 40] ^= 0x01;
    let r = code(server::verify_request(14, &bad, &ctx(), &l.device_trust)).unwrap();
    assert!(
        r.0 == err::KDC_ERR_INVALID_SIG || r.0 == err::KDC_ERR_PREAUTH_FAILED,
        "{r:?}"
    );
}

fn dh_round_trip(
    group: pkinit::dh::Group,
    kdfs: Option<Vec<pkinit::asn1::KdfAlgorithmId>>,
    client_nonce: Option<Vec<u8>>,
    reuse: u64,
) {
    let l = lab();
    let ck = pkinit::dh::ClientKey::generate(group).unwrap();
    let pa = client::rfc4556_padata(
        &l.device,
        BODY,
        41,
        time::now(),
        Some(ck.spki()),
        kdfs,
        client_nonce.clone(),
    )
    .unwrap();
    let v = server::verify_request(16, &pa.value, &ctx(), &l.device_trust).unwrap();
    let server::KeyDelivery::Dh(dh) = &v.delivery else {
        panic!("expected DH")
    };
    let cname =
        krb::principal::Principal::parse("mta/mta-001095000001.pktc.test@PKTC.TEST", None).unwrap();
    let sname = krb::principal::Principal::krbtgt("PKTC.TEST");
    let names = server::KdfNames {
        client: &cname,
        server: &sname,
    };
    let (reply, key) = server::dh_reply(
        &v,
        dh,
        EncType::Aes256CtsHmacSha196,
        b"as-req",
        &names,
        &l.kdc,
        &server::DhKeys::new(reuse),
    )
    .unwrap();
    assert_eq!(reply.r#type, 17);
    // serverDHNonce and dhKeyExpiration: both for a reused key (key reuse
    // on and a clientDHNonce that allows it), neither otherwise.
    let rep: pkinit::asn1::PaPkAsRep = krb::msg::decode("PA-PK-AS-REP", &reply.value).unwrap();
    let pkinit::asn1::PaPkAsRep::DhInfo(info) = rep else {
        panic!("expected dhInfo")
    };
    let signed = pkinit::cms::verify_signed(&info.dh_signed_data).unwrap();
    let key_info: pkinit::asn1::KdcDhKeyInfo =
        krb::msg::decode("KDCDHKeyInfo", &signed.econtent).unwrap();
    let reused = reuse > 0 && client_nonce.is_some();
    assert_eq!(info.server_dh_nonce.is_some(), reused);
    assert_eq!(key_info.dh_key_expiration.is_some(), reused);
    let state = client::DhClientState {
        key: &ck,
        client_dh_nonce: client_nonce.as_deref(),
        nonce: 41,
        etype: EncType::Aes256CtsHmacSha196,
    };
    let got = client::open_rfc4556_dh_reply(&reply.value, &state, &l.sp_trust, b"as-req", &names)
        .unwrap();
    assert_eq!(got.bytes(), key.bytes());
}

#[test]
fn rfc4556_dh_with_rfc8636_kdf() {
    let sha256 = pkinit::dh::Kdf::Sha256.algorithm_id();
    dh_round_trip(
        pkinit::dh::Group::Modp2048,
        Some(vec![sha256.clone()]),
        None,
        0,
    );
    dh_round_trip(
        pkinit::dh::Group::Modp2048,
        Some(vec![sha256.clone()]),
        None,
        60,
    );
    dh_round_trip(pkinit::dh::Group::P256, Some(vec![sha256]), None, 60);
}

#[test]
fn rfc4556_dh_with_octetstring2key_and_nonces() {
    dh_round_trip(pkinit::dh::Group::Modp2048, None, Some(vec![7u8; 32]), 0);
    // A reused KDC key: serverDHNonce and dhKeyExpiration, both nonces in
    // octetstring2key (the client side checks they come together).
    dh_round_trip(pkinit::dh::Group::Modp2048, None, Some(vec![7u8; 32]), 60);
    dh_round_trip(pkinit::dh::Group::P384, None, None, 0);
    // Key reuse configured, but a client without clientDHNonce does not allow it.
    dh_round_trip(pkinit::dh::Group::P256, None, None, 60);
}
