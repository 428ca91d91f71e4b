//! xz: blocks compressed in parallel, liblzma's multithreaded decoder.
//!
//! `pack` writes one xz stream (CRC64 check) whose blocks each hold
//! [`CHUNK`] = 1 MiB of the image, compressed with LZMA2 at the preset
//! level but with a 1 MiB dictionary (a larger one cannot help inside a
//! 1 MiB block and would cost memory on every thread). Each block is
//! encoded on its own by liblzma (one encoder per worker thread, the same
//! chunked loop as bzip2's and gzip's, so the thousands of all-zero
//! chunks of an image's free space are compressed once and copied), and
//! the stream's index is written at the end: this layout is what `xz -T`
//! writes too, and what a seekable reader needs. Handing the whole image
//! to liblzma's multithreaded encoder instead gave the same bytes' worth
//! of output in twice the time (54.7 s against 26.6 s for a 2 GiB root
//! image, docs/BENCHMARKS.md). Decompression uses liblzma's multithreaded
//! decoder, which decodes blocks in parallel when the stream records their
//! sizes (ours and `xz -T` ones do); concatenated streams and stream
//! padding are handled one stream after another.

use std::fs::File;
use std::os::unix::fs::FileExt;

use liblzma::stream::{Action, Check, Filters, LzmaOptions, MtStreamBuilder, Status, Stream};

use super::seekable::Chunk;
use super::spool::{is_zero, ByteProgress, SparseWriter};
use crate::{Error, Result};

/// The uncompressed size of each xz block `pack` writes.
pub const CHUNK: u64 = 1 << 20;

fn lz_err(e: liblzma::stream::Error) -> Error {
    Error::corrupt(format!("xz data is damaged ({e})"))
}

/// The stream header `pack` writes: CRC64 checks.
fn pack_stream() -> XzStream {
    let flags = [0u8, 4];
    let mut header = [0u8; 12];
    header[..6].copy_from_slice(&[0xfd, b'7', b'z', b'X', b'Z', 0]);
    header[6..8].copy_from_slice(&flags);
    header[8..].copy_from_slice(&crc32(&flags).to_le_bytes());
    XzStream {
        header,
        check: Check::Crc64,
    }
}

/// Compress `len` bytes of `raw` into `out`: one stream whose blocks each
/// hold [`CHUNK`] bytes, compressed on `threads` threads (the same loop
/// as bzip2's and gzip's, so a chunk of zeros is compressed once), then
/// the index listing them.
pub fn compress(
    raw: &File,
    len: u64,
    out: &File,
    level: u32,
    threads: usize,
    progress: &mut ByteProgress,
) -> Result<()> {
    LzmaOptions::new_preset(level).map_err(|e| Error::Invalid(format!("xz level {level}: {e}")))?;
    let s = pack_stream();
    super::write_out(out, &s.header)?;
    let records = super::compress_chunked(raw, len, out, CHUNK as usize, threads, progress, |d| {
        encode_block(&s, d, level)
    })?;
    super::write_out(out, &index_and_footer([s.header[6], s.header[7]], &records))
}

/// The memory the threaded xz decoder may use: it holds each block's
/// whole output, so a stream of big blocks (a bomb of one 2 GiB block)
/// would hold gigabytes; past this limit liblzma decodes such blocks in
/// single-threaded streaming mode. `pack`'s 1 MiB blocks stay threaded.
const XZ_THREAD_MEM: u64 = 256 << 20;

fn decoder(threads: usize) -> Result<Stream> {
    MtStreamBuilder::new()
        .threads(threads as u32)
        .memlimit_threading(XZ_THREAD_MEM)
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(|e| Error::Invalid(format!("xz decoder: {e}")))
}

