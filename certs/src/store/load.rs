//! Reading a trust directory and building the OpenSSL stores once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use openssl::error::ErrorStack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509, X509Crl, X509PurposeId, X509Ref};

use super::fetched::FetchedCrl;
use super::ffi::share_crl;
use super::{CrlPolicy, EntryKind, Intermediates, TrustEntry, TrustStore};
use crate::time::unix;

/// Why a trust directory could not be loaded. The previous store (if any)
/// stays in use.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM or DER certificate or CRL{detail}")]
    Unrecognized { path: PathBuf, detail: String },
    #[error("{path}: certificate {subject:?} is not a CA (basicConstraints CA:TRUE required)")]
    NotCa { path: PathBuf, subject: String },
    #[error("{path}: CRL of {issuer:?} is not signed by any CA certificate in the directory")]
    CrlIssuerUnknown { path: PathBuf, issuer: String },
    #[error("{dir}: no trust anchor (self-signed CA certificate)")]
    NoAnchor { dir: PathBuf },
    #[error("{context}: openssl: {source}")]
    Openssl { context: String, source: ErrorStack },
}

fn ossl(context: impl Into<String>) -> impl FnOnce(ErrorStack) -> LoadError {
    let context = context.into();
    move |source| LoadError::Openssl { context, source }
}

/// A parsed file.
enum Item {
    Cert(X509),
    Crl(X509Crl),
}

/// What a trust directory holds, parsed and classified; shared by every
/// generation built from the same directory read.
pub(super) struct DirContents {
    pub anchors: Vec<X509>,
    pub intermediates: Vec<X509>,
    pub crls: Vec<X509Crl>,
    /// In file-name order; CRL entries in the order of `crls`.
    pub entries: Vec<TrustEntry>,
}

pub(super) fn load(
    dir: &Path,
    policy: CrlPolicy,
    intermediates_from: Intermediates,
    generation: u64,
) -> Result<TrustStore, LoadError> {
    assemble(
        dir,
        Arc::new(read_dir(dir)?),
        &[],
        policy,
        intermediates_from,
        generation,
    )
}

/// Reads, parses and classifies every visible file of `dir`.
pub(super) fn read_dir(dir: &Path) -> Result<DirContents, LoadError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        // Follows symlinks (c_rehash-style links are fine: duplicates are harmless).
        if !hidden && std::fs::metadata(&path).map_err(io(&path))?.is_file() {
            files.push(path);
        }
    }
    files.sort();

    let mut anchors = Vec::new();
    let mut intermediates = Vec::new();
    let mut crls: Vec<(PathBuf, X509Crl)> = Vec::new();
    let mut entries = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let items = parse_file(&path, &bytes)?;
        for item in items {
            match item {
                Item::Cert(cert) => {
                    let subject = name_string(cert.subject_name());
                    if !is_ca(&cert) {
                        return Err(LoadError::NotCa { path, subject });
                    }
                    let kind = if self_signed(&cert) {
                        EntryKind::Anchor
                    } else {
                        EntryKind::Intermediate
                    };
                    entries.push(TrustEntry {
                        path: path.clone(),
                        kind,
                        subject,
                        expires: unix(cert.not_after())
                            .map_err(ossl(path.display().to_string()))?,
                        fetched_from: None,
                    });
                    match kind {
                        EntryKind::Anchor => anchors.push(cert),
                        _ => intermediates.push(cert),
                    }
                }
                Item::Crl(crl) => {
                    entries.push(crl_entry(&path, &crl, None)?);
                    crls.push((path.clone(), crl));
                }
            }
        }
    }
    if anchors.is_empty() {
        return Err(LoadError::NoAnchor {
            dir: dir.to_owned(),
        });
    }
    for (path, crl) in &crls {
        let signed = anchors
            .iter()
            .chain(&intermediates)
            .any(|ca| super::verify::crl_signed_by(crl, ca));
        if !signed {
            return Err(LoadError::CrlIssuerUnknown {
                path: path.clone(),
                issuer: name_string(crl.issuer_name()),
            });
        }
    }
    Ok(DirContents {
        anchors,
        intermediates,
        crls: crls.into_iter().map(|(_, c)| c).collect(),
        entries,
    })
}

