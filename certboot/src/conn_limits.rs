//! Bounded, fair TCP connection slots and a write deadline, shared by the
//! certificate-bootstrapping endpoint and the KDC's Kerberos TCP listener.
//!
//! A fixed pool of slots refusing the newest connection when full lets a
//! thousand slow clients hold every slot forever. Instead, as MIT's
//! krb5kdc does, a new connection takes the slot of the oldest connection
//! that is not working on a request; per source address too, so one
//! address cannot take more than its share. Only when every connection is
//! busy is the new one refused.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

struct Entry {
    source: IpAddr,
    busy: bool,
    close: Arc<Notify>,
}

/// One source's connections: how many, and which are idle.
#[derive(Default)]
struct SourceConns {
    open: usize,
    idle: BTreeSet<u64>,
}

/// Ids grow with each admission, so the smallest idle id is the oldest
/// idle connection: eviction takes the first of an ordered set instead of
/// scanning every connection (in a storm every admission evicts).
#[derive(Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    idle: BTreeSet<u64>,
    per_source: HashMap<IpAddr, SourceConns>,
}

impl Inner {
    fn insert(&mut self, id: u64, entry: Entry) {
        let source = self.per_source.entry(entry.source).or_default();
        source.open += 1;
        source.idle.insert(id);
        self.idle.insert(id);
        self.conns.insert(id, entry);
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.conns.remove(&id)?;
        self.idle.remove(&id);
        if let Some(source) = self.per_source.get_mut(&e.source) {
            source.open -= 1;
            source.idle.remove(&id);
            if source.open == 0 {
                self.per_source.remove(&e.source);
            }
        }
        Some(e)
    }

    fn set_busy(&mut self, id: u64, busy: bool) {
        let Some(e) = self.conns.get_mut(&id) else {
            return;
        };
        if e.busy == busy {
            return;
        }
        e.busy = busy;
        let source = self.per_source.get_mut(&e.source);
        if busy {
            self.idle.remove(&id);
            source.map(|s| s.idle.remove(&id));
        } else {
            self.idle.insert(id);
            source.map(|s| s.idle.insert(id));
        }
    }

    fn open_from(&self, source: IpAddr) -> usize {
        self.per_source.get(&source).map_or(0, |s| s.open)
    }

