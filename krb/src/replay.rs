//! Authenticator replay cache: remembers each accepted authenticator for
//! twice the clock skew (the window in which it could be accepted again).
//!
//! Bounded: when full, the oldest entry is dropped early and counted, so a
//! flood cannot grow memory; the count is exposed to operators.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub type Tag = [u8; 16];

struct Inner {
    seen: HashSet<Tag>,
    order: VecDeque<(Instant, Tag)>,
}

pub struct ReplayCache {
    inner: Mutex<Inner>,
    window: Duration,
    max_entries: usize,
    pub evicted_early: AtomicU64,
}

/// The cache key of an authenticator: a digest of its ciphertext, which a
/// replayed message repeats byte for byte.
pub fn tag(ciphertext: &[u8]) -> Tag {
    let d = Sha256::digest(ciphertext);
    let mut t = [0u8; 16];
    t.copy_from_slice(&d[..16]);
    t
}

impl ReplayCache {
    pub fn new(window: Duration, max_entries: usize) -> ReplayCache {
        ReplayCache {
            inner: Mutex::new(Inner {
                seen: HashSet::new(),
                order: VecDeque::new(),
            }),
            window,
            max_entries,
            evicted_early: AtomicU64::new(0),
        }
    }

    /// Records `t`; false if it was already seen within the window.
    pub fn check_and_insert(&self, t: Tag) -> bool {
        self.check_and_insert_at(t, Instant::now())
    }

    /// [`ReplayCache::check_and_insert`] at `now` (tests move the clock).
    pub fn check_and_insert_at(&self, t: Tag, now: Instant) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(at, old)) = inner.order.front() {
            let expired = now.duration_since(at) >= self.window;
            if !expired && inner.order.len() < self.max_entries {
                break;
            }
            if !expired {
                self.evicted_early.fetch_add(1, Ordering::Relaxed);
            }
            inner.order.pop_front();
            inner.seen.remove(&old);
        }
        if !inner.seen.insert(t) {
            return false;
        }
        inner.order.push_back((now, t));
        true
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seen
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_replay_until_window_ends() {
        let c = ReplayCache::new(Duration::from_millis(40), 10);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(c.check_and_insert_at(tag(b"a"), t0));
        assert!(!c.check_and_insert_at(tag(b"a"), at(39)));
        assert!(c.check_and_insert_at(tag(b"a"), at(40)));
        assert!(
            !c.check_and_insert_at(tag(b"a"), at(41)),
            "remembered again"
        );
    }

    #[test]
    fn bounded() {
        let c = ReplayCache::new(Duration::from_secs(600), 10);
        for i in 0..100u32 {
            assert!(c.check_and_insert(tag(&i.to_be_bytes())));
        }
        assert!(c.len() <= 10);
        assert_eq!(c.evicted_early.load(Ordering::Relaxed), 90);
    }
}
