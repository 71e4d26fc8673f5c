//! The MAC → binding cache shared by KDC replicas through Redis, in front
//! of each replica's own memory cache. Redis trouble never stops a KDC:
//! every command has a short timeout, a failure is counted and logged and
//! the lookup carries on with memory and the provisioning server; the
//! connection manager reconnects by itself when Redis returns.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fqdn_map::cache::Cached;
use fqdn_map::client::Binding;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

pub struct SharedMappings {
    conn: ConnectionManager,
    ttl_secs: u64,
    negative_ttl_secs: u64,
    timeout: Duration,
    /// Commands that failed or timed out (Redis unreachable).
    pub errors: AtomicU64,
    pub hits: AtomicU64,
}

fn key(mac: &[u8; 6]) -> String {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("pktc-kdc:mps:{hex}")
}

/// `+fqdn|addr,addr` for a binding, `-` for "unknown MAC".
fn encode(b: Option<&Binding>) -> String {
    match b {
        None => "-".into(),
        Some(b) => {
            let addrs: Vec<String> = b.addresses.iter().map(IpAddr::to_string).collect();
            format!("+{}|{}", b.fqdn, addrs.join(","))
        }
    }
}

/// Marks Redis reachable (a command succeeded) and passes `v` through.
fn up<T>(v: T) -> T {
    metrics::gauge!("pktc_redis_up", "use" => "mps_cache").set(1.0);
    v
}

fn decode(v: &str) -> Option<Cached> {
    if v == "-" {
        return Some(Cached::Negative);
    }
    let (fqdn, addrs) = v.strip_prefix('+')?.split_once('|')?;
    let addresses = addrs
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|a| a.parse().ok())
        .collect::<Option<Vec<IpAddr>>>()?;
    Some(Cached::Hit(Binding {
        fqdn: fqdn.to_string(),
        addresses,
    }))
}

impl SharedMappings {
    /// Connects lazily: a KDC starts even when Redis is down.
    pub fn new(url: &str, ttl_secs: u64, negative_ttl_secs: u64) -> anyhow::Result<SharedMappings> {
        let client =
            redis::Client::open(url).map_err(|e| anyhow::anyhow!("mps.redis {url:?}: {e}"))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)));
        let conn = client
            .get_connection_manager_lazy(cfg)
            .map_err(|e| anyhow::anyhow!("mps.redis {url:?}: {e}"))?;
        Ok(SharedMappings {
            conn,
            ttl_secs: ttl_secs.max(1),
            negative_ttl_secs: negative_ttl_secs.max(1),
            timeout: Duration::from_millis(300),
            errors: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        })
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) {
        metrics::counter!("pktc_redis_errors_total", "use" => "mps_cache").increment(1);
        metrics::gauge!("pktc_redis_up", "use" => "mps_cache").set(0.0);
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(error = %e, failures = n, "redis unavailable ({what}); using the local cache");
    }

    /// What Redis knows about `mac`; `Miss` also when Redis is unreachable.
    pub async fn get(&self, mac: &[u8; 6]) -> Cached {
        let mut conn = self.conn.clone();
        let r = tokio::time::timeout(self.timeout, conn.get::<_, Option<String>>(key(mac))).await;
        match r {
            Ok(Ok(Some(v))) => match up(decode(&v)) {
                Some(c) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    c
                }
                None => Cached::Miss,
            },
            Ok(Ok(None)) => up(Cached::Miss),
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

    /// Stores an answer (`None` = unknown MAC) for the other replicas.
    pub async fn put(&self, mac: &[u8; 6], b: Option<&Binding>) {
        let ttl = if b.is_some() {
            self.ttl_secs
        } else {
            self.negative_ttl_secs
        };
        let mut conn = self.conn.clone();
        let r = tokio::time::timeout(
            self.timeout,
            conn.set_ex::<_, _, ()>(key(mac), encode(b), ttl),
        )
        .await;
        match r {
            Ok(Ok(())) => {
                up(());
            }
            Ok(Err(e)) => self.failed("set", e),
            Err(_) => self.failed("set", "timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let b = Binding {
            fqdn: "mta.pktc.test".into(),
            addresses: vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        };
        assert_eq!(decode(&encode(Some(&b))), Some(Cached::Hit(b)));
        let none = Binding {
            fqdn: "x.test".into(),
            addresses: vec![],
        };
        assert_eq!(decode(&encode(Some(&none))), Some(Cached::Hit(none)));
        assert_eq!(decode(&encode(None)), Some(Cached::Negative));
        assert_eq!(decode("garbage"), None);
        assert_eq!(decode("+a|not-an-ip"), None);
    }
}
