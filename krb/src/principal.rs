//! Kerberos principal names (RFC 4120 §6.2), MIT text syntax, and the
//! PacketCable E-UE IPv6 component form (PKT-SP-EUE-PROV-I05 §6.1.3).
//!
//! Text syntax follows MIT `krb5_parse_name`: components are separated by an
//! unescaped `/`, the realm follows an unescaped `@`, and the escapes `\/`,
//! `\@`, `\\`, `\n`, `\t`, `\b` and `\0` are recognised.
//!
//! Every constructor that takes outside input enforces [`MAX_NAME_BYTES`] and
//! [`MAX_COMPONENTS`].

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;

/// Principal name types (RFC 4120 §6.2, RFC 6111).
pub mod name_type {
    /// NT-UNKNOWN: name type not known.
    pub const UNKNOWN: i32 = 0;
    /// NT-PRINCIPAL: just the name of the principal.
    pub const PRINCIPAL: i32 = 1;
    /// NT-SRV-INST: service and other unique instance (krbtgt).
    pub const SRV_INST: i32 = 2;
    /// NT-SRV-HST: service with host name as instance.
    pub const SRV_HST: i32 = 3;
    /// NT-SRV-XHST: service with host as remaining components.
    pub const SRV_XHST: i32 = 4;
    /// NT-UID: unique ID.
    pub const UID: i32 = 5;
    /// NT-ENTERPRISE (RFC 6806).
    pub const ENTERPRISE: i32 = 10;
    /// NT-WELLKNOWN (RFC 6111).
    pub const WELLKNOWN: i32 = 11;
}

/// Largest accepted name, in bytes: the text form for [`Principal::parse`],
/// the sum of component and realm lengths everywhere else.
pub const MAX_NAME_BYTES: usize = 1024;

/// Largest accepted number of name components.
pub const MAX_COMPONENTS: usize = 16;

/// Errors from principal name parsing and conversion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// The input was empty.
    #[error("empty principal name")]
    Empty,
    /// The name ended in the middle of an escape sequence.
    #[error("principal name ends with a lone backslash")]
    TrailingBackslash,
    /// A backslash was followed by a character that is not a known escape.
    #[error("unknown escape sequence '\\{0}' in principal name")]
    UnknownEscape(char),
    /// More than one unescaped `@`.
    #[error("more than one unescaped '@' in principal name")]
    MultipleRealms,
    /// Unescaped `/` after the `@`.
    #[error("unescaped '/' in realm")]
    SlashInRealm,
    /// `@` with nothing after it.
    #[error("empty realm")]
    EmptyRealm,
    /// No `@REALM` and no default realm was supplied.
    #[error("principal name has no realm and no default realm was given")]
    MissingRealm,
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("principal name is {0} bytes, limit is {MAX_NAME_BYTES}")]
    TooLong(usize),
    /// The name has more than [`MAX_COMPONENTS`] components.
    #[error("principal name has {0} components, limit is {MAX_COMPONENTS}")]
    TooManyComponents(usize),
    /// The name has no components.
    #[error("principal name has no components")]
    NoComponents,
    /// A component or the realm is not valid UTF-8.
    #[error("principal name is not valid UTF-8")]
    NotUtf8,
    /// A component or the realm contains a control character (including NUL).
    #[error("principal name contains a control character")]
    ControlCharacter,
    /// A component or the realm cannot be encoded as an ASN.1 GeneralString
    /// (bytes 0x80..=0xA0 are outside the rasn GeneralString alphabet).
    #[error("principal name cannot be encoded as a KerberosString")]
    NotGeneralString,
    /// An IPv6 component does not follow the PKT-SP-EUE-PROV §6.1.3 ABNF.
    #[error("invalid IPv6 principal component: {0}")]
    InvalidIpv6(&'static str),
}

/// A principal: name type, name components and realm.
///
/// Equality (`==`) includes the name type; use [`Principal::same_name`] to
/// compare names the way RFC 4120 asks (name type is only a hint).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    /// Name type, see [`name_type`].
    pub name_type: i32,
    /// Name components, unescaped.
    pub components: Vec<String>,
    /// Realm, unescaped.
    pub realm: String,
}

impl Principal {
    /// Builds a principal from parts, without validation.
    pub fn new(name_type: i32, components: Vec<String>, realm: impl Into<String>) -> Principal {
        Principal {
            name_type,
            components,
            realm: realm.into(),
        }
    }

