//! Cross-checks against picky-krb 0.13.1 (an independent implementation of
//! etypes 16, 17 and 18) used as a test oracle.

use krb::crypto::{EncType, Key, usage};
use picky_krb::crypto::{ChecksumSuite, CipherSuite};

fn pairs() -> [(EncType, CipherSuite, ChecksumSuite); 3] {
    [
        (
            EncType::Aes128CtsHmacSha196,
            CipherSuite::Aes128CtsHmacSha196,
            ChecksumSuite::HmacSha196Aes128,
        ),
        (
            EncType::Aes256CtsHmacSha196,
            CipherSuite::Aes256CtsHmacSha196,
            ChecksumSuite::HmacSha196Aes256,
        ),
        (
            EncType::Des3CbcSha1Kd,
            CipherSuite::Des3CbcSha1Kd,
            ChecksumSuite::HmacSha1Des3Kd,
        ),
    ]
}

const USAGES: [u32; 5] = [
    usage::PA_ENC_TIMESTAMP,
    usage::TICKET,
    usage::AS_REP_ENC_PART,
    usage::TGS_REP_ENC_PART_SESSION,
    usage::KRB_PRIV_ENC_PART,
];
const LENS: [usize; 6] = [0, 1, 15, 16, 17, 100];

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + 7) as u8).collect()
}

/// des3 decryption may return the plaintext zero-padded to 8 bytes.
fn same_plaintext(etype: EncType, got: &[u8], want: &[u8]) -> bool {
    if etype == EncType::Des3CbcSha1Kd {
        got.len() >= want.len()
            && &got[..want.len()] == want
            && got[want.len()..].iter().all(|&b| b == 0)
    } else {
        got == want
    }
}

#[test]
fn ours_encrypt_picky_decrypt() {
    for (etype, suite, _) in pairs() {
        let key = Key::random(etype);
        let cipher = suite.cipher();
        for u in USAGES {
            for len in LENS {
                let pt = plaintext(len);
                let ct = key.encrypt(u, &pt);
                let out = cipher
                    .decrypt(key.bytes(), u as i32, &ct)
                    .expect("picky decrypts ours");
                assert!(
                    same_plaintext(etype, &out, &pt),
                    "{etype:?} usage {u} len {len}"
                );
            }
        }
    }
}

#[test]
fn picky_encrypt_ours_decrypt() {
    for (etype, suite, _) in pairs() {
        let key = Key::random(etype);
        let cipher = suite.cipher();
        for u in USAGES {
            let uk = key.usage(u);
            for len in LENS {
                let pt = plaintext(len);
                let ct = cipher
                    .encrypt(key.bytes(), u as i32, &pt)
                    .expect("picky encrypts");
                let out = uk.decrypt(&ct).expect("we decrypt picky's");
                assert!(
                    same_plaintext(etype, &out, &pt),
                    "{etype:?} usage {u} len {len}"
                );
            }
        }
    }
}

/// Keyed checksums equal picky-krb's for the AES types. For des3 picky-krb
/// 0.13.1 keys its HMAC with Ki (usage | 0x55) instead of Kc (usage | 0x99,
/// RFC 3961 §5.4), so it cannot serve as an oracle there; our des3 checksum
/// is pinned to an MIT interop vector in `des3_interop_vectors` instead, and
/// this test checks that picky's des3 value is exactly the Ki-keyed HMAC.
#[test]
fn checksums_match_picky() {
    for (etype, _, csuite) in pairs() {
        if etype == EncType::Des3CbcSha1Kd {
            continue;
        }
        let key = Key::random(etype);
        let hasher = csuite.hasher();
        for u in [
            usage::TGS_REQ_AUTH_CKSUM,
            usage::AP_REQ_AUTH_CKSUM,
            usage::KRB_SAFE_CKSUM,
        ] {
            for len in LENS {
                let data = plaintext(len);
                let theirs = hasher
                    .checksum(key.bytes(), u as i32, &data)
                    .expect("picky checksum");
                assert_eq!(
                    key.checksum(u, &data),
                    theirs,
                    "{etype:?} usage {u} len {len}"
                );
                key.verify_checksum(u, &data, &theirs).unwrap();
            }
        }
    }
}

/// picky-krb's AES string-to-key always uses 4096 iterations (the default).
#[test]
fn string_to_key_matches_picky() {
    let cases: [(&[u8], &[u8]); 3] = [
        (b"password", b"ATHENA.MIT.EDUraeburn"),
        (b"mta-secret", b"PACKETCABLE.EXAMPLE.COMmta/host"),
        ("p\u{e4}ssw\u{f6}rd".as_bytes(), b"EXAMPLE.COMuser"),
    ];
    for (etype, suite, _) in pairs() {
        let cipher = suite.cipher();
        for (pw, salt) in cases {
            let ours = Key::from_password(etype, pw, salt, None).unwrap();
            let theirs = cipher
                .generate_key_from_password(pw, salt)
                .expect("picky s2k");
            assert_eq!(ours.bytes(), &theirs[..], "{etype:?} {salt:?}");
        }
    }
}

#[test]
fn picky_des3_checksum_uses_ki() {
    use hmac::{Hmac, KeyInit, Mac};
    let key = Key::random(EncType::Des3CbcSha1Kd);
    let theirs = ChecksumSuite::HmacSha1Des3Kd
        .hasher()
        .checksum(key.bytes(), 6, b"req-body")
        .unwrap();
    assert_ne!(key.checksum(6, b"req-body"), theirs);
    // picky's value is HMAC-SHA1 under Ki; recover Ki through its own
    // derive function and check, to make sure the difference is only that.
    let ki = picky_krb::crypto::des::derive_key(key.bytes(), &[0, 0, 0, 6, 0x55]).unwrap();
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&ki).unwrap();
    mac.update(b"req-body");
    assert_eq!(mac.finalize().into_bytes().to_vec(), theirs);
}
