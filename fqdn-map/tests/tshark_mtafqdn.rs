//! Wireshark's own PacketCable MTA FQDN dissector (`pktc.mtafqdn`) decodes
//! our pkt-eue-7 datagrams: message type, enterprise number (1 and 4491),
//! MAC, FQDN and IPv4 with the values we sent, and no malformed-packet or warning expert info.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use fqdn_map::codec::{CABLELABS_ENTERPRISE, DEFAULT_ENTERPRISE, FqdnReply, FqdnRequest, Message};
use fqdn_map::framing::{AcceptPolicy, Requester, Responder};
use krb::crypto::{EncType, Key};
use krb::msg::time;
use krb::principal::Principal;
use krb::replay::ReplayCache;
use testkit::wire::{CLIENT, SERVER, pcap, per_frame, problems, tshark, udp_frame};

const PORT: u16 = 52246;

fn exchange(reply: Message) -> (Vec<u8>, Vec<u8>) {
    let kdc = Principal::krbtgt("PKTC.TEST");
    let service = Principal::service_host("mtaprovsrvr", "mps.pktc.test", "PKTC.TEST");
    let key = Key::random(EncType::Aes128CtsHmacSha196);
    let replay = ReplayCache::new(Duration::from_secs(600), 1000);
    let keys = |_: &Principal, _: EncType, _: Option<u32>| Some(key.clone());
    let policy = AcceptPolicy::krbtgt_of(["PKTC.TEST"], 300);
    let req = Message::Request(FqdnRequest {
        enterprise: DEFAULT_ENTERPRISE,
        mac: [0x00, 0x10, 0x95, 0xAB, 0xCD, 0xEF],
        pubkey_hash: [0x5A; 20],
        revocation_time: 0,
    });
    let requester = Requester {
        kdc_name: &kdc,
        service: &service,
        service_key: &key,
        kvno: 1,
        checksum_type: None,
        ticket_life: 300,
    };
    let now = time::now();
    let (request, _) = requester
        .request(
            &req.encode().unwrap(),
            IpAddr::V4(Ipv4Addr::from(CLIENT)),
            now,
        )
        .unwrap();
    let responder = Responder {
        keys: &keys,
        policy: &policy,
        replay: &replay,
        checksum_type: None,
    };
    let accepted = responder
        .accept(&request, IpAddr::V4(Ipv4Addr::from(CLIENT)), now.0)
        .unwrap();
    let reply = responder
        .reply(
            &accepted,
            &reply.encode().unwrap(),
            IpAddr::V4(Ipv4Addr::from(SERVER)),
            now,
        )
        .unwrap();
    (request, reply)
}

#[test]
fn wireshark_mtafqdn_dissector_reads_our_datagrams() {
    // Our default enterprise number (1) in the request, CableLabs' 4491 in
    // the reply: Wireshark reads both.
    let (request, reply) = exchange(Message::Reply(FqdnReply {
        enterprise: CABLELABS_ENTERPRISE,
        fqdn: "mta-0010950abcdef.pktc.test".into(),
        ipv4: Ipv4Addr::new(10, 20, 30, 40),
    }));
    let (_, eue_reply) = exchange(Message::EueReply(fqdn_map::EueReply {
        enterprise: 4491,
        ipv4: vec![Ipv4Addr::new(10, 20, 30, 41)],
        ipv6: vec!["2001:db8::41".parse().unwrap()],
        fqdn: "eue-41.pktc.test".into(),
    }));
    let frames = vec![
        udp_frame(CLIENT, SERVER, 40001, PORT, &request),
        udp_frame(SERVER, CLIENT, PORT, 40001, &reply),
        udp_frame(SERVER, CLIENT, PORT, 40001, &eue_reply),
    ];
    let dir = testkit::TempDir::new("mtafqdn");
    let file = dir.path("mtafqdn.pcap");
    std::fs::write(&file, pcap(&frames)).unwrap();
    let f = file.to_str().unwrap();
    let decode_as = format!("udp.port=={PORT},pktc.mtafqdn");
    let verbose = tshark(&["-r", f, "-d", &decode_as, "-V"]);
    if let Ok(keep) = std::env::var("TSHARK_PCAP") {
        std::fs::copy(&file, keep).unwrap();
    }
    let per = per_frame(&verbose);
    assert_eq!(per.len(), 3, "{verbose}");
    let want_request = [
        "msg-type: krb-ap-req (14)",
        "msg-type: krb-safe (20)",
        "Message Type: MTA FQDN Request (1)",
        "Enterprise Number: 1\n",
        "Protocol Version: 1",
        "(00:10:95:ab:cd:ef)",
        "MTA Public Key Hash: 5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
    ];
    for w in want_request {
        assert!(per[0].contains(w), "request frame lacks {w:?}:\n{}", per[0]);
    }
    let want_reply = [
        "msg-type: krb-ap-rep (15)",
        "Message Type: MTA FQDN Reply (2)",
        "Enterprise Number: 4491",
        "MTA FQDN: mta-0010950abcdef.pktc.test",
        "MTA IP Address: 10.20.30.40",
    ];
    for w in want_reply {
        assert!(per[1].contains(w), "reply frame lacks {w:?}:\n{}", per[1]);
    }
    // Wireshark knows type 3 only as the 1.x error reply: it shows the
    // header of our E-UE (type 3, version 2) reply and nothing more.
    assert!(per[2].contains("Protocol Version: 2"), "{}", per[2]);
    println!(
        "E-UE reply as Wireshark sees it:\n{}",
        per[2]
            .lines()
            .filter(|l| l.contains("Message Type") || l.contains("Version: 2"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        problems(&verbose).is_empty(),
        "tshark reported problems: {:?}",
        problems(&verbose)
    );
}
