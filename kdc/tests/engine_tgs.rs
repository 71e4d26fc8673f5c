//! The TGS exchange in process (see `engine/`): service tickets capped by
//! the TGT, renewal (also past the renewable lifetime and of an expired
//! TGT), options and the authenticator's clock skew.

mod engine;

use engine::*;
use kdc::reason::Reason;
use krb::client::{self, Credentials};
use krb::msg::consts::err;
use krb::msg::flags::{Flags, bit};
use krb::principal::Principal;

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
