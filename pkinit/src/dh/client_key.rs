//! The device side of the agreement (device simulator, tests).

use std::fmt;

use rasn::types::{Any, BitString};
use rasn_pkix::{AlgorithmIdentifier, SubjectPublicKeyInfo};
use zeroize::Zeroizing;

use super::agreement::{KeyPair, ecdh};
use super::group::domain_parameters_der;
use super::public::{parse_ec_point, parse_modp_public};
use super::{DhError, Group};
use crate::asn1::oid;

/// The client side (device simulator, tests): an ephemeral key, the SPKI to
/// put in AuthPack.clientPublicValue, and the shared secret from the KDC's
/// subjectPublicKey.
pub struct ClientKey {
    group: Group,
    inner: KeyPair,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// A fresh key in `group`.
    pub fn generate(group: Group) -> Result<ClientKey, DhError> {
        Ok(ClientKey {
            group,
            inner: KeyPair::generate(group)?,
        })
    }

    /// The key's group.
    pub fn group(&self) -> Group {
        self.group
    }

    /// clientPublicValue: dhpublicnumber with DomainParameters {p, g, q} and
    /// the DER INTEGER y (MODP), or id-ecPublicKey + namedCurve and the
    /// uncompressed point (EC).
    pub fn spki(&self) -> SubjectPublicKeyInfo {
        match &self.inner {
            KeyPair::Modp(k) => SubjectPublicKeyInfo {
                algorithm: dh_algorithm_identifier(self.group.prime().unwrap_or(&[])),
                subject_public_key: BitString::from_vec(k.public_der()),
            },
            KeyPair::Ec { public, .. } => SubjectPublicKeyInfo {
                algorithm: AlgorithmIdentifier {
                    algorithm: oid::EC_PUBLIC_KEY.to_owned(),
                    parameters: self.group.curve_oid_der().map(|d| Any::new(d.to_vec())),
                },
                subject_public_key: BitString::from_vec(public.clone()),
            },
        }
    }

    /// The shared secret from KDCDHKeyInfo.subjectPublicKey's bytes
    /// (validated like the KDC validates the client's value).
    pub fn finish(&self, server_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
        match &self.inner {
            KeyPair::Modp(k) => {
                let y = parse_modp_public(self.group, server_public)?;
                k.agree(&y)
            }
            KeyPair::Ec { key, .. } => {
                let peer = parse_ec_point(self.group, server_public)?;
                ecdh(key, &peer, self.group.secret_len())
            }
        }
    }
}

fn dh_algorithm_identifier(p: &[u8]) -> AlgorithmIdentifier {
    AlgorithmIdentifier {
        algorithm: oid::DH_PUBLIC_NUMBER.to_owned(),
        parameters: Some(Any::new(domain_parameters_der(p))),
    }
}
