//! The device profile: the IMS credentials a device receives, and their XML
//! form (schema: docs/certboot-profile.xsd).
//!
//! PKT-EUE-DATA's own schema could not be obtained (PROTOCOL.md §5), so the
//! element names follow the MIB objects the device stores the values in
//! (pktcEUEUsrIMPITable / pktcEUEUsrIMPUTable) and the credential type
//! names and codes are PktcEUETCCredsType's.

use base64::Engine;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use zeroize::Zeroizing;

/// XML namespace of the profile document.
pub const NAMESPACE: &str = "urn:pktc-realm:certboot:profile:1";

/// PktcEUETCCredsType (CL-PKTC-EUE-TC-MIB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredsType {
    Other = 1,
    None = 2,
    Password = 3,
    PreSharedKey = 4,
    Certificate = 5,
}

impl CredsType {
    pub const ALL: [CredsType; 5] = [
        CredsType::Other,
        CredsType::None,
        CredsType::Password,
        CredsType::PreSharedKey,
        CredsType::Certificate,
    ];

    /// The MIB's enumeration label.
    pub fn name(self) -> &'static str {
        match self {
            CredsType::Other => "other",
            CredsType::None => "none",
            CredsType::Password => "password",
            CredsType::PreSharedKey => "preSharedKey",
            CredsType::Certificate => "certificate",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// Accepts the label (any case) or the number.
    pub fn parse(text: &str) -> Option<CredsType> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(text) || t.code().to_string() == text)
    }
}

/// One device's IMS credentials. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    /// Private identity (IMPI), e.g. `0010950000001@ims.example.net`.
    pub impi: String,
    /// Public identities (IMPUs), e.g. `sip:+15551230001@ims.example.net`; at least one.
    pub impu: Vec<String>,
    pub creds_type: CredsType,
    /// The credential value (PktcEUETCCreds: 0..8192 octets). Empty for `none`.
    pub credential: Zeroizing<Vec<u8>>,
    /// Home network domain / realm, optional.
    pub realm: Option<String>,
    /// P-CSCF addresses or FQDNs, optional.
    pub pcscf: Vec<String>,
}

impl std::fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("impi", &self.impi)
            .field("impu", &self.impu)
            .field("creds_type", &self.creds_type)
            .field(
                "credential",
                &format_args!("<{} bytes>", self.credential.len()),
            )
            .field("realm", &self.realm)
            .field("pcscf", &self.pcscf)
            .finish()
    }
}

/// Largest credential value (PktcEUETCCreds SIZE(0..8192)).
pub const MAX_CREDENTIAL_BYTES: usize = 8192;
/// Longest identity, realm or P-CSCF string accepted.
pub const MAX_TEXT_CHARS: usize = 1024;
/// Most public identities per device.
pub const MAX_IMPUS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: &'static str,
    },
}

fn invalid(field: &'static str, problem: &'static str) -> ProfileError {
    ProfileError::Invalid { field, problem }
}

/// Characters XML 1.0 allows in text (§2.2), minus the ones that only
/// confuse: we keep tab, newline and carriage return out of identities too.
fn xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn check_text(field: &'static str, s: &str) -> Result<(), ProfileError> {
    if s.is_empty() {
        return Err(invalid(field, "empty"));
    }
    if s.chars().count() > MAX_TEXT_CHARS {
        return Err(invalid(field, "too long"));
    }
    if !s.chars().all(xml_char) {
        return Err(invalid(field, "control or non-XML character"));
    }
    Ok(())
}

impl DeviceCredentials {
    /// Checks what the XML and the device's MIB tables can carry.
    pub fn validate(&self) -> Result<(), ProfileError> {
        check_text("impi", &self.impi)?;
        if self.impu.is_empty() {
            return Err(invalid("impu", "at least one public identity is required"));
        }
        if self.impu.len() > MAX_IMPUS {
            return Err(invalid("impu", "too many public identities"));
        }
        for i in &self.impu {
            check_text("impu", i)?;
        }
        if let Some(r) = &self.realm {
            check_text("realm", r)?;
        }
        for p in &self.pcscf {
            check_text("pcscf", p)?;
        }
        if self.credential.len() > MAX_CREDENTIAL_BYTES {
            return Err(invalid("credential", "longer than 8192 octets"));
        }
        match self.creds_type {
            CredsType::None if !self.credential.is_empty() => {
                Err(invalid("credential", "must be empty for type none"))
            }
            CredsType::None => Ok(()),
            _ if self.credential.is_empty() => Err(invalid("credential", "empty")),
            _ => Ok(()),
        }
    }

    /// The value as text when it is a password made only of XML characters;
    /// otherwise (binary keys, certificates, odd passwords) base64.
    fn credential_text(&self) -> (&'static str, Zeroizing<String>) {
        if self.creds_type == CredsType::Password
            && let Ok(s) = std::str::from_utf8(&self.credential)
            && s.chars()
                .all(|c| xml_char(c) || matches!(c, '\t' | '\n' | '\r'))
        {
            return ("text", Zeroizing::new(s.to_owned()));
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&*self.credential);
        ("base64", Zeroizing::new(b64))
    }
}

