//! Config settings that take one of a fixed set of values. Each is an enum
//! parsed once, at load: a value outside the set is refused with the list
//! of valid ones (serde's "unknown variant `x`, expected one of ..."), and
//! no caller re-parses a string with a fallback of its own.

use serde::{Deserialize, Serialize};

/// `pkinit.crl_policy`, `certboot.crl_policy`, `certs show --crl-policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CrlPolicySetting {
    /// Fail closed: every CA needs a current CRL.
    #[default]
    Require,
    IfPresent,
    Off,
}

impl CrlPolicySetting {
    pub fn policy(self) -> certs::store::CrlPolicy {
        match self {
            CrlPolicySetting::Require => certs::store::CrlPolicy::Require,
            CrlPolicySetting::IfPresent => certs::store::CrlPolicy::IfPresent,
            CrlPolicySetting::Off => certs::store::CrlPolicy::Off,
        }
    }
}

/// `pkinit.packetcable_reply_cipher`: the content cipher of PacketCable
/// (padata 15) RSA replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplyCipher {
    /// What devices decrypt (INFERRED from Heimdal's -19 KDC).
    #[default]
    DesEde3Cbc,
    Aes256Cbc,
}

impl ReplyCipher {
    pub fn cipher(self) -> openssl::symm::Cipher {
        match self {
            ReplyCipher::DesEde3Cbc => openssl::symm::Cipher::des_ede3_cbc(),
            ReplyCipher::Aes256Cbc => openssl::symm::Cipher::aes_256_cbc(),
        }
    }
}

/// `log.format` (the debug log) and `log.audit_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Human,
    /// One object per line.
    Json,
}

/// `overload.pkinit_busy_reply`: what a PKINIT device gets when the KDC is
/// too busy to answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BusyReply {
    /// Nothing: the device retries on its own timer.
    #[default]
    Silent,
    /// KDC_ERR_SVC_UNAVAILABLE.
    Error,
}

/// `certboot.min_tls_version`: the oldest TLS version of the PacketCable
/// profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsMinVersion {
    #[serde(rename = "1.0")]
    Tls10,
    #[serde(rename = "1.1")]
    Tls11,
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
}

impl TlsMinVersion {
    pub fn version(self) -> certboot::tls::MinVersion {
        match self {
            TlsMinVersion::Tls10 => certboot::tls::MinVersion::Tls10,
            TlsMinVersion::Tls11 => certboot::tls::MinVersion::Tls11,
            TlsMinVersion::Tls12 => certboot::tls::MinVersion::Tls12,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Row {
        #[allow(dead_code)]
        crl_policy: CrlPolicySetting,
    }

    #[test]
    fn every_spelling_of_the_docs_parses() {
        for (text, want) in [
            ("require", CrlPolicySetting::Require),
            ("if-present", CrlPolicySetting::IfPresent),
            ("off", CrlPolicySetting::Off),
        ] {
            let row: toml::Value = toml::from_str(&format!("v = {text:?}")).unwrap();
            let got: CrlPolicySetting = row["v"].clone().try_into().unwrap();
            assert_eq!(got, want, "{text}");
        }
        for (text, want) in [
            ("des-ede3-cbc", ReplyCipher::DesEde3Cbc),
            ("aes256-cbc", ReplyCipher::Aes256Cbc),
        ] {
            let row: toml::Value = toml::from_str(&format!("v = {text:?}")).unwrap();
            let got: ReplyCipher = row["v"].clone().try_into().unwrap();
            assert_eq!(got, want, "{text}");
        }
        for (text, want) in [
            ("1.0", TlsMinVersion::Tls10),
            ("1.1", TlsMinVersion::Tls11),
            ("1.2", TlsMinVersion::Tls12),
        ] {
            let row: toml::Value = toml::from_str(&format!("v = {text:?}")).unwrap();
            let got: TlsMinVersion = row["v"].clone().try_into().unwrap();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn a_bad_value_is_refused_with_the_valid_ones() {
        let e = toml::from_str::<Row>("crl_policy = \"if_present\"").unwrap_err();
        let text = e.to_string();
        for valid in ["`require`", "`if-present`", "`off`", "if_present"] {
            assert!(text.contains(valid), "{valid} missing from: {text}");
        }
    }
}
