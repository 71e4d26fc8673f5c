//! RFC 4556 requests built with each choice a client may make, the rows of
//! the acceptance matrix in docs/protocol-profile.md: digest, signature
//! algorithm, signer identifier and SignerInfo version, signed attributes
//! and their order, which certificates are sent and in what order, DH
//! nonce, KDF list, supportedCMSTypes, trustedCertifiers, freshness token,
//! and a PKAuthenticator nonce of its own.
//!
//! The SignedData is encoded here rather than by OpenSSL's CMS, which
//! would sort the certificates and attributes, always use the SignerInfo
//! version its sid implies and encode the subjectKeyIdentifier only one way.

use krb::msg::consts::padata;
use krb::msg::raw::tlv;
use krb::msg::{self, PaData, time};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer};
use rasn::types::Oid;
use sha1::{Digest, Sha1};

use super::{ClientError, DeviceIdentity, enc};
use crate::asn1::{
    AuthPack, ExternalPrincipalIdentifier, KdfAlgorithmId, PaPkAsReq, PkAuthenticator, oid,
};
use crate::dh::Kdf;

/// The signatureAlgorithm of the SignerInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlg {
    /// rsaEncryption with the digest in digestAlgorithm (PacketCable).
    RsaEncryption,
    /// sha1/224/256/384/512WithRSAEncryption, after the digest.
    ShaWithRsa,
    /// RSASSA-PSS, MGF1 with the digest, salt as long as the digest.
    RsaPss,
    /// ecdsa-with-SHAn, after the digest (EC device keys).
    Ecdsa,
}

/// How the SignerInfo names its signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerId {
    IssuerAndSerial,
    /// subjectKeyIdentifier `[0] IMPLICIT` primitive, as RFC 5652 has it.
    SubjectKeyId,
    /// subjectKeyIdentifier as a constructed `[0]` around an OCTET STRING
    /// (valid BER for the implicit tag), as Heimdal encodes it.
    SubjectKeyIdConstructed,
}

/// The signed attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedAttrs {
    /// None: the signature covers the eContent (PacketCable devices).
    Absent,
    /// contentType and messageDigest, in DER order.
    Der,
    /// The same two reversed on the wire and signed as sent.
    Reversed,
    /// Reversed on the wire, signed in DER order (what OpenSSL checks).
    ReversedSignedInDerOrder,
    /// contentType, messageDigest, signingTime and an attribute no one
    /// knows, in DER order.
    WithExtra,
}

/// Which certificates go in the SignedData, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSet {
    None,
    Leaf,
    LeafThenChain,
    ChainThenLeaf,
}

/// Every choice of an RFC 4556 client, [`Profile::default`] being MIT's.
#[derive(Clone)]
pub struct Profile {
    pub digest: MessageDigest,
    pub signature: SignatureAlg,
    pub signer_id: SignerId,
    pub signer_info_version: u8,
    pub signed_attrs: SignedAttrs,
    pub certs: CertSet,
    /// Send the SignedData bare instead of in a ContentInfo.
    pub bare_signed_data: bool,
    pub supported_cms_types: bool,
    pub trusted_certifiers: bool,
    pub freshness_token: bool,
    pub client_dh_nonce: Option<Vec<u8>>,
    /// supportedKDFs (RFC 8636), None: absent (octetstring2key).
    pub kdfs: Option<Vec<Kdf>>,
    /// The PKAuthenticator nonce, when it is not the body's.
    pub pk_nonce: Option<u32>,
    /// Bytes sent instead of a signature (hostile-request tests: a
    /// certificate whose key the sender does not have).
    pub forged_signature: Option<Vec<u8>>,
    /// KDF OIDs we do not support, listed after `kdfs` (a client that
    /// offers only these must get KDC_ERR_NO_ACCEPTABLE_KDF).
    pub unknown_kdfs: Vec<rasn::types::ObjectIdentifier>,
    /// The SignedData's eContentType when it is not id-pkinit-authData
    /// (refusal tests).
    pub econtent_type: Option<&'static Oid>,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile {
            digest: MessageDigest::sha256(),
            signature: SignatureAlg::ShaWithRsa,
            signer_id: SignerId::IssuerAndSerial,
            signer_info_version: 1,
            signed_attrs: SignedAttrs::Der,
            certs: CertSet::LeafThenChain,
            bare_signed_data: false,
            supported_cms_types: false,
            trusted_certifiers: false,
            freshness_token: false,
            client_dh_nonce: None,
            kdfs: None,
            pk_nonce: None,
            forged_signature: None,
            unknown_kdfs: Vec::new(),
            econtent_type: None,
        }
    }
}

