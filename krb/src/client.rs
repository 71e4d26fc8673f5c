//! The client side of the AS and TGS exchanges, without I/O: builds
//! requests and opens replies. Used by the device simulator, benchmarks
//! and tests that need to speak to the KDC the way a real client does.

use crate::crypto::{ChecksumType, EncType, Key, usage};
use crate::msg::consts::{msg_type, padata};
use crate::msg::flags::{Flags, bit};
use crate::msg::{
    self, ApReq, AsRep, AsReq, Authenticator, Checksum, CodecError, EncKdcRepPart, EncryptedData,
    KdcRep, KdcReq, KdcReqBody, KrbError, PaData, PaEncTsEnc, TgsRep, TgsReq, Ticket, time,
};
use crate::principal::Principal;

/// What can go wrong opening a reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("KDC returned KRB-ERROR {code}: {text}")]
    KrbError { code: i32, text: String },
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error(transparent)]
    Principal(#[from] crate::principal::PrincipalError),
    #[error("reply does not match the request: {0}")]
    Mismatch(&'static str),
}

/// A ticket and its session key.
#[derive(Clone)]
pub struct Credentials {
    pub client: Principal,
    pub ticket: Ticket,
    pub session_key: Key,
    pub part: EncKdcRepPart,
}

/// Parameters of a KDC-REQ body.
pub struct RequestBody<'a> {
    pub client: Option<&'a Principal>,
    pub server: &'a Principal,
    pub etypes: &'a [EncType],
    pub nonce: u32,
    /// End time wanted, Unix seconds.
    pub till: i64,
    pub rtime: Option<i64>,
    pub options: Flags,
}

impl RequestBody<'_> {
    pub fn to_asn1(&self) -> Result<KdcReqBody, ClientError> {
        let (sname, realm) = self.server.to_rasn()?;
        let cname = match self.client {
            Some(c) => Some(c.to_rasn()?.0),
            None => None,
        };
        Ok(KdcReqBody {
            kdc_options: self.options.kdc_options(),
            cname,
            realm,
            sname: Some(sname),
            from: None,
            till: time::from_unix(self.till),
            rtime: self.rtime.map(time::from_unix),
            nonce: self.nonce,
            etype: self.etypes.iter().map(|e| e.as_i32()).collect(),
            addresses: None,
            enc_authorization_data: None,
            additional_tickets: None,
        })
    }
}

/// PA-ENC-TIMESTAMP for `now` under the client's long-term key.
pub fn enc_timestamp(key: &Key, now: i64, usec: u32) -> Result<PaData, ClientError> {
    let ts = PaEncTsEnc {
        patimestamp: time::from_unix(now),
        pausec: Some((usec as i64).into()),
    };
    let plain = msg::encode("PA-ENC-TS-ENC", &ts)?;
    let enc = EncryptedData {
        etype: key.etype().as_i32(),
        kvno: None,
        cipher: key.encrypt(usage::PA_ENC_TIMESTAMP, &plain).into(),
    };
    Ok(PaData {
        r#type: padata::ENC_TIMESTAMP,
        value: msg::encode("PA-ENC-TIMESTAMP", &enc)?.into(),
    })
}

/// An encoded AS-REQ.
pub fn as_req(body: &RequestBody<'_>, padata: Vec<PaData>) -> Result<Vec<u8>, ClientError> {
    let req = AsReq(KdcReq {
        pvno: 5.into(),
        msg_type: msg_type::AS_REQ.into(),
        padata: (!padata.is_empty()).then_some(padata),
        req_body: body.to_asn1()?,
    });
    Ok(msg::encode("AS-REQ", &req)?)
}

/// A KRB-ERROR, if `reply` is one.
pub fn krb_error(reply: &[u8]) -> Option<KrbError> {
    msg::decode::<KrbError>("KRB-ERROR", reply).ok()
}

fn error_or<T>(reply: &[u8], err: CodecError) -> Result<T, ClientError> {
    match krb_error(reply) {
        Some(e) => Err(ClientError::KrbError {
            code: e.error_code,
            text: e
                .e_text
                .as_ref()
                .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned())
                .unwrap_or_default(),
        }),
        None => Err(err.into()),
    }
}

