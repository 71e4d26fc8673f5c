//! Stock MIT krb5 clients (Debian's krb5-user 1.20) against `pktc-kdc`
//! serving a dev realm in a separate process: kinit with a password over
//! UDP, TCP and IPv6, kvno for service tickets, renewal, klist -k on our
//! keytab, and our KDC serving keys that MIT ktutil wrote.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{DevKdc, Pty, TempDir, mit, mit_env, require_tool, run};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");

fn kinit(kdc: &DevKdc, conf: &Path, cc: &Path, extra: &[&str]) -> (bool, String) {
    let (name, password) = kdc.password();
    run(
        mit("kinit", conf, cc).args(extra).arg(&name),
        &format!("{password}\n"),
    )
}

/// Whether the KDC audited an exchange over a transport with an outcome.
fn audited(kdc: &DevKdc, exchange: &str, transport: &str, outcome: &str) -> bool {
    kdc.wait_audit(|l| {
        l.contains(&format!("exchange=\"{exchange}\""))
            && l.contains(&format!("transport=\"{transport}\""))
            && l.contains(&format!("outcome=\"{outcome}\""))
    })
}

fn kinit_then_kvno(conf_key: &str, transport: &str) {
    let kdc = DevKdc::start(Path::new(KDC));
    let conf = kdc.realm_path(&kdc.get(conf_key));
    let cc = kdc.dir.path("cc");
    let (ok, out) = kinit(&kdc, &conf, &cc, &[]);
    assert!(ok, "kinit failed: {out}\nKDC log:\n{}", kdc.log());
    let (ok, out) = run(mit("klist", &conf, &cc).arg("-e"), "");
    assert!(
        ok && out.contains(&format!("krbtgt/{0}@{0}", kdc.get("realm"))),
        "{out}"
    );
    let svc = kdc.get("service_principal");
    let (ok, out) = run(mit("kvno", &conf, &cc).arg(&svc), "");
    assert!(ok, "kvno failed: {out}\nKDC log:\n{}", kdc.log());
    assert!(out.contains(&format!("{svc}: kvno = 1")), "{out}");
    // The first AS-REQ is answered PREAUTH_REQUIRED, the second with a TGT.
    assert!(audited(&kdc, "as", transport, "error"), "{}", kdc.log());
    assert!(audited(&kdc, "as", transport, "ok"), "{}", kdc.log());
    assert!(audited(&kdc, "tgs", transport, "ok"), "{}", kdc.log());
}

#[test]
fn mit_kinit_and_kvno_over_udp() {
    kinit_then_kvno("krb5_conf", "udp");
}

#[test]
fn mit_kinit_and_kvno_over_tcp() {
    kinit_then_kvno("krb5_conf_tcp", "tcp");
}

#[test]
fn mit_kinit_over_ipv6() {
    let kdc = DevKdc::start(Path::new(KDC));
    let v6 = kdc.manifest["kdc_ipv6"]
        .as_str()
        .expect(
            "the dev realm listens on [::1] when the machine has IPv6 loopback (it should here)",
        )
        .to_string();
    let conf = kdc.dir.path("krb5-v6.conf");
    let realm = kdc.get("realm");
    std::fs::write(
        &conf,
        format!(
            "[libdefaults]\n default_realm = {realm}\n dns_lookup_kdc = false\n noaddresses = true\n\
             [realms]\n {realm} = {{\n  kdc = {v6}\n }}\n"
        ),
    )
    .unwrap();
    let cc = kdc.dir.path("cc");
    let (ok, out) = kinit(&kdc, &conf, &cc, &[]);
    assert!(ok, "kinit over IPv6 failed: {out}\n{}", kdc.log());
    assert!(
        kdc.wait_audit(|l| l.contains("source=[::1]") && l.contains("outcome=\"ok\"")),
        "no successful request from [::1]:\n{}",
        kdc.log()
    );
}

#[test]
fn mit_wrong_password_is_preauth_failed() {
    let kdc = DevKdc::start(Path::new(KDC));
    let conf = kdc.realm_path("krb5.conf");
    let (name, _) = kdc.password();
    let (ok, out) = run(
        mit("kinit", &conf, &kdc.dir.path("cc")).arg(&name),
        "not-the-password\n",
    );
    assert!(!ok && out.contains("Password incorrect"), "{out}");
    assert!(
        kdc.wait_audit(|l| l.contains("error_code=24") && l.contains("preauth_failed")),
        "{}",
        kdc.log()
    );
}

