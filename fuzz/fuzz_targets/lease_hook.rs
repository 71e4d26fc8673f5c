//! `pktc-kdc lease-hook`'s reading of Kea's run_script variables
//! (`pktc_kdc::cli::lease_hook::plan`): every value comes from a DHCP client through
//! Kea. None may panic; whatever is planned is in shape (an FQDN the
//! pkt-eue-7 codec takes, with a dot; an address in use), and a refusal
//! message is one bounded line.
//!
//! Input: the first line is the hook point, each further line
//! `NAME=VALUE` (invalid UTF-8 replaced, as the hook does).

#![no_main]

use std::collections::HashMap;

use pktc_kdc::cli::lease_hook::{Change, plan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let event = lines.next().unwrap_or_default();
    let vars: HashMap<&str, &str> = lines.filter_map(|l| l.split_once('=')).collect();
    let p = plan(event, &|k: &str| vars.get(k).map(|v| v.to_string()));
    for c in &p.changes {
        match c {
            Change::Bind(b) => {
                assert!(fqdn_map::codec::check_fqdn(b.fqdn.as_bytes()).is_ok());
                assert!(b.fqdn.contains('.') && !b.fqdn.ends_with('.'));
                assert!(!b.address.is_unspecified());
            }
            Change::Unbind(u) => assert!(!u.address.is_unspecified()),
        }
    }
    for r in &p.refused {
        let m = r.to_string();
        assert!(!m.contains('\n') && m.len() < 1024, "{m}");
    }
});
