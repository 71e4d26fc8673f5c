//! The KDC side of the enterprise-number rule (PKT-SP-EUE-PROV-I05 Table 1,
//! "1 = PacketCable"): a reply carrying 1 or CableLabs' 4491 is used
//! whatever the request carried; any other number makes the reply
//! malformed, never a binding. The provisioning server here is a raw
//! responder that answers every request with fixed user-data bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use fqdn_map::client::{Binding, ClientConfig, DeviceFacts, LookupError, MpsClient, MpsTarget};
use fqdn_map::framing::{AcceptPolicy, Responder};
use krb::crypto::{EncType, Key};
use krb::principal::Principal;
use krb::replay::ReplayCache;
use tokio::net::UdpSocket;

/// A 1.x reply for `mta1.pktc.test` at 127.0.0.1 with this enterprise number.
fn reply_bytes(enterprise: u32) -> Vec<u8> {
    let mut b = vec![2];
    b.extend_from_slice(&enterprise.to_be_bytes());
    b.push(1);
    b.extend_from_slice(b"mta1.pktc.test");
    b.extend_from_slice(&[127, 0, 0, 1]);
    b
}

/// Answers every authenticated request with `user_data`.
async fn fixed_responder(key: Key, user_data: Vec<u8>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let replay = ReplayCache::new(Duration::from_secs(600), 1000);
        let keys = |_: &Principal, _: EncType, _: Option<u32>| Some(key.clone());
        let policy = AcceptPolicy::krbtgt_of(["PKTC.TEST"], 300);
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, peer) = sock.recv_from(&mut buf).await.unwrap();
            let r = Responder {
                keys: &keys,
                policy: &policy,
                replay: &replay,
                checksum_type: None,
            };
            let now = krb::msg::time::now();
            let accepted = r.accept(&buf[..n], peer.ip(), now.0).unwrap();
            let reply = r
                .reply(&accepted, &user_data, IpAddr::V4(Ipv4Addr::LOCALHOST), now)
                .unwrap();
            sock.send_to(&reply, peer).await.unwrap();
        }
    });
    addr
}

async fn lookup(enterprise_sent: u32, reply: Vec<u8>) -> Result<Binding, LookupError> {
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    let addr = fixed_responder(key.clone(), reply).await;
    let client = MpsClient::new(
        ClientConfig {
            per_try_timeout: Duration::from_millis(500),
            retries: 0,
            backoff: Duration::from_millis(10),
            max_in_flight: 4,
            skew: 300,
            enterprise: enterprise_sent,
            checksum_type: None,
            check_sender: true,
        },
        Principal::krbtgt("PKTC.TEST"),
    );
    let target = MpsTarget {
        service: Principal::service_host("mtaprovsrvr", "mps.pktc.test", "PKTC.TEST"),
        key,
        kvno: 1,
        addresses: vec![addr],
    };
    let device = DeviceFacts {
        mac: [0, 0x10, 0x95, 0, 0, 1],
        pubkey_hash: [9; 20],
        revocation_time: 0,
    };
    client.lookup(&target, &device).await
}

#[tokio::test]
async fn replies_with_1_or_4491_are_used_others_are_malformed() {
    let bound = Binding {
        fqdn: "mta1.pktc.test".into(),
        addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
    };
    for (sent, replied) in [(1, 1), (1, 4491), (4491, 1), (4491, 4491)] {
        assert_eq!(
            lookup(sent, reply_bytes(replied)).await,
            Ok(bound.clone()),
            "sent {sent}, replied {replied}"
        );
    }
    for replied in [0u32, 7, 4490, 0x8b11_0000, u32::MAX] {
        match lookup(1, reply_bytes(replied)).await {
            Err(LookupError::MpsError(e)) => {
                assert!(e.contains(&format!("enterprise number {replied}")), "{e}")
            }
            other => panic!("enterprise {replied}: {other:?}"),
        }
    }
    // The client refuses to send another number itself.
    assert!(matches!(
        lookup(7, reply_bytes(1)).await,
        Err(LookupError::MpsError(e)) if e.contains("enterprise number 7")
    ));
}
