//! MIT keytab format: round trips, 0x501, holes and hostile input.

use krb::keytab::{Keytab, KeytabEntry, KeytabError};
use krb::principal::{Principal, PrincipalError, name_type};
use zeroize::Zeroizing;

fn entry(name: &str, kvno: u32, enctype: i32, key: &[u8]) -> KeytabEntry {
    KeytabEntry {
        principal: Principal::parse(name, None).unwrap(),
        timestamp: 1_700_000_000,
        kvno,
        enctype,
        key: Zeroizing::new(key.to_vec()),
    }
}

fn sample() -> Keytab {
    Keytab {
        entries: vec![
            entry("host/a.example.com@EXAMPLE.COM", 3, 18, &[0x11; 32]),
            entry("host/a.example.com@EXAMPLE.COM", 3, 17, &[0x22; 16]),
            entry("krbtgt/EXAMPLE.COM@EXAMPLE.COM", 300, 16, &[0x33; 24]),
            entry("alice@EXAMPLE.COM", 1, 20, &[0x44; 32]),
        ],
    }
}

fn same(a: &KeytabEntry, b: &KeytabEntry) -> bool {
    a.principal == b.principal
        && a.timestamp == b.timestamp
        && a.kvno == b.kvno
        && a.enctype == b.enctype
        && *a.key == *b.key
}

fn assert_same(a: &Keytab, b: &Keytab) {
    assert_eq!(a.entries.len(), b.entries.len());
    for (x, y) in a.entries.iter().zip(&b.entries) {
        assert!(same(x, y), "{x:?} != {y:?}");
    }
}

/// Hand-assembled 0x502 record for `host/a@R`, kvno 5, enctype 17.
fn manual_502_entry(with_vno32: Option<u32>, flags: bool) -> Vec<u8> {
    let mut e = Vec::new();
    e.extend_from_slice(&2u16.to_be_bytes());
    e.extend_from_slice(&[0, 1, b'R']);
    e.extend_from_slice(&[0, 4, b'h', b'o', b's', b't']);
    e.extend_from_slice(&[0, 1, b'a']);
    e.extend_from_slice(&3u32.to_be_bytes()); // SRV_HST
    e.extend_from_slice(&0x01020304u32.to_be_bytes());
    e.push(5);
    e.extend_from_slice(&17u16.to_be_bytes());
    e.extend_from_slice(&[0, 16]);
    e.extend_from_slice(&[0xAB; 16]);
    if let Some(v) = with_vno32 {
        e.extend_from_slice(&v.to_be_bytes());
    }
    if flags {
        e.extend_from_slice(&0u32.to_be_bytes());
    }
    e
}

fn record(body: &[u8]) -> Vec<u8> {
    let mut r = (body.len() as i32).to_be_bytes().to_vec();
    r.extend_from_slice(body);
    r
}

#[test]
fn round_trip() {
    let kt = sample();
    let bytes = kt.to_bytes().unwrap();
    assert_eq!(&bytes[..2], &[5, 2]);
    let back = Keytab::parse(&bytes).unwrap();
    assert_same(&kt, &back);
    assert_eq!(back.to_bytes().unwrap(), bytes);
    assert_eq!(back.entries[2].principal.name_type, name_type::SRV_INST);
}

#[test]
fn empty_keytab() {
    let kt = Keytab::new();
    assert_eq!(kt.to_bytes().unwrap(), [5, 2]);
    assert!(Keytab::parse(&[5, 2]).unwrap().entries.is_empty());
}

#[test]
fn exact_layout_of_written_entry() {
    let kt = Keytab {
        entries: vec![KeytabEntry {
            principal: Principal::new(3, vec!["host".into(), "a".into()], "R"),
            timestamp: 0x01020304,
            kvno: 5,
            enctype: 17,
            key: Zeroizing::new(vec![0xAB; 16]),
        }],
    };
    let mut want = vec![5, 2];
    want.extend(record(&manual_502_entry(Some(5), false)));
    assert_eq!(kt.to_bytes().unwrap(), want);
}

