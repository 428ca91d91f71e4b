//! Reading a tar stream, member by member, without holding it in memory.
//!
//! The archive is a sequence of 512-byte blocks. Each member starts with
//! a header block: `name[100]`, `mode[8]`, `uid[8]`, `gid[8]`,
//! `size[12]`, `mtime[12]`, `chksum[8]`, `typeflag[1]`, `linkname[100]`,
//! `magic[6]`, `version[2]`, `uname[32]`, `gname[32]`, `devmajor[8]`,
//! `devminor[8]`, then (POSIX ustar, magic `ustar\0` `00`) `prefix[155]`
//! or (old GNU, magic `ustar  \0`) `atime[12]`, `ctime[12]`, ..., the
//! old sparse map at 386 (four `offset[12]`, `numbytes[12]` pairs),
//! `isextended` at 482 and `realsize[12]` at 483. Numbers are octal
//! (leading spaces, ended by NUL or space), or base-256 when the first
//! byte has its high bit set (GNU). The checksum is the sum of the
//! header's bytes with the checksum field read as spaces. The data
//! follows, padded to 512 bytes; two zero blocks end the archive.
//!
//! Headers that describe the next member rather than being one:
//! GNU `L` (long name) and `K` (long link target), whose data is the
//! name; PAX `x` (extended header for the next member) and `g` (global,
//! for every later member), whose data is records `LEN KEY=VALUE\n`
//! (LEN counts the whole record, in decimal). Keys used: `path`,
//! `linkpath`, `size`, `uid`, `gid`, `uname`, `gname`, `mtime`, `atime`,
//! `ctime` (decimal seconds with an optional fraction),
//! `SCHILY.xattr.NAME` (an extended attribute, value as bytes),
//! `SCHILY.acl.access` / `SCHILY.acl.default` (POSIX ACLs in text form),
//! `SCHILY.devmajor` / `SCHILY.devminor`, and the GNU sparse keys.
//!
//! Sparse members: old GNU type `S` (the map in the header, continued in
//! extension blocks of 21 pairs with `isextended` at 504); PAX 0.0
//! (`GNU.sparse.offset` / `GNU.sparse.numbytes` pairs), 0.1
//! (`GNU.sparse.map` = `o,n,o,n...`), both with `GNU.sparse.size`; PAX
//! 1.0 (`GNU.sparse.major=1`, `GNU.sparse.name`, `GNU.sparse.realsize`),
//! whose map is at the start of the data: decimal lines, the number of
//! pairs then each offset and length, padded to 512 bytes.
//!
//! Everything read from the archive is checked: a bad checksum, a number
//! that does not parse, a record whose length lies, a size past what is
//! left, a map out of order, all end in [`Error::Invalid`] naming the
//! member and the offset of its header in the (decompressed) stream.

use std::io::Read;

use crate::error::{Error, Result};
use crate::inode::Timestamp;

const BLOCK: usize = 512;
/// Longest GNU long name or link accepted.
const MAX_LONG_NAME: u64 = 64 * 1024;
/// Largest PAX extended header accepted.
const MAX_PAX: u64 = 8 << 20;
/// Most sparse map entries of one member.
const MAX_SPARSE: usize = 1 << 20;

/// What a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (also `7`, contiguous).
    File,
    /// A hard link to an earlier member (`linkname`).
    HardLink,
    /// A symbolic link.
    Symlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A directory.
    Dir,
    /// A FIFO.
    Fifo,
}

/// One member, its header data merged with its PAX and GNU records.
#[derive(Clone, Debug)]
pub struct Member {
    /// The name as stored (not yet made safe).
    pub path: Vec<u8>,
    /// Link target (symlinks and hard links).
    pub link: Vec<u8>,
    /// The type.
    pub kind: Kind,
    /// Permission bits (07777).
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time (PAX or old GNU), if given.
    pub atime: Option<Timestamp>,
    /// Change time (PAX or old GNU), if given.
    pub ctime: Option<Timestamp>,
    /// Device number of a device node.
    pub dev: (u32, u32),
    /// The file's size (a sparse file's whole size).
    pub size: u64,
    /// The data runs of a sparse file: (offset, length), in order.
    pub sparse: Option<Vec<(u64, u64)>>,
    /// Extended attributes (SCHILY.xattr.*), in archive order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// SCHILY.acl.access, text form.
    pub acl_access: Option<Vec<u8>>,
    /// SCHILY.acl.default, text form.
    pub acl_default: Option<Vec<u8>>,
    /// Offset of the member's first header in the stream.
    pub offset: u64,
}

