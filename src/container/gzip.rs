//! gzip: parallel compression into one member per 1 MiB chunk (each with
//! its sizes in an `E3` header subfield), and decompression that runs in
//! parallel over members that carry those sizes and falls back to zlib,
//! member after member, for any other gzip file.
//!
//! # Member layout written by `pack`
//!
//! ```text
//! 1f 8b 08 04            magic, deflate, FLG = FEXTRA
//! 00 00 00 00            MTIME (none: reproducible)
//! XFL 03                 XFL (2: level 9, 4: level 1, else 0), OS = Unix
//! 0c 00                  XLEN = 12
//! 45 33 08 00            subfield "E3", 8 bytes:
//! SSSS SSSS              member size, header to trailer (u32 LE)
//! UUUU UUUU              uncompressed size (u32 LE)
//! ...                    raw deflate data (final block ends the member)
//! CRC32 ISIZE            trailer (u32 LE each)
//! ```
//!
//! A single-member gzip file from another tool has no independent pieces:
//! it is decoded by one thread (zlib-rs, the fastest inflate we have);
//! splitting a deflate stream at guessed block boundaries (as pugz does)
//! is not done.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

use super::parallel::ordered;
use super::seekable::Chunk;
use super::spool::{ByteProgress, Pieces, SparseWriter};
use crate::{Error, Result};

/// The uncompressed size of each member `pack` writes.
pub const CHUNK: usize = 1 << 20;
/// The size of the member header `pack` writes.
pub const HEADER: usize = 24;

/// Raw deflate of `data` at `level`, ended with a final block (`finish`)
/// or a full flush (byte-aligned, more data may follow).
pub fn deflate(data: &[u8], level: u32, finish: bool) -> Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if finish {
        FlushCompress::Finish
    } else {
        FlushCompress::Full
    };
    loop {
        let done = c.total_in() as usize;
        let st = c
            .compress_vec(&data[done..], &mut out, flush)
            .map_err(|e| Error::Invalid(format!("deflate failed: {e}")))?;
        if finish && st == Status::StreamEnd {
            return Ok(out);
        }
        // A flush is complete when all input is in and output room is left.
        if !finish && c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// One complete member for `data`.
pub fn compress_member(data: &[u8], level: u32) -> Result<Vec<u8>> {
    let body = deflate(data, level, true)?;
    let mut crc = Crc::new();
    crc.update(data);
    let total = HEADER + body.len() + 8;
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&[
        0x1f, 0x8b, 8, 4, 0, 0, 0, 0, xfl, 3, 12, 0, b'E', b'3', 8, 0,
    ]);
    m.extend_from_slice(&(total as u32).to_le_bytes());
    m.extend_from_slice(&(data.len() as u32).to_le_bytes());
    m.extend_from_slice(&body);
    m.extend_from_slice(&crc.sum().to_le_bytes());
    m.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(m)
}

/// Compress `len` bytes of `raw` into `out`, one member per chunk.
pub fn compress(
    raw: &File,
    len: u64,
    out: &File,
    level: u32,
    threads: usize,
    progress: &mut ByteProgress,
) -> Result<()> {
    if len == 0 {
        return super::write_out(out, &compress_member(&[], level)?);
    }
    super::compress_chunked(raw, len, out, CHUNK, threads, progress, |d| {
        compress_member(d, level).map(|m| (m, 0))
    })
    .map(|_| ())
}

fn damaged(what: &str) -> Error {
    Error::corrupt(format!("gzip data is damaged ({what})"))
}

/// A parsed member header: its length, and the `E3` member size if any.
struct Header {
    len: usize,
    member: Option<u64>,
    /// The `E3` uncompressed size.
    raw: Option<u64>,
}

/// Parse a member header at the start of `b` (None: need more bytes).
/// The member header at byte `pos` of a file of `total` bytes, read into
/// `head` (as much of it as the file has there): None when none parses
/// there. Only a read error is an error.
fn header_at(input: &File, pos: u64, total: u64, head: &mut [u8]) -> Result<Option<Header>> {
    let n = ((total - pos) as usize).min(head.len());
    input
        .read_exact_at(&mut head[..n], pos)
        .map_err(|e| Error::io("reading the gzip data", e))?;
    Ok(parse_header(&head[..n]).ok().flatten())
}

