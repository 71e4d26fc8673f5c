//! The device directory backed by provisioning servers (pkt-eue-7): the
//! MAC cache first, then the server the device named in
//! PA-PROV-SRV-LOCATION (or the default one), with negative caching of
//! "unknown MAC" and, when the policy allows, the last known answer when
//! the server is silent.
//!
//! A cached answer (memory or Redis, positive or "unknown MAC") that would
//! refuse the request is never the last word: the server is asked once
//! more, bypassing both caches, and the fresh answer decides and replaces
//! the cached one everywhere. [`RecheckLimiter`] bounds those questions to
//! one per MAC per `mps.recheck_interval_secs`.

use std::collections::HashMap;

use fqdn_map::cache::{Cached, MappingCache};
use fqdn_map::client::{Binding, LookupError, MpsClient, MpsTarget};

use crate::recheck::RecheckLimiter;
use kdc::directory::{AddressPolicy, DeviceDirectory, DeviceQuery, LookupFuture};

/// What to do when no provisioning server answers.
/// (`mps.on_timeout`: `refuse` or `allow-if-cached`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnTimeout {
    /// Refuse the device (strict; the default).
    #[default]
    Refuse,
    /// Use the last answer for this MAC, if there was one.
    AllowIfCached,
}

pub struct MpsDirectory {
    pub client: MpsClient,
    /// Provisioning servers by FQDN (lower case, no trailing dot).
    pub servers: HashMap<String, MpsTarget>,
    /// The FQDN to ask when the device names none we know.
    pub default_server: String,
    pub cache: MappingCache,
    pub on_timeout: OnTimeout,
    pub address_policy: AddressPolicy,
    /// Shared with the other replicas through Redis, when configured.
    pub shared: Option<crate::shared_cache::SharedMappings>,
    /// When a cached refusal may be checked with the server again.
    pub rechecks: RecheckLimiter,
}

/// What became of a cached answer that would have refused the request
/// (a metric label and an audit field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// The server's fresh answer admits the request: the cache was stale.
    Accepted,
    /// The fresh answer refuses it too.
    Refused,
    /// Not asked: the server answered about this MAC within the interval.
    Suppressed,
    /// The server did not answer; the cached answer stands.
    Failed,
}

impl Recheck {
    pub fn label(self) -> &'static str {
        match self {
            Recheck::Accepted => "accepted",
            Recheck::Refused => "refused",
            Recheck::Suppressed => "suppressed",
            Recheck::Failed => "failed",
        }
    }
}

/// How one lookup went, for its metrics and audit event.
#[derive(Debug, Clone, Copy, Default)]
struct Trace {
    /// The answer came from the provisioning server.
    asked_server: bool,
    recheck: Option<Recheck>,
}

fn key(fqdn: &str) -> String {
    fqdn.trim_end_matches('.').to_ascii_lowercase()
}

fn answer_of(c: Cached) -> Option<Result<Binding, LookupError>> {
    match c {
        Cached::Hit(b) => Some(Ok(b)),
        Cached::Negative => Some(Err(LookupError::UnknownMac)),
        Cached::Miss => None,
    }
}

impl MpsDirectory {
    fn target(&self, hint: Option<&str>) -> Option<&MpsTarget> {
        hint.and_then(|h| self.servers.get(&key(h)))
            .or_else(|| self.servers.get(&key(&self.default_server)))
    }

    /// Whether `answer` would refuse what the request claims.
    fn would_refuse(&self, query: &DeviceQuery, answer: &Result<Binding, LookupError>) -> bool {
        let Some(claim) = &query.claim else {
            return false;
        };
        match answer {
            Ok(b) => kdc::directory::refuses(self.address_policy, Some(b), claim),
            Err(LookupError::UnknownMac) => true,
            Err(_) => false,
        }
    }

    /// [`Self::lookup_uncounted`] with its metric and audit event.
    async fn resolve(&self, query: &DeviceQuery) -> Result<Binding, LookupError> {
        let started = std::time::Instant::now();
        let (result, trace) = self.lookup_uncounted(query).await;
        self.record(query, &result, trace, started.elapsed());
        result
    }

