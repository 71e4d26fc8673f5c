//! Audit lines name the real exchange: a TGS request refused before its
//! server is looked at still logs the server it asked for (not "-"). (The
//! PKINIT form label of refused DH requests is checked by the rows of
//! pkinit_matrix.rs.)

mod common;

use std::path::Path;

use common::{KDC, Realm, edit_ap_req, error_code};
use krb::client;
use krb::msg::consts::err;
use testkit::DevKdc;

#[test]
fn refused_tgs_request_logs_the_requested_server() {
    let r = Realm::start(DevKdc::start(Path::new(KDC)));
    let tgt = r.tgt(client::default_options());
    // A corrupted authenticator: refused long before the server lookup.
    let req = r.tgs_req_with(&tgt, 4242, |req| {
        edit_ap_req(req, |ap| {
            let mut c = ap.authenticator.cipher.to_vec();
            c[20] ^= 0x01;
            ap.authenticator.cipher = c.into();
        })
    });
    assert_eq!(error_code(&r.kdc.udp(&req)), err::KRB_AP_ERR_BAD_INTEGRITY);
    let server = r.service.to_string();
    assert!(
        r.kdc.wait_audit(|l| l.contains("exchange=\"tgs\"")
            && l.contains("reason=\"authenticator_integrity\"")
            && l.contains(&format!("server=\"{server}\""))),
        "no refused TGS audit line naming {server}:\n{}",
        r.kdc.log()
    );
}
