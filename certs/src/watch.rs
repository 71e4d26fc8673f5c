//! Noticing that files changed: size, modification time and inode of each,
//! compared with the last look. Used by the reloads of certificates, keys
//! and tables (the trust directory has its own, per-directory stamp).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

type Stamp = Option<(u64, Option<SystemTime>, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok(), m.ino()))
}

/// A set of files and how they looked last time.
#[derive(Debug)]
pub struct FileWatch {
    paths: Vec<PathBuf>,
    last: Mutex<Vec<Stamp>>,
}

impl FileWatch {
    /// Remembers how `paths` look now.
    pub fn new(paths: Vec<PathBuf>) -> FileWatch {
        let last = paths.iter().map(|p| stamp(p)).collect();
        FileWatch {
            paths,
            last: Mutex::new(last),
        }
    }

    /// Whether any file was replaced, modified, created or removed since
    /// the last call (or `new`). The new look is remembered either way, so
    /// a failed reload is retried only after the next change.
    pub fn changed(&self) -> bool {
        let now: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if *last == now {
            return false;
        }
        *last = now;
        true
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_changes_once() {
        let dir = std::env::temp_dir().join(format!("certs-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a");
        std::fs::write(&a, "1").unwrap();
        let w = FileWatch::new(vec![a.clone(), dir.join("missing")]);
        assert!(!w.changed());
        std::fs::write(&a, "22").unwrap();
        assert!(w.changed());
        assert!(!w.changed(), "reported once");
        std::fs::write(dir.join("missing"), "x").unwrap();
        assert!(w.changed(), "a file appearing counts");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
