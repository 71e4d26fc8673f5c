//! Secrets on disk: every file `pktc-kdc dev` and `pktc-kdc certs` write
//! that holds a key or password (private keys, dev CA keys, keytabs, the
//! certboot credentials, dev-realm.json with the demo password) is mode
//! 0600, and nothing they write is group- or world-writable, even under
//! `umask 000`. Modes are read with the real `stat`.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{TempDir, require_tool};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");

/// Runs `pktc-kdc <args>` under `umask 000`; panics with its stderr on failure.
fn under_umask_000(args: &[&str]) {
    let out = Command::new(require_tool("sh", "dash"))
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(KDC)
        .args(args)
        .output()
        .expect("running pktc-kdc under sh");
    assert!(
        out.status.success(),
        "pktc-kdc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a file holds a secret, by the names the tools give them.
fn is_secret(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".key")
        || name == "key.pem"
        || name.ends_with(".keytab")
        || name == "dev-realm.json"
        || name == "certboot-credentials.toml"
}

/// `stat -c '%a %F %n'` of everything under `root` (and `root` itself):
/// (octal mode, is directory, path).
fn stat_tree(root: &Path) -> Vec<(u32, bool, PathBuf)> {
    let out = Command::new(require_tool("find", "findutils"))
        .arg(root)
        .args(["-exec", require_tool("stat", "coreutils").to_str().unwrap()])
        .args(["-c", "%a|%F|%n", "{}", "+"])
        .output()
        .expect("running find/stat");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, '|');
            let mode = u32::from_str_radix(f.next().unwrap(), 8).unwrap();
            let dir = f.next().unwrap() == "directory";
            (mode, dir, PathBuf::from(f.next().unwrap()))
        })
        .collect()
}

/// Secrets are 0600, nothing is group/world-writable; returns the secrets.
fn assert_modes(root: &Path) -> Vec<PathBuf> {
    let mut secrets = Vec::new();
    for (mode, dir, path) in stat_tree(root) {
        assert!(
            !path.to_string_lossy().contains(".tmp."),
            "temporary file left: {}",
            path.display()
        );
        if !dir && is_secret(&path) {
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            secrets.push(path);
        } else {
            assert_eq!(mode & 0o022, 0, "{} is {mode:o}", path.display());
        }
    }
    secrets
}

#[test]
fn dev_realm_files_under_umask_000() {
    let tmp = TempDir::new("modes-dev");
    let dir = tmp.path("realm");
    under_umask_000(&[
        "dev",
        "--init-only",
        "--port",
        "0",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let secrets = assert_modes(&dir);
    for must in [
        "kdc.keytab",
        "mps.keytab",
        "dev-realm.json",
        "certboot-credentials.toml",
        "pki/sp/kdc.key",
        "pki/sp/tls.key",
        "pki/ca-keys/mta-root.key",
        "pki/ca-keys/manufacturer-ca.key",
        "pki/ca-keys/sp-root.key",
        "pki/devices/001095000001/key.pem",
        "pki/devices/001095000003/key.pem",
    ] {
        assert!(
            secrets.contains(&dir.join(must)),
            "{must} missing from {secrets:?}"
        );
    }
}

#[test]
fn certs_cli_files_under_umask_000() {
    let tmp = TempDir::new("modes-certs");
    let pki = tmp.path("pki");
    under_umask_000(&[
        "certs",
        "init",
        "--dir",
        pki.to_str().unwrap(),
        "--devices",
        "1",
    ]);
    let out = tmp.path("issued");
    under_umask_000(&[
        "certs",
        "issue-device",
        "--ca-cert",
        pki.join("trust/device/manufacturer-ca.pem")
            .to_str()
            .unwrap(),
        "--ca-key",
        pki.join("ca-keys/manufacturer-ca.key").to_str().unwrap(),
        "--mac",
        "00:10:95:00:00:77",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    let secrets = assert_modes(tmp.root());
    for must in [
        pki.join("ca-keys/manufacturer-ca.key"),
        pki.join("sp/kdc.key"),
        pki.join("devices/001095000001/key.pem"),
        out.join("key.pem"),
    ] {
        assert!(secrets.contains(&must), "{must:?} missing from {secrets:?}");
    }
}
