//! DH/ECDH agreement: round trips, an independent OpenSSL peer (guards the
//! leading-zero trap), group identification and hostile public values.

use openssl::bn::BigNum;
use openssl::derive::Deriver;
use openssl::dh::Dh;
use openssl::pkey::PKey;
use pkinit::asn1::oid;
use pkinit::dh::{ClientKey, DhError, Group, parse_client_public, server_agree, td_dh_parameters};
use rasn::types::{Any, BitString, Oid};
use rasn_pkix::{AlgorithmIdentifier, SubjectPublicKeyInfo};

// ---- small DER helpers (test side, independent of the crate's) ----

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else if n < 0x100 {
        vec![0x81, n as u8]
    } else {
        vec![0x82, (n >> 8) as u8, n as u8]
    }
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    [&[tag][..], &der_len(body.len()), body].concat()
}

fn int(mag: &[u8]) -> Vec<u8> {
    let mut m: Vec<u8> = mag.iter().copied().skip_while(|&b| b == 0).collect();
    if m.first().is_none_or(|&b| b & 0x80 != 0) {
        m.insert(0, 0);
    }
    tlv(0x02, &m)
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn prime(group: Group) -> Vec<u8> {
    match group {
        Group::Modp1024 => BigNum::get_rfc2409_prime_1024(),
        Group::Modp2048 => BigNum::get_rfc3526_prime_2048(),
        Group::Modp3072 => BigNum::get_rfc3526_prime_3072(),
        Group::Modp4096 => BigNum::get_rfc3526_prime_4096(),
        _ => unreachable!(),
    }
    .unwrap()
    .to_vec()
}

fn q_of(p: &[u8]) -> Vec<u8> {
    let mut q = BigNum::new().unwrap();
    q.rshift1(&BigNum::from_slice(p).unwrap()).unwrap();
    q.to_vec()
}

fn dh_spki(params: Vec<u8>, public: Vec<u8>) -> SubjectPublicKeyInfo {
    SubjectPublicKeyInfo {
        algorithm: AlgorithmIdentifier {
            algorithm: oid::DH_PUBLIC_NUMBER.to_owned(),
            parameters: Some(Any::new(params)),
        },
        subject_public_key: BitString::from_vec(public),
    }
}

fn modp_spki(p: &[u8], g: &[u8], q: Option<&[u8]>, y: &[u8]) -> SubjectPublicKeyInfo {
    let mut parts = vec![int(p), int(g)];
    if let Some(q) = q {
        parts.push(int(q));
    }
    dh_spki(seq(&parts), int(y))
}

fn ec_spki(curve_oid_der: &[u8], point: Vec<u8>) -> SubjectPublicKeyInfo {
    SubjectPublicKeyInfo {
        algorithm: AlgorithmIdentifier {
            algorithm: oid::EC_PUBLIC_KEY.to_owned(),
            parameters: Some(Any::new(curve_oid_der.to_vec())),
        },
        subject_public_key: BitString::from_vec(point),
    }
}

const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn round_trip(group: Group) -> usize {
    let client = ClientKey::generate(group).unwrap();
    let spki = client.spki();
    // Through DER and back, as it travels in the AuthPack.
    let spki: SubjectPublicKeyInfo = rasn::der::decode(&rasn::der::encode(&spki).unwrap()).unwrap();
    let parsed = parse_client_public(&spki).unwrap();
    assert_eq!(parsed.group, group);
    let agreement = server_agree(&parsed).unwrap();
    let client_secret = client.finish(&agreement.server_public).unwrap();
    assert_eq!(
        agreement.shared_secret.len(),
        group.secret_len(),
        "{group:?}"
    );
    assert_eq!(*client_secret, *agreement.shared_secret, "{group:?}");
    usize::from(agreement.shared_secret[0] == 0)
}

#[test]
fn all_groups_agree() {
    for group in Group::ALL {
        for _ in 0..3 {
            round_trip(group);
        }
    }
}

#[test]
fn modp2048_many_exchanges_never_mismatch() {
    let mut leading_zero = 0;
    for _ in 0..2000 {
        leading_zero += round_trip(Group::Modp2048);
    }
    // About 2000/256 secrets start with a zero byte; all were still |p| long
    // and equal on both sides. (Not asserted: it is random.)
    let _ = leading_zero;
}

#[test]
fn ec_many_exchanges() {
    for _ in 0..200 {
        round_trip(Group::P256);
    }
    for _ in 0..100 {
        round_trip(Group::P384);
    }
}

/// An independent client: OpenSSL's own DH key (full-length exponent) and
/// EVP_PKEY_derive, whose unpadded output we left-pad. Guards the
/// leading-zero trap on the KDC side without trusting our client code.
#[test]
fn modp2048_against_openssl_dh_peer() {
    let p = prime(Group::Modp2048);
    let q = q_of(&p);
    let mut leading_zero = 0;
    for i in 0..300 {
        let params = Dh::from_pqg(
            BigNum::from_slice(&p).unwrap(),
            None,
            BigNum::from_u32(2).unwrap(),
        )
        .unwrap();
        let key = params.generate_key().unwrap();
        let y = key.public_key().to_vec();
        // Alternate with and without q, as clients differ.
        let spki = modp_spki(&p, &[2], (i % 2 == 0).then_some(&q[..]), &y);
        let parsed = parse_client_public(&spki).unwrap();
        let agreement = server_agree(&parsed).unwrap();

        let server_y = {
            let c = asn1_integer_contents(&agreement.server_public);
            BigNum::from_slice(c).unwrap()
        };
        let peer = Dh::from_pqg(
            BigNum::from_slice(&p).unwrap(),
            None,
            BigNum::from_u32(2).unwrap(),
        )
        .unwrap()
        .set_public_key(server_y)
        .unwrap();
        let peer = PKey::from_dh(peer).unwrap();
        let own = PKey::from_dh(key).unwrap();
        let mut d = Deriver::new(&own).unwrap();
        d.set_peer(&peer).unwrap();
        let raw = d.derive_to_vec().unwrap();
        let mut padded = vec![0u8; 256 - raw.len()];
        padded.extend_from_slice(&raw);
        if raw.len() < 256 {
            leading_zero += 1;
        }
        assert_eq!(agreement.shared_secret.len(), 256);
        assert_eq!(padded, *agreement.shared_secret, "exchange {i}");
    }
    let _ = leading_zero;
}

fn asn1_integer_contents(der: &[u8]) -> &[u8] {
    assert_eq!(der[0], 0x02);
    let (len, off) = match der[1] {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(der[2]), 3),
        0x82 => ((usize::from(der[2]) << 8) | usize::from(der[3]), 4),
        _ => panic!("long INTEGER"),
    };
    assert_eq!(der.len(), off + len);
    &der[off..]
}

