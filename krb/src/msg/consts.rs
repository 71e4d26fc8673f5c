//! Protocol numbers from RFC 4120, RFC 4556, RFC 6113 and the PacketCable
//! drafts (see shared PROTOCOL.md §1–2).

/// Message types (RFC 4120 §7.5.7).
pub mod msg_type {
    pub const AS_REQ: i64 = 10;
    pub const AS_REP: i64 = 11;
    pub const TGS_REQ: i64 = 12;
    pub const TGS_REP: i64 = 13;
    pub const AP_REQ: i64 = 14;
    pub const AP_REP: i64 = 15;
    pub const KRB_SAFE: i64 = 20;
    pub const KRB_ERROR: i64 = 30;
}

/// Pre-authentication data types.
pub mod padata {
    pub const TGS_REQ: i32 = 1;
    pub const ENC_TIMESTAMP: i32 = 2;
    pub const PW_SALT: i32 = 3;
    pub const ETYPE_INFO: i32 = 11;
    /// PacketCable / draft "-19" PKINIT request.
    pub const PK_AS_REQ_19: i32 = 14;
    /// PacketCable / draft "-19" PKINIT reply (also Windows draft-9 request).
    pub const PK_AS_REP_19: i32 = 15;
    pub const PK_AS_REQ: i32 = 16;
    pub const PK_AS_REP: i32 = 17;
    pub const ETYPE_INFO2: i32 = 19;
    pub const PAC_REQUEST: i32 = 128;
    pub const FX_COOKIE: i32 = 133;
    pub const FX_FAST: i32 = 136;
    pub const ENCRYPTED_CHALLENGE: i32 = 138;
    pub const REQ_ENC_PA_REP: i32 = 149;
    pub const AS_FRESHNESS: i32 = 150;
    /// PacketCable PA-PROV-SRV-LOCATION (DER INTEGER `02 01 FF`).
    pub const PROV_SRV_LOCATION: i32 = -1;
}

// Name types (RFC 4120 §6.2) live in `crate::principal::name_type`.

/// KRB-ERROR codes (RFC 4120 §7.5.9, RFC 4556 §3.2).
pub mod err {
    pub const KDC_ERR_NONE: i32 = 0;
    pub const KDC_ERR_NAME_EXP: i32 = 1;
    pub const KDC_ERR_BAD_PVNO: i32 = 3;
    pub const KDC_ERR_WRONG_REALM: i32 = 68;
    pub const KDC_ERR_C_PRINCIPAL_UNKNOWN: i32 = 6;
    pub const KDC_ERR_S_PRINCIPAL_UNKNOWN: i32 = 7;
    pub const KDC_ERR_NULL_KEY: i32 = 9;
    pub const KDC_ERR_CANNOT_POSTDATE: i32 = 10;
    pub const KDC_ERR_NEVER_VALID: i32 = 11;
    pub const KDC_ERR_POLICY: i32 = 12;
    pub const KDC_ERR_BADOPTION: i32 = 13;
    pub const KDC_ERR_ETYPE_NOSUPP: i32 = 14;
    pub const KDC_ERR_SUMTYPE_NOSUPP: i32 = 15;
    pub const KDC_ERR_PADATA_TYPE_NOSUPP: i32 = 16;
    pub const KDC_ERR_CLIENT_REVOKED: i32 = 18;
    pub const KDC_ERR_TGT_REVOKED: i32 = 20;
    pub const KDC_ERR_KEY_EXPIRED: i32 = 23;
    pub const KDC_ERR_PREAUTH_FAILED: i32 = 24;
    pub const KDC_ERR_PREAUTH_REQUIRED: i32 = 25;
    pub const KDC_ERR_SVC_UNAVAILABLE: i32 = 29;
    pub const KRB_AP_ERR_BAD_INTEGRITY: i32 = 31;
    pub const KRB_AP_ERR_TKT_EXPIRED: i32 = 32;
    pub const KRB_AP_ERR_TKT_NYV: i32 = 33;
    pub const KRB_AP_ERR_REPEAT: i32 = 34;
    pub const KRB_AP_ERR_NOT_US: i32 = 35;
    pub const KRB_AP_ERR_BADMATCH: i32 = 36;
    pub const KRB_AP_ERR_SKEW: i32 = 37;
    pub const KRB_AP_ERR_BADADDR: i32 = 38;
    pub const KRB_AP_ERR_BADVERSION: i32 = 39;
    pub const KRB_AP_ERR_MSG_TYPE: i32 = 40;
    pub const KRB_AP_ERR_MODIFIED: i32 = 41;
    pub const KRB_AP_ERR_BADKEYVER: i32 = 44;
    pub const KRB_AP_ERR_NOKEY: i32 = 45;
    pub const KRB_AP_ERR_INAPP_CKSUM: i32 = 50;
    pub const KRB_ERR_RESPONSE_TOO_BIG: i32 = 52;
    pub const KRB_ERR_GENERIC: i32 = 60;
    pub const KRB_ERR_FIELD_TOOLONG: i32 = 61;
    pub const KDC_ERR_CLIENT_NOT_TRUSTED: i32 = 62;
    pub const KDC_ERR_KDC_NOT_TRUSTED: i32 = 63;
    pub const KDC_ERR_INVALID_SIG: i32 = 64;
    pub const KDC_ERR_KEY_TOO_WEAK: i32 = 65;
    pub const KDC_ERR_CERTIFICATE_MISMATCH: i32 = 66;
    pub const KDC_ERR_CANT_VERIFY_CERTIFICATE: i32 = 70;
    pub const KDC_ERR_INVALID_CERTIFICATE: i32 = 71;
    pub const KDC_ERR_REVOKED_CERTIFICATE: i32 = 72;
    pub const KDC_ERR_REVOCATION_STATUS_UNKNOWN: i32 = 73;
    pub const KDC_ERR_REVOCATION_STATUS_UNAVAILABLE: i32 = 74;
    pub const KDC_ERR_CLIENT_NAME_MISMATCH: i32 = 75;
    pub const KDC_ERR_KDC_NAME_MISMATCH: i32 = 76;
}
