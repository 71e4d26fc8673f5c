//! Reads that also return how long the data waited in the kernel: the
//! socket's receive timestamp (SO_TIMESTAMPNS, the time the datagram or
//! TCP segment reached the host) against the wall clock now. Under a storm
//! a request can wait in the socket buffer or the accept queue longer than
//! the device waits for its answer; the age is what lets the KDC drop it
//! instead of answering late (`[overload] max_queue_delay_ms`).
//!
//! nix wraps recvmsg and the control messages in safe code (the workspace
//! denies `unsafe`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

/// Asks the kernel for receive timestamps on `sock` (inherited by the
/// connections a listening socket accepts).
pub fn enable(sock: &impl AsFd) -> io::Result<()> {
    setsockopt(sock, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// One read: its length, the sender (datagrams) and how long the newest
/// byte read waited since it reached the host (zero when the kernel gave
/// no timestamp).
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    pub source: Option<SocketAddr>,
    pub age: Duration,
}

/// Longest age believed: a larger one means the wall clock stepped.
const MAX_AGE: Duration = Duration::from_secs(3600);

fn age_of(ts: &TimeSpec) -> Duration {
    let stamped = Duration::new(
        ts.tv_sec().max(0) as u64,
        ts.tv_nsec().clamp(0, 999_999_999) as u32,
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    match now.checked_sub(stamped) {
        Some(age) if age <= MAX_AGE => age,
        _ => Duration::ZERO,
    }
}

fn to_socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// A non-blocking recvmsg into `buf` (WouldBlock when nothing is there).
pub fn recv(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(TimeSpec);
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let mut age = Duration::ZERO;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                age = age_of(&ts);
            }
        }
    }
    let source = msg
        .address
        .as_ref()
        .filter(|a| a.family().is_some())
        .and_then(to_socket_addr);
    Ok(Received {
        len: msg.bytes,
        source,
        age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel turns receive timestamping on for the host from a work
    /// queue: packets in the first moments after the first `enable` may
    /// carry none (the server enables it at start-up, long before). Waits
    /// until a probe datagram arrives stamped.
    fn settle() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&rx).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 8];
        let stamped = testkit::wait_until(Duration::from_secs(5), || {
            tx.send_to(b"probe", rx.local_addr().unwrap()).unwrap();
            let mut any = false;
            while let Ok(r) = recv(&rx, &mut buf) {
                any |= r.age > Duration::ZERO;
            }
            any
        });
        assert!(stamped, "no receive timestamps after 5 s");
    }

    #[test]
    fn udp_datagrams_carry_their_age() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&rx).unwrap();
        settle();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"old", rx.local_addr().unwrap()).unwrap();
        // The age under test: "old" waits in the socket buffer.
        std::thread::sleep(Duration::from_millis(60));
        tx.send_to(b"new", rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let old = recv(&rx, &mut buf).unwrap();
        assert_eq!(&buf[..old.len], b"old");
        assert_eq!(old.source, Some(tx.local_addr().unwrap()));
        let new = recv(&rx, &mut buf).unwrap();
        assert_eq!(&buf[..new.len], b"new");
        // Ordering, not a threshold: under load the kernel may stamp late
        // (loopback receive runs in a softirq that can be deferred).
        assert!(old.age > new.age, "{old:?} {new:?}");
        let empty = recv(&rx, &mut buf).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    /// One try: data on a connection left in the accept queue for 60 ms,
    /// then a later connection's data; the two receive ages.
    fn queued_and_fresh(l: &std::net::TcpListener) -> (Received, Received) {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.write_all(b"queued").unwrap();
        // The age under test: the data waits in the accept queue while a
        // later connection's data arrives.
        std::thread::sleep(Duration::from_millis(60));
        let mut later = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        later.write_all(b"fresh").unwrap();
        let mut buf = [0u8; 16];
        let (s, _) = l.accept().unwrap();
        let old = recv(&s, &mut buf).unwrap();
        assert_eq!(&buf[..old.len], b"queued");
        let (s, _) = l.accept().unwrap();
        let new = loop {
            match recv(&s, &mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                r => break r.unwrap(),
            }
        };
        assert_eq!(&buf[..new.len], b"fresh");
        (old, new)
    }

    #[test]
    fn tcp_connections_accepted_later_still_see_when_data_arrived() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        enable(&l).unwrap();
        settle();
        // A segment may now and then arrive unstamped while other tests
        // switch the host's timestamping (the KDC then treats it as fresh):
        // a few tries, the ordering asserted on the first fully stamped one.
        let mut tries = Vec::new();
        for _ in 0..5 {
            let (old, new) = queued_and_fresh(&l);
            if old.age > Duration::ZERO && new.age > Duration::ZERO {
                // Ordering, not a threshold (see above).
                assert!(old.age > new.age, "{old:?} {new:?}");
                return;
            }
            tries.push((old, new));
        }
        panic!("no try had both segments stamped: {tries:?}");
    }
}
