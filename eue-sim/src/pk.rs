//! The device side of PKINIT shared by `provision` and `pkinit-load`: the
//! dev realm's devices and trust, AS-REQ construction in both forms, reply
//! opening, and blocking request/reply exchanges over loopback UDP or TCP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use certs::store::{CrlPolicy, TrustStore};
use clap::ValueEnum;
use dev_realm_manifest::Manifest;
use krb::client::{self, Credentials, RequestBody};
use krb::crypto::EncType;
use krb::msg::consts::{err, padata};
use krb::msg::{self, AsRep, time};
use krb::principal::{Principal, name_type};
use pkinit::client::DeviceIdentity;

/// DER tags of the replies.
pub const TAG_AS_REP: u8 = 0x6b;
pub const TAG_KRB_ERROR: u8 = 0x7e;

/// Largest reply accepted over TCP.
const MAX_TCP_REPLY: usize = 1 << 20;

/// Etypes a PacketCable 1.x device offers: aes128-sha1, then des3.
pub const PACKETCABLE_ETYPES: [EncType; 2] = [EncType::Aes128CtsHmacSha196, EncType::Des3CbcSha1Kd];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// One connection, 4-byte length prefix (RFC 4120 §7.2.2).
    Tcp,
    /// One datagram each way.
    Udp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Form {
    /// PacketCable pre-RFC PKINIT: PA-PK-AS-REQ-19 (14) + PA-PROV-SRV-LOCATION,
    /// straight for the provisioning server's ticket; reply in padata 15.
    Packetcable,
    /// RFC 4556 PA-PK-AS-REQ (16), RSA key transport, for krbtgt; reply in padata 17.
    Rfc4556,
    /// RFC 4556 Diffie-Hellman as MIT's kinit sends it: MODP group 14 (2048)
    /// with the RFC 8636 SHA-256 KDF offered (`--dh-nonce` adds the
    /// clientDHNonce MIT does not send); reply in padata 17.
    Rfc4556Dh,
    /// As `rfc4556-dh` with ECDH on P-256 (RFC 5349).
    Rfc4556Ecdh,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Form::Packetcable => "packetcable",
            Form::Rfc4556 => "rfc4556",
            Form::Rfc4556Dh => "rfc4556-dh",
            Form::Rfc4556Ecdh => "rfc4556-ecdh",
        }
    }
}

/// A dev realm as the devices see it.
pub struct Realm {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub kdc: SocketAddr,
    /// What devices trust for the KDC certificate: the SP root's directory.
    pub sp_trust: TrustStore,
    /// `mtaprovsrvr/mps.<domain>@REALM`.
    pub service: Principal,
    pub krbtgt: Principal,
    /// The MPS FQDN sent in PA-PROV-SRV-LOCATION (the service's host component).
    pub mps_fqdn: String,
}

/// One device of the manifest, loaded.
pub struct Device {
    pub mac: String,
    pub fqdn: String,
    pub principal: Principal,
    pub identity: DeviceIdentity,
    pub key_bits: u32,
}

impl Realm {
    pub fn load(dir: &Path, kdc_override: Option<SocketAddr>) -> anyhow::Result<Realm> {
        let manifest = Manifest::load(dir)
            .with_context(|| format!("loading the dev realm manifest in {}", dir.display()))?;
        let kdc = match kdc_override {
            Some(a) => a,
            None => manifest
                .kdc
                .parse()
                .with_context(|| format!("manifest kdc address {:?}", manifest.kdc))?,
        };
        if !kdc.ip().is_loopback() {
            bail!("refusing a non-loopback KDC address {kdc}");
        }
        if manifest.devices.is_empty() {
            bail!(
                "the manifest in {} lists no devices (a realm made before the dev PKI?)",
                dir.display()
            );
        }
        let sp_root = manifest
            .sp_root
            .as_deref()
            .context("the manifest has no sp_root (the KDC certificate's trust anchor)")?;
        let sp_dir = dir
            .join(sp_root)
            .parent()
            .map(Path::to_path_buf)
            .context("sp_root has no directory")?;
        let sp_trust = TrustStore::load_dir(&sp_dir, CrlPolicy::Off)
            .map_err(|e| anyhow::anyhow!("loading SP trust from {}: {e}", sp_dir.display()))?;
        let service = Principal::parse(&manifest.service_principal, None)
            .with_context(|| format!("service principal {:?}", manifest.service_principal))?;
        let mps_fqdn = service
            .components
            .get(1)
            .cloned()
            .context("the service principal has no host component")?;
        let krbtgt = Principal::krbtgt(&manifest.realm);
        Ok(Realm {
            dir: dir.to_path_buf(),
            manifest,
            kdc,
            sp_trust,
            service,
            krbtgt,
            mps_fqdn,
        })
    }

