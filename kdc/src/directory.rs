//! Which FQDN (and addresses) belong to a device MAC. The static table
//! from the config implements it now; the MPS lookup (pkt-eue-7) will.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

pub use fqdn_map::client::{Binding as DeviceBinding, LookupError};

pub type LookupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<DeviceBinding, LookupError>> + Send + 'a>>;

/// What the KDC asks about a device.
#[derive(Debug, Clone)]
pub struct DeviceQuery {
    pub facts: fqdn_map::client::DeviceFacts,
    /// The PA-PROV-SRV-LOCATION the device sent: which provisioning server to ask.
    pub mps_hint: Option<String>,
}

/// Device MAC → binding.
pub trait DeviceDirectory: Send + Sync {
    fn lookup<'a>(&'a self, query: &'a DeviceQuery) -> LookupFuture<'a>;
}

/// The `[[pkinit.devices]]` table.
pub struct StaticDirectory {
    table: HashMap<[u8; 6], DeviceBinding>,
}

impl StaticDirectory {
    pub fn from_config(devices: &[crate::config::DeviceEntry]) -> anyhow::Result<StaticDirectory> {
        let mut table = HashMap::new();
        for d in devices {
            let mac = certs::mac::parse_mac(&d.mac)
                .map_err(|e| anyhow::anyhow!("pkinit.devices: MAC {:?}: {e}", d.mac))?;
            let binding = DeviceBinding {
                fqdn: d.fqdn.trim_end_matches('.').to_string(),
                addresses: Vec::new(),
            };
            if table.insert(mac, binding).is_some() {
                anyhow::bail!("pkinit.devices: MAC {} listed twice", d.mac);
            }
        }
        Ok(StaticDirectory { table })
    }
}

impl DeviceDirectory for StaticDirectory {
    fn lookup<'a>(&'a self, query: &'a DeviceQuery) -> LookupFuture<'a> {
        let r = self
            .table
            .get(&query.facts.mac)
            .cloned()
            .ok_or(LookupError::UnknownMac);
        Box::pin(std::future::ready(r))
    }
}

/// FQDNs compare case-insensitively, a trailing dot ignored.
pub fn same_fqdn(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_comparison() {
        assert!(same_fqdn("MTA-1.Example.NET.", "mta-1.example.net"));
        assert!(!same_fqdn("mta-1.example.net", "mta-2.example.net"));
    }
}
