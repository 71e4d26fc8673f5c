//! The real `eue-sim` binary against a real `pktc-kdc serve` process on a
//! fresh dev realm: `provision` for every device over TCP (the RSA-1024 one
//! included) and for one over UDP, a device not in the manifest, and a
//! short `pkinit-load` in every request form (PacketCable, RFC 4556 RSA and DH).
//!
//! `pktc-kdc` is another package's binary, so Cargo does not build it for
//! `cargo test -p eue-sim`; it is looked up next to `eue-sim` in the target
//! directory (`cargo test --workspace` builds it; otherwise `cargo build -p pktc-kdc`).

use std::path::PathBuf;
use std::process::Command;

use testkit::DevKdc;

const SIM: &str = env!("CARGO_BIN_EXE_eue-sim");

fn kdc_binary() -> PathBuf {
    let dir = std::path::Path::new(SIM)
        .parent()
        .expect("eue-sim binary directory");
    let p = dir.join(format!("pktc-kdc{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.is_file(),
        "{} not found: these tests run the KDC binary of the kdc package; \
         build it first with `cargo build -p pktc-kdc` (or run `cargo test --workspace`)",
        p.display()
    );
    p
}

fn realm_dir(kdc: &DevKdc) -> PathBuf {
    kdc.realm_path("")
}

fn devices(kdc: &DevKdc) -> Vec<(String, u64)> {
    kdc.manifest["devices"]
        .as_array()
        .expect("manifest devices")
        .iter()
        .map(|d| {
            (
                d["mac"].as_str().expect("mac").to_string(),
                d["key_bits"].as_u64().expect("key_bits"),
            )
        })
        .collect()
}

/// Runs eue-sim; returns (success, stdout, stderr).
fn sim(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(SIM)
        .args(args)
        .output()
        .expect("running eue-sim");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_provisioned(out: &str, mac: &str, bits: u64, transport: &str, kdc: &DevKdc) {
    let service = kdc.get("service_principal");
    let realm = kdc.get("realm");
    let ctx = || format!("eue-sim provision output:\n{out}\nKDC log:\n{}", kdc.log());
    assert!(
        out.contains(&format!("device {mac} ")) && out.contains(&format!("(RSA-{bits})")),
        "device line: {}",
        ctx()
    );
    let lines: Vec<&str> = out.lines().collect();
    for (n, what, ticket) in [
        (
            1,
            "PacketCable PKINIT AS-REQ (PA-PK-AS-REQ-19 + PA-PROV-SRV-LOCATION mps.pktc.test)",
            service.clone(),
        ),
        (
            2,
            "RFC 4556 PKINIT AS-REQ (PA-PK-AS-REQ, RSA key transport)",
            format!("krbtgt/{realm}@{realm}"),
        ),
        (3, "TGS-REQ with the PKINIT TGT", service.clone()),
    ] {
        let i = lines
            .iter()
            .position(|l| l.starts_with(&format!("[{n}/3] ")))
            .unwrap_or_else(|| panic!("no step {n}: {}", ctx()));
        assert!(lines[i].contains(what), "step {n} form: {}", ctx());
        let sent = lines.get(i + 1).copied().unwrap_or_default();
        assert!(
            sent.contains(&format!("bytes over {transport}, reply ")) && sent.contains(" ms"),
            "step {n} sent/latency line: {}",
            ctx()
        );
        let result = lines.get(i + 2).copied().unwrap_or_default();
        assert!(
            result.contains(&format!("ok: ticket {ticket}, ticket etype "))
                && result.contains(" ends "),
            "step {n} result line: {}",
            ctx()
        );
    }
    assert!(
        out.contains("provisioned: all 3 steps succeeded"),
        "{}",
        ctx()
    );
}

#[test]
fn provision_every_device_over_tcp_and_one_over_udp() {
    let kdc = DevKdc::start(&kdc_binary());
    let dir = realm_dir(&kdc);
    let dir = dir.to_str().expect("utf-8 path");
    let devs = devices(&kdc);
    assert!(
        devs.iter().any(|(_, bits)| *bits == 1024),
        "the dev realm has an RSA-1024 device: {devs:?}"
    );
    for (mac, bits) in &devs {
        let (ok, out, err) = sim(&["provision", "--realm-dir", dir, "--device", mac]);
        assert!(ok, "eue-sim provision --device {mac} failed: {err}\n{out}");
        assert_provisioned(&out, mac, *bits, "TCP", &kdc);
    }
    // Lower case without separators picks the same device; UDP this time.
    let (mac, bits) = &devs[1];
    let bare = mac.replace(':', "").to_lowercase();
    let (ok, out, err) = sim(&[
        "provision",
        "--realm-dir",
        dir,
        "--device",
        &bare,
        "--transport",
        "udp",
    ]);
    assert!(ok, "eue-sim provision over UDP failed: {err}\n{out}");
    assert_provisioned(&out, mac, *bits, "UDP", &kdc);

    // Default device (the first), machine-readable.
    let (ok, out, err) = sim(&["provision", "--realm-dir", dir, "--json"]);
    assert!(ok, "eue-sim provision --json failed: {err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON summary");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["device"]["mac"], devs[0].0.as_str(), "{v}");
    assert_eq!(v["transport"], "TCP", "{v}");
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3, "{v}");
    for s in steps {
        assert_eq!(s["ok"], true, "{s}");
        assert!(s["sent_bytes"].as_u64().unwrap() > 0, "{s}");
        assert!(s["latency_ms"].as_f64().is_some(), "{s}");
    }
    assert_eq!(steps[0]["ticket"]["sname"], kdc.get("service_principal"));
    assert_eq!(
        steps[0]["ticket"]["session_key_etype"], "aes128-cts-hmac-sha1-96",
        "PacketCable devices offer aes128 then des3: {v}"
    );
    assert!(
        steps[1]["ticket"]["sname"]
            .as_str()
            .unwrap()
            .starts_with("krbtgt/"),
        "{v}"
    );
    assert_eq!(steps[2]["ticket"]["sname"], kdc.get("service_principal"));
    // Each PKINIT exchange and the TGS one were audited by the KDC.
    assert!(
        kdc.wait_audit(|l| l.contains("mta/") && l.contains("mtaprovsrvr")),
        "no audit line for a device's MPS ticket:\n{}",
        kdc.log()
    );
}

