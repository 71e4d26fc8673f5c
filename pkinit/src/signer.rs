//! Checking a CMS SignerInfo ourselves (RFC 5652 §5.4, §5.6) with the
//! signer certificate's already-parsed key, after the request passed the
//! cheap policy checks here: which digest and signature algorithms
//! ([`algorithms`]) and which public keys ([`check_key`]) we take at all.
//!
//! OpenSSL's CMS_verify would re-parse the whole ContentInfo, and OpenSSL
//! 3.0 decodes every certificate's public key again on each parse — the
//! largest cost of a PKINIT request before this (docs/benchmarks.md). The
//! check itself stays OpenSSL's (EVP_DigestVerify).

use krb::msg::raw;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKeyRef, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use rasn::types::{ObjectIdentifier, Oid};
use rasn_cms::SignerInfo;

use crate::cms::CmsError;

const MESSAGE_DIGEST: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 4]);
const CONTENT_TYPE: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 3]);
const RSA_ENCRYPTION: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 1]);
const RSASSA_PSS: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 10]);
const MGF1: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 8]);
const EC_PUBLIC_KEY: &Oid = Oid::const_new(&[1, 2, 840, 10045, 2, 1]);
const KEY_USAGE: &Oid = Oid::const_new(&[2, 5, 29, 15]);

/// Smallest and largest RSA modulus of a device key: PacketCable 1.x
/// devices have 1024-bit keys; above 4096 bits a signature check costs
/// more than the reply's own signature (issue 11: refuse hostile requests
/// before the expensive work).
pub const RSA_MIN_BITS: usize = 1024;
pub const RSA_MAX_BITS: usize = 4096;
/// Largest RSA public exponent (65537 in practice): a long exponent makes
/// the check as slow as a private-key operation.
pub const RSA_MAX_EXPONENT: u64 = 1 << 32;

/// The digests we take in a SignerInfo: SHA-1 (PacketCable devices) and
/// SHA-2. MD5 and anything else: KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED.
pub const ACCEPTED_DIGESTS: [&Oid; 5] = [
    Oid::const_new(&[1, 3, 14, 3, 2, 26]),
    Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 4]),
    Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 1]),
    Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 2]),
    Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 3]),
];
const MD5: &Oid = Oid::const_new(&[1, 2, 840, 113549, 2, 5]);

fn digest_for(oid: &Oid) -> Option<MessageDigest> {
    let mds = [
        MessageDigest::sha1(),
        MessageDigest::sha224(),
        MessageDigest::sha256(),
        MessageDigest::sha384(),
        MessageDigest::sha512(),
    ];
    ACCEPTED_DIGESTS
        .iter()
        .position(|d| *d == oid)
        .map(|i| mds[i])
}

fn not_accepted(e: impl std::fmt::Display) -> CmsError {
    CmsError::DigestNotAccepted(e.to_string())
}

fn bad(e: impl std::fmt::Display) -> CmsError {
    CmsError::BadSignature(e.to_string())
}

fn malformed(e: impl std::fmt::Display) -> CmsError {
    CmsError::Malformed(e.to_string())
}

fn key_refused(e: impl std::fmt::Display) -> CmsError {
    CmsError::KeyNotAccepted(e.to_string())
}

/// How the signature value is checked.
#[derive(Clone, Copy)]
pub(crate) enum Scheme {
    /// RSA PKCS #1 v1.5: rsaEncryption (as PacketCable devices send) or
    /// shaNWithRSAEncryption.
    Pkcs1,
    /// RSASSA-PSS (RFC 4056) with MGF1 and this salt length.
    Pss { mgf1: MessageDigest, salt_len: i32 },
    /// ecdsa-with-SHAn (RFC 5753), or id-ecPublicKey as some encoders write.
    Ecdsa,
}

/// A SignerInfo's algorithms, accepted by policy.
#[derive(Clone, Copy)]
pub(crate) struct Algorithms {
    /// The digestAlgorithm: it decides the hash, whatever hash the
    /// signatureAlgorithm names (as OpenSSL's CMS, and so MIT, does).
    pub md: MessageDigest,
    pub scheme: Scheme,
}

