//! Builds the `kdc` engine from the service's configuration: keys from the
//! keytab, the realm settings, the rate limits and, when configured, PKINIT
//! with its signing identity, device trust and device directory.

use std::sync::Arc;

use anyhow::Context;
use certs::store::TrustStoreHandle;
use kdc::db::PrincipalDb;
use kdc::directory::{DeviceDirectory, StaticDirectory};
use kdc::kdc::{Kdc, KdcSettings};
use kdc::pkinit_as::PkinitState;
use kdc::pool::AdmissionGate;
use kdc::rate_limit::{RateLimiter, Rates};
use krb::keytab::Keytab;
use openssl::hash::MessageDigest;
use pkinit::server::{self, ReplyPolicy};

use crate::config::{Config, Pkinit, RateLimit};

/// The KDC of `cfg`, keys read from its keytab.
pub fn kdc_from_config(cfg: &Config) -> anyhow::Result<Kdc> {
    let keytab = Keytab::read_file(&cfg.keytab)
        .with_context(|| format!("reading keytab {}", cfg.keytab.display()))?;
    new_kdc(cfg, &keytab)
}

/// A KDC for `cfg` with the keys of an already-read keytab.
pub fn new_kdc(cfg: &Config, keytab: &Keytab) -> anyhow::Result<Kdc> {
    let enctypes = cfg.enctypes()?;
    let (db, _skipped) = PrincipalDb::from_keytab(keytab, &cfg.realm, &enctypes)
        .context("loading keys from the keytab")?;
    let krbtgt = vec!["krbtgt".to_string(), cfg.realm.clone()];
    if db.get(&krbtgt).is_none() {
        anyhow::bail!(
            "keytab {} has no key for krbtgt/{}@{} (add one with `pktc-kdc keytab add`)",
            cfg.keytab.display(),
            cfg.realm,
            cfg.realm
        );
    }
    let pkinit = match &cfg.pkinit {
        None => None,
        Some(p) => {
            let directory: Option<Arc<dyn DeviceDirectory>> = match &cfg.mps {
                Some(m) => Some(Arc::new(crate::mps_directory::MpsDirectory::from_config(
                    m,
                    &cfg.redis,
                    &cfg.realm,
                    cfg.policy.clock_skew_secs as i64,
                    &db,
                )?)),
                None => None,
            };
            Some(pkinit_state(p, directory, cfg.listen.threads)?)
        }
    };
    let settings = KdcSettings {
        realm: cfg.realm.clone(),
        enctypes,
        clock_skew_secs: cfg.policy.clock_skew_secs,
        max_life_secs: cfg.tickets.max_life_secs,
        max_renew_secs: cfg.tickets.max_renew_secs,
        require_preauth: cfg.policy.require_preauth,
        max_request_bytes: cfg.listen.max_request_bytes,
        max_udp_reply_bytes: cfg.listen.max_udp_reply_bytes,
        lookaside_ttl_secs: cfg.cache.lookaside_ttl_secs,
        lookaside_max_bytes: cfg.cache.lookaside_max_bytes,
        replay_max_entries: cfg.cache.replay_max_entries,
    };
    Ok(Kdc::new(
        settings,
        db,
        rate_limiter(&cfg.rate_limit),
        pkinit,
    ))
}

/// The `[rate_limit]` buckets.
pub fn rate_limiter(r: &RateLimit) -> RateLimiter {
    RateLimiter::new(&Rates {
        per_source_rate: r.per_source_rate,
        per_source_burst: r.per_source_burst,
        global_rate: r.global_rate,
        global_burst: r.global_burst,
        max_sources: r.max_sources,
    })
}

/// PKINIT as `[pkinit]` describes it; `directory`: the provisioning
/// server when `[mps]` is configured, else the static device table.
pub fn pkinit_state(
    p: &Pkinit,
    directory: Option<Arc<dyn DeviceDirectory>>,
    threads: usize,
) -> anyhow::Result<PkinitState> {
    let identity = Arc::new(crate::kdc_identity::KdcIdentitySource::open(p)?);
    let trust = TrustStoreHandle::open(&p.device_trust_dir, p.crl_policy.policy())
        .with_context(|| format!("loading device trust from {}", p.device_trust_dir.display()))?;
    Ok(PkinitState {
        identity,
        trust: Arc::new(trust),
        reply: ReplyPolicy {
            packetcable_cipher: p.packetcable_reply_cipher.cipher(),
            packetcable_digest: MessageDigest::sha1(),
        },
        dh_min_bits: p.dh_min_bits,
        dh_keys: server::DhKeys::new(p.dh_key_reuse_secs),
        cert_cache: Arc::new(
            pkinit::cms::CertCache::new(4096).with_device_capacity(p.device_cache_entries),
        ),
        directory: match directory {
            Some(d) => d,
            None => Arc::new(StaticDirectory::from_rows(
                p.devices.iter().map(|d| (d.mac.as_str(), d.fqdn.as_str())),
            )?),
        },
        gate: AdmissionGate::new(kdc::pool::serving_threads(threads), p.pool_queue)
            .with_after_work(crate::overload::cpu_phase_done),
    })
}
