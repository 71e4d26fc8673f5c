//! `eue-sim bootstrap-load`: full mutual-TLS handshakes + profile fetches
//! against the certificate-bootstrapping endpoint, each on a new
//! connection (no session resumption), with the server's CPU per handshake.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use serde_json::json;

use crate::bootstrap::{Client, Profile, summarize};
use crate::cpu::{self, CpuUse};
use dev_realm_manifest::Manifest;

#[derive(Debug, Args)]
pub struct BootstrapLoadArgs {
    #[arg(long)]
    pub realm_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Profile::Pktc)]
    pub profile: Profile,
    /// Client threads, each with one connection at a time.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Measured phase, seconds (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Upper bound on fetches, warm-up included.
    #[arg(long, default_value_t = 100_000)]
    pub max_requests: u64,
    /// The server process, to read its CPU time from /proc.
    #[arg(long)]
    pub kdc_pid: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Default)]
struct Stats {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
}

pub fn run(args: &BootstrapLoadArgs) -> anyhow::Result<()> {
    let seconds_ok = args.seconds > 0.0 && args.seconds <= 600.0;
    if !(1..=64).contains(&args.concurrency) || !seconds_ok {
        bail!("--concurrency must be 1..=64 and --seconds in (0, 600]");
    }
    let manifest = Manifest::load(&args.realm_dir)?;
    // Legacy RSA-1024 devices speak only the PacketCable profile.
    let clients: Vec<Client> = manifest
        .devices
        .iter()
        .filter(|d| args.profile == Profile::Pktc || d.key_bits >= 2048)
        .map(|d| {
            Client::new(
                &manifest,
                &args.realm_dir,
                Some(&d.mac),
                args.profile,
                None,
                Duration::from_secs(5),
            )
        })
        .collect::<anyhow::Result<_>>()?;
    let stat = cpu::kdc_stat_path(args.kdc_pid)?;
    // The warm-up may use a quarter of --max-requests, the measured phase the rest.
    let phase = |len: Duration, limit: u64| -> Stats {
        let issued = AtomicU64::new(0);
        let deadline = Instant::now() + len;
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..args.concurrency)
                .map(|t| {
                    let (clients, issued) = (&clients, &issued);
                    s.spawn(move || {
                        let mut st = Stats::default();
                        let mut i = t;
                        while Instant::now() < deadline
                            && issued.fetch_add(1, Ordering::Relaxed) < limit
                        {
                            let c = &clients[i % clients.len()];
                            i += 1;
                            let t0 = Instant::now();
                            let r = c.fetch().and_then(|f| {
                                if f.status != 200 {
                                    bail!("HTTP {}", f.status);
                                }
                                summarize(&f.body, &c.mac).map(|_| ())
                            });
                            match r {
                                Ok(()) => {
                                    st.ok += 1;
                                    st.latencies_us.push(t0.elapsed().as_micros() as u32);
                                }
                                Err(e) => {
                                    st.failed += 1;
                                    st.first_error.get_or_insert_with(|| format!("{e:#}"));
                                }
                            }
                        }
                        st
                    })
                })
                .collect();
            let mut total = Stats::default();
            for h in handles {
                let st = h.join().unwrap_or_default();
                total.ok += st.ok;
                total.failed += st.failed;
                total.first_error = total.first_error.or(st.first_error);
                total.latencies_us.extend(st.latencies_us);
            }
            total
        })
    };
    let warm_limit = (args.max_requests / 4).max(1);
    let warm = phase(Duration::from_secs(1), warm_limit);
    if warm.ok == 0 {
        bail!("no successful fetch in the warm-up: {:?}", warm.first_error);
    }
    let sampler = cpu::Sampler::start(stat.as_deref())?;
    let mut st = phase(
        Duration::from_secs_f64(args.seconds),
        args.max_requests
            .saturating_sub(warm.ok + warm.failed)
            .max(1),
    );
    let cpu = sampler.finish()?;
    st.latencies_us.sort_unstable();
    let l = &st.latencies_us;
    let per = |c: f64| CpuUse::per_request(c, st.ok);
    let report = json!({
        "profile": format!("{:?}", args.profile).to_lowercase(),
        "concurrency": args.concurrency,
        "seconds": cpu.wall_s,
        "ok": st.ok,
        "failed": st.failed,
        "first_error": st.first_error,
        "fetches_per_s": st.ok as f64 / cpu.wall_s,
        "latency_us": {"p50": cpu::percentile(l, 0.5), "p99": cpu::percentile(l, 0.99), "max": l.last()},
        "server_cpu_ms_per_fetch": cpu.kdc_cpu_ms.and_then(per),
        "server_cores": cpu.kdc_cores,
        "client_cpu_ms_per_fetch": per(cpu.client_cpu_ms),
        "client_cores": cpu.client_cores,
        "machine_cpu_busy": cpu.machine_busy,
        "nproc": cpu.nproc,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if st.ok == 0 || st.failed > 0 {
        bail!("{} fetches failed (first: {:?})", st.failed, st.first_error);
    }
    Ok(())
}
