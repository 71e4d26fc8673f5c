//! pkt-eue-7 end to end across processes: `pktc-kdc serve` asks the dev
//! realm's provisioning-server stand-in (`pktc-kdc mps-responder`) about
//! each PKINIT device and refuses a device whose FQDN or source address
//! disagree, whose MAC is unknown, or when the server is silent; it
//! recovers when the server returns. The stand-in answers only the KDC:
//! not a user's own `mtaprovsrvr` ticket (from MIT kvno), not a request
//! whose KRB_SAFE names another sender; the KDC checks the server's
//! KRB_SAFE timestamps with its own `policy.clock_skew_secs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use fqdn_map::codec::{FqdnRequest, Message};
use fqdn_map::framing::{AcceptPolicy, ApClient, Requester, Responder};
use krb::client::{self, RequestBody};
use krb::crypto::{EncType, Key};
use krb::keytab::Keytab;
use krb::msg::consts::err;
use krb::msg::{self, time};
use krb::principal::{Principal, name_type};
use pkinit::client::{self as pkclient, DeviceIdentity};
use testkit::{DevKdc, mit, read_ccache, run};

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

/// Waits (up to 5 s) until the stand-in's log satisfies `pred`.
fn mps_logged(kdc: &DevKdc, pred: impl Fn(&str) -> bool) -> bool {
    testkit::wait_until(Duration::from_secs(5), || pred(&kdc.mps_log()))
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
    let key = pktc_kdc::dev::mps_responder::redis_key([0x00, 0x10, 0x95, 0x00, 0x00, 0x01]);
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

/// An MTA FQDN Request for dev device 0's MAC (one the stand-in knows).
fn fqdn_request() -> Vec<u8> {
    Message::Request(FqdnRequest {
        enterprise: 4491,
        mac: [0x00, 0x10, 0x95, 0x00, 0x00, 0x01],
        pubkey_hash: [0; 20],
        revocation_time: 0,
    })
    .encode()
    .unwrap()
}

/// The stand-in's `mtaprovsrvr` key for `etype`, from its keytab.
fn mps_key(kdc: &DevKdc, etype: EncType, kvno: Option<u32>) -> Option<(Key, u32)> {
    let kt = Keytab::read_file(&kdc.realm_path("mps.keytab")).unwrap();
    let svc = Principal::parse(&kdc.get("service_principal"), None).unwrap();
    let e = kt.find(&svc, etype.as_i32(), kvno)?;
    Some((Key::new(etype, &e.key).unwrap(), e.kvno))
}

/// A request as the KDC makes it (its own ticket, `krbtgt/REALM` as
/// client), claiming `sender` in the KRB_SAFE.
fn kdc_request(kdc: &DevKdc, sender: &str) -> (Vec<u8>, fqdn_map::framing::Pending) {
    let realm = kdc.get("realm");
    let service = Principal::parse(&kdc.get("service_principal"), None).unwrap();
    let (key, kvno) = mps_key(kdc, EncType::Aes256CtsHmacSha196, None).unwrap();
    let kdc_name = Principal::krbtgt(&realm);
    Requester {
        kdc_name: &kdc_name,
        service: &service,
        service_key: &key,
        kvno,
        checksum_type: None,
        ticket_life: 300,
    }
    .request(&fqdn_request(), sender.parse().unwrap(), time::now())
    .unwrap()
}

/// Sends one datagram to the stand-in from 127.0.0.1; its answer, if any,
/// and its audit line about the request.
fn ask_mps(kdc: &DevKdc, datagram: &[u8]) -> (Option<Vec<u8>>, String) {
    let lines = |log: &str| {
        log.lines()
            .filter(|l| l.contains("exchange=\"mps-lookup\""))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = lines(&kdc.mps_log()).len();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mps: SocketAddr = kdc.get("mps").parse().unwrap();
    sock.send_to(datagram, mps).unwrap();
    assert!(
        mps_logged(kdc, |log| lines(log).len() > before),
        "the stand-in did not log the request:\n{}",
        kdc.mps_log()
    );
    let line = lines(&kdc.mps_log())[before].clone();
    let mut buf = vec![0u8; 65536];
    let answer = if line.contains("outcome=\"answered\"") {
        // Logged just after sending: the answer is on its way.
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = sock.recv(&mut buf).expect("the answer the stand-in logged");
        Some(buf[..n].to_vec())
    } else {
        // Refused: nothing was sent, so nothing can be waiting.
        sock.set_nonblocking(true).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => panic!("recv: {e}"),
        }
    };
    (answer, line)
}

/// Any TGT holder can get an `mtaprovsrvr` ticket by TGS (and any MTA by
/// PKINIT): with the demo user's own ticket from MIT kvno, the stand-in
/// does not answer and says why; the KDC's own ticket is answered.
#[test]
fn a_users_mtaprovsrvr_ticket_gets_no_answer() {
    let kdc = DevKdc::start(Path::new(KDC));
    let conf = kdc.realm_path(&kdc.get("krb5_conf"));
    let cc = kdc.dir.path("cc");
    let (user, password) = kdc.password();
    let (ok, out) = run(
        mit("kinit", &conf, &cc).arg(&user),
        &format!("{password}\n"),
    );
    assert!(ok, "kinit: {out}\n{}", kdc.log());
    let svc = kdc.get("service_principal");
    let (ok, out) = run(mit("kvno", &conf, &cc).arg(&svc), "");
    assert!(ok, "kvno: {out}\n{}", kdc.log());
    let cred = read_ccache(&cc)
        .into_iter()
        .find(|c| c.server == svc)
        .expect("kvno stored the mtaprovsrvr ticket");
    assert_eq!(cred.client, user);

    // The user presents that ticket for a known MAC.
    let ticket: msg::Ticket = msg::decode("Ticket", &cred.ticket).unwrap();
    let session = Key::new(EncType::from_i32(cred.enctype).unwrap(), &cred.key).unwrap();
    let client = Principal::parse(&user, None).unwrap();
    let ap = ApClient {
        name: &client,
        session_key: session,
        checksum_type: None,
    };
    let (datagram, _) = ap
        .request(
            ticket,
            &fqdn_request(),
            "127.0.0.1".parse().unwrap(),
            time::now(),
        )
        .unwrap();
    let (answer, line) = ask_mps(&kdc, &datagram);
    assert!(answer.is_none(), "the stand-in answered a user: {line}");
    assert!(
        line.contains("outcome=\"refused\"")
            && line.contains(&format!("ticket client {user} is not the KDC")),
        "{line}"
    );

    // The KDC's own request from the same address is answered.
    let (datagram, pending) = kdc_request(&kdc, "127.0.0.1");
    let (answer, line) = ask_mps(&kdc, &datagram);
    let answer = answer.unwrap_or_else(|| panic!("no answer to the KDC: {line}"));
    let mps: SocketAddr = kdc.get("mps").parse().unwrap();
    let data = pending
        .open_reply(&answer, Some(mps.ip()), time::now().0, 300)
        .unwrap();
    assert!(matches!(
        fqdn_map::codec::decode(&data).unwrap(),
        Message::Reply(r) if r.fqdn == "mta-001095000001.pktc.test"
    ));
}

/// A genuine request whose KRB_SAFE names another sender than the
/// datagram's source (a captured request replayed from elsewhere) gets no
/// answer, and the stand-in says why.
#[test]
fn a_request_whose_krb_safe_names_another_sender_gets_no_answer() {
    let kdc = DevKdc::start(Path::new(KDC));
    let (datagram, _) = kdc_request(&kdc, "192.0.2.7");
    let (answer, line) = ask_mps(&kdc, &datagram);
    assert!(answer.is_none(), "answered: {line}");
    assert!(
        line.contains("KRB_SAFE sender address 192.0.2.7 is not the datagram's source 127.0.0.1"),
        "{line}"
    );
    let (datagram, _) = kdc_request(&kdc, "127.0.0.1");
    let (answer, line) = ask_mps(&kdc, &datagram);
    assert!(answer.is_some(), "{line}");
}

/// A provisioning server in place of the stand-in (on its addresses)
/// whose KRB_SAFE timestamps run `offset` seconds behind; it answers every
/// request for the known MAC until the test ends.
fn skewed_mps(kdc: &DevKdc, offset: i64) {
    let port = kdc.get("mps").parse::<SocketAddr>().unwrap().port();
    for ip in ["127.0.0.1", "::1"] {
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        // [::1] only where the realm has it.
        let Ok(sock) = std::net::UdpSocket::bind(addr) else {
            assert_ne!(ip, "127.0.0.1", "the stand-in's port is not free");
            continue;
        };
        let keytab = Keytab::read_file(&kdc.realm_path("mps.keytab")).unwrap();
        std::thread::spawn(move || skewed_mps_serve(&sock, &keytab, offset));
    }
}

fn skewed_mps_serve(sock: &std::net::UdpSocket, keytab: &Keytab, offset: i64) {
    let keys = |p: &Principal, e: EncType, kvno: Option<u32>| {
        let entry = keytab.find(p, e.as_i32(), kvno)?;
        Key::new(e, &entry.key).ok()
    };
    let policy = AcceptPolicy::krbtgt_of(["PKTC.TEST"], 300);
    let replay = krb::replay::ReplayCache::new(Duration::from_secs(600), 1000);
    let table = std::collections::HashMap::from([(
        [0x00, 0x10, 0x95, 0x00, 0x00, 0x01],
        fqdn_map::responder::TableEntry {
            fqdn: "mta-001095000001.pktc.test".into(),
            addresses: vec!["127.0.0.1".parse().unwrap()],
        },
    )]);
    let local = sock.local_addr().unwrap().ip();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, peer)) = sock.recv_from(&mut buf) {
        let responder = Responder {
            keys: &keys,
            policy: &policy,
            replay: &replay,
            checksum_type: None,
        };
        let (now, usec) = time::now();
        let (accepted, req) =
            fqdn_map::responder::accept_request(&responder, &buf[..n], peer.ip(), now)
                .unwrap_or_else(|e| panic!("not the KDC's request: {e}"));
        let reply = fqdn_map::responder::reply_to(
            &responder,
            &accepted,
            (table.get(&req.mac), fqdn_map::responder::ReplyForm::Auto),
            req.enterprise,
            local,
            (now - offset, usec),
        )
        .unwrap();
        let _ = sock.send_to(&reply, peer);
    }
}

