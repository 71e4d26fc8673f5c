//! Overload: PKINIT requests wait newest first, for a bounded time.
//!
//! In a reboot storm requests arrive faster than the KDC can sign replies.
//! Answering them in arrival order makes every answer late: each waits
//! behind all the others, past the device's retry timer, and the work is
//! wasted. So the transports put PKINIT requests in one [`Backlog`] shared
//! by the serving threads, and each serving thread's [`dispatch`] loop
//! takes the newest request whenever its CPU is free:
//!
//! - the age of a request counts from the kernel's receive timestamp
//!   (`recv_stamp`), so the time it spent in a socket buffer or the accept
//!   queue counts too; one older than `[overload] max_queue_delay_ms` is
//!   dropped unanswered (over TCP its connection is closed);
//! - when `max_waiting` requests wait, the oldest is dropped for the new one;
//! - a retransmission of a request still waiting or being worked on (same
//!   bytes from the same address and port) is not queued twice;
//! - a retransmission of a request that was dropped unanswered waits
//!   behind every first try: "newest" is the newest device exchange, not
//!   the newest datagram. Under overload the KDC then answers exchanges
//!   before their device's first retry; those it could not answer in time
//!   are served when the storm ebbs (docs/benchmarks.md measures both
//!   orders);
//! - while the KDC keeps up (the oldest waiting request has waited less
//!   than a fifth of the budget) requests are taken oldest first, which
//!   keeps the latency tail short at normal load; newest first only when
//!   it falls behind;
//! - a request is decoded only when its turn comes: refusing one costs a
//!   read and a hash, far less than the signature it would have needed.
//!
//! A serving thread dispatches the next request when the previous one's
//! public-key work ends (the end of its [`kdc::pool::Turn`] signals it) or when
//! it finishes without any (lookaside hit, early refusal); one waiting for
//! the provisioning server does not hold the thread.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use kdc::kdc::Handled;

/// Where the answer goes.
pub enum ReplyTo {
    /// The serving thread's UDP socket with this index.
    Udp(usize),
    /// The TCP connection waiting for it; None closes the connection.
    Tcp(oneshot::Sender<Option<Handled>>),
    /// A TCP connection not yet registered with a reactor (its first
    /// request): served, it is registered; dropped, it is reset.
    Parked(crate::tcp::Parked),
}

impl ReplyTo {
    pub fn transport(&self) -> &'static str {
        match self {
            ReplyTo::Udp(_) => "udp",
            ReplyTo::Tcp(_) | ReplyTo::Parked(_) => "tcp",
        }
    }

    /// A TCP client that closed its connection no longer wants the answer.
    fn abandoned(&self) -> bool {
        match self {
            ReplyTo::Udp(_) => false,
            ReplyTo::Tcp(tx) => tx.is_closed(),
            ReplyTo::Parked(p) => p.abandoned(),
        }
    }
}

/// One PKINIT request waiting for a serving thread.
pub struct Job {
    /// Keyed hash of the request bytes.
    hash: u64,
    pub request: Arc<[u8]>,
    pub source: SocketAddr,
    /// When the kernel received it.
    pub arrived: Instant,
    pub reply: ReplyTo,
    claim: Option<Claim>,
}

impl Job {
    /// Releases the in-progress mark once the reply is in the lookaside,
    /// so a resend arriving as the device gets its answer is answered from
    /// there rather than dropped as a duplicate.
    pub fn finished(&mut self) {
        self.claim = None;
    }
}

