//! The engine in process: a table of requests (built with `krb::client`),
//! each at a clock the KDC is set to, with the exact reply or refusal
//! (KRB-ERROR code and Reason) expected. No sockets: `Kdc::handle` directly.
//!
//! Covers ticket times (lifetime caps, till and rtime zero or past,
//! renewable limits, postdating refused), renewal (also past the renewable
//! lifetime and of an expired TGT), KDC options and etype choice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use kdc::config::Config;
use kdc::kdc::{Clock, Kdc};
use kdc::keytab_cli::{KeySource, add_keys};
use kdc::reason::Reason;
use krb::client::{self, Credentials, RequestBody, TgsAuth};
use krb::crypto::{EncType, Key};
use krb::keytab::Keytab;
use krb::msg::consts::err;
use krb::msg::flags::{Flags, bit};
use krb::msg::time;
use krb::principal::Principal;

const REALM: &str = "PKTC.TEST";
const CLIENT_PW: &str = "engine-demo-password";
/// The start of every row's clock (2030-03-17), far from the test's own time.
const T0: i64 = 1_900_000_000;
const MAX_LIFE: i64 = 10 * 3600;
const MAX_RENEW: i64 = 7 * 86400;
const SKEW: i64 = 300;
const AES256: EncType = EncType::Aes256CtsHmacSha196;
const AES128: EncType = EncType::Aes128CtsHmacSha196;

/// The clock the KDC reads; each row sets it.
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Engine {
    kdc: Kdc,
    clock: Arc<TestClock>,
    client: Principal,
    service: Principal,
    nonce: std::cell::Cell<u32>,
}

/// What a row expects.
enum Expect {
    Refused(Reason),
    /// The reply's (end, renew-till) relative to the row's clock, and its flags.
    Issued {
        end: i64,
        renew_till: Option<i64>,
        flags: &'static [u8],
    },
}

fn engine() -> Engine {
    let cfg: Config = toml::from_str(&format!(
        "realm = \"{REALM}\"\n\
         [policy]\nclock_skew_secs = {SKEW}\n\
         enctypes = [\"aes256-cts-hmac-sha1-96\", \"aes128-cts-hmac-sha1-96\"]\n\
         [tickets]\nmax_life_secs = {MAX_LIFE}\nmax_renew_secs = {MAX_RENEW}\n\
         [cache]\nlookaside_max_bytes = 0\nreplay_max_entries = 10000\n"
    ))
    .unwrap();
    let client = Principal::parse(&format!("demo@{REALM}"), None).unwrap();
    let service = Principal::service_host("mtaprovsrvr", "mps.pktc.test", REALM);
    let mut kt = Keytab::new();
    let both = [AES256, AES128];
    add_keys(
        &mut kt,
        &Principal::krbtgt(REALM),
        &both,
        Some(1),
        &KeySource::Random,
    )
    .unwrap();
    // The service has an AES128 key only: etype choice follows it.
    add_keys(&mut kt, &service, &[AES128], Some(1), &KeySource::Random).unwrap();
    add_keys(
        &mut kt,
        &client,
        &both,
        Some(1),
        &KeySource::Password(CLIENT_PW),
    )
    .unwrap();
    let mut kdc = Kdc::new(&cfg, &kt).unwrap();
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

fn source() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 88))
}

impl Engine {
    fn next_nonce(&self) -> u32 {
        let n = self.nonce.get();
        self.nonce.set(n + 1);
        n
    }

    fn client_key(&self, etype: EncType) -> Key {
        Key::from_password(etype, CLIENT_PW.as_bytes(), &self.client.salt(), None).unwrap()
    }

    /// Answers `request` at `now`: the reply bytes, the code and the reason.
    async fn at(&self, now: i64, request: &[u8]) -> (Vec<u8>, i32, Reason) {
        self.clock.0.store(now, Ordering::Relaxed);
        let h = self.kdc.handle(request, source()).await;
        (h.reply.to_vec(), h.outcome.code, h.outcome.reason)
    }

