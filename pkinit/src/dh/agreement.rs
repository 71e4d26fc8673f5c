//! The agreement itself: the KDC's ephemeral (or briefly reused) key and
//! the shared secret, constant-time. The device side is in `client_key`.

use std::fmt;

use openssl::bn::{BigNum, BigNumContext, BigNumRef, MsbOption};
use openssl::derive::Deriver;
use openssl::ec::{EcKey, PointConversionForm};
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private, Public};
use zeroize::Zeroizing;

use super::public::{PeerValue, ec_group};
use super::{ClientPublic, DhError, Group, der, mont};

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
pub(super) struct ModpKey {
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
    pub(super) fn generate(group: Group) -> Result<ModpKey, DhError> {
        let p = modulus(group)?;
        let g = BigNum::from_u32(2)?;
        let x = SecretBn::random(group.exponent_bits())?;
        let mut ctx = BigNumContext::new_secure()?;
        let mut y = BigNum::new()?;
        p.exp_consttime(&mut y, &g, &x.0, &mut ctx)?;
        Ok(ModpKey { p, x, y })
    }

    /// ZZ = peer^x mod p, left-padded to |p| bytes.
    pub(super) fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
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
    pub(super) fn public_der(&self) -> Vec<u8> {
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
pub(super) fn ecdh(
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

/// An ephemeral key pair in one group: the KDC's or the device's.
pub(super) enum KeyPair {
    Modp(ModpKey),
    Ec { key: PKey<Private>, public: Vec<u8> },
}

impl KeyPair {
    pub(super) fn generate(group: Group) -> Result<KeyPair, DhError> {
        if group.is_modp() {
            Ok(KeyPair::Modp(ModpKey::generate(group)?))
        } else {
            let (key, public) = ec_generate(group)?;
            Ok(KeyPair::Ec { key, public })
        }
    }
}

/// A KDC key pair for one group. Normally fresh for each request; a KDC
/// may keep one for a short time (RFC 4556 §3.2.3.1, announced with
/// dhKeyExpiration): the client's key is still fresh per request, so every
/// shared secret differs, and only the forward-secrecy window grows.
pub struct ServerKey {
    group: Group,
    inner: KeyPair,
}

impl ServerKey {
    pub fn generate(group: Group) -> Result<ServerKey, DhError> {
        Ok(ServerKey {
            group,
            inner: KeyPair::generate(group)?,
        })
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
            (KeyPair::Modp(key), PeerValue::Modp(y)) => Ok(Agreement {
                server_public: key.public_der(),
                shared_secret: key.agree(y)?,
            }),
            (KeyPair::Ec { key, public }, PeerValue::Ec(peer)) => Ok(Agreement {
                server_public: public.clone(),
                shared_secret: ecdh(key, peer, self.group.secret_len())?,
            }),
            _ => Err(DhError::UnknownGroup),
        }
    }
}

/// The KDC side with a fresh ephemeral key in the client's group.
pub fn server_agree(client: &ClientPublic) -> Result<Agreement, DhError> {
    ServerKey::generate(client.group)?.agree(client)
}
