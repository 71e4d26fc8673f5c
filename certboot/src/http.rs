//! The HTTP side: one resource, the device profile, for the MAC in the
//! verified client certificate. Never anything from the request decides
//! whose profile is served.

use std::io::Cursor;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use zeroize::Zeroizing;

use crate::creds::CredentialStore;
use crate::profile;

/// Response body; the profile holds a secret and is zeroized when dropped.
pub type Body = Full<Cursor<Zeroizing<Vec<u8>>>>;

/// What a request came to, for the audit line and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    ProfileServed,
    UnknownDevice,
    /// The credential store failed (Redis down, broken record): 503.
    StoreError,
    NotFound,
    MethodNotAllowed,
}

impl RequestOutcome {
    pub fn name(self) -> &'static str {
        match self {
            RequestOutcome::ProfileServed => "profile_served",
            RequestOutcome::UnknownDevice => "unknown_device",
            RequestOutcome::StoreError => "store_error",
            RequestOutcome::NotFound => "not_found",
            RequestOutcome::MethodNotAllowed => "method_not_allowed",
        }
    }
}

/// Everything the handler needs for one connection.
pub struct RequestContext {
    pub path: Arc<str>,
    pub store: Arc<dyn CredentialStore>,
    /// From the verified certificate.
    pub mac: [u8; 6],
}

/// The answer plus, for the caller's audit line, the outcome and (on a
/// store error) the operator-only detail.
pub struct Answer {
    pub response: Response<Body>,
    pub outcome: RequestOutcome,
    pub detail: Option<String>,
}

fn body(bytes: &[u8]) -> Body {
    Full::new(Cursor::new(Zeroizing::new(bytes.to_vec())))
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(body(text.as_bytes()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub async fn answer(req: &Request<Incoming>, ctx: &RequestContext) -> Answer {
    let done = |response, outcome| Answer {
        response,
        outcome,
        detail: None,
    };
    if req.uri().path() != &*ctx.path {
        return done(
            plain(StatusCode::NOT_FOUND, "not found\n"),
            RequestOutcome::NotFound,
        );
    }
    if req.method() != Method::GET {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return done(r, RequestOutcome::MethodNotAllowed);
    }
    let unavailable = |detail: String| Answer {
        response: plain(StatusCode::SERVICE_UNAVAILABLE, "credentials unavailable\n"),
        outcome: RequestOutcome::StoreError,
        detail: Some(detail),
    };
    let creds = match ctx.store.lookup(ctx.mac).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return done(
                plain(StatusCode::NOT_FOUND, "no profile for this device\n"),
                RequestOutcome::UnknownDevice,
            );
        }
        Err(e) => return unavailable(e.to_string()),
    };
    let xml = match profile::render(&certs::mac::format_mac(ctx.mac), &creds) {
        Ok(x) => x,
        Err(e) => return unavailable(format!("credential record: {e}")),
    };
    let mut r = Response::new(Full::new(Cursor::new(xml)));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    done(r, RequestOutcome::ProfileServed)
}
