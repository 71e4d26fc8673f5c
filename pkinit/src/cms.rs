//! CMS SignedData and EnvelopedData for PKINIT, on OpenSSL.
//!
//! Reading: rasn-cms finds the parts (eContentType, eContent, the signer's
//! certificate) and OpenSSL checks the signature. Chain validation is not
//! done here: it is the trust store's job, with the certificates returned.
//!
//! Writing: OpenSSL's CMS_sign/CMS_encrypt, with our eContentType set
//! through three functions the openssl crate does not wrap (see `ffi`).
//! The client side (requests) and tests use these; the KDC's replies are
//! built around a single signature in [`crate::reply`].

use openssl::pkey::{PKeyRef, Public};
use openssl::x509::X509;
use rasn::types::{ObjectIdentifier, Oid};
use rasn_cms::{CertificateChoices, EncapsulatedContentInfo, SignerIdentifier, SignerInfo};

/// Why CMS content was refused.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    #[error("malformed CMS: {0}")]
    Malformed(String),
    #[error("CMS signature does not verify: {0}")]
    BadSignature(String),
    /// The SignerInfo's digest or signature algorithm is not accepted.
    #[error("{0}")]
    DigestNotAccepted(String),
    /// The signer's public key is not accepted (type, size, exponent, curve).
    #[error("signer key not accepted: {0}")]
    KeyNotAccepted(String),
    #[error("signer certificate not found in SignedData")]
    NoSignerCertificate,
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

fn malformed(e: impl std::fmt::Display) -> CmsError {
    CmsError::Malformed(e.to_string())
}

/// The content of a SignedData whose signature verified.
pub struct SignedContent {
    pub econtent_type: ObjectIdentifier,
    pub econtent: Vec<u8>,
    /// The signer's certificate.
    pub signer: X509,
    /// Every certificate the SignedData carried (signer included).
    pub certificates: Vec<X509>,
    /// The digest algorithm the signer used (for policy and audit).
    pub digest_oid: ObjectIdentifier,
    pub has_signed_attributes: bool,
}

pub use crate::cache::CertCache;

/// Checks the signature of a ContentInfo(SignedData) and returns its content.
pub fn verify_signed(content_info: &[u8]) -> Result<SignedContent, CmsError> {
    verify_signed_with(content_info, None)
}

/// As [`verify_signed`]; certificates other than the signer's come from
/// `cache` when given. The signer's own certificate is always parsed fresh.
pub fn verify_signed_with(
    content_info: &[u8],
    cache: Option<&CertCache>,
) -> Result<SignedContent, CmsError> {
    let parts = read_signed(content_info)?;
    let signer_index = parts.signer()?;
    let mut certificates = Vec::new();
    let mut signer = None;
    for (i, der) in parts.cert_ders()? {
        let is_signer = signer_index == Some(i);
        let x = match cache {
            Some(cache) if !is_signer => cache.parse(der)?,
            _ => X509::from_der(der)?,
        };
        if is_signer {
            signer = Some(x.clone());
        }
        certificates.push(x);
    }
    let signer = signer.ok_or(CmsError::NoSignerCertificate)?;
    let algs = parts.algorithms()?;
    parts.verify(&algs, &*signer.public_key()?)?;
    Ok(SignedContent {
        econtent_type: parts.econtent_type().clone(),
        econtent: parts.econtent().to_vec(),
        signer,
        certificates,
        digest_oid: parts.signer_info().digest_algorithm.algorithm.clone(),
        has_signed_attributes: parts.signer_info().signed_attrs.is_some(),
    })
}

/// A ContentInfo(SignedData) read with rasn, before any signature check:
/// its only SignerInfo, its content, and the exact DER of each certificate
/// it carries, the signer's found by its SignerIdentifier.
pub(crate) struct SignedParts<'a> {
    encap: EncapsulatedContentInfo,
    signer_info: SignerInfo,
    /// The SignerInfo, exactly as encoded.
    signer_info_der: &'a [u8],
    /// The SignerInfo's sid, exactly as encoded.
    sid_der: &'a [u8],
    /// Each element of `certificates`, as sent (any CHOICE).
    cert_elements: Vec<&'a [u8]>,
    /// The certificates decoded, on first use (not needed when the device
    /// cache knows the signer).
    decoded: std::cell::OnceCell<Vec<CertificateChoices>>,
}

/// The signer's certificate: index, exact DER, decoding.
pub(crate) type SignerCert<'a, 'b> = (usize, &'a [u8], &'b rasn_pkix::Certificate);

