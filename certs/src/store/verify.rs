//! Chain verification against a [`TrustStore`], with a per-generation cache.
//!
//! OpenSSL builds the path and checks signatures, basicConstraints / key
//! usage of issuers, path lengths and (under [`CrlPolicy::Require`])
//! revocation. Its time checks are switched off (`NO_CHECK_TIME`) because
//! the openssl crate can set the verification time only on the shared,
//! built-once `X509Store`; validity windows of the chain and of the CRLs are
//! checked here, at the caller's time, which is also what lets a cached
//! result be re-checked cheaply.

use std::sync::atomic::Ordering;

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::sha::Sha256;
use openssl::stack::Stack;
use openssl::x509::{CrlStatus, X509, X509Crl, X509Ref, X509StoreContext, X509VerifyResult};
use openssl_sys as ffi;

use super::load::name_string;
use super::{CACHE_CAPACITY, CacheKey, CrlPolicy, Intermediates, TrustStore};
use crate::time::unix;

/// Why a certificate chain was refused. `depth` is the index of the
/// offending certificate in the chain (0 = leaf), as PKINIT's
/// TD-CERTIFICATE-INDEX wants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// No path to a trust anchor (unknown root, missing or foreign CA).
    #[error("unknown issuer at depth {depth}")]
    UnknownIssuer { depth: u32 },
    /// A certificate's signature does not verify.
    #[error("bad certificate signature at depth {depth}")]
    BadSignature { depth: u32 },
    #[error("certificate expired at depth {depth}")]
    Expired { depth: u32 },
    #[error("certificate not yet valid at depth {depth}")]
    NotYetValid { depth: u32 },
    #[error("certificate revoked at depth {depth}")]
    Revoked { depth: u32 },
    /// No CRL (current at the verification time) from the issuer of the
    /// certificate at `depth`.
    #[error("no CRL for the issuer of the certificate at depth {depth}")]
    CrlMissing { depth: u32 },
    /// The issuer's newest CRL is past its nextUpdate.
    #[error("CRL expired for the issuer of the certificate at depth {depth}")]
    CrlExpired { depth: u32 },
    /// An issuing certificate is not a CA (basicConstraints / keyCertSign).
    #[error("issuer is not a CA at depth {depth}")]
    NotCa { depth: u32 },
    #[error("path length constraint exceeded at depth {depth}")]
    PathLength { depth: u32 },
    /// Anything else OpenSSL reports, with its text.
    #[error("certificate chain rejected at depth {depth}: {reason}")]
    Other { depth: u32, reason: String },
}

impl ChainError {
    /// The PKINIT KRB-ERROR code (RFC 4556 §3.2.3, shared PROTOCOL.md §1.3):
    ///
    /// | error | code |
    /// |---|---|
    /// | UnknownIssuer | 70 KDC_ERR_CANT_VERIFY_CERTIFICATE |
    /// | BadSignature, Expired, NotYetValid, NotCa, PathLength, Other | 71 KDC_ERR_INVALID_CERTIFICATE |
    /// | Revoked | 72 KDC_ERR_REVOKED_CERTIFICATE |
    /// | CrlMissing | 73 KDC_ERR_REVOCATION_STATUS_UNKNOWN |
    /// | CrlExpired | 74 KDC_ERR_REVOCATION_STATUS_UNAVAILABLE |
    ///
    /// RFC 4556 has no code for validity-period failures; like MIT's
    /// pkinit (everything but revoked / no-CRL / no-issuer → invalid) we use 71.
    pub fn krb_error_code(&self) -> i32 {
        match self {
            ChainError::UnknownIssuer { .. } => 70,
            ChainError::Revoked { .. } => 72,
            ChainError::CrlMissing { .. } => 73,
            ChainError::CrlExpired { .. } => 74,
            ChainError::BadSignature { .. }
            | ChainError::Expired { .. }
            | ChainError::NotYetValid { .. }
            | ChainError::NotCa { .. }
            | ChainError::PathLength { .. }
            | ChainError::Other { .. } => 71,
        }
    }

    /// Index of the offending certificate (0 = leaf).
    pub fn depth(&self) -> u32 {
        match self {
            ChainError::UnknownIssuer { depth }
            | ChainError::BadSignature { depth }
            | ChainError::Expired { depth }
            | ChainError::NotYetValid { depth }
            | ChainError::Revoked { depth }
            | ChainError::CrlMissing { depth }
            | ChainError::CrlExpired { depth }
            | ChainError::NotCa { depth }
            | ChainError::PathLength { depth }
            | ChainError::Other { depth, .. } => *depth,
        }
    }

