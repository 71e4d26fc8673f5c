//! Principal name parsing, printing, rasn conversion and the E-UE IPv6
//! component form.

use std::net::Ipv6Addr;

use krb::principal::{
    MAX_COMPONENTS, MAX_NAME_BYTES, Principal, PrincipalError, format_ipv6_component,
    is_ipv6_component, name_type, parse_ipv6_component,
};

fn p(s: &str) -> Principal {
    Principal::parse(s, None).unwrap()
}

#[test]
fn parse_simple_and_service() {
    let a = p("alice@EXAMPLE.COM");
    assert_eq!(a.components, ["alice"]);
    assert_eq!(a.realm, "EXAMPLE.COM");
    assert_eq!(a.name_type, name_type::PRINCIPAL);

    let s = p("mtaprovsrvr/ps.example.com@EXAMPLE.COM");
    assert_eq!(s.components, ["mtaprovsrvr", "ps.example.com"]);
    assert_eq!(s.name_type, name_type::PRINCIPAL);
    assert!(s.same_name(&Principal::service_host(
        "mtaprovsrvr",
        "ps.example.com",
        "EXAMPLE.COM"
    )));
    assert_ne!(
        s,
        Principal::service_host("mtaprovsrvr", "ps.example.com", "EXAMPLE.COM")
    );
}

#[test]
fn krbtgt_gets_srv_inst() {
    let t = p("krbtgt/EXAMPLE.COM@EXAMPLE.COM");
    assert_eq!(t.name_type, name_type::SRV_INST);
    assert_eq!(t, Principal::krbtgt("EXAMPLE.COM"));
    assert_eq!(Principal::krbtgt("R").to_string(), "krbtgt/R@R");
}

#[test]
fn realm_defaulting() {
    let a = Principal::parse("host/x", Some("DEF.REALM")).unwrap();
    assert_eq!(a.realm, "DEF.REALM");
    let b = Principal::parse("host/x@OTHER", Some("DEF.REALM")).unwrap();
    assert_eq!(b.realm, "OTHER");
    assert_eq!(
        Principal::parse("host/x", None),
        Err(PrincipalError::MissingRealm)
    );
    assert_eq!(
        Principal::parse("host/x", Some("")),
        Err(PrincipalError::EmptyRealm)
    );
}

#[test]
fn escapes_parse() {
    let a = p(r"a\/b/c\@d\\e@R\@S");
    assert_eq!(a.components, ["a/b", r"c@d\e"]);
    assert_eq!(a.realm, "R@S");
    let b = p(r"x\ny\tz\bw\0v@R");
    assert_eq!(b.components, ["x\ny\tz\u{8}w\0v"]);
}

#[test]
fn escaping_round_trips() {
    let names = [
        Principal::new(1, vec!["a/b".into(), "c@d".into()], "R"),
        Principal::new(1, vec![r"back\slash".into()], "R/E@A\\LM"),
        Principal::new(1, vec!["tab\tnl\nbs\u{8}nul\0".into()], "R"),
        Principal::new(1, vec!["".into(), "".into()], "R"),
        Principal::new(1, vec!["ünïcödé".into(), "日本".into()], "ÉXAMPLE"),
        Principal::new(
            3,
            vec![
                "df".into(),
                "[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]".into(),
            ],
            "PC.EXAMPLE",
        ),
    ];
    for n in names {
        let text = n.to_string();
        let back = Principal::parse(&text, None).unwrap();
        assert!(back.same_name(&n), "{text}: {back:?} != {n:?}");
        assert_eq!(back.to_string(), text);
    }
    let n = Principal::new(1, vec!["a/b".into(), "c".into()], "R");
    assert_eq!(n.to_string(), r"a\/b/c@R");
    assert_eq!(n.name_without_realm(), r"a\/b/c");
}

