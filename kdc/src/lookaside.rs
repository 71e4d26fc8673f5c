//! The lookaside cache: a byte-identical retransmit of a request we already
//! answered gets the same reply without redoing the work (and without the
//! replay cache refusing the client's own retry).
//!
//! Requests are identified by a 128-bit keyed digest (two SipHash keys
//! drawn at start-up) of their bytes and their source address: an attacker
//! who cannot see the keys cannot make two requests collide, and we need
//! not keep a copy of each request. The address is part of it because a
//! reply may depend on it (PKINIT's pkt-eue-7 address check): a copy of a
//! device's request sent from elsewhere must not leave its refusal cached
//! for the device. Bounded by total bytes and by age; oldest entries go
//! first.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Identity of a request's bytes and source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestDigest(u64, u64);

/// Bookkeeping bytes counted per entry besides the reply.
const ENTRY_OVERHEAD: usize = 64;

struct Entry {
    at: Instant,
    reply: Arc<[u8]>,
}

struct Inner {
    map: HashMap<RequestDigest, Entry>,
    order: VecDeque<(RequestDigest, Instant)>,
    bytes: usize,
}

pub struct Lookaside {
    inner: Mutex<Inner>,
    keys: (RandomState, RandomState),
    ttl: Duration,
    max_bytes: usize,
    /// `pktc_cache_lookups_total{cache="lookaside"}` hit / miss, registered once.
    counted: (metrics::Counter, metrics::Counter),
}

impl Lookaside {
    pub fn new(ttl: Duration, max_bytes: usize) -> Lookaside {
        Lookaside {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            keys: (RandomState::new(), RandomState::new()),
            ttl,
            max_bytes,
            counted: (
                metrics::counter!("pktc_cache_lookups_total", "cache" => "lookaside", "result" => "hit"),
                metrics::counter!("pktc_cache_lookups_total", "cache" => "lookaside", "result" => "miss"),
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent
        // in a way that matters for a cache; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The digest of `request` received from `source` (the address only:
    /// a client's retry may come from another port, over TCP always does).
    pub fn digest(&self, request: &[u8], source: IpAddr) -> RequestDigest {
        let key = (request, source);
        RequestDigest(self.keys.0.hash_one(key), self.keys.1.hash_one(key))
    }

    pub fn get(&self, d: &RequestDigest) -> Option<Arc<[u8]>> {
        self.get_at(d, Instant::now())
    }

    /// [`Lookaside::get`] at `now` (tests move time instead of sleeping).
    pub fn get_at(&self, d: &RequestDigest, now: Instant) -> Option<Arc<[u8]>> {
        if self.max_bytes == 0 {
            return None;
        }
        let hit = {
            let inner = self.lock();
            inner.map.get(d).and_then(|e| {
                (now.saturating_duration_since(e.at) < self.ttl).then(|| e.reply.clone())
            })
        };
        if hit.is_some() {
            self.counted.0.increment(1);
        } else {
            self.counted.1.increment(1);
        }
        hit
    }

    pub fn insert(&self, d: RequestDigest, reply: Arc<[u8]>) {
        self.insert_at(d, reply, Instant::now());
    }

    /// [`Lookaside::insert`] at `now`.
    pub fn insert_at(&self, d: RequestDigest, reply: Arc<[u8]>, now: Instant) {
        let size = reply.len() + ENTRY_OVERHEAD;
        if size > self.max_bytes / 4 {
            return;
        }
        let mut inner = self.lock();
        while let Some(&(old, at)) = inner.order.front() {
            if now.duration_since(at) < self.ttl && inner.bytes + size <= self.max_bytes {
                break;
            }
            inner.order.pop_front();
            if inner.map.get(&old).is_some_and(|e| e.at == at)
                && let Some(e) = inner.map.remove(&old)
            {
                inner.bytes -= e.reply.len() + ENTRY_OVERHEAD;
            }
        }
        if let Some(old) = inner.map.insert(d, Entry { at: now, reply }) {
            inner.bytes -= old.reply.len() + ENTRY_OVERHEAD;
        }
        inner.bytes += size;
        inner.order.push_back((d, now));
    }

    /// (entries, bytes) for metrics and tests.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.map.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn hit_miss_expiry_and_bound() {
        let ttl = Duration::from_millis(50);
        let c = Lookaside::new(ttl, 8192);
        let t0 = Instant::now();
        let d1 = c.digest(b"req-1", HERE);
        c.insert_at(d1, Arc::from(&b"rep-1"[..]), t0);
        assert_eq!(&*c.get_at(&c.digest(b"req-1", HERE), t0).unwrap(), b"rep-1");
        assert!(c.get_at(&c.digest(b"req-2", HERE), t0).is_none());
        assert_ne!(c.digest(b"req-1", HERE), c.digest(b"req-2", HERE));
        let just_before = t0 + ttl - Duration::from_millis(1);
        assert!(c.get_at(&d1, just_before).is_some());
        let later = t0 + ttl;
        assert!(c.get_at(&d1, later).is_none());
        for i in 0..1000u32 {
            c.insert_at(
                c.digest(&i.to_be_bytes(), HERE),
                Arc::from(&[0u8; 100][..]),
                later,
            );
        }
        let (n, bytes) = c.size();
        assert!(bytes <= 8192, "{bytes}");
        assert!(n < 1000);
        assert!(
            c.get_at(&c.digest(&999u32.to_be_bytes(), HERE), later)
                .is_some()
        );
    }

    #[test]
    fn the_same_bytes_from_another_address_are_another_request() {
        let c = Lookaside::new(Duration::from_secs(60), 8192);
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        c.insert(c.digest(b"req", elsewhere), Arc::from(&b"refusal"[..]));
        assert!(c.get(&c.digest(b"req", HERE)).is_none());
        assert_eq!(&*c.get(&c.digest(b"req", elsewhere)).unwrap(), b"refusal");
    }
}
