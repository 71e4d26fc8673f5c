//! pkt-eue-7 datagrams: a KRB_AP_REQ (requests) or KRB_AP_REP (replies)
//! immediately followed by a KRB_SAFE whose user-data is the message
//! (shared PROTOCOL.md §3.1, CONFIRMED from Wireshark's dissector).
//!
//! INFERRED parts, with our defaults (configurable by the caller, recorded
//! in the protocol profile): the KDC mints the AP-REQ ticket for
//! `mtaprovsrvr/<mps fqdn>` itself with that principal's service key; the
//! ticket's client is a name the KDC chooses (default `krbtgt/REALM`); the
//! KRB_SAFE is checksummed with the AP session key under key usage 15, by
//! default with the session key's own keyed checksum type; KRB_SAFE carries
//! timestamp, usec and the sender address; the receiver checks the
//! checksum, the timestamp skew, the sender address against the datagram's
//! source (configurable: NAT rewrites the source), and (MPS side)
//! authenticator replay.
//!
//! The MPS side accepts only tickets whose client is the KDC's own name (a
//! name no device or user can get a ticket as), for a principal it serves,
//! valid now: holding some `mtaprovsrvr` ticket is not enough, since any
//! MTA (PKINIT) or TGT holder (TGS) can get one.

use std::net::IpAddr;

use krb::crypto::{ChecksumType, EncType, Key, usage};
use krb::msg::flags::{Flags, bit};
use krb::msg::{
    self, ApRep, ApReq, Authenticator, Checksum, EncApRepPart, EncTicketPart, EncryptedData,
    KrbSafe, KrbSafeBody, Ticket, TransitedEncoding, address, raw, time,
};
use krb::principal::Principal;
use krb::replay::{self, ReplayCache};
use zeroize::Zeroizing;

