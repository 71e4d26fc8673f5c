//! TGS checks on what the client brings besides its TGT: authorization
//! data it asks to add, and the address it asks from.

use std::net::IpAddr;

use krb::msg::{self, asn1};

use crate::kerr::KdcError;
use crate::reason::Reason;

/// Authorization-data types only a KDC may put in a ticket (MIT's list in
/// kdc_authdata.c): AD-KDC-ISSUED, CAMMAC, AUTH-INDICATOR, WIN2K-PAC and
/// MIT's SIGNTICKET. A client that could add them would forge what
/// services trust as the KDC's word.
const KDC_ONLY: [(i32, &str); 5] = [
    (4, "AD-KDC-ISSUED"),
    (96, "CAMMAC"),
    (97, "AUTH-INDICATOR"),
    (128, "WIN2K-PAC"),
    (512, "SIGNTICKET"),
];
/// AD-IF-RELEVANT: a container whose elements are looked into too.
const IF_RELEVANT: i32 = 1;
/// AD-MANDATORY-FOR-KDC: the KDC must understand every element; it
/// understands none, so it refuses (as MIT does).
const MANDATORY_FOR_KDC: i32 = 8;
/// Containers nested deeper than this are refused rather than walked.
const MAX_DEPTH: usize = 4;

/// Refuses client-supplied authorization data the KDC alone may issue,
/// also inside AD-IF-RELEVANT containers, with KDC_ERR_POLICY.
pub fn check_client_authdata(ad: &asn1::AuthorizationData) -> Result<(), KdcError> {
    walk(ad, 0)
}

fn walk(ad: &asn1::AuthorizationData, depth: usize) -> Result<(), KdcError> {
    for element in ad {
        if let Some((_, name)) = KDC_ONLY.iter().find(|(t, _)| *t == element.r#type) {
            return Err(KdcError::new(Reason::AuthdataKdcOnly).text(format!(
                "{name} authorization data is issued by the KDC only"
            )));
        }
        match element.r#type {
            MANDATORY_FOR_KDC => {
                return Err(KdcError::new(Reason::AuthdataMandatoryForKdc)
                    .text("AD-MANDATORY-FOR-KDC is not supported"));
            }
            IF_RELEVANT => {
                // Unreadable or too deep: it cannot be checked, so it is not carried.
                let inner: asn1::AuthorizationData = msg::decode("AD-IF-RELEVANT", &element.data)
                    .ok()
                    .filter(|_| depth < MAX_DEPTH)
                    .ok_or_else(|| {
                        KdcError::new(Reason::AuthdataContainerUnreadable)
                            .text("AD-IF-RELEVANT that cannot be checked")
                    })?;
                walk(&inner, depth + 1)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// RFC 4120 §3.3.3.1: a TGT with addresses is good only from one of them;
/// without addresses, from anywhere. KRB_AP_ERR_BADADDR otherwise.
pub fn check_ticket_address(
    caddr: Option<&asn1::HostAddresses>,
    source: IpAddr,
) -> Result<(), KdcError> {
    let Some(addrs) = caddr.filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let source = source.to_canonical();
    if addrs
        .iter()
        .any(|a| msg::address::ip_address(a) == Some(source))
    {
        return Ok(());
    }
    Err(KdcError::new(Reason::TicketAddressMismatch)
        .text("the ticket is not valid from this address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use krb::msg::HostAddress;
    use krb::msg::consts::err;

    fn ad(t: i32, data: Vec<u8>) -> asn1::AuthorizationDataValue {
        asn1::AuthorizationDataValue {
            r#type: t,
            data: data.into(),
        }
    }

    fn if_relevant(inner: Vec<asn1::AuthorizationDataValue>) -> asn1::AuthorizationDataValue {
        ad(IF_RELEVANT, msg::encode("AD-IF-RELEVANT", &inner).unwrap())
    }

    #[test]
    fn kdc_only_types_are_refused_at_any_depth() {
        assert!(check_client_authdata(&vec![ad(-1, vec![1]), ad(71, vec![])]).is_ok());
        for (t, _) in KDC_ONLY {
            let e = check_client_authdata(&vec![ad(t, vec![])]).unwrap_err();
            assert_eq!(
                (e.code, e.reason),
                (err::KDC_ERR_POLICY, Reason::AuthdataKdcOnly)
            );
            let nested = vec![if_relevant(vec![if_relevant(vec![ad(t, vec![])])])];
            assert_eq!(
                check_client_authdata(&nested).unwrap_err().code,
                err::KDC_ERR_POLICY
            );
        }
        assert!(check_client_authdata(&vec![if_relevant(vec![ad(-5, vec![])])]).is_ok());
        let mut deep = ad(-5, vec![]);
        for _ in 0..=MAX_DEPTH + 1 {
            deep = if_relevant(vec![deep]);
        }
        assert_eq!(
            check_client_authdata(&vec![deep]).unwrap_err().reason,
            Reason::AuthdataContainerUnreadable
        );
        assert_eq!(
            check_client_authdata(&vec![ad(IF_RELEVANT, vec![0x30, 0x05])])
                .unwrap_err()
                .reason,
            Reason::AuthdataContainerUnreadable
        );
        assert_eq!(
            check_client_authdata(&vec![ad(MANDATORY_FOR_KDC, vec![])])
                .unwrap_err()
                .reason,
            Reason::AuthdataMandatoryForKdc
        );
    }

    #[test]
    fn addresses() {
        let v4 = |a: [u8; 4]| HostAddress {
            addr_type: HostAddress::IPV4,
            address: a.to_vec().into(),
        };
        let list = vec![v4([10, 0, 0, 1])];
        assert!(check_ticket_address(None, "192.0.2.1".parse().unwrap()).is_ok());
        assert!(check_ticket_address(Some(&vec![]), "192.0.2.1".parse().unwrap()).is_ok());
        assert!(check_ticket_address(Some(&list), "10.0.0.1".parse().unwrap()).is_ok());
        assert!(check_ticket_address(Some(&list), "::ffff:10.0.0.1".parse().unwrap()).is_ok());
        let e = check_ticket_address(Some(&list), "10.0.0.2".parse().unwrap()).unwrap_err();
        assert_eq!(e.code, err::KRB_AP_ERR_BADADDR);
    }
}
