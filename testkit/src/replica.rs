//! A second `pktc-kdc serve` of a [`DevKdc`]'s realm: the same config and
//! keys on another KDC port, as a replica beside the first (sharing its
//! provisioning-server stand-in and, when configured, its Redis).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::DevKdc;

pub struct Replica {
    child: Option<Child>,
    /// Its KDC address on 127.0.0.1.
    pub addr: SocketAddr,
    /// Its config (`config-<name>.toml` in the realm directory).
    pub config: PathBuf,
    /// A krb5.conf naming only this replica's KDC.
    pub krb5_conf: PathBuf,
    /// Its `[admin] pid_file`.
    pub pid_file: PathBuf,
    log: PathBuf,
}

/// A port free for TCP and UDP on both loopbacks.
fn free_port() -> u16 {
    for _ in 0..200 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let free = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && (std::net::TcpListener::bind(("::1", port)).is_ok()
                || UdpSocket::bind("[::1]:0").is_err());
        if free {
            return port;
        }
    }
    panic!("no free loopback port");
}

impl DevKdc {
    /// Starts replica `name` of this realm: the config with the KDC on
    /// another port, without the certificate-bootstrapping and metrics
    /// listeners, and with its own pid file (`<name>.pid`). Returns once it
    /// serves.
    pub fn start_replica(&self, name: &str) -> Replica {
        let port_a = self.addr.port();
        let port_b = free_port();
        let text = std::fs::read_to_string(self.realm_path("config.toml")).expect("config.toml");
        let mut cfg: toml::Table = text
            .replace(&format!(":{port_a}\""), &format!(":{port_b}\""))
            .parse()
            .expect("config.toml is TOML");
        cfg.remove("certboot");
        cfg.insert(
            "metrics".into(),
            toml::Value::Table(toml::toml! { listen = [] }),
        );
        let pid_file = self.realm_path(&format!("{name}.pid"));
        let mut admin = toml::Table::new();
        admin.insert("pid_file".into(), pid_file.display().to_string().into());
        cfg.insert("admin".into(), toml::Value::Table(admin));
        let config = self.realm_path(&format!("config-{name}.toml"));
        std::fs::write(&config, cfg.to_string()).expect("write the replica's config");
        let krb5 = std::fs::read_to_string(self.realm_path(&self.get("krb5_conf")))
            .expect("krb5.conf")
            .replace(&format!(":{port_a}\n"), &format!(":{port_b}\n"));
        let krb5_conf = self.realm_path(&format!("krb5-{name}.conf"));
        std::fs::write(&krb5_conf, krb5).expect("write the replica's krb5.conf");
        let log = self.dir.path(&format!("kdc-{name}.log"));
        let child = Command::new(self.binary())
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("replica log"))
            .spawn()
            .expect("spawning the replica");
        let mut replica = Replica {
            child: Some(child),
            addr: ([127, 0, 0, 1], port_b).into(),
            config,
            krb5_conf,
            pid_file,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !replica.log().contains("pktc-kdc serving") {
            let exited = replica
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "replica {name} did not start:\n{}",
                replica.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }
}

impl Replica {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Audit lines (human format) of its log.
    pub fn audit_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(" audit: "))
            .map(str::to_string)
            .collect()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop();
    }
}
