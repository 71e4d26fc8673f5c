//! The PKINIT bad-input matrix: requests from devices with bad, expired,
//! revoked or foreign certificates, and tampered, skewed or mis-bound
//! requests, sent over TCP to `pktc-kdc`; each asserts the KRB-ERROR code
//! and the audit reason. Variant certificates are made in the realm before
//! the KDC starts.

use std::path::{Path, PathBuf};

use certs::pki::{self, CertSpec, CrlSpec, Validity};
use krb::client::{self, RequestBody};
use krb::crypto::{ChecksumType, EncType, unkeyed_checksum};
use krb::msg::consts::{err, padata};
use krb::msg::raw::tlv;
use krb::msg::{self, Checksum, PaData, time};
use krb::principal::{Principal, name_type};
use openssl::hash::MessageDigest;
use pkinit::asn1::{AuthPack19, PkAuthenticator19, oid};
use pkinit::client::{self as pkclient, DeviceIdentity};
use pkinit::cms::{self, SignOptions};
use pktc_kdc::cli::certs::{DeviceRequest, issue_device, load_ca};
use testkit::DevKdc;

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
const REALM: &str = "PKTC.TEST";

fn device_principal(fqdn: &str) -> Principal {
    Principal::new(name_type::SRV_HST, vec!["mta".into(), fqdn.into()], REALM)
}

fn variant(realm: &Path, name: &str) -> PathBuf {
    realm.join("variants").join(name)
}

/// Issues the variant devices and the revocation CRL into the realm.
fn prepare(realm: &Path, cfg: &mut String) {
    let trust = realm.join("pki/trust/device");
    let keys = realm.join("pki/ca-keys");
    let mfr = load_ca(
        &trust.join("manufacturer-ca.pem"),
        &keys.join("manufacturer-ca.key"),
    )
    .unwrap();
    let issue =
        |name: &str, req: DeviceRequest| issue_device(&mfr, &req, &variant(realm, name)).unwrap();
    let mac = |last: u8| [0x00, 0x10, 0x95, 0x00, 0x01, last];
    issue(
        "expired",
        DeviceRequest {
            validity: Validity::Expired,
            ..DeviceRequest::new(mac(1))
        },
    );
    issue(
        "not-yet-valid",
        DeviceRequest {
            validity: Validity::NotYetValid,
            ..DeviceRequest::new(mac(2))
        },
    );
    let revoked = issue("revoked", DeviceRequest::new(mac(3)));
    issue(
        "sha1",
        DeviceRequest {
            sha1: true,
            bits: 1024,
            ..DeviceRequest::new(mac(4))
        },
    );
    issue(
        "unknown-mac",
        DeviceRequest::new([0x00, 0x10, 0x95, 0x99, 0x99, 0x99]),
    );
    // The sha1 and revoked devices are known to the provisioning server
    // (the dev realm's pkt-eue-7 stand-in); unknown-mac is not.
    let _ = cfg;
    let mut table = std::fs::read_to_string(realm.join("mps-table.toml")).unwrap();
    for m in [mac(3), mac(4)] {
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        table.push_str(&format!(
            "\n[[device]]\nmac = \"{}\"\nfqdn = \"mta-{hex}.pktc.test\"\naddresses = [\"127.0.0.1\"]\n",
            certs::mac::format_mac(m)
        ));
    }
    std::fs::write(realm.join("mps-table.toml"), table).unwrap();
    let revoked_cert =
        openssl::x509::X509::from_pem(&std::fs::read(&revoked.cert).unwrap()).unwrap();
    let crl = pki::crl(
        &mfr,
        &[(&revoked_cert, time::now().0 - 60)],
        CrlSpec::current(),
    )
    .unwrap();
    std::fs::write(trust.join("manufacturer-ca.crl.pem"), crl.to_pem().unwrap()).unwrap();

    // A PKI the KDC does not trust, and a fake manufacturer CA with the
    // real one's name but another key.
    let root2 = pki::mta_root(CertSpec::new().org("Other Root").cn("Other MTA Root")).unwrap();
    let other_mfr =
        pki::manufacturer_ca(&root2, CertSpec::new().org("Other Mfr").cn("Other Mfr CA")).unwrap();
    issue_device(
        &other_mfr,
        &DeviceRequest::new(mac(5)),
        &variant(realm, "unknown-root"),
    )
    .unwrap();
    let real_name = mfr
        .cert
        .subject_name()
        .entries()
        .map(|e| e.data().to_string().unwrap())
        .collect::<Vec<_>>();
    let fake_mfr = pki::manufacturer_ca(
        &root2,
        CertSpec::new()
            .country(&real_name[0])
            .org(&real_name[1])
            .cn(real_name.last().unwrap()),
    )
    .unwrap();
    issue_device(
        &fake_mfr,
        &DeviceRequest::new(mac(6)),
        &variant(realm, "fake-manufacturer"),
    )
    .unwrap();
}

