//! `pktc-kdc serve`: starts every listener of the config, the metrics
//! endpoint and the file watch, reloads on SIGHUP, answers admin requests
//! on SIGUSR1 ([`crate::admin`]), stops on SIGTERM/Ctrl-C.
//! Logging is set up by the binary before this runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use certs::store::TrustStoreHandle;

use crate::certboot_service::{self, Watched};
use crate::config::Config;
use crate::crl_fetch::CrlFetcher;
use crate::server;
use crate::state_metrics::ServiceState;
use kdc::kdc::Kdc;
use kdc::pkinit_as::SigningIdentity;

/// What a reload (file watch tick or SIGHUP) looks at.
#[derive(Clone)]
pub struct Reloader {
    pub trust: Option<Arc<TrustStoreHandle>>,
    pub kdc_identity: Option<Arc<dyn SigningIdentity>>,
    pub certboot: Option<Arc<Watched>>,
}

impl Reloader {
    /// File watch: reload what changed.
    pub fn poll(&self) {
        if let Some(t) = &self.trust {
            certboot_service::poll_trust("pkinit", t);
        }
        self.kdc_identity(false);
        if let Some(c) = &self.certboot {
            c.poll();
        }
    }

    /// SIGHUP: re-read the trust directory whether or not it changed, and
    /// whatever else changed. A failure keeps the old state (logged, counted).
    pub fn force(&self) {
        tracing::info!("SIGHUP: reloading");
        if let Some(t) = &self.trust {
            let started = Instant::now();
            let result = t.reload_from_dir().map(Some);
            certboot_service::report_trust_reload("pkinit", t, result, started);
        }
        self.kdc_identity(true);
        if let Some(c) = &self.certboot {
            c.force();
        }
    }

    /// The PKINIT signing certificate, key and chain.
    fn kdc_identity(&self, force: bool) {
        let Some(id) = &self.kdc_identity else { return };
        crate::metrics::report_refresh("kdc_identity", "KDC certificate", id.refresh(force));
    }
}

/// Serves until SIGTERM or Ctrl-C.
pub fn run(
    cfg: Config,
    banner: Option<String>,
    responder: Option<crate::dev::mps_responder::ResponderConfig>,
) -> anyhow::Result<()> {
    let metrics = crate::metrics::install()?;
    crate::metrics::init_series(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Inside the runtime: the Redis connection manager starts tasks.
    let started = Instant::now();
    let kdc = {
        let _rt = rt.enter();
        Arc::new(crate::engine::kdc_from_config(&cfg)?)
    };
    if kdc.pkinit.is_some() {
        // Dominated by loading the device trust store.
        metrics::gauge!("pktc_trust_load_duration_seconds", "store" => "device")
            .set(started.elapsed().as_secs_f64());
    }
    rt.block_on(async {
        if let Some(r) = responder {
            tokio::spawn(async move {
                if let Err(e) = crate::dev::mps_responder::run(r).await {
                    tracing::error!(error = %format!("{e:#}"), "mps-responder stopped");
                }
            });
        }
        let listeners = server::Listeners::bind(&cfg)?;
        let serving = server::start(kdc.clone(), listeners, &cfg)?;
        let mut tasks = Vec::new();
        let trust = kdc.pkinit.as_ref().map(|p| p.trust.clone());
        let certboot = match &cfg.certboot {
            Some(c) => {
                let service = certboot_service::start(&cfg, c, trust.clone())?;
                let credentials = service.store.kind();
                let (t, watched) = service.spawn();
                tasks.extend(t);
                tracing::info!(
                    pktc = ?c.listen,
                    modern = ?c.modern_listen,
                    credentials,
                    "certboot serving"
                );
                Some(Arc::new(watched))
            }
            None => None,
        };
        let crl_fetch = match &cfg.crl_fetch {
            Some(f) => {
                let fetcher = crl_fetcher(f, &cfg, trust.as_ref(), certboot.as_deref());
                let f2 = fetcher.clone();
                tokio::task::spawn_blocking(move || f2.load_cache())
                    .await
                    .context("loading the CRL cache")?;
                tasks.push(tokio::spawn(fetcher.clone().run()));
                Some(fetcher)
            }
            None => None,
        };
        let state = Arc::new(ServiceState {
            kdc: kdc.clone(),
            certboot: certboot.clone(),
            crl_fetch,
        });
        for addr in &cfg.metrics.listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding metrics {addr}"))?;
            let state = state.clone();
            tasks.push(tokio::spawn(crate::metrics::serve(
                l,
                metrics.clone(),
                Arc::new(move || state.refresh()),
            )));
        }
        tasks.push(tokio::spawn(probe_dependencies(
            kdc.clone(),
            certboot.clone(),
        )));
        let reloader = Reloader {
            trust,
            kdc_identity: kdc.pkinit.as_ref().map(|p| p.identity.clone()),
            certboot,
        };
        if cfg.reload.watch_interval_ms > 0 {
            let every = Duration::from_millis(cfg.reload.watch_interval_ms);
            tasks.push(tokio::spawn(watch_files(every, reloader.clone())));
        }
        tasks.push(tokio::spawn(on_sighup(reloader)));
        if let Some(pid_file) = &cfg.admin.pid_file {
            tasks.push(tokio::spawn(on_sigusr1(kdc.clone(), pid_file.clone())));
        }
        let _pid = PidFile::create(cfg.admin.pid_file.as_deref())?;
        tracing::info!(
            realm = %cfg.realm,
            principals = kdc.db.len(),
            udp = ?cfg.listen.udp,
            tcp = ?cfg.listen.tcp,
            metrics = ?cfg.metrics.listen,
            "pktc-kdc serving"
        );
        if let Some(b) = banner {
            println!("{b}");
        }
        shutdown_signal().await;
        tracing::info!("shutting down");
        serving.stop();
        for t in tasks {
            t.abort();
        }
        anyhow::Ok(())
    })
}