    fn load_device(&self, d: &dev_realm_manifest::Device) -> anyhow::Result<Device> {
        let identity = DeviceIdentity::load(
            &self.dir.join(&d.cert),
            &self.dir.join(&d.key),
            Some(&self.dir.join(&d.chain)),
        )
        .with_context(|| format!("loading device {} ({})", d.mac, d.cert))?;
        let mut principal = Principal::parse(&d.principal, Some(&self.manifest.realm))
            .with_context(|| format!("device principal {:?}", d.principal))?;
        principal.name_type = name_type::SRV_HST;
        Ok(Device {
            mac: d.mac.clone(),
            fqdn: d.fqdn.clone(),
            principal,
            identity,
            key_bits: d.key_bits,
        })
    }

    /// All devices of the manifest.
    pub fn devices(&self) -> anyhow::Result<Vec<Device>> {
        self.manifest
            .devices
            .iter()
            .map(|d| self.load_device(d))
            .collect()
    }

    /// The device with this MAC (any case or separators), or the first one.
    pub fn device(&self, mac: Option<&str>) -> anyhow::Result<Device> {
        let Some(mac) = mac else {
            return self.load_device(&self.manifest.devices[0]);
        };
        let want = certs::mac::parse_mac(mac).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
        for d in &self.manifest.devices {
            if certs::mac::parse_mac(&d.mac).ok() == Some(want) {
                return self.load_device(d);
            }
        }
        let known: Vec<&str> = self
            .manifest
            .devices
            .iter()
            .map(|d| d.mac.as_str())
            .collect();
        bail!(
            "device {} is not in the manifest {} (devices: {})",
            certs::mac::format_mac(want),
            self.dir.join("dev-realm.json").display(),
            known.join(", ")
        )
    }
}

/// An AS-REQ as sent, with what is needed to open its reply.
pub struct AsRequest {
    pub form: Form,
    pub nonce: u32,
    pub bytes: Vec<u8>,
    /// The server name asked for (the RFC 8636 KDF binds it).
    pub server: Principal,
    /// The client's DH key, in DH mode.
    pub dh: Option<pkinit::dh::ClientKey>,
    /// The clientDHNonce sent with it.
    pub client_dh_nonce: Option<Vec<u8>>,
}

/// A fresh PKINIT AS-REQ (new ctime/cusec; the caller supplies a new nonce):
/// the PacketCable form for `server` with PA-PROV-SRV-LOCATION = `mps`, or
/// the RFC 4556 RSA-mode form.
pub fn build_as_req(
    dev: &Device,
    server: &Principal,
    form: Form,
    nonce: u32,
    mps: Option<&str>,
    dh_nonce: bool,
) -> anyhow::Result<AsRequest> {
    let (now, usec) = time::now();
    let etypes: &[EncType] = match form {
        Form::Packetcable => &PACKETCABLE_ETYPES,
        Form::Rfc4556 | Form::Rfc4556Dh | Form::Rfc4556Ecdh => &EncType::ALL,
    };
    let dh = match form {
        Form::Rfc4556Dh => Some(pkinit::dh::ClientKey::generate(
            pkinit::dh::Group::Modp2048,
        )?),
        Form::Rfc4556Ecdh => Some(pkinit::dh::ClientKey::generate(pkinit::dh::Group::P256)?),
        _ => None,
    };
    // With `dh_nonce`, a clientDHNonce as Heimdal and Windows send: it lets
    // the KDC reuse its DH key when configured to (RFC 4556 §3.2.3.1); the
    // RFC 8636 KDF does not use it.
    let client_dh_nonce = dh.as_ref().filter(|_| dh_nonce).map(|_| {
        krb::crypto::Key::random(EncType::Aes256CtsHmacSha196)
            .bytes()
            .to_vec()
    });
    let body = RequestBody {
        client: Some(&dev.principal),
        server,
        etypes,
        nonce,
        till: now + 24 * 3600,
        rtime: None,
        options: client::default_options(),
    };
    let body_der = msg::encode("KDC-REQ-BODY", &body.to_asn1()?)?;
    let pa = match form {
        Form::Packetcable => {
            pkinit::client::packetcable_padata(&dev.identity, &body_der, nonce, (now, usec), mps)?
        }
        Form::Rfc4556 | Form::Rfc4556Dh | Form::Rfc4556Ecdh => {
            vec![pkinit::client::rfc4556_padata(
                &dev.identity,
                &body_der,
                nonce,
                (now, usec),
                dh.as_ref().map(|k| k.spki()),
                dh.as_ref()
                    .map(|_| vec![pkinit::dh::Kdf::Sha256.algorithm_id()]),
                client_dh_nonce.clone(),
            )?]
        }
    };
    Ok(AsRequest {
        form,
        nonce,
        bytes: client::as_req(&body, pa)?,
        server: server.clone(),
        dh,
        client_dh_nonce,
    })
}

