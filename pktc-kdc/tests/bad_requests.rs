//! A table of bad requests sent to a `pktc-kdc` process over real sockets,
//! each asserting the exact KRB-ERROR code and the audit reason, and that
//! the server keeps serving afterwards. TGS refusals of what a TGT holder
//! may not do: renew an expired TGT, add KDC-only authorization data, use
//! a TGT from an address it does not name.

use std::path::Path;
use std::time::Duration;

mod common;

use common::{AES256, KDC, Realm, edit_ap_req, error_code, rand_nonce, tail};
use krb::client::{self, RequestBody, TgsAuth};
use krb::crypto::{Key, usage};
use krb::msg::consts::{err, padata};
use krb::msg::flags::{Flags, bit};
use krb::msg::{self, EncryptedData, HostAddress, PaData, TgsReq, asn1, time};
use krb::principal::Principal;
use testkit::DevKdc;
#[test]
fn bad_request_table() {
    let r = Realm::start(DevKdc::start(Path::new(KDC)));
    let tgt = r.tgt(client::default_options());
    let plain_tgt = r.tgt(Flags::empty().with(bit::FORWARDABLE));
    // A service ticket, to present where a TGT is required.
    let nonce = rand_nonce();
    let svc_reply = r
        .kdc
        .udp(&r.tgs_req(&tgt, &r.service, nonce, 0, client::default_options()));
    let svc_ticket = client::open_tgs_rep(&svc_reply, &tgt, None, nonce).expect("TGS exchange");

    let good_as = r.as_req(rand_nonce(), 0, client::default_options());
    let good_tgs = r.tgs_req(&tgt, &r.service, rand_nonce(), 0, client::default_options());
    let unknown = Principal::parse("nobody@PKTC.TEST", None).unwrap();
    let unknown_svc = Principal::parse("host/nowhere.pktc.test@PKTC.TEST", None).unwrap();

    let mut oversized = vec![0x6a, 0x83, 0x00, 0x9c, 0x40];
    oversized.resize(40_000, 0);

    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        (
            "truncated AS-REQ",
            good_as[..good_as.len() / 2].to_vec(),
            err::KRB_ERR_GENERIC,
            "malformed_request",
        ),
        (
            "truncated TGS-REQ",
            good_tgs[..good_tgs.len() - 7].to_vec(),
            err::KRB_ERR_GENERIC,
            "malformed_request",
        ),
        (
            "not Kerberos",
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            err::KRB_AP_ERR_MSG_TYPE,
            "not_kdc_request",
        ),
        (
            "empty datagram",
            Vec::new(),
            err::KRB_AP_ERR_MSG_TYPE,
            "not_kdc_request",
        ),
        (
            "oversized datagram",
            oversized,
            err::KRB_ERR_FIELD_TOOLONG,
            "oversized",
        ),
        (
            "wrong pvno",
            r.as_req_with(1, |q| q.0.pvno = 4.into()),
            err::KDC_ERR_BAD_PVNO,
            "bad_pvno",
        ),
        (
            "wrong msg-type",
            r.as_req_with(2, |q| q.0.msg_type = 12.into()),
            err::KRB_AP_ERR_MSG_TYPE,
            "bad_msg_type",
        ),
        (
            "unknown etype only",
            r.as_req_with(3, |q| q.0.req_body.etype = vec![99, 23]),
            err::KDC_ERR_ETYPE_NOSUPP,
            "etype_nosupp",
        ),
        (
            "skewed timestamp",
            r.as_req(4, -3600, client::default_options()),
            err::KRB_AP_ERR_SKEW,
            "skew",
        ),
        (
            "wrong password",
            {
                let wrong = Key::from_password(AES256, b"wrong", &r.client.salt(), None).unwrap();
                let (now, usec) = time::now();
                let pa = client::enc_timestamp(&wrong, now, usec).unwrap();
                client::as_req(&r.body(&r.tgs, 5, client::default_options()), vec![pa]).unwrap()
            },
            err::KDC_ERR_PREAUTH_FAILED,
            "preauth_failed",
        ),
        (
            "no pre-authentication",
            client::as_req(&r.body(&r.tgs, 6, client::default_options()), vec![]).unwrap(),
            err::KDC_ERR_PREAUTH_REQUIRED,
            "preauth_required",
        ),
        (
            "unknown client",
            r.as_req_with(7, |q| {
                q.0.req_body.cname = Some(unknown.to_rasn().unwrap().0)
            }),
            err::KDC_ERR_C_PRINCIPAL_UNKNOWN,
            "unknown_client",
        ),
        (
            "no cname",
            r.as_req_with(8, |q| q.0.req_body.cname = None),
            err::KDC_ERR_C_PRINCIPAL_UNKNOWN,
            "no_cname",
        ),
        (
            "unknown server",
            r.as_req_with(9, |q| {
                q.0.req_body.sname = Some(unknown_svc.to_rasn().unwrap().0)
            }),
            err::KDC_ERR_S_PRINCIPAL_UNKNOWN,
            "unknown_server",
        ),
        (
            "wrong realm (AS)",
            r.as_req_with(10, |q| q.0.req_body.realm = msg::kstring("OTHER.TEST")),
            err::KDC_ERR_WRONG_REALM,
            "wrong_realm",
        ),
        (
            "postdated",
            r.as_req_with(11, |q| {
                q.0.req_body.kdc_options = Flags::empty().with(bit::POSTDATED).kdc_options()
            }),
            err::KDC_ERR_CANNOT_POSTDATE,
            "postdate",
        ),
        (
            "wrong realm (TGS)",
            r.tgs_req_with(&tgt, 20, |q| {
                q.0.req_body.realm = msg::kstring("OTHER.TEST")
            }),
            err::KDC_ERR_WRONG_REALM,
            "wrong_realm",
        ),
        (
            "skewed authenticator",
            r.tgs_req(&tgt, &r.service, 21, -3600, client::default_options()),
            err::KRB_AP_ERR_SKEW,
            "skew",
        ),
        (
            "tampered ticket",
            r.tgs_req_with(&tgt, 22, |q| {
                edit_ap_req(q, |ap| {
                    let mut c = ap.ticket.enc_part.cipher.to_vec();
                    c[20] ^= 0x01;
                    ap.ticket.enc_part.cipher = c.into();
                })
            }),
            err::KRB_AP_ERR_BAD_INTEGRITY,
            "ticket_integrity",
        ),
        (
            "tampered authenticator",
            r.tgs_req_with(&tgt, 23, |q| {
                edit_ap_req(q, |ap| {
                    let mut c = ap.authenticator.cipher.to_vec();
                    let n = c.len() - 1;
                    c[n] ^= 0x80;
                    ap.authenticator.cipher = c.into();
                })
            }),
            err::KRB_AP_ERR_BAD_INTEGRITY,
            "authenticator_integrity",
        ),
        (
            "tampered request body",
            r.tgs_req_with(&tgt, 24, |q| q.0.req_body.nonce ^= 1),
            err::KRB_AP_ERR_MODIFIED,
            "checksum_mismatch",
        ),
        (
            "no PA-TGS-REQ",
            r.tgs_req_with(&tgt, 25, |q| {
                q.0.padata = Some(vec![PaData {
                    r#type: padata::PAC_REQUEST,
                    value: vec![0x30, 0x00].into(),
                }])
            }),
            err::KDC_ERR_PADATA_TYPE_NOSUPP,
            "no_ap_req",
        ),
        (
            "unknown service",
            r.tgs_req(&tgt, &unknown_svc, 26, 0, client::default_options()),
            err::KDC_ERR_S_PRINCIPAL_UNKNOWN,
            "unknown_server",
        ),
        (
            "TGS body etypes edited after signing",
            r.tgs_req_with(&tgt, 27, |q| q.0.req_body.etype = vec![99]),
            err::KRB_AP_ERR_MODIFIED,
            "checksum_mismatch",
        ),
        (
            "renew a non-renewable TGT",
            r.tgs_req(&plain_tgt, &r.tgs, 28, 0, Flags::empty().with(bit::RENEW)),
            err::KDC_ERR_BADOPTION,
            "not_renewable",
        ),
        (
            "service ticket as TGT",
            r.tgs_req(&svc_ticket, &r.service, 29, 0, client::default_options()),
            err::KRB_AP_ERR_NOT_US,
            "ticket_not_tgt",
        ),
        (
            "ticket with unknown kvno",
            r.tgs_req_with(&tgt, 30, |q| {
                edit_ap_req(q, |ap| ap.ticket.enc_part.kvno = Some(77))
            }),
            err::KRB_AP_ERR_BADKEYVER,
            "ticket_kvno_unknown",
        ),
        (
            "AP-REQ with wrong pvno",
            r.tgs_req_with(&tgt, 31, |q| edit_ap_req(q, |ap| ap.pvno = 6.into())),
            err::KRB_AP_ERR_BADVERSION,
            "bad_ap_pvno",
        ),
    ];
    for (name, request, code, reason) in &cases {
        let reply = r.kdc.udp(request);
        assert_eq!(
            error_code(&reply),
            *code,
            "case {name:?}\nKDC log tail:\n{}",
            tail(&r.kdc)
        );
        assert!(
            r.kdc
                .wait_audit(|l| l.contains(&format!("error_code={code}"))
                    && l.contains(&format!("reason=\"{reason}\""))),
            "case {name:?}: no audit line with code {code} and reason {reason}"
        );
    }

    // A correctly signed TGS-REQ that lists no etype we support.
    let no_etypes = RequestBody {
        etypes: &[],
        ..r.body(&r.service, 32, client::default_options())
    };
    let auth = TgsAuth {
        now: time::now().0,
        usec: 0,
        subkey: None,
    };
    let reply = r
        .kdc
        .udp(&client::tgs_req(&tgt, &no_etypes, &auth).unwrap());
    assert_eq!(
        error_code(&reply),
        err::KDC_ERR_ETYPE_NOSUPP,
        "{}",
        tail(&r.kdc)
    );

    // Over TCP: a frame length beyond the limit, and the reserved high bit.
    for prefix in [1_000_000u32.to_be_bytes(), 0x8000_0010u32.to_be_bytes()] {
        let reply = r
            .kdc
            .tcp_raw(&prefix)
            .expect("a KRB-ERROR before the close");
        assert_eq!(error_code(&reply), err::KRB_ERR_FIELD_TOOLONG);
    }
    assert_eq!(error_code(&r.kdc.tcp(&good_as[..30])), err::KRB_ERR_GENERIC);

    // Still serving: a fresh AS and TGS exchange succeed, over UDP and TCP.
    let tgt2 = r.tgt(client::default_options());
    let nonce = rand_nonce();
    let reply = r
        .kdc
        .tcp(&r.tgs_req(&tgt2, &r.service, nonce, 0, client::default_options()));
    client::open_tgs_rep(&reply, &tgt2, None, nonce).expect("TGS after the bad requests");
}

