//! `pktc-kdc certs`: dev PKI generation, device issuance, chain inspection
//! and key checks, on top of the `certs` crate. Functions return what the
//! binary prints; nothing here writes to stdout or stderr.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use certs::{CertSpec, ChainError, CrlPolicy, DevPki, DevPkiOptions, Issued, TrustStore, Validity};
use openssl::asn1::Asn1Time;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509Ref};

mod revoke;
pub use revoke::{Revoked, revoke};

/// Manufacturer prefix of the generated dev MACs (`00:10:95:00:00:nn`).
pub const DEV_MAC_PREFIX: [u8; 3] = [0x00, 0x10, 0x95];

/// `n` dev MACs: 00:10:95:00:00:01, 00:10:95:00:00:02, ...
pub fn dev_macs(n: u16) -> Vec<[u8; 6]> {
    (1..=n)
        .map(|i| {
            let [hi, lo] = i.to_be_bytes();
            let p = DEV_MAC_PREFIX;
            [p[0], p[1], p[2], 0, hi, lo]
        })
        .collect()
}

/// MAC as 12 upper-case hex digits: the device directory name under `pki/devices/`.
pub fn mac_dir_name(mac: [u8; 6]) -> String {
    hex::encode_upper(mac)
}

// ---------------------------------------------------------------------------
// certs init

/// `certs init`: a complete dev PKI (both hierarchies, CRLs, devices) in `dir`.
pub fn init(dir: &Path, opts: &DevPkiOptions) -> anyhow::Result<DevPki> {
    certs::dev_pki(opts, dir).with_context(|| format!("writing the dev PKI to {}", dir.display()))
}

/// What `certs init` prints.
pub fn describe_dev_pki(pki: &DevPki) -> String {
    let mut s = String::new();
    let p = |p: &Path| p.display().to_string();
    let _ = writeln!(s, "dev PKI written to {}", p(&pki.root));
    let _ = writeln!(s, "  device trust dir (KDC):  {}", p(&pki.device_trust_dir));
    let _ = writeln!(s, "  SP trust dir (clients):  {}", p(&pki.sp_trust_dir));
    let _ = writeln!(
        s,
        "  KDC certificate:         {}  key {}  chain {}",
        p(&pki.kdc_cert),
        p(&pki.kdc_key),
        p(&pki.kdc_chain)
    );
    let _ = writeln!(
        s,
        "  TLS certificate:         {}  key {}  chain {}",
        p(&pki.tls_cert),
        p(&pki.tls_key),
        p(&pki.tls_chain)
    );
    let _ = writeln!(
        s,
        "  CA keys (dev only):      {}",
        p(&pki.root.join("ca-keys"))
    );
    for d in &pki.devices {
        let _ = writeln!(s, "  device:                  {}", p(d));
    }
    if let Some(d) = &pki.crl_publish_dir {
        let _ = writeln!(s, "  CRLs to publish (DER):   {}", p(d));
    }
    s
}

// ---------------------------------------------------------------------------
// certs issue-device

/// `certs issue-device`: what to issue.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    pub mac: [u8; 6],
    /// RSA modulus size (PacketCable 1.x devices: 1024).
    pub bits: u32,
    /// Sign with SHA-1 instead of SHA-256.
    pub sha1: bool,
    pub validity: Validity,
    pub org: String,
}

impl DeviceRequest {
    pub fn new(mac: [u8; 6]) -> Self {
        DeviceRequest {
            mac,
            bits: 2048,
            sha1: false,
            validity: Validity::Normal,
            org: "Example Manufacturer".into(),
        }
    }
}

/// Files written for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Device certificate followed by the issuing CA (the layout of `dev_pki`).
    pub chain: PathBuf,
}

/// A CA certificate and its key, loaded from PEM files.
pub fn load_ca(cert: &Path, key: &Path) -> anyhow::Result<Issued> {
    let cert = load_certs(cert)?.remove(0);
    let key = load_key(key)?;
    if !cert.public_key()?.public_eq(&key) {
        bail!("CA certificate and CA key do not match");
    }
    Ok(Issued { cert, key })
}

