//! aes128-cts-hmac-sha1-96 and aes256-cts-hmac-sha1-96 (RFC 3962), built on
//! the RFC 3961 simplified profile.

use aes::cipher::consts::U16;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, BlockSizeUser, KeyInit};
use aes::{Aes128, Aes256};
use sha1::Sha1;
use zeroize::{Zeroize, Zeroizing};

use super::prims::{ct_verify, hmac};
use std::sync::OnceLock;

use super::{CryptoError, cts, nfold::nfold};

/// Confounder length (one AES block).
pub(crate) const CONF: usize = 16;
/// Truncated HMAC-SHA1 length.
pub(crate) const MAC: usize = 12;

/// DK(base, constant) for AES (RFC 3961 §5.1): DR with the base key as an
/// AES-ECB cipher, then the identity random-to-key. `out` is 16 or 32 bytes.
pub(crate) fn derive<C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16>>(
    base: &C,
    constant: &[u8],
    out: &mut [u8],
) {
    let mut blk = Zeroizing::new(folded(constant));
    for chunk in out.chunks_mut(16) {
        let a: &mut Array<u8, U16> = (&mut *blk).into();
        base.encrypt_block(a);
        chunk.copy_from_slice(&blk[..chunk.len()]);
    }
}

/// Key usages whose folded labels are computed once.
const CACHED_USAGES: usize = 64;
/// The derivation tags of RFC 3961 §5.3: Kc, Ke, Ki.
const TAGS: [u8; 3] = [0x99, 0xaa, 0x55];

/// n-fold(constant) to one AES block. For a usage label (4-byte usage,
/// 1-byte tag) it depends only on public constants, and every request
/// derives several keys, so the folds of the small usages are kept
/// (n-fold was 8 % of a TGS request's instructions).
fn folded(constant: &[u8]) -> [u8; 16] {
    static FOLDS: [[OnceLock<[u8; 16]>; 3]; CACHED_USAGES] =
        [const { [const { OnceLock::new() }; 3] }; CACHED_USAGES];
    let fold = || {
        let mut blk = [0u8; 16];
        nfold(constant, &mut blk);
        blk
    };
    if let [0, 0, 0, usage, tag] = *constant
        && usize::from(usage) < CACHED_USAGES
        && let Some(t) = TAGS.iter().position(|&x| x == tag)
    {
        return *FOLDS[usize::from(usage)][t].get_or_init(fold);
    }
    fold()
}

fn pbkdf2_sha1<const N: usize>(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Zeroizing<[u8; N]> {
    let mut tkey = Zeroizing::new([0u8; N]);
    pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut tkey[..]);
    tkey
}

/// RFC 3962 string-to-key for aes128: DK(PBKDF2-HMAC-SHA1(password, salt, iterations), "kerberos").
pub(crate) fn string_to_key_128(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Zeroizing<[u8; 16]> {
    let tkey = pbkdf2_sha1::<16>(password, salt, iterations);
    let mut out = Zeroizing::new([0u8; 16]);
    derive(&Aes128::new((&*tkey).into()), b"kerberos", &mut out[..]);
    out
}

/// RFC 3962 string-to-key for aes256.
pub(crate) fn string_to_key_256(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Zeroizing<[u8; 32]> {
    let tkey = pbkdf2_sha1::<32>(password, salt, iterations);
    let mut out = Zeroizing::new([0u8; 32]);
    derive(&Aes256::new((&*tkey).into()), b"kerberos", &mut out[..]);
    out
}

/// confounder | plaintext, HMAC-SHA1-96 over it with Ki, CTS-encrypt with Ke.
pub(crate) fn encrypt<C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16>>(
    ke: &C,
    ki: &[u8],
    confounder: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(CONF + plaintext.len() + MAC);
    buf.extend_from_slice(confounder);
    buf.extend_from_slice(plaintext);
    let mac = hmac::<Sha1, 64>(ki, &[&buf]);
    cts::encrypt(ke, &mut buf);
    buf.extend_from_slice(&mac[..MAC]);
    buf
}

/// Inverse of [`encrypt`]; returns the plaintext without the confounder.
pub(crate) fn decrypt<C: BlockCipherDecrypt + BlockSizeUser<BlockSize = U16>>(
    ke: &C,
    ki: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if ciphertext.len() < CONF + MAC {
        return Err(CryptoError::BadCiphertext);
    }
    let (body, tag) = ciphertext.split_at(ciphertext.len() - MAC);
    let mut buf = body.to_vec();
    if !cts::decrypt(ke, &mut buf) {
        return Err(CryptoError::BadCiphertext);
    }
    let mac = hmac::<Sha1, 64>(ki, &[&buf]);
    if let Err(e) = ct_verify(&mac[..MAC], tag) {
        buf.zeroize();
        return Err(e);
    }
    buf.drain(..CONF);
    Ok(buf)
}

/// hmac-sha1-96-aes128/256: HMAC-SHA1(Kc, data) truncated to 96 bits.
pub(crate) fn checksum(kc: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::<Sha1, 64>(kc, &[data])[..MAC].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_folds_are_the_n_fold_of_their_label() {
        let mut labels: Vec<Vec<u8>> = Vec::new();
        for usage in [0u32, 1, 2, 3, 11, 63, 64, 255, 256, 1024, u32::MAX] {
            for tag in [0x99, 0xaa, 0x55, 0x00] {
                let mut l = usage.to_be_bytes().to_vec();
                l.push(tag);
                labels.push(l);
            }
        }
        labels.push(b"kerberos".to_vec());
        // Twice: computing the fold, then reading the kept one.
        for _ in 0..2 {
            for l in &labels {
                let mut want = [0u8; 16];
                nfold(l, &mut want);
                assert_eq!(folded(l), want, "{l:02x?}");
            }
        }
    }
}