#[test]
fn parse_errors() {
    assert_eq!(Principal::parse("", Some("R")), Err(PrincipalError::Empty));
    assert_eq!(
        Principal::parse("abc\\", Some("R")),
        Err(PrincipalError::TrailingBackslash)
    );
    assert_eq!(
        Principal::parse("abc@R\\", None),
        Err(PrincipalError::TrailingBackslash)
    );
    assert_eq!(
        Principal::parse(r"a\qb@R", None),
        Err(PrincipalError::UnknownEscape('q'))
    );
    assert_eq!(
        Principal::parse("a@R@S", None),
        Err(PrincipalError::MultipleRealms)
    );
    assert_eq!(
        Principal::parse("a@", None),
        Err(PrincipalError::EmptyRealm)
    );
    assert_eq!(
        Principal::parse("a@R/S", None),
        Err(PrincipalError::SlashInRealm)
    );
    let long = "a".repeat(MAX_NAME_BYTES + 1);
    assert_eq!(
        Principal::parse(&long, Some("R")),
        Err(PrincipalError::TooLong(MAX_NAME_BYTES + 1))
    );
    // The default realm counts towards the limit too.
    let near = "a".repeat(MAX_NAME_BYTES - 2);
    assert!(matches!(
        Principal::parse(&near, Some("REALM")),
        Err(PrincipalError::TooLong(_))
    ));
    let many = vec!["c"; MAX_COMPONENTS + 1].join("/") + "@R";
    assert!(matches!(
        Principal::parse(&many, None),
        Err(PrincipalError::TooManyComponents(_))
    ));
    let ok = vec!["c"; MAX_COMPONENTS].join("/") + "@R";
    assert_eq!(
        Principal::parse(&ok, None).unwrap().components.len(),
        MAX_COMPONENTS
    );
}

#[test]
fn same_name_is_case_sensitive_and_ignores_type() {
    let a = Principal::new(1, vec!["host".into(), "x".into()], "R");
    let b = Principal::new(3, vec!["host".into(), "x".into()], "R");
    let c = Principal::new(1, vec!["HOST".into(), "x".into()], "R");
    let d = Principal::new(1, vec!["host".into(), "x".into()], "r");
    assert!(a.same_name(&b));
    assert!(!a.same_name(&c));
    assert!(!a.same_name(&d));
}

#[test]
fn salt_is_realm_then_components() {
    let a = p("host/kdc.example.com@EXAMPLE.COM");
    assert_eq!(a.salt(), b"EXAMPLE.COMhostkdc.example.com");
    // RFC 3962 test vector principal.
    assert_eq!(p("raeburn@ATHENA.MIT.EDU").salt(), b"ATHENA.MIT.EDUraeburn");
}

