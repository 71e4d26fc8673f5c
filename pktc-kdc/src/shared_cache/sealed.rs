//! The authenticated form of one provisioning-server answer in Redis.
//!
//! Anyone who can write to Redis must not be able to bind a MAC to a
//! FQDN or an address, or to refuse a device. So each value carries an
//! HMAC-SHA-256 tag over the MAC it belongs to (the key it is stored under,
//! not a field of the value: a value moved to another MAC fails), the
//! answer and an absolute expiry (a copy of an old value fails once its
//! time is up), keyed by a secret every replica reads from
//! `mps.redis_secret_file`.
//!
//! Stored text: `v1:<expiry, Unix seconds>:<answer>:<tag, 64 hex digits>`,
//! answer `+<fqdn>|<addr>,<addr>…` or `-` (unknown MAC). The tag covers a
//! canonical, length-prefixed encoding of the fields (below), never the
//! text, so the text's parsing cannot be played against it.

use std::net::IpAddr;
use std::path::Path;

use fqdn_map::cache::Cached;
use fqdn_map::client::Binding;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Versions the tag's input as well as the text.
const DOMAIN: &[u8] = b"pktc-kdc mps-cache v1\0";
const PREFIX: &str = "v1:";
/// Fewer bytes would make the tag as weak as a short password.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest value read back from Redis (`GETRANGE`): a FQDN of 255 bytes
/// and [`MAX_ADDRESSES`] IPv6 addresses fit; anything longer is refused
/// without being read.
pub const MAX_VALUE_BYTES: usize = 2048;
const MAX_ADDRESSES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC key; zeroed when dropped.
pub struct SealKey(Zeroizing<Vec<u8>>);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    #[error(
        "{0}: {1} bytes; the secret must have at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
    )]
    TooShort(String, usize),
}

impl SealKey {
    /// The file's content without surrounding whitespace, used as is.
    pub fn load(path: &Path) -> Result<SealKey, SecretError> {
        let raw = Zeroizing::new(
            std::fs::read(path).map_err(|e| SecretError::Read(path.display().to_string(), e))?,
        );
        SealKey::from_secret(&path.display().to_string(), &raw)
    }

    /// `secret` without surrounding whitespace, at least
    /// [`MIN_SECRET_BYTES`] long; `source` names it in errors.
    pub fn from_secret(source: &str, secret: &[u8]) -> Result<SealKey, SecretError> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(source.to_string(), secret.len()));
        }
        Ok(SealKey(Zeroizing::new(secret.to_vec())))
    }

    #[cfg(test)]
    pub fn from_bytes(b: &[u8]) -> SealKey {
        SealKey(Zeroizing::new(b.to_vec()))
    }

    fn mac(&self, mac: &[u8; 6], expiry: u64, answer: Option<&Binding>) -> HmacSha256 {
        let mut h = <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key");
        h.update(DOMAIN);
        h.update(mac);
        h.update(&expiry.to_be_bytes());
        match answer {
            None => h.update(&[0]),
            Some(b) => {
                h.update(&[1]);
                h.update(&(b.fqdn.len() as u64).to_be_bytes());
                h.update(b.fqdn.as_bytes());
                h.update(&(b.addresses.len() as u64).to_be_bytes());
                for a in &b.addresses {
                    match a {
                        IpAddr::V4(v4) => {
                            h.update(&[4]);
                            h.update(&v4.octets());
                        }
                        IpAddr::V6(v6) => {
                            h.update(&[6]);
                            h.update(&v6.octets());
                        }
                    }
                }
            }
        }
        h
    }

    /// The stored text of `answer` (`None`: unknown MAC) for `mac`.
    pub fn seal(&self, mac: &[u8; 6], expiry: u64, answer: Option<&Binding>) -> String {
        let tag = self.mac(mac, expiry, answer).finalize().into_bytes();
        let body = match answer {
            None => "-".to_string(),
            Some(b) => {
                let addrs: Vec<String> = b.addresses.iter().map(IpAddr::to_string).collect();
                format!("+{}|{}", b.fqdn, addrs.join(","))
            }
        };
        format!("{PREFIX}{expiry}:{body}:{}", hex::encode(tag))
    }

    /// The answer in `text`, stored under `mac`, if its tag verifies
    /// (constant-time compare) and it has not expired at `now`.
    pub fn open(&self, mac: &[u8; 6], text: &[u8], now: u64) -> Result<Cached, Rejected> {
        if text.len() >= MAX_VALUE_BYTES {
            return Err(Rejected::Malformed);
        }
        let text = std::str::from_utf8(text).map_err(|_| Rejected::Malformed)?;
        let (expiry, answer, tag) = parse(text).ok_or(Rejected::Malformed)?;
        self.mac(mac, expiry, answer.as_ref())
            .verify_slice(&tag)
            .map_err(|_| Rejected::Unauthenticated)?;
        if expiry <= now {
            return Err(Rejected::Expired);
        }
        Ok(match answer {
            Some(b) => Cached::Hit(b),
            None => Cached::Negative,
        })
    }
}

