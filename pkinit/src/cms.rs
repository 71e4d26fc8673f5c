//! CMS SignedData and EnvelopedData for PKINIT, on OpenSSL.
//!
//! Reading: rasn-cms finds the parts (eContentType, eContent, the signer's
//! certificate) and OpenSSL checks the signature. Chain validation is not
//! done here: it is the trust store's job, with the certificates returned.
//!
//! Writing: OpenSSL's CMS_sign/CMS_encrypt, with our eContentType set
//! through three functions the openssl crate does not wrap (see `ffi`).

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use rasn::types::{ObjectIdentifier, Oid};
use rasn_cms::{CertificateChoices, ContentInfo, SignedData, SignerIdentifier};

/// Why CMS content was refused.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    #[error("malformed CMS: {0}")]
    Malformed(String),
    #[error("CMS signature does not verify: {0}")]
    BadSignature(String),
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

/// Parsed certificates by SHA-256 of their DER: the intermediates every
/// device sends (its manufacturer CA) are parsed once, not per request.
/// Bounded: cleared when full.
pub struct CertCache {
    map: std::sync::Mutex<std::collections::HashMap<[u8; 32], X509>>,
    capacity: usize,
}

impl CertCache {
    pub fn new(capacity: usize) -> CertCache {
        CertCache {
            map: std::sync::Mutex::new(std::collections::HashMap::new()),
            capacity,
        }
    }

    fn parse(&self, der: &[u8]) -> Result<X509, CmsError> {
        let key: [u8; 32] = openssl::sha::sha256(der);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(x) = map.get(&key) {
            return Ok(x.clone());
        }
        let x = X509::from_der(der)?;
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, x.clone());
        Ok(x)
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
    let ci: ContentInfo = krb::msg::decode("ContentInfo", content_info).map_err(malformed)?;
    if *ci.content_type != *crate::asn1::oid::SIGNED_DATA {
        return Err(malformed("not a SignedData"));
    }
    let sd: SignedData =
        krb::msg::decode("SignedData", ci.content.as_bytes()).map_err(malformed)?;
    let econtent = sd
        .encap_content_info
        .content
        .as_ref()
        .ok_or_else(|| malformed("detached content"))?
        .to_vec();
    let si = sd.signer_infos.to_vec();
    let [signer_info] = si.as_slice() else {
        return Err(malformed(format!("{} signer infos (want 1)", si.len())));
    };
    let mut certificates = Vec::new();
    let mut signer = None;
    for c in sd.certificates.iter().flat_map(|s| s.to_vec()) {
        let CertificateChoices::Certificate(cert) = c else {
            continue;
        };
        let der = rasn::der::encode(cert.as_ref()).map_err(malformed)?;
        let is_signer = signer.is_none() && is_signer(&signer_info.sid, cert);
        let x = match cache {
            Some(cache) if !is_signer => cache.parse(&der)?,
            _ => X509::from_der(&der)?,
        };
        if is_signer {
            signer = Some(x.clone());
        }
        certificates.push(x);
    }
    let signer = signer.ok_or(CmsError::NoSignerCertificate)?;
    crate::signer::verify(
        ci.content.as_bytes(),
        signer_info,
        &econtent,
        &sd.encap_content_info.content_type,
        &signer,
    )?;
    Ok(SignedContent {
        econtent_type: sd.encap_content_info.content_type.clone(),
        econtent,
        signer,
        certificates,
        digest_oid: signer_info.digest_algorithm.algorithm.clone(),
        has_signed_attributes: signer_info.signed_attrs.is_some(),
    })
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

/// How to sign.
pub struct SignOptions<'a> {
    /// None: OpenSSL's default for the key (SHA-256 for RSA).
    pub digest: Option<MessageDigest>,
    /// RFC 5652 wants signed attributes when the content is not id-data;
    /// PacketCable devices send none.
    pub signed_attributes: bool,
    /// Certificates to include besides the signer's.
    pub extra_certs: &'a [X509],
}

/// Signs `content` as a SignedData with eContentType `econtent_type`;
/// returns the DER ContentInfo.
pub fn sign(
    econtent_type: &Oid,
    content: &[u8],
    cert: &X509,
    key: &PKey<Private>,
    opts: &SignOptions<'_>,
) -> Result<Vec<u8>, CmsError> {
    let mut stack = Stack::new()?;
    let signer_der = cert.to_der()?;
    for c in opts.extra_certs {
        // A chain file often starts with the signer itself; CMS refuses duplicates.
        if c.to_der()? != signer_der {
            stack.push(c.clone())?;
        }
    }
    let mut flags = CMSOptions::PARTIAL | CMSOptions::BINARY | CMSOptions::NOSMIMECAP;
    if !opts.signed_attributes {
        flags |= CMSOptions::NOATTR;
    }
    let mut cms = match opts.digest {
        None => CmsContentInfo::sign(Some(cert), Some(key), Some(&stack), None, flags)?,
        Some(md) => {
            // A signer with a chosen digest needs CMS_add1_signer on a partial structure.
            let mut cms = CmsContentInfo::sign::<Private>(None, None, Some(&stack), None, flags)?;
            ffi::add_signer(&mut cms, cert, key, md, flags)?;
            cms
        }
    };
    ffi::set_econtent_type(&mut cms, econtent_type)?;
    ffi::finalize(&mut cms, content, flags)?;
    Ok(cms.to_der()?)
}

