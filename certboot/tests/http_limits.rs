//! Property test of the HTTP layer's limits, without TLS: random and hostile
//! requests (oversized headers, garbage, truncation, slow senders) against
//! `serve_http` over an in-memory pipe, on Tokio's paused clock so header
//! timeouts are exercised without waiting for them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certboot::creds::{CredentialStore, LookupFuture};
use certboot::http::RequestContext;
use certboot::profile::{CredsType, DeviceCredentials};
use certboot::server::{Event, HttpRefusal, Limits, Observer, serve_http};
use testkit::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

const MAC: [u8; 6] = [0x00, 0x10, 0x95, 0x00, 0x00, 0x01];
const PATH: &str = "/certboot/v1/profile";

/// Our trait over a fixed table: one known device.
struct OneDevice;

impl CredentialStore for OneDevice {
    fn lookup(&self, mac: [u8; 6]) -> LookupFuture<'_> {
        let found = (mac == MAC).then(|| DeviceCredentials {
            impi: "001095000001@ims.test".into(),
            impu: vec!["sip:+15550000001@ims.test".into()],
            creds_type: CredsType::Password,
            credential: Zeroizing::new(b"pw".to_vec()),
            realm: None,
            pcscf: vec![],
        });
        Box::pin(async move { Ok(found) })
    }
    fn kind(&self) -> &'static str {
        "test"
    }
}

#[derive(Default)]
struct Statuses(Mutex<Vec<u16>>);

impl Observer for Statuses {
    fn event(&self, e: Event<'_>) {
        if let Event::Request(r) = e {
            self.0.lock().unwrap().push(r.status);
        }
    }
}

fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(500),
        max_header_bytes: 8192,
        ..Limits::default()
    }
}

