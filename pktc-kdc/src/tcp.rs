//! Kerberos over TCP (RFC 4120 §7.2.2: each message preceded by a 4-byte
//! big-endian length, high bit reserved; several requests may share a
//! connection), with every connection bounded:
//!
//! - slots: a total and a per-source bound; when full, the oldest idle
//!   connection is closed for the new one (`certboot::conn_limits`), and
//!   only when every connection is working on a request is the new one
//!   refused, with a reset so the client fails at once;
//! - time: a frame must arrive whole within `tcp_idle_timeout_secs` of its
//!   first byte (a byte now and then does not keep it open), a connection
//!   lives at most `tcp_max_connection_secs`, and a reply write that makes
//!   no progress for `tcp_write_timeout_secs` closes it;
//! - a frame that is not a KDC request is charged to the source's token
//!   bucket, answered, and its connection closed;
//! - a PKINIT request goes through the overload backlog: one that waited
//!   past the budget (counted from the kernel's timestamp of its last
//!   segment) closes the connection instead of being answered late, and a
//!   client that closes its connection withdraws its request;
//! - the first request is read before the connection is registered with
//!   the reactor: a connection whose first request waits in the backlog is
//!   parked there as a bare socket and registered only if it is served. In
//!   a storm most connections are refused or dropped from the backlog, and
//!   one never registered costs no epoll_ctl, no reactor wake-up and no
//!   task (docs/benchmarks.md, "TCP at 3 × (follow-up)").

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certboot::conn_limits::{Evicted, Refused, Slot, Slots};
use nix::sys::socket::MsgFlags;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::overload::{Backlog, Dropped, ReplyTo, count_drop};
use crate::server::{audit, audit_drop, busy_and_silent, rate_limited};
use kdc::kdc::{Handled, Kdc, Outcome};
use kdc::kerr::KdcError;
use kdc::reason::Reason;

/// The TCP bounds of `[listen]`.
#[derive(Debug, Clone, Copy)]
pub struct TcpSettings {
    pub idle: Duration,
    pub lifetime: Duration,
    pub write_timeout: Duration,
    pub silent: bool,
}

/// Why the KDC closed a TCP connection (`pktc_tcp_closed_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// `tcp_max_connection_secs` reached.
    Lifetime,
    /// A frame begun but not whole within `tcp_idle_timeout_secs`.
    FrameTimeout,
    /// No byte of a next frame within `tcp_idle_timeout_secs`.
    Idle,
    /// A reply write made no progress for `tcp_write_timeout_secs`.
    WriteTimeout,
    /// A frame that is not a KDC request.
    InvalidFrame,
}

impl CloseReason {
    pub const ALL: [CloseReason; 5] = [
        CloseReason::Lifetime,
        CloseReason::FrameTimeout,
        CloseReason::Idle,
        CloseReason::WriteTimeout,
        CloseReason::InvalidFrame,
    ];

    /// The metric's `reason` label (and the audit line's).
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Lifetime => "lifetime",
            CloseReason::FrameTimeout => "frame_timeout",
            CloseReason::Idle => "idle",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::InvalidFrame => "invalid_frame",
        }
    }
}

fn count_closed(reason: CloseReason) {
    metrics::counter!("pktc_tcp_closed_total", "reason" => reason.label()).increment(1);
}

/// A connection cut short by a time bound: the metric and an audit line.
fn closed_by_bound(source: SocketAddr, reason: CloseReason) {
    count_closed(reason);
    tracing::info!(
        target: "audit",
        exchange = "connection",
        transport = "tcp",
        source = %source,
        outcome = "closed",
        reason = reason.label(),
    );
}

/// Accepts one connection, not registered with the reactor (the listener
/// is non-blocking; the accepted socket is blocking until registered, and
/// read before that with MSG_DONTWAIT only).
async fn accept(
    l: &AsyncFd<std::net::TcpListener>,
) -> std::io::Result<(std::net::TcpStream, SocketAddr)> {
    loop {
        let mut ready = l.readable().await?;
        if let Ok(accepted) = ready.try_io(|l| l.get_ref().accept()) {
            // The loop reads and queues inline: let the thread's other
            // tasks (the dispatcher) run in between, as tokio's accept does.
            tokio::task::consume_budget().await;
            return accepted;
        }
    }
}

/// The shared state a connection needs, cloned for each.
#[derive(Clone)]
struct Ctx {
    kdc: Arc<Kdc>,
    backlog: Arc<Backlog>,
    settings: TcpSettings,
}

