//! `eue-sim pkinit-load`: a bounded PKINIT AS load generator.
//!
//! `concurrency` client threads each keep one request in flight over its
//! own connection (TCP, kept open, 4-byte length prefix; or a connected
//! UDP socket). Every request is built and signed afresh with the next
//! device of the manifest (round-robin): new nonce, new ctime/cusec, new
//! CMS signature. Nothing is pre-signed, so the client's RSA signing runs
//! on the same (shared) CPUs as the KDC; the report says how much CPU the
//! client used and whether it was the bottleneck.
//!
//! The PacketCable form asks for the provisioning server's ticket (as
//! devices do); the RFC 4556 form asks for krbtgt. Every `verify_every`th
//! AS-REP (and each thread's first) is opened in full: device-key
//! decryption, the KDC's signature and chain against the SP root, nonce
//! and encrypted part. The others are checked by message tag.
//!
//! Bounded by time (`--seconds` plus one reply timeout) and count
//! (`--max-requests`, warm-up included). With `--kdc-pid`, the KDC's
//! utime+stime from /proc/PID/stat over the measured phase is divided by
//! the number of successful replies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use krb::msg::consts::err;
use krb::principal::Principal;
use serde_json::json;

use crate::cpu::{self, CpuUse};
use crate::pk::{self, Conn, Device, Failure, Form, Realm, TAG_AS_REP, TAG_KRB_ERROR, Transport};

#[derive(Debug, Args)]
pub struct PkinitLoadArgs {
    /// Dev realm directory (with dev-realm.json), as made by `pktc-kdc dev`.
    #[arg(long)]
    pub realm_dir: PathBuf,
    /// Request form: PacketCable (padata 14, for the MPS ticket) or RFC 4556
    /// RSA mode (padata 16, for krbtgt).
    #[arg(long, value_enum, default_value_t = Form::Packetcable)]
    pub form: Form,
    /// Length of the measured phase, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Warm-up before the measured phase, seconds (not counted).
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    /// Upper bound on AS requests sent, warm-up included.
    #[arg(long, default_value_t = 200_000)]
    pub max_requests: u64,
    /// Client threads, each with one request in flight on its own connection.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Per-request reply timeout, milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Fully open every Nth AS-REP (and each thread's first); 1 opens all.
    #[arg(long, default_value_t = 20)]
    pub verify_every: u64,
    /// PID of the KDC process, to measure its CPU time per request.
    #[arg(long)]
    pub kdc_pid: Option<u32>,
    /// KDC address instead of the manifest's (must be loopback).
    #[arg(long)]
    pub kdc: Option<SocketAddr>,
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Send a 32-byte clientDHNonce in the DH forms, as Heimdal and Windows
    /// do (MIT does not): it lets a KDC with `pkinit.dh_key_reuse_secs`
    /// reuse its DH key (RFC 4556 §3.2.3.1).
    #[arg(long)]
    pub dh_nonce: bool,
}

struct Shared<'a> {
    realm: &'a Realm,
    devices: &'a [Device],
    form: Form,
    server: &'a Principal,
    mps: Option<&'a str>,
    dh_nonce: bool,
    transport: Transport,
    issued: AtomicU64,
    max_requests: u64,
    next: AtomicU64,
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
    first_verify_error: Option<String>,
    krb_errors: BTreeMap<i32, u64>,
    first_krb_error: Option<String>,
    other_replies: u64,
    timeouts: u64,
    io_errors: u64,
    build_errors: u64,
    /// Time spent building (signing) requests on the client, µs.
    build_us: u64,
    latencies_us: Vec<u32>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.verified += o.verified;
        self.verify_failures += o.verify_failures;
        self.first_verify_error = self.first_verify_error.take().or(o.first_verify_error);
        for (k, v) in o.krb_errors {
            *self.krb_errors.entry(k).or_default() += v;
        }
        self.first_krb_error = self.first_krb_error.take().or(o.first_krb_error);
        self.other_replies += o.other_replies;
        self.timeouts += o.timeouts;
        self.io_errors += o.io_errors;
        self.build_errors += o.build_errors;
        self.build_us += o.build_us;
        self.latencies_us.extend(o.latencies_us);
    }

    fn errors(&self) -> u64 {
        self.krb_errors.values().sum::<u64>()
            + self.verify_failures
            + self.other_replies
            + self.timeouts
            + self.io_errors
            + self.build_errors
    }
}

