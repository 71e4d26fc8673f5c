//! The PKINIT mechanism in process: the engine's KDC with PKINIT, its
//! trust and signing identity made here (`certs::pki`), its device
//! directory the static table, answering requests built with
//! `pkinit::client` at a clock each row sets; each row expects an AS-REP or
//! an exact KRB-ERROR code and Reason. Refusals that need no socket:
//! signature, digest, content type, clock skew, chain validity, directory
//! answers, DH groups and KDFs.

mod engine;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use certs::pki::{self, CertSpec};
use certs::store::{CrlPolicy, TrustStoreHandle};
use engine::*;
use kdc::directory::StaticDirectory;
use kdc::kdc::Kdc;
use kdc::pkinit_as::{PkinitState, SigningIdentity};
use kdc::pool::AdmissionGate;
use kdc::reason::Reason;
use krb::client::{self, RequestBody};
use krb::msg;
use krb::principal::{Principal, name_type};
use openssl::hash::MessageDigest;
use pkinit::asn1::oid;
use pkinit::client::{DeviceIdentity, Profile};
use pkinit::dh::{ClientKey, Group, Kdf};
use pkinit::server::{self, KdcIdentity, Refusal, ReplyPolicy, TD_DH_PARAMETERS};
use rasn_pkix::SubjectPublicKeyInfo;

const MAC: [u8; 6] = [0x00, 0x10, 0x95, 0x00, 0x00, 0x01];
const FQDN: &str = "mta1.pktc.test";
const YEAR: i64 = 365 * 86400;

/// The KDC's signing identity, fixed for the test.
struct Fixed(Arc<KdcIdentity>);

impl SigningIdentity for Fixed {
    fn load(&self) -> Arc<KdcIdentity> {
        self.0.clone()
    }
}

/// A device PKI (MTA root, manufacturer CA, one device) and the KDC's
/// (service-provider chain), made once.
struct Pki {
    _dir: testkit::TempDir,
    trust: Arc<TrustStoreHandle>,
    identity: Arc<KdcIdentity>,
    device: DeviceIdentity,
}

fn pki() -> Pki {
    let dir = testkit::TempDir::new("engine-pkinit");
    let root = pki::mta_root(CertSpec::new()).unwrap();
    let manufacturer = pki::manufacturer_ca(&root, CertSpec::new()).unwrap();
    let device = pki::device_cert(&manufacturer, MAC, CertSpec::new()).unwrap();
    let trust_dir = dir.path("trust");
    std::fs::create_dir_all(&trust_dir).unwrap();
    // Only the certificates are trust; the keys written beside them go.
    for (ca, stem) in [(&root, "mta-root"), (&manufacturer, "manufacturer-ca")] {
        let (_, key) = ca.write_pem(&trust_dir, stem).unwrap();
        std::fs::remove_file(key).unwrap();
    }
    let trust = TrustStoreHandle::open(&trust_dir, CrlPolicy::Off).unwrap();
    let sp_root = pki::sp_root(CertSpec::new()).unwrap();
    let sp_ca = pki::sp_ca(&sp_root, CertSpec::new()).unwrap();
    let local = pki::local_system_ca(&sp_ca, CertSpec::new()).unwrap();
    let kdc = pki::kdc_cert(&local, REALM, "CableLabs", "kdc.pktc.test", CertSpec::new()).unwrap();
    let identity = KdcIdentity::new(kdc.cert, kdc.key, vec![local.cert, sp_ca.cert]).unwrap();
    Pki {
        _dir: dir,
        trust: Arc::new(trust),
        identity: Arc::new(identity),
        device: DeviceIdentity {
            cert: device.cert,
            key: device.key,
            chain: vec![manufacturer.cert],
        },
    }
}

impl Pki {
    /// The engine with PKINIT, its static table binding the device's MAC to
    /// `fqdn` (None: not listed).
    fn engine(&self, fqdn: Option<&str>) -> Engine {
        let mac = certs::mac::format_mac(MAC);
        let directory = StaticDirectory::from_rows(fqdn.map(|f| (mac.as_str(), f))).unwrap();
        let state = PkinitState {
            identity: Arc::new(Fixed(self.identity.clone())),
            trust: self.trust.clone(),
            reply: ReplyPolicy {
                packetcable_cipher: openssl::symm::Cipher::des_ede3_cbc(),
                packetcable_digest: MessageDigest::sha1(),
            },
            dh_min_bits: 2048,
            dh_keys: server::DhKeys::new(0),
            cert_cache: Arc::new(pkinit::cms::CertCache::new(64)),
            directory: Arc::new(directory),
            gate: AdmissionGate::new(1, 16),
        };
        engine_with(Some(state))
    }

    /// An RFC 4556 AS-REQ for the MPS ticket made at `at` as `profile`
    /// says, with `client_public_value` for DH.
    fn request(
        &self,
        kdc: &Engine,
        nonce: u32,
        at: i64,
        profile: &Profile,
        client_public_value: Option<SubjectPublicKeyInfo>,
    ) -> Vec<u8> {
        let device = Principal::new(name_type::SRV_HST, vec!["mta".into(), FQDN.into()], REALM);
        let body = RequestBody {
            client: Some(&device),
            server: &kdc.service,
            etypes: &[AES256, AES128],
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
fn has_td_dh_parameters(e: &msg::KrbError) -> bool {
    e.e_data.as_ref().is_some_and(|data| {
        rasn::der::decode::<Vec<rasn_kerberos::TypedDataItem>>(data)
            .is_ok_and(|items| items.iter().any(|t| t.r#type == TD_DH_PARAMETERS))
    })
}

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

#[tokio::test]
async fn pkinit_table() {
    let pki = pki();
    let now = msg::time::now().0;
    let shouted = format!("{}.", FQDN.to_uppercase());
    let good = |name, profile, expect| Row {
        name,
        directory: Some(FQDN),
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
        let e = pki.engine(row.directory);
        e.clock.0.store(row.clock_at, Ordering::Relaxed);
        let public = row.dh.map(|(group, change)| {
            let mut spki = ClientKey::generate(group).unwrap().spki();
            change(&mut spki);
            spki
        });
        let request = pki.request(&e, 100 + i as u32, row.at, &row.profile, public);
        let kdc: &Kdc = &e.kdc;
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
                let err =
                    client::krb_error(&h.reply).unwrap_or_else(|| panic!("{name}: no KRB-ERROR"));
                assert_eq!(err.error_code, want.code(), "{name}");
                assert_eq!(
                    msg::time::to_unix(&err.stime),
                    row.clock_at,
                    "{name}: stime"
                );
                // RFC 4556 §3.2.1: a refused group comes with the ones we accept.
                let wants_groups = want == Reason::Pkinit(Refusal::DhGroupRefused);
                assert_eq!(
                    has_td_dh_parameters(&err),
                    wants_groups,
                    "{name}: TD-DH-PARAMETERS"
                );
            }
        }
    }
}
