//! `pktc-kdc`: CLI entry point. Owns configuration, logging and exit codes.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use krb::principal::Principal;
use pktc_kdc::cli::certs as certs_cli;
use pktc_kdc::cli::keytab::{self as keytab_cli, KeySource};
use pktc_kdc::config::Config;
use pktc_kdc::dev;

#[derive(Parser)]
#[command(
    name = "pktc-kdc",
    version,
    about = "PacketCable realm security service (KDC)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the realm described by a TOML config file.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Create (on first run) and serve a self-contained dev realm on loopback.
    Dev {
        /// Realm directory.
        #[arg(long, default_value = "./dev-realm")]
        dir: PathBuf,
        /// Create the realm and exit without serving.
        #[arg(long)]
        init_only: bool,
        /// KDC port on loopback for a new realm (0 = any free port).
        #[arg(long, default_value_t = dev::DEFAULT_PORT)]
        port: u16,
    },
    /// Answer pkt-eue-7 MTA FQDN requests from a device table (a provisioning-server stand-in).
    MpsResponder {
        #[arg(long)]
        config: PathBuf,
    },
    /// ISC Kea run_script hook: apply one DHCPv4 lease event (Kea's
    /// environment variables) to the Redis device map the mps-responder reads.
    LeaseHook {
        /// The mps-responder config whose `redis` the map lives in.
        #[arg(long, conflicts_with = "redis", required_unless_present = "redis")]
        config: Option<PathBuf>,
        /// Or the Redis URL itself.
        #[arg(long)]
        redis: Option<String>,
        /// The hook point Kea passes (lease4_renew, leases4_committed, lease4_release, ...).
        event: String,
    },
    /// The pkt-eue-7 device cache: `forget MAC` drops a device's cached answer.
    Mps {
        #[command(subcommand)]
        command: pktc_kdc::cli::mps::MpsCommand,
    },
    /// Manage service keys in MIT keytab files.
    Keytab {
        #[command(subcommand)]
        command: KeytabCommand,
    },
    /// Dev PKIs and device certificates: create, issue, inspect, check.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Device trust directory of a config: list, add, remove, reload.
    Trust {
        #[command(subcommand)]
        command: pktc_kdc::cli::trust::TrustCommand,
    },
    /// Check a config before a start or reload: exit 0 if all is well, 1 on
    /// errors, 3 on warnings only (docs/configuration.md).
    Check {
        #[arg(long)]
        config: PathBuf,
        /// Warn about certificates and CRLs expiring within N days (0: never).
        #[arg(long, default_value_t = 30)]
        expiry_days: u32,
        /// Also send one pkt-eue-7 request to every provisioning-server address.
        #[arg(long)]
        probe: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 0 when there are warnings but no errors (for a service
        /// manager's pre-start check: an expiring CRL must not stop a start).
        #[arg(long)]
        errors_only: bool,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a dev PKI (MTA root, manufacturer CA, devices, SP hierarchy, KDC and TLS certificates, CRLs).
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = dev::REALM)]
        realm: String,
        /// Realm organization name (O= of the KDC certificate).
        #[arg(long, default_value = dev::ORG)]
        org: String,
        /// Number of devices, MACs 00:10:95:00:00:01 upwards.
        #[arg(long, default_value_t = 3, conflicts_with = "mac")]
        devices: u16,
        /// Device MAC (repeatable) instead of --devices.
        #[arg(long)]
        mac: Vec<String>,
        /// Device RSA key size.
        #[arg(long, default_value_t = 2048)]
        device_bits: u32,
        /// http://HOST[:PORT]/PATH: put CRL Distribution Points under it in
        /// the manufacturer CA (mta-root.crl) and the devices
        /// (manufacturer-ca.crl), and write those CRLs (DER) to crl-publish/.
        #[arg(long)]
        crl_url_base: Option<String>,
    },
    /// Issue a CA's next CRL: the current CRL's entries plus the given
    /// certificates, cRLNumber + 1 (written atomically; DER unless --out ends in .pem).
    Revoke {
        #[arg(long)]
        ca_cert: PathBuf,
        #[arg(long)]
        ca_key: PathBuf,
        /// The CA's current CRL (PEM or DER), whose entries carry over.
        #[arg(long)]
        crl: Option<PathBuf>,
        /// Certificate to revoke (repeatable; PEM or DER).
        #[arg(long = "cert")]
        certs: Vec<PathBuf>,
        #[arg(long, default_value_t = 30)]
        next_update_days: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a device certificate (CN = MAC) from a manufacturer CA.
    IssueDevice {
        #[arg(long)]
        ca_cert: PathBuf,
        #[arg(long)]
        ca_key: PathBuf,
        #[arg(long)]
        mac: String,
        /// RSA key size.
        #[arg(long, default_value_t = 2048)]
        bits: u32,
        /// Sign with SHA-1 (old MTAs) instead of SHA-256.
        #[arg(long)]
        sha1: bool,
        /// Valid from one day ago for N days (default 20 years).
        #[arg(long)]
        days: Option<u32>,
        /// normal, expired (ended a year ago) or not-yet-valid (starts in a year).
        #[arg(long, default_value = "normal")]
        validity: String,
        /// Writes cert.pem, key.pem and chain.pem (device + CA) here.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Show a certificate chain with expiry dates; verify it with --trust-dir.
    Show {
        /// Certificate (PEM, the first one is the leaf; or DER).
        #[arg(long)]
        cert: PathBuf,
        /// More certificates of the chain (PEM bundle).
        #[arg(long)]
        chain: Option<PathBuf>,
        /// Verify against this trust directory (like the KDC's device_trust_dir).
        #[arg(long)]
        trust_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        crl_policy: pktc_kdc::config::CrlPolicySetting,
    },
    /// Exit 0 if the private key belongs to the certificate, else 1.
    Check {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeytabCommand {
    /// Add keys for a principal (random keys, or from a password).
    Add {
        #[arg(long)]
        keytab: PathBuf,
        /// e.g. mtaprovsrvr/mps.example.com@REALM
        #[arg(long)]
        principal: String,
        /// Derive the keys from a password read from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// Comma-separated encryption types (MIT names or numbers).
        #[arg(
            long,
            default_value = "aes256-cts-hmac-sha384-192,aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha256-128,aes128-cts-hmac-sha1-96"
        )]
        enctypes: String,
        /// Key version number (default: one above the newest).
        #[arg(long)]
        kvno: Option<u32>,
    },
    /// List the keys in a keytab (never prints key bytes).
    List {
        #[arg(long)]
        keytab: PathBuf,
    },
    /// Copy the newest keys of one principal into another keytab (e.g. for the MPS).
    Export {
        #[arg(long)]
        keytab: PathBuf,
        #[arg(long)]
        principal: String,
        #[arg(long)]
        out: PathBuf,
    },
}

/// Two outputs: the debug log (stderr, `log.format`, `log.level` or
/// `RUST_LOG`) and the audit log (target `audit`: `log.audit` sink in
/// `log.audit_format`). When `RUST_LOG` is set it filters both (benchmarks
/// use `RUST_LOG=warn` to switch the audit lines off).
fn init_logging(log: &pktc_kdc::config::Log) -> anyhow::Result<()> {
    use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets, filter_fn};
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::prelude::*;

    let env = std::env::var("RUST_LOG").ok();
    let debug_filter = EnvFilter::new(env.as_deref().unwrap_or(&log.level))
        .and(filter_fn(|m| m.target() != "audit"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let debug = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let debug = if log.format == pktc_kdc::config::LogFormat::Json {
        debug.json().flatten_event(true).boxed()
    } else {
        debug.boxed()
    };

    let audit = match log.audit.as_str() {
        "off" => None,
        sink => {
            let writer = match sink {
                "stdout" => BoxMakeWriter::new(std::io::stdout),
                "stderr" => BoxMakeWriter::new(std::io::stderr),
                path => {
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .with_context(|| format!("opening the audit log {path}"))?;
                    BoxMakeWriter::new(std::sync::Mutex::new(file))
                }
            };
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false);
            let layer = if log.audit_format == pktc_kdc::config::LogFormat::Json {
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .boxed()
            } else {
                layer.boxed()
            };
            let only_audit = Targets::new().with_target("audit", LevelFilter::INFO);
            Some(match &env {
                Some(e) => layer.with_filter(only_audit.and(EnvFilter::new(e))).boxed(),
                None => layer.with_filter(only_audit).boxed(),
            })
        }
    };
    tracing_subscriber::registry()
        .with(debug.with_filter(debug_filter))
        .with(audit)
        .init();
    Ok(())
}

fn run_serve(
    config_path: &Path,
    banner: Option<String>,
    responder: Option<pktc_kdc::dev::mps_responder::ResponderConfig>,
) -> anyhow::Result<()> {
    let cfg = Config::load(config_path)?;
    init_logging(&cfg.log)?;
    pktc_kdc::service::run(cfg, banner, responder)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => run_serve(&config, None, None),
        Command::Dev {
            dir,
            init_only,
            port,
        } => (|| {
            let (config, created) = dev::init(&dir, port)?;
            if created {
                eprintln!("created dev realm in {}", dir.display());
            }
            if init_only {
                println!("{}", dir.join("dev-realm.json").display());
                return Ok(());
            }
            // The dev realm's provisioning-server stand-in runs in this process too.
            let mps = dir.join(dev::MPS_CONFIG);
            let responder = if mps.exists() {
                Some(pktc_kdc::dev::mps_responder::ResponderConfig::load(&mps)?)
            } else {
                None
            };
            run_serve(&config, Some(dev::banner(&dir)?), responder)
        })(),
        Command::Keytab { command } => keytab_command(command),
        Command::MpsResponder { config } => (|| {
            let cfg = pktc_kdc::dev::mps_responder::ResponderConfig::load(&config)?;
            // A lab tool: its answers as readable audit lines on stderr.
            init_logging(&pktc_kdc::config::Log {
                audit: "stderr".into(),
                audit_format: pktc_kdc::config::LogFormat::Human,
                ..pktc_kdc::config::Log::default()
            })?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(async {
                    tokio::select! {
                        r = pktc_kdc::dev::mps_responder::run(cfg) => r,
                        _ = tokio::signal::ctrl_c() => Ok(()),
                    }
                })
        })(),
        Command::LeaseHook {
            config,
            redis,
            event,
        } => (|| {
            // Audit lines on stderr, which Kea's children share with Kea.
            init_logging(&pktc_kdc::config::Log {
                audit: "stderr".into(),
                audit_format: pktc_kdc::config::LogFormat::Human,
                ..pktc_kdc::config::Log::default()
            })?;
            let url = match (redis, config) {
                (Some(url), _) => url,
                (None, Some(path)) => pktc_kdc::dev::mps_responder::ResponderConfig::load(&path)?
                    .redis
                    .with_context(|| format!("{}: lease-hook needs `redis`", path.display()))?,
                (None, None) => anyhow::bail!("give --config or --redis"),
            };
            pktc_kdc::cli::lease_hook::run(&event, &url)
        })(),
        Command::Certs { command } => certs_command(command),
        Command::Trust { command } => pktc_kdc::cli::trust::run(command),
        Command::Mps { command } => pktc_kdc::cli::mps::run(command),
        Command::Check {
            config,
            expiry_days,
            probe,
            json,
            errors_only,
        } => {
            let opts = pktc_kdc::check::Options { expiry_days, probe };
            let report = pktc_kdc::check::run(&config, &opts);
            if json {
                println!("{:#}", report.json());
            } else {
                print!("{}", report.text());
            }
            let code = match report.exit_code() {
                3 if errors_only => 0,
                c => c,
            };
            return std::process::ExitCode::from(code);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktc-kdc: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn keytab_command(c: KeytabCommand) -> anyhow::Result<()> {
    match c {
        KeytabCommand::Add {
            keytab,
            principal,
            password_stdin,
            enctypes,
            kvno,
        } => {
            let p = Principal::parse(&principal, None).context("parsing --principal")?;
            let etypes = keytab_cli::parse_etypes(&enctypes)?;
            let mut kt = keytab_cli::load_or_new(&keytab)?;
            let password;
            let source = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                password = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
                KeySource::Password(&password)
            } else {
                KeySource::Random
            };
            let kvno = keytab_cli::add_keys(&mut kt, &p, &etypes, kvno, &source)?;
            kt.write_file(&keytab)
                .with_context(|| format!("writing {}", keytab.display()))?;
            println!(
                "added {} key(s) for {p} at kvno {kvno} to {}",
                etypes.len(),
                keytab.display()
            );
            Ok(())
        }
        KeytabCommand::List { keytab } => {
            print!("{}", keytab_cli::list(&keytab)?);
            Ok(())
        }
        KeytabCommand::Export {
            keytab,
            principal,
            out,
        } => {
            let p = Principal::parse(&principal, None).context("parsing --principal")?;
            let n = keytab_cli::export(&keytab, &p, &out)?;
            println!("exported {n} key(s) for {p} to {}", out.display());
            Ok(())
        }
    }
}

fn certs_command(c: CertsCommand) -> anyhow::Result<()> {
    match c {
        CertsCommand::Init {
            dir,
            realm,
            org,
            devices,
            mac,
            device_bits,
            crl_url_base,
        } => {
            let macs = if mac.is_empty() {
                certs_cli::dev_macs(devices)
            } else {
                mac.iter()
                    .map(|m| certs::parse_mac(m))
                    .collect::<Result<_, _>>()?
            };
            if !matches!(device_bits, 1024 | 2048) {
                anyhow::bail!("--device-bits must be 1024 or 2048");
            }
            let mut opts = certs::DevPkiOptions::new(&realm, &org, &macs);
            opts.device_bits = device_bits;
            opts.crl_url_base = crl_url_base;
            let pki = certs_cli::init(&dir, &opts)?;
            print!("{}", certs_cli::describe_dev_pki(&pki));
            Ok(())
        }
        CertsCommand::IssueDevice {
            ca_cert,
            ca_key,
            mac,
            bits,
            sha1,
            days,
            validity,
            out_dir,
        } => {
            let ca = certs_cli::load_ca(&ca_cert, &ca_key)?;
            let mut req = certs_cli::DeviceRequest::new(certs::parse_mac(&mac)?);
            req.bits = bits;
            req.sha1 = sha1;
            req.validity = certs_cli::validity(days, &validity)?;
            if let Some(org) = certs_cli::subject_org(&ca.cert) {
                req.org = org;
            }
            let f = certs_cli::issue_device(&ca, &req, &out_dir)?;
            println!(
                "issued device {} (RSA {bits}): {} {} {}",
                certs::format_mac(req.mac),
                f.cert.display(),
                f.key.display(),
                f.chain.display()
            );
            Ok(())
        }
        CertsCommand::Show {
            cert,
            chain,
            trust_dir,
            crl_policy,
        } => {
            let policy = crl_policy.policy();
            let r = certs_cli::show(
                &cert,
                chain.as_deref(),
                trust_dir.as_deref().map(|d| (d, policy)),
            )?;
            print!("{}", r.text);
            match r.verification {
                Some(Err(e)) => Err(anyhow::anyhow!(
                    "verification failed: {e} (KRB-ERROR {})",
                    e.krb_error_code()
                )),
                _ => Ok(()),
            }
        }
        CertsCommand::Revoke {
            ca_cert,
            ca_key,
            crl,
            certs,
            next_update_days,
            out,
        } => {
            let ca = certs_cli::load_ca(&ca_cert, &ca_key)?;
            let r = certs_cli::revoke(&ca, crl.as_deref(), &certs, next_update_days, &out)?;
            println!(
                "wrote CRL number {} with {} revoked certificate(s) to {}",
                r.number,
                r.entries,
                r.out.display()
            );
            Ok(())
        }
        CertsCommand::Check { cert, key } => {
            if certs_cli::check(&cert, &key)? {
                println!("certificate and key match");
                Ok(())
            } else {
                anyhow::bail!("certificate and key do not match")
            }
        }
    }
}