/// The SignerInfo's digest and signature algorithms, checked against policy
/// without any public-key work.
pub(crate) fn algorithms(si: &SignerInfo) -> Result<Algorithms, CmsError> {
    let digest = &si.digest_algorithm.algorithm;
    if **digest == *MD5 {
        return Err(not_accepted("MD5 digest is not accepted"));
    }
    let md = digest_for(digest)
        .ok_or_else(|| not_accepted(format!("digest algorithm {digest} is not accepted")))?;
    let sig = &si.signature_algorithm.algorithm;
    let s = sig.to_string();
    let scheme = if **sig == *RSA_ENCRYPTION
        || [
            "1.2.840.113549.1.1.5",
            "1.2.840.113549.1.1.11",
            "1.2.840.113549.1.1.12",
            "1.2.840.113549.1.1.13",
            "1.2.840.113549.1.1.14",
        ]
        .contains(&s.as_str())
    {
        Scheme::Pkcs1
    } else if **sig == *RSASSA_PSS {
        pss_scheme(si.signature_algorithm.parameters.as_ref(), md)?
    } else if **sig == *EC_PUBLIC_KEY
        || [
            "1.2.840.10045.4.1",
            "1.2.840.10045.4.3.1",
            "1.2.840.10045.4.3.2",
            "1.2.840.10045.4.3.3",
            "1.2.840.10045.4.3.4",
        ]
        .contains(&s.as_str())
    {
        Scheme::Ecdsa
    } else {
        return Err(not_accepted(format!(
            "signature algorithm {sig} is not accepted"
        )));
    };
    Ok(Algorithms { md, scheme })
}

/// RSASSA-PSS-params (RFC 4055 §3.1; absent fields take their defaults,
/// SHA-1, MGF1 with SHA-1, salt 20, trailer 1). RFC 4056 §3: the hash must
/// be the SignerInfo's digestAlgorithm; we also want MGF1 with an accepted
/// digest and trailerField 1 (the only one defined).
fn pss_scheme(params: Option<&rasn::types::Any>, md: MessageDigest) -> Result<Scheme, CmsError> {
    let p: crate::asn1::RsassaPssParams = match params {
        None => crate::asn1::RsassaPssParams::default(),
        Some(a) if a.as_bytes() == [0x05, 0x00] => crate::asn1::RsassaPssParams::default(),
        Some(a) => krb::msg::decode("RSASSA-PSS-params", a.as_bytes()).map_err(malformed)?,
    };
    let sha1 = ACCEPTED_DIGESTS[0];
    let hash = p.hash_algorithm.as_ref().map_or(sha1, |a| &*a.algorithm);
    if digest_for(hash).map(|h| h.type_()) != Some(md.type_()) {
        return Err(not_accepted(format!(
            "RSASSA-PSS hash {hash} differs from the digestAlgorithm"
        )));
    }
    let mgf1 = match &p.mask_gen_algorithm {
        None => MessageDigest::sha1(),
        Some(m) if *m.algorithm == *MGF1 => {
            let inner: rasn_pkix::AlgorithmIdentifier = m
                .parameters
                .as_ref()
                .ok_or_else(|| malformed("MGF1 without its hash"))
                .and_then(|a| krb::msg::decode("MGF1 hash", a.as_bytes()).map_err(malformed))?;
            digest_for(&inner.algorithm).ok_or_else(|| {
                not_accepted(format!("MGF1 hash {} is not accepted", inner.algorithm))
            })?
        }
        Some(m) => {
            return Err(not_accepted(format!(
                "mask generation {} is not accepted",
                m.algorithm
            )));
        }
    };
    let salt_len = match &p.salt_length {
        None => 20,
        Some(n) => i32::try_from(n)
            .ok()
            .filter(|n| (0..=512).contains(n))
            .ok_or_else(|| not_accepted("RSASSA-PSS salt length out of range"))?,
    };
    if p.trailer_field.as_ref().is_some_and(|t| *t != 1.into()) {
        return Err(not_accepted("RSASSA-PSS trailerField other than 1"));
    }
    Ok(Scheme::Pss { mgf1, salt_len })
}

