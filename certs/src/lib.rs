//! PacketCable PKI generation and the KDC's trust store.
//!
//! * [`pki`] builds PacketCable-profile certificate hierarchies with the
//!   `openssl` crate: the device side (MTA Root CA → Manufacturer CA → MTA
//!   device certificate, CN = MAC address) and the service-provider side
//!   (SP Root → SP CA → Local System CA → KDC / TLS server certificates),
//!   plus CRLs. It is used for the dev realm, operator tools and tests, behind
//!   the `dev` feature.
//! * [`mac`] parses and formats the MAC address carried in a device
//!   certificate's subject CN.
//! * [`store`] is the trust store: loaded from a directory, immutable once
//!   built, swapped atomically by [`store::TrustStoreHandle`] on reload.
//!
//! The crate never prints and never panics on input; every failure is a
//! typed error.

pub mod mac;
#[cfg(feature = "dev")]
pub mod pki;
pub mod store;
pub mod time;
pub mod watch;

pub use mac::{MacError, device_mac, format_mac, parse_mac};
#[cfg(feature = "dev")]
pub use pki::{
    CertSpec, CrlSpec, DevPki, DevPkiOptions, Digest, Issued, PkiError, Validity, crl, dev_pki,
    device_cert, kdc_cert, local_system_ca, manufacturer_ca, mta_root, sp_ca, sp_root,
    tls_server_cert,
};
pub use store::name_string;
pub use store::{
    ChainError, CrlPolicy, EntryKind, Intermediates, LoadError, TrustEntry, TrustStore,
    TrustStoreHandle, VerifiedChain,
};
