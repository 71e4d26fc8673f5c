//! What the KDC issues, checked from the outside: ticket flags and times,
//! the ticket's inner content (opened with the service key from the
//! keytab), etype negotiation in the client's order, des3 for older
//! PacketCable devices, the enctype policy, and the keytab CLI.

mod common;

use std::path::Path;
use std::process::Command;

use common::{KDC, Realm, error_code, rand_nonce};
use krb::client::{self, Credentials, RequestBody, TgsAuth};
use krb::crypto::{EncType, Key, usage};
use krb::keytab::Keytab;
use krb::msg::consts::err;
use krb::msg::flags::{Flags, bit};
use krb::msg::{self, EncTicketPart, time};
use krb::principal::Principal;
use testkit::{DevKdc, mit_env, require_tool, run};

fn as_exchange(
    r: &Realm,
    etypes: &[EncType],
    key: &Key,
    options: Flags,
    till: i64,
    rtime: Option<i64>,
) -> Result<Credentials, client::ClientError> {
    let nonce = rand_nonce();
    let (now, usec) = time::now();
    let body = RequestBody {
        client: Some(&r.client),
        server: &r.tgs,
        etypes,
        nonce,
        till,
        rtime,
        options,
    };
    let pa = client::enc_timestamp(key, now, usec).unwrap();
    let reply = r.kdc.udp(&client::as_req(&body, vec![pa]).unwrap());
    client::open_as_rep(&reply, key, nonce)
}

fn tgs_exchange(
    r: &Realm,
    tgt: &Credentials,
    server: &Principal,
    etypes: &[EncType],
    subkey: Option<&Key>,
) -> Credentials {
    let nonce = rand_nonce();
    let (now, usec) = time::now();
    let body = RequestBody {
        client: None,
        server,
        etypes,
        nonce,
        till: now + 3600,
        rtime: None,
        options: client::default_options(),
    };
    let reply = r
        .kdc
        .udp(&client::tgs_req(tgt, &body, &TgsAuth { now, usec, subkey }).unwrap());
    client::open_tgs_rep(&reply, tgt, subkey, nonce).expect("TGS exchange")
}

fn password_key(r: &Realm, etype: EncType) -> Key {
    let (_, pw) = r.kdc.password();
    Key::from_password(etype, pw.as_bytes(), &r.client.salt(), None).unwrap()
}

/// Opens a ticket with the service's newest key from the dev keytab.
fn open_ticket(r: &Realm, creds: &Credentials, service: &Principal) -> EncTicketPart {
    let kt = Keytab::read_file(&r.kdc.realm_path("kdc.keytab")).unwrap();
    let etype = creds.ticket.enc_part.etype;
    let entry = kt
        .find(service, etype, creds.ticket.enc_part.kvno)
        .expect("service key in keytab");
    let key = Key::new(EncType::from_i32(etype).unwrap(), &entry.key).unwrap();
    let plain = key
        .decrypt(usage::TICKET, &creds.ticket.enc_part.cipher)
        .unwrap();
    msg::decode_padded("EncTicketPart", &plain).unwrap()
}

