//! Why a request ended as it did: one [`Reason`] per refusal, carrying its
//! KRB-ERROR code, its audit label and its metric labels (docs/metrics.md).

use krb::msg::consts::err;
use pkinit::server::Refusal;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = ($code:expr, $label:literal),)*) => {
        /// Why the KDC answered a request as it did (`Ok`, `Lookaside`) or
        /// refused it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub enum Reason {
            #[default]
            $($(#[$doc])* $variant,)*
            /// A PKINIT refusal ([`Refusal`]).
            Pkinit(Refusal),
        }

        impl Reason {
            /// Every reason the KDC itself decides (PKINIT's in [`Refusal::ALL`]).
            pub const KDC: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The KRB-ERROR code sent (0: answered).
            pub fn code(self) -> i32 {
                match self {
                    $(Reason::$variant => $code,)*
                    Reason::Pkinit(r) => r.krb_error_code(),
                }
            }

            /// The stable label of the audit line's `reason` and of
            /// `pktc_pkinit_rejections_total{reason}`.
            pub fn label(self) -> &'static str {
                match self {
                    $(Reason::$variant => $label,)*
                    Reason::Pkinit(r) => r.label(),
                }
            }
        }
    };
}

reasons! {
    Ok = (0, "ok"),
    /// Answered from the lookaside cache.
    Lookaside = (0, "lookaside"),
    Oversized = (err::KRB_ERR_FIELD_TOOLONG, "oversized"),
    NotKdcRequest = (err::KRB_AP_ERR_MSG_TYPE, "not_kdc_request"),
    MalformedRequest = (err::KRB_ERR_GENERIC, "malformed_request"),
    Internal = (err::KRB_ERR_GENERIC, "internal"),
    EncodeFailed = (err::KRB_ERR_GENERIC, "encode_failed"),
    UdpReplyTooBig = (err::KRB_ERR_RESPONSE_TOO_BIG, "udp_reply_too_big"),
    RateLimitedSource = (err::KDC_ERR_SVC_UNAVAILABLE, "rate_limited_source"),
    RateLimitedGlobal = (err::KDC_ERR_SVC_UNAVAILABLE, "rate_limited_global"),
    BadPvno = (err::KDC_ERR_BAD_PVNO, "bad_pvno"),
    BadMsgType = (err::KRB_AP_ERR_MSG_TYPE, "bad_msg_type"),
    WrongRealm = (err::KDC_ERR_WRONG_REALM, "wrong_realm"),
    NoCname = (err::KDC_ERR_C_PRINCIPAL_UNKNOWN, "no_cname"),
    BadCname = (err::KDC_ERR_C_PRINCIPAL_UNKNOWN, "bad_cname"),
    NoSname = (err::KDC_ERR_S_PRINCIPAL_UNKNOWN, "no_sname"),
    BadSname = (err::KDC_ERR_S_PRINCIPAL_UNKNOWN, "bad_sname"),
    UnknownClient = (err::KDC_ERR_C_PRINCIPAL_UNKNOWN, "unknown_client"),
    UnknownServer = (err::KDC_ERR_S_PRINCIPAL_UNKNOWN, "unknown_server"),
    ServerNoKey = (err::KDC_ERR_S_PRINCIPAL_UNKNOWN, "server_no_key"),
    Postdate = (err::KDC_ERR_CANNOT_POSTDATE, "postdate"),
    BadOption = (err::KDC_ERR_BADOPTION, "bad_option"),
    NotRenewable = (err::KDC_ERR_BADOPTION, "not_renewable"),
    NeverValid = (err::KDC_ERR_NEVER_VALID, "never_valid"),
    EtypeNosupp = (err::KDC_ERR_ETYPE_NOSUPP, "etype_nosupp"),
    PreauthRequired = (err::KDC_ERR_PREAUTH_REQUIRED, "preauth_required"),
    MalformedPreauth = (err::KDC_ERR_PREAUTH_FAILED, "malformed_preauth"),
    PreauthFailed = (err::KDC_ERR_PREAUTH_FAILED, "preauth_failed"),
    PreauthEtypeNosupp = (err::KDC_ERR_ETYPE_NOSUPP, "preauth_etype_nosupp"),
    Skew = (err::KRB_AP_ERR_SKEW, "skew"),
    PkinitNotConfigured = (err::KDC_ERR_PADATA_TYPE_NOSUPP, "pkinit_not_configured"),
    NoPkinitPadata = (err::KDC_ERR_PADATA_TYPE_NOSUPP, "no_pkinit_padata"),
    /// The admission gate's queue is full.
    ShedPoolFull = (err::KDC_ERR_SVC_UNAVAILABLE, "shed_pool_full"),
    /// Public-key work panicked.
    PoolFailed = (err::KRB_ERR_GENERIC, "pool_failed"),
    DeviceUnknownMac = (err::KDC_ERR_C_PRINCIPAL_UNKNOWN, "device_unknown_mac"),
    DeviceMpsError = (err::KDC_ERR_C_PRINCIPAL_UNKNOWN, "device_mps_error"),
    DeviceLookupTimeout = (err::KDC_ERR_SVC_UNAVAILABLE, "device_lookup_timeout"),
    DeviceLookupBusy = (err::KDC_ERR_SVC_UNAVAILABLE, "device_lookup_busy"),
    DeviceAddressMismatch = (err::KRB_AP_ERR_BADADDR, "device_address_mismatch"),
    DeviceAddressNotSupplied = (err::KRB_AP_ERR_BADADDR, "device_address_not_supplied"),
    DeviceFqdnMismatch = (err::KDC_ERR_CLIENT_NAME_MISMATCH, "device_fqdn_mismatch"),
    NoApReq = (err::KDC_ERR_PADATA_TYPE_NOSUPP, "no_ap_req"),
    BadApPvno = (err::KRB_AP_ERR_BADVERSION, "bad_ap_pvno"),
    BadApMsgType = (err::KRB_AP_ERR_MSG_TYPE, "bad_ap_msg_type"),
    TicketNotTgt = (err::KRB_AP_ERR_NOT_US, "ticket_not_tgt"),
    NoTgsKey = (err::KRB_AP_ERR_NOKEY, "no_tgs_key"),
    TicketEtypeNosupp = (err::KDC_ERR_ETYPE_NOSUPP, "ticket_etype_nosupp"),
    TicketKvnoUnknown = (err::KRB_AP_ERR_BADKEYVER, "ticket_kvno_unknown"),
    TicketNoKey = (err::KRB_AP_ERR_NOKEY, "ticket_no_key"),
    TicketIntegrity = (err::KRB_AP_ERR_BAD_INTEGRITY, "ticket_integrity"),
    TicketMalformed = (err::KRB_AP_ERR_BAD_INTEGRITY, "ticket_malformed"),
    SessionEtypeNosupp = (err::KDC_ERR_ETYPE_NOSUPP, "session_etype_nosupp"),
    AuthenticatorIntegrity = (err::KRB_AP_ERR_BAD_INTEGRITY, "authenticator_integrity"),
    AuthenticatorMalformed = (err::KRB_AP_ERR_BAD_INTEGRITY, "authenticator_malformed"),
    AuthenticatorClientMismatch = (err::KRB_AP_ERR_BADMATCH, "authenticator_client_mismatch"),
    TicketNotYetValid = (err::KRB_AP_ERR_TKT_NYV, "ticket_not_yet_valid"),
    TicketExpired = (err::KRB_AP_ERR_TKT_EXPIRED, "ticket_expired"),
    RenewExpired = (err::KRB_AP_ERR_TKT_EXPIRED, "renew_expired"),
    TicketAddressMismatch = (err::KRB_AP_ERR_BADADDR, "ticket_address_mismatch"),
    NoChecksum = (err::KRB_AP_ERR_INAPP_CKSUM, "no_checksum"),
    ChecksumTypeNosupp = (err::KDC_ERR_SUMTYPE_NOSUPP, "checksum_type_nosupp"),
    UnkeyedChecksum = (err::KRB_AP_ERR_INAPP_CKSUM, "unkeyed_checksum"),
    ChecksumMismatch = (err::KRB_AP_ERR_MODIFIED, "checksum_mismatch"),
    ChecksumTypeMismatch = (err::KRB_AP_ERR_INAPP_CKSUM, "checksum_type_mismatch"),
    Replay = (err::KRB_AP_ERR_REPEAT, "replay"),
    AuthdataIntegrity = (err::KRB_AP_ERR_BAD_INTEGRITY, "authdata_integrity"),
    AuthdataMalformed = (err::KRB_AP_ERR_BAD_INTEGRITY, "authdata_malformed"),
    AuthdataKdcOnly = (err::KDC_ERR_POLICY, "authdata_kdc_only"),
    AuthdataMandatoryForKdc = (err::KDC_ERR_POLICY, "authdata_mandatory_for_kdc"),
    AuthdataContainerUnreadable = (err::KDC_ERR_POLICY, "authdata_container_unreadable"),
    NoSubkey = (err::KRB_AP_ERR_BAD_INTEGRITY, "no_subkey"),
    SubkeyEtypeNosupp = (err::KDC_ERR_ETYPE_NOSUPP, "subkey_etype_nosupp"),
    BadSubkey = (err::KRB_AP_ERR_BAD_INTEGRITY, "bad_subkey"),
}

