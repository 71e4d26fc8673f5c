//! `pktc-kdc check --config FILE`: everything `serve` (or a reload) needs,
//! checked up front and reported as a list of findings instead of stopping
//! at the first problem.
//!
//! * the configuration: parse errors and every [`Config::problems`] line;
//! * certificates and keys ([`pki`]): key matches, chains, trust
//!   directories, expiry within `--expiry-days`, the KDC certificate's
//!   id-pkinit-san, EKU and O=;
//! * the keytab ([`keytab`]): krbtgt and the `mtaprovsrvr` keys `[mps]` needs;
//! * the network ([`net`]): every listen address binds, the Redis secrets
//!   load, Redis answers PING (with the `[redis]` AUTH and TLS settings),
//!   and with `--probe` every provisioning-server address answers pkt-eue-7.
//!
//! Nothing here prints: [`run`] returns a [`Report`] and the binary prints
//! [`Report::text`] or the report as JSON and exits with
//! [`Report::exit_code`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;

mod chain;
mod keytab;
mod net;
mod pki;

/// How bad a finding is. Errors and warnings both make `check` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `serve` would fail, or devices would be refused.
    Error,
    /// Works today but will not for long (expiry within `--expiry-days`).
    Warning,
    /// Worth knowing; does not affect the exit code.
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One problem: what (`message`), where (`subject`: the config key and
/// file or address) and what to do (`action`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// e.g. `pkinit.kdc_key /etc/pktc/kdc.key` or `listen.udp 0.0.0.0:88`.
    pub subject: String,
    /// What is wrong and why it matters.
    pub message: String,
    /// What to do about it (empty for information).
    pub action: String,
}

/// `check`'s options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Warn about certificates and CRLs that expire within this many days
    /// (0: no expiry warnings; expired ones are errors regardless).
    pub expiry_days: u32,
    /// Send one pkt-eue-7 request to every provisioning-server address.
    pub probe: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            expiry_days: 30,
            probe: false,
        }
    }
}

/// Everything `check` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub config: PathBuf,
    /// The realm, when the config could be read.
    pub realm: Option<String>,
    pub findings: Vec<Finding>,
    /// What passed, one short phrase each (the "ok" summary).
    pub passed: Vec<String>,
}

impl Report {
    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// 0: nothing wrong; 1: at least one error; 3: warnings only. (2 is
    /// what the argument parser returns for a usage error.)
    pub fn exit_code(&self) -> u8 {
        if self.count(Severity::Error) > 0 {
            1
        } else if self.count(Severity::Warning) > 0 {
            3
        } else {
            0
        }
    }

    /// The report as JSON, with `errors`, `warnings` and `exit_code` added.
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("errors".into(), self.count(Severity::Error).into());
            o.insert("warnings".into(), self.count(Severity::Warning).into());
            o.insert("exit_code".into(), self.exit_code().into());
        }
        v
    }

    /// Errors, then warnings, then information, one line each, and a
    /// summary line (`ok: ...` when nothing is wrong).
    pub fn text(&self) -> String {
        let mut s = String::new();
        let mut sorted: Vec<&Finding> = self.findings.iter().collect();
        sorted.sort_by_key(|f| f.severity);
        for f in sorted {
            let _ = write!(s, "{}: {}: {}", f.severity.name(), f.subject, f.message);
            if !f.action.is_empty() {
                let _ = write!(s, "; fix: {}", f.action);
            }
            s.push('\n');
        }
        let (errors, warnings) = (self.count(Severity::Error), self.count(Severity::Warning));
        let realm = self
            .realm
            .as_deref()
            .map(|r| format!(" (realm {r})"))
            .unwrap_or_default();
        if errors + warnings == 0 {
            let _ = writeln!(
                s,
                "ok: {}{realm}: {}",
                self.config.display(),
                self.passed.join("; ")
            );
        } else {
            let _ = writeln!(
                s,
                "{}: {}{realm}: {errors} error(s), {warnings} warning(s)",
                if errors > 0 { "FAILED" } else { "WARNINGS" },
                self.config.display(),
            );
        }
        s
    }
}

/// Collects findings while the checks run.
struct Ctx {
    opts: Options,
    now: i64,
    findings: Vec<Finding>,
    passed: Vec<String>,
}

impl Ctx {
    fn push(&mut self, severity: Severity, subject: String, message: String, action: String) {
        // One line each, whatever the underlying error text holds.
        let line = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
        self.findings.push(Finding {
            severity,
            subject,
            message: line(message),
            action: line(action),
        });
    }
    fn error(&mut self, subject: impl Into<String>, message: impl Into<String>, action: &str) {
        self.push(
            Severity::Error,
            subject.into(),
            message.into(),
            action.into(),
        );
    }
    fn warn(&mut self, subject: impl Into<String>, message: impl Into<String>, action: &str) {
        self.push(
            Severity::Warning,
            subject.into(),
            message.into(),
            action.into(),
        );
    }
    fn info(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.push(
            Severity::Info,
            subject.into(),
            message.into(),
            String::new(),
        );
    }
    fn pass(&mut self, what: impl Into<String>) {
        self.passed.push(what.into());
    }

