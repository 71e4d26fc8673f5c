//! The pkt-eue-7 user-data bytes, big-endian throughout:
//!
//! | type | version | message |
//! |---|---|---|
//! | 1 | 1 | MTA FQDN Request: MAC (6), SHA-1 public-key hash (20), manufacturer-cert revocation time (4) |
//! | 2 | 1 | MTA FQDN Reply (PacketCable 1.x): FQDN (the rest but 4, no length byte), IPv4 (4; 0.0.0.0 = not supplied) |
//! | 3 | 1 | MTA FQDN Error Reply: body opaque (Wireshark parses only the header) |
//! | 3 | 2 | eUE FQDN and IP Reply (PKT-SP-EUE-PROV-I05 Table 1): IPv4 count + list, IPv6 count + list, FQDN length + FQDN |
//!
//! Every message starts with type (1), enterprise number (4), version (1).
//! The enterprise number must be 1 (PKT-SP-EUE-PROV-I05 Table 1) or 4491
//! (CableLabs' IANA number); any other value is malformed.
//! Type 3 means different things in the two versions, so we parse on the
//! (type, version) pair. Every length is checked against the datagram;
//! no count is trusted.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The enterprise number we send unless configured otherwise: 1, as
/// PKT-SP-EUE-PROV-I05 Table 1 describes the field ("Network byte order,
/// MSB first. 1 = PacketCable").
pub const DEFAULT_ENTERPRISE: u32 = 1;
/// CableLabs' IANA enterprise number, which some provisioning servers
/// expect instead (shared PROTOCOL.md §3.2); accepted on input and
/// configurable for sending.
pub const CABLELABS_ENTERPRISE: u32 = 4491;

/// Whether `n` is an enterprise number pkt-eue-7 messages may carry: the
/// spec's 1 or CableLabs' 4491. Anything else is malformed.
pub fn is_known_enterprise(n: u32) -> bool {
    n == DEFAULT_ENTERPRISE || n == CABLELABS_ENTERPRISE
}

const HEADER: usize = 6;
/// Longest FQDN we accept (RFC 1035: 253 characters without the trailing dot).
pub const MAX_FQDN: usize = 253;
/// Longest error-reply body we keep.
const MAX_ERROR_BODY: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("message too short ({0} bytes)")]
    Short(usize),
    #[error("unknown message type {msg_type} version {version}")]
    UnknownKind { msg_type: u8, version: u8 },
    #[error("{what} count {count} runs past the end of the message")]
    CountBeyondEnd { what: &'static str, count: usize },
    #[error("request must be exactly 36 bytes, got {0}")]
    RequestLength(usize),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("bad FQDN: {0}")]
    BadFqdn(&'static str),
    #[error("error reply body longer than {MAX_ERROR_BODY} bytes")]
    ErrorBodyTooLong,
    #[error("enterprise number {0} is neither 1 (PacketCable) nor 4491 (CableLabs)")]
    UnknownEnterprise(u32),
}

/// MTA FQDN Request (type 1, version 1), KDC → provisioning server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FqdnRequest {
    pub enterprise: u32,
    pub mac: [u8; 6],
    /// SHA-1 of the device's public key.
    pub pubkey_hash: [u8; 20],
    /// Manufacturer certificate revocation time, Unix seconds; 0 = not revoked.
    pub revocation_time: u32,
}

/// MTA FQDN Reply (type 2, version 1): one FQDN and one IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FqdnReply {
    pub enterprise: u32,
    pub fqdn: String,
    /// 0.0.0.0 means "not supplied".
    pub ipv4: Ipv4Addr,
}

/// eUE FQDN and IP Reply (type 3, version 2), PKT-SP-EUE-PROV-I05 Table 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EueReply {
    pub enterprise: u32,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    pub fqdn: String,
}

/// MTA FQDN Error Reply (type 3, version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    pub enterprise: u32,
    /// Opaque body, kept for the audit log (at most 256 bytes).
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(FqdnRequest),
    Reply(FqdnReply),
    Error(MessageError),
    EueReply(EueReply),
}

/// An FQDN as hostnames are written: LDH labels of 1..=63 characters
/// separated by dots, 1..=253 characters, an optional trailing dot dropped.
pub fn check_fqdn(bytes: &[u8]) -> Result<String, CodecError> {
    let bytes = bytes.strip_suffix(b".").unwrap_or(bytes);
    if bytes.is_empty() {
        return Err(CodecError::BadFqdn("empty"));
    }
    if bytes.len() > MAX_FQDN {
        return Err(CodecError::BadFqdn("longer than 253 characters"));
    }
    for label in bytes.split(|b| *b == b'.') {
        if label.is_empty() || label.len() > 63 {
            return Err(CodecError::BadFqdn("empty or over-long label"));
        }
        if !label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return Err(CodecError::BadFqdn(
                "character outside letters, digits, '-', '_'",
            ));
        }
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// A cursor that never reads past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::CountBeyondEnd { what, count: n });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }
}

