//! Reply-key derivation: RFC 8636 §8 test vectors and RFC 4556
//! octetstring2key cross-checks.

use krb::crypto::EncType;
use krb::principal::Principal;
use pkinit::dh::{Kdf, kdf_rfc8636, octetstring2key, other_info};
use sha1::{Digest, Sha1};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

/// RFC 8636 §8 common inputs: Z = 256 zero bytes, client lha@SU.SE, KDC
/// krbtgt/SU.SE@SU.SE (both name-type 1, as MIT's krb5_parse_name gives and
/// as the vectors' OtherInfo encodes), AS-REQ = 10 x 0xAA, PK-AS-REP = 9 x 0xBB.
struct Common {
    z: Vec<u8>,
    client: Principal,
    kdc: Principal,
    as_req: Vec<u8>,
    pk_as_rep: Vec<u8>,
}

fn common() -> Common {
    Common {
        z: vec![0u8; 256],
        client: Principal::new(1, vec!["lha".into()], "SU.SE"),
        kdc: Principal::new(1, vec!["krbtgt".into(), "SU.SE".into()], "SU.SE"),
        as_req: vec![0xAA; 10],
        pk_as_rep: vec![0xBB; 9],
    }
}

/// (KDF, enctype, OtherInfo DER, expected key). Keys as published in RFC 8636
/// §8 (transcribed in MIT krb5's pkinit_kdf_test.c and in OpenSSL's
/// evpkdf_ss.txt "SSKDF Test vectors from RFC 8636 Section 8", which also
/// gives the OtherInfo bytes and, for des3, the 21-byte KDF output
/// d3c78b78d75313e9a926f75dfb012363fa17fa01db before random-to-key).
fn vectors() -> Vec<(Kdf, EncType, Vec<u8>, Vec<u8>)> {
    vec![
        (
            Kdf::Sha1,
            EncType::Aes256CtsHmacSha196,
            h(
                "307e300a06082b06010502030601a01f041d301ba0071b0553552e5345a110300ea003020101a10730051b036c6861a12904273025a0071b0553552e5345a11a3018a003020101a111300f1b066b72627467741b0553552e5345a22404223020a003020112a10c040aaaaaaaaaaaaaaaaaaaaaa20b0409bbbbbbbbbbbbbbbbbb",
            ),
            h("e6ab38c9413e035bb079201ed0b6b73d8d49a814a737c04ee6649614206f73ad"),
        ),
        (
            Kdf::Sha256,
            EncType::Aes256CtsHmacSha196,
            h(
                "307e300a06082b06010502030602a01f041d301ba0071b0553552e5345a110300ea003020101a10730051b036c6861a12904273025a0071b0553552e5345a11a3018a003020101a111300f1b066b72627467741b0553552e5345a22404223020a003020112a10c040aaaaaaaaaaaaaaaaaaaaaa20b0409bbbbbbbbbbbbbbbbbb",
            ),
            h("77ef4e48c420ae3fec75109d7981697eed5d295c90c62564f7bfd101fa9bc1d5"),
        ),
        (
            Kdf::Sha512,
            EncType::Des3CbcSha1Kd,
            h(
                "307e300a06082b06010502030603a01f041d301ba0071b0553552e5345a110300ea003020101a10730051b036c6861a12904273025a0071b0553552e5345a11a3018a003020101a111300f1b066b72627467741b0553552e5345a22404223020a003020110a10c040aaaaaaaaaaaaaaaaaaaaaa20b0409bbbbbbbbbbbbbbbbbb",
            ),
            h("d3c78a79d65213efe9a826f75dfb01f72362fb16fb01dad6"),
        ),
    ]
}

#[test]
fn rfc8636_other_info_encoding() {
    let c = common();
    for (kdf, etype, info, _) in vectors() {
        let got = other_info(kdf, etype, &c.client, &c.kdc, &c.as_req, &c.pk_as_rep).unwrap();
        assert_eq!(hex::encode(got), hex::encode(info), "{kdf:?}");
    }
}

#[test]
fn rfc8636_test_vectors() {
    let c = common();
    for (kdf, etype, _, key) in vectors() {
        let got =
            kdf_rfc8636(kdf, etype, &c.z, &c.client, &c.kdc, &c.as_req, &c.pk_as_rep).unwrap();
        assert_eq!(got.etype(), etype);
        assert_eq!(
            hex::encode(got.bytes()),
            hex::encode(key),
            "{kdf:?} {etype:?}"
        );
    }
}

#[test]
fn kdf_oids_round_trip() {
    for k in Kdf::ALL {
        assert_eq!(Kdf::from_oid(k.oid()), Some(k));
    }
    assert_eq!(
        Kdf::from_oid(pkinit::asn1::oid::KDF_SHA256),
        Some(Kdf::Sha256)
    );
    assert_eq!(Kdf::from_oid(pkinit::asn1::oid::DH_KEY_DATA), None);
}

