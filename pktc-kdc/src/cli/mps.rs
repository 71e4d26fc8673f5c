//! `pktc-kdc mps forget MAC --config F`: drops what is cached about a
//! device, from Redis (`mps.redis`, shared by the replicas) and from the
//! memory of the running service of that config (over the admin channel,
//! [`crate::admin`]), so its next request asks the provisioning server.
//! Other replicas keep their own memory entry until it expires or would
//! refuse a request (then they ask again anyway): run it on each replica
//! for a device that must stop working at once.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum MpsCommand {
    /// Drop a device's cached MAC → FQDN answer from Redis and from the
    /// running service of this config.
    Forget {
        /// Device MAC (`00:10:95:00:00:01`; case and separators free).
        mac: String,
        #[arg(long)]
        config: PathBuf,
    },
}

/// The admin request line for forgetting `mac`, and its parser.
pub fn forget_request(mac: [u8; 6]) -> String {
    format!("mps-forget {}", hex::encode(mac))
}

/// The MAC of an `mps-forget` request line.
pub fn parse_forget(line: &str) -> Option<[u8; 6]> {
    let hex = line.strip_prefix("mps-forget ")?;
    let bytes = hex::decode(hex).ok()?;
    bytes.try_into().ok()
}

pub fn run(cmd: MpsCommand) -> anyhow::Result<()> {
    match cmd {
        MpsCommand::Forget { mac, config } => forget(&mac, &config),
    }
}

fn forget(mac_text: &str, config: &std::path::Path) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let mps = cfg
        .mps
        .as_ref()
        .context("the config has no [mps]: nothing is cached about devices")?;
    let mac =
        certs::mac::parse_mac(mac_text).map_err(|e| anyhow::anyhow!("MAC {mac_text:?}: {e}"))?;
    let shown = certs::format_mac(mac);
    let mut failures = Vec::new();
    // Redis first: the replica must not refill its memory from Redis.
    if let Some(url) = &mps.redis {
        match forget_in_redis(url, &cfg, mac) {
            Ok(true) => println!("redis: dropped {shown}"),
            Ok(false) => println!("redis: no entry for {shown}"),
            Err(e) => failures.push(format!("redis: {e:#}")),
        }
    }
    match crate::admin::request(&cfg, &forget_request(mac), Duration::from_secs(5)) {
        Ok((pid, reply)) => match reply.as_str() {
            "ok dropped" => println!("this replica (pid {pid}): dropped {shown}"),
            "ok absent" => println!("this replica (pid {pid}): no entry for {shown}"),
            other => failures.push(format!("this replica (pid {pid}): {other}")),
        },
        Err(e) => failures.push(format!("this replica: {e:#}")),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failures.join("; "))
    }
}

/// DEL of the device's key; whether there was one.
fn forget_in_redis(url: &str, cfg: &Config, mac: [u8; 6]) -> anyhow::Result<bool> {
    let timeout = Duration::from_secs(2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    rt.block_on(async {
        let mut conn = crate::redis_conn::connect_once(url, &cfg.redis, timeout).await?;
        let del = redis::AsyncCommands::del::<_, usize>(&mut conn, crate::shared_cache::key(&mac));
        let n = tokio::time::timeout(timeout, del)
            .await
            .map_err(|_| anyhow::anyhow!("no reply within {timeout:?}"))??;
        Ok(n > 0)
    })
}

/// The service side of an admin request line.
pub fn handle_request(
    line: &str,
    directory: Option<&dyn kdc::directory::DeviceDirectory>,
) -> String {
    let Some(mac) = parse_forget(line) else {
        return "error unknown request".to_string();
    };
    let Some(directory) = directory else {
        return "error this service has no device directory ([pkinit])".to_string();
    };
    let dropped = directory.forget(&mac);
    tracing::info!(
        target: "audit",
        exchange = "admin",
        action = "mps-forget",
        mac = %certs::format_mac(mac),
        outcome = if dropped { "dropped" } else { "absent" },
    );
    if dropped { "ok dropped" } else { "ok absent" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let mac = [0, 0x10, 0x95, 0, 0, 1];
        assert_eq!(forget_request(mac), "mps-forget 001095000001");
        assert_eq!(parse_forget(&forget_request(mac)), Some(mac));
        for bad in [
            "mps-forget 0010950000",
            "mps-forget zz1095000001",
            "other",
            "",
        ] {
            assert_eq!(parse_forget(bad), None, "{bad}");
        }
        assert_eq!(handle_request("rm -rf /", None), "error unknown request");
    }
}
