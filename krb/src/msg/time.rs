//! KerberosTime in whole seconds.
//!
//! rasn encodes a chrono value with nanoseconds as a fractional
//! GeneralizedTime, which RFC 4120 forbids (shared STACK.md §2.1). Every
//! KerberosTime we build goes through [`from_unix`], which has no fraction.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
pub use rasn_kerberos::KerberosTime;

/// Latest time we represent: 9999-12-31T23:59:59Z (GeneralizedTime has four year digits).
pub const MAX_UNIX: i64 = 253_402_300_799;

/// A KerberosTime at whole second `secs` since the Unix epoch, clamped to
/// the representable range.
pub fn from_unix(secs: i64) -> KerberosTime {
    let secs = secs.clamp(0, MAX_UNIX);
    let t: DateTime<FixedOffset> = Utc
        .timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .fixed_offset();
    KerberosTime(t)
}

/// Seconds since the Unix epoch of a received time (fractions dropped).
pub fn to_unix(t: &KerberosTime) -> i64 {
    t.0.timestamp()
}

/// Current time as (whole seconds, microseconds).
pub fn now() -> (i64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_fractional_seconds() {
        let der = rasn::der::encode(&from_unix(1_700_000_000)).unwrap();
        assert_eq!(&der[2..], b"20231114221320Z");
        assert_eq!(to_unix(&from_unix(1_700_000_000)), 1_700_000_000);
    }

    #[test]
    fn clamps_out_of_range() {
        assert_eq!(to_unix(&from_unix(-5)), 0);
        assert_eq!(to_unix(&from_unix(i64::MAX)), MAX_UNIX);
    }
}
