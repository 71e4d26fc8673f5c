//! The network: listen addresses, Redis, provisioning servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fqdn_map::client::{DeviceFacts, LookupError, MpsTarget};
use socket2::{Domain, Protocol, Socket, Type};

use super::Ctx;
use crate::config::Config;
use kdc::db::PrincipalDb;

/// The MAC the probe asks about: locally administered (bit 1 of the first
/// octet), so no manufacturer's device has it.
pub const PROBE_MAC: [u8; 6] = [0x02, 0x70, 0x6b, 0x74, 0x63, 0x00];

const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Udp,
    Tcp,
}

/// Binds every listen address the way `serve` does (and releases it).
pub(super) fn ports(ctx: &mut Ctx, cfg: &Config) {
    let mut wanted: Vec<(&str, Proto, SocketAddr)> = Vec::new();
    let mut add = |key: &'static str, proto, addrs: &[SocketAddr]| {
        for a in addrs {
            wanted.push((key, proto, *a));
        }
    };
    add("listen.udp", Proto::Udp, &cfg.listen.udp);
    add("listen.tcp", Proto::Tcp, &cfg.listen.tcp);
    if let Some(c) = &cfg.certboot {
        add("certboot.listen", Proto::Tcp, &c.listen);
        add("certboot.modern_listen", Proto::Tcp, &c.modern_listen);
    }
    add("metrics.listen", Proto::Tcp, &cfg.metrics.listen);
    let service = running_service(cfg);
    let mut held = Vec::new();
    let mut free = 0;
    for (i, (key, proto, addr)) in wanted.iter().enumerate() {
        let subject = format!("{key} {addr}");
        if let Some((other, ..)) = wanted[..i].iter().find(|(_, p, a)| p == proto && a == addr) {
            ctx.error(
                subject,
                format!("is also configured as {other}: the second bind would fail"),
                "give each listener its own address or port",
            );
            continue;
        }
        // Keep each socket until all are tried: overlapping wildcard and
        // specific addresses conflict as they would in `serve`.
        match bind(*proto, *addr) {
            Ok(s) => {
                held.push(s);
                free += 1;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && service.is_some_and(|pid| holds_port(pid, *proto, addr.port())) =>
            {
                ctx.info(
                    subject,
                    format!(
                        "in use by the running service (pid {}, from admin.pid_file): expected \
                         before a reload",
                        service.unwrap_or_default()
                    ),
                );
            }
            Err(e) => {
                let action = match e.kind() {
                    std::io::ErrorKind::AddrInUse => format!(
                        "another process holds it (`ss -{}lnp 'sport = :{}'` shows which): stop \
                         it, or change {key}",
                        if *proto == Proto::Udp { "u" } else { "t" },
                        addr.port()
                    ),
                    std::io::ErrorKind::PermissionDenied => {
                        "ports below 1024 need root or CAP_NET_BIND_SERVICE (`setcap \
                         cap_net_bind_service=+ep` on the binary, or AmbientCapabilities= in the \
                         systemd unit)"
                            .to_string()
                    }
                    std::io::ErrorKind::AddrNotAvailable => {
                        format!("the address is not on this host: correct {key}")
                    }
                    _ => format!("correct {key}"),
                };
                ctx.error(subject, format!("cannot be bound: {e}"), &action);
            }
        }
    }
    drop(held);
    if free > 0 {
        ctx.pass(format!("{free} listen address(es) free"));
    }
}

fn bind(proto: Proto, addr: SocketAddr) -> std::io::Result<Socket> {
    let (ty, p) = match proto {
        Proto::Udp => (Type::DGRAM, Protocol::UDP),
        Proto::Tcp => (Type::STREAM, Protocol::TCP),
    };
    let s = Socket::new(Domain::for_address(addr), ty, Some(p))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    if proto == Proto::Tcp {
        s.listen(1)?;
    }
    Ok(s)
}

