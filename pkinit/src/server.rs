//! The KDC side of PKINIT: check a request (signature, device chain,
//! time, checksum, nonce, MAC) and build the reply padata.
//!
//! Error codes follow RFC 4556 §3.2.1–3.2.3 and shared PROTOCOL.md §1.3;
//! every refusal also has a short `reason()` for the audit log.

use certs::store::{ChainError, TrustStore};
use krb::crypto::{ChecksumType, Key, usage, verify_unkeyed_checksum};
use krb::msg::consts::{err, padata};
use krb::msg::raw::tlv;
use krb::msg::{self, Checksum, EncryptionKey, PaData, time};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::symm::Cipher;
use openssl::x509::X509;
use sha1::{Digest, Sha1};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::asn1::{
    self, AuthPack, AuthPack19, PaPkAsRep, ReplyKeyPack, ReplyKeyPack19, nonce_u32, oid,
};
use crate::cms::{self, CmsError};
use crate::dh::{self, ClientPublic, DhError, Group, Kdf, ServerKey};
use crate::reply;
use crate::request::{self, Form, RequestError};

/// Why a PKINIT request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PkinitError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("bad CMS signature: {0}")]
    BadSignature(String),
    #[error("malformed CMS: {0}")]
    MalformedCms(String),
    #[error("signed content is not an AuthPack (eContentType {0})")]
    WrongContentType(String),
    #[error("device certificate: {0}")]
    Chain(#[from] ChainError),
    #[error("malformed AuthPack: {0}")]
    MalformedAuthPack(String),
    #[error("clock skew too great")]
    Skew,
    #[error("paChecksum missing")]
    ChecksumMissing,
    #[error("paChecksum type {0} not supported")]
    ChecksumType(i32),
    #[error("paChecksum does not match the request body")]
    ChecksumMismatch,
    #[error("PKAuthenticator nonce does not match the request nonce")]
    NonceMismatch,
    #[error("device certificate has no MAC address in its CN")]
    NoMac,
    #[error("Diffie-Hellman is not supported in the PacketCable form")]
    PacketCableDh,
    #[error("Diffie-Hellman: {message}")]
    Dh {
        message: String,
        code: i32,
        /// TYPED-DATA to send as e-data (TD-DH-PARAMETERS for refused groups).
        e_data: Option<Vec<u8>>,
    },
    #[error("building the reply: {0}")]
    Reply(String),
}

impl PkinitError {
    /// The KRB-ERROR code sent for this refusal.
    pub fn krb_error_code(&self) -> i32 {
        match self {
            PkinitError::Request(e) => e.krb_error_code(),
            PkinitError::BadSignature(_) => err::KDC_ERR_INVALID_SIG,
            PkinitError::MalformedCms(_)
            | PkinitError::WrongContentType(_)
            | PkinitError::MalformedAuthPack(_) => err::KDC_ERR_PREAUTH_FAILED,
            PkinitError::Chain(c) => c.krb_error_code(),
            PkinitError::Skew => err::KRB_AP_ERR_SKEW,
            PkinitError::ChecksumMissing => KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED,
            PkinitError::ChecksumType(_) => err::KDC_ERR_SUMTYPE_NOSUPP,
            PkinitError::ChecksumMismatch | PkinitError::NonceMismatch => err::KRB_AP_ERR_MODIFIED,
            PkinitError::NoMac => err::KDC_ERR_CLIENT_NAME_MISMATCH,
            PkinitError::PacketCableDh => err::KDC_ERR_PADATA_TYPE_NOSUPP,
            PkinitError::Dh { code, .. } => *code,
            PkinitError::Reply(_) => err::KRB_ERR_GENERIC,
        }
    }

    /// Stable label for the audit log and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PkinitError::Request(e) => e.reason(),
            PkinitError::BadSignature(_) => "pkinit_bad_signature",
            PkinitError::MalformedCms(_) => "pkinit_malformed_cms",
            PkinitError::WrongContentType(_) => "pkinit_wrong_content_type",
            PkinitError::Chain(c) => c.reason(),
            PkinitError::MalformedAuthPack(_) => "pkinit_malformed_authpack",
            PkinitError::Skew => "pkinit_skew",
            PkinitError::ChecksumMissing => "pkinit_checksum_missing",
            PkinitError::ChecksumType(_) => "pkinit_checksum_type",
            PkinitError::ChecksumMismatch => "pkinit_checksum_mismatch",
            PkinitError::NonceMismatch => "pkinit_nonce_mismatch",
            PkinitError::NoMac => "pkinit_no_mac",
            PkinitError::PacketCableDh => "pkinit_packetcable_dh",
            PkinitError::Dh { code, .. } => match *code {
                err::KDC_ERR_KEY_TOO_WEAK => "pkinit_dh_group_refused",
                100 => "pkinit_no_acceptable_kdf",
                _ => "pkinit_dh_malformed",
            },
            PkinitError::Reply(_) => "pkinit_reply_failed",
        }
    }
}

