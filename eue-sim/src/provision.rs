//! `eue-sim provision`: plays one PacketCable device of the dev realm.
//!
//! 1. PacketCable ("-19") PKINIT AS-REQ straight for the provisioning
//!    server's ticket (`mtaprovsrvr/mps.<domain>`), with
//!    PA-PROV-SRV-LOCATION = the MPS FQDN; the padata-15 reply is opened
//!    with the device key and the KDC's chain checked against the SP root.
//! 2. RFC 4556 PA-PK-AS-REQ (RSA key transport) for `krbtgt/REALM`.
//! 3. TGS-REQ with that TGT for the provisioning server's ticket.
//!
//! Each step prints what was sent, over what, how long the KDC took, and
//! the ticket or the KRB-ERROR. Any failure makes the exit code non-zero.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use krb::client::{self, Credentials, RequestBody, TgsAuth};
use krb::crypto::EncType;
use krb::msg::time;
use serde_json::{Value, json};

use crate::pk::{self, AsRequest, Conn, Device, Failure, Form, Realm, Transport};

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Dev realm directory (with dev-realm.json), as made by `pktc-kdc dev`.
    #[arg(long)]
    pub realm_dir: PathBuf,
    /// Device MAC (any case; `:`, `-` or no separators). Default: the first device.
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,
    /// KDC address instead of the manifest's (must be loopback).
    #[arg(long)]
    pub kdc: Option<SocketAddr>,
    /// Per-exchange reply timeout, milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Print one JSON object instead of the step log.
    #[arg(long)]
    pub json: bool,
}

struct Step {
    name: &'static str,
    form: String,
    sent: usize,
    reply: usize,
    latency: Option<Duration>,
    result: Result<Credentials, Failure>,
}

impl Step {
    fn json(&self) -> Value {
        let mut v = json!({
            "step": self.name,
            "form": self.form,
            "sent_bytes": self.sent,
            "reply_bytes": self.reply,
            "latency_ms": self.latency.map(|d| d.as_secs_f64() * 1000.0),
            "ok": self.result.is_ok(),
        });
        match &self.result {
            Ok(c) => {
                let (sname, etype, sk, end) = pk::ticket_summary(c);
                v["ticket"] = json!({
                    "sname": sname,
                    "etype": etype,
                    "session_key_etype": sk,
                    "endtime": end,
                });
            }
            Err(Failure::KrbError { code, text }) => {
                v["error"] = json!({
                    "krb_error": code,
                    "name": pk::err_name(*code),
                    "e_text": text,
                });
            }
            Err(Failure::Other(e)) => v["error"] = json!({ "message": format!("{e:#}") }),
        }
        v
    }

    fn human(&self, n: usize, transport: Transport) -> String {
        let mut s = format!(
            "[{n}/3] {}: {}\n      sent {} bytes over {}",
            self.name,
            self.form,
            self.sent,
            transport.name()
        );
        match self.latency {
            Some(d) => {
                s += &format!(
                    ", reply {} bytes in {:.1} ms\n",
                    self.reply,
                    d.as_secs_f64() * 1000.0
                )
            }
            None => s += "\n",
        }
        match &self.result {
            Ok(c) => {
                let (sname, etype, sk, end) = pk::ticket_summary(c);
                let tname = EncType::from_i32(etype).map_or("?", |e| e.name());
                s += &format!(
                    "      ok: ticket {sname}, ticket etype {etype} ({tname}), session key {sk}, ends {end}\n"
                );
            }
            Err(f) => s += &format!("      FAILED: {f}\n"),
        }
        s
    }
}

fn skipped(name: &'static str, form: &str, why: &str) -> Step {
    Step {
        name,
        form: form.to_string(),
        sent: 0,
        reply: 0,
        latency: None,
        result: Err(Failure::Other(anyhow::anyhow!("not run: {why}"))),
    }
}

/// Sends `bytes` and returns (reply, latency).
fn exchange(
    realm: &Realm,
    t: Transport,
    timeout: Duration,
    bytes: &[u8],
) -> Result<(Vec<u8>, Duration), Failure> {
    let mut conn = Conn::open(realm.kdc, t, timeout).map_err(|e| {
        anyhow::anyhow!("connecting to the KDC {} over {}: {e}", realm.kdc, t.name())
    })?;
    let mut buf = Vec::new();
    let started = Instant::now();
    conn.exchange(bytes, &mut buf).map_err(|e| {
        if pk::is_timeout(&e) {
            anyhow::anyhow!(
                "no reply from {} over {} within {timeout:?}",
                realm.kdc,
                t.name()
            )
        } else {
            anyhow::anyhow!("exchange with {} over {}: {e}", realm.kdc, t.name())
        }
    })?;
    Ok((buf, started.elapsed()))
}

fn nonce() -> u32 {
    let (s, us) = time::now();
    ((s as u32).rotate_left(7) ^ us.rotate_left(13) ^ std::process::id()) & 0x7fff_ffff
}

