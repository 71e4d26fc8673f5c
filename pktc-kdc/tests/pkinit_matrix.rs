//! The PKINIT acceptance matrix of docs/protocol-profile.md as a table:
//! each row is one client's choices (digest, signature algorithm, signer
//! identifier, signed attributes, certificates sent, DH group, KDF, DH
//! nonce, optional fields, its own PKAuthenticator nonce), built the way
//! eue-sim builds requests (`pkinit::client`), sent to `pktc-kdc` over TCP;
//! the expected outcome is an AS-REP that client opens (DH rows: with the
//! serverDHNonce / dhKeyExpiration the KDC's key reuse calls for) or the
//! exact KRB-ERROR code and audit reason. MIT's kinit (pkinit_mit.rs) and
//! Heimdal's (pkinit_heimdal.rs) cover their own rows.

mod pklab;

use std::path::Path;

use krb::msg::consts::err;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use pkinit::client::{CertSet, Profile, SignatureAlg, SignedAttrs, SignerId};
use pkinit::dh::{ClientKey, Group, Kdf};
use pklab::{DhReplyFields, Lab, Sent, code, next_pkinit_audit, open_rfc4556, typed_data};
use testkit::DevKdc;

/// EC device certificates (P-256, P-384, P-521) from the realm's
/// manufacturer CA, known to the provisioning server.
fn prepare(realm: &Path, _cfg: &mut String) {
    let mfr = pklab::manufacturer(realm);
    for (name, nid, last) in [
        ("ec-p256", Nid::X9_62_PRIME256V1, 0x21),
        ("ec-p384", Nid::SECP384R1, 0x22),
        ("ec-p521", Nid::SECP521R1, 0x23),
    ] {
        let key =
            PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap())
                .unwrap();
        let mac = [0x00, 0x10, 0x95, 0x00, 0x02, last];
        let cert = pklab::device_cert((&mfr.cert, &mfr.key), mac, &key, None);
        pklab::write_variant(realm, name, &cert, &key, &[&mfr.cert]);
    }
}