struct Lab {
    kdc: DevKdc,
    service: Principal,
    tgs: Principal,
}

impl Lab {
    fn device(&self, index: usize) -> (DeviceIdentity, Principal) {
        let d = &self.kdc.manifest["devices"][index];
        let p = |k: &str| self.kdc.realm_path(d[k].as_str().unwrap());
        let dev = DeviceIdentity::load(&p("cert"), &p("key"), Some(&p("chain"))).unwrap();
        (dev, device_principal(d["fqdn"].as_str().unwrap()))
    }

    fn variant(&self, name: &str) -> DeviceIdentity {
        let dir = variant(&self.kdc.realm_path(""), name);
        DeviceIdentity::load(
            &dir.join("cert.pem"),
            &dir.join("key.pem"),
            Some(&dir.join("chain.pem")),
        )
        .unwrap()
    }

    /// An AS-REQ for `cname` whose padata `make` builds from the body bytes.
    fn request(
        &self,
        cname: &Principal,
        sname: &Principal,
        nonce: u32,
        make: impl FnOnce(&[u8]) -> Vec<PaData>,
    ) -> Vec<u8> {
        let body = RequestBody {
            client: Some(cname),
            server: sname,
            etypes: &[EncType::Aes128CtsHmacSha196, EncType::Des3CbcSha1Kd],
            nonce,
            till: time::now().0 + 3600,
            rtime: None,
            options: client::default_options(),
        };
        let der = msg::encode("KDC-REQ-BODY", &body.to_asn1().unwrap()).unwrap();
        client::as_req(&body, make(&der)).unwrap()
    }

    fn packetcable(&self, dev: &DeviceIdentity, cname: &Principal, nonce: u32) -> Vec<u8> {
        self.request(cname, &self.service, nonce, |body| {
            pkclient::packetcable_padata(dev, body, nonce, time::now(), Some("mps.pktc.test"))
                .unwrap()
        })
    }
}

/// PA-PK-AS-REQ-19 around an AuthPack we built ourselves.
fn custom_pa14(dev: &DeviceIdentity, auth_pack: &[u8], content_type: &rasn::types::Oid) -> PaData {
    let opts = SignOptions {
        digest: Some(MessageDigest::sha1()),
        signed_attributes: false,
        extra_certs: &dev.chain,
    };
    let signed = cms::sign(content_type, auth_pack, &dev.cert, &dev.key, &opts).unwrap();
    PaData {
        r#type: padata::PK_AS_REQ_19,
        value: tlv(0x30, &tlv(0xa0, &signed)).into(),
    }
}

fn auth_pack_19(
    body: &[u8],
    nonce: u32,
    cksum_type: ChecksumType,
    cksum_type_number: i32,
) -> AuthPack19 {
    let now = time::now();
    AuthPack19 {
        pk_authenticator: PkAuthenticator19 {
            cusec: (now.1 as i64).into(),
            ctime: time::from_unix(now.0),
            nonce: (nonce as i64).into(),
            pa_checksum: Checksum {
                r#type: cksum_type_number,
                checksum: unkeyed_checksum(cksum_type, body).unwrap().into(),
            },
        },
        client_public_value: None,
    }
}

