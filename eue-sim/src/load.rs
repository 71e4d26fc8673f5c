//! `eue-sim tgs-load`: a bounded TGS load generator for benchmarking the KDC.
//!
//! Gets a TGT for the dev realm's password principal with one AS exchange
//! (PA-ENC-TIMESTAMP sent directly, aes256-cts-hmac-sha1-96 first so the
//! TGT session key is etype 18 as with MIT's defaults), then keeps
//! `concurrency` fresh TGS-REQs in flight over loopback UDP, each with a new
//! authenticator (ctime/cusec, random confounder) and a new nonce, so that
//! neither the KDC's lookaside cache nor its replay cache short-circuits it.
//!
//! The run is bounded by time (`--seconds`, plus one request timeout for
//! the replies still in flight) and by count (`--max-requests`, warm-up
//! included). Only loopback KDC addresses are accepted.
//!
//! With `--kdc-pid`, the KDC's utime+stime from `/proc/PID/stat` is read
//! before and after the measured phase (after the warm-up) and divided by
//! the number of successful replies.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use dev_realm_manifest::Manifest;
use krb::client::{self, Credentials, RequestBody, TgsAuth};
use krb::crypto::{EncType, Key};
use krb::msg::{PrincipalName, time};
use krb::principal::Principal;
use serde_json::json;
use tokio::net::UdpSocket;

use crate::cpu::{self, CpuUse};

/// Client etype preference, as MIT 1.20's default: aes256-sha1 first.
const ETYPES: [EncType; 5] = [
    EncType::Aes256CtsHmacSha196,
    EncType::Aes128CtsHmacSha196,
    EncType::Aes256CtsHmacSha384192,
    EncType::Aes128CtsHmacSha256128,
    EncType::Des3CbcSha1Kd,
];

/// DER tags of the replies we expect.
const TAG_TGS_REP: u8 = 0x6d;
const TAG_KRB_ERROR: u8 = 0x7e;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Udp,
}

#[derive(Debug, Args)]
pub struct TgsLoadArgs {
    /// Dev realm directory (with dev-realm.json), as made by `pktc-kdc dev`.
    #[arg(long)]
    pub realm_dir: PathBuf,
    /// Length of the measured phase, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Warm-up before the measured phase, seconds (not counted).
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    /// Upper bound on TGS requests sent, warm-up included.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_requests: u64,
    /// Requests kept in flight (one UDP socket each).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Client worker threads building requests and reading replies.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Per-request reply timeout, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Fully open (decrypt, check nonce) every Nth TGS-REP; the others are
    /// checked by message tag only. 1 opens every reply.
    #[arg(long, default_value_t = 100)]
    pub verify_every: u64,
    /// PID of the KDC process, to measure its CPU time per request.
    #[arg(long)]
    pub kdc_pid: Option<u32>,
    /// KDC address instead of the manifest's (must be loopback).
    #[arg(long)]
    pub kdc: Option<SocketAddr>,
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

struct Shared {
    tgt: Credentials,
    service: Principal,
    sname: PrincipalName,
    kdc: SocketAddr,
    issued: AtomicU64,
    max_requests: u64,
    nonce: AtomicU32,
    timeout: Duration,
    verify_every: u64,
}

#[derive(Default)]
struct Stats {
    sent: u64,
    ok: u64,
    verified: u64,
    verify_failures: u64,
    krb_errors: BTreeMap<i32, u64>,
    other_replies: u64,
    timeouts: u64,
    io_errors: u64,
    latencies_us: Vec<u32>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.verified += o.verified;
        self.verify_failures += o.verify_failures;
        for (k, v) in o.krb_errors {
            *self.krb_errors.entry(k).or_default() += v;
        }
        self.other_replies += o.other_replies;
        self.timeouts += o.timeouts;
        self.io_errors += o.io_errors;
        self.latencies_us.extend(o.latencies_us);
    }
}

