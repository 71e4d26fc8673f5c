//! The exchanges of `eue-sim storm`: each scheduled request is one
//! device's exchange from its own loopback source address, started at its
//! scheduled time whatever happened to the others (open loop), and retried
//! on the device's ladder of timeouts with the same bytes: over UDP on the
//! same socket (a late reply to an earlier try still counts), over TCP on
//! a new connection for each try. At the end of the window every client
//! leaves: exchanges still waiting are "unanswered".

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout_at;

use crate::pk::{self, TAG_AS_REP, TAG_KRB_ERROR, Transport};

/// A connect that took this long had its SYN retransmitted by the kernel
/// (the first SYN retry is after 1 s): the server's accept queue was full.
const SLOW_CONNECT: Duration = Duration::from_millis(900);

/// Largest reply read over TCP (a PKINIT reply with its chain is ~5 KB).
const MAX_TCP_REPLY: usize = 1 << 16;

/// What became of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// An AS-REP (checked by its tag).
    AsRep,
    /// A KRB-ERROR with this code.
    KrbError(i32),
    /// Some other reply.
    Other,
    /// Every try of the ladder timed out.
    GaveUp,
    /// Still waiting when the clients left (the end of the window).
    Unanswered,
    /// Never sent: the window ended before its turn, or a local error
    /// (no socket: raise `ulimit -n`).
    NotSent,
}

/// One exchange, times relative to the start of the window.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    pub end: End,
    /// First transmission minus scheduled start (the generator's lag).
    pub lag: Option<Duration>,
    /// From the scheduled start to the answer.
    pub latency: Option<Duration>,
    pub sends: u32,
    pub try_timeouts: u32,
    /// TCP: connections refused or reset, or closed without an answer.
    pub failed_connections: u32,
    /// TCP: connects slower than [`SLOW_CONNECT`] (SYN retried).
    pub slow_connects: u32,
    pub local_errors: u32,
}

impl Record {
    fn new() -> Record {
        Record {
            end: End::NotSent,
            lag: None,
            latency: None,
            sends: 0,
            try_timeouts: 0,
            failed_connections: 0,
            slow_connects: 0,
            local_errors: 0,
        }
    }
}

/// What the engine needs; `schedule[i]` (seconds from the start of the
/// window) and `requests[i]` belong together.
pub struct Plan {
    pub kdc: SocketAddr,
    pub transport: Transport,
    pub ladder: Vec<Duration>,
    pub schedule: Vec<f64>,
    pub requests: Vec<Vec<u8>>,
    pub window: Duration,
    pub threads: usize,
    /// Exchange `i` comes from [`source_address`]`(first_source + i)`.
    pub first_source: usize,
}

/// The source address of exchange `i`: 127.0.0.0/8 from 127.1.1.1 on,
/// skipping .0 and .255 in every position, so 16 million are distinct.
pub fn source_address(i: usize) -> Ipv4Addr {
    let i = i as u32;
    let (a, b, c) = (i % 254, (i / 254) % 254, (i / (254 * 254)) % 254);
    Ipv4Addr::new(127, 1 + c as u8, 1 + b as u8, 1 + a as u8)
}

/// Runs the plan; returns one record per scheduled exchange and the
/// instant the window started.
pub fn run(plan: Plan) -> anyhow::Result<(Vec<Record>, Instant)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads.max(1))
        .enable_all()
        .build()
        .context("starting the storm runtime")?;
    let plan = Arc::new(plan);
    // A little head room so the first arrivals are not late.
    let start = Instant::now() + Duration::from_millis(50);
    let records = rt.block_on(async {
        let mut schedulers = Vec::new();
        let threads = plan.threads.max(1);
        for w in 0..threads {
            let plan = plan.clone();
            schedulers.push(tokio::spawn(async move {
                let end = start + plan.window;
                let mut handles = Vec::new();
                for i in (w..plan.schedule.len()).step_by(threads) {
                    let at = start + Duration::from_secs_f64(plan.schedule[i]);
                    if at >= end {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    let plan = plan.clone();
                    handles.push((
                        i,
                        tokio::spawn(async move { exchange(&plan, i, at, end).await }),
                    ));
                }
                let mut out = Vec::with_capacity(handles.len());
                for (i, h) in handles {
                    out.push((i, h.await.unwrap_or_else(|_| Record::new())));
                }
                out
            }));
        }
        let mut records = vec![Record::new(); plan.schedule.len()];
        for s in schedulers {
            if let Ok(done) = s.await {
                for (i, r) in done {
                    records[i] = r;
                }
            }
        }
        records
    });
    // Sockets of exchanges cut off at the end close with the runtime.
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok((records, start))
}

