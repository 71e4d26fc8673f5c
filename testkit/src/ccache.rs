//! A reader for MIT credential cache files (FILE: type, format versions
//! 0x0503 and 0x0504), so tests can present tickets a real MIT client got.
//! No crate in the workspace reads ccaches (picky-krb has no FILE ccache
//! reader), and the format is small.
//!
//! Layout (MIT "ccache file format"; integers big-endian):
//!
//! ```text
//! file        ::= 0x05 0x0N [header (v4)] default-principal credential*
//! header      ::= length (u16) bytes
//! principal   ::= name_type (u32) count (u32) realm (data) component (data)*
//! credential  ::= client server keyblock authtime starttime endtime renew_till
//!                 (u32 each) is_skey (u8) flags (u32) addresses authdata
//!                 ticket (data) second_ticket (data)
//! keyblock    ::= enctype (u16) [enctype again in v3] key (data)
//! addresses   ::= count (u32) (addrtype (u16) data)*
//! authdata    ::= count (u32) (ad_type (u16) data)*
//! data        ::= length (u32) bytes
//! ```

use std::path::Path;

/// One credential of a ccache.
#[derive(Debug, Clone)]
pub struct CcacheCred {
    /// `name/comp@REALM`
    pub client: String,
    pub server: String,
    pub enctype: i32,
    /// The session key.
    pub key: Vec<u8>,
    pub authtime: u32,
    pub starttime: u32,
    pub endtime: u32,
    pub renew_till: u32,
    /// MIT's krb5_flags: ticket flag bit n is `0x8000_0000 >> n`.
    pub flags: u32,
    /// (addrtype, address) pairs.
    pub addresses: Vec<(u16, Vec<u8>)>,
    /// The DER Ticket.
    pub ticket: Vec<u8>,
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.0.len() {
            return Err("ccache truncated".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn data(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn text(&mut self) -> Result<String, String> {
        String::from_utf8(self.data()?).map_err(|_| "ccache name is not UTF-8".to_string())
    }
    fn principal(&mut self) -> Result<String, String> {
        let _name_type = self.u32()?;
        let count = self.u32()?;
        let realm = self.text()?;
        let components = (0..count)
            .map(|_| self.text())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("{}@{realm}", components.join("/")))
    }
}

/// The credentials in `bytes` (config entries such as
/// `krb5_ccache_conf_data/...` included).
pub fn parse_ccache(bytes: &[u8]) -> Result<Vec<CcacheCred>, String> {
    let mut r = Reader(bytes);
    let version = r.u16()?;
    match version {
        0x0504 => {
            let n = r.u16()? as usize;
            r.take(n)?;
        }
        0x0503 => {}
        v => return Err(format!("unsupported ccache version {v:#06x}")),
    }
    let _default = r.principal()?;
    let mut creds = Vec::new();
    while !r.0.is_empty() {
        let client = r.principal()?;
        let server = r.principal()?;
        let enctype = i32::from(r.u16()?);
        if version == 0x0503 {
            r.u16()?;
        }
        let key = r.data()?;
        let (authtime, starttime, endtime, renew_till) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
        let _is_skey = r.u8()?;
        let flags = r.u32()?;
        let addresses = (0..r.u32()?)
            .map(|_| Ok((r.u16()?, r.data()?)))
            .collect::<Result<Vec<_>, String>>()?;
        for _ in 0..r.u32()? {
            r.u16()?;
            r.data()?;
        }
        let ticket = r.data()?;
        let _second_ticket = r.data()?;
        creds.push(CcacheCred {
            client,
            server,
            enctype,
            key,
            authtime,
            starttime,
            endtime,
            renew_till,
            flags,
            addresses,
            ticket,
        });
    }
    Ok(creds)
}

/// The credentials of the ccache file at `path`; panics saying why it
/// cannot be read.
pub fn read_ccache(path: &Path) -> Vec<CcacheCred> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("reading ccache {}: {e}", path.display()));
    parse_ccache(&bytes).unwrap_or_else(|e| panic!("ccache {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(out: &mut Vec<u8>, d: &[u8]) {
        out.extend((d.len() as u32).to_be_bytes());
        out.extend(d);
    }

    fn principal(out: &mut Vec<u8>, realm: &str, comps: &[&str]) {
        out.extend(1u32.to_be_bytes());
        out.extend((comps.len() as u32).to_be_bytes());
        data(out, realm.as_bytes());
        for c in comps {
            data(out, c.as_bytes());
        }
    }

    #[test]
    fn reads_a_v4_credential_and_refuses_truncation() {
        let mut f = vec![0x05, 0x04, 0x00, 0x0c];
        f.extend([0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]); // header: a time offset
        principal(&mut f, "R", &["demo"]);
        principal(&mut f, "R", &["demo"]);
        principal(&mut f, "R", &["mtaprovsrvr", "mps.r"]);
        f.extend(18u16.to_be_bytes());
        data(&mut f, &[7; 32]);
        for t in [10u32, 11, 12, 13] {
            f.extend(t.to_be_bytes());
        }
        f.push(0);
        f.extend(0x4000_0000u32.to_be_bytes());
        f.extend(1u32.to_be_bytes());
        f.extend(2u16.to_be_bytes());
        data(&mut f, &[127, 0, 0, 1]);
        f.extend(0u32.to_be_bytes());
        data(&mut f, b"ticket");
        data(&mut f, b"");
        let creds = parse_ccache(&f).unwrap();
        assert_eq!(creds.len(), 1);
        let c = &creds[0];
        assert_eq!(
            (c.client.as_str(), c.server.as_str()),
            ("demo@R", "mtaprovsrvr/mps.r@R")
        );
        assert_eq!((c.enctype, c.key.as_slice()), (18, &[7u8; 32][..]));
        assert_eq!((c.starttime, c.endtime, c.flags), (11, 12, 0x4000_0000));
        assert_eq!(c.addresses, vec![(2, vec![127, 0, 0, 1])]);
        assert_eq!(c.ticket, b"ticket");
        // A cut inside the credential is an error, never a panic.
        let start = f.len() - c.ticket.len() - 100;
        for n in start..f.len() {
            assert!(parse_ccache(&f[..n]).is_err(), "cut at {n}");
        }
    }
}