    /// Parses MIT text syntax, e.g. `host/kdc.example.com@EXAMPLE.COM`.
    ///
    /// Without an `@REALM` part, `default_realm` is used; if that is `None`
    /// the result is [`PrincipalError::MissingRealm`]. The name type is
    /// [`name_type::SRV_INST`] for `krbtgt/X` and [`name_type::PRINCIPAL`]
    /// otherwise; callers set other types explicitly.
    ///
    /// Empty components (`a//b`) are accepted as MIT does; an empty realm is
    /// not. `\0` decodes to a NUL character, as in MIT.
    pub fn parse(s: &str, default_realm: Option<&str>) -> Result<Principal, PrincipalError> {
        if s.is_empty() {
            return Err(PrincipalError::Empty);
        }
        if s.len() > MAX_NAME_BYTES {
            return Err(PrincipalError::TooLong(s.len()));
        }
        let mut components: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut realm: Option<String> = None;
        let mut in_realm = false;
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            let literal = match c {
                '\\' => match chars.next() {
                    None => return Err(PrincipalError::TrailingBackslash),
                    Some(e) => unescape(e)?,
                },
                '/' if in_realm => return Err(PrincipalError::SlashInRealm),
                '/' => {
                    if components.len() + 1 >= MAX_COMPONENTS {
                        return Err(PrincipalError::TooManyComponents(components.len() + 2));
                    }
                    components.push(std::mem::take(&mut current));
                    continue;
                }
                '@' if in_realm => return Err(PrincipalError::MultipleRealms),
                '@' => {
                    components.push(std::mem::take(&mut current));
                    in_realm = true;
                    continue;
                }
                other => other,
            };
            current.push(literal);
        }
        if in_realm {
            if current.is_empty() {
                return Err(PrincipalError::EmptyRealm);
            }
            realm = Some(current);
        } else {
            components.push(current);
        }
        let realm = match (realm, default_realm) {
            (Some(r), _) => r,
            (None, Some(d)) if !d.is_empty() => d.to_owned(),
            (None, Some(_)) => return Err(PrincipalError::EmptyRealm),
            (None, None) => return Err(PrincipalError::MissingRealm),
        };
        let nt = if components.len() == 2 && components[0] == "krbtgt" {
            name_type::SRV_INST
        } else {
            name_type::PRINCIPAL
        };
        let p = Principal::new(nt, components, realm);
        p.check_bounds()?;
        Ok(p)
    }

    /// `krbtgt/REALM@REALM`, name type [`name_type::SRV_INST`].
    pub fn krbtgt(realm: &str) -> Principal {
        Principal::new(
            name_type::SRV_INST,
            vec!["krbtgt".to_owned(), realm.to_owned()],
            realm,
        )
    }

    /// `service/host@REALM`, name type [`name_type::SRV_HST`].
    pub fn service_host(service: &str, host: &str, realm: &str) -> Principal {
        Principal::new(
            name_type::SRV_HST,
            vec![service.to_owned(), host.to_owned()],
            realm,
        )
    }

    /// The escaped components joined by `/`, without the realm.
    pub fn name_without_realm(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            escape_into(&mut out, c);
        }
        out
    }

    /// Case-sensitive equality of components and realm, ignoring name type
    /// (RFC 4120 says name type is a hint), except that E-UE IPv6
    /// components compare as addresses (see [`canonical_component`]).
    pub fn same_name(&self, other: &Principal) -> bool {
        self.realm == other.realm
            && canonical_components(&self.components) == canonical_components(&other.components)
    }

    /// Default salt: realm followed by the components concatenated, no
    /// separators (RFC 4120 §4).
    pub fn salt(&self) -> Vec<u8> {
        let len = self.realm.len() + self.components.iter().map(String::len).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(self.realm.as_bytes());
        for c in &self.components {
            out.extend_from_slice(c.as_bytes());
        }
        out
    }

    /// Checks the name against [`MAX_COMPONENTS`], [`MAX_NAME_BYTES`] and
    /// requires at least one component.
    pub fn check_bounds(&self) -> Result<(), PrincipalError> {
        if self.components.is_empty() {
            return Err(PrincipalError::NoComponents);
        }
        if self.components.len() > MAX_COMPONENTS {
            return Err(PrincipalError::TooManyComponents(self.components.len()));
        }
        let len = self
            .components
            .iter()
            .fold(self.realm.len(), |acc, c| acc.saturating_add(c.len()));
        if len > MAX_NAME_BYTES {
            return Err(PrincipalError::TooLong(len));
        }
        Ok(())
    }

    /// Checks the name for use on the wire: [`Principal::check_bounds`], and
    /// no control characters (C0, including NUL, and DEL) in any component
    /// or in the realm.
    pub fn check_wire(&self) -> Result<(), PrincipalError> {
        self.check_bounds()?;
        let has_control = std::iter::once(&self.realm)
            .chain(self.components.iter())
            .any(|s| s.chars().any(|c| c.is_ascii_control()));
        if has_control {
            return Err(PrincipalError::ControlCharacter);
        }
        Ok(())
    }

    /// Builds a principal from name bytes read off the wire: UTF-8 is
    /// required and [`Principal::check_wire`] applies.
    pub fn from_wire_parts(
        name_type: i32,
        components: &[&[u8]],
        realm: &[u8],
    ) -> Result<Principal, PrincipalError> {
        if components.is_empty() {
            return Err(PrincipalError::NoComponents);
        }
        if components.len() > MAX_COMPONENTS {
            return Err(PrincipalError::TooManyComponents(components.len()));
        }
        let total = components
            .iter()
            .fold(realm.len(), |acc, c| acc.saturating_add(c.len()));
        if total > MAX_NAME_BYTES {
            return Err(PrincipalError::TooLong(total));
        }
        let to_string = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| PrincipalError::NotUtf8)
        };
        let comps = components
            .iter()
            .map(|c| to_string(c))
            .collect::<Result<Vec<_>, _>>()?;
        let p = Principal::new(name_type, comps, to_string(realm)?);
        p.check_wire()?;
        Ok(p)
    }

    /// Converts to the `rasn-kerberos` types.
    ///
    /// Fails if the name breaks [`Principal::check_wire`] or contains bytes
    /// outside the ASN.1 GeneralString alphabet that `rasn` enforces
    /// (0x80..=0xA0, which occur in some multi-byte UTF-8 characters).
    pub fn to_rasn(
        &self,
    ) -> Result<(rasn_kerberos::PrincipalName, rasn_kerberos::Realm), PrincipalError> {
        self.check_wire()?;
        let gs = |s: &str| {
            rasn::types::GeneralString::from_bytes(s.as_bytes())
                .map_err(|_| PrincipalError::NotGeneralString)
        };
        let string = self
            .components
            .iter()
            .map(|c| gs(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            rasn_kerberos::PrincipalName {
                r#type: self.name_type,
                string,
            },
            gs(&self.realm)?,
        ))
    }

    /// Converts from the `rasn-kerberos` types. Components and realm must be
    /// UTF-8 without control characters; at least one component is
    /// required, and the size bounds apply.
    pub fn from_rasn(
        name: &rasn_kerberos::PrincipalName,
        realm: &rasn_kerberos::Realm,
    ) -> Result<Principal, PrincipalError> {
        let comps: Vec<&[u8]> = name.string.iter().map(|c| c.as_bytes()).collect();
        Principal::from_wire_parts(name.r#type, &comps, realm.as_bytes())
    }
}