pub async fn accept_loop(
    kdc: Arc<Kdc>,
    l: AsyncFd<std::net::TcpListener>,
    slots: Arc<Slots>,
    backlog: Arc<Backlog>,
    settings: TcpSettings,
) {
    let ctx = Ctx {
        kdc,
        backlog,
        settings,
    };
    loop {
        let (stream, source) = match accept(&l).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if ctx
            .backlog
            .reset_unread(source.ip(), || opens_with_as_req(&stream))
        {
            tracing::debug!(%source, "pkinit requests backlogged; resetting unread");
            // Closed with its request unread, the connection is reset.
            continue;
        }
        let mut admitted = slots.admit(source.ip());
        if matches!(admitted, Err(Refused::Full)) && ctx.backlog.drop_oldest_tcp() {
            // Every slot held a request; the oldest waiting one gave its own.
            admitted = slots.admit(source.ip());
        }
        let slot = match admitted {
            Ok((slot, evicted)) => {
                let reason = match evicted {
                    Evicted::None => None,
                    Evicted::OldestIdle => Some("oldest_idle"),
                    Evicted::SameSource => Some("same_source"),
                };
                if let Some(reason) = reason {
                    metrics::counter!("pktc_tcp_evicted_total", "reason" => reason).increment(1);
                }
                slot
            }
            Err(refused) => {
                metrics::counter!("pktc_tcp_rejected_total", "reason" => "slots").increment(1);
                tracing::debug!(%source, ?refused, "tcp connections all busy; resetting");
                // A reset, not a FIN: the client fails now instead of waiting.
                reset(&stream);
                continue;
            }
        };
        let conn = Conn {
            stream,
            source,
            slot,
            _open: OpenConnection::new(),
        };
        let mut reader = FrameReader::new();
        match reader.fill_now(&conn.stream) {
            Ok(n) if n > 0 => {
                if let Some(conn) = first_unregistered(&ctx, conn, &mut reader) {
                    register(&ctx, conn, reader, None);
                }
            }
            // Nothing yet: the reactor tells when.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                register(&ctx, conn, reader, None);
            }
            // Closed already, or broken.
            _ => {}
        }
    }
}

/// Whether the connection's first bytes (peeked, not read) are a length
/// prefix and an AS-REQ's tag: a request that goes to the backlog if it
/// is PKINIT. A TGS-REQ, or bytes not there yet, is not reset unread.
fn opens_with_as_req(stream: &std::net::TcpStream) -> bool {
    let mut head = [0u8; 5];
    matches!(
        nix::sys::socket::recv(
            stream.as_raw_fd(),
            &mut head,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ),
        Ok(5) if head[4] == 0x6a
    )
}

/// An accepted connection and what it holds.
struct Conn {
    stream: std::net::TcpStream,
    source: SocketAddr,
    slot: Slot,
    _open: OpenConnection,
}

/// Handles the connection's first request before registration when it
/// is whole in `reader` and nothing follows it: a PKINIT request is
/// dropped at once (too old, or silent while rate-limited) or parked in
/// the backlog. Returns the connection when it needs the reactor (no
/// whole frame yet, more bytes behind it, not PKINIT).
fn first_unregistered(ctx: &Ctx, conn: Conn, reader: &mut FrameReader) -> Option<Conn> {
    let kdc = &ctx.kdc;
    match reader.whole_frame(kdc.max_request) {
        Some(request) if reader.single_frame() && kdc.routes_to_pkinit(request) => {}
        _ => return Some(conn),
    }
    let arrived = reader.arrived();
    let Some(Ok(request)) = reader.take_frame(kdc.max_request) else {
        return Some(conn);
    };
    let source = conn.source;
    conn.slot.set_busy(true);
    metrics::counter!("pktc_tcp_unregistered_total").increment(1);
    if ctx.backlog.stale(arrived) {
        ctx.backlog.drop_unqueued(&request, source, "tcp");
        reset(&conn.stream);
        return None;
    }
    if let Some(limited) = rate_limited(kdc, &request, source) {
        if busy_and_silent(&limited, ctx.settings.silent) {
            audit_drop(&limited, source, "tcp");
            reset(&conn.stream);
        } else {
            // The connection writes the error, then reads on.
            register(ctx, conn, FrameReader::new(), Some((limited, arrived)));
        }
        return None;
    }
    let parked = Parked {
        conn: Some(conn),
        kdc: ctx.kdc.clone(),
        backlog: Arc::downgrade(&ctx.backlog),
        settings: ctx.settings,
    };
    // Not queued (a duplicate, or too old): dropping `parked` resets it.
    ctx.backlog
        .push(request.into(), source, arrived, ReplyTo::Parked(parked));
    None
}

