//! The MAC → binding cache shared by KDC replicas through Redis, in front
//! of each replica's own memory cache. Redis trouble never stops a KDC:
//! every command has a short timeout, a failure is counted and logged and
//! the lookup carries on with memory and the provisioning server; the
//! connection manager reconnects by itself when Redis returns.
//!
//! Redis is not trusted with the answers: each value is sealed
//! ([`sealed`]) and one that does not verify is a cache miss.

pub mod sealed;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fqdn_map::cache::Cached;
use fqdn_map::client::Binding;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

pub use sealed::{Rejected, SealKey};

pub struct SharedMappings {
    conn: ConnectionManager,
    seal: SealKey,
    ttl_secs: u64,
    negative_ttl_secs: u64,
    timeout: Duration,
    /// Commands that failed or timed out (Redis unreachable).
    pub errors: AtomicU64,
    pub hits: AtomicU64,
    /// Values that failed their check (any [`Rejected`] reason).
    pub rejected: AtomicU64,
}

/// The Redis key of `mac`'s answer.
pub fn key(mac: &[u8; 6]) -> String {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("pktc-kdc:mps:{hex}")
}

/// Marks Redis reachable (a command succeeded) and passes `v` through.
fn up<T>(v: T) -> T {
    metrics::gauge!("pktc_redis_up", "use" => "mps_cache").set(1.0);
    v
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SharedMappings {
    /// Connects lazily: a KDC starts even when Redis is down. `[redis]`
    /// settings (AUTH, TLS) apply.
    pub fn new(
        url: &str,
        opts: &crate::config::RedisOptions,
        seal: SealKey,
        ttl_secs: u64,
        negative_ttl_secs: u64,
    ) -> anyhow::Result<SharedMappings> {
        let conn = crate::redis_conn::connection_manager(url, opts, Duration::from_millis(500))
            .map_err(|e| anyhow::anyhow!("mps.redis: {e:#}"))?;
        Ok(SharedMappings {
            conn,
            seal,
            ttl_secs: ttl_secs.max(1),
            negative_ttl_secs: negative_ttl_secs.max(1),
            timeout: Duration::from_millis(300),
            errors: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) {
        metrics::counter!("pktc_redis_errors_total", "use" => "mps_cache").increment(1);
        metrics::gauge!("pktc_redis_up", "use" => "mps_cache").set(0.0);
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(error = %e, failures = n, "redis unavailable ({what}); using the local cache");
    }

    /// A value that is not used: counted and logged (MAC, reason and size;
    /// never the value, whose tag an attacker could use to test guesses).
    fn reject(&self, mac: &[u8; 6], why: Rejected, len: usize) -> Cached {
        metrics::counter!("pktc_mps_cache_rejected_total", "reason" => why.label()).increment(1);
        self.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            mac = %certs::format_mac(*mac),
            reason = why.label(),
            bytes = len,
            "ignoring a shared-cache value in Redis that fails its check; asking the provisioning server"
        );
        Cached::Miss
    }

    /// What Redis knows about `mac`, verified; `Miss` also when Redis is
    /// unreachable or the value fails its check.
    pub async fn get(&self, mac: &[u8; 6]) -> Cached {
        let mut conn = self.conn.clone();
        // GETRANGE bounds what a hostile value can make us read.
        let last = sealed::MAX_VALUE_BYTES as isize - 1;
        let r = tokio::time::timeout(self.timeout, conn.getrange::<_, Vec<u8>>(key(mac), 0, last))
            .await;
        match r {
            Ok(Ok(v)) if v.is_empty() => up(Cached::Miss),
            Ok(Ok(v)) => match up(self.seal.open(mac, &v, unix_now())) {
                Ok(c) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    c
                }
                Err(why) => self.reject(mac, why, v.len()),
            },
            // A hash or list under our key: written by someone else.
            Ok(Err(e)) if e.code() == Some("WRONGTYPE") => {
                up(self.reject(mac, Rejected::Malformed, 0))
            }
            Ok(Err(e)) => {
                self.failed("get", e);
                Cached::Miss
            }
            Err(_) => {
                self.failed("get", "timeout");
                Cached::Miss
            }
        }
    }

    /// PING, for the health gauge.
    pub async fn ping(&self) {
        let mut conn = self.conn.clone();
        let r = tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        match r {
            Ok(Ok(_)) => up(()),
            Ok(Err(e)) => self.failed("ping", e),
            Err(_) => self.failed("ping", "timeout"),
        }
    }

    /// Stores an answer (`None` = unknown MAC) for the other replicas,
    /// replacing what was there.
    pub async fn put(&self, mac: &[u8; 6], b: Option<&Binding>) {
        let ttl = if b.is_some() {
            self.ttl_secs
        } else {
            self.negative_ttl_secs
        };
        let value = self.seal.seal(mac, unix_now() + ttl, b);
        let mut conn = self.conn.clone();
        let r =
            tokio::time::timeout(self.timeout, conn.set_ex::<_, _, ()>(key(mac), value, ttl)).await;
        match r {
            Ok(Ok(())) => {
                up(());
            }
            Ok(Err(e)) => self.failed("set", e),
            Err(_) => self.failed("set", "timeout"),
        }
    }
}
