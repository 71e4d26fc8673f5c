//! Key-agreement groups: the MODP primes and NIST curves, their DER
//! domain parameters, and TD-DH-PARAMETERS.

use openssl::nid::Nid;
use rasn_pkix::AlgorithmIdentifier;

use super::{DhError, der, malformed, primes};
use crate::asn1::oid;

/// DER of the dhpublicnumber OID 1.2.840.10046.2.1.
const DH_PUBLIC_NUMBER_DER: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3e, 0x02, 0x01];

/// A key-agreement group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// Oakley group 2 (RFC 2409, 1024-bit MODP): recognised, refused as too
    /// weak by any policy of 2048 bits or more.
    Modp1024,
    /// RFC 3526 group 14 (2048-bit MODP): what MIT kinit sends.
    Modp2048,
    /// RFC 3526 group 15 (3072-bit MODP).
    Modp3072,
    /// RFC 3526 group 16 (4096-bit MODP).
    Modp4096,
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
}

impl Group {
    /// All groups, MODP by size then EC by size.
    pub const ALL: [Group; 7] = [
        Group::Modp1024,
        Group::Modp2048,
        Group::Modp3072,
        Group::Modp4096,
        Group::P256,
        Group::P384,
        Group::P521,
    ];

    /// Size: bits of p (MODP) or of the curve's field (EC).
    pub fn bits(self) -> u32 {
        match self {
            Group::Modp1024 => 1024,
            Group::Modp2048 => 2048,
            Group::Modp3072 => 3072,
            Group::Modp4096 => 4096,
            Group::P256 => 256,
            Group::P384 => 384,
            Group::P521 => 521,
        }
    }

    /// The MODP size of comparable strength (NIST SP 800-57): the MODP bits
    /// themselves, 3072 for P-256, 7680 for P-384, 15360 for P-521. This is
    /// what a "DH minimum bits" policy compares against (MIT orders
    /// 1024 < 2048 < P-256 < 4096 < P-384 < 8192 < P-521 the same way).
    pub fn modp_equivalent_bits(self) -> u32 {
        match self {
            Group::P256 => 3072,
            Group::P384 => 7680,
            Group::P521 => 15360,
            modp => modp.bits(),
        }
    }

    /// `Err(TooWeak)` if the group is below a minimum of `min_bits`
    /// (compared with [`Group::modp_equivalent_bits`]).
    pub fn check_min_bits(self, min_bits: u32) -> Result<(), DhError> {
        if self.modp_equivalent_bits() < min_bits {
            Err(DhError::TooWeak { bits: self.bits() })
        } else {
            Ok(())
        }
    }

    /// True for the MODP groups.
    pub fn is_modp(self) -> bool {
        self.prime().is_some()
    }

    /// The prime p, big-endian (MODP only).
    pub(super) fn prime(self) -> Option<&'static [u8]> {
        match self {
            Group::Modp1024 => Some(&primes::OAKLEY_2),
            Group::Modp2048 => Some(&primes::MODP_2048),
            Group::Modp3072 => Some(&primes::MODP_3072),
            Group::Modp4096 => Some(&primes::MODP_4096),
            _ => None,
        }
    }

    /// Private exponent length for our ephemeral MODP keys: RFC 7919 §5.2's
    /// minimums (twice the group's strength; OpenSSL uses the same for its
    /// named groups), 225 bits also for the 1024-bit group (client side only).
    pub(super) fn exponent_bits(self) -> i32 {
        match self {
            Group::Modp3072 => 275,
            Group::Modp4096 => 325,
            _ => 225,
        }
    }

    pub(super) fn nid(self) -> Option<Nid> {
        match self {
            Group::P256 => Some(Nid::X9_62_PRIME256V1),
            Group::P384 => Some(Nid::SECP384R1),
            Group::P521 => Some(Nid::SECP521R1),
            _ => None,
        }
    }

    /// DER of the namedCurve OID (EC only).
    pub(super) fn curve_oid_der(self) -> Option<&'static [u8]> {
        match self {
            Group::P256 => Some(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
            Group::P384 => Some(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]),
            Group::P521 => Some(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]),
            _ => None,
        }
    }

    /// Length of the shared secret: |p| bytes, or the field size for EC.
    pub fn secret_len(self) -> usize {
        (self.bits() as usize).div_ceil(8)
    }
}

/// q = (p-1)/2 = p >> 1 for an odd p, big-endian without leading zeros.
fn half(p: &[u8]) -> Vec<u8> {
    let mut q = Vec::with_capacity(p.len());
    let mut carry = 0u8;
    for &b in p {
        q.push((b >> 1) | carry);
        carry = b << 7;
    }
    let start = q.iter().position(|&b| b != 0).unwrap_or(q.len());
    q.drain(..start);
    q
}

/// DER DomainParameters { p, g = 2, q = (p-1)/2 } (RFC 3279 §2.3.3).
pub(super) fn domain_parameters_der(p: &[u8]) -> Vec<u8> {
    let mut body = der::integer(p);
    body.extend_from_slice(&der::integer(&[2]));
    body.extend_from_slice(&der::integer(&half(p)));
    der::tlv(der::TAG_SEQUENCE, &body)
}

