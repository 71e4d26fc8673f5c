//! The KDC-side client against a provisioning-server responder on real
//! loopback UDP sockets: answers (1.x and E-UE), failover to the second
//! address, timeouts with bounded retries, "unknown MAC", the in-flight
//! bound, forged datagrams that do not end a try.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fqdn_map::client::{Binding, ClientConfig, DeviceFacts, LookupError, MpsClient, MpsTarget};
use fqdn_map::framing::AcceptPolicy;
use fqdn_map::responder::{TableEntry, serve};
use krb::crypto::{EncType, Key};
use krb::principal::Principal;
use tokio::net::UdpSocket;

const MAC_1X: [u8; 6] = [0, 0x10, 0x95, 0, 0, 1];
const MAC_EUE: [u8; 6] = [0, 0x10, 0x95, 0, 0, 2];

/// A responder task answering from a small table; returns its address.
async fn responder(key: Key) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let table = Arc::new(HashMap::from([
        (
            MAC_1X,
            TableEntry {
                fqdn: "mta1.pktc.test".into(),
                addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            },
        ),
        (
            MAC_EUE,
            TableEntry {
                fqdn: "eue2.pktc.test".into(),
                addresses: vec!["::1".parse().unwrap()],
            },
        ),
    ]));
    tokio::spawn(serve(
        sock,
        move |_: &Principal, _: EncType, _: Option<u32>| Some(key.clone()),
        move |mac: [u8; 6]| std::future::ready(Ok(table.get(&mac).cloned())),
        AcceptPolicy::krbtgt_of(["PKTC.TEST"], 300),
        fqdn_map::responder::ReplyForm::Auto,
        |_, _| {},
    ));
    addr
}

fn client(max_in_flight: usize) -> MpsClient {
    let cfg = ClientConfig {
        per_try_timeout: Duration::from_millis(150),
        retries: 2,
        backoff: Duration::from_millis(20),
        max_in_flight,
        skew: 300,
        enterprise: 4491,
        checksum_type: None,
        check_sender: true,
    };
    MpsClient::new(cfg, Principal::krbtgt("PKTC.TEST"))
}

fn target(key: &Key, addresses: Vec<SocketAddr>) -> MpsTarget {
    MpsTarget {
        service: Principal::service_host("mtaprovsrvr", "mps.pktc.test", "PKTC.TEST"),
        key: key.clone(),
        kvno: 1,
        addresses,
    }
}

fn device(mac: [u8; 6]) -> DeviceFacts {
    DeviceFacts {
        mac,
        pubkey_hash: [9; 20],
        revocation_time: 0,
    }
}

/// A UDP port with nothing behind it.
async fn dead_address() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    drop(s);
    a
}

#[tokio::test]
async fn answers_in_both_reply_forms() {
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    let mps = target(&key, vec![responder(key.clone()).await]);
    let c = client(8);
    assert_eq!(
        c.lookup(&mps, &device(MAC_1X)).await.unwrap(),
        Binding {
            fqdn: "mta1.pktc.test".into(),
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        }
    );
    assert_eq!(
        c.lookup(&mps, &device(MAC_EUE)).await.unwrap(),
        Binding {
            fqdn: "eue2.pktc.test".into(),
            addresses: vec!["::1".parse().unwrap()]
        }
    );
    assert_eq!(
        c.lookup(&mps, &device([9; 6])).await,
        Err(LookupError::UnknownMac)
    );
}

#[tokio::test]
async fn fails_over_to_the_next_address() {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let mps = target(
        &key,
        vec![dead_address().await, responder(key.clone()).await],
    );
    assert_eq!(
        client(8).lookup(&mps, &device(MAC_1X)).await.unwrap().fqdn,
        "mta1.pktc.test"
    );
}

#[tokio::test]
async fn times_out_after_bounded_retries() {
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    // A server that receives but never answers; it counts what it gets.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mps = target(&key, vec![silent.local_addr().unwrap()]);
    let counter = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        while tokio::time::timeout(Duration::from_secs(2), silent.recv_from(&mut buf))
            .await
            .is_ok()
        {
            n += 1;
        }
        n
    });
    assert_eq!(
        client(8).lookup(&mps, &device(MAC_1X)).await,
        Err(LookupError::Timeout)
    );
    // One try and two retries (ClientConfig.retries = 2), no more.
    assert_eq!(counter.await.unwrap(), 3);
}

#[tokio::test]
async fn a_server_that_cannot_open_our_ticket_stays_silent_and_times_out() {
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    let addr = responder(Key::random(EncType::Aes128CtsHmacSha196)).await;
    // The responder cannot open our ticket and stays silent: a timeout.
    assert_eq!(
        client(8)
            .lookup(&target(&key, vec![addr]), &device(MAC_1X))
            .await,
        Err(LookupError::Timeout)
    );
}

#[tokio::test]
async fn lookups_in_flight_are_bounded() {
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mps = Arc::new(target(&key, vec![silent.local_addr().unwrap()]));
    let c = Arc::new(client(1));
    let (c2, m2) = (c.clone(), mps.clone());
    let first = tokio::spawn(async move { c2.lookup(&m2, &device(MAC_1X)).await });
    // Once its request reaches the server, the first lookup holds the slot.
    let mut buf = vec![0u8; 65536];
    tokio::time::timeout(Duration::from_secs(10), silent.recv_from(&mut buf))
        .await
        .expect("the first lookup's request within 10 s")
        .unwrap();
    assert_eq!(
        c.lookup(&mps, &device(MAC_EUE)).await,
        Err(LookupError::Busy)
    );
    assert_eq!(first.await.unwrap(), Err(LookupError::Timeout));
}

/// A provisioning server that answers each request twice: first a forged
/// copy of its reply (one bit of the AP-REP flipped, as a spoofer without
/// the session key would send), then the genuine one. Returns its address
/// and a counter of the requests it got.
async fn forging_then_genuine(key: Key) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use fqdn_map::framing::Responder;
    use fqdn_map::responder::respond;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        let table = HashMap::from([(
            MAC_1X,
            TableEntry {
                fqdn: "mta1.pktc.test".into(),
                addresses: vec![],
            },
        )]);
        let policy = AcceptPolicy::krbtgt_of(["PKTC.TEST"], 300);
        let replay = krb::replay::ReplayCache::new(Duration::from_secs(600), 100);
        let keys = |_: &Principal, _: EncType, _: Option<u32>| Some(key.clone());
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, peer) = sock.recv_from(&mut buf).await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let responder = Responder {
                keys: &keys,
                policy: &policy,
                replay: &replay,
                checksum_type: None,
            };
            let now = krb::msg::time::now();
            let (reply, _) = respond(
                &responder,
                &table,
                &buf[..n],
                peer.ip(),
                addr.ip(),
                now,
                fqdn_map::responder::ReplyForm::Auto,
            )
            .expect("a genuine request");
            let mut forged = reply.clone();
            // The AP-REP's last byte: the end of its ciphertext.
            let (ap_rep, _) = krb::msg::raw::read_tlv(&reply).unwrap();
            forged[ap_rep.whole.len() - 1] ^= 0x01;
            sock.send_to(&forged, peer).await.unwrap();
            sock.send_to(&reply, peer).await.unwrap();
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_forged_datagram_does_not_end_the_try() {
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    let (addr, seen) = forging_then_genuine(key.clone()).await;
    let got = client(8)
        .lookup(&target(&key, vec![addr]), &device(MAC_1X))
        .await;
    assert_eq!(got.map(|b| b.fqdn), Ok("mta1.pktc.test".to_string()));
    // Answered within the first try: no retry was needed.
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
}
