//! CRLs installed from the network (the KDC's CRL fetcher): each is checked
//! against its issuer in the current store before it replaces anything,
//! and a refused one leaves the store as it was.

use std::path::PathBuf;
use std::sync::Arc;

use openssl::x509::{X509Crl, X509NameRef};

use super::load::{DirContents, LoadError, crl_entry, name_string};
use super::verify::crl_signed_by;
use super::{TrustEntry, TrustStore};
use crate::time::unix;

/// A CRL installed by [`super::TrustStoreHandle::install_crl`].
pub struct FetchedCrl {
    crl: X509Crl,
    der: Arc<[u8]>,
    entry: TrustEntry,
    this_update: i64,
    next_update: i64,
    number: Option<Vec<u8>>,
}

impl std::fmt::Debug for FetchedCrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedCrl")
            .field("issuer", &self.entry.subject)
            .field("source", &self.entry.fetched_from)
            .field("this_update", &self.this_update)
            .field("next_update", &self.next_update)
            .finish_non_exhaustive()
    }
}

impl Clone for FetchedCrl {
    fn clone(&self) -> Self {
        FetchedCrl {
            crl: super::ffi::share_crl(&self.crl),
            der: self.der.clone(),
            entry: self.entry.clone(),
            this_update: self.this_update,
            next_update: self.next_update,
            number: self.number.clone(),
        }
    }
}

impl FetchedCrl {
    pub fn crl(&self) -> &X509Crl {
        &self.crl
    }
    /// The CRL as DER (what a cache file holds).
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// The issuer, `C=…, O=…, CN=…`.
    pub fn issuer(&self) -> &str {
        &self.entry.subject
    }
    /// Where it came from (URL or cache file).
    pub fn source(&self) -> &str {
        self.entry.fetched_from.as_deref().unwrap_or("")
    }
    /// thisUpdate (Unix seconds).
    pub fn this_update(&self) -> i64 {
        self.this_update
    }
    /// nextUpdate (Unix seconds; `i64::MAX` when absent).
    pub fn next_update(&self) -> i64 {
        self.next_update
    }
    pub(super) fn entry(&self) -> &TrustEntry {
        &self.entry
    }
}

/// What [`super::TrustStoreHandle::install_crl`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlInstalled {
    /// A new generation holds it.
    Installed {
        generation: u64,
        issuer: String,
        this_update: i64,
        next_update: i64,
    },
    /// The store already has this very CRL: nothing changed.
    Unchanged { issuer: String },
}

/// Why a CRL was not installed; the store in use stays as it was.
#[derive(Debug, thiserror::Error)]
pub enum CrlRefused {
    #[error("not a DER or PEM CRL")]
    Unparseable,
    #[error("CRL of {issuer:?}: no CA of that name in the trust directory")]
    UnknownIssuer { issuer: String },
    #[error("CRL of {issuer:?}: the signature does not verify with the CA's key")]
    BadSignature { issuer: String },
    #[error("CRL of {issuer:?}: thisUpdate {this_update} is ahead of the clock beyond the skew")]
    NotYetValid { issuer: String, this_update: i64 },
    #[error("CRL of {issuer:?}: nextUpdate {next_update} has passed")]
    Expired { issuer: String, next_update: i64 },
    #[error(
        "CRL of {issuer:?}: older than the one in use (thisUpdate {this_update} before {current}, or a lower cRLNumber)"
    )]
    Older {
        issuer: String,
        this_update: i64,
        current: i64,
    },
    #[error("building the new store: {0}")]
    Store(#[from] LoadError),
}

impl CrlRefused {
    /// A stable snake_case name for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            CrlRefused::Unparseable => "unparseable",
            CrlRefused::UnknownIssuer { .. } => "unknown_issuer",
            CrlRefused::BadSignature { .. } => "bad_signature",
            CrlRefused::NotYetValid { .. } => "not_yet_valid",
            CrlRefused::Expired { .. } => "expired",
            CrlRefused::Older { .. } => "older",
            CrlRefused::Store(_) => "store",
        }
    }
}

/// Times and number of one CRL, for "is it newer?".
struct Version {
    this_update: i64,
    number: Option<Vec<u8>>,
}

impl Version {
    fn of(crl: &X509Crl) -> Option<Version> {
        let this_update = unix(crl.last_update()).ok()?;
        let der = crl.to_der().ok()?;
        Some(Version {
            this_update,
            number: crl_number(&der),
        })
    }

    /// Not older than `current`: thisUpdate not earlier and, when both
    /// carry one, cRLNumber not lower.
    fn not_older_than(&self, current: &Version) -> bool {
        let number_ok = match (&self.number, &current.number) {
            (Some(a), Some(b)) => (a.len(), a) >= (b.len(), b),
            _ => true,
        };
        self.this_update >= current.this_update && number_ok
    }
}

