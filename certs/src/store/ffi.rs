//! The libcrypto calls the openssl crate lacks: `X509_STORE_add_crl`, and
//! `X509_CRL_up_ref` (`X509Crl` is not `Clone`, and each store generation
//! shares the parsed CRLs of the one before instead of parsing them again).
//!
//! Without it a CRL reaches an `X509Store` only through a file lookup, which
//! would re-read the trust directory every time a TLS context is built and
//! could pick up a file newer than the store's generation.

#![allow(unsafe_code)]

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::error::ErrorStack;
use openssl::x509::store::X509StoreBuilderRef;
use openssl::x509::{X509Crl, X509CrlRef};

unsafe extern "C" {
    fn X509_STORE_add_crl(
        store: *mut openssl_sys::X509_STORE,
        crl: *mut openssl_sys::X509_CRL,
    ) -> std::ffi::c_int;
}

/// Adds `crl` to the store; the store takes its own reference.
pub(super) fn add_crl(store: &mut X509StoreBuilderRef, crl: &X509CrlRef) -> Result<(), ErrorStack> {
    // SAFETY: both pointers come from live openssl-crate wrappers borrowed
    // for the call; X509_STORE_add_crl up-refs the CRL and never frees it.
    let ok = unsafe { X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// Another owning handle to the same CRL (a reference count, no copy).
pub(super) fn share_crl(crl: &X509CrlRef) -> X509Crl {
    // SAFETY: the pointer comes from a live CRL borrowed for the call;
    // X509_CRL_up_ref only increments its reference count (it cannot fail
    // for a valid object), and the new X509Crl owns that extra reference,
    // which it releases with X509_CRL_free on drop.
    unsafe {
        openssl_sys::X509_CRL_up_ref(crl.as_ptr());
        X509Crl::from_ptr(crl.as_ptr())
    }
}

unsafe extern "C" {
    fn X509_STORE_set_verify_cb(
        store: *mut openssl_sys::X509_STORE,
        cb: Option<
            unsafe extern "C" fn(
                std::ffi::c_int,
                *mut openssl_sys::X509_STORE_CTX,
            ) -> std::ffi::c_int,
        >,
    );
}

/// Verification callback: at security level 1 OpenSSL 3 counts a SHA-1
/// certificate signature as 63 bits and refuses it (CA_MD_TOO_WEAK), but
/// PacketCable 1.x devices and their CAs have them. Exactly that error, for
/// a SHA-1 signature, is let through; every other verdict stays OpenSSL's
/// (MD5 signatures, keys under 80 bits of strength).
unsafe extern "C" fn allow_sha1_signatures(
    ok: std::ffi::c_int,
    ctx: *mut openssl_sys::X509_STORE_CTX,
) -> std::ffi::c_int {
    if ok != 0 {
        return ok;
    }
    // SAFETY: OpenSSL calls this with a live context; the current
    // certificate (if any) belongs to it and is only read.
    unsafe {
        if openssl_sys::X509_STORE_CTX_get_error(ctx) != openssl_sys::X509_V_ERR_CA_MD_TOO_WEAK {
            return 0;
        }
        let cert = openssl_sys::X509_STORE_CTX_get_current_cert(ctx);
        if cert.is_null() {
            return 0;
        }
        let nid = openssl_sys::X509_get_signature_nid(cert);
        std::ffi::c_int::from(
            nid == openssl_sys::NID_sha1WithRSAEncryption
                || nid == openssl_sys::NID_ecdsa_with_SHA1,
        )
    }
}

/// Installs [`allow_sha1_signatures`] on the store (its contexts copy it).
pub(super) fn allow_sha1_certificate_signatures(store: &mut X509StoreBuilderRef) {
    // SAFETY: a live store; the callback is a plain function with the
    // signature OpenSSL expects and no state.
    unsafe { X509_STORE_set_verify_cb(store.as_ptr(), Some(allow_sha1_signatures)) };
}
