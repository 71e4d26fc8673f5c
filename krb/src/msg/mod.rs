//! RFC 4120 messages on `rasn-kerberos`, with the two rasn-kerberos traps
//! (8-bit flag strings, fractional KerberosTime) closed behind checked
//! constructors in [`time`] and [`flags`].

pub mod address;
pub mod consts;
pub mod flags;
pub mod raw;
pub mod time;

pub use rasn_kerberos as asn1;
pub use rasn_kerberos::{
    ApRep, ApReq, AsRep, AsReq, Authenticator, Checksum, EncApRepPart, EncAsRepPart, EncKdcRepPart,
    EncTgsRepPart, EncTicketPart, EncryptedData, EncryptionKey, EtypeInfo2Entry, HostAddress,
    KdcRep, KdcReq, KdcReqBody, KrbError, KrbSafe, KrbSafeBody, PaData, PaEncTsEnc, PrincipalName,
    TgsRep, TgsReq, Ticket, TransitedEncoding,
};
pub use time::KerberosTime;

/// Why a message could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
}

/// Decodes one value from network bytes. BER rules (a superset of DER) so
/// that devices with sloppy encoders still get an answer; trailing bytes are
/// rejected. rasn checks every length against the input before allocating.
pub fn decode<T: rasn::Decode>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) =
        rasn::ber::decode_with_remainder::<T>(bytes).map_err(|e| CodecError::Malformed {
            what,
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

/// Encodes a value as DER.
pub fn encode<T: rasn::Encode>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    rasn::der::encode(value).map_err(|e| CodecError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// A `KerberosString` from text. Kerberos strings are GeneralString; we only
/// ever emit printable text, and fall back to replacing bytes rasn refuses.
pub fn kstring(s: &str) -> asn1::KerberosString {
    rasn::types::GeneralString::from_bytes(s.as_bytes()).unwrap_or_else(|_| {
        let cleaned: Vec<u8> = s
            .bytes()
            .map(|b| if (0x80..0xA1).contains(&b) { b'?' } else { b })
            .collect();
        rasn::types::GeneralString::from_bytes(&cleaned).unwrap_or_default()
    })
}

/// Text of a `KerberosString`; invalid UTF-8 becomes an error for the caller
/// to map to the right KRB-ERROR.
pub fn kstr(s: &asn1::KerberosString) -> Result<&str, CodecError> {
    std::str::from_utf8(s.as_bytes()).map_err(|_| CodecError::Malformed {
        what: "KerberosString",
        reason: "not UTF-8".into(),
    })
}

/// Integer fields (pvno, msg-type) as i64, `None` when out of range.
pub fn small_int(i: &rasn::types::Integer) -> Option<i64> {
    i64::try_from(i).ok()
}

/// Decodes a value from decrypted plaintext. des3-cbc-sha1-kd returns the
/// plaintext zero-padded to its block size (RFC 3961 allows it), so
/// trailing zero bytes are accepted here, and only here.
pub fn decode_padded<T: rasn::Decode>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) =
        rasn::ber::decode_with_remainder::<T>(bytes).map_err(|e| CodecError::Malformed {
            what,
            reason: e.to_string(),
        })?;
    if rest.len() >= 8 || rest.iter().any(|b| *b != 0) {
        return Err(CodecError::Malformed {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}
