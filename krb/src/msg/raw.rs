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

/// Writes one TLV: single-byte `tag`, DER length, `content`.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    push_header(&mut out, tag, content.len());
    out.extend_from_slice(content);
    out
}

/// Appends a TLV's header: single-byte `tag` and the DER (definite) length
/// `len`, for content the caller writes (or hashes) itself.
pub fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// The message's outer tag, e.g. `0x6a` for AS-REQ: enough to dispatch.
pub fn outer_tag(msg: &[u8]) -> Option<u8> {
    msg.first().copied()
}

/// The exact bytes of the `req-body [4] KDC-REQ-BODY` inside an AS-REQ or
/// TGS-REQ (the inner SEQUENCE, tag and length included).
pub fn kdc_req_body(msg: &[u8]) -> Result<&[u8], RawError> {
    match msg.first() {
        Some(&t) if t == 0x6a || t == 0x6c => message_field(msg, t, 0xa4),
        Some(&t) => Err(RawError::UnexpectedTag(t)),
        None => Err(RawError::Truncated),
    }
}

/// The exact bytes of field `[field_tag]` (its inner TLV) of an
/// `[APPLICATION n] SEQUENCE` message whose outer tag is `app_tag`, e.g. the
/// KRB-SAFE-BODY a KRB-SAFE checksum covers (tag 0x74, field 0xa2).
pub fn message_field(msg: &[u8], app_tag: u8, field_tag: u8) -> Result<&[u8], RawError> {
    let (app, _) = read_tlv(msg)?;
    if app.tag != app_tag {
        return Err(RawError::UnexpectedTag(app.tag));
    }
    let (seq, _) = read_tlv(app.content)?;
    if seq.tag != 0x30 {
        return Err(RawError::UnexpectedTag(seq.tag));
    }
    let mut fields = seq.content;
    while !fields.is_empty() {
        let (field, rest) = read_tlv(fields)?;
        if field.tag == field_tag {
            let (inner, _) = read_tlv(field.content)?;
            return Ok(inner.whole);
        }
        fields = rest;
    }
    Err(RawError::Missing)
}

/// The first element tagged `tag` among the TLVs of `parent`.
fn field(parent: &[u8], tag: u8) -> Option<Tlv<'_>> {
    let mut rest = parent;
    while !rest.is_empty() {
        let (f, r) = read_tlv(rest).ok()?;
        if f.tag == tag {
            return Some(f);
        }
        rest = r;
    }
    None
}

/// `parent` with its sub-slice `old` (borrowed from it) replaced by `new`.
fn splice(parent: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    let at = old.as_ptr() as usize - parent.as_ptr() as usize;
    [&parent[..at], new, &parent[at + old.len()..]].concat()
}

/// A KDC-REQ whose req-body nonce is a negative 4-byte INTEGER, re-encoded
/// with that value read as unsigned, for decoding only (checksums cover
/// the original bytes): RFC 4120 makes the nonce a UInt32, but Heimdal's
/// clients encode it as a signed 32-bit integer, so about half their
/// nonces arrive negative. Anything else, including what does not parse,
/// is returned unchanged.
pub fn with_unsigned_nonce(msg: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let fixed = || -> Option<Vec<u8>> {
        let (app, _) = read_tlv(msg).ok()?;
        let (seq, _) = read_tlv(app.content).ok()?;
        let req_body = field(seq.content, 0xa4)?;
        let (body, _) = read_tlv(req_body.content).ok()?;
        let nonce_field = field(body.content, 0xa7)?;
        let (nonce, _) = read_tlv(nonce_field.content).ok()?;
        if nonce.tag != 0x02 || nonce.content.len() != 4 || nonce.content[0] & 0x80 == 0 {
            return None;
        }
        let unsigned = tlv(0x02, &[&[0u8][..], nonce.content].concat());
        let nonce_field2 = tlv(0xa7, &splice(nonce_field.content, nonce.whole, &unsigned));
        let body2 = tlv(
            0x30,
            &splice(body.content, nonce_field.whole, &nonce_field2),
        );
        let req_body2 = tlv(0xa4, &splice(req_body.content, body.whole, &body2));
        let seq2 = tlv(0x30, &splice(seq.content, req_body.whole, &req_body2));
        let app2 = tlv(app.tag, &splice(app.content, seq.whole, &seq2));
        Some(splice(msg, app.whole, &app2))
    };
    match fixed() {
        Some(v) => std::borrow::Cow::Owned(v),
        None => std::borrow::Cow::Borrowed(msg),
    }
}

