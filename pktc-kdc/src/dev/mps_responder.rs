//! `pktc-kdc mps-responder --config FILE`: answers pkt-eue-7 from a table
//! of MAC → FQDN + addresses, for labs, tests and provisioning servers
//! that lack the interface. The table file is re-read when it changes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use fqdn_map::framing::AcceptPolicy;
use fqdn_map::responder::TableEntry;
use krb::crypto::{EncType, Key};
use krb::keytab::Keytab;
use krb::principal::Principal;
use serde::{Deserialize, Serialize};

/// The responder's config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponderConfig {
    /// UDP addresses (the IANA port is 2246).
    pub listen: Vec<SocketAddr>,
    /// Keytab with the `mtaprovsrvr/<fqdn>` keys the KDC's tickets use.
    pub keytab: PathBuf,
    /// Device table (TOML, `[[device]] mac, fqdn, addresses`), re-read on change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<PathBuf>,
    /// Or: look each MAC up in Redis, hash `pktc-mps:device:<mac hex>` with
    /// fields `fqdn` and `addresses` (comma-separated), e.g. fed by a DHCP
    /// server's lease hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    #[serde(default = "default_skew")]
    pub skew_secs: i64,
    /// The only ticket client answered: the KDC's `mps.kdc_principal`.
    /// Absent: `krbtgt/REALM@REALM` for the realm of each `mtaprovsrvr`
    /// key (the KDC's default), a name no device or user gets tickets as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdc_principal: Option<String>,
    /// A request's KRB_SAFE sender address must be its source; turn off
    /// only when NAT between KDC and server rewrites it.
    #[serde(default = "default_yes")]
    pub check_sender_address: bool,
    /// `auto` (default): the PacketCable 1.x reply for a device with one
    /// IPv4 address, the E-UE Table 1 reply otherwise; `table1`: always
    /// Table 1 (PKT-SP-EUE-PROV-I05 §6.1.7, networks with IPv6 clients).
    #[serde(default, skip_serializing_if = "ReplyFormSetting::is_auto")]
    pub reply_form: ReplyFormSetting,
}

fn default_yes() -> bool {
    true
}

fn default_skew() -> i64 {
    300
}

/// `reply_form` in the responder's config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyFormSetting {
    #[default]
    Auto,
    Table1,
}

impl ReplyFormSetting {
    fn is_auto(&self) -> bool {
        *self == ReplyFormSetting::Auto
    }

    pub fn form(self) -> fqdn_map::responder::ReplyForm {
        match self {
            ReplyFormSetting::Auto => fqdn_map::responder::ReplyForm::Auto,
            ReplyFormSetting::Table1 => fqdn_map::responder::ReplyForm::Table1,
        }
    }
}

/// The table file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableFile {
    #[serde(default)]
    pub device: Vec<TableRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRow {
    pub mac: String,
    pub fqdn: String,
    /// Addresses DHCP gave the device (none: "not supplied").
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

impl ResponderConfig {
    pub fn load(path: &Path) -> anyhow::Result<ResponderConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg: ResponderConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in std::iter::once(&mut cfg.keytab).chain(cfg.table.as_mut()) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if cfg.table.is_some() == cfg.redis.is_some() {
            anyhow::bail!("{}: set exactly one of `table` and `redis`", path.display());
        }
        Ok(cfg)
    }
}

pub fn load_table(path: &Path) -> anyhow::Result<HashMap<[u8; 6], TableEntry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: TableFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut table = HashMap::new();
    for row in file.device {
        let mac = certs::mac::parse_mac(&row.mac)
            .map_err(|e| anyhow::anyhow!("{}: MAC {:?}: {e}", path.display(), row.mac))?;
        table.insert(
            mac,
            TableEntry {
                fqdn: row.fqdn,
                addresses: row.addresses,
            },
        );
    }
    Ok(table)
}

type Table = Arc<RwLock<Arc<HashMap<[u8; 6], TableEntry>>>>;

/// Where device answers come from.
#[derive(Clone)]
enum Source {
    File(Table),
    Redis(redis::aio::ConnectionManager),
}

/// The Redis hash of a device.
pub fn redis_key(mac: [u8; 6]) -> String {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("pktc-mps:device:{hex}")
}

