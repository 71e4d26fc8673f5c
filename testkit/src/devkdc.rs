//! A `pktc-kdc` dev realm served by a separate process, for tests that talk
//! to the KDC over real sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

pub struct DevKdc {
    pub dir: TempDir,
    pub manifest: serde_json::Value,
    pub addr: SocketAddr,
    child: Option<Child>,
    /// The provisioning-server stand-in (pkt-eue-7), when the realm has one.
    mps: Option<Child>,
    binary: PathBuf,
}

/// Creates a dev realm in `dir` without serving it (`pktc-kdc dev
/// --init-only --port 0`); panics with pktc-kdc's stderr if that fails.
pub fn init_dev_realm(binary: &Path, dir: &Path) {
    let out = Command::new(binary)
        .args(["dev", "--init-only", "--port", "0", "--dir"])
        .arg(dir)
        .output()
        .expect("running pktc-kdc dev --init-only");
    assert!(
        out.status.success(),
        "pktc-kdc dev --init-only failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl DevKdc {
    /// Creates a dev realm with `pktc-kdc dev --init-only --port 0` and serves it.
    pub fn start(binary: &Path) -> DevKdc {
        DevKdc::start_with(binary, |_| {})
    }

    /// As [`DevKdc::start`], letting the test edit config.toml before serving.
    pub fn start_with(binary: &Path, edit_config: impl FnOnce(&mut String)) -> DevKdc {
        DevKdc::start_prepared(binary, |_, cfg| edit_config(cfg))
    }

    /// As [`DevKdc::start`], letting the test change the realm directory
    /// (certificates, CRLs) and config.toml before the KDC starts.
    pub fn start_prepared(binary: &Path, prepare: impl FnOnce(&Path, &mut String)) -> DevKdc {
        let dir = TempDir::new("devkdc");
        let realm_dir = dir.path("realm");
        init_dev_realm(binary, &realm_dir);
        let cfg_path = realm_dir.join("config.toml");
        let mut cfg = std::fs::read_to_string(&cfg_path).expect("config.toml");
        prepare(&realm_dir, &mut cfg);
        std::fs::write(&cfg_path, cfg).expect("write config.toml");
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(realm_dir.join("dev-realm.json")).expect("manifest"),
        )
        .expect("manifest JSON");
        let addr: SocketAddr = manifest["kdc"]
            .as_str()
            .expect("kdc")
            .parse()
            .expect("kdc addr");
        let mut kdc = DevKdc {
            dir,
            manifest,
            addr,
            child: None,
            mps: None,
            binary: binary.to_path_buf(),
        };
        kdc.start_mps();
        kdc.spawn();
        kdc
    }

    fn spawn(&mut self) {
        // Every attempt's log, for the panic: a port taken three times in a
        // row says more about the machine than the last log alone.
        let mut attempts = String::new();
        for attempt in 1..=5 {
            self.spawn_once();
            if self.wait_ready_or_bind_failure() {
                return;
            }
            attempts.push_str(&format!("--- attempt {attempt}:\n{}\n", self.log()));
            // A port taken since the realm was made: move it and try again.
            let old = self.taken_port().unwrap_or(self.addr.port());
            let new = self.relocate_port(old);
            if old == self.addr.port() {
                self.addr.set_port(new);
            }
        }
        panic!("pktc-kdc could not bind its ports in 5 attempts; logs:\n{attempts}");
    }

    /// The port of the "binding ADDR" error in the log (KDC or certboot).
    fn taken_port(&self) -> Option<u16> {
        let log = self.log();
        log.split("binding ").skip(1).find_map(|rest| {
            rest.split_whitespace()
                .map(|w| w.trim_end_matches([':', ',', ')']))
                .find_map(|w| w.parse::<SocketAddr>().ok())
                .map(|a| a.port())
        })
    }

    /// Moves a realm port (`old`) to a free one in every realm file.
    fn relocate_port(&mut self, old: u16) -> u16 {
        // Free for TCP and UDP on both loopbacks (the realm listens on
        // [::1] too), and below the ephemeral range (from 20 000 up, spread
        // by the process id and time), where client sockets do not land.
        let free = |p: u16| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && (UdpSocket::bind("[::1]:0").is_err()
                    || (std::net::TcpListener::bind(("::1", p)).is_ok()
                        && UdpSocket::bind(("::1", p)).is_ok()))
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id();
        let new = (0..5000u32)
            .map(|i| 20_000 + ((seed.wrapping_add(i.wrapping_mul(7919))) % 10_000) as u16)
            .find(|&p| p != old && free(p))
            .expect("a free loopback port");
        let realm = self.dir.path("realm");
        for entry in std::fs::read_dir(&realm).expect("realm dir").flatten() {
            let path = entry.path();
            let is_text = path
                .extension()
                .is_some_and(|e| e == "toml" || e == "conf" || e == "json");
            if is_text && let Ok(text) = std::fs::read_to_string(&path) {
                let moved = text.replace(&format!(":{old}"), &format!(":{new}"));
                if moved != text {
                    std::fs::write(&path, moved).expect("rewrite realm file");
                }
            }
        }
        self.manifest = serde_json::from_str(
            &std::fs::read_to_string(realm.join("dev-realm.json")).expect("manifest"),
        )
        .expect("manifest JSON");
        new
    }

    fn spawn_once(&mut self) {
        let log = std::fs::File::create(self.dir.path("kdc.log")).expect("kdc.log");
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg("--config")
            .arg(self.realm_path("config.toml"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning pktc-kdc serve");
        self.child = Some(child);
    }

    /// Starts `pktc-kdc mps-responder` for the realm's stand-in, if it has one.
    pub fn start_mps(&mut self) {
        let cfg = self.realm_path("mps-responder.toml");
        if !cfg.exists() || self.mps.is_some() {
            return;
        }
        let log = std::fs::File::create(self.dir.path("mps.log")).expect("mps.log");
        let child = Command::new(&self.binary)
            .arg("mps-responder")
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning pktc-kdc mps-responder");
        self.mps = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.mps_log().contains("mps-responder serving") {
            assert!(
                Instant::now() < deadline,
                "mps-responder did not start:\n{}",
                self.mps_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the provisioning-server stand-in (to test timeouts).
    pub fn stop_mps(&mut self) {
        if let Some(mut c) = self.mps.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn mps_log(&self) -> String {
        std::fs::read_to_string(self.dir.path("mps.log")).unwrap_or_default()
    }

    /// How many pkt-eue-7 questions the stand-in has answered ("unknown
    /// MAC" included), once at least `at_least` are in its log or 5 s have
    /// passed: it logs each just after sending the answer, which the KDC
    /// (and so the test) may already have used.
    pub fn mps_answers(&self, at_least: usize) -> usize {
        let count = || self.mps_log().matches("outcome=\"answered\"").count();
        let deadline = Instant::now() + Duration::from_secs(5);
        while count() < at_least && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        count()
    }

    /// True once serving; false if it exited because a port was taken.
    fn wait_ready_or_bind_failure(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                if self.log().contains("Address already in use") {
                    return false;
                }
                panic!("pktc-kdc exited early ({status}); log:\n{}", self.log());
            }
            if self.log().contains("pktc-kdc serving") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("pktc-kdc did not start in 20 s; log:\n{}", self.log());
    }

    /// The `pktc-kdc` binary this realm runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// A path inside the realm directory (manifest paths are relative to it).
    pub fn realm_path(&self, rel: &str) -> PathBuf {
        self.dir.path("realm").join(rel)
    }

    /// The manifest's string field `key`, e.g. "realm".
    pub fn get(&self, key: &str) -> String {
        self.manifest[key]
            .as_str()
            .unwrap_or_else(|| panic!("manifest has no {key}"))
            .to_string()
    }

    pub fn password(&self) -> (String, String) {
        let p = &self.manifest["password_principal"];
        (
            p["name"].as_str().expect("name").to_string(),
            p["password"].as_str().expect("password").to_string(),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("kdc.log")).unwrap_or_default()
    }

    /// Audit lines (human format) of the KDC log.
    pub fn audit_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(" audit: "))
            .map(str::to_string)
            .collect()
    }

    /// Waits (up to 3 s) for an audit line matching `pred`: the KDC writes
    /// it just after sending the reply the test has already received.
    pub fn wait_audit(&self, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if self.audit_lines().iter().any(|l| pred(l)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (up to 10 s) for a line of the KDC's log matching `pred`
    /// (reloads happen on the file watch's next tick).
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.log().lines().any(&pred) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Prometheus exposition text of the manifest's `metrics_url`.
    pub fn metrics(&self) -> String {
        let url = self.get("metrics_url");
        let addr = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .expect("metrics_url host")
            .to_string();
        let mut s = TcpStream::connect(&addr).expect("connect to the metrics endpoint");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("read the scrape");
        let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.to_string()
    }

    /// MIT kinit PKINIT (MIT's plugin, krb5-pkinit) as device `index` of
    /// the manifest with the krb5.conf of manifest key `conf_key`; returns
    /// (success, kinit's output).
    pub fn kinit_device(
        &self,
        conf_key: &str,
        index: usize,
        extra: &[&str],
        cc: &Path,
    ) -> (bool, String) {
        let conf = self.realm_path(&self.get(conf_key));
        self.kinit_device_with(&conf, index, None, extra, cc)
    }

    /// As [`DevKdc::kinit_device`] with the krb5.conf at `conf` (e.g. a
    /// [`crate::Replica`]'s) and, when given, another client principal than
    /// the device's own (a device claiming someone else's FQDN).
    pub fn kinit_device_with(
        &self,
        conf: &Path,
        index: usize,
        principal: Option<&str>,
        extra: &[&str],
        cc: &Path,
    ) -> (bool, String) {
        let plugin = [
            "/usr/lib/x86_64-linux-gnu/krb5/plugins/preauth/pkinit.so",
            "/usr/lib/aarch64-linux-gnu/krb5/plugins/preauth/pkinit.so",
        ];
        assert!(
            plugin.iter().any(|p| Path::new(p).exists()),
            "MIT's PKINIT plugin is missing: apt-get install -y krb5-pkinit"
        );
        let dev = &self.manifest["devices"][index];
        let path = |k: &str| {
            self.realm_path(dev[k].as_str().expect(k))
                .display()
                .to_string()
        };
        let identity = format!("FILE:{},{}", path("cert"), path("key"));
        let principal = principal.unwrap_or_else(|| dev["principal"].as_str().expect("principal"));
        crate::run(
            crate::mit("kinit", conf, cc)
                .args(["-X", &format!("X509_user_identity={identity}")])
                .args(extra)
                .arg(principal),
            "",
        )
    }

    /// A Heimdal krb5.conf for this realm over `transport` ("tcp" or
    /// "udp"), written into the test directory; its libkrb5 trace goes to
    /// [`DevKdc::heimdal_trace`].
    pub fn heimdal_conf(&self, transport: &str) -> PathBuf {
        let path = self.dir.path(&format!("heimdal-{transport}.conf"));
        let text = crate::heimdal_conf(
            &self.get("realm"),
            &self.addr.to_string(),
            transport,
            &self.realm_path(&self.get("sp_root")),
            &self.dir.path("heimdal-trace.log"),
        );
        std::fs::write(&path, text).expect("write the Heimdal krb5.conf");
        path
    }

    /// What Heimdal's libkrb5 traced so far.
    pub fn heimdal_trace(&self) -> String {
        std::fs::read_to_string(self.dir.path("heimdal-trace.log")).unwrap_or_default()
    }

    /// Heimdal `kinit.heimdal --pk-user=FILE:cert,key` as device `index`
    /// of the manifest over `transport`; returns (success, output).
    pub fn kinit_heimdal(
        &self,
        transport: &str,
        index: usize,
        extra: &[&str],
        cc: &Path,
    ) -> (bool, String) {
        let dev = &self.manifest["devices"][index];
        let path = |k: &str| {
            self.realm_path(dev[k].as_str().expect(k))
                .display()
                .to_string()
        };
        let conf = self.heimdal_conf(transport);
        crate::run(
            crate::heimdal("kinit.heimdal", &conf, cc)
                .arg(format!("--pk-user=FILE:{},{}", path("cert"), path("key")))
                .args(extra)
                .arg(dev["principal"].as_str().expect("principal")),
            "",
        )
    }

    /// HTTP status of one certificate-bootstrapping profile fetch by `curl`
    /// with this certificate and key ("000" when the handshake is refused).
    pub fn certboot_status(&self, cert: &Path, key: &Path) -> String {
        self.certboot_curl(cert, key, &[]).0
    }

    /// One profile fetch by `curl` with this certificate and key and `extra`
    /// curl arguments (a source `--interface`, headers): the HTTP status
    /// ("000" when refused before HTTP) and curl's exit code.
    pub fn certboot_curl(&self, cert: &Path, key: &Path, extra: &[&str]) -> (String, Option<i32>) {
        let out = Command::new(crate::require_tool("curl", "curl"))
            .args([
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg("--cacert")
            .arg(self.realm_path(&self.get("certboot_ca")))
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(extra)
            .arg(self.get("certboot_url"))
            .output()
            .expect("running curl");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        )
    }

    /// The value of one series (`name{labels}` exactly as exposed), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(k, _)| *k == series)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// One UDP request/reply, 5 s timeout.
    pub fn udp(&self, request: &[u8]) -> Vec<u8> {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.send_to(request, self.addr).expect("send");
        let mut buf = vec![0u8; 65536];
        let (n, _) = s
            .recv_from(&mut buf)
            .expect("no UDP reply from the KDC within 5 s");
        buf.truncate(n);
        buf
    }

    /// One TCP request/reply with the 4-byte length prefix.
    pub fn tcp(&self, request: &[u8]) -> Vec<u8> {
        let mut framed = (request.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(request);
        self.tcp_raw(&framed).expect("no TCP reply from the KDC")
    }

    /// Sends raw bytes over TCP and reads one length-prefixed reply, if any.
    pub fn tcp_raw(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(bytes).expect("write");
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut reply).ok()?;
        Some(reply)
    }

    /// Stops the server (SIGTERM, then kill after 5 s). The exit status
    /// when SIGTERM alone ended it, None when it had to be killed (or was
    /// not running).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Stops the server and starts it again on the same realm.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's CPU time so far (user + system, all threads) in
    /// milliseconds, from /proc/PID/stat (clock-tick resolution).
    pub fn cpu_ms(&self) -> f64 {
        let pid = self.pid().expect("pktc-kdc is running");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
        // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').expect("comm") + 1..];
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let tck = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(100);
        (f[14 - 3] + f[15 - 3]) as f64 * 1000.0 / tck as f64
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for DevKdc {
    fn drop(&mut self) {
        self.stop();
        self.stop_mps();
    }
}
