//! Where device credentials come from: a file or Redis, behind one trait.

use std::future::Future;
use std::pin::Pin;

use crate::profile::DeviceCredentials;

mod file;
mod redis_store;

pub use file::FileStore;
pub use redis_store::{RedisStore, redis_key};

/// Why credentials could not be looked up. The HTTP answer is a bare 503;
/// the detail goes to the operator's log only (it never holds a secret).
#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error("{path}: {detail}")]
    File { path: String, detail: String },
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis: timeout")]
    Timeout,
    #[error("device {mac}: {detail}")]
    BadRecord { mac: String, detail: String },
}

pub type LookupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<DeviceCredentials>, CredsError>> + Send + 'a>>;

/// A source of device credentials, keyed by the MAC from the device's
/// verified certificate. `Ok(None)`: no such device.
pub trait CredentialStore: Send + Sync {
    fn lookup(&self, mac: [u8; 6]) -> LookupFuture<'_>;

    /// Picks up changes (a file store re-reads its file when it changed).
    /// `Ok(true)`: reloaded. On error the previous contents stay in use.
    fn refresh(&self) -> Result<bool, CredsError> {
        Ok(false)
    }

    /// `file` or `redis`, for logs.
    fn kind(&self) -> &'static str;

    /// For a networked store: whether the last command succeeded, and how
    /// many failed so far. `None` for local stores.
    fn health(&self) -> Option<(bool, u64)> {
        None
    }

    /// Checks a networked store's connection (updates [`Self::health`]).
    fn probe(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}