#[test]
fn vno32_overrides_vno8_unless_zero() {
    for (vno32, flags, want) in [
        (None, false, 5),
        (Some(0), false, 5),
        (Some(0), true, 5),
        (Some(261), false, 261),
        (Some(261), true, 261),
    ] {
        let mut bytes = vec![5, 2];
        bytes.extend(record(&manual_502_entry(vno32, flags)));
        let kt = Keytab::parse(&bytes).unwrap();
        assert_eq!(kt.entries[0].kvno, want, "{vno32:?} {flags}");
        assert_eq!(kt.entries[0].principal.name_type, 3);
        assert_eq!(kt.entries[0].timestamp, 0x01020304);
    }
}

#[test]
fn kvno_above_255_round_trips() {
    let kt = Keytab {
        entries: vec![
            entry("a@R", 256, 18, &[1; 32]),
            entry("b@R", 70000, 17, &[2; 16]),
        ],
    };
    let back = Keytab::parse(&kt.to_bytes().unwrap()).unwrap();
    assert_same(&kt, &back);
}

#[test]
fn record_padding_is_ignored() {
    let mut body = manual_502_entry(Some(5), false);
    body.extend_from_slice(&[0; 3]); // fewer than 4 bytes of padding
    let mut bytes = vec![5, 2];
    bytes.extend(record(&body));
    assert_eq!(Keytab::parse(&bytes).unwrap().entries[0].kvno, 5);
}

#[test]
fn parse_0x501() {
    // Version 1: the count includes the realm and there is no name type.
    let mut e = Vec::new();
    e.extend_from_slice(&3u16.to_be_bytes());
    e.extend_from_slice(&[0, 1, b'R']);
    e.extend_from_slice(&[0, 4, b'h', b'o', b's', b't']);
    e.extend_from_slice(&[0, 1, b'a']);
    e.extend_from_slice(&7u32.to_be_bytes());
    e.push(9);
    e.extend_from_slice(&16u16.to_be_bytes());
    e.extend_from_slice(&[0, 24]);
    e.extend_from_slice(&[0xCD; 24]);
    let mut bytes = vec![5, 1];
    bytes.extend(record(&e));
    let kt = Keytab::parse(&bytes).unwrap();
    assert_eq!(kt.entries.len(), 1);
    let x = &kt.entries[0];
    assert_eq!(x.principal.components, ["host", "a"]);
    assert_eq!(x.principal.realm, "R");
    assert_eq!(x.principal.name_type, name_type::UNKNOWN);
    assert_eq!((x.timestamp, x.kvno, x.enctype), (7, 9, 16));
    assert_eq!(*x.key, [0xCD; 24]);

    // A 0x501 count of zero cannot include the realm.
    let mut bad = vec![5, 1];
    let mut z = e.clone();
    z[..2].copy_from_slice(&0u16.to_be_bytes());
    bad.extend(record(&z));
    assert!(matches!(
        Keytab::parse(&bad),
        Err(KeytabError::BadComponentCount)
    ));
}

#[test]
fn holes_are_skipped() {
    let kt = sample();
    let bytes = kt.to_bytes().unwrap();
    let mut holed = vec![5, 2];
    holed.extend_from_slice(&(-10i32).to_be_bytes());
    holed.extend_from_slice(&[0; 10]);
    holed.extend_from_slice(&bytes[2..]);
    holed.extend_from_slice(&(-3i32).to_be_bytes());
    holed.extend_from_slice(&[0; 3]);
    assert_same(&kt, &Keytab::parse(&holed).unwrap());

    // A hole running past the end of the file.
    let mut short = vec![5, 2];
    short.extend_from_slice(&(-10i32).to_be_bytes());
    short.extend_from_slice(&[0; 9]);
    assert!(matches!(Keytab::parse(&short), Err(KeytabError::Truncated)));

    // i32::MIN has no positive counterpart.
    let mut min = vec![5, 2];
    min.extend_from_slice(&i32::MIN.to_be_bytes());
    assert!(matches!(Keytab::parse(&min), Err(KeytabError::BadHole)));
}

#[test]
fn zero_length_ends_file() {
    let kt = sample();
    let mut bytes = kt.to_bytes().unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes.extend_from_slice(b"anything after the end marker");
    assert_same(&kt, &Keytab::parse(&bytes).unwrap());
}

