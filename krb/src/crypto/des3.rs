//! des3-cbc-sha1-kd (RFC 3961 §6.3): triple DES EDE in CBC mode with a zero
//! IV, HMAC-SHA1 integrity, DK key derivation.

use des::TdesEde3;
use des::cipher::consts::U8;
use des::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use sha1::Sha1;
use zeroize::{Zeroize, Zeroizing};

use super::prims::{ct_verify, hmac};
use super::{CryptoError, nfold::nfold};

/// DES block size, also the confounder length.
pub(crate) const CONF: usize = 8;
/// HMAC-SHA1 length (not truncated).
pub(crate) const MAC: usize = 20;

/// DES weak and semi-weak keys (with odd parity).
const WEAK: [[u8; 8]; 16] = [
    [0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01],
    [0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE],
    [0xE0, 0xE0, 0xE0, 0xE0, 0xF1, 0xF1, 0xF1, 0xF1],
    [0x1F, 0x1F, 0x1F, 0x1F, 0x0E, 0x0E, 0x0E, 0x0E],
    [0x01, 0x1F, 0x01, 0x1F, 0x01, 0x0E, 0x01, 0x0E],
    [0x1F, 0x01, 0x1F, 0x01, 0x0E, 0x01, 0x0E, 0x01],
    [0x01, 0xE0, 0x01, 0xE0, 0x01, 0xF1, 0x01, 0xF1],
    [0xE0, 0x01, 0xE0, 0x01, 0xF1, 0x01, 0xF1, 0x01],
    [0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE],
    [0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01, 0xFE, 0x01],
    [0x1F, 0xE0, 0x1F, 0xE0, 0x0E, 0xF1, 0x0E, 0xF1],
    [0xE0, 0x1F, 0xE0, 0x1F, 0xF1, 0x0E, 0xF1, 0x0E],
    [0x1F, 0xFE, 0x1F, 0xFE, 0x0E, 0xFE, 0x0E, 0xFE],
    [0xFE, 0x1F, 0xFE, 0x1F, 0xFE, 0x0E, 0xFE, 0x0E],
    [0xE0, 0xFE, 0xE0, 0xFE, 0xF1, 0xFE, 0xF1, 0xFE],
    [0xFE, 0xE0, 0xFE, 0xE0, 0xFE, 0xF1, 0xFE, 0xF1],
];

/// Sets the low bit of `b` so that the byte has odd parity.
#[inline]
fn odd_parity(b: u8) -> u8 {
    let hi = b & 0xFE;
    hi | u8::from(hi.count_ones().is_multiple_of(2))
}

/// DES3 random-to-key (RFC 3961 §6.3.1): each 7-byte group becomes an
/// 8-byte DES key whose last byte collects the low bits of the first seven,
/// parity-adjusted; weak keys are corrected by XOR 0xF0 on the last byte.
pub(crate) fn random_to_key(seed: &[u8; 21]) -> Zeroizing<[u8; 24]> {
    let mut out = Zeroizing::new([0u8; 24]);
    for (src, dst) in seed.chunks_exact(7).zip(out.chunks_exact_mut(8)) {
        let mut last = 0u8;
        for (j, (d, s)) in dst.iter_mut().zip(src).enumerate() {
            *d = odd_parity(*s);
            last |= (s & 1) << (j + 1);
        }
        dst[7] = odd_parity(last);
        if WEAK.iter().any(|w| w[..] == dst[..]) {
            dst[7] ^= 0xF0;
        }
    }
    out
}

#[inline]
fn block(b: &mut [u8; 8]) -> &mut Array<u8, U8> {
    b.into()
}

/// DR(base, constant) of RFC 3961 §5.1 for 3DES: 168 bits of
/// E(n-fold(constant)), E(E(...)), ... (single blocks, so CBC = ECB).
pub(crate) fn derive_random(base: &TdesEde3, constant: &[u8]) -> Zeroizing<[u8; 21]> {
    let mut blk = Zeroizing::new([0u8; 8]);
    nfold(constant, &mut blk[..]);
    let mut out = Zeroizing::new([0u8; 21]);
    for chunk in out.chunks_mut(8) {
        base.encrypt_block(block(&mut blk));
        chunk.copy_from_slice(&blk[..chunk.len()]);
    }
    out
}

