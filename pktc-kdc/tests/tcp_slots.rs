//! TCP connection slots cannot be held forever: a slow-client flood from
//! many loopback addresses (127.2.0.0/16) keeps the KDC's connection table
//! full (each client sends a byte now and then, some send frames that are
//! not Kerberos requests) while MIT `kinit` runs PKINIT over TCP. The
//! oldest idle connection gives its slot to the new one, so kinit keeps
//! working; junk frames close their connection; one address cannot hold
//! more than its share.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use testkit::DevKdc;

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
const MAX_CONNECTIONS: usize = 48;
const PER_SOURCE: usize = 4;

/// A TCP connection to `kdc` from `src`.
fn connect_from(src: Ipv4Addr, kdc: SocketAddr) -> Option<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::from((src, 0)).into()).ok()?;
    s.connect_timeout(&kdc.into(), Duration::from_secs(2))
        .ok()?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_millis(1))).ok()?;
    Some(s)
}

/// Whether the server has closed (or reset) this connection.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Opens slow connections from distinct addresses until `stop`: every
/// connection sends three bytes of a length prefix (a 4 KB frame), then a
/// byte every round; every tenth sends a whole frame that is not a
/// Kerberos request.
fn flood(kdc: SocketAddr, stop: &AtomicBool, opened: &AtomicUsize) -> usize {
    let mut open: Vec<TcpStream> = Vec::new();
    let mut closed = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0u32;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && i < 5000 {
        let src = Ipv4Addr::new(127, 2, (i / 250 + 1) as u8, (i % 250 + 1) as u8);
        if let Some(mut s) = connect_from(src, kdc) {
            let first: &[u8] = if i.is_multiple_of(10) {
                &[0, 0, 0, 2, 0x30, 0x00]
            } else {
                &[0, 0, 0x10]
            };
            let _ = s.write_all(first);
            open.push(s);
            opened.fetch_add(1, Ordering::Relaxed);
        }
        i += 1;
        if i.is_multiple_of(10) {
            // A byte now and then: never a whole frame.
            open.retain_mut(|s| {
                let gone = closed_by_server(s) || s.write_all(&[0]).is_err();
                closed += usize::from(gone);
                !gone
            });
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    closed
}

#[test]
fn slow_client_flood_does_not_lock_mit_kinit_out_of_tcp() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        let before = cfg.clone();
        *cfg = cfg
            .replace(
                "max_tcp_connections = 1024",
                &format!("max_tcp_connections = {MAX_CONNECTIONS}"),
            )
            .replace(
                "max_tcp_connections_per_source = 32",
                &format!("max_tcp_connections_per_source = {PER_SOURCE}"),
            );
        assert_ne!(*cfg, before);
        assert!(cfg.contains(&format!("max_tcp_connections_per_source = {PER_SOURCE}")));
    });
    let stop = AtomicBool::new(false);
    let opened = AtomicUsize::new(0);
    let (closed, kinits) = std::thread::scope(|s| {
        let flood = s.spawn(|| flood(kdc.addr, &stop, &opened));
        // The table is full several times over before kinit starts.
        let full = Instant::now() + Duration::from_secs(30);
        while opened.load(Ordering::Relaxed) < 3 * MAX_CONNECTIONS {
            assert!(Instant::now() < full, "the flood could not connect");
            std::thread::sleep(Duration::from_millis(20));
        }
        let kinits: Vec<(bool, String)> = (0..3)
            .map(|n| {
                let cc = kdc.dir.path(&format!("cc{n}"));
                kdc.kinit_device("krb5_conf_tcp", 0, &["-X", "flag_RSA_PROTOCOL=yes"], &cc)
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        (flood.join().expect("flood thread"), kinits)
    });
    for (ok, out) in &kinits {
        assert!(ok, "kinit over TCP during the flood: {out}\n{}", kdc.log());
    }
    // The dev realm's krb5-tcp.conf (udp_preference_limit = 1) makes MIT
    // try TCP first and fall back to UDP when TCP fails: each kinit must
    // have been answered over TCP, none over UDP.
    let served = |transport: &str| {
        kdc.audit_lines()
            .iter()
            .filter(|l| {
                l.contains("exchange=\"pkinit\"")
                    && l.contains(&format!("transport=\"{transport}\""))
                    && l.contains("outcome=\"ok\"")
            })
            .count()
    };
    // The KDC audits just after replying: the last line may lag.
    let written = Instant::now() + Duration::from_secs(3);
    while served("tcp") < 3 && Instant::now() < written {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        (served("tcp"), served("udp")),
        (3, 0),
        "PKINIT answered over (TCP, UDP); MIT fell back to UDP?\n{}",
        kdc.log()
    );
    assert!(closed > 0, "the KDC closed no flood connection");
    assert!(kdc.metric("pktc_tcp_evicted_total{reason=\"oldest_idle\"}") >= 1.0);
    assert!(kdc.metric("pktc_tcp_closed_total{reason=\"invalid_frame\"}") >= 1.0);

    // One address beyond its share: its own oldest idle connection goes.
    let one = Ipv4Addr::new(127, 3, 0, 1);
    // Each sends a byte: a silent one would wait in the kernel
    // (TCP_DEFER_ACCEPT) and take no slot.
    let mut mine: Vec<TcpStream> = (0..PER_SOURCE + 1)
        .map(|_| {
            let mut s = connect_from(one, kdc.addr).expect("connect");
            s.write_all(&[0]).expect("first byte");
            s
        })
        .collect();
    let evicted = Instant::now() + Duration::from_secs(5);
    while !closed_by_server(&mut mine[0]) {
        assert!(
            Instant::now() < evicted,
            "the source's oldest connection stayed open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(kdc.metric("pktc_tcp_evicted_total{reason=\"same_source\"}") >= 1.0);
}

/// The KDC with `max_tcp_connections = 8`, 24 silent connections from as
/// many addresses, then three MIT kinits over TCP: how many slots did the
/// silent connections take from the kinits (evictions of idle ones)?
/// Also returns the KDC's metrics and log, for the assertion's message.
fn evictions_by_silent_connections(defer_secs: u32) -> (f64, String) {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        let before = cfg.clone();
        *cfg = cfg
            .replace("max_tcp_connections = 1024", "max_tcp_connections = 8")
            .replace(
                "tcp_defer_accept_secs = 3",
                &format!("tcp_defer_accept_secs = {defer_secs}"),
            );
        assert!(cfg.contains(&format!("tcp_defer_accept_secs = {defer_secs}")));
        assert_ne!(*cfg, before);
    });
    let silent: Vec<TcpStream> = (0..24u8)
        .filter_map(|i| connect_from(Ipv4Addr::new(127, 5, 0, i + 1), kdc.addr))
        .collect();
    assert_eq!(silent.len(), 24, "the silent clients could not connect");
    for n in 0..3 {
        let cc = kdc.dir.path(&format!("cc{n}"));
        let (ok, out) = kdc.kinit_device("krb5_conf_tcp", 0, &["-X", "flag_RSA_PROTOCOL=yes"], &cc);
        assert!(
            ok,
            "kinit over TCP beside silent connections: {out}\n{}",
            kdc.log()
        );
    }
    let evicted = kdc.metric("pktc_tcp_evicted_total{reason=\"oldest_idle\"}");
    drop(silent);
    (evicted, format!("{}\n{}", kdc.metrics(), kdc.log()))
}