/// Registers the connection with this thread's reactor and serves it in
/// a task of its own, writing `first` (an answer and when its request
/// arrived) before reading on.
fn register(ctx: &Ctx, conn: Conn, reader: FrameReader, first: Option<(Handled, Instant)>) {
    let Conn {
        stream,
        source,
        slot,
        _open: open,
    } = conn;
    let registered = stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(stream));
    let stream = match registered {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%source, error = %e, "tcp register");
            return;
        }
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let _open = open;
        if let Err(e) = connection(ctx, stream, source, slot, reader, first).await {
            tracing::debug!(%source, error = %e, "tcp connection ended");
        }
    });
}

/// A connection whose first request waits in the backlog, not registered
/// with any reactor. Served: [`Parked::resume`] registers it. Dropped
/// (for age, for room, silent while busy): reset and closed.
pub struct Parked {
    conn: Option<Conn>,
    kdc: Arc<Kdc>,
    /// Weak: the backlog holds this job (no cycle keeping both alive).
    backlog: std::sync::Weak<Backlog>,
    settings: TcpSettings,
}

impl Parked {
    /// Whether the client has closed its side (or the connection broke):
    /// a non-blocking peek.
    pub(crate) fn abandoned(&self) -> bool {
        let Some(c) = &self.conn else { return true };
        let mut b = [0u8; 1];
        match nix::sys::socket::recv(
            c.stream.as_raw_fd(),
            &mut b,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e != nix::errno::Errno::EAGAIN,
        }
    }

    /// Registers the connection with this thread's reactor, writes
    /// `answer` and serves its next requests like any other's.
    pub(crate) fn resume(mut self, answer: Handled, arrived: Instant) {
        // No backlog: the server is stopping; dropping `self` resets.
        let Some(backlog) = self.backlog.upgrade() else {
            return;
        };
        let ctx = Ctx {
            kdc: self.kdc.clone(),
            backlog,
            settings: self.settings,
        };
        if let Some(conn) = self.conn.take() {
            register(&ctx, conn, FrameReader::new(), Some((answer, arrived)));
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        if let Some(c) = &self.conn {
            reset(&c.stream);
        }
    }
}

/// Counts an open Kerberos TCP connection in `pktc_tcp_connections`.
struct OpenConnection;

impl OpenConnection {
    fn new() -> OpenConnection {
        metrics::gauge!("pktc_tcp_connections").increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("pktc_tcp_connections").decrement(1.0);
    }
}

enum Frame {
    /// A whole request and when its last byte reached the host.
    Request(Vec<u8>, Instant),
    /// The length prefix is over the limit (or has the reserved bit).
    Oversized,
    /// End of stream, an error, or a deadline passed.
    Closed(Closed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// End of stream or an error.
    Peer,
    /// No byte of a next frame within `tcp_idle_timeout_secs`.
    Idle,
    /// A frame begun but not whole within `tcp_idle_timeout_secs`.
    FrameTimeout,
    /// `tcp_max_connection_secs` reached.
    Lifetime,
}

/// Reads length-prefixed frames with the kernel's receive timestamps.
struct FrameReader {
    buf: Vec<u8>,
    filled: usize,
    /// How long ago the newest byte read reached the host, when read.
    age: Duration,
    read_at: Instant,
}

impl FrameReader {
    fn new() -> FrameReader {
        // The length prefix and a PKINIT request (2.4–3.2 KB) usually
        // arrive together: one read.
        FrameReader {
            buf: vec![0u8; 4096],
            filled: 0,
            age: Duration::ZERO,
            read_at: Instant::now(),
        }
    }

    /// When the newest byte read reached the host.
    fn arrived(&self) -> Instant {
        self.read_at.checked_sub(self.age).unwrap_or(self.read_at)
    }

    /// One non-blocking read of what is there (before registration):
    /// Ok(0) at end of stream, WouldBlock when nothing came yet.
    fn fill_now(&mut self, stream: &impl AsRawFd) -> std::io::Result<usize> {
        let r = crate::recv_stamp::recv(stream, &mut self.buf[self.filled..])?;
        self.filled += r.len;
        self.age = r.age;
        self.read_at = Instant::now();
        Ok(r.len)
    }