/// The exact bytes of a DER SignerInfo's `signedAttrs [0]`, re-tagged as
/// the SET OF they are signed as. They sit right after digestAlgorithm:
/// `version, sid, digestAlgorithm, [0] signedAttrs OPTIONAL, ...` (a
/// subjectKeyIdentifier sid is itself a [0], constructed when encoded as
/// Heimdal does, so the position matters, not just the tag).
fn signed_attrs_as_set(signer_info: &[u8]) -> Result<Option<Vec<u8>>, CmsError> {
    let (info, _) = raw::read_tlv(signer_info).map_err(malformed)?;
    let mut fields = info.content;
    for index in 0..4 {
        if fields.is_empty() {
            break;
        }
        let (f, rest) = raw::read_tlv(fields).map_err(malformed)?;
        if index == 3 && f.tag == 0xa0 {
            return Ok(Some(raw::tlv(0x31, f.content)));
        }
        fields = rest;
    }
    Ok(None)
}

/// The same SET OF with its elements in DER order (X.690 §11.6: ascending
/// as octet strings, the shorter padded with zeros).
fn der_sorted_set(set: &[u8]) -> Result<Vec<u8>, CmsError> {
    let (outer, _) = raw::read_tlv(set).map_err(malformed)?;
    let mut items = Vec::new();
    let mut rest = outer.content;
    while !rest.is_empty() {
        let (t, r) = raw::read_tlv(rest).map_err(malformed)?;
        items.push(t.whole);
        rest = r;
    }
    items.sort_by(|a, b| {
        let n = a.len().max(b.len());
        (0..n)
            .map(|i| {
                (
                    a.get(i).copied().unwrap_or(0),
                    b.get(i).copied().unwrap_or(0),
                )
            })
            .find(|(x, y)| x != y)
            .map_or(std::cmp::Ordering::Equal, |(x, y)| x.cmp(&y))
    });
    Ok(raw::tlv(0x31, &items.concat()))
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

/// One signature check of `data`.
fn check(
    algs: &Algorithms,
    key: &PKeyRef<Public>,
    data: &[u8],
    signature: &[u8],
) -> Result<bool, CmsError> {
    let mut v = Verifier::new(algs.md, key)?;
    if let Scheme::Pss { mgf1, salt_len } = algs.scheme {
        v.set_rsa_padding(Padding::PKCS1_PSS)?;
        v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt_len))?;
        v.set_rsa_mgf1_md(mgf1)?;
    }
    v.update(data)?;
    // A signature of the wrong length is an OpenSSL error: just "no".
    Ok(v.verify(signature).unwrap_or(false))
}

