//! The Kerberos TCP listener's time bounds, against the real binary: a
//! frame must arrive whole within `tcp_idle_timeout_secs` of its first byte
//! (a byte every 300 ms does not keep it open), and a connection that keeps
//! sending valid requests is closed at `tcp_max_connection_secs`; a client
//! that pipelines requests and never reads its replies is closed once a
//! reply write makes no progress for `tcp_write_timeout_secs`. Each closure
//! is counted in `pktc_tcp_closed_total` and audited with its reason.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{KDC, Realm, rand_nonce};
use krb::client;
use testkit::{DevKdc, wait_until};

fn with_listen(key: &str, from: &str, to: &str) -> impl FnOnce(&mut String) {
    let (old, new) = (format!("\n{key} = {from}\n"), format!("\n{key} = {to}\n"));
    move |cfg: &mut String| {
        assert!(cfg.contains(&old), "no `{old}` in the dev config:\n{cfg}");
        *cfg = cfg.replace(&old, &new);
    }
}

fn connect(kdc: &DevKdc) -> TcpStream {
    let s = TcpStream::connect_timeout(&kdc.addr, Duration::from_secs(5)).unwrap();
    // Bounds every read: a server that never closes fails the test.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Whether the server has closed (FIN or reset) the connection; waits up
/// to `wait` for it.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected {n} bytes from the KDC"),
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// An audit line of a connection closed by a bound, from `source`, within
/// `wait`.
fn audited_close(kdc: &DevKdc, reason: &str, source: SocketAddr, wait: Duration) -> bool {
    let reason = format!("reason=\"{reason}\"");
    // The space: port 1234 must not match 12345.
    let source = format!("source={source} ");
    wait_until(wait, || {
        kdc.audit_lines().iter().any(|l| {
            l.contains("exchange=\"connection\"")
                && l.contains("transport=\"tcp\"")
                && l.contains("outcome=\"closed\"")
                && l.contains(&reason)
                && l.contains(&source)
        })
    })
}

#[test]
fn a_frame_dribbled_a_byte_at_a_time_is_closed_at_its_deadline() {
    let kdc = DevKdc::start_with(
        Path::new(KDC),
        with_listen("tcp_idle_timeout_secs", "10", "1"),
    );
    let mut s = connect(&kdc);
    let me = s.local_addr().unwrap();
    // A 200-byte frame: the prefix, then one byte every 300 ms. It can
    // never be whole before the server gives up on it.
    const LEN: usize = 200;
    s.write_all(&(LEN as u32).to_be_bytes()).unwrap();
    let mut sent = 0;
    let closed = loop {
        if closed_within(&mut s, Duration::from_millis(300)) {
            break true;
        }
        if sent == LEN - 1 || s.write_all(&[0x30]).is_err() {
            break closed_within(&mut s, Duration::from_secs(10));
        }
        sent += 1;
    };
    assert!(closed, "still open after {sent} of {LEN} bytes");
    assert!(sent < LEN - 1, "the frame was nearly whole: {sent} bytes");
    assert!(
        audited_close(&kdc, "frame_timeout", me, Duration::from_secs(10)),
        "no frame_timeout audit line for {me}:\n{}",
        kdc.audit_lines().join("\n")
    );
    assert!(
        kdc.metric("pktc_tcp_closed_total{reason=\"frame_timeout\"}") >= 1.0,
        "{}",
        kdc.metrics()
    );
    assert_eq!(
        kdc.metric("pktc_tcp_closed_total{reason=\"lifetime\"}"),
        0.0,
        "{}",
        kdc.metrics()
    );
}

#[test]
fn a_busy_connection_is_closed_at_its_lifetime() {
    let kdc = DevKdc::start_with(
        Path::new(KDC),
        with_listen("tcp_max_connection_secs", "60", "2"),
    );
    let r = Realm::start(kdc);
    let mut s = connect(&r.kdc);
    let me = s.local_addr().unwrap();
    // Valid AS requests, each answered, every 200 ms, until the server
    // closes (bounded: the lifetime is 2 s, the loop gives up after 60).
    let started = Instant::now();
    let mut answered = 0;
    let closed = loop {
        if started.elapsed() > Duration::from_secs(60) {
            break false;
        }
        let req = r.as_req(rand_nonce(), 0, client::default_options());
        let mut frame = (req.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&req);
        if s.write_all(&frame).is_err() {
            break true;
        }
        let mut len = [0u8; 4];
        match s.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break true,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break true;
            }
            Err(e) => panic!("reading a reply: {e}"),
        }
        let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(reply.first(), Some(&0x6b), "not an AS-REP");
        answered += 1;
        if closed_within(&mut s, Duration::from_millis(200)) {
            break true;
        }
    };
    assert!(closed, "still open after {answered} answered requests");
    assert!(answered >= 2, "only {answered} requests answered");
    assert!(
        audited_close(&r.kdc, "lifetime", me, Duration::from_secs(10)),
        "no lifetime audit line for {me}:\n{}",
        r.kdc.audit_lines().join("\n")
    );
    assert!(
        r.kdc.metric("pktc_tcp_closed_total{reason=\"lifetime\"}") >= 1.0,
        "{}",
        r.kdc.metrics()
    );
}

#[test]
fn a_client_that_never_reads_is_closed_at_the_write_timeout() {
    let kdc = DevKdc::start_with(
        Path::new(KDC),
        with_listen("tcp_write_timeout_secs", "5", "1"),
    );
    let r = Realm::start(kdc);
    // A small receive buffer, so the replies fill it (and the KDC's send
    // buffer) soon.
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(r.kdc.addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect_timeout(&r.kdc.addr.into(), Duration::from_secs(5))
        .unwrap();
    let s: TcpStream = sock.into();
    let me = s.local_addr().unwrap();
    // One valid AS request sent over and over (answered from the
    // lookaside: cheap), none of the replies read, until the KDC stops
    // reading and then closes. Bounded by a count.
    let req = r.as_req(rand_nonce(), 0, client::default_options());
    let mut frame = (req.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let writer = std::thread::spawn(move || {
        let mut sent = 0usize;
        while sent < 200_000 && w.write_all(&frame).is_ok() {
            sent += 1;
        }
        sent
    });
    assert!(
        audited_close(&r.kdc, "write_timeout", me, Duration::from_secs(60)),
        "no write_timeout audit line for {me}:\n{}",
        r.kdc.audit_lines().join("\n")
    );
    assert!(
        r.kdc
            .metric("pktc_tcp_closed_total{reason=\"write_timeout\"}")
            >= 1.0,
        "{}",
        r.kdc.metrics()
    );
    // The KDC closed the connection: the writer's sends fail.
    let _ = s.shutdown(std::net::Shutdown::Read);
    let sent = writer.join().unwrap();
    assert!(
        sent < 200_000,
        "every request was taken: the KDC never stalled"
    );
}
