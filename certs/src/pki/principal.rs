//! KRB5PrincipalName (RFC 4556 §3.2.2), the value of the id-pkinit-san otherName.

use rasn::prelude::*;

use super::PkiError;

/// NT-SRV-INST, the name type of `krbtgt/REALM`.
pub const NT_SRV_INST: i32 = 2;

/// `KRB5PrincipalName ::= SEQUENCE { realm [0] Realm, principalName [1] PrincipalName }`
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct Krb5PrincipalName {
    #[rasn(tag(explicit(0)))]
    pub realm: GeneralString,
    #[rasn(tag(explicit(1)))]
    pub principal_name: PrincipalName,
}

/// `PrincipalName ::= SEQUENCE { name-type [0] Int32, name-string [1] SEQUENCE OF KerberosString }`
#[derive(AsnType, Encode, Decode, Debug, Clone, PartialEq, Eq)]
pub struct PrincipalName {
    #[rasn(tag(explicit(0)))]
    pub name_type: i32,
    #[rasn(tag(explicit(1)))]
    pub name_string: Vec<GeneralString>,
}

fn general_string(s: &str) -> Result<GeneralString, PkiError> {
    GeneralString::from_bytes(s.as_bytes()).map_err(|e| PkiError::Asn1(format!("{s:?}: {e}")))
}

/// DER of `krbtgt/REALM@REALM` as a KRB5PrincipalName.
pub fn krbtgt_principal_der(realm: &str) -> Result<Vec<u8>, PkiError> {
    let name = Krb5PrincipalName {
        realm: general_string(realm)?,
        principal_name: PrincipalName {
            name_type: NT_SRV_INST,
            name_string: vec![general_string("krbtgt")?, general_string(realm)?],
        },
    };
    rasn::der::encode(&name).map_err(|e| PkiError::Asn1(e.to_string()))
}
