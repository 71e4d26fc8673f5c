//! Protocol keys and per-usage derived keys.

use std::fmt;

use aes::cipher::KeyInit;
use aes::{Aes128, Aes256};
use des::TdesEde3;
use sha2::{Sha256, Sha384};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::prims::{ct_verify, prefix, random_bytes};
use super::{ChecksumType, CryptoError, EncType, aes_sha1, aes_sha2, des3};

/// Derivation constants of RFC 3961 §5.3: usage | 0x99 (Kc), 0xAA (Ke), 0x55 (Ki).
const TAG_KC: u8 = 0x99;
const TAG_KE: u8 = 0xAA;
const TAG_KI: u8 = 0x55;

/// Upper bound accepted for string-to-key iteration counts.
const MAX_ITERATIONS: u32 = 10_000_000;

/// A protocol key (long-term or session key) of one enctype.
///
/// Zeroized on drop. `Debug` shows only the enctype.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key {
    #[zeroize(skip)]
    etype: EncType,
    /// Key bytes, left-aligned; only the first `etype.key_len()` are used.
    bytes: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("etype", &self.etype)
            .finish_non_exhaustive()
    }
}

/// A base key prepared for key derivation.
enum Base<'a> {
    Aes128(Aes128),
    Aes256(Aes256),
    Sha256(&'a [u8]),
    Sha384(&'a [u8]),
    Des3(TdesEde3),
}

impl Base<'_> {
    /// DK (RFC 3961/3962) or KDF-HMAC-SHA2 (RFC 8009) for usage | tag into `out`.
    fn derive(&self, usage: u32, tag: u8, out: &mut [u8]) {
        let u = usage.to_be_bytes();
        let label = [u[0], u[1], u[2], u[3], tag];
        match self {
            Base::Aes128(c) => aes_sha1::derive(c, &label, out),
            Base::Aes256(c) => aes_sha1::derive(c, &label, out),
            Base::Sha256(k) => aes_sha2::kdf::<Sha256, 64>(k, &label, out),
            Base::Sha384(k) => aes_sha2::kdf::<Sha384, 128>(k, &label, out),
            Base::Des3(c) => {
                let k = des3::derive(c, &label);
                for (d, s) in out.iter_mut().zip(k.iter()) {
                    *d = *s;
                }
            }
        }
    }
}

/// Length of Kc and Ki for an enctype.
fn integrity_key_len(etype: EncType) -> usize {
    match etype {
        EncType::Aes256CtsHmacSha384192 => 24,
        other => other.key_len(),
    }
}

fn parse_iterations(etype: EncType, s2kparams: Option<&[u8]>) -> Result<u32, CryptoError> {
    let default = etype
        .default_iterations()
        .ok_or(CryptoError::BadS2kParams)?;
    let n = match s2kparams {
        None | Some([]) => default,
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        Some(_) => return Err(CryptoError::BadS2kParams),
    };
    if n == 0 || n > MAX_ITERATIONS {
        return Err(CryptoError::BadS2kParams);
    }
    Ok(n)
}

impl Key {
    /// A key from raw bytes; the length must be `etype.key_len()`.
    pub fn new(etype: EncType, bytes: &[u8]) -> Result<Key, CryptoError> {
        if bytes.len() != etype.key_len() {
            return Err(CryptoError::BadKeyLength);
        }
        let mut key = Key {
            etype,
            bytes: [0u8; 32],
        };
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(key)
    }

    /// A fresh random key from the OS random source (des3: random-to-key
    /// of 168 random bits, so parity is correct and weak keys are avoided).
    ///
    /// # Panics
    ///
    /// Only if the operating system's random source fails.
    pub fn random(etype: EncType) -> Key {
        let mut key = Key {
            etype,
            bytes: [0u8; 32],
        };
        match etype {
            EncType::Des3CbcSha1Kd => {
                let mut seed = Zeroizing::new([0u8; 21]);
                random_bytes(&mut seed[..]);
                key.bytes[..24].copy_from_slice(&des3::random_to_key(&seed)[..]);
            }
            _ => random_bytes(&mut key.bytes[..etype.key_len()]),
        }
        key
    }