/// cRLNumber as big-endian bytes without leading zeros.
fn crl_number(der: &[u8]) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_crl(der).ok()?;
    let n = parsed.crl_number()?.to_bytes_be();
    let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    Some(n[first..].to_vec())
}

fn parse(bytes: &[u8]) -> Option<X509Crl> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        X509Crl::from_pem(trimmed).ok()
    } else {
        X509Crl::from_der(bytes).ok()
    }
}

fn same_name(a: &X509NameRef, b: &X509NameRef) -> bool {
    a.try_cmp(b).is_ok_and(|o| o.is_eq())
}

/// What [`check`] found.
pub(super) enum Checked {
    /// Install this.
    New(FetchedCrl),
    /// The store already has exactly this CRL.
    InUse { issuer: String },
}

/// Checks `bytes` against `store`.
pub(super) fn check(
    store: &TrustStore,
    bytes: &[u8],
    source: &str,
    now: i64,
    skew_secs: i64,
) -> Result<Checked, CrlRefused> {
    let crl = parse(bytes).ok_or(CrlRefused::Unparseable)?;
    let issuer = name_string(crl.issuer_name());
    let mut named = store
        .anchors
        .iter()
        .chain(&store.intermediates)
        .filter(|ca| same_name(ca.subject_name(), crl.issuer_name()))
        .peekable();
    if named.peek().is_none() {
        return Err(CrlRefused::UnknownIssuer { issuer });
    }
    if !named.any(|ca| crl_signed_by(&crl, ca)) {
        return Err(CrlRefused::BadSignature { issuer });
    }
    let der: Arc<[u8]> = crl.to_der().map_err(|_| CrlRefused::Unparseable)?.into();
    let version = Version::of(&crl).ok_or(CrlRefused::Unparseable)?;
    let next_update = match crl.next_update() {
        Some(t) => unix(t).map_err(|_| CrlRefused::Unparseable)?,
        None => i64::MAX,
    };
    if version.this_update > now.saturating_add(skew_secs) {
        return Err(CrlRefused::NotYetValid {
            issuer,
            this_update: version.this_update,
        });
    }
    if next_update < now {
        return Err(CrlRefused::Expired {
            issuer,
            next_update,
        });
    }
    // The CRLs of this issuer in use: the directory's and a fetched one.
    // Older than any of them is refused even when it equals another (a
    // stale mirror serving the directory's CRL after a newer was fetched).
    let in_use: Vec<&X509Crl> = store
        .crls
        .iter()
        .filter(|c| same_name(c.issuer_name(), crl.issuer_name()))
        .collect();
    for current in &in_use {
        if let Some(v) = Version::of(current)
            && !version.not_older_than(&v)
        {
            return Err(CrlRefused::Older {
                issuer,
                this_update: version.this_update,
                current: v.this_update,
            });
        }
    }
    if in_use.iter().any(|c| c.to_der().is_ok_and(|d| *d == *der)) {
        return Ok(Checked::InUse { issuer });
    }
    let entry = crl_entry(&PathBuf::from(source), &crl, Some(source))?;
    Ok(Checked::New(FetchedCrl {
        crl,
        der,
        entry,
        this_update: version.this_update,
        next_update,
        number: version.number,
    }))
}

/// The fetched CRLs that still apply to a newly read directory: their
/// issuer is still a CA there (same name and key), and the directory has
/// no newer CRL of that issuer (an operator's file wins when it is newer).
pub(super) fn still_current(fetched: &[FetchedCrl], contents: &DirContents) -> Vec<FetchedCrl> {
    fetched
        .iter()
        .filter(|f| {
            let signed = contents
                .anchors
                .iter()
                .chain(&contents.intermediates)
                .any(|ca| crl_signed_by(&f.crl, ca));
            let version = Version {
                this_update: f.this_update,
                number: f.number.clone(),
            };
            let newest = contents
                .crls
                .iter()
                .filter(|c| same_name(c.issuer_name(), f.crl.issuer_name()))
                .all(|c| {
                    let same = c.to_der().is_ok_and(|d| *d == *f.der);
                    !same && Version::of(c).is_none_or(|v| version.not_older_than(&v))
                });
            signed && newest
        })
        .cloned()
        .collect()
}

/// `fetched` with `new` in place of any CRL of the same issuer.
pub(super) fn replace(fetched: &[FetchedCrl], new: FetchedCrl) -> Vec<FetchedCrl> {
    let mut out: Vec<FetchedCrl> = fetched
        .iter()
        .filter(|f| !same_name(f.crl.issuer_name(), new.crl.issuer_name()))
        .cloned()
        .collect();
    out.push(new);
    out
}