/// Marks a request (bytes, source) as in progress while it exists.
struct Claim {
    set: Arc<Mutex<HashSet<(u64, SocketAddr)>>>,
    key: (u64, SocketAddr),
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Why a request was read and not answered (docs/metrics.md,
/// `pktc_requests_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Waited past `max_queue_delay_ms`.
    Age,
    /// The oldest when `max_waiting` were waiting.
    QueueFull,
    /// The oldest waiting TCP request, giving its slot to a new connection.
    TcpSlots,
    /// A retransmission of a request in progress.
    Duplicate,
    /// A TCP client that closed while its request waited.
    ClientGone,
    /// A busy refusal kept from a PKINIT device (`pkinit_busy_reply = "silent"`).
    BusySilent,
    /// Junk over the source's token bucket.
    RateLimited,
}

impl Dropped {
    pub const ALL: [Dropped; 7] = [
        Dropped::Age,
        Dropped::QueueFull,
        Dropped::TcpSlots,
        Dropped::Duplicate,
        Dropped::ClientGone,
        Dropped::BusySilent,
        Dropped::RateLimited,
    ];

    /// The metric's `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::Age => "age",
            Dropped::QueueFull => "queue_full",
            Dropped::TcpSlots => "tcp_slots",
            Dropped::Duplicate => "duplicate",
            Dropped::ClientGone => "client_gone",
            Dropped::BusySilent => "busy_silent",
            Dropped::RateLimited => "rate_limited",
        }
    }
}

/// `pktc_requests_dropped_total{transport, reason}`: requests the KDC
/// read and did not answer (docs/metrics.md).
pub fn count_drop(transport: &'static str, reason: Dropped) {
    metrics::counter!(
        "pktc_requests_dropped_total", "transport" => transport, "reason" => reason.label()
    )
    .increment(1);
}

/// Requests dropped unanswered lately, by a key (bytes hash and source
/// address; or the source address alone for TCP connections reset unread),
/// to recognise their retransmissions (over TCP they come from another
/// port). Bounded in entries and age.
struct Recent<K> {
    seen: HashMap<K, Instant>,
    order: VecDeque<(K, Instant)>,
}

/// Entries and age bounds of [`Recent`] (16 bytes + overhead each; the
/// devices' retries come within a minute).
const RECENT_MAX: usize = 65_536;
const RECENT_TTL: Duration = Duration::from_secs(120);

impl<K: std::hash::Hash + Eq + Copy> Recent<K> {
    fn new() -> Recent<K> {
        Recent {
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, key: K) {
        let now = Instant::now();
        while let Some(&(k, at)) = self.order.front() {
            if self.order.len() < RECENT_MAX && now.duration_since(at) < RECENT_TTL {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&k) == Some(&at) {
                self.seen.remove(&k);
            }
        }
        self.seen.insert(key, now);
        self.order.push_back((key, now));
    }

    fn contains(&self, key: &K) -> bool {
        self.seen
            .get(key)
            .is_some_and(|at| at.elapsed() < RECENT_TTL)
    }
}

/// First tries, and retransmissions of requests dropped before: each
/// oldest at the front.
#[derive(Default)]
struct Queues {
    fresh: VecDeque<Job>,
    retries: VecDeque<Job>,
}

impl Queues {
    fn len(&self) -> usize {
        self.fresh.len() + self.retries.len()
    }
}

pub struct Backlog {
    queues: Mutex<Queues>,
    ready: Notify,
    budget: Option<Duration>,
    max_waiting: usize,
    in_progress: Arc<Mutex<HashSet<(u64, SocketAddr)>>>,
    recent: Mutex<Recent<(u64, IpAddr)>>,
    /// Sources whose TCP connection was reset unread lately.
    reset_unread: Mutex<Recent<IpAddr>>,
    /// `[overload] tcp_reset_unread_at`; see [`Backlog::reset_unread`].
    reset_unread_at: usize,
    /// `pktc_tcp_rejected_total{reason="backlog"}`, registered once.
    reset_unread_count: metrics::Counter,
    hasher: RandomState,
    waiting: metrics::Gauge,
    delay: metrics::Histogram,
}

impl Backlog {
    /// `budget`: the longest wait (None: unbounded); `max_waiting`: bound
    /// on waiting requests.
    pub fn new(budget: Option<Duration>, max_waiting: usize) -> Backlog {
        Backlog {
            queues: Mutex::new(Queues::default()),
            ready: Notify::new(),
            budget,
            max_waiting: max_waiting.max(1),
            in_progress: Arc::new(Mutex::new(HashSet::new())),
            recent: Mutex::new(Recent::new()),
            reset_unread: Mutex::new(Recent::new()),
            reset_unread_at: 0,
            reset_unread_count: metrics::counter!("pktc_tcp_rejected_total", "reason" => "backlog"),
            hasher: RandomState::new(),
            waiting: metrics::gauge!("pktc_requests_waiting"),
            delay: metrics::histogram!("pktc_queue_delay_seconds"),
        }
    }