#[test]
fn bad_versions() {
    for v in [[5u8, 0], [5, 3], [4, 2], [0, 0]] {
        assert!(matches!(
            Keytab::parse(&v),
            Err(KeytabError::BadVersion(a, b)) if [a, b] == v
        ));
    }
    assert!(matches!(Keytab::parse(&[]), Err(KeytabError::Truncated)));
    assert!(matches!(Keytab::parse(&[5]), Err(KeytabError::Truncated)));
}

/// Every prefix of a valid file either fails or, when it ends exactly on a
/// record boundary, is the matching shorter keytab. Nothing panics.
#[test]
fn every_truncation() {
    let kt = sample();
    let bytes = kt.to_bytes().unwrap();
    // Record boundaries: offsets where a whole number of records ends.
    let mut boundaries = vec![2usize];
    let mut off = 2;
    while off < bytes.len() {
        let len = i32::from_be_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        off += 4 + len;
        boundaries.push(off);
    }
    assert_eq!(boundaries.len(), kt.entries.len() + 1);
    for cut in 0..bytes.len() {
        let r = Keytab::parse(&bytes[..cut]);
        match boundaries.iter().position(|&b| b == cut) {
            Some(n) => {
                let got = r.unwrap_or_else(|e| panic!("prefix {cut}: {e}"));
                assert_eq!(got.entries.len(), n, "prefix {cut}");
                for (x, y) in got.entries.iter().zip(&kt.entries) {
                    assert!(same(x, y));
                }
            }
            None => assert!(r.is_err(), "prefix {cut} must fail"),
        }
    }
}

/// Truncating the entry inside its record (record length shrunk to match)
/// is an error at every cut before the key ends.
#[test]
fn every_truncation_inside_record() {
    let body = manual_502_entry(None, false);
    for cut in 0..body.len() {
        let mut bytes = vec![5, 2];
        bytes.extend(record(&body[..cut]));
        let r = Keytab::parse(&bytes);
        if cut == 0 {
            // A zero record length is the end-of-file marker.
            assert!(r.unwrap().entries.is_empty());
        } else {
            assert!(
                matches!(r, Err(KeytabError::EntryOverrun)),
                "cut {cut}: {r:?}"
            );
        }
    }
}

#[test]
fn record_length_larger_than_file() {
    let body = manual_502_entry(Some(5), false);
    for len in [body.len() as i32 + 1, 0x7fff_ffff] {
        let mut bytes = vec![5, 2];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&body);
        assert!(matches!(Keytab::parse(&bytes), Err(KeytabError::Truncated)));
    }
}

#[test]
fn huge_component_counts() {
    for count in [17u16, 1000, u16::MAX] {
        let mut body = manual_502_entry(Some(5), false);
        body[..2].copy_from_slice(&count.to_be_bytes());
        let mut bytes = vec![5, 2];
        bytes.extend(record(&body));
        assert!(matches!(
            Keytab::parse(&bytes),
            Err(KeytabError::Principal(PrincipalError::TooManyComponents(_)))
        ));
    }
    // A count within bounds but larger than the data present.
    let mut body = manual_502_entry(Some(5), false);
    body[..2].copy_from_slice(&16u16.to_be_bytes());
    let mut bytes = vec![5, 2];
    bytes.extend(record(&body));
    assert!(Keytab::parse(&bytes).is_err());
    // Zero components.
    let mut body = vec![0, 0, 0, 1, b'R'];
    body.extend_from_slice(&manual_502_entry(None, false)[14..]);
    let mut bytes = vec![5, 2];
    bytes.extend(record(&body));
    assert!(Keytab::parse(&bytes).is_err());
}

#[test]
fn hostile_strings() {
    // Component length running past the record, non-UTF-8, NUL.
    let good = manual_502_entry(Some(5), false);
    let mut long = good.clone();
    long[5..7].copy_from_slice(&u16::MAX.to_be_bytes());
    let mut bin = good.clone();
    bin[7] = 0xff;
    let mut nul = good.clone();
    nul[7] = 0;
    for (body, what) in [(long, "long"), (bin, "utf8"), (nul, "nul")] {
        let mut bytes = vec![5, 2];
        bytes.extend(record(&body));
        assert!(Keytab::parse(&bytes).is_err(), "{what}");
    }
}

