//! Credentials from a TOML file, re-read when the file changes.
//!
//! ```toml
//! [[device]]
//! mac = "00:10:95:00:00:01"            # any case, with or without separators
//! impi = "0010950000001@ims.example.net"
//! impu = ["sip:+15551230001@ims.example.net"]
//! credential_type = "password"         # other | none | password | preSharedKey | certificate
//! credential = "secret"                # text; or credential_base64 = "…" for binary values
//! realm = "ims.example.net"            # optional
//! pcscf = ["pcscf.example.net"]        # optional
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine;
use certs::watch::FileWatch;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{CredentialStore, CredsError, LookupFuture};
use crate::profile::{CredsType, DeviceCredentials};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    device: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    mac: String,
    impi: String,
    impu: Vec<String>,
    credential_type: String,
    #[serde(default)]
    credential: Option<Zeroizing<String>>,
    #[serde(default)]
    credential_base64: Option<Zeroizing<String>>,
    #[serde(default)]
    realm: Option<String>,
    #[serde(default)]
    pcscf: Vec<String>,
}

type Table = HashMap<[u8; 6], DeviceCredentials>;

pub struct FileStore {
    path: PathBuf,
    table: ArcSwap<Table>,
    watch: FileWatch,
}

impl FileStore {
    /// Reads the file; any bad row fails the whole load, naming the row.
    pub fn open(path: &Path) -> Result<FileStore, CredsError> {
        let watch = FileWatch::new(vec![path.to_owned()]);
        let table = read(path)?;
        Ok(FileStore {
            path: path.to_owned(),
            table: ArcSwap::from_pointee(table),
            watch,
        })
    }

    pub fn len(&self) -> usize {
        self.table.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn file_error(path: &Path, detail: impl std::fmt::Display) -> CredsError {
    CredsError::File {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

fn read(path: &Path) -> Result<Table, CredsError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_error(path, e))?);
    // toml's messages quote the offending line, which may be a password:
    // report only where it is.
    let doc: FileDoc = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(" at line {}", text[..s.start].lines().count().max(1)))
            .unwrap_or_default();
        file_error(path, format!("not a valid credentials file{at}"))
    })?;
    let mut table = HashMap::with_capacity(doc.device.len());
    for (i, row) in doc.device.into_iter().enumerate() {
        let which = format!("device #{} ({})", i + 1, row.mac);
        let (mac, creds) =
            row_to_creds(row).map_err(|d| file_error(path, format!("{which}: {d}")))?;
        if table.insert(mac, creds).is_some() {
            return Err(file_error(path, format!("{which}: MAC listed twice")));
        }
    }
    Ok(table)
}

fn row_to_creds(row: Row) -> Result<([u8; 6], DeviceCredentials), String> {
    let mac = certs::mac::parse_mac(&row.mac).map_err(|e| e.to_string())?;
    let creds_type = CredsType::parse(&row.credential_type)
        .ok_or_else(|| format!("unknown credential_type {:?}", row.credential_type))?;
    let credential = match (row.credential, row.credential_base64) {
        (Some(_), Some(_)) => return Err("set credential or credential_base64, not both".into()),
        (Some(text), None) => Zeroizing::new(text.as_bytes().to_vec()),
        (None, Some(b64)) => Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim().as_bytes())
                .map_err(|_| "credential_base64 is not base64".to_string())?,
        ),
        (None, None) => Zeroizing::new(Vec::new()),
    };
    let creds = DeviceCredentials {
        impi: row.impi,
        impu: row.impu,
        creds_type,
        credential,
        realm: row.realm,
        pcscf: row.pcscf,
    };
    creds.validate().map_err(|e| e.to_string())?;
    Ok((mac, creds))
}

impl CredentialStore for FileStore {
    fn lookup(&self, mac: [u8; 6]) -> LookupFuture<'_> {
        let found = self.table.load().get(&mac).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn refresh(&self) -> Result<bool, CredsError> {
        // A broken file is reported once: the watch remembers the attempt.
        if !self.watch.changed() {
            return Ok(false);
        }
        let table = read(&self.path)?;
        self.table.store(Arc::new(table));
        Ok(true)
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}
