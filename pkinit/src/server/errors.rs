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
    #[error("Diffie-Hellman: {error}")]
    Dh {
        error: DhError,
        /// TYPED-DATA to send as e-data (TD-DH-PARAMETERS for refused groups).
        e_data: Option<Vec<u8>>,
    },
    #[error("building the reply: {0}")]
    Reply(String),
}

/// Why a PKINIT request was refused, without the details: its KRB-ERROR
/// code and its stable label for the audit log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Draft9Unsupported,
    PadataUnsupported,
    BadSignature,
    DigestNotAccepted,
    KeyNotAccepted,
    KeyUsage,
    KeyTransportNeedsRsa,
    MalformedCms,
    WrongContentType,
    MalformedAuthPack,
    Skew,
    ChecksumMissing,
    ChecksumType,
    ChecksumMismatch,
    NoMac,
    PacketCableDh,
    /// Unknown or too weak a DH group (TD-DH-PARAMETERS sent).
    DhGroupRefused,
    NoAcceptableKdf,
    DhMalformed,
    ReplyFailed,
    CertUnknownIssuer,
    CertBadSignature,
    CertExpired,
    CertNotYetValid,
    CertRevoked,
    CertCrlMissing,
    CertCrlExpired,
    CertIssuerNotCa,
    CertPathLength,
    CertInvalid,
}

impl Refusal {
    pub const ALL: [Refusal; 31] = [
        Refusal::Malformed,
        Refusal::Draft9Unsupported,
        Refusal::PadataUnsupported,
        Refusal::BadSignature,
        Refusal::DigestNotAccepted,
        Refusal::KeyNotAccepted,
        Refusal::KeyUsage,
        Refusal::KeyTransportNeedsRsa,
        Refusal::MalformedCms,
        Refusal::WrongContentType,
        Refusal::MalformedAuthPack,
        Refusal::Skew,
        Refusal::ChecksumMissing,
        Refusal::ChecksumType,
        Refusal::ChecksumMismatch,
        Refusal::NoMac,
        Refusal::PacketCableDh,
        Refusal::DhGroupRefused,
        Refusal::NoAcceptableKdf,
        Refusal::DhMalformed,
        Refusal::ReplyFailed,
        Refusal::CertUnknownIssuer,
        Refusal::CertBadSignature,
        Refusal::CertExpired,
        Refusal::CertNotYetValid,
        Refusal::CertRevoked,
        Refusal::CertCrlMissing,
        Refusal::CertCrlExpired,
        Refusal::CertIssuerNotCa,
        Refusal::CertPathLength,
        Refusal::CertInvalid,
    ];

    /// The KRB-ERROR code sent for this refusal.
    pub fn krb_error_code(self) -> i32 {
        match self {
            Refusal::Malformed => err::KDC_ERR_PREAUTH_FAILED,
            Refusal::Draft9Unsupported | Refusal::PadataUnsupported => {
                err::KDC_ERR_PADATA_TYPE_NOSUPP
            }
            Refusal::BadSignature => err::KDC_ERR_INVALID_SIG,
            Refusal::DigestNotAccepted => KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED,
            Refusal::KeyNotAccepted => err::KDC_ERR_CLIENT_NOT_TRUSTED,
            Refusal::KeyUsage => KDC_ERR_INCONSISTENT_KEY_PURPOSE,
            Refusal::KeyTransportNeedsRsa => KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED,
            Refusal::MalformedCms | Refusal::WrongContentType | Refusal::MalformedAuthPack => {
                err::KDC_ERR_PREAUTH_FAILED
            }
            Refusal::Skew => err::KRB_AP_ERR_SKEW,
            Refusal::ChecksumMissing => KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED,
            Refusal::ChecksumType => err::KDC_ERR_SUMTYPE_NOSUPP,
            Refusal::ChecksumMismatch => err::KRB_AP_ERR_MODIFIED,
            Refusal::NoMac => err::KDC_ERR_CLIENT_NAME_MISMATCH,
            Refusal::PacketCableDh => err::KDC_ERR_PADATA_TYPE_NOSUPP,
            Refusal::DhGroupRefused => err::KDC_ERR_KEY_TOO_WEAK,
            Refusal::NoAcceptableKdf => KDC_ERR_NO_ACCEPTABLE_KDF,
            Refusal::DhMalformed => err::KDC_ERR_PREAUTH_FAILED,
            Refusal::ReplyFailed => err::KRB_ERR_GENERIC,
            // As certs::store::ChainError::krb_error_code.
            Refusal::CertUnknownIssuer => 70,
            Refusal::CertRevoked => 72,
            Refusal::CertCrlMissing => 73,
            Refusal::CertCrlExpired => 74,
            Refusal::CertBadSignature
            | Refusal::CertExpired
            | Refusal::CertNotYetValid
            | Refusal::CertIssuerNotCa
            | Refusal::CertPathLength
            | Refusal::CertInvalid => 71,
        }
    }

