//! The AS exchange (RFC 4120 §3.1), as Heimdal's kerberos5.c: a table of
//! pre-authentication mechanisms, each establishing the client and the
//! reply key, and one AS-REP builder ([`Kdc::as_reply`]). Mechanisms:
//! PA-ENC-TIMESTAMP for principals with keys (PREAUTH_REQUIRED with
//! ETYPE-INFO2, etype choice in the client's order) here, and PKINIT for
//! certificate-only devices in `pkinit_as`.

use std::net::SocketAddr;

use krb::crypto::{EncType, Key, usage};
use krb::msg::consts::{msg_type, padata};
use krb::msg::flags::{Flags, bit};
use krb::msg::{
    self, AsRep, AsReq, EncAsRepPart, EtypeInfo2Entry, KdcRep, PaData, PaEncTsEnc, time,
};
use krb::principal::Principal;

use crate::db::{KeyEntry, PrincipalEntry};
use crate::issue::{self, Limits, TicketContent};
use crate::kdc::{Kdc, Outcome, malformed};
use crate::kerr::{ErrorContext, KdcError};
use crate::reason::Reason;

/// An AS-REQ as the dispatcher hands it over.
pub(crate) struct AsExchange<'a> {
    pub request: &'a [u8],
    pub source: SocketAddr,
    /// [`Kdc::routes_to_pkinit`]: the transport queued it as PKINIT.
    pub pkinit: bool,
}

/// Pre-authentication mechanisms (Heimdal's `pat[]`): the padata types
/// that select each.
pub(crate) const PREAUTH_MECHANISMS: [(Mechanism, &[i32]); 2] = [
    (Mechanism::Pkinit, &PKINIT_TYPES),
    (Mechanism::EncTimestamp, &[padata::ENC_TIMESTAMP]),
];

/// PA-PK-AS-REQ in the PacketCable (-19, with its PA-PK-AS-REP-19
/// alias) and RFC 4556 forms.
pub(crate) const PKINIT_TYPES: [i32; 3] = [
    padata::PK_AS_REQ_19,
    padata::PK_AS_REP_19,
    padata::PK_AS_REQ,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Pkinit,
    /// Also answers requests without pre-authentication (PREAUTH_REQUIRED,
    /// or a reply in the client's key where policy allows it).
    EncTimestamp,
}

impl Mechanism {
    /// The first mechanism of the table whose padata the request carries.
    /// PKINIT only for what the dispatcher routed as PKINIT (the transport
    /// queued it for public-key work): a raw scan of the first padata.
    fn select(req: &msg::KdcReq, routed_pkinit: bool) -> Mechanism {
        let carries = |selects: &[i32]| {
            req.padata
                .iter()
                .flatten()
                .any(|p| selects.contains(&p.r#type))
        };
        PREAUTH_MECHANISMS
            .iter()
            .find(|(m, selects)| (*m != Mechanism::Pkinit || routed_pkinit) && carries(selects))
            .map_or(Mechanism::EncTimestamp, |(m, _)| *m)
    }
}

/// What a mechanism settled before the reply: the ticket's server, the
/// session key type, whether the client proved itself, and the time.
pub(crate) struct Issued<'a> {
    pub server: &'a PrincipalEntry,
    pub session_etype: EncType,
    pub pre_authent: bool,
    pub now: i64,
}

/// The key the AS-REP's enc-part is sealed in, and the padata that tells
/// the client how to get it.
pub(crate) struct ReplyKey {
    pub key: Key,
    pub kvno: Option<u32>,
    pub padata: Option<PaData>,
}

/// KDC_ERR_ETYPE_NOSUPP: none of the client's etypes is permitted.
pub(crate) fn etype_nosupp() -> KdcError {
    KdcError::new(Reason::EtypeNosupp).text("no requested encryption type is supported")
}

/// A decoded AS-REQ with its client and server names checked.
pub(crate) struct AsRequest {
    pub req: msg::KdcReq,
    pub client: Principal,
    pub server: Principal,
}

impl Kdc {
    /// Decodes an AS-REQ, runs the shared header checks and parses cname and
    /// sname (both required), recording them for the error reply and audit.
    pub(crate) fn decode_as_request(
        &self,
        request: &[u8],
        ctx: &mut ErrorContext,
        outcome: &mut Outcome,
    ) -> Result<AsRequest, KdcError> {
        // Heimdal's negative nonces decoded as UInt32; checksums use `request`.
        let decodable = krb::msg::raw::with_unsigned_nonce(request);
        let AsReq(req) = msg::decode::<AsReq>("AS-REQ", &decodable).map_err(malformed)?;
        let body = &req.req_body;
        ctx.sname = body.sname.clone();
        if let Some(c) = &body.cname {
            ctx.cname = Some((c.clone(), body.realm.clone()));
        }
        self.check_request(&req, msg_type::AS_REQ)?;
        let cname = body
            .cname
            .as_ref()
            .ok_or_else(|| KdcError::new(Reason::NoCname))?;
        let client = Principal::from_rasn(cname, &body.realm)
            .map_err(|_| KdcError::new(Reason::BadCname))?;
        outcome.set_client(&client);
        let sname = body
            .sname
            .as_ref()
            .ok_or_else(|| KdcError::new(Reason::NoSname))?;
        let server = Principal::from_rasn(sname, &body.realm)
            .map_err(|_| KdcError::new(Reason::BadSname))?;
        outcome.set_server(&server);
        Ok(AsRequest {
            req,
            client,
            server,
        })
    }

