//! The AS exchange for certificate-only devices (PKINIT).
//!
//! Devices have no database row: the device certificate chain proves who
//! they are, the device directory (static table now, the MPS later) says
//! which FQDN belongs to their MAC, and the cname must be `mta/<that FQDN>`.
//! Stages: decode and cheap checks on the reactor → one pass on the CPU
//! pool: signature and chain, directory answer when it is at hand (static
//! table, cache hit), name check, ticket and signed reply. Only a directory
//! that must be asked (a provisioning-server lookup) sends the request back
//! to the reactor to wait, and then to the pool again for the reply.

use std::net::SocketAddr;
use std::sync::Arc;

use certs::store::TrustStoreHandle;
use krb::crypto::{EncType, Key, usage};
use krb::msg::consts::{err, msg_type, padata};
use krb::msg::flags::{Flags, bit};
use krb::msg::{self, AsRep, EncAsRepPart, KdcRep, KdcReq, PaData, raw, time};
use krb::principal::Principal;
use pkinit::server::{self, KeyDelivery, ReplyPolicy, RequestContext, VerifiedRequest};

use crate::directory::{DeviceDirectory, LookupError, same_fqdn};
use crate::issue::{self, Limits, TicketContent};
use crate::kdc::{Handled, Kdc, Outcome, malformed};
use crate::kerr::{ErrorContext, KdcError, krb_error};
use crate::pool::CpuPool;

/// PKINIT configuration loaded once at start-up.
pub struct PkinitState {
    /// The signing certificate, key and chain; reloadable.
    pub identity: Arc<dyn SigningIdentity>,
    /// Shared with the certificate-bootstrapping endpoint and the file watch.
    pub trust: Arc<TrustStoreHandle>,
    pub reply: ReplyPolicy,
    pub dh_min_bits: u32,
    pub dh_keys: server::DhKeys,
    pub cert_cache: Arc<pkinit::cms::CertCache>,
    pub directory: Arc<dyn DeviceDirectory>,
    pub pool: CpuPool,
}

/// The KDC's PKINIT signing certificate, key and chain for one request.
/// The service reloads them when their files change; a request keeps the
/// identity it started with.
pub trait SigningIdentity: Send + Sync {
    fn load(&self) -> Arc<server::KdcIdentity>;

    /// Re-reads the identity if its source changed (`force`: whether or
    /// not). `Ok(true)`: a new identity is in use. A fixed identity never
    /// changes.
    fn refresh(&self, _force: bool) -> anyhow::Result<bool> {
        Ok(false)
    }
}

/// `pkinit.device_cache_entries` when the configuration does not set it.
pub fn default_device_cache_entries() -> usize {
    pkinit::cache::DEFAULT_DEVICE_ENTRIES
}

const PKINIT_TYPES: [i32; 3] = [
    padata::PK_AS_REQ_19,
    padata::PK_AS_REP_19,
    padata::PK_AS_REQ,
];

/// Whether a request is an AS-REQ carrying PKINIT padata (a raw scan, no decode).
pub fn is_pkinit(request: &[u8]) -> bool {
    raw::outer_tag(request) == Some(0x6a)
        && raw::padata_types(request, 16).is_ok_and(|t| t.iter().any(|p| PKINIT_TYPES.contains(p)))
}

/// The strongest etype in the client's list that policy permits and `ok` accepts.
fn strongest(
    client: &[i32],
    permitted: &[EncType],
    ok: impl Fn(EncType) -> bool,
) -> Option<EncType> {
    EncType::ALL
        .into_iter()
        .find(|e| permitted.contains(e) && client.contains(&e.as_i32()) && ok(*e))
}

/// A PKINIT refusal as a KRB-ERROR (code, audit reason, text, e-data).
fn pk_err(e: server::PkinitError) -> KdcError {
    let mut k = KdcError::new(e.krb_error_code(), e.reason()).text(e.to_string());
    k.e_data = e.e_data();
    k
}

/// What the pool pass learned about the device, for the audit line and
/// the metrics, whether or not the request then succeeds.
#[derive(Default)]
struct Facts {
    mac: Option<[u8; 6]>,
    fqdn: Option<String>,
}

impl Facts {
    fn apply(self, outcome: &mut Outcome) {
        outcome.mac = self.mac;
        if self.fqdn.is_some() {
            outcome.fqdn = self.fqdn;
        }
    }
}

/// What the pool's first pass ends with.
enum FirstPass {
    /// The whole reply.
    Done(Vec<u8>),
    /// The device directory must be asked (and waited for) first.
    Lookup(Box<(Decoded, VerifiedRequest, crate::directory::DeviceQuery)>),
}