#[test]
fn mit_renews_a_renewable_tgt() {
    let kdc = DevKdc::start(Path::new(KDC));
    let conf = kdc.realm_path("krb5.conf");
    let cc = kdc.dir.path("cc");
    let (ok, out) = kinit(&kdc, &conf, &cc, &["-r", "2d", "-l", "1h"]);
    assert!(ok, "{out}");
    let (ok, out) = run(mit("kinit", &conf, &cc).arg("-R"), "");
    assert!(ok, "kinit -R failed: {out}\n{}", kdc.log());
    let (_, out) = run(mit("klist", &conf, &cc).arg("-f"), "");
    assert!(
        out.contains("renew until") && out.contains("Flags: R"),
        "{out}"
    );
    assert!(audited(&kdc, "tgs", "udp", "ok"), "{}", kdc.log());
}

/// MIT `kinit -R` on a renewable TGT that has ended (short life, 1 s
/// skew) fails: the KDC refuses the renewal with KRB_AP_ERR_TKT_EXPIRED.
#[test]
fn mit_cannot_renew_an_expired_tgt() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace("clock_skew_secs = 300", "clock_skew_secs = 1");
        assert!(cfg.contains("clock_skew_secs = 1\n"), "{cfg}");
    });
    let conf = kdc.realm_path("krb5.conf");
    let cc = kdc.dir.path("cc");
    let (ok, out) = kinit(&kdc, &conf, &cc, &["-r", "1h", "-l", "2s"]);
    assert!(ok, "{out}\n{}", kdc.log());
    let (_, out) = run(mit("klist", &conf, &cc).arg("-f"), "");
    assert!(out.contains("renew until"), "{out}");
    // Past the end time and the skew; renew-till is an hour away.
    std::thread::sleep(Duration::from_millis(4200));
    let (ok, out) = run(mit("kinit", &conf, &cc).arg("-R"), "");
    assert!(!ok, "an expired TGT was renewed: {out}\n{}", kdc.log());
    assert!(
        kdc.wait_audit(|l| l.contains("exchange=\"tgs\"")
            && l.contains("error_code=32")
            && l.contains("reason=\"ticket_expired\"")),
        "{out}\n{}",
        kdc.log()
    );
}

#[test]
fn mit_klist_reads_the_dev_keytab() {
    let kdc = DevKdc::start(Path::new(KDC));
    let conf = kdc.realm_path("krb5.conf");
    let kt = kdc.realm_path(&kdc.get("keytab"));
    let (ok, out) = run(
        mit("klist", &conf, &kdc.dir.path("cc"))
            .arg("-k")
            .arg("-e")
            .arg(&kt),
        "",
    );
    assert!(ok, "{out}");
    for p in [
        format!("krbtgt/{0}@{0}", kdc.get("realm")),
        kdc.get("service_principal"),
        kdc.password().0,
    ] {
        for e in [
            "aes256-cts-hmac-sha1-96",
            "aes256-cts-hmac-sha384-192",
            "aes128-cts-hmac-sha1-96",
        ] {
            assert!(
                out.contains(&format!("{p} ({e})")),
                "missing {p} {e} in:\n{out}"
            );
        }
    }
}

fn wait_for_log(path: &Path, child: &mut std::process::Child, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "KDC did not start:\n{log}");
        assert!(child.try_wait().unwrap().is_none(), "KDC exited:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// MIT ktutil derives keys from passwords and writes the keytab; our KDC
/// serves from it and MIT kinit/kvno succeed, so both the file format and
/// the string-to-key agree with MIT.
#[test]
fn kdc_serves_a_keytab_written_by_mit_ktutil() {
    let realm = "KTUTIL.TEST";
    let dir = TempDir::new("ktutil-kdc");
    let empty = dir.path("empty.conf");
    std::fs::write(&empty, "").unwrap();
    let kt = dir.path("mit.keytab");
    let ktutil = require_tool("ktutil", "krb5-user");
    let mut pty = Pty::spawn(&ktutil, |c| mit_env(c, &empty));
    let entries = [
        (
            format!("krbtgt/{realm}@{realm}"),
            "tgs-secret-1",
            "aes256-cts-hmac-sha1-96",
        ),
        (
            format!("alice@{realm}"),
            "alice-pass",
            "aes256-cts-hmac-sha1-96",
        ),
        (
            format!("alice@{realm}"),
            "alice-pass",
            "aes128-cts-hmac-sha256-128",
        ),
        (
            format!("host/svc.ktutil.test@{realm}"),
            "svc-secret",
            "aes256-cts-hmac-sha384-192",
        ),
    ];
    for (p, pw, e) in &entries {
        pty.expect("ktutil:");
        pty.send(&format!("addent -password -p {p} -k 1 -e {e}"));
        pty.expect("Password for");
        pty.send(pw);
    }
    pty.expect("ktutil:");
    pty.send(&format!("wkt {}", kt.display()));
    pty.expect("ktutil:");
    pty.send("quit");
    pty.finish();

    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path("kdc.toml");
    std::fs::write(
        &cfg,
        format!(
            "realm = \"{realm}\"\nkeytab = \"mit.keytab\"\n[listen]\n\
             udp = [\"127.0.0.1:{port}\"]\ntcp = [\"127.0.0.1:{port}\"]\n\
             [metrics]\nlisten = []\n[log]\naudit = \"audit.jsonl\"\n"
        ),
    )
    .unwrap();
    let log_path = dir.path("kdc.log");
    let mut child = Command::new(KDC)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for_log(&log_path, &mut child, "pktc-kdc serving");
    let conf = dir.path("krb5.conf");
    std::fs::write(
        &conf,
        format!(
            "[libdefaults]\n default_realm = {realm}\n noaddresses = true\n\
             [realms]\n {realm} = {{\n  kdc = 127.0.0.1:{port}\n }}\n"
        ),
    )
    .unwrap();
    let cc = dir.path("cc");
    let (ok, out) = run(
        mit("kinit", &conf, &cc).arg(format!("alice@{realm}")),
        "alice-pass\n",
    );
    let (ok2, out2) = run(
        mit("kvno", &conf, &cc).arg(format!("host/svc.ktutil.test@{realm}")),
        "",
    );
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "kinit with a ktutil-derived key failed: {out}\n{log}");
    assert!(
        ok2 && out2.contains("kvno = 1"),
        "kvno failed: {out2}\n{log}"
    );
}

