//! One call that writes a whole dev-realm PKI to a directory.
//!
//! ```text
//! <out>/
//!   trust/device/          the KDC's device trust directory (TrustStore::load_dir)
//!     mta-root.pem  manufacturer-ca.pem  mta-root.crl.pem  manufacturer-ca.crl.pem
//!   trust/sp/              what MTAs trust for the KDC ("telephony root")
//!     sp-root.pem
//!   sp/                    the KDC's own material
//!     sp-ca.pem  local-system-ca.pem
//!     kdc.pem  kdc.key  kdc-chain.pem      (chain = kdc, local system CA, SP CA; no root)
//!     tls.pem  tls.key  tls-chain.pem      (certificate-bootstrapping HTTPS endpoint)
//!   ca-keys/               dev only: CA keys, to issue more devices later
//!     mta-root.key  manufacturer-ca.key  sp-root.key  sp-ca.key  local-system-ca.key
//!   devices/<MAC as 12 upper-case hex digits>/
//!     cert.pem  key.pem  chain.pem         (chain = device, manufacturer CA)
//!   crl-publish/           only with a CRL URL base: what an HTTP server publishes
//!     mta-root.crl  manufacturer-ca.crl    (DER, the same CRLs as in trust/device)
//! ```

use std::path::{Path, PathBuf};

use openssl::x509::X509Ref;

use super::{
    CertSpec, CrlSpec, Issued, PkiError, crl, device_cert, kdc_cert, local_system_ca,
    manufacturer_ca, mkdir, mta_root, sp_ca, sp_root, tls_server_cert, write,
};

/// What [`dev_pki`] generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPkiOptions {
    /// Kerberos realm, e.g. `PCREALM.EXAMPLE`.
    pub realm: String,
    /// Realm organization name: the KDC certificate's O=.
    pub org: String,
    /// The KDC's DNS name: KDC certificate CN and dNSName, TLS server name.
    pub kdc_dns_name: String,
    /// Device manufacturer (O= of the manufacturer CA and of the devices).
    pub manufacturer: String,
    pub macs: Vec<[u8; 6]>,
    /// Device RSA size (PacketCable 1.x devices: 1024). CAs and KDC: 2048.
    pub device_bits: u32,
    /// `http://host:port/path/`: certificates carry CRL Distribution Points
    /// under it (the manufacturer CA: `mta-root.crl`, devices:
    /// `manufacturer-ca.crl`) and the CRLs are written to `crl-publish/`.
    pub crl_url_base: Option<String>,
}

impl DevPkiOptions {
    pub fn new(realm: &str, org: &str, macs: &[[u8; 6]]) -> Self {
        DevPkiOptions {
            realm: realm.into(),
            org: org.into(),
            kdc_dns_name: format!("kdc.{}", realm.to_ascii_lowercase()),
            manufacturer: "Example Manufacturer".into(),
            macs: macs.to_vec(),
            device_bits: 2048,
            crl_url_base: None,
        }
    }

    /// The URL of `file` under [`DevPkiOptions::crl_url_base`].
    pub fn crl_url(&self, file: &str) -> Option<String> {
        self.crl_url_base
            .as_deref()
            .map(|base| format!("{}/{file}", base.trim_end_matches('/')))
    }
}

/// Paths of what [`dev_pki`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPki {
    pub root: PathBuf,
    /// Device-side trust directory for the KDC.
    pub device_trust_dir: PathBuf,
    /// Service-provider trust directory (SP root) for MTAs / clients.
    pub sp_trust_dir: PathBuf,
    pub kdc_cert: PathBuf,
    pub kdc_key: PathBuf,
    pub kdc_chain: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub tls_chain: PathBuf,
    /// One directory per device (cert.pem, key.pem, chain.pem), in `macs` order.
    pub devices: Vec<PathBuf>,
    /// The DER CRLs to publish at the CRL URLs, when a base was given.
    pub crl_publish_dir: Option<PathBuf>,
}

