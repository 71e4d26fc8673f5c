//! Gauges computed at scrape time from the service's state: cache sizes,
//! the CPU pool, trust generations and every certificate's and CRL's time
//! to expiry.
//!
//! The expiry gauges carry the subject as a label and their set changes
//! when a CA is added or removed, so they are written here as exposition
//! text on each scrape rather than registered with the exporter (which
//! cannot forget a series: a removed CA would keep alerting).

use std::fmt::Write;
use std::sync::Arc;

use certs::store::{EntryKind, TrustStoreHandle};
use openssl::x509::X509Ref;

use crate::certboot_service::Watched;
use kdc::kdc::Kdc;

/// What the scrape reads besides the exporter's own series.
pub struct ServiceState {
    pub kdc: Arc<Kdc>,
    pub certboot: Option<Arc<Watched>>,
    pub crl_fetch: Option<Arc<crate::crl_fetch::CrlFetcher>>,
}

impl ServiceState {
    /// Updates the registered state gauges and returns the expiry series
    /// as exposition text.
    pub fn refresh(&self) -> String {
        let kdc = &self.kdc;
        let (lookaside, _) = kdc.lookaside.size();
        metrics::gauge!("pktc_cache_entries", "cache" => "lookaside").set(lookaside as f64);
        metrics::gauge!("pktc_cache_entries", "cache" => "replay").set(kdc.replay.len() as f64);
        let mut expiry = Vec::new();
        if let Some(pk) = &kdc.pkinit {
            metrics::gauge!("pktc_cpu_pool_queue_depth").set(pk.gate.waiting() as f64);
            metrics::gauge!("pktc_cpu_pool_threads").set(pk.gate.threads() as f64);
            let store = pk.trust.load();
            metrics::gauge!("pktc_cache_entries", "cache" => "cert_chain")
                .set(store.cache_len() as f64);
            metrics::counter!("pktc_cache_lookups_total", "cache" => "cert_chain", "result" => "hit")
                .absolute(store.cache_hits());
            trust_gauges("device", &pk.trust, &mut expiry);
            let identity = pk.identity.load();
            cert_expiry("kdc", &identity.cert, &mut expiry);
            for c in &identity.chain {
                cert_expiry("kdc_chain", c, &mut expiry);
            }
        }
        if let Some(c) = &self.certboot {
            if let Some(t) = c.own_trust() {
                trust_gauges("certboot", t, &mut expiry);
            }
            let id = c.identity();
            for (i, cert) in id.1.chain.iter().enumerate() {
                let kind = if i == 0 {
                    "certboot_server"
                } else {
                    "certboot_chain"
                };
                cert_expiry(kind, cert, &mut expiry);
            }
            c.redis_gauges();
        }
        exposition(&expiry) + &self.crl_series()
    }

    /// The CRLs in use (every store) and the fetcher's sources.
    fn crl_series(&self) -> String {
        let mut stores = Vec::new();
        if let Some(pk) = &self.kdc.pkinit {
            stores.push(("device", &*pk.trust));
        }
        if let Some(t) = self.certboot.as_ref().and_then(|c| c.own_trust()) {
            stores.push(("certboot", &**t));
        }
        crate::crl_fetch::crl_exposition(&stores)
            + &crate::crl_fetch::fetcher_exposition(self.crl_fetch.as_deref())
    }
}

/// (kind, subject, seconds until expiry)
type Expiry = (&'static str, String, f64);

fn trust_gauges(store: &'static str, handle: &TrustStoreHandle, out: &mut Vec<Expiry>) {
    let t = handle.load();
    metrics::gauge!("pktc_trust_generation", "store" => store).set(t.generation() as f64);
    let loaded = t
        .loaded_at()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!("pktc_trust_loaded_timestamp_seconds", "store" => store)
        .set(loaded.as_secs_f64());
    for e in t.entries() {
        let kind = match e.kind {
            EntryKind::Anchor => "anchor",
            EntryKind::Intermediate => "intermediate",
            EntryKind::Crl => "crl",
        };
        // A CRL without nextUpdate never expires: no series.
        if e.expires != i64::MAX {
            out.push((
                kind,
                e.subject.clone(),
                crate::metrics::seconds_until(e.expires),
            ));
        }
    }
}

fn cert_expiry(kind: &'static str, cert: &X509Ref, out: &mut Vec<Expiry>) {
    if let Ok(not_after) = certs::time::unix(cert.not_after()) {
        let subject = certs::name_string(cert.subject_name());
        out.push((kind, subject, crate::metrics::seconds_until(not_after)));
    }
}

fn exposition(series: &[Expiry]) -> String {
    let mut s = String::new();
    if series.is_empty() {
        return s;
    }
    s.push_str(
        "# HELP pktc_cert_expiry_seconds Seconds until notAfter (CRLs: nextUpdate); negative once expired\n\
         # TYPE pktc_cert_expiry_seconds gauge\n",
    );
    for (kind, subject, secs) in series {
        let _ = writeln!(
            s,
            "pktc_cert_expiry_seconds{{kind=\"{kind}\",subject=\"{}\"}} {secs}",
            escape_label(subject)
        );
    }
    s
}

/// Prometheus text format label escaping: backslash, quote, newline.
pub(crate) fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_text() {
        let text = exposition(&[("anchor", "C=US, O=\"Q\"\\x".into(), -5.0)]);
        assert!(text.contains("# TYPE pktc_cert_expiry_seconds gauge\n"));
        assert!(
            text.contains(
                r#"pktc_cert_expiry_seconds{kind="anchor",subject="C=US, O=\"Q\"\\x"} -5"#
            ),
            "{text}"
        );
        assert_eq!(exposition(&[]), "");
    }
}
