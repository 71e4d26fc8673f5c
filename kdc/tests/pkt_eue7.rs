//! pkt-eue-7 end to end across processes: `pktc-kdc serve` asks the dev
//! realm's provisioning-server stand-in (`pktc-kdc mps-responder`) about
//! each PKINIT device and refuses a device whose FQDN or source address
//! disagree, whose MAC is unknown, or when the server is silent; it
//! recovers when the server returns.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use krb::client::{self, RequestBody};
use krb::crypto::EncType;
use krb::msg::consts::err;
use krb::msg::{self, time};
use krb::principal::{Principal, name_type};
use pkinit::client::{self as pkclient, DeviceIdentity};
use testkit::DevKdc;

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");

/// A dev realm whose provisioning server caches nothing (so table edits
/// show at once) and whose table `edit` may change before start.
fn realm(edit: impl FnOnce(&mut String)) -> DevKdc {
    DevKdc::start_prepared(Path::new(KDC), |dir, cfg| {
        *cfg = cfg
            .replace("cache_ttl_secs = 300", "cache_ttl_secs = 0")
            .replace("negative_cache_secs = 30", "negative_cache_secs = 0");
        assert!(cfg.contains("cache_ttl_secs = 0"), "{cfg}");
        let mut table = std::fs::read_to_string(dir.join("mps-table.toml")).unwrap();
        edit(&mut table);
        std::fs::write(dir.join("mps-table.toml"), table).unwrap();
    })
}

fn device(kdc: &DevKdc, i: usize) -> (DeviceIdentity, Principal) {
    let d = &kdc.manifest["devices"][i];
    let p = |k: &str| kdc.realm_path(d[k].as_str().unwrap());
    let id = DeviceIdentity::load(&p("cert"), &p("key"), None).unwrap();
    let fqdn = d["fqdn"].as_str().unwrap().to_string();
    (
        id,
        Principal::new(name_type::SRV_HST, vec!["mta".into(), fqdn], "PKTC.TEST"),
    )
}

/// A PacketCable PKINIT AS-REQ for the MPS ticket.
fn request(kdc: &DevKdc, dev: &DeviceIdentity, cname: &Principal, nonce: u32) -> Vec<u8> {
    let sname = Principal::parse(&kdc.get("service_principal"), None).unwrap();
    let body = RequestBody {
        client: Some(cname),
        server: &sname,
        etypes: &[EncType::Aes128CtsHmacSha196],
        nonce,
        till: time::now().0 + 3600,
        rtime: None,
        options: client::default_options(),
    };
    let der = msg::encode("KDC-REQ-BODY", &body.to_asn1().unwrap()).unwrap();
    let pa =
        pkclient::packetcable_padata(dev, &der, nonce, time::now(), Some("mps.pktc.test")).unwrap();
    client::as_req(&body, pa).unwrap()
}

/// Sends over TCP to `addr`; returns 0 for an AS-REP, else the KRB-ERROR code.
fn send(addr: SocketAddr, req: &[u8]) -> i32 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&(req.len() as u32).to_be_bytes()).unwrap();
    s.write_all(req).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut reply).unwrap();
    if reply.first() == Some(&0x6b) {
        0
    } else {
        client::krb_error(&reply).map_or(-1, |e| e.error_code)
    }
}

fn audited(kdc: &DevKdc, reason: &str) -> bool {
    kdc.wait_audit(|l| l.contains(&format!("reason=\"{reason}\"")))
}

#[test]
fn matching_devices_are_served_in_both_reply_forms() {
    let kdc = realm(|_| {});
    for (i, nonce) in [(0usize, 1u32), (1, 2)] {
        let (dev, cname) = device(&kdc, i);
        assert_eq!(
            send(kdc.addr, &request(&kdc, &dev, &cname, nonce)),
            0,
            "device {i}\n{}\n{}",
            kdc.log(),
            kdc.mps_log()
        );
    }
    // The stand-in answered both (device 1 in the 1.x form, device 2 in the E-UE form).
    assert_eq!(kdc.mps_answers(2), 2, "{}", kdc.mps_log());
}

#[test]
fn fqdn_mismatch_is_refused() {
    let kdc = realm(|t| {
        *t = t.replacen(
            "fqdn = \"mta-001095000001.pktc.test\"",
            "fqdn = \"someone-else.pktc.test\"",
            1,
        )
    });
    let (dev, cname) = device(&kdc, 0);
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev, &cname, 3)),
        err::KDC_ERR_CLIENT_NAME_MISMATCH
    );
    assert!(audited(&kdc, "device_fqdn_mismatch"));
}

#[test]
fn source_address_mismatch_is_refused_for_ipv4_and_ipv6() {
    // Device 1's entry says 10.9.9.9: the request from 127.0.0.1 is refused.
    let kdc = realm(|t| {
        *t = t.replacen(
            "addresses = [\"127.0.0.1\"]",
            "addresses = [\"10.9.9.9\"]",
            1,
        )
    });
    let (dev0, cname0) = device(&kdc, 0);
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev0, &cname0, 4)),
        err::KRB_AP_ERR_BADADDR
    );
    assert!(audited(&kdc, "device_address_mismatch"));
    // Over [::1]: device 2's entry has ::1 (served), device 1's has no IPv6 (refused).
    let v6: SocketAddr = kdc.manifest["kdc_ipv6"]
        .as_str()
        .expect("IPv6 loopback")
        .parse()
        .unwrap();
    let (dev1, cname1) = device(&kdc, 1);
    assert_eq!(
        send(v6, &request(&kdc, &dev1, &cname1, 5)),
        0,
        "{}",
        kdc.log()
    );
    assert_eq!(
        send(v6, &request(&kdc, &dev0, &cname0, 6)),
        err::KRB_AP_ERR_BADADDR
    );
}