    /// The length of the frame at the front: Err when over `max` (or with
    /// the reserved bit), None before its prefix is whole.
    fn frame_len(&self, max: usize) -> Option<Result<usize, ()>> {
        if self.filled < 4 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len & 0x8000_0000 != 0 || len as usize > max {
            return Some(Err(()));
        }
        Some(Ok(len as usize))
    }

    /// The request at the front, if it is whole.
    fn whole_frame(&self, max: usize) -> Option<&[u8]> {
        match self.frame_len(max) {
            Some(Ok(len)) if self.filled >= 4 + len => Some(&self.buf[4..4 + len]),
            _ => None,
        }
    }

    /// Whether the buffer holds exactly one whole frame.
    fn single_frame(&self) -> bool {
        self.frame_len(usize::MAX >> 1)
            .is_some_and(|l| l.is_ok_and(|len| self.filled == 4 + len))
    }

    /// Takes the frame at the front if it is whole (Err: oversized).
    fn take_frame(&mut self, max: usize) -> Option<Result<Vec<u8>, ()>> {
        let len = match self.frame_len(max)? {
            Ok(len) => len,
            Err(()) => return Some(Err(())),
        };
        let total = 4 + len;
        if self.filled < total {
            if self.buf.len() < total {
                self.buf.resize(total, 0);
            }
            return None;
        }
        let request = self.buf[4..total].to_vec();
        self.buf.copy_within(total..self.filled, 0);
        self.filled -= total;
        Some(Ok(request))
    }