/// PKT-SP-EUE-PROV-I05 §6.1.3: an IPv6 second component is written
/// `[h16:…:h16]` in an ABNF that is case-insensitive, so the keytab's
/// spelling, the spec's upper-case example and a mixed spelling name the
/// same principal: MIT kvno gets a ticket in each case (kvno -k checks it
/// decrypts with the keytab's key), and MIT kinit authenticates a password
/// client whose name it spells in the other case (the KDC's ETYPE-INFO2
/// salt is the keytab's spelling). A zero-compressed form is a different
/// (unknown) name.
#[test]
fn mit_kvno_and_kinit_match_ipv6_components_in_either_case() {
    const SERVICE: &str = "df/[805b:2d9d:dc28:0000:0000:fc57:d4c8:1fff]";
    const CLIENT: &str = "eue/[2001:0db8:0000:0000:0000:0000:0000:00aa]";
    let kdc = DevKdc::start_prepared(Path::new(KDC), |dir, _| {
        let keytab = dir.join("kdc.keytab");
        for (name, password) in [(SERVICE, None), (CLIENT, Some("eue-password"))] {
            let mut cmd = Command::new(KDC);
            cmd.args(["keytab", "add", "--keytab"])
                .arg(&keytab)
                .args(["--principal", &format!("{name}@PKTC.TEST")]);
            if password.is_some() {
                cmd.arg("--password-stdin");
            }
            let (ok, out) = run(&mut cmd, &format!("{}\n", password.unwrap_or("")));
            assert!(ok, "{out}");
        }
    });
    let realm = kdc.get("realm");
    let conf = kdc.realm_path(&kdc.get("krb5_conf"));
    let cc = kdc.dir.path("cc");
    let (ok, out) = kinit(&kdc, &conf, &cc, &[]);
    assert!(ok, "kinit failed: {out}\n{}", kdc.log());
    let keytab = kdc.realm_path("kdc.keytab");
    let (ok, out) = run(
        mit("kvno", &conf, &cc)
            .arg("-k")
            .arg(&keytab)
            .arg(format!("{SERVICE}@{realm}")),
        "",
    );
    assert!(ok && out.contains("kvno = 1"), "{out}\n{}", kdc.log());
    assert!(out.contains("keytab entry valid"), "{out}");
    for spelling in [
        "df/[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]",
        "df/[805b:2D9D:dc28:0000:0000:FC57:d4c8:1FFF]",
    ] {
        let (ok, out) = run(
            mit("kvno", &conf, &cc).arg(format!("{spelling}@{realm}")),
            "",
        );
        assert!(
            ok && out.contains(&format!("{spelling}@{realm}: kvno = 1")),
            "{spelling}: {out}\n{}",
            kdc.log()
        );
    }
    let (ok, out) = run(
        mit("kvno", &conf, &cc).arg(format!("df/[805B:2D9D:DC28::FC57:D4C8:1FFF]@{realm}")),
        "",
    );
    assert!(!ok, "{out}");
    assert!(out.contains("not found in Kerberos database"), "{out}");
    // The request side: a client spelled in upper case.
    let cc2 = kdc.dir.path("cc2");
    let upper = format!("{}@{realm}", CLIENT.to_ascii_uppercase()).replace("EUE/", "eue/");
    let (ok, out) = run(mit("kinit", &conf, &cc2).arg(&upper), "eue-password\n");
    assert!(ok, "kinit {upper}: {out}\n{}", kdc.log());
    let (ok, out) = run(&mut mit("klist", &conf, &cc2), "");
    assert!(ok && out.contains(&upper), "{out}");
}
