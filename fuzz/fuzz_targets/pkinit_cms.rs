//! The PKINIT CMS and ASN.1 decoders that see untrusted bytes:
//! `pkinit::cms::verify_signed` (OpenSSL CMS parse + signature check) and
//! `krb::msg::decode` of every `pkinit::asn1` type. None may panic.
//!
//! `PKTC_FUZZ_WRITE_SEEDS=DIR` writes seed inputs to DIR (fuzz/README.md).

#![no_main]

use std::sync::Once;

use krb::crypto::{ChecksumType, EncType, Key, unkeyed_checksum};
use krb::msg::{self, Checksum, EncryptionKey, time};
use libfuzzer_sys::fuzz_target;
use pkinit::asn1::{
    AuthPack, AuthPack19, DhRepInfo, KdcDhKeyInfo, KdfAlgorithmId, Krb5PrincipalName, PaPkAsRep,
    PaPkAsReq, PkAuthenticator, PkAuthenticator19, ReplyKeyPack, ReplyKeyPack19, oid,
};
use pkinit::{cms, request};

static SEEDS: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    SEEDS.call_once(|| {
        if let Some(out) = std::env::var_os("PKTC_FUZZ_WRITE_SEEDS") {
            write_seeds(std::path::Path::new(&out));
        }
    });
    if let Ok(signed) = cms::verify_signed(data) {
        let _ = signed.certificates.len();
    }
    // A bare SignedData, wrapped as the KDC does before verifying.
    if let Ok(ci) = request::as_content_info(data) {
        let _ = cms::verify_signed(&ci);
    }
    let _ = msg::decode::<AuthPack>("AuthPack", data);
    let _ = msg::decode::<AuthPack19>("AuthPack19", data);
    let _ = msg::decode::<PaPkAsReq>("PA-PK-AS-REQ", data);
    let _ = msg::decode::<PaPkAsRep>("PA-PK-AS-REP", data);
    let _ = msg::decode::<DhRepInfo>("DHRepInfo", data);
    let _ = msg::decode::<KdcDhKeyInfo>("KDCDHKeyInfo", data);
    let _ = msg::decode::<ReplyKeyPack>("ReplyKeyPack", data);
    let _ = msg::decode::<ReplyKeyPack19>("ReplyKeyPack19", data);
    if let Ok(name) = msg::decode::<Krb5PrincipalName>("KRB5PrincipalName", data) {
        let _ = krb::principal::Principal::from_rasn(&name.principal_name, &name.realm);
    }
});

// ---- seeds: a signed ContentInfo and one DER value of each type ----

fn write_seeds(out: &std::path::Path) {
    use certs::{DevPkiOptions, dev_pki};
    use pkinit::client::{DeviceIdentity, packetcable_padata};
    std::fs::create_dir_all(out).unwrap();
    let put = |name: &str, v: &[u8]| std::fs::write(out.join(name), v).unwrap();
    let (now, usec) = time::now();

    let dir = std::env::temp_dir().join(format!("pktc-fuzz-cms-{}", std::process::id()));
    let mut opts = DevPkiOptions::new("PKTC.TEST", "PacketCable Fuzz", &[[0, 0x10, 0x95, 0, 0, 1]]);
    opts.device_bits = 1024;
    let pki = dev_pki(&opts, &dir).unwrap();
    let d = &pki.devices[0];
    let dev = DeviceIdentity::load(&d.join("cert.pem"), &d.join("key.pem"), None).unwrap();
    let body = b"pktc-fuzz-req-body";
    let pa = packetcable_padata(&dev, body, 7, (now, usec), None).unwrap();
    let signed = request::parse(14, &pa[0].value).unwrap().content_info;
    put("signed-authpack19", &signed);
    let _ = std::fs::remove_dir_all(&dir);

    let md5 = unkeyed_checksum(ChecksumType::RsaMd5, body).unwrap();
    let pk19 = PkAuthenticator19 {
        cusec: (usec as i64).into(),
        ctime: time::from_unix(now),
        nonce: 7.into(),
        pa_checksum: Checksum {
            r#type: ChecksumType::RsaMd5.as_i32(),
            checksum: md5.into(),
        },
    };
    let pack19 = AuthPack19 {
        pk_authenticator: pk19,
        client_public_value: None,
    };
    put("authpack19", &msg::encode("AuthPack", &pack19).unwrap());
    let pack = AuthPack {
        pk_authenticator: PkAuthenticator {
            cusec: (usec as i64).into(),
            ctime: time::from_unix(now),
            nonce: (-7).into(),
            pa_checksum: Some(vec![0x5a; 20].into()),
            freshness_token: Some(vec![1, 2, 3].into()),
        },
        client_public_value: None,
        supported_cms_types: None,
        client_dh_nonce: Some(vec![9; 32].into()),
        supported_kdfs: Some(vec![KdfAlgorithmId {
            kdf_id: oid::KDF_SHA256.to_owned(),
        }]),
    };
    put("authpack", &msg::encode("AuthPack", &pack).unwrap());
    let req = PaPkAsReq {
        signed_auth_pack: signed.clone().into(),
        trusted_certifiers: None,
        kdc_pk_id: Some(vec![0xaa; 4].into()),
    };
    put("pa-pk-as-req", &msg::encode("PA-PK-AS-REQ", &req).unwrap());
    let dh = PaPkAsRep::DhInfo(DhRepInfo {
        dh_signed_data: vec![0x30, 0x00].into(),
        server_dh_nonce: Some(vec![3; 16].into()),
        kdf: Some(KdfAlgorithmId {
            kdf_id: oid::KDF_SHA1.to_owned(),
        }),
    });
    put(
        "pa-pk-as-rep-dh",
        &msg::encode("PA-PK-AS-REP", &dh).unwrap(),
    );
    let kdc_dh = KdcDhKeyInfo {
        subject_public_key: rasn::types::BitString::from_slice(&[0x02, 0x01, 0x05]),
        nonce: 7.into(),
        dh_key_expiration: Some(time::from_unix(now + 3600)),
    };
    put(
        "kdc-dh-key-info",
        &msg::encode("KDCDHKeyInfo", &kdc_dh).unwrap(),
    );
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let reply_key = EncryptionKey {
        r#type: key.etype().as_i32(),
        value: key.bytes().to_vec().into(),
    };
    let rkp = ReplyKeyPack {
        reply_key: reply_key.clone(),
        as_checksum: Checksum {
            r#type: 16,
            checksum: vec![0; 12].into(),
        },
    };
    put(
        "reply-key-pack",
        &msg::encode("ReplyKeyPack", &rkp).unwrap(),
    );
    let rkp19 = ReplyKeyPack19 {
        reply_key,
        nonce: 7.into(),
    };
    put(
        "reply-key-pack19",
        &msg::encode("ReplyKeyPack", &rkp19).unwrap(),
    );
    let p =
        krb::principal::Principal::parse("mta/mta-001095000001.pktc.test@PKTC.TEST", None).unwrap();
    let (principal_name, realm) = p.to_rasn().unwrap();
    let name = Krb5PrincipalName {
        realm,
        principal_name,
    };
    put(
        "krb5-principal-name",
        &msg::encode("KRB5PrincipalName", &name).unwrap(),
    );
}
