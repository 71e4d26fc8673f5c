//! DH and ECDH key agreement for PKINIT (RFC 4556 §3.2.3.1, RFC 5349) and
//! the reply-key derivations (RFC 4556 octetstring2key, RFC 8636 KDF).
//!
//! * MODP: the client's `dhpublicnumber` (RFC 3279 DomainParameters p, g,
//!   q optional) is identified by comparing p and g with the well-known
//!   primes: Oakley group 2 (recognised, refused by policy) and RFC 3526
//!   groups 14, 15, 16. All are safe primes, so the range check
//!   1 < y < p-1 is the whole public-value check. The KDC's ephemeral key
//!   is fresh per call with a short private exponent (225 bits for 2048,
//!   275 for 3072, 325 for 4096: RFC 7919 §5.2, twice the group's
//!   strength), computed with OpenSSL's constant-time modular exponentiation.
//!   `Dh::compute_key` is never used (it drops leading zero bytes of ZZ);
//!   ZZ is always left-padded to |p| bytes.
//! * EC: id-ecPublicKey with namedCurve P-256, P-384 or P-521; the public
//!   value is the ECPoint (uncompressed or compressed) and the shared secret
//!   the x-coordinate, fixed length.
//!
//! Nothing here prints or panics on hostile input; secrets are zeroized.

mod agreement;
#[cfg(feature = "client")]
mod client_key;
mod der;
mod group;
mod kdf;
mod mont;
mod primes;
mod public;

use openssl::error::ErrorStack;

pub use agreement::{Agreement, ServerKey, server_agree};
#[cfg(feature = "client")]
pub use client_key::ClientKey;
pub use group::{Group, offered_groups, td_dh_parameters};
pub use kdf::{
    Kdf, choose_kdf, kdf_rfc8636, octetstring2key, other_info, select_kdf, supported_kdfs_der,
};
pub use public::{ClientPublic, parse_client_public};

/// KDC_ERR_PREAUTH_FAILED.
const KDC_ERR_PREAUTH_FAILED: i32 = 24;
/// KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED (RFC 4556; draft name KEY_TOO_WEAK).
const KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED: i32 = 65;
/// KDC_ERR_NO_ACCEPTABLE_KDF (RFC 8636).
const KDC_ERR_NO_ACCEPTABLE_KDF: i32 = 100;

/// Errors of key agreement and key derivation. Messages carry no secrets.
#[derive(thiserror::Error, Debug)]
pub enum DhError {
    /// Undecodable SPKI, parameters or public value encoding.
    #[error("malformed DH/ECDH data: {0}")]
    Malformed(String),
    /// Well-formed parameters naming no group we know (unknown prime or
    /// generator, wrong q, unsupported curve or algorithm).
    #[error("unknown DH group")]
    UnknownGroup,
    /// A known group below the configured minimum.
    #[error("DH group of {bits} bits is too weak")]
    TooWeak {
        /// The group's [`Group::bits`].
        bits: u32,
    },
    /// Public value out of range (y <= 1 or y >= p-1), not on the curve, or
    /// the point at infinity.
    #[error("bad DH public value")]
    BadPublicValue,
    /// The client listed supportedKDFs and none is supported (RFC 8636).
    #[error("no acceptable KDF")]
    NoAcceptableKdf,
    /// OpenSSL failed (allocation, RNG).
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] ErrorStack),
}

impl DhError {
    /// The KRB-ERROR code for this failure.
    ///
    /// TooWeak and UnknownGroup → KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED
    /// (65, once named KDC_ERR_KEY_TOO_WEAK), to be sent with
    /// TD-DH-PARAMETERS e-data ([`td_dh_parameters`]) so the client can
    /// retry with a listed group. MIT's KDC also answers 65 for DH parameters
    /// it cannot decode; here Malformed and BadPublicValue give
    /// KDC_ERR_PREAUTH_FAILED (24), as does an OpenSSL failure.
    /// NoAcceptableKdf → KDC_ERR_NO_ACCEPTABLE_KDF (100), with
    /// [`supported_kdfs_der`] as e-data.
    pub fn krb_error_code(&self) -> i32 {
        match self {
            DhError::TooWeak { .. } | DhError::UnknownGroup => {
                KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED
            }
            DhError::NoAcceptableKdf => KDC_ERR_NO_ACCEPTABLE_KDF,
            DhError::Malformed(_) | DhError::BadPublicValue | DhError::OpenSsl(_) => {
                KDC_ERR_PREAUTH_FAILED
            }
        }
    }

    /// True when the KRB-ERROR should carry TD-DH-PARAMETERS e-data.
    pub fn wants_td_dh_parameters(&self) -> bool {
        self.krb_error_code() == KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED
    }
}

fn malformed(what: &str) -> DhError {
    DhError::Malformed(what.to_string())
}
