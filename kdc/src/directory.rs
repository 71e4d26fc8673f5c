//! Which FQDN (and addresses) belong to a device MAC. The static table
//! from the config implements it now; the MPS lookup (pkt-eue-7) will.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

pub use fqdn_map::client::{Binding as DeviceBinding, LookupError};

pub type LookupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<DeviceBinding, LookupError>> + Send + 'a>>;

/// Device MAC → binding. `mps_hint` is the PA-PROV-SRV-LOCATION the device sent.
pub trait DeviceDirectory: Send + Sync {
    fn lookup<'a>(&'a self, mac: [u8; 6], mps_hint: Option<&'a str>) -> LookupFuture<'a>;
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
    fn lookup<'a>(&'a self, mac: [u8; 6], _mps_hint: Option<&'a str>) -> LookupFuture<'a> {
        let r = self.table.get(&mac).cloned().ok_or(LookupError::UnknownMac);
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
