//! Recognising a PKINIT request's padata: which form it is and where its
//! CMS SignedData is. Signature and content checks happen later (CMS).
//!
//! Forms (shared PROTOCOL.md §1.1–1.2):
//! * padata 16: RFC 4556 PA-PK-AS-REQ, `signedAuthPack [0] IMPLICIT OCTET STRING`.
//! * padata 14: the PacketCable "-19" PA-PK-AS-REQ, `signedAuthPack [0] ContentInfo`
//!   with an explicit (0xA0) tag — or a primitive (0x80) one, as some encoders do.
//! * padata 15 as a *request*: Windows 2000 draft-9; recognised and refused.
//!
//! In every form the signed data may be a ContentInfo or a bare SignedData
//! (Windows and MIT send the latter in places); we hand OpenSSL a ContentInfo.

use krb::msg::consts::padata;
use krb::msg::raw::{self, RawError};

use crate::asn1::PaPkAsReq;

/// Which PKINIT dialect a request speaks; replies answer in the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// PacketCable pre-RFC (padata 14 → reply padata 15).
    PacketCable,
    /// RFC 4556 (padata 16 → reply padata 17).
    Rfc4556,
}

/// Why a PKINIT padata is refused before any signature check (its code
/// and labels: [`crate::server::Refusal`], through `PkinitError::Request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("malformed PA-PK-AS-REQ: {0}")]
    Malformed(String),
    #[error("Windows draft-9 PKINIT is not supported")]
    Draft9,
    #[error("padata type {0} is not a PKINIT request")]
    NotPkinit(i32),
}

/// A PKINIT request's signed part, ready for CMS verification.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub form: Form,
    /// DER ContentInfo(SignedData).
    pub content_info: Vec<u8>,
}

fn malformed(e: impl std::fmt::Display) -> RequestError {
    RequestError::Malformed(e.to_string())
}

fn raw_err(e: RawError) -> RequestError {
    malformed(e)
}

/// id-signedData, DER-encoded with its tag and length.
const SIGNED_DATA_OID_TLV: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];

/// Wraps a bare SignedData in a ContentInfo; passes a ContentInfo through.
pub fn as_content_info(bytes: &[u8]) -> Result<Vec<u8>, RequestError> {
    let (outer, rest) = raw::read_tlv(bytes).map_err(raw_err)?;
    if outer.tag != 0x30 || !rest.is_empty() {
        return Err(malformed("signed data is not one SEQUENCE"));
    }
    let (first, _) = raw::read_tlv(outer.content).map_err(raw_err)?;
    match first.tag {
        // ContentInfo: contentType OID first.
        0x06 if first.whole == SIGNED_DATA_OID_TLV => Ok(bytes.to_vec()),
        0x06 => Err(malformed("ContentInfo is not id-signedData")),
        // SignedData: version INTEGER first.
        0x02 => {
            let mut body = SIGNED_DATA_OID_TLV.to_vec();
            body.extend_from_slice(&raw::tlv(0xa0, bytes));
            Ok(raw::tlv(0x30, &body))
        }
        t => Err(malformed(format!("unexpected tag {t:#04x} in signed data"))),
    }
}

/// Finds the signed AuthPack of a PKINIT padata.
pub fn parse(pa_type: i32, value: &[u8]) -> Result<SignedRequest, RequestError> {
    match pa_type {
        padata::PK_AS_REQ => {
            let req: PaPkAsReq = krb::msg::decode("PA-PK-AS-REQ", value).map_err(malformed)?;
            Ok(SignedRequest {
                form: Form::Rfc4556,
                content_info: as_content_info(&req.signed_auth_pack)?,
            })
        }
        padata::PK_AS_REQ_19 => {
            let (seq, rest) = raw::read_tlv(value).map_err(raw_err)?;
            if seq.tag != 0x30 || !rest.is_empty() {
                return Err(malformed("PA-PK-AS-REQ-19 is not one SEQUENCE"));
            }
            let (field, _) = raw::read_tlv(seq.content).map_err(raw_err)?;
            let signed = match field.tag {
                // [0] EXPLICIT ContentInfo: the content is one TLV.
                0xa0 => {
                    let (inner, trailing) = raw::read_tlv(field.content).map_err(raw_err)?;
                    if !trailing.is_empty() {
                        return Err(malformed("trailing bytes in signedAuthPack"));
                    }
                    inner.whole
                }
                // [0] IMPLICIT OCTET STRING: the content is the DER.
                0x80 => field.content,
                t => return Err(malformed(format!("signedAuthPack has tag {t:#04x}"))),
            };
            Ok(SignedRequest {
                form: Form::PacketCable,
                content_info: as_content_info(signed)?,
            })
        }
        padata::PK_AS_REP_19 => Err(RequestError::Draft9),
        other => Err(RequestError::NotPkinit(other)),
    }
}

