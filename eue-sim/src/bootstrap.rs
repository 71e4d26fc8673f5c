//! `eue-sim bootstrap`: a device fetching its IMS credentials over mutual
//! TLS (PKT-SP-EUE-PROV §6.6.5), as a PacketCable E-UE would: its factory
//! certificate and the manufacturer CA as client chain, the server checked
//! against the SP root and its name, then one HTTP GET of the profile,
//! whose XML is checked against the device's own MAC.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};
use serde_json::json;

use dev_realm_manifest::Manifest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// TLS 1.2 with TLS_RSA_WITH_AES_128_CBC_SHA (and 3DES when the
    /// local OpenSSL has it), as PacketCable devices offer.
    Pktc,
    /// TLS 1.3 / TLS 1.2 ECDHE-AEAD, against the modern listener.
    Modern,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Dev realm directory (with dev-realm.json), as made by `pktc-kdc dev`.
    #[arg(long)]
    pub realm_dir: PathBuf,
    /// Device MAC (any case or separators). Default: the first device.
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long, value_enum, default_value_t = Profile::Pktc)]
    pub profile: Profile,
    /// OpenSSL cipher list to offer instead of the profile's.
    #[arg(long)]
    pub cipher: Option<String>,
    /// Connect, handshake and reply timeout, milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Print one JSON object instead of the step log.
    #[arg(long)]
    pub json: bool,
}

/// Everything needed to fetch one device's profile, loaded once.
pub struct Client {
    pub connector: SslConnector,
    pub addr: SocketAddr,
    /// Host part of the URL, for SNI and the server-name check.
    pub host: String,
    pub path: String,
    pub mac: String,
    pub timeout: Duration,
}

/// One successful fetch.
#[derive(Debug)]
pub struct Fetched {
    pub tls_version: &'static str,
    pub cipher: &'static str,
    pub handshake: Duration,
    pub total: Duration,
    pub status: u16,
    pub body: Vec<u8>,
}

/// What the profile said (the credential itself is never printed).
#[derive(Debug, Default)]
pub struct ProfileSummary {
    pub mac: String,
    pub impi: String,
    pub impu: Vec<String>,
    pub creds_type: String,
    pub credential_len: usize,
    pub realm: Option<String>,
    pub pcscf: Vec<String>,
}