fn code(reply: &[u8]) -> i32 {
    client::krb_error(reply).map(|e| e.error_code).unwrap_or(0)
}

#[test]
fn pkinit_bad_input_matrix() {
    let kdc = DevKdc::start_prepared(Path::new(KDC), prepare);
    let lab = Lab {
        service: Principal::parse(&kdc.get("service_principal"), None).unwrap(),
        tgs: Principal::krbtgt(REALM),
        kdc,
    };
    let (dev0, cname0) = lab.device(0);
    let (_, cname1) = lab.device(1);
    let unknown_svc = Principal::new(
        name_type::SRV_HST,
        vec!["mtaprovsrvr".into(), "nowhere.pktc.test".into()],
        REALM,
    );
    let md5 = ChecksumType::RsaMd5;

    // Controls: a good PacketCable request, an RFC 4556 one, and a SHA-1-signed 1024-bit device.
    assert!(
        lab.kdc.tcp(&lab.packetcable(&dev0, &cname0, 1)).first() == Some(&0x6b),
        "control failed:\n{}",
        lab.kdc.log()
    );
    let rfc = lab.request(&cname0, &lab.tgs, 2, |b| {
        vec![pkclient::rfc4556_padata(&dev0, b, 2, time::now(), None, None, None).unwrap()]
    });
    assert_eq!(lab.kdc.tcp(&rfc).first(), Some(&0x6b), "{}", lab.kdc.log());
    let sha1 = lab.packetcable(
        &lab.variant("sha1"),
        &device_principal("mta-001095000104.pktc.test"),
        3,
    );
    assert_eq!(
        lab.kdc.tcp(&sha1).first(),
        Some(&0x6b),
        "SHA-1-signed device refused:\n{}",
        lab.kdc.log()
    );

    let bad_signature = lab.request(&cname0, &lab.service, 30, |b| {
        let mut pa = pkclient::packetcable_padata(&dev0, b, 30, time::now(), None).unwrap();
        let mut v = pa[0].value.to_vec();
        let n = v.len();
        v[n - 1] ^= 0x01; // the padata ends with the SignerInfo's signature
        pa[0].value = v.into();
        pa
    });

    let tampered = {
        let mut r = lab.packetcable(&dev0, &cname0, 31);
        let year = format!("{}", 2000 + (time::now().0 / 31_557_600 + 1970 - 2000));
        let at = r
            .windows(4)
            .position(|w| w == year.as_bytes())
            .expect("ctime in the AuthPack");
        r[at + 3] ^= 0x01;
        r
    };

    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        (
            "unknown root",
            lab.packetcable(&lab.variant("unknown-root"), &cname0, 10),
            err::KDC_ERR_CANT_VERIFY_CERTIFICATE,
            "cert_unknown_issuer",
        ),
        (
            "wrong manufacturer CA",
            lab.packetcable(&lab.variant("fake-manufacturer"), &cname0, 11),
            err::KDC_ERR_CANT_VERIFY_CERTIFICATE,
            "cert_unknown_issuer",
        ),
        (
            "expired device cert",
            lab.packetcable(&lab.variant("expired"), &cname0, 12),
            err::KDC_ERR_INVALID_CERTIFICATE,
            "cert_expired",
        ),
        (
            "not-yet-valid device cert",
            lab.packetcable(&lab.variant("not-yet-valid"), &cname0, 13),
            err::KDC_ERR_INVALID_CERTIFICATE,
            "cert_not_yet_valid",
        ),
        (
            "revoked by CRL",
            lab.packetcable(
                &lab.variant("revoked"),
                &device_principal("mta-001095000103.pktc.test"),
                14,
            ),
            err::KDC_ERR_REVOKED_CERTIFICATE,
            "cert_revoked",
        ),
        (
            "bad CMS signature",
            bad_signature,
            err::KDC_ERR_INVALID_SIG,
            "pkinit_bad_signature",
        ),
        (
            "tampered AuthPack",
            tampered,
            err::KDC_ERR_INVALID_SIG,
            "pkinit_bad_signature",
        ),
        (
            "skewed ctime",
            lab.request(&cname0, &lab.service, 15, |b| {
                pkclient::packetcable_padata(&dev0, b, 15, (time::now().0 - 3600, 0), None).unwrap()
            }),
            err::KRB_AP_ERR_SKEW,
            "pkinit_skew",
        ),
        (
            "wrong paChecksum",
            lab.request(&cname0, &lab.service, 16, |_| {
                pkclient::packetcable_padata(&dev0, b"other body", 16, time::now(), None).unwrap()
            }),
            err::KRB_AP_ERR_MODIFIED,
            "pkinit_checksum_mismatch",
        ),
        (
            "cert MAC not bound to the cname",
            lab.packetcable(&dev0, &cname1, 19),
            err::KDC_ERR_CLIENT_NAME_MISMATCH,
            "device_fqdn_mismatch",
        ),
        (
            "non-device cname",
            lab.packetcable(
                &dev0,
                &Principal::parse("demo@PKTC.TEST", None).unwrap(),
                20,
            ),
            err::KDC_ERR_CLIENT_NAME_MISMATCH,
            "device_fqdn_mismatch",
        ),
        (
            "MAC unknown to the provisioning side",
            lab.packetcable(
                &lab.variant("unknown-mac"),
                &device_principal("mta-001095999999.pktc.test"),
                21,
            ),
            err::KDC_ERR_C_PRINCIPAL_UNKNOWN,
            "device_unknown_mac",
        ),
        (
            "draft-9 padata 15",
            lab.request(&cname0, &lab.service, 22, |b| {
                let mut pa = pkclient::packetcable_padata(&dev0, b, 22, time::now(), None).unwrap();
                pa[0].r#type = padata::PK_AS_REP_19;
                pa
            }),
            err::KDC_ERR_PADATA_TYPE_NOSUPP,
            "pkinit_draft9_unsupported",
        ),
        (
            "draft-9 AuthPack in padata 14",
            lab.request(&cname0, &lab.service, 23, |_| {
                // PKAuthenticator starting with kdcName [0] PrincipalName.
                let pn = msg::encode(
                    "PrincipalName",
                    &Principal::krbtgt(REALM).to_rasn().unwrap().0,
                )
                .unwrap();
                let pk_auth = tlv(0x30, &tlv(0xa0, &pn));
                vec![custom_pa14(
                    &dev0,
                    &tlv(0x30, &tlv(0xa0, &pk_auth)),
                    oid::AUTH_DATA,
                )]
            }),
            err::KDC_ERR_PADATA_TYPE_NOSUPP,
            "pkinit_draft9_unsupported",
        ),
        (
            "truncated CMS",
            lab.request(&cname0, &lab.service, 24, |b| {
                let mut pa = pkclient::packetcable_padata(&dev0, b, 24, time::now(), None).unwrap();
                let v = pa[0].value.to_vec();
                pa[0].value = v[..v.len() / 2].to_vec().into();
                pa
            }),
            err::KDC_ERR_PREAUTH_FAILED,
            "pkinit_malformed",
        ),
        (
            "signed content is not an AuthPack",
            lab.request(&cname0, &lab.service, 25, |b| {
                let der = msg::encode("AuthPack", &auth_pack_19(b, 25, md5, 7)).unwrap();
                vec![custom_pa14(&dev0, &der, oid::DATA)]
            }),
            err::KDC_ERR_PREAUTH_FAILED,
            "pkinit_wrong_content_type",
        ),
        (
            "unsupported paChecksum type",
            lab.request(&cname0, &lab.service, 26, |b| {
                let der = msg::encode("AuthPack", &auth_pack_19(b, 26, md5, 99)).unwrap();
                vec![custom_pa14(&dev0, &der, oid::AUTH_DATA)]
            }),
            err::KDC_ERR_SUMTYPE_NOSUPP,
            "pkinit_checksum_type",
        ),
        (
            "keyed type as paChecksum",
            lab.request(&cname0, &lab.service, 27, |b| {
                let der = msg::encode("AuthPack", &auth_pack_19(b, 27, md5, 16)).unwrap();
                vec![custom_pa14(&dev0, &der, oid::AUTH_DATA)]
            }),
            err::KDC_ERR_SUMTYPE_NOSUPP,
            "pkinit_checksum_type",
        ),
        (
            "RFC 4556 request without paChecksum",
            lab.request(&cname0, &lab.tgs, 28, |b| {
                let _ = b;
                let pack = pkinit::asn1::AuthPack {
                    pk_authenticator: pkinit::asn1::PkAuthenticator {
                        cusec: 0.into(),
                        ctime: time::from_unix(time::now().0),
                        nonce: 28.into(),
                        pa_checksum: None,
                        freshness_token: None,
                    },
                    client_public_value: None,
                    supported_cms_types: None,
                    client_dh_nonce: None,
                    supported_kdfs: None,
                };
                let der = msg::encode("AuthPack", &pack).unwrap();
                let signed = cms::sign(
                    oid::AUTH_DATA,
                    &der,
                    &dev0.cert,
                    &dev0.key,
                    &SignOptions {
                        digest: None,
                        signed_attributes: true,
                        extra_certs: &dev0.chain,
                    },
                )
                .unwrap();
                let req = pkinit::asn1::PaPkAsReq {
                    signed_auth_pack: signed.into(),
                    trusted_certifiers: None,
                    kdc_pk_id: None,
                };
                vec![PaData {
                    r#type: padata::PK_AS_REQ,
                    value: msg::encode("PA-PK-AS-REQ", &req).unwrap().into(),
                }]
            }),
            pkinit::server::KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED,
            "pkinit_checksum_missing",
        ),
        (
            "DH in the PacketCable form",
            lab.request(&cname0, &lab.service, 29, |b| {
                let mut pack = auth_pack_19(b, 29, md5, 7);
                pack.client_public_value = Some(rasn_pkix::SubjectPublicKeyInfo {
                    algorithm: rasn_pkix::AlgorithmIdentifier {
                        algorithm: oid::DH_PUBLIC_NUMBER.to_owned(),
                        parameters: None,
                    },
                    subject_public_key: rasn::types::BitString::from_vec(vec![2, 1, 5]),
                });
                vec![custom_pa14(
                    &dev0,
                    &msg::encode("AuthPack", &pack).unwrap(),
                    oid::AUTH_DATA,
                )]
            }),
            err::KDC_ERR_PADATA_TYPE_NOSUPP,
            "pkinit_packetcable_dh",
        ),
        (
            "unknown service",
            lab.request(&cname0, &unknown_svc, 32, |b| {
                pkclient::packetcable_padata(&dev0, b, 32, time::now(), None).unwrap()
            }),
            err::KDC_ERR_S_PRINCIPAL_UNKNOWN,
            "unknown_server",
        ),
    ];
    for (name, request, want, reason) in &cases {
        let reply = lab.kdc.tcp(request);
        assert_eq!(
            code(&reply),
            *want,
            "case {name:?}\nKDC log tail:\n{}",
            tail(&lab.kdc)
        );
        assert!(
            lab.kdc
                .wait_audit(|l| l.contains(&format!("error_code={want}"))
                    && l.contains(&format!("reason=\"{reason}\""))),
            "case {name:?}: no audit line with code {want} and reason {reason}\n{}",
            tail(&lab.kdc)
        );
    }
    // Still serving.
    assert_eq!(
        lab.kdc.tcp(&lab.packetcable(&dev0, &cname0, 99)).first(),
        Some(&0x6b)
    );
}

