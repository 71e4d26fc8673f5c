//! 32-bit Kerberos flag strings.
//!
//! rasn-kerberos's own helpers build 8-bit strings with the wrong bit
//! (shared STACK.md §2.1); these constructors always produce the 32-bit
//! string RFC 4120 wants. A [`Flags`] value keeps flag `n` (RFC numbering,
//! 0 = most significant) in bit `31 - n` of a `u32`.

use rasn::types::BitString;
use rasn_kerberos::{ApOptions, KdcOptions, KerberosFlags, TicketFlags};

/// Flag numbers shared by KDCOptions and TicketFlags (RFC 4120 §5.3, §5.4.1).
pub mod bit {
    pub const FORWARDABLE: u8 = 1;
    pub const FORWARDED: u8 = 2;
    pub const PROXIABLE: u8 = 3;
    pub const PROXY: u8 = 4;
    pub const ALLOW_POSTDATE: u8 = 5;
    pub const MAY_POSTDATE: u8 = 5;
    pub const POSTDATED: u8 = 6;
    pub const INVALID: u8 = 7;
    pub const RENEWABLE: u8 = 8;
    pub const INITIAL: u8 = 9;
    pub const PRE_AUTHENT: u8 = 10;
    pub const HW_AUTHENT: u8 = 11;
    pub const TRANSITED_POLICY_CHECKED: u8 = 12;
    pub const OK_AS_DELEGATE: u8 = 13;
    pub const CANONICALIZE: u8 = 15;
    pub const ENC_PA_REP: u8 = 15;
    pub const RENEWABLE_OK: u8 = 27;
    pub const ENC_TKT_IN_SKEY: u8 = 28;
    pub const RENEW: u8 = 30;
    pub const VALIDATE: u8 = 31;
    /// AP options.
    pub const USE_SESSION_KEY: u8 = 1;
    pub const MUTUAL_REQUIRED: u8 = 2;
}

/// A set of Kerberos flags in RFC bit numbering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u32);

impl Flags {
    pub const fn empty() -> Flags {
        Flags(0)
    }

    pub const fn has(self, n: u8) -> bool {
        n < 32 && self.0 & (1 << (31 - n)) != 0
    }

    #[must_use]
    pub const fn with(self, n: u8) -> Flags {
        if n < 32 {
            Flags(self.0 | (1 << (31 - n)))
        } else {
            self
        }
    }

    pub fn set(&mut self, n: u8, on: bool) {
        if n < 32 {
            if on {
                self.0 |= 1 << (31 - n);
            } else {
                self.0 &= !(1 << (31 - n));
            }
        }
    }

    /// Reads the first 32 bits of a received flag string; a shorter string
    /// (sent by some old encoders) reads as zeros, longer ones are truncated.
    pub fn from_bits(bits: &KerberosFlags) -> Flags {
        let mut v = 0u32;
        for (i, b) in bits.iter().take(32).enumerate() {
            if *b {
                v |= 1 << (31 - i);
            }
        }
        Flags(v)
    }

    /// The 32-bit flag string (`03 05 00 xx xx xx xx`).
    pub fn to_bits(self) -> KerberosFlags {
        BitString::from_vec(self.0.to_be_bytes().to_vec())
    }

    pub fn ticket_flags(self) -> TicketFlags {
        TicketFlags(self.to_bits())
    }

    pub fn kdc_options(self) -> KdcOptions {
        KdcOptions(self.to_bits())
    }

    pub fn ap_options(self) -> ApOptions {
        ApOptions(self.to_bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwardable_encodes_as_32_bit_string() {
        let der = rasn::der::encode(&Flags::empty().with(bit::FORWARDABLE).kdc_options()).unwrap();
        assert_eq!(der, [0x03, 0x05, 0x00, 0x40, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn round_trip_and_short_strings() {
        let f = Flags::empty()
            .with(bit::FORWARDABLE)
            .with(bit::RENEWABLE)
            .with(bit::VALIDATE);
        assert_eq!(Flags::from_bits(&f.to_bits()), f);
        assert!(f.has(bit::VALIDATE) && f.has(bit::RENEWABLE) && !f.has(bit::PROXY));
        // An 8-bit string, as rasn-kerberos's helpers would build it.
        let short = BitString::from_vec(vec![0x40]);
        assert_eq!(
            Flags::from_bits(&short),
            Flags::empty().with(bit::FORWARDABLE)
        );
        assert!(!Flags(u32::MAX).has(40));
    }
}
