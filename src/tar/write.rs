//! Writing a POSIX.1-2001 (PAX) tar stream: a ustar header per member,
//! preceded by an `x` extended header with the records the ustar fields
//! cannot hold (long or split-less paths and link targets, large ids and
//! sizes, sub-second and negative times, atime and ctime, extended
//! attributes as `SCHILY.xattr.NAME`, ACLs as `SCHILY.acl.*`). See
//! [`super::read`] for the layout. Nothing depends on the clock or the
//! host: the same members give the same bytes.

use std::io::Write;

use crate::error::{Error, Result};
use crate::inode::Timestamp;

const BLOCK: usize = 512;
/// GNU tar's default record: archives are padded to a multiple of it.
const RECORD: u64 = 20 * BLOCK as u64;

/// One member to write.
pub struct Header {
    /// The member name (directories end with `/`).
    pub path: Vec<u8>,
    /// Type flag: b'0', b'1', b'2', b'3', b'4', b'5', b'6'.
    pub typeflag: u8,
    /// Link target (types 1 and 2).
    pub link: Vec<u8>,
    /// Permission bits.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Data bytes that follow.
    pub size: u64,
    /// Times.
    pub mtime: Timestamp,
    /// Access time (a PAX record).
    pub atime: Option<Timestamp>,
    /// Change time (a PAX record).
    pub ctime: Option<Timestamp>,
    /// Device number (types 3 and 4).
    pub dev: (u32, u32),
    /// Extra PAX records (key, value), written in this order.
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A PAX tar stream being written.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

fn octal(field: &mut [u8], v: u64) -> bool {
    let digits = field.len() - 1;
    if digits < 22 && v >> (3 * digits) != 0 {
        return false;
    }
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

/// One record `LEN KEY=VALUE\n`, LEN counting itself.
fn record(out: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    let body = k.len() + v.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(k);
    out.push(b'=');
    out.extend_from_slice(v);
    out.push(b'\n');
}

fn time_text(t: Timestamp) -> String {
    if t.nanos == 0 {
        return t.secs.to_string();
    }
    if t.secs >= 0 {
        return format!("{}.{:09}", t.secs, t.nanos);
    }
    // -1.25 is secs -2, nanos 750000000.
    let whole = -(t.secs + 1);
    format!("-{}.{:09}", whole, 1_000_000_000 - t.nanos)
}

/// Split a path into ustar's prefix and name, when it fits.
fn split_ustar(p: &[u8]) -> Option<(&[u8], &[u8])> {
    if p.len() <= 100 {
        return Some((&[], p));
    }
    // The prefix ends at a '/', which is not stored.
    let last = p.len().min(156);
    (1..last)
        .rev()
        .filter(|&i| p[i] == b'/')
        .find(|&i| i <= 155 && p.len() - i - 1 <= 100 && p.len() - i - 1 > 0)
        .map(|i| (&p[..i], &p[i + 1..]))
}

#[allow(clippy::too_many_arguments)]
fn ustar_block(
    name: &[u8],
    prefix: &[u8],
    mode: u16,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    typeflag: u8,
    link: &[u8],
    dev: (u32, u32),
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], mode as u64);
    if !octal(&mut h[108..116], uid as u64) {
        octal(&mut h[108..116], 0);
    }
    if !octal(&mut h[116..124], gid as u64) {
        octal(&mut h[116..124], 0);
    }
    if !octal(&mut h[124..136], size) {
        octal(&mut h[124..136], 0);
    }
    let mt = if (0..=0o77777777777).contains(&mtime) {
        mtime as u64
    } else {
        0
    };
    octal(&mut h[136..148], mt);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    if typeflag == b'3' || typeflag == b'4' {
        octal(&mut h[329..337], dev.0 as u64);
        octal(&mut h[337..345], dev.1 as u64);
    }
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

impl<W: Write> TarWriter<W> {
    /// Write to `out`.
    pub fn new(out: W) -> Self {
        TarWriter { out, written: 0 }
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.out
            .write_all(b)
            .map_err(|e| Error::io("writing the archive", e))?;
        self.written += b.len() as u64;
        Ok(())
    }