#[test]
fn missing_crl_fails_closed() {
    let kdc = DevKdc::start_prepared(Path::new(KDC), |realm, _| {
        std::fs::remove_file(realm.join("pki/trust/device/manufacturer-ca.crl.pem")).unwrap();
    });
    let lab = Lab {
        service: Principal::parse(&kdc.get("service_principal"), None).unwrap(),
        tgs: Principal::krbtgt(REALM),
        kdc,
    };
    let (dev0, cname0) = lab.device(0);
    let reply = lab.kdc.tcp(&lab.packetcable(&dev0, &cname0, 1));
    assert_eq!(
        code(&reply),
        err::KDC_ERR_REVOCATION_STATUS_UNKNOWN,
        "{}",
        lab.kdc.log()
    );
    assert!(
        lab.kdc
            .wait_audit(|l| l.contains("reason=\"cert_crl_missing\""))
    );
}

#[test]
fn missing_crl_is_accepted_when_policy_allows() {
    let kdc = DevKdc::start_prepared(Path::new(KDC), |realm, cfg| {
        std::fs::remove_file(realm.join("pki/trust/device/manufacturer-ca.crl.pem")).unwrap();
        *cfg = cfg.replace("crl_policy = \"require\"", "crl_policy = \"if-present\"");
    });
    let lab = Lab {
        service: Principal::parse(&kdc.get("service_principal"), None).unwrap(),
        tgs: Principal::krbtgt(REALM),
        kdc,
    };
    let (dev0, cname0) = lab.device(0);
    assert_eq!(
        lab.kdc.tcp(&lab.packetcable(&dev0, &cname0, 1)).first(),
        Some(&0x6b),
        "{}",
        lab.kdc.log()
    );
}