impl Source {
    /// `Ok(None)`: unknown MAC; `Err`: the store failed (no answer is sent).
    async fn lookup(&self, mac: [u8; 6]) -> Result<Option<TableEntry>, String> {
        match self {
            Source::File(t) => Ok(t.read().ok().and_then(|t| t.get(&mac).cloned())),
            Source::Redis(conn) => {
                let mut conn = conn.clone();
                let fields: HashMap<String, String> = match tokio::time::timeout(
                    Duration::from_millis(500),
                    redis::AsyncCommands::hgetall(&mut conn, redis_key(mac)),
                )
                .await
                {
                    Ok(Ok(f)) => f,
                    Ok(Err(e)) => return Err(format!("redis: {e}")),
                    Err(_) => return Err("redis: timeout".into()),
                };
                let Some(fqdn) = fields.get("fqdn").cloned() else {
                    return Ok(None);
                };
                let addresses = fields
                    .get("addresses")
                    .map(|a| {
                        a.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .filter_map(|s| s.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Some(TableEntry { fqdn, addresses }))
            }
        }
    }
}

/// Serves until the process is stopped.
pub async fn run(cfg: ResponderConfig) -> anyhow::Result<()> {
    let keytab = Keytab::read_file(&cfg.keytab)
        .with_context(|| format!("reading {}", cfg.keytab.display()))?;
    let keys: Arc<Vec<(Principal, EncType, u32, Key)>> = Arc::new(
        keytab
            .entries
            .iter()
            .filter(|e| e.principal.components.first().map(String::as_str) == Some("mtaprovsrvr"))
            .filter_map(|e| {
                let etype = EncType::from_i32(e.enctype)?;
                Some((
                    e.principal.clone(),
                    etype,
                    e.kvno,
                    Key::new(etype, &e.key).ok()?,
                ))
            })
            .collect(),
    );
    if keys.is_empty() {
        anyhow::bail!("{} has no mtaprovsrvr/... keys", cfg.keytab.display());
    }
    let policy = accept_policy(&cfg, keys.iter().map(|(p, ..)| p))?;
    let source = match (&cfg.table, &cfg.redis) {
        (Some(path), _) => {
            let table: Table = Arc::new(RwLock::new(Arc::new(load_table(path)?)));
            tokio::spawn(watch_table(path.clone(), table.clone()));
            Source::File(table)
        }
        // The shared connection code: a password in the URL, rediss://.
        (None, Some(url)) => Source::Redis(crate::redis_conn::connection_manager(
            url,
            &crate::config::RedisOptions::default(),
            Duration::from_millis(500),
        )?),
        (None, None) => anyhow::bail!("no device table or redis configured"),
    };
    let mut tasks = Vec::new();
    for addr in &cfg.listen {
        let sock = tokio::net::UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let (keys, source) = (keys.clone(), source.clone());
        let key_for = move |server: &Principal, etype: EncType, kvno: Option<u32>| {
            keys.iter()
                .find(|(p, e, k, _)| {
                    p.same_name(server) && *e == etype && kvno.is_none_or(|v| v == *k)
                })
                .map(|(.., key)| key.clone())
        };
        let current = move |mac: [u8; 6]| {
            let source = source.clone();
            async move { source.lookup(mac).await }
        };
        tasks.push(tokio::spawn(fqdn_map::responder::serve(sock, key_for, current, policy.clone(), cfg.reply_form.form(), |peer, outcome| match outcome {
            Ok(mac) => tracing::info!(target: "audit", exchange = "mps-lookup", source = %peer, mac = %certs::mac::format_mac(*mac), outcome = "answered"),
            Err(e) => tracing::info!(target: "audit", exchange = "mps-lookup", source = %peer, outcome = "refused", reason = %e),
        })));
    }
    tracing::info!(listen = ?cfg.listen, reply_form = ?cfg.reply_form, "pktc-kdc mps-responder serving");
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// Whom the responder answers: `kdc_principal`, or by default
/// `krbtgt/REALM@REALM` for the realm of each served principal.
fn accept_policy<'a>(
    cfg: &ResponderConfig,
    served: impl Iterator<Item = &'a Principal>,
) -> anyhow::Result<AcceptPolicy> {
    let mut realms: Vec<&str> = served.map(|p| p.realm.as_str()).collect();
    realms.dedup();
    let mut policy = AcceptPolicy::krbtgt_of(realms.iter().copied(), cfg.skew_secs);
    if let Some(name) = &cfg.kdc_principal {
        let p = Principal::parse(name, realms.first().copied())
            .with_context(|| format!("kdc_principal {name:?}"))?;
        policy.kdc_names = vec![p];
    }
    policy.check_sender = cfg.check_sender_address;
    Ok(policy)
}

/// Re-reads the table when its modification time changes; a broken file
/// keeps the previous table and says why.
async fn watch_table(path: PathBuf, table: Table) {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen: Option<SystemTime> = mtime(&path);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = mtime(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match load_table(&path) {
            Ok(t) => {
                tracing::info!(devices = t.len(), "device table reloaded");
                if let Ok(mut w) = table.write() {
                    *w = Arc::new(t);
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "device table reload failed; keeping the previous one")
            }
        }
    }
}