#[test]
fn replayed_authenticator_is_refused_but_a_retransmit_is_answered() {
    let r = Realm::start(DevKdc::start(Path::new(KDC)));
    let tgt = r.tgt(client::default_options());
    let nonce = rand_nonce();
    let first = r.tgs_req(&tgt, &r.service, nonce, 0, client::default_options());
    let reply1 = r.kdc.udp(&first);
    client::open_tgs_rep(&reply1, &tgt, None, nonce).expect("first TGS");

    // A byte-identical retransmit gets the cached reply, not KRB_AP_ERR_REPEAT.
    let reply2 = r.kdc.udp(&first);
    assert_eq!(reply1, reply2);
    assert!(r.kdc.wait_audit(|l| l.contains("lookaside=true")));

    // The same authenticator in a different message is a replay.
    let mut q: TgsReq = msg::decode("TGS-REQ", &first).unwrap();
    q.0.padata.as_mut().unwrap().push(PaData {
        r#type: padata::PAC_REQUEST,
        value: vec![0x30, 0x05, 0xa0, 0x03, 0x01, 0x01, 0xff].into(),
    });
    let replay = msg::encode("TGS-REQ", &q).unwrap();
    assert_ne!(replay, first);
    assert_eq!(error_code(&r.kdc.udp(&replay)), err::KRB_AP_ERR_REPEAT);
    assert!(r.kdc.wait_audit(|l| l.contains("reason=\"replay\"")));

    // An AS retransmit is answered from the lookaside cache too.
    let as_req = r.as_req(rand_nonce(), 0, client::default_options());
    assert_eq!(r.kdc.udp(&as_req), r.kdc.udp(&as_req));
}