pub fn run(args: &PkinitLoadArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.concurrency > 256 || args.verify_every == 0 {
        bail!("--concurrency must be in 1..=256 and --verify-every at least 1");
    }
    let seconds_ok = args.seconds > 0.0 && args.seconds <= 3600.0;
    if !seconds_ok || !(0.0..=600.0).contains(&args.warmup_seconds) {
        bail!("--seconds must be in (0, 3600] and --warmup-seconds in [0, 600]");
    }
    let realm = Realm::load(&args.realm_dir, args.kdc)?;
    let devices = realm.devices()?;
    let kdc_stat = cpu::kdc_stat_path(args.kdc_pid)?;
    let (server, mps) = match args.form {
        Form::Packetcable => (&realm.service, Some(realm.mps_fqdn.as_str())),
        Form::Rfc4556 | Form::Rfc4556Dh | Form::Rfc4556Ecdh => (&realm.krbtgt, None),
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos()
        ^ std::process::id().rotate_left(16);
    let shared = Shared {
        realm: &realm,
        devices: &devices,
        form: args.form,
        server,
        mps,
        dh_nonce: args.dh_nonce,
        transport: args.transport,
        issued: AtomicU64::new(0),
        max_requests: args.max_requests,
        next: AtomicU64::new(0),
        nonce: AtomicU32::new(seed & 0x7fff_ffff),
        timeout: Duration::from_millis(args.timeout_ms),
        verify_every: args.verify_every,
    };

    if args.warmup_seconds > 0.0 {
        let warm = phase(
            &shared,
            args.concurrency,
            Duration::from_secs_f64(args.warmup_seconds),
        )?;
        if warm.ok == 0 {
            bail!(
                "no successful AS-REP during warm-up (errors {:?} first {:?}, verify failures {} {:?}, timeouts {}, io errors {})",
                warm.krb_errors,
                warm.first_krb_error,
                warm.verify_failures,
                warm.first_verify_error,
                warm.timeouts,
                warm.io_errors
            );
        }
    }

    let sampler = cpu::Sampler::start(kdc_stat.as_deref())?;
    let mut stats = phase(
        &shared,
        args.concurrency,
        Duration::from_secs_f64(args.seconds),
    )?;
    let cpu = sampler.finish()?;

    stats.latencies_us.sort_unstable();
    let report = Report::new(args, &stats, cpu);
    if args.json {
        println!("{}", serde_json::to_string(&report.json(&stats))?);
    } else {
        print!("{}", report.human(&stats));
    }
    if stats.ok == 0 {
        bail!("no successful AS-REP in the measured phase");
    }
    if stats.verify_failures > 0 {
        bail!(
            "{} AS-REPs failed to open: {}",
            stats.verify_failures,
            stats.first_verify_error.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

fn phase(shared: &Shared<'_>, concurrency: usize, len: Duration) -> anyhow::Result<Stats> {
    let deadline = Instant::now() + len;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| s.spawn(|| worker(shared, deadline)))
            .collect();
        let mut total = Stats::default();
        for h in handles {
            match h.join() {
                Ok(st) => total.merge(st),
                Err(_) => bail!("load thread panicked"),
            }
        }
        Ok(total)
    })
}

fn worker(sh: &Shared<'_>, deadline: Instant) -> Stats {
    let mut st = Stats::default();
    let mut conn: Option<Conn> = None;
    let mut buf = Vec::with_capacity(65536);
    let mut n_replies: u64 = 0;
    while Instant::now() < deadline {
        if sh.issued.fetch_add(1, Ordering::Relaxed) >= sh.max_requests {
            break;
        }
        let i = sh.next.fetch_add(1, Ordering::Relaxed) as usize;
        let dev = &sh.devices[i % sh.devices.len()];
        let nonce = sh.nonce.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff;
        let b0 = Instant::now();
        let req = match pk::build_as_req(dev, sh.server, sh.form, nonce, sh.mps, sh.dh_nonce) {
            Ok(r) => r,
            Err(e) => {
                st.build_errors += 1;
                if st.build_errors == 1 {
                    eprintln!("eue-sim: building an AS-REQ: {e:#}");
                }
                break;
            }
        };
        st.build_us += b0.elapsed().as_micros() as u64;
        let mut c = match conn.take() {
            Some(c) => c,
            None => match Conn::open(sh.realm.kdc, sh.transport, sh.timeout) {
                Ok(c) => c,
                Err(e) => {
                    st.io_errors += 1;
                    if st.io_errors == 1 {
                        eprintln!("eue-sim: connecting to {}: {e}", sh.realm.kdc);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let sent_at = Instant::now();
        st.sent += 1;
        match c.exchange(&req.bytes, &mut buf) {
            Ok(()) => conn = Some(c),
            Err(e) => {
                // The connection (or UDP socket, whose late reply must not
                // be taken for the next request's) is dropped either way.
                if pk::is_timeout(&e) {
                    st.timeouts += 1;
                } else {
                    st.io_errors += 1;
                    if st.io_errors == 1 {
                        eprintln!("eue-sim: exchange with {}: {e}", sh.realm.kdc);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
        }
        let lat = sent_at.elapsed().as_micros().min(u32::MAX as u128) as u32;
        st.latencies_us.push(lat);
        match buf.first() {
            Some(&TAG_AS_REP) => {
                n_replies += 1;
                if n_replies == 1 || n_replies.is_multiple_of(sh.verify_every) {
                    match pk::open_as_reply(&req, &buf, dev, &sh.realm.sp_trust) {
                        Ok(_) => {
                            st.verified += 1;
                            st.ok += 1;
                        }
                        Err(f) => {
                            st.verify_failures += 1;
                            if st.first_verify_error.is_none() {
                                st.first_verify_error = Some(format!("{}: {f}", dev.mac));
                            }
                        }
                    }
                } else {
                    st.ok += 1;
                }
            }
            Some(&TAG_KRB_ERROR) => match pk::as_krb_error(&buf) {
                Some(Failure::KrbError { code, text }) => {
                    *st.krb_errors.entry(code).or_default() += 1;
                    if st.first_krb_error.is_none() {
                        st.first_krb_error = Some(format!(
                            "{}: {code} {} {text:?}",
                            dev.mac,
                            pk::err_name(code)
                        ));
                    }
                }
                _ => st.other_replies += 1,
            },
            _ => st.other_replies += 1,
        }
    }
    st
}

struct Report {
    cpu: CpuUse,
    client_build_ms_per_req: Option<f64>,
    bottleneck: &'static str,
    client_bound: bool,
    args_form: Form,
    transport: Transport,
    concurrency: usize,
    kdc_pid: Option<u32>,
}

impl Report {
    fn new(args: &PkinitLoadArgs, st: &Stats, cpu: CpuUse) -> Report {
        let shed = st
            .krb_errors
            .get(&err::KDC_ERR_SVC_UNAVAILABLE)
            .copied()
            .unwrap_or(0);
        let saturated = cpu.saturated();
        // On a saturated machine the client and the KDC compete for the same
        // CPUs; the client is "the bottleneck" when it takes at least as much
        // of them as the KDC does (the KDC would go faster without it).
        let client_bound = saturated && cpu.kdc_cores.is_some_and(|k| cpu.client_cores >= k);
        let bottleneck = if shed > 0 {
            "kdc (shedding: KDC_ERR_SVC_UNAVAILABLE)"
        } else if saturated && cpu.kdc_cores.is_none() {
            "machine (CPUs saturated; KDC CPU not measured, pass --kdc-pid)"
        } else if client_bound {
            "client (its RSA signing takes as much CPU as the KDC)"
        } else if saturated {
            "machine (CPUs saturated, mostly by the KDC)"
        } else {
            "none (CPUs not saturated: latency-bound, raise --concurrency)"
        };
        Report {
            cpu,
            client_build_ms_per_req: (st.sent > 0)
                .then(|| st.build_us as f64 / 1000.0 / st.sent as f64),
            bottleneck,
            client_bound,
            args_form: args.form,
            transport: args.transport,
            concurrency: args.concurrency,
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
            "form": self.args_form.name(),
            "transport": self.transport.name(),
            "concurrency": self.concurrency,
            "sent": st.sent,
            "ok": st.ok,
            "verified": st.verified,
            "verify_failures": st.verify_failures,
            "first_verify_error": st.first_verify_error,
            "krb_errors": errors,
            "shed": st.krb_errors.get(&err::KDC_ERR_SVC_UNAVAILABLE).copied().unwrap_or(0),
            "first_krb_error": st.first_krb_error,
            "other_replies": st.other_replies,
            "timeouts": st.timeouts,
            "io_errors": st.io_errors,
            "errors": st.errors(),
            "latency_us": cpu::latency_json(&st.latencies_us),
            "client_build_ms_per_req": self.client_build_ms_per_req,
            "bottleneck": self.bottleneck,
            "client_bound": self.client_bound,
        });
        if let Some(o) = j.as_object_mut() {
            o.extend(self.cpu.json_fields(st.ok, self.kdc_pid));
        }
        j
    }

    fn human(&self, st: &Stats) -> String {
        let l = &st.latencies_us;
        let ms = |q| {
            cpu::percentile(l, q)
                .map_or("-".to_string(), |v| format!("{:.2} ms", v as f64 / 1000.0))
        };
        let mut s = String::new();
        s += &format!(
            "pkinit-load ({}): {:.2} s, concurrency {}, {} CPU(s), {} loopback\n",
            self.args_form.name(),
            self.cpu.wall_s,
            self.concurrency,
            self.cpu.nproc,
            self.transport.name()
        );
        s += &format!(
            "  requests sent {}, AS-REP ok {} ({} fully opened, {} failed to open)\n",
            st.sent, st.ok, st.verified, st.verify_failures
        );
        s += &format!(
            "  KRB-ERRORs {:?} (29 = shed), other replies {}, timeouts {}, io errors {}\n",
            st.krb_errors, st.other_replies, st.timeouts, st.io_errors
        );
        if let Some(e) = &st.first_krb_error {
            s += &format!("  first KRB-ERROR: {e}\n");
        }
        if let Some(e) = &st.first_verify_error {
            s += &format!("  first reply that failed to open: {e}\n");
        }
        s += &format!("  throughput {:.1} req/s\n", self.cpu.rate(st.ok));
        s += &format!(
            "  latency p50 {}, p90 {}, p99 {}, max {}\n",
            ms(0.50),
            ms(0.90),
            ms(0.99),
            l.last()
                .map_or("-".to_string(), |v| format!("{:.2} ms", *v as f64 / 1000.0))
        );
        s += &self
            .cpu
            .kdc_line(self.kdc_pid, st.ok, "PKINIT AS request", 3);
        s += &format!(
            "  client CPU {:.0} ms = {:.2} cores; {} ms per request (building+signing {} ms)\n",
            self.cpu.client_cpu_ms,
            self.cpu.client_cores,
            cpu::opt(self.cpu.client_ms_per(st.ok), 3),
            cpu::opt(self.client_build_ms_per_req, 3),
        );
        s += &self.cpu.busy_line(self.bottleneck);
        s
    }
}
