//! The engine in process: a table of requests (built with `krb::client`),
//! each at a clock the KDC is set to, with the exact reply or refusal
//! (KRB-ERROR code and Reason) expected. No sockets: `Kdc::handle` directly.
//!
//! Here the AS exchange: ticket times (lifetime caps, till and rtime zero
//! or past, renewable limits, postdating refused), KDC options, the
//! pre-authentication clock skew and etype choice. The TGS exchange and
//! renewal: `engine_tgs.rs`; PKINIT: `engine_pkinit.rs`.

mod engine;

use engine::*;
use kdc::reason::Reason;
use krb::client;
use krb::crypto::EncType;
use krb::msg::flags::{Flags, bit};

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