/// The KDC checks the server's KRB_SAFE timestamps with
/// `policy.clock_skew_secs` (here 30 s), not a fixed 300 s: a server 100 s
/// behind is an error, one 10 s behind is fine.
#[test]
fn krb_safe_skew_is_policy_clock_skew() {
    for (offset, expect) in [(10, 0), (100, err::KDC_ERR_C_PRINCIPAL_UNKNOWN)] {
        let mut kdc = DevKdc::start_prepared(Path::new(KDC), |_, cfg| {
            *cfg = cfg
                .replace("clock_skew_secs = 300", "clock_skew_secs = 30")
                .replace("cache_ttl_secs = 300", "cache_ttl_secs = 0");
            assert!(cfg.contains("clock_skew_secs = 30\n"), "{cfg}");
        });
        kdc.stop_mps();
        skewed_mps(&kdc, offset);
        let (dev, cname) = device(&kdc, 0);
        assert_eq!(
            send(kdc.addr, &request(&kdc, &dev, &cname, 50)),
            expect,
            "server {offset} s behind\n{}",
            kdc.log()
        );
        if expect != 0 {
            assert!(audited(&kdc, "device_mps_error"), "{}", kdc.log());
        }
    }
}

/// One pkt-eue-7 request with a hand-made user-data (any enterprise
/// number) to the realm's stand-in, framed with its key as the KDC would;
/// the reply's user-data, or None when it stays silent for 2 s.
fn ask_stand_in(kdc: &DevKdc, user_data: &[u8]) -> Option<Vec<u8>> {
    use fqdn_map::framing::Requester;
    let kt = krb::keytab::Keytab::read_file(&kdc.realm_path("mps.keytab")).unwrap();
    let entry = kt
        .entries
        .iter()
        .find(|e| e.enctype == EncType::Aes128CtsHmacSha196 as i32)
        .or_else(|| kt.entries.first())
        .unwrap();
    let etype = EncType::from_i32(entry.enctype).unwrap();
    let key = krb::crypto::Key::new(etype, &entry.key).unwrap();
    let kdc_name = Principal::krbtgt("PKTC.TEST");
    let requester = Requester {
        kdc_name: &kdc_name,
        service: &entry.principal,
        service_key: &key,
        kvno: entry.kvno,
        checksum_type: None,
        ticket_life: 300,
    };
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(kdc.get("mps")).unwrap();
    let (datagram, pending) = requester
        .request(user_data, "127.0.0.1".parse().unwrap(), time::now())
        .unwrap();
    sock.send(&datagram).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).ok()?;
    let mps: SocketAddr = kdc.get("mps").parse().unwrap();
    Some(
        pending
            .open_reply(&buf[..n], Some(mps.ip()), time::now().0, 300)
            .unwrap(),
    )
}

