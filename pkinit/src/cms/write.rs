//! Writing CMS: SignedData and EnvelopedData through OpenSSL, for the
//! client side (requests) and tests.

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use rasn::types::Oid;

use super::CmsError;

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
