//! `deploy/` checked against the product, host side: the systemd unit
//! verifies with `systemd-analyze` (and stays hardened), the example config
//! is a valid `pktc-kdc` config, and the Containerfile agrees with the unit
//! and the defaults. Kubernetes: deploy_kubernetes.rs; Prometheus, alerts,
//! dashboard and metrics docs: deploy_prometheus.rs.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{KDC, entrypoint_config_path, read, repo};
use pktc_kdc::config::Config;
use testkit::{TempDir, require_tool};

// ------------------------------------------------------------------ systemd

const UNIT: &str = "deploy/systemd/pktc-kdc.service";
const INSTALLED_BINARY: &str = "/usr/bin/pktc-kdc";

/// `Key=value` lines of the unit, in order (comments and sections dropped).
fn unit_directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';', '[']))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let text = read(UNIT);
    let directives = unit_directives(&text);
    let get = |key: &str| -> Vec<&str> {
        directives
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        match get(key).as_slice() {
            [v] => v,
            other => panic!("{UNIT}: expected one {key}=, found {other:?}"),
        }
    };
    assert_eq!(
        one("ExecStart"),
        "/usr/bin/pktc-kdc serve --config /etc/pktc-kdc/config.toml"
    );
    assert_eq!(
        one("ExecStartPre"),
        "/usr/bin/pktc-kdc check --errors-only --config /etc/pktc-kdc/config.toml"
    );
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("Restart"), "on-failure");
    // Port 88 is the only privilege.
    assert_eq!(one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("ConfigurationDirectory", "pktc-kdc"),
        ("RuntimeDirectory", "pktc-kdc"),
    ] {
        assert_eq!(one(key), want, "{UNIT}: {key}");
    }
    assert!(
        get("SystemCallFilter").contains(&"@system-service"),
        "{UNIT}: SystemCallFilter=@system-service"
    );
    // The example config only writes where the sandbox lets it.
    let cfg: Config = toml::from_str(&read("deploy/systemd/config.toml"))
        .unwrap_or_else(|e| panic!("deploy/systemd/config.toml: {e}"));
    if let Some(pid) = &cfg.admin.pid_file {
        assert!(
            pid.starts_with("/run/pktc-kdc/"),
            "pid_file {pid:?} is outside RuntimeDirectory"
        );
    }
    assert!(
        matches!(cfg.log.audit.as_str(), "stdout" | "stderr" | "off")
            || cfg.log.audit.starts_with("/var/log/pktc-kdc/"),
        "log.audit {:?} is outside LogsDirectory",
        cfg.log.audit
    );

    // systemd-analyze verify needs the ExecStart binaries to exist: a copy
    // of the unit pointing at the binary under test.
    let analyze = require_tool("systemd-analyze", "systemd");
    let dir = TempDir::new("deploy-unit");
    let unit = dir.path("pktc-kdc.service");
    assert!(text.contains(INSTALLED_BINARY));
    std::fs::write(&unit, text.replace(INSTALLED_BINARY, KDC)).expect("write unit");
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("running systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown keys and bad values are warnings with exit code 0: any line
    // about our unit fails the test.
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("pktc-kdc.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify {UNIT}:\n{said}"
    );

    // And it stays hardened: systemd's own exposure score (0 best, 10 worst)
    // at most 2.0.
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("running systemd-analyze security");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{UNIT}: exposure above 2.0:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn example_systemd_config_is_a_valid_config() {
    // Config::load: deny_unknown_fields, path resolution and validate().
    let cfg = Config::load(&repo().join("deploy/systemd/config.toml"))
        .unwrap_or_else(|e| panic!("deploy/systemd/config.toml: {e:#}"));
    assert!(cfg.listen.udp.iter().all(|a| a.port() == 88));
    assert!(cfg.listen.tcp.iter().all(|a| a.port() == 88));
    assert!(cfg.pkinit.is_some() && cfg.mps.is_some() && cfg.certboot.is_some());
    assert!(!cfg.metrics.listen.is_empty());
}

#[test]
fn containerfile_matches_the_unit_and_the_defaults() {
    let file = read("deploy/container/Containerfile");
    assert_eq!(entrypoint_config_path(), "/etc/pktc-kdc/config.toml");
    let froms: Vec<&str> = file.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: build and runtime");
    assert!(
        froms[0].contains("rust:")
            && froms[0].contains("bookworm")
            && froms[0].ends_with(" AS build")
    );
    assert!(froms[1].contains("debian:bookworm-slim"));
    let expose: BTreeSet<&str> = file
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(str::split_whitespace)
        .collect();
    for p in ["88/udp", "88/tcp", "8443/tcp", "9188/tcp"] {
        assert!(expose.contains(p), "EXPOSE {p}");
    }
    let user = file
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    // 9188 is the metrics default.
    assert_eq!(
        pktc_kdc::config::MetricsConfig::default().listen[0].port(),
        9188
    );
}