fn parse_header(b: &[u8]) -> Result<Option<Header>> {
    if b.len() < 10 {
        return Ok(None);
    }
    if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
        return Err(damaged("bad member header"));
    }
    let flg = b[3];
    // gunzip refuses reserved flags ("encrypted", "continuation"): such a
    // member is not read as one here either.
    if flg & 0xe0 != 0 {
        return Err(damaged("reserved header flags"));
    }
    let mut at = 10;
    let mut member = None;
    let mut raw = None;
    if flg & 4 != 0 {
        if b.len() < at + 2 {
            return Ok(None);
        }
        let xlen = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
        at += 2;
        if b.len() < at + xlen {
            return Ok(None);
        }
        let mut x = &b[at..at + xlen];
        while x.len() >= 4 {
            let sl = u16::from_le_bytes([x[2], x[3]]) as usize;
            if x.len() < 4 + sl {
                break;
            }
            if &x[..2] == b"E3" && sl == 8 {
                member = Some(u32::from_le_bytes(x[4..8].try_into().unwrap()) as u64);
                raw = Some(u32::from_le_bytes(x[8..12].try_into().unwrap()) as u64);
            }
            x = &x[4 + sl..];
        }
        at += xlen;
    }
    for bit in [8u8, 16] {
        if flg & bit != 0 {
            match b[at.min(b.len())..].iter().position(|&c| c == 0) {
                Some(p) => at += p + 1,
                None => return Ok(None),
            }
        }
    }
    if flg & 2 != 0 {
        at += 2;
        if b.len() < at {
            return Ok(None);
        }
        // FHCRC: the low 16 bits of the CRC-32 of the header before it,
        // which gunzip checks.
        let mut crc = Crc::new();
        crc.update(&b[..at - 2]);
        if u16::from_le_bytes([b[at - 2], b[at - 1]]) != crc.sum() as u16 {
            return Err(damaged("header CRC mismatch"));
        }
    }
    if b.len() < at {
        return Ok(None);
    }
    Ok(Some(Header {
        len: at,
        member,
        raw,
    }))
}

/// The largest member (uncompressed, as its `E3` subfield says, and
/// compressed) that the parallel decoder takes: the members in flight are
/// held in memory. A larger one, or one that inflates to more than its
/// `E3` size says, is decoded by the streaming decoder, which applies
/// the size limit as it goes.
const MAX_PARALLEL: u64 = super::seekable::MAX_CHUNK;

/// Decompress `input` into `w`.
pub fn decompress(input: &File, w: &mut SparseWriter, threads: usize) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let total =
        crate::device::image_size(input).map_err(|e| Error::io("reading the gzip data", e))?;
    let mut rest_at = None;
    let stop = AtomicBool::new(false);
    ordered(
        threads,
        |send| {
            let mut pos = 0u64;
            let mut head = vec![0u8; 4096];
            while pos < total && !stop.load(Ordering::Relaxed) {
                let h = match header_at(input, pos, total, &mut head)? {
                    Some(h) => h,
                    None => {
                        send(Err(pos));
                        return Ok(());
                    }
                };
                match (h.member, h.raw) {
                    (Some(size), Some(raw))
                        if size as usize > h.len + 8
                            && pos + size <= total
                            && size <= 2 * MAX_PARALLEL
                            && raw <= MAX_PARALLEL =>
                    {
                        let mut m = vec![0u8; size as usize];
                        input
                            .read_exact_at(&mut m, pos)
                            .map_err(|e| Error::io("reading the gzip data", e))?;
                        if !send(Ok((m, h.len, raw as usize, pos))) {
                            return Ok(());
                        }
                        pos += size;
                    }
                    _ => {
                        send(Err(pos));
                        return Ok(());
                    }
                }
            }
            Ok(())
        },
        |j: std::result::Result<(Vec<u8>, usize, usize, u64), u64>| match j {
            Ok((m, hlen, raw, pos)) => inflate_member(&m, hlen, raw).map(|p| match p {
                Some(p) => Ok((p, pos + m.len() as u64)),
                None => Err(pos),
            }),
            Err(pos) => Ok(Err(pos)),
        },
        |r| {
            if rest_at.is_some() {
                return Ok(());
            }
            match r {
                Ok((p, end)) => {
                    w.input_done = end;
                    p.write_to(w)
                }
                Err(pos) => {
                    rest_at = Some(pos);
                    stop.store(true, Ordering::Relaxed);
                    Ok(())
                }
            }
        },
    )?;
    match rest_at {
        Some(pos) => decompress_sequential(input, pos, w),
        None => Ok(()),
    }
}

