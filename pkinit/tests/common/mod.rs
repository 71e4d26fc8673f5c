//! A generated PacketCable PKI with a KDC identity and one device, shared
//! by the pkinit integration tests.
#![allow(dead_code)]

use certs::pki::{self, DevPkiOptions};
use certs::store::{CrlPolicy, TrustStore};
use openssl::pkey::PKey;
use openssl::x509::X509;
use pkinit::client::DeviceIdentity;
use pkinit::server::KdcIdentity;

pub struct Lab {
    pub _dir: testkit::TempDir,
    pub device_trust: TrustStore,
    pub sp_trust: TrustStore,
    pub kdc: KdcIdentity,
    pub device: DeviceIdentity,
}

pub fn lab() -> Lab {
    let dir = testkit::TempDir::new("pkinit-rt");
    let mac = [0x00, 0x10, 0x95, 0x00, 0x00, 0x01];
    let p = pki::dev_pki(
        &DevPkiOptions::new("PKTC.TEST", "PKTC Test", &[mac]),
        dir.root(),
    )
    .unwrap();
    let kdc_chain = X509::stack_from_pem(&std::fs::read(&p.kdc_chain).unwrap()).unwrap();
    let kdc = KdcIdentity::new(
        X509::from_pem(&std::fs::read(&p.kdc_cert).unwrap()).unwrap(),
        PKey::private_key_from_pem(&std::fs::read(&p.kdc_key).unwrap()).unwrap(),
        kdc_chain[1..].to_vec(),
    )
    .unwrap();
    let d = &p.devices[0];
    let device = DeviceIdentity::load(
        &d.join("cert.pem"),
        &d.join("key.pem"),
        Some(&d.join("chain.pem")),
    )
    .unwrap();
    Lab {
        device_trust: TrustStore::load_dir(&p.device_trust_dir, CrlPolicy::Require).unwrap(),
        sp_trust: TrustStore::load_dir(&p.sp_trust_dir, CrlPolicy::Off).unwrap(),
        kdc,
        device,
        _dir: dir,
    }
}
