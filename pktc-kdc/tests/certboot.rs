//! Certificate bootstrapping over real TLS peers: `openssl s_client` and
//! `curl` fetch a device's profile (validated by `xmllint --schema` against
//! docs/certboot-profile.xsd); refused handshakes (no certificate, unknown
//! manufacturer, revoked, expired, NULL suites, TLS 1.0) each fail at the
//! handshake with their own audit reason; trust and the server certificate
//! rotate without a restart; unknown devices get 404 and store failures 503.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use certs::pki::{self, CertSpec, CrlSpec, Validity};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream, SslVerifyMode, SslVersion};
use pktc_kdc::cli::certs::{DeviceRequest, issue_device, load_ca};
use testkit::{DevKdc, TempDir, require_tool, run_bounded};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
const XSD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/certboot-profile.xsd");
const PATH: &str = "/certboot/v1/profile";

fn mac(last: u8) -> [u8; 6] {
    [0x00, 0x10, 0x95, 0x00, 0x02, last]
}

/// A device of the realm or a variant: cert, key, chain (cert + issuer).
struct Dev {
    cert: PathBuf,
    key: PathBuf,
    chain: PathBuf,
}

fn realm_device(kdc: &DevKdc, index: usize) -> Dev {
    let d = &kdc.manifest["devices"][index];
    let p = |k: &str| kdc.realm_path(d[k].as_str().unwrap());
    Dev {
        cert: p("cert"),
        key: p("key"),
        chain: p("chain"),
    }
}

fn variant(kdc: &DevKdc, name: &str) -> Dev {
    let dir = kdc.realm_path("variants").join(name);
    Dev {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        chain: dir.join("chain.pem"),
    }
}

/// Variant devices, made before the KDC starts: expired, revoked (on the
/// manufacturer CRL), one from a manufacturer CA the realm does not trust,
/// and one valid device without credentials.
fn prepare(realm: &Path, cfg: &mut String) {
    let trust = realm.join("pki/trust/device");
    let mfr = load_ca(
        &trust.join("manufacturer-ca.pem"),
        &realm.join("pki/ca-keys/manufacturer-ca.key"),
    )
    .unwrap();
    let out = |name: &str| realm.join("variants").join(name);
    issue_device(
        &mfr,
        &DeviceRequest {
            validity: Validity::Expired,
            ..DeviceRequest::new(mac(1))
        },
        &out("expired"),
    )
    .unwrap();
    let revoked = issue_device(&mfr, &DeviceRequest::new(mac(2)), &out("revoked")).unwrap();
    let revoked = openssl::x509::X509::from_pem(&std::fs::read(&revoked.cert).unwrap()).unwrap();
    let crl = pki::crl(
        &mfr,
        &[(&revoked, krb::msg::time::now().0 - 60)],
        CrlSpec::current(),
    )
    .unwrap();
    std::fs::write(trust.join("manufacturer-ca.crl.pem"), crl.to_pem().unwrap()).unwrap();
    issue_device(&mfr, &DeviceRequest::new(mac(3)), &out("no-credentials")).unwrap();

    // A second manufacturer under the same MTA root, not (yet) in the trust
    // directory: its CA and CRL wait in variants/new-mfr.
    let root = load_ca(
        &trust.join("mta-root.pem"),
        &realm.join("pki/ca-keys/mta-root.key"),
    )
    .unwrap();
    let new_mfr =
        pki::manufacturer_ca(&root, CertSpec::new().org("New Mfr").cn("New Mfr CA")).unwrap();
    let dir = out("new-mfr");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), new_mfr.cert_pem().unwrap()).unwrap();
    let new_crl = pki::crl(&new_mfr, &[], CrlSpec::current()).unwrap();
    std::fs::write(dir.join("ca.crl.pem"), new_crl.to_pem().unwrap()).unwrap();
    issue_device(
        &new_mfr,
        &DeviceRequest::new(mac(4)),
        &out("new-mfr-device"),
    )
    .unwrap();
    // Give that device credentials, so only trust decides.
    let mut creds = std::fs::read_to_string(realm.join("certboot-credentials.toml")).unwrap();
    creds.push_str(&format!(
        "\n[[device]]\nmac = \"{}\"\nimpi = \"new@ims.pktc.test\"\nimpu = [\"sip:new@ims.pktc.test\"]\n\
         credential_type = \"password\"\ncredential = \"pw-new\"\n",
        certs::format_mac(mac(4))
    ));
    std::fs::write(realm.join("certboot-credentials.toml"), creds).unwrap();
    fast_watch(cfg);
}