fn classify(reply: &[u8]) -> End {
    match reply.first() {
        Some(&TAG_AS_REP) => End::AsRep,
        Some(&TAG_KRB_ERROR) => match pk::as_krb_error(reply) {
            Some(pk::Failure::KrbError { code, .. }) => End::KrbError(code),
            _ => End::Other,
        },
        _ => End::Other,
    }
}

async fn exchange(plan: &Plan, i: usize, at: Instant, end: Instant) -> Record {
    let mut rec = Record::new();
    let src = source_address(plan.first_source + i);
    let req = &plan.requests[i];
    match plan.transport {
        Transport::Udp => udp_exchange(plan, src, req, &mut rec, at, end).await,
        Transport::Tcp => tcp_exchange(plan, src, req, &mut rec, at, end).await,
    }
    rec
}

async fn udp_exchange(
    plan: &Plan,
    src: Ipv4Addr,
    req: &[u8],
    rec: &mut Record,
    at: Instant,
    end: Instant,
) {
    let sock = match tokio::net::UdpSocket::bind((src, 0)).await {
        Ok(s) => s,
        Err(_) => {
            rec.local_errors += 1;
            return;
        }
    };
    // Replies are classified by their first bytes; a KRB-ERROR fits whole.
    let mut buf = [0u8; 2048];
    for wait in &plan.ladder {
        let now = Instant::now();
        if now >= end {
            rec.end = End::Unanswered;
            return;
        }
        if sock.send_to(req, plan.kdc).await.is_err() {
            rec.local_errors += 1;
        }
        rec.sends += 1;
        rec.lag.get_or_insert(now.saturating_duration_since(at));
        let deadline = (now + *wait).min(end);
        loop {
            match timeout_at(deadline.into(), sock.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    rec.end = classify(&buf[..n]);
                    rec.latency = Some(at.elapsed());
                    return;
                }
                // ICMP errors (port unreachable) come back as recv errors:
                // the device keeps waiting for its timer.
                Ok(Err(_)) => tokio::time::sleep_until(deadline.into()).await,
                Err(_) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        if deadline >= end {
            rec.end = End::Unanswered;
            return;
        }
        rec.try_timeouts += 1;
    }
    rec.end = End::GaveUp;
}

/// One TCP try: connect from `src`, send the framed request, read the reply.
async fn tcp_try(plan: &Plan, src: Ipv4Addr, req: &[u8], rec: &mut Record) -> Option<Vec<u8>> {
    let sock = match tokio::net::TcpSocket::new_v4().and_then(|s| {
        s.bind((src, 0).into())?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(_) => {
            rec.local_errors += 1;
            return None;
        }
    };
    let t0 = Instant::now();
    let connected = sock.connect(plan.kdc).await;
    if t0.elapsed() >= SLOW_CONNECT {
        rec.slow_connects += 1;
    }
    let mut stream = match connected {
        Ok(s) => s,
        Err(_) => {
            rec.failed_connections += 1;
            return None;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut framed = Vec::with_capacity(4 + req.len());
    framed.extend_from_slice(&(req.len() as u32).to_be_bytes());
    framed.extend_from_slice(req);
    rec.sends += 1;
    let mut len = [0u8; 4];
    let reply = async {
        stream.write_all(&framed).await?;
        stream.read_exact(&mut len).await?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_TCP_REPLY {
            return Err(std::io::Error::other("reply too long"));
        }
        let mut reply = vec![0u8; n];
        stream.read_exact(&mut reply).await?;
        Ok(reply)
    }
    .await;
    match reply {
        Ok(r) => Some(r),
        Err(_) => {
            rec.failed_connections += 1;
            None
        }
    }
}

async fn tcp_exchange(
    plan: &Plan,
    src: Ipv4Addr,
    req: &[u8],
    rec: &mut Record,
    at: Instant,
    end: Instant,
) {
    for wait in &plan.ladder {
        let now = Instant::now();
        if now >= end {
            rec.end = End::Unanswered;
            return;
        }
        rec.lag.get_or_insert(now.saturating_duration_since(at));
        let deadline = (now + *wait).min(end);
        match timeout_at(deadline.into(), tcp_try(plan, src, req, rec)).await {
            Ok(Some(reply)) => {
                rec.end = classify(&reply);
                rec.latency = Some(at.elapsed());
                return;
            }
            // Refused, reset or closed: the device waits for its timer.
            Ok(None) => tokio::time::sleep_until(deadline.into()).await,
            Err(_) => {}
        }
        if deadline >= end {
            rec.end = End::Unanswered;
            return;
        }
        rec.try_timeouts += 1;
    }
    rec.end = End::GaveUp;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_distinct_loopback_hosts() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000 {
            let a = source_address(i);
            assert!(a.is_loopback());
            assert!(a.octets()[1..].iter().all(|&o| o != 0 && o != 255), "{a}");
            assert!(seen.insert(a), "{a} twice");
        }
    }
}