impl Member {
    /// The member as errors name it.
    pub fn shown(&self) -> String {
        format!(
            "member {:?} (offset {})",
            String::from_utf8_lossy(&self.path),
            self.offset
        )
    }
}

/// PAX records gathered for the next member (or globally).
#[derive(Clone, Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<Timestamp>,
    atime: Option<Timestamp>,
    ctime: Option<Timestamp>,
    devmajor: Option<u32>,
    devminor: Option<u32>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    acl_access: Option<Vec<u8>>,
    acl_default: Option<Vec<u8>>,
    sparse_major: Option<u64>,
    sparse_minor: Option<u64>,
    sparse_name: Option<Vec<u8>>,
    sparse_size: Option<u64>,
    sparse_map: Vec<u64>,
    sparse_map_given: bool,
}

/// A tar stream being read.
pub struct TarReader<R: Read> {
    inner: R,
    /// Bytes consumed so far.
    pos: u64,
    /// Data bytes of the current member not read yet.
    left: u64,
    /// Padding after them.
    pad: u64,
    global: Pax,
    ended: bool,
    /// The current member (for errors while its data is read).
    current: String,
}

fn bad(what: &str, offset: u64, msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("archive: {what} at offset {offset}: {msg}"))
}

/// A numeric header field: octal (spaces, digits, NUL/space end) or
/// base-256 (high bit of the first byte set).
fn number(field: &[u8]) -> std::result::Result<u64, String> {
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            if first == 0xff {
                return Err("a negative base-256 number".into());
            }
            let mut v: u64 = (first & 0x7f) as u64;
            for &b in &field[1..] {
                if v >> 56 != 0 {
                    return Err("a base-256 number larger than 64 bits".into());
                }
                v = (v << 8) | b as u64;
            }
            return Ok(v);
        }
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    let mut v: u64 = 0;
    for &b in &s {
        if !(b'0'..=b'7').contains(&b) {
            return Err(format!(
                "{:?} is not an octal number",
                String::from_utf8_lossy(field)
            ));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add((b - b'0') as u64))
            .ok_or("an octal number larger than 64 bits")?;
    }
    Ok(v)
}

/// A NUL-terminated string field.
fn cstr(field: &[u8]) -> Vec<u8> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

/// A decimal number of a PAX record or sparse map.
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A PAX time: `[-]SECS[.FRACTION]`.
fn pax_time(v: &[u8]) -> Option<Timestamp> {
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(r) => (true, r),
        None => (false, v),
    };
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    // Checked before the cast: a 20-digit number wrapped to a negative
    // time, and i64::MIN overflowed when negated.
    let secs = decimal(int)?;
    if secs > i64::MAX as u64 / 2 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let secs = secs as i64;
    let mut nanos = 0u32;
    for i in 0..9 {
        nanos = nanos * 10 + frac.get(i).map_or(0, |d| (d - b'0') as u32);
    }
    Some(if !neg {
        Timestamp { secs, nanos }
    } else if nanos == 0 {
        Timestamp { secs: -secs, nanos }
    } else {
        Timestamp {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        }
    })
}

fn id32(v: u64, what: &str) -> std::result::Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{what} {v} is larger than 32 bits"))
}

