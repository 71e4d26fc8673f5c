//! UDP and TCP serving. Each serving thread runs its own single-threaded
//! async runtime over the same sockets and does all of a request's work
//! itself, public-key operations included: no hand-off between threads, so
//! under load a thread goes from one ready request to the next without a
//! context switch (measured: 3.5 context switches per PKINIT request with a
//! separate public-key pool, ≈ 0 this way, ≈ 10 % less CPU per request;
//! docs/benchmarks.md). Admission to public-key work stays bounded by
//! [`kdc::pool::AdmissionGate`]; PKINIT requests wait for a thread newest
//! first and for a bounded time ([`crate::overload`]). TCP is in
//! [`crate::tcp`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::config::Config;
use crate::overload::{Backlog, Dropped, Job, ReplyTo, count_drop};
use kdc::kdc::{Handled, Kdc, Outcome};
use kdc::kerr::KdcError;
use kdc::reason::Reason;

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
            // Small: what waits in the kernel waits unseen (docs/operations.md).
            let _ = s.set_recv_buffer_size(cfg.listen.udp_recv_buffer_bytes);
            crate::recv_stamp::enable(&s).context("SO_TIMESTAMPNS on a UDP socket")?;
            udp.push(s.into());
        }
        let mut tcp = Vec::new();
        for a in &cfg.listen.tcp {
            let s = socket_for(a, Type::STREAM, Protocol::TCP)?;
            // Accepted connections inherit the timestamps.
            crate::recv_stamp::enable(&s).context("SO_TIMESTAMPNS on a TCP socket")?;
            s.listen(cfg.listen.tcp_backlog.min(i32::MAX as u32) as i32)?;
            if cfg.listen.tcp_defer_accept_secs > 0 {
                defer_accept(&s, cfg.listen.tcp_defer_accept_secs)
                    .context("TCP_DEFER_ACCEPT on a TCP socket")?;
            }
            tcp.push(s.into());
        }
        Ok(Listeners { udp, tcp })
    }
}