impl PkinitError {
    /// The KRB-ERROR e-data for this refusal, if it has one.
    pub fn e_data(&self) -> Option<Vec<u8>> {
        match self {
            PkinitError::Dh { e_data, .. } => e_data.clone(),
            _ => None,
        }
    }
}

/// RFC 4556 §3.2.2 TD-DH-PARAMETERS.
pub const TD_DH_PARAMETERS: i32 = 109;

fn dh_error(e: DhError, min_bits: u32) -> PkinitError {
    let e_data = e.wants_td_dh_parameters().then(|| {
        let typed = vec![rasn_kerberos::TypedDataItem {
            r#type: TD_DH_PARAMETERS,
            value: Some(dh::td_dh_parameters(min_bits).into()),
        }];
        rasn::der::encode(&typed).unwrap_or_default()
    });
    PkinitError::Dh {
        message: e.to_string(),
        code: e.krb_error_code(),
        e_data,
    }
}

/// RFC 4556 §3.2.3: KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED.
pub const KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED: i32 = 79;

impl From<CmsError> for PkinitError {
    fn from(e: CmsError) -> Self {
        match e {
            CmsError::BadSignature(s) => PkinitError::BadSignature(s),
            other => PkinitError::MalformedCms(other.to_string()),
        }
    }
}

/// The KDC's signing identity.
pub struct KdcIdentity {
    pub cert: X509,
    pub key: PKey<Private>,
    /// Intermediates sent with replies (not the root).
    pub chain: Vec<X509>,
    /// The certificate set and signer identifier, encoded once.
    prepared: reply::Prepared,
}

impl KdcIdentity {
    /// Checks that the key type can sign replies (RSA or EC) and encodes
    /// what every reply carries.
    pub fn new(cert: X509, key: PKey<Private>, chain: Vec<X509>) -> Result<Self, PkinitError> {
        let prepared = reply::Prepared::new(&cert, &key, &chain)?;
        Ok(KdcIdentity {
            cert,
            key,
            chain,
            prepared,
        })
    }

