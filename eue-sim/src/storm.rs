//! `eue-sim storm`: an open-loop reboot-storm generator.
//!
//! After a power cut every device behind a CMTS runs PKINIT at once and
//! retransmits on its own timers. This plays that: arrivals at `--rate`
//! (Poisson or evenly spaced) for `--seconds`, each a different device
//! exchange from its own 127.0.0.0/8 source address, retried on the
//! device's ladder of timeouts (the PacketCable MTA MIB's example 3, 6, 12,
//! 20, 20 s) with the same bytes. Arrivals do not wait for answers (open
//! loop), so an overloaded KDC sees what it would see in the field.
//!
//! Every request is built and signed before the clock starts (each unique:
//! nonce, ctime, signature), so the generator's own RSA work does not
//! compete with the KDC during the window. The report says when the
//! generator fell behind its schedule anyway.
//!
//! The dev realm's provisioning-server stand-in binds each device to
//! 127.0.0.1: with `[mps] require_address_match` the KDC refuses requests
//! from other addresses. A storm against the dev realm therefore needs the
//! address check off (bench/storm.sh does it and says so); the preflight
//! exchange fails with a message saying so otherwise.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::cpu;
use crate::pk::{self, Form, Realm, Transport};
use crate::storm_net::{self, End, Plan, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arrivals {
    /// Exponential gaps (independent devices).
    Poisson,
    /// Evenly spaced.
    Even,
}

#[derive(Debug, Args)]
pub struct StormArgs {
    /// Dev realm directory (with dev-realm.json), as made by `pktc-kdc dev`.
    #[arg(long)]
    pub realm_dir: PathBuf,
    /// KDC address instead of the manifest's (must be loopback).
    #[arg(long)]
    pub kdc: Option<SocketAddr>,
    /// Request form (devices use the PacketCable one).
    #[arg(long, value_enum, default_value_t = Form::Packetcable)]
    pub form: Form,
    /// New exchanges per second (offered load).
    #[arg(long)]
    pub rate: f64,
    /// Length of the window, seconds; every client leaves at its end.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, value_enum, default_value_t = Arrivals::Poisson)]
    pub arrivals: Arrivals,
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,
    /// Seconds each try waits before the device retries (same bytes); the
    /// device gives up after the last.
    #[arg(long, default_value = "3,6,12,20,20")]
    pub ladder: String,
    /// Generator threads sending and receiving.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Upper bound on scheduled exchanges (memory: one signed request each).
    #[arg(long, default_value_t = 200_000)]
    pub max_exchanges: usize,
    /// PID of the KDC: its CPU, RSS and the CPU it spends after the window.
    #[arg(long)]
    pub kdc_pid: Option<u32>,
    /// Longest wait for the KDC to go idle after the window, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub idle_wait_seconds: f64,
    /// Seed for the Poisson gaps (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

fn parse_ladder(s: &str) -> anyhow::Result<Vec<Duration>> {
    let ladder: Vec<Duration> = s
        .split(',')
        .map(|t| {
            let secs: f64 = t
                .trim()
                .parse()
                .with_context(|| format!("--ladder {t:?}"))?;
            if !(0.01..=600.0).contains(&secs) {
                bail!("--ladder values must be in [0.01, 600] seconds");
            }
            Ok(Duration::from_secs_f64(secs))
        })
        .collect::<anyhow::Result<_>>()?;
    if ladder.is_empty() || ladder.len() > 16 {
        bail!("--ladder needs 1 to 16 timeouts");
    }
    Ok(ladder)
}

/// Arrival times (seconds from the window's start) within `seconds`,
/// at most `max` of them.
fn schedule(
    arrivals: Arrivals,
    rate: f64,
    seconds: f64,
    max: usize,
    seed: Option<u64>,
) -> Vec<f64> {
    match arrivals {
        Arrivals::Even => (0..max)
            .map(|i| i as f64 / rate)
            .take_while(|t| *t < seconds)
            .collect(),
        Arrivals::Poisson => {
            // SplitMix64: reproducible with --seed.
            let mut state = seed.unwrap_or_else(|| {
                let mut b = [0u8; 8];
                let _ = getrandom::fill(&mut b);
                u64::from_le_bytes(b)
            });
            let mut uniform = move || {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let mut out = Vec::new();
            let mut t = -uniform().ln() / rate;
            while t < seconds && out.len() < max {
                out.push(t);
                t += -uniform().ln() / rate;
            }
            out
        }
    }
}

/// Builds and signs `n` unique requests on every CPU this process may use.
fn pregenerate(realm: &Realm, form: Form, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let devices = realm.devices()?;
    let (server, mps) = match form {
        Form::Packetcable => (&realm.service, Some(realm.mps_fqdn.as_str())),
        _ => (&realm.krbtgt, None),
    };
    let mut seed = [0u8; 4];
    let _ = getrandom::fill(&mut seed);
    let nonce0 = u32::from_le_bytes(seed) & 0x3fff_ffff;
    let workers = std::thread::available_parallelism().map_or(1, |p| p.get());
    let chunk = n.div_ceil(workers).max(1);
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); n];
    std::thread::scope(|s| {
        let jobs: Vec<_> = out
            .chunks_mut(chunk)
            .enumerate()
            .map(|(c, slots)| {
                let devices = &devices;
                s.spawn(move || -> anyhow::Result<()> {
                    for (k, slot) in slots.iter_mut().enumerate() {
                        let i = c * chunk + k;
                        let dev = &devices[i % devices.len()];
                        let nonce = (nonce0 + i as u32) & 0x7fff_ffff;
                        *slot = pk::build_as_req(dev, server, form, nonce, mps, false)?.bytes;
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter()
            .try_for_each(|j| j.join().map_err(|_| anyhow::anyhow!("builder panicked"))?)
    })?;
    Ok(out)
}

/// Lets this process hold one socket per exchange in flight.
/// Raises the open-file limit as far as allowed; returns the limit now.
fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // As root the hard limit can go up too; otherwise up to the hard one.
    if setrlimit(Resource::RLIMIT_NOFILE, 1 << 18, 1 << 18).is_err() && soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

pub fn run(args: &StormArgs) -> anyhow::Result<()> {
    let rate_ok = args.rate > 0.0 && args.rate <= 1e6;
    if !(rate_ok && args.seconds > 0.0 && args.seconds <= 3600.0) {
        bail!("--rate must be in (0, 1e6] and --seconds in (0, 3600]");
    }
    if args.threads == 0 || args.threads > 64 {
        bail!("--threads must be in 1..=64");
    }
    let ladder = parse_ladder(&args.ladder)?;
    if args.rate * args.seconds > args.max_exchanges as f64 {
        bail!(
            "--rate × --seconds is more than --max-exchanges {}",
            args.max_exchanges
        );
    }
    let fd_limit = raise_fd_limit();
    // Over UDP every exchange keeps its socket until answered or the window
    // ends (a late answer to an earlier try still counts): in a storm the
    // unanswered ones pile up. Warn before the window, not only after it.
    if let Some(limit) = fd_limit
        && args.transport == Transport::Udp
        && args.rate * args.seconds > limit as f64
    {
        eprintln!(
            "eue-sim storm: up to {:.0} UDP sockets may be open at once but the open-file \
             limit is {limit}: exchanges past it are not sent (reported as not_sent); raise \
             the hard limit or shorten --seconds",
            args.rate * args.seconds
        );
    }
    let realm = Realm::load(&args.realm_dir, args.kdc)?;
    let kdc_stat = cpu::kdc_stat_path(args.kdc_pid)?;

    preflight(&realm, args)?;
    let built = Instant::now();
    let schedule = schedule(
        args.arrivals,
        args.rate,
        args.seconds,
        args.max_exchanges,
        args.seed,
    );
    let requests = pregenerate(&realm, args.form, schedule.len())?;
    let build_s = built.elapsed().as_secs_f64();

    let drops_before = cpu::udp_drops(realm.kdc.port());
    let rss = RssWatch::start(args.kdc_pid);
    let sampler = cpu::Sampler::start(kdc_stat.as_deref())?;
    let (records, _start) = storm_net::run(Plan {
        kdc: realm.kdc,
        transport: args.transport,
        ladder,
        schedule: schedule.clone(),
        requests,
        window: Duration::from_secs_f64(args.seconds),
        threads: args.threads,
        first_source: 0,
    })?;
    let cpu_use = sampler.finish()?;
    let rss = rss.finish();
    let after = kdc_stat
        .as_deref()
        .map(|p| cpu_until_idle(p, Duration::from_secs_f64(args.idle_wait_seconds)))
        .transpose()?;
    let drops_after = cpu::udp_drops(realm.kdc.port());

    let r = Summary::new(&records, &schedule, args.seconds);
    let udp_drops = drops_before
        .zip(drops_after)
        .map(|(a, b)| b.saturating_sub(a));
    let j = r.json(args, build_s, &cpu_use, rss, after, udp_drops);
    if args.json {
        println!("{j}");
    } else {
        print!("{}", human(&j));
    }
    if r.not_sent > 0 {
        eprintln!(
            "eue-sim storm: {} exchanges were never sent (no socket: open-file limit {}): \
             the offered load was lower than asked; raise the hard limit (ulimit -Hn) or \
             shorten --seconds",
            r.not_sent,
            fd_limit.map_or("unknown".to_string(), |l| l.to_string())
        );
    }
    if r.lag_p99 > Duration::from_millis(20) {
        eprintln!(
            "eue-sim storm: the generator fell behind its schedule (start lag p99 {:.1} ms, max {:.1} ms): \
             the offered load was lower than asked; use more --threads or a lower --rate",
            r.lag_p99.as_secs_f64() * 1e3,
            r.lag_max.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// The preflight exchange's source index (127.254.1.1).
const PREFLIGHT_SOURCE: usize = 253 * 254 * 254;

/// One exchange before the storm from a storm source address: the realm
/// answers, and answers such addresses.
fn preflight(realm: &Realm, args: &StormArgs) -> anyhow::Result<()> {
    let requests = pregenerate(realm, args.form, 1)?;
    let (records, _) = storm_net::run(Plan {
        kdc: realm.kdc,
        transport: args.transport,
        ladder: vec![Duration::from_secs(5)],
        schedule: vec![0.0],
        requests,
        window: Duration::from_secs(6),
        threads: 1,
        // 127.254.1.1: apart from the storm's own addresses.
        first_source: PREFLIGHT_SOURCE,
    })?;
    match records[0].end {
        End::AsRep => Ok(()),
        End::KrbError(code) if code == krb::msg::consts::err::KRB_AP_ERR_BADADDR => bail!(
            "preflight: KRB-ERROR {code} {}: the KDC checks request addresses against the \
             provisioning server's, which does not list the storm's 127.0.0.0/8 sources; \
             turn the check off for the test ([mps] require_address_match = false and \
             addresses removed from the stand-in's table; bench/storm.sh does this)",
            pk::err_name(code)
        ),
        End::KrbError(code) => bail!("preflight: KRB-ERROR {code} {}", pk::err_name(code)),
        other => bail!("preflight: no AS-REP from {} ({other:?})", realm.kdc),
    }
}

/// The KDC's resident set, sampled every 100 ms in a thread.
struct RssWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Option<(u64, u64, u64)>>>,
}

impl RssWatch {
    fn start(pid: Option<u32>) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = pid.map(|pid| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let first = cpu::proc_status_kb(pid, "VmRSS")?;
                let (mut max, mut last) = (first, first);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    last = cpu::proc_status_kb(pid, "VmRSS").unwrap_or(last);
                    max = max.max(last);
                }
                Some((first, max, last))
            })
        });
        RssWatch { stop, thread }
    }

    /// (at the start, maximum, at the end) in kB.
    fn finish(mut self) -> Option<(u64, u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take()?.join().ok()?
    }
}

/// The KDC's CPU milliseconds from now until it is idle (under one tick in
/// 300 ms), at most `max`: work for clients that have left. Also how long
/// that took.
fn cpu_until_idle(stat: &str, max: Duration) -> anyhow::Result<(f64, f64)> {
    let tck = cpu::clk_tck() as f64;
    let t0 = Instant::now();
    let start = cpu::proc_cpu_ticks(stat)?;
    let mut marks = vec![(t0, start)];
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        marks.push((now, cpu::proc_cpu_ticks(stat)?));
        let k = marks.len();
        if k >= 4 && marks[k - 1].1 - marks[k - 4].1 <= 1 {
            let (at, ticks) = marks[k - 4];
            let busy = (ticks - start) as f64 * 1000.0 / tck;
            return Ok((busy, at.duration_since(t0).as_secs_f64()));
        }
        if now.duration_since(t0) > max {
            let busy = (marks[k - 1].1 - start) as f64 * 1000.0 / tck;
            return Ok((busy, now.duration_since(t0).as_secs_f64()));
        }
    }
}

/// Counts over the records.
struct Summary {
    n: usize,
    window: f64,
    started: usize,
    sends: u64,
    ok: usize,
    ok_second_half: usize,
    latencies_us: Vec<u32>,
    /// Answers by the number of transmissions made when they came: 1 is
    /// the first try, more means the device had already retried.
    answered_after_sends: BTreeMap<u32, u64>,
    try_timeouts: u64,
    gave_up: usize,
    unanswered: usize,
    not_sent: usize,
    other: usize,
    krb_errors: BTreeMap<i32, u64>,
    failed_connections: u64,
    slow_connects: u64,
    local_errors: u64,
    lag_p99: Duration,
    lag_max: Duration,
}

impl Summary {
    /// Whether the generator could not offer what was asked: it started
    /// exchanges late, or could not start some at all (no socket).
    fn behind(&self) -> bool {
        self.lag_p99 > Duration::from_millis(20) || self.not_sent > 0
    }

    fn new(records: &[Record], schedule: &[f64], window: f64) -> Summary {
        let mut s = Summary {
            n: records.len(),
            window,
            started: 0,
            sends: 0,
            ok: 0,
            ok_second_half: 0,
            latencies_us: Vec::new(),
            answered_after_sends: BTreeMap::new(),
            try_timeouts: 0,
            gave_up: 0,
            unanswered: 0,
            not_sent: 0,
            other: 0,
            krb_errors: BTreeMap::new(),
            failed_connections: 0,
            slow_connects: 0,
            local_errors: 0,
            lag_p99: Duration::ZERO,
            lag_max: Duration::ZERO,
        };
        let mut lags = Vec::new();
        for (r, at) in records.iter().zip(schedule) {
            s.sends += u64::from(r.sends);
            s.try_timeouts += u64::from(r.try_timeouts);
            s.failed_connections += u64::from(r.failed_connections);
            s.slow_connects += u64::from(r.slow_connects);
            s.local_errors += u64::from(r.local_errors);
            if let Some(l) = r.lag {
                s.started += 1;
                lags.push(l);
            }
            match r.end {
                End::AsRep => {
                    s.ok += 1;
                    let lat = r.latency.unwrap_or_default();
                    if at + lat.as_secs_f64() >= window / 2.0 {
                        s.ok_second_half += 1;
                    }
                    s.latencies_us
                        .push(lat.as_micros().min(u32::MAX as u128) as u32);
                    *s.answered_after_sends.entry(r.sends).or_default() += 1;
                }
                End::KrbError(code) => *s.krb_errors.entry(code).or_default() += 1,
                End::Other => s.other += 1,
                End::GaveUp => s.gave_up += 1,
                End::Unanswered => s.unanswered += 1,
                End::NotSent => s.not_sent += 1,
            }
        }
        s.latencies_us.sort_unstable();
        lags.sort_unstable();
        if let Some(max) = lags.last() {
            s.lag_max = *max;
            s.lag_p99 = lags[((lags.len() as f64 * 0.99).ceil() as usize).clamp(1, lags.len()) - 1];
        }
        s
    }

    fn per_s(&self, v: f64) -> f64 {
        v / self.window
    }

    fn json(
        &self,
        args: &StormArgs,
        build_s: f64,
        cpu_use: &cpu::CpuUse,
        rss: Option<(u64, u64, u64)>,
        after: Option<(f64, f64)>,
        udp_drops: Option<u64>,
    ) -> serde_json::Value {
        let ms = |q| cpu::percentile(&self.latencies_us, q).map(|v| v as f64 / 1000.0);
        let errors: BTreeMap<String, u64> = self
            .krb_errors
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let by_sends: BTreeMap<String, u64> = self
            .answered_after_sends
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        json!({
            "transport": args.transport.name(),
            "form": args.form.name(),
            "arrivals": format!("{:?}", args.arrivals).to_lowercase(),
            "ladder": args.ladder,
            "window_s": self.window,
            "scheduled": self.n,
            "offered_per_s": self.per_s(self.n as f64),
            "started_per_s": self.per_s(self.started as f64),
            "transmissions_per_s": self.per_s(self.sends as f64),
            "answered_ok": self.ok,
            "goodput_per_s": self.per_s(self.ok as f64),
            "goodput_second_half_per_s": self.ok_second_half as f64 / (self.window / 2.0),
            "answered_after_sends": by_sends,
            "latency_ms": {"p50": ms(0.50), "p99": ms(0.99), "max": self.latencies_us.last().map(|v| *v as f64 / 1000.0)},
            "try_timeouts_per_s": self.per_s(self.try_timeouts as f64),
            "gave_up_per_s": self.per_s(self.gave_up as f64),
            "unanswered_at_end": self.unanswered,
            "not_sent": self.not_sent,
            "other_replies": self.other,
            "krb_errors": errors,
            "tcp_failed_connections": self.failed_connections,
            "tcp_slow_connects": self.slow_connects,
            "local_errors": self.local_errors,
            "start_lag_ms": {"p99": self.lag_p99.as_secs_f64() * 1e3, "max": self.lag_max.as_secs_f64() * 1e3},
            "behind_schedule": self.behind(),
            "pregeneration_s": build_s,
            "kdc_pid": args.kdc_pid,
            "kdc_cpu_ms": cpu_use.kdc_cpu_ms,
            "kdc_cpu_cores": cpu_use.kdc_cores,
            "kdc_rss_kb": rss.map(|(a, m, b)| json!({"start": a, "max": m, "end": b})),
            "kdc_cpu_after_window_ms": after.map(|a| a.0),
            "kdc_idle_after_s": after.map(|a| a.1),
            "udp_drops": udp_drops,
            "client_cpu_cores": cpu_use.client_cores,
            "machine_cpu_busy": cpu_use.machine_busy,
        })
    }
}

/// The human summary of the JSON report.
fn human(j: &serde_json::Value) -> String {
    let f = |k: &str| j[k].as_f64().map_or("-".into(), |v| format!("{v:.1}"));
    let lat = |q: &str| {
        j["latency_ms"][q]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.1} ms"))
    };
    let mut s = format!(
        "storm ({} {}, {} arrivals, ladder {} s): {} s window, {} exchanges\n",
        j["form"].as_str().unwrap_or("-"),
        j["transport"].as_str().unwrap_or("-"),
        j["arrivals"].as_str().unwrap_or("-"),
        j["ladder"].as_str().unwrap_or("-"),
        j["window_s"],
        j["scheduled"],
    );
    s += &format!(
        "  offered {}/s, started {}/s, transmissions {}/s\n",
        f("offered_per_s"),
        f("started_per_s"),
        f("transmissions_per_s")
    );
    s += &format!(
        "  goodput {}/s (second half {}/s); latency from scheduled start p50 {}, p99 {}, max {}\n",
        f("goodput_per_s"),
        f("goodput_second_half_per_s"),
        lat("p50"),
        lat("p99"),
        lat("max")
    );
    s += &format!(
        "  answered after 1, 2, ... transmissions: {}\n",
        j["answered_after_sends"]
    );
    s += &format!(
        "  try timeouts {}/s, given up {}/s, unanswered when the clients left {}, KRB-ERRORs {}\n",
        f("try_timeouts_per_s"),
        f("gave_up_per_s"),
        j["unanswered_at_end"],
        j["krb_errors"]
    );
    if j["transport"] == "TCP" {
        s += &format!(
            "  TCP: failed connections {}, slow connects (SYN retried) {}\n",
            j["tcp_failed_connections"], j["tcp_slow_connects"]
        );
    } else {
        s += &format!(
            "  UDP datagrams dropped by the KDC's kernel: {}\n",
            j["udp_drops"]
        );
    }
    s += &format!(
        "  KDC CPU {} ms ({} cores), RSS kB {}; CPU after the window until idle {} ms\n",
        f("kdc_cpu_ms"),
        j["kdc_cpu_cores"]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.2}")),
        j["kdc_rss_kb"],
        f("kdc_cpu_after_window_ms")
    );
    s += &format!(
        "  generator: start lag p99 {:.1} ms, max {:.1} ms, {} local errors, pre-generation {:.1} s\n",
        j["start_lag_ms"]["p99"].as_f64().unwrap_or(0.0),
        j["start_lag_ms"]["max"].as_f64().unwrap_or(0.0),
        j["local_errors"],
        j["pregeneration_s"].as_f64().unwrap_or(0.0)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(end: End, lag_ms: Option<u64>) -> Record {
        Record {
            end,
            lag: lag_ms.map(Duration::from_millis),
            latency: matches!(end, End::AsRep).then(|| Duration::from_millis(5)),
            sends: u32::from(lag_ms.is_some()),
            try_timeouts: 0,
            failed_connections: 0,
            slow_connects: 0,
            local_errors: u32::from(lag_ms.is_none()),
        }
    }

    #[test]
    fn exchanges_never_sent_mean_the_generator_was_behind() {
        let on_time: Vec<Record> = (0..100).map(|_| record(End::AsRep, Some(1))).collect();
        let schedule = vec![0.1; 100];
        assert!(!Summary::new(&on_time, &schedule, 1.0).behind());
        let mut no_socket = on_time.clone();
        no_socket[99] = record(End::NotSent, None);
        let s = Summary::new(&no_socket, &schedule, 1.0);
        assert_eq!(s.not_sent, 1);
        assert!(s.behind(), "an exchange without a socket was not offered");
        let late: Vec<Record> = (0..100).map(|_| record(End::AsRep, Some(50))).collect();
        assert!(Summary::new(&late, &schedule, 1.0).behind());
    }
}
