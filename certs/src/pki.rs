//! PacketCable-profile certificate hierarchies, built with the `openssl` crate.
//!
//! Device side: [`mta_root`] → [`manufacturer_ca`] → [`device_cert`]
//! (subject CN = MAC address, no SAN, no EKU: real MTAs have none).
//! Service-provider side: [`sp_root`] → [`sp_ca`] → [`local_system_ca`] →
//! [`kdc_cert`] / [`tls_server_cert`]. [`crl`] signs CRLs and [`dev_pki`]
//! writes a whole dev realm to a directory.
//!
//! The negative variants the tests need come from [`CertSpec`]:
//! [`Validity::Expired`], [`Validity::NotYetValid`], [`Digest::Sha1`], a
//! chosen serial; a wrong issuer is simply a different `&Issued`, and
//! revocation is a [`crl`] listing the serial.

use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

use crate::mac::format_mac;

/// id-pkinit-san (RFC 4556): otherName type of a KRB5PrincipalName SAN.
pub const OID_PKINIT_SAN: &str = "1.3.6.1.5.2.2";
/// id-pkinit-KPKdc (RFC 4556): the KDC extended key usage.
pub const OID_PKINIT_KP_KDC: &str = "1.3.6.1.5.2.3.5";

const DAY: i64 = 86_400;

/// Why a certificate, key or CRL could not be produced or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// OpenSSL refused an operation.
    #[error("openssl: {0}")]
    Openssl(#[from] ErrorStack),
    /// A file or directory could not be written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A value does not fit its ASN.1 type (e.g. a realm outside GeneralString).
    #[error("ASN.1 encoding: {0}")]
    Asn1(String),
    /// A validity range ends before it starts.
    #[error("not_after {not_after} is before not_before {not_before}")]
    BadValidity { not_before: i64, not_after: i64 },
}

/// Signature digest. PacketCable 1.x devices may carry SHA-1 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Digest {
    #[default]
    Sha256,
    Sha1,
}

impl Digest {
    fn md(self) -> MessageDigest {
        match self {
            Digest::Sha256 => MessageDigest::sha256(),
            Digest::Sha1 => MessageDigest::sha1(),
        }
    }
}

/// Validity window of a certificate, relative to the moment it is issued
/// unless given as absolute Unix times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validity {
    /// From one day ago for `years` years (CAs and devices: long-lived).
    #[default]
    Normal,
    /// Ended a year ago (valid from two years ago to one year ago).
    Expired,
    /// Starts in a year (valid from one to two years from now).
    NotYetValid,
    /// Absolute Unix times.
    Range { not_before: i64, not_after: i64 },
}

impl Validity {
    /// The (not_before, not_after) Unix times for a certificate issued at `now`.
    pub fn window(self, now: i64, years: i64) -> (i64, i64) {
        match self {
            Validity::Normal => (
                now - DAY,
                now.saturating_add(years.saturating_mul(365 * DAY)),
            ),
            Validity::Expired => (now - 730 * DAY, now - 365 * DAY),
            Validity::NotYetValid => (now + 365 * DAY, now + 730 * DAY),
            Validity::Range {
                not_before,
                not_after,
            } => (not_before, not_after),
        }
    }
}

/// What to put in one certificate. Start from [`CertSpec::new`] and chain
/// the setters; functions that fix a field (the device CN is the MAC, the
/// KDC subject is O=org/CN=dns name) override it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    pub country: Option<String>,
    pub org: Option<String>,
    pub org_unit: Option<String>,
    pub common_name: Option<String>,
    /// RSA modulus size.
    pub bits: u32,
    pub digest: Digest,
    pub validity: Validity,
    /// Random (positive, 63 bits) when `None`.
    pub serial: Option<u64>,
    /// Lifetime in years for [`Validity::Normal`].
    pub years: i64,
    /// URIs of a CRL Distribution Points extension (where the CRL of this
    /// certificate's issuer is published); none when empty.
    pub crl_urls: Vec<String>,
}

impl Default for CertSpec {
    fn default() -> Self {
        CertSpec {
            country: Some("US".into()),
            org: None,
            org_unit: None,
            common_name: None,
            bits: 2048,
            digest: Digest::Sha256,
            validity: Validity::Normal,
            serial: None,
            years: 20,
            crl_urls: Vec::new(),
        }
    }
}