    /// The metrics and the audit event (exchange `lookup`) of one lookup.
    fn record(
        &self,
        query: &DeviceQuery,
        result: &Result<Binding, LookupError>,
        trace: Trace,
        elapsed: std::time::Duration,
    ) {
        let asked_server = trace.asked_server;
        let outcome = match result {
            Ok(_) if asked_server => "miss",
            Ok(_) => "hit",
            Err(LookupError::UnknownMac) => "unknown_mac",
            Err(LookupError::Timeout) => "timeout",
            Err(LookupError::MpsError(_)) => "mps_error",
            Err(LookupError::Busy) => "busy",
        };
        metrics::counter!("pktc_mps_lookups_total", "outcome" => outcome).increment(1);
        let cached = if asked_server { "miss" } else { "hit" };
        metrics::counter!("pktc_cache_lookups_total", "cache" => "mps", "result" => cached)
            .increment(1);
        metrics::gauge!("pktc_cache_entries", "cache" => "mps").set(self.cache.len() as f64);
        if asked_server {
            metrics::histogram!("pktc_mps_lookup_duration_seconds").record(elapsed.as_secs_f64());
        }
        if let Some(r) = trace.recheck {
            metrics::counter!("pktc_mps_rechecks_total", "outcome" => r.label()).increment(1);
        }
        tracing::info!(
            target: "audit",
            exchange = "lookup",
            mac = %certs::format_mac(query.facts.mac),
            fqdn = result.as_ref().map_or("-", |b| b.fqdn.as_str()),
            server = query.mps_hint.as_deref().unwrap_or(&self.default_server),
            outcome = if result.is_ok() { "ok" } else { "error" },
            reason = outcome,
            recheck = trace.recheck.map_or("-", Recheck::label),
            latency_us = elapsed.as_micros() as u64,
        );
    }

    /// The cached answer (memory, then Redis), if any.
    async fn cached(&self, mac: &[u8; 6]) -> Cached {
        match self.cache.get(mac) {
            Cached::Miss => {}
            c => return c,
        }
        let Some(shared) = &self.shared else {
            return Cached::Miss;
        };
        let c = shared.get(mac).await;
        match &c {
            Cached::Hit(b) => self.cache.put(*mac, b.clone()),
            Cached::Negative => self.cache.put_unknown(*mac),
            Cached::Miss => {}
        }
        c
    }

    /// The lookup and how it went.
    async fn lookup_uncounted(&self, query: &DeviceQuery) -> (Result<Binding, LookupError>, Trace) {
        let mac = query.facts.mac;
        let Some(cached) = answer_of(self.cached(&mac).await) else {
            let result = match self.ask(query).await {
                Err(LookupError::Timeout) if self.on_timeout == OnTimeout::AllowIfCached => {
                    self.cache.stale(&mac).ok_or(LookupError::Timeout)
                }
                r => r,
            };
            let asked_server = !matches!(&result, Err(LookupError::MpsError(d)) if d == NO_SERVER);
            let trace = Trace {
                asked_server,
                recheck: None,
            };
            return (result, trace);
        };
        if !self.would_refuse(query, &cached) {
            return (cached, Trace::default());
        }
        if !self.rechecks.try_take(mac) {
            let trace = Trace {
                asked_server: false,
                recheck: Some(Recheck::Suppressed),
            };
            return (cached, trace);
        }
        match self.ask(query).await {
            fresh @ (Ok(_) | Err(LookupError::UnknownMac)) => {
                let recheck = if self.would_refuse(query, &fresh) {
                    Recheck::Refused
                } else {
                    Recheck::Accepted
                };
                let trace = Trace {
                    asked_server: true,
                    recheck: Some(recheck),
                };
                (fresh, trace)
            }
            Err(e) => {
                tracing::warn!(
                    mac = %certs::format_mac(mac),
                    error = %e,
                    "re-checking a cached refusal: the provisioning server did not answer; the cached answer stands"
                );
                let trace = Trace {
                    asked_server: false,
                    recheck: Some(Recheck::Failed),
                };
                (cached, trace)
            }
        }
    }

