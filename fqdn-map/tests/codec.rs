//! pkt-eue-7 codecs: a fixed byte vector per message type, round trips,
//! every malformed form, and a mutation smoke (no panic, no over-read).

use std::net::{Ipv4Addr, Ipv6Addr};

use fqdn_map::codec::{CodecError, DEFAULT_ENTERPRISE, MessageError};
use fqdn_map::{EueReply, FqdnReply, FqdnRequest, Message, decode};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn request_vector() {
    let m = Message::Request(FqdnRequest {
        enterprise: 4491,
        mac: [0x00, 0x10, 0x95, 0x00, 0x00, 0x01],
        pubkey_hash: [0xAB; 20],
        revocation_time: 0,
    });
    let want = hex("01 0000118b 01 001095000001 abababababababababababababababababababab 00000000");
    assert_eq!(want.len(), 36);
    assert_eq!(m.encode().unwrap(), want);
    assert_eq!(decode(&want).unwrap(), m);
}

#[test]
fn packetcable_1x_reply_vector() {
    let m = Message::Reply(FqdnReply {
        enterprise: 4491,
        fqdn: "mta1.pktc.test".into(),
        ipv4: Ipv4Addr::new(10, 1, 2, 3),
    });
    let want = hex("02 0000118b 01 6d7461312e706b74632e74657374 0a010203");
    assert_eq!(m.encode().unwrap(), want);
    assert_eq!(decode(&want).unwrap(), m);
    // All-zero IPv4: "not supplied" decodes as 0.0.0.0; a trailing dot on the FQDN is dropped.
    let m = decode(&hex(
        "02 0000118b 01 6d7461312e706b74632e7465737 42e 00000000",
    ))
    .unwrap();
    assert_eq!(
        m,
        Message::Reply(FqdnReply {
            enterprise: 4491,
            fqdn: "mta1.pktc.test".into(),
            ipv4: Ipv4Addr::UNSPECIFIED
        })
    );
}

#[test]
fn error_reply_vector() {
    let want = hex("03 0000118b 01");
    let m = decode(&want).unwrap();
    assert_eq!(
        m,
        Message::Error(MessageError {
            enterprise: 4491,
            body: vec![]
        })
    );
    assert_eq!(m.encode().unwrap(), want);
    let with_body = hex("03 0000118b 01 00000007");
    assert_eq!(
        decode(&with_body).unwrap(),
        Message::Error(MessageError {
            enterprise: 4491,
            body: vec![0, 0, 0, 7]
        })
    );
}

