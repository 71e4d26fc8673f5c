//! Credentials from Redis hashes, one per device, for several replicas and
//! for provisioning systems that push credentials:
//!
//! ```text
//! HSET pktc-certboot:device:001095000001 impi 0010950000001@ims.example.net \
//!      impu "sip:+15551230001@ims.example.net tel:+15551230001" \
//!      credential_type password credential secret \
//!      realm ims.example.net pcscf "pcscf.example.net"
//! ```
//!
//! `impu` and `pcscf` are space-separated lists (URIs and host names hold no
//! spaces); `credential` is the raw value (any bytes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use zeroize::Zeroizing;

use super::{CredentialStore, CredsError, LookupFuture};
use crate::profile::{CredsType, DeviceCredentials};

/// The hash holding `mac`'s credentials.
pub fn redis_key(mac: [u8; 6]) -> String {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("pktc-certboot:device:{hex}")
}

pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
    /// Last command succeeded.
    up: AtomicBool,
    errors: AtomicU64,
}

impl RedisStore {
    /// Connects lazily through `client` (its URL, AUTH and TLS settings
    /// are the caller's): the service starts while Redis is down and
    /// answers 503 until it is back. Must be called inside a Tokio runtime.
    pub fn new(client: redis::Client, timeout: Duration) -> Result<RedisStore, CredsError> {
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = client
            .get_connection_manager_lazy(cfg)
            .map_err(|e| CredsError::Redis(e.to_string()))?;
        Ok(RedisStore {
            conn,
            timeout,
            up: AtomicBool::new(false),
            errors: AtomicU64::new(0),
        })
    }
}

fn text(h: &HashMap<String, Vec<u8>>, field: &str) -> Result<Option<String>, String> {
    h.get(field)
        .map(|v| String::from_utf8(v.clone()).map_err(|_| format!("{field} is not UTF-8")))
        .transpose()
}

fn list(h: &HashMap<String, Vec<u8>>, field: &str) -> Result<Vec<String>, String> {
    Ok(text(h, field)?
        .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect())
        .unwrap_or_default())
}

fn from_hash(mut h: HashMap<String, Vec<u8>>) -> Result<DeviceCredentials, String> {
    let credential = Zeroizing::new(h.remove("credential").unwrap_or_default());
    let type_text = text(&h, "credential_type")?.ok_or("no credential_type field")?;
    let creds = DeviceCredentials {
        impi: text(&h, "impi")?.ok_or("no impi field")?,
        impu: list(&h, "impu")?,
        creds_type: CredsType::parse(&type_text)
            .ok_or_else(|| format!("unknown credential_type {type_text:?}"))?,
        credential,
        realm: text(&h, "realm")?,
        pcscf: list(&h, "pcscf")?,
    };
    creds.validate().map_err(|e| e.to_string())?;
    Ok(creds)
}

impl CredentialStore for RedisStore {
    fn lookup(&self, mac: [u8; 6]) -> LookupFuture<'_> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let fetch = redis::AsyncCommands::hgetall::<_, HashMap<String, Vec<u8>>>(
                &mut conn,
                redis_key(mac),
            );
            let result = match tokio::time::timeout(self.timeout, fetch).await {
                Ok(Ok(h)) => Ok(h),
                Ok(Err(e)) => Err(CredsError::Redis(e.to_string())),
                Err(_) => Err(CredsError::Timeout),
            };
            self.up.store(result.is_ok(), Ordering::Relaxed);
            if result.is_err() {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            let hash = result?;
            if hash.is_empty() {
                return Ok(None);
            }
            from_hash(hash)
                .map(Some)
                .map_err(|detail| CredsError::BadRecord {
                    mac: certs::mac::format_mac(mac),
                    detail,
                })
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn probe(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut conn);
            let ok = matches!(tokio::time::timeout(self.timeout, ping).await, Ok(Ok(_)));
            self.up.store(ok, Ordering::Relaxed);
            if !ok {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    fn health(&self) -> Option<(bool, u64)> {
        Some((
            self.up.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_fields() {
        let mut h = HashMap::new();
        h.insert("impi".to_string(), b"a@b".to_vec());
        h.insert("impu".to_string(), b"sip:a@b  tel:+1".to_vec());
        h.insert("credential_type".to_string(), b"password".to_vec());
        h.insert("credential".to_string(), b"pw".to_vec());
        let c = from_hash(h.clone()).unwrap();
        assert_eq!(c.impu, ["sip:a@b", "tel:+1"]);
        assert_eq!(&*c.credential, b"pw");
        assert!(c.realm.is_none() && c.pcscf.is_empty());
        h.remove("impu");
        assert!(from_hash(h).unwrap_err().contains("impu"));
        assert_eq!(
            redis_key([0, 0x10, 0x95, 0, 0, 1]),
            "pktc-certboot:device:001095000001"
        );
    }
}
