//! Generated certificates: profile checks with x509-parser and rasn, and
//! acceptance by the real `openssl` command-line tool.

use std::path::{Path, PathBuf};
use std::process::Command;

use certs::pki::{Krb5PrincipalName, NT_SRV_INST};
use certs::{
    CertSpec, CrlSpec, Issued, device_cert, device_mac, format_mac, kdc_cert, local_system_ca,
    manufacturer_ca, mta_root, sp_ca, sp_root,
};
use x509_parser::asn1_rs::{Any, FromDer};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{
    OID_PKCS1_SHA1WITHRSA, OID_PKCS1_SHA256WITHRSA, OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
    OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
    OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
};
use x509_parser::public_key::PublicKey;

const MAC: [u8; 6] = [0x00, 0x11, 0x22, 0xAA, 0xBB, 0xCC];

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("certs-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn device_side(bits: u32) -> (Issued, Issued, Issued) {
    let root = mta_root(CertSpec::new()).unwrap();
    let mfr = manufacturer_ca(&root, CertSpec::new().org("Acme")).unwrap();
    let dev = device_cert(
        &mfr,
        MAC,
        CertSpec::new().org("Acme").ou("Plant 7").bits(bits),
    )
    .unwrap();
    (root, mfr, dev)
}

#[test]
fn device_cert_profile() {
    for bits in [1024, 2048] {
        let (_, mfr, dev) = device_side(bits);
        let der = dev.cert.to_der().unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn = c
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, "00:11:22:AA:BB:CC");
        assert_eq!(device_mac(&dev.cert).unwrap(), MAC);
        assert_eq!(format_mac(MAC), cn);
        let o = c
            .subject()
            .iter_organization()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(o, "Acme");
        assert_eq!(
            c.subject().iter_country().next().unwrap().as_str().unwrap(),
            "US"
        );
        let ku = c.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(ku.value.digital_signature() && ku.value.key_encipherment());
        assert!(!ku.value.key_cert_sign());
        let bc = c.basic_constraints().unwrap().unwrap();
        assert!(!bc.value.ca);
        assert!(
            c.get_extension_unique(&OID_X509_EXT_SUBJECT_ALT_NAME)
                .unwrap()
                .is_none()
        );
        assert!(
            c.get_extension_unique(&OID_X509_EXT_EXTENDED_KEY_USAGE)
                .unwrap()
                .is_none()
        );
        assert!(
            c.get_extension_unique(&OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
                .unwrap()
                .is_some()
        );
        assert!(
            c.get_extension_unique(&OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
                .unwrap()
                .is_some()
        );
        match c.public_key().parsed().unwrap() {
            PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), bits as usize),
            other => panic!("not RSA: {other:?}"),
        }
        assert_eq!(c.signature_algorithm.algorithm, OID_PKCS1_SHA256WITHRSA);
        assert!(dev.cert.verify(&mfr.key).unwrap());
    }
}

#[test]
fn sha1_option_signs_with_sha1() {
    let root = mta_root(CertSpec::new().bits(1024)).unwrap();
    let dev = device_cert(&root, MAC, CertSpec::new().bits(1024).sha1()).unwrap();
    let der = dev.cert.to_der().unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(c.signature_algorithm.algorithm, OID_PKCS1_SHA1WITHRSA);
    assert_eq!(c.tbs_certificate.signature.algorithm, OID_PKCS1_SHA1WITHRSA);
}

#[test]
fn ca_profile() {
    let (root, mfr, _) = device_side(1024);
    for (ca, pathlen) in [(&root, 1), (&mfr, 0)] {
        let der = ca.cert.to_der().unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        let bc = c.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(pathlen));
        let ku = c.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
    }
}

fn kdc_side() -> (Issued, Issued, Issued, Issued) {
    let root = sp_root(CertSpec::new()).unwrap();
    let spca = sp_ca(&root, CertSpec::new()).unwrap();
    let lsca = local_system_ca(&spca, CertSpec::new()).unwrap();
    let kdc = kdc_cert(
        &lsca,
        "PCREALM.EXAMPLE",
        "Example Cable Co",
        "kdc.pcrealm.example",
        CertSpec::new(),
    )
    .unwrap();
    (root, spca, lsca, kdc)
}