    /// Resets new TCP connections unread from `waiting` waiting requests
    /// (`[overload] tcp_reset_unread_at`; 0: never); see
    /// [`Backlog::reset_unread`].
    pub fn with_tcp_reset_unread_at(mut self, waiting: usize) -> Backlog {
        self.reset_unread_at = waiting;
        self
    }

    /// Whether a new TCP connection from `source` whose first request is
    /// an AS-REQ (`is_as_req` peeks, and is called only when it matters)
    /// should be reset before it is read.
    ///
    /// Under a storm most new connections cannot be answered in time, and
    /// reading, hashing and parking each only to drop it later costs
    /// several times what accept and close do (docs/benchmarks.md, "Reset
    /// unread"). So from `tcp_reset_unread_at` waiting requests (more than
    /// the KDC can serve within the budget, not a burst at normal load) a
    /// new connection is reset unread. A source reset this way lately is
    /// reset from half as many: its retransmissions come after first
    /// tries, as in the queues. Counts and remembers the refusal.
    pub fn reset_unread(&self, source: IpAddr, is_as_req: impl FnOnce() -> bool) -> bool {
        if self.reset_unread_at == 0 {
            return false;
        }
        let waiting = self.len();
        if waiting < (self.reset_unread_at / 2).max(1) || !is_as_req() {
            return false;
        }
        let mut recent = self.reset_unread.lock().unwrap_or_else(|e| e.into_inner());
        if waiting < self.reset_unread_at && !recent.contains(&source) {
            return false;
        }
        recent.insert(source);
        drop(recent);
        self.reset_unread_count.increment(1);
        true
    }

    /// Whether a request received at `arrived` has waited too long.
    pub fn stale(&self, arrived: Instant) -> bool {
        self.budget.is_some_and(|b| arrived.elapsed() > b)
    }

    /// Whether the oldest waiting request, received at `arrived`, shows the
    /// KDC keeping up: waited at most a fifth of the budget (without a
    /// budget, 100 ms).
    fn keeping_up(&self, arrived: Instant) -> bool {
        let limit = self.budget.map_or(Duration::from_millis(100), |b| b / 5);
        arrived.elapsed() <= limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent<(u64, IpAddr)>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a PKINIT request dropped for `reason` before it was queued
    /// (stale on arrival) and remembers it, so that its retransmission
    /// waits behind first tries.
    pub fn drop_unqueued(&self, request: &[u8], source: SocketAddr, transport: &'static str) {
        self.recent()
            .insert((self.hasher.hash_one(request), source.ip()));
        count_drop(transport, Dropped::Age);
    }

    /// Counts dropped jobs (outside the queue lock: dropping a TCP job
    /// wakes its connection) and remembers them.
    fn dropped(&self, jobs: Vec<(Job, Dropped)>) {
        if jobs.is_empty() {
            return;
        }
        let mut recent = self.recent();
        for (j, _) in &jobs {
            recent.insert((j.hash, j.source.ip()));
        }
        drop(recent);
        for (j, reason) in jobs {
            count_drop(j.reply.transport(), reason);
        }
    }

    /// Queues a request, unless the same one (bytes and source) is in
    /// progress already or it waited too long already. Drops the oldest
    /// waiting one when full (a retransmission first), and any that waited
    /// too long. Returns false when not queued.
    pub fn push(
        &self,
        request: Arc<[u8]>,
        source: SocketAddr,
        arrived: Instant,
        reply: ReplyTo,
    ) -> bool {
        let hash = self.hasher.hash_one(&*request);
        let key = (hash, source);
        if !self
            .in_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key)
        {
            count_drop(reply.transport(), Dropped::Duplicate);
            return false;
        }
        let retry = self.recent().contains(&(hash, source.ip()));
        let job = Job {
            hash,
            request,
            source,
            arrived,
            reply,
            claim: Some(Claim {
                set: self.in_progress.clone(),
                key,
            }),
        };
        if self.stale(arrived) {
            self.dropped(vec![(job, Dropped::Age)]);
            return false;
        }
        let dropped = {
            let mut guard = self.lock();
            let q = &mut *guard;
            let mut dropped = Vec::new();
            for d in [&mut q.fresh, &mut q.retries] {
                while d.front().is_some_and(|j| self.stale(j.arrived)) {
                    dropped.extend(d.pop_front().map(|j| (j, Dropped::Age)));
                }
            }
            if q.len() >= self.max_waiting {
                let oldest = match q.retries.pop_front() {
                    Some(j) => Some(j),
                    None => q.fresh.pop_front(),
                };
                dropped.extend(oldest.map(|j| (j, Dropped::QueueFull)));
            }
            if retry {
                q.retries.push_back(job);
            } else {
                q.fresh.push_back(job);
            }
            self.waiting.set(q.len() as f64);
            dropped
        };
        self.dropped(dropped);
        self.ready.notify_one();
        true
    }