/// Checks for changed files every 100 ms instead of every second.
fn fast_watch(cfg: &mut String) {
    let before = cfg.clone();
    *cfg = cfg.replace("watch_interval_ms = 1000", "watch_interval_ms = 100");
    assert_ne!(
        *cfg, before,
        "no [reload] watch_interval_ms in the dev config"
    );
}

fn port(kdc: &DevKdc, key: &str) -> u16 {
    let url = kdc.get(key);
    let authority = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap();
    authority.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// `openssl s_client` with `args`, sending one GET; returns (stdout, stderr).
fn s_client(kdc: &DevKdc, port: u16, args: &[&str]) -> (String, String) {
    let req = format!("GET {PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    run_bounded(
        Command::new(require_tool("openssl", "openssl"))
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-quiet",
            ])
            .arg("-CAfile")
            .arg(kdc.realm_path(&kdc.get("certboot_ca")))
            .arg("-verify_return_error")
            .args(args),
        req.as_bytes(),
        "openssl s_client",
    )
}

fn device_args(d: &Dev) -> Vec<String> {
    vec![
        "-cert".into(),
        d.cert.display().to_string(),
        "-key".into(),
        d.key.display().to_string(),
        "-cert_chain".into(),
        d.chain.display().to_string(),
    ]
}

/// The XML body of an HTTP response, validated by xmllint against our XSD.
fn validate_profile(http: &str, tmp: &TempDir) -> String {
    let body = http
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("no HTTP body in {http:?}"));
    let file = tmp.path("profile.xml");
    std::fs::write(&file, body).unwrap();
    let xmllint = require_tool("xmllint", "libxml2-utils");
    let out = Command::new(xmllint)
        .args(["--noout", "--schema", XSD])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "profile does not validate against {XSD}:\n{}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    body.to_string()
}

/// An audit line of a certboot handshake or request containing all of `parts`.
fn wait_certboot_audit(kdc: &DevKdc, parts: &[&str]) {
    let found = kdc
        .wait_audit(|l| l.contains("exchange=\"certboot\"") && parts.iter().all(|p| l.contains(p)));
    assert!(
        found,
        "no certboot audit line with {parts:?}; audit:\n{}",
        kdc.audit_lines().join("\n")
    );
}

fn count_audit(kdc: &DevKdc, parts: &[&str]) -> usize {
    kdc.audit_lines()
        .iter()
        .filter(|l| l.contains("exchange=\"certboot\"") && parts.iter().all(|p| l.contains(p)))
        .count()
}