/// Heimdal's lib/krb5/test_pkinit_dh2key.c vectors (aes256, no nonces): an
/// implementation independent of ours and of picky-krb.
#[test]
fn octetstring2key_heimdal_vectors() {
    let pattern: Vec<u8> = (0..128).map(|i| (i % 17) as u8).collect();
    let cases: [(Vec<u8>, &str); 4] = [
        (
            vec![0; 256],
            "5ee50d675c809fe59e4a7762c54b658375 47eafb159bd8cdc75ffca5911e4c41",
        ),
        (
            vec![0; 128],
            "acf7707c08973ddfdb27cd361442ccfba355c8884cb472f37da636d07d56787e",
        ),
        (
            pattern.clone(),
            "c442da585fcb80e43b47946f254093e37329d99001380db78371db3acf5c797e",
        ),
        (
            pattern[..77].to_vec(),
            "0053953b84c896f4eb385c3f2e751c4a590ed6ffadca6ff64f47ebeb8d780ffc",
        ),
    ];
    for (i, (x, key)) in cases.iter().enumerate() {
        let got = octetstring2key(EncType::Aes256CtsHmacSha196, x, None, None).unwrap();
        assert_eq!(hex::encode(got.bytes()), hex::encode(h(key)), "case {i}");
    }
}

/// A hand-computed case of the algorithm as RFC 4556 and MIT describe it:
/// K-truncate(SHA1(0x00|x) | SHA1(0x01|x)) with x = ZZ | n_c | n_k, then
/// random-to-key (identity for AES).
#[test]
fn octetstring2key_by_hand() {
    let zz = [0x01u8, 0x02, 0x03];
    let (nc, nk) = ([0xC0u8; 4], [0x5Eu8; 2]);
    let x: Vec<u8> = [&zz[..], &nc, &nk].concat();
    let mut stream = Vec::new();
    for counter in 0u8..2 {
        let mut s = Sha1::new();
        s.update([counter]);
        s.update(&x);
        stream.extend_from_slice(&s.finalize());
    }
    let k128 = octetstring2key(EncType::Aes128CtsHmacSha196, &zz, Some(&nc), Some(&nk)).unwrap();
    assert_eq!(k128.bytes(), &stream[..16]);
    let k256 = octetstring2key(EncType::Aes256CtsHmacSha196, &zz, Some(&nc), Some(&nk)).unwrap();
    assert_eq!(k256.bytes(), &stream[..32]);
    // RFC 4556: nonces count only when both are present.
    let only_client = octetstring2key(EncType::Aes128CtsHmacSha196, &zz, Some(&nc), None).unwrap();
    let none = octetstring2key(EncType::Aes128CtsHmacSha196, &zz, None, None).unwrap();
    assert_eq!(only_client.bytes(), none.bytes());
    assert_ne!(none.bytes(), k128.bytes());
}

/// Cross-check against picky-krb's RFC 4556 implementation (etypes 16, 17, 18).
#[test]
fn octetstring2key_matches_picky_krb() {
    use picky_krb::crypto::CipherSuite;
    use picky_krb::crypto::diffie_hellman::{DhNonce, generate_key_from_shared_secret};
    let secret: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
    let nc = [0x11u8; 40];
    let nk = [0x22u8; 32];
    for (ours, theirs) in [
        (EncType::Des3CbcSha1Kd, CipherSuite::Des3CbcSha1Kd),
        (
            EncType::Aes128CtsHmacSha196,
            CipherSuite::Aes128CtsHmacSha196,
        ),
        (
            EncType::Aes256CtsHmacSha196,
            CipherSuite::Aes256CtsHmacSha196,
        ),
    ] {
        let cipher = theirs.cipher();
        let want = generate_key_from_shared_secret(secret.clone(), None, cipher.as_ref()).unwrap();
        let got = octetstring2key(ours, &secret, None, None).unwrap();
        assert_eq!(got.bytes(), want.as_slice(), "{ours:?} without nonces");
        let want = generate_key_from_shared_secret(
            secret.clone(),
            Some(DhNonce {
                client_nonce: &nc,
                server_nonce: &nk,
            }),
            cipher.as_ref(),
        )
        .unwrap();
        let got = octetstring2key(ours, &secret, Some(&nc), Some(&nk)).unwrap();
        assert_eq!(got.bytes(), want.as_slice(), "{ours:?} with nonces");
    }
}

#[test]
fn rfc8009_enctypes_derive_full_length_keys() {
    let c = common();
    for etype in [
        EncType::Aes128CtsHmacSha256128,
        EncType::Aes256CtsHmacSha384192,
    ] {
        let k = kdf_rfc8636(
            Kdf::Sha256,
            etype,
            &c.z,
            &c.client,
            &c.kdc,
            &c.as_req,
            &c.pk_as_rep,
        )
        .unwrap();
        assert_eq!(k.bytes().len(), etype.key_len());
        let k = octetstring2key(etype, &c.z, None, None).unwrap();
        assert_eq!(k.bytes().len(), etype.key_len());
    }
}
