//! The shared MPS cache's values as read back from Redis (hostile: anyone
//! with write access to Redis chooses them). Opening must never panic and
//! never answer "miss" for a value it accepts; without the key, nothing
//! should open at all (a value that does is reported as a finding).

#![no_main]

use std::sync::LazyLock;

use fqdn_map::cache::Cached;
use pktc_kdc::shared_cache::SealKey;
use libfuzzer_sys::fuzz_target;

const MAC: [u8; 6] = [0, 0x10, 0x95, 0, 0, 1];
static KEY: LazyLock<SealKey> =
    LazyLock::new(|| SealKey::from_secret("fuzz", &[0x42; 32]).expect("key"));

fuzz_target!(|data: &[u8]| {
    match KEY.open(&MAC, data, 1000) {
        Ok(Cached::Miss) => panic!("open never answers Miss"),
        Ok(found) => panic!("a value not sealed with the key opened: {found:?}"),
        Err(_) => {}
    }
});
