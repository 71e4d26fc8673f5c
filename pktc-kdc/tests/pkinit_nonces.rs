//! Nonces as real clients send them: a PKAuthenticator nonce of its own in
//! the PacketCable form (RFC 4556 §3.2.1 and shared PROTOCOL.md §1.3 item 5:
//! no equality with the body nonce), and a KDC-REQ-BODY nonce encoded as a
//! negative 32-bit INTEGER, as Heimdal's clients encode about half of theirs.

mod pklab;

use std::path::Path;

use krb::msg::time;
use pkinit::client::Profile;
use pklab::{Lab, Sent, code, open_rfc4556};
use testkit::DevKdc;

/// The PacketCable form takes a PKAuthenticator nonce other than the body
/// nonce too (no PacketCable source asks for equality) and echoes it in
/// ReplyKeyPack.
#[test]
fn packetcable_form_with_its_own_pkauthenticator_nonce() {
    let lab = Lab::new(DevKdc::start(Path::new(pklab::KDC)));
    let dev = lab.device(0);
    let (body_nonce, pk_nonce) = (41, 0x7777_0001);
    let req = lab.request(&dev, &lab.service, body_nonce, |body| {
        pkinit::client::packetcable_padata(
            &dev.identity,
            body,
            pk_nonce,
            time::now(),
            Some("mps.pktc.test"),
        )
        .unwrap()
    });
    let reply = lab.kdc.tcp(&req);
    assert_eq!(code(&reply), 0, "{}", lab.kdc.log());
    let krb::msg::AsRep(rep) = krb::msg::decode("AS-REP", &reply).unwrap();
    let pa = rep
        .padata
        .unwrap()
        .into_iter()
        .find(|p| p.r#type == 15)
        .unwrap();
    let key =
        pkinit::client::open_packetcable_reply(&pa.value, &dev.identity, &lab.sp_trust, pk_nonce)
            .expect("ReplyKeyPack echoes the PKAuthenticator nonce");
    krb::client::open_as_rep(&reply, &key, body_nonce).unwrap();
}

/// `msg` with the TLV `old` (a sub-slice of it) replaced by `new` and the
/// lengths of the TLVs on the way (`path`, outermost first) fixed.
fn splice_tlv(path: &[&[u8]], old: &[u8], new: &[u8]) -> Vec<u8> {
    use krb::msg::raw::{read_tlv, tlv};
    let Some((outer, inner_path)) = path.split_first() else {
        return new.to_vec();
    };
    let (t, _) = read_tlv(outer).unwrap();
    let child = inner_path.first().copied().unwrap_or(old);
    let at = child.as_ptr() as usize - t.content.as_ptr() as usize;
    let replaced = splice_tlv(inner_path, old, new);
    tlv(
        t.tag,
        &[&t.content[..at], &replaced, &t.content[at + child.len()..]].concat(),
    )
}

/// An RFC 4556 request whose KDC-REQ-BODY nonce is a negative 4-byte
/// INTEGER, as Heimdal encodes its nonces about half the time, with the
/// paChecksum over those exact bytes: served, the reply's nonce checked.
#[test]
fn negative_body_nonce_as_heimdal_sends_it() {
    use krb::msg::raw::{kdc_req_body, read_tlv};
    let lab = Lab::new(DevKdc::start(Path::new(pklab::KDC)));
    let dev = lab.device(0);
    let nonce: u32 = 0xa385_1474;
    let body = krb::client::RequestBody {
        client: Some(&dev.principal),
        server: &lab.tgs,
        etypes: &krb::crypto::EncType::ALL,
        nonce,
        till: time::now().0 + 3600,
        rtime: None,
        options: krb::client::default_options(),
    };
    let unsigned_body = krb::msg::encode("KDC-REQ-BODY", &body.to_asn1().unwrap()).unwrap();
    let (seq, _) = read_tlv(&unsigned_body).unwrap();
    let mut rest = seq.content;
    let nonce_field = loop {
        let (f, r) = read_tlv(rest).unwrap();
        if f.tag == 0xa7 {
            break f.whole;
        }
        rest = r;
    };
    assert_eq!(
        &nonce_field[2..],
        [0x02, 0x05, 0x00, 0xa3, 0x85, 0x14, 0x74]
    );
    let signed_field = [0xa7, 0x06, 0x02, 0x04, 0xa3, 0x85, 0x14, 0x74];
    let signed_body = splice_tlv(&[&unsigned_body], nonce_field, &signed_field);
    let pa = pkinit::client::rfc4556_padata_with(
        &dev.identity,
        &signed_body,
        nonce,
        time::now(),
        None,
        &Profile::default(),
    )
    .unwrap();
    let request = krb::client::as_req(&body, vec![pa]).unwrap();
    let old_body = kdc_req_body(&request).unwrap();
    let (app, _) = read_tlv(&request).unwrap();
    let (req_seq, _) = read_tlv(app.content).unwrap();
    let mut fields = req_seq.content;
    let body_field = loop {
        let (f, r) = read_tlv(fields).unwrap();
        if f.tag == 0xa4 {
            break f.whole;
        }
        fields = r;
    };
    let signed_request = splice_tlv(
        &[&request, req_seq.whole, body_field],
        old_body,
        &signed_body,
    );
    assert_eq!(
        kdc_req_body(&signed_request).unwrap(),
        signed_body.as_slice()
    );
    let reply = lab.kdc.tcp(&signed_request);
    let sent = Sent {
        bytes: signed_request,
        body_nonce: nonce,
        pk_nonce: nonce,
        cname: dev.principal.clone(),
        sname: lab.tgs.clone(),
        dh: None,
        client_dh_nonce: None,
    };
    open_rfc4556(&sent, &reply, &dev, &lab.sp_trust)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.kdc.log()));
}
