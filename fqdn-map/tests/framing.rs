//! AP-REQ/AP-REP + KRB_SAFE datagrams between the KDC (requester) and the
//! provisioning server (responder): round trips per etype family, and
//! refusals for tampering, replay, skew, wrong keys and foreign replies;
//! tickets that are not the KDC's, not for the served principal or not
//! valid now; KRB_SAFE sender addresses that are not the source.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use fqdn_map::codec::{EueReply, FqdnRequest, Message, decode};
use fqdn_map::framing::{AcceptPolicy, ApClient, FramingError, Requester, Responder};
use krb::crypto::{ChecksumType, EncType, Key, usage};
use krb::msg::flags::{Flags, bit};
use krb::msg::{self, EncTicketPart, EncryptedData, Ticket, TransitedEncoding, time};
use krb::principal::Principal;
use krb::replay::ReplayCache;

const KDC_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const MPS_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

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
    policy: AcceptPolicy,
}

fn setup(etype: EncType) -> Setup {
    Setup {
        kdc: Principal::krbtgt("PKTC.TEST"),
        service: Principal::service_host("mtaprovsrvr", "mps.pktc.test", "PKTC.TEST"),
        key: Key::random(etype),
        replay: ReplayCache::new(Duration::from_secs(600), 10_000),
        policy: AcceptPolicy::krbtgt_of(["PKTC.TEST"], 300),
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
    let keys = |p: &Principal, e: EncType, kvno: Option<u32>| {
        (p.same_name(&s.service) && e == s.key.etype() && kvno == Some(3)).then(|| s.key.clone())
    };
    let responder = Responder {
        keys: &keys,
        policy: &s.policy,
        replay: &s.replay,
        checksum_type: ctype,
    };
    let now = time::now();
    let (datagram, pending) = requester(&s, ctype)
        .request(&request_msg(), KDC_ADDR, now)
        .unwrap();
    assert_eq!(datagram[0], 0x6e, "starts with KRB_AP_REQ");
    let accepted = responder.accept(&datagram, KDC_ADDR, now.0).unwrap();
    assert_eq!(accepted.user_data, request_msg());
    assert!(matches!(
        decode(&accepted.user_data).unwrap(),
        Message::Request(_)
    ));
    assert_eq!(accepted.client, s.kdc);
    let reply = responder
        .reply(&accepted, &reply_msg(), MPS_ADDR, now)
        .unwrap();
    assert_eq!(reply[0], 0x6f, "starts with KRB_AP_REP");
    assert_eq!(
        pending
            .open_reply(&reply, Some(MPS_ADDR), now.0, 300)
            .unwrap(),
        reply_msg()
    );
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
    let keys =
        |_: &Principal, e: EncType, _kvno: Option<u32>| (e == s.key.etype()).then(|| s.key.clone());
    let responder = Responder {
        keys: &keys,
        policy: &s.policy,
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
        responder.accept(&tampered, KDC_ADDR, now.0),
        Err(FramingError::Integrity("KRB_SAFE checksum"))
    ));

    // Skewed clocks, then a ticket that is over.
    assert!(matches!(
        responder.accept(&datagram, KDC_ADDR, now.0 + 400),
        Err(FramingError::Skew)
    ));
    assert!(matches!(
        responder.accept(&datagram, KDC_ADDR, now.0 + 3600),
        Err(FramingError::TicketNotValid("expired"))
    ));

    // Accepted once, then a replay.
    let accepted = responder.accept(&datagram, KDC_ADDR, now.0).unwrap();
    assert!(matches!(
        responder.accept(&datagram, KDC_ADDR, now.0),
        Err(FramingError::Replay)
    ));

    // A responder with another key cannot open the ticket.
    let other = Key::random(EncType::Aes128CtsHmacSha196);
    let other_keys = |_: &Principal, _: EncType, _: Option<u32>| Some(other.clone());
    let fresh = ReplayCache::new(Duration::from_secs(600), 10_000);
    let wrong = Responder {
        keys: &other_keys,
        policy: &s.policy,
        replay: &fresh,
        checksum_type: None,
    };
    assert!(matches!(
        wrong.accept(&datagram, KDC_ADDR, now.0),
        Err(FramingError::Integrity("ticket"))
    ));
    let none = |_: &Principal, _: EncType, _: Option<u32>| None;
    let keyless = Responder {
        keys: &none,
        policy: &s.policy,
        replay: &fresh,
        checksum_type: None,
    };
    assert!(matches!(
        keyless.accept(&datagram, KDC_ADDR, now.0),
        Err(FramingError::NotServed(_))
    ));

    // A reply to another request is not ours.
    let reply = responder
        .reply(&accepted, &reply_msg(), MPS_ADDR, now)
        .unwrap();
    let (_, other_pending) = requester(&s, None)
        .request(&request_msg(), KDC_ADDR, (now.0 + 1, 5))
        .unwrap();
    assert!(
        other_pending
            .open_reply(&reply, Some(MPS_ADDR), now.0, 300)
            .is_err()
    );
    assert!(
        pending
            .open_reply(&reply, Some(MPS_ADDR), now.0, 300)
            .is_ok()
    );

    // Every truncation of request and reply is refused, never a panic.
    let fresh2 = ReplayCache::new(Duration::from_secs(600), 10_000);
    let r2 = Responder {
        keys: &keys,
        policy: &s.policy,
        replay: &fresh2,
        checksum_type: None,
    };
    for n in 0..datagram.len() {
        assert!(r2.accept(&datagram[..n], KDC_ADDR, now.0).is_err());
    }
    for n in 0..reply.len() {
        assert!(
            pending
                .open_reply(&reply[..n], Some(MPS_ADDR), now.0, 300)
                .is_err()
        );
    }
    // Bytes after the KRB_SAFE are refused.
    let mut longer = reply.clone();
    longer.push(0);
    assert!(matches!(
        pending.open_reply(&longer, Some(MPS_ADDR), now.0, 300),
        Err(FramingError::Malformed(_))
    ));
}

