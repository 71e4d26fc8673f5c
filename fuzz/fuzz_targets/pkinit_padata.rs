//! The KDC's PKINIT request path: `pkinit::request::parse` (padata 14, 16
//! and 15), `as_content_info`, `is_draft9_auth_pack`, `asks_for_dh` and
//! `pkinit::server::verify_request` against a fixed trust store. None may
//! panic.
//!
//! Input: the first byte chooses what the rest is.
//! * `b & 3 == 0, 1, 2`: a padata-14, -16 or -15 value, verified as received.
//!   Signatures of foreign inputs fail, so this mostly reaches the CMS parser
//!   and the chain check.
//! * bit 3 (`b & 8`): verified against the trust directory as the KDC opens
//!   it (its own CAs only, `TrustStore::check_issuer_signature` first),
//!   else as a client opens one (the peer's intermediates count).
//! * `b & 3 == 3`: an AuthPack (bit 2 clear: PacketCable AuthPack19 in padata
//!   14; set: RFC 4556 AuthPack in padata 16). The target signs it with the
//!   dev device key, so the AuthPack decoder and its time, checksum, nonce,
//!   DH and MAC checks see fuzzed content behind a valid signature.
//!
//! The PKI (1024-bit device, as PacketCable 1.x) is generated once per
//! process with `certs::dev_pki` in a temp dir; the trust store does not
//! check CRLs. `PKTC_FUZZ_WRITE_SEEDS=DIR` writes seed inputs to DIR (see
//! fuzz/README.md).

#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use certs::{CrlPolicy, DevPkiOptions, TrustStore, dev_pki};
use krb::crypto::{ChecksumType, unkeyed_checksum};
use krb::msg::consts::padata;
use krb::msg::raw::tlv as explicit_tag;
use krb::msg::{self, Checksum, time};
use libfuzzer_sys::fuzz_target;
use openssl::hash::MessageDigest;
use pkinit::asn1::{AuthPack, AuthPack19, PkAuthenticator, PkAuthenticator19, oid};
use pkinit::client::{DeviceIdentity, packetcable_padata, rfc4556_padata};
use pkinit::cms::{self, SignOptions};
use pkinit::request;
use pkinit::server::{RequestContext, verify_request};

/// The KDC-REQ-BODY bytes the paChecksum must cover (any bytes do).
const REQ_BODY: &[u8] = b"0\x0bpktc-fuzz-req-body";
const NONCE: u32 = 0x1234_5678;

struct Lab {
    trust: TrustStore,
    /// The same directory as the KDC opens it (its own CAs only), where a
    /// new device's issuer is first looked at from the DER.
    directory_only: std::sync::Arc<TrustStore>,
    device: DeviceIdentity,
    now: i64,
    _dir: PathBuf,
}

static LAB: LazyLock<Lab> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("pktc-fuzz-pkinit-{}", std::process::id()));
    let mut opts = DevPkiOptions::new("PKTC.TEST", "PacketCable Fuzz", &[[0, 0x10, 0x95, 0, 0, 1]]);
    opts.device_bits = 1024;
    let pki = dev_pki(&opts, &dir).expect("dev PKI");
    let trust = TrustStore::load_dir(&pki.device_trust_dir, CrlPolicy::Off).expect("trust store");
    let d = &pki.devices[0];
    let device = DeviceIdentity::load(
        &d.join("cert.pem"),
        &d.join("key.pem"),
        Some(&d.join("chain.pem")),
    )
    .expect("device");
    let directory_only =
        certs::store::TrustStoreHandle::open(&pki.device_trust_dir, CrlPolicy::Off)
            .expect("trust store")
            .load();
    let lab = Lab {
        trust,
        directory_only,
        device,
        now: time::now().0,
        _dir: dir,
    };
    if let Some(out) = std::env::var_os("PKTC_FUZZ_WRITE_SEEDS") {
        write_seeds(&lab, &PathBuf::from(out));
    }
    lab
});

fn ctx(now: i64) -> RequestContext<'static> {
    RequestContext {
        req_body: REQ_BODY,
        now,
        // Far beyond Config::validate's limit, so committed seeds keep
        // passing the time check (as in kdc_request).
        skew: 100 * 365 * 86_400,
        dh_min_bits: 2048,
        cert_cache: None,
    }
}

/// Signs `auth_pack` as the device and wraps it as padata 14 or 16.
fn signed_padata(lab: &Lab, rfc: bool, auth_pack: &[u8]) -> Option<(i32, Vec<u8>)> {
    let dev = &lab.device;
    let opts = SignOptions {
        digest: (!rfc).then(MessageDigest::sha1),
        signed_attributes: rfc,
        extra_certs: &dev.chain,
    };
    let signed = cms::sign(oid::AUTH_DATA, auth_pack, &dev.cert, &dev.key, &opts).ok()?;
    if rfc {
        let req = pkinit::asn1::PaPkAsReq {
            signed_auth_pack: signed.into(),
            trusted_certifiers: None,
            kdc_pk_id: None,
        };
        Some((padata::PK_AS_REQ, msg::encode("PA-PK-AS-REQ", &req).ok()?))
    } else {
        Some((
            padata::PK_AS_REQ_19,
            explicit_tag(0x30, &explicit_tag(0xa0, &signed)),
        ))
    }
}

