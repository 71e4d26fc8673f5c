//! The lookaside cache: a byte-identical retransmit of a request we already
//! answered gets the same reply without redoing the work (and without the
//! replay cache refusing the client's own retry).
//!
//! Bounded by total bytes and by age; oldest entries go first.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Entry {
    at: Instant,
    request: Box<[u8]>,
    reply: Arc<[u8]>,
}

struct Inner {
    map: HashMap<u64, Entry>,
    order: VecDeque<(u64, Instant)>,
    bytes: usize,
}

pub struct Lookaside {
    inner: Mutex<Inner>,
    hasher: std::collections::hash_map::RandomState,
    ttl: Duration,
    max_bytes: usize,
}

impl Lookaside {
    pub fn new(ttl: Duration, max_bytes: usize) -> Lookaside {
        Lookaside {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            hasher: Default::default(),
            ttl,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent
        // in a way that matters for a cache; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, request: &[u8]) -> Option<Arc<[u8]>> {
        if self.max_bytes == 0 {
            return None;
        }
        let h = self.hasher.hash_one(request);
        let inner = self.lock();
        let e = inner.map.get(&h)?;
        (e.at.elapsed() < self.ttl && *e.request == *request).then(|| e.reply.clone())
    }

    pub fn insert(&self, request: &[u8], reply: Arc<[u8]>) {
        let size = request.len() + reply.len();
        if size > self.max_bytes / 4 {
            return;
        }
        let h = self.hasher.hash_one(request);
        let now = Instant::now();
        let mut inner = self.lock();
        while let Some(&(oh, at)) = inner.order.front() {
            if now.duration_since(at) < self.ttl && inner.bytes + size <= self.max_bytes {
                break;
            }
            inner.order.pop_front();
            if inner.map.get(&oh).is_some_and(|e| e.at == at)
                && let Some(e) = inner.map.remove(&oh)
            {
                inner.bytes -= e.request.len() + e.reply.len();
            }
        }
        if let Some(old) = inner.map.insert(
            h,
            Entry {
                at: now,
                request: request.into(),
                reply,
            },
        ) {
            inner.bytes -= old.request.len() + old.reply.len();
        }
        inner.bytes += size;
        inner.order.push_back((h, now));
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

    #[test]
    fn hit_miss_expiry_and_bound() {
        let c = Lookaside::new(Duration::from_millis(50), 4096);
        c.insert(b"req-1", Arc::from(&b"rep-1"[..]));
        assert_eq!(&*c.get(b"req-1").unwrap(), b"rep-1");
        assert!(c.get(b"req-2").is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get(b"req-1").is_none());
        for i in 0..1000u32 {
            c.insert(&i.to_be_bytes(), Arc::from(&[0u8; 100][..]));
        }
        let (n, bytes) = c.size();
        assert!(bytes <= 4096, "{bytes}");
        assert!(n < 1000);
        assert!(c.get(&999u32.to_be_bytes()).is_some());
    }
}
