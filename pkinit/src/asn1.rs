//! PKINIT wire types on rasn: RFC 4556 (+ RFC 8070 freshness, RFC 8636 KDF)
//! and the PacketCable pre-RFC ("-19", draft-12..19) forms of shared
//! PROTOCOL.md §1.2 and §1.4. rasn-kerberos has none of these.
//!
//! CMS blobs stay as bytes here; OpenSSL parses and checks them.

use rasn::prelude::*;
use rasn_kerberos::{Checksum, EncryptionKey, KerberosTime, PrincipalName, Realm};
use rasn_pkix::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// PA-PK-AS-REQ (padata 16). RFC 4556 §3.2.1.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct PaPkAsReq {
    /// DER ContentInfo(SignedData(AuthPack)).
    #[rasn(tag(0))]
    pub signed_auth_pack: OctetString,
    #[rasn(tag(explicit(1)))]
    pub trusted_certifiers: Option<SequenceOf<ExternalPrincipalIdentifier>>,
    #[rasn(tag(2))]
    pub kdc_pk_id: Option<OctetString>,
}

#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct ExternalPrincipalIdentifier {
    #[rasn(tag(0))]
    pub subject_name: Option<OctetString>,
    #[rasn(tag(1))]
    pub issuer_and_serial_number: Option<OctetString>,
    #[rasn(tag(2))]
    pub subject_key_identifier: Option<OctetString>,
}

/// AuthPack, the signed content of an RFC 4556 request.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct AuthPack {
    #[rasn(tag(explicit(0)))]
    pub pk_authenticator: PkAuthenticator,
    /// Present for DH/ECDH; absent for RSA key transport.
    #[rasn(tag(explicit(1)))]
    pub client_public_value: Option<SubjectPublicKeyInfo>,
    #[rasn(tag(explicit(2)))]
    pub supported_cms_types: Option<SequenceOf<AlgorithmIdentifier>>,
    #[rasn(tag(explicit(3)))]
    pub client_dh_nonce: Option<OctetString>,
    /// RFC 8636.
    #[rasn(tag(explicit(4)))]
    pub supported_kdfs: Option<SequenceOf<KdfAlgorithmId>>,
}

#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct PkAuthenticator {
    #[rasn(tag(explicit(0)))]
    pub cusec: Integer,
    #[rasn(tag(explicit(1)))]
    pub ctime: KerberosTime,
    /// Some clients send this INTEGER negative (a signed 32-bit habit);
    /// kept as a big integer and normalised by [`nonce_u32`].
    #[rasn(tag(explicit(2)))]
    pub nonce: Integer,
    /// SHA-1 of the KDC-REQ-BODY bytes.
    #[rasn(tag(explicit(3)))]
    pub pa_checksum: Option<OctetString>,
    /// RFC 8070.
    #[rasn(tag(explicit(4)))]
    pub freshness_token: Option<OctetString>,
}

/// RFC 8636 KDF identifier.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct KdfAlgorithmId {
    #[rasn(tag(explicit(0)))]
    pub kdf_id: ObjectIdentifier,
}

/// PA-PK-AS-REP (padata 17).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(choice)]
pub enum PaPkAsRep {
    #[rasn(tag(explicit(0)))]
    DhInfo(DhRepInfo),
    /// DER ContentInfo(EnvelopedData(SignedData(ReplyKeyPack))).
    #[rasn(tag(1))]
    EncKeyPack(OctetString),
}

#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct DhRepInfo {
    /// DER ContentInfo(SignedData(KDCDHKeyInfo)).
    #[rasn(tag(0))]
    pub dh_signed_data: OctetString,
    #[rasn(tag(explicit(1)))]
    pub server_dh_nonce: Option<OctetString>,
    #[rasn(tag(explicit(2)))]
    pub kdf: Option<KdfAlgorithmId>,
}

#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct KdcDhKeyInfo {
    /// The KDC's public value: DER INTEGER (MODP) or the EC point.
    #[rasn(tag(explicit(0)))]
    pub subject_public_key: BitString,
    #[rasn(tag(explicit(1)))]
    pub nonce: Integer,
    #[rasn(tag(explicit(2)))]
    pub dh_key_expiration: Option<KerberosTime>,
}

/// RFC 4556 ReplyKeyPack (RSA key transport).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct ReplyKeyPack {
    #[rasn(tag(explicit(0)))]
    pub reply_key: EncryptionKey,
    /// Keyed checksum (key usage 6, the reply key) over the AS-REQ bytes.
    #[rasn(tag(explicit(1)))]
    pub as_checksum: Checksum,
}

/// KRB5PrincipalName, the id-pkinit-san otherName value.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct Krb5PrincipalName {
    #[rasn(tag(explicit(0)))]
    pub realm: Realm,
    #[rasn(tag(explicit(1)))]
    pub principal_name: PrincipalName,
}

/// PacketCable / draft-12..19 AuthPack (signed content of a padata-14 request).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct AuthPack19 {
    #[rasn(tag(explicit(0)))]
    pub pk_authenticator: PkAuthenticator19,
    /// Present only for DH, which PacketCable devices do not use.
    #[rasn(tag(explicit(1)))]
    pub client_public_value: Option<SubjectPublicKeyInfo>,
}

