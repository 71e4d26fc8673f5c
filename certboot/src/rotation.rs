//! Hot replacement of TLS contexts: a new context is built when the device
//! trust store gets a new generation or the server's own certificate files
//! change. A connection keeps the context it started with, so handshakes in
//! flight finish on the old trust; the next one uses the new.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use certs::watch::FileWatch;

use arc_swap::ArcSwap;
use certs::store::{TrustStore, TrustStoreHandle};
use openssl::ssl::SslContext;

use crate::tls::{ServerIdentity, TlsError, TlsSettings, build_context};

/// The server certificate, key and chain files, re-read when they change.
pub struct IdentitySource {
    cert: PathBuf,
    key: PathBuf,
    chain: Option<PathBuf>,
    current: ArcSwap<(u64, ServerIdentity)>,
    watch: FileWatch,
}

impl IdentitySource {
    pub fn open(cert: &Path, key: &Path, chain: Option<&Path>) -> Result<Self, TlsError> {
        let paths = [Some(cert), Some(key), chain]
            .into_iter()
            .flatten()
            .map(Path::to_path_buf)
            .collect();
        let watch = FileWatch::new(paths);
        Ok(IdentitySource {
            cert: cert.to_owned(),
            key: key.to_owned(),
            chain: chain.map(Path::to_owned),
            current: ArcSwap::from_pointee((0, ServerIdentity::load(cert, key, chain)?)),
            watch,
        })
    }

    /// The current identity and its generation (0 at start).
    pub fn load(&self) -> Arc<(u64, ServerIdentity)> {
        self.current.load_full()
    }

    /// Re-reads the files if any changed. `Ok(true)`: a new identity. A
    /// failed attempt (say, a new certificate written before its key) keeps
    /// the old identity and is retried when the files change again.
    pub fn refresh(&self) -> Result<bool, TlsError> {
        if !self.watch.changed() {
            return Ok(false);
        }
        let id = ServerIdentity::load(&self.cert, &self.key, self.chain.as_deref())?;
        let next = self.current.load().0 + 1;
        self.current.store(Arc::new((next, id)));
        Ok(true)
    }
}

/// One built context and what it was built from.
pub struct Built {
    pub ctx: SslContext,
    /// The trust generation the context verifies against (also used for
    /// post-handshake checks, so both agree).
    pub trust: Arc<TrustStore>,
    pub identity_generation: u64,
    /// notAfter of the server certificate (Unix seconds).
    pub server_not_after: Option<i64>,
}

/// The current context for one listener profile.
pub struct Contexts {
    settings: TlsSettings,
    trust: Arc<TrustStoreHandle>,
    identity: Arc<IdentitySource>,
    current: ArcSwap<Built>,
    /// Serializes rebuilds; remembers the (trust, identity) generations of
    /// a failed build so it is reported once, not per connection.
    failed: Mutex<Option<(u64, u64)>>,
}

impl Contexts {
    pub fn new(
        settings: TlsSettings,
        trust: Arc<TrustStoreHandle>,
        identity: Arc<IdentitySource>,
    ) -> Result<Contexts, TlsError> {
        let built = build(&settings, &trust.load(), &identity.load())?;
        Ok(Contexts {
            settings,
            trust,
            identity,
            current: ArcSwap::from_pointee(built),
            failed: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The context for the next handshake, rebuilt first if trust or
    /// identity moved on. If the rebuild fails the previous context stays
    /// and `on_error` hears why (once per generation pair).
    pub fn current(&self, on_error: impl FnOnce(&TlsError)) -> Arc<Built> {
        let built = self.current.load_full();
        let trust = self.trust.load();
        let identity = self.identity.load();
        if built.trust.generation() == trust.generation() && built.identity_generation == identity.0
        {
            return built;
        }
        let key = (trust.generation(), identity.0);
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        // Another connection may have rebuilt it while we waited.
        let latest = self.current.load_full();
        if latest.trust.generation() == key.0 && latest.identity_generation == key.1 {
            return latest;
        }
        if *failed == Some(key) {
            return latest;
        }
        match build(&self.settings, &trust, &identity) {
            Ok(b) => {
                let b = Arc::new(b);
                self.current.store(b.clone());
                *failed = None;
                b
            }
            Err(e) => {
                *failed = Some(key);
                on_error(&e);
                latest
            }
        }
    }
}

fn build(
    settings: &TlsSettings,
    trust: &Arc<TrustStore>,
    identity: &(u64, ServerIdentity),
) -> Result<Built, TlsError> {
    Ok(Built {
        ctx: build_context(settings, &identity.1, trust)?,
        trust: trust.clone(),
        identity_generation: identity.0,
        server_not_after: identity.1.not_after(),
    })
}