#[test]
fn expired_tgt_is_refused() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace("clock_skew_secs = 300", "clock_skew_secs = 1");
        assert!(cfg.contains("clock_skew_secs = 1"));
    });
    let r = Realm::start(kdc);
    let nonce = rand_nonce();
    let (now, usec) = time::now();
    let pa = client::enc_timestamp(&r.key, now, usec).unwrap();
    let body = RequestBody {
        till: now + 1,
        ..r.body(&r.tgs, nonce, Flags::empty())
    };
    let reply = r.kdc.udp(&client::as_req(&body, vec![pa]).unwrap());
    let tgt = client::open_as_rep(&reply, &r.key, nonce).expect("short TGT");
    assert!(time::to_unix(&tgt.part.end_time) <= now + 1);
    wait_until_expired(&tgt.part.end_time);
    let reply = r
        .kdc
        .udp(&r.tgs_req(&tgt, &r.service, rand_nonce(), 0, client::default_options()));
    assert_eq!(error_code(&reply), err::KRB_AP_ERR_TKT_EXPIRED);
    assert!(
        r.kdc
            .wait_audit(|l| l.contains("reason=\"ticket_expired\""))
    );
}

/// A TGT not renewed by its end time cannot be renewed (RFC 4120 §2.3),
/// even within its renew-till: KRB_AP_ERR_TKT_EXPIRED.
#[test]
fn expired_renewable_tgt_is_not_renewed() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replace("clock_skew_secs = 300", "clock_skew_secs = 1");
        assert!(cfg.contains("clock_skew_secs = 1"));
    });
    let r = Realm::start(kdc);
    let nonce = rand_nonce();
    let (now, usec) = time::now();
    let pa = client::enc_timestamp(&r.key, now, usec).unwrap();
    let body = RequestBody {
        till: now + 1,
        rtime: Some(now + 3600),
        ..r.body(&r.tgs, nonce, Flags::empty().with(bit::RENEWABLE))
    };
    let reply = r.kdc.udp(&client::as_req(&body, vec![pa]).unwrap());
    let tgt = client::open_as_rep(&reply, &r.key, nonce).expect("short renewable TGT");
    assert!(Flags::from_bits(&tgt.part.flags.0).has(bit::RENEWABLE));
    assert!(time::to_unix(&tgt.part.end_time) <= now + 1);
    // Past end time + skew, well before renew-till.
    wait_until_expired(&tgt.part.end_time);
    let renew = r.tgs_req(
        &tgt,
        &r.tgs,
        rand_nonce(),
        0,
        Flags::empty().with(bit::RENEW),
    );
    assert_eq!(error_code(&r.kdc.udp(&renew)), err::KRB_AP_ERR_TKT_EXPIRED);
    assert!(
        r.kdc
            .wait_audit(|l| l.contains("reason=\"ticket_expired\"")),
        "{}",
        tail(&r.kdc)
    );
}