    /// String-to-key: RFC 3962 (PBKDF2-HMAC-SHA1 then DK), RFC 8009
    /// (PBKDF2-HMAC-SHA2 with salt `enctype-name | 0x00 | salt`, then
    /// KDF-HMAC-SHA2) or RFC 3961 des3 (n-fold, random-to-key, DK).
    ///
    /// `s2kparams` is the 4-byte big-endian iteration count for AES (absent
    /// or empty means the default, 4096 or 32768); counts of 0 or above
    /// 10,000,000 are rejected. des3 accepts only absent or empty params.
    pub fn from_password(
        etype: EncType,
        password: &[u8],
        salt: &[u8],
        s2kparams: Option<&[u8]>,
    ) -> Result<Key, CryptoError> {
        let mut key = Key {
            etype,
            bytes: [0u8; 32],
        };
        match etype {
            EncType::Des3CbcSha1Kd => {
                if s2kparams.is_some_and(|p| !p.is_empty()) {
                    return Err(CryptoError::BadS2kParams);
                }
                let k = des3::string_to_key(password, salt)?;
                key.bytes[..24].copy_from_slice(&k[..]);
            }
            EncType::Aes128CtsHmacSha196 => {
                let it = parse_iterations(etype, s2kparams)?;
                let k = aes_sha1::string_to_key_128(password, salt, it);
                key.bytes[..16].copy_from_slice(&k[..]);
            }
            EncType::Aes256CtsHmacSha196 => {
                let it = parse_iterations(etype, s2kparams)?;
                let k = aes_sha1::string_to_key_256(password, salt, it);
                key.bytes.copy_from_slice(&k[..]);
            }
            EncType::Aes128CtsHmacSha256128 => {
                let it = parse_iterations(etype, s2kparams)?;
                aes_sha2::string_to_key::<Sha256, 64>(
                    etype.name(),
                    password,
                    salt,
                    it,
                    &mut key.bytes[..16],
                );
            }
            EncType::Aes256CtsHmacSha384192 => {
                let it = parse_iterations(etype, s2kparams)?;
                aes_sha2::string_to_key::<Sha384, 128>(
                    etype.name(),
                    password,
                    salt,
                    it,
                    &mut key.bytes[..],
                );
            }
        }
        Ok(key)
    }

    /// RFC 3961 random-to-key: a key from `etype.random_to_key_len()` bytes
    /// of key-generation seed (what PKINIT's octetstring2key and KDF produce).
    /// des3 spreads 21 bytes over three parity-adjusted DES keys and avoids
    /// weak keys; AES keys are the seed itself.
    pub fn from_random_bits(etype: EncType, seed: &[u8]) -> Result<Key, CryptoError> {
        if seed.len() != etype.random_to_key_len() {
            return Err(CryptoError::BadKeyLength);
        }
        match etype {
            EncType::Des3CbcSha1Kd => {
                let seed: &[u8; 21] = seed.try_into().map_err(|_| CryptoError::BadKeyLength)?;
                Key::new(etype, &des3::random_to_key(seed)[..])
            }
            _ => Key::new(etype, seed),
        }
    }

    /// The key's enctype.
    pub fn etype(&self) -> EncType {
        self.etype
    }

