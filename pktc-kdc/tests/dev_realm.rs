//! `pktc-kdc dev --init-only` as a separate process: the dev PKI, the
//! manifest's devices, the `[pkinit]` config section, the PKINIT lines of
//! the krb5.conf files; the realm still serves password kinit; realms made
//! before the dev PKI keep working.

use std::path::{Path, PathBuf};
use std::process::Command;

use certs::{CrlPolicy, TrustStore};
use openssl::x509::X509;
use pktc_kdc::config::Config;
use pktc_kdc::dev::Manifest;
use testkit::{DevKdc, TempDir, mit_env, require_tool, run};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");

fn init_realm(dir: &Path) {
    testkit::init_dev_realm(Path::new(KDC), dir);
}

fn pems(path: &Path) -> Vec<X509> {
    X509::stack_from_pem(&std::fs::read(path).unwrap()).unwrap()
}

/// The paths after `key = FILE:` in a krb5.conf.
fn file_values(conf: &str, key: &str) -> Vec<PathBuf> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .filter_map(|rest| rest.trim().strip_prefix("= FILE:"))
        .map(PathBuf::from)
        .collect()
}

#[test]
fn dev_realm_has_a_pki_devices_and_pkinit_config() {
    let tmp = TempDir::new("dev-realm-pki");
    let dir = tmp.path("realm");
    init_realm(&dir);
    assert!(dir.join("pki").is_dir());

    let m = Manifest::load(&dir).unwrap();
    assert_eq!(m.devices.len(), 3);
    let device_root = dir.join(m.device_root.as_deref().expect("device_root"));
    let sp_root = dir.join(m.sp_root.as_deref().expect("sp_root"));
    assert!(device_root.is_file() && sp_root.is_file());
    assert!(dir.join(m.kdc_cert.as_deref().expect("kdc_cert")).is_file());
    for (i, d) in m.devices.iter().enumerate() {
        let hex = format!("00109500000{}", i + 1);
        assert_eq!(d.mac, format!("00:10:95:00:00:0{}", i + 1));
        assert_eq!(d.fqdn, format!("mta-{hex}.pktc.test"));
        assert_eq!(d.principal, format!("mta/mta-{hex}.pktc.test@PKTC.TEST"));
        for f in [&d.cert, &d.key, &d.chain] {
            assert!(dir.join(f).is_file(), "{f} missing");
        }
        let cert = &pems(&dir.join(&d.cert))[0];
        assert_eq!(certs::format_mac(certs::device_mac(cert).unwrap()), d.mac);
        assert_eq!(cert.public_key().unwrap().bits(), d.key_bits);
    }
    let bits: Vec<u32> = m.devices.iter().map(|d| d.key_bits).collect();
    assert_eq!(bits, [2048, 2048, 1024]);

    // krb5.conf files: two anchors (SP root, device root) and the pool, absolute.
    let conf_keys = [
        m.krb5_conf.clone(),
        m.krb5_conf_tcp.clone(),
        m.krb5_conf_udp.clone().expect("krb5_conf_udp"),
    ];
    for conf in &conf_keys {
        let text = std::fs::read_to_string(dir.join(conf)).unwrap();
        let anchors = file_values(&text, "pkinit_anchors");
        let pool = file_values(&text, "pkinit_pool");
        assert_eq!(anchors.len(), 2, "{conf}:\n{text}");
        assert_eq!(pool.len(), 1, "{conf}:\n{text}");
        for p in anchors.iter().chain(&pool) {
            assert!(p.is_absolute() && p.is_file(), "{conf}: {}", p.display());
        }
        assert_eq!(anchors[0], sp_root.canonicalize().unwrap());
        assert_eq!(anchors[1], device_root.canonicalize().unwrap());
        assert_eq!(
            pool[0],
            dir.join(&m.devices[0].chain).canonicalize().unwrap()
        );
    }
    let udp = std::fs::read_to_string(dir.join(&conf_keys[2])).unwrap();
    assert!(udp.contains("udp_preference_limit = 65535"), "{udp}");

    // config.toml: the [pkinit] section with the device table.
    let cfg = Config::load(&dir.join(&m.config)).unwrap();
    let p = cfg.pkinit.expect("[pkinit]");
    assert_eq!(p.crl_policy, pktc_kdc::config::CrlPolicySetting::Require);
    assert!(p.kdc_cert.is_file() && p.kdc_key.is_file());
    let kdc_chain = p.kdc_chain.expect("kdc_chain");
    // Intermediates only (Local System CA, SP CA): not the KDC cert, not the root.
    let chain = pems(&kdc_chain);
    assert_eq!(chain.len(), 2);
    let kdc_cert = &pems(&p.kdc_cert)[0];
    assert_eq!(
        chain[0].subject_name().to_der().unwrap(),
        kdc_cert.issuer_name().to_der().unwrap()
    );
    let table: Vec<(String, String)> = p
        .devices
        .iter()
        .map(|d| (d.mac.clone(), d.fqdn.clone()))
        .collect();
    let expected: Vec<(String, String)> = m
        .devices
        .iter()
        .map(|d| (d.mac.clone(), d.fqdn.clone()))
        .collect();
    assert_eq!(table, expected);

    // Every device verifies against the KDC's device trust dir, CRLs required,
    // with the chain the manifest says a client sends, and with the leaf alone.
    let store = TrustStore::load_dir(&p.device_trust_dir, CrlPolicy::Require).unwrap();
    for d in &m.devices {
        let leaf = pems(&dir.join(&d.cert)).remove(0);
        let sent = pems(&dir.join(&d.chain));
        let v = store.verify_now(&leaf, &sent).unwrap();
        assert_eq!(v.chain.len(), 3);
        store.verify_now(&leaf, &[]).unwrap();
    }
    // The KDC certificate verifies against the SP root with the intermediates.
    let sp = TrustStore::load_dir(sp_root.parent().unwrap(), CrlPolicy::Off).unwrap();
    sp.verify_now(kdc_cert, &chain).unwrap();

    // A second run reuses the realm: nothing regenerated.
    let before = std::fs::read(dir.join(&m.devices[0].cert)).unwrap();
    init_realm(&dir);
    assert_eq!(std::fs::read(dir.join(&m.devices[0].cert)).unwrap(), before);
}