/// Waits until the wall clock, which the KDC process reads too, is past a
/// ticket's end time plus the 1 s clock skew these tests configure: the
/// expiry under test happens against the KDC's real clock.
fn wait_until_expired(end_time: &krb::msg::KerberosTime) {
    let expired_after = time::to_unix(end_time) + 1;
    assert!(
        testkit::wait_until(Duration::from_secs(10), || time::now().0 > expired_after),
        "the clock did not pass the ticket's end time + skew in 10 s"
    );
}

fn ad(t: i32, data: Vec<u8>) -> asn1::AuthorizationDataValue {
    asn1::AuthorizationDataValue {
        r#type: t,
        data: data.into(),
    }
}

/// A TGS-REQ for the service asking to add `authz` to the ticket.
fn tgs_req_adding(
    r: &Realm,
    tgt: &client::Credentials,
    authz: &asn1::AuthorizationData,
) -> Vec<u8> {
    let mut body = r
        .body(&r.service, rand_nonce(), client::default_options())
        .to_asn1()
        .unwrap();
    let plain = msg::encode("AuthorizationData", authz).unwrap();
    body.enc_authorization_data = Some(EncryptedData {
        etype: tgt.session_key.etype().as_i32(),
        kvno: None,
        cipher: tgt
            .session_key
            .encrypt(usage::TGS_REQ_AUTHDATA_SESSION, &plain)
            .into(),
    });
    let (now, usec) = time::now();
    let auth = TgsAuth {
        now,
        usec,
        subkey: None,
    };
    client::tgs_req_with_body(tgt, body, &auth).unwrap()
}

