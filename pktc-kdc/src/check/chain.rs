//! Certificate chains as configured (KDC and certboot server): each
//! certificate issued by a CA certificate of the bundle.

use openssl::x509::{X509, X509Ref};

use super::{Ctx, Window};

/// Follows `leaf` up through `rest`: each certificate must be signed by
/// (and name as issuer) a CA certificate in the bundle, until a
/// self-signed one or the end of the bundle. Also checks the expiry of the
/// certificates used, and reports ones not on the path.
pub(super) fn walk_chain(
    ctx: &mut Ctx,
    what: &str,
    leaf: &X509,
    chain_subject: &str,
    rest: &[X509],
) {
    let leaf_der = leaf.to_der().unwrap_or_default();
    let mut remaining: Vec<X509> = Vec::new();
    for c in rest {
        let der = c.to_der().unwrap_or_default();
        if der != leaf_der
            && !remaining
                .iter()
                .any(|r| r.to_der().ok() == Some(der.clone()))
        {
            remaining.push(c.clone());
        }
    }
    let total = remaining.len();
    let mut current = leaf.clone();
    let mut ok = true;
    while !self_signed(&current) {
        let issuer = remaining.iter().position(|c| {
            names_equal(c, &current)
                && c.public_key()
                    .and_then(|k| current.verify(&k))
                    .unwrap_or(false)
        });
        let Some(i) = issuer else {
            if remaining.iter().any(|c| names_equal(c, &current)) {
                ctx.error(
                    chain_subject,
                    format!(
                        "{} is not signed by the key of the {} in this file (a reissued CA?)",
                        name(&current),
                        current_issuer(&current)
                    ),
                    "put the CA certificate that issued it here, or reissue it from this CA",
                );
                ok = false;
            } else if !remaining.is_empty() {
                ctx.error(
                    chain_subject,
                    format!(
                        "the issuer of {} ({}) is not in it; it holds {} instead",
                        name(&current),
                        current_issuer(&current),
                        remaining.iter().map(name).collect::<Vec<_>>().join(" and ")
                    ),
                    &format!("put the {what} certificate's own intermediates here, in order"),
                );
                ok = false;
            }
            break;
        };
        let ca = remaining.remove(i);
        let ca_subject = format!("{chain_subject} ({})", name(&ca));
        if !is_ca(&ca) {
            ctx.error(
                &ca_subject,
                format!(
                    "it signed {} but is not a CA (basicConstraints CA:TRUE and keyCertSign \
                     required): verifiers reject the chain",
                    name(&current)
                ),
                "use the real CA certificate",
            );
            ok = false;
        }
        let renew = "replace it with the CA's renewed certificate";
        ok &= ctx.expiry(&ca_subject, "CA certificate", validity(&ca), renew);
        current = ca;
    }
    if ok && remaining.is_empty() {
        ctx.pass(format!("{what} chain of {} verified", total + 1));
    } else if ok {
        ctx.warn(
            chain_subject,
            format!(
                "holds certificates not on the {what} certificate's chain (sent to every \
                 client, used by none): {}",
                remaining.iter().map(name).collect::<Vec<_>>().join(" and ")
            ),
            "remove them (a certificate left over from before a renewal?)",
        );
    }
}

fn names_equal(issuer: &X509Ref, cert: &X509Ref) -> bool {
    issuer
        .subject_name()
        .try_cmp(cert.issuer_name())
        .is_ok_and(|o| o.is_eq())
}

pub(super) fn self_signed(cert: &X509Ref) -> bool {
    names_equal(cert, cert)
        && cert
            .public_key()
            .and_then(|k| cert.verify(&k))
            .unwrap_or(false)
}

/// basicConstraints CA:TRUE, and keyCertSign when keyUsage is present.
fn is_ca(cert: &X509Ref) -> bool {
    let Ok(der) = cert.to_der() else { return false };
    let Ok((_, c)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    let ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let sign = match c.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    ca && sign
}

fn unix(t: &openssl::asn1::Asn1TimeRef) -> i64 {
    openssl::asn1::Asn1Time::from_unix(0)
        .and_then(|epoch| epoch.diff(t))
        .map(|d| i64::from(d.days) * 86_400 + i64::from(d.secs))
        .unwrap_or(0)
}

pub(super) fn not_after(cert: &X509Ref) -> i64 {
    unix(cert.not_after())
}

pub(super) fn validity(cert: &X509Ref) -> Window {
    Window::Cert {
        not_before: Some(unix(cert.not_before())),
        not_after: not_after(cert),
    }
}

/// `CN=…` (or the whole subject when it has no CN).
pub(super) fn name(cert: &X509) -> String {
    short(cert.subject_name())
}

fn current_issuer(cert: &X509) -> String {
    short(cert.issuer_name())
}

fn short(n: &openssl::x509::X509NameRef) -> String {
    let all: Vec<String> = n
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            format!("{key}={}", e.data().to_string().unwrap_or_default())
        })
        .collect();
    all.iter()
        .find(|e| e.starts_with("CN="))
        .cloned()
        .unwrap_or_else(|| all.join(", "))
}
