//! Writing files that others must not read or change: keys, keytabs,
//! passwords (owner only, 0600) and the certificates, CRLs and
//! configuration next to them (0644: readable, never group- or
//! world-writable, whatever the umask).
//!
//! The mode is set when the file is created, never by a chmod afterwards,
//! so there is no moment when a secret is readable by others. The data
//! goes to a new temporary file in the same directory, is synced and
//! renamed over the target: readers see the old file or the new one, never
//! a part of one (the watched trust and credential files are re-read while
//! they are replaced).

use std::io::Write;
use std::path::Path;

/// Owner read/write only.
pub const PRIVATE: u32 = 0o600;
/// Owner read/write, others read.
pub const PUBLIC: u32 = 0o644;

/// Writes a secret (key, keytab, password file) atomically, mode 0600.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, data, PRIVATE)
}

/// Writes a non-secret file atomically, mode 0644.
pub fn write_public(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, data, PUBLIC)
}

/// Creates `path` and its missing parents with mode 0755 (only the owner
/// may add, rename or remove files in them, whatever the umask).
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o755);
    }
    b.create(path)
}

/// Writes `data` to a new file created with `mode` (on unix; the umask can
/// only narrow it), synced and renamed over `path`.
pub fn write_with_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
        })?
        .to_string_lossy();
    let mut attempt = 0u32;
    let (tmp_path, mut file) = loop {
        let tmp = dir.join(format!(".{name}.tmp.{}.{attempt}", std::process::id()));
        match create_new(&tmp, mode) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let result = file
        .write_all(data)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp_path, path));
    drop(file);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(e);
    }
    // Make the rename durable; some file systems refuse to sync a
    // directory, which does not undo the write.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn create_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    opts.open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn modes_replace_and_no_leftovers() {
        let dir = std::env::temp_dir().join(format!("krb-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_dir_all(&dir.join("a/b")).unwrap();
        assert_eq!(mode(&dir.join("a/b")) & 0o022, 0);
        let secret = dir.join("a/b/key");
        // A world-readable file is replaced by an owner-only one.
        std::fs::write(&secret, "old").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&secret, b"new").unwrap();
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(std::fs::read(&secret).unwrap(), b"new");
        let public = dir.join("a/b/cert");
        write_public(&public, b"c").unwrap();
        assert_eq!(mode(&public) & 0o022, 0);
        let names: Vec<_> = std::fs::read_dir(dir.join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(write_private(&dir.join("missing/x"), b"").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