/// A real peer: a DHX (X9.42, dhpublicnumber with p, g, q) key made by the
/// openssl CLI, and `openssl pkeyutl -derive` against the KDC's value.
/// Skipped when the CLI is not installed.
#[test]
fn openssl_cli_peer() {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("pkinit-dh-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    if run(&[
        "genpkey",
        "-algorithm",
        "DHX",
        "-pkeyopt",
        "group:modp_2048",
        "-out",
        "key.pem",
    ])
    .is_none()
    {
        eprintln!("openssl CLI with DHX unavailable: skipped");
        return;
    }
    run(&[
        "pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
    ])
    .unwrap();
    let spki: SubjectPublicKeyInfo =
        rasn::der::decode(&std::fs::read(dir.join("pub.der")).unwrap()).unwrap();
    assert_eq!(spki.algorithm.algorithm, *oid::DH_PUBLIC_NUMBER);
    let parsed = parse_client_public(&spki).unwrap();
    assert_eq!(parsed.group, Group::Modp2048);
    let agreement = server_agree(&parsed).unwrap();
    let server_spki = SubjectPublicKeyInfo {
        algorithm: spki.algorithm.clone(),
        subject_public_key: BitString::from_vec(agreement.server_public.clone()),
    };
    std::fs::write(
        dir.join("srv.der"),
        rasn::der::encode(&server_spki).unwrap(),
    )
    .unwrap();
    run(&[
        "pkeyutl",
        "-derive",
        "-inkey",
        "key.pem",
        "-peerkey",
        "srv.der",
        "-peerform",
        "DER",
        "-out",
        "zz.bin",
    ])
    .unwrap();
    let raw = std::fs::read(dir.join("zz.bin")).unwrap();
    let mut padded = vec![0u8; 256 - raw.len()];
    padded.extend_from_slice(&raw);
    assert_eq!(padded, *agreement.shared_secret);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- group identification ----