    /// A stable snake_case name for audit lines and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ChainError::UnknownIssuer { .. } => "cert_unknown_issuer",
            ChainError::BadSignature { .. } => "cert_bad_signature",
            ChainError::Expired { .. } => "cert_expired",
            ChainError::NotYetValid { .. } => "cert_not_yet_valid",
            ChainError::Revoked { .. } => "cert_revoked",
            ChainError::CrlMissing { .. } => "cert_crl_missing",
            ChainError::CrlExpired { .. } => "cert_crl_expired",
            ChainError::NotCa { .. } => "cert_issuer_not_ca",
            ChainError::PathLength { .. } => "cert_path_length",
            ChainError::Other { .. } => "cert_invalid",
        }
    }

    /// Maps OpenSSL's verification result (e.g. `SslRef::verify_result`
    /// after a failed TLS handshake) to a chain error.
    pub fn from_openssl(result: X509VerifyResult, depth: u32) -> ChainError {
        match result.as_raw() {
            ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
            | ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            | ffi::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
            | ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
            | ffi::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
            | ffi::X509_V_ERR_CERT_UNTRUSTED => ChainError::UnknownIssuer { depth },
            ffi::X509_V_ERR_CERT_SIGNATURE_FAILURE
            | ffi::X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE
            | ffi::X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY => {
                ChainError::BadSignature { depth }
            }
            ffi::X509_V_ERR_CERT_HAS_EXPIRED => ChainError::Expired { depth },
            ffi::X509_V_ERR_CERT_NOT_YET_VALID => ChainError::NotYetValid { depth },
            ffi::X509_V_ERR_CERT_REVOKED => ChainError::Revoked { depth },
            ffi::X509_V_ERR_UNABLE_TO_GET_CRL | ffi::X509_V_ERR_CRL_NOT_YET_VALID => {
                ChainError::CrlMissing { depth }
            }
            ffi::X509_V_ERR_CRL_HAS_EXPIRED => ChainError::CrlExpired { depth },
            ffi::X509_V_ERR_INVALID_CA | ffi::X509_V_ERR_KEYUSAGE_NO_CERTSIGN => {
                ChainError::NotCa { depth }
            }
            ffi::X509_V_ERR_PATH_LENGTH_EXCEEDED => ChainError::PathLength { depth },
            _ => ChainError::Other {
                depth,
                reason: result.error_string().to_owned(),
            },
        }
    }
}

fn internal(e: ErrorStack) -> ChainError {
    ChainError::Other {
        depth: 0,
        reason: e.to_string(),
    }
}

/// A successful verification.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    /// SHA-256 of the leaf's DER.
    pub leaf_fingerprint: [u8; 32],
    /// Leaf first, trust anchor last.
    pub chain: Vec<X509>,
    /// The leaf's notAfter (Unix seconds).
    pub leaf_not_after: i64,
    /// The leaf's issuer (the manufacturer CA for an MTA), `C=…, O=…, CN=…`.
    pub manufacturer: String,
    /// The result holds for verification times in `valid_from..=valid_until`:
    /// the intersection of the chain certificates' validity periods and,
    /// when CRLs were used, of their thisUpdate..nextUpdate.
    pub valid_from: i64,
    pub valid_until: i64,
}

impl TrustStore {
    /// [`TrustStore::verify`] at the current time.
    pub fn verify_now(
        &self,
        leaf: &X509Ref,
        presented: &[X509],
    ) -> Result<VerifiedChain, ChainError> {
        self.verify(leaf, presented, crate::time::now())
    }

