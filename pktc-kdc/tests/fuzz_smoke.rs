//! A stable-toolchain fuzz smoke test: valid AS-REQ and TGS-REQ seeds
//! (built with `krb::client`), mutated deterministically, fed to
//! `Kdc::handle` and to the krb decoders. Every reply must be a decodable
//! KRB-ERROR, AS-REP or TGS-REP, and nothing may panic.
//!
//! The coverage-guided fuzzers live in `fuzz/` (cargo-fuzz); they build the
//! same KDC (same realm, principals and passwords), so the seeds written by
//! the ignored `write_fuzz_seeds` test are valid for them too:
//!
//! ```text
//! FUZZ_SEEDS_DIR=fuzz/corpus-seeds cargo test -p pktc-kdc --test fuzz_smoke -- --ignored write_fuzz_seeds
//! ```

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use kdc::kdc::Kdc;
use krb::client::{self, RequestBody, TgsAuth};
use krb::crypto::{EncType, Key};
use krb::keytab::Keytab;
use krb::msg::{self, ApReq, AsRep, AsReq, Authenticator, EncTicketPart, KrbError, TgsRep, TgsReq};
use krb::principal::Principal;
use pktc_kdc::cli::keytab::{KeySource, add_keys};
use pktc_kdc::config::Config;
use testkit::Rng;

const REALM: &str = "PKTC.TEST";
const KRBTGT_PW: &str = "fuzz-krbtgt-password";
const SERVICE_PW: &str = "fuzz-service-password";
const CLIENT_PW: &str = "fuzz-demo-password";
/// Mutated inputs fed to the KDC (and the decoders) in `mutated_requests`.
const MUTATIONS: usize = 20_000;
/// Requested ticket life: long, so that the fuzz target (which runs with a
/// very long clock skew and max life) can still use committed seeds.
const TILL: i64 = 10 * 365 * 86400;

fn source() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 8888))
}

fn service() -> Principal {
    Principal::service_host("mtaprovsrvr", "mps.pktc.test", REALM)
}

fn client_principal() -> Principal {
    Principal::parse(&format!("demo@{REALM}"), None).unwrap()
}

/// The same KDC as the `kdc_request` fuzz target: password-derived keys so
/// that seeds stay valid across processes. The lookaside cache is off so
/// that every input runs the whole pipeline.
fn build_kdc() -> Kdc {
    let cfg: Config = toml::from_str(
        "realm = \"PKTC.TEST\"\n[cache]\nlookaside_max_bytes = 0\nreplay_max_entries = 10000\n",
    )
    .unwrap();
    let mut kt = Keytab::new();
    let etypes = EncType::ALL;
    for (p, pw) in [
        (Principal::krbtgt(REALM), KRBTGT_PW),
        (service(), SERVICE_PW),
        (client_principal(), CLIENT_PW),
    ] {
        add_keys(&mut kt, &p, &etypes, Some(1), &KeySource::Password(pw)).unwrap();
    }
    pktc_kdc::engine::new_kdc(&cfg, &kt).unwrap()
}