/// Why a step failed.
#[derive(Debug)]
pub enum Failure {
    KrbError { code: i32, text: String },
    Other(anyhow::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::KrbError { code, text } => {
                write!(f, "KRB-ERROR {code} {}", err_name(*code))?;
                if !text.is_empty() {
                    write!(f, ", e-text {text:?}")?;
                }
                Ok(())
            }
            Failure::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Other(e)
    }
}

/// The KRB-ERROR in `reply`, if it is one.
pub fn as_krb_error(reply: &[u8]) -> Option<Failure> {
    if reply.first() != Some(&TAG_KRB_ERROR) {
        return None;
    }
    let e = client::krb_error(reply)?;
    Some(Failure::KrbError {
        code: e.error_code,
        text: e
            .e_text
            .as_ref()
            .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned())
            .unwrap_or_default(),
    })
}

fn krb(e: client::ClientError) -> Failure {
    match e {
        client::ClientError::KrbError { code, text } => Failure::KrbError { code, text },
        e => Failure::Other(e.into()),
    }
}

/// Opens a PKINIT AS-REP: the reply key from padata 15 or 17 (checking the
/// KDC's signature and chain against `sp_trust`), then the encrypted part.
pub fn open_as_reply(
    req: &AsRequest,
    reply: &[u8],
    dev: &Device,
    sp_trust: &TrustStore,
) -> Result<Credentials, Failure> {
    if let Some(f) = as_krb_error(reply) {
        return Err(f);
    }
    let AsRep(rep) = msg::decode::<AsRep>("AS-REP", reply).context("decoding the AS-REP")?;
    let want = match req.form {
        Form::Packetcable => padata::PK_AS_REP_19,
        Form::Rfc4556 | Form::Rfc4556Dh | Form::Rfc4556Ecdh => padata::PK_AS_REP,
    };
    let pa = rep
        .padata
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|p| p.r#type == want)
        .with_context(|| format!("the AS-REP has no padata {want}"))?;
    let key = match req.form {
        Form::Packetcable => {
            pkinit::client::open_packetcable_reply(&pa.value, &dev.identity, sp_trust, req.nonce)
        }
        Form::Rfc4556 => {
            pkinit::client::open_rfc4556_rsa_reply(&pa.value, &dev.identity, sp_trust, &req.bytes)
        }
        Form::Rfc4556Dh | Form::Rfc4556Ecdh => {
            let ck = req.dh.as_ref().context("DH request without a client key")?;
            let etype = EncType::from_i32(rep.enc_part.etype).context("AS-REP etype")?;
            let state = pkinit::client::DhClientState {
                key: ck,
                client_dh_nonce: req.client_dh_nonce.as_deref(),
                nonce: req.nonce,
                etype,
            };
            let names = pkinit::server::KdfNames {
                client: &dev.principal,
                server: &req.server,
            };
            pkinit::client::open_rfc4556_dh_reply(&pa.value, &state, sp_trust, &req.bytes, &names)
        }
    }
    .with_context(|| format!("opening padata {want}"))?;
    client::open_as_rep(reply, &key, req.nonce).map_err(krb)
}

/// Opens a TGS-REP under the TGT session key.
pub fn open_tgs_reply(reply: &[u8], tgt: &Credentials, nonce: u32) -> Result<Credentials, Failure> {
    if let Some(f) = as_krb_error(reply) {
        return Err(f);
    }
    client::open_tgs_rep(reply, tgt, None, nonce).map_err(krb)
}

/// A loopback address of the KDC's family, any port.
pub fn local_any(peer: &SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
    }
}

/// A blocking connection to the KDC: a connected UDP socket or a TCP stream.
pub enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

impl Conn {
    pub fn open(kdc: SocketAddr, t: Transport, timeout: Duration) -> std::io::Result<Conn> {
        Ok(match t {
            Transport::Udp => {
                let s = UdpSocket::bind(local_any(&kdc))?;
                s.connect(kdc)?;
                s.set_read_timeout(Some(timeout))?;
                Conn::Udp(s)
            }
            Transport::Tcp => {
                let s = TcpStream::connect_timeout(&kdc, timeout)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        })
    }

    /// Sends one request and reads one reply.
    pub fn exchange(&mut self, req: &[u8], buf: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Conn::Udp(s) => {
                s.send(req)?;
                buf.resize(65536, 0);
                let n = s.recv(buf)?;
                buf.truncate(n);
            }
            Conn::Tcp(s) => {
                let mut framed = Vec::with_capacity(4 + req.len());
                framed.extend_from_slice(&(req.len() as u32).to_be_bytes());
                framed.extend_from_slice(req);
                s.write_all(&framed)?;
                let mut len = [0u8; 4];
                s.read_exact(&mut len)?;
                let n = u32::from_be_bytes(len) as usize;
                if n > MAX_TCP_REPLY {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("TCP reply length {n} too large"),
                    ));
                }
                buf.resize(n, 0);
                s.read_exact(buf)?;
            }
        }
        Ok(())
    }
}