    /// Drops the oldest waiting TCP request (a retransmission first) to
    /// free its connection slot for a new connection: when every slot
    /// holds a waiting request, the newest connection is worth more than
    /// the oldest (served newest first, the oldest would wait longest).
    /// Returns whether one was dropped; a parked connection's slot is free
    /// on return.
    pub fn drop_oldest_tcp(&self) -> bool {
        let oldest = {
            let mut guard = self.lock();
            let q = &mut *guard;
            let mut oldest = None;
            for d in [&mut q.retries, &mut q.fresh] {
                if let Some(i) = d.iter().position(|j| j.reply.transport() == "tcp") {
                    oldest = d.remove(i);
                    break;
                }
            }
            self.waiting.set(q.len() as f64);
            oldest
        };
        let dropped = oldest.is_some();
        self.dropped(oldest.map(|j| (j, Dropped::TcpSlots)).into_iter().collect());
        dropped
    }

    /// The newest first try that has not waited too long, else the newest
    /// such retransmission; the stale and abandoned ones met on the way are
    /// dropped.
    fn pop(&self) -> Option<Job> {
        let mut dropped = Vec::new();
        let found = {
            let mut guard = self.lock();
            let q = &mut *guard;
            let mut found = None;
            for d in [&mut q.fresh, &mut q.retries] {
                // First in, first out while the oldest has waited only a
                // little (the KDC keeps up: FIFO keeps the tail short);
                // newest first once it falls behind.
                let keeping_up = d.front().is_some_and(|j| self.keeping_up(j.arrived));
                let next = |d: &mut VecDeque<Job>| {
                    if keeping_up {
                        d.pop_front()
                    } else {
                        d.pop_back()
                    }
                };
                while let Some(j) = next(d) {
                    if self.stale(j.arrived) {
                        dropped.push((j, Dropped::Age));
                        if !keeping_up {
                            // Everything older waited longer still.
                            dropped.extend(d.drain(..).map(|j| (j, Dropped::Age)));
                        }
                    } else if j.reply.abandoned() {
                        dropped.push((j, Dropped::ClientGone));
                    } else {
                        found = Some(j);
                        break;
                    }
                }
                if found.is_some() {
                    break;
                }
            }
            self.waiting.set(q.len() as f64);
            found
        };
        self.dropped(dropped);
        if let Some(j) = &found {
            self.delay.record(j.arrived.elapsed().as_secs_f64());
        }
        found
    }

