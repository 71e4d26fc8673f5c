//! Key usage numbers (RFC 4120 §7.5.1, RFC 4556).

/// PA-ENC-TIMESTAMP padata timestamp, encrypted with the client key.
pub const PA_ENC_TIMESTAMP: u32 = 1;
/// Ticket enc-part, encrypted with the service key.
pub const TICKET: u32 = 2;
/// AS-REP enc-part, encrypted with the client key.
pub const AS_REP_ENC_PART: u32 = 3;
/// TGS-REQ authorization-data, encrypted with the TGS session key.
pub const TGS_REQ_AUTHDATA_SESSION: u32 = 4;
/// TGS-REQ authorization-data, encrypted with the authenticator subkey.
pub const TGS_REQ_AUTHDATA_SUBKEY: u32 = 5;
/// TGS-REQ PA-TGS-REQ authenticator checksum, keyed with the TGS session key.
pub const TGS_REQ_AUTH_CKSUM: u32 = 6;
/// TGS-REQ PA-TGS-REQ authenticator, encrypted with the TGS session key.
pub const TGS_REQ_AUTH: u32 = 7;
/// TGS-REP enc-part, encrypted with the TGS session key.
pub const TGS_REP_ENC_PART_SESSION: u32 = 8;
/// TGS-REP enc-part, encrypted with the authenticator subkey.
pub const TGS_REP_ENC_PART_SUBKEY: u32 = 9;
/// AP-REQ authenticator checksum, keyed with the application session key.
pub const AP_REQ_AUTH_CKSUM: u32 = 10;
/// AP-REQ authenticator, encrypted with the application session key.
pub const AP_REQ_AUTH: u32 = 11;
/// AP-REP enc-part, encrypted with the application session key.
pub const AP_REP_ENC_PART: u32 = 12;
/// KRB-PRIV enc-part.
pub const KRB_PRIV_ENC_PART: u32 = 13;
/// KRB-CRED enc-part.
pub const KRB_CRED_ENC_PART: u32 = 14;
/// KRB-SAFE checksum.
pub const KRB_SAFE_CKSUM: u32 = 15;
/// PA-PKINIT-KX (RFC 8062 §7, anonymous PKINIT key confirmation).
pub const PA_PKINIT_KX: u32 = 44;
