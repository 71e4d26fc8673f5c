//! The PKINIT pre-authentication mechanism for certificate-only devices
//! (RFC 4556 and PacketCable's -19 form).
//!
//! Devices have no database row: the device certificate chain proves who
//! they are, the device directory (the static table or the provisioning
//! server, pkt-eue-7) says which FQDN belongs to their MAC, and the cname
//! must be `mta/<that FQDN>`. The exchange reads top to bottom: cheap
//! checks, admission, verify (signature and chain), `lookup().await`,
//! authorize, issue (the signed reply, through `Kdc::as_reply`).

use std::net::SocketAddr;
use std::sync::Arc;

use certs::store::TrustStoreHandle;
use krb::crypto::{EncType, Key};
use krb::msg::consts::padata;
use krb::msg::{PaData, raw};
use krb::principal::Principal;
use pkinit::server::{self, KeyDelivery, ReplyPolicy, RequestContext, VerifiedRequest};

use crate::as_exchange::{AsRequest, Issued, PKINIT_TYPES, ReplyKey, etype_nosupp};
use crate::directory::{DeviceDirectory, LookupError, same_fqdn};
use crate::kdc::{Kdc, Outcome, malformed};
use crate::kerr::KdcError;
use crate::pool::AdmissionGate;
use crate::reason::Reason;

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
    /// Admission to public-key work (sheds beyond the serving threads and
    /// their queue).
    pub gate: AdmissionGate,
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

/// Whether a request is an AS-REQ carrying PKINIT padata (a raw scan, no decode).
pub fn is_pkinit(request: &[u8]) -> bool {
    raw::outer_tag(request) == Some(0x6a)
        && raw::padata_types(request, 16).is_ok_and(|t| t.iter().any(|p| PKINIT_TYPES.contains(p)))
}

/// A PKINIT refusal as a KRB-ERROR (code, audit reason, text, e-data).
fn pk_err(e: server::PkinitError) -> KdcError {
    let mut k = KdcError::new(Reason::Pkinit(e.refusal())).text(e.to_string());
    k.e_data = e.e_data();
    k
}

fn device_query(
    v: &VerifiedRequest,
    client: &Principal,
    mps_hint: Option<String>,
    source: SocketAddr,
) -> crate::directory::DeviceQuery {
    // What `authorize` checks, so a cached answer that would refuse it is
    // checked with the provisioning server again (mps_directory).
    let c = &client.components;
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
        mps_hint,
        claim,
    }
}

fn lookup_error(e: LookupError) -> KdcError {
    match e {
        LookupError::UnknownMac => KdcError::new(Reason::DeviceUnknownMac)
            .text("device not known to the provisioning system"),
        LookupError::MpsError(detail) => {
            // The detail is for operators, not for the device.
            tracing::warn!(%detail, "provisioning server lookup failed");
            KdcError::new(Reason::DeviceMpsError).text("device lookup failed")
        }
        LookupError::Timeout => KdcError::new(Reason::DeviceLookupTimeout),
        LookupError::Busy => KdcError::new(Reason::DeviceLookupBusy),
    }
}

/// The request's source address and cname against the device's binding.
fn authorize(
    policy: crate::directory::AddressPolicy,
    binding: &crate::directory::DeviceBinding,
    source: SocketAddr,
    client: &Principal,
) -> Result<(), KdcError> {
    if let Err(reason) = crate::directory::check_address(policy, binding, source.ip()) {
        return Err(KdcError::new(reason).text("request source address is not the device's"));
    }
    let c = &client.components;
    if c.len() != 2 || c[0] != "mta" || !same_fqdn(&c[1], &binding.fqdn) {
        return Err(KdcError::new(Reason::DeviceFqdnMismatch)
            .text("client name does not match the device's FQDN"));
    }
    Ok(())
}

/// The strongest etype in the client's list that policy permits and `ok`
/// accepts: devices get that (not the client's first choice).
fn strongest(
    client: &[i32],
    permitted: &[EncType],
    ok: impl Fn(EncType) -> bool,
) -> Option<EncType> {
    // `EncType::ALL` is strongest first.
    let offered = EncType::ALL
        .into_iter()
        .filter(|e| client.contains(&e.as_i32()));
    crate::issue::first_permitted(offered, permitted, ok)
}

/// A PKINIT request's padata, found by the cheap checks.
struct PkinitPadata {
    pa_type: i32,
    pa_value: Vec<u8>,
    /// PA-PROV-SRV-LOCATION: which provisioning server to ask.
    mps_hint: Option<String>,
    /// The req-body bytes the paChecksum covers.
    req_body: Vec<u8>,
}

