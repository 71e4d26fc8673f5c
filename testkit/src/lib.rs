//! Shared test harness. Tests talk to real peers (MIT krb5 tools, our own
//! binaries as separate processes); this crate finds them, isolates them
//! and cleans up. A missing tool fails the test with the install command.

mod ccache;
mod devkdc;
mod heimdal;
mod http_server;
pub mod kea;
mod pty;
mod redis;
mod replica;
mod rng;
pub mod wire;

pub use ccache::{CcacheCred, parse_ccache, read_ccache};
pub use devkdc::{DevKdc, init_dev_realm};
pub use heimdal::{HEIMDAL_PACKAGES, heimdal, heimdal_conf, heimdal_root};
pub use http_server::HttpServer;
pub use pty::Pty;
pub use redis::Redis;
pub use replica::Replica;
pub use rng::Rng;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Full path of `tool`, or a panic saying which package provides it.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
    {
        let p = dir.join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{tool}` not found: this test needs it; install it with `apt-get install -y {package}` (or run `bash .ci/run`)"
    );
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "pktc-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn root(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An MIT tool (krb5-user) with `mit_env` and its credential cache at `cc`.
pub fn mit(tool: &str, krb5_conf: &std::path::Path, cc: &std::path::Path) -> Command {
    let mut c = Command::new(require_tool(tool, "krb5-user"));
    mit_env(&mut c, krb5_conf);
    c.env("KRB5CCNAME", format!("FILE:{}", cc.display()));
    c
}

/// Runs MIT tools with only the given krb5.conf, C locale and UTC.
pub fn mit_env(cmd: &mut Command, krb5_conf: &std::path::Path) {
    cmd.env("KRB5_CONFIG", krb5_conf)
        .env_remove("KRB5CCNAME")
        .env_remove("KRB5_KTNAME")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .env("TERM", "dumb");
}

/// Runs a command with stdin bytes (stdin stays open, as for TLS clients
/// that must not hang up before the answer) and waits at most 20 s;
/// returns (stdout, stderr). Panics, killing it, when it runs longer.
pub fn run_bounded(cmd: &mut Command, stdin: &[u8], what: &str) -> (String, String) {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let _ = input.write_all(stdin);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("waiting").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(input);
    let (mut out, mut err) = (String::new(), String::new());
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out);
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    (out, err)
}

/// Polls `cond` every 10 ms until it holds (true) or `bound` has passed
/// (false): what a test does instead of sleeping for something to happen.
pub fn wait_until(bound: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Runs a command to completion with stdin text; returns (success, stdout+stderr).
pub fn run(cmd: &mut Command, stdin: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("waiting for command");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
