//! Certificates, keys, chains and trust directories.

use std::path::Path;

use certs::store::{EntryKind, TrustStoreHandle};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::chain::{name, not_after, self_signed, validity, walk_chain};
use super::{Ctx, Window, date};
use crate::cli::certs::{pkinit_san, subject_org};
use crate::config::{Certboot, Config, CrlPolicySetting, Pkinit};

const REISSUE_KDC: &str = "reissue the KDC certificate (docs/configuration.md, [pkinit])";

/// `[pkinit]`: the KDC certificate, its key, chain, SAN/EKU/O= and the
/// device trust directory.
pub(super) fn pkinit(ctx: &mut Ctx, cfg: &Config, p: &Pkinit) {
    let cert_subject = format!("pkinit.kdc_cert {}", p.kdc_cert.display());
    let cert = pem_certs(ctx, &cert_subject, &p.kdc_cert).map(|mut c| c.remove(0));
    let key = pem_key(ctx, "pkinit.kdc_key", &p.kdc_key);
    if let (Some(cert), Some(key)) = (&cert, &key) {
        key_matches(ctx, "pkinit.kdc_key", &p.kdc_key, &cert_subject, cert, key);
    }
    let chain = match &p.kdc_chain {
        Some(path) => {
            let subject = format!("pkinit.kdc_chain {}", path.display());
            pem_certs(ctx, &subject, path).map(|c| (subject, c))
        }
        None => None,
    };
    if let Some(cert) = &cert {
        let renew = "renew the KDC certificate (same realm SAN, EKU and O=)";
        if ctx.expiry(&cert_subject, "the KDC certificate", validity(cert), renew) {
            ctx.pass(format!(
                "KDC certificate valid until {}",
                date(not_after(cert))
            ));
        }
        kdc_identity(ctx, cfg, p, &cert_subject, cert);
        match &chain {
            Some((subject, certs)) => walk_chain(ctx, "KDC", cert, subject, certs),
            None if !self_signed(cert) => ctx.info(
                "pkinit.kdc_chain",
                "not set: replies carry the KDC certificate alone, so devices must already \
                 hold every CA between it and the service-provider root",
            ),
            None => {}
        }
    }
    trust_dir(
        ctx,
        cfg,
        "pkinit.device_trust_dir",
        &p.device_trust_dir,
        p.crl_policy,
    );
}

/// id-pkinit-san `krbtgt/REALM@REALM` and EKU id-pkinit-KPKdc (what RFC
/// 4556 §3.2.4 has clients check), and O= (what PacketCable MTAs compare
/// with their realm organization name).
fn kdc_identity(ctx: &mut Ctx, cfg: &Config, p: &Pkinit, subject: &str, cert: &X509) {
    let der = cert.to_der().unwrap_or_default();
    let want = format!("krbtgt/{0}@{0}", cfg.realm);
    match pkinit_san(&der) {
        Some(san) if san == want => ctx.pass(format!("KDC certificate SAN {want}")),
        Some(san) => ctx.error(
            subject,
            format!(
                "its id-pkinit-san is {san}, not {want}: devices of realm {} refuse replies \
                 signed with it",
                cfg.realm
            ),
            &format!(
                "{REISSUE_KDC} for realm {}, or point kdc_cert at that realm's certificate",
                cfg.realm
            ),
        ),
        None => ctx.error(
            subject,
            format!("it has no id-pkinit-san (1.3.6.1.5.2.2) subjectAltName; devices need {want}"),
            REISSUE_KDC,
        ),
    }
    let eku = x509_parser::parse_x509_certificate(&der)
        .ok()
        .and_then(|(_, c)| {
            c.extended_key_usage().ok().flatten().map(|e| {
                e.value
                    .other
                    .iter()
                    .any(|o| o.to_id_string() == certs::pki::OID_PKINIT_KP_KDC)
            })
        });
    if eku != Some(true) {
        ctx.error(
            subject,
            format!(
                "its extended key usage lacks id-pkinit-KPKdc ({}): devices refuse it as a KDC \
                 certificate",
                certs::pki::OID_PKINIT_KP_KDC
            ),
            REISSUE_KDC,
        );
    }
    let org = subject_org(cert);
    match (&p.realm_org_name, &org) {
        (Some(want), Some(o)) if o == want => ctx.pass(format!("KDC certificate O={o}")),
        (Some(want), got) => ctx.error(
            subject,
            format!(
                "its subject O={} differs from pkinit.realm_org_name {want:?}: MTAs compare O= \
                 with the realm organization name they are configured with",
                got.as_deref().unwrap_or("(none)")
            ),
            &format!("{REISSUE_KDC} with O={want}, or correct pkinit.realm_org_name"),
        ),
        (None, got) => ctx.info(
            subject,
            format!(
                "subject O={} (set pkinit.realm_org_name to the MTAs' realm organization name \
                 to have it checked)",
                got.as_deref().unwrap_or("(none)")
            ),
        ),
    }
}

