//! The request pipeline every message passes through (Heimdal's
//! process.c): lookaside, dispatch to the AS exchange (`as_exchange`, with
//! its pre-authentication mechanisms) or the TGS exchange
//! (`tgs_exchange`), KRB-ERROR on refusal, lookaside insert.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use krb::crypto::EncType;
use krb::msg::consts::err;
use krb::msg::raw;

use crate::db::PrincipalDb;
use crate::kerr::{ErrorContext, KdcError, krb_error};
use crate::lookaside::Lookaside;
use crate::reason::Reason;
use krb::replay::ReplayCache;

/// The realm's KDC: immutable configuration plus bounded caches.
pub struct Kdc {
    pub realm: String,
    pub db: PrincipalDb,
    pub enctypes: Vec<EncType>,
    pub skew: i64,
    pub max_life: i64,
    pub max_renew: i64,
    pub require_preauth: bool,
    pub max_request: usize,
    pub lookaside: Lookaside,
    /// Token buckets for AS/PKINIT requests (`[rate_limit]`).
    pub rate_limit: crate::rate_limit::RateLimiter,
    /// Largest UDP reply before KRB_ERR_RESPONSE_TOO_BIG.
    pub max_udp_reply: usize,
    pub replay: ReplayCache,
    /// PKINIT for devices, when configured.
    pub pkinit: Option<crate::pkinit_as::PkinitState>,
    /// What the exchanges take as the time (tests set it).
    pub clock: Arc<dyn Clock>,
}

/// The time the exchanges check requests against and issue tickets from.
pub trait Clock: Send + Sync {
    /// Unix seconds.
    fn now(&self) -> i64;

    /// Unix seconds and microseconds (a KRB-ERROR's stime and susec).
    fn now_micros(&self) -> (i64, u32) {
        (self.now(), 0)
    }
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        krb::msg::time::now().0
    }

    fn now_micros(&self) -> (i64, u32) {
        krb::msg::time::now()
    }
}

/// What happened to one request, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub exchange: &'static str,
    /// 0 on success, else the KRB-ERROR code sent.
    pub code: i32,
    pub reason: Reason,
    pub client: Option<String>,
    pub server: Option<String>,
    pub lookaside_hit: bool,
    /// Whether the audit log is on (names are recorded only then).
    pub audit: bool,
    /// PKINIT form for metrics: `packetcable`, `rfc4556_rsa`, `rfc4556_dh`
    /// (empty: not PKINIT or refused before the form was known).
    pub form: &'static str,
    /// The device's MAC (PKINIT, from its verified certificate).
    pub mac: Option<[u8; 6]>,
    /// The device's FQDN from the directory (PKINIT).
    pub fqdn: Option<String>,
}

impl Outcome {
    pub fn set_client(&mut self, p: &krb::principal::Principal) {
        if self.audit {
            self.client = Some(p.to_string());
        }
    }

    pub fn set_server(&mut self, p: &krb::principal::Principal) {
        if self.audit {
            self.server = Some(p.to_string());
        }
    }
}

pub struct Handled {
    pub reply: Arc<[u8]>,
    pub outcome: Outcome,
}

/// The realm settings the engine runs with; the service fills them from
/// its configuration (`[policy]`, `[tickets]`, `[listen]`, `[cache]`).
#[derive(Debug, Clone)]
pub struct KdcSettings {
    pub realm: String,
    pub enctypes: Vec<EncType>,
    pub clock_skew_secs: u64,
    pub max_life_secs: u64,
    pub max_renew_secs: u64,
    pub require_preauth: bool,
    pub max_request_bytes: usize,
    pub max_udp_reply_bytes: usize,
    pub lookaside_ttl_secs: u64,
    pub lookaside_max_bytes: usize,
    pub replay_max_entries: usize,
}

impl Kdc {
    /// A KDC for `settings` with the principals of `db` (which must hold
    /// `krbtgt/REALM`), the request rate limits and PKINIT when configured.
    pub fn new(
        settings: KdcSettings,
        db: PrincipalDb,
        rate_limit: crate::rate_limit::RateLimiter,
        pkinit: Option<crate::pkinit_as::PkinitState>,
    ) -> Kdc {
        let s = settings;
        Kdc {
            realm: s.realm,
            db,
            enctypes: s.enctypes,
            skew: s.clock_skew_secs as i64,
            max_life: s.max_life_secs as i64,
            max_renew: s.max_renew_secs as i64,
            require_preauth: s.require_preauth,
            max_request: s.max_request_bytes,
            rate_limit,
            max_udp_reply: s.max_udp_reply_bytes,
            lookaside: Lookaside::new(
                Duration::from_secs(s.lookaside_ttl_secs),
                s.lookaside_max_bytes,
            ),
            replay: ReplayCache::new(
                Duration::from_secs(2 * s.clock_skew_secs),
                s.replay_max_entries,
            ),
            pkinit,
            clock: Arc::new(SystemClock),
        }
    }