#[test]
fn profile_over_s_client_curl_and_modern_tls() {
    let kdc = DevKdc::start_prepared(Path::new(KDC), prepare);
    let tmp = TempDir::new("certboot-ok");
    let pktc = port(&kdc, "certboot_url");
    let dev = realm_device(&kdc, 0);
    let mac0 = kdc.manifest["devices"][0]["mac"]
        .as_str()
        .unwrap()
        .to_string();

    // openssl s_client, TLS 1.2, TLS_RSA_WITH_AES_128_CBC_SHA only.
    let mut args = vec!["-tls1_2".to_string(), "-cipher".into(), "AES128-SHA".into()];
    args.extend(device_args(&dev));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, err) = s_client(&kdc, pktc, &args);
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "s_client got:\n{out}\n{err}"
    );
    let xml = validate_profile(&out, &tmp);
    assert!(
        xml.contains(&format!("<MacAddress>{mac0}</MacAddress>")),
        "{xml}"
    );
    assert!(
        xml.contains("<Identity>001095000001@ims.pktc.test</Identity>"),
        "{xml}"
    );
    wait_certboot_audit(
        &kdc,
        &[
            "step=\"handshake\"",
            "cipher=\"AES128-SHA\"",
            "tls_version=\"TLSv1.2\"",
            &format!("mac={mac0}"),
        ],
    );
    wait_certboot_audit(
        &kdc,
        &[
            "step=\"request\"",
            "status=200",
            "reason=\"profile_served\"",
        ],
    );
    // The credential never reaches the log.
    let creds = std::fs::read_to_string(kdc.realm_path("certboot-credentials.toml")).unwrap();
    let password = creds
        .lines()
        .find_map(|l| l.strip_prefix("credential = \""))
        .unwrap()
        .trim_end_matches('"');
    assert!(xml.contains(password));
    assert!(!kdc.log().contains(password), "password in the log");

    // curl with the device certificate and key.
    let curl = require_tool("curl", "curl");
    let url = kdc.get("certboot_url");
    let ca = kdc.realm_path(&kdc.get("certboot_ca"));
    let fetch = |url: &str, extra: &[&str], d: &Dev| {
        let out = Command::new(&curl)
            .args(["-sS", "--max-time", "20", "-i", "--cacert"])
            .arg(&ca)
            .arg("--cert")
            .arg(&d.cert)
            .arg("--key")
            .arg(&d.key)
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
            + &String::from_utf8_lossy(&out.stderr)
    };
    let out = fetch(
        &url,
        &["--tlsv1.2", "--tls-max", "1.2", "--ciphers", "AES128-SHA"],
        &dev,
    );
    assert!(out.starts_with("HTTP/1.1 200"), "curl got:\n{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("content-type: application/xml"),
        "{out}"
    );
    validate_profile(&out, &tmp);

    // The modern listener: TLS 1.3 with the same device.
    let modern = kdc.get("certboot_modern_url");
    let out = fetch(&modern, &["--tlsv1.3"], &dev);
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "curl (TLS 1.3) got:\n{out}"
    );
    validate_profile(&out, &tmp);
    wait_certboot_audit(&kdc, &["profile=\"modern\"", "tls_version=\"TLSv1.3\""]);
    // …which offers no TLS_RSA suite.
    let (out, _) = s_client(&kdc, port(&kdc, "certboot_modern_url"), &args);
    assert!(!out.contains("HTTP/1.1"), "{out}");
    wait_certboot_audit(&kdc, &["profile=\"modern\"", "reason=\"no_shared_cipher\""]);

    // Another path, another method.
    let out = fetch(&url.replace(PATH, "/other"), &[], &dev);
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    let out = fetch(&url, &["-X", "POST"], &dev);
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    // The device's MAC comes from its certificate: a query naming another
    // device changes nothing.
    let other = kdc.manifest["devices"][1]["mac"].as_str().unwrap();
    let out = fetch(&format!("{url}?mac={other}"), &[], &dev);
    assert!(
        out.contains(&format!("<MacAddress>{mac0}</MacAddress>")),
        "{out}"
    );
}