impl Profile {
    /// What Heimdal 7.8's kinit sends (issue 11): SHA-512 with
    /// sha512WithRSAEncryption, subjectKeyIdentifier (constructed) in a
    /// version 1 SignerInfo, contentType and messageDigest, the leaf only,
    /// a 32-byte clientDHNonce and no KDF list.
    pub fn heimdal() -> Profile {
        Profile {
            digest: MessageDigest::sha512(),
            signer_id: SignerId::SubjectKeyIdConstructed,
            certs: CertSet::Leaf,
            supported_cms_types: true,
            client_dh_nonce: Some(vec![0x5a; 32]),
            ..Profile::default()
        }
    }
}

const fn o(arcs: &'static [u32]) -> &'static Oid {
    Oid::const_new(arcs)
}

/// (digest, shaNWithRSAEncryption, ecdsa-with-SHAn) OIDs of `md`.
fn oids(md: MessageDigest) -> Option<(&'static Oid, &'static Oid, &'static Oid)> {
    Some(match md.type_() {
        Nid::MD5 => (
            o(&[1, 2, 840, 113549, 2, 5]),
            o(&[1, 2, 840, 113549, 1, 1, 4]),
            o(&[1, 2, 840, 10045, 4, 1]),
        ),
        Nid::SHA1 => (
            o(&[1, 3, 14, 3, 2, 26]),
            o(&[1, 2, 840, 113549, 1, 1, 5]),
            o(&[1, 2, 840, 10045, 4, 1]),
        ),
        Nid::SHA224 => (
            o(&[2, 16, 840, 1, 101, 3, 4, 2, 4]),
            o(&[1, 2, 840, 113549, 1, 1, 14]),
            o(&[1, 2, 840, 10045, 4, 3, 1]),
        ),
        Nid::SHA256 => (
            o(&[2, 16, 840, 1, 101, 3, 4, 2, 1]),
            o(&[1, 2, 840, 113549, 1, 1, 11]),
            o(&[1, 2, 840, 10045, 4, 3, 2]),
        ),
        Nid::SHA384 => (
            o(&[2, 16, 840, 1, 101, 3, 4, 2, 2]),
            o(&[1, 2, 840, 113549, 1, 1, 12]),
            o(&[1, 2, 840, 10045, 4, 3, 3]),
        ),
        Nid::SHA512 => (
            o(&[2, 16, 840, 1, 101, 3, 4, 2, 3]),
            o(&[1, 2, 840, 113549, 1, 1, 13]),
            o(&[1, 2, 840, 10045, 4, 3, 4]),
        ),
        _ => return None,
    })
}

fn oid_tlv(oid: &Oid) -> Vec<u8> {
    rasn::der::encode(&oid.to_owned()).unwrap_or_default()
}

fn alg_id(oid: &Oid, params: Option<&[u8]>) -> Vec<u8> {
    tlv(
        0x30,
        &[oid_tlv(oid), params.unwrap_or_default().to_vec()].concat(),
    )
}

fn attribute(oid: &Oid, value: &[u8]) -> Vec<u8> {
    tlv(0x30, &[oid_tlv(oid), tlv(0x31, value)].concat())
}

/// A ContentInfo (or bare SignedData) signing `content` of type
/// `econtent_type` as `profile` says.
pub fn signed_data(
    econtent_type: &Oid,
    content: &[u8],
    dev: &DeviceIdentity,
    profile: &Profile,
) -> Result<Vec<u8>, ClientError> {
    let (digest_oid, rsa_oid, ecdsa_oid) =
        oids(profile.digest).ok_or_else(|| enc("digest without an OID here"))?;
    let digest = openssl::hash::hash(profile.digest, content)?;
    let leaf = dev.cert.to_der()?;
    let sid = match profile.signer_id {
        SignerId::IssuerAndSerial => crate::reply::issuer_and_serial(&leaf)?,
        SignerId::SubjectKeyId | SignerId::SubjectKeyIdConstructed => {
            let ski = dev
                .cert
                .subject_key_id()
                .ok_or_else(|| enc("certificate without a subjectKeyIdentifier"))?;
            match profile.signer_id {
                SignerId::SubjectKeyId => tlv(0x80, ski.as_slice()),
                _ => tlv(0xa0, &tlv(0x04, ski.as_slice())),
            }
        }
    };
    let content_type = attribute(o(&[1, 2, 840, 113549, 1, 9, 3]), &oid_tlv(econtent_type));
    let message_digest = attribute(o(&[1, 2, 840, 113549, 1, 9, 4]), &tlv(0x04, &digest));
    let (sent, signed): (Option<Vec<u8>>, Option<Vec<u8>>) = match profile.signed_attrs {
        SignedAttrs::Absent => (None, None),
        SignedAttrs::Der => {
            let set = [content_type, message_digest].concat();
            (Some(set.clone()), Some(set))
        }
        SignedAttrs::Reversed => {
            let set = [message_digest, content_type].concat();
            (Some(set.clone()), Some(set))
        }
        SignedAttrs::ReversedSignedInDerOrder => (
            Some([message_digest.clone(), content_type.clone()].concat()),
            Some([content_type, message_digest].concat()),
        ),
        SignedAttrs::WithExtra => {
            let signing_time = attribute(
                o(&[1, 2, 840, 113549, 1, 9, 5]),
                &tlv(
                    0x17,
                    time::from_unix(time::now().0)
                        .0
                        .format("%y%m%d%H%M%SZ")
                        .to_string()
                        .as_bytes(),
                ),
            );
            let unknown = attribute(o(&[1, 3, 6, 1, 4, 1, 99999, 7]), &[0x05, 0x00]);
            let mut all = [content_type, message_digest, signing_time, unknown];
            all.sort();
            let set = all.concat();
            (Some(set.clone()), Some(set))
        }
    };
    let is_ec = dev.cert.public_key()?.id() == Id::EC;
    let signature_alg = match (profile.signature, is_ec) {
        (SignatureAlg::Ecdsa, true) => alg_id(ecdsa_oid, None),
        (SignatureAlg::Ecdsa, false) | (_, true) => {
            return Err(enc("ECDSA needs an EC key and an EC key ECDSA"));
        }
        (SignatureAlg::RsaEncryption, _) => {
            alg_id(o(&[1, 2, 840, 113549, 1, 1, 1]), Some(&[0x05, 0x00]))
        }
        (SignatureAlg::ShaWithRsa, _) => alg_id(rsa_oid, Some(&[0x05, 0x00])),
        (SignatureAlg::RsaPss, _) => {
            let hash = alg_id(digest_oid, None);
            let mgf1 = alg_id(o(&[1, 2, 840, 113549, 1, 1, 8]), Some(&hash));
            let salt = [0x02, 0x01, profile.digest.size() as u8];
            let params = tlv(
                0x30,
                &[tlv(0xa0, &hash), tlv(0xa1, &mgf1), tlv(0xa2, &salt)].concat(),
            );
            alg_id(o(&[1, 2, 840, 113549, 1, 1, 10]), Some(&params))
        }
    };
    let signature = match &profile.forged_signature {
        Some(forged) => forged.clone(),
        None => {
            let mut signer = Signer::new(profile.digest, &dev.key)?;
            if profile.signature == SignatureAlg::RsaPss {
                signer.set_rsa_padding(Padding::PKCS1_PSS)?;
                signer.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                signer.set_rsa_mgf1_md(profile.digest)?;
            }
            match &signed {
                Some(set) => signer.update(&tlv(0x31, set))?,
                None => signer.update(content)?,
            }
            signer.sign_to_vec()?
        }
    };
    let signer_info = tlv(
        0x30,
        &[
            vec![0x02, 0x01, profile.signer_info_version],
            sid,
            alg_id(digest_oid, None),
            sent.map(|s| tlv(0xa0, &s)).unwrap_or_default(),
            signature_alg,
            tlv(0x04, &signature),
        ]
        .concat(),
    );
    let chain: Vec<Vec<u8>> = dev
        .chain
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|c| *c != leaf)
        .collect();
    let certs = match profile.certs {
        CertSet::None => Vec::new(),
        CertSet::Leaf => leaf,
        CertSet::LeafThenChain => [vec![leaf], chain].concat().concat(),
        CertSet::ChainThenLeaf => [chain, vec![leaf]].concat().concat(),
    };
    let signed_data = tlv(
        0x30,
        &[
            vec![0x02, 0x01, 0x03],
            tlv(0x31, &alg_id(digest_oid, None)),
            tlv(
                0x30,
                &[oid_tlv(econtent_type), tlv(0xa0, &tlv(0x04, content))].concat(),
            ),
            if certs.is_empty() {
                Vec::new()
            } else {
                tlv(0xa0, &certs)
            },
            tlv(0x31, &signer_info),
        ]
        .concat(),
    );
    if profile.bare_signed_data {
        return Ok(signed_data);
    }
    Ok(tlv(
        0x30,
        &[oid_tlv(oid::SIGNED_DATA), tlv(0xa0, &signed_data)].concat(),
    ))
}