#[test]
fn kdc_cert_profile() {
    let (_, _, _, kdc) = kdc_side();
    let der = kdc.cert.to_der().unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    let o = c
        .subject()
        .iter_organization()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(o, "Example Cable Co");
    let cn = c
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(cn, "kdc.pcrealm.example");

    let san = c.subject_alternative_name().unwrap().unwrap();
    let mut principal = None;
    let mut dns = None;
    for gn in &san.value.general_names {
        match gn {
            GeneralName::OtherName(oid, raw) => {
                assert_eq!(oid.to_id_string(), "1.3.6.1.5.2.2");
                // `raw` is the [0] EXPLICIT wrapper around the value.
                let (_, any) = Any::from_der(raw).unwrap();
                principal = Some(rasn::der::decode::<Krb5PrincipalName>(any.data).unwrap());
            }
            GeneralName::DNSName(d) => dns = Some(d.to_string()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    let p = principal.expect("no otherName");
    assert_eq!(p.realm.as_bytes(), b"PCREALM.EXAMPLE");
    assert_eq!(p.principal_name.name_type, NT_SRV_INST);
    let parts: Vec<&[u8]> = p
        .principal_name
        .name_string
        .iter()
        .map(|s| s.as_bytes())
        .collect();
    assert_eq!(parts, [&b"krbtgt"[..], b"PCREALM.EXAMPLE"]);
    assert_eq!(dns.as_deref(), Some("kdc.pcrealm.example"));

    let eku = c.extended_key_usage().unwrap().unwrap();
    assert!(
        eku.value
            .other
            .iter()
            .any(|o| o.to_id_string() == "1.3.6.1.5.2.3.5")
    );
    assert!(eku.value.server_auth);
    let ku = c.key_usage().unwrap().unwrap();
    assert!(ku.value.digital_signature() && ku.value.key_encipherment());
}

// ---------------------------------------------------------------------------
// The real OpenSSL command-line tool as a peer

fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
    let out = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run the openssl binary ({e}): apt-get install openssl"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn put(dir: &Path, name: &str, pem: &[u8]) {
    std::fs::write(dir.join(name), pem).unwrap();
}

#[test]
fn openssl_cli_verifies_device_chain_and_crl() {
    let dir = tmpdir("cli-verify");
    let (root, mfr, dev) = device_side(1024);
    let revoked = device_cert(&mfr, [0, 0x11, 0x22, 0, 0, 1], CertSpec::new().bits(1024)).unwrap();
    put(&dir, "root.pem", &root.cert_pem().unwrap());
    put(&dir, "mfr.pem", &mfr.cert_pem().unwrap());
    put(&dir, "dev.pem", &dev.cert_pem().unwrap());
    put(&dir, "revoked.pem", &revoked.cert_pem().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mfr_crl = certs::crl(&mfr, &[(&revoked.cert, now - 60)], CrlSpec::current()).unwrap();
    let root_crl = certs::crl(&root, &[], CrlSpec::current()).unwrap();
    let mut crls = mfr_crl.to_pem().unwrap();
    crls.extend(root_crl.to_pem().unwrap());
    put(&dir, "crls.pem", &crls);

    let base = ["verify", "-CAfile", "root.pem", "-untrusted", "mfr.pem"];
    let (ok, text) = openssl(&[&base[..], &["dev.pem"]].concat(), &dir);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[&base[..], &["revoked.pem"]].concat(), &dir);
    assert!(ok, "without CRL checking the revoked cert verifies: {text}");

    // -crl_check: the leaf's issuer (manufacturer CA) CRL only.
    put(&dir, "mfr-crl.pem", &mfr_crl.to_pem().unwrap());
    let leaf_crl = ["-crl_check", "-CRLfile", "mfr-crl.pem"];
    let (ok, text) = openssl(&[&base[..], &leaf_crl[..], &["dev.pem"]].concat(), &dir);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[&base[..], &leaf_crl[..], &["revoked.pem"]].concat(), &dir);
    assert!(!ok && text.contains("certificate revoked"), "{text}");

    // -crl_check_all: every CA in the chain needs its CRL.
    let crl_args = ["-crl_check_all", "-CRLfile", "crls.pem"];
    let (ok, text) = openssl(&[&base[..], &crl_args[..], &["dev.pem"]].concat(), &dir);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[&base[..], &crl_args[..], &["revoked.pem"]].concat(), &dir);
    assert!(!ok && text.contains("certificate revoked"), "{text}");

    let (ok, text) = openssl(&["crl", "-in", "crls.pem", "-noout", "-text"], &dir);
    assert!(
        ok && text.contains("X509v3 Authority Key Identifier"),
        "{text}"
    );
    assert!(text.contains("X509v3 CRL Number"), "{text}");
}