#[test]
fn unknown_mac_is_refused() {
    let kdc = realm(|t| {
        *t = t.replacen(
            "mac = \"00:10:95:00:00:01\"",
            "mac = \"00:10:95:77:77:77\"",
            1,
        )
    });
    let (dev, cname) = device(&kdc, 0);
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev, &cname, 7)),
        err::KDC_ERR_C_PRINCIPAL_UNKNOWN
    );
    assert!(audited(&kdc, "device_unknown_mac"));
}

#[test]
fn silent_provisioning_server_then_recovery() {
    let mut kdc = realm(|_| {});
    let (dev, cname) = device(&kdc, 0);
    kdc.stop_mps();
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev, &cname, 8)),
        err::KDC_ERR_SVC_UNAVAILABLE
    );
    assert!(audited(&kdc, "device_lookup_timeout"));
    kdc.start_mps();
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev, &cname, 9)),
        0,
        "{}",
        kdc.log()
    );
}

/// Two KDC processes share one real redis-server: a mapping fetched by one
/// is a cache hit for the other (with the provisioning server down), and
/// killing Redis stops neither.
#[test]
fn two_kdcs_share_mappings_through_redis_and_survive_its_loss() {
    let mut redis = testkit::Redis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let mut a = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replacen("[mps]\n", &format!("[mps]\nredis = \"{url}\"\n"), 1);
        assert!(cfg.contains("redis = "), "{cfg}");
    });
    // KDC B: the same realm and config on another port.
    let mut b = a.start_replica("b");
    let b_addr = b.addr;
    let (dev0, cname0) = device(&a, 0);
    let (dev1, cname1) = device(&a, 1);

    // A asks the provisioning server and shares the answer.
    assert_eq!(
        send(a.addr, &request(&a, &dev0, &cname0, 20)),
        0,
        "{}",
        a.log()
    );
    a.stop_mps();
    // B has never seen device 0 and the server is gone: Redis answers.
    let r = send(b_addr, &request(&a, &dev0, &cname0, 21));
    assert_eq!(r, 0, "KDC B without a Redis hit:\n{}", b.log());

    // Redis dies: both KDCs keep serving from memory, and B falls back to
    // the provisioning server for a device it has not seen.
    redis.stop();
    assert_eq!(send(a.addr, &request(&a, &dev0, &cname0, 22)), 0);
    assert_eq!(send(b_addr, &request(&a, &dev0, &cname0, 23)), 0);
    a.start_mps();
    assert_eq!(
        send(b_addr, &request(&a, &dev1, &cname1, 24)),
        0,
        "{}",
        b.log()
    );
    assert!(
        b.log().contains("redis unavailable"),
        "B did not notice Redis going away:\n{}",
        b.log()
    );
    b.stop();
}

/// The responder answers from Redis hashes: edits show at once, a MAC
/// without a hash is unknown, and a Redis outage is silence (a timeout at
/// the KDC), never "unknown MAC".
#[test]
fn responder_fed_from_redis_hashes() {
    let mut redis = testkit::Redis::start();
    let port = redis.port;
    let kdc = DevKdc::start_prepared(Path::new(KDC), |dir, cfg| {
        *cfg = cfg
            .replace("cache_ttl_secs = 300", "cache_ttl_secs = 0")
            .replace("negative_cache_secs = 30", "negative_cache_secs = 0");
        let mps = std::fs::read_to_string(dir.join("mps-responder.toml")).unwrap();
        let mps = mps.replace(
            "table = \"mps-table.toml\"",
            &format!("redis = \"redis://127.0.0.1:{port}/\""),
        );
        assert!(mps.contains("redis = "), "{mps}");
        std::fs::write(dir.join("mps-responder.toml"), mps).unwrap();
    });
    let key = kdc::mps_responder::redis_key([0x00, 0x10, 0x95, 0x00, 0x00, 0x01]);
    redis.command(&[
        "HSET",
        &key,
        "fqdn",
        "mta-001095000001.pktc.test",
        "addresses",
        "127.0.0.1,::1",
    ]);
    let (dev0, cname0) = device(&kdc, 0);
    let (dev1, cname1) = device(&kdc, 1);
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev0, &cname0, 30)),
        0,
        "{}\n{}",
        kdc.log(),
        kdc.mps_log()
    );
    redis.command(&["HSET", &key, "fqdn", "moved.pktc.test"]);
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev0, &cname0, 31)),
        err::KDC_ERR_CLIENT_NAME_MISMATCH
    );
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev1, &cname1, 32)),
        err::KDC_ERR_C_PRINCIPAL_UNKNOWN
    );
    redis.stop();
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev0, &cname0, 33)),
        err::KDC_ERR_SVC_UNAVAILABLE
    );
    assert!(
        kdc.mps_log().contains("device store unavailable"),
        "{}",
        kdc.mps_log()
    );
}

/// A configured KRB_SAFE checksum type (12, hmac-sha1-des3-kd) works end
/// to end: the KDC picks a des3 session key for it and the responder
/// accepts and answers in the same family.
#[test]
fn configured_checksum_type_is_used() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replacen("[mps]\n", "[mps]\nchecksum_type = 12\n", 1);
    });
    let (dev, cname) = device(&kdc, 0);
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev, &cname, 40)),
        0,
        "{}\n{}",
        kdc.log(),
        kdc.mps_log()
    );
    assert!(kdc.mps_answers(1) == 1, "{}", kdc.mps_log());
}