/// supportedKDFs: the profile's KDFs, then the unknown ones; absent when
/// neither is given.
fn supported_kdfs(profile: &Profile) -> Option<Vec<KdfAlgorithmId>> {
    if profile.kdfs.is_none() && profile.unknown_kdfs.is_empty() {
        return None;
    }
    let known = profile.kdfs.iter().flatten().map(|k| k.algorithm_id());
    let unknown = profile
        .unknown_kdfs
        .iter()
        .map(|o| KdfAlgorithmId { kdf_id: o.clone() });
    Some(known.chain(unknown).collect())
}

/// An RFC 4556 PA-PK-AS-REQ (16) built as `profile` says, for RSA key
/// transport (`client_public_value` None) or DH/ECDH.
pub fn rfc4556_padata_with(
    dev: &DeviceIdentity,
    req_body: &[u8],
    nonce: u32,
    now: (i64, u32),
    client_public_value: Option<rasn_pkix::SubjectPublicKeyInfo>,
    profile: &Profile,
) -> Result<PaData, ClientError> {
    let sha256_rsa = rasn_pkix::AlgorithmIdentifier {
        algorithm: o(&[1, 2, 840, 113549, 1, 1, 11]).to_owned(),
        parameters: None,
    };
    let pack = AuthPack {
        pk_authenticator: PkAuthenticator {
            cusec: (now.1 as i64).into(),
            ctime: time::from_unix(now.0),
            nonce: (profile.pk_nonce.unwrap_or(nonce) as i64).into(),
            pa_checksum: Some(Sha1::digest(req_body).to_vec().into()),
            freshness_token: profile
                .freshness_token
                .then(|| b"freshness token we were never sent".to_vec().into()),
        },
        client_public_value,
        supported_cms_types: profile.supported_cms_types.then(|| vec![sha256_rsa]),
        client_dh_nonce: profile.client_dh_nonce.clone().map(Into::into),
        supported_kdfs: supported_kdfs(profile),
    };
    let der = msg::encode("AuthPack", &pack).map_err(enc)?;
    let content_type = profile.econtent_type.unwrap_or(oid::AUTH_DATA);
    let signed = signed_data(content_type, &der, dev, profile)?;
    let trusted = profile.trusted_certifiers.then(|| {
        vec![ExternalPrincipalIdentifier {
            subject_name: Some(dev.cert.issuer_name().to_der().unwrap_or_default().into()),
            issuer_and_serial_number: None,
            subject_key_identifier: None,
        }]
    });
    let req = PaPkAsReq {
        signed_auth_pack: signed.into(),
        trusted_certifiers: trusted,
        kdc_pk_id: None,
    };
    Ok(PaData {
        r#type: padata::PK_AS_REQ,
        value: msg::encode("PA-PK-AS-REQ", &req).map_err(enc)?.into(),
    })
}
