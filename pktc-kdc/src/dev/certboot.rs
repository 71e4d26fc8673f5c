//! The dev realm's certificate-bootstrapping endpoint: a credentials file
//! for every dev device and the `[certboot]` section serving it on loopback.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use crate::config::Certboot;
use crate::dev::Device;

pub const CREDENTIALS: &str = "certboot-credentials.toml";
pub const SERVER_CERT: &str = "pki/sp/tls.pem";
pub const SERVER_KEY: &str = "pki/sp/tls.key";
pub const SERVER_CHAIN: &str = "pki/sp/tls-chain.pem";
/// IMS home domain of the dev devices.
pub const IMS_DOMAIN: &str = "ims.pktc.test";

/// Writes DIR/certboot-credentials.toml: device N gets IMPI
/// `<mac hex>@ims.pktc.test`, IMPUs `sip:+1555000000N@…` and `tel:+1555000000N`
/// and a random password.
pub fn write_credentials(dir: &Path, devices: &[Device]) -> anyhow::Result<()> {
    let mut text = String::from(
        "# IMS credentials served by the dev realm's certificate-bootstrapping endpoint.\n\
         # Edit freely: the file is re-read when it changes. See docs/certboot.md.\n",
    );
    for (i, d) in devices.iter().enumerate() {
        let mac = certs::parse_mac(&d.mac).context("dev device MAC")?;
        let number = format!("+1555000000{}", i + 1);
        let password = hex::encode(
            &krb::crypto::Key::random(krb::crypto::EncType::Aes128CtsHmacSha196).bytes()[..12],
        );
        text.push_str(&format!(
            "\n[[device]]\nmac = \"{mac}\"\nimpi = \"{hex}@{IMS_DOMAIN}\"\n\
             impu = [\"sip:{number}@{IMS_DOMAIN}\", \"tel:{number}\"]\n\
             credential_type = \"password\"\ncredential = \"{password}\"\n\
             realm = \"{IMS_DOMAIN}\"\npcscf = [\"pcscf.{IMS_DOMAIN}\"]\n",
            mac = d.mac,
            hex = hex::encode(mac),
        ));
    }
    // Passwords: owner-only from the first byte.
    let path = dir.join(CREDENTIALS);
    krb::atomic_file::write_private(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `[certboot]` of the dev realm: PacketCable profile on `pktc`, modern
/// profile on `modern`. Security level 1 because device 3 is a 1024-bit
/// legacy MTA (the product default is 2).
pub fn config(pktc: &[SocketAddr], modern: &[SocketAddr]) -> anyhow::Result<Certboot> {
    let mut c: Certboot = serde_json::from_value(serde_json::json!({
        "server_cert": SERVER_CERT,
        "server_key": SERVER_KEY,
    }))
    .context("building the [certboot] section")?;
    c.listen = pktc.to_vec();
    c.modern_listen = modern.to_vec();
    c.server_chain = Some(SERVER_CHAIN.into());
    c.credentials_file = Some(CREDENTIALS.into());
    c.security_level = 1;
    Ok(c)
}
