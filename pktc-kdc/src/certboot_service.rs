//! Wires the certificate-bootstrapping endpoint into `pktc-kdc serve`:
//! listeners from `[certboot]`, the device trust store shared with PKINIT,
//! audit lines for every handshake and request, and the file watch that
//! reloads trust, the server certificate and the credentials file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use certboot::creds::{CredentialStore, FileStore, RedisStore};
use certboot::failures::FailureBudget;
use certboot::rotation::{Contexts, IdentitySource};
use certboot::server::{Endpoint, Event, Limits, Observer};
use certboot::tls::{MinVersion, TlsProfile, TlsSettings};
use certs::store::TrustStoreHandle;
use tokio::net::TcpListener;

use crate::config::{Certboot, Config};

/// What `pktc-kdc serve` runs for `[certboot]`.
pub struct CertbootService {
    pub endpoints: Vec<(Arc<Endpoint>, TcpListener)>,
    pub identity: Arc<IdentitySource>,
    pub store: Arc<dyn CredentialStore>,
    /// Set when certboot has its own trust directory (not PKINIT's).
    pub own_trust: Option<Arc<TrustStoreHandle>>,
}

/// Binds the listeners and builds the first TLS contexts; fails on any
/// problem so a bad certificate or key stops the start, not the first device.
/// Call inside the runtime (Redis, listeners).
pub fn start(
    cfg: &Config,
    c: &Certboot,
    pkinit_trust: Option<Arc<TrustStoreHandle>>,
) -> anyhow::Result<CertbootService> {
    let same_dir = |t: &TrustStoreHandle| {
        c.device_trust_dir
            .as_deref()
            .is_none_or(|d| same_path(d, t.dir()))
    };
    let (trust, own_trust) =
        match pkinit_trust {
            Some(t) if same_dir(&t) && c.crl_policy.is_none() => (t, None),
            _ => {
                let dir = c
                    .device_trust_dir
                    .clone()
                    .or_else(|| cfg.pkinit.as_ref().map(|p| p.device_trust_dir.clone()))
                    .context("certboot.device_trust_dir")?;
                let policy = c
                    .crl_policy
                    .or(cfg.pkinit.as_ref().map(|p| p.crl_policy))
                    .unwrap_or_default();
                let t = Arc::new(TrustStoreHandle::open(&dir, policy.policy()).with_context(
                    || format!("loading certboot device trust from {}", dir.display()),
                )?);
                (t.clone(), Some(t))
            }
        };
    let identity = Arc::new(
        IdentitySource::open(&c.server_cert, &c.server_key, c.server_chain.as_deref())
            .context("certboot server certificate")?,
    );
    let store: Arc<dyn CredentialStore> = match (&c.credentials_file, &c.credentials_redis) {
        (Some(path), _) => Arc::new(FileStore::open(path).context("certboot credentials")?),
        (None, Some(url)) => {
            let client =
                crate::redis_conn::client(url, &cfg.redis).context("certboot.credentials_redis")?;
            Arc::new(
                RedisStore::new(client, Duration::from_millis(500))
                    .context("certboot.credentials_redis")?,
            )
        }
        (None, None) => anyhow::bail!("certboot: no credential store"),
    };
    let limits = Limits {
        handshake_timeout: Duration::from_millis(c.handshake_timeout_ms),
        header_read_timeout: Duration::from_millis(c.header_read_timeout_ms),
        connection_timeout: Duration::from_millis(c.connection_timeout_ms),
        max_header_bytes: c.max_header_bytes,
        max_connections: c.max_connections,
        max_connections_per_source: c.max_connections_per_source.max(1),
        write_timeout: Duration::from_millis(c.write_timeout_ms.max(1)),
    };
    let min_version = c.min_tls_version.version();
    let observer: Arc<dyn Observer> = Arc::new(AuditObserver);
    let failures = Arc::new(FailureBudget::new(
        c.failures_per_source_per_sec,
        c.failure_burst,
    ));
    let mut endpoints = Vec::new();
    for (profile, addrs) in [
        (TlsProfile::Pktc, &c.listen),
        (TlsProfile::Modern, &c.modern_listen),
    ] {
        if addrs.is_empty() {
            continue;
        }
        let settings = TlsSettings {
            profile,
            min_version: if profile == TlsProfile::Pktc {
                min_version
            } else {
                MinVersion::Tls12
            },
            security_level: c.security_level,
        };
        let contexts = Arc::new(
            Contexts::new(settings, trust.clone(), identity.clone())
                .with_context(|| format!("certboot TLS ({} profile)", profile.name()))?,
        );
        let endpoint = Arc::new(Endpoint::new(
            contexts,
            store.clone(),
            &c.path,
            limits,
            observer.clone(),
            failures.clone(),
        ));
        for addr in addrs {
            endpoints.push((endpoint.clone(), bind(*addr)?));
        }
    }
    Ok(CertbootService {
        endpoints,
        identity,
        store,
        own_trust,
    })
}

fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .with_context(|| format!("binding certboot {addr}"))?;
    s.listen(1024)?;
    Ok(TcpListener::from_std(s.into())?)
}

impl CertbootService {
    /// Spawns the accept loops.
    pub fn spawn(self) -> (Vec<tokio::task::JoinHandle<()>>, Watched) {
        let tasks = self
            .endpoints
            .into_iter()
            .map(|(e, l)| tokio::spawn(e.serve(l)))
            .collect();
        (
            tasks,
            Watched {
                identity: self.identity,
                store: self.store,
                own_trust: self.own_trust,
            },
        )
    }
}

/// What the file watch checks for certboot.
pub struct Watched {
    identity: Arc<IdentitySource>,
    store: Arc<dyn CredentialStore>,
    own_trust: Option<Arc<TrustStoreHandle>>,
}

impl Watched {
    /// The certboot-only trust store, when it has its own directory.
    pub fn own_trust(&self) -> Option<&Arc<TrustStoreHandle>> {
        self.own_trust.as_ref()
    }

    /// The server identity in use.
    pub fn identity(&self) -> Arc<(u64, certboot::tls::ServerIdentity)> {
        self.identity.load()
    }

    /// Pings a networked credential store (see [`Self::redis_gauges`]).
    pub async fn probe(&self) {
        self.store.probe().await;
    }

    /// `pktc_redis_up` / `pktc_redis_errors_total` for a Redis credential store.
    pub fn redis_gauges(&self) {
        if let Some((up, errors)) = self.store.health() {
            metrics::gauge!("pktc_redis_up", "use" => "certboot_credentials").set(if up {
                1.0
            } else {
                0.0
            });
            metrics::counter!("pktc_redis_errors_total", "use" => "certboot_credentials")
                .absolute(errors);
        }
    }

    /// SIGHUP: the certboot-only trust directory is re-read whether or
    /// not it changed; the files are re-read if they changed.
    pub fn force(&self) {
        if let Some(t) = &self.own_trust {
            let started = std::time::Instant::now();
            report_trust_reload("certboot", t, t.reload_from_dir().map(Some), started);
        }
        self.poll_files();
    }

    pub fn poll(&self) {
        if let Some(t) = &self.own_trust {
            poll_trust("certboot", t);
        }
        self.poll_files();
    }

    fn poll_files(&self) {
        crate::metrics::report_refresh(
            "certboot_identity",
            "certboot server certificate",
            self.identity.refresh(),
        );
        crate::metrics::report_refresh(
            "certboot_credentials",
            "certboot credentials",
            self.store.refresh(),
        );
    }
}

/// One file-watch step for a trust directory.
pub fn poll_trust(user: &'static str, trust: &TrustStoreHandle) {
    let started = std::time::Instant::now();
    report_trust_reload(user, trust, trust.reload_if_changed(), started);
}

/// Logs and counts one trust reload attempt (`Ok(None)`: nothing changed).
pub fn report_trust_reload(
    user: &'static str,
    trust: &TrustStoreHandle,
    result: Result<Option<u64>, certs::store::LoadError>,
    started: std::time::Instant,
) {
    let store = if user == "certboot" {
        "certboot"
    } else {
        "device"
    };
    match result {
        Ok(Some(generation)) => {
            crate::metrics::reload("device_trust", true);
            metrics::gauge!("pktc_trust_load_duration_seconds", "store" => store)
                .set(started.elapsed().as_secs_f64());
            tracing::info!(
                user,
                dir = %trust.dir().display(),
                generation,
                "device trust reloaded"
            );
        }
        Ok(None) => {}
        Err(e) => {
            crate::metrics::reload("device_trust", false);
            tracing::error!(
                user,
                dir = %trust.dir().display(),
                error = %e,
                "device trust reload failed; keeping the current store"
            );
        }
    }
}