/// Why a datagram was refused.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("malformed datagram: {0}")]
    Malformed(String),
    #[error("no key for the ticket (etype {etype}, kvno {kvno:?})")]
    NoKey { etype: i32, kvno: Option<u32> },
    #[error("integrity check failed: {0}")]
    Integrity(&'static str),
    #[error("clock skew too great")]
    Skew,
    #[error("replayed authenticator")]
    Replay,
    #[error("reply does not answer our request")]
    NotOurReply,
    /// The ticket is sound but not one this responder accepts: its client
    /// is not the KDC (e.g. a device's or user's own `mtaprovsrvr` ticket).
    #[error("ticket client {0} is not the KDC")]
    NotKdc(String),
    /// The ticket names a server this responder does not serve.
    #[error("ticket is for {0}, not a principal served here")]
    NotServed(String),
    /// The ticket is not valid now (INVALID flag, postdated, expired).
    #[error("ticket {0}")]
    TicketNotValid(&'static str),
    /// The KRB_SAFE s-address is not where the datagram came from.
    #[error("KRB_SAFE sender address {claimed} is not the datagram's source {from}")]
    SenderAddress { claimed: String, from: IpAddr },
    #[error(transparent)]
    Crypto(#[from] krb::crypto::CryptoError),
}

fn malformed(e: impl std::fmt::Display) -> FramingError {
    FramingError::Malformed(e.to_string())
}

const KRB_SAFE_TAG: u8 = 0x74;
const SAFE_BODY_FIELD: u8 = 0xa2;

/// Splits a datagram into its AP message and its KRB_SAFE.
fn split(datagram: &[u8], ap_tag: u8) -> Result<(&[u8], &[u8]), FramingError> {
    let (ap, rest) = raw::read_tlv(datagram).map_err(malformed)?;
    if ap.tag != ap_tag {
        return Err(malformed(format!(
            "expected tag {ap_tag:#04x}, got {:#04x}",
            ap.tag
        )));
    }
    let (safe, trailing) = raw::read_tlv(rest).map_err(malformed)?;
    if safe.tag != KRB_SAFE_TAG || !trailing.is_empty() {
        return Err(malformed("KRB_SAFE missing, or bytes after it"));
    }
    Ok((ap.whole, safe.whole))
}

/// A KRB_SAFE carrying `user_data`, checksummed with `key` (usage 15).
fn safe(
    user_data: &[u8],
    key: &Key,
    ctype: Option<ChecksumType>,
    sender: IpAddr,
    now: (i64, u32),
) -> Result<Vec<u8>, FramingError> {
    let body = KrbSafeBody {
        user_data: user_data.to_vec().into(),
        timestamp: Some(time::from_unix(now.0)),
        usec: Some((now.1 as i64).into()),
        seq_number: None,
        s_address: address::host_address(sender),
        r_address: None,
    };
    let body_der = msg::encode("KRB-SAFE-BODY", &body).map_err(malformed)?;
    let ctype = ctype.unwrap_or_else(|| key.etype().checksum_type());
    let cksum = key.checksum_with(ctype, usage::KRB_SAFE_CKSUM, &body_der)?;
    let safe = KrbSafe {
        pvno: 5.into(),
        msg_type: 20.into(),
        body,
        cksum: Checksum {
            r#type: ctype.as_i32(),
            checksum: cksum.into(),
        },
    };
    msg::encode("KRB-SAFE", &safe).map_err(malformed)
}

/// Checks a received KRB_SAFE (checksum over the exact safe-body bytes, any
/// keyed type of the key's family; timestamp within `skew`; with `source`,
/// s-address equal to it) and returns the user-data.
fn open_safe(
    bytes: &[u8],
    key: &Key,
    source: Option<IpAddr>,
    now: i64,
    skew: i64,
) -> Result<Vec<u8>, FramingError> {
    let s: KrbSafe = msg::decode("KRB-SAFE", bytes).map_err(malformed)?;
    if msg::small_int(&s.pvno) != Some(5) || msg::small_int(&s.msg_type) != Some(20) {
        return Err(malformed("not a KRB-SAFE"));
    }
    let body_bytes = raw::message_field(bytes, KRB_SAFE_TAG, SAFE_BODY_FIELD).map_err(malformed)?;
    let ctype = ChecksumType::from_i32(s.cksum.r#type)
        .filter(|c| c.is_keyed())
        .ok_or(FramingError::Integrity(
            "KRB_SAFE checksum type not keyed or unknown",
        ))?;
    key.verify_checksum_with(ctype, usage::KRB_SAFE_CKSUM, body_bytes, &s.cksum.checksum)
        .map_err(|_| FramingError::Integrity("KRB_SAFE checksum"))?;
    let ts = s
        .body
        .timestamp
        .as_ref()
        .ok_or_else(|| malformed("KRB_SAFE without timestamp"))?;
    if (time::to_unix(ts) - now).abs() > skew {
        return Err(FramingError::Skew);
    }
    if let Some(source) = source.map(|a| a.to_canonical())
        && address::ip_address(&s.body.s_address) != Some(source)
    {
        return Err(FramingError::SenderAddress {
            claimed: address::ip_address(&s.body.s_address)
                .map_or_else(|| "(not an IP address)".to_string(), |a| a.to_string()),
            from: source,
        });
    }
    Ok(s.body.user_data.to_vec())
}

/// The KDC's side of pkt-eue-7.
pub struct Requester<'a> {
    /// The ticket's and authenticator's client (INFERRED default `krbtgt/REALM`).
    pub kdc_name: &'a Principal,
    /// `mtaprovsrvr/<mps fqdn>@REALM`.
    pub service: &'a Principal,
    /// The service's key (from the keytab) and its kvno.
    pub service_key: &'a Key,
    pub kvno: u32,
    /// KRB_SAFE checksum type; None: the session key's own keyed type.
    pub checksum_type: Option<ChecksumType>,
    /// Ticket life (the MPS only needs it for this exchange).
    pub ticket_life: i64,
}

/// What the KDC keeps to check the reply.
pub struct Pending {
    session_key: Key,
    ctime: i64,
    cusec: u32,
}

impl Requester<'_> {
    /// A request datagram carrying `user_data` from `sender`.
    pub fn request(
        &self,
        user_data: &[u8],
        sender: IpAddr,
        now: (i64, u32),
    ) -> Result<(Vec<u8>, Pending), FramingError> {
        // A configured checksum type decides the session key's family
        // (hmac-sha1-des3-kd needs a des3 session key).
        let session_etype = self
            .checksum_type
            .and_then(ChecksumType::etype)
            .unwrap_or_else(|| self.service_key.etype());
        let session_key = Key::random(session_etype);
        let (cname, crealm) = self.kdc_name.to_rasn().map_err(malformed)?;
        let (sname, srealm) = self.service.to_rasn().map_err(malformed)?;
        let part = EncTicketPart {
            flags: Flags::empty().with(bit::INITIAL).ticket_flags(),
            key: msg::EncryptionKey {
                r#type: session_key.etype().as_i32(),
                value: session_key.bytes().to_vec().into(),
            },
            crealm,
            cname,
            transited: TransitedEncoding {
                r#type: 1,
                contents: Vec::new().into(),
            },
            auth_time: time::from_unix(now.0),
            start_time: Some(time::from_unix(now.0)),
            end_time: time::from_unix(now.0 + self.ticket_life),
            renew_till: None,
            caddr: None,
            authorization_data: None,
        };
        let part_der = Zeroizing::new(msg::encode("EncTicketPart", &part).map_err(malformed)?);
        let ticket = Ticket {
            tkt_vno: 5.into(),
            realm: srealm,
            sname,
            enc_part: EncryptedData {
                etype: self.service_key.etype().as_i32(),
                kvno: Some(self.kvno),
                cipher: self.service_key.encrypt(usage::TICKET, &part_der).into(),
            },
        };
        let client = ApClient {
            name: self.kdc_name,
            session_key,
            checksum_type: self.checksum_type,
        };
        client.request(ticket, user_data, sender, now)
    }
}

/// The sender of an AP-REQ + KRB_SAFE request holding a ticket it did not
/// mint (e.g. one from a credential cache): its name and the ticket's
/// session key.
pub struct ApClient<'a> {
    pub name: &'a Principal,
    pub session_key: Key,
    /// KRB_SAFE checksum type; None: the session key's own keyed type.
    pub checksum_type: Option<ChecksumType>,
}