    /// The raw key bytes (`etype().key_len()` of them).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.etype.key_len()]
    }

    fn base(&self) -> Base<'_> {
        match self.etype {
            EncType::Aes128CtsHmacSha196 => {
                Base::Aes128(Aes128::new((&*prefix::<16>(&self.bytes)).into()))
            }
            EncType::Aes256CtsHmacSha196 => Base::Aes256(Aes256::new((&self.bytes).into())),
            EncType::Aes128CtsHmacSha256128 => Base::Sha256(&self.bytes[..16]),
            EncType::Aes256CtsHmacSha384192 => Base::Sha384(&self.bytes[..]),
            EncType::Des3CbcSha1Kd => Base::Des3(des3::cipher(&prefix::<24>(&self.bytes))),
        }
    }

    /// Derives Ke, Ki and Kc for `usage` once, for reuse on hot paths.
    pub fn usage(&self, usage: u32) -> UsageKey {
        self.derive_usage(usage, true)
    }

    /// Ke and Ki, plus Kc when `with_kc`: one-shot encryption needs no Kc.
    fn derive_usage(&self, usage: u32, with_kc: bool) -> UsageKey {
        let mut uk = UsageKey {
            inner: match self.etype {
                EncType::Aes128CtsHmacSha196 => Inner::AesSha1_128 {
                    ke: [0; 16],
                    ki: [0; 16],
                    kc: [0; 16],
                },
                EncType::Aes256CtsHmacSha196 => Inner::AesSha1_256 {
                    ke: [0; 32],
                    ki: [0; 32],
                    kc: [0; 32],
                },
                EncType::Aes128CtsHmacSha256128 => Inner::AesSha256 {
                    ke: [0; 16],
                    ki: [0; 16],
                    kc: [0; 16],
                },
                EncType::Aes256CtsHmacSha384192 => Inner::AesSha384 {
                    ke: [0; 32],
                    ki: [0; 24],
                    kc: [0; 24],
                },
                EncType::Des3CbcSha1Kd => Inner::Des3 {
                    ke: [0; 24],
                    ki: [0; 24],
                    kc: [0; 24],
                },
            },
        };
        let base = self.base();
        let (ke, ki, kc) = uk.inner.parts_mut();
        base.derive(usage, TAG_KE, ke);
        base.derive(usage, TAG_KI, ki);
        if with_kc {
            base.derive(usage, TAG_KC, kc);
        }
        uk
    }

    /// Encrypts with a random confounder (derives the usage keys first).
    pub fn encrypt(&self, usage: u32, plaintext: &[u8]) -> Vec<u8> {
        self.derive_usage(usage, false).encrypt(plaintext)
    }

    /// Decrypts and checks integrity (derives the usage keys first).
    pub fn decrypt(&self, usage: u32, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.derive_usage(usage, false).decrypt(ciphertext)
    }

    fn kc(&self, usage: u32) -> Zeroizing<[u8; 32]> {
        let mut kc = Zeroizing::new([0u8; 32]);
        let len = integrity_key_len(self.etype);
        self.base().derive(usage, TAG_KC, &mut kc[..len]);
        kc
    }

    /// The enctype's keyed checksum with Kc for `usage` (only Kc is derived).
    pub fn checksum(&self, usage: u32, data: &[u8]) -> Vec<u8> {
        let kc = self.kc(usage);
        keyed_checksum(self.etype, &kc[..integrity_key_len(self.etype)], data)
    }

    /// Recomputes the keyed checksum and compares in constant time.
    pub fn verify_checksum(
        &self,
        usage: u32,
        data: &[u8],
        cksum: &[u8],
    ) -> Result<(), CryptoError> {
        ct_verify(&self.checksum(usage, data), cksum)
    }

    fn check_family(&self, ctype: ChecksumType) -> Result<(), CryptoError> {
        if ctype.etype() == Some(self.etype) {
            Ok(())
        } else {
            Err(CryptoError::UnsupportedChecksum(ctype.as_i32()))
        }
    }

    /// Keyed checksum of an explicit type; [`CryptoError::UnsupportedChecksum`]
    /// unless `ctype` is this key's enctype's checksum (unkeyed types included).
    pub fn checksum_with(
        &self,
        ctype: ChecksumType,
        usage: u32,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.check_family(ctype)?;
        Ok(self.checksum(usage, data))
    }

    /// Verifies a keyed checksum of an explicit type (see [`Key::checksum_with`]).
    pub fn verify_checksum_with(
        &self,
        ctype: ChecksumType,
        usage: u32,
        data: &[u8],
        cksum: &[u8],
    ) -> Result<(), CryptoError> {
        self.check_family(ctype)?;
        self.verify_checksum(usage, data, cksum)
    }
}

/// Derived keys (Ke, Ki, Kc) of one key usage. Zeroized on drop; `Debug`
/// shows only the enctype.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct UsageKey {
    inner: Inner,
}

#[derive(Clone, Zeroize)]
enum Inner {
    AesSha1_128 {
        ke: [u8; 16],
        ki: [u8; 16],
        kc: [u8; 16],
    },
    AesSha1_256 {
        ke: [u8; 32],
        ki: [u8; 32],
        kc: [u8; 32],
    },
    AesSha256 {
        ke: [u8; 16],
        ki: [u8; 16],
        kc: [u8; 16],
    },
    AesSha384 {
        ke: [u8; 32],
        ki: [u8; 24],
        kc: [u8; 24],
    },
    Des3 {
        ke: [u8; 24],
        ki: [u8; 24],
        kc: [u8; 24],
    },
}

impl Inner {
    fn parts_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        match self {
            Inner::AesSha1_128 { ke, ki, kc } | Inner::AesSha256 { ke, ki, kc } => (ke, ki, kc),
            Inner::AesSha1_256 { ke, ki, kc } => (ke, ki, kc),
            Inner::AesSha384 { ke, ki, kc } => (ke, ki, kc),
            Inner::Des3 { ke, ki, kc } => (ke, ki, kc),
        }
    }

    fn etype(&self) -> EncType {
        match self {
            Inner::AesSha1_128 { .. } => EncType::Aes128CtsHmacSha196,
            Inner::AesSha1_256 { .. } => EncType::Aes256CtsHmacSha196,
            Inner::AesSha256 { .. } => EncType::Aes128CtsHmacSha256128,
            Inner::AesSha384 { .. } => EncType::Aes256CtsHmacSha384192,
            Inner::Des3 { .. } => EncType::Des3CbcSha1Kd,
        }
    }

    fn kc(&self) -> &[u8] {
        match self {
            Inner::AesSha1_128 { kc, .. } | Inner::AesSha256 { kc, .. } => kc,
            Inner::AesSha1_256 { kc, .. } => kc,
            Inner::AesSha384 { kc, .. } => kc,
            Inner::Des3 { kc, .. } => kc,
        }
    }
}

