//! Token buckets for AS and PKINIT requests: one per source address and
//! one global, checked on the message type alone, before any decoding or
//! public-key work.
//!
//! Source buckets live in sharded maps bounded by `max_sources`. When a
//! shard is full, buckets that have refilled completely (idle sources: the
//! same state as a new one) are dropped; if that frees nothing the shard is
//! cleared. A flood of spoofed sources therefore costs memory bounded by
//! `max_sources` and cannot lock out a real device for long; the global
//! bucket still applies.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Refills for the time since the last take, then takes one token.
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refilled(&self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate >= burst
    }
}

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
    per_source: Option<(f64, f64)>,
    global: Option<(f64, f64)>,
    per_shard: usize,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<IpAddr, Bucket>>>,
    global_bucket: Mutex<Bucket>,
}

impl RateLimiter {
    pub fn new(cfg: &Rates) -> RateLimiter {
        let now = Instant::now();
        let on = |rate: f64, burst: f64| (rate > 0.0).then_some((rate, burst.max(1.0)));
        let global = on(cfg.global_rate, cfg.global_burst);
        RateLimiter {
            per_source: on(cfg.per_source_rate, cfg.per_source_burst),
            global,
            per_shard: cfg.max_sources.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            global_bucket: Mutex::new(Bucket::full(global.map_or(0.0, |g| g.1), now)),
        }
    }

    /// Takes a token for a request from `source`; `Err` says which bucket
    /// is empty (the source's is checked first and charged even when the
    /// global one then refuses).
    pub fn check(&self, source: IpAddr) -> Result<(), Limited> {
        let now = Instant::now();
        if let Some((rate, burst)) = self.per_source {
            let shard = &self.shards[self.hasher.hash_one(source) as usize % SHARDS];
            let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
            if !map.contains_key(&source) && map.len() >= self.per_shard {
                map.retain(|_, b| !b.refilled(rate, burst, now));
                if map.len() >= self.per_shard {
                    map.clear();
                }
            }
            let bucket = map
                .entry(source)
                .or_insert_with(|| Bucket::full(burst, now));
            if !bucket.take(rate, burst, now) {
                return Err(Limited::Source);
            }
        }
        if let Some((rate, burst)) = self.global {
            let mut g = self.global_bucket.lock().unwrap_or_else(|e| e.into_inner());
            if !g.take(rate, burst, now) {
                return Err(Limited::Global);
            }
        }
        Ok(())
    }

    /// Source addresses tracked now.
    pub fn sources(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn bucket_refills_at_its_rate() {
        let now = Instant::now();
        let mut b = Bucket::full(2.0, now);
        assert!(b.take(1.0, 2.0, now));
        assert!(b.take(1.0, 2.0, now));
        assert!(!b.take(1.0, 2.0, now));
        assert!(!b.take(1.0, 2.0, now + Duration::from_millis(500)));
        assert!(b.take(1.0, 2.0, now + Duration::from_millis(1600)));
        assert!(b.refilled(1.0, 2.0, now + Duration::from_secs(10)));
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
        assert!(l.sources() <= 64 + SHARDS, "{}", l.sources());
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