fn raw_fields(seq: &[u8]) -> Result<Vec<krb::msg::raw::Tlv<'_>>, CmsError> {
    let (outer, rest) = krb::msg::raw::read_tlv(seq).map_err(malformed)?;
    if !rest.is_empty() {
        return Err(malformed("trailing bytes"));
    }
    raw_elements(outer.content)
}

fn raw_elements(mut inner: &[u8]) -> Result<Vec<krb::msg::raw::Tlv<'_>>, CmsError> {
    let mut fields = Vec::new();
    while !inner.is_empty() {
        let (f, r) = krb::msg::raw::read_tlv(inner).map_err(malformed)?;
        fields.push(f);
        inner = r;
    }
    Ok(fields)
}

/// Reads a DER ContentInfo(SignedData) with exactly one SignerInfo. The
/// certificates are only split (their exact DER kept); they are decoded
/// when first asked for.
pub(crate) fn read_signed(content_info: &[u8]) -> Result<SignedParts<'_>, CmsError> {
    let ci = raw_fields(content_info)?;
    let (Some(ty), Some(explicit)) = (ci.first(), ci.get(1)) else {
        return Err(malformed("ContentInfo needs contentType and content"));
    };
    let ty: ObjectIdentifier = krb::msg::decode("ContentInfo", ty.whole).map_err(malformed)?;
    if *ty != *crate::asn1::oid::SIGNED_DATA {
        return Err(malformed("not a SignedData"));
    }
    if explicit.tag != 0xa0 || ci.len() != 2 {
        return Err(malformed("ContentInfo content is not [0] EXPLICIT"));
    }
    let (sd_tlv, rest) = krb::msg::raw::read_tlv(explicit.content).map_err(malformed)?;
    if !rest.is_empty() || sd_tlv.tag != 0x30 {
        return Err(malformed("ContentInfo content is not one SignedData"));
    }
    let signed_data = sd_tlv.whole;
    // SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
    //   certificates [0] IMPLICIT OPTIONAL, crls [1] IMPLICIT OPTIONAL, signerInfos SET }
    let fields = raw_fields(signed_data)?;
    let tags: Vec<u8> = fields.iter().map(|f| f.tag).collect();
    let (certs, crls) = match tags.as_slice() {
        [0x02, 0x31, 0x30, 0x31] => (None, None),
        [0x02, 0x31, 0x30, 0xa0, 0x31] => (Some(&fields[3]), None),
        [0x02, 0x31, 0x30, 0xa1, 0x31] => (None, Some(&fields[3])),
        [0x02, 0x31, 0x30, 0xa0, 0xa1, 0x31] => (Some(&fields[3]), Some(&fields[4])),
        _ => return Err(malformed("SignedData fields")),
    };
    let _: rasn_cms::CmsVersion =
        krb::msg::decode("SignedData", fields[0].whole).map_err(malformed)?;
    let _: rasn_cms::DigestAlgorithmIdentifiers =
        krb::msg::decode("SignedData", fields[1].whole).map_err(malformed)?;
    let encap: EncapsulatedContentInfo =
        krb::msg::decode("SignedData", fields[2].whole).map_err(malformed)?;
    if encap.content.is_none() {
        return Err(malformed("detached content"));
    }
    if let Some(crls) = crls {
        // Not used; checked as the rest is.
        let _: rasn_cms::RevocationInfoChoices =
            krb::msg::decode("SignedData", &krb::msg::raw::tlv(0x31, crls.content))
                .map_err(malformed)?;
    }
    let infos = fields[fields.len() - 1];
    let raw_infos = raw_elements(infos.content)?;
    let [info] = raw_infos.as_slice() else {
        return Err(malformed(format!(
            "{} signer infos (want 1)",
            raw_infos.len()
        )));
    };
    let signer_info: SignerInfo = krb::msg::decode("SignedData", info.whole).map_err(malformed)?;
    let sid_der = raw_fields(info.whole)?
        .get(1)
        .map(|t| t.whole)
        .ok_or_else(|| malformed("SignerInfo without sid"))?;
    let cert_elements = match certs {
        Some(set) => raw_elements(set.content)?.iter().map(|t| t.whole).collect(),
        None => Vec::new(),
    };
    Ok(SignedParts {
        encap,
        signer_info,
        signer_info_der: info.whole,
        sid_der,
        cert_elements,
        decoded: std::cell::OnceCell::new(),
    })
}

impl<'a> SignedParts<'a> {
    pub(crate) fn signer_info(&self) -> &SignerInfo {
        &self.signer_info
    }

    pub(crate) fn econtent(&self) -> &[u8] {
        self.encap.content.as_deref().unwrap_or_default()
    }

