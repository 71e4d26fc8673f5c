//! The MAC → binding cache in front of the provisioning server: answers
//! for `ttl`, "unknown MAC" for the shorter `negative_ttl`, bounded by
//! `capacity` (expired entries go first, then everything). A shared Redis
//! store for several KDC replicas comes with the pkt-eue-7 work.

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
        self.get_counting(mac, true)
    }

    /// As [`MappingCache::get`], but a miss is not counted: for a caller
    /// that asks once more on the way that can wait ([`MappingCache::get`]).
    pub fn get_without_miss(&self, mac: &[u8; 6]) -> Cached {
        self.get_counting(mac, false)
    }

    fn get_counting(&self, mac: &[u8; 6], count_miss: bool) -> Cached {
        let now = Instant::now();
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
        self.insert(mac, Some(binding), self.ttl);
    }

    pub fn put_unknown(&self, mac: [u8; 6]) {
        self.insert(mac, None, self.negative_ttl);
    }

    fn insert(&self, mac: [u8; 6], value: Option<Binding>, ttl: Duration) {
        let now = Instant::now();
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
        assert_eq!(c.get(&m1), Cached::Miss);
        c.put(m1, b("a.test"));
        c.put_unknown(m2);
        assert_eq!(c.get(&m1), Cached::Hit(b("a.test")));
        assert_eq!(c.get(&m2), Cached::Negative);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.get(&m2), Cached::Miss, "negative entries expire sooner");
        assert_eq!(c.get(&m1), Cached::Hit(b("a.test")));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&m1), Cached::Miss);
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