#[test]
fn realm_from_before_the_pki_keeps_working() {
    let tmp = TempDir::new("dev-realm-old");
    let dir = tmp.path("realm");
    init_realm(&dir);
    // Make it look like an older realm: no pki/, no [pkinit], no new manifest keys.
    std::fs::remove_dir_all(dir.join("pki")).unwrap();
    let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let cut = cfg.find("[pkinit]").expect("[pkinit] in config.toml");
    std::fs::write(dir.join("config.toml"), &cfg[..cut]).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("dev-realm.json")).unwrap())
            .unwrap();
    for k in [
        "devices",
        "device_root",
        "sp_root",
        "kdc_cert",
        "krb5_conf_udp",
    ] {
        m.as_object_mut().unwrap().remove(k).expect(k);
    }
    std::fs::write(dir.join("dev-realm.json"), m.to_string()).unwrap();

    init_realm(&dir);
    assert!(
        !dir.join("pki").exists(),
        "an existing realm was regenerated"
    );
    let m = Manifest::load(&dir).unwrap();
    assert!(m.devices.is_empty() && m.device_root.is_none());
    assert!(
        Config::load(&dir.join("config.toml"))
            .unwrap()
            .pkinit
            .is_none()
    );
    let banner = pktc_kdc::dev::banner(&dir).unwrap();
    assert!(banner.contains("kinit demo@PKTC.TEST"), "{banner}");
    assert!(!banner.contains("X509_user_identity"), "{banner}");
}

/// The KDC starts with the `[pkinit]` section and password kinit works,
/// also through krb5-udp.conf.
#[test]
fn dev_realm_with_pkinit_section_serves_password_kinit() {
    let kinit = require_tool("kinit", "krb5-user");
    let kdc = DevKdc::start(Path::new(KDC));
    let banner = pktc_kdc::dev::banner(&kdc.realm_path("")).unwrap();
    assert!(banner.contains("X509_user_identity=FILE:"), "{banner}");
    let (name, password) = kdc.password();
    for conf in ["krb5_conf", "krb5_conf_udp"] {
        let cc = kdc.dir.path(&format!("{conf}.cc"));
        let mut cmd = Command::new(&kinit);
        mit_env(&mut cmd, &kdc.realm_path(&kdc.get(conf)));
        cmd.env("KRB5CCNAME", format!("FILE:{}", cc.display()));
        let (ok, text) = run(cmd.arg(&name), &format!("{password}\n"));
        assert!(ok, "kinit with {conf}: {text}\nKDC log:\n{}", kdc.log());
        assert!(cc.is_file());
    }
    assert!(kdc.wait_audit(|l| l.contains("transport=\"udp\"")));
}

/// A realm port taken by someone else between `dev --init-only` and
/// `serve` (here the certificate-bootstrapping one) is moved by the test
/// harness in every realm file, and the realm starts.
#[test]
fn a_port_taken_since_the_realm_was_made_is_moved() {
    let old = std::sync::Mutex::new(0u16);
    let kdc = DevKdc::start_prepared(Path::new(KDC), |dir, _| {
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("dev-realm.json")).unwrap())
                .unwrap();
        let url = manifest["certboot_url"].as_str().unwrap();
        let port: u16 = url
            .rsplit_once(':')
            .unwrap()
            .1
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // Held for the rest of the test process.
        std::mem::forget(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
        *old.lock().unwrap() = port;
    });
    let old = old.into_inner().unwrap();
    let url = kdc.get("certboot_url");
    assert!(!url.contains(&format!(":{old}/")), "{url}");
    assert!(kdc.log().contains("certboot serving"), "{}", kdc.log());
}