/// Whether an I/O error is a read timeout.
pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The RFC 4120 / RFC 4556 name of a KRB-ERROR code.
pub fn err_name(code: i32) -> &'static str {
    match code {
        err::KDC_ERR_NONE => "KDC_ERR_NONE",
        err::KDC_ERR_C_PRINCIPAL_UNKNOWN => "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        err::KDC_ERR_S_PRINCIPAL_UNKNOWN => "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        err::KDC_ERR_POLICY => "KDC_ERR_POLICY",
        err::KDC_ERR_BADOPTION => "KDC_ERR_BADOPTION",
        err::KDC_ERR_ETYPE_NOSUPP => "KDC_ERR_ETYPE_NOSUPP",
        err::KDC_ERR_SUMTYPE_NOSUPP => "KDC_ERR_SUMTYPE_NOSUPP",
        err::KDC_ERR_PADATA_TYPE_NOSUPP => "KDC_ERR_PADATA_TYPE_NOSUPP",
        err::KDC_ERR_CLIENT_REVOKED => "KDC_ERR_CLIENT_REVOKED",
        err::KDC_ERR_PREAUTH_FAILED => "KDC_ERR_PREAUTH_FAILED",
        err::KDC_ERR_PREAUTH_REQUIRED => "KDC_ERR_PREAUTH_REQUIRED",
        err::KDC_ERR_SVC_UNAVAILABLE => "KDC_ERR_SVC_UNAVAILABLE",
        err::KRB_AP_ERR_BAD_INTEGRITY => "KRB_AP_ERR_BAD_INTEGRITY",
        err::KRB_AP_ERR_TKT_EXPIRED => "KRB_AP_ERR_TKT_EXPIRED",
        err::KRB_AP_ERR_REPEAT => "KRB_AP_ERR_REPEAT",
        err::KRB_AP_ERR_SKEW => "KRB_AP_ERR_SKEW",
        err::KRB_AP_ERR_MODIFIED => "KRB_AP_ERR_MODIFIED",
        err::KRB_ERR_RESPONSE_TOO_BIG => "KRB_ERR_RESPONSE_TOO_BIG",
        err::KRB_ERR_GENERIC => "KRB_ERR_GENERIC",
        err::KDC_ERR_CLIENT_NOT_TRUSTED => "KDC_ERR_CLIENT_NOT_TRUSTED",
        err::KDC_ERR_KDC_NOT_TRUSTED => "KDC_ERR_KDC_NOT_TRUSTED",
        err::KDC_ERR_INVALID_SIG => "KDC_ERR_INVALID_SIG",
        err::KDC_ERR_KEY_TOO_WEAK => "KDC_ERR_KEY_TOO_WEAK",
        err::KDC_ERR_CERTIFICATE_MISMATCH => "KDC_ERR_CERTIFICATE_MISMATCH",
        err::KDC_ERR_CANT_VERIFY_CERTIFICATE => "KDC_ERR_CANT_VERIFY_CERTIFICATE",
        err::KDC_ERR_INVALID_CERTIFICATE => "KDC_ERR_INVALID_CERTIFICATE",
        err::KDC_ERR_REVOKED_CERTIFICATE => "KDC_ERR_REVOKED_CERTIFICATE",
        err::KDC_ERR_REVOCATION_STATUS_UNKNOWN => "KDC_ERR_REVOCATION_STATUS_UNKNOWN",
        err::KDC_ERR_REVOCATION_STATUS_UNAVAILABLE => "KDC_ERR_REVOCATION_STATUS_UNAVAILABLE",
        err::KDC_ERR_CLIENT_NAME_MISMATCH => "KDC_ERR_CLIENT_NAME_MISMATCH",
        err::KDC_ERR_KDC_NAME_MISMATCH => "KDC_ERR_KDC_NAME_MISMATCH",
        err::KDC_ERR_WRONG_REALM => "KDC_ERR_WRONG_REALM",
        _ => "",
    }
}

/// Summary of a ticket: (sname@realm, ticket etype, session key etype, end time).
pub fn ticket_summary(c: &Credentials) -> (String, i32, &'static str, String) {
    let sname = Principal::from_rasn(&c.ticket.sname, &c.ticket.realm)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| "?".to_string());
    let end = c
        .part
        .end_time
        .0
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    (
        sname,
        c.ticket.enc_part.etype,
        c.session_key.etype().name(),
        end,
    )
}
