//! `[metrics]`, `[rate_limit]` and `[admin]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[metrics]`: the Prometheus endpoint (docs/metrics.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Addresses serving `GET /metrics`; empty = no endpoint.
    #[serde(default = "metrics_listen")]
    pub listen: Vec<SocketAddr>,
}

fn metrics_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 9188))]
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: metrics_listen(),
        }
    }
}

/// `[rate_limit]`: token buckets for AS and PKINIT requests, applied
/// before any decoding beyond the message type. A rate of 0 disables that
/// bucket. TGS requests are not limited (they need a TGT already).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second per source address.
    #[serde(default = "per_source_rate")]
    pub per_source_rate: f64,
    /// Burst per source address.
    #[serde(default = "per_source_burst")]
    pub per_source_burst: f64,
    /// Requests per second over all sources (0 = unlimited; the CPU pool
    /// sheds overload anyway).
    #[serde(default)]
    pub global_rate: f64,
    #[serde(default)]
    pub global_burst: f64,
    /// Source addresses tracked at once; the least recently seen go first.
    #[serde(default = "max_sources")]
    pub max_sources: usize,
}

fn per_source_rate() -> f64 {
    20.0
}
fn per_source_burst() -> f64 {
    40.0
}
fn max_sources() -> usize {
    100_000
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_source_rate: per_source_rate(),
            per_source_burst: per_source_burst(),
            global_rate: 0.0,
            global_burst: 0.0,
            max_sources: max_sources(),
        }
    }
}

impl RateLimit {
    pub(crate) fn validate(&self, problems: &mut Vec<String>) {
        for (name, v) in [
            ("per_source_rate", self.per_source_rate),
            ("per_source_burst", self.per_source_burst),
            ("global_rate", self.global_rate),
            ("global_burst", self.global_burst),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                problems.push(format!("rate_limit.{name} must be a number >= 0"));
            }
        }
        if self.per_source_rate > 0.0 && self.per_source_burst < 1.0 {
            problems.push("rate_limit.per_source_burst must be at least 1".to_string());
        }
        if self.global_rate > 0.0 && self.global_burst < 1.0 {
            problems.push("rate_limit.global_burst must be at least 1".to_string());
        }
        if self.max_sources == 0 {
            problems.push("rate_limit.max_sources must be at least 1".to_string());
        }
    }
}

/// `[admin]`: how `pktc-kdc trust reload` finds the running service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Written by `serve` at start-up (removed at exit); SIGHUP goes to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
}