impl CertSpec {
    /// C=US, RSA 2048, SHA-256, valid now for 20 years, random serial.
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cn(mut self, cn: &str) -> Self {
        self.common_name = Some(cn.into());
        self
    }
    pub fn org(mut self, org: &str) -> Self {
        self.org = Some(org.into());
        self
    }
    pub fn ou(mut self, ou: &str) -> Self {
        self.org_unit = Some(ou.into());
        self
    }
    pub fn country(mut self, c: &str) -> Self {
        self.country = Some(c.into());
        self
    }
    pub fn bits(mut self, bits: u32) -> Self {
        self.bits = bits;
        self
    }
    pub fn sha1(mut self) -> Self {
        self.digest = Digest::Sha1;
        self
    }
    pub fn validity(mut self, v: Validity) -> Self {
        self.validity = v;
        self
    }
    pub fn serial(mut self, serial: u64) -> Self {
        self.serial = Some(serial);
        self
    }
    pub fn years(mut self, years: i64) -> Self {
        self.years = years;
        self
    }
    /// Adds a CRL Distribution Point URI.
    pub fn crl_url(mut self, url: &str) -> Self {
        self.crl_urls.push(url.into());
        self
    }
    fn cn_or(mut self, default: &str) -> Self {
        if self.common_name.is_none() {
            self.common_name = Some(default.into());
        }
        self
    }
}

/// A certificate with its private key.
#[derive(Clone)]
pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("subject", &self.cert.subject_name())
            .finish_non_exhaustive()
    }
}

impl Issued {
    pub fn cert_pem(&self) -> Result<Vec<u8>, PkiError> {
        Ok(self.cert.to_pem()?)
    }
    /// The private key as unencrypted PKCS#8 PEM.
    pub fn key_pem(&self) -> Result<Vec<u8>, PkiError> {
        Ok(self.key.private_key_to_pem_pkcs8()?)
    }
    /// Writes `<stem>.pem` (certificate) and `<stem>.key` (PKCS#8, mode 0600
    /// on Unix) into `dir`; returns both paths.
    pub fn write_pem(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        write(&cert, &self.cert_pem()?)?;
        write_secret(&key, &self.key_pem()?)?;
        Ok((cert, key))
    }
}

// ---------------------------------------------------------------------------
// Device side

/// Self-signed MTA Root CA (default CN "MTA Root CA", 20 years).
pub fn mta_root(spec: CertSpec) -> Result<Issued, PkiError> {
    ca(None, spec.cn_or("MTA Root CA"), Some(1))
}

/// MTA Manufacturer CA under the MTA root (pathlen 0: issues devices only).
pub fn manufacturer_ca(issuer: &Issued, spec: CertSpec) -> Result<Issued, PkiError> {
    ca(Some(issuer), spec.cn_or("MTA Manufacturer CA"), Some(0))
}

/// MTA device certificate: CN = MAC (`00:11:22:AA:BB:CC`), O = manufacturer
/// and OU = location from `spec`; keyUsage critical digitalSignature +
/// keyEncipherment, CA:FALSE, SKI/AKI, and deliberately no SAN and no EKU.
pub fn device_cert(issuer: &Issued, mac: [u8; 6], spec: CertSpec) -> Result<Issued, PkiError> {
    let spec = spec.cn(&format_mac(mac));
    let (mut b, key) = start(Some(issuer), &spec)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    finish(b, key, Some(issuer), &spec)
}

// ---------------------------------------------------------------------------
// Service-provider side

/// Self-signed service-provider root (the MTA's "telephony root").
pub fn sp_root(spec: CertSpec) -> Result<Issued, PkiError> {
    ca(None, spec.cn_or("Service Provider Root"), Some(2))
}

/// Service Provider CA under the SP root.
pub fn sp_ca(issuer: &Issued, spec: CertSpec) -> Result<Issued, PkiError> {
    ca(Some(issuer), spec.cn_or("Service Provider CA"), Some(1))
}

/// Local System CA under the SP CA; issues KDC and server certificates.
pub fn local_system_ca(issuer: &Issued, spec: CertSpec) -> Result<Issued, PkiError> {
    ca(Some(issuer), spec.cn_or("Local System CA"), Some(0))
}

/// KDC certificate: subject C=US, O=`org` (must equal the MTA's
/// pktcMtaDevRealmOrgName), CN=`dns_name`; SAN = otherName id-pkinit-san
/// `krbtgt/REALM@REALM` (NT-SRV-INST) plus dNSName; EKU id-pkinit-KPKdc plus
/// serverAuth, so the same key pair could also serve TLS; keyUsage
/// digitalSignature + keyEncipherment.
pub fn kdc_cert(
    issuer: &Issued,
    realm: &str,
    org: &str,
    dns_name: &str,
    spec: CertSpec,
) -> Result<Issued, PkiError> {
    let spec = spec.org(org).cn(dns_name);
    let (mut b, key) = start(Some(issuer), &spec)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    let principal = krbtgt_principal_der(realm)?;
    let san = {
        let ctx = b.x509v3_context(Some(&issuer.cert), None);
        SubjectAlternativeName::new()
            .other_name2(Asn1Object::from_str(OID_PKINIT_SAN)?, &principal)
            .dns(dns_name)
            .build(&ctx)?
    };
    b.append_extension(san)?;
    b.append_extension(
        ExtendedKeyUsage::new()
            .other(OID_PKINIT_KP_KDC)
            .server_auth()
            .build()?,
    )?;
    finish(b, key, Some(issuer), &spec)
}