    async fn next(
        &mut self,
        stream: &TcpStream,
        max: usize,
        idle: Duration,
        end_of_life: Instant,
    ) -> Frame {
        let mut deadline = (Instant::now() + idle).min(end_of_life);
        let mut started = self.filled > 0;
        loop {
            match self.take_frame(max) {
                Some(Ok(request)) => return Frame::Request(request, self.arrived()),
                Some(Err(())) => return Frame::Oversized,
                None => {}
            }
            let buf = &mut self.buf[self.filled..];
            let read = stream.async_io(Interest::READABLE, || crate::recv_stamp::recv(stream, buf));
            match tokio::time::timeout_at(deadline.into(), read).await {
                Ok(Ok(r)) if r.len > 0 => {
                    self.filled += r.len;
                    self.age = r.age;
                    self.read_at = Instant::now();
                    if !started {
                        // From the first byte the whole frame has `idle`:
                        // dribbling bytes does not extend it.
                        started = true;
                        deadline = (Instant::now() + idle).min(end_of_life);
                    }
                }
                Err(_) if Instant::now() >= end_of_life => {
                    return Frame::Closed(Closed::Lifetime);
                }
                Err(_) if started => return Frame::Closed(Closed::FrameTimeout),
                Err(_) => return Frame::Closed(Closed::Idle),
                Ok(_) => return Frame::Closed(Closed::Peer),
            }
        }
    }
}

/// Resolves when the client closes its side (or the connection breaks).
async fn peer_closed(stream: &TcpStream) {
    let mut b = [0u8; 1];
    match stream.peek(&mut b).await {
        Ok(0) | Err(_) => {}
        // More requests queued behind this one: cannot tell; wait.
        Ok(_) => std::future::pending().await,
    }
}

async fn connection(
    ctx: Ctx,
    mut stream: TcpStream,
    source: SocketAddr,
    slot: Slot,
    mut reader: FrameReader,
    first: Option<(Handled, Instant)>,
) -> anyhow::Result<()> {
    let Ctx {
        kdc,
        backlog,
        settings: s,
    } = ctx;
    let end_of_life = Instant::now() + s.lifetime;
    if let Some((handled, arrived)) = first {
        write_reply(&mut stream, source, &handled.reply, s.write_timeout).await?;
        audit(&handled, source, "tcp", arrived);
        slot.set_busy(false);
    }
    loop {
        let frame = tokio::select! {
            f = reader.next(&stream, kdc.max_request, s.idle, end_of_life) => f,
            () = slot.evicted() => {
                reset(&stream);
                return Ok(());
            }
        };
        let (request, arrived) = match frame {
            Frame::Request(r, arrived) => (r, arrived),
            Frame::Closed(why) => {
                match why {
                    Closed::Lifetime => closed_by_bound(source, CloseReason::Lifetime),
                    Closed::FrameTimeout => closed_by_bound(source, CloseReason::FrameTimeout),
                    // Not a refusal: a client done with its connection.
                    Closed::Idle => count_closed(CloseReason::Idle),
                    Closed::Peer => {}
                }
                return Ok(());
            }
            Frame::Oversized => {
                let e = KdcError::new(Reason::Oversized)
                    .text(format!("request larger than {} bytes", kdc.max_request));
                let handled = Handled {
                    reply: kdc.error_reply(&e).into(),
                    outcome: Outcome {
                        exchange: "unknown",
                        code: e.code,
                        reason: e.reason,
                        ..Outcome::default()
                    },
                };
                write_reply(&mut stream, source, &handled.reply, s.write_timeout).await?;
                audit(&handled, source, "tcp", Instant::now());
                return Ok(());
            }
        };
        slot.set_busy(true);
        if backlog.stale(arrived) {
            if kdc.routes_to_pkinit(&request) {
                backlog.drop_unqueued(&request, source, "tcp");
            } else {
                count_drop("tcp", Dropped::Age);
            }
            reset(&stream);
            return Ok(());
        }
        let is_request = matches!(request.first(), Some(0x6a | 0x6c));
        let handled = if !is_request {
            // Junk costs the source a token, and the connection.
            count_closed(CloseReason::InvalidFrame);
            if kdc.rate_limit.check(source.ip()).is_err() {
                count_drop("tcp", Dropped::RateLimited);
                reset(&stream);
                return Ok(());
            }
            kdc.handle(&request, source).await
        } else if let Some(limited) = rate_limited(&kdc, &request, source) {
            if busy_and_silent(&limited, s.silent) {
                audit_drop(&limited, source, "tcp");
                reset(&stream);
                return Ok(());
            }
            limited
        } else if kdc.routes_to_pkinit(&request) {
            let (tx, rx) = oneshot::channel();
            if !backlog.push(request.into(), source, arrived, ReplyTo::Tcp(tx)) {
                reset(&stream);
                return Ok(());
            }
            let answer = tokio::select! {
                r = rx => r.ok().flatten(),
                () = peer_closed(&stream) => None,
            };
            match answer {
                Some(h) => h,
                // Dropped for age or room, or silent while busy: close.
                None => {
                    reset(&stream);
                    return Ok(());
                }
            }
        } else {
            kdc.handle(&request, source).await
        };
        write_reply(&mut stream, source, &handled.reply, s.write_timeout).await?;
        audit(&handled, source, "tcp", arrived);
        slot.set_busy(false);
        if !is_request {
            return Ok(());
        }
    }
}

/// Closes with a reset when the connection is dropped: the client fails
/// at once, and the KDC keeps no TIME_WAIT socket (in a storm, thousands a
/// second).
fn reset(stream: &impl std::os::fd::AsFd) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

async fn write_reply(
    stream: &mut TcpStream,
    source: SocketAddr,
    reply: &[u8],
    limit: Duration,
) -> anyhow::Result<()> {
    // Set here, not at accept: a connection dropped unanswered never needs it.
    stream.set_nodelay(true)?;
    let mut out = Vec::with_capacity(4 + reply.len());
    out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
    out.extend_from_slice(reply);
    match tokio::time::timeout(limit, stream.write_all(&out)).await {
        Ok(r) => Ok(r?),
        Err(_) => {
            closed_by_bound(source, CloseReason::WriteTimeout);
            anyhow::bail!("reply write timed out")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A connected pair: the client's stream and the accepted one.
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    /// Writes `bytes` and waits (bounded) until all of them can be peeked.
    fn arrived(c: &mut std::net::TcpStream, s: &std::net::TcpStream, bytes: &[u8]) {
        c.write_all(bytes).unwrap();
        let mut buf = vec![0u8; bytes.len()];
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.peek(&mut buf).unwrap() < bytes.len() {
            assert!(Instant::now() < deadline, "bytes never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn only_an_as_req_is_a_candidate_for_reset_unread_and_nothing_is_read() {
        let (_c, s) = pair();
        assert!(!opens_with_as_req(&s), "nothing there yet");
        let (mut c, s) = pair();
        arrived(&mut c, &s, &[0, 0, 1, 0]);
        assert!(!opens_with_as_req(&s), "prefix only");
        arrived(&mut c, &s, &[0x6a, 0x82]);
        assert!(opens_with_as_req(&s));
        let mut all = [0u8; 6];
        assert_eq!(s.peek(&mut all).unwrap(), 6, "peeked, not read");
        let (mut c, s) = pair();
        arrived(&mut c, &s, &[0, 0, 1, 0, 0x6c, 0x82]);
        assert!(!opens_with_as_req(&s), "a TGS-REQ");
    }
}
