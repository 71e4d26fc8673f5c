//! Every Redis connection the service and its tools make is built here:
//! the MPS answer cache (`mps.redis`), the certboot credential store
//! (`certboot.credentials_redis`), `pktc-kdc check` and `pktc-kdc mps
//! forget`. So the `[redis]` settings (AUTH password from a file, ACL user,
//! TLS trust and client certificate for `rediss://`) apply to all of them.

use std::time::Duration;

use anyhow::{Context, bail};
use redis::IntoConnectionInfo;
use redis::aio::ConnectionManager;
use zeroize::Zeroizing;

use crate::config::RedisOptions;

/// `url` without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Some(u) => u.to_string(),
        None => "(not a Redis URL)".to_string(),
    }
}

/// Whether `url` asks for TLS.
pub fn is_tls(url: &str) -> bool {
    url.trim_start()
        .to_ascii_lowercase()
        .starts_with("rediss://")
}

/// The password of `[redis] password_file`: its first line.
fn read_password(path: &std::path::Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("redis.password_file {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        bail!("redis.password_file {}: empty", path.display());
    }
    Ok(Zeroizing::new(line.to_string()))
}

fn read_pem(what: &str, path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("redis.{what} {}", path.display()))
}

/// A client for `url` with the `[redis]` AUTH and TLS settings. Nothing is
/// sent yet; errors name the URL without its password.
pub fn client(url: &str, opts: &RedisOptions) -> anyhow::Result<redis::Client> {
    let shown = redacted(url);
    let mut info = url
        .into_connection_info()
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    if let Some(path) = &opts.password_file {
        if info.redis_settings().password().is_some() {
            bail!("{shown}: a password in the URL and in redis.password_file; keep one");
        }
        let password = read_password(path)?;
        let mut settings = info
            .redis_settings()
            .clone()
            .set_password(password.as_str());
        if let Some(user) = &opts.username {
            settings = settings.set_username(user);
        }
        info = info.set_redis_settings(settings);
    }
    if !is_tls(url) || !opts.has_tls_settings() {
        return redis::Client::open(info).map_err(|e| anyhow::anyhow!("{shown}: {e}"));
    }
    let client_tls = match (&opts.client_cert, &opts.client_key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read_pem("client_cert", cert)?,
            client_key: read_pem("client_key", key)?,
        }),
        _ => None,
    };
    let root_cert = opts
        .ca_file
        .as_deref()
        .map(|p| read_pem("ca_file", p))
        .transpose()?;
    redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| anyhow::anyhow!("{shown}: {e}"))
}

/// A connection manager that connects on first use (a service starts while
/// Redis is down) and reconnects by itself; `timeout` bounds each connect
/// and each reply. Must be called inside a Tokio runtime.
pub fn connection_manager(
    url: &str,
    opts: &RedisOptions,
    timeout: Duration,
) -> anyhow::Result<ConnectionManager> {
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client(url, opts)?
        .get_connection_manager_lazy(cfg)
        .map_err(|e| anyhow::anyhow!("{}: {e}", redacted(url)))
}

/// One connection now, for a command-line tool (`check`, `mps forget`).
pub async fn connect_once(
    url: &str,
    opts: &RedisOptions,
    timeout: Duration,
) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = client(url, opts)?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(&cfg),
    )
    .await
    .map_err(|_| anyhow::anyhow!("{}: no connection within {timeout:?}", redacted(url)))?
    .map_err(|e| anyhow::anyhow!("{}: {e}", redacted(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted("redis://user:hunter2@10.0.0.1:6379/0"),
            "redis://user:***@10.0.0.1:6379/0"
        );
        assert_eq!(redacted("rediss://r.example/"), "rediss://r.example/");
        let e = client("redis://:hunter2@[not-a-host/", &RedisOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn password_from_a_file_and_not_twice() {
        let dir = std::env::temp_dir().join(format!("pktc-redis-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let opts = RedisOptions {
            password_file: Some(file.clone()),
            username: Some("kdc".into()),
            ..RedisOptions::default()
        };
        let c = client("redis://127.0.0.1:6379/", &opts).unwrap();
        let info = c.get_connection_info().redis_settings();
        assert_eq!(info.password(), Some("s3cret"));
        assert_eq!(info.username(), Some("kdc"));
        let twice = client("redis://:other@127.0.0.1:6379/", &opts).unwrap_err();
        assert!(twice.to_string().contains("keep one"), "{twice}");
        assert!(!twice.to_string().contains("other"), "{twice}");
        std::fs::write(&file, "").unwrap();
        assert!(client("redis://127.0.0.1/", &opts).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
