//! Token buckets for AS and PKINIT requests: one per source address and
//! one global, checked on the message type alone, before any decoding or
//! public-key work.
//!
//! Source buckets are a bounded table (crate `source-buckets`, shared with
//! certboot's failure budget): a flood of spoofed sources costs memory
//! bounded by `max_sources` and cannot lock out a real device for long; the
//! global bucket still applies.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use source_buckets::{Bucket, SourceBuckets};

/// Which bucket refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Source,
    Global,
}

impl Limited {
    pub fn scope(self) -> &'static str {
        match self {
            Limited::Source => "source",
            Limited::Global => "global",
        }
    }
}

/// The limits (`[rate_limit]`): a rate of 0 turns its bucket off.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// Requests per second per source address, and the burst.
    pub per_source_rate: f64,
    pub per_source_burst: f64,
    /// Requests per second over all sources, and the burst.
    pub global_rate: f64,
    pub global_burst: f64,
    /// Source addresses tracked at once.
    pub max_sources: usize,
}

pub struct RateLimiter {
    per_source: Option<SourceBuckets>,
    global: Option<(f64, f64)>,
    global_bucket: Mutex<Bucket>,
}

impl RateLimiter {
    pub fn new(cfg: &Rates) -> RateLimiter {
        let now = Instant::now();
        let global =
            (cfg.global_rate > 0.0).then_some((cfg.global_rate, cfg.global_burst.max(1.0)));
        RateLimiter {
            per_source: SourceBuckets::new(
                cfg.per_source_rate,
                cfg.per_source_burst,
                cfg.max_sources,
            ),
            global,
            global_bucket: Mutex::new(Bucket::full(global.map_or(0.0, |g| g.1), now)),
        }
    }

    /// Takes a token for a request from `source`; `Err` says which bucket
    /// is empty (the source's is checked first and charged even when the
    /// global one then refuses).
    pub fn check(&self, source: IpAddr) -> Result<(), Limited> {
        if let Some(t) = &self.per_source
            && !t.take(source)
        {
            return Err(Limited::Source);
        }
        if let Some((rate, burst)) = self.global {
            let mut g = self.global_bucket.lock().unwrap_or_else(|e| e.into_inner());
            if !g.take(rate, burst, Instant::now()) {
                return Err(Limited::Global);
            }
        }
        Ok(())
    }

    /// Source addresses tracked now.
    pub fn sources(&self) -> usize {
        self.per_source.as_ref().map_or(0, SourceBuckets::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rate: f64, burst: f64, global: f64, max_sources: usize) -> Rates {
        Rates {
            per_source_rate: rate,
            per_source_burst: burst,
            global_rate: global,
            global_burst: global * 2.0,
            max_sources,
        }
    }

    #[test]
    fn one_source_over_its_bucket_leaves_others_alone() {
        let l = RateLimiter::new(&cfg(0.001, 3.0, 0.0, 100));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.check(a), Ok(()));
        }
        assert_eq!(l.check(a), Err(Limited::Source));
        assert_eq!(l.check(b), Ok(()));
    }

    #[test]
    fn global_bucket() {
        let l = RateLimiter::new(&cfg(0.0, 0.0, 0.001, 100));
        let mut ok = 0;
        for i in 0..10u8 {
            if l.check(IpAddr::from([10, 0, 0, i])).is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 1, "burst of max(2 × 0.001, 1) = 1");
    }

    #[test]
    fn source_table_stays_bounded() {
        let l = RateLimiter::new(&cfg(1000.0, 1.0, 0.0, 64));
        for i in 0..10_000u32 {
            let _ = l.check(IpAddr::from(i.to_be_bytes()));
        }
        assert!(
            l.sources() <= 64 + source_buckets::SHARDS,
            "{}",
            l.sources()
        );
    }

    #[test]
    fn disabled_buckets_admit_everything() {
        let l = RateLimiter::new(&cfg(0.0, 0.0, 0.0, 10));
        for _ in 0..1000 {
            assert_eq!(l.check("192.0.2.9".parse().unwrap()), Ok(()));
        }
        assert_eq!(l.sources(), 0);
    }
}