    /// An AS-REQ for the TGT with PA-ENC-TIMESTAMP made at `ts`.
    fn as_req(
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
    async fn tgt(&self, now: i64, renew: Option<i64>) -> Credentials {
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
    fn tgs_req(
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

fn check(
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

const AS_FLAGS: &[u8] = &[bit::INITIAL, bit::PRE_AUTHENT];
const AS_RENEWABLE: &[u8] = &[bit::INITIAL, bit::PRE_AUTHENT, bit::RENEWABLE];

#[tokio::test]
async fn as_exchange_table() {
    let e = engine();
    let none = Flags::empty();
    let renewable = Flags::empty().with(bit::RENEWABLE);
    let renewable_ok = Flags::empty().with(bit::RENEWABLE_OK);
    // (name, till and rtime relative to the clock (None: 0, "as long as allowed"),
    //  options, etypes, pre-authentication time offset, expected)
    type Row = (
        &'static str,
        Option<i64>,
        Option<Option<i64>>,
        Flags,
        &'static [EncType],
        i64,
        Expect,
    );
    let rows: Vec<Row> = vec![
        (
            "till 0: the longest life",
            None,
            None,
            none,
            &[AES256],
            0,
            Expect::Issued {
                end: MAX_LIFE,
                renew_till: None,
                flags: AS_FLAGS,
            },
        ),
        (
            "till beyond max life: capped",
            Some(MAX_LIFE * 3),
            None,
            none,
            &[AES256],
            0,
            Expect::Issued {
                end: MAX_LIFE,
                renew_till: None,
                flags: AS_FLAGS,
            },
        ),
        (
            "till within max life: as asked",
            Some(3600),
            None,
            none,
            &[AES256],
            0,
            Expect::Issued {
                end: 3600,
                renew_till: None,
                flags: AS_FLAGS,
            },
        ),
        (
            "till in the past: never valid",
            Some(-60),
            None,
            none,
            &[AES256],
            0,
            Expect::Refused(Reason::NeverValid),
        ),
        (
            "till now: never valid",
            Some(0),
            None,
            none,
            &[AES256],
            0,
            Expect::Refused(Reason::NeverValid),
        ),
        (
            "renewable, rtime 0: the longest renewable life",
            None,
            Some(None),
            renewable,
            &[AES256],
            0,
            Expect::Issued {
                end: MAX_LIFE,
                renew_till: Some(MAX_RENEW),
                flags: AS_RENEWABLE,
            },
        ),
        (
            "renewable, rtime beyond max renew: capped",
            None,
            Some(Some(MAX_RENEW * 2)),
            renewable,
            &[AES256],
            0,
            Expect::Issued {
                end: MAX_LIFE,
                renew_till: Some(MAX_RENEW),
                flags: AS_RENEWABLE,
            },
        ),
        (
            "renewable, rtime before the end: not renewable",
            Some(3600),
            Some(Some(1800)),
            renewable,
            &[AES256],
            0,
            Expect::Issued {
                end: 3600,
                renew_till: None,
                flags: AS_FLAGS,
            },
        ),
        (
            "renewable, rtime in the past: not renewable",
            Some(3600),
            Some(Some(-60)),
            renewable,
            &[AES256],
            0,
            Expect::Issued {
                end: 3600,
                renew_till: None,
                flags: AS_FLAGS,
            },
        ),
        (
            "renewable-ok, till beyond max life: renewable to till",
            Some(2 * 86400),
            None,
            renewable_ok,
            &[AES256],
            0,
            Expect::Issued {
                end: MAX_LIFE,
                renew_till: Some(2 * 86400),
                flags: AS_RENEWABLE,
            },
        ),
        (
            "renewable-ok, till within max life: not renewable",
            Some(3600),
            None,
            renewable_ok,
            &[AES256],
            0,
            Expect::Issued {
                end: 3600,
                renew_till: None,
                flags: AS_FLAGS,
            },
        ),
        (
            "forwardable and proxiable granted",
            Some(3600),
            None,
            Flags::empty().with(bit::FORWARDABLE).with(bit::PROXIABLE),
            &[AES256],
            0,
            Expect::Issued {
                end: 3600,
                renew_till: None,
                flags: &[
                    bit::INITIAL,
                    bit::PRE_AUTHENT,
                    bit::FORWARDABLE,
                    bit::PROXIABLE,
                ],
            },
        ),
        (
            "postdated: refused",
            Some(3600),
            None,
            Flags::empty().with(bit::POSTDATED),
            &[AES256],
            0,
            Expect::Refused(Reason::Postdate),
        ),
        (
            "allow-postdate: refused",
            Some(3600),
            None,
            Flags::empty().with(bit::ALLOW_POSTDATE),
            &[AES256],
            0,
            Expect::Refused(Reason::Postdate),
        ),
        (
            "renew in an AS-REQ: bad option",
            Some(3600),
            None,
            Flags::empty().with(bit::RENEW),
            &[AES256],
            0,
            Expect::Refused(Reason::BadOption),
        ),
        (
            "validate in an AS-REQ: bad option",
            Some(3600),
            None,
            Flags::empty().with(bit::VALIDATE),
            &[AES256],
            0,
            Expect::Refused(Reason::BadOption),
        ),
        (
            "enc-tkt-in-skey in an AS-REQ: bad option",
            Some(3600),
            None,
            Flags::empty().with(bit::ENC_TKT_IN_SKEY),
            &[AES256],
            0,
            Expect::Refused(Reason::BadOption),
        ),
        (
            "timestamp just within the skew",
            Some(3600),
            None,
            none,
            &[AES256],
            -SKEW,
            Expect::Issued {
                end: 3600,
                renew_till: None,
                flags: AS_FLAGS,
            },
        ),
        (
            "timestamp beyond the skew",
            Some(3600),
            None,
            none,
            &[AES256],
            SKEW + 1,
            Expect::Refused(Reason::Skew),
        ),
        (
            "no permitted etype",
            Some(3600),
            None,
            none,
            &[EncType::Aes256CtsHmacSha384192],
            0,
            Expect::Refused(Reason::EtypeNosupp),
        ),
    ];
    for (name, till, rtime, options, etypes, ts, expect) in &rows {
        let now = T0 + 1000 * e.nonce.get() as i64;
        let till = till.map_or(0, |t| now + t);
        let rtime = rtime.map(|r| r.map_or(0, |r| now + r));
        let (req, nonce) = e.as_req(now + ts, till, rtime, *options, etypes);
        let got = e.at(now, &req).await;
        check(name, got, now, expect, |reply| {
            client::open_as_rep(reply, &e.client_key(etypes[0]), nonce).unwrap()
        });
    }
}

#[tokio::test]
async fn as_etype_choice() {
    let e = engine();
    // The reply is sealed in the client's first etype with a key; the
    // session key follows the client's order among the server's etypes
    // (krbtgt has both: the first).
    for (order, first) in [([AES128, AES256], AES128), ([AES256, AES128], AES256)] {
        let (req, nonce) = e.as_req(T0, 0, None, Flags::empty(), &order);
        let (reply, code, _) = e.at(T0, &req).await;
        assert_eq!(code, 0);
        let creds = client::open_as_rep(&reply, &e.client_key(first), nonce).unwrap();
        assert_eq!(creds.session_key.etype(), first, "{order:?}");
    }
    // A TGS-REQ listing AES256 first still gets an AES128 session key for
    // a service with AES128 keys only.
    let tgt = e.tgt(T0, None).await;
    let (req, nonce) = e.tgs_req(&tgt, &e.service, T0, 0, Flags::empty());
    let (reply, code, _) = e.at(T0, &req).await;
    assert_eq!(code, 0);
    let st = client::open_tgs_rep(&reply, &tgt, None, nonce).unwrap();
    assert_eq!(st.session_key.etype(), AES128);
}

#[tokio::test]
async fn tgs_exchange_table() {
    let e = engine();
    let renew = Flags::empty().with(bit::RENEW);
    let renewable_tgt = e.tgt(T0, Some(2 * 86400)).await;
    let plain_tgt = e.tgt(T0, None).await;
    let tgs = Principal::krbtgt(REALM);
    let nobody = Principal::service_host("nobody", "x.pktc.test", REALM);
    // (name, TGT, server, clock offset from T0, till offset (None: 0), options, expected)
    type Row<'a> = (
        &'static str,
        &'a Credentials,
        &'a Principal,
        i64,
        Option<i64>,
        Flags,
        Expect,
    );
    let rows: Vec<Row> = vec![
        (
            "service ticket: capped by the TGT's end",
            &plain_tgt,
            &e.service,
            3600,
            None,
            Flags::empty(),
            Expect::Issued {
                end: MAX_LIFE - 3600,
                renew_till: None,
                flags: &[bit::PRE_AUTHENT],
            },
        ),
        (
            "service ticket, till within: as asked",
            &plain_tgt,
            &e.service,
            3600,
            Some(3600 + 600),
            Flags::empty(),
            Expect::Issued {
                end: 600,
                renew_till: None,
                flags: &[bit::PRE_AUTHENT],
            },
        ),
        (
            "service ticket, till in the past: never valid",
            &plain_tgt,
            &e.service,
            3600,
            Some(3000),
            Flags::empty(),
            Expect::Refused(Reason::NeverValid),
        ),
        (
            "renewable asked of a non-renewable TGT: not renewable",
            &plain_tgt,
            &e.service,
            60,
            None,
            Flags::empty().with(bit::RENEWABLE),
            Expect::Issued {
                end: MAX_LIFE - 60,
                renew_till: None,
                flags: &[bit::PRE_AUTHENT],
            },
        ),
        (
            "renewable from a renewable TGT: capped by its renew-till",
            &renewable_tgt,
            &e.service,
            60,
            None,
            Flags::empty().with(bit::RENEWABLE),
            Expect::Issued {
                end: MAX_LIFE - 60,
                renew_till: Some(2 * 86400 - 60),
                flags: &[bit::PRE_AUTHENT, bit::RENEWABLE],
            },
        ),
        (
            "renewal before the end: same life from now",
            &renewable_tgt,
            &tgs,
            3600,
            None,
            renew,
            Expect::Issued {
                end: MAX_LIFE,
                renew_till: Some(2 * 86400 - 3600),
                flags: &[bit::PRE_AUTHENT, bit::RENEWABLE],
            },
        ),
        (
            "renewal near renew-till: ends there",
            &renewable_tgt,
            &tgs,
            2 * 86400 - 600,
            None,
            renew,
            Expect::Refused(Reason::TicketExpired),
        ),
        (
            "renewal of a non-renewable TGT: refused",
            &plain_tgt,
            &tgs,
            60,
            None,
            renew,
            Expect::Refused(Reason::NotRenewable),
        ),
        (
            "expired TGT: refused",
            &plain_tgt,
            &e.service,
            MAX_LIFE + SKEW + 1,
            None,
            Flags::empty(),
            Expect::Refused(Reason::TicketExpired),
        ),
        (
            "expired renewable TGT, renewal: KRB_AP_ERR_TKT_EXPIRED",
            &renewable_tgt,
            &tgs,
            MAX_LIFE + SKEW + 1,
            None,
            renew,
            Expect::Refused(Reason::TicketExpired),
        ),
        (
            "TGT just past its end, within the skew: the ticket would end before now",
            &plain_tgt,
            &e.service,
            MAX_LIFE + SKEW,
            None,
            Flags::empty(),
            Expect::Refused(Reason::NeverValid),
        ),
        (
            "postdated: bad option",
            &plain_tgt,
            &e.service,
            60,
            None,
            Flags::empty().with(bit::POSTDATED),
            Expect::Refused(Reason::BadOption),
        ),
        (
            "validate: bad option",
            &plain_tgt,
            &e.service,
            60,
            None,
            Flags::empty().with(bit::VALIDATE),
            Expect::Refused(Reason::BadOption),
        ),
        (
            "forwardable from a non-forwardable TGT: not granted",
            &plain_tgt,
            &e.service,
            60,
            None,
            Flags::empty().with(bit::FORWARDABLE),
            Expect::Issued {
                end: MAX_LIFE - 60,
                renew_till: None,
                flags: &[bit::PRE_AUTHENT],
            },
        ),
        (
            "unknown server",
            &plain_tgt,
            &nobody,
            60,
            None,
            Flags::empty(),
            Expect::Refused(Reason::UnknownServer),
        ),
    ];
    for (name, tgt, server, offset, till, options, expect) in &rows {
        let now = T0 + offset;
        let till = till.map_or(0, |t| T0 + t);
        let (req, nonce) = e.tgs_req(tgt, server, now, till, *options);
        let got = e.at(now, &req).await;
        check(name, got, now, expect, |reply| {
            client::open_tgs_rep(reply, tgt, None, nonce).unwrap()
        });
    }
    // An authenticator outside the skew of the KDC's clock.
    let (req, _) = e.tgs_req(
        &plain_tgt,
        &e.service,
        T0 + 60 + SKEW + 1,
        0,
        Flags::empty(),
    );
    let (_, code, reason) = e.at(T0 + 60, &req).await;
    assert_eq!((code, reason), (err::KRB_AP_ERR_SKEW, Reason::Skew));
}