/// Decompress `input` into `w`: every stream, in order.
pub fn decompress(input: &File, w: &mut SparseWriter, threads: usize) -> Result<()> {
    let total =
        crate::device::image_size(input).map_err(|e| Error::io("reading the xz data", e))?;
    let mut pos = 0u64;
    let mut inbuf = vec![0u8; 1 << 20];
    let mut out = vec![0u8; 1 << 20];
    let mut first = true;
    loop {
        // Stream padding (zeros) between and after streams.
        let mut probe = [0u8; 4];
        while pos < total {
            let n = ((total - pos) as usize).min(4);
            input
                .read_exact_at(&mut probe[..n], pos)
                .map_err(|e| Error::io("reading the xz data", e))?;
            if !is_zero(&probe[..n]) {
                break;
            }
            pos += n as u64;
        }
        if pos >= total {
            if first {
                return Err(Error::corrupt("xz data is damaged (no stream)"));
            }
            return Ok(());
        }
        first = false;
        let mut s = decoder(threads)?;
        let start = pos;
        let mut have = 0usize; // bytes in inbuf
        let mut used = 0usize; // of them consumed
        let mut read_to = start;
        loop {
            if used == have && read_to < total {
                let n = ((total - read_to) as usize).min(inbuf.len());
                input
                    .read_exact_at(&mut inbuf[..n], read_to)
                    .map_err(|e| Error::io("reading the xz data", e))?;
                read_to += n as u64;
                have = n;
                used = 0;
            }
            let action = if read_to >= total {
                Action::Finish
            } else {
                Action::Run
            };
            let (i0, o0) = (s.total_in(), s.total_out());
            let st = s
                .process(&inbuf[used..have], &mut out, action)
                .map_err(lz_err)?;
            used += (s.total_in() - i0) as usize;
            let made = (s.total_out() - o0) as usize;
            w.input_done = start + s.total_in();
            w.write(&out[..made])?;
            if st == Status::StreamEnd {
                pos = start + s.total_in();
                break;
            }
            if made == 0 && s.total_in() == i0 && read_to >= total && used == have {
                return Err(Error::corrupt(
                    "truncated xz data (the file ends inside a stream)",
                ));
            }
        }
    }
}

// # The parts of an xz stream a seekable reader needs
//
// ```text
// stream header  fd 37 7a 58 5a 00, flags (2 bytes: 00, check ID),
//                CRC32 of the flags (4 bytes)                 12 bytes
// blocks         each: block header (its first byte is its size / 4 - 1),
//                compressed data, padding to 4 bytes, check (0, 4, 8 or
//                32 bytes for none, CRC32, CRC64, SHA-256)
// index          00, record count (VLI), per block: unpadded size (header
//                + data + check, without the padding; VLI), uncompressed
//                size (VLI); zero padding to 4 bytes; CRC32 of all that
// stream footer  CRC32 of the next 6 bytes, backward size (index size / 4
//                - 1, u32 LE), the flags again, 59 5a ("YZ")   12 bytes
// ```
//
// VLIs are 7 bits per byte, least significant first, the top bit set on
// every byte but the last. A block is therefore copied as its padded
// bytes, and a new stream gets a new index and footer.

/// The header of an xz stream and what the seekable reader needs of it.
#[derive(Clone, Debug)]
pub struct XzStream {
    /// The 12-byte stream header (copied into every new stream).
    pub header: [u8; 12],
    /// The check its blocks carry.
    pub check: Check,
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(b);
    c.sum()
}

fn put_vli(v: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
    v.push(x as u8);
}

fn get_vli(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut x = 0u64;
    for i in 0..9 {
        let c = *b.get(*at)?;
        *at += 1;
        x |= ((c & 0x7f) as u64) << (7 * i);
        if c & 0x80 == 0 {
            return Some(x);
        }
    }
    None
}

/// An index listing `records` (unpadded size, uncompressed size) and the
/// stream footer after it, for a stream with `flags`.
pub fn index_and_footer(flags: [u8; 2], records: &[(u64, u64)]) -> Vec<u8> {
    let mut v = vec![0u8];
    put_vli(&mut v, records.len() as u64);
    for &(u, n) in records {
        put_vli(&mut v, u);
        put_vli(&mut v, n);
    }
    while v.len() % 4 != 0 {
        v.push(0);
    }
    let c = crc32(&v);
    v.extend_from_slice(&c.to_le_bytes());
    let backward = (v.len() / 4 - 1) as u32;
    let mut f = Vec::with_capacity(6);
    f.extend_from_slice(&backward.to_le_bytes());
    f.extend_from_slice(&flags);
    v.extend_from_slice(&crc32(&f).to_le_bytes());
    v.extend_from_slice(&f);
    v.extend_from_slice(b"YZ");
    v
}

/// The index of a stream ending at byte `end` of `bytes`: its records and
/// the byte where the index starts. None when the footer or index is not
/// valid.
fn read_index(bytes: &[u8]) -> Option<(Vec<(u64, u64)>, usize)> {
    let n = bytes.len();
    if n < 24 || &bytes[n - 2..] != b"YZ" {
        return None;
    }
    let foot = &bytes[n - 12..];
    if crc32(&foot[4..10]) != u32::from_le_bytes(foot[..4].try_into().ok()?) {
        return None;
    }
    let size = (u32::from_le_bytes(foot[4..8].try_into().ok()?) as usize + 1) * 4;
    let start = (n - 12).checked_sub(size)?;
    parse_index(&bytes[start..n - 12]).map(|r| (r, start))
}

