//! The TGS exchange (RFC 4120 §3.3): TGT decryption, authenticator check
//! (skew, replay, checksum over the exact req-body bytes), service tickets
//! for any keyed principal, TGT renewal (before the TGT ends), the TGT's
//! addresses and the authorization data a client may add (`tgs_policy`).

use std::net::SocketAddr;

use krb::crypto::{ChecksumType, EncType, Key, usage};
use krb::msg::consts::{msg_type, padata};
use krb::msg::flags::{Flags, bit};
use krb::msg::{
    self, ApReq, Authenticator, EncTgsRepPart, EncTicketPart, KdcRep, TgsRep, TgsReq, raw, time,
};
use krb::principal::Principal;
use zeroize::Zeroizing;

use crate::issue::{self, Limits, TicketContent, Times};
use crate::kdc::{Kdc, Outcome, malformed};
use crate::kerr::{ErrorContext, KdcError};
use crate::reason::Reason;
use krb::replay;

impl Kdc {
    pub(crate) fn tgs_exchange(
        &self,
        request: &[u8],
        source: SocketAddr,
        ctx: &mut ErrorContext,
        outcome: &mut Outcome,
    ) -> Result<Vec<u8>, KdcError> {
        // Heimdal's negative nonces decoded as UInt32; checksums use `request`.
        let decodable = raw::with_unsigned_nonce(request);
        let TgsReq(req) = msg::decode::<TgsReq>("TGS-REQ", &decodable).map_err(malformed)?;
        let raw_body = raw::kdc_req_body(request).map_err(malformed)?;
        let body = &req.req_body;
        ctx.sname = body.sname.clone();
        // The audit line names the requested server also when refused early.
        if let Some(p) = body
            .sname
            .as_ref()
            .and_then(|s| Principal::from_rasn(s, &body.realm).ok())
        {
            outcome.set_server(&p);
        }
        self.check_request(&req, msg_type::TGS_REQ)?;
        let pa = req
            .padata
            .iter()
            .flatten()
            .find(|p| p.r#type == padata::TGS_REQ)
            .ok_or_else(|| KdcError::new(Reason::NoApReq).text("TGS-REQ without PA-TGS-REQ"))?;
        let ap: ApReq = msg::decode("AP-REQ", &pa.value).map_err(malformed)?;
        if msg::small_int(&ap.pvno) != Some(5) {
            return Err(KdcError::new(Reason::BadApPvno));
        }
        if msg::small_int(&ap.msg_type) != Some(msg_type::AP_REQ) {
            return Err(KdcError::new(Reason::BadApMsgType));
        }

        // The ticket must be our TGT.
        let tkt_realm = msg::kstr(&ap.ticket.realm).map_err(malformed)?;
        let tkt_server = Principal::from_rasn(&ap.ticket.sname, &ap.ticket.realm)
            .map_err(|_| KdcError::new(Reason::TicketNotTgt))?;
        if tkt_realm != self.realm
            || tkt_server.components.len() != 2
            || tkt_server.components[0] != "krbtgt"
            || tkt_server.components[1] != self.realm
        {
            return Err(
                KdcError::new(Reason::TicketNotTgt).text("the ticket is not a TGT of this realm")
            );
        }
        let tgs = self
            .db
            .get(&tkt_server.components)
            .ok_or_else(|| KdcError::new(Reason::NoTgsKey))?;
        let etype = EncType::from_i32(ap.ticket.enc_part.etype)
            .ok_or_else(|| KdcError::new(Reason::TicketEtypeNosupp))?;
        let tgs_key = tgs.key(etype, ap.ticket.enc_part.kvno).ok_or_else(|| {
            match ap.ticket.enc_part.kvno {
                Some(k) if !tgs.has_kvno(k) => KdcError::new(Reason::TicketKvnoUnknown),
                _ => KdcError::new(Reason::TicketNoKey),
            }
        })?;
        let tgt_plain = Zeroizing::new(
            tgs_key
                .ticket_key
                .decrypt(&ap.ticket.enc_part.cipher)
                .map_err(|_| KdcError::new(Reason::TicketIntegrity))?,
        );
        let tgt: EncTicketPart = msg::decode_padded("EncTicketPart", &tgt_plain)
            .map_err(|_| KdcError::new(Reason::TicketMalformed))?;
        ctx.cname = Some((tgt.cname.clone(), tgt.crealm.clone()));
        let client_p = Principal::from_rasn(&tgt.cname, &tgt.crealm)
            .map_err(|_| KdcError::new(Reason::TicketMalformed))?;
        outcome.set_client(&client_p);

        let session_etype = EncType::from_i32(tgt.key.r#type)
            .ok_or_else(|| KdcError::new(Reason::SessionEtypeNosupp))?;
        let session = Key::new(session_etype, &tgt.key.value)
            .map_err(|_| KdcError::new(Reason::TicketMalformed))?;
        let auth_plain = Zeroizing::new(
            session
                .decrypt(usage::TGS_REQ_AUTH, &ap.authenticator.cipher)
                .map_err(|_| KdcError::new(Reason::AuthenticatorIntegrity))?,
        );
        let auth: Authenticator = msg::decode_padded("Authenticator", &auth_plain)
            .map_err(|_| KdcError::new(Reason::AuthenticatorMalformed))?;
        if auth.cname != tgt.cname || auth.crealm != tgt.crealm {
            return Err(KdcError::new(Reason::AuthenticatorClientMismatch));
        }
        let now = self.clock.now();
        if (time::to_unix(&auth.ctime) - now).abs() > self.skew {
            return Err(KdcError::new(Reason::Skew).text("clock skew too great"));
        }
        let tflags = Flags::from_bits(&tgt.flags.0);
        let start = time::to_unix(tgt.start_time.as_ref().unwrap_or(&tgt.auth_time));
        let end = time::to_unix(&tgt.end_time);
        if tflags.has(bit::INVALID) || start > now + self.skew {
            return Err(KdcError::new(Reason::TicketNotYetValid));
        }
        let options = Flags::from_bits(&body.kdc_options.0);
        let renew = options.has(bit::RENEW);
        // Renewals too: a ticket not renewed by its end time cannot be
        // (RFC 4120 §2.3; MIT and Heimdal agree).
        if now > end + self.skew {
            return Err(KdcError::new(Reason::TicketExpired).text("ticket expired"));
        }
        crate::tgs_policy::check_ticket_address(tgt.caddr.as_ref(), source.ip())?;

        // Checksum over the exact req-body bytes, keyed with the session key.
        let cksum = auth
            .cksum
            .as_ref()
            .ok_or_else(|| KdcError::new(Reason::NoChecksum))?;
        let ctype = ChecksumType::from_i32(cksum.r#type)
            .ok_or_else(|| KdcError::new(Reason::ChecksumTypeNosupp))?;
        if !ctype.is_keyed() {
            return Err(KdcError::new(Reason::UnkeyedChecksum));
        }
        session
            .verify_checksum_with(ctype, usage::TGS_REQ_AUTH_CKSUM, raw_body, &cksum.checksum)
            .map_err(|e| match e {
                krb::crypto::CryptoError::Integrity => KdcError::new(Reason::ChecksumMismatch),
                _ => KdcError::new(Reason::ChecksumTypeMismatch),
            })?;

        // Only now, with a genuine authenticator, spend replay-cache space.
        if !self
            .replay
            .check_and_insert(replay::tag(&ap.authenticator.cipher))
        {
            return Err(KdcError::new(Reason::Replay).text("request is a replay"));
        }

        let sname = body
            .sname
            .as_ref()
            .ok_or_else(|| KdcError::new(Reason::NoSname))?;
        let server_p = Principal::from_rasn(sname, &body.realm)
            .map_err(|_| KdcError::new(Reason::BadSname))?;
        let server = self.db.get(&server_p.components).ok_or_else(|| {
            KdcError::new(Reason::UnknownServer).text("server not found in Kerberos database")
        })?;
        if options.has(bit::ENC_TKT_IN_SKEY)
            || options.has(bit::VALIDATE)
            || options.has(bit::POSTDATED)
            || options.has(bit::ALLOW_POSTDATE)
        {
            return Err(KdcError::new(Reason::BadOption));
        }
        let session_etype = issue::session_etype(&body.etype, &self.enctypes, server)?;
        let ticket_key = issue::ticket_key(server)?;

        let auth_time = time::to_unix(&tgt.auth_time);
        let tgt_renew_till = tgt.renew_till.as_ref().map(time::to_unix);
        let (times, mut flags) = if renew {
            let Some(rt) = tgt_renew_till.filter(|_| tflags.has(bit::RENEWABLE)) else {
                return Err(KdcError::new(Reason::NotRenewable).text("ticket is not renewable"));
            };
            if now > rt {
                return Err(
                    KdcError::new(Reason::RenewExpired).text("renewable lifetime has ended")
                );
            }
            let life = (end - start).max(0);
            let times = Times {
                auth: auth_time,
                start: now,
                end: now.saturating_add(life).min(rt),
                renew_till: Some(rt),
            };
            (
                times,
                Flags(tflags.0 & !Flags::empty().with(bit::INVALID).0),
            )
        } else {
            let limits = Limits {
                max_life: self.max_life,
                max_renew: self.max_renew,
                end_cap: Some(end),
                renew_cap: tgt_renew_till
                    .filter(|_| tflags.has(bit::RENEWABLE))
                    .or(Some(0)),
            };
            let (times, extra) = issue::ticket_times(now, auth_time, body, options, &limits)?;
            let mut f = Flags(extra.0);
            for b in [bit::PRE_AUTHENT, bit::HW_AUTHENT] {
                f.set(b, tflags.has(b));
            }
            f.set(
                bit::FORWARDABLE,
                options.has(bit::FORWARDABLE) && tflags.has(bit::FORWARDABLE),
            );
            f.set(
                bit::PROXIABLE,
                options.has(bit::PROXIABLE) && tflags.has(bit::PROXIABLE),
            );
            (times, f)
        };
        flags.set(bit::INITIAL, false);

        // Authorization data the client asked to add (RFC 4120 §5.4.1).
        let mut authz = tgt.authorization_data.clone();
        if let Some(enc) = &body.enc_authorization_data {
            let (key, u) = match &auth.subkey {
                Some(_) => (subkey(&auth)?, usage::TGS_REQ_AUTHDATA_SUBKEY),
                None => (session.clone(), usage::TGS_REQ_AUTHDATA_SESSION),
            };
            let plain = Zeroizing::new(
                key.decrypt(u, &enc.cipher)
                    .map_err(|_| KdcError::new(Reason::AuthdataIntegrity))?,
            );
            let extra: msg::asn1::AuthorizationData =
                msg::decode_padded("AuthorizationData", &plain)
                    .map_err(|_| KdcError::new(Reason::AuthdataMalformed))?;
            crate::tgs_policy::check_client_authdata(&extra)?;
            authz.get_or_insert_with(Vec::new).extend(extra);
        }

        let session_key = Key::random(session_etype);
        let content = TicketContent {
            flags,
            session_key: &session_key,
            crealm: tgt.crealm.clone(),
            cname: tgt.cname.clone(),
            times,
            caddr: tgt.caddr.clone(),
            authorization_data: authz,
        };
        let (ticket, part) =
            issue::ticket_and_rep_part(&content, ticket_key, &self.realm, sname, body.nonce)?;
        let part = EncTgsRepPart(part);
        let plain = Zeroizing::new(msg::encode("EncTGSRepPart", &part).map_err(malformed)?);
        let enc_part = match &auth.subkey {
            Some(_) => issue::seal_rep_part(
                &subkey(&auth)?,
                usage::TGS_REP_ENC_PART_SUBKEY,
                None,
                &plain,
            ),
            None => issue::seal_rep_part(&session, usage::TGS_REP_ENC_PART_SESSION, None, &plain),
        };
        let rep = TgsRep(KdcRep {
            pvno: 5.into(),
            msg_type: msg_type::TGS_REP.into(),
            padata: None,
            crealm: tgt.crealm,
            cname: tgt.cname,
            ticket,
            enc_part,
        });
        msg::encode("TGS-REP", &rep).map_err(malformed)
    }
}

fn subkey(auth: &Authenticator) -> Result<Key, KdcError> {
    let sk = auth
        .subkey
        .as_ref()
        .ok_or_else(|| KdcError::new(Reason::NoSubkey))?;
    let etype =
        EncType::from_i32(sk.r#type).ok_or_else(|| KdcError::new(Reason::SubkeyEtypeNosupp))?;
    Key::new(etype, &sk.value).map_err(|_| KdcError::new(Reason::BadSubkey))
}
