//! `pktc-kdc serve --config FILE`: the TOML configuration.
//!
//! Every key has a default except `realm`; paths are relative to the config
//! file's directory. docs/configuration.md lists every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

mod certboot;
mod choices;
mod crl_fetch;
pub(crate) mod defaults;
mod ops;
mod overload;
mod redis_options;
mod validation;
pub use crate::mps_directory::OnTimeout;
pub use certboot::{Certboot, Reload};
pub use choices::{BusyReply, CrlPolicySetting, LogFormat, ReplyCipher, TlsMinVersion};
pub use crl_fetch::CrlFetch;
use krb::crypto::EncType;
pub use ops::{Admin, MetricsConfig, RateLimit};
pub use overload::Overload;
pub use redis_options::RedisOptions;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kerberos realm served, e.g. `PKTC.EXAMPLE` (upper case by convention).
    pub realm: String,
    /// MIT keytab with krbtgt, service and password-principal keys.
    #[serde(default = "defaults::keytab")]
    pub keytab: PathBuf,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub tickets: Tickets,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub cache: Cache,
    #[serde(default)]
    pub log: Log,
    /// PKINIT for certificate-only devices; absent: PKINIT is not offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkinit: Option<Pkinit>,
    /// pkt-eue-7: ask provisioning servers about devices; absent: the
    /// static `[[pkinit.devices]]` table is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mps: Option<Mps>,
    /// Certificate bootstrapping (HTTPS, mutual TLS); absent: not served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certboot: Option<Certboot>,
    #[serde(default)]
    pub reload: Reload,
    /// Fetch the device trust store's CRLs over HTTP; absent: directory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_fetch: Option<CrlFetch>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub rate_limit: RateLimit,
    #[serde(default)]
    pub admin: Admin,
    /// AUTH and TLS for every Redis connection (`mps.redis`,
    /// `certboot.credentials_redis`).
    #[serde(default, skip_serializing_if = "RedisOptions::is_empty")]
    pub redis: RedisOptions,
    #[serde(default)]
    pub overload: Overload,
}

/// `[mps]`: the provisioning servers the KDC asks (pkt-eue-7).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mps {
    /// FQDN of the server to ask when the device's PA-PROV-SRV-LOCATION
    /// names none of `servers`.
    pub default: String,
    pub servers: Vec<MpsServer>,
    /// The request's source address must be one the server returned.
    #[serde(default = "defaults::yes")]
    pub require_address_match: bool,
    /// `refuse` (default) or `allow-if-cached` when no server answers.
    #[serde(default)]
    pub on_timeout: OnTimeout,
    #[serde(default = "defaults::mps_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::mps_retries")]
    pub retries: u32,
    #[serde(default = "defaults::mps_backoff_ms")]
    pub backoff_ms: u64,
    #[serde(default = "defaults::mps_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "defaults::mps_cache_ttl_secs")]
    pub cache_ttl_secs: u64,
    #[serde(default = "defaults::mps_negative_cache_secs")]
    pub negative_cache_secs: u64,
    /// Enterprise number sent in requests: 1, as PKT-SP-EUE-PROV-I05 Table 1
    /// writes it, or 4491 (CableLabs) for servers that expect that; replies
    /// may carry either (see the protocol profile).
    #[serde(default = "defaults::enterprise")]
    pub enterprise: u32,
    /// The KDC's name in the AP-REQ ticket (INFERRED; default `krbtgt/REALM`).
    /// The provisioning server must accept only this client, so it must be
    /// a name nobody can get a ticket as: not a keytab principal other than
    /// krbtgt/REALM, not `mta/...`.
    #[serde(default)]
    pub kdc_principal: Option<String>,
    /// The reply's KRB_SAFE sender address must be the server's address;
    /// turn off only when NAT between KDC and server rewrites it.
    #[serde(default = "defaults::yes")]
    pub check_sender_address: bool,
    /// KRB_SAFE checksum type number (INFERRED default: the AP session key's
    /// own keyed type, e.g. 15 hmac-sha1-96-aes128 or 12 hmac-sha1-des3-kd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<i32>,
    /// `redis://host:port/` to share answers with other KDC replicas; the
    /// KDC keeps working (memory cache) when Redis is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// The secret (at least 32 bytes) that authenticates every value this
    /// replica writes to or reads from `redis` (HMAC-SHA-256); required with
    /// `redis`, the same file content on every replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_secret_file: Option<PathBuf>,
    /// A cached answer that would refuse a device is checked with the
    /// provisioning server first, at most once per MAC in this many
    /// seconds (an answer younger than this is final); 0: never.
    #[serde(default = "defaults::mps_recheck_interval_secs")]
    pub recheck_interval_secs: u64,
}