/// Encrypts `content` (of type `inner_type`) to one RSA recipient
/// (key transport, issuerAndSerialNumber); returns the DER ContentInfo.
pub fn envelope(
    inner_type: &Oid,
    content: &[u8],
    recipient: &X509,
    cipher: Cipher,
) -> Result<Vec<u8>, CmsError> {
    let mut stack = Stack::new()?;
    stack.push(recipient.clone())?;
    let flags = CMSOptions::PARTIAL | CMSOptions::BINARY;
    let mut cms = CmsContentInfo::encrypt(&stack, &[], cipher, flags)?;
    ffi::set_econtent_type(&mut cms, inner_type)?;
    ffi::finalize(&mut cms, content, flags)?;
    Ok(cms.to_der()?)
}

/// Decrypts an EnvelopedData with the recipient's key (client side).
pub fn open_envelope(
    content_info: &[u8],
    cert: &X509,
    key: &PKey<Private>,
) -> Result<Vec<u8>, CmsError> {
    let cms = CmsContentInfo::from_der(content_info)?;
    Ok(cms.decrypt(key, cert)?)
}

/// The openssl crate wraps CMS_sign/encrypt/verify but not these; they link
/// because openssl-sys already links libcrypto (shared STACK.md §4.1).
#[allow(unsafe_code)]
mod ffi {
    use std::os::raw::{c_int, c_uint};

    use foreign_types::{ForeignType, ForeignTypeRef};
    use openssl::asn1::Asn1Object;
    use openssl::cms::{CMSOptions, CmsContentInfoRef};
    use openssl::error::ErrorStack;
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::x509::X509;
    use openssl_sys as sys;
    use rasn::types::Oid;

    unsafe extern "C" {
        fn CMS_set1_eContentType(
            cms: *mut sys::CMS_ContentInfo,
            oid: *const sys::ASN1_OBJECT,
        ) -> c_int;
        fn CMS_final(
            cms: *mut sys::CMS_ContentInfo,
            data: *mut sys::BIO,
            dcont: *mut sys::BIO,
            flags: c_uint,
        ) -> c_int;
        fn CMS_add1_signer(
            cms: *mut sys::CMS_ContentInfo,
            signer: *mut sys::X509,
            pk: *mut sys::EVP_PKEY,
            md: *const sys::EVP_MD,
            flags: c_uint,
        ) -> *mut std::ffi::c_void;
    }

    fn oid_object(oid: &Oid) -> Result<Asn1Object, ErrorStack> {
        let text: Vec<String> = oid.iter().map(|a| a.to_string()).collect();
        Asn1Object::from_str(&text.join("."))
    }

    pub fn set_econtent_type(cms: &mut CmsContentInfoRef, oid: &Oid) -> Result<(), ErrorStack> {
        let obj = oid_object(oid)?;
        // SAFETY: both pointers are valid for the call; OpenSSL copies the object (set1).
        let ok = unsafe { CMS_set1_eContentType(cms.as_ptr(), obj.as_ptr()) };
        if ok == 1 {
            Ok(())
        } else {
            Err(ErrorStack::get())
        }
    }

    pub fn finalize(
        cms: &mut CmsContentInfoRef,
        content: &[u8],
        flags: CMSOptions,
    ) -> Result<(), ErrorStack> {
        let len = c_int::try_from(content.len()).map_err(|_| ErrorStack::get())?;
        // SAFETY: a read-only memory BIO over `content`, which outlives it; freed below.
        let bio = unsafe { sys::BIO_new_mem_buf(content.as_ptr().cast(), len) };
        if bio.is_null() {
            return Err(ErrorStack::get());
        }
        // SAFETY: cms and bio are valid; dcont may be null; OpenSSL does not keep the BIO.
        let ok = unsafe { CMS_final(cms.as_ptr(), bio, std::ptr::null_mut(), flags.bits()) };
        // SAFETY: bio came from BIO_new_mem_buf and is not used after this.
        unsafe { sys::BIO_free_all(bio) };
        if ok == 1 {
            Ok(())
        } else {
            Err(ErrorStack::get())
        }
    }

    pub fn add_signer(
        cms: &mut CmsContentInfoRef,
        cert: &X509,
        key: &PKey<Private>,
        md: MessageDigest,
        flags: CMSOptions,
    ) -> Result<(), ErrorStack> {
        // SAFETY: all pointers valid; CMS_add1_signer takes its own references
        // (X509_up_ref / EVP_PKEY_up_ref) and returns a pointer into `cms`.
        let si = unsafe {
            CMS_add1_signer(
                cms.as_ptr(),
                cert.as_ptr(),
                key.as_ptr(),
                md.as_ptr(),
                flags.bits(),
            )
        };
        if si.is_null() {
            Err(ErrorStack::get())
        } else {
            Ok(())
        }
    }
}
