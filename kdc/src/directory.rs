//! Which FQDN (and addresses) belong to a device MAC: the static table from
//! the config (here) or the provisioning server's pkt-eue-7 lookup
//! (`pktc_kdc::mps_directory`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use crate::reason::Reason;

pub use fqdn_map::client::{Binding as DeviceBinding, LookupError};

pub type LookupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<DeviceBinding, LookupError>> + Send + 'a>>;

/// What the KDC asks about a device.
#[derive(Debug, Clone)]
pub struct DeviceQuery {
    pub facts: fqdn_map::client::DeviceFacts,
    /// The PA-PROV-SRV-LOCATION the device sent: which provisioning server to ask.
    pub mps_hint: Option<String>,
    /// What the request claims (the FQDN of its `mta/<fqdn>` cname, its
    /// source address), so that a directory with a cache can tell when a
    /// cached answer would refuse it and ask again first; None: not checked.
    pub claim: Option<Claim>,
}

/// A device request's claim, checked the way the KDC checks the answer.
#[derive(Debug, Clone)]
pub struct Claim {
    pub fqdn: String,
    pub source: std::net::IpAddr,
}

/// Whether `answer` (None: unknown MAC) would refuse `claim` (the KDC's
/// own checks: address under `policy`, then the FQDN).
pub fn refuses(policy: AddressPolicy, answer: Option<&DeviceBinding>, claim: &Claim) -> bool {
    match answer {
        None => true,
        Some(b) => {
            check_address(policy, b, claim.source).is_err() || !same_fqdn(&claim.fqdn, &b.fqdn)
        }
    }
}

/// How the request's source address is checked against a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPolicy {
    /// No address check (the static table knows no addresses).
    Ignore,
    /// The source must be one of the binding's addresses; a binding without
    /// addresses ("not supplied") is refused.
    Require,
    /// Checked when the binding has addresses; accepted when it has none.
    IfSupplied,
}

/// Device MAC → binding.
pub trait DeviceDirectory: Send + Sync {
    /// The device's binding. An answer at hand (a table, a cached entry)
    /// must be ready at the first poll: the KDC then finishes the request
    /// in one turn on its serving thread.
    fn lookup<'a>(&'a self, query: &'a DeviceQuery) -> LookupFuture<'a>;

    fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::Ignore
    }

    /// Drops what this replica has cached about `mac` (`pktc-kdc mps
    /// forget`); true if there was an entry. Default: nothing cached.
    fn forget(&self, _mac: &[u8; 6]) -> bool {
        false
    }

    /// Checks the health of what the directory depends on (Redis), so the
    /// metrics say so even when no device asks. Default: nothing to check.
    fn probe(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

/// Why a source address is refused, if it is.
pub fn check_address(
    policy: AddressPolicy,
    binding: &DeviceBinding,
    source: std::net::IpAddr,
) -> Result<(), Reason> {
    let source = match source {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source, std::net::IpAddr::V4),
        v4 => v4,
    };
    match policy {
        AddressPolicy::Ignore => Ok(()),
        _ if binding.addresses.contains(&source) => Ok(()),
        AddressPolicy::IfSupplied if binding.addresses.is_empty() => Ok(()),
        AddressPolicy::Require if binding.addresses.is_empty() => {
            Err(Reason::DeviceAddressNotSupplied)
        }
        _ => Err(Reason::DeviceAddressMismatch),
    }
}

/// The `[[pkinit.devices]]` table.
pub struct StaticDirectory {
    table: HashMap<[u8; 6], DeviceBinding>,
}

impl StaticDirectory {
    /// The table of `(MAC, FQDN)` rows (`[[pkinit.devices]]`).
    pub fn from_rows<'a>(
        devices: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> anyhow::Result<StaticDirectory> {
        let mut table = HashMap::new();
        for (mac_text, fqdn) in devices {
            let mac = certs::mac::parse_mac(mac_text)
                .map_err(|e| anyhow::anyhow!("pkinit.devices: MAC {mac_text:?}: {e}"))?;
            let binding = DeviceBinding {
                fqdn: fqdn.trim_end_matches('.').to_string(),
                addresses: Vec::new(),
            };
            if table.insert(mac, binding).is_some() {
                anyhow::bail!("pkinit.devices: MAC {mac_text} listed twice");
            }
        }
        Ok(StaticDirectory { table })
    }
}

impl DeviceDirectory for StaticDirectory {
    fn lookup<'a>(&'a self, query: &'a DeviceQuery) -> LookupFuture<'a> {
        Box::pin(std::future::ready(self.find(query)))
    }
}

impl StaticDirectory {
    fn find(&self, query: &DeviceQuery) -> Result<DeviceBinding, LookupError> {
        self.table
            .get(&query.facts.mac)
            .cloned()
            .ok_or(LookupError::UnknownMac)
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
    fn address_policies() {
        let b = DeviceBinding {
            fqdn: "d.test".into(),
            addresses: vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        };
        let none = DeviceBinding {
            fqdn: "d.test".into(),
            addresses: vec![],
        };
        let v4 = "10.0.0.1".parse().unwrap();
        assert_eq!(check_address(AddressPolicy::Require, &b, v4), Ok(()));
        assert_eq!(
            check_address(
                AddressPolicy::Require,
                &b,
                "::ffff:10.0.0.1".parse().unwrap()
            ),
            Ok(())
        );
        assert_eq!(
            check_address(AddressPolicy::Require, &b, "::1".parse().unwrap()),
            Ok(())
        );
        assert_eq!(
            check_address(AddressPolicy::Require, &b, "10.0.0.2".parse().unwrap()),
            Err(Reason::DeviceAddressMismatch)
        );
        assert_eq!(
            check_address(AddressPolicy::Require, &none, v4),
            Err(Reason::DeviceAddressNotSupplied)
        );
        assert_eq!(check_address(AddressPolicy::IfSupplied, &none, v4), Ok(()));
        assert_eq!(
            check_address(AddressPolicy::IfSupplied, &b, "10.9.9.9".parse().unwrap()),
            Err(Reason::DeviceAddressMismatch)
        );
        assert_eq!(
            check_address(AddressPolicy::Ignore, &b, "10.9.9.9".parse().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn fqdn_comparison() {
        assert!(same_fqdn("MTA-1.Example.NET.", "mta-1.example.net"));
        assert!(!same_fqdn("mta-1.example.net", "mta-2.example.net"));
    }
}
