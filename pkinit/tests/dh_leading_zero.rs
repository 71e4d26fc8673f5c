//! A DH shared secret whose first byte is zero. RFC 4556 §3.2.3.1 pads ZZ
//! to the modulus size; Heimdal 7.8's client pads its buffer too but hands
//! octetstring2key only the unpadded length, so it reads the zero and
//! loses the last byte. The KDC never replies with such a secret: it
//! agrees again with a fresh key. Found with a loop of real Heimdal kinits
//! (bench/heimdal-dh.sh); this test makes the case on purpose.

use krb::crypto::EncType;
use pkinit::dh::{ClientKey, Group, octetstring2key, parse_client_public};
use pkinit::server::DhKeys;

/// The bytes Heimdal's client feeds octetstring2key: the first
/// len(ZZ without its leading zeros) bytes of the padded ZZ.
fn heimdal_client_reading(padded: &[u8]) -> &[u8] {
    let unpadded = padded.iter().skip_while(|&&b| b == 0).count();
    &padded[..unpadded]
}

#[test]
fn a_secret_with_a_leading_zero_is_agreed_again_with_a_fresh_key() {
    let group = Group::Modp2048;
    let keys = DhKeys::new(60);
    let (kept, expires) = keys.get(group, 0, true).unwrap();
    assert_eq!(expires, Some(60));
    // One device key in 256 gives a zero first byte with the kept key.
    let (client, public, trap) = (0..5000)
        .find_map(|_| {
            let client = ClientKey::generate(group).unwrap();
            let public = parse_client_public(&client.spki()).unwrap();
            let agreement = kept.agree(&public).unwrap();
            (agreement.shared_secret[0] == 0).then_some((client, public, agreement))
        })
        .expect("no device key in 5000 gave a leading zero (chance 3e-9)");
    // What went wrong before: Heimdal's reading is another key.
    let etype = EncType::Aes256CtsHmacSha196;
    let rfc = octetstring2key(etype, &trap.shared_secret, None, None).unwrap();
    let heimdal = octetstring2key(
        etype,
        heimdal_client_reading(&trap.shared_secret),
        None,
        None,
    )
    .unwrap();
    assert_ne!(rfc.bytes(), heimdal.bytes());

    let (agreement, expires) = keys.agree(&public, 1, true).unwrap();
    assert_ne!(agreement.shared_secret[0], 0);
    assert_ne!(agreement.server_public, trap.server_public, "a fresh key");
    assert_eq!(expires, None, "a fresh key is not announced as reused");
    assert_eq!(
        *client.finish(&agreement.server_public).unwrap(),
        *agreement.shared_secret
    );
    assert_eq!(
        heimdal_client_reading(&agreement.shared_secret),
        &agreement.shared_secret[..]
    );
    // The kept key stays kept for the next device.
    let (again, expires) = keys.get(group, 2, true).unwrap();
    assert!(std::sync::Arc::ptr_eq(&kept, &again));
    assert_eq!(expires, Some(60));
}

#[test]
fn a_secret_without_a_leading_zero_keeps_the_reused_key() {
    let group = Group::P256;
    let keys = DhKeys::new(60);
    let (kept, _) = keys.get(group, 0, true).unwrap();
    let (client, public, expected) = (0..5000)
        .find_map(|_| {
            let client = ClientKey::generate(group).unwrap();
            let public = parse_client_public(&client.spki()).unwrap();
            let agreement = kept.agree(&public).unwrap();
            (agreement.shared_secret[0] != 0).then_some((client, public, agreement))
        })
        .unwrap();
    let (agreement, expires) = keys.agree(&public, 1, true).unwrap();
    assert_eq!(expires, Some(60));
    assert_eq!(agreement.server_public, expected.server_public);
    assert_eq!(
        *client.finish(&agreement.server_public).unwrap(),
        *agreement.shared_secret
    );
}
