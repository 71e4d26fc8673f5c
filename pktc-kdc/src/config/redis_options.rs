//! `[redis]`: how the service authenticates to Redis and protects the
//! connection. One section for every Redis URL of the config
//! (`mps.redis`, `certboot.credentials_redis`): `crate::redis_conn` builds
//! every connection from it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisOptions {
    /// File holding the AUTH password (one line; a trailing newline is
    /// ignored). Instead of a password in the URL, which would sit in the
    /// config file; setting both is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// ACL user name for AUTH (Redis 6+); absent: the `default` user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `rediss://` only: PEM CA certificate(s) the server's certificate must
    /// chain to, instead of the system trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// `rediss://` only: a client certificate (PEM) for servers that ask
    /// for one (`tls-auth-clients yes`, Redis's default); with `client_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PKCS#8 PEM, "BEGIN PRIVATE KEY").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

impl RedisOptions {
    pub fn is_empty(&self) -> bool {
        self == &RedisOptions::default()
    }

    /// TLS settings are present (they apply to `rediss://` URLs only).
    pub fn has_tls_settings(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    pub(crate) fn paths_mut(&mut self) -> impl Iterator<Item = &mut PathBuf> {
        self.password_file
            .iter_mut()
            .chain(self.ca_file.iter_mut())
            .chain(self.client_cert.iter_mut())
            .chain(self.client_key.iter_mut())
    }

    pub(crate) fn validate(&self, problems: &mut Vec<String>) {
        if self.client_cert.is_some() != self.client_key.is_some() {
            problems.push("redis.client_cert and redis.client_key go together".to_string());
        }
        if self.username.as_deref().is_some_and(str::is_empty) {
            problems.push("redis.username must not be empty".to_string());
        }
        if self.username.is_some() && self.password_file.is_none() {
            problems.push("redis.username needs redis.password_file".to_string());
        }
    }
}
