//! aes128-cts-hmac-sha256-128 and aes256-cts-hmac-sha384-192 (RFC 8009).

use aes::cipher::consts::U16;
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, BlockSizeUser};
use sha1::Digest;
use zeroize::{Zeroize, Zeroizing};

use super::prims::{ct_verify, hmac};
use super::{CryptoError, cts};

/// Confounder length (one AES block).
pub(crate) const CONF: usize = 16;

/// KDF-HMAC-SHA2(key, label, k) of RFC 8009 §3 with k = `out.len()` * 8:
/// the first k bits of HMAC(key, 00000001 | label | 00 | k).
pub(crate) fn kdf<D: Digest, const BLOCK: usize>(key: &[u8], label: &[u8], out: &mut [u8]) {
    let bits = u32::try_from(out.len() * 8)
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    let mut h = hmac::<D, BLOCK>(key, &[&1u32.to_be_bytes(), label, &[0], &bits]);
    for (d, s) in out.iter_mut().zip(h.iter()) {
        *d = *s;
    }
    h.as_mut_slice().zeroize();
}

/// RFC 8009 §4 string-to-key: saltp = enctype-name | 0x00 | salt;
/// tkey = PBKDF2-HMAC-SHA2(password, saltp, iterations); key = KDF(tkey, "kerberos").
pub(crate) fn string_to_key<D, const BLOCK: usize>(
    name: &str,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out: &mut [u8],
) where
    D: Digest + sha1::digest::block_api::EagerHash,
{
    let mut saltp = Vec::with_capacity(name.len() + 1 + salt.len());
    saltp.extend_from_slice(name.as_bytes());
    saltp.push(0);
    saltp.extend_from_slice(salt);
    let mut tkey = Zeroizing::new([0u8; 32]);
    let tkey = &mut tkey[..out.len()];
    pbkdf2::pbkdf2_hmac::<D>(password, &saltp, iterations, tkey);
    kdf::<D, BLOCK>(tkey, b"kerberos", out);
}

/// confounder | plaintext CTS-encrypted with Ke, then HMAC(Ki, IV | C)
/// truncated to `mac_len` appended (IV is the all-zero initial cipher state).
pub(crate) fn encrypt<C, D, const BLOCK: usize>(
    ke: &C,
    ki: &[u8],
    mac_len: usize,
    confounder: &[u8],
    plaintext: &[u8],
) -> Vec<u8>
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16>,
    D: Digest,
{
    let mut buf = Vec::with_capacity(CONF + plaintext.len() + mac_len);
    buf.extend_from_slice(confounder);
    buf.extend_from_slice(plaintext);
    cts::encrypt(ke, &mut buf);
    let mac = hmac::<D, BLOCK>(ki, &[&[0u8; 16], &buf]);
    buf.extend_from_slice(&mac[..mac_len]);
    buf
}

/// Inverse of [`encrypt`]: the MAC is checked before decrypting.
pub(crate) fn decrypt<C, D, const BLOCK: usize>(
    ke: &C,
    ki: &[u8],
    mac_len: usize,
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError>
where
    C: BlockCipherDecrypt + BlockSizeUser<BlockSize = U16>,
    D: Digest,
{
    if ciphertext.len() < CONF + mac_len {
        return Err(CryptoError::BadCiphertext);
    }
    let (body, tag) = ciphertext.split_at(ciphertext.len() - mac_len);
    let mac = hmac::<D, BLOCK>(ki, &[&[0u8; 16], body]);
    ct_verify(&mac[..mac_len], tag)?;
    let mut buf = body.to_vec();
    if !cts::decrypt(ke, &mut buf) {
        buf.zeroize();
        return Err(CryptoError::BadCiphertext);
    }
    buf.drain(..CONF);
    Ok(buf)
}

/// hmac-sha256-128-aes128 / hmac-sha384-192-aes256: HMAC(Kc, data) truncated.
pub(crate) fn checksum<D: Digest, const BLOCK: usize>(
    kc: &[u8],
    mac_len: usize,
    data: &[u8],
) -> Vec<u8> {
    hmac::<D, BLOCK>(kc, &[data])[..mac_len].to_vec()
}