#[derive(Debug)]
enum Expect {
    /// An AS-REP the client opens; for DH, the reply fields wanted.
    Ok,
    Dh {
        server_dh_nonce_and_expiration: bool,
    },
    Refused(i32, &'static str),
}

struct Row {
    name: &'static str,
    device: &'static str,
    profile: Profile,
    dh: Option<Group>,
    spki: fn(&mut rasn_pkix::SubjectPublicKeyInfo),
    expect: Expect,
}

fn keep(_: &mut rasn_pkix::SubjectPublicKeyInfo) {}

/// DomainParameters { p, g } without q.
fn drop_q(spki: &mut rasn_pkix::SubjectPublicKeyInfo) {
    rewrite_q(spki, None);
}

/// DomainParameters { p, g, q = 0 }.
fn zero_q(spki: &mut rasn_pkix::SubjectPublicKeyInfo) {
    rewrite_q(spki, Some(&[0x02, 0x01, 0x00]));
}

fn rewrite_q(spki: &mut rasn_pkix::SubjectPublicKeyInfo, q: Option<&[u8]>) {
    use krb::msg::raw::{read_tlv, tlv};
    let params = spki.algorithm.parameters.as_ref().unwrap().as_bytes();
    let (seq, _) = read_tlv(params).unwrap();
    let (p, rest) = read_tlv(seq.content).unwrap();
    let (g, _) = read_tlv(rest).unwrap();
    let body = [p.whole, g.whole, q.unwrap_or_default()].concat();
    spki.algorithm.parameters = Some(rasn::types::Any::new(tlv(0x30, &body)));
}

fn p(f: impl FnOnce(&mut Profile)) -> Profile {
    let mut profile = Profile::default();
    f(&mut profile);
    profile
}

fn ok(name: &'static str, device: &'static str, profile: Profile) -> Row {
    Row {
        name,
        device,
        profile,
        dh: None,
        spki: keep,
        expect: Expect::Ok,
    }
}

fn dh(name: &'static str, group: Group, profile: Profile, reused: bool) -> Row {
    Row {
        name,
        device: "0",
        profile,
        dh: Some(group),
        spki: keep,
        expect: Expect::Dh {
            server_dh_nonce_and_expiration: reused,
        },
    }
}

fn refused(name: &'static str, profile: Profile, code: i32, reason: &'static str) -> Row {
    Row {
        name,
        device: "0",
        profile,
        dh: None,
        spki: keep,
        expect: Expect::Refused(code, reason),
    }
}

fn kdfs(k: &[Kdf]) -> Profile {
    p(|p| p.kdfs = Some(k.to_vec()))
}

fn nonce32() -> Profile {
    p(|p| p.client_dh_nonce = Some(vec![0xc3; 32]))
}

/// Rows for a KDC without DH key reuse (`dh_key_reuse_secs = 0`).
fn rows() -> Vec<Row> {
    let sha = |md: MessageDigest| p(|p| p.digest = md);
    vec![
        ok(
            "MIT-like: SHA-256, sha256WithRSA, issuerAndSerial v1, attributes",
            "0",
            Profile::default(),
        ),
        ok(
            "SHA-1 with rsaEncryption, no signed attributes (PacketCable style)",
            "0",
            p(|p| {
                p.digest = MessageDigest::sha1();
                p.signature = SignatureAlg::RsaEncryption;
                p.signed_attrs = SignedAttrs::Absent;
            }),
        ),
        ok(
            "SHA-1 with sha1WithRSAEncryption",
            "0",
            sha(MessageDigest::sha1()),
        ),
        ok(
            "SHA-224 with sha224WithRSAEncryption",
            "0",
            sha(MessageDigest::sha224()),
        ),
        ok(
            "SHA-384 with sha384WithRSAEncryption",
            "0",
            sha(MessageDigest::sha384()),
        ),
        ok(
            "SHA-512 with sha512WithRSAEncryption",
            "0",
            sha(MessageDigest::sha512()),
        ),
        ok(
            "SHA-256 with rsaEncryption",
            "0",
            p(|p| p.signature = SignatureAlg::RsaEncryption),
        ),
        ok(
            "RSASSA-PSS SHA-256",
            "0",
            p(|p| p.signature = SignatureAlg::RsaPss),
        ),
        ok(
            "RSASSA-PSS SHA-512",
            "0",
            p(|p| {
                p.signature = SignatureAlg::RsaPss;
                p.digest = MessageDigest::sha512();
            }),
        ),
        ok(
            "1024-bit device key, SHA-1",
            "2",
            sha(MessageDigest::sha1()),
        ),
        Row {
            device: "ec-p256",
            ..dh(
                "ecdsa-with-SHA256, P-256 device, ECDH P-256",
                Group::P256,
                p(|p| {
                    p.signature = SignatureAlg::Ecdsa;
                    p.kdfs = Some(vec![Kdf::Sha256]);
                }),
                false,
            )
        },
        Row {
            device: "ec-p384",
            ..dh(
                "ecdsa-with-SHA384, P-384 device, ECDH P-384",
                Group::P384,
                p(|p| {
                    p.signature = SignatureAlg::Ecdsa;
                    p.digest = MessageDigest::sha384();
                }),
                false,
            )
        },
        Row {
            device: "ec-p521",
            ..dh(
                "ecdsa-with-SHA512, P-521 device, MODP 2048",
                Group::Modp2048,
                p(|p| {
                    p.signature = SignatureAlg::Ecdsa;
                    p.digest = MessageDigest::sha512();
                    p.kdfs = Some(vec![Kdf::Sha512]);
                }),
                false,
            )
        },
        Row {
            device: "ec-p256",
            ..refused(
                "RSA key transport for an EC device",
                p(|p| p.signature = SignatureAlg::Ecdsa),
                pkinit::server::KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED,
                "pkinit_key_transport_needs_rsa",
            )
        },
        ok(
            "subjectKeyIdentifier, SignerInfo v3",
            "0",
            p(|p| {
                p.signer_id = SignerId::SubjectKeyId;
                p.signer_info_version = 3;
            }),
        ),
        ok(
            "subjectKeyIdentifier, SignerInfo v1 (lenient version)",
            "0",
            p(|p| p.signer_id = SignerId::SubjectKeyId),
        ),
        ok(
            "Heimdal: constructed subjectKeyIdentifier, v1, SHA-512, leaf only",
            "0",
            p(|p| {
                *p = Profile::heimdal();
                p.client_dh_nonce = None;
            }),
        ),
        ok(
            "issuerAndSerialNumber, SignerInfo v3 (lenient version)",
            "0",
            p(|p| p.signer_info_version = 3),
        ),
        ok(
            "no signed attributes, SHA-256",
            "0",
            p(|p| p.signed_attrs = SignedAttrs::Absent),
        ),
        ok(
            "signed attributes out of DER order, signed as sent",
            "0",
            p(|p| p.signed_attrs = SignedAttrs::Reversed),
        ),
        ok(
            "signed attributes out of DER order, signed in DER order",
            "0",
            p(|p| {
                p.signed_attrs = SignedAttrs::ReversedSignedInDerOrder;
            }),
        ),
        ok(
            "extra signed attributes (signingTime, unknown) ignored",
            "0",
            p(|p| p.signed_attrs = SignedAttrs::WithExtra),
        ),
        ok("leaf certificate only", "0", p(|p| p.certs = CertSet::Leaf)),
        ok(
            "intermediate before the leaf",
            "0",
            p(|p| p.certs = CertSet::ChainThenLeaf),
        ),
        ok(
            "bare SignedData, no ContentInfo",
            "0",
            p(|p| p.bare_signed_data = true),
        ),
        ok(
            "supportedCMSTypes, trustedCertifiers and a freshness token",
            "0",
            p(|p| {
                p.supported_cms_types = true;
                p.trusted_certifiers = true;
                p.freshness_token = true;
            }),
        ),
        ok(
            "PKAuthenticator nonce differs from the body nonce",
            "0",
            p(|p| p.pk_nonce = Some(0x0bad_cafe)),
        ),
        dh(
            "MODP 2048, KDF SHA-256",
            Group::Modp2048,
            kdfs(&[Kdf::Sha256]),
            false,
        ),
        dh(
            "MODP 3072, KDF SHA-1",
            Group::Modp3072,
            kdfs(&[Kdf::Sha1]),
            false,
        ),
        dh(
            "MODP 4096, KDF SHA-512",
            Group::Modp4096,
            kdfs(&[Kdf::Sha512]),
            false,
        ),
        dh(
            "P-256, KDF SHA-256",
            Group::P256,
            kdfs(&[Kdf::Sha256]),
            false,
        ),
        dh(
            "P-384, KDF SHA-512",
            Group::P384,
            kdfs(&[Kdf::Sha512]),
            false,
        ),
        dh("P-521, KDF SHA-1", Group::P521, kdfs(&[Kdf::Sha1]), false),
        dh(
            "MODP 2048, octetstring2key, no clientDHNonce",
            Group::Modp2048,
            Profile::default(),
            false,
        ),
        dh(
            "MODP 2048, octetstring2key, clientDHNonce, no key reuse",
            Group::Modp2048,
            nonce32(),
            false,
        ),
        dh(
            "Heimdal DH: SHA-512, constructed SKI, leaf only, clientDHNonce",
            Group::Modp2048,
            Profile::heimdal(),
            false,
        ),
        dh(
            "KDF list SHA-512, SHA-256: the first one",
            Group::P256,
            kdfs(&[Kdf::Sha512, Kdf::Sha256]),
            false,
        ),
        dh(
            "DH PKAuthenticator nonce differs from the body nonce",
            Group::P256,
            p(|p| p.pk_nonce = Some(7)),
            false,
        ),
        // Issue 16: a pure-Python client of the kind AD tooling uses
        // (minikerberos 0.4.9), its whole request shape in one row.
        dh(
            "minikerberos: SHA-1 rsaEncryption, issuerAndSerial, leaf only, MODP 2048, \
             octetstring2key, 32-byte clientDHNonce, its own PKAuthenticator nonce",
            Group::Modp2048,
            p(|p| {
                p.digest = MessageDigest::sha1();
                p.signature = SignatureAlg::RsaEncryption;
                p.certs = CertSet::Leaf;
                p.client_dh_nonce = Some(vec![0x6d; 32]);
                p.pk_nonce = Some(0x1234_5678);
            }),
            false,
        ),
        Row {
            device: "ec-p256",
            ..dh(
                "ecdsa-with-SHA1, P-256 device, ECDH P-256",
                Group::P256,
                p(|p| {
                    p.signature = SignatureAlg::Ecdsa;
                    p.digest = MessageDigest::sha1();
                }),
                false,
            )
        },
        Row {
            spki: drop_q,
            ..dh(
                "MODP 2048 DomainParameters without q",
                Group::Modp2048,
                Profile::default(),
                false,
            )
        },
        Row {
            spki: zero_q,
            expect: Expect::Refused(err::KDC_ERR_KEY_TOO_WEAK, "pkinit_dh_group_refused"),
            ..dh(
                "MODP 2048 with q = 0: unknown group",
                Group::Modp2048,
                Profile::default(),
                false,
            )
        },
        Row {
            expect: Expect::Refused(
                pkinit::server::KDC_ERR_NO_ACCEPTABLE_KDF,
                "pkinit_no_acceptable_kdf",
            ),
            ..dh(
                "MODP 2048, only a KDF we do not know",
                Group::Modp2048,
                p(|p| {
                    p.unknown_kdfs = vec![
                        rasn::types::ObjectIdentifier::new(vec![1, 3, 6, 1, 5, 2, 3, 6, 99])
                            .unwrap(),
                    ];
                }),
                false,
            )
        },
        Row {
            expect: Expect::Refused(err::KDC_ERR_KEY_TOO_WEAK, "pkinit_dh_group_refused"),
            ..dh(
                "1024-bit group (Oakley 2)",
                Group::Modp1024,
                Profile::default(),
                false,
            )
        },
        refused(
            "MD5 digest",
            p(|p| p.digest = MessageDigest::md5()),
            80,
            "pkinit_digest_not_accepted",
        ),
        refused(
            "no certificates",
            p(|p| p.certs = CertSet::None),
            err::KDC_ERR_PREAUTH_FAILED,
            "pkinit_malformed_cms",
        ),
        refused(
            "signature over other bytes",
            p(|p| p.forged_signature = Some(vec![0x42; 256])),
            err::KDC_ERR_INVALID_SIG,
            "pkinit_bad_signature",
        ),
        Row {
            expect: Expect::Refused(err::KDC_ERR_INVALID_SIG, "pkinit_bad_signature"),
            ..dh(
                "DH request with a bad signature",
                Group::Modp2048,
                p(|p| p.forged_signature = Some(vec![0x42; 256])),
                false,
            )
        },
    ]
}

/// Rows for a KDC with `dh_key_reuse_secs = 600`.
fn reuse_rows() -> Vec<Row> {
    vec![
        dh(
            "key reuse, octetstring2key, clientDHNonce",
            Group::Modp2048,
            nonce32(),
            true,
        ),
        dh(
            "key reuse, KDF SHA-256, clientDHNonce",
            Group::P256,
            p(|p| {
                p.client_dh_nonce = Some(vec![1; 32]);
                p.kdfs = Some(vec![Kdf::Sha256]);
            }),
            true,
        ),
        dh(
            "key reuse configured, no clientDHNonce: fresh key",
            Group::Modp2048,
            kdfs(&[Kdf::Sha256]),
            false,
        ),
        dh(
            "Heimdal DH with key reuse",
            Group::Modp2048,
            Profile::heimdal(),
            true,
        ),
    ]
}

fn send_row(lab: &Lab, row: &Row, nonce: u32) -> (Sent, Vec<u8>, String) {
    let dev = match row.device.parse::<usize>() {
        Ok(i) => lab.device(i),
        Err(_) => lab.variant(row.device),
    };
    let key = row.dh.map(|g| ClientKey::generate(g).unwrap());
    let seen = lab.kdc.audit_lines().len();
    let sent = lab.rfc4556(&dev, nonce, &row.profile, key, row.spki);
    let reply = lab.kdc.tcp(&sent.bytes);
    let audit = next_pkinit_audit(&lab.kdc, seen);
    (sent, reply, audit)
}

fn check_row(lab: &Lab, row: &Row, nonce: u32) -> Result<(), String> {
    let dev = match row.device.parse::<usize>() {
        Ok(i) => lab.device(i),
        Err(_) => lab.variant(row.device),
    };
    let (sent, reply, audit) = send_row(lab, row, nonce);
    let form = if row.dh.is_some() {
        "rfc4556_dh"
    } else {
        "rfc4556_rsa"
    };
    if !audit.contains(&format!("form=\"{form}\"")) {
        return Err(format!("audit form is not {form}: {audit}"));
    }
    match row.expect {
        Expect::Ok | Expect::Dh { .. } => {
            let fields = open_rfc4556(&sent, &reply, &dev, &lab.sp_trust)
                .map_err(|e| format!("{e}; audit: {audit}"))?;
            if let Expect::Dh {
                server_dh_nonce_and_expiration: want,
            } = row.expect
            {
                let DhReplyFields {
                    server_dh_nonce,
                    dh_key_expiration,
                    kdf,
                } = fields.ok_or("no DH fields")?;
                if (server_dh_nonce, dh_key_expiration) != (want, want) {
                    return Err(format!(
                        "serverDHNonce {server_dh_nonce}, dhKeyExpiration {dh_key_expiration}, want both {want}"
                    ));
                }
                let want_kdf = row.profile.kdfs.as_ref().map(|k| k[0].oid().to_string());
                if kdf != want_kdf {
                    return Err(format!("KDF {kdf:?}, want {want_kdf:?}"));
                }
            }
            Ok(())
        }
        Expect::Refused(want, reason) => {
            let got = code(&reply);
            // 65 carries the groups to retry with, 80 the digests we take.
            let want_typed = match want {
                err::KDC_ERR_KEY_TOO_WEAK => Some(pkinit::server::TD_DH_PARAMETERS),
                80 => Some(pkinit::server::TD_CMS_DIGEST_ALGORITHMS),
                _ => None,
            };
            if let Some(t) = want_typed
                && !typed_data(&reply)
                    .iter()
                    .any(|(ty, v)| *ty == t && !v.is_empty())
            {
                return Err(format!("no TYPED-DATA {t} in the e-data"));
            }
            if got != want || !audit.contains(&format!("reason=\"{reason}\"")) {
                return Err(format!(
                    "got code {got}, want {want} / {reason}; audit: {audit}"
                ));
            }
            Ok(())
        }
    }
}

fn run_rows(lab: &Lab, rows: &[Row], first_nonce: u32) {
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let outcome = check_row(lab, row, first_nonce + i as u32);
        println!(
            "{:<70} {}",
            row.name,
            match &outcome {
                Ok(()) => format!("{:?}", row.expect),
                Err(e) => format!("FAILED: {e}"),
            }
        );
        if let Err(e) = outcome {
            failures.push(format!("{}: {e}", row.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn pkinit_acceptance_matrix() {
    let lab = Lab::new(DevKdc::start_prepared(Path::new(pklab::KDC), prepare));
    run_rows(&lab, &rows(), 1000);
}

/// The same rows with every request taking the new-device path (key
/// policy, keyUsage, chain, then signature): no device cache.
#[test]
fn pkinit_acceptance_matrix_without_device_cache() {
    let lab = Lab::new(DevKdc::start_prepared(
        Path::new(pklab::KDC),
        |realm, cfg| {
            prepare(realm, cfg);
            *cfg = cfg.replace("device_cache_entries = 100000", "device_cache_entries = 0");
            assert!(cfg.contains("device_cache_entries = 0"));
        },
    ));
    run_rows(&lab, &rows(), 3000);
}

#[test]
fn pkinit_acceptance_matrix_with_dh_key_reuse() {
    let lab = Lab::new(DevKdc::start_with(Path::new(pklab::KDC), |cfg| {
        *cfg = cfg.replace("dh_key_reuse_secs = 0", "dh_key_reuse_secs = 600");
        assert!(cfg.contains("dh_key_reuse_secs = 600"));
    }));
    run_rows(&lab, &reuse_rows(), 2000);
}

/// A client whose group the KDC refuses (Oakley 2, 1024 bits) gets 65 with
/// TD-DH-PARAMETERS and retries with the first group offered: accepted.
/// The refusal is labelled a DH request although no key agreement ran.
#[test]
fn refused_dh_group_then_retry_with_the_offered_group() {
    let lab = Lab::new(DevKdc::start(Path::new(pklab::KDC)));
    let dev = lab.device(0);
    let seen = lab.kdc.audit_lines().len();
    let first = lab.rfc4556(
        &dev,
        1,
        &Profile::default(),
        Some(ClientKey::generate(Group::Modp1024).unwrap()),
        keep,
    );
    let reply = lab.kdc.tcp(&first.bytes);
    assert_eq!(code(&reply), err::KDC_ERR_KEY_TOO_WEAK);
    let audit = next_pkinit_audit(&lab.kdc, seen);
    assert!(
        audit.contains("form=\"rfc4556_dh\"")
            && audit.contains("reason=\"pkinit_dh_group_refused\""),
        "{audit}"
    );
    let typed = typed_data(&reply);
    let (_, params) = typed
        .iter()
        .find(|(t, _)| *t == pkinit::server::TD_DH_PARAMETERS)
        .expect("TD-DH-PARAMETERS in the e-data");
    let offered = pkinit::dh::offered_groups(params).unwrap();
    assert_eq!(offered, [Group::Modp2048, Group::Modp3072, Group::Modp4096]);
    let retry = lab.rfc4556(
        &dev,
        2,
        &Profile::default(),
        Some(ClientKey::generate(offered[0]).unwrap()),
        keep,
    );
    let reply = lab.kdc.tcp(&retry.bytes);
    open_rfc4556(&retry, &reply, &dev, &lab.sp_trust).expect("the retry is accepted");
}