    /// Write a member's headers; its `size` bytes of data must follow
    /// through [`Self::data`], then [`Self::end_data`].
    pub fn header(&mut self, h: &Header) -> Result<()> {
        let mut pax = Vec::new();
        let split = split_ustar(&h.path);
        if split.is_none() {
            record(&mut pax, b"path", &h.path);
        }
        if h.link.len() > 100 {
            record(&mut pax, b"linkpath", &h.link);
        }
        if h.uid as u64 > 0o7777777 {
            record(&mut pax, b"uid", h.uid.to_string().as_bytes());
        }
        if h.gid as u64 > 0o7777777 {
            record(&mut pax, b"gid", h.gid.to_string().as_bytes());
        }
        if h.size > 0o77777777777 {
            record(&mut pax, b"size", h.size.to_string().as_bytes());
        }
        if h.mtime.nanos != 0 || !(0..=0o77777777777).contains(&h.mtime.secs) {
            record(&mut pax, b"mtime", time_text(h.mtime).as_bytes());
        }
        if let Some(t) = h.atime {
            record(&mut pax, b"atime", time_text(t).as_bytes());
        }
        if let Some(t) = h.ctime {
            record(&mut pax, b"ctime", time_text(t).as_bytes());
        }
        if (h.typeflag == b'3' || h.typeflag == b'4')
            && (h.dev.0 > 0o7777777 || h.dev.1 > 0o7777777)
        {
            record(&mut pax, b"SCHILY.devmajor", h.dev.0.to_string().as_bytes());
            record(&mut pax, b"SCHILY.devminor", h.dev.1.to_string().as_bytes());
        }
        for (k, v) in &h.records {
            record(&mut pax, k, v);
        }
        if !pax.is_empty() {
            // Named as GNU tar names them: DIR/PaxHeaders/BASE.
            let trimmed = h.path.strip_suffix(b"/").unwrap_or(&h.path);
            let base = trimmed
                .rsplit(|&b| b == b'/')
                .next()
                .filter(|b| !b.is_empty())
                .unwrap_or(b".");
            let mut xname = b"PaxHeaders/".to_vec();
            xname.extend_from_slice(base);
            xname.truncate(100);
            let mt = h.mtime.secs.clamp(0, 0o77777777777);
            let x = ustar_block(
                &xname,
                &[],
                0o644,
                0,
                0,
                pax.len() as u64,
                mt,
                b'x',
                &[],
                (0, 0),
            );
            self.put(&x)?;
            self.put(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        let (prefix, name) = split.unwrap_or((&[], &h.path[..h.path.len().min(100)]));
        let link = &h.link[..h.link.len().min(100)];
        let b = ustar_block(
            name,
            prefix,
            h.mode & 0o7777,
            h.uid,
            h.gid,
            h.size,
            h.mtime.secs,
            h.typeflag,
            link,
            h.dev,
        );
        self.put(&b)
    }

    fn pad(&mut self, n: u64) -> Result<()> {
        let p = (BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64;
        self.put(&[0u8; BLOCK][..p as usize])
    }

    /// Data bytes of the current member.
    pub fn data(&mut self, b: &[u8]) -> Result<()> {
        self.put(b)
    }

    /// After `size` data bytes: the padding.
    pub fn end_data(&mut self, size: u64) -> Result<()> {
        self.pad(size)
    }

    /// The two zero blocks, padded to a 10 KiB record as GNU tar pads.
    pub fn finish(mut self) -> Result<W> {
        self.put(&[0u8; 2 * BLOCK])?;
        let rest = (RECORD - self.written % RECORD) % RECORD;
        let zeros = vec![0u8; rest as usize];
        self.put(&zeros)?;
        self.out
            .flush()
            .map_err(|e| Error::io("writing the archive", e))?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths_count_themselves() {
        for v in [0usize, 1, 5, 6, 7, 90, 95, 96, 97, 990, 995, 996, 1000] {
            let mut out = Vec::new();
            record(&mut out, b"k", &vec![b'a'; v]);
            let sp = out.iter().position(|&b| b == b' ').unwrap();
            let n: usize = std::str::from_utf8(&out[..sp]).unwrap().parse().unwrap();
            assert_eq!(n, out.len(), "value of {v}");
        }
    }

    #[test]
    fn times_as_text() {
        assert_eq!(time_text(Timestamp { secs: 5, nanos: 0 }), "5");
        assert_eq!(time_text(Timestamp { secs: 5, nanos: 1 }), "5.000000001");
        assert_eq!(
            time_text(Timestamp {
                secs: -2,
                nanos: 750_000_000
            }),
            "-1.250000000"
        );
    }

    #[test]
    fn long_paths_split_or_go_to_pax() {
        let p = [vec![b'a'; 150], b"/".to_vec(), vec![b'b'; 99]].concat();
        let (pre, name) = split_ustar(&p).unwrap();
        assert_eq!((pre.len(), name.len()), (150, 99));
        assert!(split_ustar(&[b'c'; 101]).is_none());
    }
}
