//! PKINIT for the PacketCable realm security service: the PacketCable
//! pre-RFC form (padata 14/15) that real MTAs send and RFC 4556 (16/17).

pub mod asn1;
pub mod cache;
#[cfg(feature = "client")]
pub mod client;
pub mod cms;
pub mod dh;
pub mod reply;
pub mod request;
pub mod server;
mod signer;