impl Reason {
    /// `pktc_shed_total{reason}` for refusals that shed load.
    pub fn shed_label(self) -> Option<&'static str> {
        match self {
            Reason::ShedPoolFull => Some("cpu_pool"),
            Reason::DeviceLookupBusy => Some("mps_in_flight"),
            _ => None,
        }
    }

    /// "Too busy now" rather than "the realm cannot serve you": the
    /// admission gate or the provisioning-server lookups full, a token
    /// bucket empty (`[overload] pkinit_busy_reply`).
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            Reason::ShedPoolFull
                | Reason::DeviceLookupBusy
                | Reason::RateLimitedSource
                | Reason::RateLimitedGlobal
        )
    }

    /// `pktc_mps_lookups_total{outcome}` for a device whose directory
    /// answer the request did not match.
    pub fn mps_mismatch_label(self) -> Option<&'static str> {
        match self {
            Reason::DeviceFqdnMismatch => Some("mismatch_fqdn"),
            Reason::DeviceAddressMismatch | Reason::DeviceAddressNotSupplied => {
                Some("mismatch_addr")
            }
            _ => None,
        }
    }

    /// Every reason, PKINIT's included.
    pub fn all() -> impl Iterator<Item = Reason> {
        Reason::KDC
            .iter()
            .copied()
            .chain(Refusal::ALL.iter().copied().map(Reason::Pkinit))
    }
}

impl From<Refusal> for Reason {
    fn from(r: Refusal) -> Reason {
        Reason::Pkinit(r)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::all() {
            let label = r.label();
            assert!(seen.insert(label), "{label} twice");
            assert!(
                !label.is_empty()
                    && label.len() <= 40
                    && label.starts_with(|c: char| c.is_ascii_lowercase())
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{label}"
            );
            let answered = matches!(r, Reason::Ok | Reason::Lookaside);
            assert_eq!(r.code() == 0, answered, "{label}: code {}", r.code());
        }
        assert!(seen.len() > 90, "{}", seen.len());
        for r in Reason::all().filter(|r| r.is_busy()) {
            assert_eq!(r.code(), err::KDC_ERR_SVC_UNAVAILABLE, "{r}");
        }
    }
}
