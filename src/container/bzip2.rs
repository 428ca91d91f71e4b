//! bzip2: parallel compression into one stream of one block per chunk
//! (joined at bit offsets), and parallel decompression of any bzip2 file
//! (single or multi-stream) by cutting it into its blocks.
//!
//! # Layout (see also the module docs of [`container`](super))
//!
//! A bzip2 stream is `BZh` and a level digit (the block size in 100 kB),
//! then blocks, each starting with the 48-bit magic `0x314159265359` and
//! the block's CRC (32 bits), then the end-of-stream magic
//! `0x177245385090` and the stream CRC (32 bits: for each block in order,
//! `crc = crc.rotate_left(1) ^ block_crc`), then padding to a byte. Blocks
//! are bit-aligned, not byte-aligned, but each block is independent: it
//! carries its own Huffman tables and the run-length coding restarts.
//!
//! # Decompression in parallel (the lbzip2 way)
//!
//! The compressed file is scanned for the two 48-bit magics at every bit
//! offset (eight byte patterns per magic, found with `memchr::memmem`
//! and confirmed bit by bit). Each block, the bits from its magic to the
//! next magic, is re-wrapped as a stream of its own (`BZh` + level, the
//! block shifted to a byte boundary, the end magic, and the block's CRC as
//! the stream CRC) and decoded by libbzip2 on a worker thread; the stream
//! CRCs are checked by folding the block CRCs in order. This works for
//! single-stream files (bzip2's own) as well as for multi-stream ones. A
//! magic pattern can occur by chance inside compressed data; such a false
//! cut makes a block fail to decode, and then the whole file is decoded
//! again sequentially by libbzip2 (the only path for damaged files, so that
//! their error is libbzip2's).

use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::FileExt;

use bzip2::{Action, Compress, Compression, Decompress, Status};
use memchr::memmem;

use super::parallel::ordered;
use super::seekable::Chunk;
use super::spool::{is_zero, ByteProgress, Pieces, SparseWriter};
use crate::{Error, Result};

/// The block magic (pi), at the start of every block.
pub const BLOCK_MAGIC: [u8; 6] = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
/// The end-of-stream magic (sqrt(pi)).
pub const END_MAGIC: [u8; 6] = [0x17, 0x72, 0x45, 0x38, 0x50, 0x90];
const BLOCK: u64 = 0x3141_5926_5359;
const END: u64 = 0x1772_4538_5090;
const MASK48: u64 = (1 << 48) - 1;

/// The empty stream (`BZh<level>`, the end magic, a CRC of 0: 14 bytes
/// that decompress to nothing), which `pack` writes for an empty image
/// (as bzip2 does for an empty file). Earlier versions wrote one before
/// their first stream and after their last, so that single-stream readers
/// read nothing of their files.
pub fn marker(level: u32) -> [u8; 14] {
    let mut m = [0u8; 14];
    m[..3].copy_from_slice(b"BZh");
    m[3] = b'0' + level.clamp(1, 9) as u8;
    m[4..10].copy_from_slice(&END_MAGIC);
    m
}

/// The uncompressed chunk that `pack` puts in each block at `level`: the
/// largest multiple of 4096 whose run-length coding (bzip2's first step,
/// which makes at most 5 bytes of 4) fits in one block of
/// `level * 100_000 - 19` bytes, so that every chunk is exactly one block
/// (716,800 bytes at level 9).
pub fn chunk_size(level: u32) -> usize {
    ((level as usize * 100_000 - 19) * 4 / 5) / 4096 * 4096
}

fn bz_err(e: bzip2::Error) -> Error {
    Error::corrupt(format!("bzip2 data is damaged ({e})"))
}

