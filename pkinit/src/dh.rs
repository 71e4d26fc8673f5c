//! DH and ECDH key agreement for PKINIT (RFC 4556 §3.2.3.1, RFC 5349) and
//! the reply-key derivations (RFC 4556 octetstring2key, RFC 8636 KDF).
//!
//! * MODP: the client's `dhpublicnumber` (RFC 3279 DomainParameters p, g,
//!   q optional) is identified by comparing p and g with the well-known
//!   primes: Oakley group 2 (recognised, refused by policy) and RFC 3526
//!   groups 14, 15, 16. All are safe primes, so the range check
//!   1 < y < p-1 is the whole public-value check. The KDC's ephemeral key
//!   is fresh per call with a short private exponent (225 bits for 2048,
//!   275 for 3072, 325 for 4096: RFC 7919 §5.2, twice the group's
//!   strength), computed with OpenSSL's constant-time modular exponentiation.
//!   `Dh::compute_key` is never used (it drops leading zero bytes of ZZ);
//!   ZZ is always left-padded to |p| bytes.
//! * EC: id-ecPublicKey with namedCurve P-256, P-384 or P-521; the public
//!   value is the ECPoint (uncompressed or compressed) and the shared secret
//!   the x-coordinate, fixed length.
//!
//! Nothing here prints or panics on hostile input; secrets are zeroized.

mod der;
mod kdf;
mod mont;
mod primes;

use std::fmt;

use openssl::bn::{BigNum, BigNumContext, BigNumRef, MsbOption};
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private, Public};
use rasn::types::{Any, BitString, Oid};
use rasn_pkix::{AlgorithmIdentifier, SubjectPublicKeyInfo};
use zeroize::Zeroizing;

use crate::asn1::oid;

pub use kdf::{
    Kdf, choose_kdf, kdf_rfc8636, octetstring2key, other_info, select_kdf, supported_kdfs_der,
};

/// KDC_ERR_PREAUTH_FAILED.
const KDC_ERR_PREAUTH_FAILED: i32 = 24;
/// KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED (RFC 4556; draft name KEY_TOO_WEAK).
const KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED: i32 = 65;
/// KDC_ERR_NO_ACCEPTABLE_KDF (RFC 8636).
const KDC_ERR_NO_ACCEPTABLE_KDF: i32 = 100;

/// dhKeyAgreement (PKCS #3), accepted as an alias of dhpublicnumber.
const DH_KEY_AGREEMENT: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 3, 1]);

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
    fn prime(self) -> Option<&'static [u8]> {
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
    fn exponent_bits(self) -> i32 {
        match self {
            Group::Modp3072 => 275,
            Group::Modp4096 => 325,
            _ => 225,
        }
    }

    fn nid(self) -> Option<Nid> {
        match self {
            Group::P256 => Some(Nid::X9_62_PRIME256V1),
            Group::P384 => Some(Nid::SECP384R1),
            Group::P521 => Some(Nid::SECP521R1),
            _ => None,
        }
    }

    /// DER of the namedCurve OID (EC only).
    fn curve_oid_der(self) -> Option<&'static [u8]> {
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

/// Errors of key agreement and key derivation. Messages carry no secrets.
#[derive(thiserror::Error, Debug)]
pub enum DhError {
    /// Undecodable SPKI, parameters or public value encoding.
    #[error("malformed DH/ECDH data: {0}")]
    Malformed(String),
    /// Well-formed parameters naming no group we know (unknown prime or
    /// generator, wrong q, unsupported curve or algorithm).
    #[error("unknown DH group")]
    UnknownGroup,
    /// A known group below the configured minimum.
    #[error("DH group of {bits} bits is too weak")]
    TooWeak {
        /// The group's [`Group::bits`].
        bits: u32,
    },
    /// Public value out of range (y <= 1 or y >= p-1), not on the curve, or
    /// the point at infinity.
    #[error("bad DH public value")]
    BadPublicValue,
    /// The client listed supportedKDFs and none is supported (RFC 8636).
    #[error("no acceptable KDF")]
    NoAcceptableKdf,
    /// OpenSSL failed (allocation, RNG).
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] ErrorStack),
}

impl DhError {
    /// The KRB-ERROR code for this failure.
    ///
    /// TooWeak and UnknownGroup → KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED
    /// (65, once named KDC_ERR_KEY_TOO_WEAK), to be sent with
    /// TD-DH-PARAMETERS e-data ([`td_dh_parameters`]) so the client can
    /// retry with a listed group. MIT's KDC also answers 65 for DH parameters
    /// it cannot decode; here Malformed and BadPublicValue give
    /// KDC_ERR_PREAUTH_FAILED (24), as does an OpenSSL failure.
    /// NoAcceptableKdf → KDC_ERR_NO_ACCEPTABLE_KDF (100), with
    /// [`supported_kdfs_der`] as e-data.
    pub fn krb_error_code(&self) -> i32 {
        match self {
            DhError::TooWeak { .. } | DhError::UnknownGroup => {
                KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED
            }
            DhError::NoAcceptableKdf => KDC_ERR_NO_ACCEPTABLE_KDF,
            DhError::Malformed(_) | DhError::BadPublicValue | DhError::OpenSsl(_) => {
                KDC_ERR_PREAUTH_FAILED
            }
        }
    }

