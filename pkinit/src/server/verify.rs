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
/// Cheap refusals come first: the SignerInfo's algorithms, then (for a
/// certificate not in the cache) the signer's key type and size, its
/// keyUsage and its chain, checked against the trust store's own CAs;
/// only then the request's signature, whose cost the request's key sets.
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
    let algs = parts.algorithms()?;
    // A device seen before: its certificate is found by the sid's bytes
    // (issuerAndSerialNumber: nothing is decoded) and its digest.
    let cached = ctx.cert_cache.and_then(|c| {
        let der = parts.signer_der()?;
        c.device(trust, &openssl::sha::sha256(der), ctx.now)
    });
    let device = match cached {
        Some(device) => {
            parts.verify(&algs, &device.public_key)?;
            check_content_type(&parts)?;
            device
        }
        None => verify_new_device(&parts, &algs, ctx, trust)?,
    };
    let econtent = parts.econtent();
    let (nonce, delivery) = match signed.form {
        Form::PacketCable => check_auth_pack_19(econtent, ctx)?,
        Form::Rfc4556 => check_auth_pack(econtent, ctx)?,
    };
    if matches!(delivery, KeyDelivery::Rsa) && device.public_key.id() != openssl::pkey::Id::RSA {
        return Err(PkinitError::KeyTransportNeedsRsa);
    }
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

/// The signer of a request whose certificate the cache does not hold: key
/// policy and keyUsage (no public-key work), the chain (one check per
/// certificate with a CA key from the trust store), then the request's
/// signature and content type; a success is remembered in the cache.
fn verify_new_device(
    parts: &cms::SignedParts<'_>,
    algs: &crate::signer::Algorithms,
    ctx: &RequestContext<'_>,
    trust: &TrustStore,
) -> Result<Arc<VerifiedDevice>, PkinitError> {
    let (signer_index, signer_der, signer_cert) =
        parts.signer_cert()?.ok_or(CmsError::NoSignerCertificate)?;
    let spki = &signer_cert.tbs_certificate.subject_public_key_info;
    crate::signer::check_key(spki)?;
    if !crate::signer::allows_digital_signature(signer_cert) {
        return Err(PkinitError::KeyUsage);
    }
    // The issuer and its signature on the certificate, from the DER, before
    // OpenSSL parses anything: a self-made certificate ends here.
    trust.check_issuer_signature(signer_der, ctx.now)?;
    let cert = X509::from_der(signer_der).map_err(CmsError::from)?;
    // Certificates the device sends along count only for a store that
    // takes intermediates from peers (the KDC's does not: its directory is
    // the manufacturer allowlist), so they are not even parsed otherwise.
    let mut presented = Vec::new();
    if trust.takes_peer_intermediates() {
        for (i, der) in parts.cert_ders()? {
            if i != signer_index && der != signer_der {
                presented.push(match ctx.cert_cache {
                    Some(c) => c.parse(der)?,
                    None => X509::from_der(der).map_err(CmsError::from)?,
                });
            }
        }
    }
    let chain = trust.verify(&cert, &presented, ctx.now)?;
    let public_key = cert.public_key().map_err(CmsError::from)?;
    parts.verify(algs, &public_key)?;
    check_content_type(parts)?;
    let device = Arc::new(VerifiedDevice {
        fingerprint: openssl::sha::sha256(signer_der),
        mac: certs::mac::device_mac(&cert).ok(),
        public_key_hash: Sha1::digest(spki.subject_public_key.as_raw_slice()).into(),
        public_key,
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

/// The PKAuthenticator nonce, echoed in the reply. It need not equal the
/// KDC-REQ-BODY nonce, in either form: RFC 4556 §3.2.1 says of it "Chosen
/// randomly; this nonce does not need to match with the nonce in the
/// KDC-REQ-BODY" (paChecksum already binds the body), and no PacketCable
/// source asks for equality in the -19 form (shared PROTOCOL.md §1.3).
fn read_nonce(n: &rasn::types::Integer) -> Result<u32, PkinitError> {
    nonce_u32(n).ok_or_else(|| PkinitError::MalformedAuthPack("nonce out of range".into()))
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
    let nonce = read_nonce(&a.nonce)?;
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
    let nonce = read_nonce(&a.nonce)?;
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