    /// Asks the provisioning server, bypassing the caches, and stores its
    /// answer in memory and Redis (replacing what was there).
    async fn ask(&self, query: &DeviceQuery) -> Result<Binding, LookupError> {
        let mac = query.facts.mac;
        let Some(target) = self.target(query.mps_hint.as_deref()) else {
            return Err(LookupError::MpsError(NO_SERVER.into()));
        };
        self.rechecks.asked(mac);
        match self.client.lookup(target, &query.facts).await {
            Ok(b) => {
                self.cache.put(mac, b.clone());
                if let Some(shared) = &self.shared {
                    shared.put(&mac, Some(&b)).await;
                }
                Ok(b)
            }
            Err(LookupError::UnknownMac) => {
                self.cache.put_unknown(mac);
                if let Some(shared) = &self.shared {
                    shared.put(&mac, None).await;
                }
                Err(LookupError::UnknownMac)
            }
            Err(e) => Err(e),
        }
    }
}

const NO_SERVER: &str = "no provisioning server configured";

impl MpsDirectory {
    /// What `lookup` answers from the memory cache without asking anyone
    /// (None: it would ask the provisioning server or Redis); for tests.
    pub fn cached_answer(&self, query: &DeviceQuery) -> Option<Result<Binding, LookupError>> {
        let started = std::time::Instant::now();
        let result = answer_of(self.cache.get_without_miss(&query.facts.mac))?;
        let mut trace = Trace::default();
        if self.would_refuse(query, &result) {
            if self.rechecks.would_allow(&query.facts.mac) {
                return None;
            }
            trace.recheck = Some(Recheck::Suppressed);
        }
        self.record(query, &result, trace, started.elapsed());
        Some(result)
    }
}

impl DeviceDirectory for MpsDirectory {
    fn lookup<'a>(&'a self, query: &'a DeviceQuery) -> LookupFuture<'a> {
        Box::pin(self.resolve(query))
    }

    fn address_policy(&self) -> AddressPolicy {
        self.address_policy
    }

    fn forget(&self, mac: &[u8; 6]) -> bool {
        let had = self.cache.remove(mac);
        metrics::gauge!("pktc_cache_entries", "cache" => "mps").set(self.cache.len() as f64);
        had
    }

    fn probe(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async {
            if let Some(shared) = &self.shared {
                shared.ping().await;
            }
        })
    }
}

/// The KDC's name in pkt-eue-7 tickets: `mps.kdc_principal`, default
/// `krbtgt/REALM`. The provisioning server answers only tickets with this
/// client, so it must be a name no device or user can get a ticket as:
/// not a keyed principal of the keytab (they get tickets by password or
/// key) other than krbtgt/REALM itself, and not a device name `mta/...`
/// (PKINIT).
pub fn kdc_name(
    cfg: &crate::config::Mps,
    realm: &str,
    db: &kdc::db::PrincipalDb,
) -> anyhow::Result<krb::principal::Principal> {
    let krbtgt = krb::principal::Principal::krbtgt(realm);
    let Some(p) = &cfg.kdc_principal else {
        return Ok(krbtgt);
    };
    let name = krb::principal::Principal::parse(p, Some(realm))?;
    if name.same_name(&krbtgt) {
        return Ok(name);
    }
    if name.components.first().map(String::as_str) == Some("mta") {
        anyhow::bail!("{name} is a device name (mta/...): devices get tickets as it by PKINIT");
    }
    if name.realm == realm && db.get(&name.components).is_some() {
        anyhow::bail!(
            "{name} has keys in the keytab: whoever holds them gets tickets as it and \
             could ask the provisioning server about any device"
        );
    }
    Ok(name)
}