    /// Waits for the newest fresh request.
    pub async fn next(&self) -> Job {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(j) = self.pop() {
                return j;
            }
            notified.await;
        }
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

tokio::task_local! {
    /// Set by [`dispatch`] around a request's task: fired when its first
    /// public-key work ends, so the thread can take the next request.
    static FIRST_PHASE: RefCell<Option<oneshot::Sender<()>>>;
}

/// Called by the CPU pool after public-key work: lets this thread's
/// dispatcher take the next request (no-op outside a dispatched task).
pub fn cpu_phase_done() {
    let _ = FIRST_PHASE.try_with(|c| {
        if let Some(tx) = c.borrow_mut().take() {
            let _ = tx.send(());
        }
    });
}

/// A serving thread's dispatcher: takes the newest request, runs `serve`
/// for it in a task of its own, and takes the next one when that task's
/// public-key work is over (or the task has ended).
pub async fn dispatch<F, Fut>(backlog: Arc<Backlog>, serve: F)
where
    F: Fn(Job) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let job = backlog.next().await;
        let (tx, rx) = oneshot::channel();
        tokio::spawn(FIRST_PHASE.scope(RefCell::new(Some(tx)), serve(job)));
        let _ = rx.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn push(b: &Backlog, body: &[u8], port: u16, age_ms: u64) -> bool {
        let arrived = Instant::now() - Duration::from_millis(age_ms);
        b.push(Arc::from(body), addr(port), arrived, ReplyTo::Udp(0))
    }

    #[test]
    fn newest_first_when_behind_and_stale_dropped() {
        let budget = Duration::from_millis(500);
        let b = Backlog::new(Some(budget), 100);
        let old_arrived = Instant::now() - (budget - Duration::from_millis(2));
        assert!(b.push(
            Arc::from(&b"old"[..]),
            addr(1),
            old_arrived,
            ReplyTo::Udp(0)
        ));
        // Until "old" has waited past the budget (a few ms, bounded).
        let deadline = Instant::now() + Duration::from_secs(5);
        while old_arrived.elapsed() <= budget && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Behind: the oldest waiting has waited more than a fifth of the budget.
        assert!(push(&b, b"a", 2, 300));
        assert!(push(&b, b"b", 3, 200));
        // "old" was dropped when "a" came: it waited past the budget.
        assert_eq!(b.len(), 2);
        assert_eq!(&*b.pop().unwrap().request, b"b");
        assert_eq!(&*b.pop().unwrap().request, b"a");
        assert!(b.pop().is_none());
    }

    #[test]
    fn tcp_connections_reset_unread_only_when_backlogged_and_retries_first() {
        let b = Backlog::new(Some(Duration::from_millis(500)), 100).with_tcp_reset_unread_at(4);
        let (fresh, again) = (IpAddr::from([127, 0, 0, 9]), IpAddr::from([127, 0, 0, 10]));
        let peeked = std::cell::Cell::new(0);
        let as_req = || {
            peeked.set(peeked.get() + 1);
            true
        };
        // Below half the mark: admitted without even a peek.
        assert!(push(&b, b"1", 1, 0));
        assert!(!b.reset_unread(fresh, as_req));
        assert_eq!(peeked.get(), 0);
        assert!(push(&b, b"2", 2, 0));
        assert!(push(&b, b"3", 3, 0));
        // Half the mark: a first try is admitted, and a TGS-REQ always.
        assert!(!b.reset_unread(fresh, as_req));
        assert!(!b.reset_unread(again, || false));
        assert!(push(&b, b"4", 4, 0));
        // At the mark: reset unread, and remembered.
        assert!(b.reset_unread(again, as_req));
        assert!(!b.reset_unread(again, || false), "not an AS-REQ");
        assert!(b.pop().is_some());
        assert_eq!(b.len(), 3);
        // Below the mark again: a first try is admitted, a source reset
        // lately (its retransmission) is not until fewer than half wait.
        assert!(!b.reset_unread(fresh, as_req));
        assert!(b.reset_unread(again, as_req));
        assert!(b.pop().is_some());
        assert!(b.pop().is_some());
        assert!(!b.reset_unread(again, as_req));
        // Off: never.
        let off = Backlog::new(None, 100);
        for port in 0..50 {
            assert!(push(&off, &[port as u8], port, 0));
        }
        assert!(!off.reset_unread(fresh, || panic!("no peek when off")));
    }

