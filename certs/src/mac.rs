//! The MAC address in an MTA device certificate's subject CN.
//!
//! PacketCable writes it as six colon-separated pairs of upper-case hex
//! (`CN=00:60:21:A5:0A:23`). We emit exactly that and accept lower case,
//! no separators, or `-` separators on input.

use openssl::nid::Nid;
use openssl::x509::X509Ref;

/// Why a MAC address could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// The text is not six hex octets.
    #[error("not a MAC address: {0:?}")]
    Syntax(String),
    /// The certificate subject has no (UTF-8) common name.
    #[error("certificate subject has no common name")]
    NoCommonName,
}

/// Parses `00:11:22:AA:BB:CC`, `00-11-22-aa-bb-cc` or `001122aabbcc`.
///
/// Separators must be used consistently (all `:`, all `-`, or none).
pub fn parse_mac(text: &str) -> Result<[u8; 6], MacError> {
    let bad = || MacError::Syntax(text.to_owned());
    let t = text.trim();
    let hex: String = match t.len() {
        12 => t.to_owned(),
        17 => {
            let sep = t.as_bytes()[2];
            if sep != b':' && sep != b'-' {
                return Err(bad());
            }
            let mut out = String::with_capacity(12);
            for (i, c) in t.chars().enumerate() {
                if i % 3 == 2 {
                    if c as u32 != u32::from(sep) {
                        return Err(bad());
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => return Err(bad()),
    };
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

/// Formats as upper-case hex pairs separated by colons: `00:11:22:AA:BB:CC`.
pub fn format_mac(mac: [u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

/// The MAC address from a device certificate's subject CN.
pub fn device_mac(cert: &X509Ref) -> Result<[u8; 6], MacError> {
    let entry = cert
        .subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .ok_or(MacError::NoCommonName)?;
    let cn = entry
        .data()
        .to_string()
        .map_err(|_| MacError::NoCommonName)?;
    parse_mac(&cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x00, 0x11, 0x22, 0xAA, 0xBB, 0xCC];

    #[test]
    fn accepted_spellings() {
        for s in [
            "00:11:22:aa:bb:cc",
            "00:11:22:AA:BB:CC",
            "001122AABBCC",
            "001122aabbcc",
            "00-11-22-AA-BB-CC",
            " 00:11:22:AA:BB:CC ",
        ] {
            assert_eq!(parse_mac(s), Ok(MAC), "{s}");
        }
    }

    #[test]
    fn rejected_spellings() {
        for s in [
            "",
            "00:11:22:AA:BB",
            "00:11:22:AA:BB:CC:DD",
            "00:11-22:AA:BB:CC",
            "00.11.22.AA.BB.CC",
            "0011 22AABBCC",
            "00:11:22:AA:BB:CG",
            "+0:11:22:AA:BB:CC",
            "001122AABBC",
            "éé1122AABBCC",
        ] {
            assert!(parse_mac(s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn format_is_upper_case_with_colons() {
        assert_eq!(format_mac(MAC), "00:11:22:AA:BB:CC");
        assert_eq!(parse_mac(&format_mac(MAC)), Ok(MAC));
    }
}