/// The pkt-eue-7 client `[mps]` describes (timeouts, retries, the KDC's
/// name in the AP-REQ, checksum type), checking KRB_SAFE timestamps with
/// the KDC's clock skew (`policy.clock_skew_secs`).
pub fn client_from_config(
    cfg: &crate::config::Mps,
    realm: &str,
    skew_secs: i64,
    db: &kdc::db::PrincipalDb,
) -> anyhow::Result<MpsClient> {
    let kdc_name = kdc_name(cfg, realm, db)?;
    let client_cfg = fqdn_map::client::ClientConfig {
        per_try_timeout: std::time::Duration::from_millis(cfg.timeout_ms),
        retries: cfg.retries,
        backoff: std::time::Duration::from_millis(cfg.backoff_ms),
        max_in_flight: cfg.max_in_flight,
        skew: skew_secs,
        enterprise: cfg.enterprise,
        checksum_type: cfg
            .checksum_type
            .and_then(krb::crypto::ChecksumType::from_i32),
        check_sender: cfg.check_sender_address,
    };
    Ok(MpsClient::new(client_cfg, kdc_name))
}

/// One `[[mps.servers]]` entry as a lookup target (its FQDN, lower case
/// without the trailing dot, and the target): its key is
/// `mtaprovsrvr/<fqdn>@REALM`'s newest strongest key in the keytab.
pub fn server_target(
    s: &crate::config::MpsServer,
    realm: &str,
    db: &kdc::db::PrincipalDb,
) -> anyhow::Result<(String, MpsTarget)> {
    let fqdn = key(&s.fqdn);
    let name = vec!["mtaprovsrvr".to_string(), fqdn.clone()];
    let entry = db.get(&name).and_then(|p| p.strongest()).ok_or_else(|| {
        anyhow::anyhow!("keytab has no key for mtaprovsrvr/{fqdn}@{realm} (needed by [mps])")
    })?;
    let target = MpsTarget {
        service: krb::principal::Principal::service_host("mtaprovsrvr", &fqdn, realm),
        key: entry.key.clone(),
        kvno: entry.kvno,
        addresses: s.addresses.clone(),
    };
    Ok((fqdn, target))
}

impl MpsDirectory {
    /// From `[mps]`: see [`client_from_config`] and [`server_target`].
    /// `redis`: the `[redis]` connection settings for `mps.redis`.
    pub fn from_config(
        cfg: &crate::config::Mps,
        redis: &crate::config::RedisOptions,
        realm: &str,
        skew_secs: i64,
        db: &kdc::db::PrincipalDb,
    ) -> anyhow::Result<MpsDirectory> {
        let mut servers = HashMap::new();
        for s in &cfg.servers {
            let (fqdn, target) = server_target(s, realm, db)?;
            servers.insert(fqdn, target);
        }
        Ok(MpsDirectory {
            client: client_from_config(cfg, realm, skew_secs, db)?,
            servers,
            default_server: key(&cfg.default),
            cache: MappingCache::new(
                std::time::Duration::from_secs(cfg.cache_ttl_secs),
                std::time::Duration::from_secs(cfg.negative_cache_secs),
                1_000_000,
            ),
            on_timeout: cfg.on_timeout,
            address_policy: if cfg.require_address_match {
                AddressPolicy::Require
            } else {
                AddressPolicy::IfSupplied
            },
            shared: cfg
                .redis
                .as_deref()
                .map(|url| shared_from_config(cfg, url, redis))
                .transpose()?,
            rechecks: RecheckLimiter::new(
                std::time::Duration::from_secs(cfg.recheck_interval_secs),
                crate::recheck::DEFAULT_CAPACITY,
            ),
        })
    }
}

/// The Redis cache of `mps.redis`, keyed by `mps.redis_secret_file`: a
/// missing or short secret stops the start.
fn shared_from_config(
    cfg: &crate::config::Mps,
    url: &str,
    redis: &crate::config::RedisOptions,
) -> anyhow::Result<crate::shared_cache::SharedMappings> {
    let path = cfg.redis_secret_file.as_deref().ok_or_else(|| {
        anyhow::anyhow!("mps.redis needs mps.redis_secret_file (docs/configuration.md)")
    })?;
    let seal = crate::shared_cache::SealKey::load(path)
        .map_err(|e| anyhow::anyhow!("mps.redis_secret_file: {e}"))?;
    crate::shared_cache::SharedMappings::new(
        url,
        redis,
        seal,
        cfg.cache_ttl_secs,
        cfg.negative_cache_secs,
    )
}
