//! The client's public value: clientPublicValue decoded, its group
//! identified and the value range- or curve-checked.

use std::fmt;

use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::pkey::{PKey, Public};
use rasn::types::{BitString, Oid};
use rasn_pkix::SubjectPublicKeyInfo;

use super::group::modp_group_from_params;
use super::{DhError, Group, der, malformed};
use crate::asn1::oid;

/// dhKeyAgreement (PKCS #3), accepted as an alias of dhpublicnumber.
const DH_KEY_AGREEMENT: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 3, 1]);

/// The client's validated public value.
#[derive(Clone)]
pub struct ClientPublic {
    /// The group the client chose.
    pub group: Group,
    pub(super) value: PeerValue,
}

#[derive(Clone)]
pub(super) enum PeerValue {
    /// y, big-endian magnitude, 1 < y < p-1.
    Modp(Vec<u8>),
    /// On-curve, not infinity.
    Ec(PKey<Public>),
}

impl fmt::Debug for ClientPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientPublic")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl ClientPublic {
    /// [`Group::check_min_bits`] for the client's group.
    pub fn check_min_bits(&self, min_bits: u32) -> Result<(), DhError> {
        self.group.check_min_bits(min_bits)
    }
}

/// The BIT STRING's bytes; unused bits are malformed.
fn bit_string_bytes(bits: &BitString) -> Result<&[u8], DhError> {
    if !bits.len().is_multiple_of(8) {
        return Err(malformed("public key BIT STRING with unused bits"));
    }
    Ok(bits.as_raw_slice())
}

/// Parses a MODP public value: DER INTEGER with 1 < y < p-1.
pub(super) fn parse_modp_public(group: Group, encoded: &[u8]) -> Result<Vec<u8>, DhError> {
    let p = group.prime().ok_or(DhError::UnknownGroup)?;
    let contents = der::read_exact(encoded, der::TAG_INTEGER)?;
    let (neg, y) = der::integer_magnitude(contents)?;
    if neg || !modp_in_range(p, y) {
        return Err(DhError::BadPublicValue);
    }
    Ok(y.to_vec())
}

/// 1 < y < p-1 for big-endian magnitudes without leading zeros (p odd, so
/// p-1 differs from p only in the last byte).
fn modp_in_range(p: &[u8], y: &[u8]) -> bool {
    // y >= 2
    let ge2 = y.len() > 1 || y.first().is_some_and(|&b| b >= 2);
    if !ge2 {
        return false;
    }
    if y.len() != p.len() {
        return y.len() < p.len();
    }
    // y < p - 1: compare with p-1 (last byte of an odd p minus one).
    let mut pm1 = p.to_vec();
    if let Some(last) = pm1.last_mut() {
        *last &= 0xfe;
    }
    y < pm1.as_slice()
}

pub(super) fn ec_group(group: Group) -> Result<EcGroup, DhError> {
    let nid = group.nid().ok_or(DhError::UnknownGroup)?;
    Ok(EcGroup::from_curve_name(nid)?)
}

/// Decodes and validates an ECPoint (uncompressed 04 or compressed 02/03).
pub(super) fn parse_ec_point(group: Group, encoded: &[u8]) -> Result<PKey<Public>, DhError> {
    let flen = group.secret_len();
    match encoded.first() {
        Some(0x04) if encoded.len() == 1 + 2 * flen => {}
        Some(0x02 | 0x03) if encoded.len() == 1 + flen => {}
        _ => return Err(DhError::BadPublicValue),
    }
    let g = ec_group(group)?;
    let mut ctx = BigNumContext::new()?;
    let point = EcPoint::from_bytes(&g, encoded, &mut ctx).map_err(|_| DhError::BadPublicValue)?;
    if point.is_infinity(&g) || !point.is_on_curve(&g, &mut ctx).unwrap_or(false) {
        return Err(DhError::BadPublicValue);
    }
    let key = EcKey::from_public_key(&g, &point).map_err(|_| DhError::BadPublicValue)?;
    Ok(PKey::from_ec_key(key)?)
}

/// Validates the AuthPack's clientPublicValue and identifies its group.
///
/// MODP: `dhpublicnumber` (or PKCS #3 `dhKeyAgreement`) whose p and g = 2
/// match a known prime; q may be absent, but if present must be (p-1)/2.
/// EC: `id-ecPublicKey` with namedCurve P-256, P-384 or P-521. No policy is
/// applied: call [`ClientPublic::check_min_bits`].
pub fn parse_client_public(spki: &SubjectPublicKeyInfo) -> Result<ClientPublic, DhError> {
    let alg = &spki.algorithm;
    let key = bit_string_bytes(&spki.subject_public_key)?;
    let params = alg
        .parameters
        .as_ref()
        .map(|a| a.as_bytes())
        .ok_or_else(|| malformed("public key algorithm without parameters"))?;
    if alg.algorithm == *oid::DH_PUBLIC_NUMBER || alg.algorithm == *DH_KEY_AGREEMENT {
        let group = modp_group_from_params(params, alg.algorithm == *DH_KEY_AGREEMENT)?;
        let y = parse_modp_public(group, key)?;
        Ok(ClientPublic {
            group,
            value: PeerValue::Modp(y),
        })
    } else if alg.algorithm == *oid::EC_PUBLIC_KEY {
        // ECParameters: only namedCurve; implicitCurve / specifiedCurve are
        // unknown groups, anything that is not one DER element is malformed.
        let (tag, _, rest) = der::read_tlv(params)?;
        if !rest.is_empty() {
            return Err(malformed("trailing bytes after ECParameters"));
        }
        if tag != der::TAG_OID {
            return Err(DhError::UnknownGroup);
        }
        let group = Group::ALL
            .into_iter()
            .find(|g| g.curve_oid_der() == Some(params))
            .ok_or(DhError::UnknownGroup)?;
        let peer = parse_ec_point(group, key)?;
        Ok(ClientPublic {
            group,
            value: PeerValue::Ec(peer),
        })
    } else {
        Err(DhError::UnknownGroup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_check() {
        let p = Group::Modp2048.prime().unwrap();
        let mut pm1 = p.to_vec();
        *pm1.last_mut().unwrap() -= 1;
        let mut pm2 = p.to_vec();
        *pm2.last_mut().unwrap() -= 2;
        assert!(!modp_in_range(p, &[]));
        assert!(!modp_in_range(p, &[1]));
        assert!(modp_in_range(p, &[2]));
        assert!(modp_in_range(p, &pm2));
        assert!(!modp_in_range(p, &pm1));
        assert!(!modp_in_range(p, p));
        assert!(!modp_in_range(p, &[1u8; 257]));
    }
}
