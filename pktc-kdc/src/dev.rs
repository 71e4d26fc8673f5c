//! `pktc-kdc dev`: the embedded default. Creates a complete dev realm in a
//! directory on first run (config, keytab, both PKIs with a few devices,
//! krb5.conf files for stock MIT clients with password or PKINIT, and a JSON
//! manifest that tests and tools read instead of guessing).

pub mod certboot;
pub mod mps_responder;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use krb::crypto::EncType;
use krb::keytab::Keytab;
use krb::principal::Principal;

use crate::cli::certs::{self as certs_cli, DeviceRequest};
use crate::cli::keytab::{KeySource, add_keys};
use crate::config::{Cache, Config, DeviceEntry, Listen, Log, Pkinit, Policy, Tickets};

pub const REALM: &str = "PKTC.TEST";
pub const DOMAIN: &str = "pktc.test";
pub const DEFAULT_PORT: u16 = 8888;
/// Realm organization name: O= of the KDC certificate.
pub const ORG: &str = "PKTC Dev Realm";
/// Dev devices: MACs 00:10:95:00:00:01.. with these RSA sizes (the last one
/// is an old-MTA 1024-bit key).
pub const DEVICE_BITS: [u32; 3] = [2048, 2048, 1024];

pub use dev_realm_manifest::{Device, Manifest, PasswordPrincipal};

fn ipv6_loopback_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// The kernel's ephemeral port range (client sockets take ports from it).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// A port free for both UDP and TCP on every loopback address we use,
/// chosen at random below the ephemeral range: the realm binds it only
/// later, and a client connection could otherwise take it meanwhile.
fn free_port(v6: bool) -> anyhow::Result<u16> {
    let (low, _) = ephemeral_range();
    let (from, to) = if low > 12_000 {
        (10_000u16, low - 1)
    } else {
        (40_000, 50_000)
    };
    for _ in 0..200 {
        let r = krb::crypto::Key::random(EncType::Aes128CtsHmacSha196);
        let n = u16::from_be_bytes([r.bytes()[0], r.bytes()[1]]);
        let port = from + n % (to - from);
        let ok = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && (!v6
                || (TcpListener::bind(("::1", port)).is_ok()
                    && UdpSocket::bind(("::1", port)).is_ok()));
        if ok {
            return Ok(port);
        }
    }
    bail!("no free loopback port found")
}

fn random_password() -> String {
    let k = krb::crypto::Key::random(EncType::Aes128CtsHmacSha196);
    hex::encode(&k.bytes()[..9])
}