pub fn run(args: &TgsLoadArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.threads == 0 || args.verify_every == 0 {
        bail!("--concurrency, --threads and --verify-every must be at least 1");
    }
    let seconds_ok = args.seconds > 0.0 && args.seconds <= 3600.0;
    if !seconds_ok || !(0.0..=600.0).contains(&args.warmup_seconds) {
        bail!("--seconds must be in (0, 3600] and --warmup-seconds in [0, 600]");
    }
    let manifest = Manifest::load(&args.realm_dir)?;
    let kdc_addr = match args.kdc {
        Some(a) => a,
        None => manifest
            .kdc
            .parse()
            .with_context(|| format!("manifest kdc address {:?}", manifest.kdc))?,
    };
    if !kdc_addr.ip().is_loopback() {
        bail!("refusing to load a non-loopback KDC address {kdc_addr}");
    }
    let kdc_stat = cpu::kdc_stat_path(args.kdc_pid)?;

    let tgt = get_tgt(&manifest, kdc_addr).context("AS exchange for the TGT")?;
    let service = Principal::parse(&manifest.service_principal, None)?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos()
        ^ std::process::id().rotate_left(16);
    let shared = Arc::new(Shared {
        tgt,
        sname: service.to_rasn()?.0,
        service,
        kdc: kdc_addr,
        issued: AtomicU64::new(0),
        max_requests: args.max_requests,
        nonce: AtomicU32::new(seed & 0x7fff_ffff),
        timeout: Duration::from_millis(args.timeout_ms),
        verify_every: args.verify_every,
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    if args.warmup_seconds > 0.0 {
        let warm = rt.block_on(phase(
            shared.clone(),
            args.concurrency,
            Duration::from_secs_f64(args.warmup_seconds),
        ))?;
        if warm.ok == 0 {
            bail!(
                "no successful TGS reply during warm-up (errors {:?}, timeouts {}, io errors {})",
                warm.krb_errors,
                warm.timeouts,
                warm.io_errors
            );
        }
    }

    let sampler = cpu::Sampler::start(kdc_stat.as_deref())?;
    let mut stats = rt.block_on(phase(
        shared.clone(),
        args.concurrency,
        Duration::from_secs_f64(args.seconds),
    ))?;
    let cpu = sampler.finish()?;
    drop(rt);

    stats.latencies_us.sort_unstable();
    let report = Report::new(args, cpu);
    if args.json {
        println!("{}", serde_json::to_string(&report.json(&stats))?);
    } else {
        print!("{}", report.human(&stats));
    }
    if stats.ok == 0 {
        bail!("no successful TGS reply in the measured phase");
    }
    Ok(())
}

/// One AS exchange over UDP with PA-ENC-TIMESTAMP under the aes256-sha1 key.
fn get_tgt(m: &Manifest, kdc: SocketAddr) -> anyhow::Result<Credentials> {
    let client_p = Principal::parse(&m.password_principal.name, None)?;
    let key = Key::from_password(
        EncType::Aes256CtsHmacSha196,
        m.password_principal.password.as_bytes(),
        &client_p.salt(),
        None,
    )?;
    let krbtgt = Principal::krbtgt(&m.realm);
    let sock = StdUdpSocket::bind(local_any(&kdc))?;
    sock.connect(kdc)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = vec![0u8; 65536];
    for attempt in 0..3 {
        let (now, usec) = time::now();
        let nonce = (now as u32 ^ usec.rotate_left(11) ^ attempt) & 0x7fff_ffff;
        let body = RequestBody {
            client: Some(&client_p),
            server: &krbtgt,
            etypes: &ETYPES,
            nonce,
            till: now + 24 * 3600,
            rtime: None,
            options: client::default_options(),
        };
        let req = client::as_req(&body, vec![client::enc_timestamp(&key, now, usec)?])?;
        sock.send(&req)?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                let creds = client::open_as_rep(&buf[..n], &key, nonce)?;
                if creds.session_key.etype() != EncType::Aes256CtsHmacSha196 {
                    eprintln!(
                        "eue-sim: note: TGT session key is {}, not aes256-cts-hmac-sha1-96",
                        creds.session_key.etype().name()
                    );
                }
                return Ok(creds);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e).context(format!("receiving the AS-REP from {kdc}")),
        }
    }
    bail!("no AS-REP from {kdc} after 3 attempts")
}

fn local_any(peer: &SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
    }
}

async fn phase(shared: Arc<Shared>, concurrency: usize, len: Duration) -> anyhow::Result<Stats> {
    let deadline = tokio::time::Instant::now() + len;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        tasks.push(tokio::spawn(worker(shared.clone(), deadline)));
    }
    let mut total = Stats::default();
    for t in tasks {
        total.merge(t.await.context("load task panicked")??);
    }
    Ok(total)
}

async fn new_socket(kdc: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(local_any(&kdc)).await?;
    s.connect(kdc).await?;
    Ok(s)
}

