//! The reply CMS the KDC builds itself has the layout OpenSSL's CMS_sign /
//! CMS_encrypt gave replies before (field by field, the signing time and
//! signature aside), and OpenSSL's CMS code reads, verifies and decrypts it.

mod common;

use krb::msg::time;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::symm::Cipher;
use pkinit::asn1::oid;
use pkinit::cms::{self, SignOptions};
use pkinit::server::KdcIdentity;
use rasn_cms::{ContentInfo, EnvelopedData, RecipientInfo, SignedData};

fn signed_data(content_info: &[u8]) -> SignedData {
    let ci: ContentInfo = rasn::der::decode(content_info).unwrap();
    assert_eq!(*ci.content_type, *oid::SIGNED_DATA);
    rasn::der::decode(ci.content.as_bytes()).unwrap()
}

fn enveloped_data(content_info: &[u8]) -> EnvelopedData {
    let ci: ContentInfo = rasn::der::decode(content_info).unwrap();
    assert_eq!(*ci.content_type, *oid::ENVELOPED_DATA);
    rasn::der::decode(ci.content.as_bytes()).unwrap()
}

/// OpenSSL checks the signature (not the chain) and returns the content.
fn openssl_verify(content_info: &[u8]) -> Vec<u8> {
    let mut cms = CmsContentInfo::from_der(content_info).unwrap();
    let mut out = Vec::new();
    cms.verify(
        None,
        None,
        None,
        Some(&mut out),
        CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )
    .unwrap();
    out
}

fn same_layout(ours: &SignedData, reference: &SignedData) {
    assert_eq!(ours.version, reference.version);
    assert_eq!(ours.digest_algorithms, reference.digest_algorithms);
    assert_eq!(ours.encap_content_info, reference.encap_content_info);
    // The same certificates, in the same (DER SET OF) order.
    assert_eq!(
        rasn::der::encode(&ours.certificates).unwrap(),
        rasn::der::encode(&reference.certificates).unwrap()
    );
    assert_eq!(ours.crls, reference.crls);
    let (a, b) = (
        ours.signer_infos.to_vec()[0].clone(),
        reference.signer_infos.to_vec()[0].clone(),
    );
    assert_eq!(reference.signer_infos.len(), 1);
    assert_eq!(ours.signer_infos.len(), 1);
    assert_eq!(a.version, b.version);
    assert_eq!(a.sid, b.sid);
    assert_eq!(a.digest_algorithm, b.digest_algorithm);
    assert_eq!(a.signature_algorithm, b.signature_algorithm);
    assert_eq!(a.unsigned_attrs, b.unsigned_attrs);
    let (sa, sb) = (a.signed_attrs.unwrap(), b.signed_attrs.unwrap());
    let types =
        |s: &rasn_cms::SignedAttributes| s.iter().map(|a| a.r#type.to_string()).collect::<Vec<_>>();
    // contentType, signingTime, messageDigest, in DER order.
    assert_eq!(types(&sa), types(&sb));
    assert_eq!(
        types(&sa),
        [
            "1.2.840.113549.1.9.3",
            "1.2.840.113549.1.9.5",
            "1.2.840.113549.1.9.4"
        ]
    );
    for (x, y) in sa.iter().zip(sb.iter()) {
        if x.r#type.to_string() == "1.2.840.113549.1.9.5" {
            // signingTime: both UTCTime, a few seconds apart at most.
            assert_eq!(x.values.to_vec()[0].as_bytes()[0], 0x17);
            assert_eq!(y.values.to_vec()[0].as_bytes()[0], 0x17);
        } else {
            assert_eq!(x, y);
        }
    }
    assert_eq!(a.signature.len(), b.signature.len());
}

#[test]
fn signed_data_matches_openssl_cms_sign() {
    let l = common::lab();
    let kdc = &l.kdc;
    for (md, econtent_type) in [
        (MessageDigest::sha1(), oid::RKEY_DATA),
        (MessageDigest::sha256(), oid::RKEY_DATA),
        (MessageDigest::sha256(), oid::DH_KEY_DATA),
    ] {
        let content = b"0123456789abcdef reply key pack";
        let ours = kdc.sign(md, econtent_type, content, time::now().0).unwrap();
        let opts = SignOptions {
            digest: Some(md),
            signed_attributes: true,
            extra_certs: &kdc.chain,
        };
        let reference = cms::sign(econtent_type, content, &kdc.cert, &kdc.key, &opts).unwrap();
        assert_eq!(ours.len(), reference.len());
        same_layout(&signed_data(&ours), &signed_data(&reference));
        assert_eq!(openssl_verify(&ours), content);
        // And our own reader (the client side) agrees, chain included.
        let v = cms::verify_signed(&ours).unwrap();
        assert_eq!(v.econtent, content);
        assert_eq!(*v.econtent_type, *econtent_type);
        let others: Vec<_> = v.certificates[..]
            .iter()
            .filter(|c| c.to_der().unwrap() != v.signer.to_der().unwrap())
            .cloned()
            .collect();
        l.sp_trust.verify_now(&v.signer, &others).unwrap();
    }
}

