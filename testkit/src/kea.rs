//! A real ISC Kea DHCPv4 server (`kea-dhcp4`) on loopback for tests, and
//! DHCP clients to talk to it: `perfdhcp` (Kea's own load generator) and a
//! small scripted client for the exchanges perfdhcp cannot make on demand
//! (a RELEASE of a lease from an earlier run).
//!
//! How Kea runs on loopback without privileges: `-p PORT` moves its server
//! port; `dhcp-socket-type: udp` on `lo` needs no raw socket. Clients act
//! as a relay agent (giaddr 127.0.0.1, which selects the 127.0.0.0/8
//! subnet), and add the RFC 8357 relay-source-port sub-option (option 82,
//! sub-option 19), so Kea answers to the client's own port rather than to
//! port 67.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::require_tool;

/// The run_script hook library of the installed Kea.
pub fn run_script_library() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_run_script.so",
        "/usr/lib/aarch64-linux-gnu/kea/hooks/libdhcp_run_script.so",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "Kea's run_script hook library is missing ({candidates:?}): \
                 apt-get install -y kea-dhcp4-server (or run `bash .ci/run`)"
            )
        })
}

/// A free UDP port on 127.0.0.1 (for Kea and perfdhcp, which bind their own).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port()
}

pub struct Kea {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Kea {
    /// Starts `kea-dhcp4 -c CONFIG -p PORT` with `config` (the `Dhcp4`
    /// object's JSON) written into `dir`, its pid and lock files in `dir`,
    /// and waits until it serves.
    pub fn start(dir: &Path, config: &serde_json::Value) -> Kea {
        let mut binary = require_tool("kea-dhcp4", "kea-dhcp4-server");
        // Debian's AppArmor profile for /usr/sbin/kea-dhcp4 (attached by
        // path) confines it to /etc/kea and /run/kea and lets it run no
        // hook script; where it is enforced, run a copy, which it does not
        // attach to, for this lab instance with its files in `dir`.
        let profiles =
            std::fs::read_to_string("/sys/kernel/security/apparmor/profiles").unwrap_or_default();
        if profiles.contains("kea-dhcp4 (enforce)") {
            let copy = dir.join("kea-dhcp4");
            std::fs::copy(&binary, &copy).expect("copying kea-dhcp4");
            binary = copy;
        }
        let port = free_udp_port();
        let conf = dir.join("kea-dhcp4.json");
        std::fs::write(
            &conf,
            serde_json::to_string_pretty(&serde_json::json!({ "Dhcp4": config })).unwrap(),
        )
        .unwrap();
        let log = dir.join("kea.log");
        let out = std::fs::File::create(&log).expect("kea.log");
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(port.to_string())
            .env("KEA_PIDFILE_DIR", dir)
            .env("KEA_LOCKFILE_DIR", dir)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning kea-dhcp4");
        let mut kea = Kea { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !kea.log().contains("DHCP4_STARTED") {
            if let Ok(Some(status)) = kea.child.try_wait() {
                panic!("kea-dhcp4 exited ({status}):\n{}", kea.log());
            }
            assert!(
                Instant::now() < deadline,
                "kea-dhcp4 did not start:\n{}",
                kea.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        kea
    }

    /// Kea's own log (and what its hook scripts wrote to stdout/stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// One DISCOVER/OFFER/REQUEST/ACK by `perfdhcp` as a relay agent on
    /// 127.0.0.1, for `mac`, with `hostname` (unqualified) in the client
    /// FQDN option (81). Returns perfdhcp's output.
    pub fn perfdhcp_lease(&self, mac: &str, hostname: &str) -> String {
        let perfdhcp = require_tool("perfdhcp", "kea-admin");
        let fqdn: String = hostname.bytes().map(|b| format!("{b:02x}")).collect();
        let (out, err) = crate::run_bounded(
            Command::new(perfdhcp).args([
                "-4",
                "-l",
                "127.0.0.1",
                "-L",
                &free_udp_port().to_string(),
                "-N",
                &self.port.to_string(),
                "-b",
                &format!("mac={mac}"),
                "-R",
                "1",
                "-n",
                "1",
                "-r",
                "1",
                "-d",
                "2",
                "-W",
                "1000000",
                "-g",
                "single",
                // Client FQDN: flags S, RCODEs 0, the name in ASCII.
                "-o",
                &format!("81,010000{fqdn}"),
                // Relay agent information: relay source port (RFC 8357).
                "-o",
                "82,1300",
                "-x",
                "l",
                "127.0.0.1",
            ]),
            b"",
            "perfdhcp",
        );
        format!("{out}{err}")
    }
}

impl Drop for Kea {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scripted DHCPv4 client acting as a relay agent on 127.0.0.1 (BOOTP
/// and options per RFC 2131/2132, client FQDN RFC 4702, relay source port
/// RFC 8357).
pub struct DhcpClient {
    sock: UdpSocket,
    server: SocketAddr,
    mac: [u8; 6],
}

/// An ACKed lease.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub server_id: Ipv4Addr,
}

const MAGIC: [u8; 4] = [99, 130, 83, 99];

impl DhcpClient {
    pub fn new(server: SocketAddr, mac: [u8; 6]) -> DhcpClient {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        DhcpClient { sock, server, mac }
    }

    fn packet(
        &self,
        msg_type: u8,
        xid: u32,
        ciaddr: Ipv4Addr,
        options: &[(u8, Vec<u8>)],
    ) -> Vec<u8> {
        let mut p = vec![1, 1, 6, 1];
        p.extend_from_slice(&xid.to_be_bytes());
        p.extend_from_slice(&[0; 4]); // secs, flags
        p.extend_from_slice(&ciaddr.octets());
        p.extend_from_slice(&[0; 8]); // yiaddr, siaddr
        p.extend_from_slice(&[127, 0, 0, 1]); // giaddr
        p.extend_from_slice(&self.mac);
        p.extend_from_slice(&[0; 10 + 64 + 128]);
        p.extend_from_slice(&MAGIC);
        let mut client_id = vec![1];
        client_id.extend_from_slice(&self.mac);
        let common = [(53, vec![msg_type]), (61, client_id)];
        for (code, value) in common.iter().chain(options) {
            p.push(*code);
            p.push(value.len() as u8);
            p.extend_from_slice(value);
        }
        // Relay agent information last (RFC 3046): relay source port.
        p.extend_from_slice(&[82, 2, 19, 0, 255]);
        p
    }

    /// Sends and waits for a reply of type `want` to `xid`: (yiaddr, server id).
    fn exchange(&self, packet: &[u8], xid: u32, want: u8) -> Result<(Ipv4Addr, Ipv4Addr), String> {
        self.sock
            .send_to(packet, self.server)
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        loop {
            let n = self
                .sock
                .recv(&mut buf)
                .map_err(|e| format!("no reply: {e}"))?;
            let p = &buf[..n];
            if n < 240 || p[4..8] != xid.to_be_bytes() || p[236..240] != MAGIC {
                continue;
            }
            let (mut msg_type, mut server_id) = (0, Ipv4Addr::UNSPECIFIED);
            let mut i = 240;
            while i + 1 < n && p[i] != 255 {
                if p[i] == 0 {
                    i += 1;
                    continue;
                }
                let len = p[i + 1] as usize;
                let value = p.get(i + 2..i + 2 + len).ok_or("option beyond the end")?;
                match (p[i], value) {
                    (53, [t]) => msg_type = *t,
                    (54, [a, b, c, d]) => server_id = Ipv4Addr::new(*a, *b, *c, *d),
                    _ => {}
                }
                i += 2 + len;
            }
            let yiaddr = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            return if msg_type == want {
                Ok((yiaddr, server_id))
            } else {
                Err(format!("DHCP message type {msg_type}, wanted {want}"))
            };
        }
    }

    /// DISCOVER, OFFER, REQUEST, ACK with `hostname` in option 81.
    pub fn lease(&self, hostname: &str, xid: u32) -> Result<Lease, String> {
        let mut fqdn = vec![0x01, 0, 0];
        fqdn.extend_from_slice(hostname.as_bytes());
        let discover = self.packet(1, xid, Ipv4Addr::UNSPECIFIED, &[(81, fqdn.clone())]);
        let (offered, server_id) = self.exchange(&discover, xid, 2)?;
        let request = self.packet(
            3,
            xid,
            Ipv4Addr::UNSPECIFIED,
            &[
                (50, offered.octets().to_vec()),
                (54, server_id.octets().to_vec()),
                (81, fqdn),
            ],
        );
        let (address, server_id) = self.exchange(&request, xid, 5)?;
        Ok(Lease { address, server_id })
    }

    /// RELEASE (no answer comes back).
    pub fn release(&self, lease: Lease, xid: u32) {
        let p = self.packet(
            7,
            xid,
            lease.address,
            &[(54, lease.server_id.octets().to_vec())],
        );
        self.sock.send_to(&p, self.server).expect("send RELEASE");
    }
}
