//! Checking a request: CMS signature and device chain, time, checksum,
//! and what it asks for in the reply.

use std::sync::Arc;

use certs::store::TrustStore;
use krb::crypto::{ChecksumType, verify_unkeyed_checksum};
use krb::msg::{self, time};
use openssl::x509::X509;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::errors::dh_error;
use super::{DhRequest, KeyDelivery, PkinitError, VerifiedDevice, VerifiedRequest};
use crate::asn1::{AuthPack, AuthPack19, nonce_u32, oid};
use crate::cms::{self, CmsError};
use crate::dh;
use crate::reply;
use crate::request::{self, Form, RequestError};

/// Inputs from the AS-REQ around the PKINIT padata.
pub struct RequestContext<'a> {
    /// Exact bytes of the received KDC-REQ-BODY.
    pub req_body: &'a [u8],
    /// The KDC-REQ-BODY nonce.
    pub body_nonce: u32,
    pub now: i64,
    pub skew: i64,
    /// Smallest acceptable DH group (MODP bits or equivalent).
    pub dh_min_bits: u32,
    /// Parsed intermediates and verified device certificates shared
    /// across requests (one cache per trust-store handle).
    pub cert_cache: Option<&'a cms::CertCache>,
}

/// Checks a PKINIT padata (14 or 16; 15 is refused as draft-9).
///
/// With `ctx.cert_cache`, a device certificate already verified against
/// this trust store (same DER, request time inside the cached result's
/// validity window) is neither parsed nor chain-checked again; the
/// request's signature is always checked.
pub fn verify_request(
    pa_type: i32,
    pa_value: &[u8],
    ctx: &RequestContext<'_>,
    trust: &TrustStore,
) -> Result<VerifiedRequest, PkinitError> {
    let signed = request::parse(pa_type, pa_value)?;
    let parts = cms::read_signed(&signed.content_info)?;
    // A device seen before: its certificate is found by the sid's bytes and
    // its digest, nothing is decoded or parsed.
    let cached = ctx.cert_cache.and_then(|c| {
        let der = parts.signer_der_by_bytes()?;
        c.device(trust, &openssl::sha::sha256(der), ctx.now)
    });
    let device = match cached {
        Some(device) => {
            parts.verify(&device.public_key)?;
            check_content_type(&parts)?;
            device
        }
        None => verify_new_device(&parts, ctx, trust)?,
    };
    let econtent = parts.econtent();
    let (nonce, delivery) = match signed.form {
        Form::PacketCable => check_auth_pack_19(econtent, ctx)?,
        Form::Rfc4556 => check_auth_pack(econtent, ctx)?,
    };
    let mac = device.mac.ok_or(PkinitError::NoMac)?;
    Ok(VerifiedRequest {
        form: signed.form,
        device,
        mac,
        nonce,
        delivery,
    })
}

fn check_content_type(parts: &cms::SignedParts<'_>) -> Result<(), PkinitError> {
    if **parts.econtent_type() != *oid::AUTH_DATA {
        return Err(PkinitError::WrongContentType(
            parts.econtent_type().to_string(),
        ));
    }
    Ok(())
}

/// The signer of a request whose certificate the cache does not hold:
/// signature (with the key read from the SubjectPublicKeyInfo, before any
/// certificate parse, when it is RSA), content type, then the certificate
/// parse and the chain; a success is remembered in the cache.
fn verify_new_device(
    parts: &cms::SignedParts<'_>,
    ctx: &RequestContext<'_>,
    trust: &TrustStore,
) -> Result<Arc<VerifiedDevice>, PkinitError> {
    let (signer_index, signer_der, signer_cert) =
        parts.signer_cert()?.ok_or(CmsError::NoSignerCertificate)?;
    let spki = &signer_cert.tbs_certificate.subject_public_key_info;
    let mut parsed = None;
    let key = match crate::signer::rsa_public_key(spki) {
        Some(k) => k,
        None => parsed
            .insert(X509::from_der(signer_der).map_err(CmsError::from)?)
            .public_key()
            .map_err(CmsError::from)?,
    };
    parts.verify(&key)?;
    check_content_type(parts)?;
    let cert = match parsed {
        Some(x) => x,
        None => X509::from_der(signer_der).map_err(CmsError::from)?,
    };
    let mut presented = Vec::new();
    for (i, der) in parts.cert_ders()? {
        if i != signer_index && der != signer_der {
            presented.push(match ctx.cert_cache {
                Some(c) => c.parse(der)?,
                None => X509::from_der(der).map_err(CmsError::from)?,
            });
        }
    }
    let chain = trust.verify(&cert, &presented, ctx.now)?;
    let device = Arc::new(VerifiedDevice {
        fingerprint: openssl::sha::sha256(signer_der),
        mac: certs::mac::device_mac(&cert).ok(),
        public_key_hash: Sha1::digest(spki.subject_public_key.as_raw_slice()).into(),
        // The parsed certificate's key, not the one built for the first
        // check: OpenSSL keeps a legacy-built key twice (≈ 0.75 KB more per
        // cache entry).
        public_key: cert.public_key().map_err(CmsError::from)?,
        issuer_and_serial: reply::issuer_and_serial(signer_der)?,
        manufacturer: chain.manufacturer,
        valid_from: chain.valid_from,
        valid_until: chain.valid_until,
    });
    if let Some(c) = ctx.cert_cache {
        c.insert_device(trust, device.clone());
    }
    Ok(device)
}