/// O= of a certificate subject (a manufacturer CA's is what its devices carry).
pub fn subject_org(cert: &X509Ref) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::ORGANIZATIONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// Issues a device certificate (CN = MAC) from `ca` into `out_dir`:
/// `cert.pem`, `key.pem` (PKCS#8, mode 0600) and `chain.pem`.
pub fn issue_device(
    ca: &Issued,
    req: &DeviceRequest,
    out_dir: &Path,
) -> anyhow::Result<DeviceFiles> {
    let mut spec = CertSpec::new()
        .org(&req.org)
        .ou("Dev Lab")
        .bits(req.bits)
        .validity(req.validity);
    if req.sha1 {
        spec = spec.sha1();
    }
    let dev = certs::device_cert(ca, req.mac, spec).context("issuing the device certificate")?;
    krb::atomic_file::create_dir_all(out_dir)
        .with_context(|| format!("creating {}", out_dir.display()))?;
    let files = DeviceFiles {
        cert: out_dir.join("cert.pem"),
        key: out_dir.join("key.pem"),
        chain: out_dir.join("chain.pem"),
    };
    let cert_pem = dev.cert_pem()?;
    write(&files.cert, &cert_pem)?;
    write_secret(&files.key, &dev.key_pem()?)?;
    let mut chain = cert_pem;
    chain.extend_from_slice(&ca.cert.to_pem()?);
    write(&files.chain, &chain)?;
    Ok(files)
}

/// `Validity` for `--days N` (from one day ago, N days) or `--validity`.
pub fn validity(days: Option<u32>, kind: &str) -> anyhow::Result<Validity> {
    let now = unix_now();
    Ok(match (kind, days) {
        ("normal", None) => Validity::Normal,
        ("normal", Some(d)) => Validity::Range {
            not_before: now - 86_400,
            not_after: now + i64::from(d) * 86_400,
        },
        ("expired", None) => Validity::Expired,
        ("not-yet-valid", None) => Validity::NotYetValid,
        ("expired" | "not-yet-valid", Some(_)) => {
            bail!("--days and --validity {kind} cannot be combined")
        }
        _ => bail!("--validity must be normal, expired or not-yet-valid"),
    })
}

// ---------------------------------------------------------------------------
// certs show

/// Result of `certs show`.
pub struct ShowReport {
    /// The human-readable report.
    pub text: String,
    /// With a trust directory: the verification outcome.
    pub verification: Option<Result<(), ChainError>>,
}

/// Describes `cert` (first certificate of the file, the leaf) and the other
/// certificates of its file and of `chain`; with `trust_dir`, verifies the
/// leaf against it now and adds the certificates the store completed.
pub fn show(
    cert: &Path,
    chain: Option<&Path>,
    trust_dir: Option<(&Path, CrlPolicy)>,
) -> anyhow::Result<ShowReport> {
    let mut certs = load_certs(cert)?;
    if let Some(c) = chain {
        certs.extend(load_certs(c)?);
    }
    dedup(&mut certs)?;
    let leaf = certs.remove(0);
    let presented = certs;

    let mut text = String::new();
    let _ = writeln!(text, "[0] {}", describe(&leaf)?);
    for (i, c) in presented.iter().enumerate() {
        let _ = writeln!(text, "[{}] {}", i + 1, describe(c)?);
    }

    let verification = match trust_dir {
        None => None,
        Some((dir, policy)) => {
            let store = TrustStore::load_dir(dir, policy)
                .with_context(|| format!("loading trust directory {}", dir.display()))?;
            let _ = writeln!(
                text,
                "trust directory {} (CRL policy {policy:?})",
                dir.display()
            );
            match store.verify_now(&leaf, &presented) {
                Ok(v) => {
                    let mut shown = presented.clone();
                    shown.insert(0, leaf.clone());
                    for (depth, c) in v.chain.iter().enumerate() {
                        if !contains(&shown, c)? {
                            let _ = writeln!(text, "[{depth}] (trust directory) {}", describe(c)?);
                        }
                    }
                    let _ = writeln!(
                        text,
                        "verification: ok ({} certificates, leaf to anchor)",
                        v.chain.len()
                    );
                    Some(Ok(()))
                }
                Err(e) => {
                    let _ = writeln!(
                        text,
                        "verification: FAILED: {e} (KRB-ERROR {} {})",
                        e.krb_error_code(),
                        krb_error_name(e.krb_error_code())
                    );
                    Some(Err(e))
                }
            }
        }
    };
    Ok(ShowReport { text, verification })
}