#[test]
fn eue_reply_vector() {
    let m = Message::EueReply(EueReply {
        enterprise: 4491,
        ipv4: vec![Ipv4Addr::new(192, 0, 2, 7)],
        ipv6: vec![
            "2001:db8::7".parse::<Ipv6Addr>().unwrap(),
            Ipv6Addr::LOCALHOST,
        ],
        fqdn: "eue7.pktc.test".into(),
    });
    let want = hex("03 0000118b 02
         01 c0000207
         02 20010db8000000000000000000000007 00000000000000000000000000000001
         0e 657565372e706b74632e74657374");
    assert_eq!(m.encode().unwrap(), want);
    assert_eq!(decode(&want).unwrap(), m);
    // No addresses at all is allowed; the FQDN is not.
    let none = Message::EueReply(EueReply {
        enterprise: 1,
        ipv4: vec![],
        ipv6: vec![],
        fqdn: "a".into(),
    });
    assert_eq!(none.encode().unwrap(), hex("03 00000001 02 00 00 01 61"));
    assert_eq!(decode(&none.encode().unwrap()).unwrap(), none);
}

#[test]
fn type_3_is_told_apart_by_version() {
    assert!(matches!(
        decode(&hex("03 0000118b 01 00 00 01 61")).unwrap(),
        Message::Error(_)
    ));
    assert!(matches!(
        decode(&hex("03 0000118b 02 00 00 01 61")).unwrap(),
        Message::EueReply(_)
    ));
}

#[test]
fn malformed_messages_are_refused() {
    let cases: Vec<(&str, Vec<u8>, CodecError)> = vec![
        ("empty", vec![], CodecError::Short(0)),
        ("header cut", hex("01 0000118b"), CodecError::Short(5)),
        (
            "request short",
            hex("01 0000118b 01 001095000001"),
            CodecError::RequestLength(12),
        ),
        (
            "request long",
            [hex("01 0000118b 01 001095000001"), vec![0; 25]].concat(),
            CodecError::RequestLength(37),
        ),
        (
            "1.x reply without IPv4",
            hex("02 0000118b 01 616263"),
            CodecError::Short(9),
        ),
        (
            "1.x reply FQDN length 0",
            hex("02 0000118b 01 0a010203"),
            CodecError::BadFqdn("empty"),
        ),
        (
            "1.x reply FQDN of 255",
            [hex("02 0000118b 01"), vec![b'a'; 255], vec![10, 0, 0, 1]].concat(),
            CodecError::BadFqdn("longer than 253 characters"),
        ),
        (
            "E-UE IPv4 count beyond end",
            hex("03 0000118b 02 05 c0000207"),
            CodecError::CountBeyondEnd {
                what: "IPv4 address",
                count: 20,
            },
        ),
        (
            "E-UE IPv6 count beyond end",
            hex("03 0000118b 02 00 ff 00"),
            CodecError::CountBeyondEnd {
                what: "IPv6 address",
                count: 4080,
            },
        ),
        (
            "E-UE missing IPv6 count",
            hex("03 0000118b 02 00"),
            CodecError::CountBeyondEnd {
                what: "IPv6 count",
                count: 1,
            },
        ),
        (
            "E-UE FQDN length 0",
            hex("03 0000118b 02 00 00 00"),
            CodecError::BadFqdn("empty"),
        ),
        (
            "E-UE FQDN length 255",
            [hex("03 0000118b 02 00 00 ff"), vec![b'a'; 255]].concat(),
            CodecError::BadFqdn("longer than 253 characters"),
        ),
        (
            "E-UE FQDN beyond end",
            hex("03 0000118b 02 00 00 05 6162"),
            CodecError::CountBeyondEnd {
                what: "FQDN",
                count: 5,
            },
        ),
        (
            "E-UE trailing bytes",
            hex("03 0000118b 02 00 00 01 61 00"),
            CodecError::Trailing(1),
        ),
        (
            "E-UE FQDN with a space",
            hex("03 0000118b 02 00 00 03 612062"),
            CodecError::BadFqdn("character outside letters, digits, '-', '_'"),
        ),
        (
            "E-UE FQDN with an empty label",
            hex("03 0000118b 02 00 00 03 612e2e"),
            CodecError::BadFqdn("empty or over-long label"),
        ),
        (
            "unknown version",
            hex("02 0000118b 07 610a010203"),
            CodecError::UnknownKind {
                msg_type: 2,
                version: 7,
            },
        ),
        (
            "unknown type",
            hex("09 0000118b 01"),
            CodecError::UnknownKind {
                msg_type: 9,
                version: 1,
            },
        ),
        (
            "error body too long",
            [hex("03 0000118b 01"), vec![0; 257]].concat(),
            CodecError::ErrorBodyTooLong,
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(decode(&bytes), Err(want), "{name}");
    }
}

#[test]
fn encode_refuses_what_decode_would() {
    let long = Message::Reply(FqdnReply {
        enterprise: DEFAULT_ENTERPRISE,
        fqdn: "a".repeat(254),
        ipv4: Ipv4Addr::LOCALHOST,
    });
    assert!(long.encode().is_err());
    let many = Message::EueReply(EueReply {
        enterprise: 1,
        ipv4: vec![Ipv4Addr::LOCALHOST; 256],
        ipv6: vec![],
        fqdn: "a".into(),
    });
    assert!(many.encode().is_err());
}

/// Deterministic mutations of valid messages: decode never panics, and
/// whatever decodes re-encodes to something that decodes the same.
#[test]
fn mutation_smoke() {
    let seeds: Vec<Vec<u8>> = vec![
        hex("01 0000118b 01 001095000001 abababababababababababababababababababab 00000000"),
        hex("02 0000118b 01 6d7461312e706b74632e74657374 0a010203"),
        hex("03 0000118b 01 00000007"),
        hex(
            "03 0000118b 02 01 c0000207 01 20010db8000000000000000000000007 0e 657565372e706b74632e74657374",
        ),
    ];
    let mut rng = testkit::Rng(0x9E37_79B9_7F4A_7C15);
    let mut next = || rng.next_u64();
    for _ in 0..20_000 {
        let mut m = seeds[(next() % seeds.len() as u64) as usize].clone();
        match next() % 4 {
            0 => {
                let i = (next() as usize) % m.len();
                m[i] ^= 1 << (next() % 8);
            }
            1 => {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            2 => m.truncate((next() as usize) % (m.len() + 1)),
            _ => {
                let i = (next() as usize) % (m.len() + 1);
                m.insert(i, next() as u8);
            }
        }
        if let Ok(msg) = decode(&m) {
            let again = msg.encode().expect("a decoded message re-encodes");
            assert_eq!(decode(&again).unwrap(), msg);
        }
    }
}

/// PKT-SP-EUE-PROV-I05 Table 1: "Network byte order, MSB first. 1 =
/// PacketCable". We send 1 by default, accept 1 and CableLabs' 4491 in
/// every message, and refuse any other value as malformed, both ways.
#[test]
fn enterprise_number_is_1_or_4491() {
    use fqdn_map::codec::{CABLELABS_ENTERPRISE, is_known_enterprise};
    assert_eq!(DEFAULT_ENTERPRISE, 1);
    assert_eq!(CABLELABS_ENTERPRISE, 4491);
    let bodies = [
        (
            "01",
            "01",
            "001095000001 abababababababababababababababababababab 00000000",
        ),
        ("02", "01", "6d7461312e706b74632e74657374 0a010203"),
        ("03", "01", "00000007"),
        ("03", "02", "01 c0000207 00 01 61"),
    ];
    for (msg_type, version, body) in bodies {
        for (enterprise, ok) in [
            ("00000001", true),
            ("0000118b", true),
            ("00000000", false),
            ("00000002", false),
            ("0000118a", false),
            ("8b110000", false),
            ("01000000", false),
            ("ffffffff", false),
        ] {
            let bytes = hex(&format!("{msg_type} {enterprise} {version} {body}"));
            let n = u32::from_str_radix(enterprise, 16).unwrap();
            match decode(&bytes) {
                Ok(m) => {
                    assert!(ok, "{msg_type}/{version} with {n} decoded: {m:?}");
                    assert_eq!(m.encode().unwrap(), bytes);
                }
                Err(e) => {
                    assert!(!ok, "{msg_type}/{version} with {n}: {e}");
                    assert_eq!(e, CodecError::UnknownEnterprise(n));
                }
            }
            assert_eq!(is_known_enterprise(n), ok);
        }
    }
    // The encoder refuses what the decoder would.
    for enterprise in [0, 2, 4490, u32::MAX] {
        let m = Message::Request(FqdnRequest {
            enterprise,
            mac: [0; 6],
            pubkey_hash: [0; 20],
            revocation_time: 0,
        });
        assert_eq!(m.encode(), Err(CodecError::UnknownEnterprise(enterprise)));
    }
}