/// `[certboot]`: server certificate, key, chain; its own trust directory
/// when it has one; the credentials file.
pub(super) fn certboot(ctx: &mut Ctx, cfg: &Config, c: &Certboot) {
    let cert_subject = format!("certboot.server_cert {}", c.server_cert.display());
    let certs = pem_certs(ctx, &cert_subject, &c.server_cert);
    let key = pem_key(ctx, "certboot.server_key", &c.server_key);
    let extra = match &c.server_chain {
        Some(path) => {
            let subject = format!("certboot.server_chain {}", path.display());
            pem_certs(ctx, &subject, path).map(|c| (subject, c))
        }
        None => None,
    };
    if let Some(certs) = certs {
        let leaf = &certs[0];
        if let Some(key) = &key {
            key_matches(
                ctx,
                "certboot.server_key",
                &c.server_key,
                &cert_subject,
                leaf,
                key,
            );
        }
        let renew = "renew the certificate-bootstrapping server certificate";
        if ctx.expiry(
            &cert_subject,
            "the certboot server certificate",
            validity(leaf),
            renew,
        ) {
            ctx.pass(format!(
                "certboot server certificate valid until {}",
                date(not_after(leaf))
            ));
        }
        let mut rest = certs[1..].to_vec();
        let mut from = cert_subject.clone();
        if let Some((subject, more)) = &extra {
            rest.extend(more.iter().cloned());
            from = format!("{cert_subject} + {subject}");
        }
        if !rest.is_empty() {
            walk_chain(ctx, "certboot server", leaf, &from, &rest);
        }
    }
    let (pkinit_dir, pkinit_policy) = match &cfg.pkinit {
        Some(p) => (Some(&p.device_trust_dir), Some(p.crl_policy)),
        None => (None, None),
    };
    // As `serve`: certboot shares PKINIT's store unless it names another
    // directory or its own CRL policy.
    if let Some(dir) = c.device_trust_dir.as_ref().or(pkinit_dir) {
        let policy = c.crl_policy.or(pkinit_policy).unwrap_or_default();
        let shared = pkinit_dir.is_some_and(|d| same_path(d, dir)) && c.crl_policy.is_none();
        if !shared {
            trust_dir(ctx, cfg, "certboot.device_trust_dir", dir, policy);
        }
    }
    if let Some(path) = &c.credentials_file {
        match ::certboot::creds::FileStore::open(path) {
            Ok(s) => ctx.pass(format!("certboot credentials ({} devices)", s.len())),
            Err(e) => ctx.error(
                format!("certboot.credentials_file {}", path.display()),
                format!("cannot be loaded: {e}"),
                "fix the file (docs/certboot.md lists its schema)",
            ),
        }
    }
}

