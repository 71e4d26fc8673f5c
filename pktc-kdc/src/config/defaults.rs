//! Default values of the config keys (`#[serde(default = ...)]`) and the
//! `Default` of each section.

use super::*;

pub fn audit() -> String {
    "stdout".into()
}
pub fn audit_format() -> LogFormat {
    LogFormat::Json
}
pub fn max_udp_reply_bytes() -> usize {
    65507
}
pub fn keytab() -> PathBuf {
    "kdc.keytab".into()
}
pub fn listen() -> Vec<SocketAddr> {
    vec![
        "0.0.0.0:88".parse().expect("literal"),
        "[::]:88".parse().expect("literal"),
    ]
}
pub fn max_request_bytes() -> usize {
    32 * 1024
}
pub fn tcp_idle_timeout_secs() -> u64 {
    10
}
pub fn max_tcp_connections() -> usize {
    1024
}
pub fn max_life_secs() -> u64 {
    7 * 24 * 3600
}
pub fn max_renew_secs() -> u64 {
    7 * 24 * 3600
}
pub fn clock_skew_secs() -> u64 {
    300
}
pub fn enctypes() -> Vec<String> {
    EncType::ALL.iter().map(|e| e.name().to_string()).collect()
}
pub fn yes() -> bool {
    true
}
pub fn lookaside_ttl_secs() -> u64 {
    120
}
pub fn lookaside_max_bytes() -> usize {
    64 * 1024 * 1024
}
pub fn replay_max_entries() -> usize {
    1_000_000
}
pub fn log_format() -> LogFormat {
    LogFormat::Human
}
pub fn log_level() -> String {
    "info".into()
}
pub fn pool_queue() -> usize {
    256
}
pub fn dh_min_bits() -> u32 {
    2048
}
pub fn mps_timeout_ms() -> u64 {
    1000
}
pub fn mps_retries() -> u32 {
    2
}
pub fn mps_backoff_ms() -> u64 {
    200
}
pub fn mps_max_in_flight() -> usize {
    256
}
pub fn mps_cache_ttl_secs() -> u64 {
    300
}
pub fn mps_negative_cache_secs() -> u64 {
    30
}
pub fn mps_recheck_interval_secs() -> u64 {
    5
}
pub fn enterprise() -> u32 {
    fqdn_map::codec::DEFAULT_ENTERPRISE
}
pub fn security_level() -> u32 {
    2
}
pub fn certboot_path() -> String {
    "/certboot/v1/profile".into()
}
pub fn certboot_timeout_ms() -> u64 {
    10_000
}
pub fn connection_timeout_ms() -> u64 {
    60_000
}
pub fn max_header_bytes() -> usize {
    8192
}
pub fn watch_interval_ms() -> u64 {
    1000
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            udp: defaults::listen(),
            tcp: defaults::listen(),
            max_request_bytes: defaults::max_request_bytes(),
            tcp_idle_timeout_secs: defaults::tcp_idle_timeout_secs(),
            max_tcp_connections: defaults::max_tcp_connections(),
            threads: 0,
            max_udp_reply_bytes: defaults::max_udp_reply_bytes(),
            udp_recv_buffer_bytes: overload::udp_recv_buffer_bytes(),
            tcp_backlog: overload::tcp_backlog(),
            tcp_defer_accept_secs: overload::tcp_defer_accept_secs(),
            max_tcp_connections_per_source: overload::max_tcp_connections_per_source(),
            tcp_max_connection_secs: overload::tcp_max_connection_secs(),
            tcp_write_timeout_secs: overload::tcp_write_timeout_secs(),
        }
    }
}
impl Default for Tickets {
    fn default() -> Self {
        Tickets {
            max_life_secs: defaults::max_life_secs(),
            max_renew_secs: defaults::max_renew_secs(),
        }
    }
}
impl Default for Policy {
    fn default() -> Self {
        Policy {
            clock_skew_secs: defaults::clock_skew_secs(),
            enctypes: defaults::enctypes(),
            require_preauth: true,
        }
    }
}
impl Default for Cache {
    fn default() -> Self {
        Cache {
            lookaside_ttl_secs: defaults::lookaside_ttl_secs(),
            lookaside_max_bytes: defaults::lookaside_max_bytes(),
            replay_max_entries: defaults::replay_max_entries(),
        }
    }
}
impl Default for Log {
    fn default() -> Self {
        Log {
            format: defaults::log_format(),
            level: defaults::log_level(),
            audit: defaults::audit(),
            audit_format: defaults::audit_format(),
        }
    }
}