/// The padata types of an AS-REQ or TGS-REQ, read without decoding the
/// whole message (to route PKINIT requests before any real work). At most
/// `limit` types are returned.
pub fn padata_types(msg: &[u8], limit: usize) -> Result<Vec<i32>, RawError> {
    let (app, _) = read_tlv(msg)?;
    let (seq, _) = read_tlv(app.content)?;
    let mut fields = seq.content;
    while !fields.is_empty() {
        let (field, rest) = read_tlv(fields)?;
        if field.tag == 0xa3 {
            let (list, _) = read_tlv(field.content)?;
            let mut items = list.content;
            let mut out = Vec::new();
            while !items.is_empty() && out.len() < limit {
                let (pa, rest) = read_tlv(items)?;
                let (type_field, _) = read_tlv(pa.content)?;
                let (int, _) = read_tlv(type_field.content)?;
                if type_field.tag != 0xa1
                    || int.tag != 0x02
                    || int.content.is_empty()
                    || int.content.len() > 4
                {
                    return Err(RawError::UnexpectedTag(type_field.tag));
                }
                // Sign-extend a big-endian two's complement INTEGER of 1..=4 bytes.
                let mut v: i32 = if int.content[0] & 0x80 != 0 { -1 } else { 0 };
                for b in int.content {
                    v = (v << 8) | i32::from(*b);
                }
                out.push(v);
                items = rest;
            }
            return Ok(out);
        }
        if field.tag > 0xa3 {
            break;
        }
        fields = rest;
    }
    Ok(Vec::new())
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
    fn negative_nonces_read_as_unsigned() {
        use rasn_kerberos::{AsReq, KdcReq};
        let body = crate::client::RequestBody {
            client: None,
            server: &crate::principal::Principal::krbtgt("R"),
            etypes: &[],
            nonce: 0xa385_1474,
            till: 0,
            rtime: None,
            options: crate::msg::flags::Flags::empty(),
        };
        let req = AsReq(KdcReq {
            pvno: 5.into(),
            msg_type: 10.into(),
            padata: None,
            req_body: body.to_asn1().unwrap(),
        });
        let unsigned = rasn::der::encode(&req).unwrap();
        // As Heimdal sends it: the same value as a signed 32-bit INTEGER.
        let at = unsigned
            .windows(7)
            .position(|w| w == [0x02, 0x05, 0x00, 0xa3, 0x85, 0x14, 0x74])
            .expect("the nonce");
        let mut signed = unsigned[..at].to_vec();
        signed.extend([0x02, 0x04, 0xa3, 0x85, 0x14, 0x74]);
        signed.extend(&unsigned[at + 7..]);
        // Every enclosing length shrinks by one (all short forms here).
        for len_at in [1, 3] {
            signed[len_at] -= 1;
        }
        let body_at = signed.windows(2).position(|w| w[0] == 0xa4).unwrap();
        signed[body_at + 1] -= 1;
        signed[body_at + 3] -= 1;
        let nonce_at = signed
            .windows(3)
            .position(|w| w == [0xa7, 0x07, 0x02])
            .unwrap();
        signed[nonce_at + 1] -= 1;
        assert!(crate::msg::decode::<AsReq>("AS-REQ", &signed).is_err());
        let fixed = with_unsigned_nonce(&signed);
        assert_eq!(&*fixed, unsigned.as_slice());
        assert!(matches!(
            with_unsigned_nonce(&unsigned),
            std::borrow::Cow::Borrowed(_)
        ));
        for n in 0..signed.len() {
            let _ = with_unsigned_nonce(&signed[..n]);
        }
    }

    #[test]
    fn padata_types_of_a_request() {
        use rasn_kerberos::{AsReq, KdcReq, PaData};
        let body = crate::client::RequestBody {
            client: None,
            server: &crate::principal::Principal::krbtgt("R"),
            etypes: &[],
            nonce: 1,
            till: 0,
            rtime: None,
            options: crate::msg::flags::Flags::empty(),
        };
        let req = AsReq(KdcReq {
            pvno: 5.into(),
            msg_type: 10.into(),
            padata: Some(vec![
                PaData {
                    r#type: 16,
                    value: vec![].into(),
                },
                PaData {
                    r#type: -1,
                    value: vec![].into(),
                },
                PaData {
                    r#type: 150,
                    value: vec![].into(),
                },
            ]),
            req_body: body.to_asn1().unwrap(),
        });
        let der = rasn::der::encode(&req).unwrap();
        assert_eq!(padata_types(&der, 8).unwrap(), vec![16, -1, 150]);
        assert_eq!(padata_types(&der, 1).unwrap(), vec![16]);
        for n in 0..der.len() {
            let _ = padata_types(&der[..n], 8);
        }
    }

    #[test]
    fn tlv_writes_what_read_tlv_reads() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![0xAB; len];
            let bytes = tlv(0x04, &content);
            let (t, rest) = read_tlv(&bytes).unwrap();
            assert_eq!((t.tag, t.content.len(), rest.len()), (0x04, len, 0));
        }
        assert_eq!(tlv(0x30, &[1, 2]), [0x30, 0x02, 1, 2]);
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