/// Valid requests: per etype, an AS-REQ without padata, one with
/// PA-ENC-TIMESTAMP, and TGS-REQs (with and without subkey) using the TGT
/// that the KDC issued for the latter. Each TGS-REQ was accepted once.
fn seeds(kdc: &Kdc) -> Vec<(String, Vec<u8>)> {
    let (now, usec) = msg::time::now();
    let cp = client_principal();
    let tgs = Principal::krbtgt(REALM);
    let svc = service();
    let mut out = Vec::new();
    for (i, &etype) in EncType::ALL.iter().enumerate() {
        let nonce = 0x1000 + i as u32;
        let body = RequestBody {
            client: Some(&cp),
            server: &tgs,
            etypes: &[etype],
            nonce,
            till: now + TILL,
            rtime: None,
            options: client::default_options(),
        };
        let key = Key::from_password(etype, CLIENT_PW.as_bytes(), &cp.salt(), None).unwrap();
        let plain = client::as_req(&body, vec![]).unwrap();
        let rep = kdc
            .handle_ready(&plain, source())
            .expect("no waiting")
            .reply;
        assert_eq!(rep.first(), Some(&0x7e), "AS-REQ without preauth");
        out.push((format!("as-req-{}", etype.as_i32()), plain));

        let pa = client::enc_timestamp(&key, now, usec).unwrap();
        let req = client::as_req(&body, vec![pa]).unwrap();
        let rep = kdc.handle_ready(&req, source()).expect("no waiting").reply;
        let tgt = client::open_as_rep(&rep, &key, nonce).expect("AS exchange");
        out.push((format!("as-req-ts-{}", etype.as_i32()), req));

        let subkey = Key::random(etype);
        for (name, sub) in [("tgs-req", None), ("tgs-req-subkey", Some(&subkey))] {
            let nonce = nonce + 0x100;
            let body = RequestBody {
                client: None,
                server: &svc,
                etypes: &[etype],
                nonce,
                till: now + TILL,
                rtime: None,
                options: client::default_options(),
            };
            let auth = TgsAuth {
                now,
                usec,
                subkey: sub,
            };
            let req = client::tgs_req(&tgt, &body, &auth).unwrap();
            let rep = kdc.handle_ready(&req, source()).expect("no waiting").reply;
            client::open_tgs_rep(&rep, &tgt, sub, nonce).expect("TGS exchange");
            out.push((format!("{name}-{}", etype.as_i32()), req));
        }
    }
    out
}

/// Offsets of the first length byte of every TLV in `msg` (walking into
/// constructed encodings), for targeted length corruption.
fn length_offsets(msg: &[u8]) -> Vec<usize> {
    fn walk(base: usize, mut input: &[u8], whole: &[u8], out: &mut Vec<usize>) {
        while let Ok((tlv, rest)) = krb::msg::raw::read_tlv(input) {
            let at = base + (whole.len() - input.len());
            out.push(at + 1);
            if tlv.tag & 0x20 != 0 {
                let header = tlv.whole.len() - tlv.content.len();
                walk(at + header, tlv.content, tlv.content, out);
            } else if tlv.tag == 0x04 {
                // OCTET STRINGs often hold nested DER (padata values).
                let header = tlv.whole.len() - tlv.content.len();
                walk(at + header, tlv.content, tlv.content, out);
            }
            input = rest;
        }
    }
    let mut out = Vec::new();
    walk(0, msg, msg, &mut out);
    out
}

const INTERESTING: [u8; 12] = [
    0x00, 0x01, 0x02, 0x05, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0x89, 0xff,
];

fn mutate(rng: &mut Rng, seed: &[u8], lengths: &[usize]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        let len = m.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                m[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                m[i] = rng.byte();
            }
            2 if len > 0 => {
                let i = rng.below(len);
                m[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            3 => m.truncate(rng.below(len + 1)),
            4 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                m.splice(i..i, bytes);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                m.drain(i..i + n);
            }
            6 | 7 if !lengths.is_empty() => {
                // Length-byte corruption: the offsets are the seed's; after an
                // earlier insertion or deletion they still hit nearby bytes.
                let i = lengths[rng.below(lengths.len())];
                if i < m.len() {
                    m[i] = match rng.below(5) {
                        0 => m[i].wrapping_add(1),
                        1 => m[i].wrapping_sub(1),
                        2 => 0x80, // indefinite length
                        3 => 0x84, // four length bytes follow
                        _ => INTERESTING[rng.below(INTERESTING.len())],
                    };
                }
            }
            _ if len > 1 => {
                // Duplicate a chunk somewhere else.
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let chunk = m[i..i + n].to_vec();
                let j = rng.below(m.len() + 1);
                m.splice(j..j, chunk);
            }
            _ => m.push(rng.byte()),
        }
    }
    m
}

