//! pkt-eue-7 decoders: the MTA FQDN message codec and both sides of the
//! AP-REQ/AP-REP + KRB_SAFE framing. None may panic; whatever decodes must
//! re-encode to the same message.

#![no_main]

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use fqdn_map::codec::decode;
use fqdn_map::framing::{AcceptPolicy, Requester, Responder};
use krb::crypto::{EncType, Key};
use krb::principal::Principal;
use krb::replay::ReplayCache;
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<Key> =
    LazyLock::new(|| Key::new(EncType::Aes128CtsHmacSha196, &[0x42; 16]).expect("key"));
static POLICY: LazyLock<AcceptPolicy> =
    LazyLock::new(|| AcceptPolicy::krbtgt_of(["PKTC.TEST"], i64::MAX / 4));
static REPLAY: LazyLock<ReplayCache> =
    LazyLock::new(|| ReplayCache::new(Duration::from_secs(600), 10_000));

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(data) {
        let again = m.encode().expect("a decoded message re-encodes");
        assert_eq!(decode(&again).expect("re-encoded message decodes"), m);
    }
    let keys = |_: &Principal, _: EncType, _: Option<u32>| Some(KEY.clone());
    let responder = Responder { keys: &keys, policy: &POLICY, replay: &REPLAY, checksum_type: None };
    let _ = responder.accept(data, IpAddr::from([127, 0, 0, 1]), 0);
    // A reply checked against a pending request of ours.
    let kdc = Principal::krbtgt("PKTC.TEST");
    let svc = Principal::service_host("mtaprovsrvr", "mps.pktc.test", "PKTC.TEST");
    let requester = Requester { kdc_name: &kdc, service: &svc, service_key: &KEY, kvno: 1, checksum_type: None, ticket_life: 300 };
    if let Ok((_, pending)) = requester.request(b"x", "127.0.0.1".parse().expect("ip"), (0, 0)) {
        let _ = pending.open_reply(data, Some(IpAddr::from([127, 0, 0, 1])), 0, i64::MAX / 4);
    }
});