impl ApClient<'_> {
    /// A request datagram presenting `ticket` and carrying `user_data`.
    pub fn request(
        self,
        ticket: Ticket,
        user_data: &[u8],
        sender: IpAddr,
        now: (i64, u32),
    ) -> Result<(Vec<u8>, Pending), FramingError> {
        let (cname, crealm) = self.name.to_rasn().map_err(malformed)?;
        let session_key = self.session_key;
        let auth = Authenticator {
            authenticator_vno: 5.into(),
            crealm,
            cname,
            cksum: None,
            cusec: (now.1 as i64).into(),
            ctime: time::from_unix(now.0),
            subkey: None,
            seq_number: None,
            authorization_data: None,
        };
        let ap = ApReq {
            pvno: 5.into(),
            msg_type: 14.into(),
            ap_options: Flags::empty().with(bit::MUTUAL_REQUIRED).ap_options(),
            ticket,
            authenticator: EncryptedData {
                etype: session_key.etype().as_i32(),
                kvno: None,
                cipher: session_key
                    .encrypt(
                        usage::AP_REQ_AUTH,
                        &msg::encode("Authenticator", &auth).map_err(malformed)?,
                    )
                    .into(),
            },
        };
        let mut datagram = msg::encode("AP-REQ", &ap).map_err(malformed)?;
        datagram.extend(safe(
            user_data,
            &session_key,
            self.checksum_type,
            sender,
            now,
        )?);
        Ok((
            datagram,
            Pending {
                session_key,
                ctime: now.0,
                cusec: now.1,
            },
        ))
    }
}