#[test]
fn flags_times_and_ticket_contents() {
    let r = Realm::start(DevKdc::start(Path::new(KDC)));
    let now = time::now().0;
    let key = password_key(&r, EncType::Aes256CtsHmacSha196);
    let tgt = as_exchange(
        &r,
        &[EncType::Aes256CtsHmacSha196],
        &key,
        client::default_options(),
        now + 3600,
        None,
    )
    .unwrap();
    let f = Flags::from_bits(&tgt.part.flags.0);
    assert!(
        f.has(bit::INITIAL) && f.has(bit::PRE_AUTHENT) && f.has(bit::FORWARDABLE),
        "{f:?}"
    );
    assert!(
        !f.has(bit::RENEWABLE),
        "RENEWABLE-OK must not add renewability within max life"
    );
    let end = time::to_unix(&tgt.part.end_time);
    assert!(
        (now + 3599..=now + 3601).contains(&end),
        "end {end} now {now}"
    );
    assert_eq!(tgt.part.sname, r.tgs.to_rasn().unwrap().0);

    // The ticket itself says the same, under the krbtgt key.
    let inner = open_ticket(&r, &tgt, &r.tgs);
    assert_eq!(inner.key.value, tgt.part.key.value);
    assert_eq!(Flags::from_bits(&inner.flags.0), f);
    assert_eq!(inner.cname, r.client.to_rasn().unwrap().0);
    assert_eq!(time::to_unix(&inner.end_time), end);

    // Renewable on request, capped by policy (7 days by default).
    let tgt_r = as_exchange(
        &r,
        &[EncType::Aes256CtsHmacSha196],
        &key,
        Flags::empty().with(bit::RENEWABLE),
        now + 3600,
        Some(now + 30 * 86400),
    )
    .unwrap();
    let rt = time::to_unix(tgt_r.part.renew_till.as_ref().unwrap());
    assert!(Flags::from_bits(&tgt_r.part.flags.0).has(bit::RENEWABLE));
    assert!(
        (now + 7 * 86400 - 2..=now + 7 * 86400 + 2).contains(&rt),
        "renew_till {rt}"
    );

    // A service ticket: not INITIAL, PRE-AUTHENT carried over, within the TGT's life.
    let svc = tgs_exchange(&r, &tgt, &r.service, &[EncType::Aes256CtsHmacSha196], None);
    let sf = Flags::from_bits(&svc.part.flags.0);
    assert!(
        !sf.has(bit::INITIAL) && sf.has(bit::PRE_AUTHENT) && sf.has(bit::FORWARDABLE),
        "{sf:?}"
    );
    assert!(time::to_unix(&svc.part.end_time) <= end);
    assert_eq!(svc.part.sname, r.service.to_rasn().unwrap().0);
    let inner = open_ticket(&r, &svc, &r.service);
    assert_eq!(inner.key.value, svc.part.key.value);
    assert_eq!(inner.cname, r.client.to_rasn().unwrap().0);
    assert_eq!(
        time::to_unix(&inner.auth_time),
        time::to_unix(&tgt.part.auth_time)
    );

    // With a subkey in the authenticator the reply is encrypted in the subkey.
    let subkey = Key::random(EncType::Aes128CtsHmacSha196);
    tgs_exchange(
        &r,
        &tgt,
        &r.service,
        &[EncType::Aes256CtsHmacSha196],
        Some(&subkey),
    );
}

#[test]
fn etypes_follow_the_client_order() {
    let r = Realm::start(DevKdc::start(Path::new(KDC)));
    let now = time::now().0;
    let k17 = password_key(&r, EncType::Aes128CtsHmacSha196);
    let tgt = as_exchange(
        &r,
        &[EncType::Aes128CtsHmacSha196, EncType::Aes256CtsHmacSha196],
        &k17,
        client::default_options(),
        now + 600,
        None,
    )
    .unwrap();
    assert_eq!(tgt.session_key.etype(), EncType::Aes128CtsHmacSha196);
    // The ticket is in the krbtgt's strongest key, whatever the client asked.
    assert_eq!(
        tgt.ticket.enc_part.etype,
        EncType::Aes256CtsHmacSha384192.as_i32()
    );
    let svc = tgs_exchange(
        &r,
        &tgt,
        &r.service,
        &[
            EncType::Aes256CtsHmacSha384192,
            EncType::Aes128CtsHmacSha196,
        ],
        None,
    );
    assert_eq!(svc.session_key.etype(), EncType::Aes256CtsHmacSha384192);
}

#[test]
fn des3_for_older_packetcable_devices() {
    let r = Realm::start(DevKdc::start(Path::new(KDC)));
    let des3 = EncType::Des3CbcSha1Kd;
    let key = password_key(&r, des3);
    let tgt = as_exchange(
        &r,
        &[des3],
        &key,
        client::default_options(),
        time::now().0 + 600,
        None,
    )
    .expect("des3 AS exchange");
    assert_eq!(tgt.session_key.etype(), des3);
    let svc = tgs_exchange(&r, &tgt, &r.service, &[des3], None);
    assert_eq!(svc.session_key.etype(), des3);
}