/// The CRL fetcher for the device trust store and a certboot-only one.
fn crl_fetcher(
    f: &crate::config::CrlFetch,
    cfg: &Config,
    trust: Option<&Arc<TrustStoreHandle>>,
    certboot: Option<&Watched>,
) -> Arc<CrlFetcher> {
    let mut stores = Vec::new();
    if let Some(t) = trust {
        stores.push(("device", t.clone()));
    }
    if let Some(t) = certboot.and_then(Watched::own_trust) {
        stores.push(("certboot", t.clone()));
    }
    Arc::new(CrlFetcher::new(
        f.clone(),
        cfg.policy.clock_skew_secs,
        stores,
    ))
}

/// Every 10 s: the health of the Redis servers the service depends on, so
/// `pktc_redis_up` is right on a quiet service too.
async fn probe_dependencies(kdc: Arc<Kdc>, certboot: Option<Arc<Watched>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        if let Some(pk) = &kdc.pkinit {
            pk.directory.probe().await;
        }
        if let Some(c) = &certboot {
            c.probe().await;
        }
    }
}

/// The file watch. Reloads parse certificates: off the async workers.
async fn watch_files(every: Duration, reloader: Reloader) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let r = reloader.clone();
        let _ = tokio::task::spawn_blocking(move || r.poll()).await;
    }
}

async fn on_sighup(reloader: Reloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload through the file watch only");
        return;
    };
    while hup.recv().await.is_some() {
        let r = reloader.clone();
        let _ = tokio::task::spawn_blocking(move || r.force()).await;
    }
}

/// SIGUSR1: answer the admin request files beside the pid file
/// (`pktc-kdc mps forget`).
async fn on_sigusr1(kdc: Arc<Kdc>, pid_file: std::path::PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        tracing::warn!(
            "cannot listen for SIGUSR1; `pktc-kdc mps forget` will not reach this process"
        );
        return;
    };
    while usr1.recv().await.is_some() {
        let (kdc, pid_file) = (kdc.clone(), pid_file.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let directory = kdc.pkinit.as_ref().map(|p| p.directory.as_ref());
            crate::admin::serve_requests(&pid_file, |line| {
                crate::cli::mps::handle_request(line, directory)
            });
        })
        .await;
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// `[admin] pid_file`, removed when the service stops.
struct PidFile(Option<std::path::PathBuf>);

impl PidFile {
    fn create(path: Option<&std::path::Path>) -> anyhow::Result<PidFile> {
        if let Some(p) = path {
            std::fs::write(p, format!("{}\n", std::process::id()))
                .with_context(|| format!("writing pid file {}", p.display()))?;
        }
        Ok(PidFile(path.map(std::path::Path::to_path_buf)))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