    /// True when the KRB-ERROR should carry TD-DH-PARAMETERS e-data.
    pub fn wants_td_dh_parameters(&self) -> bool {
        self.krb_error_code() == KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED
    }
}

fn malformed(what: &str) -> DhError {
    DhError::Malformed(what.to_string())
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
fn domain_parameters_der(p: &[u8]) -> Vec<u8> {
    let mut body = der::integer(p);
    body.extend_from_slice(&der::integer(&[2]));
    body.extend_from_slice(&der::integer(&half(p)));
    der::tlv(der::TAG_SEQUENCE, &body)
}

fn dh_algorithm_identifier(p: &[u8]) -> AlgorithmIdentifier {
    AlgorithmIdentifier {
        algorithm: oid::DH_PUBLIC_NUMBER.to_owned(),
        parameters: Some(Any::new(domain_parameters_der(p))),
    }
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

/// The client's validated public value.
#[derive(Clone)]
pub struct ClientPublic {
    /// The group the client chose.
    pub group: Group,
    value: PeerValue,
}

#[derive(Clone)]
enum PeerValue {
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

/// Identifies the MODP group from DER DomainParameters (or PKCS #3
/// DHParameter when `pkcs3`).
fn modp_group_from_params(params: &[u8], pkcs3: bool) -> Result<Group, DhError> {
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

/// Parses a MODP public value: DER INTEGER with 1 < y < p-1.
fn parse_modp_public(group: Group, encoded: &[u8]) -> Result<Vec<u8>, DhError> {
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

fn ec_group(group: Group) -> Result<EcGroup, DhError> {
    let nid = group.nid().ok_or(DhError::UnknownGroup)?;
    Ok(EcGroup::from_curve_name(nid)?)
}

/// Decodes and validates an ECPoint (uncompressed 04 or compressed 02/03).
fn parse_ec_point(group: Group, encoded: &[u8]) -> Result<PKey<Public>, DhError> {
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

/// The KDC's half of the agreement.
pub struct Agreement {
    /// Contents of KDCDHKeyInfo.subjectPublicKey: the DER INTEGER y (MODP) or
    /// the uncompressed EC point.
    pub server_public: Vec<u8>,
    /// MODP: ZZ left-padded to |p| bytes; EC: the x-coordinate, fixed length.
    pub shared_secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agreement")
            .field("server_public_len", &self.server_public.len())
            .finish_non_exhaustive()
    }
}

/// A BigNum holding a secret: constant-time flag set, cleared on drop.
struct SecretBn(BigNum);

impl SecretBn {
    fn new() -> Result<SecretBn, ErrorStack> {
        let mut bn = BigNum::new_secure()?;
        bn.set_const_time();
        Ok(SecretBn(bn))
    }

    /// A random exponent of exactly `bits` bits.
    fn random(bits: i32) -> Result<SecretBn, ErrorStack> {
        let mut s = SecretBn::new()?;
        s.0.rand(bits, MsbOption::ONE, false)?;
        Ok(s)
    }
}

impl Drop for SecretBn {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// An ephemeral MODP key pair: private exponent x, public y = g^x mod p.
struct ModpKey {
    p: &'static mont::MontModulus,
    x: SecretBn,
    y: BigNum,
}

/// The groups' Montgomery contexts, made on first use.
static MONT: [std::sync::OnceLock<mont::MontModulus>; 4] =
    [const { std::sync::OnceLock::new() }; 4];

fn modulus(group: Group) -> Result<&'static mont::MontModulus, DhError> {
    let slot = match group {
        Group::Modp1024 => &MONT[0],
        Group::Modp2048 => &MONT[1],
        Group::Modp3072 => &MONT[2],
        Group::Modp4096 => &MONT[3],
        _ => return Err(DhError::UnknownGroup),
    };
    Ok(mont::for_prime(
        slot,
        group.prime().ok_or(DhError::UnknownGroup)?,
    )?)
}

impl ModpKey {
    fn generate(group: Group) -> Result<ModpKey, DhError> {
        let p = modulus(group)?;
        let g = BigNum::from_u32(2)?;
        let x = SecretBn::random(group.exponent_bits())?;
        let mut ctx = BigNumContext::new_secure()?;
        let mut y = BigNum::new()?;
        p.exp_consttime(&mut y, &g, &x.0, &mut ctx)?;
        Ok(ModpKey { p, x, y })
    }

    /// ZZ = peer^x mod p, left-padded to |p| bytes.
    fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
        let peer = BigNum::from_slice(peer)?;
        let mut ctx = BigNumContext::new_secure()?;
        let mut zz = SecretBn::new()?;
        self.p
            .exp_consttime(&mut zz.0, &peer, &self.x.0, &mut ctx)?;
        // ZZ in {0, 1, p-1} would mean a degenerate peer value, which the
        // range check already excludes; check anyway, it costs nothing.
        if zz.0.num_bits() <= 1 || is_p_minus_1(&zz.0, self.p.p())? {
            return Err(DhError::BadPublicValue);
        }
        let len = self.p.p().num_bytes();
        Ok(Zeroizing::new(zz.0.to_vec_padded(len)?))
    }

    /// DER INTEGER y.
    fn public_der(&self) -> Vec<u8> {
        der::integer(&self.y.to_vec())
    }
}

fn is_p_minus_1(v: &BigNumRef, p: &BigNumRef) -> Result<bool, ErrorStack> {
    let mut pm1 = p.to_owned()?;
    pm1.sub_word(1)?;
    Ok(v.ucmp(&pm1) == std::cmp::Ordering::Equal)
}

/// ECDH x-coordinate, checked to be exactly the field length (OpenSSL pads
/// it; a shorter result is left-padded defensively).
fn ecdh(
    own: &PKey<Private>,
    peer: &PKey<Public>,
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, DhError> {
    let mut deriver = Deriver::new(own)?;
    // The point was validated when parsed (on curve, not infinity; the NIST
    // curves have cofactor 1), so skip OpenSSL's costlier full key check.
    deriver.set_peer_ex(peer, false)?;
    let n = deriver.len()?;
    let mut buf = Zeroizing::new(vec![0u8; n]);
    let got = deriver.derive(&mut buf)?;
    if got > len {
        return Err(DhError::BadPublicValue);
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    out[len - got..].copy_from_slice(&buf[..got]);
    Ok(out)
}

fn ec_generate(group: Group) -> Result<(PKey<Private>, Vec<u8>), DhError> {
    let g = ec_group(group)?;
    let key = EcKey::generate(&g)?;
    let mut ctx = BigNumContext::new()?;
    let public = key
        .public_key()
        .to_bytes(&g, PointConversionForm::UNCOMPRESSED, &mut ctx)?;
    Ok((PKey::from_ec_key(key)?, public))
}

/// A KDC key pair for one group. Normally fresh for each request; a KDC
/// may keep one for a short time (RFC 4556 §3.2.3.1, announced with
/// dhKeyExpiration): the client's key is still fresh per request, so every
/// shared secret differs, and only the forward-secrecy window grows.
pub struct ServerKey {
    group: Group,
    inner: ServerKeyInner,
}

enum ServerKeyInner {
    Modp(ModpKey),
    Ec { own: PKey<Private>, public: Vec<u8> },
}

impl ServerKey {
    pub fn generate(group: Group) -> Result<ServerKey, DhError> {
        let inner = if group.is_modp() {
            ServerKeyInner::Modp(ModpKey::generate(group)?)
        } else {
            let (own, public) = ec_generate(group)?;
            ServerKeyInner::Ec { own, public }
        };
        Ok(ServerKey { group, inner })
    }

    pub fn group(&self) -> Group {
        self.group
    }

    /// The shared secret with a client of the same group.
    pub fn agree(&self, client: &ClientPublic) -> Result<Agreement, DhError> {
        if client.group != self.group {
            return Err(DhError::UnknownGroup);
        }
        match (&self.inner, &client.value) {
            (ServerKeyInner::Modp(key), PeerValue::Modp(y)) => Ok(Agreement {
                server_public: key.public_der(),
                shared_secret: key.agree(y)?,
            }),
            (ServerKeyInner::Ec { own, public }, PeerValue::Ec(peer)) => Ok(Agreement {
                server_public: public.clone(),
                shared_secret: ecdh(own, peer, self.group.secret_len())?,
            }),
            _ => Err(DhError::UnknownGroup),
        }
    }
}

/// The KDC side with a fresh ephemeral key in the client's group.
pub fn server_agree(client: &ClientPublic) -> Result<Agreement, DhError> {
    ServerKey::generate(client.group)?.agree(client)
}

/// The client side (device simulator, tests): an ephemeral key, the SPKI to
/// put in AuthPack.clientPublicValue, and the shared secret from the KDC's
/// subjectPublicKey.
pub struct ClientKey {
    group: Group,
    inner: ClientInner,
}

enum ClientInner {
    Modp(ModpKey),
    Ec { key: PKey<Private>, public: Vec<u8> },
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
        let inner = if group.is_modp() {
            ClientInner::Modp(ModpKey::generate(group)?)
        } else {
            let (key, public) = ec_generate(group)?;
            ClientInner::Ec { key, public }
        };
        Ok(ClientKey { group, inner })
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
            ClientInner::Modp(k) => SubjectPublicKeyInfo {
                algorithm: dh_algorithm_identifier(self.group.prime().unwrap_or(&[])),
                subject_public_key: BitString::from_vec(k.public_der()),
            },
            ClientInner::Ec { public, .. } => SubjectPublicKeyInfo {
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
            ClientInner::Modp(k) => {
                let y = parse_modp_public(self.group, server_public)?;
                k.agree(&y)
            }
            ClientInner::Ec { key, .. } => {
                let peer = parse_ec_point(self.group, server_public)?;
                ecdh(key, &peer, self.group.secret_len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
