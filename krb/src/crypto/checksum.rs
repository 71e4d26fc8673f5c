//! Unkeyed checksums: rsa-md5 (7) and sha1 (10, and 14 with the same algorithm).

use md5::Md5;
use sha1::{Digest, Sha1};

use super::prims::ct_verify;
use super::{ChecksumType, CryptoError};

/// MD5 (type 7) or SHA-1 (types 10 and 14) of `data`. Keyed types give
/// [`CryptoError::UnsupportedChecksum`]; use [`super::Key::checksum_with`] for them.
pub fn unkeyed_checksum(ctype: ChecksumType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    match ctype {
        ChecksumType::RsaMd5 => Ok(Md5::digest(data).to_vec()),
        ChecksumType::Sha1 | ChecksumType::Sha1Alt => Ok(Sha1::digest(data).to_vec()),
        other => Err(CryptoError::UnsupportedChecksum(other.as_i32())),
    }
}

/// Recomputes an unkeyed checksum and compares it in constant time.
pub fn verify_unkeyed_checksum(
    ctype: ChecksumType,
    data: &[u8],
    cksum: &[u8],
) -> Result<(), CryptoError> {
    let computed = unkeyed_checksum(ctype, data)?;
    ct_verify(&computed, cksum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1321 A.5 and FIPS 180 / RFC 3174 test strings.
    #[test]
    fn known_digests() {
        let md5 = unkeyed_checksum(ChecksumType::RsaMd5, b"abc").unwrap();
        assert_eq!(hex::encode(&md5), "900150983cd24fb0d6963f7d28e17f72");
        let md5_empty = unkeyed_checksum(ChecksumType::RsaMd5, b"").unwrap();
        assert_eq!(hex::encode(&md5_empty), "d41d8cd98f00b204e9800998ecf8427e");
        let sha = unkeyed_checksum(ChecksumType::Sha1, b"abc").unwrap();
        assert_eq!(
            hex::encode(&sha),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            unkeyed_checksum(ChecksumType::Sha1Alt, b"abc").unwrap(),
            sha
        );
        verify_unkeyed_checksum(ChecksumType::Sha1, b"abc", &sha).unwrap();
        verify_unkeyed_checksum(ChecksumType::RsaMd5, b"abc", &md5).unwrap();
        assert_eq!(
            verify_unkeyed_checksum(ChecksumType::Sha1, b"abd", &sha),
            Err(CryptoError::Integrity)
        );
        assert_eq!(
            verify_unkeyed_checksum(ChecksumType::Sha1, b"abc", &sha[..19]),
            Err(CryptoError::Integrity)
        );
        assert_eq!(
            unkeyed_checksum(ChecksumType::HmacSha196Aes256, b"abc"),
            Err(CryptoError::UnsupportedChecksum(16))
        );
    }
}