    /// Closes the oldest connection not working on a request (of `source`
    /// only, when given); false if there is none.
    fn evict_oldest_idle(&mut self, source: Option<IpAddr>) -> bool {
        let victim = match source {
            None => self.idle.first().copied(),
            Some(s) => self
                .per_source
                .get(&s)
                .and_then(|s| s.idle.first().copied()),
        };
        match victim.and_then(|id| self.remove(id)) {
            Some(e) => {
                e.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every connection is working on a request.
    Full,
    /// Every connection of this source is working on a request.
    PerSource,
}

/// What admitting a connection took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evicted {
    None,
    /// The oldest idle connection of all.
    OldestIdle,
    /// The oldest idle connection of the same source.
    SameSource,
}

pub struct Slots {
    inner: Mutex<Inner>,
    max_total: usize,
    max_per_source: usize,
}

impl Slots {
    pub fn new(max_total: usize, max_per_source: usize) -> Arc<Slots> {
        Arc::new(Slots {
            inner: Mutex::new(Inner::default()),
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection from `source`, closing an idle one if
    /// that is what it takes.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Result<(Slot, Evicted), Refused> {
        let mut inner = self.lock();
        let mut evicted = Evicted::None;
        if inner.open_from(source) >= self.max_per_source {
            if !inner.evict_oldest_idle(Some(source)) {
                return Err(Refused::PerSource);
            }
            evicted = Evicted::SameSource;
        }
        if inner.conns.len() >= self.max_total {
            if !inner.evict_oldest_idle(None) {
                return Err(Refused::Full);
            }
            evicted = Evicted::OldestIdle;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let close = Arc::new(Notify::new());
        inner.insert(
            id,
            Entry {
                source,
                busy: false,
                close: close.clone(),
            },
        );
        Ok((
            Slot {
                slots: self.clone(),
                id,
                close,
            },
            evicted,
        ))
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().conns.len()
    }
}

/// One admitted connection; dropping it frees the slot.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    close: Arc<Notify>,
}

impl Slot {
    /// Marks the connection as working on a request (not evictable) or not.
    pub fn set_busy(&self, busy: bool) {
        self.slots.lock().set_busy(self.id, busy);
    }

    /// Resolves when the slot was taken for a newer connection.
    pub async fn evicted(&self) {
        self.close.notified().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().remove(self.id);
    }
}

/// An I/O stream whose writes fail with `TimedOut` when one makes no
/// progress for `limit` (a client that stops reading cannot hold a
/// connection and its buffers).
pub struct WriteDeadline<I> {
    io: I,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> WriteDeadline<I> {
    pub fn new(io: I, limit: Duration) -> WriteDeadline<I> {
        WriteDeadline {
            io,
            limit,
            timer: None,
        }
    }

    pub fn get_ref(&self) -> &I {
        &self.io
    }

    /// Polls `f`; a pending write arms the timer, progress disarms it.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(Pin<&mut I>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>>
    where
        I: Unpin,
    {
        match f(Pin::new(&mut self.io), cx) {
            Poll::Ready(r) => {
                self.timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(timer.as_mut().poll(cx));
                self.timer = None;
                Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()))
            }
        }
    }
}

use std::future::Future;

impl<I: AsyncRead + Unpin> AsyncRead for WriteDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.guard(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.guard(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.guard(cx, |io, cx| io.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn full_evicts_the_oldest_idle_and_refuses_when_all_are_busy() {
        let s = Slots::new(2, 10);
        let (a, _) = s.admit(ip(1)).unwrap();
        let (b, _) = s.admit(ip(2)).unwrap();
        b.set_busy(true);
        let (c, ev) = s.admit(ip(3)).unwrap();
        assert_eq!(ev, Evicted::OldestIdle);
        assert_eq!(s.open(), 2, "a's slot went to c");
        c.set_busy(true);
        assert_eq!(s.admit(ip(4)).err(), Some(Refused::Full));
        drop(a); // the evicted connection ends later: its slot is not freed twice
        assert_eq!(s.open(), 2);
        drop(b);
        assert!(s.admit(ip(4)).is_ok());
    }

    #[test]
    fn one_source_takes_at_most_its_share() {
        let s = Slots::new(100, 2);
        let (x1, _) = s.admit(ip(1)).unwrap();
        let (_x2, _) = s.admit(ip(1)).unwrap();
        let (_x3, ev) = s.admit(ip(1)).unwrap();
        assert_eq!(ev, Evicted::SameSource);
        assert_eq!(s.open(), 2);
        let _ = x1;
        let (_y, ev) = s.admit(ip(2)).unwrap();
        assert_eq!(ev, Evicted::None);
    }

    /// The ordered idle sets against a plain scan of every connection
    /// (what eviction did before): random admissions, busy marks and drops.
    #[test]
    fn eviction_takes_the_oldest_idle_as_a_scan_would() {
        let s = Slots::new(16, 4);
        let mut open: Vec<(u64, IpAddr, Slot)> = Vec::new();
        let mut busy = std::collections::HashSet::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5000 {
            // Drop connections the slots evicted (their Slot lives on).
            let live: std::collections::HashSet<u64> = s.lock().conns.keys().copied().collect();
            open.retain(|(id, _, _)| live.contains(id));
            match next() % 4 {
                0 | 1 => {
                    let src = ip((next() % 6) as u8);
                    let idle = |src: Option<IpAddr>| {
                        open.iter()
                            .filter(|(id, s2, _)| {
                                !busy.contains(id) && src.is_none_or(|s| *s2 == s)
                            })
                            .map(|(id, _, _)| *id)
                            .min()
                    };
                    let from_src = open.iter().filter(|(_, s2, _)| *s2 == src).count();
                    let expect_victim = if from_src >= 4 {
                        idle(Some(src))
                    } else if open.len() >= 16 {
                        idle(None)
                    } else {
                        None
                    };
                    match s.admit(src) {
                        Ok((slot, ev)) => {
                            let live = s.lock().conns.keys().copied().collect::<Vec<_>>();
                            if let Some(v) = expect_victim {
                                assert_ne!(ev, Evicted::None);
                                assert!(!live.contains(&v), "oldest idle {v} not evicted");
                            } else {
                                assert_eq!(ev, Evicted::None);
                            }
                            open.push((slot.id, src, slot));
                        }
                        Err(_) => assert_eq!(expect_victim, None),
                    }
                }
                2 if !open.is_empty() => {
                    let i = (next() as usize) % open.len();
                    let id = open[i].0;
                    let b = !busy.contains(&id);
                    open[i].2.set_busy(b);
                    if b {
                        busy.insert(id);
                    } else {
                        busy.remove(&id);
                    }
                }
                3 if !open.is_empty() => {
                    let i = (next() as usize) % open.len();
                    busy.remove(&open.remove(i).0);
                }
                _ => {}
            }
            let inner = s.lock();
            let want: BTreeSet<u64> = inner
                .conns
                .iter()
                .filter(|(_, e)| !e.busy)
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(inner.idle, want);
            let by_source: usize = inner.per_source.values().map(|s| s.open).sum();
            assert_eq!(by_source, inner.conns.len());
        }
    }

    #[tokio::test]
    async fn an_evicted_connection_is_told() {
        let s = Slots::new(1, 1);
        let (a, _) = s.admit(ip(1)).unwrap();
        let _b = s.admit(ip(2)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.evicted())
            .await
            .expect("eviction notice");
    }

    #[tokio::test]
    async fn a_stalled_write_times_out() {
        use tokio::io::AsyncWriteExt;
        let (client, _server) = tokio::io::duplex(16);
        let mut w = WriteDeadline::new(client, Duration::from_millis(50));
        let e = w.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    }
}
