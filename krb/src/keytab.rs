//! MIT keytab files (FILE: type), format versions 0x501 (read) and 0x502
//! (read and write).
//!
//! Layout (MIT "keytab file format"; all integers big-endian):
//!
//! ```text
//! file    ::= 0x05 0x02 record*
//! record  ::= length (i32) ( entry | hole )
//!             length > 0: an entry of at most `length` bytes, padded to it
//!             length < 0: a zero-filled hole of -length bytes
//!             length = 0: end of file
//! entry   ::= count (u16, includes the realm in 0x501)
//!             realm (data) component (data)*
//!             name_type (u32, omitted in 0x501)
//!             timestamp (u32) vno8 (u8)
//!             enctype (u16) key (data)
//!             [vno32 (u32), overrides vno8 if non-zero]
//!             [flags (u32)]
//! data    ::= length (u16) bytes
//! ```
//!
//! Version 0x501 files were written in host byte order; this reader assumes
//! big-endian for them.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::principal::{MAX_COMPONENTS, Principal, PrincipalError, name_type};

const VNO_1: u8 = 0x01;
const VNO_2: u8 = 0x02;
const FILE_MAGIC: u8 = 0x05;

/// Errors from reading or writing keytabs.
#[derive(Debug, thiserror::Error)]
pub enum KeytabError {
    /// The data ended before a field or record was complete.
    #[error("keytab truncated")]
    Truncated,
    /// The two-byte header is not 0x05 0x01 or 0x05 0x02.
    #[error("unsupported keytab version {0:#04x} {1:#04x}")]
    BadVersion(u8, u8),
    /// A 0x501 entry with a component count of zero (it must count the realm).
    #[error("keytab entry has a zero component count")]
    BadComponentCount,
    /// A hole length of `i32::MIN`, which has no positive counterpart.
    #[error("invalid keytab hole length")]
    BadHole,
    /// An entry's fields run past the end of its record.
    #[error("keytab entry overruns its record")]
    EntryOverrun,
    /// The principal of an entry is invalid.
    #[error("keytab principal: {0}")]
    Principal(#[from] PrincipalError),
    /// An entry cannot be written: a field does not fit its on-disk width.
    #[error("keytab entry cannot be written: {0}")]
    Unwritable(&'static str),
    /// File system error.
    #[error("keytab I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// One key of one principal.
#[derive(Clone)]
pub struct KeytabEntry {
    /// The principal the key belongs to.
    pub principal: Principal,
    /// Seconds since the epoch when the key was written.
    pub timestamp: u32,
    /// Key version number.
    pub kvno: u32,
    /// Encryption type number (RFC 3961).
    pub enctype: i32,
    /// Raw key bytes.
    pub key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for KeytabEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeytabEntry")
            .field("principal", &self.principal)
            .field("timestamp", &self.timestamp)
            .field("kvno", &self.kvno)
            .field("enctype", &self.enctype)
            .field("key", &format_args!("<{} bytes redacted>", self.key.len()))
            .finish()
    }
}

/// The entries of a keytab, in file order.
#[derive(Clone, Debug, Default)]
pub struct Keytab {
    /// Entries in file order.
    pub entries: Vec<KeytabEntry>,
}

/// Bounds-checked big-endian reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|s| s.try_into().ok())
    }
    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|a| a[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }
    fn data(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    fn remaining(&self) -> usize {
        self.buf.len()
    }
}

impl Keytab {
    /// An empty keytab.
    pub fn new() -> Keytab {
        Keytab::default()
    }

    /// Parses a keytab file image (0x502, or 0x501 read as big-endian).
    ///
    /// Holes are skipped; a zero record length ends the file (as in MIT).
    /// Trailing bytes after the last record that cannot hold a record
    /// length, or a record that runs past the end, give
    /// [`KeytabError::Truncated`]. Allocation is bounded by the input size.
    pub fn parse(bytes: &[u8]) -> Result<Keytab, KeytabError> {
        let mut r = Reader { buf: bytes };
        let version = match r.array::<2>() {
            Some([FILE_MAGIC, v @ (VNO_1 | VNO_2)]) => v,
            Some([a, b]) => return Err(KeytabError::BadVersion(a, b)),
            None => return Err(KeytabError::Truncated),
        };
        let mut entries = Vec::new();
        while r.remaining() > 0 {
            let len = r.i32().ok_or(KeytabError::Truncated)?;
            if len == 0 {
                break;
            }
            if len < 0 {
                let hole = len.checked_neg().ok_or(KeytabError::BadHole)?;
                let hole = usize::try_from(hole).map_err(|_| KeytabError::BadHole)?;
                r.take(hole).ok_or(KeytabError::Truncated)?;
                continue;
            }
            let len = usize::try_from(len).map_err(|_| KeytabError::Truncated)?;
            let record = r.take(len).ok_or(KeytabError::Truncated)?;
            entries.push(parse_entry(record, version)?);
        }
        Ok(Keytab { entries })
    }