/// TLS server certificate (certificate-bootstrapping endpoint): SAN dNSNames
/// and iPAddresses, EKU serverAuth, keyUsage digitalSignature +
/// keyEncipherment. CN = first DNS name unless the spec sets one.
pub fn tls_server_cert(
    issuer: &Issued,
    dns_names: &[&str],
    ip_addrs: &[std::net::IpAddr],
    spec: CertSpec,
) -> Result<Issued, PkiError> {
    let spec = spec.cn_or(dns_names.first().copied().unwrap_or("localhost"));
    let (mut b, key) = start(Some(issuer), &spec)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    if !dns_names.is_empty() || !ip_addrs.is_empty() {
        let san = {
            let ctx = b.x509v3_context(Some(&issuer.cert), None);
            let mut san = SubjectAlternativeName::new();
            for d in dns_names {
                san.dns(d);
            }
            for ip in ip_addrs {
                san.ip(&ip.to_string());
            }
            san.build(&ctx)?
        };
        b.append_extension(san)?;
    }
    b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    finish(b, key, Some(issuer), &spec)
}

// ---------------------------------------------------------------------------
// Shared building blocks

fn ca(issuer: Option<&Issued>, spec: CertSpec, pathlen: Option<u32>) -> Result<Issued, PkiError> {
    let (mut b, key) = start(issuer, &spec)?;
    let mut bc = BasicConstraints::new();
    bc.critical().ca();
    if let Some(p) = pathlen {
        bc.pathlen(p);
    }
    b.append_extension(bc.build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    finish(b, key, issuer, &spec)
}

/// New key, subject, issuer name, serial and validity.
fn start(
    issuer: Option<&Issued>,
    spec: &CertSpec,
) -> Result<(X509Builder, PKey<Private>), PkiError> {
    let key = PKey::from_rsa(Rsa::generate(spec.bits)?)?;
    let mut name = X509NameBuilder::new()?;
    for (field, value) in [
        ("C", &spec.country),
        ("O", &spec.org),
        ("OU", &spec.org_unit),
        ("CN", &spec.common_name),
    ] {
        if let Some(v) = value {
            name.append_entry_by_text(field, v)?;
        }
    }
    let name = name.build();
    let (not_before, not_after) = spec.validity.window(crate::time::now(), spec.years);
    if not_after < not_before {
        return Err(PkiError::BadValidity {
            not_before,
            not_after,
        });
    }
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = serial(spec.serial)?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    match issuer {
        Some(i) => b.set_issuer_name(i.cert.subject_name())?,
        None => b.set_issuer_name(&name)?,
    }
    b.set_pubkey(&key)?;
    let (not_before, not_after) = (
        Asn1Time::from_unix(not_before)?,
        Asn1Time::from_unix(not_after)?,
    );
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    Ok((b, key))
}

/// SKI, AKI (keyid of the issuer; of itself for a root), then sign.
fn finish(
    mut b: X509Builder,
    key: PKey<Private>,
    issuer: Option<&Issued>,
    spec: &CertSpec,
) -> Result<Issued, PkiError> {
    let ski = {
        let ctx = b.x509v3_context(issuer.map(|i| &*i.cert), None);
        SubjectKeyIdentifier::new().build(&ctx)?
    };
    b.append_extension(ski)?;
    let aki = {
        let ctx = b.x509v3_context(issuer.map(|i| &*i.cert), None);
        AuthorityKeyIdentifier::new().keyid(true).build(&ctx)?
    };
    b.append_extension(aki)?;
    if !spec.crl_urls.is_empty() {
        b.append_extension(crl::distribution_points(&spec.crl_urls)?)?;
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, spec.digest.md())?;
    Ok(Issued {
        cert: b.build(),
        key,
    })
}

fn serial(fixed: Option<u64>) -> Result<Asn1Integer, ErrorStack> {
    let bn = match fixed {
        Some(n) => BigNum::from_dec_str(&n.to_string())?,
        None => {
            let mut bn = BigNum::new()?;
            bn.rand(63, MsbOption::MAYBE_ZERO, true)?;
            bn
        }
    };
    bn.to_asn1_integer()
}

// ---------------------------------------------------------------------------
// Files

pub(crate) fn write(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    krb::atomic_file::write_public(path, data).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// A private key: mode 0600 from its first byte, written atomically.
pub(crate) fn write_secret(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    krb::atomic_file::write_private(path, data).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn mkdir(path: &Path) -> Result<(), PkiError> {
    krb::atomic_file::create_dir_all(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

mod crl;
mod dev;
mod principal;
pub use crl::{CrlSpec, crl, crl_number, crl_of_serials, revoked_serials};
pub use dev::{DevPki, DevPkiOptions, dev_pki};
pub use principal::{Krb5PrincipalName, NT_SRV_INST, PrincipalName, krbtgt_principal_der};