/// Authorization data only the KDC issues (AD-KDC-ISSUED, CAMMAC, a PAC),
/// also inside AD-IF-RELEVANT, is refused with KDC_ERR_POLICY; other
/// client data is carried.
#[test]
fn client_supplied_kdc_only_authdata_is_refused() {
    let r = Realm::start(DevKdc::start(Path::new(KDC)));
    let tgt = r.tgt(client::default_options());
    let in_if_relevant = |inner: asn1::AuthorizationDataValue| {
        ad(1, msg::encode("AD-IF-RELEVANT", &vec![inner]).unwrap())
    };
    let cases = [
        ("AD-KDC-ISSUED", vec![ad(4, vec![0x30, 0x00])]),
        ("WIN2K-PAC", vec![ad(-2, vec![]), ad(128, vec![0; 16])]),
        (
            "CAMMAC in AD-IF-RELEVANT",
            vec![in_if_relevant(ad(96, vec![0x30, 0x00]))],
        ),
    ];
    for (what, authz) in cases {
        let reply = r.kdc.udp(&tgs_req_adding(&r, &tgt, &authz));
        assert_eq!(error_code(&reply), err::KDC_ERR_POLICY, "{what}");
    }
    assert!(
        r.kdc
            .wait_audit(|l| l.contains("reason=\"authdata_kdc_only\"")),
        "{}",
        tail(&r.kdc)
    );
    let harmless = vec![in_if_relevant(ad(-42, b"app".to_vec()))];
    let reply = r.kdc.udp(&tgs_req_adding(&r, &tgt, &harmless));
    assert_eq!(
        reply.first(),
        Some(&0x6d),
        "TGS-REP expected: {}",
        tail(&r.kdc)
    );
}

/// A TGT with addresses is good only from one of them (RFC 4120
/// §3.3.3.1): KRB_AP_ERR_BADADDR from elsewhere.
#[test]
fn tgt_with_addresses_is_good_only_from_them() {
    let r = Realm::start(DevKdc::start(Path::new(KDC)));
    let tgt_for = |octets: [u8; 4]| {
        let nonce = rand_nonce();
        let req = r.as_req_with(nonce, |q| {
            q.0.req_body.addresses = Some(vec![HostAddress {
                addr_type: HostAddress::IPV4,
                address: octets.to_vec().into(),
            }]);
        });
        client::open_as_rep(&r.kdc.udp(&req), &r.key, nonce).expect("TGT with an address")
    };
    // The test talks to the KDC from 127.0.0.1.
    let here = tgt_for([127, 0, 0, 1]);
    let nonce = rand_nonce();
    let reply = r
        .kdc
        .udp(&r.tgs_req(&here, &r.service, nonce, 0, client::default_options()));
    client::open_tgs_rep(&reply, &here, None, nonce).expect("TGS from the TGT's address");

    let elsewhere = tgt_for([192, 0, 2, 9]);
    let reply = r.kdc.udp(&r.tgs_req(
        &elsewhere,
        &r.service,
        rand_nonce(),
        0,
        client::default_options(),
    ));
    assert_eq!(error_code(&reply), err::KRB_AP_ERR_BADADDR);
    assert!(
        r.kdc
            .wait_audit(|l| l.contains("reason=\"ticket_address_mismatch\"")),
        "{}",
        tail(&r.kdc)
    );
}