/// The expiry-report entry of a CRL read from `path` (or fetched from a URL).
pub(super) fn crl_entry(
    path: &Path,
    crl: &X509Crl,
    fetched_from: Option<&str>,
) -> Result<TrustEntry, LoadError> {
    let expires = match crl.next_update() {
        Some(t) => unix(t).map_err(ossl(path.display().to_string()))?,
        None => i64::MAX,
    };
    Ok(TrustEntry {
        path: path.to_owned(),
        kind: EntryKind::Crl,
        subject: name_string(crl.issuer_name()),
        expires,
        fetched_from: fetched_from.map(str::to_owned),
    })
}

/// One generation: the directory's objects plus the fetched CRLs (each
/// already checked against a CA of `contents`). A fetched CRL supersedes
/// the directory's CRLs of the same issuer in the expiry entries; all stay
/// in the stores, where the newest one current at verification time wins.
pub(super) fn assemble(
    dir: &Path,
    contents: Arc<DirContents>,
    fetched: &[FetchedCrl],
    policy: CrlPolicy,
    intermediates_from: Intermediates,
    generation: u64,
) -> Result<TrustStore, LoadError> {
    let superseded = |e: &TrustEntry| {
        e.kind == EntryKind::Crl && fetched.iter().any(|f| f.issuer() == e.subject)
    };
    let mut entries: Vec<TrustEntry> = contents
        .entries
        .iter()
        .filter(|e| !superseded(e))
        .cloned()
        .collect();
    let mut crls: Vec<X509Crl> = contents.crls.iter().map(|c| share_crl(c)).collect();
    for f in fetched {
        entries.push(f.entry().clone());
        crls.push(share_crl(f.crl()));
    }
    let verify_store = build_verify_store(&contents.anchors, &crls, policy)?;
    let issuer_keys = contents
        .anchors
        .iter()
        .chain(&contents.intermediates)
        .filter_map(|ca| Some((ca.subject_name().to_der().ok()?, ca.public_key().ok()?)))
        .collect();
    Ok(TrustStore {
        dir: dir.to_owned(),
        generation,
        loaded_at: SystemTime::now(),
        policy,
        intermediates_from,
        anchors: contents.anchors.clone(),
        intermediates: contents.intermediates.clone(),
        crls,
        entries,
        contents,
        fetched: fetched.to_vec(),
        verify_store,
        issuer_keys,
        cache: Mutex::new(HashMap::new()),
        cache_hits: AtomicU64::new(0),
    })
}

/// PEM (one or more CERTIFICATE / X509 CRL blocks; any other block is an
/// error) or a single DER certificate or CRL.
fn parse_file(path: &Path, bytes: &[u8]) -> Result<Vec<Item>, LoadError> {
    let unrecognized = |detail: String| LoadError::Unrecognized {
        path: path.to_owned(),
        detail,
    };
    let blocks = pem_blocks(bytes);
    if blocks.is_empty() {
        if let Ok(cert) = X509::from_der(bytes) {
            return Ok(vec![Item::Cert(cert)]);
        }
        if let Ok(crl) = X509Crl::from_der(bytes) {
            return Ok(vec![Item::Crl(crl)]);
        }
        return Err(unrecognized(String::new()));
    }
    let mut items = Vec::new();
    for (label, block) in blocks {
        let item = match label {
            "CERTIFICATE" => X509::from_pem(block).map(Item::Cert),
            "X509 CRL" => X509Crl::from_pem(block).map(Item::Crl),
            other => return Err(unrecognized(format!(" (PEM block {other:?})"))),
        };
        items.push(item.map_err(|e| unrecognized(format!(" ({label}: {e})")))?);
    }
    Ok(items)
}

