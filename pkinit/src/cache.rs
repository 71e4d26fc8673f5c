//! What the KDC keeps across PKINIT requests: parsed intermediates, and
//! device certificates whose chain verified in the current trust-store
//! generation.
//!
//! A device certificate entry is keyed by the SHA-256 of the certificate's
//! DER and belongs to one trust store (generation and load time): a request
//! checked against another store never sees it, and the first request of a
//! newer generation drops every entry. An entry is used only while the
//! request time lies inside the verified chain's validity window (chain
//! certificates and CRLs), and only for the chain: every request's own
//! signature is still checked, with the entry's key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use certs::store::TrustStore;
use openssl::x509::X509;

use crate::cms::CmsError;
use crate::server::VerifiedDevice;

/// Default bound on cached device certificates (`pkinit.device_cache_entries`).
pub const DEFAULT_DEVICE_ENTRIES: usize = 100_000;

/// The trust store a cached verification belongs to. Generations increase
/// per [`certs::store::TrustStoreHandle`]; the load time tells apart stores
/// of different handles that happen to share a generation number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoreId {
    generation: u64,
    loaded_at: SystemTime,
}

impl StoreId {
    fn of(t: &TrustStore) -> StoreId {
        StoreId {
            generation: t.generation(),
            loaded_at: t.loaded_at(),
        }
    }
}

#[derive(Default)]
struct Devices {
    store: Option<StoreId>,
    map: HashMap<[u8; 32], Arc<VerifiedDevice>>,
}

impl Devices {
    /// Whether entries for `id` may be read or written; a store newer than
    /// the cached one (or another store of the same generation) drops the
    /// cache and takes it over. An older generation (a request still holding
    /// the store a reload replaced) bypasses it.
    fn usable_for(&mut self, id: StoreId) -> bool {
        match self.store {
            Some(s) if s == id => true,
            Some(s) if id.generation < s.generation => false,
            _ => {
                self.map.clear();
                self.store = Some(id);
                true
            }
        }
    }
}

/// Parsed intermediates by SHA-256 of their DER (every device of a
/// manufacturer sends the same manufacturer CA: parsed once, not per
/// request; bounded, cleared when full), and verified device certificates
/// (bounded, one arbitrary entry evicted when full).
pub struct CertCache {
    map: Mutex<HashMap<[u8; 32], X509>>,
    capacity: usize,
    devices: Mutex<Devices>,
    device_capacity: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CertCache {
    /// Up to `capacity` intermediates and [`DEFAULT_DEVICE_ENTRIES`] devices.
    pub fn new(capacity: usize) -> CertCache {
        CertCache {
            map: Mutex::new(HashMap::new()),
            capacity,
            devices: Mutex::new(Devices::default()),
            device_capacity: DEFAULT_DEVICE_ENTRIES,
        }
    }

    /// Bounds the verified device certificates kept (0: none are).
    pub fn with_device_capacity(mut self, entries: usize) -> CertCache {
        self.device_capacity = entries;
        self
    }

    pub(crate) fn parse(&self, der: &[u8]) -> Result<X509, CmsError> {
        let key: [u8; 32] = openssl::sha::sha256(der);
        let mut map = lock(&self.map);
        if let Some(x) = map.get(&key) {
            return Ok(x.clone());
        }
        let x = X509::from_der(der)?;
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, x.clone());
        Ok(x)
    }

    /// Number of cached intermediates.
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of cached device certificates (of the newest store seen).
    pub fn device_len(&self) -> usize {
        lock(&self.devices).map.len()
    }

    /// The device certificate with DER digest `fingerprint`, verified
    /// against `trust` with a result that holds at Unix time `at`.
    pub(crate) fn device(
        &self,
        trust: &TrustStore,
        fingerprint: &[u8; 32],
        at: i64,
    ) -> Option<Arc<VerifiedDevice>> {
        if self.device_capacity == 0 {
            return None;
        }
        let mut d = lock(&self.devices);
        if !d.usable_for(StoreId::of(trust)) {
            return None;
        }
        d.map
            .get(fingerprint)
            .filter(|v| (v.valid_from..=v.valid_until).contains(&at))
            .cloned()
    }

    /// Remembers a device certificate whose chain `trust` verified.
    pub(crate) fn insert_device(&self, trust: &TrustStore, device: Arc<VerifiedDevice>) {
        if self.device_capacity == 0 {
            return;
        }
        let mut d = lock(&self.devices);
        if !d.usable_for(StoreId::of(trust)) {
            return;
        }
        if d.map.len() >= self.device_capacity
            && !d.map.contains_key(&device.fingerprint)
            && let Some(victim) = d.map.keys().next().copied()
        {
            d.map.remove(&victim);
        }
        d.map.insert(device.fingerprint, device);
    }
}