/// TD-DH-PARAMETERS (RFC 4556 §3.2.2): DER SEQUENCE OF AlgorithmIdentifier,
/// dhpublicnumber with DomainParameters {p, g, q}, for every MODP group of at
/// least `min_bits`, weakest first as MIT lists them (1024, 2048, 4096; we
/// also list 3072). The EC groups cannot be expressed here.
pub fn td_dh_parameters(min_bits: u32) -> Vec<u8> {
    let mut body = Vec::new();
    for g in Group::ALL {
        if let Some(p) = g.prime()
            && g.bits() >= min_bits
        {
            let mut alg = DH_PUBLIC_NUMBER_DER.to_vec();
            alg.extend_from_slice(&domain_parameters_der(p));
            body.extend_from_slice(&der::tlv(der::TAG_SEQUENCE, &alg));
        }
    }
    der::tlv(der::TAG_SEQUENCE, &body)
}

/// The MODP groups a KDC offers in TD-DH-PARAMETERS (the e-data of
/// KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED), in its order, for a client's
/// retry; parameters naming no group we know are left out.
pub fn offered_groups(td_dh_parameters: &[u8]) -> Result<Vec<Group>, DhError> {
    let algs: Vec<AlgorithmIdentifier> =
        rasn::der::decode(td_dh_parameters).map_err(|e| DhError::Malformed(e.to_string()))?;
    Ok(algs
        .iter()
        .filter(|a| a.algorithm == *oid::DH_PUBLIC_NUMBER)
        .filter_map(|a| a.parameters.as_ref())
        .filter_map(|p| modp_group_from_params(p.as_bytes(), false).ok())
        .collect())
}

/// Identifies the MODP group from DER DomainParameters (or PKCS #3
/// DHParameter when `pkcs3`).
pub(super) fn modp_group_from_params(params: &[u8], pkcs3: bool) -> Result<Group, DhError> {
    let body = der::read_exact(params, der::TAG_SEQUENCE)?;
    let mut ints: Vec<&[u8]> = Vec::with_capacity(3);
    let mut rest = body;
    let mut trailing_seq = false;
    while !rest.is_empty() {
        let (tag, contents, r) = der::read_tlv(rest)?;
        rest = r;
        match tag {
            der::TAG_INTEGER if !trailing_seq && ints.len() < 4 => ints.push(contents),
            // validationParms (X9.42) may close the sequence.
            der::TAG_SEQUENCE if !pkcs3 && !trailing_seq && ints.len() >= 3 => trailing_seq = true,
            _ => return Err(malformed("unexpected element in DH domain parameters")),
        }
    }
    if ints.len() < 2 || (pkcs3 && ints.len() > 3) {
        return Err(malformed("DH domain parameters need p and g"));
    }
    let (p_neg, p) = der::integer_magnitude(ints[0])?;
    let (g_neg, g) = der::integer_magnitude(ints[1])?;
    if p_neg || g_neg {
        return Err(DhError::UnknownGroup);
    }
    let group = Group::ALL
        .into_iter()
        .find(|grp| grp.prime() == Some(p))
        .ok_or(DhError::UnknownGroup)?;
    if g != [2] {
        return Err(DhError::UnknownGroup);
    }
    // X9.42 q (PKCS #3's third field is privateValueLength: ignored).
    if !pkcs3 && let Some(q) = ints.get(2) {
        let (q_neg, q) = der::integer_magnitude(q)?;
        if q_neg || q != half(p).as_slice() {
            return Err(DhError::UnknownGroup);
        }
    }
    Ok(group)
}

#[cfg(test)]
mod tests {
    use openssl::bn::BigNum;
    use openssl::error::ErrorStack;

    use super::*;

    #[test]
    fn primes_match_openssl() {
        type PrimeFn = fn() -> Result<BigNum, ErrorStack>;
        let cases: [(Group, PrimeFn); 4] = [
            (Group::Modp1024, BigNum::get_rfc2409_prime_1024),
            (Group::Modp2048, BigNum::get_rfc3526_prime_2048),
            (Group::Modp3072, BigNum::get_rfc3526_prime_3072),
            (Group::Modp4096, BigNum::get_rfc3526_prime_4096),
        ];
        for (g, f) in cases {
            assert_eq!(
                g.prime().unwrap(),
                f().unwrap().to_vec().as_slice(),
                "{g:?}"
            );
            assert_eq!(g.prime().unwrap().len(), g.secret_len());
        }
    }

    #[test]
    fn half_is_p_minus_1_over_2() {
        for g in Group::ALL.into_iter().filter(|g| g.is_modp()) {
            let p = BigNum::from_slice(g.prime().unwrap()).unwrap();
            let mut q = BigNum::new().unwrap();
            q.rshift1(&p).unwrap();
            assert_eq!(half(g.prime().unwrap()), q.to_vec());
        }
    }
}