/// Why a value from Redis was not used (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Not in the v1 form (hand-written, an older KDC's, truncated).
    Malformed,
    /// Its tag does not verify: written without the secret, or moved from
    /// another MAC's key.
    Unauthenticated,
    /// Authentic but past its expiry (Redis should have dropped it: a copy
    /// put back).
    Expired,
}

impl Rejected {
    pub fn label(self) -> &'static str {
        match self {
            Rejected::Malformed => "malformed",
            Rejected::Unauthenticated => "unauthenticated",
            Rejected::Expired => "expired",
        }
    }
}

/// (expiry, answer, tag) of the stored text.
fn parse(text: &str) -> Option<(u64, Option<Binding>, Vec<u8>)> {
    let rest = text.strip_prefix(PREFIX)?;
    let (expiry, rest) = rest.split_once(':')?;
    let (body, tag) = rest.rsplit_once(':')?;
    let expiry: u64 = expiry.parse().ok()?;
    let tag = hex::decode(tag).ok().filter(|t| t.len() == 32)?;
    let answer = if body == "-" {
        None
    } else {
        let (fqdn, addrs) = body.strip_prefix('+')?.split_once('|')?;
        if fqdn.is_empty() || fqdn.len() > 255 {
            return None;
        }
        let addresses = addrs
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().ok())
            .collect::<Option<Vec<IpAddr>>>()?;
        if addresses.len() > MAX_ADDRESSES {
            return None;
        }
        Some(Binding {
            fqdn: fqdn.to_string(),
            addresses,
        })
    };
    Some((expiry, answer, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0, 0x10, 0x95, 0, 0, 1];

    fn binding() -> Binding {
        Binding {
            fqdn: "mta.pktc.test".into(),
            addresses: vec!["10.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        }
    }

    #[test]
    fn round_trip_positive_negative_and_empty_addresses() {
        let k = SealKey::from_bytes(&[7; 32]);
        let b = binding();
        let v = k.seal(&MAC, 2000, Some(&b));
        assert_eq!(k.open(&MAC, v.as_bytes(), 1000), Ok(Cached::Hit(b)));
        let none = Binding {
            fqdn: "x.test".into(),
            addresses: vec![],
        };
        let v = k.seal(&MAC, 2000, Some(&none));
        assert_eq!(k.open(&MAC, v.as_bytes(), 1000), Ok(Cached::Hit(none)));
        let v = k.seal(&MAC, 2000, None);
        assert!(v.starts_with("v1:2000:-:"), "{v}");
        assert_eq!(k.open(&MAC, v.as_bytes(), 1000), Ok(Cached::Negative));
    }

    #[test]
    fn every_change_is_refused() {
        let k = SealKey::from_bytes(&[7; 32]);
        let v = k.seal(&MAC, 2000, Some(&binding()));
        let open = |text: &str| k.open(&MAC, text.as_bytes(), 1000);
        // Another MAC's key, another secret, an expired value.
        assert_eq!(
            k.open(&[0, 0x10, 0x95, 0, 0, 2], v.as_bytes(), 1000),
            Err(Rejected::Unauthenticated)
        );
        let other = SealKey::from_bytes(&[8; 32]);
        assert_eq!(
            other.open(&MAC, v.as_bytes(), 1000),
            Err(Rejected::Unauthenticated)
        );
        assert_eq!(k.open(&MAC, v.as_bytes(), 2000), Err(Rejected::Expired));
        // Each field edited in the text.
        for (from, to) in [
            ("mta.pktc.test", "evil.pktc.test"),
            ("10.0.0.1", "10.0.0.2"),
            ("v1:2000:", "v1:9000:"),
            (",2001:db8::1", ""),
        ] {
            let edited = v.replacen(from, to, 1);
            assert_ne!(edited, v);
            assert_eq!(open(&edited), Err(Rejected::Unauthenticated), "{from}");
        }
        // A positive answer turned negative keeps its tag: refused.
        let (head, tag) = v.rsplit_once(':').unwrap();
        let _ = head;
        assert_eq!(
            open(&format!("v1:2000:-:{tag}")),
            Err(Rejected::Unauthenticated)
        );
        // Hand-written and older forms, garbage, oversize.
        for text in [
            "+mta.pktc.test|10.0.0.1",
            "-",
            "v1:2000:-:00",
            "v1:x:-:",
            "v2:2000:-:",
            "",
        ] {
            assert_eq!(open(text), Err(Rejected::Malformed), "{text:?}");
        }
        let long = format!("v1:2000:+{}|:{}", "a".repeat(3000), "00".repeat(32));
        assert_eq!(open(&long), Err(Rejected::Malformed));
        assert_eq!(k.open(&MAC, &[0xff, 0xfe], 1000), Err(Rejected::Malformed));
    }

    /// Random edits of a sealed value: never a panic, and whatever opens
    /// is the sealed answer itself.
    #[test]
    fn mutated_values_never_open_to_something_else() {
        let k = SealKey::from_bytes(&[7; 32]);
        let b = binding();
        let sealed = k.seal(&MAC, 2000, Some(&b));
        let mut rng = testkit::Rng(0x5eed_cafe);
        for _ in 0..20_000 {
            let mut v = sealed.clone().into_bytes();
            for _ in 0..=rng.below(3) {
                match rng.below(3) {
                    0 if !v.is_empty() => {
                        let i = rng.below(v.len());
                        v[i] = rng.byte();
                    }
                    1 if !v.is_empty() => {
                        v.remove(rng.below(v.len()));
                    }
                    _ => {
                        let i = rng.below(v.len() + 1);
                        v.insert(i, rng.byte());
                    }
                }
            }
            if let Ok(c) = k.open(&MAC, &v, 1000) {
                assert_eq!(
                    c,
                    Cached::Hit(b.clone()),
                    "{:?}",
                    String::from_utf8_lossy(&v)
                );
            }
        }
    }

    #[test]
    fn the_secret_file_must_be_long_enough() {
        let dir = std::env::temp_dir().join(format!("pktc-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s");
        std::fs::write(&f, "short\n").unwrap();
        assert!(matches!(
            SealKey::load(&f),
            Err(SecretError::TooShort(_, 5))
        ));
        std::fs::write(&f, format!("{}\n", "ab".repeat(32))).unwrap();
        let k = SealKey::load(&f).unwrap();
        assert_eq!(k.0.len(), 64, "the trailing newline is not part of it");
        assert!(matches!(
            SealKey::load(&dir.join("missing")),
            Err(SecretError::Read(..))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