    /// Stable label for the audit log and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "pkinit_malformed",
            Refusal::Draft9Unsupported => "pkinit_draft9_unsupported",
            Refusal::PadataUnsupported => "pkinit_padata_unsupported",
            Refusal::BadSignature => "pkinit_bad_signature",
            Refusal::DigestNotAccepted => "pkinit_digest_not_accepted",
            Refusal::KeyNotAccepted => "pkinit_key_not_accepted",
            Refusal::KeyUsage => "pkinit_key_usage",
            Refusal::KeyTransportNeedsRsa => "pkinit_key_transport_needs_rsa",
            Refusal::MalformedCms => "pkinit_malformed_cms",
            Refusal::WrongContentType => "pkinit_wrong_content_type",
            Refusal::MalformedAuthPack => "pkinit_malformed_authpack",
            Refusal::Skew => "pkinit_skew",
            Refusal::ChecksumMissing => "pkinit_checksum_missing",
            Refusal::ChecksumType => "pkinit_checksum_type",
            Refusal::ChecksumMismatch => "pkinit_checksum_mismatch",
            Refusal::NoMac => "pkinit_no_mac",
            Refusal::PacketCableDh => "pkinit_packetcable_dh",
            Refusal::DhGroupRefused => "pkinit_dh_group_refused",
            Refusal::NoAcceptableKdf => "pkinit_no_acceptable_kdf",
            Refusal::DhMalformed => "pkinit_dh_malformed",
            Refusal::ReplyFailed => "pkinit_reply_failed",
            Refusal::CertUnknownIssuer => "cert_unknown_issuer",
            Refusal::CertBadSignature => "cert_bad_signature",
            Refusal::CertExpired => "cert_expired",
            Refusal::CertNotYetValid => "cert_not_yet_valid",
            Refusal::CertRevoked => "cert_revoked",
            Refusal::CertCrlMissing => "cert_crl_missing",
            Refusal::CertCrlExpired => "cert_crl_expired",
            Refusal::CertIssuerNotCa => "cert_issuer_not_ca",
            Refusal::CertPathLength => "cert_path_length",
            Refusal::CertInvalid => "cert_invalid",
        }
    }
}

impl PkinitError {
    /// What kind of refusal this is.
    pub fn refusal(&self) -> Refusal {
        match self {
            PkinitError::Request(RequestError::Malformed(_)) => Refusal::Malformed,
            PkinitError::Request(RequestError::Draft9) => Refusal::Draft9Unsupported,
            PkinitError::Request(RequestError::NotPkinit(_)) => Refusal::PadataUnsupported,
            PkinitError::BadSignature(_) => Refusal::BadSignature,
            PkinitError::DigestNotAccepted(_) => Refusal::DigestNotAccepted,
            PkinitError::KeyNotAccepted(_) => Refusal::KeyNotAccepted,
            PkinitError::KeyUsage => Refusal::KeyUsage,
            PkinitError::KeyTransportNeedsRsa => Refusal::KeyTransportNeedsRsa,
            PkinitError::MalformedCms(_) => Refusal::MalformedCms,
            PkinitError::WrongContentType(_) => Refusal::WrongContentType,
            PkinitError::Chain(c) => match c {
                ChainError::UnknownIssuer { .. } => Refusal::CertUnknownIssuer,
                ChainError::BadSignature { .. } => Refusal::CertBadSignature,
                ChainError::Expired { .. } => Refusal::CertExpired,
                ChainError::NotYetValid { .. } => Refusal::CertNotYetValid,
                ChainError::Revoked { .. } => Refusal::CertRevoked,
                ChainError::CrlMissing { .. } => Refusal::CertCrlMissing,
                ChainError::CrlExpired { .. } => Refusal::CertCrlExpired,
                ChainError::NotCa { .. } => Refusal::CertIssuerNotCa,
                ChainError::PathLength { .. } => Refusal::CertPathLength,
                ChainError::Other { .. } => Refusal::CertInvalid,
            },
            PkinitError::MalformedAuthPack(_) => Refusal::MalformedAuthPack,
            PkinitError::Skew => Refusal::Skew,
            PkinitError::ChecksumMissing => Refusal::ChecksumMissing,
            PkinitError::ChecksumType(_) => Refusal::ChecksumType,
            PkinitError::ChecksumMismatch => Refusal::ChecksumMismatch,
            PkinitError::NoMac => Refusal::NoMac,
            PkinitError::PacketCableDh => Refusal::PacketCableDh,
            PkinitError::Dh { error, .. } => match error {
                DhError::UnknownGroup | DhError::TooWeak { .. } => Refusal::DhGroupRefused,
                DhError::NoAcceptableKdf => Refusal::NoAcceptableKdf,
                DhError::Malformed(_) | DhError::BadPublicValue | DhError::OpenSsl(_) => {
                    Refusal::DhMalformed
                }
            },
            PkinitError::Reply(_) => Refusal::ReplyFailed,
        }
    }

    /// The KRB-ERROR code sent for this refusal.
    pub fn krb_error_code(&self) -> i32 {
        self.refusal().krb_error_code()
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

/// RFC 8636 §5: KDC_ERR_NO_ACCEPTABLE_KDF.
pub const KDC_ERR_NO_ACCEPTABLE_KDF: i32 = 100;
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
    PkinitError::Dh { error: e, e_data }
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