impl fmt::Display for Principal {
    /// Escaped MIT form, `a/b@REALM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name_without_realm();
        out.push('@');
        escape_into(&mut out, &self.realm);
        f.write_str(&out)
    }
}

fn unescape(e: char) -> Result<char, PrincipalError> {
    Ok(match e {
        '/' | '@' | '\\' => e,
        'n' => '\n',
        't' => '\t',
        'b' => '\u{8}',
        '0' => '\0',
        other => return Err(PrincipalError::UnknownEscape(other)),
    })
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '/' | '@' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\0' => out.push_str("\\0"),
            other => out.push(other),
        }
    }
}

/// Number of bytes in the E-UE IPv6 component form: `[` + 8 groups of 4 hex
/// digits + 7 colons + `]`.
const IPV6_COMPONENT_LEN: usize = 1 + 8 * 4 + 7 + 1;

/// Parses an E-UE IPv6 principal component (PKT-SP-EUE-PROV-I05 §6.1.3):
///
/// ```text
/// IPv6Address = "[" 7 (h16 ":") h16 "]"
/// h16 = 4 LCHEXDIG
/// ```
///
/// Exactly eight groups of exactly four hex digits separated by `:` inside
/// brackets: no zero compression, no leading-zero omission, no embedded
/// IPv4. The ABNF names the digits LCHEXDIG (lower case) while the spec's
/// own valid example is upper case, so both cases are accepted here.
pub fn parse_ipv6_component(s: &str) -> Result<Ipv6Addr, PrincipalError> {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return Err(PrincipalError::InvalidIpv6("missing '['"));
    }
    if b.last() != Some(&b']') {
        return Err(PrincipalError::InvalidIpv6("missing ']'"));
    }
    if b.len() != IPV6_COMPONENT_LEN {
        return Err(PrincipalError::InvalidIpv6(
            "need exactly eight groups of four hex digits",
        ));
    }
    let inner = &b[1..b.len() - 1];
    let mut groups = [0u16; 8];
    for (i, group) in groups.iter_mut().enumerate() {
        let start = i * 5;
        if i > 0 && inner[start - 1] != b':' {
            return Err(PrincipalError::InvalidIpv6(
                "groups must be separated by ':'",
            ));
        }
        let mut v: u16 = 0;
        for &d in &inner[start..start + 4] {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(PrincipalError::InvalidIpv6("non-hex digit in group")),
            };
            v = (v << 4) | u16::from(n);
        }
        *group = v;
    }
    Ok(Ipv6Addr::from(groups))
}