/// The "-19" PKAuthenticator: a full Kerberos Checksum, not an OCTET STRING.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct PkAuthenticator19 {
    #[rasn(tag(explicit(0)))]
    pub cusec: Integer,
    #[rasn(tag(explicit(1)))]
    pub ctime: KerberosTime,
    #[rasn(tag(explicit(2)))]
    pub nonce: Integer,
    #[rasn(tag(explicit(3)))]
    pub pa_checksum: Checksum,
}

/// The "-19" ReplyKeyPack: reply key and the PKAuthenticator nonce.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct ReplyKeyPack19 {
    #[rasn(tag(explicit(0)))]
    pub reply_key: EncryptionKey,
    #[rasn(tag(explicit(1)))]
    pub nonce: Integer,
}

/// RSASSA-PSS-params (RFC 4055 §3.1), the parameters of an RSASSA-PSS
/// signatureAlgorithm; absent fields take their defaults.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq, Default)]
pub struct RsassaPssParams {
    #[rasn(tag(explicit(0)))]
    pub hash_algorithm: Option<AlgorithmIdentifier>,
    #[rasn(tag(explicit(1)))]
    pub mask_gen_algorithm: Option<AlgorithmIdentifier>,
    #[rasn(tag(explicit(2)))]
    pub salt_length: Option<Integer>,
    #[rasn(tag(explicit(3)))]
    pub trailer_field: Option<Integer>,
}

/// A nonce INTEGER as the 32-bit value on the wire: negative values from
/// clients that encode it as a signed 32-bit integer are mapped back.
pub fn nonce_u32(n: &Integer) -> Option<u32> {
    if let Ok(v) = u32::try_from(n) {
        return Some(v);
    }
    i32::try_from(n).ok().map(|v| v as u32)
}

/// OIDs used by PKINIT.
pub mod oid {
    use rasn::types::Oid;
    /// id-pkinit-authData (AuthPack content type).
    pub const AUTH_DATA: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 2, 3, 1]);
    /// id-pkinit-DHKeyData.
    pub const DH_KEY_DATA: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 2, 3, 2]);
    /// id-pkinit-rkeyData.
    pub const RKEY_DATA: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 2, 3, 3]);
    /// id-pkinit-san.
    pub const PKINIT_SAN: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 2, 2]);
    /// id-pkinit-KPClientAuth / id-pkinit-KPKdc.
    pub const KP_CLIENT_AUTH: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 2, 3, 4]);
    pub const KP_KDC: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 2, 3, 5]);
    /// RFC 8636 KDFs.
    pub const KDF_SHA1: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 2, 3, 6, 1]);
    pub const KDF_SHA256: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 2, 3, 6, 2]);
    pub const KDF_SHA512: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 2, 3, 6, 3]);
    /// CMS content types.
    pub const DATA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 7, 1]);
    pub const SIGNED_DATA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 7, 2]);
    pub const ENVELOPED_DATA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 7, 3]);
    /// Public key algorithms of clientPublicValue.
    pub const DH_PUBLIC_NUMBER: &Oid = Oid::const_new(&[1, 2, 840, 10046, 2, 1]);
    pub const EC_PUBLIC_KEY: &Oid = Oid::const_new(&[1, 2, 840, 10045, 2, 1]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use krb::msg::time;

    #[test]
    fn pa_pk_as_req_uses_implicit_octet_string_tags() {
        let req = PaPkAsReq {
            signed_auth_pack: vec![0x30, 0x00].into(),
            trusted_certifiers: None,
            kdc_pk_id: Some(vec![0xAA].into()),
        };
        let der = rasn::der::encode(&req).unwrap();
        assert_eq!(der, [0x30, 0x07, 0x80, 0x02, 0x30, 0x00, 0x82, 0x01, 0xAA]);
        assert_eq!(rasn::der::decode::<PaPkAsReq>(&der).unwrap(), req);
    }

    #[test]
    fn pa_pk_as_rep_choice_tags() {
        let rsa = PaPkAsRep::EncKeyPack(vec![0x30, 0x00].into());
        assert_eq!(rasn::der::encode(&rsa).unwrap(), [0x81, 0x02, 0x30, 0x00]);
        let dh = PaPkAsRep::DhInfo(DhRepInfo {
            dh_signed_data: vec![0x30, 0x00].into(),
            server_dh_nonce: None,
            kdf: None,
        });
        assert_eq!(
            rasn::der::encode(&dh).unwrap(),
            [0xA0, 0x06, 0x30, 0x04, 0x80, 0x02, 0x30, 0x00]
        );
    }

    #[test]
    fn pk_authenticator_19_round_trip_and_layout() {
        let a = PkAuthenticator19 {
            cusec: 5.into(),
            ctime: time::from_unix(1_700_000_000),
            nonce: 7.into(),
            pa_checksum: Checksum {
                r#type: 7,
                checksum: vec![0u8; 16].into(),
            },
        };
        let der = rasn::der::encode(&a).unwrap();
        // cusec [0] INTEGER first: what tells "-19" from draft-9 (kdcName [0] PrincipalName).
        assert_eq!(&der[2..7], &[0xA0, 0x03, 0x02, 0x01, 0x05]);
        assert_eq!(rasn::der::decode::<PkAuthenticator19>(&der).unwrap(), a);
    }

    #[test]
    fn negative_nonces_map_to_u32() {
        assert_eq!(nonce_u32(&Integer::from(-1)), Some(u32::MAX));
        assert_eq!(nonce_u32(&Integer::from(4_294_967_295u64)), Some(u32::MAX));
        assert_eq!(nonce_u32(&Integer::from(1u64 << 33)), None);
    }
}
