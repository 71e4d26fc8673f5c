//! MODP exponentiation with each group's Montgomery context computed once.
//!
//! `BigNumRef::mod_exp` makes OpenSSL set up a Montgomery context for p on
//! every call (7–13 µs for a 2048-bit p, measured with a C program against
//! the system libcrypto; two calls per DH reply). OpenSSL's own DH code
//! keeps it with the key (`method_mont_p`); the openssl crate does not
//! expose `BN_MONT_CTX`, hence the FFI below.

use std::sync::OnceLock;

use openssl::bn::{BigNum, BigNumContext, BigNumRef};
use openssl::error::ErrorStack;

/// An odd modulus p with its Montgomery context.
pub(super) struct MontModulus {
    p: BigNum,
    mont: ffi::MontCtx,
}

impl MontModulus {
    fn new(p: BigNum) -> Result<MontModulus, ErrorStack> {
        let mut ctx = BigNumContext::new()?;
        let mont = ffi::MontCtx::new(&p, &mut ctx)?;
        Ok(MontModulus { p, mont })
    }

    /// The modulus.
    pub(super) fn p(&self) -> &BigNumRef {
        &self.p
    }

    /// `r = base^exponent mod p`, constant time in the exponent (OpenSSL's
    /// `BN_mod_exp_mont_consttime`, the function its DH code uses).
    pub(super) fn exp_consttime(
        &self,
        r: &mut BigNumRef,
        base: &BigNumRef,
        exponent: &BigNumRef,
        ctx: &mut BigNumContext,
    ) -> Result<(), ErrorStack> {
        self.mont.exp_consttime(r, base, exponent, &self.p, ctx)
    }
}

/// The shared context for a well-known prime, made on first use.
pub(super) fn for_prime(
    slot: &'static OnceLock<MontModulus>,
    prime: &'static [u8],
) -> Result<&'static MontModulus, ErrorStack> {
    if let Some(m) = slot.get() {
        return Ok(m);
    }
    let made = MontModulus::new(BigNum::from_slice(prime)?)?;
    // Another thread may have won the race; either context is the same.
    Ok(slot.get_or_init(|| made))
}

#[allow(unsafe_code)]
mod ffi {
    use std::os::raw::c_int;
    use std::ptr::NonNull;

    use foreign_types::ForeignTypeRef;
    use openssl::bn::{BigNumContext, BigNumRef};
    use openssl::error::ErrorStack;
    use openssl_sys as sys;

    unsafe extern "C" {
        fn BN_MONT_CTX_new() -> *mut sys::BN_MONT_CTX;
        fn BN_MONT_CTX_set(
            mont: *mut sys::BN_MONT_CTX,
            modulus: *const sys::BIGNUM,
            ctx: *mut sys::BN_CTX,
        ) -> c_int;
        fn BN_MONT_CTX_free(mont: *mut sys::BN_MONT_CTX);
        fn BN_mod_exp_mont_consttime(
            rr: *mut sys::BIGNUM,
            a: *const sys::BIGNUM,
            p: *const sys::BIGNUM,
            m: *const sys::BIGNUM,
            ctx: *mut sys::BN_CTX,
            in_mont: *mut sys::BN_MONT_CTX,
        ) -> c_int;
    }

    /// An owned `BN_MONT_CTX`. After `BN_MONT_CTX_set` OpenSSL only reads
    /// it (its DH and RSA code share one between threads the same way).
    pub(super) struct MontCtx(NonNull<sys::BN_MONT_CTX>);

    // SAFETY: immutable after construction; OpenSSL's exponentiation only
    // reads the context, so sharing it between threads is sound.
    unsafe impl Send for MontCtx {}
    unsafe impl Sync for MontCtx {}

    impl MontCtx {
        pub(super) fn new(
            modulus: &BigNumRef,
            ctx: &mut BigNumContext,
        ) -> Result<MontCtx, ErrorStack> {
            // SAFETY: a fresh context, freed on error; the modulus and ctx
            // pointers are valid for the call.
            unsafe {
                let raw = NonNull::new(BN_MONT_CTX_new()).ok_or_else(ErrorStack::get)?;
                if BN_MONT_CTX_set(raw.as_ptr(), modulus.as_ptr(), ctx.as_ptr()) != 1 {
                    BN_MONT_CTX_free(raw.as_ptr());
                    return Err(ErrorStack::get());
                }
                Ok(MontCtx(raw))
            }
        }

        pub(super) fn exp_consttime(
            &self,
            r: &mut BigNumRef,
            base: &BigNumRef,
            exponent: &BigNumRef,
            modulus: &BigNumRef,
            ctx: &mut BigNumContext,
        ) -> Result<(), ErrorStack> {
            // SAFETY: all pointers are valid for the call; `modulus` is the
            // one this context was made for (MontModulus keeps them together).
            let ok = unsafe {
                BN_mod_exp_mont_consttime(
                    r.as_ptr(),
                    base.as_ptr(),
                    exponent.as_ptr(),
                    modulus.as_ptr(),
                    ctx.as_ptr(),
                    self.0.as_ptr(),
                )
            };
            if ok == 1 {
                Ok(())
            } else {
                Err(ErrorStack::get())
            }
        }
    }

    impl Drop for MontCtx {
        fn drop(&mut self) {
            // SAFETY: owned, freed once.
            unsafe { BN_MONT_CTX_free(self.0.as_ptr()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::bn::MsbOption;

    #[test]
    fn matches_openssl_mod_exp() {
        let m =
            MontModulus::new(BigNum::from_slice(&crate::dh::primes::MODP_2048).unwrap()).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        for bits in [1, 64, 225, 2047] {
            let mut base = BigNum::new().unwrap();
            base.rand(2040, MsbOption::MAYBE_ZERO, false).unwrap();
            let mut e = BigNum::new().unwrap();
            e.rand(bits, MsbOption::ONE, false).unwrap();
            let (mut ours, mut reference) = (BigNum::new().unwrap(), BigNum::new().unwrap());
            m.exp_consttime(&mut ours, &base, &e, &mut ctx).unwrap();
            reference.mod_exp(&base, &e, m.p(), &mut ctx).unwrap();
            assert_eq!(ours, reference, "{bits}-bit exponent");
        }
    }
}
