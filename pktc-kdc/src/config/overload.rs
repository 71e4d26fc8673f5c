//! `[overload]` and the TCP connection bounds of `[listen]`: what the KDC
//! does when requests arrive faster than it can answer them (a reboot
//! storm) or when clients hold connections open. docs/configuration.md.

use serde::{Deserialize, Serialize};

/// `[overload]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overload {
    /// Longest a PKINIT request may wait, from the kernel's receive
    /// timestamp to the start of its work. An older one is dropped
    /// unanswered (over TCP its connection is closed): the device has
    /// retransmitted or given up by then. 0: no limit.
    #[serde(default = "max_queue_delay_ms")]
    pub max_queue_delay_ms: u64,
    /// PKINIT requests read and waiting for a serving thread; when full,
    /// the oldest waiting one is dropped. Newest are served first.
    #[serde(default = "max_waiting")]
    pub max_waiting: usize,
    /// From this many waiting PKINIT requests, a new TCP connection that
    /// opens with an AS-REQ is reset before its request is read (one from
    /// a source reset this way lately: from half as many). In a storm that
    /// costs accept and close per refused connection instead of a read, a
    /// hash and a later drop. Set it above the queue's bursts at normal
    /// load and below what the serving threads sign within
    /// `max_queue_delay_ms`. 0, or more than `max_waiting`: never (every
    /// connection is read, and the oldest waiting one gives way).
    #[serde(default = "tcp_reset_unread_at")]
    pub tcp_reset_unread_at: usize,
    /// What a PKINIT device gets when the KDC is too busy to answer
    /// (KDC_ERR_SVC_UNAVAILABLE): `silent` (nothing: the device retries on
    /// its own timer) or `error` (the KRB-ERROR, which makes a PacketCable
    /// device restart provisioning at DHCP, PKT-SP-EUE-PROV Table 5).
    #[serde(default)]
    pub pkinit_busy_reply: super::BusyReply,
}

impl Default for Overload {
    fn default() -> Self {
        Overload {
            max_queue_delay_ms: max_queue_delay_ms(),
            max_waiting: max_waiting(),
            tcp_reset_unread_at: tcp_reset_unread_at(),
            pkinit_busy_reply: super::BusyReply::default(),
        }
    }
}

impl Overload {
    pub(crate) fn validate(&self, problems: &mut Vec<String>) {
        if self.max_queue_delay_ms > 60_000 {
            problems.push("overload.max_queue_delay_ms must be at most 60000".to_string());
        }
        if !(1..=1_000_000).contains(&self.max_waiting) {
            problems.push("overload.max_waiting must be 1..=1000000".to_string());
        }
        if self.tcp_reset_unread_at > 1_000_000 {
            problems.push("overload.tcp_reset_unread_at must be at most 1000000".to_string());
        }
    }

    /// Whether busy PKINIT devices get no answer.
    pub fn silent(&self) -> bool {
        self.pkinit_busy_reply == super::BusyReply::Silent
    }
}

fn max_queue_delay_ms() -> u64 {
    500
}
fn max_waiting() -> usize {
    1024
}
// About 170 ms of signatures for one core at ~1500/s: above the queue's
// bursts at capacity (p99 under 100 ms), below the delay budget
// (docs/benchmarks.md, "Reset unread").
fn tcp_reset_unread_at() -> usize {
    256
}

// Defaults of the `[listen]` keys added for overload and TCP slots.
pub(crate) fn udp_recv_buffer_bytes() -> usize {
    256 * 1024
}
pub(crate) fn tcp_backlog() -> u32 {
    256
}
// Kerberos clients send their request with the handshake's last ACK; one
// that has sent nothing after this long is accepted anyway.
pub(crate) fn tcp_defer_accept_secs() -> u32 {
    3
}
pub(crate) fn max_tcp_connections_per_source() -> usize {
    32
}
pub(crate) fn tcp_max_connection_secs() -> u64 {
    60
}
pub(crate) fn tcp_write_timeout_secs() -> u64 {
    5
}
pub(crate) fn certboot_write_timeout_ms() -> u64 {
    10_000
}
// A device retrying a failing fetch every few seconds stays far inside
// these; a flood of junk connections from one address does not.
pub(crate) fn certboot_failures_per_source_per_sec() -> f64 {
    1.0
}
pub(crate) fn certboot_failure_burst() -> f64 {
    60.0
}

/// Checks of the `[listen]` keys above.
pub(crate) fn validate_listen(l: &super::Listen, problems: &mut Vec<String>) {
    if !(4096..=64 << 20).contains(&l.udp_recv_buffer_bytes) {
        problems.push("listen.udp_recv_buffer_bytes must be 4096..=67108864".to_string());
    }
    if !(1..=65535).contains(&l.tcp_backlog) {
        problems.push("listen.tcp_backlog must be 1..=65535".to_string());
    }
    if l.tcp_defer_accept_secs > 60 {
        problems.push("listen.tcp_defer_accept_secs must be 0..=60".to_string());
    }
    if l.max_tcp_connections == 0 || l.max_tcp_connections_per_source == 0 {
        problems.push(
            "listen.max_tcp_connections and max_tcp_connections_per_source must be at least 1"
                .to_string(),
        );
    }
    if l.tcp_max_connection_secs == 0 || l.tcp_write_timeout_secs == 0 {
        problems.push(
            "listen.tcp_max_connection_secs and tcp_write_timeout_secs must be at least 1"
                .to_string(),
        );
    }
}
