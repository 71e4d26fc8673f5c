//! The device side of PKINIT, for the device simulator and tests: builds
//! requests the way PacketCable devices do (shared PROTOCOL.md §1.2: SHA-1,
//! rsaEncryption, no signed attributes, rsa-md5 paChecksum,
//! PA-PROV-SRV-LOCATION) or as RFC 4556 clients do, and opens replies.

use certs::store::TrustStore;
use krb::crypto::{ChecksumType, EncType, Key, unkeyed_checksum, usage};
use krb::msg::consts::padata;
use krb::msg::{self, Checksum, PaData, time};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use sha1::{Digest, Sha1};

use crate::asn1::{
    AuthPack, AuthPack19, PaPkAsRep, PaPkAsReq, PkAuthenticator, PkAuthenticator19, ReplyKeyPack,
    ReplyKeyPack19, nonce_u32, oid,
};
use crate::cms::{self, SignOptions};
use krb::msg::raw::tlv;

mod profile;
pub use profile::{
    CertSet, Profile, SignatureAlg, SignedAttrs, SignerId, rfc4556_padata_with, signed_data,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("encoding: {0}")]
    Encode(String),
    #[error("reply: {0}")]
    Reply(String),
    #[error("KDC certificate: {0}")]
    KdcNotTrusted(String),
    #[error(transparent)]
    Cms(#[from] cms::CmsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

fn enc(e: impl std::fmt::Display) -> ClientError {
    ClientError::Encode(e.to_string())
}

fn bad(e: impl std::fmt::Display) -> ClientError {
    ClientError::Reply(e.to_string())
}

/// A device's certificate, key and the intermediates it sends.
pub struct DeviceIdentity {
    pub cert: X509,
    pub key: PKey<Private>,
    pub chain: Vec<X509>,
}

impl DeviceIdentity {
    pub fn load(
        cert: &std::path::Path,
        key: &std::path::Path,
        chain: Option<&std::path::Path>,
    ) -> Result<Self, ClientError> {
        let cert = X509::from_pem(&std::fs::read(cert)?)?;
        let key = PKey::private_key_from_pem(&std::fs::read(key)?)?;
        let chain = match chain {
            Some(p) => X509::stack_from_pem(&std::fs::read(p)?)?,
            None => Vec::new(),
        };
        Ok(DeviceIdentity { cert, key, chain })
    }
}

/// The PacketCable padata for an AS-REQ whose KDC-REQ-BODY encodes to
/// `req_body`: PA-PK-AS-REQ-19 (14) and, when given, PA-PROV-SRV-LOCATION (-1).
pub fn packetcable_padata(
    dev: &DeviceIdentity,
    req_body: &[u8],
    nonce: u32,
    now: (i64, u32),
    prov_srv_location: Option<&str>,
) -> Result<Vec<PaData>, ClientError> {
    let md5 = unkeyed_checksum(ChecksumType::RsaMd5, req_body).map_err(enc)?;
    let pack = AuthPack19 {
        pk_authenticator: PkAuthenticator19 {
            cusec: (now.1 as i64).into(),
            ctime: time::from_unix(now.0),
            nonce: (nonce as i64).into(),
            pa_checksum: Checksum {
                r#type: ChecksumType::RsaMd5.as_i32(),
                checksum: md5.into(),
            },
        },
        client_public_value: None,
    };
    let der = msg::encode("AuthPack", &pack).map_err(enc)?;
    let opts = SignOptions {
        digest: Some(MessageDigest::sha1()),
        signed_attributes: false,
        extra_certs: &dev.chain,
    };
    let signed = cms::sign(oid::AUTH_DATA, &der, &dev.cert, &dev.key, &opts)?;
    // PA-PK-AS-REQ-19 ::= SEQUENCE { signedAuthPack [0] EXPLICIT ContentInfo }
    let value = tlv(0x30, &tlv(0xa0, &signed));
    let mut out = vec![PaData {
        r#type: padata::PK_AS_REQ_19,
        value: value.into(),
    }];
    if let Some(fqdn) = prov_srv_location {
        out.push(PaData {
            r#type: padata::PROV_SRV_LOCATION,
            value: tlv(0x1b, fqdn.as_bytes()).into(),
        });
    }
    Ok(out)
}

/// An RFC 4556 PA-PK-AS-REQ (16) for RSA key transport (`client_public_value`
/// None) or DH (Some), with a clientDHNonce when given (which lets the KDC
/// reuse its DH key, RFC 4556 §3.2.3.1).
pub fn rfc4556_padata(
    dev: &DeviceIdentity,
    req_body: &[u8],
    nonce: u32,
    now: (i64, u32),
    client_public_value: Option<rasn_pkix::SubjectPublicKeyInfo>,
    supported_kdfs: Option<Vec<crate::asn1::KdfAlgorithmId>>,
    client_dh_nonce: Option<Vec<u8>>,
) -> Result<PaData, ClientError> {
    let pack = AuthPack {
        pk_authenticator: PkAuthenticator {
            cusec: (now.1 as i64).into(),
            ctime: time::from_unix(now.0),
            nonce: (nonce as i64).into(),
            pa_checksum: Some(Sha1::digest(req_body).to_vec().into()),
            freshness_token: None,
        },
        client_public_value,
        supported_cms_types: None,
        client_dh_nonce: client_dh_nonce.map(Into::into),
        supported_kdfs,
    };
    let der = msg::encode("AuthPack", &pack).map_err(enc)?;
    let opts = SignOptions {
        digest: None,
        signed_attributes: true,
        extra_certs: &dev.chain,
    };
    let signed = cms::sign(oid::AUTH_DATA, &der, &dev.cert, &dev.key, &opts)?;
    let req = PaPkAsReq {
        signed_auth_pack: signed.into(),
        trusted_certifiers: None,
        kdc_pk_id: None,
    };
    Ok(PaData {
        r#type: padata::PK_AS_REQ,
        value: msg::encode("PA-PK-AS-REQ", &req).map_err(enc)?.into(),
    })
}

/// Opens encKeyPack: decrypts with the device key, checks the KDC's
/// signature and chain against `kdc_trust`; returns the signed content.
fn open_key_pack(
    enveloped: &[u8],
    dev: &DeviceIdentity,
    kdc_trust: &TrustStore,
) -> Result<Vec<u8>, ClientError> {
    let inner = cms::open_envelope(enveloped, &dev.cert, &dev.key)?;
    let ci = crate::request::as_content_info(&inner).map_err(bad)?;
    let signed = cms::verify_signed(&ci)?;
    if *signed.econtent_type != *oid::RKEY_DATA {
        return Err(bad("signed content is not id-pkinit-rkeyData"));
    }
    let others: Vec<X509> = signed
        .certificates
        .iter()
        .filter(|c| c.to_der().ok() != signed.signer.to_der().ok())
        .cloned()
        .collect();
    kdc_trust
        .verify_now(&signed.signer, &others)
        .map_err(|e| ClientError::KdcNotTrusted(e.to_string()))?;
    Ok(signed.econtent)
}

/// The reply key from a PacketCable PA-PK-AS-REP-19 (padata 15).
pub fn open_packetcable_reply(
    pa_value: &[u8],
    dev: &DeviceIdentity,
    kdc_trust: &TrustStore,
    nonce: u32,
) -> Result<Key, ClientError> {
    let (tlv, rest) = msg::raw::read_tlv(pa_value).map_err(bad)?;
    if tlv.tag != 0xa1 || !rest.is_empty() {
        return Err(bad("PA-PK-AS-REP-19 is not encKeyPack [1]"));
    }
    let content = open_key_pack(tlv.content, dev, kdc_trust)?;
    let pack: ReplyKeyPack19 = msg::decode("ReplyKeyPack", &content).map_err(bad)?;
    if nonce_u32(&pack.nonce) != Some(nonce) {
        return Err(bad("ReplyKeyPack nonce mismatch"));
    }
    reply_key(&pack.reply_key)
}

/// The reply key from an RFC 4556 RSA-mode PA-PK-AS-REP (padata 17);
/// `as_req` is the AS-REQ exactly as sent (asChecksum covers it).
pub fn open_rfc4556_rsa_reply(
    pa_value: &[u8],
    dev: &DeviceIdentity,
    kdc_trust: &TrustStore,
    as_req: &[u8],
) -> Result<Key, ClientError> {
    let rep: PaPkAsRep = msg::decode("PA-PK-AS-REP", pa_value).map_err(bad)?;
    let PaPkAsRep::EncKeyPack(enveloped) = rep else {
        return Err(bad("expected encKeyPack"));
    };
    let content = open_key_pack(&enveloped, dev, kdc_trust)?;
    let pack: ReplyKeyPack = msg::decode("ReplyKeyPack", &content).map_err(bad)?;
    let key = reply_key(&pack.reply_key)?;
    let ctype =
        ChecksumType::from_i32(pack.as_checksum.r#type).ok_or_else(|| bad("asChecksum type"))?;
    key.verify_checksum_with(
        ctype,
        usage::TGS_REQ_AUTH_CKSUM,
        as_req,
        &pack.as_checksum.checksum,
    )
    .map_err(|_| bad("asChecksum does not match the AS-REQ"))?;
    Ok(key)
}

fn reply_key(k: &msg::EncryptionKey) -> Result<Key, ClientError> {
    let etype = EncType::from_i32(k.r#type).ok_or_else(|| bad("reply key etype"))?;
    Key::new(etype, &k.value).map_err(bad)
}

/// What a DH-mode client remembers between request and reply.
#[derive(Clone, Copy)]
pub struct DhClientState<'a> {
    pub key: &'a crate::dh::ClientKey,
    /// The clientDHNonce it sent, if any.
    pub client_dh_nonce: Option<&'a [u8]>,
    /// The PKAuthenticator nonce.
    pub nonce: u32,
    /// The etype of the reply key (the AS-REP enc-part's).
    pub etype: EncType,
}

/// The reply key from an RFC 4556 DH-mode PA-PK-AS-REP: checks the KDC's
/// signature over KDCDHKeyInfo and the nonce, finishes the agreement and
/// derives the key as the KDC did (RFC 8636 KDF when it names one, else
/// octetstring2key). `names` are the cname/sname as sent in the AS-REQ.
pub fn open_rfc4556_dh_reply(
    pa_value: &[u8],
    state: &DhClientState<'_>,
    kdc_trust: &TrustStore,
    as_req: &[u8],
    names: &crate::server::KdfNames<'_>,
) -> Result<Key, ClientError> {
    let DhClientState {
        key: client_key,
        client_dh_nonce,
        nonce,
        etype,
    } = *state;
    let rep: PaPkAsRep = msg::decode("PA-PK-AS-REP", pa_value).map_err(bad)?;
    let PaPkAsRep::DhInfo(info) = rep else {
        return Err(bad("expected dhInfo"));
    };
    let signed =
        cms::verify_signed(&crate::request::as_content_info(&info.dh_signed_data).map_err(bad)?)?;
    if *signed.econtent_type != *oid::DH_KEY_DATA {
        return Err(bad("signed content is not id-pkinit-DHKeyData"));
    }
    let others: Vec<X509> = signed
        .certificates
        .iter()
        .filter(|c| c.to_der().ok() != signed.signer.to_der().ok())
        .cloned()
        .collect();
    kdc_trust
        .verify_now(&signed.signer, &others)
        .map_err(|e| ClientError::KdcNotTrusted(e.to_string()))?;
    let key_info: crate::asn1::KdcDhKeyInfo =
        msg::decode("KDCDHKeyInfo", &signed.econtent).map_err(bad)?;
    if nonce_u32(&key_info.nonce) != Some(nonce) {
        return Err(bad("KDCDHKeyInfo nonce mismatch"));
    }
    // serverDHNonce comes with dhKeyExpiration (a reused KDC key), never
    // without; a reuse needs our clientDHNonce (RFC 4556 §3.2.3.1).
    let reused = key_info.dh_key_expiration.is_some();
    if reused != info.server_dh_nonce.is_some() {
        return Err(bad("serverDHNonce without dhKeyExpiration or the reverse"));
    }
    if reused && client_dh_nonce.is_none() {
        return Err(bad("KDC reused its DH key without our clientDHNonce"));
    }
    let public = key_info.subject_public_key.as_raw_slice().to_vec();
    let secret = client_key.finish(&public).map_err(bad)?;
    match info
        .kdf
        .as_ref()
        .map(|k| crate::dh::Kdf::from_oid(&k.kdf_id))
    {
        Some(Some(kdf)) => crate::dh::kdf_rfc8636(
            kdf,
            etype,
            &secret,
            names.client,
            names.server,
            as_req,
            pa_value,
        ),
        Some(None) => return Err(bad("KDC chose a KDF we did not offer")),
        // Both nonces only with a reused KDC key (RFC 4556 §3.2.3.1).
        None => crate::dh::octetstring2key(
            etype,
            &secret,
            reused.then_some(client_dh_nonce).flatten(),
            info.server_dh_nonce.as_deref(),
        ),
    }
    .map_err(bad)
}