/// Renders the profile document for the device `mac` (`XX:XX:XX:XX:XX:XX`).
/// The returned buffer holds the secret: it is zeroized when dropped.
pub fn render(mac: &str, creds: &DeviceCredentials) -> Result<Zeroizing<Vec<u8>>, ProfileError> {
    creds.validate()?;
    // Sized up front so the buffer holding the secret is not reallocated
    // (a reallocation would leave an unzeroized copy behind).
    let text_len: usize = creds.impu.iter().chain(&creds.pcscf).map(String::len).sum();
    let capacity = 1024 + 6 * (creds.impi.len() + text_len + 2 * creds.credential.len());
    let mut out = Zeroizing::new(Vec::with_capacity(capacity));
    let mut w = Writer::new_with_indent(&mut *out, b' ', 2);
    write_profile(&mut w, mac, creds).map_err(|_| invalid("profile", "XML writer failed"))?;
    out.push(b'\n');
    Ok(out)
}

fn write_profile(
    w: &mut Writer<&mut Vec<u8>>,
    mac: &str,
    creds: &DeviceCredentials,
) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("DeviceProfile")
        .with_attributes([("xmlns", NAMESPACE), ("version", "1")])
        .write_inner_content(|w| {
            w.create_element("Device").write_inner_content(|w| {
                w.create_element("MacAddress")
                    .write_text_content(BytesText::new(mac))?;
                Ok(())
            })?;
            w.create_element("IMPI").write_inner_content(|w| {
                w.create_element("Identity")
                    .write_text_content(BytesText::new(&creds.impi))?;
                let code = creds.creds_type.code().to_string();
                w.create_element("CredsType")
                    .with_attribute(("code", code.as_str()))
                    .write_text_content(BytesText::new(creds.creds_type.name()))?;
                if creds.creds_type != CredsType::None {
                    let (encoding, text) = creds.credential_text();
                    w.create_element("Credentials")
                        .with_attribute(("encoding", encoding))
                        .write_text_content(BytesText::new(&text))?;
                }
                Ok(())
            })?;
            for impu in &creds.impu {
                w.create_element("IMPU").write_inner_content(|w| {
                    w.create_element("Identity")
                        .write_text_content(BytesText::new(impu))?;
                    Ok(())
                })?;
            }
            if let Some(realm) = &creds.realm {
                w.create_element("HomeRealm")
                    .write_text_content(BytesText::new(realm))?;
            }
            for p in &creds.pcscf {
                w.create_element("PCSCF")
                    .write_text_content(BytesText::new(p))?;
            }
            Ok(())
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> DeviceCredentials {
        DeviceCredentials {
            impi: "0010950000001@ims.pktc.test".into(),
            impu: vec![
                "sip:+15551230001@ims.pktc.test".into(),
                "tel:+15551230001".into(),
            ],
            creds_type: CredsType::Password,
            credential: Zeroizing::new(b"s3cret<&>\"'".to_vec()),
            realm: Some("ims.pktc.test".into()),
            pcscf: vec!["pcscf.pktc.test".into()],
        }
    }

    #[test]
    fn renders_and_escapes() {
        let xml = render("00:10:95:00:00:01", &creds()).unwrap();
        let text = std::str::from_utf8(&xml).unwrap();
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(text.contains("<MacAddress>00:10:95:00:00:01</MacAddress>"));
        assert!(text.contains("<CredsType code=\"3\">password</CredsType>"));
        assert!(
            text.contains(">s3cret&lt;&amp;&gt;&quot;&apos;</Credentials>"),
            "{text}"
        );
        assert_eq!(text.matches("<IMPU>").count(), 2);
    }

    #[test]
    fn binary_credentials_are_base64() {
        let mut c = creds();
        c.creds_type = CredsType::PreSharedKey;
        c.credential = Zeroizing::new(vec![0, 1, 2, 0xff]);
        let xml = render("00:10:95:00:00:01", &c).unwrap();
        let text = std::str::from_utf8(&xml).unwrap();
        assert!(text.contains("<Credentials encoding=\"base64\">AAEC/w==</Credentials>"));
        // A password with a control character cannot be XML text either.
        c.creds_type = CredsType::Password;
        c.credential = Zeroizing::new(b"a\x01b".to_vec());
        let xml = render("00:10:95:00:00:01", &c).unwrap();
        assert!(
            std::str::from_utf8(&xml)
                .unwrap()
                .contains("encoding=\"base64\"")
        );
    }

    #[test]
    fn refuses_what_xml_cannot_carry() {
        let mut c = creds();
        c.impi = "bad\u{0}impi".into();
        assert!(render("x", &c).is_err());
        let mut c = creds();
        c.impu.clear();
        assert!(render("x", &c).is_err());
        let mut c = creds();
        c.creds_type = CredsType::None;
        assert!(c.validate().is_err(), "none with a value");
        c.credential = Zeroizing::new(Vec::new());
        let xml = render("x", &c).unwrap();
        assert!(!std::str::from_utf8(&xml).unwrap().contains("<Credentials"));
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", creds());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<11 bytes>"));
    }

    #[test]
    fn creds_type_names_and_codes() {
        for t in CredsType::ALL {
            assert_eq!(CredsType::parse(t.name()), Some(t));
            assert_eq!(CredsType::parse(&t.code().to_string()), Some(t));
        }
        assert_eq!(
            CredsType::parse("PRESHAREDKEY"),
            Some(CredsType::PreSharedKey)
        );
        assert_eq!(CredsType::parse("7"), None);
    }
}