fn device_query(
    v: &VerifiedRequest,
    d: &Decoded,
    source: SocketAddr,
) -> crate::directory::DeviceQuery {
    // What `authorize` checks, so a cached answer that would refuse it is
    // checked with the provisioning server again (mps_directory).
    let c = &d.client.components;
    let claim = (c.len() == 2 && c[0] == "mta").then(|| crate::directory::Claim {
        fqdn: c[1].clone(),
        source: source.ip(),
    });
    crate::directory::DeviceQuery {
        facts: fqdn_map::client::DeviceFacts {
            mac: v.mac,
            pubkey_hash: v.public_key_hash(),
            // Manufacturer-CA revocation times are not tracked yet: "not revoked".
            revocation_time: 0,
        },
        mps_hint: d.mps_hint.clone(),
        claim,
    }
}

fn lookup_error(e: LookupError) -> KdcError {
    match e {
        LookupError::UnknownMac => {
            KdcError::new(err::KDC_ERR_C_PRINCIPAL_UNKNOWN, "device_unknown_mac")
                .text("device not known to the provisioning system")
        }
        LookupError::MpsError(detail) => {
            // The detail is for operators, not for the device.
            tracing::warn!(%detail, "provisioning server lookup failed");
            KdcError::new(err::KDC_ERR_C_PRINCIPAL_UNKNOWN, "device_mps_error")
                .text("device lookup failed")
        }
        LookupError::Timeout => {
            KdcError::new(err::KDC_ERR_SVC_UNAVAILABLE, "device_lookup_timeout")
        }
        LookupError::Busy => KdcError::new(err::KDC_ERR_SVC_UNAVAILABLE, "device_lookup_busy"),
    }
}

/// The request's source address and cname against the device's binding.
fn authorize(
    policy: crate::directory::AddressPolicy,
    binding: &crate::directory::DeviceBinding,
    source: SocketAddr,
    d: &Decoded,
) -> Result<(), KdcError> {
    if let Err(reason) = crate::directory::check_address(policy, binding, source.ip()) {
        return Err(KdcError::new(err::KRB_AP_ERR_BADADDR, reason)
            .text("request source address is not the device's"));
    }
    let c = &d.client.components;
    if c.len() != 2 || c[0] != "mta" || !same_fqdn(&c[1], &binding.fqdn) {
        return Err(
            KdcError::new(err::KDC_ERR_CLIENT_NAME_MISMATCH, "device_fqdn_mismatch")
                .text("client name does not match the device's FQDN"),
        );
    }
    Ok(())
}

/// What stage one hands on.
struct Decoded {
    req: KdcReq,
    client: Principal,
    server: Principal,
    pa_type: i32,
    pa_value: Vec<u8>,
    mps_hint: Option<String>,
    req_body: Vec<u8>,
}

impl Kdc {
    /// Answers a PKINIT AS-REQ; called by the transports for requests
    /// [`is_pkinit`] accepts.
    pub async fn handle_pkinit(self: Arc<Self>, request: Arc<[u8]>, source: SocketAddr) -> Handled {
        let digest = self.lookaside.digest(&request, source.ip());
        if let Some(reply) = self.lookaside.get(&digest) {
            return Handled {
                reply,
                outcome: Outcome {
                    exchange: "pkinit",
                    reason: "lookaside",
                    lookaside_hit: true,
                    ..Outcome::default()
                },
            };
        }
        let mut outcome = Outcome {
            exchange: "pkinit",
            reason: "ok",
            audit: tracing::enabled!(target: "audit", tracing::Level::INFO),
            ..Outcome::default()
        };
        let mut ctx = ErrorContext::default();
        let result = self
            .clone()
            .pkinit_exchange(request.clone(), source, &mut ctx, &mut outcome)
            .await;
        let (reply, cache): (Arc<[u8]>, bool) = match result {
            Ok(bytes) => (bytes.into(), true),
            Err(e) => {
                outcome.code = e.code;
                outcome.reason = e.reason;
                // A shed request must be retried for real, not answered from cache.
                (
                    krb_error(&self.realm, &e, &ctx).into(),
                    e.code != err::KDC_ERR_SVC_UNAVAILABLE,
                )
            }
        };
        if cache {
            self.lookaside.insert(digest, reply.clone());
        }
        Handled { reply, outcome }
    }

