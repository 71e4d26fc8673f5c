//! The KDC's reply CMS, built directly: a SignedData around exactly one
//! private-key signature and, for RSA key transport, an EnvelopedData
//! around one public-key encryption of the content-encryption key.
//!
//! The layout is what OpenSSL's `CMS_sign` / `CMS_encrypt` produced for us
//! before (and what MIT and PacketCable devices accept), without OpenSSL's
//! CMS layer, which cost as much again as the signature itself
//! (docs/benchmarks.md):
//!
//! * SignedData version 3 (eContentType is not id-data); digestAlgorithms
//!   and the SignerInfo's digestAlgorithm without parameters; certificates
//!   = the KDC certificate and its chain, DER-sorted as a SET OF; one
//!   SignerInfo, version 1, issuerAndSerialNumber, signed attributes
//!   contentType, signingTime (UTCTime until 2049) and messageDigest,
//!   signatureAlgorithm rsaEncryption with NULL parameters (ecdsa-with-SHAn
//!   for an EC key).
//! * EnvelopedData version 0, one KeyTransRecipientInfo (version 0,
//!   issuerAndSerialNumber, rsaEncryption with NULL, PKCS#1 v1.5), content
//!   encrypted with a fresh key and IV in CBC mode with PKCS#7 padding,
//!   the IV as the algorithm's OCTET STRING parameter.
//!
//! Everything fixed for a KDC identity (the certificate set, the signer
//! identifier) is encoded once, in `Prepared`. Certificates and issuer
//! names are copied as their exact DER, never re-encoded.

use krb::msg::raw::{self, tlv};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKeyRef, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::Cipher;
use openssl::x509::X509;
use rasn::types::Oid;

use crate::cms::CmsError;

fn malformed(e: impl std::fmt::Display) -> CmsError {
    CmsError::Malformed(e.to_string())
}

fn oid_tlv(oid: &Oid) -> Vec<u8> {
    // An OID always encodes.
    rasn::der::encode(&oid.to_owned()).unwrap_or_default()
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// DER INTEGER of a small non-negative value.
fn small_int(v: u8) -> [u8; 3] {
    [0x02, 0x01, v]
}

const NULL: [u8; 2] = [0x05, 0x00];

const CONTENT_TYPE: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 3]);
const MESSAGE_DIGEST: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 4]);
const SIGNING_TIME: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 5]);
const RSA_ENCRYPTION: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 1]);
const ENVELOPED_DATA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 7, 3]);

/// The digest OID (parameters absent, as OpenSSL writes them) and the
/// ecdsa-with-SHAn OID for `md`.
fn digest_oids(md: MessageDigest) -> Option<(&'static Oid, &'static Oid)> {
    const fn o(arcs: &'static [u32]) -> &'static Oid {
        Oid::const_new(arcs)
    }
    Some(match md.type_() {
        Nid::SHA1 => (o(&[1, 3, 14, 3, 2, 26]), o(&[1, 2, 840, 10045, 4, 1])),
        Nid::SHA224 => (
            o(&[2, 16, 840, 1, 101, 3, 4, 2, 4]),
            o(&[1, 2, 840, 10045, 4, 3, 1]),
        ),
        Nid::SHA256 => (
            o(&[2, 16, 840, 1, 101, 3, 4, 2, 1]),
            o(&[1, 2, 840, 10045, 4, 3, 2]),
        ),
        Nid::SHA384 => (
            o(&[2, 16, 840, 1, 101, 3, 4, 2, 2]),
            o(&[1, 2, 840, 10045, 4, 3, 3]),
        ),
        Nid::SHA512 => (
            o(&[2, 16, 840, 1, 101, 3, 4, 2, 3]),
            o(&[1, 2, 840, 10045, 4, 3, 4]),
        ),
        _ => return None,
    })
}

/// The content-encryption algorithm OID for `cipher` (CBC modes only).
fn cipher_oid(cipher: Cipher) -> Option<&'static Oid> {
    const fn o(arcs: &'static [u32]) -> &'static Oid {
        Oid::const_new(arcs)
    }
    Some(match cipher.nid() {
        Nid::DES_EDE3_CBC => o(&[1, 2, 840, 113549, 3, 7]),
        Nid::AES_128_CBC => o(&[2, 16, 840, 1, 101, 3, 4, 1, 2]),
        Nid::AES_192_CBC => o(&[2, 16, 840, 1, 101, 3, 4, 1, 22]),
        Nid::AES_256_CBC => o(&[2, 16, 840, 1, 101, 3, 4, 1, 42]),
        _ => return None,
    })
}

/// DER IssuerAndSerialNumber of a DER certificate: its issuer Name and
/// serialNumber exactly as encoded in the TBSCertificate.
pub fn issuer_and_serial(cert_der: &[u8]) -> Result<Vec<u8>, CmsError> {
    let (issuer, serial) = issuer_and_serial_parts(cert_der)?;
    Ok(seq(&[issuer, serial]))
}

/// The issuer Name and serialNumber TLVs of a DER certificate.
pub(crate) fn issuer_and_serial_parts(cert_der: &[u8]) -> Result<(&[u8], &[u8]), CmsError> {
    let (cert, _) = raw::read_tlv(cert_der).map_err(malformed)?;
    let (tbs, _) = raw::read_tlv(cert.content).map_err(malformed)?;
    let mut fields = tbs.content;
    let mut next = || -> Result<raw::Tlv<'_>, CmsError> {
        let (f, rest) = raw::read_tlv(fields).map_err(malformed)?;
        fields = rest;
        Ok(f)
    };
    let mut serial = next()?;
    if serial.tag == 0xa0 {
        serial = next()?;
    }
    let _signature = next()?;
    let issuer = next()?;
    if cert.tag != 0x30 || tbs.tag != 0x30 || serial.tag != 0x02 || issuer.tag != 0x30 {
        return Err(malformed("not an X.509 certificate"));
    }
    Ok((issuer.whole, serial.whole))
}

