//! The PKINIT mechanism in process: a dev realm's KDC (its device
//! directory the static table) answering requests built with
//! `pkinit::client` at a clock the test sets; each row expects an AS-REP
//! or an exact KRB-ERROR code and Reason. Refusals that need no socket:
//! signature, digest, content type, clock skew, chain validity, directory
//! answers, DH groups and KDFs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use kdc::kdc::{Clock, Kdc};
use kdc::reason::Reason;
use krb::client::{self, RequestBody};
use krb::crypto::EncType;
use krb::msg;
use krb::principal::{Principal, name_type};
use openssl::hash::MessageDigest;
use pkinit::asn1::oid;
use pkinit::client::{DeviceIdentity, Profile};
use pkinit::dh::{ClientKey, Group, Kdf};
use pkinit::server::{Refusal, TD_DH_PARAMETERS};
use rasn_pkix::SubjectPublicKeyInfo;

mod pklab;
use pktc_kdc::config::{Config, DeviceEntry};

/// The clock the KDC reads; each row sets it.
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Realm {
    _dir: testkit::TempDir,
    cfg: Config,
    device: DeviceIdentity,
    mac: String,
    principal: Principal,
    service: Principal,
}

fn realm() -> Realm {
    let dir = testkit::TempDir::new("engine-pkinit");
    let (config, _) = pktc_kdc::dev::init(dir.root(), 0).unwrap();
    let manifest = pktc_kdc::dev::Manifest::load(dir.root()).unwrap();
    let d = &manifest.devices[0];
    let p = |rel: &str| dir.root().join(rel);
    let device = DeviceIdentity::load(&p(&d.cert), &p(&d.key), Some(&p(&d.chain))).unwrap();
    let mut cfg = Config::load(&config).unwrap();
    // The static table, not the provisioning server: no socket.
    cfg.mps = None;
    Realm {
        cfg,
        device,
        mac: d.mac.clone(),
        principal: Principal::new(
            name_type::SRV_HST,
            vec!["mta".into(), d.fqdn.clone()],
            &manifest.realm,
        ),
        service: Principal::parse(&manifest.service_principal, None).unwrap(),
        _dir: dir,
    }
}

impl Realm {
    /// A KDC whose static table binds the device's MAC to `fqdn` (None: not listed).
    fn kdc(&self, fqdn: Option<&str>) -> (Kdc, Arc<TestClock>) {
        let mut cfg = self.cfg.clone();
        let pk = cfg.pkinit.as_mut().expect("the dev realm has PKINIT");
        pk.devices = fqdn
            .map(|f| DeviceEntry {
                mac: self.mac.clone(),
                fqdn: f.to_string(),
            })
            .into_iter()
            .collect();
        let mut kdc = pktc_kdc::engine::kdc_from_config(&cfg).unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(0)));
        kdc.clock = clock.clone();
        (kdc, clock)
    }

    /// An RFC 4556 AS-REQ made at `at` as `profile` says, with
    /// `client_public_value` for DH.
    fn request(
        &self,
        nonce: u32,
        at: i64,
        profile: &Profile,
        client_public_value: Option<SubjectPublicKeyInfo>,
    ) -> Vec<u8> {
        let body = RequestBody {
            client: Some(&self.principal),
            server: &self.service,
            etypes: &EncType::ALL,
            nonce,
            till: at + 3600,
            rtime: None,
            options: client::default_options(),
        };
        let der = msg::encode("KDC-REQ-BODY", &body.to_asn1().unwrap()).unwrap();
        let pa = pkinit::client::rfc4556_padata_with(
            &self.device,
            &der,
            nonce,
            (at, 0),
            client_public_value,
            profile,
        )
        .unwrap();
        client::as_req(&body, vec![pa]).unwrap()
    }

    fn fqdn(&self) -> String {
        self.principal.components[1].clone()
    }
}

fn source() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 9], 88))
}

const YEAR: i64 = 365 * 86400;

/// One request: what the directory says, the request's and the KDC's
/// times, the client's choices, its DH group, and the expected reply.
struct Row<'a> {
    name: &'static str,
    directory: Option<&'a str>,
    at: i64,
    clock_at: i64,
    profile: Profile,
    /// DH: the group and a change to the public value's parameters.
    dh: Option<(Group, ChangeSpki)>,
    /// None: an AS-REP.
    expect: Option<Reason>,
}

/// A change made to the client's public value before it is sent.
type ChangeSpki = fn(&mut SubjectPublicKeyInfo);

fn keep(_: &mut SubjectPublicKeyInfo) {}

/// DomainParameters { p, g, q = 0 }: no known group.
fn zero_q(spki: &mut SubjectPublicKeyInfo) {
    use krb::msg::raw::{read_tlv, tlv};
    let params = spki.algorithm.parameters.as_ref().unwrap().as_bytes();
    let (seq, _) = read_tlv(params).unwrap();
    let (p, rest) = read_tlv(seq.content).unwrap();
    let (g, _) = read_tlv(rest).unwrap();
    let body = [p.whole, g.whole, &[0x02, 0x01, 0x00]].concat();
    spki.algorithm.parameters = Some(rasn::types::Any::new(tlv(0x30, &body)));
}

/// Whether a KRB-ERROR's e-data carries TD-DH-PARAMETERS.
fn has_td_dh_parameters(reply: &[u8]) -> bool {
    pklab::typed_data(reply)
        .iter()
        .any(|(t, _)| *t == TD_DH_PARAMETERS)
}