fn parse_index(idx: &[u8]) -> Option<Vec<(u64, u64)>> {
    let n = idx.len();
    if n < 8
        || idx[0] != 0
        || crc32(&idx[..n - 4]) != u32::from_le_bytes(idx[n - 4..].try_into().ok()?)
    {
        return None;
    }
    let mut at = 1;
    let count = get_vli(idx, &mut at)?;
    if count > (n as u64) / 2 {
        return None;
    }
    let mut recs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let u = get_vli(idx, &mut at)?;
        let s = get_vli(idx, &mut at)?;
        recs.push((u, s));
    }
    if at > n - 4 || !is_zero(&idx[at..n - 4]) || (n - 4) - at >= 4 {
        return None;
    }
    Some(recs)
}

/// The blocks of a file holding one xz stream (as `pack` writes it), as
/// chunks, from the stream footer and index alone. None for anything else
/// (several streams, stream padding, an unknown check).
pub fn chunk_index(input: &File, total: u64) -> Result<Option<(XzStream, Vec<Chunk>)>> {
    let rd = |buf: &mut [u8], at: u64| {
        input
            .read_exact_at(buf, at)
            .map_err(|e| Error::io("reading the xz data", e))
    };
    if total < 32 {
        return Ok(None);
    }
    let mut header = [0u8; 12];
    rd(&mut header, 0)?;
    if header[..6] != [0xfd, b'7', b'z', b'X', b'Z', 0]
        || crc32(&header[6..8]) != u32::from_le_bytes(header[8..12].try_into().unwrap())
    {
        return Ok(None);
    }
    let check = match (header[6], header[7]) {
        (0, 0) => Check::None,
        (0, 1) => Check::Crc32,
        (0, 4) => Check::Crc64,
        (0, 10) => Check::Sha256,
        _ => return Ok(None),
    };
    let mut foot = [0u8; 12];
    rd(&mut foot, total - 12)?;
    if foot[8..10] != header[6..8] || &foot[10..] != b"YZ" {
        return Ok(None);
    }
    let size = (u32::from_le_bytes(foot[4..8].try_into().unwrap()) as u64 + 1) * 4;
    if size + 24 > total || size > 1 << 30 {
        return Ok(None);
    }
    let mut tail = vec![0u8; size as usize + 12];
    rd(&mut tail, total - 12 - size)?;
    let Some((recs, _)) = read_index(&tail) else {
        return Ok(None);
    };
    let mut chunks = Vec::with_capacity(recs.len());
    let (mut at, mut raw) = (12u64, 0u64);
    for (u, n) in recs {
        // A crafted index must not wrap the offsets around, nor claim a
        // block larger than the file (or than a chunk can be).
        if u > total || n > super::seekable::MAX_CHUNK {
            return Ok(None);
        }
        let padded = u.div_ceil(4) * 4;
        chunks.push(Chunk {
            raw,
            len: n,
            at,
            size: padded,
            unpadded: u,
            bit: 0,
            bits: 0,
            crc: 0,
        });
        let (Some(a), Some(r)) = (at.checked_add(padded), raw.checked_add(n)) else {
            return Ok(None);
        };
        at = a;
        raw = r;
    }
    if at.checked_add(size + 12) != Some(total) {
        return Ok(None);
    }
    Ok(Some((XzStream { header, check }, chunks)))
}

/// Decompress one block (its padded bytes, as listed by [`chunk_index`])
/// by wrapping it in a stream of its own.
pub fn decode_block(s: &XzStream, block: &[u8], c: &Chunk) -> Result<Vec<u8>> {
    let mut mini = Vec::with_capacity(block.len() + 64);
    mini.extend_from_slice(&s.header);
    mini.extend_from_slice(block);
    mini.extend_from_slice(&index_and_footer(
        [s.header[6], s.header[7]],
        &[(c.unpadded, c.len)],
    ));
    let mut d = Stream::new_stream_decoder(u64::MAX, 0).map_err(lz_err)?;
    let mut out: Vec<u8> = Vec::with_capacity(c.len as usize);
    loop {
        if out.len() == out.capacity() {
            out.reserve((c.len as usize).max(1 << 16));
        }
        let (i0, o0) = (d.total_in() as usize, d.total_out());
        let st = d
            .process_vec(&mini[i0..], &mut out, Action::Finish)
            .map_err(lz_err)?;
        if out.len() as u64 > c.len {
            return Err(Error::corrupt(
                "xz data is damaged (a block holds more than its index says)",
            ));
        }
        if st == Status::StreamEnd {
            return Ok(out);
        }
        if d.total_in() as usize == i0 && d.total_out() == o0 && out.len() < out.capacity() {
            return Err(Error::corrupt("xz data is damaged (a block ends early)"));
        }
    }
}