/// Name of a PKINIT KRB-ERROR code from [`ChainError::krb_error_code`].
pub fn krb_error_name(code: i32) -> &'static str {
    match code {
        70 => "KDC_ERR_CANT_VERIFY_CERTIFICATE",
        71 => "KDC_ERR_INVALID_CERTIFICATE",
        72 => "KDC_ERR_REVOKED_CERTIFICATE",
        73 => "KDC_ERR_REVOCATION_STATUS_UNKNOWN",
        74 => "KDC_ERR_REVOCATION_STATUS_UNAVAILABLE",
        _ => "?",
    }
}

/// One certificate, as several indented lines.
fn describe(c: &X509Ref) -> anyhow::Result<String> {
    let mut s = String::new();
    let _ = writeln!(s, "subject:   {}", name(c.subject_name()));
    let _ = writeln!(s, "    issuer:    {}", name(c.issuer_name()));
    let _ = writeln!(
        s,
        "    serial:    {}",
        c.serial_number().to_bn()?.to_hex_str()?
    );
    let _ = writeln!(s, "    key:       RSA {} bits", c.public_key()?.bits());
    let _ = writeln!(s, "    signature: {}", c.signature_algorithm().object());
    let now = Asn1Time::days_from_now(0)?;
    let left = now.diff(c.not_after())?;
    let _ = writeln!(s, "    not before: {}", c.not_before());
    let _ = write!(s, "    not after:  {} ", c.not_after());
    if left.days < 0 || (left.days == 0 && left.secs < 0) {
        let _ = writeln!(s, "(EXPIRED {} days ago)", -left.days);
    } else {
        let _ = writeln!(s, "({} days left)", left.days);
    }
    if now.compare(c.not_before())? == std::cmp::Ordering::Less {
        let _ = writeln!(s, "    NOT YET VALID");
    }
    if c.subject_name().to_der()? != c.issuer_name().to_der()?
        && let Ok(mac) = certs::device_mac(c)
    {
        let _ = writeln!(s, "    device MAC: {}", certs::format_mac(mac));
    }
    if let Some(p) = pkinit_san(&c.to_der()?) {
        let _ = writeln!(s, "    PKINIT SAN: {p}");
    }
    Ok(s.trim_end().to_string())
}