impl Pax {
    /// Bytes of names and values held (what stacked headers add up to;
    /// the sparse map has its own bound, [`MAX_SPARSE`]).
    fn held(&self) -> u64 {
        let len = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, |v| v.len() as u64);
        len(&self.path)
            + len(&self.linkpath)
            + len(&self.acl_access)
            + len(&self.acl_default)
            + len(&self.sparse_name)
            + self
                .xattrs
                .iter()
                .map(|(n, v)| (n.len() + v.len()) as u64)
                .sum::<u64>()
    }

    /// Parse the records of an extended header into `self`.
    fn parse(&mut self, data: &[u8]) -> std::result::Result<(), String> {
        let mut at = 0usize;
        while at < data.len() {
            let rest = &data[at..];
            let sp = rest
                .iter()
                .take(21)
                .position(|&b| b == b' ')
                .ok_or_else(|| format!("record at byte {at}: no length"))?;
            let len = decimal(&rest[..sp])
                .ok_or_else(|| format!("record at byte {at}: bad length"))?
                as usize;
            if len <= sp + 1 || len > rest.len() {
                return Err(format!(
                    "record at byte {at}: length {len} does not fit the header ({} bytes left)",
                    rest.len()
                ));
            }
            let rec = &rest[sp + 1..len];
            let Some(rec) = rec.strip_suffix(b"\n") else {
                return Err(format!("record at byte {at}: does not end with a newline"));
            };
            let eq = rec
                .iter()
                .position(|&b| b == b'=')
                .ok_or_else(|| format!("record at byte {at}: no '='"))?;
            let (k, v) = (&rec[..eq], &rec[eq + 1..]);
            self.record(k, v)
                .map_err(|m| format!("record {:?}: {m}", String::from_utf8_lossy(k)))?;
            at += len;
        }
        Ok(())
    }

    fn record(&mut self, k: &[u8], v: &[u8]) -> std::result::Result<(), String> {
        let num = |v: &[u8]| decimal(v).ok_or_else(|| "not a decimal number".to_string());
        let time = |v: &[u8]| pax_time(v).ok_or_else(|| "not a time".to_string());
        match k {
            b"path" => self.path = Some(v.to_vec()),
            b"linkpath" => self.linkpath = Some(v.to_vec()),
            b"size" => self.size = Some(num(v)?),
            b"uid" => self.uid = Some(id32(num(v)?, "uid")?),
            b"gid" => self.gid = Some(id32(num(v)?, "gid")?),
            b"mtime" => self.mtime = Some(time(v)?),
            b"atime" => self.atime = Some(time(v)?),
            b"ctime" => self.ctime = Some(time(v)?),
            b"SCHILY.devmajor" => self.devmajor = Some(id32(num(v)?, "device major")?),
            b"SCHILY.devminor" => self.devminor = Some(id32(num(v)?, "device minor")?),
            b"SCHILY.acl.access" => self.acl_access = Some(v.to_vec()),
            b"SCHILY.acl.default" => self.acl_default = Some(v.to_vec()),
            b"GNU.sparse.major" => self.sparse_major = Some(num(v)?),
            b"GNU.sparse.minor" => self.sparse_minor = Some(num(v)?),
            b"GNU.sparse.name" => self.sparse_name = Some(v.to_vec()),
            b"GNU.sparse.size" | b"GNU.sparse.realsize" => self.sparse_size = Some(num(v)?),
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                self.sparse_map_given = true;
                if self.sparse_map.len() >= 2 * MAX_SPARSE {
                    return Err("too many sparse map entries".into());
                }
                self.sparse_map.push(num(v)?);
            }
            b"GNU.sparse.map" => {
                self.sparse_map_given = true;
                self.sparse_map.clear();
                if !v.is_empty() {
                    for n in v.split(|&b| b == b',') {
                        if self.sparse_map.len() >= 2 * MAX_SPARSE {
                            return Err("too many sparse map entries".into());
                        }
                        self.sparse_map.push(num(n)?);
                    }
                }
            }
            _ => {
                if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                    if name.is_empty() {
                        return Err("empty attribute name".into());
                    }
                    self.xattrs.retain(|(n, _)| n != name);
                    self.xattrs.push((name.to_vec(), v.to_vec()));
                }
                // Anything else (comment, charset, LIBARCHIVE.*, ...) is
                // not needed for the file system.
            }
        }
        Ok(())
    }
}

/// Check a sparse map against the member: runs in order, inside the
/// file, and their lengths adding up to the data stored.
fn check_map(map: &[(u64, u64)], size: u64, stored: u64) -> std::result::Result<(), String> {
    let mut end = 0u64;
    let mut total = 0u64;
    for (i, &(o, n)) in map.iter().enumerate() {
        if o < end {
            return Err(format!(
                "sparse map entry {i} (offset {o}) overlaps the one before"
            ));
        }
        end = o
            .checked_add(n)
            .filter(|&e| e <= size)
            .ok_or_else(|| format!("sparse map entry {i} ends past the file size {size}"))?;
        total = total.saturating_add(n);
    }
    if total != stored {
        return Err(format!(
            "the sparse map holds {total} bytes but the member stores {stored}"
        ));
    }
    Ok(())
}