/// Compress `data` as one block at `level` with the stream's check, as
/// `pack` would: its padded bytes and its unpadded size.
pub fn encode_block(s: &XzStream, data: &[u8], level: u32) -> Result<(Vec<u8>, u64)> {
    let mut opts = LzmaOptions::new_preset(level)
        .map_err(|e| Error::Invalid(format!("xz level {level}: {e}")))?;
    let dict = (data.len() as u64)
        .next_power_of_two()
        .clamp(CHUNK, 64 << 20);
    opts.dict_size(dict as u32);
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    let mut e = MtStreamBuilder::new()
        .threads(1)
        .block_size((data.len() as u64).max(1))
        .filters(filters)
        .check(s.check)
        .encoder()
        .map_err(|e| Error::Invalid(format!("xz encoder: {e}")))?;
    let mut out: Vec<u8> = Vec::with_capacity(data.len() / 2 + 4096);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(4096));
        }
        let i0 = e.total_in() as usize;
        let st = e
            .process_vec(&data[i0..], &mut out, Action::Finish)
            .map_err(|e| Error::Invalid(format!("xz compression failed: {e}")))?;
        if st == Status::StreamEnd {
            break;
        }
    }
    match read_index(&out) {
        Some((recs, start)) if recs.len() == 1 && recs[0].1 == data.len() as u64 => {
            let padded = recs[0].0.div_ceil(4) * 4;
            if 12 + padded as usize != start {
                return Err(Error::Invalid(
                    "xz encoder wrote an unexpected stream".into(),
                ));
            }
            Ok((out[12..start].to_vec(), recs[0].0))
        }
        _ => Err(Error::Invalid(
            "xz encoder wrote an unexpected stream".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trip() {
        let recs = vec![(1036, 1 << 20), (300, 1 << 20), (200_000, 12_345)];
        let v = index_and_footer([0, 4], &recs);
        assert_eq!(v.len() % 4, 0);
        let (back, start) = read_index(&v).unwrap();
        assert_eq!((back, start), (recs, 0));
        // One bit off anywhere in the index and it is refused.
        let mut bad = v.clone();
        bad[3] ^= 1;
        assert!(read_index(&bad).is_none());
    }

    #[test]
    fn block_round_trip_and_stream_of_blocks() {
        let s = XzStream {
            header: [
                0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4, 0xe6, 0xd6, 0xb4, 0x46,
            ],
            check: Check::Crc64,
        };
        assert_eq!(crc32(&s.header[6..8]).to_le_bytes(), s.header[8..12]);
        let a: Vec<u8> = (0..300_000u32).map(|i| (i * 7 / 13) as u8).collect();
        let b = vec![7u8; 5000];
        let (ba, ua) = encode_block(&s, &a, 6).unwrap();
        let (bb, ub) = encode_block(&s, &b, 6).unwrap();
        assert_eq!(ba.len() % 4, 0);
        let ka = Chunk {
            raw: 0,
            len: a.len() as u64,
            at: 12,
            size: ba.len() as u64,
            unpadded: ua,
            bit: 0,
            bits: 0,
            crc: 0,
        };
        assert_eq!(decode_block(&s, &ba, &ka).unwrap(), a);
        // Two blocks and a new index make a stream the standard decoder
        // reads, and chunk_index finds both.
        let mut f = s.header.to_vec();
        f.extend_from_slice(&ba);
        f.extend_from_slice(&bb);
        f.extend_from_slice(&index_and_footer(
            [0, 4],
            &[(ua, a.len() as u64), (ub, 5000)],
        ));
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut liblzma::read::XzDecoder::new(&f[..]), &mut out).unwrap();
        assert_eq!(out, [a.clone(), b].concat());
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), &f).unwrap();
        let (_, ch) = chunk_index(t.as_file(), f.len() as u64).unwrap().unwrap();
        assert_eq!(ch.len(), 2);
        assert_eq!(
            (ch[1].raw, ch[1].len, ch[1].at),
            (a.len() as u64, 5000, 12 + ba.len() as u64)
        );
    }
}
