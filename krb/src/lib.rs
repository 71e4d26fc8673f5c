//! Kerberos core for the PacketCable realm security service. No I/O.
//!
//! - [`crypto`]: RFC 3961/3962/8009 encryption types, checksums and string-to-key.
//! - [`principal`]: principal names, including the E-UE IPv6 component form.
//! - [`keytab`]: MIT keytab (0x502) read and write.
//! - [`atomic_file`]: owner-only secret files (keytabs, keys) written atomically.
//! - [`msg`]: RFC 4120 messages on `rasn-kerberos`, with checked time and flag constructors.

pub mod atomic_file;
pub mod client;
pub mod crypto;
pub mod keytab;
pub mod msg;
pub mod principal;
pub mod replay;
