//! What the AS and TGS exchanges share: ticket times, sealing a ticket and
//! the encrypted reply part.

use krb::crypto::{EncType, Key, usage};
use krb::msg::flags::{Flags, bit};
use krb::msg::{
    self, EncKdcRepPart, EncTicketPart, EncryptedData, EncryptionKey, PrincipalName, Ticket,
    TransitedEncoding, asn1, time,
};

use crate::db::{KeyEntry, PrincipalEntry};
use crate::kerr::KdcError;
use crate::reason::Reason;

/// Lifetime of a new ticket.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub auth: i64,
    pub start: i64,
    pub end: i64,
    pub renew_till: Option<i64>,
}

/// The client's requested `till`/`rtime`: 0 (19700101000000Z) means "as long as allowed".
fn requested(t: Option<&msg::KerberosTime>) -> Option<i64> {
    t.map(time::to_unix)
        .map(|v| if v == 0 { i64::MAX } else { v })
}

/// Policy limits for one ticket.
pub struct Limits {
    pub max_life: i64,
    pub max_renew: i64,
    /// The end of the ticket this one derives from (TGS), if any.
    pub end_cap: Option<i64>,
    /// The renew-till of the ticket this one derives from (TGS), if any.
    pub renew_cap: Option<i64>,
}

/// Works out start, end and renew-till as RFC 4120 §3.1.3 and §3.3.3 say.
/// Returns the flags to add (RENEWABLE) too.
pub fn ticket_times(
    now: i64,
    auth: i64,
    body: &msg::KdcReqBody,
    options: Flags,
    lim: &Limits,
) -> Result<(Times, Flags), KdcError> {
    let till = requested(Some(&body.till)).unwrap_or(i64::MAX);
    let mut end = till.min(now.saturating_add(lim.max_life));
    if let Some(cap) = lim.end_cap {
        end = end.min(cap);
    }
    if end <= now {
        return Err(KdcError::new(Reason::NeverValid).text("requested end time is in the past"));
    }
    let mut extra = Flags::empty();
    let mut renew_till = None;
    let wants_renewable = options.has(bit::RENEWABLE)
        || (options.has(bit::RENEWABLE_OK) && till > end && lim.renew_cap.is_none_or(|c| c > end));
    if wants_renewable && lim.max_renew > 0 {
        let asked = if options.has(bit::RENEWABLE) {
            requested(body.rtime.as_ref()).unwrap_or(till)
        } else {
            till
        };
        let mut rt = asked.min(now.saturating_add(lim.max_renew));
        if let Some(cap) = lim.renew_cap {
            rt = rt.min(cap);
        }
        if rt > end {
            renew_till = Some(rt);
            extra = extra.with(bit::RENEWABLE);
        }
    }
    Ok((
        Times {
            auth,
            start: now,
            end,
            renew_till,
        },
        extra,
    ))
}

/// Everything inside a ticket.
pub struct TicketContent<'a> {
    pub flags: Flags,
    pub session_key: &'a Key,
    pub crealm: asn1::Realm,
    pub cname: PrincipalName,
    pub times: Times,
    pub caddr: Option<asn1::HostAddresses>,
    pub authorization_data: Option<asn1::AuthorizationData>,
}

pub fn encryption_key(key: &Key) -> EncryptionKey {
    EncryptionKey {
        r#type: key.etype().as_i32(),
        value: key.bytes().to_vec().into(),
    }
}

fn encode_err(e: msg::CodecError) -> KdcError {
    KdcError::new(Reason::EncodeFailed).text(e.to_string())
}

