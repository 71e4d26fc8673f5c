//! The krb decoders that see untrusted bytes: BER messages, the raw
//! KDC-REQ-BODY walker, keytabs, principal names, and decryption under every
//! enctype. None may panic.

#![no_main]

use std::sync::LazyLock;

use krb::crypto::{EncType, Key, usage};
use krb::keytab::Keytab;
use krb::msg::{self, ApReq, AsReq, Authenticator, EncTicketPart, KrbError, TgsReq, raw};
use krb::principal::Principal;
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<Vec<Key>> = LazyLock::new(|| {
    EncType::ALL
        .iter()
        .map(|&e| Key::new(e, &vec![0x42; e.key_len()]).expect("key"))
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let _ = msg::decode::<AsReq>("AS-REQ", data);
    let _ = msg::decode::<TgsReq>("TGS-REQ", data);
    let _ = msg::decode::<ApReq>("AP-REQ", data);
    let _ = msg::decode::<KrbError>("KRB-ERROR", data);
    let _ = msg::decode::<EncTicketPart>("EncTicketPart", data);
    let _ = msg::decode::<Authenticator>("Authenticator", data);
    let _ = raw::kdc_req_body(data);
    let _ = Keytab::parse(data);
    let text = String::from_utf8_lossy(data);
    let _ = Principal::parse(&text, None);
    let _ = Principal::parse(&text, Some("PKTC.TEST"));
    for key in KEYS.iter() {
        let _ = key.decrypt(usage::TGS_REQ_AUTH, data);
    }
});
