//! Why a PKINIT request was refused: the KRB-ERROR code, audit reason and
//! e-data of each refusal (RFC 4556 §3.2.1–3.2.3, shared PROTOCOL.md §1.3).

use certs::store::ChainError;
use krb::msg::consts::err;

use crate::cms::CmsError;
use crate::dh::{self, DhError};
use crate::request::RequestError;

/// Why a PKINIT request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PkinitError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("bad CMS signature: {0}")]
    BadSignature(String),
    /// MD5, an unknown digest, or a signature algorithm we do not take.
    #[error("{0}")]
    DigestNotAccepted(String),
    /// The device key's type, size, exponent or curve.
    #[error("device key not accepted: {0}")]
    KeyNotAccepted(String),
    /// RSA key transport asked for by a device whose key is not RSA.
    #[error("RSA key transport needs an RSA device key; use Diffie-Hellman")]
    KeyTransportNeedsRsa,
    /// keyUsage present without digitalSignature.
    #[error("device certificate keyUsage does not allow digitalSignature")]
    KeyUsage,
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
            PkinitError::DigestNotAccepted(_) => KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED,
            PkinitError::KeyNotAccepted(_) => err::KDC_ERR_CLIENT_NOT_TRUSTED,
            PkinitError::KeyUsage => KDC_ERR_INCONSISTENT_KEY_PURPOSE,
            PkinitError::KeyTransportNeedsRsa => KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED,
            PkinitError::MalformedCms(_)
            | PkinitError::WrongContentType(_)
            | PkinitError::MalformedAuthPack(_) => err::KDC_ERR_PREAUTH_FAILED,
            PkinitError::Chain(c) => c.krb_error_code(),
            PkinitError::Skew => err::KRB_AP_ERR_SKEW,
            PkinitError::ChecksumMissing => KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED,
            PkinitError::ChecksumType(_) => err::KDC_ERR_SUMTYPE_NOSUPP,
            PkinitError::ChecksumMismatch => err::KRB_AP_ERR_MODIFIED,
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
            PkinitError::DigestNotAccepted(_) => "pkinit_digest_not_accepted",
            PkinitError::KeyNotAccepted(_) => "pkinit_key_not_accepted",
            PkinitError::KeyUsage => "pkinit_key_usage",
            PkinitError::KeyTransportNeedsRsa => "pkinit_key_transport_needs_rsa",
            PkinitError::MalformedCms(_) => "pkinit_malformed_cms",
            PkinitError::WrongContentType(_) => "pkinit_wrong_content_type",
            PkinitError::Chain(c) => c.reason(),
            PkinitError::MalformedAuthPack(_) => "pkinit_malformed_authpack",
            PkinitError::Skew => "pkinit_skew",
            PkinitError::ChecksumMissing => "pkinit_checksum_missing",
            PkinitError::ChecksumType(_) => "pkinit_checksum_type",
            PkinitError::ChecksumMismatch => "pkinit_checksum_mismatch",
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
            PkinitError::DigestNotAccepted(_) => Some(td_cms_digest_algorithms()),
            _ => None,
        }
    }
}

/// RFC 4556 §3.2.2: KDC_ERR_INCONSISTENT_KEY_PURPOSE.
pub const KDC_ERR_INCONSISTENT_KEY_PURPOSE: i32 = 77;
/// RFC 4556 §3.2.2: KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED.
pub const KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED: i32 = 80;
/// RFC 4556 §3.2.2: KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED.
pub const KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED: i32 = 81;
/// RFC 8636 §4 TD-CMS-DIGEST-ALGORITHMS.
pub const TD_CMS_DIGEST_ALGORITHMS: i32 = 111;

/// TYPED-DATA { TD-CMS-DIGEST-ALGORITHMS: SEQUENCE OF AlgorithmIdentifier,
/// the digests we accept } (RFC 8636 §4), sent with code 80.
fn td_cms_digest_algorithms() -> Vec<u8> {
    let algs: Vec<rasn_pkix::AlgorithmIdentifier> = crate::signer::ACCEPTED_DIGESTS
        .iter()
        .map(|o| rasn_pkix::AlgorithmIdentifier {
            algorithm: (*o).to_owned(),
            parameters: None,
        })
        .collect();
    let typed = vec![rasn_kerberos::TypedDataItem {
        r#type: TD_CMS_DIGEST_ALGORITHMS,
        value: Some(rasn::der::encode(&algs).unwrap_or_default().into()),
    }];
    rasn::der::encode(&typed).unwrap_or_default()
}

/// RFC 4556 §3.2.2 TD-DH-PARAMETERS.
pub const TD_DH_PARAMETERS: i32 = 109;

pub(super) fn dh_error(e: DhError, min_bits: u32) -> PkinitError {
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
            CmsError::DigestNotAccepted(s) => PkinitError::DigestNotAccepted(s),
            CmsError::KeyNotAccepted(s) => PkinitError::KeyNotAccepted(s),
            other => PkinitError::MalformedCms(other.to_string()),
        }
    }
}
