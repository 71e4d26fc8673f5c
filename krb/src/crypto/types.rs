//! Encryption and checksum type numbers (RFC 3961 §8, RFC 3962, RFC 8009).

/// The encryption types this module implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncType {
    /// des3-cbc-sha1-kd, etype 16 (RFC 3961 §6.3).
    Des3CbcSha1Kd,
    /// aes128-cts-hmac-sha1-96, etype 17 (RFC 3962).
    Aes128CtsHmacSha196,
    /// aes256-cts-hmac-sha1-96, etype 18 (RFC 3962).
    Aes256CtsHmacSha196,
    /// aes128-cts-hmac-sha256-128, etype 19 (RFC 8009).
    Aes128CtsHmacSha256128,
    /// aes256-cts-hmac-sha384-192, etype 20 (RFC 8009).
    Aes256CtsHmacSha384192,
}

impl EncType {
    /// All supported enctypes, strongest first: 20, 18, 19, 17, 16.
    pub const ALL: [EncType; 5] = [
        EncType::Aes256CtsHmacSha384192,
        EncType::Aes256CtsHmacSha196,
        EncType::Aes128CtsHmacSha256128,
        EncType::Aes128CtsHmacSha196,
        EncType::Des3CbcSha1Kd,
    ];

    /// The enctype for an assigned number, or `None` if unsupported.
    pub fn from_i32(v: i32) -> Option<EncType> {
        match v {
            16 => Some(EncType::Des3CbcSha1Kd),
            17 => Some(EncType::Aes128CtsHmacSha196),
            18 => Some(EncType::Aes256CtsHmacSha196),
            19 => Some(EncType::Aes128CtsHmacSha256128),
            20 => Some(EncType::Aes256CtsHmacSha384192),
            _ => None,
        }
    }

    /// The assigned number.
    pub fn as_i32(self) -> i32 {
        match self {
            EncType::Des3CbcSha1Kd => 16,
            EncType::Aes128CtsHmacSha196 => 17,
            EncType::Aes256CtsHmacSha196 => 18,
            EncType::Aes128CtsHmacSha256128 => 19,
            EncType::Aes256CtsHmacSha384192 => 20,
        }
    }

    /// The MIT name. For the RFC 8009 types this is also the string-to-key salt prefix.
    pub fn name(self) -> &'static str {
        match self {
            EncType::Des3CbcSha1Kd => "des3-cbc-sha1",
            EncType::Aes128CtsHmacSha196 => "aes128-cts-hmac-sha1-96",
            EncType::Aes256CtsHmacSha196 => "aes256-cts-hmac-sha1-96",
            EncType::Aes128CtsHmacSha256128 => "aes128-cts-hmac-sha256-128",
            EncType::Aes256CtsHmacSha384192 => "aes256-cts-hmac-sha384-192",
        }
    }

    /// Parses an MIT name (case-insensitive, plus the des3 aliases
    /// `des3-cbc-sha1-kd` and `des3-hmac-sha1`) or a decimal etype number.
    pub fn from_name(s: &str) -> Option<EncType> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i32>() {
            return EncType::from_i32(n);
        }
        if s.eq_ignore_ascii_case("des3-cbc-sha1-kd") || s.eq_ignore_ascii_case("des3-hmac-sha1") {
            return Some(EncType::Des3CbcSha1Kd);
        }
        EncType::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(s))
    }

    /// Protocol key length in bytes: 24, 16, 32, 16, 32.
    /// Seed bytes random-to-key takes: 21 for des3 (168 bits), else the key length.
    pub fn random_to_key_len(self) -> usize {
        match self {
            EncType::Des3CbcSha1Kd => 21,
            other => other.key_len(),
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            EncType::Des3CbcSha1Kd => 24,
            EncType::Aes128CtsHmacSha196 | EncType::Aes128CtsHmacSha256128 => 16,
            EncType::Aes256CtsHmacSha196 | EncType::Aes256CtsHmacSha384192 => 32,
        }
    }

    /// The keyed checksum type associated with this enctype.
    pub fn checksum_type(self) -> ChecksumType {
        match self {
            EncType::Des3CbcSha1Kd => ChecksumType::HmacSha1Des3Kd,
            EncType::Aes128CtsHmacSha196 => ChecksumType::HmacSha196Aes128,
            EncType::Aes256CtsHmacSha196 => ChecksumType::HmacSha196Aes256,
            EncType::Aes128CtsHmacSha256128 => ChecksumType::HmacSha256128Aes128,
            EncType::Aes256CtsHmacSha384192 => ChecksumType::HmacSha384192Aes256,
        }
    }

    /// Default string-to-key parameters: the iteration count as 4 big-endian
    /// bytes (4096 for RFC 3962, 32768 for RFC 8009); `None` for des3.
    pub fn default_s2kparams(self) -> Option<Vec<u8>> {
        self.default_iterations().map(|n| n.to_be_bytes().to_vec())
    }

    pub(crate) fn default_iterations(self) -> Option<u32> {
        match self {
            EncType::Des3CbcSha1Kd => None,
            EncType::Aes128CtsHmacSha196 | EncType::Aes256CtsHmacSha196 => Some(4096),
            EncType::Aes128CtsHmacSha256128 | EncType::Aes256CtsHmacSha384192 => Some(32768),
        }
    }
}

