//! Atomic replacement of the current [`TrustStore`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::fetched::{self, CrlInstalled, CrlRefused};
use super::{CrlPolicy, Intermediates, LoadError, TrustStore, load};

/// The current trust store, replaceable while requests are in flight. This
/// is the server side's store (devices are checked against it), so chains
/// are built from the directory's intermediates only
/// ([`Intermediates::DirectoryOnly`]).
pub struct TrustStoreHandle {
    current: ArcSwap<TrustStore>,
    dir: PathBuf,
    policy: CrlPolicy,
    /// Serializes reloads so generations are strictly increasing; holds
    /// the directory stamp of the last attempt (successful or not).
    reload: Mutex<DirStamp>,
}

/// What [`TrustStoreHandle::reload_if_changed`] compares: every visible
/// file's name, size, inode and modification time, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DirStamp(Vec<(std::ffi::OsString, u64, u64, Option<std::time::SystemTime>)>);

impl DirStamp {
    /// An unreadable directory gets an empty stamp: the reload that
    /// follows reports the real error.
    fn of(dir: &Path) -> DirStamp {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return DirStamp::default();
        };
        let mut files: Vec<_> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| {
                // Follows symlinks, as the loader does.
                let m = std::fs::metadata(e.path()).ok()?;
                Some((e.file_name(), m.len(), m.ino(), m.modified().ok()))
            })
            .collect();
        files.sort();
        DirStamp(files)
    }
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
        let stamp = DirStamp::of(dir);
        let store = load::load(dir, policy, Intermediates::DirectoryOnly, 1)?;
        Ok(TrustStoreHandle {
            current: ArcSwap::from_pointee(store),
            dir: dir.to_owned(),
            policy,
            reload: Mutex::new(stamp),
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
        let mut stamp = self.reload.lock().unwrap_or_else(|e| e.into_inner());
        *stamp = DirStamp::of(&self.dir);
        self.reload_locked()
    }

    /// The file watch: reloads only when a file in the directory was added,
    /// removed, replaced or modified since the last attempt. `Ok(None)`:
    /// nothing changed. A failed attempt is not retried until the directory
    /// changes again, so a broken directory is reported once, not on every
    /// poll.
    pub fn reload_if_changed(&self) -> Result<Option<u64>, LoadError> {
        let mut stamp = self.reload.lock().unwrap_or_else(|e| e.into_inner());
        let now = DirStamp::of(&self.dir);
        if now == *stamp {
            return Ok(None);
        }
        *stamp = now;
        self.reload_locked().map(Some)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Installs a CRL fetched from `source` (DER or PEM) as a new
    /// generation, after checking it against the current store: its issuer
    /// is a CA of the store (name and signature), its thisUpdate is at most
    /// `skew_secs` ahead of `now`, its nextUpdate has not passed, and it is
    /// not older (thisUpdate, cRLNumber) than a CRL of that issuer in use.
    /// It supersedes a CRL of the same issuer fetched before and outlives
    /// directory reloads until the directory gets a newer one. On any
    /// refusal the store stays as it was.
    pub fn install_crl(
        &self,
        bytes: &[u8],
        source: &str,
        now: i64,
        skew_secs: i64,
    ) -> Result<CrlInstalled, CrlRefused> {
        // Serialized with directory reloads: neither loses the other's work.
        let _stamp = self.reload.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current.load_full();
        let new = match fetched::check(&current, bytes, source, now, skew_secs)? {
            fetched::Checked::New(new) => new,
            fetched::Checked::InUse { issuer } => return Ok(CrlInstalled::Unchanged { issuer }),
        };
        let (issuer, this_update, next_update) = (
            new.issuer().to_owned(),
            new.this_update(),
            new.next_update(),
        );
        let next = current.generation() + 1;
        let store = load::assemble(
            &self.dir,
            current.contents.clone(),
            &fetched::replace(current.fetched_crls(), new),
            self.policy,
            Intermediates::DirectoryOnly,
            next,
        )?;
        self.current.store(Arc::new(store));
        Ok(CrlInstalled::Installed {
            generation: next,
            issuer,
            this_update,
            next_update,
        })
    }

    fn reload_locked(&self) -> Result<u64, LoadError> {
        let current = self.current.load_full();
        let next = current.generation() + 1;
        let contents = load::read_dir(&self.dir)?;
        let keep = fetched::still_current(current.fetched_crls(), &contents);
        let store = load::assemble(
            &self.dir,
            Arc::new(contents),
            &keep,
            self.policy,
            Intermediates::DirectoryOnly,
            next,
        )?;
        self.current.store(Arc::new(store));
        Ok(next)
    }
}
