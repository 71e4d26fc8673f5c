//! The device directory backed by provisioning servers (pkt-eue-7): the
//! MAC cache first, then the server the device named in
//! PA-PROV-SRV-LOCATION (or the default one), with negative caching of
//! "unknown MAC" and, when the policy allows, the last known answer when
//! the server is silent.

use std::collections::HashMap;

use fqdn_map::cache::{Cached, MappingCache};
use fqdn_map::client::{LookupError, MpsClient, MpsTarget};

use crate::directory::{DeviceDirectory, DeviceQuery, LookupFuture};

/// What to do when no provisioning server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimeout {
    /// Refuse the device (strict; the default).
    Refuse,
    /// Use the last answer for this MAC, if there was one.
    AllowIfCached,
}

pub struct MpsDirectory {
    pub client: MpsClient,
    /// Provisioning servers by FQDN (lower case, no trailing dot).
    pub servers: HashMap<String, MpsTarget>,
    /// The FQDN to ask when the device names none we know.
    pub default_server: String,
    pub cache: MappingCache,
    pub on_timeout: OnTimeout,
}

fn key(fqdn: &str) -> String {
    fqdn.trim_end_matches('.').to_ascii_lowercase()
}

impl MpsDirectory {
    fn target(&self, hint: Option<&str>) -> Option<&MpsTarget> {
        hint.and_then(|h| self.servers.get(&key(h)))
            .or_else(|| self.servers.get(&key(&self.default_server)))
    }

    async fn resolve(&self, query: &DeviceQuery) -> Result<fqdn_map::client::Binding, LookupError> {
        let mac = query.facts.mac;
        match self.cache.get(&mac) {
            Cached::Hit(b) => return Ok(b),
            Cached::Negative => return Err(LookupError::UnknownMac),
            Cached::Miss => {}
        }
        let target = self
            .target(query.mps_hint.as_deref())
            .ok_or_else(|| LookupError::MpsError("no provisioning server configured".into()))?;
        match self.client.lookup(target, &query.facts).await {
            Ok(b) => {
                self.cache.put(mac, b.clone());
                Ok(b)
            }
            Err(LookupError::UnknownMac) => {
                self.cache.put_unknown(mac);
                Err(LookupError::UnknownMac)
            }
            Err(LookupError::Timeout) if self.on_timeout == OnTimeout::AllowIfCached => {
                self.cache.stale(&mac).ok_or(LookupError::Timeout)
            }
            Err(e) => Err(e),
        }
    }
}

impl DeviceDirectory for MpsDirectory {
    fn lookup<'a>(&'a self, query: &'a DeviceQuery) -> LookupFuture<'a> {
        Box::pin(self.resolve(query))
    }
}