    /// A DER ContentInfo(SignedData) of `content` (type `econtent_type`),
    /// signed with `md` (RFC 5652 signed attributes) at Unix time `now`.
    pub fn sign(
        &self,
        md: MessageDigest,
        econtent_type: &rasn::types::Oid,
        content: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, PkinitError> {
        let sd = reply::signed_data(&self.prepared, &self.key, md, econtent_type, content, now)?;
        Ok(reply::content_info(oid::SIGNED_DATA, &sd))
    }
}

/// What the request asks for in the reply.
pub enum KeyDelivery {
    /// RSA key transport (encKeyPack).
    Rsa,
    /// DH/ECDH: the client's public value and nonces (RFC 4556 form only).
    Dh(Box<DhRequest>),
}

pub struct DhRequest {
    /// The client's public value, its group checked against policy.
    pub client_public: ClientPublic,
    pub client_dh_nonce: Option<Vec<u8>>,
    /// The KDF both sides support (RFC 8636), or None for octetstring2key.
    pub kdf: Option<Kdf>,
}

/// A device certificate whose chain verified: what requests with the same
/// certificate reuse from the [`cms::CertCache`].
pub struct VerifiedDevice {
    /// SHA-256 of the certificate's DER.
    pub fingerprint: [u8; 32],
    /// Its public key: checks request signatures, encrypts RSA replies.
    pub public_key: PKey<Public>,
    /// DER IssuerAndSerialNumber, exactly as in the certificate (the
    /// RecipientInfo of RSA replies).
    pub issuer_and_serial: Vec<u8>,
    /// The chain's issuer of the certificate (`C=…, O=…, CN=…`).
    pub manufacturer: String,
    /// The verification holds for request times in `valid_from..=valid_until`
    /// ([`certs::store::VerifiedChain`]).
    pub valid_from: i64,
    pub valid_until: i64,
    /// The MAC address in the CN, if there is one.
    pub mac: Option<[u8; 6]>,
    /// SHA-1 of the subjectPublicKey BIT STRING contents (the RSAPublicKey
    /// DER): the key-identifier method of RFC 5280 §4.2.1.2, pkt-eue-7's
    /// "MTA public key hash" (INFERRED: PROTOCOL.md §3.2 leaves open which
    /// bytes are hashed).
    pub public_key_hash: [u8; 20],
}

/// A request whose signature, chain, time, checksum and nonce checked out.
pub struct VerifiedRequest {
    pub form: Form,
    pub device: Arc<VerifiedDevice>,
    /// The MAC address in the device certificate's CN.
    pub mac: [u8; 6],
    /// The PKAuthenticator nonce (echoed in the -19 ReplyKeyPack and in KDCDHKeyInfo).
    pub nonce: u32,
    pub delivery: KeyDelivery,
}

impl VerifiedRequest {
    /// pkt-eue-7's "MTA public key hash" ([`VerifiedDevice::public_key_hash`]).
    pub fn public_key_hash(&self) -> [u8; 20] {
        self.device.public_key_hash
    }
}

/// Inputs from the AS-REQ around the PKINIT padata.
pub struct RequestContext<'a> {
    /// Exact bytes of the received KDC-REQ-BODY.
    pub req_body: &'a [u8],
    /// The KDC-REQ-BODY nonce.
    pub body_nonce: u32,
    pub now: i64,
    pub skew: i64,
    /// Smallest acceptable DH group (MODP bits or equivalent).
    pub dh_min_bits: u32,
    /// Parsed intermediates and verified device certificates shared
    /// across requests (one cache per trust-store handle).
    pub cert_cache: Option<&'a cms::CertCache>,
}

/// Checks a PKINIT padata (14 or 16; 15 is refused as draft-9).
///
/// With `ctx.cert_cache`, a device certificate already verified against
/// this trust store (same DER, request time inside the cached result's
/// validity window) is neither parsed nor chain-checked again; the
/// request's signature is always checked.
pub fn verify_request(
    pa_type: i32,
    pa_value: &[u8],
    ctx: &RequestContext<'_>,
    trust: &TrustStore,
) -> Result<VerifiedRequest, PkinitError> {
    let signed = request::parse(pa_type, pa_value)?;
    let parts = cms::read_signed(&signed.content_info)?;
    // A device seen before: its certificate is found by the sid's bytes and
    // its digest, nothing is decoded or parsed.
    let cached = ctx.cert_cache.and_then(|c| {
        let der = parts.signer_der_by_bytes()?;
        c.device(trust, &openssl::sha::sha256(der), ctx.now)
    });
    let device = match cached {
        Some(device) => {
            parts.verify(&device.public_key)?;
            check_content_type(&parts)?;
            device
        }
        None => verify_new_device(&parts, ctx, trust)?,
    };
    let econtent = parts.econtent();
    let (nonce, delivery) = match signed.form {
        Form::PacketCable => check_auth_pack_19(econtent, ctx)?,
        Form::Rfc4556 => check_auth_pack(econtent, ctx)?,
    };
    let mac = device.mac.ok_or(PkinitError::NoMac)?;
    Ok(VerifiedRequest {
        form: signed.form,
        device,
        mac,
        nonce,
        delivery,
    })
}

fn check_content_type(parts: &cms::SignedParts<'_>) -> Result<(), PkinitError> {
    if **parts.econtent_type() != *oid::AUTH_DATA {
        return Err(PkinitError::WrongContentType(
            parts.econtent_type().to_string(),
        ));
    }
    Ok(())
}