    /// Answers one request. Never panics on input; every refusal becomes a
    /// KRB-ERROR with its code and a reason in the outcome. Completes
    /// without waiting except for PKINIT ([`Kdc::routes_to_pkinit`]), which
    /// takes a turn for public-key work and may wait for the device
    /// directory.
    pub async fn handle(&self, request: &[u8], source: SocketAddr) -> Handled {
        let pkinit = self.routes_to_pkinit(request);
        let exchange = if pkinit {
            "pkinit"
        } else {
            exchange_name(request)
        };
        let digest = self.lookaside.digest(request, source.ip());
        if let Some(reply) = self.lookaside.get(&digest) {
            return Handled {
                reply,
                outcome: Outcome {
                    exchange,
                    reason: Reason::Lookaside,
                    lookaside_hit: true,
                    ..Outcome::default()
                },
            };
        }
        let mut outcome = Outcome {
            exchange,
            reason: Reason::Ok,
            // Principal names are formatted only for an audit line that will be written.
            audit: tracing::enabled!(target: "audit", tracing::Level::INFO),
            ..Outcome::default()
        };
        let mut ctx = ErrorContext::default();
        let result = if request.len() > self.max_request {
            Err(KdcError::new(Reason::Oversized)
                .text(format!("request larger than {} bytes", self.max_request)))
        } else {
            match raw::outer_tag(request) {
                Some(0x6a) => {
                    let exchange = crate::as_exchange::AsExchange {
                        request,
                        source,
                        pkinit,
                    };
                    self.as_exchange(exchange, &mut ctx, &mut outcome).await
                }
                Some(0x6c) => self.tgs_exchange(request, source, &mut ctx, &mut outcome),
                _ => Err(KdcError::new(Reason::NotKdcRequest).text("not an AS-REQ or TGS-REQ")),
            }
        };
        let (reply, cache): (Arc<[u8]>, bool) = match result {
            Ok(bytes) => (bytes.into(), true),
            Err(e) => {
                outcome.code = e.code;
                outcome.reason = e.reason;
                // A shed request must be retried for real, not answered from cache.
                (
                    krb_error(&self.realm, &e, &ctx, self.clock.now_micros()).into(),
                    e.code != err::KDC_ERR_SVC_UNAVAILABLE,
                )
            }
        };
        if cache {
            self.lookaside.insert(digest, reply.clone());
        }
        Handled { reply, outcome }
    }

    /// [`Kdc::handle`] for a caller without an async runtime (the fuzz
    /// targets): None if the request would have to wait (PKINIT).
    pub fn handle_ready(&self, request: &[u8], source: SocketAddr) -> Option<Handled> {
        let handled = std::pin::pin!(self.handle(request, source));
        match handled.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(h) => Some(h),
            std::task::Poll::Pending => None,
        }
    }

    /// A KRB-ERROR for a refusal decided before the request was read (e.g.
    /// by the transport).
    pub fn error_reply(&self, e: &KdcError) -> Vec<u8> {
        krb_error(
            &self.realm,
            e,
            &ErrorContext::default(),
            self.clock.now_micros(),
        )
    }
}

impl Kdc {
    /// Whether this request is PKINIT (an AS-REQ with PKINIT padata, PKINIT
    /// configured): public-key work, which the transports queue
    /// ([`crate::overload`]) before [`Kdc::handle`].
    pub fn routes_to_pkinit(&self, request: &[u8]) -> bool {
        self.pkinit.is_some() && crate::pkinit_as::is_pkinit(request)
    }
}

fn exchange_name(request: &[u8]) -> &'static str {
    match raw::outer_tag(request) {
        Some(0x6a) => "as",
        Some(0x6c) => "tgs",
        _ => "unknown",
    }
}

impl Kdc {
    /// Checks shared by every KDC-REQ: pvno, msg-type and our realm.
    pub fn check_request(&self, req: &krb::msg::KdcReq, expect_type: i64) -> Result<(), KdcError> {
        if krb::msg::small_int(&req.pvno) != Some(5) {
            return Err(KdcError::new(Reason::BadPvno).text("pvno must be 5"));
        }
        if krb::msg::small_int(&req.msg_type) != Some(expect_type) {
            return Err(
                KdcError::new(Reason::BadMsgType).text("msg-type does not match the message")
            );
        }
        let realm = krb::msg::kstr(&req.req_body.realm).map_err(malformed)?;
        if realm != self.realm {
            return Err(
                KdcError::new(Reason::WrongRealm).text(format!("this KDC serves {}", self.realm))
            );
        }
        Ok(())
    }
}

pub fn malformed(e: impl std::fmt::Display) -> KdcError {
    KdcError::new(Reason::MalformedRequest).text(format!("malformed request: {e}"))
}
