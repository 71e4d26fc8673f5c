//! Building the reply padata: RSA key transport and DH/ECDH.

use krb::crypto::{Key, usage};
use krb::msg::consts::padata;
use krb::msg::raw::tlv;
use krb::msg::{self, Checksum, EncryptionKey, PaData, time};
use openssl::hash::MessageDigest;
use openssl::symm::Cipher;

use super::errors::dh_error;
use super::{DhRequest, KdcIdentity, PkinitError, VerifiedRequest};
use crate::asn1::{self, PaPkAsRep, ReplyKeyPack, ReplyKeyPack19, oid};
use crate::dh::{self, Agreement, ClientPublic, DhError, Group, Kdf, ServerKey};
use crate::reply;
use crate::request::Form;

/// How replies are built.
pub struct ReplyPolicy {
    /// Content cipher of PacketCable RSA replies (3DES for devices).
    pub packetcable_cipher: Cipher,
    /// Signature digest of PacketCable replies (RFC 4556 and DH replies
    /// use SHA-256).
    pub packetcable_digest: MessageDigest,
}

fn encryption_key(k: &Key) -> EncryptionKey {
    EncryptionKey {
        r#type: k.etype().as_i32(),
        value: k.bytes().to_vec().into(),
    }
}

fn reply_err(e: impl std::fmt::Display) -> PkinitError {
    PkinitError::Reply(e.to_string())
}

/// RSA key transport: the reply padata delivering `reply_key`.
/// `as_req` is the whole received AS-REQ (RFC 4556 asChecksum covers it).
pub fn rsa_reply(
    req: &VerifiedRequest,
    reply_key: &Key,
    as_req: &[u8],
    kdc: &KdcIdentity,
    policy: &ReplyPolicy,
) -> Result<PaData, PkinitError> {
    let (key_pack, digest, cipher) = match req.form {
        Form::PacketCable => {
            let pack = ReplyKeyPack19 {
                reply_key: encryption_key(reply_key),
                nonce: (req.nonce as i64).into(),
            };
            (
                // Holds the reply key: wiped when dropped.
                zeroize::Zeroizing::new(msg::encode("ReplyKeyPack", &pack).map_err(reply_err)?),
                policy.packetcable_digest,
                policy.packetcable_cipher,
            )
        }
        Form::Rfc4556 => {
            let ctype = reply_key.etype().checksum_type();
            let pack = ReplyKeyPack {
                reply_key: encryption_key(reply_key),
                as_checksum: Checksum {
                    r#type: ctype.as_i32(),
                    checksum: reply_key.checksum(usage::TGS_REQ_AUTH_CKSUM, as_req).into(),
                },
            };
            (
                zeroize::Zeroizing::new(msg::encode("ReplyKeyPack", &pack).map_err(reply_err)?),
                MessageDigest::sha256(),
                Cipher::aes_256_cbc(),
            )
        }
    };
    // The EnvelopedData carries the bare SignedData (as MIT's KDC does).
    let signed = reply::signed_data(
        &kdc.prepared,
        &kdc.key,
        digest,
        oid::RKEY_DATA,
        &key_pack,
        time::now().0,
    )?;
    let enveloped = reply::enveloped_data(
        oid::SIGNED_DATA,
        &signed,
        &req.device.public_key,
        &req.device.issuer_and_serial,
        cipher,
    )?;
    Ok(match req.form {
        // PA-PK-AS-REP-19: encKeyPack [1] EXPLICIT ContentInfo.
        Form::PacketCable => PaData {
            r#type: padata::PK_AS_REP_19,
            value: tlv(0xa1, &enveloped).into(),
        },
        Form::Rfc4556 => PaData {
            r#type: padata::PK_AS_REP,
            value: msg::encode("PA-PK-AS-REP", &PaPkAsRep::EncKeyPack(enveloped.into()))
                .map_err(reply_err)?
                .into(),
        },
    })
}

/// The KDC's DH keys: a fresh one per request (`reuse_secs` 0), or one per
/// group kept for `reuse_secs` and announced with dhKeyExpiration to the
/// clients that allow reuse (RFC 4556 §3.2.3.1: those that send a
/// clientDHNonce, "Present only if the client indicates that it wishes to
/// reuse DH keys or to allow the KDC to do so").
pub struct DhKeys {
    reuse_secs: i64,
    slots: std::sync::Mutex<Vec<(Group, std::sync::Arc<ServerKey>, i64)>>,
}

