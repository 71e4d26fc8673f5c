//! The engine table's KDC: keyed principals, a clock the rows set, and
//! request builders (`krb::client`); each row checks the exact reply times
//! and flags or the KRB-ERROR code and Reason.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use kdc::db::PrincipalDb;
use kdc::kdc::{Clock, Kdc, KdcSettings};
use kdc::rate_limit::{RateLimiter, Rates};
use kdc::reason::Reason;
use krb::client::{self, Credentials, RequestBody, TgsAuth};
use krb::crypto::{EncType, Key};
use krb::keytab::{Keytab, KeytabEntry};
use krb::msg::flags::{Flags, bit};
use krb::msg::time;
use krb::principal::Principal;

pub const REALM: &str = "PKTC.TEST";
pub const CLIENT_PW: &str = "engine-demo-password";
/// The start of every row's clock (2030-03-17), far from the test's own time.
pub const T0: i64 = 1_900_000_000;
pub const MAX_LIFE: i64 = 10 * 3600;
pub const MAX_RENEW: i64 = 7 * 86400;
pub const SKEW: i64 = 300;
pub const AES256: EncType = EncType::Aes256CtsHmacSha196;
pub const AES128: EncType = EncType::Aes128CtsHmacSha196;

/// The clock the KDC reads; each row sets it.
pub struct TestClock(pub AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Engine {
    pub kdc: Kdc,
    pub clock: Arc<TestClock>,
    pub client: Principal,
    pub service: Principal,
    pub nonce: std::cell::Cell<u32>,
}

/// What a row expects.
pub enum Expect {
    Refused(Reason),
    /// The reply's (end, renew-till) relative to the row's clock, and its flags.
    Issued {
        end: i64,
        renew_till: Option<i64>,
        flags: &'static [u8],
    },
}

/// Keys for `principal` in each of `etypes`: random, or from `password`.
fn add_keys(kt: &mut Keytab, principal: &Principal, etypes: &[EncType], password: Option<&str>) {
    for &etype in etypes {
        let key = match password {
            None => Key::random(etype),
            Some(pw) => Key::from_password(etype, pw.as_bytes(), &principal.salt(), None).unwrap(),
        };
        kt.entries.push(KeytabEntry {
            principal: principal.clone(),
            timestamp: 0,
            kvno: 1,
            enctype: etype.as_i32(),
            key: zeroize::Zeroizing::new(key.bytes().to_vec()),
        });
    }
}

pub fn engine() -> Engine {
    engine_with(None)
}

/// The engine, with PKINIT when `pkinit` is given.
pub fn engine_with(pkinit: Option<kdc::pkinit_as::PkinitState>) -> Engine {
    let settings = KdcSettings {
        realm: REALM.to_string(),
        enctypes: vec![AES256, AES128],
        clock_skew_secs: SKEW as u64,
        max_life_secs: MAX_LIFE as u64,
        max_renew_secs: MAX_RENEW as u64,
        require_preauth: true,
        max_request_bytes: 32 * 1024,
        max_udp_reply_bytes: 65507,
        lookaside_ttl_secs: 120,
        lookaside_max_bytes: 0,
        replay_max_entries: 10000,
    };
    let client = Principal::parse(&format!("demo@{REALM}"), None).unwrap();
    let service = Principal::service_host("mtaprovsrvr", "mps.pktc.test", REALM);
    let mut kt = Keytab::new();
    let both = [AES256, AES128];
    add_keys(&mut kt, &Principal::krbtgt(REALM), &both, None);
    // The service has an AES128 key only: etype choice follows it.
    add_keys(&mut kt, &service, &[AES128], None);
    add_keys(&mut kt, &client, &both, Some(CLIENT_PW));
    let (db, _) = PrincipalDb::from_keytab(&kt, REALM, &settings.enctypes).unwrap();
    let rates = Rates {
        per_source_rate: 0.0,
        per_source_burst: 0.0,
        global_rate: 0.0,
        global_burst: 0.0,
        max_sources: 1,
    };
    let mut kdc = Kdc::new(settings, db, RateLimiter::new(&rates), pkinit);
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    kdc.clock = clock.clone();
    Engine {
        kdc,
        clock,
        client,
        service,
        nonce: std::cell::Cell::new(1),
    }
}

pub fn source() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 88))
}