/// Checks `si` (DER `signer_info`) against the eContent, its type and the
/// signer's key, with algorithms [`algorithms`] accepted.
pub(crate) fn verify(
    signer_info: &[u8],
    si: &SignerInfo,
    algs: &Algorithms,
    econtent: &[u8],
    econtent_type: &ObjectIdentifier,
    key: &PKeyRef<Public>,
) -> Result<(), CmsError> {
    let fits = match algs.scheme {
        Scheme::Pkcs1 | Scheme::Pss { .. } => key.id() == Id::RSA,
        Scheme::Ecdsa => key.id() == Id::EC,
    };
    if !fits {
        return Err(bad("signature algorithm does not fit the signer's key"));
    }
    let ok = match signed_attrs_as_set(signer_info)? {
        None => check(algs, key, econtent, &si.signature)?,
        Some(set) => {
            // RFC 5652 §5.4: with signed attributes, the signature covers
            // them, and messageDigest and contentType bind the content.
            let digest = openssl::hash::hash(algs.md, econtent)?;
            let want = rasn::der::encode(&rasn::types::OctetString::from(digest.to_vec()))
                .map_err(malformed)?;
            if single_attr(si, MESSAGE_DIGEST)? != want.as_slice() {
                return Err(bad("messageDigest does not match the content"));
            }
            let want_type = rasn::der::encode(econtent_type).map_err(malformed)?;
            if single_attr(si, CONTENT_TYPE)? != want_type.as_slice() {
                return Err(bad("contentType attribute does not match eContentType"));
            }
            // Signed as sent; a signer that sent them out of DER order may
            // have signed the DER order (what OpenSSL checks), so that once.
            check(algs, key, &set, &si.signature)? || {
                let sorted = der_sorted_set(&set)?;
                sorted != set && check(algs, key, &sorted, &si.signature)?
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(bad("signature does not verify"))
    }
}

/// A certificate's RSA modulus and exponent, big-endian without leading
/// zeros; None when the key is not RSA or not strict DER.
fn rsa_parts(spki: &rasn_pkix::SubjectPublicKeyInfo) -> Option<(&[u8], &[u8])> {
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
    let trim = |v: &[u8]| -> usize { v.iter().position(|&b| b != 0).unwrap_or(v.len()) };
    Some((&n.content[trim(n.content)..], &e.content[trim(e.content)..]))
}

/// The named curves a device key may use (as for DH: NIST P-256/384/521).
const ACCEPTED_CURVES: [&Oid; 3] = [
    Oid::const_new(&[1, 2, 840, 10045, 3, 1, 7]),
    Oid::const_new(&[1, 3, 132, 0, 34]),
    Oid::const_new(&[1, 3, 132, 0, 35]),
];

/// The signer's public key against policy, before any public-key
/// operation: RSA of [`RSA_MIN_BITS`]..=[`RSA_MAX_BITS`] bits with an odd
/// exponent of 3..=[`RSA_MAX_EXPONENT`], or EC on a named P-curve. Anything
/// else (DSA, other curves, explicit curve parameters, RSASSA-PSS keys) is
/// refused.
pub(crate) fn check_key(spki: &rasn_pkix::SubjectPublicKeyInfo) -> Result<(), CmsError> {
    let alg = &spki.algorithm.algorithm;
    if **alg == *RSA_ENCRYPTION {
        let (n, e) = rsa_parts(spki).ok_or_else(|| key_refused("RSA public key is not DER"))?;
        let bits = n
            .first()
            .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(key_refused(format!(
                "RSA key of {bits} bits (accepted: {RSA_MIN_BITS} to {RSA_MAX_BITS})"
            )));
        }
        let exponent = (e.len() <= 8)
            .then(|| e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            .filter(|v| (3..=RSA_MAX_EXPONENT).contains(v) && v % 2 == 1);
        if exponent.is_none() {
            return Err(key_refused(
                "RSA public exponent must be odd and at most 2^32",
            ));
        }
        return Ok(());
    }
    if **alg == *EC_PUBLIC_KEY {
        let curve: Option<ObjectIdentifier> = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| rasn::der::decode(p.as_bytes()).ok());
        return match curve {
            Some(c) if ACCEPTED_CURVES.contains(&&*c) => Ok(()),
            Some(c) => Err(key_refused(format!("EC curve {c} is not accepted"))),
            None => Err(key_refused("EC key without a named curve")),
        };
    }
    Err(key_refused(format!(
        "public key algorithm {alg} is not accepted"
    )))
}

/// False when the certificate has a keyUsage extension without
/// digitalSignature (RFC 4556 §3.2.2 lets the KDC require it; MIT does).
/// A keyUsage we cannot read counts as not allowing it.
pub(crate) fn allows_digital_signature(cert: &rasn_pkix::Certificate) -> bool {
    let Some(ext) = cert
        .tbs_certificate
        .extensions
        .iter()
        .flat_map(|e| e.iter())
        .find(|e| *e.extn_id == *KEY_USAGE)
    else {
        return true;
    };
    // KeyUsage ::= BIT STRING; digitalSignature is bit 0, the first
    // content byte after the unused-bits count.
    match raw::read_tlv(&ext.extn_value) {
        Ok((bits, rest)) if bits.tag == 0x03 && rest.is_empty() => {
            bits.content.get(1).is_some_and(|b| b & 0x80 != 0)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_sorting_of_a_set() {
        let a = raw::tlv(0x30, &[0x06, 0x01, 0x02]);
        let b = raw::tlv(0x30, &[0x06, 0x01, 0x01, 0x05, 0x00]);
        let unsorted = raw::tlv(0x31, &[b.clone(), a.clone()].concat());
        let sorted = raw::tlv(0x31, &[a, b].concat());
        // 30 03 … sorts before 30 05 …
        assert_eq!(der_sorted_set(&unsorted).unwrap(), sorted);
    }
}
