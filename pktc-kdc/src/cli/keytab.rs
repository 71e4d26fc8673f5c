//! `pktc-kdc keytab add|list|export`: service keys that operators and MPS
//! vendors share through standard MIT keytab files.

use std::path::Path;

use anyhow::{Context, bail};
use krb::crypto::{EncType, Key};
use krb::keytab::{Keytab, KeytabEntry};
use krb::principal::Principal;

/// Where a new key comes from.
pub enum KeySource<'a> {
    Random,
    /// String-to-key with the principal's default salt and default parameters.
    Password(&'a str),
}

/// Adds keys for `principal` at `kvno` (default: one above its newest) for
/// each etype; returns the kvno used.
pub fn add_keys(
    kt: &mut Keytab,
    principal: &Principal,
    etypes: &[EncType],
    kvno: Option<u32>,
    source: &KeySource<'_>,
) -> anyhow::Result<u32> {
    let kvno = kvno.unwrap_or_else(|| {
        kt.entries
            .iter()
            .filter(|e| e.principal.same_name(principal))
            .map(|e| e.kvno)
            .max()
            .map_or(1, |k| k + 1)
    });
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    for &etype in etypes {
        let key = match source {
            KeySource::Random => Key::random(etype),
            KeySource::Password(pw) => {
                Key::from_password(etype, pw.as_bytes(), &principal.salt(), None)
                    .with_context(|| format!("string-to-key for {}", etype.name()))?
            }
        };
        kt.entries.push(KeytabEntry {
            principal: principal.clone(),
            timestamp,
            kvno,
            enctype: etype.as_i32(),
            key: zeroize::Zeroizing::new(key.bytes().to_vec()),
        });
    }
    Ok(kvno)
}

pub fn parse_etypes(list: &str) -> anyhow::Result<Vec<EncType>> {
    let mut out = Vec::new();
    for n in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match EncType::from_name(n) {
            Some(e) => out.push(e),
            None => bail!("unknown encryption type {n:?}"),
        }
    }
    if out.is_empty() {
        bail!("no encryption types given");
    }
    Ok(out)
}

pub fn load_or_new(path: &Path) -> anyhow::Result<Keytab> {
    if path.exists() {
        Keytab::read_file(path).with_context(|| format!("reading {}", path.display()))
    } else {
        Ok(Keytab {
            entries: Vec::new(),
        })
    }
}

/// `keytab list`: one line per key, never the key bytes.
pub fn list(path: &Path) -> anyhow::Result<String> {
    let kt = Keytab::read_file(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = format!(
        "Keytab: {}\nKVNO  Enctype                      Principal\n",
        path.display()
    );
    for e in &kt.entries {
        let name = EncType::from_i32(e.enctype)
            .map_or_else(|| format!("etype {}", e.enctype), |t| t.name().to_string());
        out.push_str(&format!("{:>4}  {:<28} {}\n", e.kvno, name, e.principal));
    }
    Ok(out)
}

/// `keytab export`: the newest keys of one principal into another keytab.
pub fn export(from: &Path, principal: &Principal, to: &Path) -> anyhow::Result<usize> {
    let kt = Keytab::read_file(from).with_context(|| format!("reading {}", from.display()))?;
    let keys: Vec<KeytabEntry> = kt.latest_keys(principal).into_iter().cloned().collect();
    if keys.is_empty() {
        bail!("{} has no keys for {principal}", from.display());
    }
    let n = keys.len();
    let mut out = load_or_new(to)?;
    out.entries.extend(keys);
    out.write_file(to)
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(n)
}