impl Engine {
    pub fn next_nonce(&self) -> u32 {
        let n = self.nonce.get();
        self.nonce.set(n + 1);
        n
    }

    pub fn client_key(&self, etype: EncType) -> Key {
        Key::from_password(etype, CLIENT_PW.as_bytes(), &self.client.salt(), None).unwrap()
    }

    /// Answers `request` at `now`: the reply bytes, the code and the reason.
    pub async fn at(&self, now: i64, request: &[u8]) -> (Vec<u8>, i32, Reason) {
        self.clock.0.store(now, Ordering::Relaxed);
        let h = self.kdc.handle(request, source()).await;
        (h.reply.to_vec(), h.outcome.code, h.outcome.reason)
    }

    /// An AS-REQ for the TGT with PA-ENC-TIMESTAMP made at `ts`.
    pub fn as_req(
        &self,
        ts: i64,
        till: i64,
        rtime: Option<i64>,
        options: Flags,
        etypes: &[EncType],
    ) -> (Vec<u8>, u32) {
        let nonce = self.next_nonce();
        let tgs = Principal::krbtgt(REALM);
        let body = RequestBody {
            client: Some(&self.client),
            server: &tgs,
            etypes,
            nonce,
            till,
            rtime,
            options,
        };
        let pa = client::enc_timestamp(&self.client_key(etypes[0]), ts, 0).unwrap();
        (client::as_req(&body, vec![pa]).unwrap(), nonce)
    }

    /// A TGT issued at `now` (renewable for `renew` seconds when Some).
    pub async fn tgt(&self, now: i64, renew: Option<i64>) -> Credentials {
        let options = match renew {
            Some(_) => Flags::empty().with(bit::RENEWABLE),
            None => Flags::empty(),
        };
        let (req, nonce) = self.as_req(now, 0, renew.map(|r| now + r), options, &[AES256]);
        let (reply, code, reason) = self.at(now, &req).await;
        assert_eq!((code, reason), (0, Reason::Ok));
        client::open_as_rep(&reply, &self.client_key(AES256), nonce).unwrap()
    }

    /// A TGS-REQ under `tgt` for `server`, its authenticator made at `ts`.
    pub fn tgs_req(
        &self,
        tgt: &Credentials,
        server: &Principal,
        ts: i64,
        till: i64,
        options: Flags,
    ) -> (Vec<u8>, u32) {
        let nonce = self.next_nonce();
        let body = RequestBody {
            client: None,
            server,
            etypes: &[AES256, AES128],
            nonce,
            till,
            rtime: None,
            options,
        };
        let auth = TgsAuth {
            now: ts,
            usec: 0,
            subkey: None,
        };
        (client::tgs_req(tgt, &body, &auth).unwrap(), nonce)
    }
}

pub fn check(
    name: &str,
    got: (Vec<u8>, i32, Reason),
    now: i64,
    expect: &Expect,
    open: impl Fn(&[u8]) -> Credentials,
) {
    let (reply, code, reason) = got;
    match expect {
        Expect::Refused(want) => {
            assert_eq!((code, reason), (want.code(), *want), "{name}");
            let e = client::krb_error(&reply).unwrap_or_else(|| panic!("{name}: not a KRB-ERROR"));
            assert_eq!(e.error_code, want.code(), "{name}");
            // Stamped by the KDC's clock, not the system's.
            assert_eq!(time::to_unix(&e.stime), now, "{name}: stime");
        }
        Expect::Issued {
            end,
            renew_till,
            flags,
        } => {
            assert_eq!((code, reason), (0, Reason::Ok), "{name}");
            let creds = open(&reply);
            let part = &creds.part;
            assert_eq!(time::to_unix(&part.end_time) - now, *end, "{name}: end");
            assert_eq!(
                part.renew_till.as_ref().map(|t| time::to_unix(t) - now),
                *renew_till,
                "{name}: renew-till"
            );
            let got = Flags::from_bits(&part.flags.0);
            for b in 0..32u8 {
                assert_eq!(got.has(b), flags.contains(&b), "{name}: flag {b}");
            }
        }
    }
}
