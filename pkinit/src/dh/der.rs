//! The few DER pieces the DH code reads and writes by hand: DomainParameters
//! (a SEQUENCE of INTEGERs) and the DER INTEGER that carries a MODP public
//! value inside a BIT STRING. Strict DER: definite, minimal lengths; minimal
//! INTEGER encodings. Never panics on any input.

use super::DhError;

pub(super) const TAG_INTEGER: u8 = 0x02;
pub(super) const TAG_OID: u8 = 0x06;
pub(super) const TAG_SEQUENCE: u8 = 0x30;

fn malformed(what: &str) -> DhError {
    DhError::Malformed(what.to_string())
}

/// Splits one TLV off `input`: (tag, contents, rest). Single-byte tags only.
pub(super) fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), DhError> {
    let (&tag, rest) = input
        .split_first()
        .ok_or_else(|| malformed("truncated DER"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed("high-tag-number form"));
    }
    let (&first, rest) = rest
        .split_first()
        .ok_or_else(|| malformed("truncated DER"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(malformed("indefinite or oversized DER length"));
        }
        if rest.len() < n {
            return Err(malformed("truncated DER length"));
        }
        let (bytes, rest) = rest.split_at(n);
        if bytes[0] == 0 {
            return Err(malformed("non-minimal DER length"));
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return Err(malformed("non-minimal DER length"));
        }
        (len, rest)
    };
    if rest.len() < len {
        return Err(malformed("truncated DER contents"));
    }
    let (contents, rest) = rest.split_at(len);
    Ok((tag, contents, rest))
}

/// One TLV that must be exactly `input` with the given tag; returns the contents.
pub(super) fn read_exact(input: &[u8], want: u8) -> Result<&[u8], DhError> {
    let (tag, contents, rest) = read_tlv(input)?;
    if tag != want {
        return Err(malformed("unexpected DER tag"));
    }
    if !rest.is_empty() {
        return Err(malformed("trailing bytes after DER value"));
    }
    Ok(contents)
}

/// An INTEGER's contents as (negative, magnitude without leading zeros).
/// Rejects empty and non-minimal encodings.
pub(super) fn integer_magnitude(contents: &[u8]) -> Result<(bool, &[u8]), DhError> {
    match contents {
        [] => Err(malformed("empty INTEGER")),
        [0x00, next, ..] if next & 0x80 == 0 => Err(malformed("non-minimal INTEGER")),
        [0xff, next, ..] if next & 0x80 != 0 => Err(malformed("non-minimal INTEGER")),
        [first, ..] if first & 0x80 != 0 => Ok((true, contents)),
        _ => {
            let start = contents
                .iter()
                .position(|&b| b != 0)
                .unwrap_or(contents.len());
            Ok((false, &contents[start..]))
        }
    }
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Tag, length and contents.
pub(super) fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    push_len(&mut out, contents.len());
    out.extend_from_slice(contents);
    out
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub(super) fn integer(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let m = &magnitude[start..];
    let mut contents = Vec::with_capacity(m.len() + 1);
    if m.first().is_none_or(|&b| b & 0x80 != 0) {
        contents.push(0);
    }
    contents.extend_from_slice(m);
    tlv(TAG_INTEGER, &contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_round_trip_and_minimality() {
        assert_eq!(integer(&[]), [0x02, 0x01, 0x00]);
        assert_eq!(integer(&[0, 0, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        let long = integer(&[0xff; 200]);
        assert_eq!(&long[..4], &[0x02, 0x81, 0xc9, 0x00]);
        let c = read_exact(&long, TAG_INTEGER).unwrap();
        assert_eq!(integer_magnitude(c).unwrap(), (false, &[0xff; 200][..]));
        assert!(integer_magnitude(&[0x00, 0x01]).is_err());
        assert!(integer_magnitude(&[0xff, 0x80]).is_err());
        assert!(integer_magnitude(&[]).is_err());
        assert!(integer_magnitude(&[0x80]).unwrap().0);
        assert_eq!(integer_magnitude(&[0x00]).unwrap(), (false, &[][..]));
    }

    #[test]
    fn lengths() {
        assert!(read_tlv(&[0x30, 0x80, 0x00, 0x00]).is_err());
        assert!(read_tlv(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err());
        assert!(read_tlv(&[0x30, 0x82, 0x00, 0x90]).is_err());
        assert!(read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
        assert!(read_tlv(&[0x30, 0x03, 0x00]).is_err());
        assert!(read_tlv(&[0x1f, 0x01, 0x00]).is_err());
        assert!(read_tlv(&[]).is_err());
        assert!(read_tlv(&[0x30]).is_err());
        let big = tlv(0x04, &[7u8; 300]);
        assert_eq!(&big[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (t, c, r) = read_tlv(&big).unwrap();
        assert_eq!((t, c.len(), r.len()), (0x04, 300, 0));
    }
}
