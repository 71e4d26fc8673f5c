//! Checking a CMS SignerInfo ourselves (RFC 5652 §5.4, §5.6) with the
//! signer certificate's already-parsed key.
//!
//! OpenSSL's CMS_verify would re-parse the whole ContentInfo, and OpenSSL
//! 3.0 decodes every certificate's public key again on each parse — the
//! largest cost of a PKINIT request before this (docs/benchmarks.md). The
//! check itself stays OpenSSL's (EVP_DigestVerify).
//!
//! An RSA key can also be built straight from a certificate's
//! SubjectPublicKeyInfo ([`rsa_public_key`]): OpenSSL 3.0 spends most of a
//! certificate parse setting up a decoder for the key; the modulus and
//! exponent need none.

use krb::msg::raw;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, PKeyRef, Public};
use openssl::rsa::Rsa;
use openssl::sign::Verifier;
use rasn::types::{ObjectIdentifier, Oid};
use rasn_cms::SignerInfo;

use crate::cms::CmsError;

const MESSAGE_DIGEST: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 4]);
const CONTENT_TYPE: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 3]);

fn digest_for(oid: &Oid) -> Option<MessageDigest> {
    Some(match oid.to_string().as_str() {
        "1.3.14.3.2.26" => MessageDigest::sha1(),
        "2.16.840.1.101.3.4.2.4" => MessageDigest::sha224(),
        "2.16.840.1.101.3.4.2.1" => MessageDigest::sha256(),
        "2.16.840.1.101.3.4.2.2" => MessageDigest::sha384(),
        "2.16.840.1.101.3.4.2.3" => MessageDigest::sha512(),
        "1.2.840.113549.2.5" => MessageDigest::md5(),
        _ => return None,
    })
}

/// Signature algorithms whose check is "PKCS#1 v1.5 (or ECDSA) over the
/// digest named by digestAlgorithm": rsaEncryption as PacketCable devices
/// send, shaNWithRSAEncryption, ecdsa-with-SHAn.
fn plain_signature_algorithm(oid: &Oid) -> bool {
    let s = oid.to_string();
    s == "1.2.840.113549.1.1.1"
        || [
            "1.2.840.113549.1.1.5",
            "1.2.840.113549.1.1.11",
            "1.2.840.113549.1.1.12",
            "1.2.840.113549.1.1.13",
            "1.2.840.113549.1.1.14",
        ]
        .contains(&s.as_str())
        || s.starts_with("1.2.840.10045.4.")
}

fn bad(e: impl std::fmt::Display) -> CmsError {
    CmsError::BadSignature(e.to_string())
}

fn malformed(e: impl std::fmt::Display) -> CmsError {
    CmsError::Malformed(e.to_string())
}

/// The exact bytes of the first SignerInfo's `signedAttrs [0]` in a DER
/// SignedData, re-tagged as the SET OF they are signed as.
fn signed_attrs_as_set(signed_data: &[u8]) -> Result<Option<Vec<u8>>, CmsError> {
    let (sd, _) = raw::read_tlv(signed_data).map_err(malformed)?;
    let mut fields = sd.content;
    let mut last = None;
    while !fields.is_empty() {
        let (f, rest) = raw::read_tlv(fields).map_err(malformed)?;
        last = Some(f);
        fields = rest;
    }
    // signerInfos is the last field of SignedData.
    let infos = last
        .filter(|t| t.tag == 0x31)
        .ok_or_else(|| malformed("no signerInfos"))?;
    let (info, _) = raw::read_tlv(infos.content).map_err(malformed)?;
    let mut fields = info.content;
    while !fields.is_empty() {
        let (f, rest) = raw::read_tlv(fields).map_err(malformed)?;
        if f.tag == 0xa0 {
            return Ok(Some(raw::tlv(0x31, f.content)));
        }
        fields = rest;
    }
    Ok(None)
}

/// The DER of the single value of signed attribute `oid`.
fn single_attr<'a>(si: &'a SignerInfo, oid: &Oid) -> Result<&'a [u8], CmsError> {
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| malformed("no signed attributes"))?;
    let a = attrs
        .iter()
        .find(|a| *a.r#type == *oid)
        .ok_or_else(|| bad(format!("signed attribute {oid} missing")))?;
    let mut values = a.values.iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Ok(v.as_bytes()),
        _ => Err(bad(format!("signed attribute {oid} must have one value"))),
    }
}

/// Checks `si` (the only SignerInfo of `signed_data`, DER) against the
/// eContent, its type and the signer certificate.
pub(crate) fn verify(
    signed_data: &[u8],
    si: &SignerInfo,
    econtent: &[u8],
    econtent_type: &ObjectIdentifier,
    key: &PKeyRef<Public>,
) -> Result<(), CmsError> {
    let md = digest_for(&si.digest_algorithm.algorithm).ok_or_else(|| {
        bad(format!(
            "digest algorithm {} not supported",
            si.digest_algorithm.algorithm
        ))
    })?;
    if !plain_signature_algorithm(&si.signature_algorithm.algorithm) {
        return Err(bad(format!(
            "signature algorithm {} not supported",
            si.signature_algorithm.algorithm
        )));
    }
    let mut v = Verifier::new(md, key)?;
    match signed_attrs_as_set(signed_data)? {
        None => v.update(econtent)?,
        Some(set) => {
            // RFC 5652 §5.4: with signed attributes, the signature covers
            // them, and messageDigest and contentType bind the content.
            let digest = openssl::hash::hash(md, econtent)?;
            let want = rasn::der::encode(&rasn::types::OctetString::from(digest.to_vec()))
                .map_err(malformed)?;
            if single_attr(si, MESSAGE_DIGEST)? != want.as_slice() {
                return Err(bad("messageDigest does not match the content"));
            }
            let want_type = rasn::der::encode(econtent_type).map_err(malformed)?;
            if single_attr(si, CONTENT_TYPE)? != want_type.as_slice() {
                return Err(bad("contentType attribute does not match eContentType"));
            }
            v.update(&set)?
        }
    }
    if v.verify(&si.signature)? {
        Ok(())
    } else {
        Err(bad("signature does not verify"))
    }
}

const RSA_ENCRYPTION: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 1]);

/// The RSA public key of an rsaEncryption SubjectPublicKeyInfo, from its
/// modulus and exponent; None for other key types or an encoding this
/// strict reader does not take (the caller then parses the certificate).
pub(crate) fn rsa_public_key(spki: &rasn_pkix::SubjectPublicKeyInfo) -> Option<PKey<Public>> {
    if *spki.algorithm.algorithm != *RSA_ENCRYPTION {
        return None;
    }
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    let (seq, rest) = raw::read_tlv(spki.subject_public_key.as_raw_slice()).ok()?;
    let (n, after_n) = raw::read_tlv(seq.content).ok()?;
    let (e, after_e) = raw::read_tlv(after_n).ok()?;
    let positive =
        |t: &raw::Tlv<'_>| t.tag == 0x02 && t.content.first().is_some_and(|b| b & 0x80 == 0);
    if seq.tag != 0x30 || !rest.is_empty() || !after_e.is_empty() || !positive(&n) || !positive(&e)
    {
        return None;
    }
    let n = BigNum::from_slice(n.content).ok()?;
    let e = BigNum::from_slice(e.content).ok()?;
    PKey::from_rsa(Rsa::from_public_components(n, e).ok()?).ok()
}
