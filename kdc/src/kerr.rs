//! A refused request: the KRB-ERROR code to send and the audit reason.

use crate::reason::Reason;
use krb::msg::{self, KrbError, PrincipalName, asn1, consts::msg_type, time};

/// Why the KDC refused a request. `reason` decides the code and the audit
/// and metric labels; `text` goes to the client as e-text.
#[derive(Debug, Clone)]
pub struct KdcError {
    /// `reason.code()`, the KRB-ERROR code sent.
    pub code: i32,
    pub reason: Reason,
    pub text: Option<String>,
    pub e_data: Option<Vec<u8>>,
}

impl KdcError {
    pub fn new(reason: Reason) -> KdcError {
        KdcError {
            code: reason.code(),
            reason,
            text: None,
            e_data: None,
        }
    }

    #[must_use]
    pub fn text(mut self, text: impl Into<String>) -> KdcError {
        self.text = Some(text.into());
        self
    }

    #[must_use]
    pub fn e_data(mut self, data: Vec<u8>) -> KdcError {
        self.e_data = Some(data);
        self
    }
}

/// What the error reply says about the parties, when known.
#[derive(Default)]
pub struct ErrorContext {
    pub cname: Option<(PrincipalName, asn1::Realm)>,
    pub sname: Option<PrincipalName>,
}

/// Encodes a KRB-ERROR for `err` from the KDC of `realm`, stamped `now`
/// (Unix seconds and microseconds, from the KDC's clock).
pub fn krb_error(realm: &str, err: &KdcError, ctx: &ErrorContext, now: (i64, u32)) -> Vec<u8> {
    let (now, usec) = now;
    let sname = ctx.sname.clone().unwrap_or_else(|| PrincipalName {
        r#type: krb::principal::name_type::SRV_INST,
        string: vec![msg::kstring("krbtgt"), msg::kstring(realm)],
    });
    let e = KrbError {
        pvno: 5.into(),
        msg_type: msg_type::KRB_ERROR.into(),
        ctime: None,
        cusec: None,
        stime: time::from_unix(now),
        susec: (usec as i64).into(),
        error_code: err.code,
        crealm: ctx.cname.as_ref().map(|c| c.1.clone()),
        cname: ctx.cname.as_ref().map(|c| c.0.clone()),
        realm: msg::kstring(realm),
        sname,
        e_text: err.text.as_deref().map(msg::kstring),
        e_data: err.e_data.clone().map(Into::into),
    };
    // Encoding our own well-formed struct cannot fail; fall back to nothing
    // rather than panic if rasn ever disagrees.
    msg::encode("KRB-ERROR", &e).unwrap_or_default()
}
