//! `pktc-kdc mps-responder --config FILE`: answers pkt-eue-7 from a table
//! of MAC → FQDN + addresses, for labs, tests and provisioning servers
//! that lack the interface. The table file is re-read when it changes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use fqdn_map::responder::TableEntry;
use krb::crypto::{EncType, Key};
use krb::keytab::Keytab;
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
    pub table: PathBuf,
    #[serde(default = "default_skew")]
    pub skew_secs: i64,
}

fn default_skew() -> i64 {
    300
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
        for p in [&mut cfg.keytab, &mut cfg.table] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
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

/// Serves until the process is stopped.
pub async fn run(cfg: ResponderConfig) -> anyhow::Result<()> {
    let keytab = Keytab::read_file(&cfg.keytab)
        .with_context(|| format!("reading {}", cfg.keytab.display()))?;
    let keys: Arc<Vec<(EncType, u32, Key)>> = Arc::new(
        keytab
            .entries
            .iter()
            .filter(|e| e.principal.components.first().map(String::as_str) == Some("mtaprovsrvr"))
            .filter_map(|e| {
                let etype = EncType::from_i32(e.enctype)?;
                Some((etype, e.kvno, Key::new(etype, &e.key).ok()?))
            })
            .collect(),
    );
    if keys.is_empty() {
        anyhow::bail!("{} has no mtaprovsrvr/... keys", cfg.keytab.display());
    }
    let table: Table = Arc::new(RwLock::new(Arc::new(load_table(&cfg.table)?)));
    tokio::spawn(watch_table(cfg.table.clone(), table.clone()));
    let mut tasks = Vec::new();
    for addr in &cfg.listen {
        let sock = tokio::net::UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let (keys, table) = (keys.clone(), table.clone());
        let key_for = move |etype: EncType, kvno: Option<u32>| {
            keys.iter()
                .find(|(e, k, _)| *e == etype && kvno.is_none_or(|v| v == *k))
                .map(|(_, _, key)| key.clone())
        };
        let current = move || table.read().map(|t| t.clone()).unwrap_or_default();
        tasks.push(tokio::spawn(fqdn_map::responder::serve(sock, key_for, current, cfg.skew_secs, |peer, outcome| match outcome {
            Ok(mac) => tracing::info!(target: "audit", exchange = "mps-lookup", source = %peer, mac = %certs::mac::format_mac(*mac), outcome = "answered"),
            Err(e) => tracing::info!(target: "audit", exchange = "mps-lookup", source = %peer, outcome = "refused", reason = %e),
        })));
    }
    tracing::info!(listen = ?cfg.listen, devices = table.read().map(|t| t.len()).unwrap_or(0), "pktc-kdc mps-responder serving");
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
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