impl Client {
    pub fn new(
        manifest: &Manifest,
        dir: &std::path::Path,
        device: Option<&str>,
        profile: Profile,
        cipher: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<Client> {
        let url = match profile {
            Profile::Pktc => manifest.certboot_url.as_deref(),
            Profile::Modern => manifest.certboot_modern_url.as_deref(),
        }
        .context(
            "the manifest has no certboot URL (a realm made before certificate bootstrapping?)",
        )?;
        let (host, port, path) = split_url(url)?;
        let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()?
            .next()
            .context("certboot URL host")?;
        if !addr.ip().is_loopback() {
            bail!("refusing a non-loopback certboot address {addr}");
        }
        let d = pick_device(manifest, device)?;
        let ca = manifest
            .certboot_ca
            .as_deref()
            .context("the manifest has no certboot_ca")?;
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        match profile {
            Profile::Pktc => {
                // Devices are legacy TLS clients: 1024-bit keys, SHA-1 chains.
                b.set_security_level(0);
                b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
                b.set_cipher_list(cipher.unwrap_or("AES128-SHA:DES-CBC3-SHA"))?;
            }
            Profile::Modern => {
                if let Some(c) = cipher {
                    b.set_cipher_list(c)?;
                }
            }
        }
        b.set_ca_file(dir.join(ca))
            .with_context(|| format!("certboot_ca {ca}"))?;
        b.set_certificate_file(dir.join(&d.cert), SslFiletype::PEM)
            .with_context(|| format!("device certificate {}", d.cert))?;
        b.set_private_key_file(dir.join(&d.key), SslFiletype::PEM)
            .with_context(|| format!("device key {}", d.key))?;
        b.check_private_key()?;
        let chain_pem = std::fs::read(dir.join(&d.chain))?;
        for c in X509::stack_from_pem(&chain_pem)? {
            b.add_extra_chain_cert(c)?;
        }
        b.set_verify(SslVerifyMode::PEER);
        Ok(Client {
            connector: b.build(),
            addr,
            host: host.to_string(),
            path: path.to_string(),
            mac: d.mac.clone(),
            timeout,
        })
    }

    /// A fresh TCP connection, a full handshake and one GET.
    pub fn fetch(&self) -> anyhow::Result<Fetched> {
        let started = Instant::now();
        let tcp = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_write_timeout(Some(self.timeout))?;
        tcp.set_nodelay(true)?;
        let name = self.host.trim_start_matches('[').trim_end_matches(']');
        let mut tls = self
            .connector
            .connect(name, tcp)
            .map_err(|e| anyhow::anyhow!("TLS handshake: {e}"))?;
        let handshake = started.elapsed();
        let (tls_version, cipher) = (
            tls.ssl().version_str(),
            tls.ssl().current_cipher().map_or("-", |c| c.name()),
        );
        write!(
            tls,
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/xml\r\nConnection: close\r\n\r\n",
            self.path, self.host
        )?;
        tls.flush()?;
        let mut raw = Vec::new();
        // The server closes after answering (Connection: close); cap the size.
        (&mut tls)
            .take(1 << 20)
            .read_to_end(&mut raw)
            .or_else(|e| {
                // A peer that closes without close_notify still sent everything.
                if raw.is_empty() {
                    Err(e)
                } else {
                    Ok(raw.len())
                }
            })?;
        let (status, body) = parse_response(&raw)?;
        Ok(Fetched {
            tls_version,
            cipher,
            handshake,
            total: started.elapsed(),
            status,
            body,
        })
    }
}

fn pick_device<'m>(
    m: &'m Manifest,
    want: Option<&str>,
) -> anyhow::Result<&'m dev_realm_manifest::Device> {
    let first = m.devices.first().context("the manifest lists no devices")?;
    let Some(want) = want else { return Ok(first) };
    let want = certs::parse_mac(want).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    m.devices
        .iter()
        .find(|d| certs::parse_mac(&d.mac).ok() == Some(want))
        .with_context(|| format!("device {} is not in the manifest", certs::format_mac(want)))
}

/// `https://host:port/path` → (host, port, path).
fn split_url(url: &str) -> anyhow::Result<(&str, u16, &str)> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("not an https URL: {url}"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p.parse().context("URL port")?),
        _ => (authority, 443),
    };
    Ok((host, port, if path.is_empty() { "/" } else { path }))
}

fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = resp.parse(raw)? else {
        bail!("incomplete HTTP response ({} bytes)", raw.len());
    };
    let status = resp.code.context("no status code")?;
    let body = &raw[head_len..];
    let len = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let body = match len {
        Some(n) if n <= body.len() => body[..n].to_vec(),
        Some(n) => bail!("body truncated: {} of {n} bytes", body.len()),
        None => body.to_vec(),
    };
    Ok((status, body))
}