#[test]
fn oakley_group_2_is_recognised_and_too_weak() {
    let p = prime(Group::Modp1024);
    let q = q_of(&p);
    let parsed = parse_client_public(&modp_spki(&p, &[2], Some(&q), &[5])).unwrap();
    assert_eq!(parsed.group, Group::Modp1024);
    let err = parsed.check_min_bits(2048).unwrap_err();
    assert!(matches!(err, DhError::TooWeak { bits: 1024 }));
    assert_eq!(err.krb_error_code(), 65);
    assert!(err.wants_td_dh_parameters());
    assert!(parsed.check_min_bits(1024).is_ok());
    // Without q too.
    let parsed = parse_client_public(&modp_spki(&p, &[2], None, &[5])).unwrap();
    assert_eq!(parsed.group, Group::Modp1024);
}

#[test]
fn policy_equivalents() {
    assert!(Group::P256.check_min_bits(2048).is_ok());
    assert!(Group::P256.check_min_bits(4096).is_err());
    assert!(Group::P384.check_min_bits(4096).is_ok());
    assert!(Group::Modp2048.check_min_bits(2048).is_ok());
    assert!(Group::Modp2048.check_min_bits(3072).is_err());
    assert_eq!(Group::P521.bits(), 521);
    assert_eq!(Group::P521.secret_len(), 66);
}

#[test]
fn each_modp_group_identified_with_and_without_q() {
    for g in [Group::Modp2048, Group::Modp3072, Group::Modp4096] {
        let p = prime(g);
        let q = q_of(&p);
        for q in [None, Some(&q[..])] {
            assert_eq!(
                parse_client_public(&modp_spki(&p, &[2], q, &[7]))
                    .unwrap()
                    .group,
                g
            );
        }
    }
}

#[test]
fn unknown_prime_generator_or_wrong_q() {
    let p = prime(Group::Modp2048);
    let q = q_of(&p);
    let mut other = p.clone();
    other[100] ^= 1;
    let e = parse_client_public(&modp_spki(&other, &[2], None, &[7])).unwrap_err();
    assert!(matches!(e, DhError::UnknownGroup));
    assert_eq!(e.krb_error_code(), 65);
    let e = parse_client_public(&modp_spki(&p, &[5], None, &[7])).unwrap_err();
    assert!(matches!(e, DhError::UnknownGroup));
    let mut bad_q = q.clone();
    bad_q[10] ^= 0x40;
    let e = parse_client_public(&modp_spki(&p, &[2], Some(&bad_q), &[7])).unwrap_err();
    assert!(matches!(e, DhError::UnknownGroup));
    let e = parse_client_public(&modp_spki(&p, &[2], Some(&[0x0b]), &[7])).unwrap_err();
    assert!(matches!(e, DhError::UnknownGroup));
    // X9.42 j and validationParms after q are tolerated.
    let params = seq(&[
        int(&p),
        int(&[2]),
        int(&q),
        int(&[2]),
        seq(&[tlv(0x03, &[0, 1, 2]), int(&[1])]),
    ]);
    let parsed = parse_client_public(&dh_spki(params, int(&[7]))).unwrap();
    assert_eq!(parsed.group, Group::Modp2048);
}

#[test]
fn out_of_range_public_values() {
    let p = prime(Group::Modp2048);
    let q = q_of(&p);
    let pm1 = {
        let mut v = p.clone();
        *v.last_mut().unwrap() -= 1;
        v
    };
    let pp1 = {
        let mut v = BigNum::from_slice(&p).unwrap();
        v.add_word(1).unwrap();
        v.to_vec()
    };
    let mut longer = vec![1u8];
    longer.extend_from_slice(&p);
    for y in [
        vec![0u8],
        vec![1],
        pm1.clone(),
        p.clone(),
        pp1,
        longer,
        vec![0xff; 300],
    ] {
        let e = parse_client_public(&modp_spki(&p, &[2], Some(&q), &y)).unwrap_err();
        assert!(matches!(e, DhError::BadPublicValue), "{e:?}");
        assert_eq!(e.krb_error_code(), 24);
    }
    // Negative y.
    let spki = dh_spki(seq(&[int(&p), int(&[2])]), tlv(0x02, &[0x80, 1]));
    assert!(matches!(
        parse_client_public(&spki),
        Err(DhError::BadPublicValue)
    ));
    // p-2 and 2 are the range's ends and fine.
    let mut pm2 = p.clone();
    *pm2.last_mut().unwrap() -= 2;
    for y in [vec![2u8], pm2] {
        parse_client_public(&modp_spki(&p, &[2], Some(&q), &y)).unwrap();
    }
}

