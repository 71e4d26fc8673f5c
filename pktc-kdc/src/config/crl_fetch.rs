//! `[crl_fetch]`: keeping the device trust store's CRLs current over HTTP.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Fetches each CRL of the device trust store before its nextUpdate, from
/// the CRL Distribution Points of the trust directory's CA certificates
/// and from `urls`. Absent: CRLs come from the directory only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlFetch {
    /// Also fetch the `http://` CRL Distribution Points named by the trust
    /// directory's CA certificates (each names where its issuer's CRL is).
    #[serde(default = "yes")]
    pub from_distribution_points: bool,
    /// More CRL URLs (`http://` only), e.g. the manufacturer CAs' CRLs,
    /// which only the device certificates name.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Longest time between two fetches of a URL that works; closer to a
    /// CRL's nextUpdate the fetcher tries more often (half the time left).
    #[serde(default = "refresh_secs")]
    pub refresh_secs: u64,
    /// After a failed fetch: the first retry delay, doubling up to `retry_max_secs`.
    #[serde(default = "retry_min_secs")]
    pub retry_min_secs: u64,
    #[serde(default = "retry_max_secs")]
    pub retry_max_secs: u64,
    /// Each delay is shortened by a random 0..jitter_percent % so that
    /// replicas do not fetch in step.
    #[serde(default = "jitter_percent")]
    pub jitter_percent: u32,
    /// Whole fetch: name lookup, connect, request, headers and body.
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// Largest CRL accepted (bytes); a larger answer is a failure.
    #[serde(default = "max_bytes")]
    pub max_bytes: usize,
    /// Where installed CRLs are kept so that a restart starts with them
    /// (one DER file per issuer); absent: in memory only. Not the trust
    /// directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn refresh_secs() -> u64 {
    3600
}
fn retry_min_secs() -> u64 {
    30
}
fn retry_max_secs() -> u64 {
    900
}
fn jitter_percent() -> u32 {
    10
}
fn timeout_ms() -> u64 {
    10_000
}
fn max_bytes() -> usize {
    16 << 20
}

impl CrlFetch {
    pub(crate) fn validate(&self, problems: &mut Vec<String>) {
        for u in &self.urls {
            if let Err(e) = crate::crl_fetch::http::Target::parse(u) {
                problems.push(format!("crl_fetch.urls: {u:?}: {e}"));
            }
        }
        if self.refresh_secs == 0 || self.refresh_secs > 7 * 86_400 {
            problems.push("crl_fetch.refresh_secs must be 1..=604800".to_string());
        }
        if self.retry_min_secs == 0 || self.retry_min_secs > self.retry_max_secs {
            problems.push(
                "crl_fetch.retry_min_secs must be at least 1 and at most retry_max_secs"
                    .to_string(),
            );
        }
        if self.jitter_percent > 50 {
            problems.push("crl_fetch.jitter_percent must be 0..=50".to_string());
        }
        if !(100..=600_000).contains(&self.timeout_ms) {
            problems.push("crl_fetch.timeout_ms must be 100..=600000".to_string());
        }
        if !(1024..=(256 << 20)).contains(&self.max_bytes) {
            problems.push("crl_fetch.max_bytes must be 1024..=268435456".to_string());
        }
    }
}
