//! CPU accounting shared by the load generators: tick samples from
//! /proc (the KDC process, this process, the whole machine) turned into
//! milliseconds, cores in use and per-request cost.

/// CPU use over one measured phase.
pub(crate) struct CpuUse {
    pub wall_s: f64,
    pub nproc: usize,
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

    /// Whether the machine's CPUs were (nearly) all busy.
    pub fn saturated(&self) -> bool {
        self.machine_busy.unwrap_or(0.0) >= 0.9
            || self.client_cores + self.kdc_cores.unwrap_or(0.0) >= 0.9 * self.nproc as f64
    }
}
