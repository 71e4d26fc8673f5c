//! Heimdal's client tools, a second independent PKINIT client beside MIT's.
//!
//! Debian's heimdal-clients conflicts with MIT's krb5-user, so it is not
//! installed: `.ci/run` downloads the packages and unpacks them with
//! `dpkg -x` into `target/tools/heimdal` (or `PKTC_HEIMDAL_DIR`), and the
//! tools run from there with `LD_LIBRARY_PATH` and their own krb5.conf.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages `kinit.heimdal` and `kgetcred` need (checked with ldd).
pub const HEIMDAL_PACKAGES: &str = "heimdal-clients libkrb5-26-heimdal libasn1-8-heimdal \
     libhx509-5-heimdal libhcrypto5-heimdal libroken19-heimdal libwind0-heimdal \
     libheimbase1-heimdal libheimntlm0-heimdal libkafs0-heimdal libsl0-heimdal";

/// Where the packages are unpacked.
pub fn heimdal_root() -> PathBuf {
    match std::env::var_os("PKTC_HEIMDAL_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .join("target/tools/heimdal"),
    }
}

fn lib_dir(root: &Path) -> Option<PathBuf> {
    ["usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu"]
        .iter()
        .map(|d| root.join(d))
        .find(|d| d.join("libkrb5.so.26").exists())
}

/// A Heimdal tool (`kinit.heimdal`, `kgetcred`) reading only `krb5_conf`,
/// with its credential cache at `cc`; panics with the install commands
/// when the tools are not unpacked.
pub fn heimdal(tool: &str, krb5_conf: &Path, cc: &Path) -> Command {
    let root = heimdal_root();
    let bin = root.join("usr/bin").join(tool);
    let libs = lib_dir(&root);
    let (true, Some(libs)) = (bin.is_file(), libs) else {
        panic!(
            "Heimdal's `{tool}` not found under {root}: this test needs Heimdal's client tools, \
             unpacked (not installed: they conflict with krb5-user). Run `bash .ci/run`, or: \
             `d=$(mktemp -d) && chown _apt $d; (cd $d && apt-get download {HEIMDAL_PACKAGES}) && \
             for f in $d/*.deb; do dpkg -x $f {root}; done`",
            root = root.display()
        );
    };
    let mut c = Command::new(bin);
    crate::mit_env(&mut c, krb5_conf);
    c.env("LD_LIBRARY_PATH", libs)
        .env("KRB5CCNAME", format!("FILE:{}", cc.display()));
    c
}

/// A krb5.conf for Heimdal's kinit against one KDC address: the realm's
/// `kdc` line (`tcp/` or `udp/`), the anchor for the KDC certificate,
/// `pkinit_dh_min_bits = 1536` (Heimdal takes the first built-in group
/// above it: MODP 14; unset, it picks the 1024-bit group, which the KDC
/// rightly refuses) and a libkrb5 trace file.
pub fn heimdal_conf(
    realm: &str,
    kdc: &str,
    transport: &str,
    anchor: &Path,
    trace: &Path,
) -> String {
    format!(
        "[libdefaults]\n    default_realm = {realm}\n    dns_lookup_kdc = false\n    \
         dns_lookup_realm = false\n    noaddresses = true\n    pkinit_dh_min_bits = 1536\n\n\
         [realms]\n    {realm} = {{\n        kdc = {transport}/{kdc}\n    }}\n\n\
         [appdefaults]\n    pkinit_anchors = FILE:{anchor}\n\n\
         [logging]\n    krb5 = 0-/FILE:{trace}\n",
        anchor = anchor.display(),
        trace = trace.display(),
    )
}