#[test]
fn provision_unknown_device_fails_clearly() {
    let kdc = DevKdc::start(&kdc_binary());
    let dir = realm_dir(&kdc);
    let dir = dir.to_str().expect("utf-8 path");
    let (ok, out, err) = sim(&[
        "provision",
        "--realm-dir",
        dir,
        "--device",
        "00-10-95-ff-ff-fe",
    ]);
    assert!(!ok, "provision of an unknown device succeeded: {out}");
    assert!(
        err.contains("device 00:10:95:FF:FF:FE is not in the manifest")
            && err.contains("00:10:95:00:00:01"),
        "stderr: {err}"
    );
    let (ok, _, err) = sim(&["provision", "--realm-dir", dir, "--device", "not-a-mac"]);
    assert!(!ok);
    assert!(err.contains("not a MAC address"), "stderr: {err}");
}

#[test]
fn pkinit_load_smoke_both_forms() {
    let kdc = DevKdc::start(&kdc_binary());
    let dir = realm_dir(&kdc);
    let dir = dir.to_str().expect("utf-8 path");
    for (form, seconds) in [("packetcable", "2"), ("rfc4556", "1"), ("rfc4556-dh", "1")] {
        let (ok, out, err) = sim(&[
            "pkinit-load",
            "--realm-dir",
            dir,
            "--form",
            form,
            "--seconds",
            seconds,
            "--warmup-seconds",
            "0.2",
            "--concurrency",
            "2",
            "--max-requests",
            "2000",
            "--verify-every",
            "5",
            "--json",
        ]);
        assert!(ok, "pkinit-load --form {form} failed: {err}\n{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
        assert_eq!(v["form"], form, "{v}");
        assert!(v["ok"].as_u64().unwrap() > 0, "no successful request: {v}");
        assert!(v["verified"].as_u64().unwrap() > 0, "nothing verified: {v}");
        assert_eq!(v["errors"], 0, "errors: {v}\nKDC log:\n{}", kdc.log());
        assert!(v["latency_us"]["p99"].as_u64().is_some(), "{v}");
    }
}

/// The load generators' CPU accounting against the real KDC process:
/// `tgs-load` and `pkinit-load` with `--kdc-pid` report the KDC's CPU per
/// request (positive, below the wall time per request times the cores), the
/// rate and the machine's busy share; a pid that is not running fails
/// before any load with a message naming `--kdc-pid`.
#[test]
fn load_reports_measure_the_kdc_process() {
    let kdc = DevKdc::start(&kdc_binary());
    let dir = realm_dir(&kdc);
    let dir = dir.to_str().expect("utf-8 path");
    let pid = kdc.pid().expect("running").to_string();
    let common = [
        "--realm-dir",
        dir,
        "--seconds",
        "1",
        "--warmup-seconds",
        "0.2",
    ];
    for cmd in [
        vec!["tgs-load", "--concurrency", "4", "--max-requests", "20000"],
        vec![
            "pkinit-load",
            "--concurrency",
            "2",
            "--max-requests",
            "2000",
        ],
    ] {
        let mut args = cmd.clone();
        args.extend(common);
        args.extend(["--kdc-pid", &pid, "--json"]);
        let (ok, out, err) = sim(&args);
        assert!(ok, "{cmd:?}: {err}\n{out}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON report");
        let ok_count = v["ok"].as_u64().unwrap();
        assert!(ok_count > 0, "{v}");
        assert_eq!(v["kdc_pid"].as_u64(), pid.parse().ok(), "{v}");
        let per_req = v["kdc_cpu_ms_per_req"].as_f64().expect("KDC CPU measured");
        let seconds = v["seconds"].as_f64().unwrap();
        let nproc = v["nproc"].as_f64().unwrap();
        assert!(per_req > 0.0, "{v}");
        assert!(
            per_req <= seconds * 1000.0 * nproc / ok_count as f64,
            "more KDC CPU than the machine has: {v}"
        );
        let rate = v["req_per_s"].as_f64().unwrap();
        assert!(
            (rate - ok_count as f64 / seconds).abs() < 1e-6 * rate.max(1.0),
            "{v}"
        );
        assert!(v["machine_cpu_busy"].as_f64().is_some(), "{v}");
    }
    let (ok, _, err) = sim(&["tgs-load", "--realm-dir", dir, "--kdc-pid", "999999999"]);
    assert!(!ok);
    assert!(err.contains("--kdc-pid"), "{err}");
}

/// `eue-sim bootstrap` for every device over the PacketCable TLS profile
/// (the RSA-1024 device included) and one over the modern profile; a
/// device not in the manifest fails with a clear message.
#[test]
fn bootstrap_every_device() {
    let kdc = DevKdc::start(&kdc_binary());
    let dir = realm_dir(&kdc);
    let dir = dir.to_str().unwrap();
    for (mac, _) in devices(&kdc) {
        let (ok, out, err) = sim(&["bootstrap", "--realm-dir", dir, "--device", &mac, "--json"]);
        assert!(ok, "bootstrap {mac}: {out}\n{err}\n{}", kdc.log());
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        assert_eq!(v["device"], mac.as_str());
        assert_eq!(v["status"], 200);
        assert_eq!(v["tls_version"], "TLSv1.2");
        assert_eq!(v["cipher"], "AES128-SHA");
        assert_eq!(v["creds_type"], "password");
        let hex = mac.replace(':', "").to_lowercase();
        assert_eq!(v["impi"], format!("{hex}@ims.pktc.test").as_str());
        assert!(v["credential_bytes"].as_u64().unwrap() > 0);
        assert!(
            !out.contains("\"credential\""),
            "the credential is never printed"
        );
    }
    let (ok, out, err) = sim(&["bootstrap", "--realm-dir", dir, "--profile", "modern"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("TLSv1.3"), "{out}");
    assert!(out.contains("not shown"), "{out}");

    let (ok, _, err) = sim(&[
        "bootstrap",
        "--realm-dir",
        dir,
        "--device",
        "00:10:95:99:99:99",
    ]);
    assert!(!ok);
    assert!(err.contains("not in the manifest"), "{err}");

    let (ok, out, err) = sim(&[
        "bootstrap-load",
        "--realm-dir",
        dir,
        "--seconds",
        "1",
        "--concurrency",
        "2",
        "--max-requests",
        "400",
        "--json",
    ]);
    assert!(ok, "bootstrap-load: {out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert!(v["ok"].as_u64().unwrap() > 0 && v["failed"] == 0, "{out}");
}