fn as_step(
    realm: &Realm,
    dev: &Device,
    args: &ProvisionArgs,
    name: &'static str,
    form: Form,
) -> Step {
    let timeout = Duration::from_millis(args.timeout_ms);
    let (server, mps, label) = match form {
        Form::Packetcable => (
            &realm.service,
            Some(realm.mps_fqdn.as_str()),
            format!(
                "PacketCable PKINIT AS-REQ (PA-PK-AS-REQ-19 + PA-PROV-SRV-LOCATION {}) for {}",
                realm.mps_fqdn, realm.service
            ),
        ),
        Form::Rfc4556Dh => (
            &realm.krbtgt,
            None,
            format!(
                "RFC 4556 PKINIT AS-REQ (PA-PK-AS-REQ, DH MODP-2048, RFC 8636 KDF) for {}",
                realm.krbtgt
            ),
        ),
        Form::Rfc4556Ecdh => (
            &realm.krbtgt,
            None,
            format!(
                "RFC 4556 PKINIT AS-REQ (PA-PK-AS-REQ, ECDH P-256, RFC 8636 KDF) for {}",
                realm.krbtgt
            ),
        ),
        Form::Rfc4556 => (
            &realm.krbtgt,
            None,
            format!(
                "RFC 4556 PKINIT AS-REQ (PA-PK-AS-REQ, RSA key transport) for {}",
                realm.krbtgt
            ),
        ),
    };
    let req: AsRequest = match pk::build_as_req(dev, server, form, nonce(), mps, false) {
        Ok(r) => r,
        Err(e) => {
            return Step {
                name,
                form: label,
                sent: 0,
                reply: 0,
                latency: None,
                result: Err(Failure::Other(e.context("building the AS-REQ"))),
            };
        }
    };
    let (reply, latency) = match exchange(realm, args.transport, timeout, &req.bytes) {
        Ok(r) => r,
        Err(f) => {
            return Step {
                name,
                form: label,
                sent: req.bytes.len(),
                reply: 0,
                latency: None,
                result: Err(f),
            };
        }
    };
    Step {
        name,
        form: label,
        sent: req.bytes.len(),
        reply: reply.len(),
        latency: Some(latency),
        result: pk::open_as_reply(&req, &reply, dev, &realm.sp_trust),
    }
}

fn tgs_step(realm: &Realm, tgt: &Credentials, args: &ProvisionArgs) -> Step {
    let name = "TGS";
    let label = format!("TGS-REQ with the PKINIT TGT for {}", realm.service);
    let nonce = nonce();
    let (now, usec) = time::now();
    let body = RequestBody {
        client: None,
        server: &realm.service,
        etypes: &EncType::ALL,
        nonce,
        till: now + 24 * 3600,
        rtime: None,
        options: client::default_options(),
    };
    let req = match client::tgs_req(
        tgt,
        &body,
        &TgsAuth {
            now,
            usec,
            subkey: None,
        },
    ) {
        Ok(r) => r,
        Err(e) => return skipped(name, &label, &format!("building the TGS-REQ: {e}")),
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    match exchange(realm, args.transport, timeout, &req) {
        Ok((reply, latency)) => Step {
            name,
            form: label,
            sent: req.len(),
            reply: reply.len(),
            latency: Some(latency),
            result: pk::open_tgs_reply(&reply, tgt, nonce),
        },
        Err(f) => Step {
            name,
            form: label,
            sent: req.len(),
            reply: 0,
            latency: None,
            result: Err(f),
        },
    }
}

pub fn run(args: &ProvisionArgs) -> anyhow::Result<()> {
    let realm = Realm::load(&args.realm_dir, args.kdc)?;
    let dev = realm.device(args.device.as_deref())?;
    if !args.json {
        println!(
            "device {} {} (RSA-{}), KDC {} over {}",
            dev.mac,
            dev.principal,
            dev.key_bits,
            realm.kdc,
            args.transport.name()
        );
    }
    let mut steps = Vec::new();
    let report = |n: usize, s: &Step| {
        if !args.json {
            print!("{}", s.human(n, args.transport));
        }
    };
    let pc = as_step(&realm, &dev, args, "PacketCable AS", Form::Packetcable);
    report(1, &pc);
    steps.push(pc);
    let rfc = as_step(&realm, &dev, args, "RFC 4556 AS", Form::Rfc4556);
    report(2, &rfc);
    let tgs = match &rfc.result {
        Ok(tgt) => tgs_step(&realm, tgt, args),
        Err(_) => skipped(
            "TGS",
            &format!("TGS-REQ with the PKINIT TGT for {}", realm.service),
            "no TGT from step 2",
        ),
    };
    steps.push(rfc);
    report(3, &tgs);
    steps.push(tgs);

    let failed = steps.iter().filter(|s| s.result.is_err()).count();
    if args.json {
        let v = json!({
            "device": {
                "mac": dev.mac,
                "fqdn": dev.fqdn,
                "principal": dev.principal.to_string(),
                "key_bits": dev.key_bits,
            },
            "kdc": realm.kdc.to_string(),
            "transport": args.transport.name(),
            "ok": failed == 0,
            "steps": steps.iter().map(Step::json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if failed == 0 {
        println!("provisioned: all 3 steps succeeded");
    }
    if failed > 0 {
        bail!("{failed} of 3 steps failed for device {}", dev.mac);
    }
    Ok(())
}