/// Inflate one whole member (header length `hlen`), checking its CRC and
/// size. None when it inflates to more than `raw` bytes (its `E3` size):
/// the streaming decoder takes it from there.
fn inflate_member(m: &[u8], hlen: usize, raw: usize) -> Result<Option<Pieces>> {
    let body = &m[hlen..m.len() - 8];
    let mut d = Decompress::new(false);
    let mut out = vec![0u8; 1 << 20];
    let mut p = Pieces::default();
    let mut crc = Crc::new();
    loop {
        let (i0, o0) = (d.total_in() as usize, d.total_out());
        let st = d
            .decompress(&body[i0..], &mut out, FlushDecompress::None)
            .map_err(|e| damaged(&e.to_string()))?;
        let made = (d.total_out() - o0) as usize;
        crc.update(&out[..made]);
        p.push(&out[..made]);
        if p.len() > raw as u64 {
            return Ok(None);
        }
        if st == Status::StreamEnd {
            break;
        }
        if made == 0 && d.total_in() as usize == i0 {
            return Err(damaged("a member ends early"));
        }
    }
    // A deflate stream that ends before the member's stated end is
    // followed, for gunzip, by its trailer and more members: the
    // streaming decoder reads it as gunzip does.
    if d.total_in() as usize != body.len() {
        return Ok(None);
    }
    let t = &m[m.len() - 8..];
    if u32::from_le_bytes(t[..4].try_into().unwrap()) != crc.sum() {
        return Err(damaged("CRC mismatch"));
    }
    if u32::from_le_bytes(t[4..].try_into().unwrap()) != p.len() as u32 {
        return Err(damaged("length mismatch"));
    }
    Ok(Some(p))
}

/// zlib over the file from `pos`, member after member. Zeros after the
/// last member are padding (a tape block, a partition or loop device
/// rounded up), which gunzip ignores too; other trailing bytes are an
/// error.
fn decompress_sequential(input: &File, pos: u64, w: &mut SparseWriter) -> Result<()> {
    let mut f = input;
    f.seek(SeekFrom::Start(pos))
        .map_err(|e| Error::io("reading the gzip data", e))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut buf = vec![0u8; 1 << 20];
    while !only_zeros_left(&mut r)? {
        let mut d = flate2::bufread::GzDecoder::new(&mut r);
        loop {
            let n = super::read_decoded(&mut d, &mut buf, "gzip", "member")?;
            if n == 0 {
                break;
            }
            let mut f2: &File = input;
            w.input_done = f2.stream_position().unwrap_or(0);
            w.write(&buf[..n])?;
        }
    }
    Ok(())
}

/// True at the end of the data or when only zeros are left (read up to
/// the end); false when a member follows.
fn only_zeros_left(r: &mut impl BufRead) -> Result<bool> {
    let mut zeros = false;
    loop {
        let b = r
            .fill_buf()
            .map_err(|e| Error::io("reading the gzip data", e))?;
        if b.is_empty() {
            return Ok(true);
        }
        let n = b.iter().take_while(|&&x| x == 0).count();
        if n == 0 && !zeros {
            return Ok(false);
        }
        if n < b.len() {
            return Err(damaged("trailing data after zeros after the last member"));
        }
        zeros = true;
        r.consume(n);
    }
}

/// The most bytes deflate makes of one compressed byte (1032), with a
/// margin.
const MAX_RATIO: u64 = 1040;

/// The members of a gzip file whose every member carries the `E3`
/// subfield (as `pack` writes them), as chunks: found by walking the
/// member sizes, reading only each header. None when a member has no
/// `E3` sizes, or they do not add up to the file.
pub fn chunk_index(input: &File, total: u64) -> Result<Option<Vec<Chunk>>> {
    let mut chunks = Vec::new();
    let (mut pos, mut raw) = (0u64, 0u64);
    let mut head = vec![0u8; 512];
    while pos < total {
        let Some(h) = header_at(input, pos, total, &mut head)? else {
            return Ok(None);
        };
        let (Some(size), Some(len)) = (h.member, h.raw) else {
            return Ok(None);
        };
        if size < h.len as u64 + 8 + 2 || pos + size > total {
            return Ok(None);
        }
        // The trailer's ISIZE, which gunzip checks against the data, must
        // agree with E3: a member whose E3 says otherwise (edited by hand)
        // would put every chunk after it at the wrong offset.
        let mut isize = [0u8; 4];
        input
            .read_exact_at(&mut isize, pos + size - 4)
            .map_err(|e| Error::io("reading the gzip data", e))?;
        if u32::from_le_bytes(isize) as u64 != len {
            return Ok(None);
        }
        // ISIZE is the size modulo 2^32: a member that inflates to
        // `len + k * 2^32` bytes passes gunzip's check too, and the
        // seekable reader decodes only the chunks the engine reads (a
        // member in free space is copied unread), so it would see another
        // image than gunzip. Deflate makes at most 1032 bytes of a
        // compressed byte (a 258-byte match in 2 bits): a member whose
        // body cannot reach `len + 2^32` holds exactly `len` bytes. A
        // member that could (4 MB for a 1 MiB chunk; `pack` writes at most
        // 1 MiB and a few bytes) is not taken as seekable.
        let body = size - h.len as u64 - 8;
        if body.saturating_mul(MAX_RATIO) >= len + (1 << 32) {
            return Ok(None);
        }
        chunks.push(Chunk {
            raw,
            len,
            at: pos,
            size,
            unpadded: size,
            bit: 0,
            bits: 0,
            crc: 0,
        });
        pos += size;
        raw += len;
    }
    if !members_end_where_stated(input, total, &chunks)? {
        return Ok(None);
    }
    Ok(Some(chunks))
}