fn tail(kdc: &DevKdc) -> String {
    let log = kdc.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(4)..].join("\n")
}

/// With one serving thread and room for one waiting PKINIT request, a
/// burst overflows the backlog: the oldest waiting requests are dropped
/// unanswered (their connections closed), counted, and nobody gets
/// KDC_ERR_SVC_UNAVAILABLE (devices retry on their timers instead of
/// restarting at DHCP); the others are served and the KDC keeps answering.
#[test]
fn full_backlog_drops_the_oldest_unanswered() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg
            .replace("\nthreads = 0", "\nthreads = 1")
            .replace("max_waiting = 1024", "max_waiting = 1");
        assert!(cfg.contains("max_waiting = 1\n"), "{cfg}");
    });
    let lab = Lab {
        service: Principal::parse(&kdc.get("service_principal"), None).unwrap(),
        tgs: Principal::krbtgt(REALM),
        kdc,
    };
    let (dev0, cname0) = lab.device(0);
    let requests: Vec<Vec<u8>> = (0..40u32)
        .map(|i| {
            let r = lab.packetcable(&dev0, &cname0, 1000 + i);
            let mut framed = (r.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&r);
            framed
        })
        .collect();
    let dropped = "pktc_requests_dropped_total{transport=\"tcp\",reason=\"queue_full\"}";
    let before = lab.kdc.metric(dropped);
    let replies: Vec<Option<i32>> = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| s.spawn(|| lab.kdc.tcp_raw(r).map(|reply| code(&reply))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = replies.iter().filter(|c| **c == Some(0)).count();
    let closed = replies.iter().filter(|c| c.is_none()).count();
    assert!(closed > 0, "nothing was dropped: {replies:?}");
    assert!(ok > 0, "nothing was served: {replies:?}");
    assert_eq!(ok + closed, replies.len(), "{replies:?}");
    assert!(lab.kdc.metric(dropped) - before >= 1.0);
    // After the burst a request is served.
    assert_eq!(
        lab.kdc.tcp(&lab.packetcable(&dev0, &cname0, 7)).first(),
        Some(&0x6b)
    );
}