/// The pid in `[admin] pid_file`, when that process is alive.
fn running_service(cfg: &Config) -> Option<u32> {
    let path = cfg.admin.pid_file.as_ref()?;
    let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

/// Whether process `pid` holds a socket of `proto` bound to `port`
/// (Linux: the socket inodes of /proc/net/* against /proc/PID/fd; false
/// when either cannot be read).
fn holds_port(pid: u32, proto: Proto, port: u16) -> bool {
    let tables = match proto {
        Proto::Udp => ["udp", "udp6"],
        Proto::Tcp => ["tcp", "tcp6"],
    };
    let mut inodes = std::collections::HashSet::new();
    for t in tables {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{t}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port)
                && let Some(inode) = f.get(9)
            {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|l| l.to_str().is_some_and(|l| inodes.contains(l)))
    })
}

/// Redis (always, when configured) and the provisioning servers (with
/// `--probe`), concurrently on one runtime.
pub(super) fn remote(ctx: &mut Ctx, cfg: &Config, db: Option<&PrincipalDb>) {
    let mut redis: Vec<(&str, &str)> = Vec::new();
    if let Some(url) = cfg.mps.as_ref().and_then(|m| m.redis.as_deref()) {
        redis.push(("mps.redis", url));
    }
    if let Some(url) = cfg
        .certboot
        .as_ref()
        .and_then(|c| c.credentials_redis.as_deref())
    {
        redis.push(("certboot.credentials_redis", url));
    }
    let mut probes: Vec<(String, MpsTarget)> = Vec::new();
    let mut client = None;
    if let Some(m) = &cfg.mps {
        if !ctx.opts.probe {
            ctx.info(
                "mps.servers",
                "provisioning servers not probed (--probe sends each address one request)",
            );
        } else if let Some(db) = db {
            let skew = cfg.policy.clock_skew_secs as i64;
            // An unusable mps.kdc_principal is reported with the keytab.
            if let Ok(c) = crate::mps_directory::client_from_config(m, &cfg.realm, skew, db) {
                client = Some(Arc::new(c));
            }
            for s in &m.servers {
                match crate::mps_directory::server_target(s, &cfg.realm, db) {
                    Ok((fqdn, t)) => {
                        for a in &s.addresses {
                            let one = MpsTarget {
                                service: t.service.clone(),
                                key: t.key.clone(),
                                kvno: t.kvno,
                                addresses: vec![*a],
                            };
                            probes.push((format!("mps.servers {fqdn} {a}"), one));
                        }
                    }
                    Err(e) => ctx.info(
                        format!("mps.servers {}", s.fqdn),
                        format!("not probed: {e:#}"),
                    ),
                }
            }
        }
    }
    if redis.is_empty() && (probes.is_empty() || client.is_none()) {
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ctx.error("check", format!("cannot start a runtime: {e}"), "");
            return;
        }
    };
    let tries = cfg.mps.as_ref().map_or(1, |m| m.retries + 1);
    let per_try = cfg.mps.as_ref().map_or(0, |m| m.timeout_ms);
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (key, url) in redis {
            let (key, url) = (key.to_string(), url.to_string());
            let opts = cfg.redis.clone();
            set.spawn(async move {
                let r = ping(&url, &opts).await;
                let shown = crate::redis_conn::redacted(&url);
                (format!("{key} {shown}"), Remote::Redis(r))
            });
        }
        if let Some(client) = &client {
            for (subject, target) in probes {
                let client = client.clone();
                set.spawn(async move {
                    let facts = DeviceFacts {
                        mac: PROBE_MAC,
                        pubkey_hash: [0; 20],
                        revocation_time: 0,
                    };
                    let r = client.lookup(&target, &facts).await;
                    (subject, Remote::Mps(r.map(|_| ())))
                });
            }
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                results.push(r);
            }
        }
        results.sort_by(|a, b| a.0.cmp(&b.0));
        for (subject, r) in results {
            report(ctx, subject, r, tries, per_try);
        }
    });
}

enum Remote {
    Redis(Result<(), String>),
    Mps(Result<(), LookupError>),
}

