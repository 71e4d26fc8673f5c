//! UDP and TCP serving. Each serving thread runs its own single-threaded
//! async runtime over the same sockets and does all of a request's work
//! itself, public-key operations included: no hand-off between threads, so
//! under load a thread goes from one ready request to the next without a
//! context switch (measured: 3.5 context switches per PKINIT request with a
//! separate public-key pool, ≈ 0 this way, ≈ 10 % less CPU per request;
//! docs/benchmarks.md). Admission to public-key work stays bounded by
//! [`crate::pool::CpuPool`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use krb::msg::consts::err;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::kdc::{Handled, Kdc, Outcome};
use crate::kerr::KdcError;

/// Binds every configured address; fails if any cannot be bound.
pub struct Listeners {
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: Vec<std::net::TcpListener>,
}

fn socket_for(addr: &SocketAddr, ty: Type, proto: Protocol) -> anyhow::Result<Socket> {
    let s = Socket::new(Domain::for_address(*addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        // Lets "[::]:88" and "0.0.0.0:88" coexist.
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&(*addr).into())
        .with_context(|| format!("binding {addr}"))?;
    Ok(s)
}

impl Listeners {
    pub fn bind(cfg: &Config) -> anyhow::Result<Listeners> {
        let mut udp = Vec::new();
        for a in &cfg.listen.udp {
            let s = socket_for(a, Type::DGRAM, Protocol::UDP)?;
            let _ = s.set_recv_buffer_size(4 << 20);
            udp.push(s.into());
        }
        let mut tcp = Vec::new();
        for a in &cfg.listen.tcp {
            let s = socket_for(a, Type::STREAM, Protocol::TCP)?;
            s.listen(1024)?;
            tcp.push(s.into());
        }
        Ok(Listeners { udp, tcp })
    }
}

/// The audit line and the metrics of one answered request.
fn audit(h: &Handled, source: SocketAddr, transport: &'static str, started: Instant) {
    let o = &h.outcome;
    let elapsed = started.elapsed();
    record_metrics(o, transport, elapsed);
    let mac = o.mac.map(certs::format_mac);
    tracing::info!(
        target: "audit",
        exchange = o.exchange,
        transport,
        source = %source,
        client = o.client.as_deref().unwrap_or("-"),
        server = o.server.as_deref().unwrap_or("-"),
        form = if o.form.is_empty() { "-" } else { o.form },
        mac = mac.as_deref().unwrap_or("-"),
        fqdn = o.fqdn.as_deref().unwrap_or("-"),
        outcome = if o.code == 0 { "ok" } else { "error" },
        error_code = o.code,
        reason = o.reason,
        lookaside = o.lookaside_hit,
        latency_us = elapsed.as_micros() as u64,
    );
}

/// The per-reply series of one label combination.
struct ReplyHandles {
    requests: metrics::Counter,
    replies: metrics::Counter,
    duration: metrics::Histogram,
}

/// (exchange, transport, form, code)
type ReplyKey = (&'static str, &'static str, &'static str, i32);

thread_local! {
    /// Series handles by label combination: registering a labelled series
    /// costs microseconds (key building and a registry look-up), a TGS
    /// request about twenty; each worker thread keeps the handles it used.
    static REPLY_HANDLES: std::cell::RefCell<std::collections::HashMap<ReplyKey, ReplyHandles>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// docs/metrics.md, "Kerberos requests". Label values are all static.
fn record_metrics(o: &Outcome, transport: &'static str, elapsed: Duration) {
    let exchange = o.exchange;
    let form = if o.form.is_empty() {
        if exchange == "pkinit" { "unknown" } else { "-" }
    } else {
        o.form
    };
    REPLY_HANDLES.with(|cell| {
        let mut map = cell.borrow_mut();
        let h = map
            .entry((exchange, transport, form, o.code))
            .or_insert_with(|| ReplyHandles {
                requests: metrics::counter!(
                    "pktc_requests_total", "exchange" => exchange, "transport" => transport
                ),
                replies: metrics::counter!(
                    "pktc_replies_total",
                    "exchange" => exchange,
                    "form" => form,
                    "outcome" => if o.code == 0 { "ok" } else { "error" },
                    "code" => crate::metrics::code_label(o.code),
                ),
                duration: metrics::histogram!(
                    "pktc_request_duration_seconds", "exchange" => exchange
                ),
            });
        h.requests.increment(1);
        h.replies.increment(1);
        h.duration.record(elapsed.as_secs_f64());
    });
    if o.code == 0 && !o.lookaside_hit {
        return;
    }
    if o.lookaside_hit {
        metrics::counter!("pktc_lookaside_hits_total").increment(1);
        return;
    }
    if o.code == err::KDC_ERR_SVC_UNAVAILABLE {
        let reason = match o.reason {
            "shed_pool_full" => Some("cpu_pool"),
            "device_lookup_busy" => Some("mps_in_flight"),
            _ => None,
        };
        if let Some(reason) = reason {
            metrics::counter!("pktc_shed_total", "reason" => reason).increment(1);
        }
    }
    if exchange == "pkinit" {
        metrics::counter!("pktc_pkinit_rejections_total", "reason" => o.reason).increment(1);
        let lookup = match o.reason {
            "device_fqdn_mismatch" => Some("mismatch_fqdn"),
            _ if o.code == err::KRB_AP_ERR_BADADDR => Some("mismatch_addr"),
            _ => None,
        };
        if let Some(outcome) = lookup {
            metrics::counter!("pktc_mps_lookups_total", "outcome" => outcome).increment(1);
        }
    }
}

/// AS and PKINIT requests (AS-REQ, application tag 10) over a token bucket
/// get KDC_ERR_SVC_UNAVAILABLE at once, before any decoding.
fn rate_limited(kdc: &Kdc, request: &[u8], source: SocketAddr) -> Option<Handled> {
    if request.first() != Some(&0x6a) {
        return None;
    }
    let limited = kdc.rate_limit.check(source.ip()).err()?;
    metrics::counter!("pktc_rate_limited_total", "scope" => limited.scope()).increment(1);
    let reason = match limited {
        crate::rate_limit::Limited::Source => "rate_limited_source",
        crate::rate_limit::Limited::Global => "rate_limited_global",
    };
    let e =
        KdcError::new(err::KDC_ERR_SVC_UNAVAILABLE, reason).text("too many requests; retry later");
    Some(Handled {
        reply: kdc.error_reply(&e).into(),
        outcome: Outcome {
            exchange: if kdc.routes_to_pkinit(request) {
                "pkinit"
            } else {
                "as"
            },
            code: e.code,
            reason,
            ..Outcome::default()
        },
    })
}

/// A reply too large for one UDP datagram of `max_udp_reply` bytes becomes
/// KRB_ERR_RESPONSE_TOO_BIG: RFC 4120 §7.2.1 clients then retry over TCP.
fn fit_udp(kdc: &Kdc, mut handled: Handled) -> Handled {
    if handled.reply.len() <= kdc.max_udp_reply {
        return handled;
    }
    metrics::counter!("pktc_udp_too_big_total").increment(1);
    let e = KdcError::new(err::KRB_ERR_RESPONSE_TOO_BIG, "udp_reply_too_big")
        .text("reply too large for UDP; use TCP");
    handled.reply = kdc.error_reply(&e).into();
    handled.outcome.code = e.code;
    handled.outcome.reason = e.reason;
    handled
}

/// The serving threads; [`Serving::stop`] ends them.
pub struct Serving {
    stop: tokio::sync::watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// `listen.threads`, 0 meaning one per core.
pub fn serving_threads(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

/// Starts the serving threads. Every thread reads from every socket (a
/// datagram or connection goes to whichever thread is free first).
pub fn start(kdc: Arc<Kdc>, listeners: Listeners, cfg: &Config) -> anyhow::Result<Serving> {
    let limit = Arc::new(Semaphore::new(cfg.listen.max_tcp_connections));
    let idle = Duration::from_secs(cfg.listen.tcp_idle_timeout_secs);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for i in 0..serving_threads(cfg.listen.threads) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a serving runtime")?;
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        {
            // Registers the sockets with this thread's reactor.
            let _in_rt = rt.enter();
            for s in &listeners.udp {
                udp.push(Arc::new(UdpSocket::from_std(s.try_clone()?)?));
            }
            for l in &listeners.tcp {
                tcp.push(TcpListener::from_std(l.try_clone()?)?);
            }
        }
        let (kdc, limit, mut stopped) = (kdc.clone(), limit.clone(), stopped.clone());
        let thread = std::thread::Builder::new()
            .name(format!("pktc-serve-{i}"))
            .spawn(move || {
                rt.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for sock in udp {
                        tasks.spawn(udp_loop(kdc.clone(), sock));
                    }
                    for l in tcp {
                        tasks.spawn(tcp_accept_loop(kdc.clone(), l, limit.clone(), idle));
                    }
                    let _ = stopped.wait_for(|stop| *stop).await;
                });
                // Dropping the runtime cancels the connections still open.
            })
            .context("starting a serving thread")?;
        threads.push(thread);
    }
    Ok(Serving { stop, threads })
}

impl Serving {
    /// Stops accepting and answering; returns when every thread has ended.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

async fn udp_loop(kdc: Arc<Kdc>, sock: Arc<UdpSocket>) {
    // One byte more than the largest datagram, so an oversized one is seen as such.
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, source) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "udp recv");
                continue;
            }
        };
        let started = Instant::now();
        if let Some(handled) = rate_limited(&kdc, &buf[..n], source) {
            let _ = sock.send_to(&handled.reply, source).await;
            audit(&handled, source, "udp", started);
            continue;
        }
        if kdc.routes_to_pkinit(&buf[..n]) {
            // Public-key work and the device lookup take a while: answer from
            // a task of its own so this loop keeps reading (and shedding).
            let (kdc, sock, request) = (kdc.clone(), sock.clone(), Arc::from(&buf[..n]));
            tokio::spawn(async move {
                let handled = fit_udp(&kdc, kdc.clone().handle_pkinit(request, source).await);
                if let Err(e) = sock.send_to(&handled.reply, source).await {
                    tracing::debug!(error = %e, %source, "udp send");
                }
                audit(&handled, source, "udp", started);
            });
            continue;
        }
        let handled = fit_udp(&kdc, kdc.handle(&buf[..n], source));
        if let Err(e) = sock.send_to(&handled.reply, source).await {
            tracing::debug!(error = %e, %source, "udp send");
        }
        audit(&handled, source, "udp", started);
    }
}