fn open_rep(
    rep: KdcRep,
    key: &Key,
    key_usage: u32,
    nonce: u32,
) -> Result<Credentials, ClientError> {
    let plain = key.decrypt(key_usage, &rep.enc_part.cipher)?;
    // Accept EncASRepPart or EncTGSRepPart, as MIT does.
    let part = match plain.first() {
        Some(0x79) => msg::decode_padded::<msg::EncAsRepPart>("EncASRepPart", &plain)?.0,
        _ => msg::decode_padded::<msg::EncTgsRepPart>("EncTGSRepPart", &plain)?.0,
    };
    if part.nonce != nonce {
        return Err(ClientError::Mismatch("nonce"));
    }
    let etype = EncType::from_i32(part.key.r#type).ok_or(
        crate::crypto::CryptoError::UnsupportedEtype(part.key.r#type),
    )?;
    let session_key = Key::new(etype, &part.key.value)?;
    Ok(Credentials {
        client: Principal::from_rasn(&rep.cname, &rep.crealm)?,
        ticket: rep.ticket,
        session_key,
        part,
    })
}

/// Opens an AS-REP with the client's reply key.
pub fn open_as_rep(reply: &[u8], key: &Key, nonce: u32) -> Result<Credentials, ClientError> {
    let AsRep(rep) = match msg::decode::<AsRep>("AS-REP", reply) {
        Ok(r) => r,
        Err(e) => return error_or(reply, e),
    };
    open_rep(rep, key, usage::AS_REP_ENC_PART, nonce)
}

/// Options for a TGS request's authenticator.
pub struct TgsAuth<'a> {
    pub now: i64,
    pub usec: u32,
    /// A subkey to put in the authenticator; the reply is then encrypted in it.
    pub subkey: Option<&'a Key>,
}

/// An encoded TGS-REQ using `tgt`, with a fresh authenticator whose
/// checksum covers the exact req-body bytes sent.
pub fn tgs_req(
    tgt: &Credentials,
    body: &RequestBody<'_>,
    auth: &TgsAuth<'_>,
) -> Result<Vec<u8>, ClientError> {
    tgs_req_with_body(tgt, body.to_asn1()?, auth)
}

/// As [`tgs_req`] for a body the caller built (e.g. with
/// enc-authorization-data or additional tickets).
pub fn tgs_req_with_body(
    tgt: &Credentials,
    body: KdcReqBody,
    auth: &TgsAuth<'_>,
) -> Result<Vec<u8>, ClientError> {
    let body_der = msg::encode("KDC-REQ-BODY", &body)?;
    let ctype: ChecksumType = tgt.session_key.etype().checksum_type();
    let cksum = tgt
        .session_key
        .checksum_with(ctype, usage::TGS_REQ_AUTH_CKSUM, &body_der)?;
    let (cname, crealm) = tgt.client.to_rasn()?;
    let authenticator = Authenticator {
        authenticator_vno: 5.into(),
        crealm,
        cname,
        cksum: Some(Checksum {
            r#type: ctype.as_i32(),
            checksum: cksum.into(),
        }),
        cusec: (auth.usec as i64).into(),
        ctime: time::from_unix(auth.now),
        subkey: auth.subkey.map(|k| msg::EncryptionKey {
            r#type: k.etype().as_i32(),
            value: k.bytes().to_vec().into(),
        }),
        seq_number: None,
        authorization_data: None,
    };
    let plain = msg::encode("Authenticator", &authenticator)?;
    let ap = ApReq {
        pvno: 5.into(),
        msg_type: msg_type::AP_REQ.into(),
        ap_options: Flags::empty().ap_options(),
        ticket: tgt.ticket.clone(),
        authenticator: EncryptedData {
            etype: tgt.session_key.etype().as_i32(),
            kvno: None,
            cipher: tgt.session_key.encrypt(usage::TGS_REQ_AUTH, &plain).into(),
        },
    };
    let req = TgsReq(KdcReq {
        pvno: 5.into(),
        msg_type: msg_type::TGS_REQ.into(),
        padata: Some(vec![PaData {
            r#type: padata::TGS_REQ,
            value: msg::encode("AP-REQ", &ap)?.into(),
        }]),
        req_body: body,
    });
    Ok(msg::encode("TGS-REQ", &req)?)
}

/// Opens a TGS-REP with the subkey (if one was sent) or the TGT session key.
pub fn open_tgs_rep(
    reply: &[u8],
    tgt: &Credentials,
    subkey: Option<&Key>,
    nonce: u32,
) -> Result<Credentials, ClientError> {
    let TgsRep(rep) = match msg::decode::<TgsRep>("TGS-REP", reply) {
        Ok(r) => r,
        Err(e) => return error_or(reply, e),
    };
    match subkey {
        Some(k) => open_rep(rep, k, usage::TGS_REP_ENC_PART_SUBKEY, nonce),
        None => open_rep(
            rep,
            &tgt.session_key,
            usage::TGS_REP_ENC_PART_SESSION,
            nonce,
        ),
    }
}

/// Default options a client asks for.
pub fn default_options() -> Flags {
    Flags::empty()
        .with(bit::FORWARDABLE)
        .with(bit::RENEWABLE_OK)
}