fuzz_target!(|data: &[u8]| {
    let lab = &*LAB;
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let _ = request::as_content_info(rest);
    let _ = request::is_draft9_auth_pack(rest);
    let (pa_type, value) = match selector & 3 {
        0 => (padata::PK_AS_REQ_19, rest.to_vec()),
        1 => (padata::PK_AS_REQ, rest.to_vec()),
        2 => (padata::PK_AS_REP_19, rest.to_vec()),
        _ => match signed_padata(lab, selector & 4 != 0, rest) {
            Some(p) => p,
            None => return,
        },
    };
    // The audit label's raw sniff of clientPublicValue.
    let _ = request::asks_for_dh(pa_type, &value);
    if let Ok(signed) = request::parse(pa_type, &value) {
        let _ = request::as_content_info(&signed.content_info);
    }
    // Bit 3: the KDC's kind of store (its own CAs only).
    let trust = if selector & 8 != 0 {
        &*lab.directory_only
    } else {
        &lab.trust
    };
    let _ = lab.directory_only.check_issuer_signature(rest, lab.now);
    if let Ok(v) = verify_request(pa_type, &value, &ctx(lab.now), trust) {
        // Only a well-formed request from the dev device gets this far.
        assert_eq!(v.nonce, NONCE);
        assert_eq!(v.mac, [0, 0x10, 0x95, 0, 0, 1]);
    }
});

// ---- seeds ----

fn auth_pack_19(now: i64) -> Vec<u8> {
    let pack = AuthPack19 {
        pk_authenticator: PkAuthenticator19 {
            cusec: 1234.into(),
            ctime: time::from_unix(now),
            nonce: (NONCE as i64).into(),
            pa_checksum: Checksum {
                r#type: ChecksumType::RsaMd5.as_i32(),
                checksum: unkeyed_checksum(ChecksumType::RsaMd5, REQ_BODY)
                    .unwrap()
                    .into(),
            },
        },
        client_public_value: None,
    };
    msg::encode("AuthPack", &pack).unwrap()
}

fn auth_pack(now: i64) -> Vec<u8> {
    use sha1::Digest;
    let pack = AuthPack {
        pk_authenticator: PkAuthenticator {
            cusec: 1234.into(),
            ctime: time::from_unix(now),
            nonce: (NONCE as i64).into(),
            pa_checksum: Some(sha1::Sha1::digest(REQ_BODY).to_vec().into()),
            freshness_token: None,
        },
        client_public_value: None,
        supported_cms_types: None,
        client_dh_nonce: None,
        supported_kdfs: Some(vec![pkinit::asn1::KdfAlgorithmId {
            kdf_id: oid::KDF_SHA256.to_owned(),
        }]),
    };
    msg::encode("AuthPack", &pack).unwrap()
}

fn write_seeds(lab: &Lab, out: &std::path::Path) {
    std::fs::create_dir_all(out).unwrap();
    let put = |name: &str, selector: u8, body: &[u8]| {
        let mut v = vec![selector];
        v.extend_from_slice(body);
        std::fs::write(out.join(name), v).unwrap();
    };
    let now = (lab.now, 1234);
    let dev = &lab.device;
    let pc = packetcable_padata(dev, REQ_BODY, NONCE, now, Some("mps.pktc.test")).unwrap();
    put("pa14-packetcable", 0, &pc[0].value);
    put("pa15-draft9", 2, &pc[0].value);
    let rfc = rfc4556_padata(dev, REQ_BODY, NONCE, now, None, None, None).unwrap();
    put("pa16-rfc4556-rsa", 1, &rfc.value);
    // padata 14 with [0] IMPLICIT OCTET STRING around a bare SignedData.
    let (tlv, _) = msg::raw::read_tlv(&pc[0].value).unwrap();
    let (field, _) = msg::raw::read_tlv(tlv.content).unwrap();
    let (ci, _) = msg::raw::read_tlv(field.content).unwrap();
    let (_, after_oid) = msg::raw::read_tlv(ci.content).unwrap();
    let (explicit, _) = msg::raw::read_tlv(after_oid).unwrap();
    let bare = explicit.content;
    put(
        "pa14-primitive-bare",
        0,
        &explicit_tag(0x30, &explicit_tag(0x80, bare)),
    );
    put("sign-authpack19", 3, &auth_pack_19(lab.now));
    put("sign-authpack-rfc", 7, &auth_pack(lab.now));
}