    /// Verifies `leaf` at Unix time `at`. `presented` are the certificates
    /// the peer sent besides the leaf (in any order, possibly none); the
    /// store's own intermediates complete the chain, and under
    /// [`Intermediates::DirectoryOnly`] they alone build it. Successful results are
    /// cached for this generation, keyed by the leaf fingerprint and the
    /// presented certificates, and reused only when `at` lies inside the
    /// result's validity window.
    pub fn verify(
        &self,
        leaf: &X509Ref,
        presented: &[X509],
        at: i64,
    ) -> Result<VerifiedChain, ChainError> {
        let key = cache_key(leaf, presented).map_err(internal)?;
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.get(&key)
                && (hit.valid_from..=hit.valid_until).contains(&at)
            {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(hit.clone());
            }
        }
        // Outside the cached window: verify again for the precise error.
        let verified = self.verify_uncached(leaf, presented, at)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, verified.clone());
        Ok(verified)
    }

    /// Whether [`TrustStore::verify`] uses the certificates a peer presents
    /// ([`Intermediates::FromPeer`]); under [`Intermediates::DirectoryOnly`]
    /// callers need not even parse them.
    pub fn takes_peer_intermediates(&self) -> bool {
        self.intermediates_from == Intermediates::FromPeer
    }

    /// A cheap first look at a leaf not verified before, from its DER alone
    /// and before any parse by OpenSSL: under [`Intermediates::DirectoryOnly`]
    /// its issuer must be a CA of the directory whose subject is byte for
    /// byte the leaf's issuer field (as CAs write it), and that CA's key
    /// must verify the leaf's signature — one public-key operation with a
    /// key the store chose. [`TrustStore::verify`] still checks the whole
    /// chain afterwards. Signature algorithms not listed here (RSASSA-PSS,
    /// MD5) are left to it. A store that takes the peer's intermediates
    /// cannot tell, and says Ok.
    /// A leaf whose chain this store verified before with nothing presented
    /// (its result cached and valid at `at`) needs no second look.
    pub fn check_issuer_signature(&self, leaf_der: &[u8], at: i64) -> Result<(), ChainError> {
        if self.takes_peer_intermediates() {
            return Ok(());
        }
        let key = (openssl::sha::sha256(leaf_der), Sha256::new().finish());
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(&key)
                .is_some_and(|hit| (hit.valid_from..=hit.valid_until).contains(&at))
        };
        if cached {
            return Ok(());
        }
        let bad = || ChainError::Other {
            depth: 0,
            reason: "certificate does not parse".into(),
        };
        let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der).map_err(|_| bad())?;
        let issuer = leaf.tbs_certificate.issuer.as_raw();
        let mut keys = self
            .issuer_keys
            .iter()
            .filter(|(subject, _)| subject.as_slice() == issuer)
            .peekable();
        if keys.peek().is_none() {
            return Err(ChainError::UnknownIssuer { depth: 0 });
        }
        let Some(md) = signature_digest(&leaf.signature_algorithm.algorithm.to_id_string()) else {
            return Ok(());
        };
        let tbs = leaf.tbs_certificate.as_ref();
        let signature = leaf.signature_value.as_ref();
        let verifies = |key: &openssl::pkey::PKeyRef<openssl::pkey::Public>| {
            openssl::sign::Verifier::new(md, key)
                .and_then(|mut v| {
                    v.update(tbs)?;
                    v.verify(signature)
                })
                .unwrap_or(false)
        };
        // A certificate naming our CA that our CA did not sign has no known
        // issuer, as OpenSSL reports it (it matches issuers by key id too).
        if keys.any(|(_, key)| verifies(key)) {
            Ok(())
        } else {
            Err(ChainError::UnknownIssuer { depth: 0 })
        }
    }

    /// Number of cached verification results in this generation.
    pub fn cache_len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Number of [`TrustStore::verify`] calls answered from the cache.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    fn verify_uncached(
        &self,
        leaf: &X509Ref,
        presented: &[X509],
        at: i64,
    ) -> Result<VerifiedChain, ChainError> {
        // Under DirectoryOnly the directory is the manufacturer allowlist:
        // a CA the peer presents (PacketCable devices send their
        // manufacturer CA) counts only if the directory holds it too, so
        // removing a CA file refuses its devices.
        let from_peer = match self.intermediates_from {
            Intermediates::FromPeer => presented,
            Intermediates::DirectoryOnly => &[],
        };
        let mut untrusted = Stack::new().map_err(internal)?;
        for c in from_peer.iter().chain(&self.intermediates) {
            untrusted.push(c.clone()).map_err(internal)?;
        }
        let mut ctx = X509StoreContext::new().map_err(internal)?;
        let outcome = ctx
            .init(&self.verify_store, leaf, &untrusted, |c| {
                if c.verify_cert()? {
                    let chain = c
                        .chain()
                        .map(|s| s.iter().map(X509Ref::to_owned).collect::<Vec<_>>())
                        .unwrap_or_default();
                    Ok(Ok(chain))
                } else {
                    Ok(Err(ChainError::from_openssl(c.error(), c.error_depth())))
                }
            })
            .map_err(internal)?;
        let chain = outcome?;
        if chain.is_empty() {
            return Err(ChainError::Other {
                depth: 0,
                reason: "OpenSSL returned no chain".into(),
            });
        }

        let (mut valid_from, mut valid_until) = (i64::MIN, i64::MAX);
        for (depth, cert) in (0u32..).zip(&chain) {
            let not_before = unix(cert.not_before()).map_err(internal)?;
            let not_after = unix(cert.not_after()).map_err(internal)?;
            if at < not_before {
                return Err(ChainError::NotYetValid { depth });
            }
            if at > not_after {
                return Err(ChainError::Expired { depth });
            }
            valid_from = valid_from.max(not_before);
            valid_until = valid_until.min(not_after);
        }

        if self.policy != CrlPolicy::Off {
            for (depth, pair) in (0u32..).zip(chain.windows(2)) {
                let (cert, issuer) = (&pair[0], &pair[1]);
                let Some((this_update, next_update, crl)) = self.current_crl(issuer, at)? else {
                    if self.policy == CrlPolicy::Require {
                        return Err(ChainError::CrlMissing { depth });
                    }
                    continue;
                };
                if at > next_update {
                    return Err(ChainError::CrlExpired { depth });
                }
                if matches!(crl.get_by_cert(cert), CrlStatus::Revoked(_)) {
                    return Err(ChainError::Revoked { depth });
                }
                valid_from = valid_from.max(this_update);
                valid_until = valid_until.min(next_update);
            }
        }

        let leaf_der = leaf.to_der().map_err(internal)?;
        Ok(VerifiedChain {
            leaf_fingerprint: openssl::sha::sha256(&leaf_der),
            leaf_not_after: unix(leaf.not_after()).map_err(internal)?,
            manufacturer: name_string(leaf.issuer_name()),
            chain,
            valid_from,
            valid_until,
        })
    }

    /// The newest CRL signed by `issuer` that was issued at or before `at`,
    /// with its thisUpdate and nextUpdate (`i64::MAX` when absent).
    fn current_crl(
        &self,
        issuer: &X509Ref,
        at: i64,
    ) -> Result<Option<(i64, i64, &X509Crl)>, ChainError> {
        let mut best: Option<(i64, i64, &X509Crl)> = None;
        for crl in self.crls.iter().filter(|c| crl_signed_by(c, issuer)) {
            let this_update = unix(crl.last_update()).map_err(internal)?;
            let next_update = match crl.next_update() {
                Some(t) => unix(t).map_err(internal)?,
                None => i64::MAX,
            };
            if this_update <= at && best.is_none_or(|(t, _, _)| this_update > t) {
                best = Some((this_update, next_update, crl));
            }
        }
        Ok(best)
    }
}

