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
//!   client that closes its connection withdraws its request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certboot::conn_limits::{Evicted, Slot, Slots};
use krb::msg::consts::err;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::overload::{Backlog, ReplyTo, count_drop};
use crate::server::{audit, audit_drop, busy_and_silent, rate_limited};
use kdc::kdc::{Handled, Kdc, Outcome};
use kdc::kerr::KdcError;

/// The TCP bounds of `[listen]`.
#[derive(Debug, Clone, Copy)]
pub struct TcpSettings {
    pub idle: Duration,
    pub lifetime: Duration,
    pub write_timeout: Duration,
    pub silent: bool,
}

fn count_closed(reason: &'static str) {
    metrics::counter!("pktc_tcp_closed_total", "reason" => reason).increment(1);
}

pub async fn accept_loop(
    kdc: Arc<Kdc>,
    l: TcpListener,
    slots: Arc<Slots>,
    backlog: Arc<Backlog>,
    settings: TcpSettings,
) {
    loop {
        let (stream, source) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match slots.admit(source.ip()) {
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
                metrics::counter!("pktc_tcp_rejected_total").increment(1);
                tracing::debug!(%source, ?refused, "tcp connections all busy; resetting");
                // A reset, not a FIN: the client fails now instead of waiting.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                continue;
            }
        };
        let (kdc, backlog) = (kdc.clone(), backlog.clone());
        tokio::spawn(async move {
            let _open = OpenConnection::new();
            if let Err(e) = connection(kdc, stream, source, slot, backlog, settings).await {
                tracing::debug!(%source, error = %e, "tcp connection ended");
            }
        });
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
    /// A whole request and how long ago its last byte reached the host.
    Request(Vec<u8>, Duration),
    /// The length prefix is over the limit (or has the reserved bit).
    Oversized,
    /// End of stream, an error, or a deadline passed (true: the lifetime).
    Closed(bool),
}

/// Reads length-prefixed frames with the kernel's receive timestamps.
struct FrameReader {
    buf: Vec<u8>,
    filled: usize,
}

impl FrameReader {
    fn new() -> FrameReader {
        // The length prefix and a PKINIT request (2.4–3.2 KB) usually
        // arrive together: one read.
        FrameReader {
            buf: vec![0u8; 4096],
            filled: 0,
        }
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
        let mut age = Duration::ZERO;
        loop {
            if self.filled >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if len & 0x8000_0000 != 0 || len as usize > max {
                    return Frame::Oversized;
                }
                let total = 4 + len as usize;
                if self.filled >= total {
                    let request = self.buf[4..total].to_vec();
                    self.buf.copy_within(total..self.filled, 0);
                    self.filled -= total;
                    return Frame::Request(request, age);
                }
                if self.buf.len() < total {
                    self.buf.resize(total, 0);
                }
            }
            let buf = &mut self.buf[self.filled..];
            let read = stream.async_io(Interest::READABLE, || crate::recv_stamp::recv(stream, buf));
            match tokio::time::timeout_at(deadline.into(), read).await {
                Ok(Ok(r)) if r.len > 0 => {
                    self.filled += r.len;
                    age = r.age;
                    if !started {
                        // From the first byte the whole frame has `idle`:
                        // dribbling bytes does not extend it.
                        started = true;
                        deadline = (Instant::now() + idle).min(end_of_life);
                    }
                }
                Err(_) => return Frame::Closed(Instant::now() >= end_of_life),
                Ok(_) => return Frame::Closed(false),
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
    kdc: Arc<Kdc>,
    mut stream: TcpStream,
    source: SocketAddr,
    slot: Slot,
    backlog: Arc<Backlog>,
    s: TcpSettings,
) -> anyhow::Result<()> {
    let end_of_life = Instant::now() + s.lifetime;
    let mut reader = FrameReader::new();
    loop {
        let frame = tokio::select! {
            f = reader.next(&stream, kdc.max_request, s.idle, end_of_life) => f,
            () = slot.evicted() => {
                reset(&stream);
                return Ok(());
            }
        };
        let (request, age) = match frame {
            Frame::Request(r, age) => (r, age),
            Frame::Closed(lifetime) => {
                if lifetime {
                    count_closed("lifetime");
                }
                return Ok(());
            }
            Frame::Oversized => {
                let e = KdcError::new(err::KRB_ERR_FIELD_TOOLONG, "oversized")
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
                write_reply(&mut stream, &handled.reply, s.write_timeout).await?;
                audit(&handled, source, "tcp", Instant::now());
                return Ok(());
            }
        };
        slot.set_busy(true);
        let arrived = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        if backlog.stale(arrived) {
            if kdc.routes_to_pkinit(&request) {
                backlog.drop_unqueued(&request, source, "tcp");
            } else {
                count_drop("tcp", "age");
            }
            reset(&stream);
            return Ok(());
        }
        let is_request = matches!(request.first(), Some(0x6a | 0x6c));
        let handled = if !is_request {
            // Junk costs the source a token, and the connection.
            count_closed("invalid_frame");
            if kdc.rate_limit.check(source.ip()).is_err() {
                count_drop("tcp", "rate_limited");
                reset(&stream);
                return Ok(());
            }
            kdc.handle(&request, source)
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
            kdc.handle(&request, source)
        };
        write_reply(&mut stream, &handled.reply, s.write_timeout).await?;
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
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

async fn write_reply(stream: &mut TcpStream, reply: &[u8], limit: Duration) -> anyhow::Result<()> {
    // Set here, not at accept: a connection dropped unanswered never needs it.
    stream.set_nodelay(true)?;
    let mut out = Vec::with_capacity(4 + reply.len());
    out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
    out.extend_from_slice(reply);
    match tokio::time::timeout(limit, stream.write_all(&out)).await {
        Ok(r) => Ok(r?),
        Err(_) => {
            count_closed("write_timeout");
            anyhow::bail!("reply write timed out")
        }
    }
}