/// A ticket for `service` under `key` (kvno 3), with the given client,
/// flags and start/end times, and its session key.
fn ticket(
    key: &Key,
    service: &Principal,
    client: &Principal,
    flags: Flags,
    start: i64,
    end: i64,
) -> (Ticket, Key) {
    let session = Key::random(key.etype());
    let (cname, crealm) = client.to_rasn().unwrap();
    let (sname, srealm) = service.to_rasn().unwrap();
    let part = EncTicketPart {
        flags: flags.ticket_flags(),
        key: msg::EncryptionKey {
            r#type: session.etype().as_i32(),
            value: session.bytes().to_vec().into(),
        },
        crealm,
        cname,
        transited: TransitedEncoding {
            r#type: 1,
            contents: Vec::new().into(),
        },
        auth_time: time::from_unix(start),
        start_time: Some(time::from_unix(start)),
        end_time: time::from_unix(end),
        renew_till: None,
        caddr: None,
        authorization_data: None,
    };
    let plain = msg::encode("EncTicketPart", &part).unwrap();
    let t = Ticket {
        tkt_vno: 5.into(),
        realm: srealm,
        sname,
        enc_part: EncryptedData {
            etype: key.etype().as_i32(),
            kvno: Some(3),
            cipher: key.encrypt(usage::TICKET, &plain).into(),
        },
    };
    (t, session)
}

/// The request datagram `client` sends with `ticket` from `sender`.
fn request_with(ticket: Ticket, session: Key, client: &Principal, sender: IpAddr) -> Vec<u8> {
    let ap = ApClient {
        name: client,
        session_key: session,
        checksum_type: None,
    };
    ap.request(ticket, &request_msg(), sender, time::now())
        .unwrap()
        .0
}