/// The signer of a request whose certificate the cache does not hold:
/// signature (with the key read from the SubjectPublicKeyInfo, before any
/// certificate parse, when it is RSA), content type, then the certificate
/// parse and the chain; a success is remembered in the cache.
fn verify_new_device(
    parts: &cms::SignedParts<'_>,
    ctx: &RequestContext<'_>,
    trust: &TrustStore,
) -> Result<Arc<VerifiedDevice>, PkinitError> {
    let (signer_index, signer_der, signer_cert) =
        parts.signer_cert()?.ok_or(CmsError::NoSignerCertificate)?;
    let spki = &signer_cert.tbs_certificate.subject_public_key_info;
    let mut parsed = None;
    let key = match crate::signer::rsa_public_key(spki) {
        Some(k) => k,
        None => parsed
            .insert(X509::from_der(signer_der).map_err(CmsError::from)?)
            .public_key()
            .map_err(CmsError::from)?,
    };
    parts.verify(&key)?;
    check_content_type(parts)?;
    let cert = match parsed {
        Some(x) => x,
        None => X509::from_der(signer_der).map_err(CmsError::from)?,
    };
    let mut presented = Vec::new();
    for (i, der) in parts.cert_ders()? {
        if i != signer_index && der != signer_der {
            presented.push(match ctx.cert_cache {
                Some(c) => c.parse(der)?,
                None => X509::from_der(der).map_err(CmsError::from)?,
            });
        }
    }
    let chain = trust.verify(&cert, &presented, ctx.now)?;
    let device = Arc::new(VerifiedDevice {
        fingerprint: openssl::sha::sha256(signer_der),
        mac: certs::mac::device_mac(&cert).ok(),
        public_key_hash: Sha1::digest(spki.subject_public_key.as_raw_slice()).into(),
        // The parsed certificate's key, not the one built for the first
        // check: OpenSSL keeps a legacy-built key twice (≈ 0.75 KB more per
        // cache entry).
        public_key: cert.public_key().map_err(CmsError::from)?,
        issuer_and_serial: reply::issuer_and_serial(signer_der)?,
        manufacturer: chain.manufacturer,
        valid_from: chain.valid_from,
        valid_until: chain.valid_until,
    });
    if let Some(c) = ctx.cert_cache {
        c.insert_device(trust, device.clone());
    }
    Ok(device)
}

fn check_time(
    cusec: &rasn::types::Integer,
    ctime: &msg::KerberosTime,
    ctx: &RequestContext<'_>,
) -> Result<(), PkinitError> {
    let usec_ok = i64::try_from(cusec).is_ok_and(|u| (0..=999_999).contains(&u));
    if !usec_ok {
        return Err(PkinitError::MalformedAuthPack("cusec out of range".into()));
    }
    if (time::to_unix(ctime) - ctx.now).abs() > ctx.skew {
        return Err(PkinitError::Skew);
    }
    Ok(())
}

fn check_nonce(n: &rasn::types::Integer, ctx: &RequestContext<'_>) -> Result<u32, PkinitError> {
    let nonce =
        nonce_u32(n).ok_or_else(|| PkinitError::MalformedAuthPack("nonce out of range".into()))?;
    // Devices set the PKAuthenticator nonce to the request nonce (Heimdal's
    // PacketCable client did; RFC 4556 requires it).
    if nonce != ctx.body_nonce {
        return Err(PkinitError::NonceMismatch);
    }
    Ok(nonce)
}

