//! The whole KDC request pipeline (`Kdc::handle`): decoder, AS and TGS
//! exchanges, KRB-ERROR construction. It must never panic and always reply;
//! nor may the TGS check of client authorization data.
//!
//! Same realm, principals and passwords as `pktc-kdc/tests/fuzz_smoke.rs`, so the
//! seeds it writes (fuzz/corpus-seeds/kdc_request) decrypt here. The clock
//! skew and ticket life are far beyond what `Config::validate` allows, so
//! that committed seeds (timestamps, TGTs) stay valid and the fuzzer can
//! reach ticket issuance; the lookaside cache is off so that every input
//! runs the pipeline.

#![no_main]

use std::net::SocketAddr;
use std::sync::LazyLock;

use pktc_kdc::config::Config;
use kdc::kdc::Kdc;
use pktc_kdc::cli::keytab::{KeySource, add_keys};
use krb::crypto::EncType;
use krb::keytab::Keytab;
use krb::principal::Principal;
use libfuzzer_sys::fuzz_target;

const REALM: &str = "PKTC.TEST";

static KDC: LazyLock<Kdc> = LazyLock::new(|| {
    let cfg: Config = toml::from_str(
        "realm = \"PKTC.TEST\"\n\
         [policy]\nclock_skew_secs = 630720000\n\
         [tickets]\nmax_life_secs = 630720000\nmax_renew_secs = 630720000\n\
         [cache]\nlookaside_max_bytes = 0\nreplay_max_entries = 10000\n",
    )
    .expect("fuzz config");
    let mut kt = Keytab::new();
    let principals = [
        (Principal::krbtgt(REALM), "fuzz-krbtgt-password"),
        (
            Principal::service_host("mtaprovsrvr", "mps.pktc.test", REALM),
            "fuzz-service-password",
        ),
        (
            Principal::parse("demo@PKTC.TEST", None).expect("client principal"),
            "fuzz-demo-password",
        ),
    ];
    for (p, pw) in &principals {
        add_keys(&mut kt, p, &EncType::ALL, Some(1), &KeySource::Password(pw)).expect("keys");
    }
    pktc_kdc::engine::new_kdc(&cfg, &kt).expect("KDC")
});

fuzz_target!(|data: &[u8]| {
    let source = SocketAddr::from(([192, 0, 2, 1], 8888));
    let handled = KDC.handle_ready(data, source).expect("no PKINIT here: never waits");
    assert!(!handled.reply.is_empty(), "empty reply");
    assert!(
        matches!(handled.reply[0], 0x7e | 0x6b | 0x6d),
        "reply is not KRB-ERROR, AS-REP or TGS-REP"
    );
    // Client-supplied authorization data as the TGS checks it (the pipeline
    // reaches that check only under a valid TGT's session key).
    if let Ok(ad) = krb::msg::decode::<krb::msg::asn1::AuthorizationData>("AuthorizationData", data) {
        let _ = kdc::tgs_policy::check_client_authdata(&ad);
    }
});
