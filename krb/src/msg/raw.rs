//! A minimal DER/BER TLV reader, for the few places where we need the exact
//! bytes a peer sent rather than a re-encoding: the KDC-REQ-BODY that the
//! TGS authenticator checksum and the PKINIT paChecksum cover (RFC 4120
//! §7.2.2 and shared PROTOCOL.md §1.3 item 4).

/// Why a TLV could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("truncated TLV")]
    Truncated,
    #[error("unsupported TLV length form")]
    BadLength,
    #[error("unexpected tag {0:#04x}")]
    UnexpectedTag(u8),
    #[error("field not found")]
    Missing,
}

/// One element: its single-byte tag, content bytes, and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub whole: &'a [u8],
}

/// Reads one TLV from the front of `input`; returns it and the rest.
/// Multi-byte tags and indefinite lengths are refused (Kerberos uses neither).
pub fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), RawError> {
    let (&tag, rest) = input.split_first().ok_or(RawError::Truncated)?;
    if tag & 0x1f == 0x1f {
        return Err(RawError::UnexpectedTag(tag));
    }
    let (&first, rest) = rest.split_first().ok_or(RawError::Truncated)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(RawError::BadLength);
        }
        if rest.len() < n {
            return Err(RawError::Truncated);
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(RawError::Truncated);
    }
    let header = input.len() - rest.len();
    let tlv = Tlv {
        tag,
        content: &rest[..len],
        whole: &input[..header + len],
    };
    Ok((tlv, &rest[len..]))
}

/// The message's outer tag, e.g. `0x6a` for AS-REQ: enough to dispatch.
pub fn outer_tag(msg: &[u8]) -> Option<u8> {
    msg.first().copied()
}

/// The exact bytes of the `req-body [4] KDC-REQ-BODY` inside an AS-REQ or
/// TGS-REQ (the inner SEQUENCE, tag and length included).
pub fn kdc_req_body(msg: &[u8]) -> Result<&[u8], RawError> {
    let (app, _) = read_tlv(msg)?;
    if app.tag != 0x6a && app.tag != 0x6c {
        return Err(RawError::UnexpectedTag(app.tag));
    }
    let (seq, _) = read_tlv(app.content)?;
    if seq.tag != 0x30 {
        return Err(RawError::UnexpectedTag(seq.tag));
    }
    let mut fields = seq.content;
    while !fields.is_empty() {
        let (field, rest) = read_tlv(fields)?;
        if field.tag == 0xa4 {
            let (body, _) = read_tlv(field.content)?;
            return Ok(body.whole);
        }
        fields = rest;
    }
    Err(RawError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let (t, rest) = read_tlv(&[0x04, 0x02, 0xaa, 0xbb, 0xff]).unwrap();
        assert_eq!(
            (t.tag, t.content, rest),
            (0x04, &[0xaa, 0xbb][..], &[0xff][..])
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        assert_eq!(read_tlv(&long).unwrap().0.content.len(), 0x80);
    }

    #[test]
    fn rejects_hostile_lengths() {
        assert_eq!(read_tlv(&[]).unwrap_err(), RawError::Truncated);
        assert_eq!(read_tlv(&[0x30]).unwrap_err(), RawError::Truncated);
        assert_eq!(read_tlv(&[0x30, 0x80]).unwrap_err(), RawError::BadLength);
        assert_eq!(
            read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).unwrap_err(),
            RawError::BadLength
        );
        assert_eq!(
            read_tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).unwrap_err(),
            RawError::Truncated
        );
        assert_eq!(
            read_tlv(&[0x1f, 0x01, 0x00]).unwrap_err(),
            RawError::UnexpectedTag(0x1f)
        );
    }
}