/// The krb decoders the `krb_decoders` fuzz target exercises; none may panic.
fn decoders(data: &[u8], keys: &[Key]) {
    let _ = msg::decode::<AsReq>("AS-REQ", data);
    let _ = msg::decode::<TgsReq>("TGS-REQ", data);
    let _ = msg::decode::<ApReq>("AP-REQ", data);
    let _ = msg::decode::<KrbError>("KRB-ERROR", data);
    let _ = msg::decode::<EncTicketPart>("EncTicketPart", data);
    let _ = msg::decode::<Authenticator>("Authenticator", data);
    let _ = msg::raw::kdc_req_body(data);
    let _ = Keytab::parse(data);
    let _ = Principal::parse(&String::from_utf8_lossy(data), Some(REALM));
    for k in keys {
        let _ = k.decrypt(krb::crypto::usage::TGS_REQ_AUTH, data);
    }
}

fn check_reply(input: &[u8], reply: &[u8]) -> u8 {
    let ok = match reply.first() {
        Some(0x7e) => msg::decode::<KrbError>("KRB-ERROR", reply).is_ok(),
        Some(0x6b) => msg::decode::<AsRep>("AS-REP", reply).is_ok(),
        Some(0x6d) => msg::decode::<TgsRep>("TGS-REP", reply).is_ok(),
        _ => false,
    };
    assert!(
        ok,
        "bad reply {} to input {}",
        hex::encode(reply),
        hex::encode(input)
    );
    reply[0]
}

/// Runs one input through the KDC and the decoders, turning a panic into a
/// test failure that names the input.
fn run_one(kdc: &Kdc, keys: &[Key], input: &[u8]) -> u8 {
    match catch_unwind(AssertUnwindSafe(|| {
        let reply = kdc.handle_ready(input, source()).expect("no waiting").reply;
        decoders(input, keys);
        reply
    })) {
        Ok(reply) => check_reply(input, &reply),
        Err(_) => panic!("panic on input {}", hex::encode(input)),
    }
}

fn fixed_keys() -> Vec<Key> {
    EncType::ALL
        .iter()
        .map(|&e| Key::new(e, &vec![0x42; e.key_len()]).unwrap())
        .collect()
}

#[test]
fn truncated_seeds_get_krb_errors() {
    let kdc = build_kdc();
    let keys = fixed_keys();
    for (name, seed) in seeds(&kdc) {
        for n in 0..seed.len() {
            let code = run_one(&kdc, &keys, &seed[..n]);
            assert_eq!(code, 0x7e, "{name} truncated to {n} bytes");
        }
    }
}

#[test]
fn mutated_requests() {
    let kdc = build_kdc();
    let keys = fixed_keys();
    let seeds = seeds(&kdc);
    let lengths: Vec<Vec<usize>> = seeds.iter().map(|(_, s)| length_offsets(s)).collect();
    let mut rng = Rng(0x5eed_f00d_cafe_d00d);
    let mut counts = [0usize; 3];
    for _ in 0..MUTATIONS {
        let i = rng.below(seeds.len());
        let input = mutate(&mut rng, &seeds[i].1, &lengths[i]);
        match run_one(&kdc, &keys, &input) {
            0x7e => counts[0] += 1,
            0x6b => counts[1] += 1,
            _ => counts[2] += 1,
        }
    }
    eprintln!(
        "{MUTATIONS} mutated inputs: {} KRB-ERROR, {} AS-REP, {} TGS-REP",
        counts[0], counts[1], counts[2]
    );
    assert_eq!(counts.iter().sum::<usize>(), MUTATIONS);
}

/// Writes the seeds as files for the cargo-fuzz corpus (see the module docs).
#[test]
#[ignore = "writes files; run by hand to refresh fuzz/corpus-seeds"]
fn write_fuzz_seeds() {
    let dir = std::env::var("FUZZ_SEEDS_DIR").expect("set FUZZ_SEEDS_DIR");
    let dir = std::path::Path::new(&dir);
    let kdc = build_kdc();
    for sub in ["kdc_request", "krb_decoders"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for (name, seed) in seeds(&kdc) {
        for sub in ["kdc_request", "krb_decoders"] {
            std::fs::write(dir.join(sub).join(&name), &seed).unwrap();
        }
    }
}