#[test]
fn rasn_round_trip_and_der() {
    let a = Principal::service_host("mta", "mta1.pc.example", "PC.EXAMPLE");
    let (name, realm) = a.to_rasn().unwrap();
    assert_eq!(name.r#type, name_type::SRV_HST);
    assert_eq!(realm.as_bytes(), b"PC.EXAMPLE");
    let der = rasn::der::encode(&name).unwrap();
    let name2: rasn_kerberos::PrincipalName = rasn::der::decode(&der).unwrap();
    let back = Principal::from_rasn(&name2, &realm).unwrap();
    assert_eq!(back, a);
}

#[test]
fn from_rasn_rejects_hostile_names() {
    let gs = |b: &[u8]| rasn::types::GeneralString::from_bytes(b).unwrap();
    let realm = gs(b"R");
    let mk = |comps: Vec<rasn::types::GeneralString>| rasn_kerberos::PrincipalName {
        r#type: 1,
        string: comps,
    };
    assert_eq!(
        Principal::from_rasn(&mk(vec![]), &realm),
        Err(PrincipalError::NoComponents)
    );
    assert_eq!(
        Principal::from_rasn(&mk(vec![gs(b"adm\0in")]), &realm),
        Err(PrincipalError::ControlCharacter)
    );
    assert_eq!(
        Principal::from_rasn(&mk(vec![gs(b"a\nb")]), &realm),
        Err(PrincipalError::ControlCharacter)
    );
    // 0xE9 alone is Latin-1 'é', not UTF-8.
    assert_eq!(
        Principal::from_rasn(&mk(vec![gs(b"caf\xe9")]), &realm),
        Err(PrincipalError::NotUtf8)
    );
    assert!(matches!(
        Principal::from_rasn(&mk(vec![gs(b"a"); MAX_COMPONENTS + 1]), &realm),
        Err(PrincipalError::TooManyComponents(_))
    ));
    let big = vec![b'a'; MAX_NAME_BYTES];
    assert!(matches!(
        Principal::from_rasn(&mk(vec![gs(&big)]), &realm),
        Err(PrincipalError::TooLong(_))
    ));
    // UTF-8 whose bytes fit GeneralString is accepted.
    let ok = Principal::from_rasn(&mk(vec![gs("café".as_bytes())]), &realm).unwrap();
    assert_eq!(ok.components, ["café"]);
}

#[test]
fn to_rasn_rejects_unencodable() {
    // U+20AC is E2 82 AC; 0x82 is outside the GeneralString alphabet.
    let euro = Principal::new(1, vec!["€".into()], "R");
    assert_eq!(euro.to_rasn(), Err(PrincipalError::NotGeneralString));
    let nul = Principal::new(1, vec!["a\0".into()], "R");
    assert_eq!(nul.to_rasn(), Err(PrincipalError::ControlCharacter));
    let none = Principal::new(1, vec![], "R");
    assert_eq!(none.to_rasn(), Err(PrincipalError::NoComponents));
}

// ---- E-UE IPv6 component form, PKT-SP-EUE-PROV-I05 §6.1.3 ----

/// The spec's valid example: `df/[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]`.
const SPEC_VALID: &str = "df/[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]";

fn second_component(name: &str) -> String {
    let pr = Principal::parse(name, Some("PC.EXAMPLE")).unwrap();
    assert_eq!(pr.components.len(), 2, "{name}");
    pr.components[1].clone()
}

#[test]
fn spec_valid_example_parses() {
    let c = second_component(SPEC_VALID);
    assert!(is_ipv6_component(&c));
    let a = parse_ipv6_component(&c).unwrap();
    assert_eq!(
        a,
        Ipv6Addr::new(0x805b, 0x2d9d, 0xdc28, 0, 0, 0xfc57, 0xd4c8, 0x1fff)
    );
    // Canonical output is upper case, i.e. exactly the spec's example.
    assert_eq!(format!("df/{}", format_ipv6_component(&a)), SPEC_VALID);
    // Lower case (the ABNF's LCHEXDIG) is accepted too.
    let lower = parse_ipv6_component("[805b:2d9d:dc28:0000:0000:fc57:d4c8:1fff]").unwrap();
    assert_eq!(lower, a);
}

#[test]
fn spec_invalid_examples_rejected() {
    // "Example: df/[FF00:4501::32]
    //  Reason: Trailing zero-compression is used"
    // "Example: df/[0:0:0:0:0:FFFF:129.144.52.38]
    //  Reason: Alternative form for IPv4/IPv6 environments is used."
    // "Example: df/[805B:2D9D:DC28:0:0:FC57:D4C8:1FFF]
    //  Reason: The least significant zeros are omitted from the hexadecimal
    //  numbers in the IPv6 address."
    for name in [
        "df/[FF00:4501::32]",
        "df/[0:0:0:0:0:FFFF:129.144.52.38]",
        "df/[805B:2D9D:DC28:0:0:FC57:D4C8:1FFF]",
    ] {
        let c = second_component(name);
        assert!(is_ipv6_component(&c), "{name}");
        assert!(
            matches!(
                parse_ipv6_component(&c),
                Err(PrincipalError::InvalidIpv6(_))
            ),
            "{name} must be rejected"
        );
    }
}

#[test]
fn ipv6_other_invalids() {
    for s in [
        "[805B:2D9D:DC28:0000:0000:FC57:D4C8]",           // 7 groups
        "[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF:0000]", // 9 groups
        "[805B:2D9D:DC28:000:0000:FC57:D4C8:1FFF]",       // 3-digit group
        "[805B:2D9D:DC28:00000:000:FC57:D4C8:1FFF]",      // 5+3 digits, right length
        "[::]",
        "[0000:0000:0000:0000:0000:0000:0000::]",
        "[0000:0000:0000:0000:0000:FFFF:8190:3426:]",
        "[0000:0000:0000:0000:0000:FFFF:129.144.52.38]", // embedded IPv4
        "805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF",       // no brackets
        "[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF",      // missing ']'
        "805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]",      // missing '['
        "[805G:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]",     // non-hex
        "[805B-2D9D-DC28-0000-0000-FC57-D4C8-1FFF]",     // wrong separator
        "[+05B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]",     // sign
        "[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF] ",    // trailing space
        "[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFÉ]",     // non-ASCII
        "[]",
        "[",
        "",
    ] {
        assert!(
            matches!(parse_ipv6_component(s), Err(PrincipalError::InvalidIpv6(_))),
            "{s:?} must be rejected"
        );
    }
    assert!(!is_ipv6_component("mta1.example.com"));
    assert!(is_ipv6_component("[oops"));
}

#[test]
fn ipv6_round_trip() {
    let addrs = [
        Ipv6Addr::UNSPECIFIED,
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0xff00, 0x42, 0x8329),
        Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
        ),
        Ipv6Addr::new(0xabcd, 0xef01, 0x2345, 0x6789, 0xa, 0xb0, 0xc00, 0xd000),
    ];
    for a in addrs {
        let s = format_ipv6_component(&a);
        assert_eq!(s.len(), 41);
        assert!(!s.chars().any(|c| c.is_ascii_lowercase()), "{s}");
        assert_eq!(parse_ipv6_component(&s).unwrap(), a);
        assert_eq!(parse_ipv6_component(&s.to_ascii_lowercase()).unwrap(), a);
        // Through the principal text form and back.
        let pr = Principal::new(name_type::SRV_HST, vec!["df".into(), s.clone()], "R");
        let back = Principal::parse(&pr.to_string(), None).unwrap();
        assert_eq!(parse_ipv6_component(&back.components[1]).unwrap(), a);
    }
    assert_eq!(
        format_ipv6_component(&Ipv6Addr::LOCALHOST),
        "[0000:0000:0000:0000:0000:0000:0000:0001]"
    );
}

