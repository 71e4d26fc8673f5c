//! The operator subcommands: keytabs, dev PKIs and device certificates,
//! the device trust directory, the pkt-eue-7 device cache, and the Kea
//! lease hook.

pub mod certs;
pub mod keytab;
pub mod lease_hook;
pub mod mps;
pub mod trust;
