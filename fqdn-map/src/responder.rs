//! The provisioning server's side of pkt-eue-7, for labs, tests and MPSs
//! that lack the interface: answers MTA FQDN Requests from a table of
//! MAC → FQDN + addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::codec::{EueReply, FqdnReply, Message, MessageError, decode};
use crate::framing::{Accepted, FramingError, Responder};

/// One device as DHCP configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub fqdn: String,
    pub addresses: Vec<IpAddr>,
}

/// The reply for `entry`: the PacketCable 1.x form when it has exactly one
/// address and it is IPv4 (or none: 0.0.0.0 = not supplied), else the E-UE
/// Table 1 form. Unknown MACs get an MTA FQDN Error Reply.
pub fn answer(entry: Option<&TableEntry>, enterprise: u32) -> Message {
    let Some(e) = entry else {
        return Message::Error(MessageError {
            enterprise,
            body: Vec::new(),
        });
    };
    match e.addresses.as_slice() {
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
        addrs => Message::EueReply(EueReply {
            enterprise,
            ipv4: addrs
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V4(v) => Some(*v),
                    _ => None,
                })
                .collect::<Vec<Ipv4Addr>>(),
            ipv6: addrs
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V6(v) => Some(*v),
                    _ => None,
                })
                .collect::<Vec<Ipv6Addr>>(),
            fqdn: e.fqdn.clone(),
        }),
    }
}

/// Why a request datagram got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error("not an MTA FQDN Request: {0}")]
    NotARequest(String),
}

/// Handles one request datagram: the reply datagram and the MAC asked about.
pub fn respond(
    responder: &Responder<'_>,
    table: &HashMap<[u8; 6], TableEntry>,
    datagram: &[u8],
    local: IpAddr,
    now: (i64, u32),
) -> Result<(Vec<u8>, [u8; 6]), RespondError> {
    let accepted: Accepted = responder.accept(datagram, now.0)?;
    let req = match decode(&accepted.user_data) {
        Ok(Message::Request(r)) => r,
        Ok(other) => return Err(RespondError::NotARequest(format!("{other:?}"))),
        Err(e) => return Err(RespondError::NotARequest(e.to_string())),
    };
    let msg = answer(table.get(&req.mac), req.enterprise);
    let user_data = msg
        .encode()
        .map_err(|e| RespondError::NotARequest(e.to_string()))?;
    Ok((responder.reply(&accepted, &user_data, local, now)?, req.mac))
}

/// Serves pkt-eue-7 on `sock` until the task is dropped: each request
/// datagram that authenticates gets the table's answer. Datagrams that do
/// not authenticate get no reply (a provisioning server should not answer
/// strangers); `on_request` sees every outcome (for logs and metrics).
pub async fn serve<K, T, F>(
    sock: tokio::net::UdpSocket,
    keys: K,
    table: T,
    skew: i64,
    mut on_request: F,
) where
    K: Fn(krb::crypto::EncType, Option<u32>) -> Option<krb::crypto::Key> + Sync,
    T: Fn() -> std::sync::Arc<HashMap<[u8; 6], TableEntry>>,
    F: FnMut(std::net::SocketAddr, &Result<[u8; 6], RespondError>),
{
    let replay = krb::replay::ReplayCache::new(
        std::time::Duration::from_secs(2 * skew.max(1) as u64),
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
            skew,
            replay: &replay,
            checksum_type: None,
        };
        let current = table();
        let result = respond(
            &responder,
            &current,
            &buf[..n],
            local,
            krb::msg::time::now(),
        );
        let outcome = result
            .as_ref()
            .map(|(_, mac)| *mac)
            .map_err(|e| RespondError::NotARequest(e.to_string()));
        if let Ok((reply, _)) = result {
            let _ = sock.send_to(&reply, peer).await;
        }
        on_request(peer, &outcome);
    }
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
    fn reply_form_follows_the_entry() {
        assert!(
            matches!(answer(Some(&entry(&["10.0.0.1"])), 1), Message::Reply(r) if r.ipv4 == Ipv4Addr::new(10, 0, 0, 1))
        );
        assert!(
            matches!(answer(Some(&entry(&[])), 1), Message::Reply(r) if r.ipv4.is_unspecified())
        );
        assert!(
            matches!(answer(Some(&entry(&["::1"])), 1), Message::EueReply(r) if r.ipv6.len() == 1 && r.ipv4.is_empty())
        );
        assert!(
            matches!(answer(Some(&entry(&["10.0.0.1", "10.0.0.2"])), 1), Message::EueReply(r) if r.ipv4.len() == 2)
        );
        assert!(matches!(answer(None, 4491), Message::Error(e) if e.enterprise == 4491));
    }
}