/// Checksum types this module implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumType {
    /// rsa-md5, 7 (unkeyed).
    RsaMd5,
    /// sha1, 10 (unkeyed).
    Sha1,
    /// sha1 under the number 14 (same algorithm as 10, unkeyed).
    Sha1Alt,
    /// hmac-sha1-des3-kd, 12.
    HmacSha1Des3Kd,
    /// hmac-sha1-96-aes128, 15.
    HmacSha196Aes128,
    /// hmac-sha1-96-aes256, 16.
    HmacSha196Aes256,
    /// hmac-sha256-128-aes128, 19.
    HmacSha256128Aes128,
    /// hmac-sha384-192-aes256, 20.
    HmacSha384192Aes256,
}

impl ChecksumType {
    /// The checksum type for an assigned number, or `None` if unsupported.
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            7 => Some(ChecksumType::RsaMd5),
            10 => Some(ChecksumType::Sha1),
            14 => Some(ChecksumType::Sha1Alt),
            12 => Some(ChecksumType::HmacSha1Des3Kd),
            15 => Some(ChecksumType::HmacSha196Aes128),
            16 => Some(ChecksumType::HmacSha196Aes256),
            19 => Some(ChecksumType::HmacSha256128Aes128),
            20 => Some(ChecksumType::HmacSha384192Aes256),
            _ => None,
        }
    }

    /// The assigned number.
    pub fn as_i32(self) -> i32 {
        match self {
            ChecksumType::RsaMd5 => 7,
            ChecksumType::Sha1 => 10,
            ChecksumType::Sha1Alt => 14,
            ChecksumType::HmacSha1Des3Kd => 12,
            ChecksumType::HmacSha196Aes128 => 15,
            ChecksumType::HmacSha196Aes256 => 16,
            ChecksumType::HmacSha256128Aes128 => 19,
            ChecksumType::HmacSha384192Aes256 => 20,
        }
    }

    /// Whether the checksum needs a key.
    pub fn is_keyed(self) -> bool {
        self.etype().is_some()
    }

    /// The enctype whose keys compute this checksum (keyed types only).
    pub fn etype(self) -> Option<EncType> {
        match self {
            ChecksumType::RsaMd5 | ChecksumType::Sha1 | ChecksumType::Sha1Alt => None,
            ChecksumType::HmacSha1Des3Kd => Some(EncType::Des3CbcSha1Kd),
            ChecksumType::HmacSha196Aes128 => Some(EncType::Aes128CtsHmacSha196),
            ChecksumType::HmacSha196Aes256 => Some(EncType::Aes256CtsHmacSha196),
            ChecksumType::HmacSha256128Aes128 => Some(EncType::Aes128CtsHmacSha256128),
            ChecksumType::HmacSha384192Aes256 => Some(EncType::Aes256CtsHmacSha384192),
        }
    }

    /// Checksum length in bytes.
    #[allow(clippy::len_without_is_empty)] // a checksum length, never empty
    pub fn len(self) -> usize {
        match self {
            ChecksumType::RsaMd5 => 16,
            ChecksumType::Sha1 | ChecksumType::Sha1Alt | ChecksumType::HmacSha1Des3Kd => 20,
            ChecksumType::HmacSha196Aes128 | ChecksumType::HmacSha196Aes256 => 12,
            ChecksumType::HmacSha256128Aes128 => 16,
            ChecksumType::HmacSha384192Aes256 => 24,
        }
    }
}
