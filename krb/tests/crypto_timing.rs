//! Micro-timing (not an assertion). Run with:
//! `cargo test -p krb --release --test crypto_timing -- --ignored --nocapture`

use std::hint::black_box;
use std::time::Instant;

use krb::crypto::{EncType, Key};

#[test]
#[ignore = "timing print only"]
fn timing() {
    let pt = vec![0x42u8; 200];
    for etype in EncType::ALL {
        let key = Key::random(etype);
        let n = 20_000u32;

        let t = Instant::now();
        for i in 0..n {
            black_box(key.usage(black_box(i)));
        }
        let derive = t.elapsed() / n;

        let uk = key.usage(2);
        let t = Instant::now();
        for _ in 0..n {
            let ct = uk.encrypt(black_box(&pt));
            black_box(uk.decrypt(&ct).ok());
        }
        let encdec = t.elapsed() / n;

        let t = Instant::now();
        for i in 0..n {
            let uk = key.usage(black_box(i % 16));
            let ct = uk.encrypt(black_box(&pt));
            black_box(uk.decrypt(&ct).ok());
        }
        let all = t.elapsed() / n;

        println!(
            "{:<28} usage(): {:>8.2?}  200-byte encrypt+decrypt: {:>8.2?}  derive+encrypt+decrypt: {:>8.2?}",
            etype.name(),
            derive,
            encdec,
            all
        );
    }
}