/// False when a member's deflate data may end before the member's stated
/// end, with another member after it inside the stated size: gunzip
/// reads both, while the seekable reader (which decodes only the chunks
/// the engine reads) would take the span as one chunk of its E3 size. Such
/// a span holds a gzip header past its own: `1f 8b 08`, or `1f 9e 08`
/// (gzip 0.5's magic, which gunzip still takes for any member); every
/// member that does (by chance, a few in a hundred of `pack`'s) is
/// decoded here, and must end exactly at its stated end. The last member
/// is always decoded (one chunk): gunzip also takes a member in
/// `compress`, `pack` or LZH format (`1f 9d`, `1f 1e`, `1f a0`), which
/// runs to the end of the file. The file is read once.
fn members_end_where_stated(input: &File, total: u64, chunks: &[Chunk]) -> Result<bool> {
    const W: usize = 4 << 20;
    let magics = [
        memchr::memmem::Finder::new(&[0x1f, 0x8b, 8]),
        memchr::memmem::Finder::new(&[0x1f, 0x9e, 8]),
    ];
    let mut suspect: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; W + 2];
    let mut at = 0u64;
    while at < total {
        let n = ((total - at) as usize).min(W + 2);
        input
            .read_exact_at(&mut buf[..n], at)
            .map_err(|e| Error::io("reading the gzip data", e))?;
        for magic in &magics {
            for h in magic.find_iter(&buf[..n]) {
                let p = at + h as u64;
                let i = chunks.partition_point(|k| k.at + k.size <= p);
                if i < chunks.len() && p != chunks[i].at {
                    suspect.push(i);
                }
            }
        }
        at += (n as u64).min(W as u64);
        if n < W + 2 {
            break;
        }
    }
    suspect.extend(chunks.len().checked_sub(1));
    suspect.sort_unstable();
    suspect.dedup();
    for i in suspect {
        let k = &chunks[i];
        let mut m = vec![0u8; k.size as usize];
        input
            .read_exact_at(&mut m, k.at)
            .map_err(|e| Error::io("reading the gzip data", e))?;
        if decode_member(&m, k.len as usize).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Decompress one whole member (as [`chunk_index`] found it), checking
/// its CRC and size; it must hold at most `max` bytes.
pub fn decode_member(m: &[u8], max: usize) -> Result<Vec<u8>> {
    let h = match parse_header(m)? {
        Some(h) if m.len() >= h.len + 8 => h,
        _ => return Err(damaged("a member ends early")),
    };
    let body = &m[h.len..m.len() - 8];
    let mut d = Decompress::new(false);
    let mut out: Vec<u8> = Vec::with_capacity(max);
    loop {
        if out.len() == out.capacity() {
            out.reserve(max.max(1 << 16));
        }
        let (i0, o0) = (d.total_in() as usize, d.total_out());
        let st = d
            .decompress_vec(&body[i0..], &mut out, FlushDecompress::Finish)
            .map_err(|e| damaged(&e.to_string()))?;
        if out.len() > max {
            return Err(damaged("a member holds more than its header says"));
        }
        if st == Status::StreamEnd {
            break;
        }
        if d.total_in() as usize == i0 && d.total_out() == o0 && out.len() < out.capacity() {
            return Err(damaged("a member ends early"));
        }
    }
    if d.total_in() as usize != body.len() {
        return Err(damaged("a member's size does not match its header"));
    }
    let mut crc = Crc::new();
    crc.update(&out);
    let t = &m[m.len() - 8..];
    if u32::from_le_bytes(t[..4].try_into().unwrap()) != crc.sum() {
        return Err(damaged("CRC mismatch"));
    }
    if u32::from_le_bytes(t[4..].try_into().unwrap()) != out.len() as u32 {
        return Err(damaged("length mismatch"));
    }
    Ok(out)
}
