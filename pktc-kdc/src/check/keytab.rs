//! The keytab: readable, with krbtgt and the keys `[mps]` needs.

use krb::crypto::EncType;
use krb::keytab::Keytab;
use krb::principal::Principal;

use super::Ctx;
use crate::config::Config;
use kdc::db::PrincipalDb;

/// Reads the keytab as `serve` does; returns the principals for the MPS probe.
pub(super) fn check(ctx: &mut Ctx, cfg: &Config) -> Option<PrincipalDb> {
    let subject = format!("keytab {}", cfg.keytab.display());
    let keytab = match Keytab::read_file(&cfg.keytab) {
        Ok(k) => k,
        Err(e) => {
            ctx.error(
                subject,
                format!("cannot be read: {e}"),
                "fix the path or permissions, or create it with `pktc-kdc keytab add`",
            );
            return None;
        }
    };
    let enctypes = cfg.enctypes().unwrap_or_else(|_| EncType::ALL.to_vec());
    let db = match PrincipalDb::from_keytab(&keytab, &cfg.realm, &enctypes) {
        Ok((db, _)) => db,
        Err(e) => {
            ctx.error(
                subject,
                format!("holds a key that cannot be used: {e}"),
                "remove the broken entry (`pktc-kdc keytab list` shows them)",
            );
            return None;
        }
    };
    let kt = cfg.keytab.display();
    let mut required = vec![(
        Principal::krbtgt(&cfg.realm),
        "every ticket is issued with it".to_string(),
        format!(
            "`pktc-kdc keytab add --keytab {kt} --principal krbtgt/{0}@{0}`",
            cfg.realm
        ),
    )];
    for s in cfg.mps.iter().flat_map(|m| &m.servers) {
        let fqdn = s.fqdn.trim_end_matches('.').to_ascii_lowercase();
        let p = Principal::service_host("mtaprovsrvr", &fqdn, &cfg.realm);
        required.push((
            p.clone(),
            format!("[mps] server {fqdn} needs it for pkt-eue-7 lookups"),
            format!(
                "add the key the provisioning server holds for {p} (`pktc-kdc keytab export` \
                 from its keytab, or `pktc-kdc keytab add --keytab {kt} --principal {p} \
                 --password-stdin` with the shared password)"
            ),
        ));
    }
    let mut missing = 0;
    for (p, why, action) in &required {
        if db.get(&p.components).is_some() {
            continue;
        }
        missing += 1;
        let in_keytab = keytab.entries.iter().any(|e| e.principal.same_name(p));
        let message = if in_keytab {
            format!("has keys for {p}, but none of an enctype in policy.enctypes: {why}")
        } else {
            format!("has no key for {p}: {why}")
        };
        ctx.error(subject.clone(), message, action);
    }
    if missing == 0 {
        ctx.pass(format!(
            "keytab holds {} (of {} principals)",
            required
                .iter()
                .map(|(p, ..)| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            db.len()
        ));
    }
    // The provisioning server answers only this name: nobody may get tickets as it.
    if let Some(m) = &cfg.mps
        && let Err(e) = crate::mps_directory::kdc_name(m, &cfg.realm, &db)
    {
        ctx.error(
            "mps.kdc_principal",
            format!("cannot be the KDC's pkt-eue-7 name: {e:#}"),
            "remove it for the default krbtgt/REALM, or name a principal without keys",
        );
    }
    Some(db)
}
