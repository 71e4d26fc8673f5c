//! The dev realm's manifest, `DIR/dev-realm.json`: what `pktc-kdc dev`
//! created (ports, files, principals, devices), read by eue-sim and the
//! tests instead of guessing. A crate of its own so that readers do not
//! link the service (hyper, redis, the metrics exporter).

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// `DIR/dev-realm.json`. Paths are relative to DIR.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub realm: String,
    /// host:port of the KDC, UDP and TCP.
    pub kdc: String,
    /// The same KDC over IPv6 loopback, when the machine has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdc_ipv6: Option<String>,
    pub config: String,
    pub keytab: String,
    /// krb5.conf for MIT clients (UDP first, TCP for large messages).
    pub krb5_conf: String,
    /// krb5.conf that makes MIT clients use TCP only.
    pub krb5_conf_tcp: String,
    /// krb5.conf that makes MIT clients use UDP even for large (PKINIT) requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub krb5_conf_udp: Option<String>,
    pub password_principal: PasswordPrincipal,
    /// The provisioning server principal `mtaprovsrvr/mps.<domain>@REALM`.
    pub service_principal: String,
    /// Other keyed service principals (CMS).
    pub other_service_principals: Vec<String>,
    /// PKINIT devices (absent in realms made before the dev PKI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// MTA root CA (device-side trust anchor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_root: Option<String>,
    /// Service-provider root (what clients trust for the KDC certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_root: Option<String>,
    /// The KDC's PKINIT certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdc_cert: Option<String>,
    /// host:port (UDP) of the dev provisioning-server stand-in (pkt-eue-7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mps: Option<String>,
    /// Its device table (MAC → FQDN + addresses), re-read on change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mps_table: Option<String>,
    /// Its config, for `pktc-kdc mps-responder --config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mps_config: Option<String>,
    /// Certificate bootstrapping, PacketCable TLS profile:
    /// `https://127.0.0.1:PORT/certboot/v1/profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certboot_url: Option<String>,
    /// The same over the modern TLS profile (TLS 1.2 ECDHE-AEAD / TLS 1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certboot_modern_url: Option<String>,
    /// What a device trusts for the certboot server (the SP root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certboot_ca: Option<String>,
    /// The credentials the endpoint serves (re-read on change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certboot_credentials: Option<String>,
    /// Prometheus endpoint, `http://127.0.0.1:PORT/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
}

/// A certificate-only device of the dev realm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    /// `00:10:95:00:00:01` (the certificate CN).
    pub mac: String,
    /// `mta-001095000001.pktc.test`
    pub fqdn: String,
    /// `mta/<fqdn>@PKTC.TEST`
    pub principal: String,
    pub cert: String,
    /// PKCS#8 PEM, unencrypted.
    pub key: String,
    /// The intermediates a client sends with the certificate (the manufacturer CA).
    pub chain: String,
    /// RSA modulus size.
    pub key_bits: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordPrincipal {
    pub name: String,
    pub password: String,
}

impl Manifest {
    pub fn load(dir: &Path) -> anyhow::Result<Manifest> {
        let p = dir.join("dev-realm.json");
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    }
}