async fn tcp_accept_loop(kdc: Arc<Kdc>, l: TcpListener, limit: Arc<Semaphore>, idle: Duration) {
    loop {
        let (stream, source) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics::counter!("pktc_tcp_rejected_total").increment(1);
            tracing::warn!(%source, "tcp connection limit reached; closing");
            continue;
        };
        let kdc = kdc.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = OpenConnection::new();
            if let Err(e) = tcp_conn(kdc, stream, source, idle).await {
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

/// RFC 4120 §7.2.2: each message is preceded by a 4-byte big-endian length;
/// the high bit is reserved. Several requests may share a connection.
async fn tcp_conn(
    kdc: Arc<Kdc>,
    stream: TcpStream,
    source: SocketAddr,
    idle: Duration,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    // The length prefix and the request usually arrive together: one read
    // instead of two. A PKINIT request is 2.4–3.2 KB.
    let mut stream = tokio::io::BufReader::with_capacity(4096, stream);
    loop {
        let mut len = [0u8; 4];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let len = u32::from_be_bytes(len);
        if len & 0x8000_0000 != 0 || len as usize > kdc.max_request {
            let e = KdcError::new(err::KRB_ERR_FIELD_TOOLONG, "oversized")
                .text(format!("request larger than {} bytes", kdc.max_request));
            let started = Instant::now();
            let handled = Handled {
                reply: kdc.error_reply(&e).into(),
                outcome: Outcome {
                    exchange: "unknown",
                    code: e.code,
                    reason: e.reason,
                    ..Outcome::default()
                },
            };
            write_frame(&mut stream, &handled.reply).await?;
            audit(&handled, source, "tcp", started);
            return Ok(());
        }
        let mut request = vec![0u8; len as usize];
        tokio::time::timeout(idle, stream.read_exact(&mut request))
            .await
            .context("slow request")??;
        let started = Instant::now();
        let handled = if let Some(limited) = rate_limited(&kdc, &request, source) {
            limited
        } else if kdc.routes_to_pkinit(&request) {
            kdc.clone().handle_pkinit(request.into(), source).await
        } else {
            kdc.handle(&request, source)
        };
        write_frame(&mut stream, &handled.reply).await?;
        audit(&handled, source, "tcp", started);
    }
}

async fn write_frame(
    stream: &mut (impl tokio::io::AsyncWrite + Unpin),
    reply: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(4 + reply.len());
    out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
    out.extend_from_slice(reply);
    stream.write_all(&out).await
}
