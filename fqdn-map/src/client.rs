//! The KDC's pkt-eue-7 client: asks a provisioning server (UDP, port 2246
//! by default) which FQDN and addresses belong to a device MAC.
//!
//! Each lookup tries the server's addresses in order (failover), each try
//! bounded by a timeout, with bounded retries and doubling backoff; a
//! semaphore bounds lookups in flight so a storm of devices cannot turn
//! into a storm of datagrams.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use krb::crypto::{ChecksumType, Key};
use krb::msg::time;
use krb::principal::Principal;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use crate::codec::{FqdnRequest, Message, decode};
use crate::framing::{FramingError, Requester};

/// What the provisioning server knows about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub fqdn: String,
    /// Empty when the server supplied none (a 1.x reply with 0.0.0.0).
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The server answered with an MTA FQDN Error Reply: it has no mapping
    /// for this MAC (INFERRED meaning; the 1.x error body is opaque).
    #[error("the provisioning server does not know this MAC")]
    UnknownMac,
    /// A reply we could not use (bad framing, wrong key, wrong message).
    #[error("provisioning server error: {0}")]
    MpsError(String),
    /// No usable reply from any address within the retries.
    #[error("no answer from the provisioning server")]
    Timeout,
    /// Too many lookups in flight.
    #[error("too many provisioning lookups in flight")]
    Busy,
}

/// Client settings (all configurable by the KDC's config).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub per_try_timeout: Duration,
    /// Rounds over all addresses after the first.
    pub retries: u32,
    /// Pause before the first retry round; doubles each round.
    pub backoff: Duration,
    pub max_in_flight: usize,
    /// Clock skew allowed for the reply's KRB_SAFE timestamp.
    pub skew: i64,
    pub enterprise: u32,
    pub checksum_type: Option<ChecksumType>,
    /// The reply's KRB_SAFE s-address must be the server's address (off
    /// when NAT rewrites it).
    pub check_sender: bool,
}

/// One provisioning server: its service principal, key and addresses.
pub struct MpsTarget {
    pub service: Principal,
    pub key: Key,
    pub kvno: u32,
    pub addresses: Vec<SocketAddr>,
}

pub struct MpsClient {
    cfg: ClientConfig,
    kdc_name: Principal,
    in_flight: Semaphore,
}

/// What the KDC knows about the device for the request.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    pub mac: [u8; 6],
    /// SHA-1 of the device public key.
    pub pubkey_hash: [u8; 20],
    /// Manufacturer certificate revocation time (Unix seconds, 0 = not revoked).
    pub revocation_time: u32,
}

impl MpsClient {
    pub fn new(cfg: ClientConfig, kdc_name: Principal) -> MpsClient {
        let permits = cfg.max_in_flight.max(1);
        MpsClient {
            cfg,
            kdc_name,
            in_flight: Semaphore::new(permits),
        }
    }

    /// Asks `mps` about `device`.
    pub async fn lookup(
        &self,
        mps: &MpsTarget,
        device: &DeviceFacts,
    ) -> Result<Binding, LookupError> {
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| LookupError::Busy)?;
        let user_data = Message::Request(FqdnRequest {
            enterprise: self.cfg.enterprise,
            mac: device.mac,
            pubkey_hash: device.pubkey_hash,
            revocation_time: device.revocation_time,
        })
        .encode()
        .map_err(|e| LookupError::MpsError(e.to_string()))?;
        let requester = Requester {
            kdc_name: &self.kdc_name,
            service: &mps.service,
            service_key: &mps.key,
            kvno: mps.kvno,
            checksum_type: self.cfg.checksum_type,
            ticket_life: 300,
        };
        let mut backoff = self.cfg.backoff;
        let mut last = LookupError::Timeout;
        for round in 0..=self.cfg.retries {
            if round > 0 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            for addr in &mps.addresses {
                match self.try_once(&requester, &user_data, *addr).await {
                    Ok(b) => return Ok(b),
                    // An authoritative "no such MAC" ends the lookup.
                    Err(LookupError::UnknownMac) => return Err(LookupError::UnknownMac),
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }

    async fn try_once(
        &self,
        requester: &Requester<'_>,
        user_data: &[u8],
        addr: SocketAddr,
    ) -> Result<Binding, LookupError> {
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(|_| LookupError::Timeout)?;
        let sock = UdpSocket::bind(local)
            .await
            .map_err(|e| LookupError::MpsError(e.to_string()))?;
        sock.connect(addr)
            .await
            .map_err(|e| LookupError::MpsError(e.to_string()))?;
        let sender = sock
            .local_addr()
            .map_err(|e| LookupError::MpsError(e.to_string()))?
            .ip();
        let (datagram, pending) = requester
            .request(user_data, sender, time::now())
            .map_err(|e| LookupError::MpsError(e.to_string()))?;
        sock.send(&datagram)
            .await
            .map_err(|e| LookupError::MpsError(e.to_string()))?;
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + self.cfg.per_try_timeout;
        let source = self.cfg.check_sender.then_some(addr.ip());
        // Why the datagrams received so far were dropped: the try's result
        // if ours never comes (a key or clock problem is then an error, not
        // a silent server).
        let mut dropped: Option<FramingError> = None;
        loop {
            let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Ok(Ok(n)) => n,
                // ICMP port unreachable and similar: this address is down.
                Ok(Err(_)) => return Err(LookupError::Timeout),
                Err(_) => {
                    return Err(dropped.map_or(LookupError::Timeout, |e| {
                        LookupError::MpsError(e.to_string())
                    }));
                }
            };
            match pending.open_reply(&buf[..n], source, time::now().0, self.cfg.skew) {
                Ok(data) => return interpret(&data),
                // Junk, or a reply to another request: ignored as before.
                Err(FramingError::NotOurReply | FramingError::Malformed(_)) => {}
                // A forged or damaged datagram: anyone can send one from a
                // spoofed source, so it must not end the try. Keep waiting
                // for ours until the deadline.
                Err(e) => dropped = Some(e),
            }
        }
    }
}

fn interpret(user_data: &[u8]) -> Result<Binding, LookupError> {
    match decode(user_data) {
        Ok(Message::Reply(r)) => Ok(Binding {
            fqdn: r.fqdn,
            addresses: if r.ipv4.is_unspecified() {
                Vec::new()
            } else {
                vec![IpAddr::V4(r.ipv4)]
            },
        }),
        Ok(Message::EueReply(r)) => Ok(Binding {
            fqdn: r.fqdn,
            addresses: r
                .ipv4
                .into_iter()
                .map(IpAddr::V4)
                .chain(r.ipv6.into_iter().map(IpAddr::V6))
                .collect(),
        }),
        Ok(Message::Error(_)) => Err(LookupError::UnknownMac),
        Ok(Message::Request(_)) => Err(LookupError::MpsError("server sent a request".into())),
        Err(e) => Err(LookupError::MpsError(e.to_string())),
    }
}