impl Pending {
    /// Checks a reply datagram (AP-REP answering our authenticator, then a
    /// KRB_SAFE under the session key, sent from `source` when given) and
    /// returns its user-data.
    pub fn open_reply(
        &self,
        datagram: &[u8],
        source: Option<IpAddr>,
        now: i64,
        skew: i64,
    ) -> Result<Vec<u8>, FramingError> {
        let (ap, safe_bytes) = split(datagram, 0x6f)?;
        let rep: ApRep = msg::decode("AP-REP", ap).map_err(malformed)?;
        let plain = Zeroizing::new(
            self.session_key
                .decrypt(usage::AP_REP_ENC_PART, &rep.enc_part.cipher)
                .map_err(|_| FramingError::Integrity("AP-REP"))?,
        );
        let part: EncApRepPart = msg::decode_padded("EncAPRepPart", &plain).map_err(malformed)?;
        if time::to_unix(&part.ctime) != self.ctime
            || i64::try_from(&part.cusec).ok() != Some(self.cusec as i64)
        {
            return Err(FramingError::NotOurReply);
        }
        open_safe(safe_bytes, &self.session_key, source, now, skew)
    }
}

/// What a provisioning server accepts, beyond a ticket it can open.
#[derive(Debug, Clone)]
pub struct AcceptPolicy {
    /// The only ticket clients accepted: the KDC's name(s) in the AP-REQ
    /// (INFERRED default `krbtgt/REALM@REALM`, the KDC's `mps.kdc_principal`).
    pub kdc_names: Vec<Principal>,
    /// Clock skew allowed for the ticket times, authenticator and KRB_SAFE.
    pub skew: i64,
    /// The KRB_SAFE s-address must be the datagram's source (off behind NAT).
    pub check_sender: bool,
}

impl AcceptPolicy {
    /// The KDC's default name for each realm: `krbtgt/REALM@REALM`.
    pub fn krbtgt_of<'a>(realms: impl IntoIterator<Item = &'a str>, skew: i64) -> AcceptPolicy {
        let mut kdc_names: Vec<Principal> = Vec::new();
        for r in realms {
            let p = Principal::krbtgt(r);
            if !kdc_names.iter().any(|k| k.same_name(&p)) {
                kdc_names.push(p);
            }
        }
        AcceptPolicy {
            kdc_names,
            skew,
            check_sender: true,
        }
    }
}

/// The key of a ticket's server (its sname and realm) for the ticket's
/// etype and kvno; None: not a principal served here, or no such key.
pub type ServiceKeys<'a> = dyn Fn(&Principal, EncType, Option<u32>) -> Option<Key> + Sync + 'a;

/// The provisioning server's side: checks request datagrams and builds replies.
pub struct Responder<'a> {
    pub keys: &'a ServiceKeys<'a>,
    pub policy: &'a AcceptPolicy,
    pub replay: &'a ReplayCache,
    pub checksum_type: Option<ChecksumType>,
}

/// What a reply needs from the request.
pub struct Accepted {
    pub user_data: Vec<u8>,
    /// The requester's name (from the ticket).
    pub client: Principal,
    session_key: Key,
    ctime: i64,
    cusec: i64,
}

