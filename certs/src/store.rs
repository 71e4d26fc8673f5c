//! The trust store: CA certificates and CRLs loaded from one directory.
//!
//! A [`TrustStore`] is immutable once built. Every file in its directory is
//! classified by content: a self-signed CA certificate is an anchor, any
//! other CA certificate an intermediate, a CRL a CRL; anything else (a
//! private key, a leaf certificate, garbage) fails the whole load with an
//! error naming the file. [`TrustStoreHandle`] swaps stores atomically
//! (arc-swap): a request holding an `Arc<TrustStore>` keeps its generation
//! until it drops it, and a failed reload leaves the current store in place.
//!
//! Revocation data changes only with a new generation: a new CRL is picked
//! up by [`TrustStoreHandle::reload_from_dir`], or installed from the
//! network by [`TrustStoreHandle::install_crl`] (checked against its
//! issuer first); either discards the per-generation verification cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use openssl::x509::store::X509Store;
use openssl::x509::{X509, X509Crl};

mod cdp;
mod fetched;
mod ffi;
mod handle;
mod load;
mod verify;

pub use cdp::DistributionPoint;
pub use fetched::{CrlInstalled, CrlRefused, FetchedCrl};
pub use handle::TrustStoreHandle;
pub use load::{LoadError, name_string};
pub use verify::{ChainError, VerifiedChain};

/// How certificate revocation lists are used when verifying a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrlPolicy {
    /// Fail closed (default): every CA that issued a certificate in the
    /// chain must have a CRL in the store that is current at the
    /// verification time; otherwise [`ChainError::CrlMissing`] /
    /// [`ChainError::CrlExpired`].
    #[default]
    Require,
    /// Use a CA's CRL when the store has one (an expired one is still an
    /// error); CAs without a CRL are not checked.
    IfPresent,
    /// No revocation checking.
    Off,
}

/// Where the intermediates of a chain may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intermediates {
    /// The peer's presented certificates and the directory's (a client
    /// checking a server: its trust directory holds only the root).
    FromPeer,
    /// The directory's only (the KDC and the certificate-bootstrapping
    /// endpoint checking devices): the directory is the manufacturer
    /// allowlist, and a manufacturer CA a device sends along counts only
    /// if the directory holds the same certificate.
    DirectoryOnly,
}

/// What a file in the trust directory turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Anchor,
    Intermediate,
    Crl,
}

/// One object in the store, for expiry reports (`pktc-kdc certs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustEntry {
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Certificate subject, or CRL issuer, as `C=US, O=…, CN=…`.
    pub subject: String,
    /// notAfter of a certificate or nextUpdate of a CRL (Unix seconds;
    /// `i64::MAX` for a CRL without nextUpdate).
    pub expires: i64,
    /// The URL of a CRL installed by [`TrustStoreHandle::install_crl`]
    /// (`path` is then the URL too); `None` for the directory's files.
    pub fetched_from: Option<String>,
}

/// Upper bound on cached verification results per generation; the cache is
/// cleared when it is full.
pub const CACHE_CAPACITY: usize = 4096;

/// An immutable set of anchors, intermediates and CRLs, with the OpenSSL
/// stores built from them once.
pub struct TrustStore {
    dir: PathBuf,
    generation: u64,
    loaded_at: SystemTime,
    policy: CrlPolicy,
    intermediates_from: Intermediates,
    anchors: Vec<X509>,
    intermediates: Vec<X509>,
    /// The directory's CRLs and the fetched ones.
    crls: Vec<X509Crl>,
    entries: Vec<TrustEntry>,
    /// What the directory held when this generation was built (a fetched
    /// CRL makes a new generation from it without re-reading the files).
    contents: Arc<load::DirContents>,
    /// CRLs installed from the network, at most one per issuer.
    fetched: Vec<FetchedCrl>,
    /// For [`TrustStore::verify`]: anchors only, purpose ANY, auth level 0,
    /// no time checks (done by us at the requested time), CRL_CHECK_ALL
    /// under [`CrlPolicy::Require`].
    verify_store: X509Store,
    /// Subject (exact DER) and public key of every CA in the directory, for
    /// [`TrustStore::check_issuer_signature`].
    issuer_keys: Vec<(Vec<u8>, openssl::pkey::PKey<openssl::pkey::Public>)>,
    cache: Mutex<HashMap<CacheKey, VerifiedChain>>,
    cache_hits: AtomicU64,
}

type CacheKey = ([u8; 32], [u8; 32]);

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("dir", &self.dir)
            .field("generation", &self.generation)
            .field("policy", &self.policy)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl TrustStore {
    /// Loads `dir` as generation 1; chains may use the peer's
    /// intermediates ([`Intermediates::FromPeer`]).
    pub fn load_dir(dir: &Path, policy: CrlPolicy) -> Result<TrustStore, LoadError> {
        load::load(dir, policy, Intermediates::FromPeer, 1)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn generation(&self) -> u64 {
        self.generation
    }
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }
    pub fn policy(&self) -> CrlPolicy {
        self.policy
    }
    pub fn anchors(&self) -> &[X509] {
        &self.anchors
    }
    pub fn intermediates(&self) -> &[X509] {
        &self.intermediates
    }
    pub fn crls(&self) -> &[X509Crl] {
        &self.crls
    }
    /// Every loaded object with its expiry, in file-name order, then the
    /// fetched CRLs (a directory CRL whose issuer has a fetched one is left
    /// out: the fetched one is newer).
    pub fn entries(&self) -> &[TrustEntry] {
        &self.entries
    }
    /// CRLs installed from the network in this generation.
    pub fn fetched_crls(&self) -> &[FetchedCrl] {
        &self.fetched
    }

    /// A new OpenSSL store for TLS client-certificate verification (the
    /// certificate-bootstrapping endpoint): anchors and intermediates as
    /// trusted certificates (OpenSSL still requires the chain to end at a
    /// self-signed anchor), the CRLs, and `CRL_CHECK | CRL_CHECK_ALL` under
    /// [`CrlPolicy::Require`]. OpenSSL has no "if present" mode, so under
    /// [`CrlPolicy::IfPresent`] TLS peers get no CRL check from this store;
    /// call [`TrustStore::verify`] on the peer certificate after the
    /// handshake. Time is checked against the clock; the security level of
    /// the `SslContext` decides whether SHA-1 / RSA-1024 peers pass
    /// (`@SECLEVEL=0` for legacy MTAs). `X509Store` is `Send + Sync`.
    ///
    /// Built afresh from this generation's parsed objects on each call (an
    /// `SslContext` takes ownership of its store); call it once per TLS
    /// context, not per handshake.
    pub fn tls_store(&self) -> Result<X509Store, LoadError> {
        load::build_tls_store(&self.anchors, &self.intermediates, &self.crls, self.policy)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::TrustStore>();
        check::<super::TrustStoreHandle>();
        check::<openssl::x509::store::X509Store>();
    }
}