    pub(crate) fn econtent_type(&self) -> &ObjectIdentifier {
        &self.encap.content_type
    }

    fn decoded(&self) -> Result<&[CertificateChoices], CmsError> {
        if let Some(d) = self.decoded.get() {
            return Ok(d);
        }
        let mut d = Vec::with_capacity(self.cert_elements.len());
        for der in &self.cert_elements {
            d.push(krb::msg::decode("SignedData", der).map_err(malformed)?);
        }
        Ok(self.decoded.get_or_init(|| d))
    }

    /// The X.509 certificates (index, decoded), other CHOICEs skipped.
    pub(crate) fn certs(
        &self,
    ) -> Result<impl Iterator<Item = (usize, &rasn_pkix::Certificate)>, CmsError> {
        Ok(self
            .decoded()?
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                CertificateChoices::Certificate(cert) => Some((i, cert.as_ref())),
                _ => None,
            }))
    }

    /// The exact DER of each X.509 certificate (index, bytes).
    pub(crate) fn cert_ders(
        &self,
    ) -> Result<impl Iterator<Item = (usize, &'a [u8])> + '_, CmsError> {
        Ok(self.certs()?.map(|(i, _)| (i, self.cert_elements[i])))
    }

    /// Index of the signer's certificate: the first whose identifiers match
    /// the SignerInfo's sid.
    pub(crate) fn signer(&self) -> Result<Option<usize>, CmsError> {
        let sid = &self.signer_info.sid;
        Ok(self
            .certs()?
            .find(|(_, cert)| is_signer(sid, cert))
            .map(|(i, _)| i))
    }

    /// The signer's certificate: its index, exact DER and decoding.
    pub(crate) fn signer_cert(&self) -> Result<Option<SignerCert<'a, '_>>, CmsError> {
        let Some(i) = self.signer()? else {
            return Ok(None);
        };
        Ok(self
            .certs()?
            .find(|(j, _)| *j == i)
            .map(|(_, c)| (i, self.cert_elements[i], c)))
    }

    /// The exact DER of the signer's certificate: found by the sid's bytes
    /// when it is an issuerAndSerialNumber, else (subjectKeyIdentifier) by
    /// decoding the certificates.
    pub(crate) fn signer_der(&self) -> Option<&'a [u8]> {
        self.signer_der_by_bytes()
            .or_else(|| self.signer_cert().ok().flatten().map(|(_, der, _)| der))
    }

    /// Without decoding anything: the exact DER of the first certificate
    /// whose issuer and serial number are byte for byte the sid's (None for
    /// a subjectKeyIdentifier sid, or when no certificate matches so).
    pub(crate) fn signer_der_by_bytes(&self) -> Option<&'a [u8]> {
        let (sid, _) = krb::msg::raw::read_tlv(self.sid_der).ok()?;
        if sid.tag != 0x30 {
            return None;
        }
        self.cert_elements.iter().copied().find(|der| {
            crate::reply::issuer_and_serial_parts(der)
                .is_ok_and(|(issuer, serial)| sid.content == [issuer, serial].concat())
        })
    }

    /// The SignerInfo's digest and signature algorithms, if policy takes
    /// them (no public-key work).
    pub(crate) fn algorithms(&self) -> Result<crate::signer::Algorithms, CmsError> {
        crate::signer::algorithms(self.signer_info())
    }

    /// Checks the SignerInfo with the signer's public key.
    pub(crate) fn verify(
        &self,
        algs: &crate::signer::Algorithms,
        key: &PKeyRef<Public>,
    ) -> Result<(), CmsError> {
        crate::signer::verify(
            self.signer_info_der,
            self.signer_info(),
            algs,
            self.econtent(),
            self.econtent_type(),
            key,
        )
    }
}

fn is_signer(sid: &SignerIdentifier, cert: &rasn_pkix::Certificate) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.serial_number == cert.tbs_certificate.serial_number
                && ias.issuer == cert.tbs_certificate.issuer
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => cert
            .tbs_certificate
            .extensions
            .iter()
            .flat_map(|exts| exts.iter())
            .filter(|e| *e.extn_id == *SUBJECT_KEY_ID)
            .any(|e| {
                rasn::der::decode::<rasn::types::OctetString>(&e.extn_value)
                    .is_ok_and(|v| v == *ski)
            }),
    }
}

const SUBJECT_KEY_ID: &Oid = Oid::const_new(&[2, 5, 29, 14]);

#[cfg(feature = "client")]
mod write;
#[cfg(feature = "client")]
pub use write::{SignOptions, envelope, open_envelope, sign};