/// Encrypts a ticket for `server` in its cached ticket key.
pub fn seal_ticket(
    content: &TicketContent<'_>,
    server: &KeyEntry,
    srealm: &str,
    sname: PrincipalName,
) -> Result<Ticket, KdcError> {
    let t = &content.times;
    let part = EncTicketPart {
        flags: content.flags.ticket_flags(),
        key: encryption_key(content.session_key),
        crealm: content.crealm.clone(),
        cname: content.cname.clone(),
        transited: TransitedEncoding {
            r#type: 1,
            contents: Vec::new().into(),
        },
        auth_time: time::from_unix(t.auth),
        start_time: Some(time::from_unix(t.start)),
        end_time: time::from_unix(t.end),
        renew_till: t.renew_till.map(time::from_unix),
        caddr: content.caddr.clone(),
        authorization_data: content.authorization_data.clone(),
    };
    // Holds the session key: wiped when dropped.
    let plain = zeroize::Zeroizing::new(msg::encode("EncTicketPart", &part).map_err(encode_err)?);
    Ok(Ticket {
        tkt_vno: 5.into(),
        realm: msg::kstring(srealm),
        sname,
        enc_part: EncryptedData {
            etype: server.key.etype().as_i32(),
            kvno: Some(server.kvno),
            cipher: server.ticket_key.encrypt(&plain).into(),
        },
    })
}

/// The reply's encrypted part (EncASRepPart or EncTGSRepPart content).
pub fn rep_part(
    content: &TicketContent<'_>,
    nonce: u32,
    srealm: &str,
    sname: PrincipalName,
) -> EncKdcRepPart {
    let t = &content.times;
    EncKdcRepPart {
        key: encryption_key(content.session_key),
        last_req: vec![asn1::LastReqValue {
            r#type: 0,
            value: time::from_unix(t.auth),
        }],
        nonce,
        key_expiration: None,
        flags: content.flags.ticket_flags(),
        auth_time: time::from_unix(t.auth),
        start_time: Some(time::from_unix(t.start)),
        end_time: time::from_unix(t.end),
        renew_till: t.renew_till.map(time::from_unix),
        srealm: msg::kstring(srealm),
        sname,
        caddr: content.caddr.clone(),
        encrypted_pa_data: None,
    }
}

/// Encrypts an encoded reply part with the reply key.
pub fn seal_rep_part(key: &Key, key_usage: u32, kvno: Option<u32>, plain: &[u8]) -> EncryptedData {
    EncryptedData {
        etype: key.etype().as_i32(),
        kvno,
        cipher: key.encrypt(key_usage, plain).into(),
    }
}

/// The first etype in the client's list that policy permits and `ok` accepts.
pub fn choose_etype(
    client_order: &[i32],
    permitted: &[EncType],
    ok: impl Fn(EncType) -> bool,
) -> Option<EncType> {
    first_permitted(
        client_order.iter().filter_map(|n| EncType::from_i32(*n)),
        permitted,
        ok,
    )
}

/// The first of `candidates` that policy permits and `ok` accepts.
pub fn first_permitted(
    candidates: impl IntoIterator<Item = EncType>,
    permitted: &[EncType],
    ok: impl Fn(EncType) -> bool,
) -> Option<EncType> {
    candidates
        .into_iter()
        .find(|e| permitted.contains(e) && ok(*e))
}

/// Key usage for the AS reply's enc-part.
pub const AS_REP_USAGE: u32 = usage::AS_REP_ENC_PART;

/// The new ticket's session key type: the first etype in the client's list
/// that policy permits and the service has a key of; failing that, the
/// first permitted one (MIT's rule).
pub fn session_etype(
    requested: &[i32],
    permitted: &[EncType],
    server: &PrincipalEntry,
) -> Result<EncType, KdcError> {
    choose_etype(requested, permitted, |e| server.etypes().any(|s| s == e))
        .or_else(|| choose_etype(requested, permitted, |_| true))
        .ok_or_else(|| {
            KdcError::new(Reason::EtypeNosupp).text("no requested encryption type is supported")
        })
}

/// The service's ticket key: its strongest key of the newest kvno.
pub fn ticket_key(server: &PrincipalEntry) -> Result<&KeyEntry, KdcError> {
    server
        .strongest()
        .ok_or_else(|| KdcError::new(Reason::ServerNoKey))
}

/// Seals the ticket for `server_key` and builds the matching reply part.
pub fn ticket_and_rep_part(
    content: &TicketContent<'_>,
    server_key: &KeyEntry,
    realm: &str,
    sname: &PrincipalName,
    nonce: u32,
) -> Result<(Ticket, EncKdcRepPart), KdcError> {
    let ticket = seal_ticket(content, server_key, realm, sname.clone())?;
    Ok((ticket, rep_part(content, nonce, realm, sname.clone())))
}
