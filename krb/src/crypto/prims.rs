//! Small shared primitives: HMAC over several parts, constant-time compare,
//! fixed-size copies and the OS random source.

use sha1::Digest;
use sha1::digest::Output;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::CryptoError;

/// HMAC (RFC 2104) of the concatenation of `parts`, for a hash with a
/// `BLOCK`-byte input block (64 for SHA-1/SHA-256, 128 for SHA-384).
///
/// Written out here rather than through `hmac::Hmac` so that it is total (no
/// `InvalidLength` path) and the padded key lives in a zeroized buffer.
pub(crate) fn hmac<D: Digest, const BLOCK: usize>(key: &[u8], parts: &[&[u8]]) -> Output<D> {
    let mut k = Zeroizing::new([0u8; BLOCK]);
    if key.len() > BLOCK {
        let mut h = D::digest(key);
        for (d, s) in k.iter_mut().zip(h.iter()) {
            *d = *s;
        }
        h.as_mut_slice().zeroize();
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut pad = Zeroizing::new([0u8; BLOCK]);
    for (p, b) in pad.iter_mut().zip(k.iter()) {
        *p = b ^ 0x36;
    }
    let mut inner = D::new();
    inner.update(&pad[..]);
    for p in parts {
        inner.update(p);
    }
    let ih = inner.finalize();
    for (p, b) in pad.iter_mut().zip(k.iter()) {
        *p = b ^ 0x5c;
    }
    let mut outer = D::new();
    outer.update(&pad[..]);
    outer.update(&ih);
    outer.finalize()
}

/// Constant-time comparison of a computed MAC prefix with a received one.
pub(crate) fn ct_verify(computed: &[u8], received: &[u8]) -> Result<(), CryptoError> {
    if bool::from(computed.ct_eq(received)) {
        Ok(())
    } else {
        Err(CryptoError::Integrity)
    }
}

/// Copies the first `N` bytes of `src` (zero-filling if shorter) into a
/// zeroize-on-drop array.
pub(crate) fn prefix<const N: usize>(src: &[u8]) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    for (d, s) in out.iter_mut().zip(src) {
        *d = *s;
    }
    out
}

/// Bytes of OS randomness fetched per system call by [`random_bytes`].
const POOL_SIZE: usize = 4096;

struct Pool {
    bytes: Zeroizing<[u8; POOL_SIZE]>,
    /// Bytes before this index have been handed out (and zeroed).
    used: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<Pool> = std::cell::RefCell::new(Pool {
        bytes: Zeroizing::new([0u8; POOL_SIZE]),
        used: POOL_SIZE,
    });
}

/// Fills `buf` from the operating system's random source.
///
/// Every session key and confounder needs fresh randomness; one getrandom
/// call per 4 KiB instead of per value keeps the syscall off the per-request
/// path. The bytes are the OS generator's own output, each handed out once
/// and zeroed in the pool as it goes.
///
/// # Panics
///
/// Only if the OS random source fails, which is not recoverable for a KDC
/// (continuing would mean predictable keys or confounders).
pub(crate) fn random_bytes(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    if buf.len() > POOL_SIZE / 4 {
        getrandom::fill(buf).expect("OS random number generator failed");
        return;
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if POOL_SIZE - pool.used < buf.len() {
            #[allow(clippy::expect_used)]
            getrandom::fill(&mut pool.bytes[..]).expect("OS random number generator failed");
            pool.used = 0;
        }
        let start = pool.used;
        let end = start + buf.len();
        buf.copy_from_slice(&pool.bytes[start..end]);
        pool.bytes[start..end].fill(0);
        pool.used = end;
    });
}

#[cfg(test)]
mod pool_tests {
    use super::random_bytes;

    #[test]
    fn pool_hands_out_fresh_bytes_across_refills() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let mut b = [0u8; 16];
            random_bytes(&mut b);
            assert_ne!(b, [0u8; 16]);
            assert!(seen.insert(b), "repeated random block");
        }
        let mut big = vec![0u8; 8192];
        random_bytes(&mut big);
        assert!(big.iter().any(|b| *b != 0));
    }
}
