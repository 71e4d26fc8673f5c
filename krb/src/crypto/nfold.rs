//! The n-fold function of RFC 3961 §5.1.

/// Folds `input` into `out.len()` bytes (RFC 3961 §5.1).
///
/// The input is replicated, each copy rotated right by 13 bits more than the
/// previous one, until the length is the least common multiple of both
/// lengths, and the `out.len()`-byte chunks are added with ones'-complement
/// addition. An empty input or output leaves `out` zeroed.
pub(crate) fn nfold(input: &[u8], out: &mut [u8]) {
    out.fill(0);
    let inlen = input.len();
    let outlen = out.len();
    if inlen == 0 || outlen == 0 {
        return;
    }
    let lcm = inlen / gcd(inlen, outlen) * outlen;
    let inbits = inlen * 8;
    // Per-byte position arithmetic of RFC 3961's reference code (MIT
    // krb5int_nfold), done incrementally so the loop has no divisions:
    // i runs from lcm-1 down to 0 with q = i / inlen, r = i % inlen,
    // o = i % outlen, and `base` = ((inbits-1) + (inbits+13)*q) % inbits.
    let step = (inbits + 13) % inbits;
    let mut q = (lcm - 1) / inlen;
    let mut r = (lcm - 1) % inlen;
    let mut o = (lcm - 1) % outlen;
    let mut base = ((inbits - 1) + (step * (q % inbits)) % inbits) % inbits;
    let mut carry: u32 = 0;
    loop {
        // Most significant bit (within one copy) of the byte landing at i.
        let mut msbit = base + ((inlen - r) << 3);
        if msbit >= inbits {
            msbit -= inbits;
        }
        let byte_idx = msbit >> 3; // 0..inlen
        let hi = u32::from(input[(inlen - 1) - byte_idx]);
        let lo_idx = inlen - byte_idx;
        let lo = u32::from(input[if lo_idx == inlen { 0 } else { lo_idx }]);
        carry += (((hi << 8) | lo) >> ((msbit & 7) + 1)) & 0xff;
        carry += u32::from(out[o]);
        out[o] = (carry & 0xff) as u8;
        carry >>= 8;
        if q == 0 && r == 0 {
            break;
        }
        if r == 0 {
            r = inlen - 1;
            q -= 1;
            base = if base >= step {
                base - step
            } else {
                base + inbits - step
            };
        } else {
            r -= 1;
        }
        o = if o == 0 { outlen - 1 } else { o - 1 };
    }
    // End-around carry.
    if carry != 0 {
        for o in out.iter_mut().rev() {
            carry += u32::from(*o);
            *o = (carry & 0xff) as u8;
            carry >>= 8;
        }
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::nfold;

    fn fold(input: &[u8], bits: usize) -> String {
        let mut out = vec![0u8; bits / 8];
        nfold(input, &mut out);
        hex::encode(out)
    }

    /// RFC 3961 Appendix A.1: all eleven n-fold vectors.
    #[test]
    fn rfc3961_a1_nfold() {
        let vectors: [(&[u8], usize, &str); 11] = [
            (b"012345", 64, "be072631276b1955"),
            (b"password", 56, "78a07b6caf85fa"),
            (b"Rough Consensus, and Running Code", 64, "bb6ed30870b7f0e0"),
            (
                b"password",
                168,
                "59e4a8ca7c0385c3c37b3f6d2000247cb6e6bd5b3e",
            ),
            (
                b"MASSACHVSETTS INSTITVTE OF TECHNOLOGY",
                192,
                "db3b0d8f0b061e603282b308a50841229ad798fab9540c1b",
            ),
            (b"Q", 168, "518a54a215a8452a518a54a215a8452a518a54a215"),
            (b"ba", 168, "fb25d531ae8974499f52fd92ea9857c4ba24cf297e"),
            (b"kerberos", 64, "6b65726265726f73"),
            (b"kerberos", 128, "6b65726265726f737b9b5b2b93132b93"),
            (
                b"kerberos",
                168,
                "8372c236344e5f1550cd0747e15d62ca7a5a3bcea4",
            ),
            (
                b"kerberos",
                256,
                "6b65726265726f737b9b5b2b93132b935c9bdcdad95c9899c4cae4dee6d6cae4",
            ),
        ];
        for (input, bits, want) in vectors {
            assert_eq!(fold(input, bits), want, "{bits}-fold({input:?})");
        }
    }

    /// The direct transcription of RFC 3961's reference algorithm, with a
    /// division per byte, to check the incremental version against.
    fn reference(input: &[u8], out: &mut [u8]) {
        out.fill(0);
        let (inlen, outlen) = (input.len(), out.len());
        let lcm = inlen / super::gcd(inlen, outlen) * outlen;
        let inbits = inlen * 8;
        let mut carry = 0u32;
        for i in (0..lcm).rev() {
            let msbit = ((inbits - 1) + (inbits + 13) * (i / inlen) + ((inlen - (i % inlen)) << 3))
                % inbits;
            let hi = u32::from(input[((inlen - 1) - (msbit >> 3)) % inlen]);
            let lo = u32::from(input[(inlen - (msbit >> 3)) % inlen]);
            carry += (((hi << 8) | lo) >> ((msbit & 7) + 1)) & 0xff;
            carry += u32::from(out[i % outlen]);
            out[i % outlen] = (carry & 0xff) as u8;
            carry >>= 8;
        }
        if carry != 0 {
            for o in out.iter_mut().rev() {
                carry += u32::from(*o);
                *o = (carry & 0xff) as u8;
                carry >>= 8;
            }
        }
    }

    #[test]
    fn matches_reference_algorithm() {
        for inlen in 1..70usize {
            let input: Vec<u8> = (0..inlen).map(|i| (i * 151 + 89 + inlen) as u8).collect();
            for outlen in [1usize, 5, 7, 8, 16, 21, 24, 32, 48] {
                let mut a = vec![0u8; outlen];
                let mut b = vec![0u8; outlen];
                nfold(&input, &mut a);
                reference(&input, &mut b);
                assert_eq!(a, b, "{inlen} -> {outlen}");
            }
        }
        let ones = [0xFFu8; 13];
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        nfold(&ones, &mut a);
        reference(&ones, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn empty_input_gives_zeros() {
        assert_eq!(fold(b"", 64), "0000000000000000");
    }
}
