//! The KDC's PKINIT signing identity (`[pkinit] kdc_cert`, `kdc_key`,
//! `kdc_chain`), replaceable while the service runs: the file watch and
//! SIGHUP re-read the files when they change; a request uses the identity it
//! started with; a pair that does not load (say, a new certificate written
//! before its key) leaves the current one in place.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use certs::watch::FileWatch;
use openssl::pkey::PKey;
use openssl::x509::X509;
use pkinit::server::KdcIdentity;

use crate::config::Pkinit;

pub struct KdcIdentitySource {
    config: Pkinit,
    current: ArcSwap<KdcIdentity>,
    watch: FileWatch,
}

impl KdcIdentitySource {
    pub fn open(p: &Pkinit) -> anyhow::Result<KdcIdentitySource> {
        let paths = [Some(&p.kdc_cert), Some(&p.kdc_key), p.kdc_chain.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let watch = FileWatch::new(paths);
        Ok(KdcIdentitySource {
            current: ArcSwap::from_pointee(load(p)?),
            config: p.clone(),
            watch,
        })
    }

    /// The identity for one request.
    pub fn load(&self) -> Arc<KdcIdentity> {
        self.current.load_full()
    }

    /// Re-reads the files if any changed (`force`: whether or not).
    /// `Ok(true)`: a new identity is in use.
    pub fn refresh(&self, force: bool) -> anyhow::Result<bool> {
        if !self.watch.changed() && !force {
            return Ok(false);
        }
        self.current.store(Arc::new(load(&self.config)?));
        Ok(true)
    }
}

impl kdc::pkinit_as::SigningIdentity for KdcIdentitySource {
    fn load(&self) -> Arc<KdcIdentity> {
        KdcIdentitySource::load(self)
    }

    fn refresh(&self, force: bool) -> anyhow::Result<bool> {
        KdcIdentitySource::refresh(self, force)
    }
}

/// Reads and checks the certificate, key and chain.
pub fn load(p: &Pkinit) -> anyhow::Result<KdcIdentity> {
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let cert = X509::from_pem(&read(&p.kdc_cert)?).context("parsing pkinit.kdc_cert")?;
    let key = PKey::private_key_from_pem(&zeroize::Zeroizing::new(read(&p.kdc_key)?))
        .context("parsing pkinit.kdc_key")?;
    if !cert.public_key()?.public_eq(&key) {
        anyhow::bail!(
            "pkinit.kdc_key does not match pkinit.kdc_cert ({} / {})",
            p.kdc_key.display(),
            p.kdc_cert.display()
        );
    }
    let own = cert.to_der()?;
    let chain = match &p.kdc_chain {
        Some(path) => X509::stack_from_pem(&read(path)?)
            .context("parsing pkinit.kdc_chain")?
            .into_iter()
            .filter(|c| c.to_der().ok().as_deref() != Some(&own[..]))
            .collect(),
        None => Vec::new(),
    };
    KdcIdentity::new(cert, key, chain).context("pkinit.kdc_key")
}
