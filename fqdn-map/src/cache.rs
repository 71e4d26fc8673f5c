//! The MAC → binding cache in front of the provisioning server: answers
//! for `ttl`, "unknown MAC" for the shorter `negative_ttl`, bounded by
//! `capacity` (expired entries go first, then everything). This is one
//! process's memory cache; on a miss the KDC asks the Redis store its
//! replicas share (`pktc_kdc::shared_cache`). The `_at` methods take the clock as
//! an argument, so tests move time instead of sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::Binding;

/// What the cache knows about a MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Hit(Binding),
    /// The provisioning server said it does not know this MAC, recently.
    Negative,
    Miss,
}

/// MAC → (binding, or None for "unknown MAC"; valid until).
type Entries = HashMap<[u8; 6], (Option<Binding>, Instant)>;

pub struct MappingCache {
    entries: Mutex<Entries>,
    ttl: Duration,
    negative_ttl: Duration,
    capacity: usize,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl MappingCache {
    pub fn new(ttl: Duration, negative_ttl: Duration, capacity: usize) -> MappingCache {
        MappingCache {
            entries: Mutex::new(HashMap::new()),
            ttl,
            negative_ttl,
            capacity: capacity.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, mac: &[u8; 6]) -> Cached {
        self.get_at(mac, Instant::now())
    }

    /// [`MappingCache::get`] at `now`.
    pub fn get_at(&self, mac: &[u8; 6], now: Instant) -> Cached {
        self.get_counting(mac, true, now)
    }

    /// As [`MappingCache::get`], but a miss is not counted: for a caller
    /// that asks once more on the way that can wait ([`MappingCache::get`]).
    pub fn get_without_miss(&self, mac: &[u8; 6]) -> Cached {
        self.get_counting(mac, false, Instant::now())
    }

    fn get_counting(&self, mac: &[u8; 6], count_miss: bool, now: Instant) -> Cached {
        let found = match self.lock().get(mac) {
            Some((b, until)) if now < *until => match b {
                Some(b) => Cached::Hit(b.clone()),
                None => Cached::Negative,
            },
            _ => Cached::Miss,
        };
        if found != Cached::Miss {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else if count_miss {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// A positive entry even if expired (until evicted): what an
    /// "allow-if-cached" policy uses when the provisioning server is silent.
    pub fn stale(&self, mac: &[u8; 6]) -> Option<Binding> {
        self.lock().get(mac).and_then(|(b, _)| b.clone())
    }

    pub fn put(&self, mac: [u8; 6], binding: Binding) {
        self.put_at(mac, binding, Instant::now());
    }

    /// [`MappingCache::put`] at `now`.
    pub fn put_at(&self, mac: [u8; 6], binding: Binding, now: Instant) {
        self.insert(mac, Some(binding), self.ttl, now);
    }

    pub fn put_unknown(&self, mac: [u8; 6]) {
        self.put_unknown_at(mac, Instant::now());
    }

    /// [`MappingCache::put_unknown`] at `now`.
    pub fn put_unknown_at(&self, mac: [u8; 6], now: Instant) {
        self.insert(mac, None, self.negative_ttl, now);
    }

    fn insert(&self, mac: [u8; 6], value: Option<Binding>, ttl: Duration, now: Instant) {
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(&mac) {
            map.retain(|_, (_, until)| now < *until);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(mac, (value, now + ttl));
    }

    /// Drops `mac`'s entry, fresh or stale; true if there was one.
    pub fn remove(&self, mac: &[u8; 6]) -> bool {
        self.lock().remove(mac).is_some()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(fqdn: &str) -> Binding {
        Binding {
            fqdn: fqdn.into(),
            addresses: vec![],
        }
    }

    #[test]
    fn hit_negative_expiry_and_bound() {
        let c = MappingCache::new(Duration::from_millis(80), Duration::from_millis(20), 3);
        let (m1, m2) = ([1; 6], [2; 6]);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(c.get_at(&m1, t0), Cached::Miss);
        c.put_at(m1, b("a.test"), t0);
        c.put_unknown_at(m2, t0);
        assert_eq!(c.get_at(&m1, at(19)), Cached::Hit(b("a.test")));
        assert_eq!(c.get_at(&m2, at(19)), Cached::Negative);
        assert_eq!(
            c.get_at(&m2, at(20)),
            Cached::Miss,
            "negative entries expire sooner"
        );
        assert_eq!(c.get_at(&m1, at(79)), Cached::Hit(b("a.test")));
        assert_eq!(c.get_at(&m1, at(80)), Cached::Miss);
        assert_eq!(c.stale(&m1), Some(b("a.test")), "expired but still known");
        assert_eq!(
            c.stale(&m2),
            None,
            "negative entries are never stale answers"
        );
        for i in 0..10u8 {
            c.put([i; 6], b("x.test"));
        }
        assert!(c.len() <= 3);
        c.put(m1, b("a.test"));
        assert!(c.remove(&m1));
        assert!(!c.remove(&m1));
        assert_eq!(c.stale(&m1), None, "removed, not even stale");
        assert_eq!(
            (
                c.hits.load(Ordering::Relaxed),
                c.misses.load(Ordering::Relaxed)
            ),
            (3, 3)
        );
    }
}