impl Kdc {
    /// The PKINIT mechanism: cheap checks, admission, verify, lookup,
    /// authorize, issue.
    pub(crate) async fn pkinit_as(
        &self,
        request: &[u8],
        r: &AsRequest,
        source: SocketAddr,
        outcome: &mut Outcome,
    ) -> Result<Vec<u8>, KdcError> {
        let pk = self.pkinit.as_ref().ok_or_else(|| {
            KdcError::new(Reason::PkinitNotConfigured).text("PKINIT is not configured on this KDC")
        })?;
        let body = &r.req.req_body;
        let server = self.server_entry(&r.server)?;
        let reply_etype =
            strongest(&body.etype, &self.enctypes, |_| true).ok_or_else(etype_nosupp)?;
        let pa = pkinit_padata(request, r)?;
        // From what the request contains, also when it is refused later.
        outcome.form = if pa.pa_type == padata::PK_AS_REQ_19 {
            "packetcable"
        } else if pkinit::request::asks_for_dh(pa.pa_type, &pa.pa_value) {
            "rfc4556_dh"
        } else {
            "rfc4556_rsa"
        };
        let Some(_permit) = pk.gate.admit() else {
            return Err(KdcError::new(Reason::ShedPoolFull).text("KDC busy, retry"));
        };
        let mut turn = pk.gate.turn().await;

        let verified = turn
            .run(|| {
                let ctx = RequestContext {
                    req_body: &pa.req_body,
                    now: self.clock.now(),
                    skew: self.skew,
                    dh_min_bits: pk.dh_min_bits,
                    cert_cache: Some(&pk.cert_cache),
                };
                server::verify_request(pa.pa_type, &pa.pa_value, &ctx, &pk.trust.load())
            })
            .map_err(gate_failed)?
            .map_err(pk_err)?;
        outcome.mac = Some(verified.mac);

        let query = device_query(&verified, &r.client, pa.mps_hint, source);
        let binding = turn
            .wait(pk.directory.lookup(&query))
            .await
            .map_err(lookup_error)?;
        if outcome.audit {
            outcome.fqdn = Some(binding.fqdn.clone());
        }

        authorize(pk.directory.address_policy(), &binding, source, &r.client)?;

        turn.run(|| self.pkinit_issue(pk, request, r, server, reply_etype, &verified))
            .map_err(gate_failed)?
    }

    /// The ticket and the signed reply (the private-key operation).
    fn pkinit_issue(
        &self,
        pk: &PkinitState,
        request: &[u8],
        r: &AsRequest,
        server: &crate::db::PrincipalEntry,
        reply_etype: EncType,
        v: &VerifiedRequest,
    ) -> Result<Vec<u8>, KdcError> {
        let session_etype = strongest(&r.req.req_body.etype, &self.enctypes, |e| {
            server.etypes().any(|s| s == e)
        })
        .unwrap_or(reply_etype);
        let issued = Issued {
            server,
            session_etype,
            pre_authent: true,
            now: self.clock.now(),
        };
        self.as_reply(r, &issued, || {
            let (pa_rep, key) = match &v.delivery {
                KeyDelivery::Rsa => {
                    let key = Key::random(reply_etype);
                    let pa = server::rsa_reply(v, &key, request, &pk.identity.load(), &pk.reply)
                        .map_err(pk_err)?;
                    (pa, key)
                }
                KeyDelivery::Dh(dh) => {
                    let names = server::KdfNames {
                        client: &r.client,
                        server: &r.server,
                    };
                    server::dh_reply(
                        v,
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
            Ok(ReplyKey {
                key,
                kvno: None,
                padata: Some(PaData {
                    r#type: pa_rep.r#type,
                    value: pa_rep.value,
                }),
            })
        })
    }
}

/// The PKINIT padata and what else the checks need (no public-key work).
fn pkinit_padata(request: &[u8], r: &AsRequest) -> Result<PkinitPadata, KdcError> {
    let pas = r.req.padata.as_deref().unwrap_or_default();
    let pa = pas
        .iter()
        .find(|p| PKINIT_TYPES.contains(&p.r#type))
        .ok_or_else(|| KdcError::new(Reason::NoPkinitPadata))?;
    // PA-PROV-SRV-LOCATION: a GeneralString naming the provisioning server.
    let mps_hint = pas
        .iter()
        .find(|p| p.r#type == padata::PROV_SRV_LOCATION)
        .and_then(|p| raw::read_tlv(&p.value).ok())
        .filter(|(t, rest)| t.tag == 0x1b && rest.is_empty() && t.content.len() <= 255)
        .and_then(|(t, _)| std::str::from_utf8(t.content).ok().map(str::to_string));
    let req_body = raw::kdc_req_body(request).map_err(malformed)?.to_vec();
    Ok(PkinitPadata {
        pa_type: pa.r#type,
        pa_value: pa.value.to_vec(),
        mps_hint,
        req_body,
    })
}

fn gate_failed(_: crate::pool::GateError) -> KdcError {
    KdcError::new(Reason::PoolFailed)
}