/// Loads the trust directory as `serve` would (with the CRLs of
/// `crl_fetch.cache_dir`) and checks every anchor, intermediate and CRL for
/// expiry. With `[crl_fetch]` an out-of-date CRL is a warning, not an
/// error: `serve` fetches a new one at start-up, so a pre-start check must
/// not keep it from starting.
fn trust_dir(ctx: &mut Ctx, cfg: &Config, key: &str, dir: &Path, policy: CrlPolicySetting) {
    let subject = format!("{key} {}", dir.display());
    let store = match TrustStoreHandle::open(dir, policy.policy()) {
        Ok(h) => {
            if let Some(cache) = cfg.crl_fetch.as_ref().and_then(|f| f.cache_dir.as_ref()) {
                let skew = i64::try_from(cfg.policy.clock_skew_secs).unwrap_or(0);
                for (path, bytes) in crate::crl_fetch::cached_crls(cache, usize::MAX) {
                    let _ = h.install_crl(&bytes, &path.display().to_string(), ctx.now, skew);
                }
            }
            h.load()
        }
        Err(e) => {
            ctx.error(
                subject,
                format!("does not load: {e}"),
                "remove or replace the file named (only CA certificates and CRLs belong there), \
                 or fix the path",
            );
            return;
        }
    };
    let fetching = cfg.crl_fetch.is_some();
    let mut fine = 0;
    for e in store.entries() {
        let (what, window, renew) = match e.kind {
            EntryKind::Crl => (
                format!("the CRL of {}", e.subject),
                Window::Crl {
                    next_update: e.expires,
                },
                if policy == CrlPolicySetting::Off {
                    "publish a fresh CRL from that CA into the directory (crl_policy off: not used)"
                } else {
                    "publish a fresh CRL from that CA into the directory: with an out-of-date CRL \
                     its devices are refused"
                },
            ),
            EntryKind::Anchor | EntryKind::Intermediate => (
                format!("CA certificate {}", e.subject),
                Window::Cert {
                    not_before: None,
                    not_after: e.expires,
                },
                "replace it with the CA's renewed certificate",
            ),
        };
        let at = format!("{key} {}", e.path.display());
        if fetching && e.kind == EntryKind::Crl && e.expires <= ctx.now {
            ctx.warn(
                at,
                format!("{what} was due for its next update on {}", date(e.expires)),
                "[crl_fetch] fetches a current one at start-up; until it has, devices under \
                 that CA are refused: check that its URL serves one",
            );
            continue;
        }
        if ctx.expiry(&at, &what, window, renew) {
            fine += 1;
        }
    }
    if fine == store.entries().len() {
        ctx.pass(format!(
            "{key}: {} anchor(s), {} intermediate(s), {} CRL(s)",
            store.anchors().len(),
            store.intermediates().len(),
            store.crls().len()
        ));
    }
}

/// Every certificate of a PEM file (what `serve` reads), or an error finding.
fn pem_certs(ctx: &mut Ctx, subject: &str, path: &Path) -> Option<Vec<X509>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            ctx.error(
                subject,
                format!("cannot be read: {e}"),
                "fix the path or the file's permissions",
            );
            return None;
        }
    };
    match X509::stack_from_pem(&bytes) {
        Ok(c) if !c.is_empty() => Some(c),
        _ => {
            ctx.error(
                subject,
                "holds no PEM certificate",
                "point it at a PEM file (-----BEGIN CERTIFICATE-----)",
            );
            None
        }
    }
}

fn pem_key(ctx: &mut Ctx, key: &str, path: &Path) -> Option<PKey<Private>> {
    let subject = format!("{key} {}", path.display());
    match std::fs::read(path) {
        Err(e) => ctx.error(
            subject,
            format!("cannot be read: {e}"),
            "fix the path or the file's permissions (the service user must read it)",
        ),
        Ok(bytes) => match PKey::private_key_from_pem(&bytes) {
            Ok(k) => return Some(k),
            Err(_) => ctx.error(
                subject,
                "is not an unencrypted PEM private key",
                "point it at the PEM key (PKCS#8 or traditional RSA, not encrypted)",
            ),
        },
    }
    None
}

fn key_matches(
    ctx: &mut Ctx,
    key: &str,
    key_path: &Path,
    cert_subject: &str,
    cert: &X509,
    pkey: &PKey<Private>,
) {
    let matches = cert
        .public_key()
        .map(|k| k.public_eq(pkey))
        .unwrap_or(false);
    if matches {
        ctx.pass(format!("{key} matches"));
    } else {
        ctx.error(
            format!("{key} {}", key_path.display()),
            format!(
                "does not belong to the certificate in {cert_subject} ({})",
                name(cert)
            ),
            "use the key the certificate was issued for, or reissue the certificate for this key",
        );
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