    /// The AS exchange: decode, options, then the pre-authentication
    /// mechanism the request's padata selects ([`PREAUTH_MECHANISMS`]),
    /// which ends in [`Kdc::as_reply`].
    pub(crate) async fn as_exchange(
        &self,
        x: AsExchange<'_>,
        ctx: &mut ErrorContext,
        outcome: &mut Outcome,
    ) -> Result<Vec<u8>, KdcError> {
        let r = self.decode_as_request(x.request, ctx, outcome)?;
        check_as_options(Flags::from_bits(&r.req.req_body.kdc_options.0))?;
        match Mechanism::select(&r.req, x.pkinit) {
            Mechanism::Pkinit => self.pkinit_as(x.request, &r, x.source, outcome).await,
            Mechanism::EncTimestamp => self.enc_timestamp_as(&r),
        }
    }

    /// PA-ENC-TIMESTAMP, or no pre-authentication where policy allows it:
    /// the reply key is the client's long-term key.
    fn enc_timestamp_as(&self, r: &AsRequest) -> Result<Vec<u8>, KdcError> {
        let body = &r.req.req_body;
        if r.req
            .padata
            .iter()
            .flatten()
            .any(|p| PKINIT_TYPES.contains(&p.r#type))
        {
            // PKINIT padata reaches here only when PKINIT is off.
            return Err(KdcError::new(Reason::PkinitNotConfigured)
                .text("PKINIT is not offered by this KDC"));
        }
        if self.pkinit.is_some()
            && self.db.get(&r.client.components).is_none()
            && is_device_name(&r.client)
        {
            // Certificate-only devices have no key: tell them to use PKINIT.
            return Err(KdcError::new(Reason::PreauthRequired)
                .text("Additional pre-authentication required")
                .e_data(pkinit_method_data()));
        }
        let client = self.db.get(&r.client.components).ok_or_else(|| {
            KdcError::new(Reason::UnknownClient).text("client not found in Kerberos database")
        })?;
        let server = self.server_entry(&r.server)?;
        if issue::choose_etype(&body.etype, &self.enctypes, |_| true).is_none() {
            return Err(etype_nosupp());
        }

        let now = self.clock.now();
        let enc_ts = r
            .req
            .padata
            .iter()
            .flatten()
            .find(|p| p.r#type == padata::ENC_TIMESTAMP);
        let (reply_key, preauth) = match enc_ts {
            Some(pa) => (self.verify_enc_timestamp(client, pa, now)?, true),
            None if self.require_preauth => {
                return Err(KdcError::new(Reason::PreauthRequired)
                    .text("Additional pre-authentication required")
                    .e_data(self.preauth_method_data(client, &body.etype)));
            }
            None => {
                let etype = issue::choose_etype(&body.etype, &self.enctypes, |e| {
                    client.key(e, None).is_some()
                })
                .ok_or_else(|| {
                    KdcError::new(Reason::EtypeNosupp)
                        .text("client has no key of a requested encryption type")
                })?;
                (
                    client
                        .key(etype, None)
                        .ok_or_else(|| KdcError::new(Reason::EtypeNosupp))?,
                    false,
                )
            }
        };
        let session_etype = issue::session_etype(&body.etype, &self.enctypes, server)?;
        let issued = Issued {
            server,
            session_etype,
            pre_authent: preauth,
            now,
        };
        self.as_reply(r, &issued, || {
            Ok(ReplyKey {
                key: reply_key.key.clone(),
                kvno: Some(reply_key.kvno),
                padata: preauth.then(|| PaData {
                    r#type: padata::ETYPE_INFO2,
                    value: encode_etype_info2(&[etype_info2_entry(
                        reply_key.key.etype(),
                        &client.principal,
                    )])
                    .into(),
                }),
            })
        })
    }

    /// The server's database entry (KDC_ERR_S_PRINCIPAL_UNKNOWN without one).
    pub(crate) fn server_entry(&self, server: &Principal) -> Result<&PrincipalEntry, KdcError> {
        self.db.get(&server.components).ok_or_else(|| {
            KdcError::new(Reason::UnknownServer).text("server not found in Kerberos database")
        })
    }

    /// The AS-REP every mechanism ends with: the ticket's times and flags,
    /// then (only once the ticket is known to be issuable) the mechanism's
    /// reply key and padata, then the ticket and the sealed reply part.
    pub(crate) fn as_reply(
        &self,
        r: &AsRequest,
        issued: &Issued<'_>,
        reply_key: impl FnOnce() -> Result<ReplyKey, KdcError>,
    ) -> Result<Vec<u8>, KdcError> {
        let body = &r.req.req_body;
        let (Some(cname), Some(sname)) = (&body.cname, &body.sname) else {
            return Err(KdcError::new(Reason::Internal));
        };
        let ticket_key = issue::ticket_key(issued.server)?;
        let options = Flags::from_bits(&body.kdc_options.0);
        let limits = Limits {
            max_life: self.max_life,
            max_renew: self.max_renew,
            end_cap: None,
            renew_cap: None,
        };
        let now = issued.now;
        let (times, extra) = issue::ticket_times(now, now, body, options, &limits)?;
        let mut flags = Flags::empty().with(bit::INITIAL);
        flags.set(bit::PRE_AUTHENT, issued.pre_authent);
        flags.set(bit::FORWARDABLE, options.has(bit::FORWARDABLE));
        flags.set(bit::PROXIABLE, options.has(bit::PROXIABLE));
        let flags = Flags(flags.0 | extra.0);

        let reply = reply_key()?;
        let session_key = Key::random(issued.session_etype);
        let content = TicketContent {
            flags,
            session_key: &session_key,
            crealm: body.realm.clone(),
            cname: cname.clone(),
            times,
            caddr: body.addresses.clone(),
            authorization_data: None,
        };
        let (ticket, part) =
            issue::ticket_and_rep_part(&content, ticket_key, &self.realm, sname, body.nonce)?;
        let plain = zeroize::Zeroizing::new(
            msg::encode("EncASRepPart", &EncAsRepPart(part)).map_err(malformed)?,
        );
        let enc_part = issue::seal_rep_part(&reply.key, usage::AS_REP_ENC_PART, reply.kvno, &plain);
        let rep = AsRep(KdcRep {
            pvno: 5.into(),
            msg_type: msg_type::AS_REP.into(),
            padata: reply.padata.map(|p| vec![p]),
            crealm: body.realm.clone(),
            cname: cname.clone(),
            ticket,
            enc_part,
        });
        msg::encode("AS-REP", &rep).map_err(malformed)
    }

    /// Checks PA-ENC-TIMESTAMP and returns the client key that opened it.
    fn verify_enc_timestamp<'a>(
        &self,
        client: &'a PrincipalEntry,
        pa: &PaData,
        now: i64,
    ) -> Result<&'a KeyEntry, KdcError> {
        let enc: msg::EncryptedData = msg::decode("PA-ENC-TIMESTAMP", &pa.value)
            .map_err(|e| KdcError::new(Reason::MalformedPreauth).text(e.to_string()))?;
        let etype = EncType::from_i32(enc.etype)
            .filter(|e| self.enctypes.contains(e))
            .ok_or_else(|| KdcError::new(Reason::PreauthEtypeNosupp))?;
        let key = client
            .key(etype, None)
            .ok_or_else(|| KdcError::new(Reason::PreauthEtypeNosupp))?;
        let plain = key
            .key
            .decrypt(usage::PA_ENC_TIMESTAMP, &enc.cipher)
            .map_err(|_| KdcError::new(Reason::PreauthFailed).text("pre-authentication failed"))?;
        let ts: PaEncTsEnc = msg::decode_padded("PA-ENC-TS-ENC", &plain)
            .map_err(|_| KdcError::new(Reason::PreauthFailed).text("pre-authentication failed"))?;
        if (time::to_unix(&ts.patimestamp) - now).abs() > self.skew {
            return Err(KdcError::new(Reason::Skew).text("clock skew too great"));
        }
        Ok(key)
    }

    /// METHOD-DATA for PREAUTH_REQUIRED: ETYPE-INFO2 for the client's keys
    /// in the client's order, then PA-ENC-TIMESTAMP.
    fn preauth_method_data(&self, client: &PrincipalEntry, requested: &[i32]) -> Vec<u8> {
        let mut entries: Vec<EtypeInfo2Entry> = requested
            .iter()
            .filter_map(|n| EncType::from_i32(*n))
            .filter(|e| self.enctypes.contains(e) && client.key(*e, None).is_some())
            .map(|e| etype_info2_entry(e, &client.principal))
            .collect();
        entries.dedup_by_key(|e| e.etype);
        let method_data: Vec<PaData> = vec![
            PaData {
                r#type: padata::ETYPE_INFO2,
                value: encode_etype_info2(&entries).into(),
            },
            PaData {
                r#type: padata::ENC_TIMESTAMP,
                value: Vec::new().into(),
            },
        ];
        msg::encode("METHOD-DATA", &method_data).unwrap_or_default()
    }
}

/// AS options no exchange grants: postdating, RENEW, VALIDATE, ENC-TKT-IN-SKEY.
pub(crate) fn check_as_options(options: Flags) -> Result<(), KdcError> {
    if options.has(bit::POSTDATED) || options.has(bit::ALLOW_POSTDATE) {
        return Err(KdcError::new(Reason::Postdate).text("postdated tickets are not issued"));
    }
    if options.has(bit::ENC_TKT_IN_SKEY) || options.has(bit::RENEW) || options.has(bit::VALIDATE) {
        return Err(KdcError::new(Reason::BadOption));
    }
    Ok(())
}

/// `mta/<fqdn>`: the name form of PacketCable devices (no database row).
fn is_device_name(p: &Principal) -> bool {
    p.components.len() == 2 && p.components[0] == "mta"
}

/// METHOD-DATA offering PKINIT in both forms.
fn pkinit_method_data() -> Vec<u8> {
    let offered: Vec<PaData> = [padata::PK_AS_REQ, padata::PK_AS_REQ_19]
        .into_iter()
        .map(|t| PaData {
            r#type: t,
            value: Vec::new().into(),
        })
        .collect();
    msg::encode("METHOD-DATA", &offered).unwrap_or_default()
}

/// Keys come from the keytab with the principal's default salt and the
/// etype's default string-to-key parameters, so s2kparams is omitted. The
/// salt is of the name as the keytab spells it: a request may spell an IPv6
/// component in the other case (krb::principal::canonical_component).
fn etype_info2_entry(etype: EncType, p: &Principal) -> EtypeInfo2Entry {
    EtypeInfo2Entry {
        etype: etype.as_i32(),
        salt: Some(msg::kstring(&String::from_utf8_lossy(&p.salt()))),
        s2kparams: None,
    }
}

fn encode_etype_info2(entries: &[EtypeInfo2Entry]) -> Vec<u8> {
    msg::encode("ETYPE-INFO2", &entries.to_vec()).unwrap_or_default()
}