/// DK(base, constant) = random-to-key(DR(base, constant)).
pub(crate) fn derive(base: &TdesEde3, constant: &[u8]) -> Zeroizing<[u8; 24]> {
    random_to_key(&derive_random(base, constant))
}

/// A 3DES cipher from 24 key bytes.
pub(crate) fn cipher(key: &[u8; 24]) -> TdesEde3 {
    TdesEde3::new(key.into())
}

/// RFC 3961 §6.3.1 string-to-key:
/// DK(random-to-key(168-fold(password | salt)), "kerberos").
pub(crate) fn string_to_key(
    password: &[u8],
    salt: &[u8],
) -> Result<Zeroizing<[u8; 24]>, CryptoError> {
    if password.is_empty() && salt.is_empty() {
        // n-fold of nothing is undefined.
        return Err(CryptoError::BadS2kParams);
    }
    let mut s = Zeroizing::new(Vec::with_capacity(password.len() + salt.len()));
    s.extend_from_slice(password);
    s.extend_from_slice(salt);
    let mut folded = Zeroizing::new([0u8; 21]);
    nfold(&s, &mut folded[..]);
    let tkey = random_to_key(&folded);
    Ok(derive(&cipher(&tkey), b"kerberos"))
}

fn cbc_encrypt(c: &TdesEde3, buf: &mut [u8]) {
    let mut prev = [0u8; 8];
    for chunk in buf.chunks_exact_mut(8) {
        for (p, x) in prev.iter_mut().zip(chunk.iter()) {
            *p ^= *x;
        }
        c.encrypt_block(block(&mut prev));
        chunk.copy_from_slice(&prev);
    }
}

fn cbc_decrypt(c: &TdesEde3, buf: &mut [u8]) {
    let mut prev = [0u8; 8];
    for chunk in buf.chunks_exact_mut(8) {
        let mut cur = [0u8; 8];
        cur.copy_from_slice(chunk);
        let mut p = cur;
        c.decrypt_block(block(&mut p));
        for (d, (x, y)) in chunk.iter_mut().zip(p.iter().zip(prev.iter())) {
            *d = x ^ y;
        }
        prev = cur;
    }
}

/// confounder | plaintext | zero padding to 8 bytes, HMAC-SHA1 over it with
/// Ki, 3DES-CBC with Ke.
pub(crate) fn encrypt(ke: &TdesEde3, ki: &[u8], confounder: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let padded = (confounder.len() + plaintext.len()).next_multiple_of(8);
    let mut buf = Vec::with_capacity(padded + MAC);
    buf.extend_from_slice(confounder);
    buf.extend_from_slice(plaintext);
    buf.resize(padded, 0);
    let mac = hmac::<Sha1, 64>(ki, &[&buf]);
    cbc_encrypt(ke, &mut buf);
    buf.extend_from_slice(&mac);
    buf
}

/// Inverse of [`encrypt`]. The result keeps the zero padding (RFC 3961
/// allows it; DER decoders ignore trailing bytes after the outer value).
pub(crate) fn decrypt(ke: &TdesEde3, ki: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let n = ciphertext.len();
    if n < CONF + MAC || !(n - MAC).is_multiple_of(8) {
        return Err(CryptoError::BadCiphertext);
    }
    let (body, tag) = ciphertext.split_at(n - MAC);
    let mut buf = body.to_vec();
    cbc_decrypt(ke, &mut buf);
    let mac = hmac::<Sha1, 64>(ki, &[&buf]);
    if let Err(e) = ct_verify(&mac, tag) {
        buf.zeroize();
        return Err(e);
    }
    buf.drain(..CONF);
    Ok(buf)
}

