//! AES in CBC mode with ciphertext stealing, the CBC-CS3 form used by
//! RFC 3962 (last two blocks swapped), with an all-zero initial vector.

use aes::cipher::consts::U16;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, BlockSizeUser};

const B: usize = 16;

#[inline]
fn load(src: &[u8]) -> [u8; B] {
    let mut b = [0u8; B];
    for (d, s) in b.iter_mut().zip(src) {
        *d = *s;
    }
    b
}

#[inline]
fn xor(a: &mut [u8; B], b: &[u8; B]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= *y;
    }
}

#[inline]
fn enc<C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16>>(c: &C, b: &mut [u8; B]) {
    let blk: &mut Array<u8, U16> = b.into();
    c.encrypt_block(blk);
}

#[inline]
fn dec<C: BlockCipherDecrypt + BlockSizeUser<BlockSize = U16>>(c: &C, b: &mut [u8; B]) {
    let blk: &mut Array<u8, U16> = b.into();
    c.decrypt_block(blk);
}

/// Encrypts `buf` in place. Inputs shorter than one block are left
/// unchanged; Kerberos callers always pass at least the 16-byte confounder.
pub(crate) fn encrypt<C: BlockCipherEncrypt + BlockSizeUser<BlockSize = U16>>(
    c: &C,
    buf: &mut [u8],
) {
    let n = buf.len();
    if n < B {
        return;
    }
    let m = n.div_ceil(B); // number of blocks, the last one possibly partial
    if m == 1 {
        // Exactly one block: plain AES (CBC with a zero IV).
        let mut b = load(buf);
        enc(c, &mut b);
        buf.copy_from_slice(&b);
        return;
    }
    let d = n - B * (m - 1); // length of the last block, 1..=16
    let mut prev = [0u8; B];
    for chunk in buf[..B * (m - 1)].chunks_exact_mut(B) {
        let mut b = load(chunk);
        xor(&mut b, &prev);
        enc(c, &mut b);
        chunk.copy_from_slice(&b);
        prev = b;
    }
    // prev = C(m-1); encrypt the zero-padded last block.
    let mut last = load(&buf[B * (m - 1)..]);
    xor(&mut last, &prev);
    enc(c, &mut last);
    buf[B * (m - 2)..B * (m - 1)].copy_from_slice(&last);
    buf[B * (m - 1)..].copy_from_slice(&prev[..d]);
}

/// Decrypts `buf` in place. Returns `false` (leaving `buf` unspecified) if
/// it is shorter than one block.
#[must_use]
pub(crate) fn decrypt<C: BlockCipherDecrypt + BlockSizeUser<BlockSize = U16>>(
    c: &C,
    buf: &mut [u8],
) -> bool {
    let n = buf.len();
    if n < B {
        return false;
    }
    let m = n.div_ceil(B);
    if m == 1 {
        let mut b = load(buf);
        dec(c, &mut b);
        buf.copy_from_slice(&b);
        return true;
    }
    let d = n - B * (m - 1);
    // Plain CBC for all blocks before the last two.
    let mut prev = [0u8; B];
    for chunk in buf[..B * (m - 2)].chunks_exact_mut(B) {
        let cblk = load(chunk);
        let mut p = cblk;
        dec(c, &mut p);
        xor(&mut p, &prev);
        chunk.copy_from_slice(&p);
        prev = cblk;
    }
    // The second-to-last transmitted block is the real C(m); the short tail
    // is the head of the real C(m-1).
    let mut dn = load(&buf[B * (m - 2)..B * (m - 1)]);
    dec(c, &mut dn); // = C(m-1) xor (P(m) || 0)
    let tail = &buf[B * (m - 1)..];
    let mut cm1 = dn;
    cm1[..d].copy_from_slice(tail);
    let mut pm = [0u8; B];
    for i in 0..d {
        pm[i] = dn[i] ^ cm1[i];
    }
    let mut pm1 = cm1;
    dec(c, &mut pm1);
    xor(&mut pm1, &prev);
    buf[B * (m - 2)..B * (m - 1)].copy_from_slice(&pm1);
    buf[B * (m - 1)..].copy_from_slice(&pm[..d]);
    true
}

#[cfg(test)]
mod tests {
    use aes::Aes128;
    use aes::cipher::KeyInit;

    /// RFC 3962 Appendix B: CBC with ciphertext stealing, 128-bit key
    /// "chicken teriyaki", all-zero IV: the six vectors of 17, 31, 32, 47,
    /// 48 and 64 bytes, in both directions.
    #[test]
    fn rfc3962_b_cts_vectors() {
        let key = hex::decode("636869636b656e207465726979616b69").unwrap();
        let c = Aes128::new_from_slice(&key).unwrap();
        let pt_full: &[u8] = b"I would like the General Gau's Chicken, please, and wonton soup.";
        let vectors = [
            (17, "c6353568f2bf8cb4d8a580362da7ff7f97"),
            (
                31,
                "fc00783e0efdb2c1d445d4c8eff7ed2297687268d6ecccc0c07b25e25ecfe5",
            ),
            (
                32,
                "39312523a78662d5be7fcbcc98ebf5a897687268d6ecccc0c07b25e25ecfe584",
            ),
            (
                47,
                "97687268d6ecccc0c07b25e25ecfe584b3fffd940c16a18c1b5549d2f838029e39312523a78662d5be7fcbcc98ebf5",
            ),
            (
                48,
                "97687268d6ecccc0c07b25e25ecfe5849dad8bbb96c4cdc03bc103e1a194bbd839312523a78662d5be7fcbcc98ebf5a8",
            ),
            (
                64,
                "97687268d6ecccc0c07b25e25ecfe58439312523a78662d5be7fcbcc98ebf5a84807efe836ee89a526730dbc2f7bc8409dad8bbb96c4cdc03bc103e1a194bbd8",
            ),
        ];
        for (len, want) in vectors {
            let mut buf = pt_full[..len].to_vec();
            super::encrypt(&c, &mut buf);
            assert_eq!(hex::encode(&buf), want, "encrypt {len}");
            assert!(super::decrypt(&c, &mut buf));
            assert_eq!(buf, &pt_full[..len], "decrypt {len}");
        }
    }

    #[test]
    fn short_input_rejected() {
        let c = Aes128::new_from_slice(&[0u8; 16]).unwrap();
        for n in 0..16 {
            let mut buf = vec![0u8; n];
            assert!(!super::decrypt(&c, &mut buf));
        }
    }
}
