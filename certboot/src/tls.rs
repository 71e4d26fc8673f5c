//! TLS contexts for the endpoint: the PacketCable profile (TLS_RSA CBC
//! suites the spec mandates) and a modern one, each requiring a client
//! certificate that chains to the device trust store.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use certs::store::TrustStore;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    SslContext, SslContextBuilder, SslMethod, SslOptions, SslSessionCacheMode, SslVerifyMode,
    SslVersion,
};
use openssl::x509::{X509, X509VerifyResult};

/// Which suites and versions a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProfile {
    /// PKT-SP-EUE-PROV §6.6.5: TLS_RSA_WITH_AES_128_CBC_SHA, and
    /// TLS_RSA_WITH_3DES_EDE_CBC_SHA in builds with the `legacy-3des`
    /// feature; TLS 1.2 at most (these suites do not exist in TLS 1.3).
    Pktc,
    /// TLS 1.2 ECDHE with AEAD suites, and TLS 1.3.
    Modern,
}

impl TlsProfile {
    pub fn parse(s: &str) -> Option<TlsProfile> {
        match s {
            "pktc" => Some(TlsProfile::Pktc),
            "modern" => Some(TlsProfile::Modern),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TlsProfile::Pktc => "pktc",
            TlsProfile::Modern => "modern",
        }
    }
}

/// Oldest protocol version accepted (PacketCable profile only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MinVersion {
    Tls10,
    Tls11,
    Tls12,
}