/// What every reply SignedData of one KDC identity shares, encoded once.
pub(crate) struct Prepared {
    /// The SignerInfo sid (IssuerAndSerialNumber of the KDC certificate).
    sid: Vec<u8>,
    /// `[0] IMPLICIT CertificateSet`: the KDC certificate and its chain.
    certificates: Vec<u8>,
    is_ec: bool,
}

impl Prepared {
    pub(crate) fn new(
        cert: &X509,
        key: &PKeyRef<Private>,
        chain: &[X509],
    ) -> Result<Prepared, CmsError> {
        let own = cert.to_der()?;
        let mut ders = vec![own.clone()];
        for c in chain {
            let der = c.to_der()?;
            // A chain file often starts with the signer itself.
            if !ders.contains(&der) {
                ders.push(der);
            }
        }
        // DER orders a SET OF by the elements' encodings.
        ders.sort();
        let is_ec = match key.id() {
            Id::RSA => false,
            Id::EC => true,
            other => return Err(malformed(format!("KDC key type {other:?} not supported"))),
        };
        Ok(Prepared {
            sid: issuer_and_serial(&own)?,
            certificates: tlv(0xa0, &ders.concat()),
            is_ec,
        })
    }
}

/// signingTime's value: UTCTime for 1950–2049, GeneralizedTime otherwise
/// (RFC 5652 §11.3).
fn signing_time(unix: i64) -> Vec<u8> {
    let t = krb::msg::time::from_unix(unix).0;
    let year: i64 = t.format("%Y").to_string().parse().unwrap_or(0);
    if (1950..2050).contains(&year) {
        tlv(0x17, t.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        tlv(0x18, t.format("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

/// A DER SignedData (bare, no ContentInfo) carrying `content` of type
/// `econtent_type`, signed by `key` with digest `md` at Unix time `now`.
pub(crate) fn signed_data(
    prepared: &Prepared,
    key: &PKeyRef<Private>,
    md: MessageDigest,
    econtent_type: &Oid,
    content: &[u8],
    now: i64,
) -> Result<Vec<u8>, CmsError> {
    let (digest_oid, ecdsa_oid) =
        digest_oids(md).ok_or_else(|| malformed("digest not supported for replies"))?;
    let digest_alg = seq(&[&oid_tlv(digest_oid)]);
    let type_tlv = oid_tlv(econtent_type);
    let message_digest = openssl::hash::hash(md, content)?;
    let mut attrs = [
        seq(&[&oid_tlv(CONTENT_TYPE), &tlv(0x31, &type_tlv)]),
        seq(&[&oid_tlv(SIGNING_TIME), &tlv(0x31, &signing_time(now))]),
        seq(&[
            &oid_tlv(MESSAGE_DIGEST),
            &tlv(0x31, &tlv(0x04, &message_digest)),
        ]),
    ];
    // DER orders a SET OF by the elements' encodings.
    attrs.sort();
    let attrs = attrs.concat();
    // RFC 5652 §5.4: the signature covers the attributes as a SET OF.
    let to_sign = openssl::hash::hash(md, &tlv(0x31, &attrs))?;
    let mut ctx = PkeyCtx::new(key)?;
    ctx.sign_init()?;
    if !prepared.is_ec {
        ctx.set_rsa_padding(Padding::PKCS1)?;
    }
    ctx.set_signature_md(
        openssl::md::Md::from_nid(md.type_())
            .ok_or_else(|| malformed("digest not available for signing"))?,
    )?;
    let mut signature = Vec::new();
    ctx.sign_to_vec(&to_sign, &mut signature)?;
    let signature_alg = if prepared.is_ec {
        seq(&[&oid_tlv(ecdsa_oid)])
    } else {
        seq(&[&oid_tlv(RSA_ENCRYPTION), &NULL])
    };
    let signer_info = seq(&[
        &small_int(1),
        &prepared.sid,
        &digest_alg,
        &tlv(0xa0, &attrs),
        &signature_alg,
        &tlv(0x04, &signature),
    ]);
    let encap = seq(&[&type_tlv, &tlv(0xa0, &tlv(0x04, content))]);
    Ok(seq(&[
        &small_int(3),
        &tlv(0x31, &digest_alg),
        &encap,
        &prepared.certificates,
        &tlv(0x31, &signer_info),
    ]))
}

/// Wraps `content` of type `content_type` in a DER ContentInfo.
pub(crate) fn content_info(content_type: &Oid, content: &[u8]) -> Vec<u8> {
    seq(&[&oid_tlv(content_type), &tlv(0xa0, content)])
}

/// A DER ContentInfo(EnvelopedData): `content` (of type `inner_type`)
/// encrypted with `cipher` for the holder of the RSA key `recipient`,
/// named by `recipient_id` (DER IssuerAndSerialNumber).
pub fn enveloped_data(
    inner_type: &Oid,
    content: &[u8],
    recipient: &PKeyRef<Public>,
    recipient_id: &[u8],
    cipher: Cipher,
) -> Result<Vec<u8>, CmsError> {
    let cipher_oid =
        cipher_oid(cipher).ok_or_else(|| malformed("content cipher not supported for replies"))?;
    if recipient.id() != Id::RSA {
        return Err(malformed("key transport needs an RSA recipient key"));
    }
    // Key and IV from one call to the DRBG.
    let key_len = cipher.key_len();
    let mut key_iv = zeroize::Zeroizing::new(vec![0u8; key_len + cipher.iv_len().unwrap_or(0)]);
    openssl::rand::rand_bytes(&mut key_iv)?;
    let (cek, iv) = key_iv.split_at_mut(key_len);
    if cipher.nid() == Nid::DES_EDE3_CBC {
        // Odd parity, as OpenSSL's DES key generation sets it.
        for b in cek.iter_mut() {
            *b = (*b & 0xfe) | u8::from((*b >> 1).count_ones() % 2 == 0);
        }
    }
    let (cek, iv) = (&*cek, &*iv);
    let encrypted = openssl::symm::encrypt(cipher, cek, Some(iv), content)?;
    let mut ctx = PkeyCtx::new(recipient)?;
    ctx.encrypt_init()?;
    ctx.set_rsa_padding(Padding::PKCS1)?;
    let mut encrypted_key = Vec::new();
    ctx.encrypt_to_vec(cek, &mut encrypted_key)?;
    let recipient_info = seq(&[
        &small_int(0),
        recipient_id,
        &seq(&[&oid_tlv(RSA_ENCRYPTION), &NULL]),
        &tlv(0x04, &encrypted_key),
    ]);
    let encrypted_content_info = seq(&[
        &oid_tlv(inner_type),
        &seq(&[&oid_tlv(cipher_oid), &tlv(0x04, iv)]),
        &tlv(0x80, &encrypted),
    ]);
    let enveloped = seq(&[
        &small_int(0),
        &tlv(0x31, &recipient_info),
        &encrypted_content_info,
    ]);
    Ok(content_info(ENVELOPED_DATA, &enveloped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des3_keys_get_odd_parity() {
        for b in 0..=255u8 {
            let p = (b & 0xfe) | u8::from((b >> 1).count_ones() % 2 == 0);
            assert_eq!(p.count_ones() % 2, 1, "{b:#04x} -> {p:#04x}");
        }
    }

    #[test]
    fn signing_time_switches_to_generalized_time_in_2050() {
        // 2049-12-31T23:59:59Z and 2050-01-01T00:00:00Z.
        assert_eq!(signing_time(2_524_607_999), tlv(0x17, b"491231235959Z"));
        assert_eq!(signing_time(2_524_608_000), tlv(0x18, b"20500101000000Z"));
    }
}