/// Formats an address in the E-UE IPv6 component form.
///
/// The canonical output is UPPER-case hex, e.g.
/// `[805B:2D9D:DC28:0000:0000:FC57:D4C8:1FFF]`, matching the valid example in
/// PKT-SP-EUE-PROV-I05 §6.1.3 (the ABNF's LCHEXDIG says lower case; the two
/// disagree, and the example is what deployed E-UEs are likely to copy).
/// Compare parsed addresses, not strings, to match case-insensitively.
pub fn format_ipv6_component(a: &Ipv6Addr) -> String {
    let s = a.segments();
    format!(
        "[{:04X}:{:04X}:{:04X}:{:04X}:{:04X}:{:04X}:{:04X}:{:04X}]",
        s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
    )
}

/// A component as name lookups compare it: an E-UE IPv6 component that
/// follows the §6.1.3 ABNF in its canonical upper-case form (the ABNF is
/// case-insensitive, RFC 2234 quoted strings, so `[805b:…]` and `[805B:…]`
/// name the same principal); any other component unchanged, so names stay
/// case-sensitive as in MIT.
pub fn canonical_component(c: &str) -> Cow<'_, str> {
    if !is_ipv6_component(c) {
        return Cow::Borrowed(c);
    }
    match parse_ipv6_component(c) {
        Ok(a) => {
            let canonical = format_ipv6_component(&a);
            if canonical == c {
                Cow::Borrowed(c)
            } else {
                Cow::Owned(canonical)
            }
        }
        Err(_) => Cow::Borrowed(c),
    }
}

/// The components with [`canonical_component`] applied; borrows (no
/// allocation) when none changes, which is every name without a `[`.
pub fn canonical_components(components: &[String]) -> Cow<'_, [String]> {
    let changes = |c: &String| matches!(canonical_component(c), Cow::Owned(_));
    if !components.iter().any(changes) {
        return Cow::Borrowed(components);
    }
    Cow::Owned(
        components
            .iter()
            .map(|c| canonical_component(c).into_owned())
            .collect(),
    )
}

/// True if the component is meant as an IPv6 address (starts with `[`).
/// It may still be malformed; check with [`parse_ipv6_component`].
pub fn is_ipv6_component(s: &str) -> bool {
    s.starts_with('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_basic() {
        let p = Principal::parse("host/kdc.example.com@EXAMPLE.COM", None).unwrap();
        assert_eq!(p.components, ["host", "kdc.example.com"]);
        assert_eq!(p.realm, "EXAMPLE.COM");
        assert_eq!(p.name_type, name_type::PRINCIPAL);
        assert_eq!(p.to_string(), "host/kdc.example.com@EXAMPLE.COM");
    }

    #[test]
    fn too_many_components_in_parse() {
        let s = vec!["a"; MAX_COMPONENTS + 1].join("/");
        assert_eq!(
            Principal::parse(&s, Some("R")),
            Err(PrincipalError::TooManyComponents(MAX_COMPONENTS + 1))
        );
        let s = vec!["a"; MAX_COMPONENTS].join("/");
        assert!(Principal::parse(&s, Some("R")).is_ok());
    }
}
