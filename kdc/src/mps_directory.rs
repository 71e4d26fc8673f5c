//! The device directory backed by provisioning servers (pkt-eue-7): the
//! MAC cache first, then the server the device named in
//! PA-PROV-SRV-LOCATION (or the default one), with negative caching of
//! "unknown MAC" and, when the policy allows, the last known answer when
//! the server is silent.

use std::collections::HashMap;

use fqdn_map::cache::{Cached, MappingCache};
use fqdn_map::client::{LookupError, MpsClient, MpsTarget};

use crate::directory::{AddressPolicy, DeviceDirectory, DeviceQuery, LookupFuture};

/// What to do when no provisioning server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimeout {
    /// Refuse the device (strict; the default).
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
}

fn key(fqdn: &str) -> String {
    fqdn.trim_end_matches('.').to_ascii_lowercase()
}

impl MpsDirectory {
    fn target(&self, hint: Option<&str>) -> Option<&MpsTarget> {
        hint.and_then(|h| self.servers.get(&key(h)))
            .or_else(|| self.servers.get(&key(&self.default_server)))
    }

    /// [`Self::lookup_uncounted`] with its metric and audit event.
    async fn resolve(&self, query: &DeviceQuery) -> Result<fqdn_map::client::Binding, LookupError> {
        let started = std::time::Instant::now();
        let (result, asked_server) = self.lookup_uncounted(query).await;
        self.record(query, &result, asked_server, started.elapsed());
        result
    }

    /// The metrics and the audit event (exchange `lookup`) of one lookup.
    fn record(
        &self,
        query: &DeviceQuery,
        result: &Result<fqdn_map::client::Binding, LookupError>,
        asked_server: bool,
        elapsed: std::time::Duration,
    ) {
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
        tracing::info!(
            target: "audit",
            exchange = "lookup",
            mac = %certs::format_mac(query.facts.mac),
            fqdn = result.as_ref().map_or("-", |b| b.fqdn.as_str()),
            server = query.mps_hint.as_deref().unwrap_or(&self.default_server),
            outcome = if result.is_ok() { "ok" } else { "error" },
            reason = outcome,
            latency_us = elapsed.as_micros() as u64,
        );
    }

    /// The lookup, and whether a provisioning server was asked.
    async fn lookup_uncounted(
        &self,
        query: &DeviceQuery,
    ) -> (Result<fqdn_map::client::Binding, LookupError>, bool) {
        let mac = query.facts.mac;
        match self.cache.get(&mac) {
            Cached::Hit(b) => return (Ok(b), false),
            Cached::Negative => return (Err(LookupError::UnknownMac), false),
            Cached::Miss => {}
        }
        if let Some(shared) = &self.shared {
            match shared.get(&mac).await {
                Cached::Hit(b) => {
                    self.cache.put(mac, b.clone());
                    return (Ok(b), false);
                }
                Cached::Negative => {
                    self.cache.put_unknown(mac);
                    return (Err(LookupError::UnknownMac), false);
                }
                Cached::Miss => {}
            }
        }
        let Some(target) = self.target(query.mps_hint.as_deref()) else {
            let e = LookupError::MpsError("no provisioning server configured".into());
            return (Err(e), false);
        };
        let result = match self.client.lookup(target, &query.facts).await {
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
            Err(LookupError::Timeout) if self.on_timeout == OnTimeout::AllowIfCached => {
                self.cache.stale(&mac).ok_or(LookupError::Timeout)
            }
            Err(e) => Err(e),
        };
        (result, true)
    }
}

impl DeviceDirectory for MpsDirectory {
    fn lookup<'a>(&'a self, query: &'a DeviceQuery) -> LookupFuture<'a> {
        Box::pin(self.resolve(query))
    }

    /// The memory cache only (as the first step of `lookup`).
    fn lookup_now(
        &self,
        query: &DeviceQuery,
    ) -> Option<Result<fqdn_map::client::Binding, LookupError>> {
        let started = std::time::Instant::now();
        let result = match self.cache.get_without_miss(&query.facts.mac) {
            Cached::Hit(b) => Ok(b),
            Cached::Negative => Err(LookupError::UnknownMac),
            Cached::Miss => return None,
        };
        self.record(query, &result, false, started.elapsed());
        Some(result)
    }

    fn address_policy(&self) -> AddressPolicy {
        self.address_policy
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
    db: &crate::db::PrincipalDb,
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
    db: &crate::db::PrincipalDb,
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
    db: &crate::db::PrincipalDb,
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
    pub fn from_config(
        cfg: &crate::config::Mps,
        realm: &str,
        skew_secs: i64,
        db: &crate::db::PrincipalDb,
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
            on_timeout: if cfg.on_timeout == "allow-if-cached" {
                OnTimeout::AllowIfCached
            } else {
                OnTimeout::Refuse
            },
            address_policy: if cfg.require_address_match {
                AddressPolicy::Require
            } else {
                AddressPolicy::IfSupplied
            },
            shared: cfg
                .redis
                .as_deref()
                .map(|url| {
                    crate::shared_cache::SharedMappings::new(
                        url,
                        cfg.cache_ttl_secs,
                        cfg.negative_cache_secs,
                    )
                })
                .transpose()?,
        })
    }
}