/// Whether a PKINIT padata's AuthPack carries a clientPublicValue (DH or
/// ECDH), read from the raw TLVs without decoding or checking anything:
/// the audit label of a request refused before its key agreement (the
/// form comes from what the request contains). False when the bytes do
/// not get that far.
pub fn asks_for_dh(pa_type: i32, value: &[u8]) -> bool {
    let walk = || -> Result<bool, RawError> {
        // PA-PK-AS-REQ(-19) ::= SEQUENCE { signedAuthPack [0] ..., ... }
        let (req, _) = raw::read_tlv(value)?;
        let (field, _) = raw::read_tlv(req.content)?;
        let signed = match (pa_type, field.tag) {
            (padata::PK_AS_REQ_19, 0xa0) => raw::read_tlv(field.content)?.0.whole,
            _ => field.content,
        };
        // ContentInfo { contentType, [0] { SignedData } } or a bare SignedData.
        let (outer, _) = raw::read_tlv(signed)?;
        let (first, after) = raw::read_tlv(outer.content)?;
        let signed_data = match first.tag {
            0x06 => {
                let (explicit, _) = raw::read_tlv(after)?;
                raw::read_tlv(explicit.content)?.0.content
            }
            _ => outer.content,
        };
        // SignedData { version, digestAlgorithms, encapContentInfo, ... }
        let (_, rest) = raw::read_tlv(signed_data)?;
        let (_, rest) = raw::read_tlv(rest)?;
        let (encap, _) = raw::read_tlv(rest)?;
        // EncapsulatedContentInfo { eContentType, [0] { OCTET STRING } }
        let (_, rest) = raw::read_tlv(encap.content)?;
        let (explicit, _) = raw::read_tlv(rest)?;
        let (octets, _) = raw::read_tlv(explicit.content)?;
        // AuthPack ::= SEQUENCE { [0] pkAuthenticator, [1] clientPublicValue OPTIONAL, ... }
        let (pack, _) = raw::read_tlv(octets.content)?;
        let (_, rest) = raw::read_tlv(pack.content)?;
        Ok(!rest.is_empty() && raw::read_tlv(rest)?.0.tag == 0xa1)
    };
    walk().unwrap_or(false)
}

