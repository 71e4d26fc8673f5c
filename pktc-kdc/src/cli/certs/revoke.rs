//! `certs revoke`: a CA's next CRL (dev PKIs and tests; a production CA
//! has its own tooling).

use std::path::{Path, PathBuf};

use anyhow::Context;
use certs::{CrlSpec, Issued};
use openssl::x509::X509Crl;

use super::load_certs;

/// What `certs revoke` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub out: PathBuf,
    pub number: u64,
    /// Entries in the new CRL (carried over + new).
    pub entries: usize,
}

/// Issues `ca`'s next CRL into `out`: the entries of `current` (if given)
/// plus the serials of `certs` (revoked now), cRLNumber one above the
/// current one, thisUpdate now, nextUpdate in `next_update_days`. Written
/// atomically (a hidden temporary file renamed into place, so an HTTP
/// server publishing `out` never serves half a file); PEM when `out` ends
/// in `.pem`, else DER.
pub fn revoke(
    ca: &Issued,
    current: Option<&Path>,
    certs: &[PathBuf],
    next_update_days: u32,
    out: &Path,
) -> anyhow::Result<Revoked> {
    let (mut serials, number, not_before) = match current {
        Some(path) => {
            let data =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let crl = X509Crl::from_pem(&data)
                .or_else(|_| X509Crl::from_der(&data))
                .with_context(|| format!("{}: not a CRL", path.display()))?;
            let this_update = certs::time::unix(crl.last_update())?;
            (
                certs::pki::revoked_serials(&crl)?,
                certs::pki::crl_number(&crl).unwrap_or(0),
                this_update,
            )
        }
        None => (Vec::new(), 0, i64::MIN),
    };
    let now = krb::msg::time::now().0;
    for path in certs {
        let cert = load_certs(path)?.remove(0);
        let serial = cert.serial_number().to_bn()?;
        if !serials.iter().any(|(s, _)| *s == serial) {
            serials.push((serial, now));
        }
    }
    // Never older than the CRL it replaces, whatever the clocks say.
    let this_update = now.max(not_before);
    let spec = CrlSpec {
        this_update,
        next_update: this_update + i64::from(next_update_days) * 86_400,
        number: number + 1,
        ..CrlSpec::current()
    };
    let crl = certs::pki::crl_of_serials(ca, &serials, spec).context("signing the CRL")?;
    let pem = out.extension().is_some_and(|e| e == "pem");
    let bytes = if pem { crl.to_pem()? } else { crl.to_der()? };
    krb::atomic_file::write_public(out, &bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(Revoked {
        out: out.to_owned(),
        number: spec.number,
        entries: serials.len(),
    })
}