#[tokio::test]
async fn pkinit_table() {
    let r = realm();
    let now = msg::time::now().0;
    let fqdn = r.fqdn();
    let shouted = format!("{}.", fqdn.to_uppercase());
    let good = |name, profile, expect| Row {
        name,
        directory: Some(&fqdn),
        at: now,
        clock_at: now,
        profile,
        dh: None,
        expect,
    };
    let with_dh = |name, group, spki: ChangeSpki, profile, expect| Row {
        dh: Some((group, spki)),
        ..good(name, profile, expect)
    };
    let at = |name, at, clock_at, expect| Row {
        at,
        clock_at,
        ..good(name, Profile::default(), expect)
    };
    let listed = |name, directory, expect| Row {
        directory,
        ..good(name, Profile::default(), expect)
    };
    let refusal = |r: Refusal| Some(Reason::Pkinit(r));
    let rows: Vec<Row> = vec![
        good("a good request", Profile::default(), None),
        Row {
            directory: Some(&shouted),
            ..good(
                "the FQDN in another case, trailing dot",
                Profile::default(),
                None,
            )
        },
        good(
            "forged signature",
            Profile {
                forged_signature: Some(vec![0x5c; 256]),
                ..Profile::default()
            },
            refusal(Refusal::BadSignature),
        ),
        good(
            "MD5 digest",
            Profile {
                digest: MessageDigest::md5(),
                ..Profile::default()
            },
            refusal(Refusal::DigestNotAccepted),
        ),
        good(
            "signed content is id-data, not an AuthPack",
            Profile {
                econtent_type: Some(oid::DATA),
                ..Profile::default()
            },
            refusal(Refusal::WrongContentType),
        ),
        at(
            "request an hour behind the KDC's clock",
            now - 3600,
            now,
            refusal(Refusal::Skew),
        ),
        at(
            "request an hour ahead of the KDC's clock",
            now + 3600,
            now,
            refusal(Refusal::Skew),
        ),
        at(
            "at a time after the device certificate expired",
            now + 50 * YEAR,
            now + 50 * YEAR,
            refusal(Refusal::CertExpired),
        ),
        at(
            "at a time before the device certificate was issued",
            now - 3 * YEAR,
            now - 3 * YEAR,
            refusal(Refusal::CertNotYetValid),
        ),
        listed(
            "MAC not in the directory",
            None,
            Some(Reason::DeviceUnknownMac),
        ),
        listed(
            "the directory names another FQDN",
            Some("someone-else.pktc.test"),
            Some(Reason::DeviceFqdnMismatch),
        ),
        with_dh(
            "DH MODP-2048, octetstring2key",
            Group::Modp2048,
            keep,
            Profile::default(),
            None,
        ),
        with_dh(
            "ECDH P-256, KDF SHA-256",
            Group::P256,
            keep,
            Profile {
                kdfs: Some(vec![Kdf::Sha256]),
                ..Profile::default()
            },
            None,
        ),
        with_dh(
            "DH parameters with q = 0: no known group",
            Group::Modp2048,
            zero_q,
            Profile::default(),
            refusal(Refusal::DhGroupRefused),
        ),
        with_dh(
            "the 1024-bit group",
            Group::Modp1024,
            keep,
            Profile::default(),
            refusal(Refusal::DhGroupRefused),
        ),
        with_dh(
            "only KDFs we do not know",
            Group::Modp2048,
            keep,
            Profile {
                unknown_kdfs: vec![
                    rasn::types::ObjectIdentifier::new(vec![1, 3, 6, 1, 5, 2, 3, 6, 99]).unwrap(),
                ],
                ..Profile::default()
            },
            refusal(Refusal::NoAcceptableKdf),
        ),
    ];
    for (i, row) in rows.iter().enumerate() {
        let name = row.name;
        let (kdc, clock) = r.kdc(row.directory);
        clock.0.store(row.clock_at, Ordering::Relaxed);
        let public = row.dh.map(|(group, change)| {
            let mut spki = ClientKey::generate(group).unwrap().spki();
            change(&mut spki);
            spki
        });
        let request = r.request(100 + i as u32, row.at, &row.profile, public);
        assert!(kdc.routes_to_pkinit(&request), "{name}");
        let h = kdc.handle(&request, source()).await;
        assert_eq!(h.outcome.exchange, "pkinit", "{name}");
        let form = if row.dh.is_some() {
            "rfc4556_dh"
        } else {
            "rfc4556_rsa"
        };
        assert_eq!(h.outcome.form, form, "{name}");
        match row.expect {
            None => {
                assert_eq!(
                    (h.outcome.code, h.outcome.reason),
                    (0, Reason::Ok),
                    "{name}"
                );
                assert_eq!(h.reply.first(), Some(&0x6b), "{name}: an AS-REP");
            }
            Some(want) => {
                assert_eq!(
                    (h.outcome.code, h.outcome.reason),
                    (want.code(), want),
                    "{name}"
                );
                let e =
                    client::krb_error(&h.reply).unwrap_or_else(|| panic!("{name}: no KRB-ERROR"));
                assert_eq!(e.error_code, want.code(), "{name}");
                assert_eq!(msg::time::to_unix(&e.stime), row.clock_at, "{name}: stime");
                // RFC 4556 §3.2.1: a refused group comes with the ones we accept.
                let wants_groups = want == Reason::Pkinit(Refusal::DhGroupRefused);
                assert_eq!(
                    has_td_dh_parameters(&h.reply),
                    wants_groups,
                    "{name}: TD-DH-PARAMETERS"
                );
            }
        }
    }
}