impl Responder<'_> {
    /// Checks a request datagram that came from `source`.
    pub fn accept(
        &self,
        datagram: &[u8],
        source: IpAddr,
        now: i64,
    ) -> Result<Accepted, FramingError> {
        let skew = self.policy.skew;
        let (ap_bytes, safe_bytes) = split(datagram, 0x6e)?;
        let ap: ApReq = msg::decode("AP-REQ", ap_bytes).map_err(malformed)?;
        let no_key = || FramingError::NoKey {
            etype: ap.ticket.enc_part.etype,
            kvno: ap.ticket.enc_part.kvno,
        };
        let etype = EncType::from_i32(ap.ticket.enc_part.etype).ok_or_else(no_key)?;
        let server = Principal::from_rasn(&ap.ticket.sname, &ap.ticket.realm).map_err(malformed)?;
        // The key is the server's: a ticket opens only under the key of the
        // principal it names.
        let key = (self.keys)(&server, etype, ap.ticket.enc_part.kvno)
            .ok_or_else(|| FramingError::NotServed(server.to_string()))?;
        let plain = Zeroizing::new(
            key.decrypt(usage::TICKET, &ap.ticket.enc_part.cipher)
                .map_err(|_| FramingError::Integrity("ticket"))?,
        );
        let tkt: EncTicketPart = msg::decode_padded("EncTicketPart", &plain).map_err(malformed)?;
        let client = Principal::from_rasn(&tkt.cname, &tkt.crealm).map_err(malformed)?;
        if !self.policy.kdc_names.iter().any(|k| k.same_name(&client)) {
            return Err(FramingError::NotKdc(client.to_string()));
        }
        ticket_valid_now(&tkt, now, skew)?;
        let session = Key::new(
            EncType::from_i32(tkt.key.r#type).ok_or_else(|| malformed("session key etype"))?,
            &tkt.key.value,
        )?;
        let plain = Zeroizing::new(
            session
                .decrypt(usage::AP_REQ_AUTH, &ap.authenticator.cipher)
                .map_err(|_| FramingError::Integrity("authenticator"))?,
        );
        let auth: Authenticator = msg::decode_padded("Authenticator", &plain).map_err(malformed)?;
        if auth.cname != tkt.cname || auth.crealm != tkt.crealm {
            return Err(FramingError::Integrity(
                "authenticator client differs from the ticket's",
            ));
        }
        if (time::to_unix(&auth.ctime) - now).abs() > skew {
            return Err(FramingError::Skew);
        }
        let sender = self.policy.check_sender.then_some(source);
        let user_data = open_safe(safe_bytes, &session, sender, now, skew)?;
        if !self
            .replay
            .check_and_insert(replay::tag(&ap.authenticator.cipher))
        {
            return Err(FramingError::Replay);
        }
        Ok(Accepted {
            user_data,
            client,
            session_key: session,
            ctime: time::to_unix(&auth.ctime),
            cusec: i64::try_from(&auth.cusec).map_err(|_| malformed("cusec"))?,
        })
    }

    /// The reply datagram: AP-REP (mutual authentication) + KRB_SAFE.
    pub fn reply(
        &self,
        req: &Accepted,
        user_data: &[u8],
        sender: IpAddr,
        now: (i64, u32),
    ) -> Result<Vec<u8>, FramingError> {
        let part = EncApRepPart {
            ctime: time::from_unix(req.ctime),
            cusec: req.cusec.into(),
            subkey: None,
            seq_number: None,
        };
        let rep = ApRep {
            pvno: 5.into(),
            msg_type: 15.into(),
            enc_part: EncryptedData {
                etype: req.session_key.etype().as_i32(),
                kvno: None,
                cipher: req
                    .session_key
                    .encrypt(
                        usage::AP_REP_ENC_PART,
                        &msg::encode("EncAPRepPart", &part).map_err(malformed)?,
                    )
                    .into(),
            },
        };
        let mut datagram = msg::encode("AP-REP", &rep).map_err(malformed)?;
        datagram.extend(safe(
            user_data,
            &req.session_key,
            self.checksum_type,
            sender,
            now,
        )?);
        Ok(datagram)
    }
}

/// RFC 4120 §3.2.3: a ticket marked INVALID, starting later than now (a
/// postdated one not yet due) or already over is refused, within `skew`.
fn ticket_valid_now(tkt: &EncTicketPart, now: i64, skew: i64) -> Result<(), FramingError> {
    if Flags::from_bits(&tkt.flags.0).has(bit::INVALID) {
        return Err(FramingError::TicketNotValid("marked INVALID"));
    }
    let start = time::to_unix(tkt.start_time.as_ref().unwrap_or(&tkt.auth_time));
    if start > now.saturating_add(skew) {
        return Err(FramingError::TicketNotValid("not yet valid"));
    }
    if time::to_unix(&tkt.end_time).saturating_add(skew) < now {
        return Err(FramingError::TicketNotValid("expired"));
    }
    Ok(())
}