fn check_auth_pack_19(
    der: &[u8],
    ctx: &RequestContext<'_>,
) -> Result<(u32, KeyDelivery), PkinitError> {
    if request::is_draft9_auth_pack(der) {
        return Err(RequestError::Draft9.into());
    }
    let pack: AuthPack19 =
        msg::decode("AuthPack", der).map_err(|e| PkinitError::MalformedAuthPack(e.to_string()))?;
    let a = &pack.pk_authenticator;
    check_time(&a.cusec, &a.ctime, ctx)?;
    let ctype = ChecksumType::from_i32(a.pa_checksum.r#type)
        .filter(|c| !c.is_keyed())
        .ok_or(PkinitError::ChecksumType(a.pa_checksum.r#type))?;
    verify_unkeyed_checksum(ctype, ctx.req_body, &a.pa_checksum.checksum)
        .map_err(|_| PkinitError::ChecksumMismatch)?;
    let nonce = check_nonce(&a.nonce, ctx)?;
    if pack.client_public_value.is_some() {
        return Err(PkinitError::PacketCableDh);
    }
    Ok((nonce, KeyDelivery::Rsa))
}

fn check_auth_pack(
    der: &[u8],
    ctx: &RequestContext<'_>,
) -> Result<(u32, KeyDelivery), PkinitError> {
    let pack: AuthPack =
        msg::decode("AuthPack", der).map_err(|e| PkinitError::MalformedAuthPack(e.to_string()))?;
    let a = &pack.pk_authenticator;
    check_time(&a.cusec, &a.ctime, ctx)?;
    let sum = a.pa_checksum.as_ref().ok_or(PkinitError::ChecksumMissing)?;
    let expect = Sha1::digest(ctx.req_body);
    if sum.len() != expect.len() || !bool::from(expect.as_slice().ct_eq(sum)) {
        return Err(PkinitError::ChecksumMismatch);
    }
    let nonce = check_nonce(&a.nonce, ctx)?;
    // A freshness token (RFC 8070) is accepted; we do not offer one, so there is nothing to match.
    let delivery = match pack.client_public_value {
        None => KeyDelivery::Rsa,
        Some(spki) => {
            let min = ctx.dh_min_bits;
            let client_public = dh::parse_client_public(&spki).map_err(|e| dh_error(e, min))?;
            client_public
                .check_min_bits(min)
                .map_err(|e| dh_error(e, min))?;
            let kdf =
                dh::select_kdf(pack.supported_kdfs.as_deref()).map_err(|e| dh_error(e, min))?;
            KeyDelivery::Dh(Box::new(DhRequest {
                client_public,
                client_dh_nonce: pack.client_dh_nonce.map(|n| n.to_vec()),
                kdf,
            }))
        }
    };
    Ok((nonce, delivery))
}

/// How replies are built.
pub struct ReplyPolicy {
    /// Content cipher of PacketCable RSA replies (3DES for devices).
    pub packetcable_cipher: Cipher,
    /// Signature digest of PacketCable replies (RFC 4556 and DH replies
    /// use SHA-256).
    pub packetcable_digest: MessageDigest,
}

fn encryption_key(k: &Key) -> EncryptionKey {
    EncryptionKey {
        r#type: k.etype().as_i32(),
        value: k.bytes().to_vec().into(),
    }
}

fn reply_err(e: impl std::fmt::Display) -> PkinitError {
    PkinitError::Reply(e.to_string())
}

/// RSA key transport: the reply padata delivering `reply_key`.
/// `as_req` is the whole received AS-REQ (RFC 4556 asChecksum covers it).
pub fn rsa_reply(
    req: &VerifiedRequest,
    reply_key: &Key,
    as_req: &[u8],
    kdc: &KdcIdentity,
    policy: &ReplyPolicy,
) -> Result<PaData, PkinitError> {
    let (key_pack, digest, cipher) = match req.form {
        Form::PacketCable => {
            let pack = ReplyKeyPack19 {
                reply_key: encryption_key(reply_key),
                nonce: (req.nonce as i64).into(),
            };
            (
                // Holds the reply key: wiped when dropped.
                zeroize::Zeroizing::new(msg::encode("ReplyKeyPack", &pack).map_err(reply_err)?),
                policy.packetcable_digest,
                policy.packetcable_cipher,
            )
        }
        Form::Rfc4556 => {
            let ctype = reply_key.etype().checksum_type();
            let pack = ReplyKeyPack {
                reply_key: encryption_key(reply_key),
                as_checksum: Checksum {
                    r#type: ctype.as_i32(),
                    checksum: reply_key.checksum(usage::TGS_REQ_AUTH_CKSUM, as_req).into(),
                },
            };
            (
                zeroize::Zeroizing::new(msg::encode("ReplyKeyPack", &pack).map_err(reply_err)?),
                MessageDigest::sha256(),
                Cipher::aes_256_cbc(),
            )
        }
    };
    // The EnvelopedData carries the bare SignedData (as MIT's KDC does).
    let signed = reply::signed_data(
        &kdc.prepared,
        &kdc.key,
        digest,
        oid::RKEY_DATA,
        &key_pack,
        time::now().0,
    )?;
    let enveloped = reply::enveloped_data(
        oid::SIGNED_DATA,
        &signed,
        &req.device.public_key,
        &req.device.issuer_and_serial,
        cipher,
    )?;
    Ok(match req.form {
        // PA-PK-AS-REP-19: encKeyPack [1] EXPLICIT ContentInfo.
        Form::PacketCable => PaData {
            r#type: padata::PK_AS_REP_19,
            value: tlv(0xa1, &enveloped).into(),
        },
        Form::Rfc4556 => PaData {
            r#type: padata::PK_AS_REP,
            value: msg::encode("PA-PK-AS-REP", &PaPkAsRep::EncKeyPack(enveloped.into()))
                .map_err(reply_err)?
                .into(),
        },
    })
}

/// The KDC's DH keys: a fresh one per request (`reuse_secs` 0), or one per
/// group kept for `reuse_secs` and announced with dhKeyExpiration.
pub struct DhKeys {
    reuse_secs: i64,
    slots: std::sync::Mutex<Vec<(Group, std::sync::Arc<ServerKey>, i64)>>,
}

impl DhKeys {
    pub fn new(reuse_secs: u64) -> DhKeys {
        DhKeys {
            reuse_secs: i64::try_from(reuse_secs).unwrap_or(i64::MAX),
            slots: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A key for `group` at Unix time `now`, and its expiration when reused.
    pub fn get(
        &self,
        group: Group,
        now: i64,
    ) -> Result<(std::sync::Arc<ServerKey>, Option<i64>), DhError> {
        if self.reuse_secs == 0 {
            return Ok((std::sync::Arc::new(ServerKey::generate(group)?), None));
        }
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|(_, _, expires)| now < *expires);
        if let Some((_, key, expires)) = slots.iter().find(|(g, _, _)| *g == group) {
            return Ok((key.clone(), Some(*expires)));
        }
        let key = std::sync::Arc::new(ServerKey::generate(group)?);
        let expires = now.saturating_add(self.reuse_secs);
        slots.push((group, key.clone(), expires));
        Ok((key, Some(expires)))
    }
}

/// Names the RFC 8636 KDF binds the key to: cname/crealm and sname/realm
/// exactly as the AS-REQ carried them.
pub struct KdfNames<'a> {
    pub client: &'a krb::principal::Principal,
    pub server: &'a krb::principal::Principal,
}

/// DH/ECDH: the reply padata (17) and the reply key it agrees.
pub fn dh_reply(
    req: &VerifiedRequest,
    dh_req: &DhRequest,
    reply_etype: krb::crypto::EncType,
    as_req: &[u8],
    names: &KdfNames<'_>,
    kdc: &KdcIdentity,
    keys: &DhKeys,
) -> Result<(PaData, Key), PkinitError> {
    let (server_key, expires) = keys
        .get(dh_req.client_public.group, time::now().0)
        .map_err(|e| dh_error(e, 0))?;
    let agreement = server_key
        .agree(&dh_req.client_public)
        .map_err(|e| dh_error(e, 0))?;
    let info = asn1::KdcDhKeyInfo {
        subject_public_key: rasn::types::BitString::from_vec(agreement.server_public.clone()),
        nonce: (req.nonce as i64).into(),
        dh_key_expiration: expires.map(time::from_unix),
    };
    let info_der = msg::encode("KDCDHKeyInfo", &info).map_err(reply_err)?;
    let signed = kdc.sign(
        MessageDigest::sha256(),
        oid::DH_KEY_DATA,
        &info_der,
        time::now().0,
    )?;
    // A server nonce only answers a client nonce, and only octetstring2key uses them.
    let server_dh_nonce = match (&dh_req.client_dh_nonce, dh_req.kdf) {
        (Some(_), None) => Some(
            Key::random(krb::crypto::EncType::Aes256CtsHmacSha196)
                .bytes()
                .to_vec(),
        ),
        _ => None,
    };
    let rep = PaPkAsRep::DhInfo(asn1::DhRepInfo {
        dh_signed_data: signed.into(),
        server_dh_nonce: server_dh_nonce.clone().map(Into::into),
        kdf: dh_req.kdf.map(Kdf::algorithm_id),
    });
    let pk_as_rep = msg::encode("PA-PK-AS-REP", &rep).map_err(reply_err)?;
    let secret = &agreement.shared_secret;
    let key = match dh_req.kdf {
        Some(kdf) => dh::kdf_rfc8636(
            kdf,
            reply_etype,
            secret,
            names.client,
            names.server,
            as_req,
            &pk_as_rep,
        ),
        None => dh::octetstring2key(
            reply_etype,
            secret,
            dh_req.client_dh_nonce.as_deref(),
            server_dh_nonce.as_deref(),
        ),
    }
    .map_err(|e| dh_error(e, 0))?;
    Ok((
        PaData {
            r#type: padata::PK_AS_REP,
            value: pk_as_rep.into(),
        },
        key,
    ))
}
