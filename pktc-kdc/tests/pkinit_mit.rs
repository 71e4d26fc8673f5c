//! Stock MIT kinit (krb5-user + krb5-pkinit 1.20) doing PKINIT with a dev
//! device certificate against `pktc-kdc`: RSA mode over TCP and UDP, then
//! kvno with the PKINIT TGT.

use std::path::Path;

use testkit::{DevKdc, mit, run};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");

fn pkinit_then_kvno(conf_key: &str, transport: &str, index: usize, extra: &[&str]) {
    let kdc = DevKdc::start(Path::new(KDC));
    let cc = kdc.dir.path("cc");
    let (ok, out) = kdc.kinit_device(conf_key, index, extra, &cc);
    assert!(ok, "kinit PKINIT failed: {out}\nKDC log:\n{}", kdc.log());
    assert!(
        kdc.wait_audit(|l| l.contains("exchange=\"pkinit\"")
            && l.contains(&format!("transport=\"{transport}\""))
            && l.contains("outcome=\"ok\"")),
        "no successful PKINIT over {transport}:\n{}",
        kdc.log()
    );
    let conf = kdc.realm_path(&kdc.get(conf_key));
    let svc = kdc.get("service_principal");
    let (ok, out) = run(mit("kvno", &conf, &cc).arg(&svc), "");
    assert!(
        ok && out.contains("kvno = 1"),
        "kvno with the PKINIT TGT failed: {out}\n{}",
        kdc.log()
    );
    let (_, out) = run(&mut mit("klist", &conf, &cc), "");
    let principal = kdc.manifest["devices"][index]["principal"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        out.contains(&format!("Default principal: {principal}")),
        "{out}"
    );
}

#[test]
fn mit_pkinit_rsa_mode_over_tcp_then_kvno() {
    pkinit_then_kvno("krb5_conf", "tcp", 0, &["-X", "flag_RSA_PROTOCOL=yes"]);
}

#[test]
fn mit_pkinit_rsa_mode_over_udp_then_kvno() {
    pkinit_then_kvno("krb5_conf_udp", "udp", 0, &["-X", "flag_RSA_PROTOCOL=yes"]);
}

#[test]
fn mit_pkinit_rsa_mode_with_a_1024_bit_device() {
    let idx = 2;
    let kdc = DevKdc::start(Path::new(KDC));
    assert_eq!(
        kdc.manifest["devices"][idx]["key_bits"].as_u64(),
        Some(1024),
        "device 3 is the 1024-bit one"
    );
    drop(kdc);
    pkinit_then_kvno("krb5_conf", "tcp", idx, &["-X", "flag_RSA_PROTOCOL=yes"]);
}

#[test]
fn mit_pkinit_dh_mode_over_tcp_then_kvno() {
    pkinit_then_kvno("krb5_conf", "tcp", 0, &[]);
}

#[test]
fn mit_pkinit_dh_mode_over_udp_then_kvno() {
    pkinit_then_kvno("krb5_conf_udp", "udp", 1, &[]);
}