fn check_time(
    cusec: &rasn::types::Integer,
    ctime: &msg::KerberosTime,
    ctx: &RequestContext<'_>,
) -> Result<(), PkinitError> {
    let usec_ok = i64::try_from(cusec).is_ok_and(|u| (0..=999_999).contains(&u));
    if !usec_ok {
        return Err(PkinitError::MalformedAuthPack("cusec out of range".into()));
    }
    if (time::to_unix(ctime) - ctx.now).abs() > ctx.skew {
        return Err(PkinitError::Skew);
    }
    Ok(())
}

fn check_nonce(n: &rasn::types::Integer, ctx: &RequestContext<'_>) -> Result<u32, PkinitError> {
    let nonce =
        nonce_u32(n).ok_or_else(|| PkinitError::MalformedAuthPack("nonce out of range".into()))?;
    // Devices set the PKAuthenticator nonce to the request nonce (Heimdal's
    // PacketCable client did; RFC 4556 requires it).
    if nonce != ctx.body_nonce {
        return Err(PkinitError::NonceMismatch);
    }
    Ok(nonce)
}

fn check_auth_pack_19(
    der: &[u8],
    ctx: &RequestContext<'_>,
) -> Result<(u32, KeyDelivery), PkinitError> {
    if request::is_draft9_auth_pack(der) {
        return Err(RequestError::Draft9.into());
    }
    let pack: AuthPack19 =
        msg::decode("AuthPack", der).map_err(|e| PkinitError::MalformedAuthPack(e.to_string()))?;
    let a = &pack.pk_authenticator;
    check_time(&a.cusec, &a.ctime, ctx)?;
    let ctype = ChecksumType::from_i32(a.pa_checksum.r#type)
        .filter(|c| !c.is_keyed())
        .ok_or(PkinitError::ChecksumType(a.pa_checksum.r#type))?;
    verify_unkeyed_checksum(ctype, ctx.req_body, &a.pa_checksum.checksum)
        .map_err(|_| PkinitError::ChecksumMismatch)?;
    let nonce = check_nonce(&a.nonce, ctx)?;
    if pack.client_public_value.is_some() {
        return Err(PkinitError::PacketCableDh);
    }
    Ok((nonce, KeyDelivery::Rsa))
}

fn check_auth_pack(
    der: &[u8],
    ctx: &RequestContext<'_>,
) -> Result<(u32, KeyDelivery), PkinitError> {
    let pack: AuthPack =
        msg::decode("AuthPack", der).map_err(|e| PkinitError::MalformedAuthPack(e.to_string()))?;
    let a = &pack.pk_authenticator;
    check_time(&a.cusec, &a.ctime, ctx)?;
    let sum = a.pa_checksum.as_ref().ok_or(PkinitError::ChecksumMissing)?;
    let expect = Sha1::digest(ctx.req_body);
    if sum.len() != expect.len() || !bool::from(expect.as_slice().ct_eq(sum)) {
        return Err(PkinitError::ChecksumMismatch);
    }
    let nonce = check_nonce(&a.nonce, ctx)?;
    // A freshness token (RFC 8070) is accepted; we do not offer one, so there is nothing to match.
    let delivery = match pack.client_public_value {
        None => KeyDelivery::Rsa,
        Some(spki) => {
            let min = ctx.dh_min_bits;
            let client_public = dh::parse_client_public(&spki).map_err(|e| dh_error(e, min))?;
            client_public
                .check_min_bits(min)
                .map_err(|e| dh_error(e, min))?;
            let kdf =
                dh::select_kdf(pack.supported_kdfs.as_deref()).map_err(|e| dh_error(e, min))?;
            KeyDelivery::Dh(Box::new(DhRequest {
                client_public,
                client_dh_nonce: pack.client_dh_nonce.map(|n| n.to_vec()),
                kdf,
            }))
        }
    };
    Ok((nonce, delivery))
}