/// hmac-sha1-des3-kd: HMAC-SHA1(Kc, data), 20 bytes.
pub(crate) fn checksum(kc: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::<Sha1, 64>(kc, &[data]).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 3961 Appendix A.3: DES3 DR and DK, all nine vectors.
    #[test]
    fn rfc3961_a3_des3_dr_dk() {
        let vectors = [
            (
                "dce06b1f64c857a11c3db57c51899b2cc1791008ce973b92",
                "0000000155",
                "935079d14490a75c3093c4a6e8c3b049c71e6ee705",
                "925179d04591a79b5d3192c4a7e9c289b049c71f6ee604cd",
            ),
            (
                "5e13d31c70ef765746578531cb51c15bf11ca82c97cee9f2",
                "00000001aa",
                "9f58e5a047d894101c469845d67ae3c5249ed812f2",
                "9e58e5a146d9942a101c469845d67a20e3c4259ed913f207",
            ),
            (
                "98e6fd8a04a4b6859b75a176540b9752bad3ecd610a252bc",
                "0000000155",
                "12fff90c773f956d13fc2ca0d0840349dbd39908eb",
                "13fef80d763e94ec6d13fd2ca1d085070249dad39808eabf",
            ),
            (
                "622aec25a2fe2cad7094680b7c64940280084c1a7cec92b5",
                "00000001aa",
                "f8debf05b097e7dc0603686aca35d91fd9a5516a70",
                "f8dfbf04b097e6d9dc0702686bcb3489d91fd9a4516b703e",
            ),
            (
                "d3f8298ccb166438dcb9b93ee5a7629286a491f838f802fb",
                "6b65726265726f73",
                "2270db565d2a3d64cfbfdc5305d4f778a6de42d9da",
                "2370da575d2a3da864cebfdc5204d56df779a7df43d9da43",
            ),
            (
                "c1081649ada74362e6a1459d01dfd30d67c2234c940704da",
                "0000000155",
                "348056ec98fcc517171d2b4d7a9493af482d999175",
                "348057ec98fdc48016161c2a4c7a943e92ae492c989175f7",
            ),
            (
                "5d154af238f46713155719d55e2f1f790dd661f279a7917c",
                "00000001aa",
                "a8818bc367dadacbe9a6c84627fb60c294b01215e5",
                "a8808ac267dada3dcbe9a7c84626fbc761c294b01315e5c1",
            ),
            (
                "798562e049852f57dc8c343ba17f2ca1d97394efc8adc443",
                "0000000155",
                "c813f88b3be2b2f75424ce9175fbc8483b88c8713a",
                "c813f88a3be3b334f75425ce9175fbe3c8493b89c8703b49",
            ),
            (
                "26dce334b545292f2feab9a8701a89a4b99eb9942cecd016",
                "00000001aa",
                "f58efc6f83f93e55e695fd252cf8fe59f7d5ba37ec",
                "f48ffd6e83f83e7354e694fd252cf83bfe58f7d5ba37ec5d",
            ),
        ];
        for (key, usage, dr, dk) in vectors {
            let k: [u8; 24] = h(key).try_into().unwrap();
            let c = cipher(&k);
            assert_eq!(hex::encode(*derive_random(&c, &h(usage))), dr, "DR {key}");
            assert_eq!(hex::encode(*derive(&c, &h(usage))), dk, "DK {key}");
        }
    }

    /// RFC 3961 Appendix A.4: DES3 string-to-key, all five vectors
    /// (including the eszett and g-clef ones, UTF-8 encoded).
    #[test]
    fn rfc3961_a4_des3_string_to_key() {
        let vectors: [(&str, &str, &str); 5] = [
            (
                "ATHENA.MIT.EDUraeburn",
                "password",
                "850bb51358548cd05e86768c313e3bfef7511937dcf72c3e",
            ),
            (
                "WHITEHOUSE.GOVdanny",
                "potatoe",
                "dfcd233dd0a43204ea6dc437fb15e061b02979c1f74f377a",
            ),
            (
                "EXAMPLE.COMbuckaroo",
                "penny",
                "6d2fcdf2d6fbbc3ddcadb5da5710a23489b0d3b69d5d9d4a",
            ),
            (
                "ATHENA.MIT.EDUJuri\u{0161}i\u{0107}",
                "\u{00df}",
                "16d5a40e1ce3bacb61b9dce00470324c831973a7b952feb0",
            ),
            (
                "EXAMPLE.COMpianist",
                "\u{1D11E}",
                "85763726585dbc1cce6ec43e1f751f07f1c4cbb098f40b19",
            ),
        ];
        for (salt, pw, want) in vectors {
            let k = string_to_key(pw.as_bytes(), salt.as_bytes()).unwrap();
            assert_eq!(hex::encode(*k), want, "{salt}");
        }
    }

    #[test]
    fn empty_password_and_salt_rejected() {
        assert_eq!(
            string_to_key(b"", b"").err(),
            Some(CryptoError::BadS2kParams)
        );
    }
}
