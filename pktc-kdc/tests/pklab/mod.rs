//! A dev realm for PKINIT client-choice tests: extra device certificates
//! (any key, any keyUsage, any issuer) made before the KDC starts and
//! known to the provisioning-server stand-in, RFC 4556 requests built with
//! `pkinit::client::Profile` the way eue-sim builds its own, and replies
//! opened the way the row's client would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use certs::pki::Issued;
use certs::store::{CrlPolicy, TrustStore};
use krb::client::{self, RequestBody};
use krb::crypto::{EncType, Key};
use krb::msg::{self, PaData, time};
use krb::principal::{Principal, name_type};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use pkinit::client::{DeviceIdentity, Profile};
use pkinit::dh::ClientKey;
use testkit::DevKdc;

pub const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
pub const REALM: &str = "PKTC.TEST";

pub fn device_principal(fqdn: &str) -> Principal {
    Principal::new(name_type::SRV_HST, vec!["mta".into(), fqdn.into()], REALM)
}

pub fn mac_fqdn(mac: [u8; 6]) -> String {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("mta-{hex}.pktc.test")
}

/// The realm's manufacturer CA (certificate and key).
pub fn manufacturer(realm: &Path) -> Issued {
    pktc_kdc::cli::certs::load_ca(
        &realm.join("pki/trust/device/manufacturer-ca.pem"),
        &realm.join("pki/ca-keys/manufacturer-ca.key"),
    )
    .unwrap()
}

/// A device certificate for `mac` with public key `key`, signed by
/// `issuer` (cert, key) with SHA-256; `key_usage` None: digitalSignature +
/// keyEncipherment as dev devices have.
pub fn device_cert<T: HasPublic>(
    issuer: (&X509, &PKeyRef<Private>),
    mac: [u8; 6],
    key: &PKeyRef<T>,
    key_usage: Option<KeyUsage>,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("C", "US").unwrap();
    name.append_entry_by_text("O", "Example Manufacturer")
        .unwrap();
    name.append_entry_by_text("CN", &certs::mac::format_mac(mac))
        .unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]])).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.0.subject_name()).unwrap();
    b.set_pubkey(key).unwrap();
    let now = time::now().0;
    b.set_not_before(&Asn1Time::from_unix(now - 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + 10 * 365 * 86_400).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().build().unwrap())
        .unwrap();
    let ku = key_usage.unwrap_or_else(|| {
        let mut k = KeyUsage::new();
        k.critical().digital_signature().key_encipherment();
        k
    });
    b.append_extension(ku.build().unwrap()).unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(Some(issuer.0), None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(issuer.1, MessageDigest::sha256()).unwrap();
    b.build()
}