/// Serves one connection, writes `chunks` (sleeping `gap` between them),
/// closes the write side two seconds later and returns everything the
/// server sent, with the statuses the handler gave and the refusal
/// `serve_http` reported (what certboot charges to the source).
async fn exchange(chunks: Vec<Vec<u8>>, gap: Duration) -> (Vec<u8>, Vec<u16>, Option<HttpRefusal>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let observer = Arc::new(Statuses::default());
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let ctx = RequestContext {
        path: PATH.into(),
        store: Arc::new(OneDevice),
        mac: MAC,
    };
    let obs: Arc<dyn Observer> = observer.clone();
    let task = tokio::spawn(async move { serve_http(server, peer, ctx, &limits(), obs).await });
    let (mut rd, mut wr) = tokio::io::split(client);
    let writer = tokio::spawn(async move {
        for c in chunks {
            if wr.write_all(&c).await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
        // Like a real client, keep the connection open while the answer
        // comes (hyper drops a connection whose reader hits EOF mid-request).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = wr.shutdown().await;
    });
    let mut out = Vec::new();
    // Bounded: the server must finish the connection on its own.
    tokio::time::timeout(Duration::from_secs(120), rd.read_to_end(&mut out))
        .await
        .expect("server kept the connection open past every limit")
        .ok();
    let refusal = tokio::time::timeout(Duration::from_secs(120), task)
        .await
        .expect("serve_http did not return")
        .expect("serve_http panicked");
    writer.abort();
    let statuses = observer.0.lock().unwrap().clone();
    (out, statuses, refusal)
}

fn status_of(resp: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(resp.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test(start_paused = true)]
async fn a_good_request_gets_the_profile() {
    let req = format!("GET {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (resp, statuses, refusal) = exchange(vec![req.into_bytes()], Duration::ZERO).await;
    assert_eq!(
        status_of(&resp),
        Some(200),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    assert!(String::from_utf8_lossy(&resp).contains("<MacAddress>00:10:95:00:00:01</MacAddress>"));
    assert_eq!(statuses, [200]);
    assert_eq!(refusal, None);
}

/// Bytes that are not HTTP get hyper's 400 and are reported as refused.
#[tokio::test(start_paused = true)]
async fn garbage_gets_400_and_is_a_refusal() {
    let (resp, statuses, refusal) = exchange(
        vec![b"\x16\x03\x01 not http\r\n\r\n".to_vec()],
        Duration::ZERO,
    )
    .await;
    assert_eq!(
        status_of(&resp),
        Some(400),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    assert!(statuses.is_empty());
    assert_eq!(refusal, Some(HttpRefusal::Malformed));
}

#[tokio::test(start_paused = true)]
async fn oversized_headers_get_431() {
    let big = "a".repeat(64 * 1024);
    let req = format!("GET {PATH} HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let (resp, statuses, refusal) = exchange(vec![req.into_bytes()], Duration::ZERO).await;
    assert_eq!(
        status_of(&resp),
        Some(431),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    assert!(statuses.is_empty(), "the handler never saw it");
    assert_eq!(refusal, Some(HttpRefusal::HeadersTooLarge));
}

/// A client dribbling its headers one byte at a time is cut off by the
/// header read timeout, long before it finishes.
#[tokio::test(start_paused = true)]
async fn slowloris_is_cut_off() {
    let req = format!(
        "GET {PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
        "s".repeat(200)
    );
    let chunks: Vec<Vec<u8>> = req.bytes().map(|b| vec![b]).collect();
    let started = tokio::time::Instant::now();
    let (resp, statuses, refusal) = exchange(chunks, Duration::from_millis(100)).await;
    // 250 bytes at 10/s would take 25 s; the limit is 0.5 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(statuses.is_empty());
    assert!(
        matches!(status_of(&resp), None | Some(408)),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    assert_eq!(refusal, Some(HttpRefusal::HeaderTimeout));
}

/// Idle keep-alive connections are closed too.
#[tokio::test(start_paused = true)]
async fn idle_keepalive_is_closed() {
    let req = format!("GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n");
    // One request, then silence (the write side stays open for 60 s).
    let chunks = vec![req.into_bytes(), Vec::new()];
    let started = tokio::time::Instant::now();
    let (resp, statuses, refusal) = exchange(chunks, Duration::from_secs(60)).await;
    assert_eq!(status_of(&resp), Some(200));
    assert_eq!(statuses, [200]);
    // The end of a keep-alive connection, not a refused request.
    assert_eq!(refusal, None);
    // Closed by the server at the header read timeout, not by the client's
    // shutdown 62 s in.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Random requests: the server always ends the connection, answers only
/// with well-formed HTTP/1.1 status lines from a small set, and hands out a
/// profile only for `GET` of the exact path.
#[tokio::test(start_paused = true)]
async fn random_requests_stay_within_limits() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let methods = [
        "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "GE T", "\u{1}",
    ];
    let paths = [
        PATH,
        "/",
        "/certboot/v1/profile/",
        "/certboot/v1/profile?mac=00:11:22:33:44:55",
        "*",
        "/%00",
        "//certboot/v1/profile",
    ];
    let (mut served, mut answered) = (0, 0);
    for case in 0..300 {
        // Half the cases use the real method / path, so the handler is reached.
        let method = if rng.below(2) == 0 {
            "GET"
        } else {
            methods[rng.below(methods.len())]
        };
        let path = if rng.below(2) == 0 {
            PATH
        } else {
            paths[rng.below(paths.len())]
        };
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n").into_bytes();
        for _ in 0..rng.below(5) {
            let len = [1, 20, 100, 4000, 9000, 70_000][rng.below(6)];
            req.extend_from_slice(format!("X-{}: ", rng.below(1000)).as_bytes());
            req.extend(std::iter::repeat_n(b'v', len));
            req.extend_from_slice(b"\r\n");
        }
        match rng.below(4) {
            0 => {
                // garbage after the head
                let n = rng.below(300);
                req.extend(rng.bytes(n));
            }
            1 => {
                // cut short
                let n = rng.below(req.len().max(1));
                req.truncate(n);
            }
            _ => req.extend_from_slice(b"Connection: close\r\n\r\n"),
        }
        let gap = if rng.below(10) == 0 {
            Duration::from_millis(300)
        } else {
            Duration::ZERO
        };
        let chunks = req
            .chunks(1 + rng.below(5000))
            .map(<[u8]>::to_vec)
            .collect();
        let (resp, statuses, _) = exchange(chunks, gap).await;
        if resp.is_empty() {
            continue;
        }
        let status = status_of(&resp).unwrap_or_else(|| {
            panic!(
                "case {case}: not an HTTP/1.1 status line: {:?}",
                &resp[..resp.len().min(40)]
            )
        });
        assert!(
            [200, 400, 404, 405, 408, 431, 501, 505].contains(&status),
            "case {case}: status {status}"
        );
        answered += 1;
        if statuses.contains(&200) {
            served += 1;
            assert_eq!(
                (method, path.split('?').next().unwrap()),
                ("GET", PATH),
                "case {case}"
            );
        }
    }
    // The generator reaches both the handler and the limits.
    assert!(
        served >= 10 && answered >= 100,
        "served {served}, answered {answered}"
    );
}
