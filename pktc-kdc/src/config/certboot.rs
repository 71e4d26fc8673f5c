//! `[certboot]` and `[reload]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::defaults;

/// `[certboot]`: the mutual-TLS endpoint that hands devices their IMS
/// credentials (PKT-SP-EUE-PROV §6.6.5).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certboot {
    /// Addresses served with the PacketCable TLS profile (TLS_RSA CBC suites).
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Addresses served with the modern profile (TLS 1.2 ECDHE-AEAD, TLS 1.3).
    #[serde(default)]
    pub modern_listen: Vec<SocketAddr>,
    /// Server certificate (PEM; may be followed by its intermediates).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// More intermediates (PEM), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_chain: Option<PathBuf>,
    /// Device trust directory; default: `pkinit.device_trust_dir` (the same
    /// store, reloaded together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_trust_dir: Option<PathBuf>,
    /// CRL policy of a separate `device_trust_dir`; default `pkinit.crl_policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_policy: Option<super::CrlPolicySetting>,
    /// Oldest TLS version of the PacketCable profile: `1.2` (default), `1.1`, `1.0`.
    #[serde(default)]
    pub min_tls_version: super::TlsMinVersion,
    /// OpenSSL security level: 2 (default), 1 admits RSA-1024 device
    /// certificates, 0 also SHA-1-signed ones and TLS 1.0/1.1.
    #[serde(default = "defaults::security_level")]
    pub security_level: u32,
    /// Path of the device profile.
    #[serde(default = "defaults::certboot_path")]
    pub path: String,
    /// TOML credentials file (re-read when it changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// `redis://…`: credentials from hashes `pktc-certboot:device:<mac hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_redis: Option<String>,
    #[serde(default = "defaults::certboot_timeout_ms")]
    pub handshake_timeout_ms: u64,
    #[serde(default = "defaults::certboot_timeout_ms")]
    pub header_read_timeout_ms: u64,
    #[serde(default = "defaults::connection_timeout_ms")]
    pub connection_timeout_ms: u64,
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "defaults::max_tcp_connections")]
    pub max_connections: usize,
    /// Connections per source address (beyond: its oldest idle one closes).
    #[serde(default = "super::overload::max_tcp_connections_per_source")]
    pub max_connections_per_source: usize,
    /// A response write that makes no progress for this long closes the connection.
    #[serde(default = "super::overload::certboot_write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// Failed connections (TLS handshake failed or timed out, HTTP request
    /// malformed, oversized or too slow) a source is allowed per second,
    /// on average; a source over its budget has new connections closed
    /// before TLS. 0 = no budget.
    #[serde(default = "super::overload::certboot_failures_per_source_per_sec")]
    pub failures_per_source_per_sec: f64,
    /// Failures a source may have in a row before the rate applies.
    #[serde(default = "super::overload::certboot_failure_burst")]
    pub failure_burst: f64,
}

/// `[reload]`: picking up changed files without a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reload {
    /// How often the device trust directory, the certboot server
    /// certificate and the credentials file are checked for changes
    /// (milliseconds; 0 = never).
    #[serde(default = "defaults::watch_interval_ms")]
    pub watch_interval_ms: u64,
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            watch_interval_ms: defaults::watch_interval_ms(),
        }
    }
}
