//! The accept loop: TLS handshake with a required client certificate, then
//! HTTP/1.1 on the same connection, each step bounded in time and size.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use certs::store::{ChainError, CrlPolicy};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use openssl::ssl::{ErrorCode, Ssl, SslRef};
use openssl::x509::{X509, X509VerifyResult};
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

use crate::conn_limits::{Evicted, Slot, Slots, WriteDeadline};

use crate::creds::CredentialStore;
use crate::failures::FailureBudget;
use crate::http::{self, RequestContext, RequestOutcome};
use crate::rotation::Contexts;
use crate::tls::TlsError;

/// Bounds on every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// TCP accept to finished TLS handshake.
    pub handshake_timeout: Duration,
    /// Time to receive one request's headers (slowloris bound); also the
    /// idle time allowed between keep-alive requests.
    pub header_read_timeout: Duration,
    /// Whole connection, handshake included.
    pub connection_timeout: Duration,
    /// Request line + headers; more is answered 431. At least 8192
    /// (hyper's smallest read buffer).
    pub max_header_bytes: usize,
    /// Connections open at once; beyond it the oldest connection not
    /// answering a request is closed for the new one (or the new one, when
    /// every connection is answering one).
    pub max_connections: usize,
    /// The same bound per source address.
    pub max_connections_per_source: usize,
    /// A write that makes no progress for this long closes the connection.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(60),
            max_header_bytes: 8192,
            max_connections: 1024,
            max_connections_per_source: 32,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A finished handshake.
#[derive(Debug, Clone)]
pub struct Negotiated {
    pub version: &'static str,
    pub cipher: &'static str,
    /// From the verified device certificate's CN.
    pub mac: [u8; 6],
}

/// A refused or broken handshake: a stable reason and OpenSSL's words.
#[derive(Debug, Clone)]
pub struct Failure {
    pub reason: &'static str,
    pub detail: String,
}

#[derive(Debug)]
pub struct HandshakeEvent {
    pub peer: SocketAddr,
    pub profile: &'static str,
    pub result: Result<Negotiated, Failure>,
    pub latency: Duration,
}

#[derive(Debug)]
pub struct RequestEvent {
    pub peer: SocketAddr,
    pub mac: [u8; 6],
    pub method: String,
    /// Printable ASCII only, at most 100 characters.
    pub path: String,
    pub status: u16,
    pub outcome: RequestOutcome,
    /// Operator-only detail of a store error (never a secret).
    pub detail: Option<String>,
    pub latency: Duration,
}

/// Why hyper ended a connection on a request it would not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRefusal {
    /// Not HTTP/1.1 it can parse: answered 400.
    Malformed,
    /// Request line and headers over `max_header_bytes`: answered 431.
    HeadersTooLarge,
    /// Headers not complete within `header_read_timeout` (and no request
    /// answered yet on the connection): closed.
    HeaderTimeout,
}

impl HttpRefusal {
    pub fn name(self) -> &'static str {
        match self {
            HttpRefusal::Malformed => "malformed_request",
            HttpRefusal::HeadersTooLarge => "headers_too_large",
            HttpRefusal::HeaderTimeout => "header_timeout",
        }
    }

    /// The status hyper sent, if any.
    pub fn status(self) -> Option<u16> {
        match self {
            HttpRefusal::Malformed => Some(400),
            HttpRefusal::HeadersTooLarge => Some(431),
            HttpRefusal::HeaderTimeout => None,
        }
    }

    /// `None`: the connection ended for another reason (the client closed,
    /// or idled out after its requests were answered).
    fn of(e: &hyper::Error, answered: usize) -> Option<HttpRefusal> {
        if e.is_parse_too_large() {
            Some(HttpRefusal::HeadersTooLarge)
        } else if e.is_parse() {
            Some(HttpRefusal::Malformed)
        } else if e.is_timeout() && answered == 0 {
            Some(HttpRefusal::HeaderTimeout)
        } else {
            None
        }
    }
}