/// The digest of a certificate signature algorithm [`TrustStore::check_issuer_signature`]
/// checks itself: RSA PKCS #1 v1.5 and ECDSA with SHA-1/2.
fn signature_digest(oid: &str) -> Option<MessageDigest> {
    Some(match oid {
        "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" => MessageDigest::sha1(),
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" => MessageDigest::sha224(),
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => MessageDigest::sha256(),
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => MessageDigest::sha384(),
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => MessageDigest::sha512(),
        _ => return None,
    })
}

/// The CRL names `ca` as its issuer and `ca`'s key verifies its signature.
pub(super) fn crl_signed_by(crl: &X509Crl, ca: &X509Ref) -> bool {
    let same_name = crl
        .issuer_name()
        .try_cmp(ca.subject_name())
        .is_ok_and(|o| o.is_eq());
    same_name
        && ca
            .public_key()
            .and_then(|k| crl.verify(&k))
            .unwrap_or(false)
}

fn cache_key(leaf: &X509Ref, presented: &[X509]) -> Result<CacheKey, ErrorStack> {
    let mut fp = [0u8; 32];
    fp.copy_from_slice(&leaf.digest(MessageDigest::sha256())?);
    let mut h = Sha256::new();
    for c in presented {
        let der = c.to_der()?;
        h.update(&(der.len() as u64).to_be_bytes());
        h.update(&der);
    }
    Ok((fp, h.finish()))
}
