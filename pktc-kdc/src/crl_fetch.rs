//! `[crl_fetch]`: keeps the CRLs of the device trust store(s) current by
//! fetching them over HTTP before their nextUpdate.
//!
//! Sources: `crl_fetch.urls` and the `http://` CRL Distribution Points of
//! the trust directory's CA certificates (re-read on every new trust
//! generation; other schemes are logged once and skipped). One task per
//! URL fetches it, installs the answer into every store through
//! [`TrustStoreHandle::install_crl`] (which checks it against its issuer
//! and keeps the CRL in use on any refusal) off the async workers, and
//! sleeps: `refresh_secs` after a success, at most half the time left to
//! the issuer's nextUpdate, and an exponential backoff after a failure,
//! each shortened by jitter. Installed CRLs live in memory and, with
//! `cache_dir`, in one DER file per issuer that the next start loads.

pub mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certs::store::{CrlInstalled, CrlRefused, EntryKind, TrustStoreHandle};
use sha2::Digest;

use crate::config::CrlFetch;
use crate::state_metrics::escape_label;

/// Keeps the CRLs of `stores` current (see the module docs).
pub struct CrlFetcher {
    cfg: CrlFetch,
    skew_secs: i64,
    /// (metric `store` label, handle)
    stores: Vec<(&'static str, Arc<TrustStoreHandle>)>,
    sources: Mutex<BTreeMap<String, Source>>,
    /// Distribution points not fetched (not http://), logged once each.
    skipped: Mutex<BTreeSet<String>>,
}

/// One URL and how fetching it goes.
#[derive(Default)]
struct Source {
    /// Whose CRL it serves: the issuer a distribution point names, or the
    /// issuer of the last CRL it served; `None` until known.
    issuer: Option<String>,
    consecutive_failures: u32,
    last_success: Option<i64>,
    /// Fetches by result, failures by reason (counters, written by hand
    /// with the gauges: a URL that goes away takes its series with it).
    fetches: BTreeMap<&'static str, u64>,
    failures: BTreeMap<&'static str, u64>,
    task: Option<tokio::task::AbortHandle>,
}

/// The result of one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Installed { issuer: String },
    Unchanged { issuer: String },
    Failed { reason: &'static str },
}

impl Outcome {
    fn result(&self) -> &'static str {
        match self {
            Outcome::Installed { .. } => "installed",
            Outcome::Unchanged { .. } => "unchanged",
            Outcome::Failed { .. } => "failed",
        }
    }
}

fn now() -> i64 {
    krb::msg::time::now().0
}

impl CrlFetcher {
    pub fn new(
        cfg: CrlFetch,
        skew_secs: u64,
        stores: Vec<(&'static str, Arc<TrustStoreHandle>)>,
    ) -> CrlFetcher {
        CrlFetcher {
            cfg,
            skew_secs: i64::try_from(skew_secs).unwrap_or(i64::MAX),
            stores,
            sources: Mutex::new(BTreeMap::new()),
            skipped: Mutex::new(BTreeSet::new()),
        }
    }

    /// Installs the CRLs of `cache_dir` (a restart starts where the last
    /// run was); each is checked like a fetched one. Blocking: call it
    /// before serving or off the async workers.
    pub fn load_cache(&self) {
        let Some(dir) = &self.cfg.cache_dir else {
            return;
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "CRL cache directory unusable; CRLs are kept in memory only");
            return;
        }
        for (path, bytes) in cached_crls(dir, self.cfg.max_bytes) {
            let source = path.display().to_string();
            match self.install(&source, &bytes) {
                Outcome::Failed { reason } => tracing::info!(
                    file = %source,
                    reason,
                    "cached CRL not used (the trust directory's or a fetched one applies)"
                ),
                _ => tracing::info!(file = %source, "cached CRL loaded"),
            }
        }
    }

