//! Certboot's per-source failure budget (issue 12 item 4) with real peers:
//! connections from 127.0.0.1 that send bytes that are not TLS use up that
//! address's budget; then a device's `curl` from 127.0.0.1 is closed at
//! accept, while the same device from 127.0.0.2 still gets its profile.
//! Requests refused by the HTTP layer (431, from `curl` with a device
//! certificate) use up a budget the same way.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use testkit::{DevKdc, wait_until};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
const BURST: usize = 3;

fn certboot_addr(kdc: &DevKdc) -> SocketAddr {
    kdc.get("certboot_url")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .expect("certboot host:port")
        .parse()
        .expect("certboot address")
}

/// Sends bytes that are not a TLS ClientHello from `src` and waits (bounded)
/// for the server to close the connection.
fn garbage_from(src: Ipv4Addr, to: SocketAddr) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    s.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(b"this is not TLS, just junk bytes\r\n\r\n");
    let mut rest = Vec::new();
    // EOF or reset: either way the server is done with it.
    let _ = s.read_to_end(&mut rest);
}

/// curl with the realm's first device from `src`: (HTTP code, curl exit code).
fn curl_from(kdc: &DevKdc, src: &str) -> (String, Option<i32>) {
    curl_with(kdc, src, &[])
}

fn curl_with(kdc: &DevKdc, src: &str, extra: &[&str]) -> (String, Option<i32>) {
    let dev = &kdc.manifest["devices"][0];
    let path = |k: &str| kdc.realm_path(dev[k].as_str().expect(k));
    let args = [&["--interface", src][..], extra].concat();
    kdc.certboot_curl(&path("cert"), &path("key"), &args)
}

#[test]
fn junk_connections_use_up_their_source_budget_only() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        let before = cfg.clone();
        // A budget that does not refill during the test.
        *cfg = cfg
            .replace(
                "failures_per_source_per_sec = 1.0",
                "failures_per_source_per_sec = 0.0001",
            )
            .replace(
                "failure_burst = 60.0",
                &format!("failure_burst = {BURST}.0"),
            );
        assert_ne!(*cfg, before, "no failure budget in the dev config");
    });
    let addr = certboot_addr(&kdc);
    let local = Ipv4Addr::new(127, 0, 0, 1);

    // Within the budget: the device is still served from 127.0.0.1.
    garbage_from(local, addr);
    assert_eq!(curl_from(&kdc, "127.0.0.1").0, "200");

    for _ in 1..BURST {
        garbage_from(local, addr);
    }
    // Each failure is charged before its audit line is written.
    let failed = |l: &str| {
        l.contains("exchange=\"certboot\"")
            && l.contains("step=\"handshake\"")
            && l.contains("outcome=\"error\"")
            && l.contains("source=127.0.0.1:")
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            kdc.audit_lines().iter().filter(|l| failed(l)).count() >= BURST
        }),
        "{BURST} failed handshakes not audited:\n{}",
        kdc.audit_lines().join("\n")
    );

    // Budget used up: closed at accept, before TLS.
    let (code, exit) = curl_from(&kdc, "127.0.0.1");
    assert_eq!(
        code, "000",
        "curl from 127.0.0.1 was served (exit {exit:?})"
    );
    assert!(
        kdc.wait_audit(|l| l.contains("exchange=\"certboot\"")
            && l.contains("step=\"accept\"")
            && l.contains("reason=\"rate_limited\"")
            && l.contains("source=127.0.0.1:")),
        "no rate_limited audit line:\n{}",
        kdc.audit_lines().join("\n")
    );
    assert!(
        kdc.metric("pktc_certboot_connections_rejected_total{reason=\"rate_limited\"}") >= 1.0,
        "{}",
        kdc.metrics()
    );
    // The refused connection did no handshake: no more failures than the junk.
    assert_eq!(
        kdc.audit_lines().iter().filter(|l| failed(l)).count(),
        BURST,
        "{}",
        kdc.audit_lines().join("\n")
    );

    // Another source keeps its own budget.
    assert_eq!(curl_from(&kdc, "127.0.0.2").0, "200");
    assert!(
        kdc.wait_audit(
            |l| l.contains("reason=\"profile_served\"") && l.contains("source=127.0.0.2:")
        ),
        "{}",
        kdc.audit_lines().join("\n")
    );

    // Requests the HTTP layer refuses cost the same: oversized headers
    // from 127.0.0.3, over a good handshake, answered 431.
    let big = format!("X-Big: {}", "a".repeat(16 * 1024));
    for _ in 0..BURST {
        assert_eq!(curl_with(&kdc, "127.0.0.3", &["-H", &big]).0, "431");
    }
    // Each refusal is charged before its audit line is written.
    let too_large = |l: &String| {
        l.contains("exchange=\"certboot\"")
            && l.contains("reason=\"headers_too_large\"")
            && l.contains("source=127.0.0.3:")
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            kdc.audit_lines().iter().filter(|l| too_large(l)).count() >= BURST
        }),
        "{}",
        kdc.audit_lines().join("\n")
    );
    assert_eq!(
        kdc.metric("pktc_certboot_requests_total{status=\"431\",reason=\"headers_too_large\"}"),
        BURST as f64,
        "{}",
        kdc.metrics()
    );
    assert_eq!(curl_from(&kdc, "127.0.0.3").0, "000");
    assert!(
        kdc.wait_audit(|l| l.contains("reason=\"rate_limited\"")
            && l.contains("source=127.0.0.3:")),
        "{}",
        kdc.audit_lines().join("\n")
    );
}