#[test]
fn enctype_policy_is_enforced() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        let start = cfg.find("enctypes = [").expect("enctypes in config");
        let end = start + cfg[start..].find(']').unwrap() + 1;
        cfg.replace_range(start..end, "enctypes = [\"aes128-cts-hmac-sha1-96\"]");
    });
    let r = Realm::start(kdc);
    let now = time::now().0;
    let k18 = password_key(&r, EncType::Aes256CtsHmacSha196);
    let e = as_exchange(
        &r,
        &[EncType::Aes256CtsHmacSha196],
        &k18,
        client::default_options(),
        now + 600,
        None,
    )
    .err()
    .expect("aes256 is not permitted");
    assert!(
        matches!(e, client::ClientError::KrbError { code, .. } if code == err::KDC_ERR_ETYPE_NOSUPP),
        "{e}"
    );
    let k17 = password_key(&r, EncType::Aes128CtsHmacSha196);
    let tgt = as_exchange(
        &r,
        &[EncType::Aes256CtsHmacSha196, EncType::Aes128CtsHmacSha196],
        &k17,
        client::default_options(),
        now + 600,
        None,
    )
    .unwrap();
    assert_eq!(tgt.session_key.etype(), EncType::Aes128CtsHmacSha196);
    assert_eq!(
        tgt.ticket.enc_part.etype,
        EncType::Aes128CtsHmacSha196.as_i32()
    );
    let body = RequestBody {
        client: Some(&r.client),
        server: &r.tgs,
        etypes: &[EncType::Aes256CtsHmacSha384192],
        nonce: 9,
        till: now + 600,
        rtime: None,
        options: Flags::empty(),
    };
    let reply = r.kdc.udp(&client::as_req(&body, vec![]).unwrap());
    assert_eq!(error_code(&reply), err::KDC_ERR_ETYPE_NOSUPP);
}

#[test]
fn keytab_cli_add_list_export() {
    let dir = testkit::TempDir::new("keytab-cli");
    let kt = dir.path("svc.keytab");
    let add = |principal: &str, stdin: &str, extra: &[&str]| {
        let mut c = Command::new(KDC);
        c.args(["keytab", "add", "--keytab"])
            .arg(&kt)
            .args(["--principal", principal])
            .args(extra);
        let (ok, out) = run(&mut c, stdin);
        assert!(ok, "{out}");
        out
    };
    add("mtaprovsrvr/mps.example.com@EXAMPLE.COM", "", &[]);
    let out = add(
        "cms/cms.example.com@EXAMPLE.COM",
        "shared secret\n",
        &[
            "--password-stdin",
            "--enctypes",
            "aes128-cts-hmac-sha1-96,des3-cbc-sha1",
            "--kvno",
            "5",
        ],
    );
    assert!(out.contains("kvno 5"), "{out}");
    add("mtaprovsrvr/mps.example.com@EXAMPLE.COM", "", &[]);

    let (ok, list) = run(
        Command::new(KDC)
            .args(["keytab", "list", "--keytab"])
            .arg(&kt),
        "",
    );
    assert!(ok, "{list}");
    assert!(
        list.contains("mtaprovsrvr/mps.example.com@EXAMPLE.COM") && list.contains("des3-cbc-sha1"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.trim_start().starts_with('2') && l.contains("mtaprovsrvr")),
        "second add bumps the kvno:\n{list}"
    );

    // The password key equals MIT's string-to-key for the same password and salt.
    let parsed = Keytab::read_file(&kt).unwrap();
    let cms = Principal::parse("cms/cms.example.com@EXAMPLE.COM", None).unwrap();
    let entry = parsed.find(&cms, 17, Some(5)).unwrap();
    let expect = Key::from_password(
        EncType::Aes128CtsHmacSha196,
        b"shared secret",
        &cms.salt(),
        None,
    )
    .unwrap();
    assert_eq!(&entry.key[..], expect.bytes());

    // MIT klist reads it; export keeps only the newest keys of one principal.
    let empty = dir.path("empty.conf");
    std::fs::write(&empty, "").unwrap();
    let out_kt = dir.path("mps.keytab");
    let (ok, out) = run(
        Command::new(KDC)
            .args(["keytab", "export", "--keytab"])
            .arg(&kt)
            .args([
                "--principal",
                "mtaprovsrvr/mps.example.com@EXAMPLE.COM",
                "--out",
            ])
            .arg(&out_kt),
        "",
    );
    assert!(ok, "{out}");
    let mut klist = Command::new(require_tool("klist", "krb5-user"));
    mit_env(&mut klist, &empty);
    let (ok, out) = run(klist.arg("-k").arg("-e").arg(&out_kt), "");
    assert!(ok, "{out}");
    assert!(
        out.contains("mtaprovsrvr/mps.example.com@EXAMPLE.COM") && !out.contains("cms/"),
        "{out}"
    );
    assert!(
        out.lines()
            .filter(|l| l.contains("mtaprovsrvr"))
            .all(|l| l.trim_start().starts_with('2')),
        "{out}"
    );
}
