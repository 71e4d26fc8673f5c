//! A real redis-server for tests, on a free loopback port, stopped on drop:
//! plain ([`Redis::start`]) or TLS-only with client certificates and a
//! password ([`Redis::start_secured`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Redis {
    child: std::process::Child,
    pub port: u16,
    /// Set by [`Redis::start_secured`].
    pub secured: Option<Secured>,
}

/// The files and password of a [`Redis::start_secured`] server (PEM, made
/// with the openssl CLI).
pub struct Secured {
    pub password: String,
    /// The CA that issued the server's and the client's certificates.
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    /// PKCS#8.
    pub client_key: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `openssl ARGS` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(crate::require_tool("openssl", "openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate,
/// all RSA 2048 with PKCS#8 keys, in `dir`.
fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=pktc test redis CA",
        ],
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN=pktc test redis {name}"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

impl Redis {
    pub fn start() -> Redis {
        let port = free_port();
        let port_arg = port.to_string();
        Redis::spawn(&["--port", &port_arg], port, None)
    }

    /// TLS only (no plain port), client certificates required
    /// (`tls-auth-clients yes`) and `requirepass`; certificates in `dir`.
    pub fn start_secured(dir: &Path, password: &str) -> Redis {
        make_pki(dir);
        let port = free_port();
        let path = |f: &str| dir.join(f).display().to_string();
        let (cert, key, ca, port_arg) = (
            path("server.pem"),
            path("server.key"),
            path("ca.pem"),
            port.to_string(),
        );
        let secured = Secured {
            password: password.to_string(),
            ca: dir.join("ca.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        };
        Redis::spawn(
            &[
                "--port",
                "0",
                "--tls-port",
                &port_arg,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "yes",
                "--requirepass",
                password,
            ],
            port,
            Some(secured),
        )
    }

    // The child moves into `Redis`, whose Drop kills and reaps it.
    #[allow(clippy::zombie_processes)]
    fn spawn(listen: &[&str], port: u16, secured: Option<Secured>) -> Redis {
        let bin = crate::require_tool("redis-server", "redis-server");
        let child = std::process::Command::new(bin)
            .args(listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawning redis-server");
        let mut redis = Redis {
            child,
            port,
            secured,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !redis.answers_ping() {
            if std::time::Instant::now() > deadline {
                redis.stop();
                panic!("redis-server did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn answers_ping(&self) -> bool {
        if self.secured.is_some() {
            return self.try_cli(&["PING"]).is_some_and(|o| o.trim() == "PONG");
        }
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.write_all(b"PING\r\n");
        let mut buf = [0u8; 7];
        s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// `redis-cli` with this server's address, TLS files and password;
    /// its output, or None when it failed.
    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new(crate::require_tool("redis-cli", "redis-tools"));
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(s) = &self.secured {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(&s.ca)
                .arg("--cert")
                .arg(&s.client_cert)
                .arg("--key")
                .arg(&s.client_key)
                .env("REDISCLI_AUTH", &s.password);
        }
        let out = cmd.args(args).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.starts_with("ERR") && !text.starts_with("NOAUTH"))
            .then_some(text)
    }

    /// One command through `redis-cli` (TLS and password as needed); its
    /// output without the trailing newline. Panics when it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
            .trim_end_matches('\n')
            .to_string()
    }

    /// `redis://` or, when secured, `rediss://` (no password: tests give
    /// it through `[redis] password_file`).
    pub fn url(&self) -> String {
        let scheme = if self.secured.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// One command over RESP (what a provisioning hook would send); panics
    /// on an error reply.
    pub fn command(&self, args: &[&str]) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut cmd = format!("*{}\r\n", args.len());
        for a in args {
            cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(cmd.as_bytes()).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0 && buf[0] != b'-',
            "redis said {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