/// TCP_DEFER_ACCEPT on a listening socket: the kernel completes the
/// handshake but queues the connection for accept only when data comes (or
/// after `secs`). Every Kerberos client sends its request at once, so an
/// accepted connection has its first request to read, and a connection
/// that sent nothing takes no slot (docs/benchmarks.md, "TCP_DEFER_ACCEPT").
/// Neither socket2 nor nix wraps this option on Linux: the one setsockopt
/// is done here.
fn defer_accept(s: &Socket, secs: u32) -> std::io::Result<()> {
    #![allow(unsafe_code)]
    use std::os::fd::AsRawFd;
    let secs = secs.min(i32::MAX as u32) as i32;
    // SAFETY: the option value is a live i32 on our stack and its size is
    // passed with it; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The audit line and the metrics of one answered request.
pub(crate) fn audit(h: &Handled, source: SocketAddr, transport: &'static str, started: Instant) {
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
        reason = o.reason.label(),
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
    if let Some(reason) = o.reason.shed_label() {
        metrics::counter!("pktc_shed_total", "reason" => reason).increment(1);
    }
    if exchange == "pkinit" {
        metrics::counter!("pktc_pkinit_rejections_total", "reason" => o.reason.label())
            .increment(1);
        if let Some(outcome) = o.reason.mps_mismatch_label() {
            metrics::counter!("pktc_mps_lookups_total", "outcome" => outcome).increment(1);
        }
    }
}

/// Whether `h` is a busy refusal (KDC_ERR_SVC_UNAVAILABLE) to a PKINIT
/// device that `[overload] pkinit_busy_reply = "silent"` leaves unanswered:
/// the KRB-ERROR would send a PacketCable device back to DHCP
/// (PKT-SP-EUE-PROV Table 5), where silence lets it retry on its timer.
pub(crate) fn busy_and_silent(h: &Handled, silent: bool) -> bool {
    silent && h.outcome.exchange == "pkinit" && h.outcome.reason.is_busy()
}

/// The audit line and the count of a request left unanswered on purpose.
pub(crate) fn audit_drop(h: &Handled, source: SocketAddr, transport: &'static str) {
    count_drop(transport, Dropped::BusySilent);
    tracing::info!(
        target: "audit",
        exchange = h.outcome.exchange,
        transport,
        source = %source,
        outcome = "dropped",
        error_code = h.outcome.code,
        reason = h.outcome.reason.label(),
    );
}

/// AS and PKINIT requests (AS-REQ, application tag 10) over a token bucket
/// get KDC_ERR_SVC_UNAVAILABLE at once, before any decoding.
pub(crate) fn rate_limited(kdc: &Kdc, request: &[u8], source: SocketAddr) -> Option<Handled> {
    if request.first() != Some(&0x6a) {
        return None;
    }
    let limited = kdc.rate_limit.check(source.ip()).err()?;
    metrics::counter!("pktc_rate_limited_total", "scope" => limited.scope()).increment(1);
    let reason = match limited {
        kdc::rate_limit::Limited::Source => Reason::RateLimitedSource,
        kdc::rate_limit::Limited::Global => Reason::RateLimitedGlobal,
    };
    let e = KdcError::new(reason).text("too many requests; retry later");
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
    let e = KdcError::new(Reason::UdpReplyTooBig).text("reply too large for UDP; use TCP");
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

pub use kdc::pool::serving_threads;

/// Starts the serving threads. Every thread reads from every socket (a
/// datagram or connection goes to whichever thread is free first) and
/// takes PKINIT requests from the shared backlog.
pub fn start(kdc: Arc<Kdc>, listeners: Listeners, cfg: &Config) -> anyhow::Result<Serving> {
    let slots = certboot::conn_limits::Slots::new(
        cfg.listen.max_tcp_connections,
        cfg.listen.max_tcp_connections_per_source,
    );
    let budget = (cfg.overload.max_queue_delay_ms > 0)
        .then(|| Duration::from_millis(cfg.overload.max_queue_delay_ms));
    let backlog = Arc::new(
        Backlog::new(budget, cfg.overload.max_waiting)
            .with_tcp_reset_unread_at(cfg.overload.tcp_reset_unread_at),
    );
    let silent = cfg.overload.silent();
    let tcp_settings = crate::tcp::TcpSettings {
        idle: Duration::from_secs(cfg.listen.tcp_idle_timeout_secs),
        lifetime: Duration::from_secs(cfg.listen.tcp_max_connection_secs),
        write_timeout: Duration::from_secs(cfg.listen.tcp_write_timeout_secs),
        silent,
    };
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
                // Accepted without the reactor: crate::tcp registers a
                // connection only when it needs to.
                tcp.push(readiness_of(l.try_clone()?)?);
            }
        }
        let udp = Arc::new(udp);
        let (kdc, slots, backlog, mut stopped) =
            (kdc.clone(), slots.clone(), backlog.clone(), stopped.clone());
        let thread = std::thread::Builder::new()
            .name(format!("pktc-serve-{i}"))
            .spawn(move || {
                rt.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for (index, sock) in udp.iter().enumerate() {
                        let udp_in = UdpIn {
                            sock: sock.clone(),
                            index,
                            silent,
                        };
                        tasks.spawn(udp_loop(kdc.clone(), udp_in, backlog.clone()));
                    }
                    for l in tcp {
                        tasks.spawn(crate::tcp::accept_loop(
                            kdc.clone(),
                            l,
                            slots.clone(),
                            backlog.clone(),
                            tcp_settings,
                        ));
                    }
                    let (k, u) = (kdc.clone(), udp.clone());
                    tasks.spawn(crate::overload::dispatch(backlog.clone(), move |job| {
                        serve_job(k.clone(), job, u.clone(), silent)
                    }));
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

/// A listening socket registered for readiness with this thread's reactor.
/// `AsyncFd::new` is deprecated because a `T` that does not own its file
/// descriptor could close it under the reactor (tokio PR 8587); a
/// `std::net::TcpListener` owns its descriptor for its whole life, which
/// is the contract the unsafe `AsyncFd::register` asks for (and the
/// workspace forbids `unsafe`).
#[allow(deprecated)]
fn readiness_of(
    l: std::net::TcpListener,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::net::TcpListener>> {
    tokio::io::unix::AsyncFd::new(l)
}

/// One UDP socket as a serving thread sees it.
struct UdpIn {
    sock: Arc<UdpSocket>,
    /// Its position in the thread's socket list (where replies go out).
    index: usize,
    silent: bool,
}

async fn udp_loop(kdc: Arc<Kdc>, u: UdpIn, backlog: Arc<Backlog>) {
    // One byte more than the largest datagram, so an oversized one is seen as such.
    let mut buf = vec![0u8; 65536];
    let sock = &u.sock;
    loop {
        let got = sock
            .async_io(Interest::READABLE, || {
                crate::recv_stamp::recv(&**sock, &mut buf)
            })
            .await;
        let (n, source, age) = match got {
            Ok(r) => match r.source {
                Some(source) => (r.len, source, r.age),
                None => continue,
            },
            Err(e) => {
                tracing::debug!(error = %e, "udp recv");
                continue;
            }
        };
        let arrived = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let request = &buf[..n];
        if backlog.stale(arrived) {
            if kdc.routes_to_pkinit(request) {
                backlog.drop_unqueued(request, source, "udp");
            } else {
                count_drop("udp", Dropped::Age);
            }
            continue;
        }
        if let Some(handled) = rate_limited(&kdc, request, source) {
            if busy_and_silent(&handled, u.silent) {
                audit_drop(&handled, source, "udp");
            } else {
                let _ = sock.send_to(&handled.reply, source).await;
                audit(&handled, source, "udp", arrived);
            }
            continue;
        }
        if !matches!(request.first(), Some(0x6a | 0x6c))
            && kdc.rate_limit.check(source.ip()).is_err()
        {
            // Junk is charged to the source's bucket like a request.
            count_drop("udp", Dropped::RateLimited);
            continue;
        }
        if kdc.routes_to_pkinit(request) {
            // Public-key work waits its turn, newest first (crate::overload).
            backlog.push(Arc::from(request), source, arrived, ReplyTo::Udp(u.index));
            continue;
        }
        let handled = fit_udp(&kdc, kdc.handle(request, source).await);
        if let Err(e) = sock.send_to(&handled.reply, source).await {
            tracing::debug!(error = %e, %source, "udp send");
        }
        audit(&handled, source, "udp", arrived);
    }
}

/// Answers one PKINIT request from the backlog (on the dispatching thread).
async fn serve_job(kdc: Arc<Kdc>, mut job: Job, udp: Arc<Vec<Arc<UdpSocket>>>, silent: bool) {
    let handled = kdc.handle(&job.request, job.source).await;
    job.finished();
    let Job {
        source,
        arrived,
        reply,
        ..
    } = job;
    let transport = reply.transport();
    if busy_and_silent(&handled, silent) {
        // Over TCP, dropping the sender closes the connection.
        audit_drop(&handled, source, transport);
        return;
    }
    match reply {
        ReplyTo::Udp(index) => {
            let handled = fit_udp(&kdc, handled);
            if let Some(sock) = udp.get(index)
                && let Err(e) = sock.send_to(&handled.reply, source).await
            {
                tracing::debug!(error = %e, %source, "udp send");
            }
            audit(&handled, source, "udp", arrived);
        }
        // The connection writes it (and audits).
        ReplyTo::Tcp(tx) => {
            let _ = tx.send(Some(handled));
        }
        ReplyTo::Parked(parked) => parked.resume(handled, arrived),
    }
}