/// Reads the profile XML; checks the namespace, and that the MAC is ours.
pub fn summarize(xml: &[u8], own_mac: &str) -> anyhow::Result<ProfileSummary> {
    let mut r = Reader::from_reader(xml);
    r.config_mut().trim_text(true);
    let mut s = ProfileSummary::default();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut root_ok = false;
    loop {
        match r.read_event()? {
            Event::Start(e) => {
                let name = e.name().as_ref().to_owned();
                if path.is_empty() {
                    let ns = e
                        .try_get_attribute("xmlns")?
                        .map(|a| {
                            a.normalized_value(XmlVersion::Implicit1_0)
                                .map(|v| v.into_owned())
                        })
                        .transpose()?;
                    root_ok = name == "DeviceProfile"
                        && ns.as_deref() == Some("urn:pktc-realm:certboot:profile:1");
                }
                path.push(name);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            // quick-xml reports entity references as their own events.
            Event::GeneralRef(r) => match (r.resolve_char_ref()?, &*r) {
                (Some(c), _) => text.push(c),
                (None, "lt") => text.push('<'),
                (None, "gt") => text.push('>'),
                (None, "amp") => text.push('&'),
                (None, "quot") => text.push('"'),
                (None, "apos") => text.push('\''),
                (None, other) => bail!("unknown entity &{other};"),
            },
            Event::End(_) => {
                let value = std::mem::take(&mut text);
                match path.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                    [_, "Device", "MacAddress"] => s.mac = value,
                    [_, "IMPI", "Identity"] => s.impi = value,
                    [_, "IMPI", "CredsType"] => s.creds_type = value,
                    [_, "IMPI", "Credentials"] => s.credential_len = value.chars().count(),
                    [_, "IMPU", "Identity"] => s.impu.push(value),
                    [_, "HomeRealm"] => s.realm = Some(value),
                    [_, "PCSCF"] => s.pcscf.push(value),
                    _ => {}
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_ok {
        bail!("not a device profile (root element / namespace)");
    }
    if !s.mac.eq_ignore_ascii_case(own_mac) {
        bail!("profile is for {}, not for this device {own_mac}", s.mac);
    }
    if s.impi.is_empty() || s.impu.is_empty() || s.creds_type.is_empty() {
        bail!("profile lacks IMPI, IMPU or credential type");
    }
    Ok(s)
}

pub fn run(args: &BootstrapArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.realm_dir)?;
    let client = Client::new(
        &manifest,
        &args.realm_dir,
        args.device.as_deref(),
        args.profile,
        args.cipher.as_deref(),
        Duration::from_millis(args.timeout_ms),
    )?;
    let f = client.fetch()?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if f.status != 200 {
        bail!(
            "HTTP {} from {}: {}",
            f.status,
            client.path,
            String::from_utf8_lossy(&f.body).trim()
        );
    }
    let p = summarize(&f.body, &client.mac)?;
    if args.json {
        println!(
            "{}",
            json!({
                "device": client.mac,
                "tls_version": f.tls_version,
                "cipher": f.cipher,
                "handshake_ms": ms(f.handshake),
                "total_ms": ms(f.total),
                "status": f.status,
                "impi": p.impi,
                "impu": p.impu,
                "creds_type": p.creds_type,
                "credential_bytes": p.credential_len,
                "realm": p.realm,
                "pcscf": p.pcscf,
            })
        );
    } else {
        println!(
            "device {} → {}:{}{}",
            client.mac,
            client.host,
            client.addr.port(),
            client.path
        );
        println!(
            "  TLS   {} {} handshake {:.2} ms (server verified against the SP root)",
            f.tls_version,
            f.cipher,
            ms(f.handshake)
        );
        println!("  HTTP  {} in {:.2} ms total", f.status, ms(f.total));
        println!("  IMPI  {}", p.impi);
        for i in &p.impu {
            println!("  IMPU  {i}");
        }
        println!(
            "  credential: {} ({} characters, not shown)",
            p.creds_type, p.credential_len
        );
        if let Some(r) = &p.realm {
            println!("  realm {r}");
        }
        for x in &p.pcscf {
            println!("  P-CSCF {x}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_url("https://127.0.0.1:8443/certboot/v1/profile").unwrap(),
            ("127.0.0.1", 8443, "/certboot/v1/profile")
        );
        assert_eq!(split_url("https://[::1]:9/x").unwrap(), ("[::1]", 9, "/x"));
        assert_eq!(split_url("https://h").unwrap(), ("h", 443, "/"));
        assert!(split_url("http://h/").is_err());
    }

    #[test]
    fn responses() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((s, &b[..]), (200, &b"abc"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc").is_err());
    }
}