/// With TCP_DEFER_ACCEPT (the default) a connection that has sent nothing
/// stays in the kernel and takes no slot: in a storm, connections accepted
/// before their request arrived were evicted as idle, and their devices
/// were answered only on a retry (docs/benchmarks.md, "TCP_DEFER_ACCEPT").
/// Turned off, the same silent connections fill the slots and the kinits
/// evict them.
#[test]
fn silent_tcp_connections_take_no_slot_with_defer_accept() {
    let (deferred, state) = evictions_by_silent_connections(30);
    assert_eq!(deferred, 0.0, "evictions with TCP_DEFER_ACCEPT:\n{state}");
    let (accepted, state) = evictions_by_silent_connections(0);
    assert!(
        accepted >= 16.0,
        "evictions without it: {accepted}\n{state}"
    );
}

/// The certificate-bootstrapping endpoint under the same flood: idle
/// connections (TCP open, no TLS handshake) from many addresses fill its
/// slots; a device's curl still gets its profile, an idle one giving way.
#[test]
fn idle_connections_do_not_lock_devices_out_of_certboot() {
    let kdc = DevKdc::start_with(Path::new(KDC), |cfg| {
        assert!(cfg.contains("\nmax_connections = 1024\n"), "{cfg}");
        *cfg = cfg.replace("\nmax_connections = 1024\n", "\nmax_connections = 16\n");
    });
    let url = kdc.get("certboot_url");
    let addr: SocketAddr = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .expect("certboot host:port")
        .parse()
        .expect("certboot address");
    let idle: Vec<TcpStream> = (0..40u8)
        .filter_map(|i| connect_from(Ipv4Addr::new(127, 4, 0, i + 1), addr))
        .collect();
    assert!(idle.len() >= 32, "the flood could not connect");
    let dev = &kdc.manifest["devices"][0];
    let path = |k: &str| kdc.realm_path(dev[k].as_str().expect(k));
    assert_eq!(kdc.certboot_status(&path("cert"), &path("key")), "200");
    assert!(
        kdc.metric("pktc_certboot_connections_evicted_total{reason=\"oldest_idle\"}") >= 1.0,
        "{}",
        kdc.metrics()
    );
    drop(idle);
}