#[test]
fn enveloped_data_matches_openssl_cms_encrypt() {
    let l = common::lab();
    let dev = &l.device;
    let der = dev.cert.to_der().unwrap();
    let rid = pkinit::reply::issuer_and_serial(&der).unwrap();
    let key = dev.cert.public_key().unwrap();
    let content = vec![0x5au8; 3293];
    for cipher in [Cipher::des_ede3_cbc(), Cipher::aes_256_cbc()] {
        let ours =
            pkinit::reply::enveloped_data(oid::SIGNED_DATA, &content, &key, &rid, cipher).unwrap();
        let reference = cms::envelope(oid::SIGNED_DATA, &content, &dev.cert, cipher).unwrap();
        assert_eq!(ours.len(), reference.len());
        let (a, b) = (enveloped_data(&ours), enveloped_data(&reference));
        assert_eq!(a.version, b.version);
        assert_eq!(a.originator_info, b.originator_info);
        assert_eq!(a.unprotected_attrs, b.unprotected_attrs);
        let (RecipientInfo::KeyTransRecipientInfo(ra), RecipientInfo::KeyTransRecipientInfo(rb)) = (
            a.recipient_infos.to_vec()[0].clone(),
            b.recipient_infos.to_vec()[0].clone(),
        ) else {
            panic!("not key transport");
        };
        assert_eq!(ra.version, rb.version);
        assert_eq!(ra.rid, rb.rid);
        assert_eq!(ra.key_encryption_algorithm, rb.key_encryption_algorithm);
        assert_eq!(ra.encrypted_key.len(), rb.encrypted_key.len());
        let (ea, eb) = (&a.encrypted_content_info, &b.encrypted_content_info);
        assert_eq!(ea.content_type, eb.content_type);
        assert_eq!(
            ea.content_encryption_algorithm.algorithm,
            eb.content_encryption_algorithm.algorithm
        );
        assert_eq!(
            ea.content_encryption_algorithm
                .parameters
                .as_ref()
                .map(|p| p.as_bytes().len()),
            eb.content_encryption_algorithm
                .parameters
                .as_ref()
                .map(|p| p.as_bytes().len())
        );
        assert_eq!(
            ea.encrypted_content.as_ref().map(|c| c.len()),
            eb.encrypted_content.as_ref().map(|c| c.len())
        );
        // OpenSSL opens it with the device key.
        assert_eq!(
            cms::open_envelope(&ours, &dev.cert, &dev.key).unwrap(),
            content
        );
    }
}

#[test]
fn an_ec_kdc_key_signs_with_ecdsa() {
    let l = common::lab();
    // Not a real KDC certificate (its key is RSA): only the signature is checked.
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let ec = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut b = openssl::x509::X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(l.kdc.cert.subject_name()).unwrap();
    b.set_issuer_name(l.kdc.cert.subject_name()).unwrap();
    b.set_serial_number(l.kdc.cert.serial_number()).unwrap();
    b.set_pubkey(&ec).unwrap();
    b.set_not_before(l.kdc.cert.not_before()).unwrap();
    b.set_not_after(l.kdc.cert.not_after()).unwrap();
    b.sign(&ec, MessageDigest::sha256()).unwrap();
    let kdc = KdcIdentity::new(b.build(), ec, Vec::new()).unwrap();
    let ci = kdc
        .sign(
            MessageDigest::sha256(),
            oid::DH_KEY_DATA,
            b"dh key info",
            time::now().0,
        )
        .unwrap();
    assert_eq!(openssl_verify(&ci), b"dh key info");
    let sd = signed_data(&ci);
    assert_eq!(
        sd.signer_infos.to_vec()[0]
            .signature_algorithm
            .algorithm
            .to_string(),
        "1.2.840.10045.4.3.2"
    );
    assert_eq!(cms::verify_signed(&ci).unwrap().econtent, b"dh key info");
}