/// An MTA FQDN Request's bytes with this enterprise number and MAC (hex).
fn request_for(enterprise: &str, mac: &str) -> Vec<u8> {
    let hex = format!("01{enterprise}01{mac}{}00000000", "ab".repeat(20));
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The stand-in's reply forms (PKT-SP-EUE-PROV-I05 §6.1.7): by default the
/// 1.x form for a device with one IPv4 address and Table 1 for one with
/// IPv4 + IPv6; with `reply_form = "table1"` Table 1 for both, which the
/// KDC accepts (MIT-free PKINIT through the lookup succeeds).
#[test]
fn reply_form_auto_and_table1() {
    let is_table1 = |kdc: &DevKdc, mac: &str| {
        let reply = ask_stand_in(kdc, &request_for("00000001", mac))
            .unwrap_or_else(|| panic!("no answer:\n{}", kdc.mps_log()));
        match fqdn_map::decode(&reply).unwrap() {
            fqdn_map::Message::Reply(_) => false,
            fqdn_map::Message::EueReply(_) => true,
            other => panic!("{other:?}"),
        }
    };
    let auto = realm(|_| {});
    assert!(!is_table1(&auto, "001095000001"));
    assert!(is_table1(&auto, "001095000002"));
    drop(auto);
    let table1 = DevKdc::start_prepared(Path::new(KDC), |dir, cfg| {
        *cfg = cfg
            .replace("cache_ttl_secs = 300", "cache_ttl_secs = 0")
            .replace("negative_cache_secs = 30", "negative_cache_secs = 0");
        let path = dir.join("mps-responder.toml");
        let mps = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{mps}reply_form = \"table1\"\n")).unwrap();
    });
    assert!(
        table1.mps_log().contains("reply_form=Table1"),
        "{}",
        table1.mps_log()
    );
    assert!(is_table1(&table1, "001095000001"));
    assert!(is_table1(&table1, "001095000002"));
    for (i, nonce) in [(0usize, 60u32), (1, 61)] {
        let (dev, cname) = device(&table1, i);
        assert_eq!(
            send(table1.addr, &request(&table1, &dev, &cname, nonce)),
            0,
            "device {i}\n{}\n{}",
            table1.log(),
            table1.mps_log()
        );
    }
}

