//! The provisioning server's side of pkt-eue-7, for labs, tests and MPSs
//! that lack the interface: answers MTA FQDN Requests from a table of
//! MAC → FQDN + addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::codec::{EueReply, FqdnReply, Message, MessageError, decode};
use crate::framing::{AcceptPolicy, Accepted, FramingError, Responder};

/// One device as DHCP configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub fqdn: String,
    pub addresses: Vec<IpAddr>,
}

/// Which form a known device's reply takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyForm {
    /// The PacketCable 1.x form when the device has at most one address and
    /// it is IPv4, else the E-UE Table 1 form (PKT-SP-EUE-PROV-I05 §6.1.7).
    #[default]
    Auto,
    /// Always the E-UE Table 1 form: §6.1.7 says provisioning servers in
    /// networks with IPv6 clients "MUST support and use" it.
    Table1,
}

/// The reply for `entry`: in the `Auto` form, the PacketCable 1.x form when
/// it has exactly one address and it is IPv4 (or none: 0.0.0.0 = not
/// supplied), else the E-UE Table 1 form; in the `Table1` form always
/// Table 1. Unknown MACs get an MTA FQDN Error Reply.
pub fn answer(entry: Option<&TableEntry>, enterprise: u32, form: ReplyForm) -> Message {
    let Some(e) = entry else {
        return Message::Error(MessageError {
            enterprise,
            body: Vec::new(),
        });
    };
    match e.addresses.as_slice() {
        _ if form == ReplyForm::Table1 => table1(e, enterprise),
        [] => Message::Reply(FqdnReply {
            enterprise,
            fqdn: e.fqdn.clone(),
            ipv4: Ipv4Addr::UNSPECIFIED,
        }),
        [IpAddr::V4(v4)] => Message::Reply(FqdnReply {
            enterprise,
            fqdn: e.fqdn.clone(),
            ipv4: *v4,
        }),
        _ => table1(e, enterprise),
    }
}

/// The E-UE Table 1 reply (eUE FQDN and IP Reply) for `e`.
fn table1(e: &TableEntry, enterprise: u32) -> Message {
    Message::EueReply(EueReply {
        enterprise,
        ipv4: e
            .addresses
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v) => Some(*v),
                _ => None,
            })
            .collect::<Vec<Ipv4Addr>>(),
        ipv6: e
            .addresses
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(v) => Some(*v),
                _ => None,
            })
            .collect::<Vec<Ipv6Addr>>(),
        fqdn: e.fqdn.clone(),
    })
}

/// Why a request datagram got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error("not an MTA FQDN Request: {0}")]
    NotARequest(String),
    #[error("device store unavailable: {0}")]
    Store(String),
}

/// Handles one request datagram from `source` against a table: the reply
/// datagram and the MAC asked about.
pub fn respond(
    responder: &Responder<'_>,
    table: &HashMap<[u8; 6], TableEntry>,
    datagram: &[u8],
    source: IpAddr,
    local: IpAddr,
    now: (i64, u32),
    form: ReplyForm,
) -> Result<(Vec<u8>, [u8; 6]), RespondError> {
    let (accepted, req) = accept_request(responder, datagram, source, now.0)?;
    let reply = reply_to(
        responder,
        &accepted,
        (table.get(&req.mac), form),
        req.enterprise,
        local,
        now,
    )?;
    Ok((reply, req.mac))
}

/// Serves pkt-eue-7 on `sock` until the task is dropped: each request
/// datagram that authenticates gets the answer `lookup` gives for its MAC
/// (a table snapshot, or an async store such as Redis; `Ok(None)` = unknown
/// MAC, answered with an error reply; `Err` = the store failed, answered with
/// nothing so the KDC neither caches nor trusts it). Datagrams that do
/// not authenticate, or whose ticket is not the KDC's (`policy`), get no
/// reply (a provisioning server should not answer strangers); known devices
/// are answered in reply form `form`; `on_request` sees every outcome (for
/// logs and metrics).
pub async fn serve<K, L, Fut, F>(
    sock: tokio::net::UdpSocket,
    keys: K,
    lookup: L,
    policy: AcceptPolicy,
    form: ReplyForm,
    mut on_request: F,
) where
    K: Fn(
            &krb::principal::Principal,
            krb::crypto::EncType,
            Option<u32>,
        ) -> Option<krb::crypto::Key>
        + Sync,
    L: Fn([u8; 6]) -> Fut,
    Fut: std::future::Future<Output = Result<Option<TableEntry>, String>>,
    F: FnMut(std::net::SocketAddr, &Result<[u8; 6], RespondError>),
{
    let replay = krb::replay::ReplayCache::new(
        std::time::Duration::from_secs(2 * policy.skew.max(1) as u64),
        100_000,
    );
    let local = sock
        .local_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let responder = Responder {
            keys: &keys,
            policy: &policy,
            replay: &replay,
            checksum_type: None,
        };
        let now = krb::msg::time::now();
        let outcome = match accept_request(&responder, &buf[..n], peer.ip(), now.0) {
            Ok((accepted, req)) => match lookup(req.mac).await {
                Ok(entry) => {
                    let reply = reply_to(
                        &responder,
                        &accepted,
                        (entry.as_ref(), form),
                        req.enterprise,
                        sender_address(local, peer),
                        now,
                    );
                    match reply {
                        Ok(reply) => {
                            let _ = sock.send_to(&reply, peer).await;
                            Ok(req.mac)
                        }
                        Err(e) => Err(e),
                    }
                }
                // The store failed: no answer (the KDC must not read it as "unknown MAC").
                Err(e) => Err(RespondError::Store(e)),
            },
            Err(e) => Err(e),
        };
        on_request(peer, &outcome);
    }
}

