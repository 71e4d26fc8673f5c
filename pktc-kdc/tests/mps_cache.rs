//! The MPS answer cache against real peers: MIT kinit (PKINIT), the dev
//! realm's provisioning-server stand-in (`pktc-kdc mps-responder`) and a
//! real redis-server.
//!
//! * a cached answer that would refuse a device is checked with the
//!   provisioning server again, so a moved or newly added device gets its
//!   ticket at once, and a flood of refused requests costs at most one
//!   query per MAC per `mps.recheck_interval_secs`;
//!   the re-check's answer replaces the one in Redis, which a second
//!   replica then uses;
//! * `pktc-kdc mps forget` drops a device from one replica and Redis;
//! * values in Redis that the KDC did not seal are ignored;
//! * AUTH and TLS apply to every Redis connection.

use std::path::Path;
use std::time::{Duration, Instant};

use testkit::{DevKdc, Redis, TempDir, wait_until};

const KDC: &str = env!("CARGO_BIN_EXE_pktc-kdc");
const DEVICE0: &str = "00:10:95:00:00:01";
const DEVICE0_KEY: &str = "pktc-kdc:mps:001095000001";

/// Edits the stand-in's device table and waits until it has re-read it.
fn edit_table(kdc: &DevKdc, edit: impl FnOnce(&str) -> String) {
    let path = kdc.realm_path("mps-table.toml");
    let before = std::fs::read_to_string(&path).unwrap();
    let after = edit(&before);
    assert_ne!(before, after, "the edit changed nothing");
    let reloads = kdc.mps_log().matches("device table reloaded").count();
    std::fs::write(&path, after).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while kdc.mps_log().matches("device table reloaded").count() == reloads {
        assert!(
            Instant::now() < deadline,
            "table not reloaded:\n{}",
            kdc.mps_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sets `[mps] key = value` in config.toml text (a key the dev config has).
fn set_mps(cfg: &mut String, key: &str, value: &str) {
    let start = cfg.find(&format!("\n{key} = ")).expect(key) + 1;
    let end = start + cfg[start..].find('\n').unwrap();
    cfg.replace_range(start..end, &format!("{key} = {value}"));
}

/// A dev realm whose KDC shares answers through `redis`.
fn with_redis(redis: &Redis, extra: impl FnOnce(&mut String)) -> DevKdc {
    let url = redis.url();
    DevKdc::start_with(Path::new(KDC), |cfg| {
        *cfg = cfg.replacen("[mps]\n", &format!("[mps]\nredis = \"{url}\"\n"), 1);
        extra(cfg);
    })
}

fn kinit(kdc: &DevKdc, conf: &Path, device: usize, principal: Option<&str>) -> (bool, String) {
    let tmp = TempDir::new("mps-cache-cc");
    kdc.kinit_device_with(conf, device, principal, &[], &tmp.path("cc"))
}

/// The device moves to another address (IPv4 → IPv6) and a device is
/// added while "unknown MAC" is cached: MIT kinit succeeds at once, not
/// after `cache_ttl_secs` (300 s) or `negative_cache_secs` (30 s).
#[test]
fn a_moved_or_added_device_gets_its_ticket_at_once() {
    let kdc = DevKdc::start_prepared(Path::new(KDC), |dir, cfg| {
        set_mps(cfg, "recheck_interval_secs", "1");
        assert!(cfg.contains("cache_ttl_secs = 300") && cfg.contains("negative_cache_secs = 30"));
        // Device 0 has an IPv4 lease only; device 1 is not known yet.
        let table = std::fs::read_to_string(dir.join("mps-table.toml")).unwrap();
        let table = table.replacen("00:10:95:00:00:02", "00:10:95:77:77:02", 1);
        std::fs::write(dir.join("mps-table.toml"), table).unwrap();
    });
    let v4 = kdc.realm_path(&kdc.get("krb5_conf"));
    // A krb5.conf naming the KDC's IPv6 address only.
    let v6 = kdc.realm_path("krb5-ipv6.conf");
    let text = std::fs::read_to_string(&v4).unwrap();
    let only_v6: String = text
        .lines()
        .filter(|l| !l.contains("kdc = 127.0.0.1"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        only_v6.contains("kdc = [::1]"),
        "no IPv6 KDC address:\n{text}"
    );
    std::fs::write(&v6, only_v6).unwrap();

    let (ok, out) = kinit(&kdc, &v4, 0, None);
    assert!(ok, "{out}\n{}", kdc.log());
    let (ok, _) = kinit(&kdc, &v4, 1, None);
    assert!(!ok, "device 1 is not in the table yet");
    let first = Instant::now();
    assert_eq!(kdc.mps_answers(2), 2);

    // The DHCP lease moves device 0 to ::1, and device 1 gets one.
    edit_table(&kdc, |t| {
        t.replacen("addresses = [\"127.0.0.1\"]", "addresses = [\"::1\"]", 1)
            .replacen("00:10:95:77:77:02", "00:10:95:00:00:02", 1)
    });
    // Answers younger than recheck_interval_secs are final.
    std::thread::sleep(Duration::from_secs(1).saturating_sub(first.elapsed()));
    let (ok, out) = kinit(&kdc, &v6, 0, None);
    assert!(ok, "moved device refused:\n{out}\n{}", kdc.log());
    let (ok, out) = kinit(&kdc, &v4, 1, None);
    assert!(ok, "added device refused:\n{out}\n{}", kdc.log());
    assert_eq!(kdc.mps_answers(4), 4, "one re-check each");
    assert_eq!(
        kdc.metric("pktc_mps_rechecks_total{outcome=\"accepted\"}"),
        2.0
    );
    assert!(
        kdc.wait_audit(|l| l.contains("exchange=\"lookup\"") && l.contains("recheck=\"accepted\""))
    );
    // The fresh answer replaced the cached one: the next request is a hit.
    let (ok, _) = kinit(&kdc, &v6, 0, None);
    assert!(ok);
    assert_eq!(kdc.mps_answers(4), 4);
}

/// MIT kinit from an address the provisioning server does not give the
/// device, again and again: the server hears about the MAC at most once
/// per `recheck_interval_secs` (3 s), counted at the stand-in.
#[test]
fn a_flood_of_refused_requests_costs_one_mps_query_per_interval() {
    let interval = 3.0;
    let kdc = DevKdc::start_prepared(Path::new(KDC), |dir, cfg| {
        set_mps(cfg, "recheck_interval_secs", "3");
        let table = std::fs::read_to_string(dir.join("mps-table.toml")).unwrap();
        let table = table.replacen(
            "addresses = [\"127.0.0.1\"]",
            "addresses = [\"10.9.9.9\"]",
            1,
        );
        std::fs::write(dir.join("mps-table.toml"), table).unwrap();
    });
    let conf = kdc.realm_path(&kdc.get("krb5_conf"));
    let started = Instant::now();
    let flood = 20;
    for _ in 0..flood {
        let (ok, out) = kinit(&kdc, &conf, 0, None);
        assert!(!ok, "{out}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The KDC counts its questions before it answers; the stand-in logs
    // each answer just after sending it.
    let asked = kdc.metric("pktc_cache_lookups_total{cache=\"mps\",result=\"miss\"}") as usize;
    assert_eq!(kdc.mps_answers(asked), asked, "questions asked = answered");
    // One question per started interval at most (the first lookup counts).
    let bound = (elapsed / interval).floor() as usize + 1;
    assert!(
        asked >= 1 && asked <= bound,
        "{asked} MPS queries in {elapsed:.1} s"
    );
    let suppressed = kdc.metric("pktc_mps_rechecks_total{outcome=\"suppressed\"}");
    let refused = kdc.metric("pktc_mps_rechecks_total{outcome=\"refused\"}");
    assert_eq!(
        (suppressed + refused) as usize,
        flood - 1,
        "every request after the first met a cached refusal"
    );
    assert_eq!(refused as usize, asked - 1);
    assert!(kdc.wait_audit(|l| l.contains("recheck=\"suppressed\"")));
    // Once the interval has passed, the next refusal is checked again.
    std::thread::sleep(Duration::from_secs_f64(interval));
    let (ok, _) = kinit(&kdc, &conf, 0, None);
    assert!(!ok);
    assert_eq!(kdc.mps_answers(asked + 1), asked + 1);
}

/// A re-check replaces the cached answer in Redis too: device 0's answer
/// (an old address) is shared through a real redis-server and refuses MIT
/// kinit; the stand-in's table moves the device to the address kinit
/// comes from; the re-check accepts, rewrites the Redis value, and a
/// second replica started afterwards accepts the device from that value
/// without asking the stand-in.
#[test]
fn a_recheck_replaces_the_answer_in_redis() {
    let redis = Redis::start();
    let a = DevKdc::start_prepared(Path::new(KDC), |dir, cfg| {
        let url = redis.url();
        *cfg = cfg.replacen("[mps]\n", &format!("[mps]\nredis = \"{url}\"\n"), 1);
        set_mps(cfg, "recheck_interval_secs", "1");
        let table = std::fs::read_to_string(dir.join("mps-table.toml")).unwrap();
        let table = table.replacen(
            "addresses = [\"127.0.0.1\"]",
            "addresses = [\"10.9.9.9\"]",
            1,
        );
        std::fs::write(dir.join("mps-table.toml"), table).unwrap();
    });
    let conf_a = a.realm_path(&a.get("krb5_conf"));

    // The old address: refused, and the answer is in Redis.
    let (ok, out) = kinit(&a, &conf_a, 0, None);
    assert!(
        !ok,
        "accepted at an address the MPS does not give it: {out}"
    );
    assert_eq!(a.mps_answers(1), 1);
    let old = redis.cli(&["GET", DEVICE0_KEY]);
    assert!(!old.is_empty(), "no shared answer for device 0");

    // The lease moves the device to 127.0.0.1. Refusals within the
    // re-check interval stand; the first one after it asks again.
    edit_table(&a, |t| {
        t.replacen(
            "addresses = [\"10.9.9.9\"]",
            "addresses = [\"127.0.0.1\"]",
            1,
        )
    });
    let accepted = wait_until(Duration::from_secs(20), || kinit(&a, &conf_a, 0, None).0);
    assert!(accepted, "never accepted after the move:\n{}", a.log());
    assert_eq!(a.mps_answers(2), 2, "one re-check");
    assert_eq!(
        a.metric("pktc_mps_rechecks_total{outcome=\"accepted\"}"),
        1.0
    );
    let new = redis.cli(&["GET", DEVICE0_KEY]);
    assert!(!new.is_empty(), "the re-check dropped the shared answer");
    assert_ne!(new, old, "the re-check left the old answer in Redis");

    // A replica that never asked: Redis's answer admits the device, and
    // the stand-in hears nothing more.
    let b = a.start_replica("b");
    let (ok, out) = kinit(&a, &b.krb5_conf, 0, None);
    assert!(ok, "replica refused the moved device: {out}\n{}", b.log());
    assert_eq!(a.mps_answers(3), 2, "the replica asked the stand-in");
    let from_redis = |l: &String| {
        l.contains("exchange=\"lookup\"")
            && l.contains(&format!("mac={DEVICE0}"))
            && l.contains("reason=\"hit\"")
            && l.contains("recheck=\"-\"")
    };
    assert!(
        wait_until(Duration::from_secs(5), || b
            .audit_lines()
            .iter()
            .any(from_redis)),
        "no cache-hit lookup on the replica:\n{}",
        b.log()
    );
}

/// `pktc-kdc mps forget` across two `serve` processes sharing a real
/// redis-server: it drops the device from the replica of its config and
/// from Redis, and nothing else.
#[test]
fn forget_drops_a_device_from_this_replica_and_redis() {
    let redis = Redis::start();
    let a = with_redis(&redis, |_| {});
    let b = a.start_replica("b");
    let conf_a = a.realm_path(&a.get("krb5_conf"));
    let forget = |config: &Path| {
        let out = std::process::Command::new(KDC)
            .args(["mps", "forget", DEVICE0, "--config"])
            .arg(config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "mps forget failed: {text}");
        text
    };

    // A asks the stand-in and shares the answer; B takes it from Redis.
    assert!(kinit(&a, &conf_a, 0, None).0, "{}", a.log());
    assert!(kinit(&a, &b.krb5_conf, 0, None).0, "{}", b.log());
    assert_eq!(a.mps_answers(1), 1);
    assert_eq!(redis.cli(&["EXISTS", DEVICE0_KEY]), "1");

    // The device is decommissioned. Cached answers that admit it stand.
    edit_table(&a, |t| t.replacen(DEVICE0, "00:10:95:77:77:01", 1));
    assert!(kinit(&a, &conf_a, 0, None).0);

    let out = forget(&a.realm_path("config.toml"));
    assert!(out.contains("redis: dropped 00:10:95:00:00:01"), "{out}");
    assert!(out.contains("this replica (pid"), "{out}");
    assert!(out.contains("dropped 00:10:95:00:00:01"), "{out}");
    assert_eq!(redis.cli(&["EXISTS", DEVICE0_KEY]), "0");
    assert!(
        a.wait_audit(|l| l.contains("exchange=\"admin\"") && l.contains("outcome=\"dropped\""))
    );
    // A asks the stand-in again: unknown now.
    assert!(!kinit(&a, &conf_a, 0, None).0);
    assert_eq!(a.mps_answers(2), 2);
    // B still holds its own memory entry: forget is per replica.
    assert!(kinit(&a, &b.krb5_conf, 0, None).0, "{}", b.log());
    let out = forget(&b.config);
    assert!(
        out.contains("redis: dropped"),
        "A's \"unknown\" entry: {out}"
    );
    assert!(out.contains("dropped 00:10:95:00:00:01"), "{out}");
    assert!(!kinit(&a, &b.krb5_conf, 0, None).0);
    assert_eq!(a.mps_answers(3), 3);
    // Nothing left to forget on B... but B just cached "unknown" again.
    let out = forget(&b.config);
    assert!(out.contains("redis: dropped"), "{out}");
    let out = forget(&b.config);
    assert!(
        out.contains("redis: no entry for 00:10:95:00:00:01"),
        "{out}"
    );
    assert!(out.contains("no entry for 00:10:95:00:00:01"), "{out}");
}

/// Values written into Redis by hand (or by a KDC with another secret, or
/// moved from another MAC's key) are ignored and the device is looked up
/// at the provisioning server: binding device 0's MAC to device 1's FQDN
/// through Redis does not get device 0 a ticket as device 1.
#[test]
fn values_the_kdc_did_not_seal_are_ignored() {
    let redis = Redis::start();
    let kdc = with_redis(&redis, |_| {});
    let conf = kdc.realm_path(&kdc.get("krb5_conf"));
    let victim = kdc.manifest["devices"][1]["principal"]
        .as_str()
        .unwrap()
        .to_string();
    let victim_fqdn = kdc.manifest["devices"][1]["fqdn"]
        .as_str()
        .unwrap()
        .to_string();
    let rejected = |reason: &str| {
        kdc.metric(&format!(
            "pktc_mps_cache_rejected_total{{reason=\"{reason}\"}}"
        ))
    };
    let forget = || {
        let out = std::process::Command::new(KDC)
            .args(["mps", "forget", DEVICE0, "--config"])
            .arg(kdc.realm_path("config.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // The old unauthenticated form, written by hand.
    redis.cli(&["SET", DEVICE0_KEY, &format!("+{victim_fqdn}|127.0.0.1,::1")]);
    let (ok, out) = kinit(&kdc, &conf, 0, Some(&victim));
    assert!(!ok, "a forged Redis value was trusted:\n{out}");
    assert_eq!(rejected("malformed"), 1.0);
    assert_eq!(kdc.mps_answers(1), 1, "looked up at the stand-in instead");
    assert!(kdc.wait_log(|l| l.contains("fails its check") && l.contains("reason=\"malformed\"")));

    // The sealed form, but sealed with another secret.
    forget();
    let tmp = TempDir::new("mps-cache-secret");
    std::fs::write(tmp.path("other"), "x".repeat(64)).unwrap();
    let other = pktc_kdc::shared_cache::SealKey::load(&tmp.path("other")).unwrap();
    let binding = fqdn_map::client::Binding {
        fqdn: victim_fqdn.clone(),
        addresses: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
    };
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let forged = other.seal(&[0, 0x10, 0x95, 0, 0, 1], expiry, Some(&binding));
    redis.cli(&["SET", DEVICE0_KEY, &forged]);
    assert!(!kinit(&kdc, &conf, 0, Some(&victim)).0);
    assert_eq!(rejected("unauthenticated"), 1.0);
    assert_eq!(kdc.mps_answers(2), 2);

    // A genuine value of device 1, copied to device 0's key.
    assert!(kinit(&kdc, &conf, 1, None).0, "{}", kdc.log());
    assert_eq!(kdc.mps_answers(3), 3);
    let genuine = redis.cli(&["GET", "pktc-kdc:mps:001095000002"]);
    assert!(genuine.starts_with("v1:"), "{genuine}");
    forget();
    redis.cli(&["SET", DEVICE0_KEY, &genuine]);
    assert!(!kinit(&kdc, &conf, 0, Some(&victim)).0);
    assert_eq!(rejected("unauthenticated"), 2.0);
    assert_eq!(kdc.mps_answers(4), 4);
    // Device 0 as itself is fine throughout.
    assert!(kinit(&kdc, &conf, 0, None).0);
}

/// A TLS-only redis-server (certificates from the openssl CLI, client
/// certificates required) with a password: the MPS cache and the certboot
/// credential store both reach it with `[redis]` settings, and `pktc-kdc
/// check` too; a wrong password is an error in `check`.
#[test]
fn tls_and_auth_apply_to_every_redis_connection() {
    let tmp = TempDir::new("redis-tls");
    let redis = Redis::start_secured(tmp.root(), "redis-pw-7");
    let s = redis.secured.as_ref().unwrap();
    std::fs::write(tmp.path("password"), "redis-pw-7\n").unwrap();
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let section = format!(
        "\n[redis]\npassword_file = \"{}\"\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        tmp.path("password").display(),
        s.ca.display(),
        s.client_cert.display(),
        s.client_key.display()
    );
    let kdc = with_redis(&redis, |cfg| {
        *cfg = cfg.replace(
            "credentials_file = \"certboot-credentials.toml\"",
            &format!("credentials_redis = \"{url}\""),
        );
        assert!(cfg.contains("credentials_redis"), "{cfg}");
        cfg.push_str(&section);
    });
    let check = |config: &Path| {
        let out = std::process::Command::new(KDC)
            .args(["check", "--json", "--config"])
            .arg(config)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let report = check(&kdc.realm_path("config.toml"));
    let passed = report["passed"].to_string();
    for key in ["mps.redis", "certboot.credentials_redis"] {
        assert!(
            passed.contains(&format!("{key} {url} answered PING")),
            "{key}: {report:#}"
        );
    }

    // The MPS cache writes over TLS with AUTH.
    let conf = kdc.realm_path(&kdc.get("krb5_conf"));
    assert!(kinit(&kdc, &conf, 0, None).0, "{}", kdc.log());
    assert!(redis.cli(&["GET", DEVICE0_KEY]).starts_with("v1:"));
    // (The first commands may time out while the TLS connection is made
    // on a loaded machine; the last one succeeded.)
    assert_eq!(kdc.metric("pktc_redis_up{use=\"mps_cache\"}"), 1.0);
    // The certboot store reads over TLS with AUTH: 404 without a hash, 200 with one.
    let dev = &kdc.manifest["devices"][0];
    let (cert, key) = (
        kdc.realm_path(dev["cert"].as_str().unwrap()),
        kdc.realm_path(dev["key"].as_str().unwrap()),
    );
    assert_eq!(kdc.certboot_status(&cert, &key), "404", "{}", kdc.log());
    let hash = certboot::creds::redis_key([0, 0x10, 0x95, 0, 0, 1]);
    redis.cli(&[
        "HSET",
        &hash,
        "impi",
        "t@ims.pktc.test",
        "impu",
        "sip:t@ims.pktc.test",
        "credential_type",
        "password",
        "credential",
        "pw",
    ]);
    assert_eq!(kdc.certboot_status(&cert, &key), "200", "{}", kdc.log());

    // A wrong password: check says so, naming the URL (never the password).
    std::fs::write(tmp.path("password"), "not-the-pw-93\n").unwrap();
    let report = check(&kdc.realm_path("config.toml"));
    let text = report.to_string();
    assert!(text.contains("did not answer PING"), "{report:#}");
    assert!(!text.contains("not-the-pw-93"), "{report:#}");
}

/// The dev realm's secret is private from its first byte (even under
/// `umask 000`); with `mps.redis`, a short or missing secret stops `serve`
/// with a clear error, and `pktc-kdc check` reports it.
#[test]
fn the_shared_cache_secret_is_checked_before_serving() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("mps-cache-secret-check");
    let realm = tmp.path("realm");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000 && exec {KDC} dev --init-only --port 0 --dir {}",
            realm.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = realm.join("mps-cache.secret");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    assert!(std::fs::read_to_string(&secret).unwrap().trim().len() >= 32);

    let config = realm.join("config.toml");
    let cfg = std::fs::read_to_string(&config).unwrap();
    let cfg = cfg.replacen("[mps]\n", "[mps]\nredis = \"redis://127.0.0.1:9/\"\n", 1);
    std::fs::write(&config, &cfg).unwrap();
    std::fs::write(&secret, "too-short\n").unwrap();
    let serve = std::process::Command::new(KDC)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success());
    assert!(
        err.contains("mps.redis_secret_file") && err.contains("at least 32"),
        "{err}"
    );
    let check = std::process::Command::new(KDC)
        .args(["check", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["severity"] == "error"
            && f["subject"]
                .as_str()
                .unwrap()
                .starts_with("mps.redis_secret_file")),
        "{report:#}"
    );
    // Without the key at all: a configuration error, for serve and check.
    std::fs::write(
        &config,
        cfg.replace("redis_secret_file = \"mps-cache.secret\"\n", ""),
    )
    .unwrap();
    let serve = std::process::Command::new(KDC)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(
        !serve.status.success() && err.contains("mps.redis needs mps.redis_secret_file"),
        "{err}"
    );
}

/// SIGUSR1 ends a process that does not handle it: `mps forget` checks
/// first, so a pid file naming an older pktc-kdc (here: `sleep`) gets an
/// error, not a dead service.
#[test]
fn forget_never_signals_a_process_without_a_handler() {
    let tmp = TempDir::new("mps-forget-old");
    let realm = tmp.path("realm");
    testkit::init_dev_realm(Path::new(KDC), &realm);
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(realm.join("pktc-kdc.pid"), format!("{}\n", sleeper.id())).unwrap();
    let out = std::process::Command::new(KDC)
        .args(["mps", "forget", DEVICE0, "--config"])
        .arg(realm.join("config.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("does not take admin requests"), "{err}");
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the process was signalled"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let leftovers: Vec<_> = std::fs::read_dir(&realm)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".request."))
        .collect();
    assert!(leftovers.is_empty(), "request files left behind");
}