#[test]
fn refused_handshakes_are_counted_by_reason() {
    let kdc = DevKdc::start_prepared(Path::new(KDC), prepare);
    let pktc = port(&kdc, "certboot_url");
    let good = realm_device(&kdc, 0);
    let aes = ["-tls1_2", "-cipher", "AES128-SHA"];
    // The client must really offer NULL suites, or the test proves nothing.
    let ciphers = Command::new(require_tool("openssl", "openssl"))
        .args(["ciphers", "-v", "NULL-SHA:@SECLEVEL=0"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&ciphers.stdout);
    assert!(
        listed.contains("NULL-SHA") && listed.contains("Enc=None"),
        "{listed}"
    );

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("no client certificate", vec![], "no_client_cert"),
        (
            "unknown manufacturer CA",
            device_args(&variant(&kdc, "new-mfr-device")),
            "cert_unknown_issuer",
        ),
        (
            "revoked",
            device_args(&variant(&kdc, "revoked")),
            "cert_revoked",
        ),
        (
            "expired",
            device_args(&variant(&kdc, "expired")),
            "cert_expired",
        ),
    ];
    for (name, dev_args, reason) in cases {
        let before = count_audit(&kdc, &[&format!("reason=\"{reason}\"")]);
        let mut args: Vec<&str> = aes.to_vec();
        args.extend(dev_args.iter().map(String::as_str));
        let (out, err) = s_client(&kdc, pktc, &args);
        assert!(
            !out.contains("HTTP/1.1"),
            "{name}: got an HTTP answer:\n{out}\n{err}"
        );
        wait_certboot_audit(
            &kdc,
            &["step=\"handshake\"", &format!("reason=\"{reason}\"")],
        );
        assert_eq!(
            count_audit(&kdc, &[&format!("reason=\"{reason}\"")]),
            before + 1,
            "{name}: counted once"
        );
    }

    // Only NULL suites offered.
    let mut args = vec!["-tls1_2", "-cipher", "NULL-SHA:NULL-SHA256:@SECLEVEL=0"];
    let good_args = device_args(&good);
    args.extend(good_args.iter().map(String::as_str));
    let (out, err) = s_client(&kdc, pktc, &args);
    assert!(!out.contains("HTTP/1.1"), "NULL suites: {out}\n{err}");
    wait_certboot_audit(&kdc, &["step=\"handshake\"", "reason=\"no_shared_cipher\""]);

    // TLS 1.0, offered for real (level 0 on the client), not opted in.
    let mut args = vec!["-tls1", "-cipher", "AES128-SHA:@SECLEVEL=0"];
    args.extend(good_args.iter().map(String::as_str));
    let (out, err) = s_client(&kdc, pktc, &args);
    assert!(!out.contains("HTTP/1.1"), "TLS 1.0: {out}\n{err}");
    wait_certboot_audit(&kdc, &["step=\"handshake\"", "reason=\"protocol_version\""]);

    // Each refusal counted once under its reason.
    let series = |reason: &str| {
        format!(
            "pktc_certboot_handshakes_total{{profile=\"pktc\",outcome=\"error\",reason=\"{reason}\",version=\"-\",cipher=\"-\"}}"
        )
    };
    let text = kdc.metrics();
    for reason in [
        "no_client_cert",
        "cert_unknown_issuer",
        "cert_revoked",
        "cert_expired",
        "no_shared_cipher",
        "protocol_version",
    ] {
        assert_eq!(kdc.metric(&series(reason)), 1.0, "{reason}:\n{text}");
    }

    // None of this disturbed a good device.
    let mut args: Vec<&str> = aes.to_vec();
    args.extend(good_args.iter().map(String::as_str));
    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// The positive control for the TLS 1.0 refusal: with the operator's
/// opt-in the same client command succeeds.
#[test]
fn tls10_works_only_when_opted_in() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace("min_tls_version = \"1.2\"", "min_tls_version = \"1.0\"");
        *cfg = cfg.replace("security_level = 1", "security_level = 0");
        assert!(cfg.contains("min_tls_version = \"1.0\""), "{cfg}");
    });
    let dev = device_args(&realm_device(&kdc, 2));
    let mut args = vec!["-tls1", "-cipher", "AES128-SHA:@SECLEVEL=0"];
    args.extend(dev.iter().map(String::as_str));
    let (out, err) = s_client(&kdc, port(&kdc, "certboot_url"), &args);
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "TLS 1.0 opted in: {out}\n{err}"
    );
    wait_certboot_audit(&kdc, &["tls_version=\"TLSv1\"", "cipher=\"AES128-SHA\""]);
}

/// A TLS client held open across trust changes (the "other client").
fn open_connection(kdc: &DevKdc, d: &Dev) -> SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_security_level(0);
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_cipher_list("AES128-SHA").unwrap();
    b.set_ca_file(kdc.realm_path(&kdc.get("certboot_ca")))
        .unwrap();
    b.set_certificate_file(&d.cert, SslFiletype::PEM).unwrap();
    b.set_private_key_file(&d.key, SslFiletype::PEM).unwrap();
    let leaf = std::fs::read(&d.cert).unwrap();
    let leaf = openssl::x509::X509::from_pem(&leaf)
        .unwrap()
        .to_der()
        .unwrap();
    for c in openssl::x509::X509::stack_from_pem(&std::fs::read(&d.chain).unwrap()).unwrap() {
        if c.to_der().unwrap() != leaf {
            b.add_extra_chain_cert(c).unwrap();
        }
    }
    b.set_verify(SslVerifyMode::PEER);
    let tcp = TcpStream::connect(("127.0.0.1", port(kdc, "certboot_url"))).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    b.build().connect("localhost", tcp).unwrap()
}

