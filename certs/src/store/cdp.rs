//! CRL Distribution Points (RFC 5280 §4.2.1.13) of the store's CA
//! certificates: where the CRL of each certificate's *issuer* is published.

use openssl::x509::X509Ref;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};

use super::TrustStore;
use super::load::name_string;

/// One distribution point URI named by a CA certificate of the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DistributionPoint {
    /// As written in the certificate (any scheme: `http:`, `ldap:`, ...).
    pub url: String,
    /// Subject of the certificate that names it.
    pub named_by: String,
    /// Whose CRL it should serve: that certificate's issuer.
    pub crl_issuer: String,
}

impl TrustStore {
    /// Every distribution point URI (fullName) of the anchors' and
    /// intermediates' CRL Distribution Points, sorted, without duplicates.
    /// Relative names and points with a cRLIssuer of their own are skipped
    /// (indirect CRLs are not supported).
    pub fn distribution_points(&self) -> Vec<DistributionPoint> {
        let mut out: Vec<DistributionPoint> = self
            .anchors
            .iter()
            .chain(&self.intermediates)
            .flat_map(|c| points_of(c))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn points_of(cert: &X509Ref) -> Vec<DistributionPoint> {
    let Ok(der) = cert.to_der() else {
        return Vec::new();
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&der) else {
        return Vec::new();
    };
    let (named_by, crl_issuer) = (
        name_string(cert.subject_name()),
        name_string(cert.issuer_name()),
    );
    let mut out = Vec::new();
    for ext in parsed.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for point in points.iter().filter(|p| p.crl_issuer.is_none()) {
            let Some(DistributionPointName::FullName(names)) = &point.distribution_point else {
                continue;
            };
            for name in names {
                if let GeneralName::URI(uri) = name {
                    out.push(DistributionPoint {
                        url: (*uri).to_owned(),
                        named_by: named_by.clone(),
                        crl_issuer: crl_issuer.clone(),
                    });
                }
            }
        }
    }
    out
}
