//! The admin channel between the command line and the running service.
//! `[admin] pid_file` names the process: SIGHUP makes it reload (`pktc-kdc
//! trust reload`); SIGUSR1 makes it read the request files written next to
//! the pid file and answer each with a reply file (`pktc-kdc mps forget`).
//!
//! A request is one line in `<pid file>.request.<id>`, created under a
//! hidden name and renamed, so the service never reads half a request; the
//! reply is one line in `<pid file>.reply.<id>`, made the same way. Who
//! may write next to the pid file may already signal the service: the
//! pid file's directory must be writable by the service's user only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Config;

/// Requests handled per signal; more wait for the next one.
const MAX_REQUESTS: usize = 256;
/// A request or reply is one short line.
const MAX_LINE: u64 = 512;

/// The signals the service understands.
#[derive(Debug, Clone, Copy)]
pub enum Signal {
    /// Reload trust and certificates.
    Reload,
    /// Read the admin request files.
    Requests,
}

fn pid_file(cfg: &Config) -> anyhow::Result<&Path> {
    cfg.admin
        .pid_file
        .as_deref()
        .context("[admin] pid_file is not configured: cannot find the running service")
}

/// Sends `sig` to the service whose pid is in `[admin] pid_file`; its pid.
pub fn signal_service(cfg: &Config, sig: Signal) -> anyhow::Result<i32> {
    let pid_file = pid_file(cfg)?;
    let text = std::fs::read_to_string(pid_file)
        .with_context(|| format!("reading {} (is the service running?)", pid_file.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a process id", pid_file.display()))?;
    let signo = match sig {
        Signal::Reload => libc::SIGHUP,
        Signal::Requests => libc::SIGUSR1,
    };
    // SIGUSR1's default action ends a process: never send it to one that
    // does not handle it (an older pktc-kdc still running after an upgrade).
    if matches!(sig, Signal::Requests) && !catches(pid, signo)? {
        anyhow::bail!(
            "process {pid} does not take admin requests (an older pktc-kdc, or not the \
             service?); restart the service with this version first"
        );
    }
    kill::send(pid, signo).with_context(|| format!("signalling process {pid}"))?;
    Ok(pid)
}

/// Whether process `pid` has a handler for `signo` (`SigCgt` in
/// /proc/PID/status).
fn catches(pid: i32, signo: i32) -> anyhow::Result<bool> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (is the service running?)"))?;
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .with_context(|| format!("{path}: no SigCgt line"))?;
    Ok(signo >= 1 && mask & (1u64 << (signo - 1)) != 0)
}

/// `<dir>/<pid file name><suffix>`.
fn beside(pid_file: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    let name = pid_file
        .file_name()
        .with_context(|| format!("{}: not a file name", pid_file.display()))?
        .to_string_lossy();
    Ok(pid_file.with_file_name(format!("{name}{suffix}")))
}

/// Writes `text` to `path` through a hidden temporary file and a rename.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_default()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Sends one request line to the running service and waits (at most
/// `wait`) for its reply line.
pub fn request(cfg: &Config, line: &str, wait: Duration) -> anyhow::Result<(i32, String)> {
    let pid_file = pid_file(cfg)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let id = format!("{}-{nanos}", std::process::id());
    let req = beside(pid_file, &format!(".request.{id}"))?;
    let reply = beside(pid_file, &format!(".reply.{id}"))?;
    write_atomically(&req, &format!("{line}\n"))?;
    let pid = match signal_service(cfg, Signal::Requests) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = std::fs::remove_file(&req);
            return Err(e);
        }
    };
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(text) = std::fs::read_to_string(&reply) {
            let _ = std::fs::remove_file(&reply);
            return Ok((pid, text.trim().to_string()));
        }
        if Instant::now() > deadline {
            let _ = std::fs::remove_file(&req);
            anyhow::bail!(
                "process {pid} did not answer within {wait:?} (an older pktc-kdc, or not the service?)"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The service side: answers every pending request file beside
/// `pid_file` with `handle(line)`. Blocking file I/O: call off the async
/// workers.
pub fn serve_requests(pid_file: &Path, handle: impl Fn(&str) -> String) {
    let Some(dir) = pid_file.parent() else { return };
    let Ok(prefix) = beside(pid_file, ".request.") else {
        return;
    };
    let prefix = prefix
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "cannot read the admin request directory");
        return;
    };
    let pending = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix(&prefix)?.to_string();
            Some((e.path(), id))
        })
        .take(MAX_REQUESTS);
    for (path, id) in pending {
        let line = read_line(&path);
        let _ = std::fs::remove_file(&path);
        let answer = match &line {
            Some(l) => handle(l),
            None => "error unreadable request".to_string(),
        };
        let Ok(reply) = beside(pid_file, &format!(".reply.{id}")) else {
            continue;
        };
        if let Err(e) = write_atomically(&reply, &format!("{answer}\n")) {
            tracing::warn!(error = %format!("{e:#}"), "cannot write an admin reply");
        }
    }
}

/// The first line of a request file (at most [`MAX_LINE`] bytes read).
fn read_line(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_LINE)
        .read_to_string(&mut text)
        .ok()?;
    Some(text.lines().next().unwrap_or("").trim().to_string())
}

mod kill {
    //! kill(2): the one system call here without a safe wrapper in our
    //! dependencies.
    #![allow(unsafe_code)]

    pub fn send(pid: i32, signo: i32) -> std::io::Result<()> {
        if pid <= 1 {
            return Err(std::io::Error::other("refusing to signal pid <= 1"));
        }
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        let r = unsafe { libc::kill(pid, signo) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_handlers_are_read_from_proc() {
        // The test process has no SIGUSR1 handler of its own.
        let me = std::process::id() as i32;
        assert!(!catches(me, libc::SIGUSR1).unwrap());
        assert!(catches(i32::MAX, libc::SIGUSR1).is_err());
    }

    #[test]
    fn requests_are_answered_beside_the_pid_file() {
        let dir = std::env::temp_dir().join(format!("pktc-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("kdc.pid");
        let req = beside(&pid_file, ".request.7-1").unwrap();
        write_atomically(&req, "mps-forget 001095000001\n").unwrap();
        std::fs::write(dir.join("unrelated"), "x").unwrap();
        std::fs::write(dir.join(".kdc.pid.request.8.tmp"), "half").unwrap();
        serve_requests(&pid_file, |l| format!("ok {}", l.len()));
        assert!(!req.exists(), "the request is consumed");
        let reply = std::fs::read_to_string(dir.join("kdc.pid.reply.7-1")).unwrap();
        assert_eq!(reply, "ok 23\n");
        assert!(
            dir.join(".kdc.pid.request.8.tmp").exists(),
            "half-written requests are left alone"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