    async fn pkinit_exchange(
        self: Arc<Self>,
        request: Arc<[u8]>,
        source: SocketAddr,
        ctx: &mut ErrorContext,
        outcome: &mut Outcome,
    ) -> Result<Vec<u8>, KdcError> {
        let pk = self.pkinit.as_ref().ok_or_else(|| {
            KdcError::new(err::KDC_ERR_PADATA_TYPE_NOSUPP, "pkinit_not_configured")
                .text("PKINIT is not configured on this KDC")
        })?;
        let d = self.pkinit_decode(&request, ctx, outcome)?;
        // From what the request contains, also when it is refused later.
        outcome.form = if d.pa_type == padata::PK_AS_REQ_19 {
            "packetcable"
        } else if pkinit::request::asks_for_dh(d.pa_type, &d.pa_value) {
            "rfc4556_dh"
        } else {
            "rfc4556_rsa"
        };
        let Some(_permit) = pk.pool.admit() else {
            return Err(
                KdcError::new(err::KDC_ERR_SVC_UNAVAILABLE, "shed_pool_full")
                    .text("KDC busy, retry"),
            );
        };
        let trust = pk.trust.load();
        let kdc = self.clone();
        let req = request.clone();
        // One pass on the pool: signature and chain, then, when the device
        // directory has the answer at hand, the name checks and the signed
        // reply; otherwise back here to wait for the directory.
        let want_fqdn = outcome.audit;
        let (facts, first) = pk
            .pool
            .run(move || {
                let mut facts = Facts::default();
                let first = (|| -> Result<FirstPass, KdcError> {
                    let pk = kdc.pkinit_state()?;
                    let ctx = RequestContext {
                        req_body: &d.req_body,
                        now: time::now().0,
                        skew: kdc.skew,
                        dh_min_bits: pk.dh_min_bits,
                        cert_cache: Some(&pk.cert_cache),
                    };
                    let verified = server::verify_request(d.pa_type, &d.pa_value, &ctx, &trust)
                        .map_err(pk_err)?;
                    drop(trust);
                    facts.mac = Some(verified.mac);
                    let query = device_query(&verified, &d, source);
                    match pk.directory.lookup_now(&query) {
                        Some(found) => {
                            let binding = found.map_err(lookup_error)?;
                            if want_fqdn {
                                facts.fqdn = Some(binding.fqdn.clone());
                            }
                            authorize(pk.directory.address_policy(), &binding, source, &d)?;
                            kdc.pkinit_issue(&req, d, verified).map(FirstPass::Done)
                        }
                        None => Ok(FirstPass::Lookup(Box::new((d, verified, query)))),
                    }
                })();
                (facts, first)
            })
            .await
            .map_err(|_| KdcError::new(err::KRB_ERR_GENERIC, "pool_failed"))?;
        facts.apply(outcome);
        let (d, verified, query) = match first? {
            FirstPass::Done(reply) => return Ok(reply),
            FirstPass::Lookup(waiting) => *waiting,
        };
        let binding = pk.directory.lookup(&query).await.map_err(lookup_error)?;
        if outcome.audit {
            outcome.fqdn = Some(binding.fqdn.clone());
        }
        authorize(pk.directory.address_policy(), &binding, source, &d)?;
        let kdc = self.clone();
        pk.pool
            .run(move || kdc.pkinit_issue(&request, d, verified))
            .await
            .map_err(|_| KdcError::new(err::KRB_ERR_GENERIC, "pool_failed"))?
    }

    fn pkinit_state(&self) -> Result<&PkinitState, KdcError> {
        self.pkinit
            .as_ref()
            .ok_or_else(|| KdcError::new(err::KRB_ERR_GENERIC, "pkinit_not_configured"))
    }