/// Compress one chunk into one complete stream.
pub fn compress_chunk(data: &[u8], level: u32) -> Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), 30);
    let mut out = Vec::with_capacity(data.len() / 4 + 4096);
    loop {
        let done = c.total_in() as usize;
        let st = c
            .compress_vec(&data[done..], &mut out, Action::Finish)
            .map_err(|e| Error::Invalid(format!("bzip2 compression failed: {e}")))?;
        if st == Status::StreamEnd {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// One bzip2 block: its bits from the block magic to its last symbol
/// (starting at bit 0 of `bytes`), their number and the block's CRC.
#[derive(Clone)]
pub struct Block {
    /// The bits, from the first byte's top bit.
    pub bytes: Vec<u8>,
    /// How many.
    pub nbits: u64,
    /// The block CRC (the 32 bits after the magic).
    pub crc: u32,
}

/// Compress one chunk (at most [`chunk_size`]`(level)` bytes, not empty)
/// into one block.
pub fn compress_block(data: &[u8], level: u32) -> Result<Block> {
    let s = compress_chunk(data, level)?;
    let bad = || Error::Invalid("bzip2 compression made an unexpected stream".into());
    if s.len() < 4 + 10 + 11 || s[4..10] != BLOCK_MAGIC {
        return Err(bad());
    }
    let crc = bits_at(&s, 80, 32) as u32;
    let total = s.len() as u64 * 8;
    // The trailer (end magic, stream CRC) ends 0 to 7 bits of padding
    // before the end. One block: the stream CRC is the block's.
    let pad = (0..8u64)
        .find(|&p| {
            bits_at(&s, total - 80 - p, 48) == END && bits_at(&s, total - 32 - p, 32) as u32 == crc
        })
        .ok_or_else(bad)?;
    let nbits = total - 80 - pad - 32;
    let mut bytes = s[4..].to_vec();
    bytes.truncate(nbits.div_ceil(8) as usize);
    Ok(Block { bytes, nbits, crc })
}

/// Writes bits, most significant first, into a file (at its position).
pub struct BitWriter<'a> {
    out: &'a File,
    buf: Vec<u8>,
    /// Pending bits (the top `n` of `cur`).
    cur: u8,
    n: u32,
}

impl<'a> BitWriter<'a> {
    /// A writer at `out`'s position.
    pub fn new(out: &'a File) -> Self {
        BitWriter {
            out,
            buf: Vec::with_capacity(1 << 20),
            cur: 0,
            n: 0,
        }
    }

    fn spill(&mut self) -> Result<()> {
        if self.buf.len() >= 1 << 20 {
            super::write_out(self.out, &self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// The low `n` bits of `v` (n <= 57).
    pub fn put(&mut self, v: u64, n: u32) -> Result<()> {
        for i in (0..n).rev() {
            let bit = ((v >> i) & 1) as u8;
            self.cur |= bit << (7 - self.n);
            self.n += 1;
            if self.n == 8 {
                self.buf.push(self.cur);
                self.cur = 0;
                self.n = 0;
            }
        }
        self.spill()
    }

    /// `nbits` bits of `src` from bit `start` (`src` holds them all).
    /// Seven bytes at a time (one 64-bit load and shift): an edit copies
    /// the whole file this way.
    pub fn put_slice(&mut self, src: &[u8], start: u64, nbits: u64) -> Result<()> {
        if nbits == 0 {
            return Ok(());
        }
        let (mut p, mut left) = (start, nbits);
        if self.n > 0 {
            // Complete the pending byte first.
            let first = (8 - self.n as u64).min(left);
            self.put(bits_at(src, p, first as u32), first as u32)?;
            p += first;
            left -= first;
        }
        let full = (left / 8) as usize;
        let r = (p % 8) as u32;
        let mut q = (p / 8) as usize;
        if full > 0 {
            if r == 0 {
                self.buf.extend_from_slice(&src[q..q + full]);
            } else {
                let mut k = 0;
                while k + 7 <= full && q + 8 <= src.len() {
                    let w = u64::from_be_bytes(src[q..q + 8].try_into().expect("8 bytes")) << r;
                    self.buf.extend_from_slice(&w.to_be_bytes()[..7]);
                    q += 7;
                    k += 7;
                }
                while k < full {
                    let b = src[q] << r | src.get(q + 1).copied().unwrap_or(0) >> (8 - r);
                    self.buf.push(b);
                    q += 1;
                    k += 1;
                }
            }
        }
        p += full as u64 * 8;
        left -= full as u64 * 8;
        if left > 0 {
            self.put(bits_at(src, p, left as u32), left as u32)?;
        }
        self.spill()
    }

    /// `nbits` bits of the file `src` from its bit `start`.
    pub fn copy_from(&mut self, src: &File, start: u64, nbits: u64) -> Result<()> {
        const W: u64 = 4 << 20;
        let (mut bit, mut left) = (start, nbits);
        let mut buf = vec![0u8; W as usize + 1];
        while left > 0 {
            let piece = left.min(W * 8);
            let b0 = bit / 8;
            let b1 = (bit + piece).div_ceil(8);
            let n = (b1 - b0) as usize;
            src.read_exact_at(&mut buf[..n], b0)
                .map_err(|e| Error::io("reading the compressed image", e))?;
            self.put_slice(&buf[..n], bit % 8, piece)?;
            bit += piece;
            left -= piece;
        }
        Ok(())
    }

    /// Pad to a byte with zeros and write everything out.
    pub fn finish(mut self) -> Result<()> {
        if self.n > 0 {
            self.buf.push(self.cur);
        }
        super::write_out(self.out, &self.buf)
    }
}

/// Compress `len` bytes of `raw` into `out` as one bzip2 stream (`BZh`
/// and the level, then one block per chunk of [`chunk_size`]`(level)`
/// bytes, compressed on `threads` threads and joined at their bit
/// offsets, then the end magic and the stream CRC): a single-stream
/// reader reads all of it.
pub fn compress(
    raw: &File,
    len: u64,
    out: &File,
    level: u32,
    threads: usize,
    progress: &mut ByteProgress,
) -> Result<()> {
    if len == 0 {
        return super::write_out(out, &marker(level));
    }
    let chunk = chunk_size(level);
    let zero = compress_block(&vec![0u8; chunk], level)?;
    let mut w = BitWriter::new(out);
    w.put(
        u32::from_be_bytes([b'B', b'Z', b'h', b'0' + level as u8]) as u64,
        32,
    )?;
    let mut crc = 0u32;
    let mut done = 0u64;
    ordered(
        threads,
        |send| super::read_chunks(raw, len, chunk, send),
        |d: super::RawChunk| {
            let n = d.len();
            if n == chunk && d.is_zero() {
                Ok((None, n))
            } else {
                compress_block(&d.into_vec(), level).map(|b| (Some(b), n))
            }
        },
        |(b, n)| {
            let b = b.as_ref().unwrap_or(&zero);
            crc = crc.rotate_left(1) ^ b.crc;
            w.put_slice(&b.bytes, 0, b.nbits)?;
            done += n as u64;
            progress.update(done);
            Ok(())
        },
    )?;
    w.put(END, 48)?;
    w.put(crc as u64, 32)?;
    w.finish()
}

/// Decompress `input` into `w`, in parallel when `threads` > 1.
pub fn decompress(input: &File, w: &mut SparseWriter, threads: usize) -> Result<()> {
    if threads > 1 {
        match decompress_parallel(input, w, threads) {
            Ok(()) => return Ok(()),
            // A damaged file, or a false cut: let libbzip2 decide.
            Err(Error::Corrupt(_)) => w.restart()?,
            Err(e) => return Err(e),
        }
    }
    decompress_sequential(input, w)
}

/// libbzip2 over the whole file, stream after stream.
pub fn decompress_sequential(input: &File, w: &mut SparseWriter) -> Result<()> {
    let mut d = bzip2::read::MultiBzDecoder::new(BufReader::with_capacity(1 << 20, input));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = super::read_decoded(&mut d, &mut buf, "bzip2", "stream")?;
        if n == 0 {
            return Ok(());
        }
        w.input_done = d.get_ref().get_ref().stream_position_hint();
        w.write(&buf[..n])?;
    }
}

trait PositionHint {
    fn stream_position_hint(&self) -> u64;
}

impl PositionHint for &File {
    fn stream_position_hint(&self) -> u64 {
        use std::io::Seek;
        let mut f: &File = self;
        f.stream_position().unwrap_or(0)
    }
}

/// The eight byte patterns of a 48-bit magic, one per bit shift: bytes 1
/// to 5 of `magic << (16 - shift)` are fully determined.
fn finders(magic: u64) -> Vec<(memmem::Finder<'static>, u32)> {
    (0..8u32)
        .map(|s| {
            let v = (magic << (16 - s)).to_be_bytes();
            (memmem::Finder::new(&v[1..6]).into_owned(), s)
        })
        .collect()
}

/// The 64 bits starting at byte `i` (zero-padded past the end).
fn word_at(buf: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    let end = (i + 8).min(buf.len());
    b[..end - i].copy_from_slice(&buf[i..end]);
    u64::from_be_bytes(b)
}

/// `n` bits (at most 57... here 32) at bit offset `bit` of `buf`.
fn bits_at(buf: &[u8], bit: u64, n: u32) -> u64 {
    let w = word_at(buf, (bit / 8) as usize);
    let s = (bit % 8) as u32;
    (w << s) >> (64 - n)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Block,
    End,
}

/// Magics in `buf` at byte positions `[lo, hi)`, as (bit offset, kind).
fn scan(
    buf: &[u8],
    lo: usize,
    hi: usize,
    fb: &[(memmem::Finder<'static>, u32)],
    fe: &[(memmem::Finder<'static>, u32)],
    out: &mut Vec<(u64, Kind)>,
) {
    if hi <= lo {
        return;
    }
    let hay_end = (hi + 5).min(buf.len());
    let hay = &buf[lo + 1..hay_end];
    for (finders, kind, magic) in [(fb, Kind::Block, BLOCK), (fe, Kind::End, END)] {
        for (f, s) in finders {
            for h in f.find_iter(hay) {
                let i = lo + h;
                if i >= hi {
                    break;
                }
                if (word_at(buf, i) >> (16 - s)) & MASK48 == magic {
                    out.push((i as u64 * 8 + *s as u64, kind));
                }
            }
        }
    }
}

/// One unit of work: a block's bits, or a stream's end.
enum Job {
    Block {
        bytes: Vec<u8>,
        shift: u32,
        nbits: u64,
        level: u8,
    },
    End(u32),
}

enum Done {
    /// The block's bytes, CRC and compressed size.
    Block(Pieces, u32, u64),
    End(u32),
}

const READ: usize = 4 << 20;
/// A block longer than this (compressed) is not a real one.
const MAX_BLOCK: usize = 64 << 20;

fn damaged(what: &str) -> Error {
    Error::corrupt(format!("bzip2 data is damaged ({what})"))
}

/// Blocks seen to decode to nothing but zeros, as re-wrapped streams and
/// the number of zeros: an image's free space is thousands of identical
/// blocks (one per chunk in `pack`'s layout), and a block that matches one
/// of these bit for bit (its CRC included) is not decoded again.
#[derive(Default)]
struct ZeroBlocks(std::sync::Mutex<Vec<(Vec<u8>, u64)>>);

impl ZeroBlocks {
    /// Remembered blocks at most.
    const MAX: usize = 8;

    fn lookup(&self, stream: &[u8]) -> Option<u64> {
        let v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().find(|(s, _)| s == stream).map(|&(_, n)| n)
    }

    fn remember(&self, stream: &[u8], zeros: u64) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < Self::MAX && !v.iter().any(|(s, _)| s == stream) {
            v.push((stream.to_vec(), zeros));
        }
    }
}

fn decompress_parallel(input: &File, w: &mut SparseWriter, threads: usize) -> Result<()> {
    let total =
        crate::device::image_size(input).map_err(|e| Error::io("reading the bzip2 data", e))?;
    let mut consumed = 0u64;
    let mut crc = 0u32;
    let zeros = ZeroBlocks::default();
    ordered(
        threads,
        |send| produce(input, total, send),
        |j: Job| match j {
            Job::End(c) => Ok(Done::End(c)),
            Job::Block {
                bytes,
                shift,
                nbits,
                level,
            } => decode_block(&bytes, shift, nbits, level, &zeros)
                .map(|(p, c)| Done::Block(p, c, bytes.len() as u64)),
        },
        |d| match d {
            Done::Block(p, c, size) => {
                crc = crc.rotate_left(1) ^ c;
                // The compressed bytes done, for the progress bar.
                consumed += size;
                w.input_done = consumed.min(total);
                p.write_to(w)
            }
            Done::End(stored) => {
                let c = std::mem::take(&mut crc);
                if c != stored {
                    return Err(damaged("stream CRC mismatch"));
                }
                Ok(())
            }
        },
    )
}

/// Read the file, find the blocks and send them as jobs.
fn produce(input: &File, total: u64, send: &mut dyn FnMut(Job) -> bool) -> Result<()> {
    let fb = finders(BLOCK);
    let fe = finders(END);
    let mut buf: Vec<u8> = Vec::new();
    // The file offset of buf[0].
    let mut base = 0u64;
    let mut eof = false;
    // Bytes of buf scanned for candidate starts.
    let mut scanned = 0usize;
    let mut cands: Vec<(u64, Kind)> = Vec::new();
    // Where the next stream header is expected (file byte), or the current
    // block's start bit (file bit) with its level.
    let mut header_at: Option<u64> = Some(0);
    let mut block: Option<(u64, u8)> = None;
    let mut next_cand = 0usize;
    let fill = |buf: &mut Vec<u8>, base: u64, eof: &mut bool| -> Result<()> {
        let at = base + buf.len() as u64;
        if at >= total {
            *eof = true;
            return Ok(());
        }
        let n = ((total - at) as usize).min(READ);
        let old = buf.len();
        buf.resize(old + n, 0);
        input
            .read_exact_at(&mut buf[old..], at)
            .map_err(|e| Error::io("reading the bzip2 data", e))?;
        Ok(())
    };
    loop {
        // A stream header to check?
        if let Some(h) = header_at {
            while !eof && base + buf.len() as u64 <= h + 10 {
                fill(&mut buf, base, &mut eof)?;
            }
            let rel = (h - base) as usize;
            let rest = &buf[rel.min(buf.len())..];
            if rest.is_empty() && eof {
                return Ok(());
            }
            if rest.len() >= 4 && rest.starts_with(b"BZh") && (b'1'..=b'9').contains(&rest[3]) {
                let level = rest[3];
                header_at = None;
                // The first magic must follow at once.
                let first = (h + 4) * 8;
                cands.retain(|c| c.0 >= first);
                next_cand = 0;
                let m = bits_at(&buf, first - base * 8, 48);
                if m == BLOCK {
                    block = Some((first, level));
                    cands.retain(|c| c.0 > first);
                } else if m == END {
                    // An empty stream.
                    let crc = bits_at(&buf, first - base * 8 + 48, 32) as u32;
                    if !send(Job::End(crc)) {
                        return Ok(());
                    }
                    header_at = Some((first + 80).div_ceil(8));
                    cands.retain(|c| c.0 >= (first + 80));
                } else {
                    return Err(damaged("no block after a stream header"));
                }
                continue;
            }
            // Trailing zeros (padding) are fine; anything else is not.
            if is_zero(rest) {
                let mut at = base + buf.len() as u64;
                let mut tail = vec![0u8; 1 << 20];
                while at < total {
                    let n = ((total - at) as usize).min(tail.len());
                    input
                        .read_exact_at(&mut tail[..n], at)
                        .map_err(|e| Error::io("reading the bzip2 data", e))?;
                    if !is_zero(&tail[..n]) {
                        return Err(damaged("trailing data after the last stream"));
                    }
                    at += n as u64;
                }
                return Ok(());
            }
            return Err(damaged("trailing data after the last stream"));
        }
        let (start, lvl) = block.expect("inside a block");
        // Find the next magic after the block start.
        while next_cand < cands.len() && cands[next_cand].0 <= start {
            next_cand += 1;
        }
        if next_cand >= cands.len() {
            if eof {
                return Err(damaged("truncated: the file ends inside a block"));
            }
            if buf.len() > MAX_BLOCK + READ {
                return Err(damaged("a block is implausibly long"));
            }
            // Drop what is before the block, read more, scan it.
            let keep_from = ((start / 8) - base) as usize;
            buf.drain(..keep_from);
            base += keep_from as u64;
            scanned = scanned.saturating_sub(keep_from);
            fill(&mut buf, base, &mut eof)?;
            let hi = if eof {
                buf.len()
            } else {
                buf.len().saturating_sub(7)
            };
            let mut found = Vec::new();
            scan(&buf, scanned, hi, &fb, &fe, &mut found);
            scanned = hi.max(scanned);
            for f in &mut found {
                f.0 += base * 8;
            }
            found.sort();
            cands.drain(..next_cand);
            next_cand = 0;
            cands.extend(found);
            cands.sort();
            cands.dedup();
            continue;
        }
        let (end, kind) = cands[next_cand];
        let b0 = (start / 8 - base) as usize;
        let b1 = (end.div_ceil(8) - base) as usize;
        let job = Job::Block {
            bytes: buf[b0..b1.min(buf.len())].to_vec(),
            shift: (start % 8) as u32,
            nbits: end - start,
            level: lvl,
        };
        if !send(job) {
            return Ok(());
        }
        match kind {
            Kind::Block => block = Some((end, lvl)),
            Kind::End => {
                // The stream CRC may not be read yet.
                while !eof && (base + buf.len() as u64) * 8 < end + 80 {
                    fill(&mut buf, base, &mut eof)?;
                }
                if (base + buf.len() as u64) * 8 < end + 80 {
                    return Err(damaged("truncated: the file ends in a stream trailer"));
                }
                let crc = bits_at(&buf, end - base * 8 + 48, 32) as u32;
                if !send(Job::End(crc)) {
                    return Ok(());
                }
                block = None;
                header_at = Some((end + 80).div_ceil(8));
            }
        }
    }
}

/// One block (`nbits` bits of `bytes` from bit `shift`) as a stream of
/// its own: `BZh` and `level`, the block shifted to a byte boundary, the
/// end magic, the block's CRC as the stream CRC, padding.
fn rewrap(bytes: &[u8], shift: u32, nbits: u64, level: u8) -> Vec<u8> {
    let crc = bits_at(bytes, shift as u64 + 48, 32) as u32;
    let mut s = Vec::with_capacity(bytes.len() + 16);
    s.extend_from_slice(b"BZh");
    s.push(level);
    let full = (nbits / 8) as usize;
    if shift == 0 {
        s.extend_from_slice(&bytes[..full]);
    } else {
        for k in 0..full {
            let hi = bytes[k] << shift;
            let lo = bytes.get(k + 1).copied().unwrap_or(0) >> (8 - shift);
            s.push(hi | lo);
        }
    }
    // The remaining bits, then the end magic, the stream CRC, padding.
    let rem = (nbits % 8) as u32;
    let mut acc: u128 = 0;
    let mut n: u32 = 0;
    if rem > 0 {
        let tail = bits_at(bytes, shift as u64 + full as u64 * 8, rem);
        acc = tail as u128;
        n = rem;
    }
    acc = (acc << 48) | END as u128;
    n += 48;
    acc = (acc << 32) | crc as u128;
    n += 32;
    let pad = (8 - n % 8) % 8;
    acc <<= pad;
    n += pad;
    for i in (0..n / 8).rev() {
        s.push((acc >> (i * 8)) as u8);
    }
    s
}

/// Re-wrap one block as a stream and decode it (unless it is one of the
/// known all-zero blocks); returns its output and its CRC.
fn decode_block(
    bytes: &[u8],
    shift: u32,
    nbits: u64,
    level: u8,
    zeros: &ZeroBlocks,
) -> Result<(Pieces, u32)> {
    let crc = bits_at(bytes, shift as u64 + 48, 32) as u32;
    let s = rewrap(bytes, shift, nbits, level);
    if let Some(n) = zeros.lookup(&s) {
        return Ok((Pieces::zeros(n), crc));
    }
    let mut d = Decompress::new(false);
    let mut out = vec![0u8; 1 << 20];
    let mut p = Pieces::default();
    loop {
        let (i0, o0) = (d.total_in() as usize, d.total_out());
        let st = d
            .decompress(&s[i0.min(s.len())..], &mut out)
            .map_err(bz_err)?;
        let made = (d.total_out() - o0) as usize;
        p.push(&out[..made]);
        if st == Status::StreamEnd {
            if p.all_zero() {
                zeros.remember(&s, p.len());
            }
            return Ok((p, crc));
        }
        if made == 0 && d.total_in() as usize == i0 {
            return Err(damaged("a block ends early"));
        }
    }
}

/// The chunks of a bzip2 file that `pack` wrote (see the module docs of
/// [`container`](super)): one stream, `BZh<level>` and a block magic at
/// once, the end magic and the stream CRC at the end (then 0 to 7 zero
/// bits), and one block per chunk of `chunk` raw bytes (the last one's
/// size is not known yet: the caller decodes it). The blocks are found by
/// their magic at every bit offset, as the parallel decoder finds them;
/// the stream CRC must be the fold of the CRCs in their headers (a magic
/// pattern met by chance inside a block, or a second stream, fails it).
/// None when the file is not so: another stream before the end (a block
/// magic on a byte boundary after `BZh<level>`), a bad trailer, CRCs that
/// do not add up.
pub fn chunk_index(input: &File, total: u64, chunk: u64) -> Result<Option<Vec<Chunk>>> {
    let rd = |buf: &mut [u8], at: u64| {
        input
            .read_exact_at(buf, at)
            .map_err(|e| Error::io("reading the bzip2 data", e))
    };
    if total < 4 + 10 + 11 {
        return Ok(None);
    }
    let mut head = [0u8; 10];
    rd(&mut head, 0)?;
    if !head.starts_with(b"BZh") || !(b'1'..=b'9').contains(&head[3]) || head[4..] != BLOCK_MAGIC {
        return Ok(None);
    }
    let mut tail = [0u8; 16];
    rd(&mut tail, total - 16)?;
    let tbits = 16 * 8;
    let Some(pad) = (0..8u64).find(|&p| {
        bits_at(&tail, tbits - 80 - p, 48) == END && (p == 0 || tail[15] & ((1u8 << p) - 1) == 0)
    }) else {
        return Ok(None);
    };
    let stored = bits_at(&tail, tbits - 32 - pad, 32) as u32;
    let end = total * 8 - 80 - pad; // the end magic's first bit
                                    // Only block magics are searched for (half the time of a search for
                                    // both): a second stream shows as a block magic on a byte boundary
                                    // right after `BZh<level>`, checked below.
    let fb = finders(BLOCK);
    let mut found = Vec::new();
    let mut buf = vec![0u8; READ + 8];
    let mut at = 0u64;
    while at < total {
        let n = ((total - at) as usize).min(READ + 8);
        rd(&mut buf[..n], at)?;
        let hi = n.min(READ);
        let mut f = Vec::new();
        scan(&buf[..n], 0, hi, &fb, &[], &mut f);
        found.extend(f.into_iter().map(|(b, k)| (b + at * 8, k)));
        at += hi as u64;
    }
    found.sort();
    found.dedup();
    let mut starts = Vec::new();
    for (b, _) in found {
        // A magic inside the trailer or past it is not a block.
        if b < end {
            starts.push(b);
        }
    }
    if starts.first() != Some(&32) {
        return Ok(None);
    }
    let n = starts.len();
    let mut chunks = Vec::with_capacity(n);
    let mut crc = 0u32;
    let mut hdr = [0u8; 11];
    for i in 0..n {
        let (b0, b1) = (starts[i], if i + 1 < n { starts[i + 1] } else { end });
        if b1 - b0 < 48 + 32 + 1 + 24 {
            return Ok(None);
        }
        if b0 % 8 == 0 && b0 > 32 {
            let mut h = [0u8; 4];
            rd(&mut h, b0 / 8 - 4)?;
            if h.starts_with(b"BZh") && (b'1'..=b'9').contains(&h[3]) {
                return Ok(None);
            }
        }
        if !header_fits(input, b0, b1)? {
            return Ok(None);
        }
        rd(&mut hdr, b0 / 8)?;
        let c = bits_at(&hdr, b0 % 8 + 48, 32) as u32;
        crc = crc.rotate_left(1) ^ c;
        chunks.push(Chunk {
            raw: i as u64 * chunk,
            len: chunk,
            at: b0 / 8,
            size: b1.div_ceil(8) - b0 / 8,
            unpadded: b1.div_ceil(8) - b0 / 8,
            bit: b0,
            bits: b1 - b0,
            crc: c,
        });
    }
    if crc != stored {
        return Ok(None);
    }
    Ok(Some(chunks))
}

/// The most bits a block header can take, magic to the first Huffman
/// code: 105 fixed, a symbol map of 16 + 256, 18 for the table and
/// selector counts, 32767 selectors of up to 6 bits, 6 tables of 258 code
/// lengths of up to 41 bits each.
const MAX_HEADER_BITS: u64 = 105 + 272 + 18 + 32767 * 6 + 6 * 258 * 41;

/// False when the block header at bit `b0` of `input` (magic, CRC, origin
/// pointer, symbol map, selectors and code tables, as libbzip2 reads
/// them) runs past `b1`, where the next magic was found. A block magic planted inside a real block's header (its symbol
/// map is the set of byte values of the chunk, which an image author
/// chooses) would otherwise cut that block in two unseen, and put every
/// chunk after it one chunk further in the image than bunzip2 does.
fn header_fits(input: &File, b0: u64, b1: u64) -> Result<bool> {
    let first = b0 / 8;
    let want = ((b1 - b0).min(MAX_HEADER_BITS) + 8).div_ceil(8) as usize + 8;
    // Most headers take a few hundred bytes: read more only when needed.
    let mut size = want.min(4096);
    loop {
        let mut buf = vec![0u8; size];
        let n = input
            .read_at(&mut buf, first)
            .map_err(|e| Error::io("reading the bzip2 data", e))?;
        buf.truncate(n);
        match parse_block_header(&buf, b0 % 8, b1 - first * 8) {
            Some(fits) => return Ok(fits),
            None if size < want && n == size => size = want,
            None => return Ok(false),
        }
    }
}

/// [`header_fits`] on `buf` (the header's bits from bit `at`, the next
/// magic at bit `limit`): None when `buf` ends first.
fn parse_block_header(buf: &[u8], mut at: u64, limit: u64) -> Option<bool> {
    let mut past_limit = false;
    let mut get = |n: u32| -> Option<u64> {
        if at + n as u64 > limit {
            past_limit = true;
            return None;
        }
        if (at + n as u64).div_ceil(8) > buf.len() as u64 {
            return None;
        }
        let v = bits_at(buf, at, n);
        at += n as u64;
        Some(v)
    };
    // Some(true) also for a header libbzip2 rejects (damage, which the
    // chunk's decoding reports when it is read, as for any damage in a
    // chunk nothing reads); None: out of bits (of `buf` or the block).
    let mut parse = || -> Option<bool> {
        get(48)?;
        get(32)?;
        get(25)?;
        let used = get(16)?;
        let mut symbols = 0;
        for i in 0..16 {
            if used >> (15 - i) & 1 == 1 {
                symbols += get(16)?.count_ones();
            }
        }
        let groups = get(3)?;
        let selectors = get(15)?;
        if symbols == 0 || !(2..=6).contains(&groups) || selectors == 0 {
            return Some(true);
        }
        for _ in 0..selectors {
            let mut j = 0;
            while get(1)? == 1 {
                j += 1;
                if j >= groups {
                    return Some(true);
                }
            }
        }
        for _ in 0..groups {
            let mut len = get(5)? as i64;
            for _ in 0..symbols + 2 {
                loop {
                    if !(1..=20).contains(&len) {
                        return Some(true);
                    }
                    if get(1)? == 0 {
                        break;
                    }
                    len += if get(1)? == 0 { 1 } else { -1 };
                }
            }
        }
        Some(true)
    };
    let r = parse();
    drop(parse);
    match r {
        Some(fits) => Some(fits),
        None if past_limit => Some(false),
        None => None,
    }
}

/// A chunk's block bits (its bytes `comp`, read from `k.at`) shifted to
/// start at bit 0, the last byte padded with zeros: the same for the same
/// block wherever it lies.
pub fn aligned(comp: &[u8], k: &Chunk) -> Vec<u8> {
    let mut v = rewrap(comp, (k.bit % 8) as u32, k.bits, b'0');
    v.drain(..4);
    v.truncate(k.bits.div_ceil(8) as usize);
    if !k.bits.is_multiple_of(8) {
        let last = v.len() - 1;
        v[last] &= 0xffu8 << (8 - k.bits % 8);
    }
    v
}

/// Decompress one block of a chunk (as [`chunk_index`] found it; its
/// bytes `comp`, read from `k.at`), which must hold at most `expect`
/// bytes.
pub fn decode_chunk(comp: &[u8], k: &Chunk, level: u32, expect: usize) -> Result<Vec<u8>> {
    let s = rewrap(comp, (k.bit % 8) as u32, k.bits, b'0' + level as u8);
    decode_stream(&s, expect)
}

/// Decompress one whole stream, which must end exactly at the end of
/// `bytes` and hold at most `expect` bytes.
pub fn decode_stream(bytes: &[u8], expect: usize) -> Result<Vec<u8>> {
    let mut d = Decompress::new(false);
    let mut out: Vec<u8> = Vec::with_capacity(expect);
    loop {
        if out.len() == out.capacity() {
            out.reserve(expect.max(1 << 16));
        }
        let (i0, o0) = (d.total_in() as usize, d.total_out());
        let st = d.decompress_vec(&bytes[i0..], &mut out).map_err(bz_err)?;
        if out.len() > expect {
            return Err(damaged("a stream holds more than its chunk"));
        }
        if st == Status::StreamEnd {
            if d.total_in() as usize != bytes.len() {
                return Err(damaged("a stream is followed by more data in its chunk"));
            }
            return Ok(out);
        }
        if d.total_out() == o0 && d.total_in() as usize == i0 && out.len() < out.capacity() {
            return Err(damaged("a stream ends early"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_writer_joins_at_any_offset() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 151 + 7) as u8).collect();
        let bit = |v: &[u8], i: u64| (v[(i / 8) as usize] >> (7 - i % 8)) & 1;
        let t = tempfile::NamedTempFile::new().unwrap();
        let mut want = Vec::new();
        {
            let mut w = BitWriter::new(t.as_file());
            for (start, n) in [
                (3u64, 5u64),
                (0, 17),
                (9, 1900),
                (1, 7),
                (13, 64),
                (5, 0),
                (2, 2100),
            ] {
                w.put_slice(&src, start, n).unwrap();
                want.extend((start..start + n).map(|i| bit(&src, i)));
            }
            w.put(0b101, 3).unwrap();
            want.extend([1, 0, 1]);
            w.finish().unwrap();
        }
        let got = std::fs::read(t.path()).unwrap();
        assert_eq!(got.len(), want.len().div_ceil(8));
        for (i, &b) in want.iter().enumerate() {
            assert_eq!(bit(&got, i as u64), b, "bit {i}");
        }
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(9), 716_800);
        assert_eq!(chunk_size(1), 77_824);
    }

    #[test]
    fn finds_shifted_magics() {
        let fb = finders(BLOCK);
        let fe = finders(END);
        for s in 0..8u32 {
            let mut buf = vec![0xa5u8; 32];
            let v = (BLOCK << (16 - s)).to_be_bytes();
            for k in 0..8 {
                let mask = if k == 0 {
                    0xffu8 >> s
                } else if k == 6 {
                    !(0xffu8 >> s)
                } else if k == 7 {
                    0
                } else {
                    0xff
                };
                buf[10 + k] = (buf[10 + k] & !mask) | (v[k] & mask);
            }
            let mut out = Vec::new();
            scan(&buf, 0, buf.len() - 7, &fb, &fe, &mut out);
            assert_eq!(out, vec![(80 + s as u64, Kind::Block)], "shift {s}");
        }
    }
}

#[cfg(test)]
mod seek_tests {
    use super::*;

    /// `data` in `pack`'s layout at level 1, through a file.
    fn packed(data: &[u8]) -> (Vec<u8>, tempfile::NamedTempFile) {
        let raw = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(raw.path(), data).unwrap();
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut p = ByteProgress::new("test", 0);
        compress(
            raw.as_file(),
            data.len() as u64,
            out.as_file(),
            1,
            2,
            &mut p,
        )
        .unwrap();
        (std::fs::read(out.path()).unwrap(), out)
    }

    #[test]
    fn one_stream_whose_blocks_are_the_chunks() {
        let c = chunk_size(1);
        // Runs of 4 (the worst case of bzip2's run-length step) and noise.
        let mut data: Vec<u8> = (0..c * 3 + 5000).map(|i| (i * 31 / 7) as u8).collect();
        for (i, b) in data[..c].iter_mut().enumerate() {
            *b = (i / 4) as u8 ^ (i / 1024) as u8;
        }
        let (f, t) = packed(&data);
        // One stream: libbzip2 in single-stream mode reads all of it.
        let mut d = Decompress::new(false);
        let mut out = vec![0u8; data.len() + 10];
        assert_eq!(d.decompress(&f, &mut out).unwrap(), Status::StreamEnd);
        assert_eq!(d.total_in() as usize, f.len());
        assert!(out[..d.total_out() as usize] == data[..]);
        let ch = chunk_index(t.as_file(), f.len() as u64, c as u64)
            .unwrap()
            .unwrap();
        assert_eq!(ch.len(), 4);
        assert_eq!(ch[0].bit, 32);
        for (i, k) in ch.iter().enumerate() {
            let comp = &f[k.at as usize..(k.at + k.size) as usize];
            let want = &data[i * c..((i + 1) * c).min(data.len())];
            assert!(decode_chunk(comp, k, 1, c).unwrap() == want, "{i}");
        }
        let no = |g: &[u8]| {
            std::fs::write(t.path(), g).unwrap();
            chunk_index(t.as_file(), g.len() as u64, c as u64)
                .unwrap()
                .is_none()
        };
        // Not a file with something after its end, nor one cut short,
        // nor two concatenated, nor one whose stream CRC is wrong.
        let mut g = f.clone();
        g.push(1);
        assert!(no(&g));
        assert!(no(&f[..f.len() - 3]));
        assert!(no(&[f.clone(), f.clone()].concat()));
        let mut g = f.clone();
        let n = g.len();
        g[n - 2] ^= 0x10;
        assert!(no(&g));
        // Nor the layout of earlier versions (a stream per chunk between
        // two empty streams).
        let mut g = marker(1).to_vec();
        for part in data.chunks(c) {
            g.extend_from_slice(&compress_chunk(part, 1).unwrap());
        }
        g.extend_from_slice(&marker(1));
        assert!(no(&g));
    }
}
