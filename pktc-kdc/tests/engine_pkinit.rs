//! The PKINIT mechanism in process: a dev realm's KDC (its device
//! directory the static table) answering requests built with
//! `pkinit::client` at a clock the test sets; each row expects an AS-REP
//! or an exact KRB-ERROR code and Reason. Refusals that need no socket:
//! signature, digest, clock skew, chain validity, directory answers.

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
use pkinit::client::{DeviceIdentity, Profile};
use pkinit::server::Refusal;
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

    /// An RFC 4556 AS-REQ made at `at` as `profile` says.
    fn request(&self, nonce: u32, at: i64, profile: &Profile) -> Vec<u8> {
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
        let pa =
            pkinit::client::rfc4556_padata_with(&self.device, &der, nonce, (at, 0), None, profile)
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

#[tokio::test]
async fn pkinit_table() {
    let r = realm();
    let now = msg::time::now().0;
    let fqdn = r.fqdn();
    let shouted = format!("{}.", fqdn.to_uppercase());
    let forged = Profile {
        forged_signature: Some(vec![0x5c; 256]),
        ..Profile::default()
    };
    let md5 = Profile {
        digest: MessageDigest::md5(),
        ..Profile::default()
    };
    // (name, directory FQDN, request time, KDC clock, profile, expected: None = AS-REP)
    type Row<'a> = (
        &'static str,
        Option<&'a str>,
        i64,
        i64,
        Profile,
        Option<Reason>,
    );
    let rows: Vec<Row> = vec![
        (
            "a good request",
            Some(&fqdn),
            now,
            now,
            Profile::default(),
            None,
        ),
        (
            "the FQDN in another case, trailing dot",
            Some(&shouted),
            now,
            now,
            Profile::default(),
            None,
        ),
        (
            "forged signature",
            Some(&fqdn),
            now,
            now,
            forged,
            Some(Reason::Pkinit(Refusal::BadSignature)),
        ),
        (
            "MD5 digest",
            Some(&fqdn),
            now,
            now,
            md5,
            Some(Reason::Pkinit(Refusal::DigestNotAccepted)),
        ),
        (
            "request an hour behind the KDC's clock",
            Some(&fqdn),
            now - 3600,
            now,
            Profile::default(),
            Some(Reason::Pkinit(Refusal::Skew)),
        ),
        (
            "request an hour ahead of the KDC's clock",
            Some(&fqdn),
            now + 3600,
            now,
            Profile::default(),
            Some(Reason::Pkinit(Refusal::Skew)),
        ),
        (
            "at a time after the device certificate expired",
            Some(&fqdn),
            now + 50 * YEAR,
            now + 50 * YEAR,
            Profile::default(),
            Some(Reason::Pkinit(Refusal::CertExpired)),
        ),
        (
            "at a time before the device certificate was issued",
            Some(&fqdn),
            now - 3 * YEAR,
            now - 3 * YEAR,
            Profile::default(),
            Some(Reason::Pkinit(Refusal::CertNotYetValid)),
        ),
        (
            "MAC not in the directory",
            None,
            now,
            now,
            Profile::default(),
            Some(Reason::DeviceUnknownMac),
        ),
        (
            "the directory names another FQDN",
            Some("someone-else.pktc.test"),
            now,
            now,
            Profile::default(),
            Some(Reason::DeviceFqdnMismatch),
        ),
    ];
    for (i, (name, directory, at, clock_at, profile, expect)) in rows.iter().enumerate() {
        let (kdc, clock) = r.kdc(*directory);
        clock.0.store(*clock_at, Ordering::Relaxed);
        let request = r.request(100 + i as u32, *at, profile);
        assert!(kdc.routes_to_pkinit(&request), "{name}");
        let h = kdc.handle(&request, source()).await;
        assert_eq!(h.outcome.exchange, "pkinit", "{name}");
        match expect {
            None => {
                assert_eq!(
                    (h.outcome.code, h.outcome.reason),
                    (0, Reason::Ok),
                    "{name}"
                );
                assert_eq!(h.reply.first(), Some(&0x6b), "{name}: an AS-REP");
                assert_eq!(h.outcome.form, "rfc4556_rsa", "{name}");
            }
            Some(want) => {
                assert_eq!(
                    (h.outcome.code, h.outcome.reason),
                    (want.code(), *want),
                    "{name}"
                );
                let e =
                    client::krb_error(&h.reply).unwrap_or_else(|| panic!("{name}: no KRB-ERROR"));
                assert_eq!(e.error_code, want.code(), "{name}");
            }
        }
    }
}