/// Only the KDC's own tickets for a served principal, valid now, are
/// answered: a device's or user's `mtaprovsrvr` ticket is not.
#[test]
fn only_the_kdcs_valid_tickets_for_the_served_principal() {
    let s = setup(EncType::Aes256CtsHmacSha196);
    // The served principal's key only (a second principal shares nothing).
    let keys = |p: &Principal, e: EncType, kvno: Option<u32>| {
        (p.same_name(&s.service) && e == s.key.etype() && kvno == Some(3)).then(|| s.key.clone())
    };
    let responder = Responder {
        keys: &keys,
        policy: &s.policy,
        replay: &s.replay,
        checksum_type: None,
    };
    let now = time::now().0;
    let initial = Flags::empty().with(bit::INITIAL);
    let accept = |t: (Ticket, Key), client: &Principal| {
        responder.accept(&request_with(t.0, t.1, client, KDC_ADDR), KDC_ADDR, now)
    };

    // The KDC's ticket: answered.
    let good = ticket(&s.key, &s.service, &s.kdc, initial, now, now + 300);
    assert_eq!(accept(good, &s.kdc).unwrap().client, s.kdc);

    // A user's and a device's ticket for the same service: refused.
    for who in ["demo@PKTC.TEST", "mta/mta-001095000001.pktc.test@PKTC.TEST"] {
        let p = Principal::parse(who, None).unwrap();
        let t = ticket(&s.key, &s.service, &p, Flags::empty(), now, now + 300);
        let r = accept(t, &p);
        assert!(
            matches!(&r, Err(FramingError::NotKdc(c)) if c == who),
            "{who}: {:?}",
            r.err()
        );
    }

    // A ticket naming another server (even under the same key) is not
    // opened: the key is looked up by the ticket's server name.
    let other = Principal::service_host("mtaprovsrvr", "other.pktc.test", "PKTC.TEST");
    let t = ticket(&s.key, &other, &s.kdc, initial, now, now + 300);
    assert!(
        matches!(accept(t, &s.kdc), Err(FramingError::NotServed(n)) if n.contains("other.pktc.test"))
    );

    // Not valid now: INVALID, postdated into the future, over.
    let invalid = ticket(
        &s.key,
        &s.service,
        &s.kdc,
        initial.with(bit::INVALID),
        now,
        now + 300,
    );
    assert!(matches!(
        accept(invalid, &s.kdc),
        Err(FramingError::TicketNotValid("marked INVALID"))
    ));
    let postdated = ticket(
        &s.key,
        &s.service,
        &s.kdc,
        initial.with(bit::POSTDATED),
        now + 3600,
        now + 7200,
    );
    assert!(matches!(
        accept(postdated, &s.kdc),
        Err(FramingError::TicketNotValid("not yet valid"))
    ));
    let over = ticket(&s.key, &s.service, &s.kdc, initial, now - 7200, now - 3600);
    assert!(matches!(
        accept(over, &s.kdc),
        Err(FramingError::TicketNotValid("expired"))
    ));

    // A configured KDC name replaces the default.
    let named = AcceptPolicy {
        kdc_names: vec![Principal::parse("pktc-kdc/kdc.pktc.test@PKTC.TEST", None).unwrap()],
        ..s.policy.clone()
    };
    let fresh = ReplayCache::new(Duration::from_secs(600), 10_000);
    let r2 = Responder {
        keys: &keys,
        policy: &named,
        replay: &fresh,
        checksum_type: None,
    };
    let t = ticket(&s.key, &s.service, &s.kdc, initial, now, now + 300);
    assert!(matches!(
        r2.accept(&request_with(t.0, t.1, &s.kdc, KDC_ADDR), KDC_ADDR, now),
        Err(FramingError::NotKdc(_))
    ));
}

/// The KRB_SAFE s-address must be where the datagram came from, both ways
/// (IPv4-mapped IPv6 sources count as IPv4), unless the check is off.
#[test]
fn krb_safe_sender_address_must_be_the_source() {
    let s = setup(EncType::Aes128CtsHmacSha196);
    let keys = |_: &Principal, _: EncType, _: Option<u32>| Some(s.key.clone());
    let responder = Responder {
        keys: &keys,
        policy: &s.policy,
        replay: &s.replay,
        checksum_type: None,
    };
    let now = time::now();
    let (datagram, pending) = requester(&s, None)
        .request(&request_msg(), KDC_ADDR, now)
        .unwrap();
    let elsewhere: IpAddr = "192.0.2.66".parse().unwrap();
    assert!(matches!(
        responder.accept(&datagram, elsewhere, now.0),
        Err(FramingError::SenderAddress { from, .. }) if from == elsewhere
    ));
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    let accepted = responder.accept(&datagram, mapped, now.0).unwrap();

    let reply = responder
        .reply(&accepted, &reply_msg(), MPS_ADDR, now)
        .unwrap();
    assert!(matches!(
        pending.open_reply(&reply, Some(elsewhere), now.0, 300),
        Err(FramingError::SenderAddress { .. })
    ));
    // Without the check (NAT between the two), any source will do.
    assert_eq!(
        pending.open_reply(&reply, None, now.0, 300).unwrap(),
        reply_msg()
    );
    let lax = AcceptPolicy {
        check_sender: false,
        ..s.policy.clone()
    };
    let fresh = ReplayCache::new(Duration::from_secs(600), 10_000);
    let r2 = Responder {
        keys: &keys,
        policy: &lax,
        replay: &fresh,
        checksum_type: None,
    };
    assert!(r2.accept(&datagram, elsewhere, now.0).is_ok());
}
