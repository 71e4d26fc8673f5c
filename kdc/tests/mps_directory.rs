//! The KDC's provisioning-server directory against pkt-eue-7 responders on
//! loopback UDP: answers, cache hits with the server gone, negative caching,
//! server choice by PA-PROV-SRV-LOCATION, and the on-timeout policy.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fqdn_map::cache::MappingCache;
use fqdn_map::client::{ClientConfig, DeviceFacts, LookupError, MpsClient, MpsTarget};
use fqdn_map::responder::{TableEntry, serve};
use kdc::directory::{DeviceDirectory, DeviceQuery};
use kdc::mps_directory::{MpsDirectory, OnTimeout};
use krb::crypto::{EncType, Key};
use krb::principal::Principal;
use tokio::net::UdpSocket;

const KNOWN: [u8; 6] = [0, 0x10, 0x95, 0, 0, 1];

/// A responder answering `fqdn` for KNOWN; the task handle stops it.
async fn responder(key: Key, fqdn: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let table = Arc::new(HashMap::from([(
        KNOWN,
        TableEntry {
            fqdn: fqdn.into(),
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        },
    )]));
    let task = tokio::spawn(serve(
        sock,
        move |_: &Principal, _: EncType, _: Option<u32>| Some(key.clone()),
        move |mac: [u8; 6]| std::future::ready(Ok(table.get(&mac).cloned())),
        fqdn_map::framing::AcceptPolicy::krbtgt_of(["PKTC.TEST"], 300),
        fqdn_map::responder::ReplyForm::Auto,
        |_, _| {},
    ));
    (addr, task)
}

fn target(fqdn: &str, key: &Key, addr: SocketAddr) -> MpsTarget {
    MpsTarget {
        service: Principal::service_host("mtaprovsrvr", fqdn, "PKTC.TEST"),
        key: key.clone(),
        kvno: 1,
        addresses: vec![addr],
    }
}

fn directory(
    servers: Vec<(&str, MpsTarget)>,
    ttl: Duration,
    on_timeout: OnTimeout,
) -> MpsDirectory {
    let cfg = ClientConfig {
        per_try_timeout: Duration::from_millis(100),
        retries: 1,
        backoff: Duration::from_millis(10),
        max_in_flight: 16,
        skew: 300,
        enterprise: 4491,
        checksum_type: None,
        check_sender: true,
    };
    MpsDirectory {
        client: MpsClient::new(cfg, Principal::krbtgt("PKTC.TEST")),
        servers: servers
            .into_iter()
            .map(|(f, t)| (f.to_string(), t))
            .collect(),
        default_server: "mps.pktc.test".into(),
        cache: MappingCache::new(ttl, Duration::from_secs(60), 1000),
        on_timeout,
        address_policy: kdc::directory::AddressPolicy::Require,
        shared: None,
    }
}

fn query(mac: [u8; 6], hint: Option<&str>) -> DeviceQuery {
    DeviceQuery {
        facts: DeviceFacts {
            mac,
            pubkey_hash: [1; 20],
            revocation_time: 0,
        },
        mps_hint: hint.map(str::to_string),
    }
}

#[tokio::test]
async fn answers_then_serves_from_cache_and_caches_unknown_macs() {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let (addr, task) = responder(key.clone(), "mta1.pktc.test").await;
    let dir = directory(
        vec![("mps.pktc.test", target("mps.pktc.test", &key, addr))],
        Duration::from_secs(60),
        OnTimeout::Refuse,
    );
    // Nothing at hand before the server was asked (and not counted as a miss).
    assert!(dir.lookup_now(&query(KNOWN, None)).is_none());
    assert_eq!(
        dir.cache.misses.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        dir.lookup(&query(KNOWN, None)).await.unwrap().fqdn,
        "mta1.pktc.test"
    );
    assert_eq!(
        dir.lookup(&query([9; 6], None)).await,
        Err(LookupError::UnknownMac)
    );
    task.abort();
    // Cached answers are at hand without waiting.
    assert_eq!(
        dir.lookup_now(&query(KNOWN, None)).unwrap().unwrap().fqdn,
        "mta1.pktc.test"
    );
    assert_eq!(
        dir.lookup_now(&query([9; 6], None)),
        Some(Err(LookupError::UnknownMac))
    );
    // Server gone: both answers still come from the cache.
    assert_eq!(
        dir.lookup(&query(KNOWN, None)).await.unwrap().fqdn,
        "mta1.pktc.test"
    );
    assert_eq!(
        dir.lookup(&query([9; 6], None)).await,
        Err(LookupError::UnknownMac)
    );
    assert_eq!(dir.cache.hits.load(std::sync::atomic::Ordering::Relaxed), 4);
}

#[tokio::test]
async fn the_device_hint_picks_the_server() {
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    let (a1, _t1) = responder(key.clone(), "from-default.pktc.test").await;
    let (a2, _t2) = responder(key.clone(), "from-mps2.pktc.test").await;
    let dir = directory(
        vec![
            ("mps.pktc.test", target("mps.pktc.test", &key, a1)),
            ("mps2.pktc.test", target("mps2.pktc.test", &key, a2)),
        ],
        Duration::from_secs(60),
        OnTimeout::Refuse,
    );
    assert_eq!(
        dir.lookup(&query(KNOWN, Some("MPS2.pktc.test.")))
            .await
            .unwrap()
            .fqdn,
        "from-mps2.pktc.test"
    );
    let other = directory(
        vec![("mps.pktc.test", target("mps.pktc.test", &key, a1))],
        Duration::from_secs(60),
        OnTimeout::Refuse,
    );
    assert_eq!(
        other
            .lookup(&query(KNOWN, Some("unknown.pktc.test")))
            .await
            .unwrap()
            .fqdn,
        "from-default.pktc.test"
    );
}

#[tokio::test]
async fn silent_server_policy() {
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    for (policy, want_ok) in [(OnTimeout::Refuse, false), (OnTimeout::AllowIfCached, true)] {
        let (addr, task) = responder(key.clone(), "mta1.pktc.test").await;
        let dir = directory(
            vec![("mps.pktc.test", target("mps.pktc.test", &key, addr))],
            Duration::from_millis(1),
            policy,
        );
        assert!(dir.lookup(&query(KNOWN, None)).await.is_ok());
        task.abort();
        tokio::time::sleep(Duration::from_millis(5)).await; // the entry expires
        let r = dir.lookup(&query(KNOWN, None)).await;
        if want_ok {
            assert_eq!(r.unwrap().fqdn, "mta1.pktc.test");
        } else {
            assert_eq!(r, Err(LookupError::Timeout));
        }
    }
}