impl MinVersion {
    fn openssl(self) -> SslVersion {
        match self {
            MinVersion::Tls10 => SslVersion::TLS1,
            MinVersion::Tls11 => SslVersion::TLS1_1,
            MinVersion::Tls12 => SslVersion::TLS1_2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsSettings {
    pub profile: TlsProfile,
    /// Default TLS 1.2. Older versions need `security_level = 0`.
    pub min_version: MinVersion,
    /// OpenSSL security level: 2 (default) refuses RSA-1024 and SHA-1
    /// certificates; 1 admits RSA-1024 device keys; 0 also SHA-1-signed
    /// device certificates and TLS 1.0/1.1. Lowering it is an operator's
    /// explicit choice for legacy devices.
    pub security_level: u32,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            profile: TlsProfile::Pktc,
            min_version: MinVersion::Tls12,
            security_level: 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("the server key does not match the server certificate")]
    KeyMismatch,
    #[error(
        "cipher suite {0} is not available in this OpenSSL build; refusing to start without a suite the spec mandates"
    )]
    SuiteMissing(&'static str),
    #[error("{0}")]
    Settings(&'static str),
    #[error("device trust store: {0}")]
    Trust(#[from] certs::store::LoadError),
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// TLS_RSA_WITH_AES_128_CBC_SHA.
pub const AES128_SHA: &str = "AES128-SHA";
/// TLS_RSA_WITH_3DES_EDE_CBC_SHA.
pub const DES_CBC3_SHA: &str = "DES-CBC3-SHA";

/// The suites the PacketCable profile must offer in this build.
pub fn pktc_suites() -> &'static [&'static str] {
    if cfg!(feature = "legacy-3des") {
        &[AES128_SHA, DES_CBC3_SHA]
    } else {
        &[AES128_SHA]
    }
}

const MODERN_TLS12: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

impl TlsSettings {
    pub fn check(&self) -> Result<(), TlsError> {
        if self.security_level > 5 {
            return Err(TlsError::Settings("security_level must be 0..=5"));
        }
        if self.min_version < MinVersion::Tls12 {
            if self.profile == TlsProfile::Modern {
                return Err(TlsError::Settings(
                    "the modern profile accepts TLS 1.2 and 1.3 only",
                ));
            }
            if self.security_level > 0 {
                return Err(TlsError::Settings(
                    "TLS 1.0/1.1 need security_level = 0 (their handshake signatures use SHA-1)",
                ));
            }
        }
        Ok(())
    }
}

/// The endpoint's own certificate (leaf first, then intermediates) and key.
pub struct ServerIdentity {
    pub chain: Vec<X509>,
    key: PKey<Private>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

impl ServerIdentity {
    /// `cert`: PEM, the leaf optionally followed by its intermediates;
    /// `chain`: more intermediates (PEM), optional. The key must match.
    pub fn load(cert: &Path, key: &Path, chain: Option<&Path>) -> Result<Self, TlsError> {
        let bad = |path: &Path, what: &str| TlsError::File {
            path: path.to_owned(),
            detail: format!("not a PEM {what}"),
        };
        let mut certs = X509::stack_from_pem(&read(cert)?).map_err(|_| bad(cert, "certificate"))?;
        if certs.is_empty() {
            return Err(bad(cert, "certificate"));
        }
        if let Some(p) = chain {
            certs.extend(X509::stack_from_pem(&read(p)?).map_err(|_| bad(p, "certificate chain"))?);
        }
        // Drop repeats of the leaf (a chain file that starts with it).
        let leaf_der = certs[0].to_der()?;
        let mut chain_out = vec![certs[0].clone()];
        for c in certs.into_iter().skip(1) {
            if c.to_der()? != leaf_der {
                chain_out.push(c);
            }
        }
        let key_pem = zeroize::Zeroizing::new(read(key)?);
        let key = PKey::private_key_from_pem(&key_pem).map_err(|_| bad(key, "private key"))?;
        if !chain_out[0].public_key()?.public_eq(&key) {
            return Err(TlsError::KeyMismatch);
        }
        Ok(ServerIdentity {
            chain: chain_out,
            key,
        })
    }

    /// notAfter of the leaf, Unix seconds.
    pub fn not_after(&self) -> Option<i64> {
        let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
        let d = epoch.diff(self.chain[0].not_after()).ok()?;
        Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
    }
}

/// A server context for one generation of trust and identity.
pub fn build_context(
    settings: &TlsSettings,
    identity: &ServerIdentity,
    trust: &TrustStore,
) -> Result<SslContext, TlsError> {
    settings.check()?;
    let mut b = SslContextBuilder::new(SslMethod::tls_server())?;
    b.set_security_level(settings.security_level);
    match settings.profile {
        TlsProfile::Pktc => {
            for suite in pktc_suites() {
                require_suite(suite, settings.security_level)?;
            }
            b.set_min_proto_version(Some(settings.min_version.openssl()))?;
            b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
            b.set_cipher_list(&pktc_suites().join(":"))?;
        }
        TlsProfile::Modern => {
            b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
            b.set_max_proto_version(Some(SslVersion::TLS1_3))?;
            b.set_cipher_list(MODERN_TLS12)?;
        }
    }
    // No compression, no renegotiation, our suite order; no session
    // resumption, so every connection's certificate meets the current
    // trust store (devices fetch their profile once).
    b.set_options(
        SslOptions::NO_COMPRESSION
            | SslOptions::NO_RENEGOTIATION
            | SslOptions::CIPHER_SERVER_PREFERENCE
            | SslOptions::NO_TICKET,
    );
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    b.set_certificate(&identity.chain[0])?;
    for c in &identity.chain[1..] {
        b.add_extra_chain_cert(c.clone())?;
    }
    b.set_private_key(&identity.key)?;
    b.check_private_key()?;
    // The trust directory is the manufacturer allowlist: every CA in the
    // device's chain must be one of its certificates. A manufacturer CA the
    // device presents (signed by the MTA root, but not or no longer in the
    // directory) is refused, so removing a CA file revokes a manufacturer.
    let known = trust_fingerprints(trust)?;
    b.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        move |ok, ctx| {
            // Checked at every depth and before any other verdict, so an
            // unlisted manufacturer is reported as such (not, say, as a
            // missing CRL for it).
            let unlisted = ctx.chain().is_some_and(|chain| {
                chain.iter().skip(1).any(|c| {
                    c.digest(MessageDigest::sha256())
                        .map_or(true, |d| !known.contains(&d[..]))
                })
            });
            if unlisted {
                ctx.set_error(UNLISTED_CA);
                return false;
            }
            ok
        },
    );
    b.set_verify_depth(5);
    b.set_verify_cert_store(trust.tls_store()?)?;
    Ok(b.build())
}

/// The verification result set when a chain runs through a CA that is not
/// in the trust directory (only this callback sets it).
pub const UNLISTED_CA: X509VerifyResult = X509VerifyResult::APPLICATION_VERIFICATION;

/// SHA-256 fingerprints of the store's anchors and intermediates.
fn trust_fingerprints(trust: &TrustStore) -> Result<HashSet<Vec<u8>>, TlsError> {
    trust
        .anchors()
        .iter()
        .chain(trust.intermediates())
        .map(|c| Ok(c.digest(MessageDigest::sha256())?.to_vec()))
        .collect()
}

/// `set_cipher_list` succeeds when any entry matches, so each mandated
/// suite is checked on its own.
fn require_suite(suite: &'static str, level: u32) -> Result<(), TlsError> {
    let mut b = SslContextBuilder::new(SslMethod::tls_server())?;
    b.set_security_level(level);
    b.set_cipher_list(suite)
        .map_err(|_| TlsError::SuiteMissing(suite))?;
    Ok(())
}