/// Tells a "-19" PKAuthenticator (cusec INTEGER first) from a draft-9 one
/// (kdcName PrincipalName first), given the AuthPack DER.
pub fn is_draft9_auth_pack(auth_pack: &[u8]) -> bool {
    let first_inner_tag = || -> Result<u8, RawError> {
        let (pack, _) = raw::read_tlv(auth_pack)?;
        let (pk_auth_field, _) = raw::read_tlv(pack.content)?; // [0]
        let (pk_auth, _) = raw::read_tlv(pk_auth_field.content)?; // SEQUENCE
        let (first, _) = raw::read_tlv(pk_auth.content)?; // [0]
        let (value, _) = raw::read_tlv(first.content)?;
        Ok(value.tag)
    };
    first_inner_tag() == Ok(0x30)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny SignedData-shaped SEQUENCE (version INTEGER first).
    const BARE: [u8; 5] = [0x30, 0x03, 0x02, 0x01, 0x03];

    fn content_info() -> Vec<u8> {
        as_content_info(&BARE).unwrap()
    }

    #[test]
    fn wraps_bare_signed_data_once() {
        let ci = content_info();
        assert_eq!(&ci[..2], &[0x30, 0x12]);
        assert_eq!(&ci[2..13], &SIGNED_DATA_OID_TLV);
        assert_eq!(&ci[13..15], &[0xa0, 0x05]);
        assert_eq!(as_content_info(&ci).unwrap(), ci);
    }

    #[test]
    fn padata_14_explicit_and_primitive_tags() {
        let ci = content_info();
        let mut explicit = vec![0x30, (ci.len() + 2) as u8, 0xa0, ci.len() as u8];
        explicit.extend(&ci);
        let r = parse(14, &explicit).unwrap();
        assert_eq!(
            (r.form, r.content_info.clone()),
            (Form::PacketCable, ci.clone())
        );
        let mut primitive = vec![0x30, (BARE.len() + 2) as u8, 0x80, BARE.len() as u8];
        primitive.extend(BARE);
        assert_eq!(parse(14, &primitive).unwrap().content_info, ci);
    }

    #[test]
    fn padata_16_and_refusals() {
        let ci = content_info();
        let req = PaPkAsReq {
            signed_auth_pack: BARE.to_vec().into(),
            trusted_certifiers: None,
            kdc_pk_id: None,
        };
        let r = parse(16, &rasn::der::encode(&req).unwrap()).unwrap();
        assert_eq!((r.form, r.content_info), (Form::Rfc4556, ci));
        assert_eq!(parse(15, &[]).unwrap_err(), RequestError::Draft9);
        assert_eq!(parse(2, &[]).unwrap_err(), RequestError::NotPkinit(2));
        for bad in [&[][..], &[0x30], &[0x30, 0x02, 0xa1, 0x00], &[0x31, 0x00]] {
            assert!(
                matches!(parse(14, bad), Err(RequestError::Malformed(_))),
                "{bad:02x?}"
            );
        }
        let wrong_oid = [0x30, 0x05, 0x06, 0x03, 0x2a, 0x03, 0x04];
        assert!(matches!(
            as_content_info(&wrong_oid),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let ci = content_info();
        let mut explicit = vec![0x30, (ci.len() + 2) as u8, 0xa0, ci.len() as u8];
        explicit.extend(&ci);
        for n in 0..explicit.len() {
            assert!(parse(14, &explicit[..n]).is_err());
        }
    }

    #[test]
    fn dh_requests_are_told_from_the_raw_bytes() {
        // AuthPack { [0] {}, [1] {} } in SignedData in ContentInfo in padata 16.
        let auth_pack = raw::tlv(0x30, &[raw::tlv(0xa0, &[]), raw::tlv(0xa1, &[])].concat());
        let rsa_pack = raw::tlv(0x30, &raw::tlv(0xa0, &[]));
        let padata16 = |pack: &[u8]| {
            let encap = raw::tlv(
                0x30,
                &[
                    raw::tlv(0x06, &[0x2b]),
                    raw::tlv(0xa0, &raw::tlv(0x04, pack)),
                ]
                .concat(),
            );
            let sd = raw::tlv(
                0x30,
                &[raw::tlv(0x02, &[3]), raw::tlv(0x31, &[]), encap].concat(),
            );
            let ci = [SIGNED_DATA_OID_TLV.to_vec(), raw::tlv(0xa0, &sd)].concat();
            raw::tlv(0x30, &raw::tlv(0x80, &raw::tlv(0x30, &ci)))
        };
        assert!(asks_for_dh(16, &padata16(&auth_pack)));
        assert!(!asks_for_dh(16, &padata16(&rsa_pack)));
        let whole = padata16(&auth_pack);
        for n in 0..whole.len() {
            assert!(!asks_for_dh(16, &whole[..n]));
        }
    }

    #[test]
    fn sniffs_draft9_auth_packs() {
        // AuthPack { [0] PKAuthenticator { [0] <first field> ... } }
        let nineteen = [
            0x30, 0x09, 0xa0, 0x07, 0x30, 0x05, 0xa0, 0x03, 0x02, 0x01, 0x00,
        ];
        let draft9 = [
            0x30, 0x09, 0xa0, 0x07, 0x30, 0x05, 0xa0, 0x03, 0x30, 0x01, 0x00,
        ];
        assert!(!is_draft9_auth_pack(&nineteen));
        assert!(is_draft9_auth_pack(&draft9));
        assert!(!is_draft9_auth_pack(&[]));
    }
}