/// `(label, whole block)` for each `-----BEGIN label-----` … `-----END label-----`.
fn pem_blocks(bytes: &[u8]) -> Vec<(&str, &[u8])> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut offset = 0;
    while let Some(start) = find(rest, BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let Some(label_end) = find(after, b"-----") else {
            break;
        };
        let label = std::str::from_utf8(&after[..label_end]).unwrap_or("?");
        let end_marker = format!("-----END {label}-----");
        let Some(end) = find(after, end_marker.as_bytes()) else {
            out.push((label, &bytes[offset + start..]));
            break;
        };
        let block_end = start + BEGIN.len() + end + end_marker.len();
        out.push((label, &bytes[offset + start..offset + block_end]));
        rest = &rest[block_end..];
        offset += block_end;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_ca(cert: &X509Ref) -> bool {
    let Ok(der) = cert.to_der() else { return false };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    matches!(parsed.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

fn self_signed(cert: &X509Ref) -> bool {
    let same_name = cert
        .subject_name()
        .try_cmp(cert.issuer_name())
        .is_ok_and(|o| o.is_eq());
    same_name
        && cert
            .public_key()
            .and_then(|k| cert.verify(&k))
            .unwrap_or(false)
}

/// `C=US, O=Acme, CN=…`
pub fn name_string(name: &openssl::x509::X509NameRef) -> String {
    let parts: Vec<String> = name
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{key}={value}")
        })
        .collect();
    parts.join(", ")
}

fn add_crls(b: &mut X509StoreBuilder, crls: &[X509Crl]) -> Result<(), LoadError> {
    for crl in crls {
        super::ffi::add_crl(b, crl).map_err(ossl("adding a CRL"))?;
    }
    Ok(())
}

fn build_verify_store(
    anchors: &[X509],
    crls: &[X509Crl],
    policy: CrlPolicy,
) -> Result<X509Store, LoadError> {
    let mut b = X509StoreBuilder::new().map_err(ossl("X509StoreBuilder"))?;
    for a in anchors {
        b.add_cert(a.clone()).map_err(ossl("anchor"))?;
    }
    // Times are checked by TrustStore::verify at the requested time.
    let mut flags = X509VerifyFlags::NO_CHECK_TIME;
    if policy == CrlPolicy::Require {
        add_crls(&mut b, crls)?;
        flags |= X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL;
    }
    let mut param = X509VerifyParam::new().map_err(ossl("X509VerifyParam"))?;
    param.set_flags(flags).map_err(ossl("verify flags"))?;
    // Device certificates carry no EKU: any purpose. CA-ness of issuers
    // (basicConstraints, keyCertSign) is still enforced by OpenSSL.
    param
        .set_purpose(X509PurposeId::ANY)
        .map_err(ossl("verify purpose"))?;
    // Level 1: no key under 80 bits of strength (RSA under 1024 bits),
    // no MD5 signature. Legacy MTAs have RSA-1024 keys (allowed) and SHA-1
    // signatures, which OpenSSL 3 refuses from level 1 on: the store's
    // verify callback lets exactly those through.
    param.set_auth_level(1);
    b.set_param(&param).map_err(ossl("verify param"))?;
    super::ffi::allow_sha1_certificate_signatures(&mut b);
    Ok(b.build())
}

pub(super) fn build_tls_store(
    anchors: &[X509],
    intermediates: &[X509],
    crls: &[X509Crl],
    policy: CrlPolicy,
) -> Result<X509Store, LoadError> {
    let mut b = X509StoreBuilder::new().map_err(ossl("X509StoreBuilder"))?;
    for c in anchors.iter().chain(intermediates) {
        b.add_cert(c.clone()).map_err(ossl("certificate"))?;
    }
    add_crls(&mut b, crls)?;
    if policy == CrlPolicy::Require {
        b.set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)
            .map_err(ossl("verify flags"))?;
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::pem_blocks;

    #[test]
    fn pem_block_splitting() {
        let text = b"junk\n-----BEGIN A-----\nxx\n-----END A-----\nmid\n-----BEGIN B C-----\ny\n-----END B C-----\n";
        let blocks = pem_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].0, "A");
        assert_eq!(blocks[0].1, b"-----BEGIN A-----\nxx\n-----END A-----");
        assert_eq!(blocks[1].0, "B C");
        assert!(pem_blocks(b"\x30\x82\x01").is_empty());
        assert_eq!(pem_blocks(b"-----BEGIN X-----\nno end").len(), 1);
    }
}