/// docs/metrics.md, "Certificate bootstrapping".
fn record_metrics(event: &Event<'_>) {
    match event {
        Event::Handshake(h) => {
            let (outcome, reason, version, cipher) = match &h.result {
                Ok(n) => ("ok", "-", n.version, n.cipher),
                Err(f) => ("error", f.reason, "-", "-"),
            };
            metrics::counter!(
                "pktc_certboot_handshakes_total",
                "profile" => h.profile,
                "outcome" => outcome,
                "reason" => reason,
                "version" => version,
                "cipher" => cipher,
            )
            .increment(1);
        }
        Event::Request(r) => {
            metrics::counter!(
                "pktc_certboot_requests_total",
                "status" => status_label(r.status),
                "reason" => r.outcome.name(),
            )
            .increment(1);
        }
        Event::HttpRefused { refusal, .. } => {
            metrics::counter!(
                "pktc_certboot_requests_total",
                "status" => refusal.status().map_or("-", status_label),
                "reason" => refusal.name(),
            )
            .increment(1);
        }
        Event::Overloaded { .. } => {
            metrics::counter!(
                "pktc_certboot_connections_rejected_total",
                "reason" => "too_many_connections",
            )
            .increment(1);
        }
        Event::RateLimited { .. } => {
            metrics::counter!(
                "pktc_certboot_connections_rejected_total",
                "reason" => "rate_limited",
            )
            .increment(1);
        }
        Event::Evicted { same_source, .. } => {
            let reason = if *same_source {
                "same_source"
            } else {
                "oldest_idle"
            };
            metrics::counter!("pktc_certboot_connections_evicted_total", "reason" => reason)
                .increment(1);
        }
        Event::ContextError { .. } => crate::metrics::reload("certboot_tls_context", false),
    }
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        404 => "404",
        405 => "405",
        431 => "431",
        503 => "503",
        _ => "other",
    }
}

/// Audit lines (target `audit`) for handshakes and requests.
struct AuditObserver;

impl Observer for AuditObserver {
    fn event(&self, event: Event<'_>) {
        record_metrics(&event);
        match event {
            Event::Handshake(h) => match &h.result {
                Ok(n) => tracing::info!(
                    target: "audit",
                    exchange = "certboot",
                    step = "handshake",
                    source = %h.peer,
                    profile = h.profile,
                    mac = %certs::mac::format_mac(n.mac),
                    tls_version = n.version,
                    cipher = n.cipher,
                    outcome = "ok",
                    latency_us = h.latency.as_micros() as u64,
                ),
                Err(f) => tracing::info!(
                    target: "audit",
                    exchange = "certboot",
                    step = "handshake",
                    source = %h.peer,
                    profile = h.profile,
                    outcome = "error",
                    reason = f.reason,
                    detail = %f.detail,
                    latency_us = h.latency.as_micros() as u64,
                ),
            },
            Event::Request(r) => tracing::info!(
                target: "audit",
                exchange = "certboot",
                step = "request",
                source = %r.peer,
                mac = %certs::mac::format_mac(r.mac),
                method = %r.method,
                path = %r.path,
                status = r.status,
                outcome = if r.status == 200 { "ok" } else { "error" },
                reason = r.outcome.name(),
                detail = r.detail.as_deref().unwrap_or("-"),
                latency_us = r.latency.as_micros() as u64,
            ),
            Event::HttpRefused {
                peer,
                mac,
                refusal,
                detail,
            } => tracing::info!(
                target: "audit",
                exchange = "certboot",
                step = "request",
                source = %peer,
                mac = %certs::mac::format_mac(mac),
                status = %refusal.status().map_or_else(|| "-".to_string(), |s| s.to_string()),
                outcome = "error",
                reason = refusal.name(),
                detail = %detail,
            ),
            Event::RateLimited { peer } => tracing::info!(
                target: "audit",
                exchange = "certboot",
                step = "accept",
                source = %peer,
                outcome = "error",
                reason = "rate_limited",
            ),
            Event::Overloaded { peer } => tracing::info!(
                target: "audit",
                exchange = "certboot",
                step = "accept",
                source = %peer,
                outcome = "error",
                reason = "too_many_connections",
            ),
            Event::Evicted { peer, same_source } => tracing::info!(
                target: "audit",
                exchange = "certboot",
                step = "accept",
                source = %peer,
                outcome = "ok",
                reason = if same_source { "evicted_same_source" } else { "evicted_oldest_idle" },
            ),
            Event::ContextError { profile, error } => tracing::error!(
                profile,
                error = %error,
                "certboot: new TLS context failed; keeping the previous one"
            ),
        }
    }
}