/// What the endpoint reports; the binary turns these into audit lines,
/// logs and metrics.
#[derive(Debug)]
pub enum Event<'a> {
    Handshake(&'a HandshakeEvent),
    Request(&'a RequestEvent),
    /// A request hyper refused before it reached the handler.
    HttpRefused {
        peer: SocketAddr,
        mac: [u8; 6],
        refusal: HttpRefusal,
        detail: String,
    },
    /// A connection was closed at accept, before TLS: its source used up
    /// its failure budget (`failures_per_source_per_sec`, `failure_burst`).
    RateLimited {
        peer: SocketAddr,
    },
    /// A connection was closed at accept: every slot (of its source) is
    /// answering a request.
    Overloaded {
        peer: SocketAddr,
    },
    /// An idle connection was closed to make room for one from `peer`;
    /// `same_source`: the per-source bound was reached.
    Evicted {
        peer: SocketAddr,
        same_source: bool,
    },
    /// A new TLS context could not be built after a trust or identity
    /// change; the previous one stays in use.
    ContextError {
        profile: &'static str,
        error: &'a TlsError,
    },
}

pub trait Observer: Send + Sync {
    fn event(&self, event: Event<'_>);
}

/// One listener's endpoint.
pub struct Endpoint {
    pub contexts: Arc<Contexts>,
    pub store: Arc<dyn CredentialStore>,
    /// The profile's path, e.g. `/certboot/v1/profile`.
    pub path: Arc<str>,
    pub limits: Limits,
    pub observer: Arc<dyn Observer>,
    connections: Arc<Slots>,
    /// Shared by the endpoints of one service: failing on one listener
    /// counts against the others.
    failures: Arc<FailureBudget>,
}

impl Endpoint {
    pub fn new(
        contexts: Arc<Contexts>,
        store: Arc<dyn CredentialStore>,
        path: &str,
        limits: Limits,
        observer: Arc<dyn Observer>,
        failures: Arc<FailureBudget>,
    ) -> Endpoint {
        Endpoint {
            contexts,
            store,
            path: path.into(),
            connections: Slots::new(limits.max_connections, limits.max_connections_per_source),
            limits,
            observer,
            failures,
        }
    }

    /// Accepts connections until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(x) => x,
                // EMFILE and friends: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Before the slot (it evicts nobody) and before any TLS work.
            if !self.failures.admits(peer.ip()) {
                self.observer.event(Event::RateLimited { peer });
                continue;
            }
            let slot = match self.connections.admit(peer.ip()) {
                Ok((slot, evicted)) => {
                    if evicted != Evicted::None {
                        let same_source = evicted == Evicted::SameSource;
                        self.observer.event(Event::Evicted { peer, same_source });
                    }
                    Arc::new(slot)
                }
                Err(_) => {
                    self.observer.event(Event::Overloaded { peer });
                    continue;
                }
            };
            let this = self.clone();
            tokio::spawn(async move {
                let limit = this.limits.connection_timeout;
                let s = slot.clone();
                tokio::select! {
                    _ = tokio::time::timeout(limit, this.connection(tcp, peer, s)) => {}
                    () = slot.evicted() => {}
                }
            });
        }
    }

    async fn connection(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, slot: Arc<Slot>) {
        let _ = tcp.set_nodelay(true);
        let tcp = WriteDeadline::new(tcp, self.limits.write_timeout);
        let started = Instant::now();
        let profile = self.contexts.settings().profile.name();
        let built = self.contexts.current(|error| {
            self.observer.event(Event::ContextError { profile, error });
        });
        let report = |result: Result<Negotiated, Failure>| {
            if result.is_err() {
                self.failures.charge(peer.ip());
            }
            self.observer.event(Event::Handshake(&HandshakeEvent {
                peer,
                profile,
                result,
                latency: started.elapsed(),
            }));
        };
        let fail = |reason: &'static str, detail: String| Err(Failure { reason, detail });
        let stream = Ssl::new(&built.ctx).and_then(|ssl| SslStream::new(ssl, tcp));
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return report(fail("handshake_failed", e.to_string())),
        };
        let accepted = tokio::time::timeout(
            self.limits.handshake_timeout,
            Pin::new(&mut stream).accept(),
        )
        .await;
        match accepted {
            Err(_) => return report(fail("handshake_timeout", String::new())),
            Ok(Err(e)) => return report(Err(classify(&e, stream.ssl()))),
            Ok(Ok(())) => {}
        }
        let ssl = stream.ssl();
        let Some(cert) = ssl.peer_certificate() else {
            return report(fail("no_client_cert", String::new()));
        };
        // OpenSSL's TLS verification has no "CRL if present" mode: the
        // store's own verification applies that policy after the handshake.
        if built.trust.policy() == CrlPolicy::IfPresent {
            let presented: Vec<X509> = ssl
                .peer_cert_chain()
                .map(|s| s.iter().skip(1).map(|c| c.to_owned()).collect())
                .unwrap_or_default();
            if let Err(e) = built.trust.verify_now(&cert, &presented) {
                return report(fail(e.reason(), e.to_string()));
            }
        }
        let mac = match certs::mac::device_mac(&cert) {
            Ok(m) => m,
            Err(e) => return report(fail("no_mac_in_cert", e.to_string())),
        };
        report(Ok(Negotiated {
            version: ssl.version_str(),
            cipher: ssl.current_cipher().map_or("-", |c| c.name()),
            mac,
        }));
        drop(built);

        let ctx = RequestContext {
            path: self.path.clone(),
            store: self.store.clone(),
            mac,
        };
        serve_http_in(
            stream,
            peer,
            ctx,
            &self.limits,
            self.observer.clone(),
            Some((slot, &self.failures)),
        )
        .await;
    }
}