/// §6.1.3's ABNF is case-insensitive (RFC 2234 quoted strings): the IPv6
/// component names the same principal in either case, and only that
/// component; forms the ABNF refuses are left as they are (and so match
/// only themselves).
#[test]
fn ipv6_components_compare_case_insensitively() {
    use krb::principal::{canonical_component, canonical_components};
    use std::borrow::Cow;
    let lower = p("df/[805b:2d9d:dc28:0000:0000:fc57:d4c8:1fff]@PC.EXAMPLE");
    let upper = p(&format!("{SPEC_VALID}@PC.EXAMPLE"));
    let mixed = p("df/[805b:2D9D:dc28:0000:0000:FC57:d4c8:1FfF]@PC.EXAMPLE");
    assert!(lower.same_name(&upper));
    assert!(mixed.same_name(&upper));
    assert_eq!(
        canonical_component(&lower.components[1]),
        "[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]"
    );
    // Other components stay case-sensitive; so does the realm.
    assert!(!p("DF/[805b:2d9d:dc28:0000:0000:fc57:d4c8:1fff]@PC.EXAMPLE").same_name(&upper));
    assert!(!lower.same_name(&p(&format!("{SPEC_VALID}@pc.example"))));
    // A different address, and ABNF-invalid spellings of the same one, differ.
    assert!(!p("df/[805b:2d9d:dc28:0000:0000:fc57:d4c8:1ff0]@PC.EXAMPLE").same_name(&upper));
    for invalid in [
        "[805B:2D9D:DC28:0:0:FC57:D4C8:1FFF]",
        "[805B:2D9D:DC28::FC57:D4C8:1FFF]",
        "[805b:2d9d:dc28::fc57:d4c8:1fff]",
    ] {
        assert_eq!(canonical_component(invalid), invalid);
        let n = Principal::new(1, vec!["df".into(), invalid.into()], "PC.EXAMPLE");
        assert!(!n.same_name(&upper), "{invalid}");
    }
    // Names without an IPv6 component are borrowed, not copied.
    let plain = p("host/kdc.example.com@EXAMPLE.COM");
    assert!(matches!(
        canonical_components(&plain.components),
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        canonical_components(&upper.components),
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        canonical_components(&lower.components),
        Cow::Owned(_)
    ));
}