#[test]
fn malformed_encodings() {
    let p = prime(Group::Modp2048);
    // Public value not an INTEGER, trailing bytes, non-minimal INTEGER.
    for key in [
        tlv(0x04, &[7]),
        [int(&[7]), vec![0]].concat(),
        tlv(0x02, &[0, 7]),
        vec![],
    ] {
        let e = parse_client_public(&dh_spki(seq(&[int(&p), int(&[2])]), key)).unwrap_err();
        assert!(matches!(e, DhError::Malformed(_)), "{e:?}");
        assert_eq!(e.krb_error_code(), 24);
    }
    // BIT STRING with unused bits.
    let mut spki = modp_spki(&p, &[2], None, &[7]);
    spki.subject_public_key.pop();
    assert!(matches!(
        parse_client_public(&spki),
        Err(DhError::Malformed(_))
    ));
    // No parameters; parameters that are not a SEQUENCE; only p.
    let mut spki = modp_spki(&p, &[2], None, &[7]);
    spki.algorithm.parameters = None;
    assert!(matches!(
        parse_client_public(&spki),
        Err(DhError::Malformed(_))
    ));
    for params in [int(&p), seq(&[int(&p)]), vec![0x30, 0x80, 0, 0], vec![]] {
        let e = parse_client_public(&dh_spki(params, int(&[7]))).unwrap_err();
        assert!(matches!(e, DhError::Malformed(_)), "{e:?}");
    }
    // Another algorithm (rsaEncryption).
    let mut spki = modp_spki(&p, &[2], None, &[7]);
    spki.algorithm.algorithm = Oid::new(&[1, 2, 840, 113549, 1, 1, 1]).unwrap().to_owned();
    assert!(matches!(
        parse_client_public(&spki),
        Err(DhError::UnknownGroup)
    ));
}

#[test]
fn bad_ec_points_and_curves() {
    let good = ClientKey::generate(Group::P256).unwrap().spki();
    let point = good.subject_public_key.as_raw_slice().to_vec();
    assert_eq!(point.len(), 65);
    // Not on the curve.
    let mut off = point.clone();
    off[64] ^= 1;
    assert!(matches!(
        parse_client_public(&ec_spki(&P256_OID, off)),
        Err(DhError::BadPublicValue)
    ));
    // Infinity, wrong lengths, hybrid form, x not on the curve (compressed).
    let mut hybrid = point.clone();
    hybrid[0] = 0x06;
    let mut compressed_bad = vec![0x02];
    compressed_bad.extend_from_slice(&[0xff; 32]);
    for bad in [
        vec![0x00],
        point[..64].to_vec(),
        vec![],
        hybrid,
        compressed_bad,
    ] {
        let e = parse_client_public(&ec_spki(&P256_OID, bad)).unwrap_err();
        assert!(matches!(e, DhError::BadPublicValue), "{e:?}");
    }
    // A valid compressed point works.
    let key = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let mut ctx = openssl::bn::BigNumContext::new().unwrap();
    let comp = key
        .public_key()
        .to_bytes(
            key.group(),
            openssl::ec::PointConversionForm::COMPRESSED,
            &mut ctx,
        )
        .unwrap();
    let parsed = parse_client_public(&ec_spki(&P256_OID, comp)).unwrap();
    assert_eq!(server_agree(&parsed).unwrap().shared_secret.len(), 32);
    // P-384 OID with a P-256 point.
    let p384 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    assert!(matches!(
        parse_client_public(&ec_spki(&p384, point.clone())),
        Err(DhError::BadPublicValue)
    ));
    // secp256k1 (1.3.132.0.10): unknown; specifiedCurve (a SEQUENCE): unknown.
    let k1 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
    assert!(matches!(
        parse_client_public(&ec_spki(&k1, point.clone())),
        Err(DhError::UnknownGroup)
    ));
    assert!(matches!(
        parse_client_public(&ec_spki(&seq(&[int(&[1])]), point.clone())),
        Err(DhError::UnknownGroup)
    ));
    assert!(matches!(
        parse_client_public(&ec_spki(&[0x06, 0x05, 0x2b], point)),
        Err(DhError::Malformed(_))
    ));
}

#[test]
fn client_rejects_bad_server_values() {
    let c = ClientKey::generate(Group::Modp2048).unwrap();
    for bad in [int(&[1]), int(&[0]), vec![], vec![0x02], tlv(0x04, &[9])] {
        assert!(c.finish(&bad).is_err());
    }
    let c = ClientKey::generate(Group::P256).unwrap();
    assert!(c.finish(&[0x04; 65]).is_err());
    assert!(c.finish(&[]).is_err());
}