/// HTTP/1.1 on an established (TLS) connection for the device `ctx.mac`,
/// under the header size and read-time limits; says whether the connection
/// ended on a refused request. Public so the limits can be exercised
/// without TLS.
pub async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    ctx: RequestContext,
    limits: &Limits,
    observer: Arc<dyn Observer>,
) -> Option<HttpRefusal>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    serve_http_in(io, peer, ctx, limits, observer, None).await
}

/// The slot of an endpoint's connection, and the budget its refused
/// requests are charged to.
type Accepted<'a> = (Arc<Slot>, &'a FailureBudget);

/// [`serve_http`] in a connection slot, marked busy while a request is
/// being answered (an idle keep-alive connection can be evicted); a
/// refused request is charged before it is reported, so whoever sees the
/// report sees the charge.
async fn serve_http_in<I>(
    io: I,
    peer: SocketAddr,
    ctx: RequestContext,
    limits: &Limits,
    observer: Arc<dyn Observer>,
    accepted: Option<Accepted<'_>>,
) -> Option<HttpRefusal>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mac = ctx.mac;
    let (slot, failures) = accepted.unzip();
    let ctx = Arc::new(ctx);
    let answered = Arc::new(AtomicUsize::new(0));
    let (answered_in, observer_in) = (answered.clone(), observer.clone());
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        let observer = observer_in.clone();
        let answered = answered_in.clone();
        let slot = slot.clone();
        async move {
            let t = Instant::now();
            if let Some(s) = &slot {
                s.set_busy(true);
            }
            let a = http::answer(&req, &ctx).await;
            if let Some(s) = &slot {
                s.set_busy(false);
            }
            answered.fetch_add(1, Ordering::Relaxed);
            observer.event(Event::Request(&RequestEvent {
                peer,
                mac: ctx.mac,
                method: printable(req.method().as_str()),
                path: printable(req.uri().path()),
                status: a.response.status().as_u16(),
                outcome: a.outcome,
                detail: a.detail,
                latency: t.elapsed(),
            }));
            Ok::<_, Infallible>(a.response)
        }
    });
    let e = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(TokioIo::new(io), service)
        .await
        .err()?;
    let refusal = HttpRefusal::of(&e, answered.load(Ordering::Relaxed))?;
    if let Some(f) = failures {
        f.charge(peer.ip());
    }
    observer.event(Event::HttpRefused {
        peer,
        mac,
        refusal,
        detail: e.to_string(),
    });
    Some(refusal)
}

fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// A stable reason for a failed handshake: the certificate's verification
/// result when there is one, else OpenSSL's reason for the alert.
fn classify(e: &openssl::ssl::Error, ssl: &SslRef) -> Failure {
    let verify = ssl.verify_result();
    if verify == crate::tls::UNLISTED_CA {
        return Failure {
            reason: "cert_unknown_issuer",
            detail: "a CA in the chain is not in the device trust directory".into(),
        };
    }
    if verify != X509VerifyResult::OK {
        let chain = ChainError::from_openssl(verify, 0);
        return Failure {
            reason: chain.reason(),
            detail: verify.error_string().to_owned(),
        };
    }
    let reasons: Vec<&str> = e
        .ssl_error()
        .map(|s| s.errors().iter().filter_map(|x| x.reason()).collect())
        .unwrap_or_default();
    let has = |needle: &str| reasons.iter().any(|r| r.contains(needle));
    let reason = if has("peer did not return a certificate") {
        "no_client_cert"
    } else if has("no shared cipher") {
        "no_shared_cipher"
    } else if has("unsupported protocol") || has("version too low") || has("wrong version") {
        "protocol_version"
    } else if has("http request") {
        "plain_http"
    } else if reasons.is_empty() && matches!(e.code(), ErrorCode::SYSCALL | ErrorCode::ZERO_RETURN)
    {
        "client_aborted"
    } else {
        "handshake_failed"
    };
    let detail = if reasons.is_empty() {
        e.to_string()
    } else {
        reasons.join("; ")
    };
    Failure { reason, detail }
}
