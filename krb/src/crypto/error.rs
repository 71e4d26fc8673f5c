//! Error type of the crypto module.

/// Errors from encryption, decryption, checksums and key construction.
///
/// Messages carry no key material and no plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum CryptoError {
    /// The encryption type number is not one this module implements.
    #[error("unsupported encryption type {0}")]
    UnsupportedEtype(i32),
    /// The checksum type is unknown, or does not belong to the key's enctype family.
    #[error("unsupported checksum type {0}")]
    UnsupportedChecksum(i32),
    /// Key bytes of the wrong length for the enctype.
    #[error("bad key length")]
    BadKeyLength,
    /// Ciphertext too short, or of a length the enctype cannot produce.
    #[error("ciphertext too short or malformed")]
    BadCiphertext,
    /// MAC or checksum mismatch.
    #[error("integrity check failed")]
    Integrity,
    /// Malformed or out-of-range string-to-key parameters (or an empty des3 password+salt).
    #[error("bad string-to-key parameters")]
    BadS2kParams,
    /// A caller-supplied confounder of the wrong length (test-vector entry point only).
    #[error("bad confounder length")]
    BadConfounderLength,
}