/// One keep-alive GET on an open connection; returns the status line.
fn get_on(conn: &mut SslStream<TcpStream>) -> String {
    conn.write_all(format!("GET {PATH} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = vec![0u8; 16384];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("</DeviceProfile>") {
        let n = conn.read(&mut buf).expect("reading the held connection");
        assert!(
            n > 0,
            "held connection closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap()
        .to_string()
}

fn server_serial(kdc: &DevKdc) -> String {
    let conn = open_connection(kdc, &realm_device(kdc, 0));
    let cert = conn.ssl().peer_certificate().unwrap();
    cert.serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string()
}

#[test]
fn trust_and_server_certificate_rotate_without_restart() {
    let kdc = DevKdc::start_prepared(Path::new(KDC), prepare);
    let pktc = port(&kdc, "certboot_url");
    let trust = kdc.realm_path("pki/trust/device");
    let new_dev = device_args(&variant(&kdc, "new-mfr-device"));
    let mut args = vec!["-tls1_2", "-cipher", "AES128-SHA"];
    args.extend(new_dev.iter().map(String::as_str));

    // Another client keeps a connection open the whole time.
    let mut held = open_connection(&kdc, &realm_device(&kdc, 1));
    assert_eq!(get_on(&mut held), "HTTP/1.1 200 OK");

    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(
        !out.contains("HTTP/1.1"),
        "new manufacturer accepted before rotation: {out}"
    );
    wait_certboot_audit(&kdc, &["reason=\"cert_unknown_issuer\""]);

    // Cert ops add the new manufacturer CA and its CRL.
    let src = kdc.realm_path("variants/new-mfr");
    std::fs::copy(src.join("ca.pem"), trust.join("new-mfr-ca.pem")).unwrap();
    std::fs::copy(src.join("ca.crl.pem"), trust.join("new-mfr-ca.crl.pem")).unwrap();
    let reloaded =
        kdc.wait_log(|l| l.contains("device trust reloaded") && l.contains("generation=2"));
    assert!(reloaded, "no reload:\n{}", kdc.log());
    let (out, err) = s_client(&kdc, pktc, &args);
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "new manufacturer refused after rotation: {out}\n{err}"
    );
    assert!(
        out.contains("<Identity>new@ims.pktc.test</Identity>"),
        "{out}"
    );
    assert_eq!(
        get_on(&mut held),
        "HTTP/1.1 200 OK",
        "held connection survived the reload"
    );

    // And removed again.
    std::fs::remove_file(trust.join("new-mfr-ca.pem")).unwrap();
    std::fs::remove_file(trust.join("new-mfr-ca.crl.pem")).unwrap();
    assert!(kdc.wait_log(|l| l.contains("device trust reloaded") && l.contains("generation=3")));
    let before = count_audit(&kdc, &["reason=\"cert_unknown_issuer\""]);
    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(
        !out.contains("HTTP/1.1"),
        "removed manufacturer still accepted: {out}"
    );
    wait_certboot_audit(&kdc, &["reason=\"cert_unknown_issuer\""]);
    assert_eq!(
        count_audit(&kdc, &["reason=\"cert_unknown_issuer\""]),
        before + 1
    );
    assert_eq!(get_on(&mut held), "HTTP/1.1 200 OK");

    // A broken file in the trust directory: reported, old store kept.
    std::fs::write(trust.join("zz-broken.pem"), "not a certificate").unwrap();
    assert!(
        kdc.wait_log(|l| l.contains("device trust reload failed") && l.contains("zz-broken.pem"))
    );
    let good = device_args(&realm_device(&kdc, 0));
    let mut good_args = vec!["-tls1_2", "-cipher", "AES128-SHA"];
    good_args.extend(good.iter().map(String::as_str));
    let (out, _) = s_client(&kdc, pktc, &good_args);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    std::fs::remove_file(trust.join("zz-broken.pem")).unwrap();

    // The server's own certificate: a new one from the same CA is presented
    // from the next handshake on.
    let old_serial = server_serial(&kdc);
    let lsca = load_ca(
        &kdc.realm_path("pki/sp/local-system-ca.pem"),
        &kdc.realm_path("pki/ca-keys/local-system-ca.key"),
    )
    .unwrap();
    let fresh = pki::tls_server_cert(
        &lsca,
        &["localhost"],
        &["127.0.0.1".parse().unwrap()],
        CertSpec::new().org("PKTC Dev Realm"),
    )
    .unwrap();
    // Key first, then certificate: in between the pair mismatches and the
    // reload keeps the old identity.
    std::fs::write(kdc.realm_path("pki/sp/tls.key"), fresh.key_pem().unwrap()).unwrap();
    std::fs::write(kdc.realm_path("pki/sp/tls.pem"), fresh.cert_pem().unwrap()).unwrap();
    assert!(kdc.wait_log(|l| l.contains("certboot server certificate reloaded")));
    let new_serial = server_serial(&kdc);
    assert_ne!(old_serial, new_serial);
    let want = fresh
        .cert
        .serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string();
    assert_eq!(new_serial, want);
    assert_eq!(get_on(&mut held), "HTTP/1.1 200 OK");
}

#[test]
fn unknown_device_404_then_credentials_reload() {
    let kdc = DevKdc::start_prepared(Path::new(KDC), prepare);
    let dev = variant(&kdc, "no-credentials");
    let mut args = vec!["-tls1_2", "-cipher", "AES128-SHA"];
    let dev_args = device_args(&dev);
    args.extend(dev_args.iter().map(String::as_str));
    let pktc = port(&kdc, "certboot_url");
    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    let mac3 = certs::format_mac(mac(3));
    wait_certboot_audit(
        &kdc,
        &[
            "status=404",
            "reason=\"unknown_device\"",
            &format!("mac={mac3}"),
        ],
    );

    // The operator adds it; the file is re-read.
    let path = kdc.realm_path("certboot-credentials.toml");
    let mut creds = std::fs::read_to_string(&path).unwrap();
    creds.push_str(&format!(
        "\n[[device]]\nmac = \"{}\"\nimpi = \"late@ims.pktc.test\"\nimpu = [\"sip:late@ims.pktc.test\"]\n\
         credential_type = \"preSharedKey\"\ncredential_base64 = \"AAECAwQ=\"\n",
        mac3.to_lowercase().replace(':', "")
    ));
    std::fs::write(&path, &creds).unwrap();
    assert!(
        kdc.wait_log(|l| l.contains("certboot credentials reloaded")),
        "{}",
        kdc.log()
    );
    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("<Credentials encoding=\"base64\">AAECAwQ=</Credentials>"),
        "{out}"
    );

    // A broken file keeps the previous table, and the error names no secret.
    std::fs::write(
        &path,
        creds.replace(
            "credential_type = \"preSharedKey\"",
            "credential_type = \"bogus\" secret-XYZ",
        ),
    )
    .unwrap();
    assert!(
        kdc.wait_log(|l| l.contains("certboot credentials reload failed")),
        "{}",
        kdc.log()
    );
    assert!(
        !kdc.log().contains("secret-XYZ"),
        "file content leaked into the log"
    );
    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[test]
fn redis_credentials_and_store_outage() {
    let redis = testkit::Redis::start();
    let url = redis.url();
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace(
            "credentials_file = \"certboot-credentials.toml\"",
            &format!("credentials_redis = \"{url}\""),
        );
        assert!(cfg.contains("credentials_redis"), "{cfg}");
    });
    let dev = device_args(&realm_device(&kdc, 0));
    let mut args = vec!["-tls1_2", "-cipher", "AES128-SHA"];
    args.extend(dev.iter().map(String::as_str));
    let pktc = port(&kdc, "certboot_url");
    let key = certboot::creds::redis_key([0x00, 0x10, 0x95, 0x00, 0x00, 0x01]);

    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(out.starts_with("HTTP/1.1 404"), "no hash yet: {out}");

    redis.command(&[
        "HSET",
        &key,
        "impi",
        "r@ims.pktc.test",
        "impu",
        "sip:r1@ims.pktc.test sip:r2@ims.pktc.test",
        "credential_type",
        "password",
        "credential",
        "redis-pw<&>",
    ]);
    let tmp = TempDir::new("certboot-redis");
    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let xml = validate_profile(&out, &tmp);
    assert!(xml.contains("redis-pw&lt;&amp;&gt;"), "{xml}");
    assert_eq!(xml.matches("<IMPU>").count(), 2);

    // A record the profile cannot carry: 503, nothing of it in the answer.
    redis.command(&["HSET", &key, "credential_type", "nonsense"]);
    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(
        !out.contains("nonsense") && !out.contains("redis-pw"),
        "{out}"
    );
    wait_certboot_audit(&kdc, &["status=503", "reason=\"store_error\""]);

    // Redis gone: 503 without details; the log says why.
    drop(redis);
    let (out, _) = s_client(&kdc, pktc, &args);
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(
        !out.to_lowercase().contains("redis"),
        "detail leaked: {out}"
    );
    wait_certboot_audit(&kdc, &["status=503", "reason=\"store_error\"", "redis"]);
}
