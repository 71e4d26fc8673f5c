//! Token buckets keyed by source address, in sharded maps bounded by
//! `max_sources`: the KDC's `[rate_limit]` takes a token per request,
//! certboot's failure budget one per failed connection.
//!
//! When a shard is full, buckets that have refilled completely (idle
//! sources: the same state as a new one) are dropped; if that frees nothing
//! the shard is cleared. A flood of sources therefore costs memory bounded
//! by `max_sources` and cannot lock out a real device for long.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Shards of the source table (each its own lock).
pub const SHARDS: usize = 16;

/// One token bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Refills for the time since the last take, then takes one token.
    pub fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a token is there now, taking none.
    pub fn has_token(&self, rate: f64, now: Instant) -> bool {
        self.tokens + elapsed(self.at, now) * rate >= 1.0
    }

    pub fn refilled(&self, rate: f64, burst: f64, now: Instant) -> bool {
        self.tokens + elapsed(self.at, now) * rate >= burst
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        self.tokens = (self.tokens + elapsed(self.at, now) * rate).min(burst);
        self.at = now;
    }
}

fn elapsed(since: Instant, now: Instant) -> f64 {
    now.saturating_duration_since(since).as_secs_f64()
}

/// One bucket per source address, `rate` tokens per second up to `burst`.
pub struct SourceBuckets {
    rate: f64,
    burst: f64,
    per_shard: usize,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<IpAddr, Bucket>>>,
}

impl SourceBuckets {
    /// `None` when `rate` is 0 (off). The burst is at least 1.
    pub fn new(rate: f64, burst: f64, max_sources: usize) -> Option<SourceBuckets> {
        (rate > 0.0).then(|| SourceBuckets {
            rate,
            burst: burst.max(1.0),
            per_shard: max_sources.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    fn shard(&self, source: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        let shard = &self.shards[self.hasher.hash_one(source) as usize % SHARDS];
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a token of `source`'s bucket; false if it is empty.
    pub fn take(&self, source: IpAddr) -> bool {
        let now = Instant::now();
        let (rate, burst) = (self.rate, self.burst);
        let mut map = self.shard(source);
        if !map.contains_key(&source) && map.len() >= self.per_shard {
            map.retain(|_, b| !b.refilled(rate, burst, now));
            if map.len() >= self.per_shard {
                map.clear();
            }
        }
        map.entry(source)
            .or_insert_with(|| Bucket::full(burst, now))
            .take(rate, burst, now)
    }

    /// Whether `source`'s bucket holds a token, taking none (a source
    /// never charged has a full one and is not added).
    pub fn has_token(&self, source: IpAddr) -> bool {
        let now = Instant::now();
        self.shard(source)
            .get(&source)
            .is_none_or(|b| b.has_token(self.rate, now))
    }

    /// Source addresses tracked now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_its_rate() {
        let now = Instant::now();
        let mut b = Bucket::full(2.0, now);
        assert!(b.take(1.0, 2.0, now));
        assert!(b.has_token(1.0, now));
        assert!(b.take(1.0, 2.0, now));
        assert!(!b.has_token(1.0, now));
        assert!(!b.take(1.0, 2.0, now));
        assert!(!b.take(1.0, 2.0, now + Duration::from_millis(500)));
        assert!(b.take(1.0, 2.0, now + Duration::from_millis(1600)));
        assert!(b.refilled(1.0, 2.0, now + Duration::from_secs(10)));
    }

    #[test]
    fn one_source_empties_only_its_own_bucket() {
        let t = SourceBuckets::new(0.001, 3.0, 100).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(t.has_token(a));
            assert!(t.take(a));
        }
        assert!(!t.has_token(a));
        assert!(!t.take(a));
        assert!(t.has_token(b));
        assert_eq!(t.len(), 1, "asking does not add a source");
    }

    #[test]
    fn table_stays_bounded() {
        let t = SourceBuckets::new(1000.0, 1.0, 64).unwrap();
        for i in 0..10_000u32 {
            let _ = t.take(IpAddr::from(i.to_be_bytes()));
        }
        assert!(t.len() <= 64 + SHARDS, "{}", t.len());
    }

    #[test]
    fn rate_zero_is_off() {
        assert!(SourceBuckets::new(0.0, 5.0, 10).is_none());
    }
}