    #[test]
    fn oldest_first_while_keeping_up() {
        let b = Backlog::new(Some(Duration::from_millis(500)), 100);
        assert!(push(&b, b"a", 1, 20));
        assert!(push(&b, b"b", 2, 10));
        assert_eq!(&*b.pop().unwrap().request, b"a");
        assert_eq!(&*b.pop().unwrap().request, b"b");
    }

    #[test]
    fn the_oldest_makes_room_and_retransmissions_are_not_queued_twice() {
        let b = Backlog::new(None, 2);
        assert!(push(&b, b"1", 1, 0));
        assert!(
            !push(&b, b"1", 1, 0),
            "same bytes, same source: in progress"
        );
        assert!(push(&b, b"1", 2, 0), "another source");
        assert!(push(&b, b"2", 1, 0));
        assert_eq!(b.len(), 2);
        let first = b.pop().unwrap();
        assert_eq!((&*first.request, first.source), (&b"1"[..], addr(2)));
        // Dropped ("1" from port 1) and finished jobs release their claim.
        drop(first);
        assert!(!push(&b, b"2", 1, 0), "still waiting");
        assert!(push(&b, b"1", 1, 0));
        assert!(push(&b, b"1", 2, 0));
    }

    #[test]
    fn retransmissions_of_dropped_requests_wait_behind_first_tries() {
        let b = Backlog::new(Some(Duration::from_millis(500)), 100);
        // Stale on arrival: dropped and remembered.
        assert!(!push(&b, b"r", 1, 900));
        // Its retransmission (another port: TCP) comes later than a first try.
        assert!(push(&b, b"first", 2, 0));
        assert!(push(&b, b"r", 3, 0));
        assert_eq!(&*b.pop().unwrap().request, b"first");
        assert_eq!(
            &*b.pop().unwrap().request,
            b"r",
            "served when nothing newer waits"
        );
        assert!(b.pop().is_none());
    }

    #[test]
    fn the_oldest_tcp_request_gives_its_slot() {
        let b = Backlog::new(None, 10);
        assert!(push(&b, b"udp", 1, 30));
        let mut receivers = Vec::new();
        for (body, port, age) in [(&b"old"[..], 2, 20), (&b"new"[..], 3, 10)] {
            let (tx, rx) = oneshot::channel();
            let arrived = Instant::now() - Duration::from_millis(age);
            assert!(b.push(Arc::from(body), addr(port), arrived, ReplyTo::Tcp(tx)));
            receivers.push(rx);
        }
        assert!(b.drop_oldest_tcp());
        // The oldest TCP request went (its connection is told: None), not UDP.
        use tokio::sync::oneshot::error::TryRecvError;
        assert!(matches!(receivers[0].try_recv(), Err(TryRecvError::Closed)));
        assert!(matches!(receivers[1].try_recv(), Err(TryRecvError::Empty)));
        assert_eq!(b.len(), 2);
        assert!(b.drop_oldest_tcp());
        assert!(!b.drop_oldest_tcp(), "only UDP waits");
        assert_eq!(&*b.pop().unwrap().request, b"udp");
    }

    #[test]
    fn abandoned_tcp_requests_are_skipped() {
        let b = Backlog::new(None, 10);
        let (tx, rx) = oneshot::channel();
        assert!(b.push(
            Arc::from(&b"t"[..]),
            addr(1),
            Instant::now(),
            ReplyTo::Tcp(tx)
        ));
        drop(rx);
        assert!(b.pop().is_none());
    }
}