/// One provisioning server: its FQDN (its key is `mtaprovsrvr/<fqdn>` in
/// the keytab) and addresses, tried in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpsServer {
    pub fqdn: String,
    pub addresses: Vec<SocketAddr>,
}

/// `[pkinit]`: the KDC's signing identity, device trust and policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkinit {
    /// KDC certificate (PEM): id-pkinit-san krbtgt/REALM@REALM, O = realm org name.
    pub kdc_cert: PathBuf,
    /// Its private key (PEM, PKCS#8 or traditional RSA).
    pub kdc_key: PathBuf,
    /// PEM bundle of the intermediates sent with replies (Local System CA,
    /// SP CA), not the SP root.
    #[serde(default)]
    pub kdc_chain: Option<PathBuf>,
    /// Device trust directory: MTA root(s), manufacturer CAs, CRLs.
    pub device_trust_dir: PathBuf,
    /// `require` (fail closed: every CA needs a current CRL), `if-present` or `off`.
    #[serde(default)]
    pub crl_policy: CrlPolicySetting,
    /// Admitted requests waiting for a serving thread's public-key work
    /// beyond which the KDC answers KDC_ERR_SVC_UNAVAILABLE without doing any.
    #[serde(default = "defaults::pool_queue")]
    pub pool_queue: usize,
    /// Smallest MODP group accepted for DH (bits); smaller: KDC_ERR_KEY_TOO_WEAK.
    #[serde(default = "defaults::dh_min_bits")]
    pub dh_min_bits: u32,
    /// Seconds the KDC may reuse its DH/ECDH key per group (RFC 4556
    /// dhKeyExpiration). 0: a fresh key for every request (MIT's behaviour).
    #[serde(default)]
    pub dh_key_reuse_secs: u64,
    /// The realm organization name MTAs are configured with; the KDC
    /// certificate's O= must equal it (checked by `pktc-kdc check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm_org_name: Option<String>,
    /// Content cipher of PacketCable (padata 15) RSA replies: `des-ede3-cbc`
    /// (what devices decrypt, INFERRED from Heimdal's -19 KDC) or `aes256-cbc`.
    #[serde(default)]
    pub packetcable_reply_cipher: ReplyCipher,
    /// Device certificates whose verified chain is remembered (per trust
    /// generation, by SHA-256 of the certificate) so that a device's next
    /// request skips certificate parsing and chain checks; 0 disables.
    #[serde(default = "kdc::pkinit_as::default_device_cache_entries")]
    pub device_cache_entries: usize,
    /// Static device table (MAC → FQDN) until the MPS lookup (pkt-eue-7) is configured.
    #[serde(default)]
    pub devices: Vec<DeviceEntry>,
}