/// Generates and writes the dev-realm PKI under `out` (created if needed;
/// existing files are overwritten).
pub fn dev_pki(opts: &DevPkiOptions, out: &Path) -> Result<DevPki, PkiError> {
    let device_trust_dir = out.join("trust/device");
    let sp_trust_dir = out.join("trust/sp");
    let sp_dir = out.join("sp");
    let keys_dir = out.join("ca-keys");
    for d in [&device_trust_dir, &sp_trust_dir, &sp_dir, &keys_dir] {
        mkdir(d)?;
    }

    // Device side.
    let root = mta_root(CertSpec::new().org("Dev MTA Root").cn("MTA Root CA"))?;
    let with_crl_url = |spec: CertSpec, file: &str| match opts.crl_url(file) {
        Some(url) => spec.crl_url(&url),
        None => spec,
    };
    let mfr = manufacturer_ca(
        &root,
        with_crl_url(
            CertSpec::new().org(&opts.manufacturer).cn(&format!(
                "{} Cable Modem Root Certificate Authority",
                opts.manufacturer
            )),
            "mta-root.crl",
        ),
    )?;
    put_ca(&root, &device_trust_dir, &keys_dir, "mta-root")?;
    put_ca(&mfr, &device_trust_dir, &keys_dir, "manufacturer-ca")?;
    let publish = opts.crl_url_base.as_ref().map(|_| out.join("crl-publish"));
    if let Some(dir) = &publish {
        mkdir(dir)?;
    }
    for (ca, stem) in [(&root, "mta-root"), (&mfr, "manufacturer-ca")] {
        let crl = dev_crl(ca)?;
        write(
            &device_trust_dir.join(format!("{stem}.crl.pem")),
            &crl.to_pem()?,
        )?;
        if let Some(dir) = &publish {
            write(&dir.join(format!("{stem}.crl")), &crl.to_der()?)?;
        }
    }

    let mut devices = Vec::with_capacity(opts.macs.len());
    for mac in &opts.macs {
        let dir = out.join("devices").join(hex_upper(mac));
        mkdir(&dir)?;
        let dev = device_cert(
            &mfr,
            *mac,
            with_crl_url(
                CertSpec::new()
                    .org(&opts.manufacturer)
                    .ou("Dev Lab")
                    .bits(opts.device_bits),
                "manufacturer-ca.crl",
            ),
        )?;
        write(&dir.join("cert.pem"), &dev.cert_pem()?)?;
        super::write_secret(&dir.join("key.pem"), &dev.key_pem()?)?;
        write(&dir.join("chain.pem"), &chain_pem(&[&dev.cert, &mfr.cert])?)?;
        devices.push(dir);
    }

    // Service-provider side.
    let sp_root_ca = sp_root(CertSpec::new().org(&opts.org).cn("Service Provider Root"))?;
    let spca = sp_ca(
        &sp_root_ca,
        CertSpec::new().org(&opts.org).cn("Service Provider CA"),
    )?;
    let lsca = local_system_ca(&spca, CertSpec::new().org(&opts.org).cn("Local System CA"))?;
    put_ca(&sp_root_ca, &sp_trust_dir, &keys_dir, "sp-root")?;
    put_ca(&spca, &sp_dir, &keys_dir, "sp-ca")?;
    put_ca(&lsca, &sp_dir, &keys_dir, "local-system-ca")?;

    let kdc = kdc_cert(
        &lsca,
        &opts.realm,
        &opts.org,
        &opts.kdc_dns_name,
        CertSpec::new().years(5),
    )?;
    let (kdc_cert_path, kdc_key) = kdc.write_pem(&sp_dir, "kdc")?;
    let kdc_chain = sp_dir.join("kdc-chain.pem");
    write(
        &kdc_chain,
        &chain_pem(&[&kdc.cert, &lsca.cert, &spca.cert])?,
    )?;

    let localhost = [
        std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    let tls = tls_server_cert(
        &lsca,
        &[opts.kdc_dns_name.as_str(), "localhost"],
        &localhost,
        CertSpec::new().org(&opts.org).years(5),
    )?;
    let (tls_cert, tls_key) = tls.write_pem(&sp_dir, "tls")?;
    let tls_chain = sp_dir.join("tls-chain.pem");
    write(
        &tls_chain,
        &chain_pem(&[&tls.cert, &lsca.cert, &spca.cert])?,
    )?;

    Ok(DevPki {
        root: out.to_owned(),
        device_trust_dir,
        sp_trust_dir,
        kdc_cert: kdc_cert_path,
        kdc_key,
        kdc_chain,
        tls_cert,
        tls_key,
        tls_chain,
        devices,
        crl_publish_dir: publish,
    })
}

fn put_ca(ca: &Issued, cert_dir: &Path, key_dir: &Path, stem: &str) -> Result<(), PkiError> {
    write(&cert_dir.join(format!("{stem}.pem")), &ca.cert_pem()?)?;
    super::write_secret(&key_dir.join(format!("{stem}.key")), &ca.key_pem()?)
}

/// An empty CRL with its next update a year away: a dev realm keeps
/// working under `crl_policy = "require"` (and `pktc-kdc check` warns only
/// in its last month) without reissuing CRLs.
fn dev_crl(ca: &Issued) -> Result<openssl::x509::X509Crl, PkiError> {
    let spec = CrlSpec {
        next_update: crate::time::now() + 365 * super::DAY,
        ..CrlSpec::current()
    };
    crl(ca, &[], spec)
}

fn chain_pem(certs: &[&X509Ref]) -> Result<Vec<u8>, PkiError> {
    let mut out = Vec::new();
    for c in certs {
        out.extend_from_slice(&c.to_pem()?);
    }
    Ok(out)
}

fn hex_upper(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02X}")).collect()
}
