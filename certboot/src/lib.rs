//! PacketCable certificate bootstrapping (PKT-SP-EUE-PROV §6.6.5): an HTTPS
//! endpoint over mutual TLS where a device proves itself with its factory
//! certificate and receives its IMS credentials as an XML profile.

pub mod conn_limits;
pub mod creds;
pub mod failures;
pub mod http;
pub mod profile;
pub mod rotation;
pub mod server;
pub mod tls;