impl fmt::Debug for UsageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageKey")
            .field("etype", &self.inner.etype())
            .finish_non_exhaustive()
    }
}

fn keyed_checksum(etype: EncType, kc: &[u8], data: &[u8]) -> Vec<u8> {
    match etype {
        EncType::Aes128CtsHmacSha196 | EncType::Aes256CtsHmacSha196 => aes_sha1::checksum(kc, data),
        EncType::Aes128CtsHmacSha256128 => aes_sha2::checksum::<Sha256, 64>(kc, 16, data),
        EncType::Aes256CtsHmacSha384192 => aes_sha2::checksum::<Sha384, 128>(kc, 24, data),
        EncType::Des3CbcSha1Kd => des3::checksum(kc, data),
    }
}

impl UsageKey {
    /// (Ke, Ki, Kc), for key-derivation test vectors.
    #[cfg(test)]
    pub(crate) fn parts(&self) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut inner = self.inner.clone();
        let (ke, ki, kc) = inner.parts_mut();
        (ke.to_vec(), ki.to_vec(), kc.to_vec())
    }

    /// The enctype these keys belong to.
    pub fn etype(&self) -> EncType {
        self.inner.etype()
    }

    fn confounder_len(&self) -> usize {
        match self.inner {
            Inner::Des3 { .. } => des3::CONF,
            _ => aes_sha1::CONF,
        }
    }

    /// `confounder` must have the right length (checked by callers).
    fn seal(&self, confounder: &[u8], plaintext: &[u8]) -> Vec<u8> {
        match &self.inner {
            Inner::AesSha1_128 { ke, ki, .. } => {
                aes_sha1::encrypt(&Aes128::new(ke.into()), ki, confounder, plaintext)
            }
            Inner::AesSha1_256 { ke, ki, .. } => {
                aes_sha1::encrypt(&Aes256::new(ke.into()), ki, confounder, plaintext)
            }
            Inner::AesSha256 { ke, ki, .. } => aes_sha2::encrypt::<_, Sha256, 64>(
                &Aes128::new(ke.into()),
                ki,
                16,
                confounder,
                plaintext,
            ),
            Inner::AesSha384 { ke, ki, .. } => aes_sha2::encrypt::<_, Sha384, 128>(
                &Aes256::new(ke.into()),
                ki,
                24,
                confounder,
                plaintext,
            ),
            Inner::Des3 { ke, ki, .. } => {
                des3::encrypt(&des3::cipher(ke), ki, confounder, plaintext)
            }
        }
    }

    /// Encrypts with a fresh random confounder.
    ///
    /// # Panics
    ///
    /// Only if the operating system's random source fails.
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut conf = [0u8; 16];
        let conf = &mut conf[..self.confounder_len()];
        random_bytes(conf);
        self.seal(conf, plaintext)
    }

    /// Encrypts with a caller-chosen confounder (for test vectors). The
    /// confounder must be exactly one cipher block (16 bytes for AES, 8 for
    /// des3), else [`CryptoError::BadConfounderLength`].
    pub fn encrypt_with_confounder(
        &self,
        confounder: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if confounder.len() != self.confounder_len() {
            return Err(CryptoError::BadConfounderLength);
        }
        Ok(self.seal(confounder, plaintext))
    }

    /// Checks integrity and decrypts. AES results have the exact plaintext
    /// length; des3 results may carry zero padding up to the 8-byte block.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::AesSha1_128 { ke, ki, .. } => {
                aes_sha1::decrypt(&Aes128::new(ke.into()), ki, ciphertext)
            }
            Inner::AesSha1_256 { ke, ki, .. } => {
                aes_sha1::decrypt(&Aes256::new(ke.into()), ki, ciphertext)
            }
            Inner::AesSha256 { ke, ki, .. } => {
                aes_sha2::decrypt::<_, Sha256, 64>(&Aes128::new(ke.into()), ki, 16, ciphertext)
            }
            Inner::AesSha384 { ke, ki, .. } => {
                aes_sha2::decrypt::<_, Sha384, 128>(&Aes256::new(ke.into()), ki, 24, ciphertext)
            }
            Inner::Des3 { ke, ki, .. } => des3::decrypt(&des3::cipher(ke), ki, ciphertext),
        }
    }

    /// The enctype's keyed checksum with Kc.
    pub fn checksum(&self, data: &[u8]) -> Vec<u8> {
        keyed_checksum(self.inner.etype(), self.inner.kc(), data)
    }

    /// Recomputes the checksum and compares in constant time.
    pub fn verify_checksum(&self, data: &[u8], cksum: &[u8]) -> Result<(), CryptoError> {
        ct_verify(&self.checksum(data), cksum)
    }
}