impl<R: Read> TarReader<R> {
    /// Read the archive from `inner` (already decompressed).
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            pos: 0,
            left: 0,
            pad: 0,
            global: Pax::default(),
            ended: false,
            current: String::new(),
        }
    }

    /// Bytes of the stream consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Read exactly `buf.len()` bytes, or fail naming where it ended.
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(bad(
                        what,
                        self.pos + got as u64,
                        "the archive is truncated (it ends inside a member)",
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("reading the archive ({what})"), e)),
            }
        }
        self.pos += got as u64;
        Ok(())
    }

    /// Read a whole block; Ok(false) at a clean end of the stream.
    fn block(&mut self, buf: &mut [u8; BLOCK], at_start: bool) -> Result<bool> {
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) if got == 0 && at_start => return Ok(false),
                Ok(0) => {
                    return Err(bad(
                        "header",
                        self.pos + got as u64,
                        "the archive is truncated (it ends inside a header)",
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("reading the archive", e)),
            }
        }
        self.pos += BLOCK as u64;
        Ok(true)
    }

    /// Skip `n` bytes.
    fn skip(&mut self, mut n: u64, what: &str) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.fill(&mut buf[..k], what)?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Read a member's data into memory (long names, PAX headers).
    fn small_data(&mut self, size: u64, max: u64, what: &str, at: u64) -> Result<Vec<u8>> {
        if size > max {
            return Err(bad(
                what,
                at,
                format!("{size} bytes, more than the {max} accepted"),
            ));
        }
        let mut v = vec![0u8; size as usize];
        self.fill(&mut v, what)?;
        self.skip(pad_of(size), what)?;
        Ok(v)
    }

    /// The next member, or None at the end of the archive. Data of the
    /// previous member not read is skipped.
    pub fn next_member(&mut self) -> Result<Option<Member>> {
        if self.ended {
            return Ok(None);
        }
        let cur = std::mem::take(&mut self.current);
        self.skip(self.left + self.pad, &cur)?;
        self.left = 0;
        self.pad = 0;
        let mut pax = Pax::default();
        let mut pax_seen = false;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut first: Option<u64> = None;
        let mut h = [0u8; BLOCK];
        loop {
            let at = self.pos;
            if !self.block(&mut h, first.is_none())? {
                if at == 0 {
                    return Err(bad("header", 0, "the archive is empty"));
                }
                // End of stream without the two zero blocks: GNU tar
                // accepts it too.
                self.ended = true;
                return Ok(None);
            }
            if h.iter().all(|&b| b == 0) {
                if first.is_some() {
                    return Err(bad(
                        "header",
                        at,
                        "a zero block after an extended header (no member follows it)",
                    ));
                }
                self.ended = true;
                return Ok(None);
            }
            let sum = number(&h[148..156])
                .map_err(|m| bad("header", at, format!("checksum field: {m}")))?;
            let unsigned: u64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        b as u64
                    }
                })
                .sum();
            let signed: i64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        b as i8 as i64
                    }
                })
                .sum();
            if sum != unsigned && sum as i64 != signed {
                let msg = if at == 0 {
                    "not a tar archive (the first header's checksum does not match)".to_string()
                } else {
                    format!(
                        "header checksum mismatch (stored {sum}, computed {unsigned}): the archive is corrupt"
                    )
                };
                let name = String::from_utf8_lossy(&cstr(&h[..100])).into_owned();
                return Err(bad(&format!("header of {name:?}"), at, msg));
            }
            first.get_or_insert(at);
            let name_field = cstr(&h[..100]);
            let shown = String::from_utf8_lossy(&name_field).into_owned();
            let what = format!("member {shown:?}");
            let field = |r: std::ops::Range<usize>, f: &str| {
                number(&h[r]).map_err(|m| bad(&what, at, format!("{f} field: {m}")))
            };
            let size = field(124..136, "size")?;
            let typeflag = h[156];
            match typeflag {
                b'L' => {
                    let mut v = self.small_data(size, MAX_LONG_NAME, &what, at)?;
                    v.truncate(v.iter().position(|&b| b == 0).unwrap_or(v.len()));
                    long_name = Some(v);
                    continue;
                }
                b'K' => {
                    let mut v = self.small_data(size, MAX_LONG_NAME, &what, at)?;
                    v.truncate(v.iter().position(|&b| b == 0).unwrap_or(v.len()));
                    long_link = Some(v);
                    continue;
                }
                b'x' | b'g' => {
                    let data = self.small_data(size, MAX_PAX, &what, at)?;
                    let target = if typeflag == b'x' {
                        pax_seen = true;
                        &mut pax
                    } else {
                        &mut self.global
                    };
                    target
                        .parse(&data)
                        .map_err(|m| bad(&format!("PAX header {shown:?}"), at, m))?;
                    // Each header is bounded, and so is what a run of them
                    // (or every global one) adds up to.
                    let held = target.held();
                    if held > MAX_PAX {
                        return Err(bad(
                            &format!("PAX header {shown:?}"),
                            at,
                            format!(
                                "the {} extended headers hold {held} bytes, more than the {MAX_PAX} accepted",
                                if typeflag == b'x' { "member's" } else { "global" }
                            ),
                        ));
                    }
                    continue;
                }
                _ => {}
            }
            let offset = first.unwrap_or(at);
            let posix = &h[257..263] == b"ustar\0";
            let oldgnu = &h[257..265] == b"ustar  \0";
            let mut path = name_field.clone();
            if posix && h[345] != 0 {
                let mut p = cstr(&h[345..500]);
                p.push(b'/');
                p.extend_from_slice(&path);
                path = p;
            }
            let g = self.global.clone();
            // A global header's path, linkpath and size would give every
            // member the same one: only a member's own records count.
            if let Some(p) = pax.path.clone().or(long_name.take()) {
                path = p;
            }
            if let Some(p) = &pax.sparse_name {
                path = p.clone();
            }
            let mut link = cstr(&h[157..257]);
            if let Some(l) = pax.linkpath.clone().or(long_link.take()) {
                link = l;
            }
            let what = format!("member {:?}", String::from_utf8_lossy(&path));
            let field = |r: std::ops::Range<usize>, f: &str| {
                number(&h[r]).map_err(|m| bad(&what, offset, format!("{f} field: {m}")))
            };
            let id = |v: u64, f: &str| id32(v, f).map_err(|m| bad(&what, offset, m));
            let mode = (field(100..108, "mode")? & 0o7777) as u16;
            let uid = match pax.uid.or(g.uid) {
                Some(u) => u,
                None => id(field(108..116, "uid")?, "uid")?,
            };
            let gid = match pax.gid.or(g.gid) {
                Some(u) => u,
                None => id(field(116..124, "gid")?, "gid")?,
            };
            let size = pax.size.unwrap_or(size);
            // The data is skipped with its padding: that must not overflow.
            if size > u64::MAX - BLOCK as u64 {
                return Err(bad(
                    &what,
                    offset,
                    format!("size {size} is larger than any archive"),
                ));
            }
            let mtime = match pax.mtime.or(g.mtime) {
                Some(t) => t,
                None => {
                    let m = field(136..148, "mtime")?;
                    Timestamp::from_secs(i64::try_from(m).unwrap_or(i64::MAX))
                }
            };
            let mut atime = pax.atime.or(g.atime);
            let mut ctime = pax.ctime.or(g.ctime);
            if oldgnu {
                let a = field(345..357, "atime")?;
                let c = field(357..369, "ctime")?;
                if a != 0 && atime.is_none() {
                    atime = Some(Timestamp::from_secs(a.min(i64::MAX as u64) as i64));
                }
                if c != 0 && ctime.is_none() {
                    ctime = Some(Timestamp::from_secs(c.min(i64::MAX as u64) as i64));
                }
            }
            let kind = match typeflag {
                b'0' | 0 | b'7' | b'S' => Kind::File,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'3' => Kind::Char,
                b'4' => Kind::Block,
                b'5' | b'D' => Kind::Dir,
                b'6' => Kind::Fifo,
                b'V' => {
                    // A volume label: no file.
                    self.skip(size + pad_of(size), &what)?;
                    first = None;
                    pax = Pax::default();
                    continue;
                }
                t => {
                    let t = if t.is_ascii_graphic() {
                        format!("'{}'", t as char)
                    } else {
                        format!("byte {t}")
                    };
                    return Err(bad(
                        &what,
                        offset,
                        format!("member type {t} is not supported (multi-volume, or unknown)"),
                    ));
                }
            };
            // A plain file name ending in / is a directory (old tars).
            let kind = if kind == Kind::File && typeflag != b'S' && path.ends_with(b"/") {
                Kind::Dir
            } else {
                kind
            };
            let dev = match kind {
                Kind::Char | Kind::Block => {
                    let ma = match pax.devmajor {
                        Some(v) => v,
                        None => id(field(329..337, "devmajor")?, "device major")?,
                    };
                    let mi = match pax.devminor {
                        Some(v) => v,
                        None => id(field(337..345, "devminor")?, "device minor")?,
                    };
                    (ma, mi)
                }
                _ => (0, 0),
            };
            // The data stored in the archive after this header.
            // Links, devices and fifos carry no data of use (a size
            // there is skipped, as GNU tar does).
            let stored = size;
            let mut m = Member {
                path,
                link,
                kind,
                mode,
                uid,
                gid,
                mtime,
                atime,
                ctime,
                dev,
                size: if kind == Kind::File { stored } else { 0 },
                sparse: None,
                xattrs: {
                    let mut x = g.xattrs.clone();
                    for (n, v) in &pax.xattrs {
                        x.retain(|(k, _)| k != n);
                        x.push((n.clone(), v.clone()));
                    }
                    x
                },
                acl_access: pax.acl_access.clone().or(g.acl_access.clone()),
                acl_default: pax.acl_default.clone().or(g.acl_default.clone()),
                offset,
            };
            self.left = stored;
            self.pad = pad_of(stored);
            self.current = what.clone();
            // Sparse maps.
            if typeflag == b'S' {
                let map = self.old_gnu_map(&h, &what, offset)?;
                let real = field(483..495, "realsize")?;
                check_map(&map, real, stored).map_err(|e| bad(&what, offset, e))?;
                m.size = real;
                m.sparse = Some(map);
            } else if kind == Kind::File && pax_seen && pax.sparse_major == Some(1) {
                let (map, used) = self.map_1_0(&what, offset)?;
                let real = pax.sparse_size.unwrap_or(stored);
                check_map(&map, real, stored - used).map_err(|e| bad(&what, offset, e))?;
                m.size = real;
                m.sparse = Some(map);
            } else if kind == Kind::File && pax.sparse_map_given {
                if pax.sparse_map.len() % 2 != 0 {
                    return Err(bad(
                        &what,
                        offset,
                        "the sparse map has an odd number of numbers",
                    ));
                }
                let map: Vec<(u64, u64)> = pax.sparse_map.chunks(2).map(|c| (c[0], c[1])).collect();
                let real = pax.sparse_size.unwrap_or(stored);
                check_map(&map, real, stored).map_err(|e| bad(&what, offset, e))?;
                m.size = real;
                m.sparse = Some(map);
            } else if pax.sparse_major.is_some() || pax.sparse_minor.is_some() {
                return Err(bad(
                    &what,
                    offset,
                    format!(
                        "GNU sparse format {}.{} is not supported",
                        pax.sparse_major.unwrap_or(0),
                        pax.sparse_minor.unwrap_or(0)
                    ),
                ));
            }
            if kind != Kind::File {
                // Data of other members is skipped, never used.
                m.size = 0;
            }
            return Ok(Some(m));
        }
    }

    /// The old GNU sparse map: four pairs in the header, then extension
    /// blocks of 21 while `isextended` is set.
    fn old_gnu_map(&mut self, h: &[u8; BLOCK], what: &str, at: u64) -> Result<Vec<(u64, u64)>> {
        let mut map = Vec::new();
        let push = |b: &[u8], n: usize, map: &mut Vec<(u64, u64)>| -> Result<()> {
            for i in 0..n {
                let e = &b[i * 24..i * 24 + 24];
                if e[0] == 0 {
                    break;
                }
                let o = number(&e[..12]).map_err(|m| bad(what, at, format!("sparse map: {m}")))?;
                let l = number(&e[12..]).map_err(|m| bad(what, at, format!("sparse map: {m}")))?;
                if map.len() >= MAX_SPARSE {
                    return Err(bad(what, at, "too many sparse map entries"));
                }
                map.push((o, l));
            }
            Ok(())
        };
        push(&h[386..482], 4, &mut map)?;
        let mut more = h[482] != 0;
        let mut b = [0u8; BLOCK];
        while more {
            self.fill(&mut b, what)?;
            push(&b[..504], 21, &mut map)?;
            more = b[504] != 0;
        }
        // A trailing zero-length run marks the file's end in GNU's map.
        if map.last().is_some_and(|&(_, n)| n == 0) {
            map.pop();
        }
        Ok(map)
    }

    /// The PAX 1.0 sparse map at the start of the data; returns it and
    /// the bytes it took (padding included).
    fn map_1_0(&mut self, what: &str, at: u64) -> Result<(Vec<(u64, u64)>, u64)> {
        let mut used = 0u64;
        let mut block = [0u8; BLOCK];
        let mut pending: Vec<u8> = Vec::new();
        let mut nums: Vec<u64> = Vec::new();
        let mut want: Option<u64> = None;
        loop {
            if let Some(w) = want {
                if nums.len() as u64 == 2 * w {
                    break;
                }
            }
            if used + BLOCK as u64 > self.left {
                return Err(bad(what, at, "the sparse map runs past the member's data"));
            }
            self.fill(&mut block, what)?;
            used += BLOCK as u64;
            for &c in block.iter() {
                if want.is_some_and(|w| nums.len() as u64 == 2 * w) {
                    break;
                }
                if c == b'\n' {
                    let n = decimal(&pending)
                        .ok_or_else(|| bad(what, at, "bad number in the sparse map"))?;
                    pending.clear();
                    match want {
                        None => {
                            if n > MAX_SPARSE as u64 {
                                return Err(bad(
                                    what,
                                    at,
                                    format!("{n} sparse map entries, more than {MAX_SPARSE}"),
                                ));
                            }
                            want = Some(n);
                        }
                        Some(_) => nums.push(n),
                    }
                } else {
                    if pending.len() > 20 {
                        return Err(bad(what, at, "bad number in the sparse map"));
                    }
                    pending.push(c);
                }
            }
        }
        self.left -= used;
        Ok((nums.chunks(2).map(|c| (c[0], c[1])).collect(), used))
    }

    /// Read data of the current member (0 at its end).
    pub fn read_data(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let k = (buf.len() as u64).min(self.left) as usize;
        let n = loop {
            match self.inner.read(&mut buf[..k]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the archive is truncated at offset {} ({} bytes of {} missing)",
                    self.pos, self.left, self.current
                ),
            ));
        }
        self.pos += n as u64;
        self.left -= n as u64;
        Ok(n)
    }

    /// Data bytes of the current member not read yet.
    pub fn data_left(&self) -> u64 {
        self.left
    }
}