    /// Follows the sources until the task is aborted: every 5 s, a new
    /// trust generation re-reads the distribution points.
    pub async fn run(self: Arc<Self>) {
        let mut seen: Option<Vec<u64>> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let generations: Vec<u64> = self
                .stores
                .iter()
                .map(|(_, h)| h.load().generation())
                .collect();
            if seen.as_ref() != Some(&generations) {
                seen = Some(generations);
                // Reads the CA certificates' extensions: off the async workers.
                let this = self.clone();
                let _ = tokio::task::spawn_blocking(move || this.sync_sources()).await;
            }
        }
    }

    /// The URLs to follow: the configured ones and the distribution points
    /// (with the issuer whose CRL each should serve).
    fn wanted(&self) -> BTreeMap<String, Option<String>> {
        let mut out: BTreeMap<String, Option<String>> =
            self.cfg.urls.iter().map(|u| (u.clone(), None)).collect();
        if !self.cfg.from_distribution_points {
            return out;
        }
        for (_, handle) in &self.stores {
            for dp in handle.load().distribution_points() {
                if let Err(e) = http::Target::parse(&dp.url) {
                    let mut skipped = self.skipped.lock().unwrap_or_else(|e| e.into_inner());
                    if skipped.insert(dp.url.clone()) {
                        tracing::warn!(
                            url = %dp.url,
                            named_by = %dp.named_by,
                            error = %e,
                            "CRL distribution point not fetched"
                        );
                    }
                    continue;
                }
                let issuer = out.entry(dp.url).or_default();
                issuer.get_or_insert(dp.crl_issuer);
            }
        }
        out
    }

    /// Starts a task for each new URL and stops those of URLs gone.
    fn sync_sources(self: &Arc<Self>) {
        let wanted = self.wanted();
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.retain(|url, s| {
            let keep = wanted.contains_key(url);
            if !keep {
                if let Some(t) = s.task.take() {
                    t.abort();
                }
                tracing::info!(url = %url, "CRL source no longer named; not fetched any more");
            }
            keep
        });
        for (url, expected) in wanted {
            let Ok(target) = http::Target::parse(&url) else {
                continue;
            };
            let source = sources.entry(url.clone()).or_default();
            if let Some(issuer) = expected {
                source.issuer.get_or_insert(issuer);
            }
            if source.task.is_none() {
                for result in ["installed", "unchanged", "failed"] {
                    source.fetches.entry(result).or_insert(0);
                }
                tracing::info!(url = %url, "following CRL source");
                let task = tokio::spawn(self.clone().follow(url, target));
                source.task = Some(task.abort_handle());
            }
        }
    }

    async fn follow(self: Arc<Self>, url: String, target: http::Target) {
        loop {
            let outcome = self.fetch(&url, &target).await;
            let delay = self.delay_after(&url, &outcome);
            tracing::debug!(url = %url, ?outcome, next_in_secs = delay.as_secs(), "CRL fetch");
            tokio::time::sleep(delay).await;
        }
    }

    /// One fetch and install of `url`, recorded in metrics and the log.
    pub async fn fetch(self: &Arc<Self>, url: &str, target: &http::Target) -> Outcome {
        let limits = http::Limits {
            timeout: Duration::from_millis(self.cfg.timeout_ms),
            max_bytes: self.cfg.max_bytes,
        };
        let outcome = match http::get(target, limits).await {
            Err(e) => {
                tracing::warn!(
                    url,
                    reason = e.reason(),
                    error = %e,
                    "CRL fetch failed; keeping the CRL in use"
                );
                Outcome::Failed { reason: e.reason() }
            }
            Ok(bytes) => {
                let (this, source) = (self.clone(), url.to_owned());
                // Signature checks and a new store generation: not on the async workers.
                tokio::task::spawn_blocking(move || this.install(&source, &bytes))
                    .await
                    .unwrap_or(Outcome::Failed { reason: "internal" })
            }
        };
        self.record(url, &outcome);
        outcome
    }

    /// Installs `bytes` into every store. It counts as installed (or
    /// unchanged) when a store took it; a store without its issuer (a
    /// certboot-only directory, say) does not make it a failure.
    fn install(&self, source: &str, bytes: &[u8]) -> Outcome {
        let now = now();
        let mut outcome: Option<Outcome> = None;
        let mut refusal: Option<CrlRefused> = None;
        for (store, handle) in &self.stores {
            match handle.install_crl(bytes, source, now, self.skew_secs) {
                Ok(CrlInstalled::Installed {
                    generation,
                    issuer,
                    this_update,
                    next_update,
                }) => {
                    tracing::info!(
                        source,
                        store,
                        issuer = %issuer,
                        generation,
                        this_update,
                        next_update,
                        "CRL installed"
                    );
                    self.write_cache(handle, &issuer);
                    outcome = Some(Outcome::Installed { issuer });
                }
                Ok(CrlInstalled::Unchanged { issuer }) => {
                    if outcome.is_none() {
                        outcome = Some(Outcome::Unchanged { issuer });
                    }
                }
                Err(e) => {
                    // A specific refusal says more than "not this store's issuer".
                    if refusal
                        .as_ref()
                        .is_none_or(|r| matches!(r, CrlRefused::UnknownIssuer { .. }))
                    {
                        refusal = Some(e);
                    }
                }
            }
        }
        if let Some(o) = outcome {
            return o;
        }
        let Some(e) = refusal else {
            return Outcome::Failed { reason: "internal" };
        };
        tracing::warn!(
            source,
            reason = e.reason(),
            error = %e,
            "CRL refused; keeping the CRL in use"
        );
        Outcome::Failed { reason: e.reason() }
    }

    fn record(&self, url: &str, outcome: &Outcome) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let source = sources.entry(url.to_owned()).or_default();
        *source.fetches.entry(outcome.result()).or_insert(0) += 1;
        match outcome {
            Outcome::Installed { issuer } | Outcome::Unchanged { issuer } => {
                source.consecutive_failures = 0;
                source.last_success = Some(now());
                source.issuer = Some(issuer.clone());
            }
            Outcome::Failed { reason } => {
                source.consecutive_failures = source.consecutive_failures.saturating_add(1);
                *source.failures.entry(reason).or_insert(0) += 1;
            }
        }
    }

    /// How long to wait before the next fetch of `url`.
    fn delay_after(&self, url: &str, outcome: &Outcome) -> Duration {
        let cfg = &self.cfg;
        let (failures, issuer) = {
            let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            sources
                .get(url)
                .map_or((0, None), |s| (s.consecutive_failures, s.issuer.clone()))
        };
        let failed = matches!(outcome, Outcome::Failed { .. });
        let left = issuer.and_then(|i| self.next_update(&i)).map(|n| n - now());
        fetch_delay(cfg, failed, failures, left, random_fraction())
    }

    /// The earliest nextUpdate of `issuer`'s CRL in the stores.
    fn next_update(&self, issuer: &str) -> Option<i64> {
        self.stores
            .iter()
            .flat_map(|(_, h)| {
                h.load()
                    .entries()
                    .iter()
                    .filter(|e| e.kind == EntryKind::Crl && e.subject == issuer)
                    .map(|e| e.expires)
                    .collect::<Vec<_>>()
            })
            .min()
    }

    fn write_cache(&self, handle: &TrustStoreHandle, issuer: &str) {
        let Some(dir) = &self.cfg.cache_dir else {
            return;
        };
        let store = handle.load();
        let Some(crl) = store.fetched_crls().iter().find(|f| f.issuer() == issuer) else {
            return;
        };
        let path = cache_path(dir, issuer);
        if let Err(e) = krb::atomic_file::write_public(&path, crl.der()) {
            tracing::warn!(file = %path.display(), error = %e, "writing the CRL cache failed; the CRL is in use from memory");
        }
    }

    /// The URL rows of [`fetcher_exposition`].
    fn rows(&self, out: &mut FetcherSeries) {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        for (url, s) in sources.iter() {
            let labels = format!(
                "url=\"{}\",issuer=\"{}\"",
                escape_label(url),
                escape_label(s.issuer.as_deref().unwrap_or(""))
            );
            let url = escape_label(url);
            let _ = writeln!(
                out.failing,
                "pktc_crl_fetch_consecutive_failures{{{labels}}} {}",
                s.consecutive_failures
            );
            let _ = writeln!(
                out.success,
                "pktc_crl_fetch_last_success_timestamp_seconds{{{labels}}} {}",
                s.last_success.unwrap_or(0)
            );
            for (result, n) in &s.fetches {
                let _ = writeln!(
                    out.fetches,
                    "pktc_crl_fetches_total{{url=\"{url}\",result=\"{result}\"}} {n}"
                );
            }
            for (reason, n) in &s.failures {
                let _ = writeln!(
                    out.failures,
                    "pktc_crl_fetch_failures_total{{url=\"{url}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
    }
}

/// The four families of the fetcher, in exposition order.
struct FetcherSeries {
    fetches: String,
    failures: String,
    failing: String,
    success: String,
}

/// The fetcher's series, written by hand at scrape time (the URL and
/// issuer sets follow the trust directory): fetches by result, failures by
/// reason, consecutive failures and last success per URL. The families are
/// always declared, with no samples when nothing is fetched, so dashboards
/// and alert rules find them.
pub fn fetcher_exposition(fetcher: Option<&CrlFetcher>) -> String {
    let mut out = FetcherSeries {
        fetches: "# HELP pktc_crl_fetches_total CRL fetches by URL and result (installed, unchanged, failed)\n\
                  # TYPE pktc_crl_fetches_total counter\n"
            .into(),
        failures: "# HELP pktc_crl_fetch_failures_total Failed CRL fetches by URL and reason\n\
                   # TYPE pktc_crl_fetch_failures_total counter\n"
            .into(),
        failing: "# HELP pktc_crl_fetch_consecutive_failures Failed fetches of a CRL URL since its last success\n\
                  # TYPE pktc_crl_fetch_consecutive_failures gauge\n"
            .into(),
        success: "# HELP pktc_crl_fetch_last_success_timestamp_seconds Unix time of the last fetch that installed or confirmed the CRL (0: none yet)\n\
                  # TYPE pktc_crl_fetch_last_success_timestamp_seconds gauge\n"
            .into(),
    };
    if let Some(f) = fetcher {
        f.rows(&mut out);
    }
    out.fetches + &out.failures + &out.failing + &out.success
}

/// `pktc_crl_age_seconds` and `pktc_crl_next_update_seconds` of the CRL
/// in use for each issuer of each store (the newest by thisUpdate); the
/// families are declared even when no store has a CRL.
pub fn crl_exposition(stores: &[(&'static str, &TrustStoreHandle)]) -> String {
    let now = now();
    let mut rows = Vec::new();
    for (store, handle) in stores {
        let s = handle.load();
        let mut newest: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for crl in s.crls() {
            let issuer = certs::name_string(crl.issuer_name());
            let Ok(this_update) = certs::time::unix(crl.last_update()) else {
                continue;
            };
            let next_update = crl
                .next_update()
                .and_then(|t| certs::time::unix(t).ok())
                .unwrap_or(i64::MAX);
            let slot = newest.entry(issuer).or_insert((this_update, next_update));
            if this_update > slot.0 {
                *slot = (this_update, next_update);
            }
        }
        for (issuer, (this_update, next_update)) in newest {
            let fetched = s
                .fetched_crls()
                .iter()
                .any(|f| f.issuer() == issuer && f.this_update() == this_update);
            rows.push((*store, issuer, fetched, this_update, next_update));
        }
    }
    let mut age = String::from(
        "# HELP pktc_crl_age_seconds Seconds since the thisUpdate of the CRL in use\n\
         # TYPE pktc_crl_age_seconds gauge\n",
    );
    let mut next = String::from(
        "# HELP pktc_crl_next_update_seconds Seconds until the nextUpdate of the CRL in use; negative once passed\n\
         # TYPE pktc_crl_next_update_seconds gauge\n",
    );
    for (store, issuer, fetched, this_update, next_update) in rows {
        let labels = format!(
            "store=\"{store}\",issuer=\"{}\",source=\"{}\"",
            escape_label(&issuer),
            if fetched { "fetched" } else { "file" }
        );
        let _ = writeln!(
            age,
            "pktc_crl_age_seconds{{{labels}}} {}",
            now - this_update
        );
        // A CRL without nextUpdate: no series (it never expires).
        if next_update != i64::MAX {
            let _ = writeln!(
                next,
                "pktc_crl_next_update_seconds{{{labels}}} {}",
                next_update - now
            );
        }
    }
    age + &next
}

/// The `*.crl` files of a cache directory, in name order, each at most
/// `max_bytes` (larger or unreadable ones are skipped with a log line).
pub fn cached_crls(dir: &Path, max_bytes: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let fits = std::fs::metadata(&path).is_ok_and(|m| m.len() <= max_bytes as u64);
        match std::fs::read(&path) {
            Ok(bytes) if fits => out.push((path, bytes)),
            _ => {
                tracing::warn!(file = %path.display(), "cached CRL unreadable or too large; skipped")
            }
        }
    }
    out
}

/// `<dir>/<first 16 hex digits of SHA-256(issuer)>.crl`: one file per issuer.
pub fn cache_path(dir: &Path, issuer: &str) -> PathBuf {
    let digest = sha2::Sha256::digest(issuer.as_bytes());
    dir.join(format!("{}.crl", hex::encode(&digest[..8])))
}

/// The wait before the next fetch of a source: `refresh_secs` after a
/// success; after the n-th failure in a row `retry_min_secs` doubled n-1
/// times, capped by `retry_max_secs` and `refresh_secs`; never more than
/// half the `left` seconds to the issuer's nextUpdate (but at least
/// `retry_min_secs`); shortened by up to `jitter_percent` (`jitter` in
/// [0, 1)).
fn fetch_delay(
    cfg: &CrlFetch,
    failed: bool,
    failures: u32,
    left: Option<i64>,
    jitter: f64,
) -> Duration {
    let mut secs = if failed {
        let doublings = failures.saturating_sub(1).min(20);
        cfg.retry_min_secs
            .saturating_mul(1 << doublings)
            .min(cfg.retry_max_secs)
            .min(cfg.refresh_secs)
    } else {
        cfg.refresh_secs
    };
    // Closer to nextUpdate, try more often: at most half the time left.
    if let Some(left) = left
        && left > 0
    {
        let half = u64::try_from(left / 2).unwrap_or(0).max(cfg.retry_min_secs);
        secs = secs.min(half);
    }
    let jitter = f64::from(cfg.jitter_percent) / 100.0 * jitter;
    Duration::from_secs_f64(secs as f64 * (1.0 - jitter))
}

/// Uniform in [0, 1), for jitter.
fn random_fraction() -> f64 {
    let mut b = [0u8; 4];
    if openssl::rand::rand_bytes(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(refresh: u64, retry_min: u64, retry_max: u64, jitter_percent: u32) -> CrlFetch {
        let mut c: CrlFetch = toml::from_str("").unwrap();
        c.refresh_secs = refresh;
        c.retry_min_secs = retry_min;
        c.retry_max_secs = retry_max;
        c.jitter_percent = jitter_percent;
        c
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn success_waits_refresh_failures_back_off_to_their_cap() {
        let c = cfg(3600, 30, 600, 0);
        assert_eq!(secs(fetch_delay(&c, false, 0, None, 0.0)), 3600.0);
        let backoff: Vec<f64> = (1..=7)
            .map(|n| secs(fetch_delay(&c, true, n, None, 0.0)))
            .collect();
        assert_eq!(backoff, [30.0, 60.0, 120.0, 240.0, 480.0, 600.0, 600.0]);
        // Never longer than a success's wait, however many failures.
        let short = cfg(100, 30, 600, 0);
        assert_eq!(secs(fetch_delay(&short, true, 40, None, 0.0)), 100.0);
    }

    #[test]
    fn near_next_update_at_most_half_the_time_left_but_not_below_retry_min() {
        let c = cfg(3600, 30, 600, 0);
        assert_eq!(secs(fetch_delay(&c, false, 0, Some(1000), 0.0)), 500.0);
        assert_eq!(secs(fetch_delay(&c, true, 5, Some(400), 0.0)), 200.0);
        assert_eq!(secs(fetch_delay(&c, false, 0, Some(20), 0.0)), 30.0);
        // Already past nextUpdate: the normal schedule (the failure back-off).
        assert_eq!(secs(fetch_delay(&c, true, 1, Some(-5), 0.0)), 30.0);
        assert_eq!(secs(fetch_delay(&c, false, 0, Some(100_000), 0.0)), 3600.0);
    }

    #[test]
    fn jitter_only_shortens_by_up_to_its_percent() {
        let c = cfg(1000, 30, 600, 10);
        assert_eq!(secs(fetch_delay(&c, false, 0, None, 0.0)), 1000.0);
        let most = secs(fetch_delay(&c, false, 0, None, 0.999_999));
        assert!((900.0..1000.0).contains(&most), "{most}");
        assert!((0.0..1.0).contains(&random_fraction()));
    }
}
