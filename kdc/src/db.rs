//! Keyed principals: the keytab's keys, loaded once at start-up, with the
//! ticket-encryption key derivation done ahead of time for the hot path.

use std::collections::HashMap;

use krb::crypto::{EncType, Key, UsageKey, usage};
use krb::keytab::Keytab;
use krb::principal::{Principal, canonical_components};

/// One long-term key of a principal.
pub struct KeyEntry {
    pub kvno: u32,
    pub key: Key,
    /// `key` derived for key usage 2 (ticket encryption), cached because
    /// every ticket for this principal uses it.
    pub ticket_key: UsageKey,
}

/// A principal with keys; the database key is its name without the realm.
pub struct PrincipalEntry {
    pub principal: Principal,
    /// All kvnos, newest first; within a kvno, strongest etype first.
    pub keys: Vec<KeyEntry>,
}

impl PrincipalEntry {
    fn latest_kvno(&self) -> u32 {
        self.keys.first().map(|k| k.kvno).unwrap_or(0)
    }

    /// The key of `etype`: of the given kvno, else the newest.
    pub fn key(&self, etype: EncType, kvno: Option<u32>) -> Option<&KeyEntry> {
        let kvno = kvno.unwrap_or_else(|| self.latest_kvno());
        self.keys
            .iter()
            .find(|k| k.kvno == kvno && k.key.etype() == etype)
    }

    /// Whether any key has this kvno (to tell "old kvno" from "no such etype").
    pub fn has_kvno(&self, kvno: u32) -> bool {
        self.keys.iter().any(|k| k.kvno == kvno)
    }

    /// The strongest key of the newest kvno: what tickets for it are encrypted in.
    pub fn strongest(&self) -> Option<&KeyEntry> {
        self.keys.first()
    }

    /// Etypes of the newest kvno, strongest first.
    pub fn etypes(&self) -> impl Iterator<Item = EncType> + '_ {
        let kvno = self.latest_kvno();
        self.keys
            .iter()
            .filter(move |k| k.kvno == kvno)
            .map(|k| k.key.etype())
    }
}

/// All keyed principals of the realm, keyed by name components in their
/// canonical form (`krb::principal::canonical_components`: an E-UE IPv6
/// component matches in either case).
pub struct PrincipalDb {
    entries: HashMap<Vec<String>, PrincipalEntry>,
}

fn strength(e: EncType) -> usize {
    EncType::ALL
        .iter()
        .position(|x| *x == e)
        .unwrap_or(usize::MAX)
}

impl PrincipalDb {
    /// Keys of `realm` from a keytab, keeping only permitted etypes. Entries
    /// of other realms or unknown etypes are skipped and counted in the result.
    pub fn from_keytab(
        keytab: &Keytab,
        realm: &str,
        permitted: &[EncType],
    ) -> Result<(PrincipalDb, usize), krb::crypto::CryptoError> {
        let mut entries: HashMap<Vec<String>, PrincipalEntry> = HashMap::new();
        let mut skipped = 0;
        for e in &keytab.entries {
            let Some(etype) = EncType::from_i32(e.enctype) else {
                skipped += 1;
                continue;
            };
            if e.principal.realm != realm || !permitted.contains(&etype) {
                skipped += 1;
                continue;
            }
            let key = Key::new(etype, &e.key)?;
            let entry = KeyEntry {
                kvno: e.kvno,
                ticket_key: key.usage(usage::TICKET),
                key,
            };
            let pe = entries
                .entry(canonical_components(&e.principal.components).into_owned())
                .or_insert_with(|| PrincipalEntry {
                    principal: e.principal.clone(),
                    keys: Vec::new(),
                });
            // A keytab may list the same kvno/etype twice; the last one wins, as in MIT.
            pe.keys
                .retain(|k| !(k.kvno == entry.kvno && k.key.etype() == etype));
            pe.keys.push(entry);
        }
        for pe in entries.values_mut() {
            pe.keys.sort_by(|a, b| {
                b.kvno
                    .cmp(&a.kvno)
                    .then(strength(a.key.etype()).cmp(&strength(b.key.etype())))
            });
        }
        Ok((PrincipalDb { entries }, skipped))
    }

    /// Looks up a principal of our realm by its components (canonicalised,
    /// so every lookup, whichever request or config it comes from, agrees).
    pub fn get(&self, components: &[String]) -> Option<&PrincipalEntry> {
        self.entries.get(canonical_components(components).as_ref())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn principals(&self) -> impl Iterator<Item = &Principal> {
        self.entries.values().map(|e| &e.principal)
    }
}
