//! The KDC side of PKINIT: check a request (signature, device chain,
//! time, checksum, nonce, MAC) and build the reply padata.
//!
//! Error codes follow RFC 4556 §3.2.1–3.2.3 and shared PROTOCOL.md §1.3;
//! every refusal also has a [`Refusal`] kind with a stable label for the
//! audit log.

mod errors;
mod replies;
mod verify;

pub use errors::{
    KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED, KDC_ERR_INCONSISTENT_KEY_PURPOSE,
    KDC_ERR_NO_ACCEPTABLE_KDF, KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED,
    KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED, PkinitError, Refusal, TD_CMS_DIGEST_ALGORITHMS,
    TD_DH_PARAMETERS,
};
pub use replies::{DhKeys, KdfNames, ReplyPolicy, dh_reply, rsa_reply};
pub use verify::{RequestContext, verify_request};

use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::x509::X509;

use crate::asn1::oid;
use crate::dh::{ClientPublic, Kdf};
use crate::reply;
use crate::request::Form;

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