fn report(ctx: &mut Ctx, subject: String, r: Remote, tries: u32, per_try: u64) {
    match r {
        Remote::Redis(Ok(())) => ctx.pass(format!("{subject} answered PING")),
        Remote::Redis(Err(e)) => ctx.error(
            subject,
            format!("did not answer PING: {e}"),
            "start Redis or correct the URL (host, port, password, database); the KDC runs \
             without it but loses what it shares",
        ),
        // An answer about the probe MAC, "unknown" or not, proves the
        // server is there and shares our key.
        Remote::Mps(Ok(()) | Err(LookupError::UnknownMac)) => {
            ctx.pass(format!("{subject} answered pkt-eue-7"))
        }
        Remote::Mps(Err(LookupError::Timeout)) => ctx.error(
            subject,
            format!(
                "no answer to a pkt-eue-7 request ({tries} tries of {per_try} ms): devices \
                 that name this server are refused"
            ),
            "check that the provisioning server runs at this address and that UDP from \
             this host reaches it (firewall), or correct mps.servers",
        ),
        Remote::Mps(Err(e)) => ctx.error(
            subject,
            format!("answered, but not usably: {e}"),
            "the server probably holds another key for mtaprovsrvr/<fqdn> (compare kvno and \
             enctypes with `pktc-kdc keytab list`), or check mps.enterprise and \
             mps.checksum_type",
        ),
    }
}

/// PING with a short timeout, with the `[redis]` AUTH and TLS settings
/// `serve` uses; the error as text.
async fn ping(url: &str, opts: &crate::config::RedisOptions) -> Result<(), String> {
    let attempt = async {
        let mut conn = crate::redis_conn::connect_once(url, opts, REDIS_TIMEOUT)
            .await
            .map_err(|e| format!("{e:#}"))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(REDIS_TIMEOUT, attempt).await {
        Ok(Ok(pong)) if pong == "PONG" => Ok(()),
        Ok(Ok(other)) => Err(format!("unexpected reply {other:?}")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no reply within {} s", REDIS_TIMEOUT.as_secs())),
    }
}

/// The Redis secrets and TLS settings: `mps.redis_secret_file` loads and
/// is long enough, secret files are not readable by others, and TLS
/// settings are not silently unused.
pub(super) fn redis_settings(ctx: &mut Ctx, cfg: &Config) {
    let mut urls: Vec<(&str, &str)> = Vec::new();
    if let Some(m) = &cfg.mps {
        if let Some(url) = m.redis.as_deref() {
            urls.push(("mps.redis", url));
        }
        if let (Some(_), Some(path)) = (&m.redis, &m.redis_secret_file) {
            let subject = format!("mps.redis_secret_file {}", path.display());
            match crate::shared_cache::SealKey::load(path) {
                Ok(_) => {
                    ctx.pass("shared-cache secret loaded");
                    private_file(ctx, &subject, path);
                }
                Err(e) => ctx.error(
                    subject,
                    format!("{e}: the KDC will not start"),
                    "write at least 32 random bytes to it (`openssl rand -hex 32 > FILE`, mode \
                     0600), the same on every replica",
                ),
            }
        }
    }
    if let Some(url) = cfg
        .certboot
        .as_ref()
        .and_then(|c| c.credentials_redis.as_deref())
    {
        urls.push(("certboot.credentials_redis", url));
    }
    if let Some(path) = &cfg.redis.password_file {
        private_file(
            ctx,
            &format!("redis.password_file {}", path.display()),
            path,
        );
    }
    for (key, url) in urls {
        if cfg.redis.has_tls_settings() && !crate::redis_conn::is_tls(url) {
            ctx.warn(
                format!("{key} {}", crate::redis_conn::redacted(url)),
                "[redis] has TLS settings but this URL is not rediss://: the connection is \
                 not encrypted",
                "use rediss:// (Redis with --tls-port)",
            );
        }
    }
}

/// A warning when every user may read a secret file (its owner and the
/// service's group may, as for the keytab).
fn private_file(ctx: &mut Ctx, subject: &str, path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o007 != 0
    {
        ctx.warn(
            subject,
            format!(
                "mode {:04o}: every user of this host may read the secret",
                m.permissions().mode() & 0o7777
            ),
            "chmod 600 it (or 640 with the service's group)",
        );
    }
}