/// One row of the static device table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Device MAC, as in its certificate CN (`00:11:22:AA:BB:CC`; case and separators free).
    pub mac: String,
    /// The FQDN DHCP gave it: its cname is `mta/<fqdn>`.
    pub fqdn: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// UDP addresses, IPv4 or IPv6 (`"[::1]:88"`).
    #[serde(default = "defaults::listen")]
    pub udp: Vec<SocketAddr>,
    /// TCP addresses (RFC 4120 §7.2.2 4-byte length prefix).
    #[serde(default = "defaults::listen")]
    pub tcp: Vec<SocketAddr>,
    /// Largest request accepted, UDP datagram or TCP frame.
    #[serde(default = "defaults::max_request_bytes")]
    pub max_request_bytes: usize,
    /// A TCP connection idle this long (or slower to send one frame) is closed.
    #[serde(default = "defaults::tcp_idle_timeout_secs")]
    pub tcp_idle_timeout_secs: u64,
    /// Open TCP connections beyond this are refused (closed at accept).
    #[serde(default = "defaults::max_tcp_connections")]
    pub max_tcp_connections: usize,
    /// Serving threads (0 = one per core); each also does the public-key
    /// work of the requests it reads.
    #[serde(default)]
    pub threads: usize,
    /// Largest UDP reply; a larger one is replaced by
    /// KRB_ERR_RESPONSE_TOO_BIG so the client retries over TCP.
    #[serde(default = "defaults::max_udp_reply_bytes")]
    pub max_udp_reply_bytes: usize,
    /// Kernel receive buffer of each UDP socket: small, so that it never
    /// holds more work than `overload.max_queue_delay_ms` allows.
    #[serde(default = "overload::udp_recv_buffer_bytes")]
    pub udp_recv_buffer_bytes: usize,
    /// TCP listen backlog (connections the kernel completes before accept).
    #[serde(default = "overload::tcp_backlog")]
    pub tcp_backlog: u32,
    /// TCP_DEFER_ACCEPT: the kernel hands over a connection only once its
    /// first bytes have come (or after this many seconds); 0 turns it off.
    #[serde(default = "overload::tcp_defer_accept_secs")]
    pub tcp_defer_accept_secs: u32,
    /// Open TCP connections per source address; beyond it the source's
    /// oldest idle connection is closed, or the new one if none is idle.
    #[serde(default = "overload::max_tcp_connections_per_source")]
    pub max_tcp_connections_per_source: usize,
    /// A TCP connection is closed this long after it was accepted.
    #[serde(default = "overload::tcp_max_connection_secs")]
    pub tcp_max_connection_secs: u64,
    /// A reply write that takes longer closes the connection.
    #[serde(default = "overload::tcp_write_timeout_secs")]
    pub tcp_write_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tickets {
    /// Longest ticket life granted. Default 7 days (the PacketCable MTA ticket maximum, INFERRED).
    #[serde(default = "defaults::max_life_secs")]
    pub max_life_secs: u64,
    /// Longest renewable life granted.
    #[serde(default = "defaults::max_renew_secs")]
    pub max_renew_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Allowed clock skew for timestamps and authenticators (RFC 4120 default 300 s).
    #[serde(default = "defaults::clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// Encryption types the KDC will use, by MIT name or number. The choice
    /// among them follows the client's order.
    #[serde(default = "defaults::enctypes")]
    pub enctypes: Vec<String>,
    /// Require PA-ENC-TIMESTAMP for password and keyed principals.
    #[serde(default = "defaults::yes")]
    pub require_preauth: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Lookaside (retransmit) cache: entries kept at most this long.
    #[serde(default = "defaults::lookaside_ttl_secs")]
    pub lookaside_ttl_secs: u64,
    /// Lookaside cache memory bound (request + reply bytes).
    #[serde(default = "defaults::lookaside_max_bytes")]
    pub lookaside_max_bytes: usize,
    /// Authenticator replay cache capacity (entries live for 2 × clock skew).
    #[serde(default = "defaults::replay_max_entries")]
    pub replay_max_entries: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `human` or `json`.
    #[serde(default = "defaults::log_format")]
    pub format: LogFormat,
    /// tracing filter, e.g. `info` or `kdc=debug`; `RUST_LOG` overrides it.
    #[serde(default = "defaults::log_level")]
    pub level: String,
    /// Where audit events go, one per decision: `stdout`, `stderr`, `off`
    /// or a file path (appended). Separate from the debug log.
    #[serde(default = "defaults::audit")]
    pub audit: String,
    /// `json` (one object per line) or `human`.
    #[serde(default = "defaults::audit_format")]
    pub audit_format: LogFormat,
}

impl Config {
    /// Reads and validates a config file; relative paths become absolute.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let cfg = Config::read(path)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a config file and makes its relative paths absolute, without
    /// [`Config::validate`] (`pktc-kdc check` lists [`Config::problems`]).
    pub fn read(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if cfg.keytab.is_relative() {
            cfg.keytab = base.join(&cfg.keytab);
        }
        for path in cfg.admin.pid_file.iter_mut() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        if !matches!(cfg.log.audit.as_str(), "stdout" | "stderr" | "off")
            && Path::new(&cfg.log.audit).is_relative()
        {
            cfg.log.audit = base.join(&cfg.log.audit).display().to_string();
        }
        if let Some(p) = cfg.pkinit.as_mut() {
            for path in [&mut p.kdc_cert, &mut p.kdc_key, &mut p.device_trust_dir]
                .into_iter()
                .chain(p.kdc_chain.as_mut())
            {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        if let Some(dir) = cfg.crl_fetch.as_mut().and_then(|c| c.cache_dir.as_mut())
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
        let mps_secret = cfg.mps.as_mut().and_then(|m| m.redis_secret_file.as_mut());
        for path in mps_secret.into_iter().chain(cfg.redis.paths_mut()) {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        if let Some(c) = cfg.certboot.as_mut() {
            for path in [&mut c.server_cert, &mut c.server_key]
                .into_iter()
                .chain(c.server_chain.as_mut())
                .chain(c.device_trust_dir.as_mut())
                .chain(c.credentials_file.as_mut())
            {
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        }
        Ok(cfg)
    }
}