    /// An error when `window` has not started or has ended, a warning when
    /// it ends within `--expiry-days`. True when neither.
    fn expiry(&mut self, subject: &str, what: &str, window: Window, renew: &str) -> bool {
        let (not_before, ends, crl) = match window {
            Window::Cert {
                not_before,
                not_after,
            } => (not_before, not_after, false),
            Window::Crl { next_update } => (None, next_update, true),
        };
        if let Some(nb) = not_before
            && nb > self.now
        {
            self.error(
                subject,
                format!("{what} is not valid until {}", date(nb)),
                "check this host's clock, or use a certificate valid now",
            );
            return false;
        }
        if ends <= self.now {
            let past = if crl {
                "was due for its next update"
            } else {
                "expired"
            };
            self.error(
                subject,
                format!(
                    "{what} {past} on {} ({} days ago)",
                    date(ends),
                    (self.now - ends) / 86_400
                ),
                renew,
            );
            return false;
        }
        let days = i64::from(self.opts.expiry_days);
        if days > 0 && ends - self.now < days * 86_400 {
            let verb = if crl {
                "is due for its next update"
            } else {
                "expires"
            };
            self.warn(
                subject,
                format!(
                    "{what} {verb} on {} (in {} days, within --expiry-days {days})",
                    date(ends),
                    (ends - self.now) / 86_400
                ),
                renew,
            );
            return false;
        }
        true
    }
}

/// What [`Ctx::expiry`] checks (Unix seconds).
#[derive(Debug, Clone, Copy)]
enum Window {
    Cert {
        not_before: Option<i64>,
        not_after: i64,
    },
    Crl {
        next_update: i64,
    },
}

/// Runs every check on the config at `path`.
pub fn run(path: &Path, opts: &Options) -> Report {
    let mut ctx = Ctx {
        opts: *opts,
        now: unix_now(),
        findings: Vec::new(),
        passed: Vec::new(),
    };
    let config = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let cfg = match Config::read(&config) {
        Ok(cfg) => cfg,
        Err(e) => {
            ctx.error(
                format!("config {}", config.display()),
                read_error(&config, &e),
                "fix the file (docs/configuration.md lists every key)",
            );
            return ctx.report(config, None);
        }
    };
    let problems = cfg.problems();
    for p in &problems {
        ctx.error(
            format!("config {}", config.display()),
            p.clone(),
            "correct the value (docs/configuration.md)",
        );
    }
    if problems.is_empty() {
        ctx.pass("config valid");
    }
    let db = keytab::check(&mut ctx, &cfg);
    if let Some(p) = &cfg.pkinit {
        pki::pkinit(&mut ctx, &cfg, p);
    }
    if let Some(c) = &cfg.certboot {
        pki::certboot(&mut ctx, &cfg, c);
    }
    net::ports(&mut ctx, &cfg);
    net::redis_settings(&mut ctx, &cfg);
    net::remote(&mut ctx, &cfg, db.as_ref());
    let realm = Some(cfg.realm.clone());
    ctx.report(config, realm)
}

impl Ctx {
    fn report(self, config: PathBuf, realm: Option<String>) -> Report {
        Report {
            config,
            realm,
            findings: self.findings,
            passed: self.passed,
        }
    }
}

/// A config read or parse error on one line: TOML errors as
/// `line L, column C: message`.
fn read_error(path: &Path, e: &anyhow::Error) -> String {
    if let Some(t) = e.downcast_ref::<toml::de::Error>() {
        let at = t
            .span()
            .and_then(|span| {
                let text = std::fs::read_to_string(path).ok()?;
                let before = text.get(..span.start)?;
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                Some(format!("line {line}, column {column}: "))
            })
            .unwrap_or_default();
        return format!("cannot be parsed: {at}{}", t.message().trim());
    }
    format!("{e:#}").replace('\n', " ")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
fn date(t: i64) -> String {
    if t == i64::MAX {
        return "never".into();
    }
    // Civil-from-days (H. Hinnant).
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_767_225_599), "2025-12-31");
        assert_eq!(date(i64::MAX), "never");
    }

    #[test]
    fn exit_codes() {
        let mut r = Report {
            config: "c.toml".into(),
            realm: None,
            findings: vec![],
            passed: vec!["config valid".into()],
        };
        assert_eq!(r.exit_code(), 0);
        assert!(r.text().starts_with("ok: c.toml: config valid"));
        let f = |severity| Finding {
            severity,
            subject: "s".into(),
            message: "m".into(),
            action: "a".into(),
        };
        r.findings.push(f(Severity::Info));
        assert_eq!(r.exit_code(), 0);
        r.findings.push(f(Severity::Warning));
        assert_eq!(r.exit_code(), 3);
        r.findings.push(f(Severity::Error));
        assert_eq!(r.exit_code(), 1);
        assert!(r.text().starts_with("error: s: m; fix: a\nwarning:"));
    }
}
