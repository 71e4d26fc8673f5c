//! One bounded HTTP/1.1 GET for a CRL: a hyper client connection over a
//! tokio `TcpStream` (hyper is already the metrics and certboot server; its
//! client side adds no crates). Plain `http://` only, as RFC 5280
//! §4.2.1.13 publishes CRLs (they are signed: TLS adds nothing, and a TLS
//! check would itself need revocation data). Redirects are not followed:
//! a 3xx is a failure, so a fetch goes only where the trust directory or
//! the configuration point.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a fetch failed; `reason()` is the metric label.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("only http:// URLs are fetched, not {0:?}")]
    Scheme(String),
    #[error("not a URL: {0}")]
    BadUrl(String),
    #[error("resolving {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("connecting: {0}")]
    Connect(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("HTTP status {0} (redirects are not followed)")]
    Status(u16),
    #[error("the CRL is larger than {0} bytes")]
    TooLarge(usize),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
}

impl FetchError {
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Scheme(_) => "unsupported_scheme",
            FetchError::BadUrl(_) => "bad_url",
            FetchError::Resolve { .. } => "dns",
            FetchError::Connect(_) => "connect",
            FetchError::Http(_) => "http",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Timeout(_) => "timeout",
        }
    }
}

/// A parsed `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Without IPv6 brackets, for the name lookup.
    host: String,
    port: u16,
    /// For the Host header: as in the URL.
    authority: String,
    path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, FetchError> {
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| FetchError::BadUrl(e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(FetchError::Scheme(other.to_string())),
            None => return Err(FetchError::BadUrl("no scheme".into())),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| FetchError::BadUrl("no host".into()))?;
        if authority.as_str().contains('@') {
            return Err(FetchError::BadUrl("user information in the URL".into()));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(FetchError::BadUrl("no host".into()));
        }
        Ok(Target {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_string(),
            path: uri
                .path_and_query()
                .map_or("/".to_string(), |p| p.as_str().to_string()),
        })
    }
}

/// The limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// GETs `target`; the body of a 200 answer, at most `max_bytes`, all
/// within `timeout`.
pub async fn get(target: &Target, limits: Limits) -> Result<Bytes, FetchError> {
    tokio::time::timeout(limits.timeout, get_unbounded(target, limits.max_bytes))
        .await
        .map_err(|_| FetchError::Timeout(limits.timeout))?
}

async fn get_unbounded(target: &Target, max_bytes: usize) -> Result<Bytes, FetchError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| FetchError::Resolve {
            host: target.host.clone(),
            detail: e.to_string(),
        })?
        .collect();
    let mut last = String::from("no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    let stream = stream.ok_or(FetchError::Connect(last))?;
    let http = |e: hyper::Error| FetchError::Http(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        // Status line and headers; the body is bounded below.
        .max_buf_size(64 * 1024)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let request = Request::builder()
        .method(Method::GET)
        .uri(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::ACCEPT, "application/pkix-crl")
        .header(
            header::USER_AGENT,
            concat!("pktc-kdc/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::BadUrl(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(http)?;
    if response.status() != StatusCode::OK {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let announced = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max_bytes as u64) {
        return Err(FetchError::TooLarge(max_bytes));
    }
    let body = Limited::new(response.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                FetchError::TooLarge(max_bytes)
            } else {
                FetchError::Http(e.to_string())
            }
        })?;
    drop(driver);
    Ok(body.to_bytes())
}

/// Stops the connection task when the fetch ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback server that reads the request and answers `reply`
    /// (then keeps the connection open, silent, for `linger`).
    async fn serve_once(reply: Vec<u8>, linger: Duration) -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&reply).await;
            tokio::time::sleep(linger).await;
        });
        Target::parse(&format!("http://127.0.0.1:{port}/x.crl")).unwrap()
    }

    const LIMITS: Limits = Limits {
        timeout: Duration::from_millis(500),
        max_bytes: 1024,
    };

    #[tokio::test]
    async fn answers_are_bounded() {
        let ok = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            Duration::ZERO,
        )
        .await;
        assert_eq!(&get(&ok, LIMITS).await.unwrap()[..], b"abc");

        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "redirect",
                b"HTTP/1.1 301 Moved\r\nLocation: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n"
                    .to_vec(),
                "http_status",
            ),
            (
                "announced too large",
                b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec(),
                "too_large",
            ),
            (
                "chunked past the limit",
                [
                    &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                    &b"400\r\n"[..],
                    &[b'x'; 0x400][..],
                    &b"\r\n400\r\n"[..],
                    &[b'x'; 0x400][..],
                    &b"\r\n0\r\n\r\n"[..],
                ]
                .concat(),
                "too_large",
            ),
            (
                "headers, then silence",
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab".to_vec(),
                "timeout",
            ),
            ("not HTTP", b"SSH-2.0-OpenSSH\r\n".to_vec(), "http"),
            (
                "endless headers",
                [
                    &b"HTTP/1.1 200 OK\r\n"[..],
                    &b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(4000),
                ]
                .concat(),
                "http",
            ),
        ];
        for (what, reply, reason) in cases {
            let t = serve_once(reply, Duration::from_secs(2)).await;
            let e = get(&t, LIMITS).await.unwrap_err();
            assert_eq!(e.reason(), reason, "{what}: {e}");
        }

        // Nobody listening.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = Target::parse(&format!("http://127.0.0.1:{closed}/x.crl")).unwrap();
        assert_eq!(get(&t, LIMITS).await.unwrap_err().reason(), "connect");
    }

    #[test]
    fn urls() {
        let t = Target::parse("http://crl.example.net/ca/mfr.crl").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("crl.example.net", 80));
        assert_eq!(t.path, "/ca/mfr.crl");
        let t = Target::parse("http://[::1]:8080/x.crl?v=2").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8080));
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("[::1]:8080", "/x.crl?v=2")
        );
        for (url, reason) in [
            (
                "ldap://ldap.example.net/cn=CA?certificateRevocationList",
                "unsupported_scheme",
            ),
            ("https://crl.example.net/x.crl", "unsupported_scheme"),
            ("crl.example.net/x.crl", "bad_url"),
            ("http://user@crl.example.net/x.crl", "bad_url"),
            ("http:///x.crl", "bad_url"),
        ] {
            assert_eq!(
                Target::parse(url).map(|_| ()).unwrap_err().reason(),
                reason,
                "{url}"
            );
        }
    }
}
