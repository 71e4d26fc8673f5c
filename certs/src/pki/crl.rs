//! Certificate revocation lists signed by a generated CA.

use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::x509::extension::CrlNumber;
use openssl::x509::{
    X509Crl, X509CrlBuilder, X509CrlRef, X509Extension, X509Ref, X509RevokedBuilder,
};

use super::{DAY, Digest, Issued, PkiError};

/// Times and number of a CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlSpec {
    pub this_update: i64,
    pub next_update: i64,
    pub number: u64,
    pub digest: Digest,
}

impl CrlSpec {
    /// Issued an hour ago, next update in 30 days.
    pub fn current() -> Self {
        let now = crate::time::now();
        CrlSpec {
            this_update: now - 3600,
            next_update: now + 30 * DAY,
            number: 1,
            digest: Digest::Sha256,
        }
    }
    /// Issued 60 days ago, next update was due 30 days ago.
    pub fn expired() -> Self {
        let now = crate::time::now();
        CrlSpec {
            this_update: now - 60 * DAY,
            next_update: now - 30 * DAY,
            number: 1,
            digest: Digest::Sha256,
        }
    }
}

/// A v2 CRL signed by `issuer`, listing `revoked` certificates with their
/// revocation times (Unix seconds). It carries authorityKeyIdentifier (the
/// issuer's SKI) and cRLNumber. Serialize with `to_pem()` / `to_der()`.
pub fn crl(
    issuer: &Issued,
    revoked: &[(&X509Ref, i64)],
    spec: CrlSpec,
) -> Result<X509Crl, PkiError> {
    let mut serials = Vec::with_capacity(revoked.len());
    for (cert, at) in revoked {
        serials.push((cert.serial_number().to_bn()?, *at));
    }
    crl_of_serials(issuer, &serials, spec)
}

/// The revoked serial numbers of `crl` with their revocation times, to
/// carry them over into the CA's next CRL.
pub fn revoked_serials(crl: &X509CrlRef) -> Result<Vec<(BigNum, i64)>, PkiError> {
    let mut out = Vec::new();
    for r in crl.get_revoked().into_iter().flatten() {
        let at = crate::time::unix(r.revocation_date())?;
        out.push((r.serial_number().to_bn()?, at));
    }
    Ok(out)
}

/// The cRLNumber of `crl`, when it has one that fits 64 bits.
pub fn crl_number(crl: &X509CrlRef) -> Option<u64> {
    let der = crl.to_der().ok()?;
    let (_, parsed) = x509_parser::parse_x509_crl(&der).ok()?;
    match parsed.crl_number()?.to_u64_digits().as_slice() {
        [] => Some(0),
        [n] => Some(*n),
        _ => None,
    }
}

/// As [`crl`], listing serial numbers (of certificates one may no longer
/// have) with their revocation times.
pub fn crl_of_serials(
    issuer: &Issued,
    revoked: &[(BigNum, i64)],
    spec: CrlSpec,
) -> Result<X509Crl, PkiError> {
    let mut b = X509CrlBuilder::new()?;
    b.set_issuer_name(issuer.cert.subject_name())?;
    let (this_update, next_update) = (
        Asn1Time::from_unix(spec.this_update)?,
        Asn1Time::from_unix(spec.next_update)?,
    );
    b.set_last_update(&this_update)?;
    b.set_next_update(&next_update)?;
    for (serial, at) in revoked {
        let mut r = X509RevokedBuilder::new()?;
        let serial = serial.to_asn1_integer()?;
        r.set_serial_number(&serial)?;
        let at = Asn1Time::from_unix(*at)?;
        r.set_revocation_date(&at)?;
        b.add_revoked(r.build())?;
    }
    b.sort()?;
    b.append_extension(crl_aki(&issuer.cert)?)?;
    b.append_extension(CrlNumber::new(BigNum::from_dec_str(&spec.number.to_string())?)?.build()?)?;
    b.sign(&issuer.key, spec.digest.md())?;
    Ok(b.build()?)
}

/// authorityKeyIdentifier { keyIdentifier = issuer SKI } built as DER with
/// rasn-pkix: the openssl crate's AKI builder needs an X509 builder context.
fn crl_aki(issuer: &X509Ref) -> Result<X509Extension, PkiError> {
    let ski = issuer
        .subject_key_id()
        .ok_or_else(|| PkiError::Asn1("CRL issuer has no subjectKeyIdentifier".into()))?;
    let aki = rasn_pkix::AuthorityKeyIdentifier {
        key_identifier: Some(ski.as_slice().to_vec().into()),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let der = rasn::der::encode(&aki).map_err(|e| PkiError::Asn1(e.to_string()))?;
    let oid = Asn1Object::from_str("2.5.29.35")?;
    let value = Asn1OctetString::new_from_bytes(&der)?;
    Ok(X509Extension::new_from_der(&oid, false, &value)?)
}

/// cRLDistributionPoints with one fullName URI per URL, built as DER with
/// rasn-pkix (the openssl crate has no builder for it).
pub(super) fn distribution_points(urls: &[String]) -> Result<X509Extension, PkiError> {
    use rasn_pkix::{DistributionPoint, DistributionPointName, GeneralName};
    let mut points: Vec<DistributionPoint> = Vec::with_capacity(urls.len());
    for u in urls {
        let uri = rasn::types::Ia5String::try_from(u.as_str())
            .map_err(|e| PkiError::Asn1(format!("CRL URL {u:?}: {e}")))?;
        points.push(DistributionPoint {
            distribution_point: Some(DistributionPointName::FullName(vec![GeneralName::Uri(uri)])),
            reasons: None,
            crl_issuer: None,
        });
    }
    let der = rasn::der::encode(&points).map_err(|e| PkiError::Asn1(e.to_string()))?;
    let oid = Asn1Object::from_str("2.5.29.31")?;
    let value = Asn1OctetString::new_from_bytes(&der)?;
    Ok(X509Extension::new_from_der(&oid, false, &value)?)
}