    /// Decode and the cheap checks (no public-key work).
    fn pkinit_decode(
        &self,
        request: &[u8],
        ctx: &mut ErrorContext,
        outcome: &mut Outcome,
    ) -> Result<Decoded, KdcError> {
        let crate::as_exchange::AsRequest {
            req,
            client,
            server,
        } = self.decode_as_request(request, ctx, outcome)?;
        let body = &req.req_body;
        crate::as_exchange::check_as_options(Flags::from_bits(&body.kdc_options.0))?;
        if self.db.get(&server.components).is_none() {
            return Err(
                KdcError::new(err::KDC_ERR_S_PRINCIPAL_UNKNOWN, "unknown_server")
                    .text("server not found in Kerberos database"),
            );
        }
        if strongest(&body.etype, &self.enctypes, |_| true).is_none() {
            return Err(KdcError::new(err::KDC_ERR_ETYPE_NOSUPP, "etype_nosupp")
                .text("no requested encryption type is supported"));
        }
        let pas = req.padata.as_deref().unwrap_or_default();
        let pa = pas
            .iter()
            .find(|p| PKINIT_TYPES.contains(&p.r#type))
            .ok_or_else(|| KdcError::new(err::KDC_ERR_PADATA_TYPE_NOSUPP, "no_pkinit_padata"))?;
        // PA-PROV-SRV-LOCATION: a GeneralString naming the provisioning server.
        let mps_hint = pas
            .iter()
            .find(|p| p.r#type == padata::PROV_SRV_LOCATION)
            .and_then(|p| raw::read_tlv(&p.value).ok())
            .filter(|(t, rest)| t.tag == 0x1b && rest.is_empty() && t.content.len() <= 255)
            .and_then(|(t, _)| std::str::from_utf8(t.content).ok().map(str::to_string));
        let req_body = raw::kdc_req_body(request).map_err(malformed)?.to_vec();
        Ok(Decoded {
            pa_type: pa.r#type,
            pa_value: pa.value.to_vec(),
            client,
            server,
            mps_hint,
            req_body,
            req,
        })
    }

    /// Ticket, reply key and signed reply (runs on the CPU pool).
    fn pkinit_issue(
        &self,
        request: &[u8],
        d: Decoded,
        v: VerifiedRequest,
    ) -> Result<Vec<u8>, KdcError> {
        let pk = self.pkinit_state()?;
        let body = &d.req.req_body;
        let server = self
            .db
            .get(&d.server.components)
            .ok_or_else(|| KdcError::new(err::KDC_ERR_S_PRINCIPAL_UNKNOWN, "unknown_server"))?;
        // Devices get the strongest etype both sides support (not client order).
        let reply_etype = strongest(&body.etype, &self.enctypes, |_| true)
            .ok_or_else(|| KdcError::new(err::KDC_ERR_ETYPE_NOSUPP, "etype_nosupp"))?;
        let session_etype = strongest(&body.etype, &self.enctypes, |e| {
            server.etypes().any(|s| s == e)
        })
        .unwrap_or(reply_etype);
        let ticket_key = issue::ticket_key(server)?;
        let now = time::now().0;
        let options = Flags::from_bits(&body.kdc_options.0);
        let limits = Limits {
            max_life: self.max_life,
            max_renew: self.max_renew,
            end_cap: None,
            renew_cap: None,
        };
        let (times, extra) = issue::ticket_times(now, now, body, options, &limits)?;
        let mut flags = Flags::empty().with(bit::INITIAL).with(bit::PRE_AUTHENT);
        flags.set(bit::FORWARDABLE, options.has(bit::FORWARDABLE));
        flags.set(bit::PROXIABLE, options.has(bit::PROXIABLE));
        let flags = Flags(flags.0 | extra.0);

        let (pa_rep, reply_key) = match &v.delivery {
            KeyDelivery::Rsa => {
                let reply_key = Key::random(reply_etype);
                let pa = server::rsa_reply(&v, &reply_key, request, &pk.identity.load(), &pk.reply)
                    .map_err(pk_err)?;
                (pa, reply_key)
            }
            KeyDelivery::Dh(dh) => {
                let names = server::KdfNames {
                    client: &d.client,
                    server: &d.server,
                };
                server::dh_reply(
                    &v,
                    dh,
                    reply_etype,
                    request,
                    &names,
                    &pk.identity.load(),
                    &pk.dh_keys,
                )
                .map_err(pk_err)?
            }
        };

        let session_key = Key::random(session_etype);
        let cname = d
            .req
            .req_body
            .cname
            .clone()
            .ok_or_else(|| KdcError::new(err::KDC_ERR_C_PRINCIPAL_UNKNOWN, "no_cname"))?;
        let sname = d
            .req
            .req_body
            .sname
            .clone()
            .ok_or_else(|| KdcError::new(err::KDC_ERR_S_PRINCIPAL_UNKNOWN, "no_sname"))?;
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
            issue::ticket_and_rep_part(&content, ticket_key, &self.realm, &sname, body.nonce)?;
        let plain = zeroize::Zeroizing::new(
            msg::encode("EncASRepPart", &EncAsRepPart(part)).map_err(malformed)?,
        );
        let enc_part = issue::seal_rep_part(&reply_key, usage::AS_REP_ENC_PART, None, &plain);
        let rep = AsRep(KdcRep {
            pvno: 5.into(),
            msg_type: msg_type::AS_REP.into(),
            padata: Some(vec![PaData {
                r#type: pa_rep.r#type,
                value: pa_rep.value,
            }]),
            crealm: body.realm.clone(),
            cname,
            ticket,
            enc_part,
        });
        msg::encode("AS-REP", &rep).map_err(malformed)
    }
}