/// The enterprise number (PKT-SP-EUE-PROV-I05 Table 1: "1 = PacketCable"):
/// the KDC sends 1 by default and 4491 when configured, the stand-in
/// answers either with the number it was asked with, and refuses any
/// other as malformed (no answer, an audit line with the reason).
#[test]
fn enterprise_number_1_by_default_4491_configurable_others_refused() {
    // A KDC configured for 4491: the whole exchange carries 4491.
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        // The dev realm writes the default out.
        assert!(cfg.contains("\nenterprise = 1\n"), "{cfg}");
        *cfg = cfg.replace("\nenterprise = 1\n", "\nenterprise = 4491\n");
    });
    let (dev, cname) = device(&kdc, 0);
    assert_eq!(
        send(kdc.addr, &request(&kdc, &dev, &cname, 50)),
        0,
        "{}\n{}",
        kdc.log(),
        kdc.mps_log()
    );
    for (enterprise, n) in [("00000001", 1u32), ("0000118b", 4491)] {
        let reply = ask_stand_in(&kdc, &request_for(enterprise, "001095000001"))
            .unwrap_or_else(|| panic!("no answer to enterprise {n}:\n{}", kdc.mps_log()));
        let msg = fqdn_map::decode(&reply).unwrap();
        let got = match msg {
            fqdn_map::Message::Reply(r) => r.enterprise,
            fqdn_map::Message::EueReply(r) => r.enterprise,
            other => panic!("{other:?}"),
        };
        assert_eq!(got, n);
    }
    for enterprise in ["00000007", "00000000", "ffffffff"] {
        assert_eq!(
            ask_stand_in(&kdc, &request_for(enterprise, "001095000001")),
            None
        );
    }
    let log = kdc.mps_log();
    for n in [7u32, 0, u32::MAX] {
        assert!(
            log.contains(&format!("enterprise number {n} is neither")),
            "{log}"
        );
    }
    // Any other configured value stops the KDC at start-up.
    let dir = testkit::TempDir::new("enterprise");
    testkit::init_dev_realm(Path::new(KDC), &dir.path("realm"));
    let cfg = dir.path("realm/config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("\nenterprise = 1\n", "\nenterprise = 7\n"),
    )
    .unwrap();
    let (ok, out) = testkit::run(
        std::process::Command::new(KDC).args(["check", "--config", cfg.to_str().unwrap()]),
        "",
    );
    assert!(!ok, "{out}");
    assert!(out.contains("mps.enterprise must be 1"), "{out}");
}
