//! Kerberos crypto: RFC 3961 framework, des3-cbc-sha1-kd (16), RFC 3962
//! aes128/aes256-cts-hmac-sha1-96 (17, 18) and RFC 8009
//! aes128-cts-hmac-sha256-128 / aes256-cts-hmac-sha384-192 (19, 20), plus
//! the unkeyed rsa-md5 and sha1 checksums.
//!
//! Hot paths should derive a [`UsageKey`] once per (key, usage) with
//! [`Key::usage`] and reuse it; the `Key` convenience methods derive on
//! every call. Nothing here prints or panics on hostile input: malformed
//! ciphertext gives [`CryptoError::BadCiphertext`] and tampering
//! [`CryptoError::Integrity`].

mod aes_sha1;
mod aes_sha2;
mod checksum;
mod cts;
mod des3;
mod error;
mod key;
mod nfold;
mod prims;
mod types;
pub mod usage;

pub use checksum::{unkeyed_checksum, verify_unkeyed_checksum};
pub use error::CryptoError;
pub use key::{Key, UsageKey};
pub use types::{ChecksumType, EncType};

#[cfg(test)]
mod tests;
