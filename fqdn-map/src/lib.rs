//! pkt-eue-7: the KDC asks the provisioning server which FQDN and addresses
//! DHCP gave a device MAC. This crate has the message codecs (the KRB_SAFE
//! user-data, shared PROTOCOL.md §3.2–3.3 and PKT-SP-EUE-PROV-I05 Table 1).

pub mod cache;
pub mod client;
pub mod codec;
pub mod framing;
pub mod responder;

pub use codec::{CodecError, EueReply, FqdnReply, FqdnRequest, Message, MessageError, decode};
