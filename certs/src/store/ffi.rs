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