/// Writes variant `name` (cert.pem, key.pem, chain.pem = cert + `chain`)
/// into the realm and makes its MAC known to the provisioning server at
/// 127.0.0.1.
pub fn write_variant(realm: &Path, name: &str, cert: &X509, key: &PKey<Private>, chain: &[&X509]) {
    let dir = variant_dir(realm, name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("key.pem"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let mut pem = cert.to_pem().unwrap();
    for c in chain {
        pem.extend(c.to_pem().unwrap());
    }
    std::fs::write(dir.join("chain.pem"), pem).unwrap();
    let mac = certs::mac::device_mac(cert).unwrap();
    let mut table = std::fs::read_to_string(realm.join("mps-table.toml")).unwrap();
    table.push_str(&format!(
        "\n[[device]]\nmac = \"{}\"\nfqdn = \"{}\"\naddresses = [\"127.0.0.1\"]\n",
        certs::mac::format_mac(mac),
        mac_fqdn(mac)
    ));
    std::fs::write(realm.join("mps-table.toml"), table).unwrap();
}

pub fn variant_dir(realm: &Path, name: &str) -> PathBuf {
    realm.join("variants").join(name)
}

/// A device and its cname.
pub struct Device {
    pub identity: DeviceIdentity,
    pub principal: Principal,
}

pub struct Lab {
    pub kdc: DevKdc,
    pub tgs: Principal,
    pub service: Principal,
    /// What clients trust for the KDC certificate.
    pub sp_trust: TrustStore,
}

/// A request as sent and what opening its reply needs.
pub struct Sent {
    pub bytes: Vec<u8>,
    pub body_nonce: u32,
    pub pk_nonce: u32,
    pub cname: Principal,
    pub sname: Principal,
    pub dh: Option<ClientKey>,
    pub client_dh_nonce: Option<Vec<u8>>,
}

impl Lab {
    pub fn new(kdc: DevKdc) -> Lab {
        let sp_root = kdc.realm_path(&kdc.get("sp_root"));
        let sp_trust = TrustStore::load_dir(sp_root.parent().unwrap(), CrlPolicy::Off).unwrap();
        Lab {
            service: Principal::parse(&kdc.get("service_principal"), None).unwrap(),
            tgs: Principal::krbtgt(REALM),
            sp_trust,
            kdc,
        }
    }

    /// Device `index` of the manifest.
    pub fn device(&self, index: usize) -> Device {
        let d = &self.kdc.manifest["devices"][index];
        let p = |k: &str| self.kdc.realm_path(d[k].as_str().unwrap());
        Device {
            identity: DeviceIdentity::load(&p("cert"), &p("key"), Some(&p("chain"))).unwrap(),
            principal: device_principal(d["fqdn"].as_str().unwrap()),
        }
    }

    /// A variant written by [`write_variant`].
    pub fn variant(&self, name: &str) -> Device {
        let dir = variant_dir(&self.kdc.realm_path(""), name);
        let identity = DeviceIdentity::load(
            &dir.join("cert.pem"),
            &dir.join("key.pem"),
            Some(&dir.join("chain.pem")),
        )
        .unwrap();
        let mac = certs::mac::device_mac(&identity.cert).unwrap();
        Device {
            identity,
            principal: device_principal(&mac_fqdn(mac)),
        }
    }

    /// An AS-REQ from `dev` for `sname` whose padata `make` builds from
    /// the KDC-REQ-BODY bytes.
    pub fn request(
        &self,
        dev: &Device,
        sname: &Principal,
        nonce: u32,
        make: impl FnOnce(&[u8]) -> Vec<PaData>,
    ) -> Vec<u8> {
        let body = RequestBody {
            client: Some(&dev.principal),
            server: sname,
            etypes: &EncType::ALL,
            nonce,
            till: time::now().0 + 3600,
            rtime: None,
            options: client::default_options(),
        };
        let der = msg::encode("KDC-REQ-BODY", &body.to_asn1().unwrap()).unwrap();
        client::as_req(&body, make(&der)).unwrap()
    }

    /// An RFC 4556 AS-REQ for krbtgt from `dev` built as `profile` says, DH
    /// in `dh`'s group when given (its clientPublicValue passed through
    /// `spki` first).
    pub fn rfc4556(
        &self,
        dev: &Device,
        nonce: u32,
        profile: &Profile,
        dh: Option<ClientKey>,
        spki: impl FnOnce(&mut rasn_pkix::SubjectPublicKeyInfo),
    ) -> Sent {
        let mut public = dh.as_ref().map(ClientKey::spki);
        if let Some(p) = public.as_mut() {
            spki(p);
        }
        let bytes = self.request(dev, &self.tgs, nonce, |body| {
            vec![
                pkinit::client::rfc4556_padata_with(
                    &dev.identity,
                    body,
                    nonce,
                    time::now(),
                    public,
                    profile,
                )
                .unwrap(),
            ]
        });
        Sent {
            bytes,
            body_nonce: nonce,
            pk_nonce: profile.pk_nonce.unwrap_or(nonce),
            cname: dev.principal.clone(),
            sname: self.tgs.clone(),
            dh,
            client_dh_nonce: profile.client_dh_nonce.clone(),
        }
    }
}

/// What a DH reply said besides the key.
#[derive(Debug, PartialEq, Eq)]
pub struct DhReplyFields {
    pub server_dh_nonce: bool,
    pub dh_key_expiration: bool,
    pub kdf: Option<String>,
}

/// Opens an RFC 4556 AS-REP as the requesting client does: the reply key
/// from padata 17 (the KDC's signature and chain checked against
/// `sp_trust`), then the enc-part. For DH, the fields of DHRepInfo and
/// KDCDHKeyInfo that depend on key reuse.
pub fn open_rfc4556(
    sent: &Sent,
    reply: &[u8],
    dev: &Device,
    sp_trust: &TrustStore,
) -> Result<Option<DhReplyFields>, String> {
    use krb::msg::AsRep;
    if let Some(e) = client::krb_error(reply) {
        return Err(format!("KRB-ERROR {}", e.error_code));
    }
    let AsRep(rep) = msg::decode::<AsRep>("AS-REP", reply).map_err(|e| e.to_string())?;
    let pa = rep
        .padata
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|p| p.r#type == 17)
        .ok_or("no padata 17")?;
    let (key, fields): (Key, _) = match &sent.dh {
        None => (
            pkinit::client::open_rfc4556_rsa_reply(&pa.value, &dev.identity, sp_trust, &sent.bytes)
                .map_err(|e| e.to_string())?,
            None,
        ),
        Some(ck) => {
            let etype = EncType::from_i32(rep.enc_part.etype).ok_or("etype")?;
            let state = pkinit::client::DhClientState {
                key: ck,
                client_dh_nonce: sent.client_dh_nonce.as_deref(),
                nonce: sent.pk_nonce,
                etype,
            };
            let names = pkinit::server::KdfNames {
                client: &sent.cname,
                server: &sent.sname,
            };
            let key = pkinit::client::open_rfc4556_dh_reply(
                &pa.value,
                &state,
                sp_trust,
                &sent.bytes,
                &names,
            )
            .map_err(|e| e.to_string())?;
            (key, Some(dh_fields(&pa.value)))
        }
    };
    client::open_as_rep(reply, &key, sent.body_nonce).map_err(|e| e.to_string())?;
    Ok(fields)
}

fn dh_fields(pa_value: &[u8]) -> DhReplyFields {
    let rep: pkinit::asn1::PaPkAsRep = msg::decode("PA-PK-AS-REP", pa_value).unwrap();
    let pkinit::asn1::PaPkAsRep::DhInfo(info) = rep else {
        panic!("not dhInfo")
    };
    let signed = pkinit::cms::verify_signed(&info.dh_signed_data).unwrap();
    let key_info: pkinit::asn1::KdcDhKeyInfo =
        msg::decode("KDCDHKeyInfo", &signed.econtent).unwrap();
    DhReplyFields {
        server_dh_nonce: info.server_dh_nonce.is_some(),
        dh_key_expiration: key_info.dh_key_expiration.is_some(),
        kdf: info.kdf.map(|k| k.kdf_id.to_string()),
    }
}

/// The KRB-ERROR code of a reply (0 for anything else).
pub fn code(reply: &[u8]) -> i32 {
    client::krb_error(reply).map(|e| e.error_code).unwrap_or(0)
}

/// The e-data of a KRB-ERROR reply as TYPED-DATA (type, value) pairs:
/// SEQUENCE OF SEQUENCE { data-type [0] Int32, data-value [1] OCTET STRING }.
pub fn typed_data(reply: &[u8]) -> Vec<(i32, Vec<u8>)> {
    use krb::msg::raw::read_tlv;
    let Some(data) = client::krb_error(reply).and_then(|e| e.e_data) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (seq, _) = read_tlv(&data).unwrap();
    let mut items = seq.content;
    while !items.is_empty() {
        let (item, rest) = read_tlv(items).unwrap();
        items = rest;
        let (t, after) = read_tlv(item.content).unwrap();
        let (int, _) = read_tlv(t.content).unwrap();
        let ty = int
            .content
            .iter()
            .fold(0i32, |a, b| (a << 8) | i32::from(*b));
        let value = match read_tlv(after) {
            Ok((v, _)) => read_tlv(v.content).unwrap().0.content.to_vec(),
            Err(_) => Vec::new(),
        };
        out.push((ty, value));
    }
    out
}

/// Waits (up to 5 s) for the first `exchange="pkinit"` audit line after
/// the first `seen` audit lines, and returns it.
pub fn next_pkinit_audit(kdc: &DevKdc, seen: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Some(l) = kdc
            .audit_lines()
            .into_iter()
            .skip(seen)
            .find(|l| l.contains("exchange=\"pkinit\""))
        {
            return l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no PKINIT audit line after {seen}:\n{}",
            kdc.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