#[test]
fn openssl_cli_shows_kdc_other_name() {
    let dir = tmpdir("cli-kdc");
    let (root, spca, lsca, kdc) = kdc_side();
    put(&dir, "root.pem", &root.cert_pem().unwrap());
    let mut chain = lsca.cert_pem().unwrap();
    chain.extend(spca.cert_pem().unwrap());
    put(&dir, "chain.pem", &chain);
    put(&dir, "kdc.pem", &kdc.cert_pem().unwrap());
    let (ok, text) = openssl(&["x509", "-in", "kdc.pem", "-noout", "-text"], &dir);
    assert!(ok, "{text}");
    // OpenSSL 3.0 prints unknown otherName types as "othername: 1.3.6.1.5.2.2::<unsupported>";
    // newer releases name it. Accept either, but it must be there.
    let line = text
        .lines()
        .find(|l| l.contains("othername") || l.contains("otherName"))
        .unwrap_or_else(|| panic!("no otherName in:\n{text}"));
    assert!(
        line.contains("1.3.6.1.5.2.2") || line.contains("KRB5PrincipalName"),
        "{line}"
    );
    assert!(text.contains("DNS:kdc.pcrealm.example"), "{text}");
    assert!(
        text.contains("1.3.6.1.5.2.3.5") || text.contains("KDC"),
        "{text}"
    );
    let (ok, text) = openssl(
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "kdc.pem",
        ],
        &dir,
    );
    assert!(ok, "{text}");
}

#[test]
fn dev_pki_layout() {
    let dir = tmpdir("devpki");
    let mut opts = certs::DevPkiOptions::new("PCREALM.EXAMPLE", "Example Cable Co", &[MAC]);
    opts.device_bits = 1024;
    let pki = certs::dev_pki(&opts, &dir).unwrap();
    for f in [
        "trust/device/mta-root.pem",
        "trust/device/manufacturer-ca.pem",
        "trust/device/mta-root.crl.pem",
        "trust/device/manufacturer-ca.crl.pem",
        "trust/sp/sp-root.pem",
        "sp/kdc.pem",
        "sp/kdc.key",
        "sp/kdc-chain.pem",
        "sp/tls.pem",
        "sp/tls.key",
        "ca-keys/mta-root.key",
        "devices/001122AABBCC/cert.pem",
        "devices/001122AABBCC/key.pem",
        "devices/001122AABBCC/chain.pem",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(pki.devices, [dir.join("devices/001122AABBCC")]);
    let trust = pki.device_trust_dir.to_str().unwrap().to_owned();
    let (ok, text) = openssl(
        &[
            "verify",
            "-CApath",
            &trust,
            "-CAfile",
            "trust/device/mta-root.pem",
            "-untrusted",
            "devices/001122AABBCC/chain.pem",
            "devices/001122AABBCC/cert.pem",
        ],
        &dir,
    );
    assert!(ok, "{text}");
    let (ok, text) = openssl(
        &[
            "verify",
            "-CAfile",
            "trust/sp/sp-root.pem",
            "-untrusted",
            "sp/kdc-chain.pem",
            "sp/kdc.pem",
        ],
        &dir,
    );
    assert!(ok, "{text}");
}
