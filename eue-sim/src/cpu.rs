//! CPU accounting shared by the load generators: tick samples from /proc
//! (the KDC process, this process, the whole machine) taken around the
//! measured phase, turned into milliseconds, cores in use and per-request
//! cost, and the report lines and JSON fields they all print the same way.

use std::time::Instant;

use anyhow::Context;
use serde_json::{Map, Value, json};

/// `/proc/PID/stat` of the KDC named by `--kdc-pid`, checked readable now
/// so that a wrong pid fails before the load starts.
pub(crate) fn kdc_stat_path(kdc_pid: Option<u32>) -> anyhow::Result<Option<String>> {
    let Some(pid) = kdc_pid else {
        return Ok(None);
    };
    let path = format!("/proc/{pid}/stat");
    proc_cpu_ticks(&path).with_context(|| format!("reading {path} (--kdc-pid)"))?;
    Ok(Some(path))
}

/// CPU ticks at the start of a measured phase.
pub(crate) struct Sampler {
    kdc_stat: Option<String>,
    tck: u64,
    kdc: Option<u64>,
    me: u64,
    machine: Option<(u64, u64)>,
    started: Instant,
}

impl Sampler {
    pub fn start(kdc_stat: Option<&str>) -> anyhow::Result<Sampler> {
        let tck = clk_tck();
        let kdc = kdc_stat.map(proc_cpu_ticks).transpose()?;
        let me = proc_cpu_ticks("/proc/self/stat")?;
        Ok(Sampler {
            kdc_stat: kdc_stat.map(str::to_string),
            tck,
            kdc,
            me,
            machine: machine_ticks(),
            started: Instant::now(),
        })
    }

    /// The CPU use since [`Sampler::start`].
    pub fn finish(self) -> anyhow::Result<CpuUse> {
        let wall = self.started.elapsed();
        let me = proc_cpu_ticks("/proc/self/stat")?;
        let machine = machine_ticks();
        let kdc = self.kdc_stat.as_deref().map(proc_cpu_ticks).transpose()?;
        Ok(CpuUse::new(
            wall,
            self.tck,
            self.kdc.zip(kdc),
            (self.me, me),
            self.machine.zip(machine),
        ))
    }
}

/// CPU use over one measured phase.
pub(crate) struct CpuUse {
    pub wall_s: f64,
    pub nproc: usize,
    pub tck: u64,
    pub kdc_cpu_ms: Option<f64>,
    pub kdc_cores: Option<f64>,
    pub client_cpu_ms: f64,
    pub client_cores: f64,
    /// Busy fraction of all CPUs during the phase, whatever ran on them.
    pub machine_busy: Option<f64>,
}

impl CpuUse {
    /// `kdc` and `me` are (before, after) CPU ticks of the KDC and of this
    /// process; `machine` is ((busy, total) before, (busy, total) after).
    pub fn new(
        wall: std::time::Duration,
        tck: u64,
        kdc: Option<(u64, u64)>,
        me: (u64, u64),
        machine: Option<((u64, u64), (u64, u64))>,
    ) -> CpuUse {
        let wall_s = wall.as_secs_f64();
        let ms = |(a, b): (u64, u64)| b.saturating_sub(a) as f64 * 1000.0 / tck.max(1) as f64;
        let kdc_cpu_ms = kdc.map(ms);
        let client_cpu_ms = ms(me);
        CpuUse {
            wall_s,
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tck,
            kdc_cpu_ms,
            kdc_cores: kdc_cpu_ms.map(|c| c / 1000.0 / wall_s),
            client_cpu_ms,
            client_cores: client_cpu_ms / 1000.0 / wall_s,
            machine_busy: machine.and_then(|((b0, t0), (b1, t1))| {
                (t1 > t0).then(|| b1.saturating_sub(b0) as f64 / (t1 - t0) as f64)
            }),
        }
    }

    /// CPU milliseconds per successful request.
    pub fn per_request(cpu_ms: f64, ok: u64) -> Option<f64> {
        (ok > 0).then(|| cpu_ms / ok as f64)
    }

    /// The KDC's CPU milliseconds per successful request.
    pub fn kdc_ms_per(&self, ok: u64) -> Option<f64> {
        self.kdc_cpu_ms.and_then(|c| CpuUse::per_request(c, ok))
    }