/// Decodes one message (the KRB_SAFE user-data).
pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
    if bytes.len() < HEADER {
        return Err(CodecError::Short(bytes.len()));
    }
    let msg_type = bytes[0];
    let enterprise = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let version = bytes[5];
    if !is_known_enterprise(enterprise) {
        return Err(CodecError::UnknownEnterprise(enterprise));
    }
    let body = &bytes[HEADER..];
    match (msg_type, version) {
        (1, 1) => {
            if bytes.len() != 36 {
                return Err(CodecError::RequestLength(bytes.len()));
            }
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&body[..6]);
            let mut pubkey_hash = [0u8; 20];
            pubkey_hash.copy_from_slice(&body[6..26]);
            let revocation_time = u32::from_be_bytes([body[26], body[27], body[28], body[29]]);
            Ok(Message::Request(FqdnRequest {
                enterprise,
                mac,
                pubkey_hash,
                revocation_time,
            }))
        }
        (2, 1) => {
            if body.len() < 4 {
                return Err(CodecError::Short(bytes.len()));
            }
            let (fqdn, ip) = body.split_at(body.len() - 4);
            Ok(Message::Reply(FqdnReply {
                enterprise,
                fqdn: check_fqdn(fqdn)?,
                ipv4: Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]),
            }))
        }
        (3, 1) => {
            if body.len() > MAX_ERROR_BODY {
                return Err(CodecError::ErrorBodyTooLong);
            }
            Ok(Message::Error(MessageError {
                enterprise,
                body: body.to_vec(),
            }))
        }
        (3, 2) => {
            let mut r = Reader(body);
            let n1 = r.u8("IPv4 count")? as usize;
            let v4 = r.take(4 * n1, "IPv4 address")?;
            let n2 = r.u8("IPv6 count")? as usize;
            let v6 = r.take(16 * n2, "IPv6 address")?;
            let n3 = r.u8("FQDN length")? as usize;
            if n3 == 0 {
                return Err(CodecError::BadFqdn("empty"));
            }
            let fqdn = r.take(n3, "FQDN")?;
            if !r.0.is_empty() {
                return Err(CodecError::Trailing(r.0.len()));
            }
            Ok(Message::EueReply(EueReply {
                enterprise,
                ipv4: v4
                    .chunks_exact(4)
                    .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                    .collect(),
                ipv6: v6
                    .chunks_exact(16)
                    .map(|c| {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(c);
                        Ipv6Addr::from(a)
                    })
                    .collect(),
                fqdn: check_fqdn(fqdn)?,
            }))
        }
        (msg_type, version) => Err(CodecError::UnknownKind { msg_type, version }),
    }
}

fn header(msg_type: u8, enterprise: u32, version: u8) -> Result<Vec<u8>, CodecError> {
    if !is_known_enterprise(enterprise) {
        return Err(CodecError::UnknownEnterprise(enterprise));
    }
    let mut out = Vec::with_capacity(64);
    out.push(msg_type);
    out.extend_from_slice(&enterprise.to_be_bytes());
    out.push(version);
    Ok(out)
}

impl Message {
    /// Encodes the message; refuses what its own decoder would refuse
    /// (bad FQDN, more than 255 addresses of a kind, long error bodies, an
    /// enterprise number other than 1 or 4491).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        match self {
            Message::Request(r) => {
                let mut out = header(1, r.enterprise, 1)?;
                out.extend_from_slice(&r.mac);
                out.extend_from_slice(&r.pubkey_hash);
                out.extend_from_slice(&r.revocation_time.to_be_bytes());
                Ok(out)
            }
            Message::Reply(r) => {
                let fqdn = check_fqdn(r.fqdn.as_bytes())?;
                let mut out = header(2, r.enterprise, 1)?;
                out.extend_from_slice(fqdn.as_bytes());
                out.extend_from_slice(&r.ipv4.octets());
                Ok(out)
            }
            Message::Error(e) => {
                if e.body.len() > MAX_ERROR_BODY {
                    return Err(CodecError::ErrorBodyTooLong);
                }
                let mut out = header(3, e.enterprise, 1)?;
                out.extend_from_slice(&e.body);
                Ok(out)
            }
            Message::EueReply(r) => {
                let fqdn = check_fqdn(r.fqdn.as_bytes())?;
                let (n1, n2) = (r.ipv4.len(), r.ipv6.len());
                if n1 > 255 || n2 > 255 {
                    return Err(CodecError::CountBeyondEnd {
                        what: "address list",
                        count: n1.max(n2),
                    });
                }
                let mut out = header(3, r.enterprise, 2)?;
                out.push(n1 as u8);
                r.ipv4
                    .iter()
                    .for_each(|a| out.extend_from_slice(&a.octets()));
                out.push(n2 as u8);
                r.ipv6
                    .iter()
                    .for_each(|a| out.extend_from_slice(&a.octets()));
                out.push(fqdn.len() as u8);
                out.extend_from_slice(fqdn.as_bytes());
                Ok(out)
            }
        }
    }
}
