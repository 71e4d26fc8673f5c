//! The KDC's provisioning-server directory against pkt-eue-7 responders on
//! loopback UDP: answers, cache hits with the server gone, negative caching,
//! server choice by PA-PROV-SRV-LOCATION, the on-timeout policy, and
//! cached refusals checked again (at most once per MAC per interval).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fqdn_map::cache::MappingCache;
use fqdn_map::client::{ClientConfig, DeviceFacts, LookupError, MpsClient, MpsTarget};
use fqdn_map::responder::{TableEntry, serve};
use kdc::directory::{Claim, DeviceDirectory, DeviceQuery};
use krb::crypto::{EncType, Key};
use krb::principal::Principal;
use pktc_kdc::mps_directory::{MpsDirectory, OnTimeout};
use pktc_kdc::recheck::RecheckLimiter;
use tokio::net::UdpSocket;

const KNOWN: [u8; 6] = [0, 0x10, 0x95, 0, 0, 1];

type Table = Arc<RwLock<HashMap<[u8; 6], TableEntry>>>;

/// A responder answering `fqdn` for KNOWN; the task handle stops it.
async fn responder(key: Key, fqdn: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let table = Arc::new(RwLock::new(HashMap::from([(
        KNOWN,
        TableEntry {
            fqdn: fqdn.into(),
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        },
    )])));
    responder_with(key, table, Arc::default()).await
}

/// A responder answering from `table` (which the test may edit), counting
/// the questions it answers in `asked`.
async fn responder_with(
    key: Key,
    table: Table,
    asked: Arc<AtomicUsize>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(serve(
        sock,
        move |_: &Principal, _: EncType, _: Option<u32>| Some(key.clone()),
        move |mac: [u8; 6]| {
            asked.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(table.read().unwrap().get(&mac).cloned()))
        },
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
        rechecks: RecheckLimiter::off(),
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
        claim: None,
    }
}

/// A query from `source` for `mta/<fqdn>`.
fn claiming(mac: [u8; 6], fqdn: &str, source: [u8; 4]) -> DeviceQuery {
    DeviceQuery {
        claim: Some(Claim {
            fqdn: fqdn.into(),
            source: IpAddr::from(source),
        }),
        ..query(mac, None)
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
    assert!(dir.cached_answer(&query(KNOWN, None)).is_none());
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
        dir.cached_answer(&query(KNOWN, None))
            .unwrap()
            .unwrap()
            .fqdn,
        "mta1.pktc.test"
    );
    assert_eq!(
        dir.cached_answer(&query([9; 6], None)),
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

/// A cached answer that would refuse (address moved, MAC added) is checked
/// with the server again, at most once per MAC per interval, and the fresh
/// answer replaces it; a flood of refused requests asks nothing more.
#[tokio::test]
async fn cached_refusals_are_checked_again_at_most_once_per_interval() {
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    let entry = |addr: [u8; 4]| TableEntry {
        fqdn: "mta1.pktc.test".into(),
        addresses: vec![IpAddr::from(addr)],
    };
    let table: Table = Arc::new(RwLock::new(HashMap::from([(KNOWN, entry([10, 0, 0, 1]))])));
    let asked = Arc::new(AtomicUsize::new(0));
    let (addr, _task) = responder_with(key.clone(), table.clone(), asked.clone()).await;
    let interval = Duration::from_secs(1);
    let mut dir = directory(
        vec![("mps.pktc.test", target("mps.pktc.test", &key, addr))],
        Duration::from_secs(600),
        OnTimeout::Refuse,
    );
    dir.rechecks = RecheckLimiter::new(interval, 1000);
    let moved = claiming(KNOWN, "mta1.pktc.test", [10, 0, 0, 2]);
    let addresses = |r: Result<kdc::directory::DeviceBinding, LookupError>| r.unwrap().addresses;

    // First lookup: the server says 10.0.0.1; the device is at 10.0.0.2.
    assert_eq!(
        addresses(dir.lookup(&moved).await),
        [IpAddr::from([10, 0, 0, 1])]
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // The lease moves. An answer younger than the interval is final.
    table.write().unwrap().insert(KNOWN, entry([10, 0, 0, 2]));
    assert_eq!(
        addresses(dir.lookup(&moved).await),
        [IpAddr::from([10, 0, 0, 1])]
    );
    assert!(
        dir.cached_answer(&moved).is_some(),
        "suppressed: the cached answer"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // Once it is due, the fast path leaves it to `lookup`, which asks again
    // and replaces the cached answer.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    assert!(dir.cached_answer(&moved).is_none(), "a recheck is due");
    assert_eq!(
        addresses(dir.lookup(&moved).await),
        [IpAddr::from([10, 0, 0, 2])]
    );
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert_eq!(
        addresses(dir.cached_answer(&moved).unwrap()),
        [IpAddr::from([10, 0, 0, 2])],
        "the fresh answer is what is cached now"
    );
    // A flood of requests the answer refuses (another address, another
    // name) asks nothing more within the interval.
    for i in 0..50u8 {
        let bad = claiming(KNOWN, "someone-else.pktc.test", [10, 9, 9, i]);
        assert!(dir.lookup(&bad).await.is_ok());
    }
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    // An answer the request agrees with is never checked again.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let home = claiming(KNOWN, "mta1.pktc.test", [10, 0, 0, 2]);
    assert!(dir.cached_answer(&home).is_some());
    assert!(dir.lookup(&home).await.is_ok());
    assert_eq!(asked.load(Ordering::SeqCst), 2);

    // "Unknown MAC" cached, then the device is added: found once due.
    let new_mac = [0, 0x10, 0x95, 0, 0, 9];
    let newcomer = claiming(new_mac, "mta9.pktc.test", [10, 0, 0, 9]);
    assert_eq!(dir.lookup(&newcomer).await, Err(LookupError::UnknownMac));
    let n = asked.load(Ordering::SeqCst);
    table.write().unwrap().insert(
        new_mac,
        TableEntry {
            fqdn: "mta9.pktc.test".into(),
            addresses: vec![IpAddr::from([10, 0, 0, 9])],
        },
    );
    assert_eq!(dir.lookup(&newcomer).await, Err(LookupError::UnknownMac));
    assert_eq!(
        asked.load(Ordering::SeqCst),
        n,
        "suppressed within the interval"
    );
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    assert_eq!(dir.lookup(&newcomer).await.unwrap().fqdn, "mta9.pktc.test");
    assert_eq!(asked.load(Ordering::SeqCst), n + 1);
    // Without a claim (nothing to compare) a cached answer is not re-asked.
    assert_eq!(
        dir.lookup(&query(new_mac, None)).await.unwrap().fqdn,
        "mta9.pktc.test"
    );
    assert_eq!(asked.load(Ordering::SeqCst), n + 1);
}
