//! Interoperability with the MIT krb5 tools (Debian package `krb5-user`):
//! `klist` reads keytabs we write, and `ktutil` writes keytabs we read.
//!
//! These tests fail (never skip) when a tool is missing.

use std::path::PathBuf;
use std::process::Command;

use testkit::{Pty, TempDir, require_tool};

use krb::keytab::{Keytab, KeytabEntry};
use krb::principal::{Principal, name_type};
use zeroize::Zeroizing;

fn klist() -> PathBuf {
    require_tool("klist", "krb5-user")
}

fn ktutil() -> PathBuf {
    require_tool("ktutil", "krb5-user")
}

/// An empty krb5.conf so that the host's configuration cannot interfere.
fn isolated(cmd: &mut Command, dir: &TempDir) {
    let conf = dir.path("krb5.conf");
    std::fs::write(&conf, "").unwrap();
    cmd.env("KRB5_CONFIG", &conf)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .env("TERM", "dumb");
}

fn key(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8 * 7)).collect()
}

/// (kvno, timestamp, principal, enctype name, key hex) as klist prints them.
type Row = (u32, String, String, String, String);

/// Parses `klist -k -t -e -K` output lines such as
/// `   3 01/01/70 00:00:00 host/a@R (aes128-cts-hmac-sha1-96)  (0x0011...)`.
fn parse_klist(out: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in out.lines() {
        let t = line.trim_start();
        let Some((kvno, rest)) = t.split_once(' ') else {
            continue;
        };
        let Ok(kvno) = kvno.parse::<u32>() else {
            continue;
        };
        let mut parts = rest.trim_start().splitn(3, ' ');
        let (date, time, rest) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let rest = rest.trim();
        let (princ, rest) = rest.split_once(" (").expect(line);
        let (etype, rest) = rest.split_once(')').expect(line);
        // MIT 1.20 prints weak enctypes as e.g. "DEPRECATED:des3-cbc-sha1".
        let etype = etype.strip_prefix("DEPRECATED:").unwrap_or(etype);
        let keyhex = rest
            .trim()
            .strip_prefix("(0x")
            .and_then(|k| k.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no key in klist line {line:?}"));
        rows.push((
            kvno,
            format!("{date} {time}"),
            princ.to_owned(),
            etype.to_owned(),
            keyhex.to_lowercase(),
        ));
    }
    rows
}

fn enctype_name(e: i32) -> &'static str {
    match e {
        16 => "des3-cbc-sha1",
        17 => "aes128-cts-hmac-sha1-96",
        18 => "aes256-cts-hmac-sha1-96",
        19 => "aes128-cts-hmac-sha256-128",
        20 => "aes256-cts-hmac-sha384-192",
        _ => panic!("no name for enctype {e}"),
    }
}

fn our_keytab() -> Keytab {
    let e = |name: &str, nt: i32, kvno: u32, enctype: i32, k: Vec<u8>| {
        let mut principal = Principal::parse(name, None).unwrap();
        principal.name_type = nt;
        KeytabEntry {
            principal,
            timestamp: 1_600_000_000,
            kvno,
            enctype,
            key: Zeroizing::new(k),
        }
    };
    let host = "host/kdc.example.com@EXAMPLE.COM";
    let ps = "mtaprovsrvr/ps.example.com@EXAMPLE.COM";
    Keytab {
        entries: vec![
            e(host, name_type::SRV_HST, 3, 17, key(16, 0x01)),
            e(host, name_type::SRV_HST, 3, 18, key(32, 0x02)),
            e(host, name_type::SRV_HST, 3, 19, key(16, 0x03)),
            e(host, name_type::SRV_HST, 3, 20, key(32, 0x04)),
            e(host, name_type::SRV_HST, 3, 16, key(24, 0x05)),
            e(ps, name_type::SRV_HST, 300, 18, key(32, 0x06)),
            e(ps, name_type::SRV_HST, 300, 17, key(16, 0x07)),
            e(
                "krbtgt/EXAMPLE.COM@EXAMPLE.COM",
                name_type::SRV_INST,
                70_000,
                18,
                key(32, 0x08),
            ),
            e(
                "df/[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]@PC.EXAMPLE",
                name_type::SRV_HST,
                256,
                17,
                key(16, 0x09),
            ),
        ],
    }
}

