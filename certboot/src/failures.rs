//! A per-source budget of failed connections: each failed or timed-out TLS
//! handshake and each HTTP request refused as malformed, oversized or too
//! slow takes a token of its source's bucket. A source whose bucket is
//! empty has new connections closed right after accept, before any TLS
//! work (the expensive part for the server), until the bucket refills.

use std::net::IpAddr;

use source_buckets::SourceBuckets;

/// Source addresses tracked at once (≈ 40 bytes each); beyond it, sources
/// whose bucket has refilled are forgotten first.
pub const MAX_SOURCES: usize = 65_536;

/// The budget; off when the rate is 0.
pub struct FailureBudget {
    buckets: Option<SourceBuckets>,
}

impl FailureBudget {
    /// `per_sec` failures refilled per second per source, up to `burst`.
    pub fn new(per_sec: f64, burst: f64) -> FailureBudget {
        FailureBudget {
            buckets: SourceBuckets::new(per_sec, burst, MAX_SOURCES),
        }
    }

    pub fn off() -> FailureBudget {
        FailureBudget { buckets: None }
    }

    /// Whether a new connection from `source` may start its handshake.
    pub fn admits(&self, source: IpAddr) -> bool {
        self.buckets.as_ref().is_none_or(|b| b.has_token(source))
    }

    /// Charges one failure to `source`.
    pub fn charge(&self, source: IpAddr) {
        if let Some(b) = &self.buckets {
            let _ = b.take(source);
        }
    }

    /// Sources tracked now.
    pub fn sources(&self) -> usize {
        self.buckets.as_ref().map_or(0, SourceBuckets::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_empty_a_source_and_only_that_one() {
        let f = FailureBudget::new(0.001, 2.0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(f.admits(a));
        f.charge(a);
        assert!(f.admits(a));
        f.charge(a);
        assert!(!f.admits(a));
        assert!(f.admits(b));
        assert_eq!(f.sources(), 1);
    }

    #[test]
    fn off_admits_everything() {
        let f = FailureBudget::off();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..100 {
            f.charge(a);
        }
        assert!(f.admits(a));
        assert_eq!(FailureBudget::new(0.0, 5.0).sources(), 0);
    }
}