impl DhKeys {
    pub fn new(reuse_secs: u64) -> DhKeys {
        DhKeys {
            reuse_secs: i64::try_from(reuse_secs).unwrap_or(i64::MAX),
            slots: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A key for `group` at Unix time `now`, and its expiration when it is
    /// a reused one (only when `client_allows_reuse`).
    pub fn get(
        &self,
        group: Group,
        now: i64,
        client_allows_reuse: bool,
    ) -> Result<(std::sync::Arc<ServerKey>, Option<i64>), DhError> {
        if self.reuse_secs == 0 || !client_allows_reuse {
            return Ok((std::sync::Arc::new(ServerKey::generate(group)?), None));
        }
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|(_, _, expires)| now < *expires);
        if let Some((_, key, expires)) = slots.iter().find(|(g, _, _)| *g == group) {
            return Ok((key.clone(), Some(*expires)));
        }
        let key = std::sync::Arc::new(ServerKey::generate(group)?);
        let expires = now.saturating_add(self.reuse_secs);
        slots.push((group, key.clone(), expires));
        Ok((key, Some(expires)))
    }

    /// The agreement with `client` at Unix time `now`, and the key's
    /// expiration when it is a reused one.
    ///
    /// A shared secret whose first byte is zero is agreed again with a
    /// fresh key (never kept). RFC 4556 §3.2.3.1 pads ZZ to the modulus
    /// size, and we do, but Heimdal's client (7.8) hands octetstring2key the
    /// unpadded length of its padded buffer (the tail is cut) and Heimdal's
    /// KDC strips the zeros: with a Heimdal client one DH exchange in 256
    /// would fail ("Password incorrect"). When the first byte is not zero,
    /// every one of these readings is the same bytes. The KDC's key is its
    /// own choice, so this stays within the RFC; it costs one more key in
    /// 256 exchanges.
    pub fn agree(
        &self,
        client: &ClientPublic,
        now: i64,
        client_allows_reuse: bool,
    ) -> Result<(Agreement, Option<i64>), DhError> {
        let (key, mut expires) = self.get(client.group, now, client_allows_reuse)?;
        let mut agreement = key.agree(client)?;
        // Each try is a fresh 1-in-256 chance; after four (2^-32) the
        // padded secret is used as the RFC says.
        for _ in 1..4 {
            if agreement.shared_secret.first() != Some(&0) {
                break;
            }
            agreement = ServerKey::generate(client.group)?.agree(client)?;
            expires = None;
        }
        Ok((agreement, expires))
    }
}

/// Names the RFC 8636 KDF binds the key to: cname/crealm and sname/realm
/// exactly as the AS-REQ carried them.
pub struct KdfNames<'a> {
    pub client: &'a krb::principal::Principal,
    pub server: &'a krb::principal::Principal,
}

/// DH/ECDH: the reply padata (17) and the reply key it agrees.
pub fn dh_reply(
    req: &VerifiedRequest,
    dh_req: &DhRequest,
    reply_etype: krb::crypto::EncType,
    as_req: &[u8],
    names: &KdfNames<'_>,
    kdc: &KdcIdentity,
    keys: &DhKeys,
) -> Result<(PaData, Key), PkinitError> {
    let client_nonce = dh_req.client_dh_nonce.as_deref();
    let (agreement, expires) = keys
        .agree(&dh_req.client_public, time::now().0, client_nonce.is_some())
        .map_err(|e| dh_error(e, 0))?;
    let info = asn1::KdcDhKeyInfo {
        subject_public_key: rasn::types::BitString::from_vec(agreement.server_public.clone()),
        // RFC 4556 wants 0 here for a reused key; Heimdal's client always
        // compares it with its PKAuthenticator nonce (MIT's does not read
        // it), so it is always the request's.
        nonce: (req.nonce as i64).into(),
        dh_key_expiration: expires.map(time::from_unix),
    };
    let info_der = msg::encode("KDCDHKeyInfo", &info).map_err(reply_err)?;
    let signed = kdc.sign(
        MessageDigest::sha256(),
        oid::DH_KEY_DATA,
        &info_der,
        time::now().0,
    )?;
    // RFC 4556 §3.2.3.1: serverDHNonce with dhKeyExpiration (a reused
    // key) and never without it; octetstring2key then takes both nonces
    // (n_c, n_k), otherwise none, even when the client sent one (Heimdal's
    // client refuses a serverDHNonce without dhKeyExpiration and leaves
    // its own nonce out then).
    let (server_dh_nonce, nonces) = match (expires, client_nonce) {
        (Some(_), Some(c)) => {
            let k = Key::random(krb::crypto::EncType::Aes256CtsHmacSha196)
                .bytes()
                .to_vec();
            (Some(k.clone()), Some((c, k)))
        }
        _ => (None, None),
    };
    let rep = PaPkAsRep::DhInfo(asn1::DhRepInfo {
        dh_signed_data: signed.into(),
        server_dh_nonce: server_dh_nonce.clone().map(Into::into),
        kdf: dh_req.kdf.map(Kdf::algorithm_id),
    });
    let pk_as_rep = msg::encode("PA-PK-AS-REP", &rep).map_err(reply_err)?;
    let secret = &agreement.shared_secret;
    let key = match dh_req.kdf {
        Some(kdf) => dh::kdf_rfc8636(
            kdf,
            reply_etype,
            secret,
            names.client,
            names.server,
            as_req,
            &pk_as_rep,
        ),
        None => dh::octetstring2key(
            reply_etype,
            secret,
            nonces.as_ref().map(|(c, _)| *c),
            nonces.as_ref().map(|(_, k)| k.as_slice()),
        ),
    }
    .map_err(|e| dh_error(e, 0))?;
    Ok((
        PaData {
            r#type: padata::PK_AS_REP,
            value: pk_as_rep.into(),
        },
        key,
    ))
}