/// Creates the dev realm in `dir` unless it exists; returns the config path.
/// `port` 0 picks a free port.
pub fn init(dir: &Path, port: u16) -> anyhow::Result<(PathBuf, bool)> {
    let config_path = dir.join("config.toml");
    if config_path.exists() {
        return Ok((config_path, false));
    }
    krb::atomic_file::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let v6 = ipv6_loopback_available();
    let port = if port == 0 { free_port(v6)? } else { port };
    let v4: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut addrs = vec![v4];
    if v6 {
        addrs.push(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
    }

    let etypes: Vec<EncType> = EncType::ALL.to_vec();
    let mut kt = Keytab::new();
    let krbtgt = Principal::krbtgt(REALM);
    add_keys(&mut kt, &krbtgt, &etypes, Some(1), &KeySource::Random)?;
    let mps = Principal::service_host("mtaprovsrvr", &format!("mps.{DOMAIN}"), REALM);
    add_keys(&mut kt, &mps, &etypes, Some(1), &KeySource::Random)?;
    let cms = Principal::service_host("cms", &format!("cms.{DOMAIN}"), REALM);
    add_keys(&mut kt, &cms, &etypes, Some(1), &KeySource::Random)?;
    let demo = Principal::parse(&format!("demo@{REALM}"), None)?;
    let password = random_password();
    add_keys(
        &mut kt,
        &demo,
        &etypes,
        Some(1),
        &KeySource::Password(&password),
    )?;
    kt.write_file(&dir.join("kdc.keytab"))
        .context("writing dev keytab")?;

    let pki = make_pki(dir)?;
    let mps_port = free_port(v6)?;
    let mut mps_addrs = vec![SocketAddr::from(([127, 0, 0, 1], mps_port))];
    if v6 {
        mps_addrs.push(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, mps_port)));
    }
    write_mps_responder(dir, &kt, &mps, &mps_addrs, &pki.devices)?;
    write_cache_secret(&dir.join(MPS_CACHE_SECRET))?;
    crate::dev::certboot::write_credentials(dir, &pki.devices)?;
    let loopback = |port: u16| {
        let mut a = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        if v6 {
            a.push(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
        }
        a
    };
    let (certboot_port, modern_port) = (free_port(v6)?, free_port(v6)?);
    let metrics_port = free_port(false)?;
    let certboot = crate::dev::certboot::config(&loopback(certboot_port), &loopback(modern_port))?;
    let certboot_url = |port: u16| format!("https://127.0.0.1:{port}{}", certboot.path);

    let cfg = Config {
        realm: REALM.to_string(),
        keytab: "kdc.keytab".into(),
        listen: Listen {
            udp: addrs.clone(),
            tcp: addrs.clone(),
            ..Listen::default()
        },
        tickets: Tickets::default(),
        policy: Policy::default(),
        cache: Cache::default(),
        // Audit lines in the terminal, readable (the product default is
        // JSON lines on stdout).
        log: Log {
            audit: "stderr".into(),
            audit_format: crate::config::LogFormat::Human,
            ..Log::default()
        },
        pkinit: Some(pki.config.clone()),
        mps: Some(dev_mps(&mps_addrs)?),
        certboot: Some(certboot.clone()),
        reload: Default::default(),
        crl_fetch: None,
        metrics: crate::config::MetricsConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], metrics_port))],
        },
        // Every simulated device of the dev realm shares 127.0.0.1.
        rate_limit: crate::config::RateLimit {
            per_source_rate: 0.0,
            ..Default::default()
        },
        admin: crate::config::Admin {
            pid_file: Some("pktc-kdc.pid".into()),
        },
        redis: Default::default(),
        overload: Default::default(),
    };
    let toml = toml::to_string_pretty(&cfg).context("serialising dev config")?;
    write_public(
        &config_path,
        format!(
            "# pktc-kdc dev realm, generated by `pktc-kdc dev`. See docs/configuration.md.\n{toml}"
        ),
    )?;

    let kdc_line = addrs
        .iter()
        .map(|a| format!("        kdc = {a}\n"))
        .collect::<String>();
    // MIT resolves FILE: relative to its working directory: absolute paths.
    let abs = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let pkinit_lines = format!(
        "        pkinit_anchors = FILE:{sp}\n        pkinit_anchors = FILE:{dev}\n        \
         pkinit_pool = FILE:{pool}\n",
        sp = abs.join(SP_ROOT).display(),
        dev = abs.join(DEVICE_ROOT).display(),
        pool = abs.join(MANUFACTURER_CA).display(),
    );
    let krb5 = |extra: &str| {
        format!(
            "# MIT krb5.conf for the pktc-kdc dev realm: KRB5_CONFIG=<this file> kinit ...\n\
             [libdefaults]\n    default_realm = {REALM}\n    dns_lookup_kdc = false\n    \
             dns_lookup_realm = false\n    rdns = false\n    noaddresses = true\n{extra}\
             \n[realms]\n    {REALM} = {{\n{kdc_line}{pkinit_lines}    }}\n\n[domain_realm]\n    \
             .{DOMAIN} = {REALM}\n    {DOMAIN} = {REALM}\n"
        )
    };
    write_public(dir.join("krb5.conf"), krb5(""))?;
    write_public(
        dir.join("krb5-tcp.conf"),
        krb5("    udp_preference_limit = 1\n"),
    )?;
    write_public(
        dir.join("krb5-udp.conf"),
        krb5("    udp_preference_limit = 65535\n"),
    )?;

    let manifest = Manifest {
        realm: REALM.to_string(),
        kdc: v4.to_string(),
        kdc_ipv6: v6.then(|| addrs[1].to_string()),
        config: "config.toml".into(),
        keytab: "kdc.keytab".into(),
        krb5_conf: "krb5.conf".into(),
        krb5_conf_tcp: "krb5-tcp.conf".into(),
        krb5_conf_udp: Some("krb5-udp.conf".into()),
        password_principal: PasswordPrincipal {
            name: demo.to_string(),
            password,
        },
        service_principal: mps.to_string(),
        other_service_principals: vec![cms.to_string()],
        devices: pki.devices,
        device_root: Some(DEVICE_ROOT.into()),
        sp_root: Some(SP_ROOT.into()),
        kdc_cert: Some(KDC_CERT.into()),
        mps: Some(mps_addrs[0].to_string()),
        mps_table: Some(MPS_TABLE.into()),
        mps_config: Some(MPS_CONFIG.into()),
        certboot_url: Some(certboot_url(certboot_port)),
        certboot_modern_url: Some(certboot_url(modern_port)),
        certboot_ca: Some(SP_ROOT.into()),
        certboot_credentials: Some(crate::dev::certboot::CREDENTIALS.into()),
        metrics_url: Some(format!("http://127.0.0.1:{metrics_port}/metrics")),
    };
    // It holds the demo password: owner-only from the first byte.
    write_private(
        dir.join("dev-realm.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    Ok((config_path, true))
}

/// A realm file others may read but never change (0644 whatever the
/// umask: the realm's config and trust decide who gets tickets).
fn write_public(path: impl AsRef<Path>, data: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let path = path.as_ref();
    krb::atomic_file::write_public(path, data.as_ref())
        .with_context(|| format!("writing {}", path.display()))
}

/// A realm file holding a secret: owner-only (0600) from its first byte.
fn write_private(path: impl AsRef<Path>, data: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let path = path.as_ref();
    krb::atomic_file::write_private(path, data.as_ref())
        .with_context(|| format!("writing {}", path.display()))
}

// Files of the dev PKI, relative to the realm directory (layout of
// `certs::dev_pki`, written to DIR/pki).
const PKI_DIR: &str = "pki";
const DEVICE_ROOT: &str = "pki/trust/device/mta-root.pem";
const MANUFACTURER_CA: &str = "pki/trust/device/manufacturer-ca.pem";
const MANUFACTURER_CA_KEY: &str = "pki/ca-keys/manufacturer-ca.key";
const DEVICE_TRUST_DIR: &str = "pki/trust/device";
const SP_ROOT: &str = "pki/trust/sp/sp-root.pem";
const KDC_CERT: &str = "pki/sp/kdc.pem";
const KDC_KEY: &str = "pki/sp/kdc.key";
/// Written here: Local System CA + SP CA, the intermediates the KDC sends
/// (`dev_pki`'s kdc-chain.pem also holds the KDC certificate itself).
const KDC_INTERMEDIATES: &str = "pki/sp/kdc-intermediates.pem";

pub const MPS_CONFIG: &str = "mps-responder.toml";
pub const MPS_TABLE: &str = "mps-table.toml";
/// `mps.redis_secret_file` of the dev realm (used once `mps.redis` is set).
pub const MPS_CACHE_SECRET: &str = "mps-cache.secret";

/// 32 random bytes as hex, readable by the owner only from the first byte
/// (a new file, then renamed into place).
fn write_cache_secret(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    openssl::rand::rand_bytes(&mut bytes[..]).context("random secret")?;
    let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(&bytes[..])));
    let tmp = path.with_extension("secret.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `[mps]` for the dev KDC: one provisioning server, the stand-in.
fn dev_mps(addrs: &[SocketAddr]) -> anyhow::Result<crate::config::Mps> {
    let list = addrs
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(toml::from_str(&format!(
        "default = \"mps.{DOMAIN}\"\nredis_secret_file = \"{MPS_CACHE_SECRET}\"\n\
         [[servers]]\nfqdn = \"mps.{DOMAIN}\"\naddresses = [{list}]\n"
    ))?)
}

/// The provisioning-server stand-in: its keytab (the MPS key only), its
/// device table (loopback addresses: device 1 one IPv4, answered in the
/// PacketCable 1.x form; the others IPv4 + IPv6, answered in the E-UE form)
/// and its config.
fn write_mps_responder(
    dir: &Path,
    kt: &Keytab,
    mps: &Principal,
    addrs: &[SocketAddr],
    devices: &[Device],
) -> anyhow::Result<()> {
    let mps_kt = Keytab {
        entries: kt.latest_keys(mps).into_iter().cloned().collect(),
    };
    mps_kt
        .write_file(&dir.join("mps.keytab"))
        .context("writing mps.keytab")?;
    let rows = devices
        .iter()
        .enumerate()
        .map(|(i, d)| crate::dev::mps_responder::TableRow {
            mac: d.mac.clone(),
            fqdn: d.fqdn.clone(),
            addresses: if i == 0 {
                vec!["127.0.0.1".parse().expect("literal")]
            } else {
                vec![
                    "127.0.0.1".parse().expect("literal"),
                    "::1".parse().expect("literal"),
                ]
            },
        })
        .collect();
    let table = crate::dev::mps_responder::TableFile { device: rows };
    write_public(
        dir.join(MPS_TABLE),
        format!(
            "# Devices the dev provisioning server knows (pkt-eue-7). Edit: it is re-read.\n{}",
            toml::to_string_pretty(&table)?
        ),
    )?;
    let cfg = crate::dev::mps_responder::ResponderConfig {
        listen: addrs.to_vec(),
        keytab: "mps.keytab".into(),
        table: Some(MPS_TABLE.into()),
        redis: None,
        skew_secs: 300,
        kdc_principal: None,
        check_sender_address: true,
        reply_form: Default::default(),
    };
    write_public(dir.join(MPS_CONFIG), toml::to_string_pretty(&cfg)?)?;
    Ok(())
}

/// The dev PKI as the config and the manifest see it.
struct RealmPki {
    config: Pkinit,
    devices: Vec<Device>,
}

/// `DIR/pki`: both hierarchies with CRLs, the KDC certificate and one device
/// per [`DEVICE_BITS`] entry. `dev_pki` takes one device key size, so the
/// devices of other sizes are issued here from the manufacturer CA.
fn make_pki(dir: &Path) -> anyhow::Result<RealmPki> {
    let macs = certs_cli::dev_macs(DEVICE_BITS.len() as u16);
    let first_bits = DEVICE_BITS[0];
    let same: Vec<[u8; 6]> = macs
        .iter()
        .zip(DEVICE_BITS)
        .filter(|(_, b)| *b == first_bits)
        .map(|(m, _)| *m)
        .collect();
    let mut opts = certs::DevPkiOptions::new(REALM, ORG, &same);
    opts.kdc_dns_name = format!("kdc.{DOMAIN}");
    opts.device_bits = first_bits;
    certs_cli::init(&dir.join(PKI_DIR), &opts)?;

    let mfr = certs_cli::load_ca(&dir.join(MANUFACTURER_CA), &dir.join(MANUFACTURER_CA_KEY))?;
    let mut devices = Vec::new();
    let mut table = Vec::new();
    for (mac, bits) in macs.iter().zip(DEVICE_BITS) {
        let rel = format!("{PKI_DIR}/devices/{}", certs_cli::mac_dir_name(*mac));
        if bits != first_bits {
            let mut req = DeviceRequest::new(*mac);
            req.bits = bits;
            req.org = opts.manufacturer.clone();
            certs_cli::issue_device(&mfr, &req, &dir.join(&rel))?;
        }
        let fqdn = format!("mta-{}.{DOMAIN}", hex::encode(mac));
        table.push(DeviceEntry {
            mac: certs::format_mac(*mac),
            fqdn: fqdn.clone(),
        });
        devices.push(Device {
            mac: certs::format_mac(*mac),
            principal: format!("mta/{fqdn}@{REALM}"),
            fqdn,
            cert: format!("{rel}/cert.pem"),
            key: format!("{rel}/key.pem"),
            chain: MANUFACTURER_CA.into(),
            key_bits: bits,
        });
    }

    let mut intermediates = std::fs::read(dir.join("pki/sp/local-system-ca.pem"))?;
    intermediates.extend(std::fs::read(dir.join("pki/sp/sp-ca.pem"))?);
    write_public(dir.join(KDC_INTERMEDIATES), intermediates)?;

    // Start from config.rs's defaults for everything not set here.
    let mut config: Pkinit = serde_json::from_value(serde_json::json!({
        "kdc_cert": KDC_CERT,
        "kdc_key": KDC_KEY,
        "device_trust_dir": DEVICE_TRUST_DIR,
    }))
    .context("building the [pkinit] section")?;
    config.kdc_chain = Some(KDC_INTERMEDIATES.into());
    config.crl_policy = crate::config::CrlPolicySetting::Require;
    config.realm_org_name = Some(ORG.into());
    config.devices = table;
    Ok(RealmPki { config, devices })
}

/// What to try next, printed by `pktc-kdc dev` once it serves.
pub fn banner(dir: &Path) -> anyhow::Result<String> {
    let m = Manifest::load(dir)?;
    let d = dir.display();
    Ok(format!(
        "pktc-kdc dev realm {realm} serving on {kdc} (UDP+TCP){v6}\n\
         realm directory: {d}  (manifest: {d}/dev-realm.json)\n\n\
         Try, in another shell:\n  \
         export KRB5_CONFIG={d}/{conf} KRB5CCNAME=FILE:/tmp/pktc-dev-cc\n  \
         echo '{pw}' | kinit {name}\n  \
         kvno {svc}\n  \
         klist\n  \
         klist -k {d}/{kt}\n{pkinit}{certboot}\nStop with Ctrl-C.",
        realm = m.realm,
        kdc = m.kdc,
        v6 = m.kdc_ipv6.map(|a| format!(" and {a}")).unwrap_or_default(),
        conf = m.krb5_conf,
        pw = m.password_principal.password,
        name = m.password_principal.name,
        svc = m.service_principal,
        kt = m.keytab,
        pkinit = m
            .devices
            .first()
            .map(|dev| format!(
                "\nPKINIT with a device certificate (devices: {d}/dev-realm.json):\n  \
                 kinit -X X509_user_identity=FILE:{d}/{cert},{d}/{key} {p}\n",
                cert = dev.cert,
                key = dev.key,
                p = dev.principal,
            ))
            .unwrap_or_default(),
        certboot = match (&m.certboot_url, &m.certboot_ca, m.devices.first()) {
            (Some(url), Some(ca), Some(dev)) => format!(
                "\nCertificate bootstrapping (IMS credentials over mutual TLS):\n  \
                 curl --cacert {d}/{ca} --cert {d}/{cert} --key {d}/{key} {url}\n",
                cert = dev.cert,
                key = dev.key,
            ),
            _ => String::new(),
        },
    ))
}
