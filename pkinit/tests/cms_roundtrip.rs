//! CMS layer: what we sign verifies (with us and with the `openssl cms`
//! CLI), tampering is caught, the eContentType survives, and 3DES
//! envelopes open with the recipient's key.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::symm::Cipher;
use openssl::x509::{X509, X509NameBuilder};
use pkinit::asn1::oid;
use pkinit::cms::{self, CmsError, SignOptions};

fn self_signed(cn: &str) -> (X509, PKey<Private>) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (b.build(), key)
}

#[test]
fn device_style_signed_data_verifies_and_keeps_its_content_type() {
    let (cert, key) = self_signed("00:11:22:33:44:55");
    let opts = SignOptions {
        digest: Some(MessageDigest::sha1()),
        signed_attributes: false,
        extra_certs: &[],
    };
    let ci = cms::sign(oid::AUTH_DATA, b"auth pack bytes", &cert, &key, &opts).unwrap();
    let v = cms::verify_signed(&ci).unwrap();
    assert_eq!(v.econtent, b"auth pack bytes");
    assert_eq!(*v.econtent_type, *oid::AUTH_DATA);
    assert!(!v.has_signed_attributes);
    assert_eq!(v.digest_oid.to_string(), "1.3.14.3.2.26");
    assert_eq!(v.signer.to_der().unwrap(), cert.to_der().unwrap());

    // An independent peer agrees: `openssl cms -verify -noverify`.
    let dir = testkit::TempDir::new("pkinit-cms");
    std::fs::write(dir.path("sd.der"), &ci).unwrap();
    let openssl = testkit::require_tool("openssl", "openssl");
    let out = std::process::Command::new(openssl)
        .args([
            "cms",
            "-verify",
            "-noverify",
            "-binary",
            "-inform",
            "DER",
            "-in",
        ])
        .arg(dir.path("sd.der"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"auth pack bytes");
}

#[test]
fn kdc_style_signed_data_has_signed_attributes() {
    let (cert, key) = self_signed("kdc.pktc.test");
    let (other, _) = self_signed("Local System CA");
    let opts = SignOptions {
        digest: None,
        signed_attributes: true,
        extra_certs: std::slice::from_ref(&other),
    };
    let ci = cms::sign(oid::RKEY_DATA, b"reply key pack", &cert, &key, &opts).unwrap();
    let v = cms::verify_signed(&ci).unwrap();
    assert!(v.has_signed_attributes);
    assert_eq!(*v.econtent_type, *oid::RKEY_DATA);
    assert_eq!(v.certificates.len(), 2);
}

#[test]
fn tampering_is_caught() {
    let (cert, key) = self_signed("00:11:22:33:44:55");
    for signed_attributes in [false, true] {
        let opts = SignOptions {
            digest: Some(MessageDigest::sha1()),
            signed_attributes,
            extra_certs: &[],
        };
        let ci = cms::sign(oid::AUTH_DATA, b"auth pack bytes", &cert, &key, &opts).unwrap();
        let at = ci
            .windows(15)
            .position(|w| w == b"auth pack bytes")
            .unwrap();
        let mut bad = ci.clone();
        bad[at] ^= 1;
        assert!(matches!(
            cms::verify_signed(&bad),
            Err(CmsError::BadSignature(_))
        ));
        // Every truncation is refused without panic.
        for n in 0..ci.len() {
            assert!(cms::verify_signed(&ci[..n]).is_err());
        }
    }
    // OpenSSL refuses to sign with a key that does not match the certificate.
    let (_, other_key) = self_signed("x");
    let opts = SignOptions {
        digest: None,
        signed_attributes: true,
        extra_certs: &[],
    };
    assert!(cms::sign(oid::AUTH_DATA, b"x", &cert, &other_key, &opts).is_err());
}

#[test]
fn des3_envelope_opens_with_the_recipient_key() {
    let (cert, key) = self_signed("00:11:22:33:44:55");
    let env = cms::envelope(
        oid::SIGNED_DATA,
        b"inner signed data",
        &cert,
        Cipher::des_ede3_cbc(),
    )
    .unwrap();
    // encryptedContentInfo names des-ede3-cbc (1.2.840.113549.3.7).
    let des3_oid = [0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07];
    assert!(env.windows(des3_oid.len()).any(|w| w == des3_oid));
    assert_eq!(
        cms::open_envelope(&env, &cert, &key).unwrap(),
        b"inner signed data"
    );
    let (other, other_key) = self_signed("someone else");
    assert!(cms::open_envelope(&env, &other, &other_key).is_err());
}

/// SignedData produced by an independent signer (the `openssl cms` CLI),
/// with and without signed attributes and with SHA-1 and SHA-256, verifies
/// with our SignerInfo check; a flipped content byte does not.
#[test]
fn openssl_cli_signed_data_verifies() {
    let (cert, key) = self_signed("00:11:22:33:44:66");
    let dir = testkit::TempDir::new("pkinit-cms-cli");
    std::fs::write(dir.path("cert.pem"), cert.to_pem().unwrap()).unwrap();
    std::fs::write(dir.path("key.pem"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(dir.path("data"), b"content signed by the CLI").unwrap();
    let openssl = testkit::require_tool("openssl", "openssl");
    for (md, attrs) in [
        ("sha1", false),
        ("sha1", true),
        ("sha256", true),
        ("sha256", false),
    ] {
        let mut cmd = std::process::Command::new(&openssl);
        cmd.args([
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-md",
            md,
            "-in",
        ])
        .arg(dir.path("data"))
        .arg("-signer")
        .arg(dir.path("cert.pem"))
        .arg("-inkey")
        .arg(dir.path("key.pem"))
        .arg("-out")
        .arg(dir.path("sd.der"));
        if !attrs {
            cmd.arg("-noattr");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = std::fs::read(dir.path("sd.der")).unwrap();
        let v = cms::verify_signed(&der).unwrap_or_else(|e| panic!("{md} attrs={attrs}: {e}"));
        assert_eq!(v.econtent, b"content signed by the CLI");
        assert_eq!(v.has_signed_attributes, attrs);
        let at = der.windows(7).position(|w| w == b"content").unwrap();
        let mut bad = der.clone();
        bad[at] ^= 1;
        assert!(
            matches!(cms::verify_signed(&bad), Err(CmsError::BadSignature(_))),
            "{md} attrs={attrs}"
        );
    }
}