    /// This process's CPU milliseconds per successful request.
    pub fn client_ms_per(&self, ok: u64) -> Option<f64> {
        CpuUse::per_request(self.client_cpu_ms, ok)
    }

    /// Successful requests per second.
    pub fn rate(&self, ok: u64) -> f64 {
        ok as f64 / self.wall_s
    }

    /// Whether the machine's CPUs were (nearly) all busy.
    pub fn saturated(&self) -> bool {
        self.machine_busy.unwrap_or(0.0) >= 0.9
            || self.client_cores + self.kdc_cores.unwrap_or(0.0) >= 0.9 * self.nproc as f64
    }

    /// The JSON fields every load report carries for the CPU.
    pub fn json_fields(&self, ok: u64, kdc_pid: Option<u32>) -> Map<String, Value> {
        let v = json!({
            "nproc": self.nproc,
            "seconds": self.wall_s,
            "req_per_s": self.rate(ok),
            "kdc_pid": kdc_pid,
            "kdc_cpu_ms": self.kdc_cpu_ms,
            "kdc_cpu_ms_per_req": self.kdc_ms_per(ok),
            "kdc_cpu_cores": self.kdc_cores,
            "client_cpu_ms": self.client_cpu_ms,
            "client_cpu_ms_per_req": self.client_ms_per(ok),
            "client_cpu_cores": self.client_cores,
            "machine_cpu_busy": self.machine_busy,
            "clk_tck": self.tck,
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// "  KDC pid …: CPU … ms = … cores; … ms CPU per `what`" (or why not).
    pub fn kdc_line(&self, kdc_pid: Option<u32>, ok: u64, what: &str, precision: usize) -> String {
        match kdc_pid {
            Some(pid) => format!(
                "  KDC pid {pid}: CPU {} ms = {} cores; {} ms CPU per {what}\n",
                opt(self.kdc_cpu_ms, 0),
                opt(self.kdc_cores, 2),
                opt(self.kdc_ms_per(ok), precision)
            ),
            None => "  KDC CPU: not measured (no --kdc-pid)\n".to_string(),
        }
    }

    /// "  all CPUs busy …% (every process); bottleneck: …".
    pub fn busy_line(&self, bottleneck: &str) -> String {
        format!(
            "  all CPUs busy {}% (every process); bottleneck: {bottleneck}\n",
            opt(self.machine_busy.map(|b| b * 100.0), 0)
        )
    }
}

/// A number with `precision` decimals, or "-".
pub(crate) fn opt(v: Option<f64>, precision: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.precision$}"))
}

/// The `q` quantile of sorted latencies.
pub(crate) fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// `{"p50", "p90", "p99", "max"}` of sorted latencies (µs).
pub(crate) fn latency_json(sorted: &[u32]) -> Value {
    json!({
        "p50": percentile(sorted, 0.50),
        "p90": percentile(sorted, 0.90),
        "p99": percentile(sorted, 0.99),
        "max": sorted.last(),
    })
}

/// utime + stime of a process, in clock ticks, from its /proc stat file.
pub(crate) fn proc_cpu_ticks(path: &str) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // Fields after the parenthesised comm (which may contain spaces):
    // state(3) ... utime(14) stime(15).
    let rest = s
        .rfind(')')
        .map(|i| &s[i + 1..])
        .with_context(|| format!("parsing {path}"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        f.get(n - 3)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("parsing field {n} of {path}"))
    };
    Ok(field(14)? + field(15)?)
}

/// (busy, total) clock ticks of all CPUs, from the first line of /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that fails).
pub(crate) fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(100)
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`), in kB.
pub(crate) fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Datagrams the kernel dropped (receive buffer full) on the UDP sockets
/// bound to local `port`, from the `drops` column of /proc/net/udp{,6}.
pub(crate) fn udp_drops(port: u16) -> Option<u64> {
    let want = format!(":{port:04X}");
    let mut total = None;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(s) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in s.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(1).is_some_and(|local| local.ends_with(&want))
                && let Some(d) = f.last().and_then(|d| d.parse::<u64>().ok())
            {
                *total.get_or_insert(0) += d;
            }
        }
    }
    total
}
