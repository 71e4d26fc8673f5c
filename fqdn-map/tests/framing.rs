//! AP-REQ/AP-REP + KRB_SAFE datagrams between the KDC (requester) and the
//! provisioning server (responder): round trips per etype family, and
//! refusals for tampering, replay, skew, wrong keys and foreign replies.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use fqdn_map::codec::{EueReply, FqdnRequest, Message, decode};
use fqdn_map::framing::{FramingError, Requester, Responder};
use krb::crypto::{ChecksumType, EncType, Key};
use krb::msg::time;
use krb::principal::Principal;
use krb::replay::ReplayCache;

const KDC_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

fn request_msg() -> Vec<u8> {
    Message::Request(FqdnRequest {
        enterprise: 4491,
        mac: [0, 0x10, 0x95, 0, 0, 1],
        pubkey_hash: [7; 20],
        revocation_time: 0,
    })
    .encode()
    .unwrap()
}

fn reply_msg() -> Vec<u8> {
    Message::EueReply(EueReply {
        enterprise: 4491,
        ipv4: vec![Ipv4Addr::new(192, 0, 2, 9)],
        ipv6: vec!["2001:db8::9".parse().unwrap()],
        fqdn: "mta-001095000001.pktc.test".into(),
    })
    .encode()
    .unwrap()
}

struct Setup {
    kdc: Principal,
    service: Principal,
    key: Key,
    replay: ReplayCache,
}

fn setup(etype: EncType) -> Setup {
    Setup {
        kdc: Principal::krbtgt("PKTC.TEST"),
        service: Principal::service_host("mtaprovsrvr", "mps.pktc.test", "PKTC.TEST"),
        key: Key::random(etype),
        replay: ReplayCache::new(Duration::from_secs(600), 10_000),
    }
}

fn requester<'a>(s: &'a Setup, ctype: Option<ChecksumType>) -> Requester<'a> {
    Requester {
        kdc_name: &s.kdc,
        service: &s.service,
        service_key: &s.key,
        kvno: 3,
        checksum_type: ctype,
        ticket_life: 300,
    }
}

fn round_trip(etype: EncType, ctype: Option<ChecksumType>) {
    let s = setup(etype);
    let keys = |e: EncType, kvno: Option<u32>| {
        (e == s.key.etype() && kvno == Some(3)).then(|| s.key.clone())
    };
    let responder = Responder {
        keys: &keys,
        skew: 300,
        replay: &s.replay,
        checksum_type: ctype,
    };
    let now = time::now();
    let (datagram, pending) = requester(&s, ctype)
        .request(&request_msg(), KDC_ADDR, now)
        .unwrap();
    assert_eq!(datagram[0], 0x6e, "starts with KRB_AP_REQ");
    let accepted = responder.accept(&datagram, now.0).unwrap();
    assert_eq!(accepted.user_data, request_msg());
    assert!(matches!(
        decode(&accepted.user_data).unwrap(),
        Message::Request(_)
    ));
    assert_eq!(accepted.client, s.kdc);
    let reply = responder
        .reply(&accepted, &reply_msg(), "127.0.0.2".parse().unwrap(), now)
        .unwrap();
    assert_eq!(reply[0], 0x6f, "starts with KRB_AP_REP");
    assert_eq!(pending.open_reply(&reply, now.0, 300).unwrap(), reply_msg());
}

#[test]
fn round_trips_per_etype() {
    for e in EncType::ALL {
        round_trip(e, None);
    }
    // The checksum type named explicitly (the INFERRED hmac-sha1-96-aes128 and hmac-sha1-des3-kd).
    round_trip(
        EncType::Aes128CtsHmacSha196,
        Some(ChecksumType::HmacSha196Aes128),
    );
    round_trip(EncType::Des3CbcSha1Kd, Some(ChecksumType::HmacSha1Des3Kd));
    // The configured type picks the session key family, whatever the service key's.
    round_trip(
        EncType::Aes256CtsHmacSha384192,
        Some(ChecksumType::HmacSha1Des3Kd),
    );
    round_trip(
        EncType::Aes256CtsHmacSha196,
        Some(ChecksumType::HmacSha196Aes128),
    );
}

#[test]
fn refusals() {
    let s = setup(EncType::Aes128CtsHmacSha196);
    let keys = |e: EncType, _kvno: Option<u32>| (e == s.key.etype()).then(|| s.key.clone());
    let responder = Responder {
        keys: &keys,
        skew: 300,
        replay: &s.replay,
        checksum_type: None,
    };
    let now = time::now();
    let (datagram, pending) = requester(&s, None)
        .request(&request_msg(), KDC_ADDR, now)
        .unwrap();

    // Tampered user-data inside the KRB_SAFE.
    let mut tampered = datagram.clone();
    let at = tampered
        .windows(6)
        .rposition(|w| w == [0x00, 0x10, 0x95, 0, 0, 1])
        .unwrap();
    tampered[at + 5] ^= 1;
    assert!(matches!(
        responder.accept(&tampered, now.0),
        Err(FramingError::Integrity("KRB_SAFE checksum"))
    ));

    // Skewed clocks.
    assert!(matches!(
        responder.accept(&datagram, now.0 + 3600),
        Err(FramingError::Skew)
    ));

    // Accepted once, then a replay.
    let accepted = responder.accept(&datagram, now.0).unwrap();
    assert!(matches!(
        responder.accept(&datagram, now.0),
        Err(FramingError::Replay)
    ));

    // A responder with another key cannot open the ticket.
    let other = Key::random(EncType::Aes128CtsHmacSha196);
    let other_keys = |_: EncType, _: Option<u32>| Some(other.clone());
    let fresh = ReplayCache::new(Duration::from_secs(600), 10_000);
    let wrong = Responder {
        keys: &other_keys,
        skew: 300,
        replay: &fresh,
        checksum_type: None,
    };
    assert!(matches!(
        wrong.accept(&datagram, now.0),
        Err(FramingError::Integrity("ticket"))
    ));
    let none = |_: EncType, _: Option<u32>| None;
    let keyless = Responder {
        keys: &none,
        skew: 300,
        replay: &fresh,
        checksum_type: None,
    };
    assert!(matches!(
        keyless.accept(&datagram, now.0),
        Err(FramingError::NoKey { .. })
    ));

    // A reply to another request is not ours.
    let reply = responder
        .reply(&accepted, &reply_msg(), KDC_ADDR, now)
        .unwrap();
    let (_, other_pending) = requester(&s, None)
        .request(&request_msg(), KDC_ADDR, (now.0 + 1, 5))
        .unwrap();
    assert!(other_pending.open_reply(&reply, now.0, 300).is_err());
    assert!(pending.open_reply(&reply, now.0, 300).is_ok());

    // Every truncation of request and reply is refused, never a panic.
    let fresh2 = ReplayCache::new(Duration::from_secs(600), 10_000);
    let r2 = Responder {
        keys: &keys,
        skew: 300,
        replay: &fresh2,
        checksum_type: None,
    };
    for n in 0..datagram.len() {
        assert!(r2.accept(&datagram[..n], now.0).is_err());
    }
    for n in 0..reply.len() {
        assert!(pending.open_reply(&reply[..n], now.0, 300).is_err());
    }
    // Bytes after the KRB_SAFE are refused.
    let mut longer = reply.clone();
    longer.push(0);
    assert!(matches!(
        pending.open_reply(&longer, now.0, 300),
        Err(FramingError::Malformed(_))
    ));
}