/// Pseudo-random mutations of a valid file never panic.
#[test]
fn mutations_never_panic() {
    let bytes = sample().to_bytes().unwrap();
    let mut rng = testkit::Rng(0x2545_f491_4f6c_dd1d);
    let mut next = move || rng.next_u64();
    for _ in 0..20_000 {
        let mut m = bytes.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % m.len();
            m[i] = next() as u8;
        }
        let cut = (next() as usize) % (m.len() + 1);
        let _ = Keytab::parse(&m[..cut]);
        let _ = Keytab::parse(&m);
    }
}

#[test]
fn unwritable_entries_are_errors() {
    let mut kt = Keytab {
        entries: vec![entry("a@R", 1, -1, &[0; 16])],
    };
    assert!(matches!(kt.to_bytes(), Err(KeytabError::Unwritable(_))));
    kt.entries[0].enctype = 0x1_0000;
    assert!(matches!(kt.to_bytes(), Err(KeytabError::Unwritable(_))));
    kt.entries[0].enctype = 18;
    kt.entries[0].key = Zeroizing::new(vec![0; 0x1_0000]);
    assert!(matches!(kt.to_bytes(), Err(KeytabError::Unwritable(_))));
}

#[test]
fn debug_redacts_key() {
    let e = entry("a@R", 1, 18, &[0x5A; 32]);
    let d = format!(
        "{e:?} {:?}",
        Keytab {
            entries: vec![e.clone()]
        }
    );
    assert!(d.contains("redacted"), "{d}");
    assert!(!d.contains("90"), "{d}"); // 0x5A as decimal
    assert!(!d.to_lowercase().contains("5a"), "{d}");
}

#[test]
fn find_and_latest_keys() {
    let p = Principal::parse("host/a.example.com@EXAMPLE.COM", None).unwrap();
    let mut kt = sample();
    kt.entries
        .push(entry("host/a.example.com@EXAMPLE.COM", 2, 18, &[0x55; 32]));
    kt.entries
        .push(entry("host/a.example.com@EXAMPLE.COM", 4, 17, &[0x66; 16]));

    assert_eq!(kt.find(&p, 18, None).unwrap().kvno, 3);
    assert_eq!(*kt.find(&p, 18, Some(2)).unwrap().key, [0x55; 32]);
    assert!(kt.find(&p, 18, Some(4)).is_none());
    assert_eq!(kt.find(&p, 17, None).unwrap().kvno, 4);
    assert!(kt.find(&p, 16, None).is_none());

    // Name type is only a hint.
    let mut typed = p.clone();
    typed.name_type = name_type::SRV_HST;
    assert_eq!(kt.find(&typed, 18, None).unwrap().kvno, 3);

    let latest = kt.latest_keys(&p);
    assert_eq!(latest.len(), 1);
    assert_eq!((latest[0].kvno, latest[0].enctype), (4, 17));

    let tgt = Principal::krbtgt("EXAMPLE.COM");
    let l = kt.latest_keys(&tgt);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].kvno, 300);

    let nobody = Principal::parse("nobody@EXAMPLE.COM", None).unwrap();
    assert!(kt.latest_keys(&nobody).is_empty());
    assert!(kt.find(&nobody, 18, None).is_none());

    // Several enctypes at the highest kvno, in file order.
    let kt = sample();
    let l = kt.latest_keys(&p);
    assert_eq!(l.iter().map(|e| e.enctype).collect::<Vec<_>>(), [18, 17]);
}

#[test]
fn file_round_trip_atomic_and_private() {
    let dir = std::env::temp_dir().join(format!("krb-keytab-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("test.keytab");
    let kt = sample();
    kt.write_file(&path).unwrap();
    assert_same(&kt, &Keytab::read_file(&path).unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Overwrite replaces the content; no temporary files are left behind.
    let small = Keytab {
        entries: vec![entry("b@R", 1, 17, &[9; 16])],
    };
    small.write_file(&path).unwrap();
    assert_same(&small, &Keytab::read_file(&path).unwrap());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("test.keytab")]);
    assert!(matches!(
        Keytab::read_file(&dir.join("missing")),
        Err(KeytabError::Io(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