async fn worker(shared: Arc<Shared>, deadline: tokio::time::Instant) -> anyhow::Result<Stats> {
    let mut st = Stats::default();
    let mut sock = new_socket(shared.kdc).await?;
    let mut buf = vec![0u8; 65536];
    let mut n_replies: u64 = 0;
    while tokio::time::Instant::now() < deadline {
        if shared.issued.fetch_add(1, Ordering::Relaxed) >= shared.max_requests {
            break;
        }
        let nonce = shared.nonce.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff;
        let (now, usec) = time::now();
        let body = RequestBody {
            client: None,
            server: &shared.service,
            etypes: &ETYPES,
            nonce,
            till: now + 8 * 3600,
            rtime: None,
            options: client::default_options(),
        };
        let req = client::tgs_req(
            &shared.tgt,
            &body,
            &TgsAuth {
                now,
                usec,
                subkey: None,
            },
        )?;
        let sent_at = Instant::now();
        if let Err(e) = sock.send(&req).await {
            st.io_errors += 1;
            if st.io_errors == 1 {
                eprintln!("eue-sim: send: {e}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        st.sent += 1;
        let n = match tokio::time::timeout(shared.timeout, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => {
                // Typically ECONNREFUSED: nothing listens. Back off a little.
                st.io_errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(_) => {
                st.timeouts += 1;
                // A late reply must not be taken for the next request's.
                sock = new_socket(shared.kdc).await?;
                continue;
            }
        };
        let lat = sent_at.elapsed().as_micros().min(u32::MAX as u128) as u32;
        st.latencies_us.push(lat);
        let reply = &buf[..n];
        match reply.first() {
            Some(&TAG_TGS_REP) => {
                n_replies += 1;
                if n_replies.is_multiple_of(shared.verify_every) {
                    match client::open_tgs_rep(reply, &shared.tgt, None, nonce) {
                        Ok(c) if c.ticket.sname == shared.sname => {
                            st.verified += 1;
                            st.ok += 1;
                        }
                        Ok(_) | Err(_) => st.verify_failures += 1,
                    }
                } else {
                    st.ok += 1;
                }
            }
            Some(&TAG_KRB_ERROR) => match client::krb_error(reply) {
                Some(e) => *st.krb_errors.entry(e.error_code).or_default() += 1,
                None => st.other_replies += 1,
            },
            _ => st.other_replies += 1,
        }
    }
    Ok(st)
}

struct Report {
    cpu: CpuUse,
    bottleneck: &'static str,
    concurrency: usize,
    threads: usize,
    kdc_pid: Option<u32>,
}

impl Report {
    fn new(args: &TgsLoadArgs, cpu: CpuUse) -> Report {
        // The client can use at most `threads` cores; the KDC, the client and
        // anything else running share the machine's CPUs.
        let bottleneck = if cpu.client_cores >= 0.9 * args.threads as f64 {
            "client"
        } else if cpu.saturated() {
            "machine"
        } else {
            "none"
        };
        Report {
            cpu,
            bottleneck,
            concurrency: args.concurrency,
            threads: args.threads,
            kdc_pid: args.kdc_pid,
        }
    }

    fn json(&self, st: &Stats) -> serde_json::Value {
        let errors: BTreeMap<String, u64> = st
            .krb_errors
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let mut j = json!({
            "transport": "udp",
            "concurrency": self.concurrency,
            "client_threads": self.threads,
            "sent": st.sent,
            "ok": st.ok,
            "verified": st.verified,
            "verify_failures": st.verify_failures,
            "krb_errors": errors,
            "other_replies": st.other_replies,
            "timeouts": st.timeouts,
            "io_errors": st.io_errors,
            "latency_us": cpu::latency_json(&st.latencies_us),
            "bottleneck": self.bottleneck,
        });
        if let Some(o) = j.as_object_mut() {
            o.extend(self.cpu.json_fields(st.ok, self.kdc_pid));
        }
        j
    }

    fn human(&self, st: &Stats) -> String {
        let l = &st.latencies_us;
        let us = |q| cpu::percentile(l, q).map_or("-".to_string(), |v| format!("{v} µs"));
        let mut s = String::new();
        s += &format!(
            "tgs-load: {:.2} s, concurrency {}, {} client thread(s), {} CPU(s), UDP loopback\n",
            self.cpu.wall_s, self.concurrency, self.threads, self.cpu.nproc
        );
        s += &format!(
            "  requests sent {}, TGS-REP ok {} ({} fully opened, {} failed to open)\n",
            st.sent, st.ok, st.verified, st.verify_failures
        );
        s += &format!(
            "  KRB-ERRORs {:?}, other replies {}, timeouts {}, io errors {}\n",
            st.krb_errors, st.other_replies, st.timeouts, st.io_errors
        );
        s += &format!("  throughput {:.0} req/s\n", self.cpu.rate(st.ok));
        s += &format!(
            "  latency p50 {}, p90 {}, p99 {}, max {}\n",
            us(0.50),
            us(0.90),
            us(0.99),
            l.last().map_or("-".to_string(), |v| format!("{v} µs"))
        );
        s += &self.cpu.kdc_line(self.kdc_pid, st.ok, "TGS request", 4);
        s += &format!(
            "  client CPU {:.0} ms = {:.2} cores; {} ms per request\n",
            self.cpu.client_cpu_ms,
            self.cpu.client_cores,
            cpu::opt(self.cpu.client_ms_per(st.ok), 4),
        );
        s += &self.cpu.busy_line(self.bottleneck);
        s
    }
}