    /// Serialises to format 0x502 with the 32-bit kvno field present (the
    /// 8-bit field holds the low byte of the kvno, as MIT writes it).
    ///
    /// Fails if a field does not fit its on-disk width: more than 65535
    /// components, a component, realm or key longer than 65535 bytes, or an
    /// enctype outside 0..=65535.
    pub fn to_bytes(&self) -> Result<Vec<u8>, KeytabError> {
        // Sized up front so that no reallocation leaves key copies behind.
        let size = self.entries.iter().fold(2usize, |acc, e| {
            let name = e
                .principal
                .components
                .iter()
                .map(|c| 2 + c.len())
                .sum::<usize>();
            acc.saturating_add(4 + 2 + 2 + e.principal.realm.len() + name + 4 + 4 + 1 + 2)
                .saturating_add(2 + e.key.len() + 4)
        });
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&[FILE_MAGIC, VNO_2]);
        for e in &self.entries {
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            write_entry(&mut out, e)?;
            let len = i32::try_from(out.len() - start - 4)
                .map_err(|_| KeytabError::Unwritable("entry too large"))?;
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(out)
    }

    /// Reads and parses a keytab file.
    pub fn read_file(path: &Path) -> Result<Keytab, KeytabError> {
        let bytes = Zeroizing::new(std::fs::read(path)?);
        Keytab::parse(&bytes)
    }

    /// Writes the keytab atomically with mode 0600 from its first byte
    /// ([`crate::atomic_file::write_private`]).
    pub fn write_file(&self, path: &Path) -> Result<(), KeytabError> {
        let bytes = Zeroizing::new(self.to_bytes()?);
        Ok(crate::atomic_file::write_private(path, &bytes)?)
    }

    /// The entry for `principal` (compared with [`Principal::same_name`]) and
    /// `enctype`. With `kvno` given, the entry with that kvno; otherwise the
    /// one with the highest kvno. Ties go to the later timestamp, then to the
    /// later entry in the file.
    pub fn find(
        &self,
        principal: &Principal,
        enctype: i32,
        kvno: Option<u32>,
    ) -> Option<&KeytabEntry> {
        self.entries
            .iter()
            .filter(|e| e.enctype == enctype && e.principal.same_name(principal))
            .filter(|e| kvno.is_none_or(|k| e.kvno == k))
            .max_by_key(|e| (e.kvno, e.timestamp))
    }

    /// All entries of `principal` (compared with [`Principal::same_name`])
    /// that have its highest kvno, in file order. Empty if there are none.
    pub fn latest_keys(&self, principal: &Principal) -> Vec<&KeytabEntry> {
        let mine = || {
            self.entries
                .iter()
                .filter(|e| e.principal.same_name(principal))
        };
        match mine().map(|e| e.kvno).max() {
            Some(max) => mine().filter(|e| e.kvno == max).collect(),
            None => Vec::new(),
        }
    }
}

fn parse_entry(record: &[u8], version: u8) -> Result<KeytabEntry, KeytabError> {
    let mut r = Reader { buf: record };
    let mut count = r.u16().ok_or(KeytabError::EntryOverrun)?;
    if version == VNO_1 {
        count = count.checked_sub(1).ok_or(KeytabError::BadComponentCount)?;
    }
    let count = usize::from(count);
    if count > MAX_COMPONENTS {
        return Err(PrincipalError::TooManyComponents(count).into());
    }
    let realm = r.data().ok_or(KeytabError::EntryOverrun)?;
    let mut comps: Vec<&[u8]> = Vec::with_capacity(count);
    for _ in 0..count {
        comps.push(r.data().ok_or(KeytabError::EntryOverrun)?);
    }
    let nt = if version == VNO_1 {
        name_type::UNKNOWN
    } else {
        // MIT stores the krb5_int32 name type as its 32-bit pattern.
        r.u32().ok_or(KeytabError::EntryOverrun)? as i32
    };
    let timestamp = r.u32().ok_or(KeytabError::EntryOverrun)?;
    let vno8 = r.u8().ok_or(KeytabError::EntryOverrun)?;
    let enctype = r.u16().ok_or(KeytabError::EntryOverrun)?;
    let key = r.data().ok_or(KeytabError::EntryOverrun)?;
    let mut kvno = u32::from(vno8);
    if r.remaining() >= 4 {
        match r.u32() {
            Some(0) | None => {}
            Some(v) => kvno = v,
        }
    }
    // An optional 32-bit flags field and zero padding may follow; both are
    // ignored.
    let principal = Principal::from_wire_parts(nt, &comps, realm)?;
    Ok(KeytabEntry {
        principal,
        timestamp,
        kvno,
        enctype: i32::from(enctype),
        key: Zeroizing::new(key.to_vec()),
    })
}

fn put_data(out: &mut Vec<u8>, data: &[u8], what: &'static str) -> Result<(), KeytabError> {
    let n = u16::try_from(data.len()).map_err(|_| KeytabError::Unwritable(what))?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

fn write_entry(out: &mut Vec<u8>, e: &KeytabEntry) -> Result<(), KeytabError> {
    let p = &e.principal;
    let count = u16::try_from(p.components.len())
        .map_err(|_| KeytabError::Unwritable("too many components"))?;
    let enctype =
        u16::try_from(e.enctype).map_err(|_| KeytabError::Unwritable("enctype out of range"))?;
    out.extend_from_slice(&count.to_be_bytes());
    put_data(out, p.realm.as_bytes(), "realm too long")?;
    for c in &p.components {
        put_data(out, c.as_bytes(), "component too long")?;
    }
    out.extend_from_slice(&p.name_type.to_be_bytes());
    out.extend_from_slice(&e.timestamp.to_be_bytes());
    out.push(e.kvno as u8); // low byte, as MIT writes it; vno32 below is authoritative
    out.extend_from_slice(&enctype.to_be_bytes());
    put_data(out, &e.key, "key too long")?;
    out.extend_from_slice(&e.kvno.to_be_bytes());
    Ok(())
}
