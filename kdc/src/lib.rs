//! The PacketCable realm KDC engine: KDC-REQ bytes in, a reply and the
//! facts for the audit line out ([`kdc::Kdc::handle`]). The AS exchange
//! (password and PKINIT) and the TGS exchange live here; sockets, config
//! files, metrics export, the operator tools and the dev realm live in the
//! `pktc-kdc` crate, which builds a [`kdc::Kdc`] from its configuration.

pub mod as_exchange;
pub mod db;
pub mod directory;
pub mod issue;
pub mod kdc;
pub mod kerr;
pub mod lookaside;
pub mod pkinit_as;
pub mod pool;
pub mod rate_limit;
pub mod reason;
pub mod tgs_exchange;
pub mod tgs_policy;