#[test]
fn fresh_server_key_every_call() {
    let client = ClientKey::generate(Group::Modp2048).unwrap();
    let parsed = parse_client_public(&client.spki()).unwrap();
    let a = server_agree(&parsed).unwrap();
    let b = server_agree(&parsed).unwrap();
    assert_ne!(a.server_public, b.server_public);
    assert_ne!(*a.shared_secret, *b.shared_secret);
}

/// Random garbage in every field: errors only, never a panic.
#[test]
fn garbage_never_panics() {
    let mut rng = testkit::Rng(0x9E37_79B9_7F4A_7C15);
    let mut next = move || rng.next_u64();
    let p = prime(Group::Modp2048);
    let templates: Vec<Vec<u8>> = vec![
        seq(&[int(&p), int(&[2]), int(&q_of(&p))]),
        P256_OID.to_vec(),
        vec![],
    ];
    for i in 0..5000 {
        let mut params = templates[i % templates.len()].clone();
        let mut key = int(&[7; 40]);
        let n = (next() % 4) as usize;
        for _ in 0..n {
            if !params.is_empty() {
                let at = (next() as usize) % params.len();
                params[at] = next() as u8;
            }
            let at = (next() as usize) % key.len();
            key[at] = next() as u8;
        }
        if next() % 5 == 0 {
            let cut = (next() as usize) % (params.len() + 1);
            params.truncate(cut);
        }
        if next() % 7 == 0 {
            key = (0..(next() % 80)).map(|_| next() as u8).collect();
        }
        let algorithm = if i % 2 == 0 {
            oid::DH_PUBLIC_NUMBER
        } else {
            oid::EC_PUBLIC_KEY
        };
        let spki = SubjectPublicKeyInfo {
            algorithm: AlgorithmIdentifier {
                algorithm: algorithm.to_owned(),
                parameters: Some(Any::new(params)),
            },
            subject_public_key: BitString::from_vec(key),
        };
        if let Ok(c) = parse_client_public(&spki) {
            let _ = server_agree(&c);
        }
    }
}

#[test]
fn td_dh_parameters_lists_acceptable_modp_groups() {
    for (min, expect) in [
        (
            2048,
            vec![Group::Modp2048, Group::Modp3072, Group::Modp4096],
        ),
        (
            1024,
            vec![
                Group::Modp1024,
                Group::Modp2048,
                Group::Modp3072,
                Group::Modp4096,
            ],
        ),
        (4096, vec![Group::Modp4096]),
    ] {
        let der = td_dh_parameters(min);
        let list: Vec<AlgorithmIdentifier> = rasn::der::decode(&der).unwrap();
        let groups: Vec<Group> = list
            .into_iter()
            .map(|ai| {
                assert_eq!(ai.algorithm, *oid::DH_PUBLIC_NUMBER);
                let spki = SubjectPublicKeyInfo {
                    algorithm: ai,
                    subject_public_key: BitString::from_vec(int(&[7])),
                };
                parse_client_public(&spki).unwrap().group
            })
            .collect();
        assert_eq!(groups, expect, "min {min}");
    }
    let empty: Vec<AlgorithmIdentifier> = rasn::der::decode(&td_dh_parameters(8192)).unwrap();
    assert!(empty.is_empty());
}

/// This thread's CPU time in ns (Linux /proc schedstat), so that other
/// load on the machine does not inflate the numbers; wall time elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Timing (release): `cargo test -p pkinit --release --test dh_agree -- --ignored --nocapture`.
/// Prints per-call CPU (and wall) time of parse_client_public + server_agree.
#[test]
#[ignore]
fn timing_server_agree() {
    use std::time::Instant;
    for group in [Group::Modp2048, Group::P256, Group::P384, Group::Modp3072] {
        let client = ClientKey::generate(group).unwrap();
        let spki = client.spki();
        let n = 2000u32;
        let (t, c) = (Instant::now(), thread_cpu_ns());
        for _ in 0..n {
            let parsed = parse_client_public(&spki).unwrap();
            std::hint::black_box(server_agree(&parsed).unwrap());
        }
        let wall = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let cpu = match (c, thread_cpu_ns()) {
            (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 / 1e3 / f64::from(n)),
            _ => "n/a".into(),
        };
        println!("{group:?}: parse_client_public + server_agree: cpu {cpu} us, wall {wall:.1} us");
    }
}
