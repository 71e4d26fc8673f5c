//! Atomic replacement of the current [`TrustStore`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::{CrlPolicy, LoadError, TrustStore, load};

/// The current trust store, replaceable while requests are in flight.
pub struct TrustStoreHandle {
    current: ArcSwap<TrustStore>,
    dir: PathBuf,
    policy: CrlPolicy,
    /// Serializes reloads so generations are strictly increasing.
    reload: Mutex<()>,
}

impl std::fmt::Debug for TrustStoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStoreHandle")
            .field("dir", &self.dir)
            .field("generation", &self.current.load().generation())
            .finish_non_exhaustive()
    }
}

impl TrustStoreHandle {
    /// Loads `dir` as generation 1.
    pub fn open(dir: &Path, policy: CrlPolicy) -> Result<Self, LoadError> {
        let store = load::load(dir, policy, 1)?;
        Ok(TrustStoreHandle {
            current: ArcSwap::from_pointee(store),
            dir: dir.to_owned(),
            policy,
            reload: Mutex::new(()),
        })
    }

    /// The current store. Keep the `Arc` for the whole request: a reload
    /// does not change what it answers.
    pub fn load(&self) -> Arc<TrustStore> {
        self.current.load_full()
    }

    /// Re-reads the directory. On success the new store (generation + 1)
    /// replaces the current one and its generation is returned; on error
    /// the current store stays.
    pub fn reload_from_dir(&self) -> Result<u64, LoadError> {
        let _guard = self.reload.lock().unwrap_or_else(|e| e.into_inner());
        let next = self.current.load().generation() + 1;
        let store = load::load(&self.dir, self.policy, next)?;
        self.current.store(Arc::new(store));
        Ok(next)
    }
}