/// (a) MIT klist lists every entry we write, in order: kvno (including kvnos
/// above 255, which need the 32-bit field), timestamp, principal (including
/// the E-UE IPv6 form), enctype name and key bytes.
#[test]
fn mit_klist_reads_our_keytab() {
    let klist = klist();
    let dir = TempDir::new("klist");
    let path = dir.path("ours.keytab");
    let kt = our_keytab();
    kt.write_file(&path).unwrap();

    let mut cmd = Command::new(&klist);
    cmd.args(["-k", "-t", "-e", "-K"]).arg(&path);
    isolated(&mut cmd, &dir);
    let out = cmd.output().expect("run klist");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "klist failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Keytab name: FILE:{}", path.display())),
        "{stdout}"
    );
    let got = parse_klist(&stdout);
    let want: Vec<Row> = kt
        .entries
        .iter()
        .map(|e| {
            (
                e.kvno,
                // 1_600_000_000 in UTC, as klist prints it under LC_ALL=C.
                "09/13/20 12:26:40".to_owned(),
                e.principal.to_string(),
                enctype_name(e.enctype).to_owned(),
                hex::encode(&e.key[..]),
            )
        })
        .collect();
    assert_eq!(got, want, "klist output:\n{stdout}");
}

const PROMPT: &str = "ktutil:";

/// (b) Keys entered into MIT ktutil and written with `wkt` come back from
/// our reader with the same principal, kvno, enctype and key bytes; our
/// writer reproduces ktutil's file byte for byte.
#[test]
fn our_reader_reads_mit_ktutil_keytab() {
    let ktutil = ktutil();
    let dir = TempDir::new("ktutil");
    let path = dir.path("mit.keytab");
    let k1 = key(32, 0xA0);
    let k2 = key(16, 0x31);
    let k3 = key(32, 0x5C);
    let adds: [(&str, u32, &str, &[u8]); 3] = [
        (
            "host/kdc.example.com@EXAMPLE.COM",
            2,
            "aes256-cts-hmac-sha1-96",
            &k1,
        ),
        (
            "mtaprovsrvr/ps.example.com@EXAMPLE.COM",
            300,
            "aes128-cts-hmac-sha1-96",
            &k2,
        ),
        ("alice@EXAMPLE.COM", 7, "aes256-cts-hmac-sha384-192", &k3),
    ];

    let mut pty = Pty::spawn(&ktutil, |c| isolated(c, &dir));
    pty.expect(PROMPT);
    for (name, kvno, etype, k) in adds {
        pty.send(&format!("addent -key -p {name} -k {kvno} -e {etype}"));
        pty.expect("(hex): ");
        pty.send(&hex::encode(k));
        pty.expect(PROMPT);
    }
    pty.send(&format!("wkt {}", path.display()));
    pty.expect(PROMPT);
    pty.send("quit");
    pty.finish();

    let bytes = std::fs::read(&path).expect("ktutil wrote no keytab");
    let kt = Keytab::parse(&bytes).unwrap();
    assert_eq!(kt.entries.len(), adds.len(), "{kt:?}");
    for (e, (name, kvno, etype, k)) in kt.entries.iter().zip(adds) {
        let want = Principal::parse(name, None).unwrap();
        assert!(e.principal.same_name(&want), "{:?} vs {name}", e.principal);
        assert_eq!(e.principal.to_string(), name);
        assert_eq!(e.principal.name_type, name_type::PRINCIPAL);
        assert_eq!(e.kvno, kvno, "{name}");
        assert_eq!(enctype_name(e.enctype), etype);
        assert_eq!(&e.key[..], k, "{name}");
    }
    let ps = Principal::parse(adds[1].0, None).unwrap();
    assert_eq!(kt.find(&ps, 17, None).unwrap().kvno, 300);
    // kvno 300 is stored as vno8 = 300 & 0xff plus the 32-bit field.
    assert_eq!(kt.to_bytes().unwrap(), bytes, "re-serialisation differs");
}

/// (c) ktutil reads our keytab (`rkt`) and writes it back (`wkt`)
/// unchanged byte for byte, except that MIT stamps every entry with the
/// time of writing.
#[test]
fn mit_ktutil_rewrites_our_keytab_unchanged() {
    let ktutil = ktutil();
    let dir = TempDir::new("ktutil-rkt");
    let ours = dir.path("ours.keytab");
    let theirs = dir.path("theirs.keytab");
    let kt = our_keytab();
    kt.write_file(&ours).unwrap();

    let mut pty = Pty::spawn(&ktutil, |c| isolated(c, &dir));
    pty.expect(PROMPT);
    pty.send(&format!("rkt {}", ours.display()));
    pty.expect(PROMPT);
    pty.send(&format!("wkt {}", theirs.display()));
    pty.expect(PROMPT);
    pty.send("quit");
    pty.finish();

    let mit = std::fs::read(&theirs).expect("ktutil wrote no keytab");
    let parsed = Keytab::parse(&mit).unwrap();
    assert_eq!(parsed.entries.len(), kt.entries.len());
    let mut expected = kt.clone();
    for (e, m) in expected.entries.iter_mut().zip(&parsed.entries) {
        e.timestamp = m.timestamp;
    }
    assert_eq!(mit, expected.to_bytes().unwrap());
}
