//! The one libcrypto call the openssl crate lacks: `X509_STORE_add_crl`.
//!
//! Without it a CRL reaches an `X509Store` only through a file lookup, which
//! would re-read the trust directory every time a TLS context is built and
//! could pick up a file newer than the store's generation.

#![allow(unsafe_code)]

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::x509::X509CrlRef;
use openssl::x509::store::X509StoreBuilderRef;

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