/// The address our replies to `peer` leave from (the KRB_SAFE s-address):
/// the socket's own, or, for a wildcard socket, the one the kernel routes
/// from (asked with a connected UDP socket, which sends nothing).
fn sender_address(local: IpAddr, peer: std::net::SocketAddr) -> IpAddr {
    if !local.is_unspecified() {
        return local;
    }
    let any: std::net::SocketAddr = match peer {
        std::net::SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        std::net::SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    std::net::UdpSocket::bind(any)
        .and_then(|s| s.connect(peer).and_then(|()| s.local_addr()))
        .map_or(local, |a| a.ip())
}

/// Checks a request datagram from `source` and decodes its MTA FQDN Request.
pub fn accept_request(
    responder: &Responder<'_>,
    datagram: &[u8],
    source: IpAddr,
    now: i64,
) -> Result<(Accepted, crate::codec::FqdnRequest), RespondError> {
    let accepted: Accepted = responder.accept(datagram, source, now)?;
    match decode(&accepted.user_data) {
        Ok(Message::Request(r)) => Ok((accepted, r)),
        Ok(other) => Err(RespondError::NotARequest(format!("{other:?}"))),
        Err(e) => Err(RespondError::NotARequest(e.to_string())),
    }
}

/// The reply datagram answering an accepted request with `entry` in `form`.
/// `enterprise` is the request's (1 or 4491: the decoder refuses others),
/// so a KDC gets back the number it sent.
pub fn reply_to(
    responder: &Responder<'_>,
    accepted: &Accepted,
    (entry, form): (Option<&TableEntry>, ReplyForm),
    enterprise: u32,
    local: IpAddr,
    now: (i64, u32),
) -> Result<Vec<u8>, RespondError> {
    let user_data = answer(entry, enterprise, form)
        .encode()
        .map_err(|e| RespondError::NotARequest(e.to_string()))?;
    Ok(responder.reply(accepted, &user_data, local, now)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(addrs: &[&str]) -> TableEntry {
        TableEntry {
            fqdn: "d.pktc.test".into(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn a_wildcard_socket_replies_from_the_routed_address() {
        let peer: std::net::SocketAddr = "127.0.0.1:2246".parse().unwrap();
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(sender_address(any, peer), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let bound: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(sender_address(bound, peer), bound);
    }

    #[test]
    fn reply_form_follows_the_entry() {
        let auto = ReplyForm::Auto;
        assert!(
            matches!(answer(Some(&entry(&["10.0.0.1"])), 1, auto), Message::Reply(r) if r.ipv4 == Ipv4Addr::new(10, 0, 0, 1))
        );
        assert!(
            matches!(answer(Some(&entry(&[])), 1, auto), Message::Reply(r) if r.ipv4.is_unspecified())
        );
        assert!(
            matches!(answer(Some(&entry(&["::1"])), 1, auto), Message::EueReply(r) if r.ipv6.len() == 1 && r.ipv4.is_empty())
        );
        assert!(
            matches!(answer(Some(&entry(&["10.0.0.1", "10.0.0.2"])), 1, auto), Message::EueReply(r) if r.ipv4.len() == 2)
        );
        assert!(
            matches!(answer(Some(&entry(&["10.0.0.1", "::1"])), 1, auto), Message::EueReply(r) if r.ipv4.len() == 1 && r.ipv6.len() == 1)
        );
        assert!(matches!(answer(None, 4491, auto), Message::Error(e) if e.enterprise == 4491));
    }

    #[test]
    fn table1_form_is_used_for_every_known_device() {
        let t1 = ReplyForm::Table1;
        assert!(
            matches!(answer(Some(&entry(&["10.0.0.1"])), 1, t1), Message::EueReply(r) if r.ipv4 == [Ipv4Addr::new(10, 0, 0, 1)] && r.ipv6.is_empty())
        );
        assert!(
            matches!(answer(Some(&entry(&[])), 1, t1), Message::EueReply(r) if r.ipv4.is_empty() && r.ipv6.is_empty() && r.fqdn == "d.pktc.test")
        );
        // Unknown MACs still get the error reply: Table 1 has no "unknown" form.
        assert!(matches!(answer(None, 1, t1), Message::Error(_)));
    }
}