/// `C=US, O=..., CN=...`
fn name(n: &openssl::x509::X509NameRef) -> String {
    n.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let val = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{key}={val}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn dedup(certs: &mut Vec<X509>) -> anyhow::Result<()> {
    let mut out: Vec<X509> = Vec::with_capacity(certs.len());
    for c in certs.drain(..) {
        if !contains(&out, &c)? {
            out.push(c);
        }
    }
    *certs = out;
    Ok(())
}

fn contains(list: &[X509], c: &X509Ref) -> anyhow::Result<bool> {
    let der = c.to_der()?;
    for x in list {
        if x.to_der()? == der {
            return Ok(true);
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------
// certs check

/// `certs check`: does the private key belong to the certificate?
pub fn check(cert: &Path, key: &Path) -> anyhow::Result<bool> {
    let cert = load_certs(cert)?.remove(0);
    let key = load_key(key)?;
    Ok(cert.public_key()?.public_eq(&key))
}

// ---------------------------------------------------------------------------
// Files

/// Every certificate in a PEM file (at least one) or a single DER certificate.
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<X509>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = if data.starts_with(b"-----") || data.windows(11).any(|w| w == b"-----BEGIN ") {
        X509::stack_from_pem(&data)
            .with_context(|| format!("{}: not a PEM certificate file", path.display()))?
    } else {
        vec![
            X509::from_der(&data)
                .with_context(|| format!("{}: not a certificate", path.display()))?,
        ]
    };
    if certs.is_empty() {
        bail!("{}: no certificate in the file", path.display());
    }
    Ok(certs)
}

/// A private key in PEM (PKCS#8 or traditional) or DER.
pub fn load_key(path: &Path) -> anyhow::Result<PKey<Private>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    PKey::private_key_from_pem(&data)
        .or_else(|_| PKey::private_key_from_der(&data))
        .with_context(|| format!("{}: not an unencrypted private key", path.display()))
}

fn write(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    krb::atomic_file::write_public(path, data)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes a private key readable by the owner only (from its first byte).
fn write_secret(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    krb::atomic_file::write_private(path, data)
        .with_context(|| format!("writing {}", path.display()))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------------------
// id-pkinit-san

/// The `KRB5PrincipalName` of an id-pkinit-san otherName in the certificate's
/// subjectAltName, as `name/instance@REALM`. The openssl crate exposes no
/// otherName accessor, so this walks the DER (certs has no helper for it).
pub fn pkinit_san(cert_der: &[u8]) -> Option<String> {
    const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17
    const OID_PKINIT_SAN: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x02, 0x02]; // 1.3.6.1.5.2.2
    let (_, cert, _) = der::tlv(cert_der, 0x30)?;
    let (_, tbs, _) = der::tlv(cert, 0x30)?;
    let exts = der::items(tbs).find(|(tag, _)| *tag == 0xa3)?.1;
    let (_, exts, _) = der::tlv(exts, 0x30)?;
    for (_, ext) in der::items(exts) {
        let mut parts = der::items(ext);
        let (_, oid) = parts.next()?;
        if oid != OID_SAN {
            continue;
        }
        let (_, value) = parts.find(|(tag, _)| *tag == 0x04)?;
        let (_, names, _) = der::tlv(value, 0x30)?;
        for (tag, other) in der::items(names) {
            if tag != 0xa0 {
                continue;
            }
            let mut on = der::items(other);
            let (_, type_id) = on.next()?;
            let (_, explicit) = on.next()?;
            if type_id == OID_PKINIT_SAN
                && let Some(p) = krb5_principal_name(explicit)
            {
                return Some(p);
            }
        }
    }
    None
}

/// `KRB5PrincipalName ::= SEQUENCE { realm [0] Realm, principalName [1]
/// SEQUENCE { name-type [0] Int32, name-string [1] SEQUENCE OF KerberosString } }`
fn krb5_principal_name(der_value: &[u8]) -> Option<String> {
    let (_, seq, _) = der::tlv(der_value, 0x30)?;
    let mut it = der::items(seq);
    let (_, realm) = it.next().filter(|(t, _)| *t == 0xa0)?;
    let (_, realm, _) = der::tlv(realm, 0x1b)?;
    let (_, pn) = it.next().filter(|(t, _)| *t == 0xa1)?;
    let (_, pn, _) = der::tlv(pn, 0x30)?;
    let (_, strings) = der::items(pn).find(|(t, _)| *t == 0xa1)?;
    let (_, strings, _) = der::tlv(strings, 0x30)?;
    let parts: Vec<String> = der::items(strings)
        .map(|(_, s)| String::from_utf8_lossy(s).into_owned())
        .collect();
    Some(format!(
        "{}@{}",
        parts.join("/"),
        String::from_utf8_lossy(realm)
    ))
}

/// Just enough DER reading for [`pkinit_san`]: single-byte tags, definite lengths.
mod der {
    /// One TLV at the start of `input` with tag `want`: (tag, contents, rest).
    pub fn tlv(input: &[u8], want: u8) -> Option<(u8, &[u8], &[u8])> {
        let (tag, body, rest) = any(input)?;
        (tag == want).then_some((tag, body, rest))
    }

    fn any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // multi-byte tag: not used by what we read
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    /// The TLVs inside a constructed value: (tag, contents).
    pub fn items(mut body: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
        std::iter::from_fn(move || {
            let (tag, value, rest) = any(body)?;
            body = rest;
            Some((tag, value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_macs_count_up() {
        assert_eq!(
            dev_macs(3),
            vec![
                [0x00, 0x10, 0x95, 0, 0, 1],
                [0x00, 0x10, 0x95, 0, 0, 2],
                [0x00, 0x10, 0x95, 0, 0, 3]
            ]
        );
        assert_eq!(mac_dir_name([0x00, 0x10, 0x95, 0, 0, 0xab]), "0010950000AB");
    }

    #[test]
    fn pkinit_san_of_kdc_cert() {
        let root = certs::sp_root(CertSpec::new().bits(1024)).unwrap();
        let kdc = certs::kdc_cert(
            &root,
            "PKTC.TEST",
            "PKTC Dev Realm",
            "kdc.pktc.test",
            CertSpec::new().bits(1024),
        )
        .unwrap();
        assert_eq!(
            pkinit_san(&kdc.cert.to_der().unwrap()).as_deref(),
            Some("krbtgt/PKTC.TEST@PKTC.TEST")
        );
        let dev =
            certs::device_cert(&root, [0, 1, 2, 3, 4, 5], CertSpec::new().bits(1024)).unwrap();
        assert_eq!(pkinit_san(&dev.cert.to_der().unwrap()), None);
        assert_eq!(pkinit_san(b"\x30\x82garbage"), None);
    }
}
