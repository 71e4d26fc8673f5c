//! `pktc-kdc trust list|add|remove|reload`: cert ops on the device trust
//! directory of a config. Every change is tried on a copy of the directory
//! first and refused if the result would not load; files appear and
//! disappear atomically (a hidden temporary file renamed into place), so
//! the service's file watch never reads a half-written file. `reload`
//! sends SIGHUP to the running service (`[admin] pid_file`, see
//! [`crate::admin`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use certs::store::{CrlPolicy, EntryKind, TrustStore};
use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// List anchors, intermediates and CRLs with their expiry.
    List {
        #[arg(long)]
        config: PathBuf,
    },
    /// Add CA certificates or CRLs (PEM or DER) to the trust directory.
    Add {
        #[arg(long)]
        config: PathBuf,
        /// Files to add, kept under their own names.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Then signal the running service (the file watch picks the change
        /// up anyway within `reload.watch_interval_ms`).
        #[arg(long)]
        reload: bool,
    },
    /// Remove files (by name) from the trust directory: a CA and its CRL
    /// go together.
    Remove {
        #[arg(long)]
        config: PathBuf,
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long)]
        reload: bool,
    },
    /// Ask the running service to reload trust and certificates now (SIGHUP).
    Reload {
        #[arg(long)]
        config: PathBuf,
    },
}

/// The device trust directory and CRL policy of a config.
fn trust_dir(cfg: &Config) -> anyhow::Result<(PathBuf, CrlPolicy)> {
    if let Some(p) = &cfg.pkinit {
        return Ok((p.device_trust_dir.clone(), p.crl_policy.policy()));
    }
    if let Some(c) = &cfg.certboot
        && let Some(d) = &c.device_trust_dir
    {
        return Ok((d.clone(), c.crl_policy.unwrap_or_default().policy()));
    }
    bail!("the config has no device trust directory ([pkinit] or [certboot] device_trust_dir)")
}

pub fn run(cmd: TrustCommand) -> anyhow::Result<()> {
    match cmd {
        TrustCommand::List { config } => {
            let cfg = Config::load(&config)?;
            let (dir, policy) = trust_dir(&cfg)?;
            let store = TrustStore::load_dir(&dir, policy)
                .with_context(|| format!("loading {}", dir.display()))?;
            print!("{}", listing(&store));
            Ok(())
        }
        TrustCommand::Add {
            config,
            files,
            reload,
        } => {
            let cfg = Config::load(&config)?;
            let (dir, policy) = trust_dir(&cfg)?;
            add(&dir, policy, &files)?;
            for f in &files {
                println!("added {}", f.display());
            }
            if reload {
                signal_reload(&cfg)?;
            }
            Ok(())
        }
        TrustCommand::Remove {
            config,
            names,
            reload,
        } => {
            let cfg = Config::load(&config)?;
            let (dir, policy) = trust_dir(&cfg)?;
            remove(&dir, policy, &names)?;
            for n in &names {
                println!("removed {n}");
            }
            if reload {
                signal_reload(&cfg)?;
            }
            Ok(())
        }
        TrustCommand::Reload { config } => signal_reload(&Config::load(&config)?),
    }
}

fn listing(store: &TrustStore) -> String {
    let now = krb::msg::time::now().0;
    let mut out = format!(
        "{} (generation {}, CRL policy {:?})\n",
        store.dir().display(),
        store.generation(),
        store.policy()
    );
    for e in store.entries() {
        let kind = match e.kind {
            EntryKind::Anchor => "anchor",
            EntryKind::Intermediate => "intermediate",
            EntryKind::Crl => "crl",
        };
        let name = e.path.file_name().map_or_else(
            || e.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let expiry = if e.expires == i64::MAX {
            "no nextUpdate".to_string()
        } else {
            let days = (e.expires - now) / 86_400;
            let when = openssl::asn1::Asn1Time::from_unix(e.expires)
                .map(|t| t.to_string())
                .unwrap_or_default();
            if e.expires < now {
                format!("EXPIRED {when}")
            } else {
                format!("{when} ({days} days)")
            }
        };
        out.push_str(&format!(
            "  {kind:<12} {name}  {}  expires {expiry}\n",
            e.subject
        ));
    }
    out
}

/// A scratch copy of `dir` (visible files only).
fn scratch_copy(dir: &Path) -> anyhow::Result<tempdir::Scratch> {
    let scratch = tempdir::Scratch::new()?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.path().is_file() {
            continue;
        }
        std::fs::copy(entry.path(), scratch.path().join(&name))?;
    }
    Ok(scratch)
}

fn add(dir: &Path, policy: CrlPolicy, files: &[PathBuf]) -> anyhow::Result<()> {
    let scratch = scratch_copy(dir)?;
    let mut names = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .with_context(|| format!("{}: not a file name", f.display()))?
            .to_owned();
        if name.to_string_lossy().starts_with('.') {
            bail!(
                "{}: hidden files are ignored by the trust store",
                f.display()
            );
        }
        if dir.join(&name).exists() {
            bail!(
                "{} already exists in {}; remove it first",
                name.to_string_lossy(),
                dir.display()
            );
        }
        std::fs::copy(f, scratch.path().join(&name))
            .with_context(|| format!("reading {}", f.display()))?;
        names.push((f.clone(), name));
    }
    TrustStore::load_dir(scratch.path(), policy)
        .context("the trust directory would not load with these files; nothing changed")?;
    for (src, name) in names {
        let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        std::fs::copy(&src, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(&name))?;
    }
    Ok(())
}

fn remove(dir: &Path, policy: CrlPolicy, names: &[String]) -> anyhow::Result<()> {
    let scratch = scratch_copy(dir)?;
    for n in names {
        if n.contains('/') || n.starts_with('.') {
            bail!("{n}: give a file name inside {}", dir.display());
        }
        if !dir.join(n).is_file() {
            bail!("{n} is not in {}", dir.display());
        }
        std::fs::remove_file(scratch.path().join(n))?;
    }
    TrustStore::load_dir(scratch.path(), policy).context(
        "the trust directory would not load without these files (a CRL whose CA goes too?); nothing changed",
    )?;
    for n in names {
        std::fs::remove_file(dir.join(n)).with_context(|| format!("removing {n}"))?;
    }
    Ok(())
}

fn signal_reload(cfg: &Config) -> anyhow::Result<()> {
    let pid = crate::admin::signal_service(cfg, crate::admin::Signal::Reload)?;
    println!("sent SIGHUP to pktc-kdc (pid {pid})");
    Ok(())
}

mod tempdir {
    //! A scratch directory removed on drop.

    use std::path::{Path, PathBuf};

    pub struct Scratch(PathBuf);

    impl Scratch {
        pub fn new() -> std::io::Result<Scratch> {
            let base = std::env::temp_dir();
            for i in 0..100u32 {
                let p = base.join(format!("pktc-trust-{}-{i}", std::process::id()));
                if std::fs::create_dir(&p).is_ok() {
                    return Ok(Scratch(p));
                }
            }
            Err(std::io::Error::other("no scratch directory"))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