fn pad_of(n: u64) -> u64 {
    (BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64
}

/// The current member's data as a reader; for a sparse member, the whole
/// file with its holes as zeros.
pub struct Data<'a, R: Read> {
    tar: &'a mut TarReader<R>,
    /// Sparse runs still to come, and the logical position.
    map: std::collections::VecDeque<(u64, u64)>,
    sparse: bool,
    at: u64,
    size: u64,
}

impl<'a, R: Read> Data<'a, R> {
    /// The data of `m`, just returned by `tar`'s [`TarReader::next_member`].
    pub fn new(tar: &'a mut TarReader<R>, m: &Member) -> Self {
        Data {
            tar,
            map: m.sparse.clone().unwrap_or_default().into(),
            sparse: m.sparse.is_some(),
            at: 0,
            size: m.size,
        }
    }
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.sparse {
            return self.tar.read_data(buf);
        }
        if self.at >= self.size || buf.is_empty() {
            return Ok(0);
        }
        // Drop runs already read.
        while let Some(&(o, n)) = self.map.front() {
            if self.at >= o + n {
                self.map.pop_front();
            } else {
                break;
            }
        }
        let (upto, data) = match self.map.front() {
            Some(&(o, _)) if self.at < o => (o, false),
            Some(&(o, n)) => (o + n, true),
            None => (self.size, false),
        };
        let k = ((upto - self.at) as usize).min(buf.len());
        if data {
            let n = self.tar.read_data(&mut buf[..k])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the sparse member's data ends before its map does",
                ));
            }
            self.at += n as u64;
            Ok(n)
        } else {
            buf[..k].fill(0);
            self.at += k as u64;
            Ok(k)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0"), Ok(0o644));
        assert_eq!(number(b"   755 \0"), Ok(0o755));
        assert_eq!(number(b"\0\0\0\0"), Ok(0));
        assert!(number(b"0009\0").is_err());
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0]), Ok(256));
        assert!(number(&[0xff; 12]).is_err());
        assert!(number(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn times() {
        let t = pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.secs, t.nanos), (1700000000, 500_000_000));
        let t = pax_time(b"-1.25").unwrap();
        assert_eq!((t.secs, t.nanos), (-2, 750_000_000));
        assert!(pax_time(b"12x").is_none());
        assert!(pax_time(b"").is_none());
    }

    #[test]
    fn pax_records() {
        let mut p = Pax::default();
        p.parse(b"13 path=abcd\n26 SCHILY.xattr.user.a=xy\n")
            .unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"abcd"[..]));
        assert_eq!(p.xattrs, vec![(b"user.a".to_vec(), b"xy".to_vec())]);
        for bad in [
            &b"99 path=a\n"[..],
            b"3 path=a\n",
            b"x path=a\n",
            b"11 path=ab\0",
        ] {
            assert!(Pax::default().parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Read every member and its data; errors are fine, panics are not.
    fn read_all(bytes: &[u8]) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut t = TarReader::new(bytes);
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            match t.next_member() {
                Ok(Some(m)) => {
                    let mut d = Data::new(&mut t, &m);
                    let mut buf = [0u8; 4096];
                    let mut total = 0u64;
                    while let Ok(n) = d.read(&mut buf) {
                        if n == 0 || total > 1 << 24 {
                            break;
                        }
                        total += n as u64;
                    }
                    seen.push((m.path.clone(), m.size));
                }
                Ok(None) => return Ok(seen),
                Err(e) => return Err(e),
            }
        }
        Ok(seen)
    }

    #[test]
    fn mutated_archives_never_panic() {
        // A small archive with a PAX header, a long name, a sparse member
        // (1.0) and an old GNU sparse member, then random byte changes.
        let mut a = Vec::new();
        let hdr = |a: &mut Vec<u8>, name: &[u8], t: u8, size: usize, extra: &dyn Fn(&mut [u8])| {
            let mut h = vec![0u8; 512];
            h[..name.len()].copy_from_slice(name);
            h[100..108].copy_from_slice(b"0000644\0");
            h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
            h[156] = t;
            h[257..263].copy_from_slice(b"ustar\0");
            extra(&mut h);
            h[148..156].fill(b' ');
            let sum: u32 = h.iter().map(|&b| b as u32).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            a.extend_from_slice(&h);
        };
        let rec = b"29 GNU.sparse.realsize=10000\n22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n";
        hdr(&mut a, b"x", b'x', rec.len(), &|_| {});
        a.extend_from_slice(rec);
        a.resize(a.len().div_ceil(512) * 512, 0);
        hdr(&mut a, b"s", b'0', 512 + 3, &|_| {});
        a.extend_from_slice(b"1\n100\n3\n");
        a.resize(a.len().div_ceil(512) * 512, 0);
        a.extend_from_slice(b"abc");
        a.resize(a.len().div_ceil(512) * 512, 0);
        hdr(&mut a, b"././@LongLink", b'L', 5, &|_| {});
        a.extend_from_slice(b"long\0");
        a.resize(a.len().div_ceil(512) * 512, 0);
        hdr(&mut a, b"g", b'S', 4, &|h| {
            h[386..398].copy_from_slice(b"00000000010\0");
            h[398..410].copy_from_slice(b"00000000004\0");
            h[483..495].copy_from_slice(b"00000000100\0");
        });
        a.extend_from_slice(b"data");
        a.resize(a.len().div_ceil(512) * 512, 0);
        a.extend_from_slice(&[0u8; 1024]);
        let names: Vec<(Vec<u8>, u64)> = read_all(&a).unwrap();
        assert_eq!(
            names,
            vec![(b"s".to_vec(), 10000), (b"long".to_vec(), 64)],
            "the unmutated archive"
        );
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut b = a.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            // Fix the checksums so that mutations reach the fields.
            if next() % 2 == 0 {
                for off in (0..b.len()).step_by(512) {
                    if &b[off + 257..off + 262] == b"ustar" {
                        b[off + 148..off + 156].fill(b' ');
                        let sum: u32 = b[off..off + 512].iter().map(|&x| x as u32).sum();
                        b[off + 148..off + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                    }
                }
            }
            let cut = (next() as usize) % (b.len() + 1);
            let _ = read_all(&b[..cut.max(b.len() / 2)]);
        }
    }
}
