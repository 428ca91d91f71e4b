//! Seekable editing of a compressed image: a [`BlockDevice`] over the
//! chunks of a file in ext3edit's chunked layout (see the module docs of
//! [`container`](super)), which decompresses only the chunks that reads
//! touch and, at the end, writes a new file where only the changed chunks
//! are compressed again.
//!
//! # Which files take this path
//!
//! [`Seekable::open`] builds the chunk index without decompressing the
//! image, and says None (the caller then decompresses the whole image,
//! [`Spool`](super::Spool)) for anything that does not fit:
//!
//! - **gzip**: every member carries the `E3` subfield (member size and
//!   uncompressed size, which must agree with the trailer's ISIZE); the
//!   index is a walk from header to header. A member too big to be sure
//!   of its size modulo 2^32, or one whose span holds another gzip header
//!   and does not decode to exactly its stated end, makes the file not
//!   seekable: gunzip would read another image there.
//! - **xz**: one stream (no stream padding) with a valid footer and index;
//!   the index lists every block's sizes. `xz` without `-T` writes a
//!   single block holding the whole image: not taken unless the image is
//!   no larger than one chunk (1 MiB).
//! - **bzip2**: one stream (`BZh<level>` and a block magic at once, the
//!   end magic and stream CRC at the very end), its blocks found by their
//!   magic at every bit offset, and no other stream or end magic before
//!   the end; the block CRCs (read from the block headers) must fold to
//!   the stream CRC. Every block but the last must decode to
//!   [`bzip2::chunk_size`]`(level)` bytes: the first and the last are
//!   decoded at open (which also gives the image size), the others are
//!   checked as they are read. bzip2's own single stream (900 kB blocks
//!   of varying raw size) fails the first check; pbzip2's streams, a
//!   concatenation of files and `pack`'s earlier layout (a stream per
//!   chunk between empty streams) are several streams: all take the full
//!   path once.
//! - **zip** is never seekable: the entry's deflate data is cut into
//!   independent chunks, but nothing records where they start, and the
//!   entry's CRC32 covers the whole image, so a changed chunk means reading
//!   every other one anyway.
//!
//! A chunk larger than [`MAX_CHUNK`] (a foreign file with few big units)
//! makes the file non-seekable too: the memory bound would not hold.
//!
//! # Memory and temporary files
//!
//! Decompressed clean chunks are kept in a small LRU cache ([`CACHE`]
//! chunks). A written chunk is kept in memory up to [`DIRTY_MEM`] bytes
//! in all; further written chunks go to a sparse temporary file (beside
//! the destination, so on the same file system as the result), at their
//! image offsets. A write that leaves a chunk's bytes as they were does
//! not make it dirty.
//!
//! # Committing
//!
//! The device's `flush` does nothing: the original file is not touched
//! while the engine works, so its journal ordering needs no barrier here.
//! [`Seekable::finish`] writes a new file beside the destination: runs of
//! unchanged chunks are copied as compressed bytes (gzip members as they
//! are; bzip2 blocks bit for bit, shifted to their new bit offsets, with
//! a new stream CRC folded from the block CRCs; xz blocks as they are,
//! followed by a new index and footer), changed chunks are compressed again in the same format and
//! level, on every core; the file is fsynced and renamed over the
//! destination. Until that rename the original is byte for byte as
//! before, whatever fails.
//!
//! "The same level" is what the file records: bzip2's block size digit;
//! gzip's XFL (9, 1, or 6 for anything between, which `pack` does not
//! tell apart); xz records none, so changed xz blocks use level 6.
//! Chunks that nothing read are not checked: a damaged one is copied as it
//! was (no new damage), and `unpack` or a full read reports it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::xz::XzStream;
use super::{bzip2, default_max_size, gzip, parallel, xz, Container, Format, Perms, TempFile};
use crate::device::{self, check_range, BlockDevice};
use crate::{Error, Result};

/// The largest chunk (uncompressed) a seekable file may have.
pub const MAX_CHUNK: u64 = 16 << 20;
/// Decompressed chunks kept for reading.
pub const CACHE: usize = 16;
/// Written chunks kept in memory before they go to a temporary file.
pub const DIRTY_MEM: u64 = 32 << 20;

/// One independent unit of a chunked file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Its offset in the image.
    pub raw: u64,
    /// Its size in the image.
    pub len: u64,
    /// Its offset in the compressed file.
    pub at: u64,
    /// Its size in the compressed file (for xz: with the block padding).
    pub size: u64,
    /// For xz: the block's unpadded size (as the index records it); for
    /// the others equal to `size`.
    pub unpadded: u64,
    /// For bzip2 (whose blocks are bit-aligned, so that `at` and `size`
    /// are the bytes that hold the block's bits): the block's first bit
    /// in the file, its length in bits and its CRC; 0 for the others.
    pub bit: u64,
    /// See `bit`.
    pub bits: u64,
    /// See `bit`.
    pub crc: u32,
}

enum Codec {
    Gzip,
    Bzip2,
    Xz(XzStream),
}

/// Chunks decoded while checking the layout: (chunk number, bytes).
pub type Decoded = Vec<(usize, Vec<u8>)>;

/// The chunks of a seekable file.
pub struct Index {
    /// The format.
    pub format: Format,
    /// The level changed chunks are compressed with.
    pub level: u32,
    codec: Codec,
    /// The chunks, in order, covering the image without gaps.
    pub chunks: Vec<Chunk>,
    /// The image size.
    pub len: u64,
}

impl Index {
    /// The index of the container `c` (open as `file`), or None when it is
    /// not seekable (see the module docs). The chunk(s) decoded to check
    /// the layout are returned too.
    pub fn read(c: &Container, file: &File) -> Result<Option<(Index, Decoded)>> {
        let mut decoded = Vec::new();
        let (codec, chunks) = match c.format {
            Format::Gzip => match gzip::chunk_index(file, c.size)? {
                Some(ch) => (Codec::Gzip, ch),
                None => return Ok(None),
            },
            Format::Xz => match xz::chunk_index(file, c.size)? {
                Some((s, ch)) => (Codec::Xz(s), ch),
                None => return Ok(None),
            },
            Format::Bzip2 => {
                let size = bzip2::chunk_size(c.level) as u64;
                let Some(mut ch) = bzip2::chunk_index(file, c.size, size)? else {
                    return Ok(None);
                };
                let mut ix = Index {
                    format: c.format,
                    level: c.level,
                    codec: Codec::Bzip2,
                    chunks: ch.clone(),
                    len: 0,
                };
                // The first stream must hold a whole chunk, the last one
                // at most that. Anything else (bzip2's one stream, pbzip2's
                // streams of 900,000 bytes, a damaged stream) takes the
                // full path, which reports damage as such.
                let n = ch.len();
                let Ok(last) = ix.decode_unchecked(file, n - 1) else {
                    return Ok(None);
                };
                if last.is_empty() || last.len() as u64 > size {
                    return Ok(None);
                }
                if n > 1 {
                    let Ok(first) = ix.decode_unchecked(file, 0) else {
                        return Ok(None);
                    };
                    if first.len() as u64 != size {
                        return Ok(None);
                    }
                    decoded.push((0, first));
                }
                ch[n - 1].len = last.len() as u64;
                decoded.push((n - 1, last));
                ix.chunks = ch;
                (Codec::Bzip2, ix.chunks)
            }
            Format::Zip | Format::Raw => return Ok(None),
        };
        if chunks.is_empty() || chunks.iter().any(|k| k.len == 0 || k.len > MAX_CHUNK) {
            return Ok(None);
        }
        // One xz block holding a whole image of more than a chunk is what
        // `xz` without `-T` writes: the full path cuts it into chunks.
        if let (Codec::Xz(_), [k]) = (&codec, chunks.as_slice()) {
            if k.len > xz::CHUNK {
                return Ok(None);
            }
        }
        let len = chunks.last().map(|k| k.raw + k.len).unwrap_or(0);
        Ok(Some((
            Index {
                format: c.format,
                level: c.level,
                codec,
                chunks,
                len,
            },
            decoded,
        )))
    }

    /// The chunk holding image byte `off` (< len).
    fn find(&self, off: u64) -> usize {
        self.chunks.partition_point(|k| k.raw + k.len <= off)
    }

    fn decode_unchecked(&self, src: &File, i: usize) -> Result<Vec<u8>> {
        let k = &self.chunks[i];
        let mut comp = vec![0u8; k.size as usize];
        src.read_exact_at(&mut comp, k.at)
            .map_err(|e| Error::io(format!("reading compressed chunk {i} at byte {}", k.at), e))?;
        match &self.codec {
            Codec::Gzip => gzip::decode_member(&comp, k.len as usize),
            Codec::Bzip2 => bzip2::decode_chunk(&comp, k, self.level, k.len as usize),
            Codec::Xz(s) => xz::decode_block(s, &comp, k),
        }
    }

    /// Decompress chunk `i`, checking its size.
    fn decode(&self, src: &File, i: usize) -> Result<Vec<u8>> {
        let k = &self.chunks[i];
        let data = self.decode_unchecked(src, i).map_err(|e| {
            e.at(&format!(
                "chunk {i} (compressed bytes {}..{})",
                k.at,
                k.at + k.size
            ))
        })?;
        if data.len() as u64 != k.len {
            return Err(Error::corrupt(format!(
                "chunk {i} (compressed bytes {}..{}) holds {} bytes, not the {} of the chunked layout (unpack and pack the image again)",
                k.at,
                k.at + k.size,
                data.len(),
                k.len
            )));
        }
        Ok(data)
    }

    /// Compress chunk data: the bytes to write, the unpadded size (bzip2:
    /// the block's length in bits) and the block CRC (bzip2; else 0).
    fn encode(&self, data: &[u8]) -> Result<(Vec<u8>, u64, u32)> {
        match &self.codec {
            Codec::Gzip => gzip::compress_member(data, self.level).map(|m| {
                let n = m.len() as u64;
                (m, n, 0)
            }),
            Codec::Bzip2 => {
                bzip2::compress_block(data, self.level).map(|b| (b.bytes, b.nbits, b.crc))
            }
            Codec::Xz(s) => xz::encode_block(s, data, self.level).map(|(c, u)| (c, u, 0)),
        }
    }
}

/// Where a written chunk is.
enum Dirty {
    Mem(Vec<u8>),
    Spilled,
}

struct State {
    src: File,
    /// (size, mtime) of `src` when it was opened: another program that
    /// rewrites it (ignoring the lock) is noticed before the result is
    /// made of its compressed bytes.
    stamp: Option<(u64, std::time::SystemTime)>,
    path: PathBuf,
    index: Index,
    /// Decoded clean chunks, the most recently used last.
    cache: Vec<(usize, Vec<u8>)>,
    dirty: BTreeMap<usize, Dirty>,
    /// Bytes of `Dirty::Mem` chunks.
    mem: u64,
    spill: Option<TempFile>,
    spill_dir: PathBuf,
}

fn to_io(e: Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// Size and modification time of an open file.
fn file_stamp(f: &File) -> Option<(u64, std::time::SystemTime)> {
    let m = f.metadata().ok()?;
    Some((m.len(), m.modified().ok()?))
}

impl State {
    /// Fail when the compressed file changed since it was opened.
    fn unchanged_source(&self) -> Result<()> {
        if self.stamp.is_some() && file_stamp(&self.src) != self.stamp {
            return Err(Error::Invalid(format!(
                "{}: the file changed while it was being edited (another program wrote it); nothing was written",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Make chunk `i` (clean) cached and return its position in the cache.
    fn cached(&mut self, i: usize) -> io::Result<usize> {
        if let Some(p) = self.cache.iter().position(|c| c.0 == i) {
            let e = self.cache.remove(p);
            self.cache.push(e);
        } else {
            let data = self.index.decode(&self.src, i).map_err(to_io)?;
            if self.cache.len() >= CACHE {
                self.cache.remove(0);
            }
            self.cache.push((i, data));
        }
        Ok(self.cache.len() - 1)
    }

    fn spill_file(&mut self) -> io::Result<&File> {
        if self.spill.is_none() {
            let base = self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            let t = TempFile::new_in(&self.spill_dir, &base).map_err(to_io)?;
            t.file().set_len(self.index.len)?;
            self.spill = Some(t);
        }
        Ok(self.spill.as_ref().expect("spill file").file())
    }

    fn read(&mut self, mut off: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let i = self.index.find(off);
            let k = self.index.chunks[i];
            let within = (off - k.raw) as usize;
            let n = buf.len().min(k.len as usize - within);
            let (part, rest) = std::mem::take(&mut buf).split_at_mut(n);
            match self.dirty.get(&i) {
                Some(Dirty::Mem(d)) => part.copy_from_slice(&d[within..within + n]),
                Some(Dirty::Spilled) => self.spill_file()?.read_exact_at(part, off)?,
                None => {
                    let p = self.cached(i)?;
                    part.copy_from_slice(&self.cache[p].1[within..within + n]);
                }
            }
            buf = rest;
            off += n as u64;
        }
        Ok(())
    }

    fn write(&mut self, mut off: u64, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let i = self.index.find(off);
            let k = self.index.chunks[i];
            let within = (off - k.raw) as usize;
            let n = data.len().min(k.len as usize - within);
            let (part, rest) = data.split_at(n);
            match self.dirty.get_mut(&i) {
                Some(Dirty::Mem(d)) => d[within..within + n].copy_from_slice(part),
                Some(Dirty::Spilled) => self.spill_file()?.write_all_at(part, off)?,
                None => {
                    let new = if n as u64 == k.len {
                        self.cache.retain(|c| c.0 != i);
                        part.to_vec()
                    } else {
                        let p = self.cached(i)?;
                        if self.cache[p].1[within..within + n] == *part {
                            // Unchanged: the chunk stays clean.
                            data = rest;
                            off += n as u64;
                            continue;
                        }
                        let mut d = self.cache.remove(p).1;
                        d[within..within + n].copy_from_slice(part);
                        d
                    };
                    if self.mem + k.len <= DIRTY_MEM {
                        self.mem += k.len;
                        self.dirty.insert(i, Dirty::Mem(new));
                    } else {
                        self.spill_file()?.write_all_at(&new, k.raw)?;
                        self.dirty.insert(i, Dirty::Spilled);
                    }
                }
            }
            data = rest;
            off += n as u64;
        }
        Ok(())
    }

    /// The current bytes of dirty chunk `i`.
    fn dirty_data(&self, i: usize) -> Result<Vec<u8>> {
        let k = &self.index.chunks[i];
        match self.dirty.get(&i) {
            Some(Dirty::Mem(d)) => Ok(d.clone()),
            _ => {
                let mut d = vec![0u8; k.len as usize];
                let f = self.spill.as_ref().expect("spill file").file();
                f.read_exact_at(&mut d, k.raw)
                    .map_err(|e| Error::io("reading the temporary file of written chunks", e))?;
                Ok(d)
            }
        }
    }
}

/// A compressed image opened for seekable reading and editing: hand
/// [`Seekable::device`] to the engine, then call [`Seekable::finish`].
pub struct Seekable {
    state: Arc<Mutex<State>>,
    len: u64,
    writable: bool,
}

/// What the new file is made of, in order.
enum Seg {
    /// Chunks `a..b`, unchanged: their compressed bytes.
    Copy(usize, usize),
    /// A changed chunk.
    Encode(usize),
}

enum Job {
    Copy(usize, usize),
    Encode(usize, Vec<u8>),
}

enum Out {
    Copy(usize, usize),
    Encoded(usize, Vec<u8>, u64, u32),
}

impl Seekable {
    /// Open the compressed image `c` for reading (and writing with
    /// `write`: temporary files go to `spill_dir`). None when the file is
    /// not seekable (the module docs say which are).
    ///
    /// An image larger than `max_size` (None: [`default_max_size`]) is
    /// refused as the full path refuses it.
    pub fn open(
        c: &Container,
        write: bool,
        spill_dir: &Path,
        max_size: Option<u64>,
    ) -> Result<Option<Seekable>> {
        let src = device::open_image_file(&c.path, false)
            .map_err(|e| Error::io(format!("opening {}", c.path.display()), e))?;
        Self::open_file(c, src, write, spill_dir, max_size)
    }

    /// [`Seekable::open`] on `src`, the container's file already open
    /// (and locked by the caller when it is to be replaced: the lock is
    /// held until [`Seekable::finish`] has renamed the new file over it).
    pub fn open_file(
        c: &Container,
        src: File,
        write: bool,
        spill_dir: &Path,
        max_size: Option<u64>,
    ) -> Result<Option<Seekable>> {
        let Some((index, decoded)) = Index::read(c, &src)? else {
            return Ok(None);
        };
        let len = index.len;
        let max = max_size.unwrap_or_else(|| default_max_size(c.size));
        if len > max {
            return Err(Error::Invalid(format!(
                "decompresses to more than {max} bytes, the limit for an archive of this size (pass --max-size BYTES to allow more)"
            )));
        }
        let mut cache = decoded;
        cache.truncate(CACHE);
        let stamp = file_stamp(&src);
        Ok(Some(Seekable {
            state: Arc::new(Mutex::new(State {
                stamp,
                src,
                path: c.path.clone(),
                index,
                cache,
                dirty: BTreeMap::new(),
                mem: 0,
                spill: None,
                spill_dir: spill_dir.to_path_buf(),
            })),
            len,
            writable: write,
        }))
    }

    /// The image size.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty image (never: an index has a chunk).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block device for the engine (shares this image's state).
    pub fn device(&self) -> Box<dyn BlockDevice> {
        Box::new(SeekableDevice {
            state: Arc::clone(&self.state),
            len: self.len,
            writable: self.writable,
        })
    }

    /// The number of chunks, and of chunks written so far.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (st.index.chunks.len(), st.dirty.len())
    }

    /// Write the result: to `dest` (None: over the original, and nothing
    /// at all when no chunk changed), in a new file beside it that is
    /// fsynced and renamed into place. Returns the number of chunks
    /// compressed again.
    pub fn finish(&self, dest: Option<&Path>, threads: usize) -> Result<usize> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st: &State = &st;
        if dest.is_none() && st.dirty.is_empty() {
            return Ok(0);
        }
        // In place: the original's mode and owner; a new file: its read
        // and write bits under the umask (as the full path gives them).
        let perms = match (dest.is_some(), st.src.metadata()) {
            (false, Ok(m)) => Perms::keep_meta(&m),
            (true, Ok(m)) => Perms::from_meta(&m),
            (_, Err(_)) => Perms::From(0o600),
        };
        let dest = dest.unwrap_or(&st.path);
        st.unchanged_source()?;
        let tmp = TempFile::beside(dest)?;
        let name = tmp.path().display().to_string();
        let werr = |e: io::Error| Error::io(format!("writing {name}"), e);
        let n = st.index.chunks.len();
        let mut segs = Vec::new();
        let mut i = 0;
        while i < n {
            if st.dirty.contains_key(&i) {
                segs.push(Seg::Encode(i));
                i += 1;
            } else {
                let a = i;
                while i < n && !st.dirty.contains_key(&i) {
                    i += 1;
                }
                segs.push(Seg::Copy(a, i));
            }
        }
        let threads = if threads == 0 {
            parallel::default_threads()
        } else {
            threads
        };
        let mut out: &File = tmp.file();
        let mut src: &File = &st.src;
        let mut records: Vec<(u64, u64)> = Vec::with_capacity(n);
        // bzip2: one stream, its blocks joined at bit offsets, its CRC
        // folded from theirs.
        let mut bits = None;
        let mut crc = 0u32;
        match &st.index.codec {
            Codec::Xz(s) => out.write_all(&s.header).map_err(werr)?,
            Codec::Bzip2 => {
                let mut w = bzip2::BitWriter::new(tmp.file());
                let h = [b'B', b'Z', b'h', b'0' + st.index.level as u8];
                w.put(u32::from_be_bytes(h) as u64, 32)?;
                bits = Some(w);
            }
            Codec::Gzip => {}
        }
        let chunks = &st.index.chunks;
        parallel::ordered(
            threads,
            |send| {
                for s in &segs {
                    let j = match *s {
                        Seg::Copy(a, b) => Job::Copy(a, b),
                        Seg::Encode(i) => Job::Encode(i, st.dirty_data(i)?),
                    };
                    if !send(j) {
                        break;
                    }
                }
                Ok(())
            },
            |j| match j {
                Job::Copy(a, b) => Ok(Out::Copy(a, b)),
                Job::Encode(i, d) => st
                    .index
                    .encode(&d)
                    .map(|(c, u, crc)| Out::Encoded(i, c, u, crc))
                    .map_err(|e| e.at(&format!("compressing chunk {i}"))),
            },
            |o| {
                match o {
                    Out::Copy(a, b) if bits.is_some() => {
                        let w = bits.as_mut().expect("bzip2 writer");
                        let from = chunks[a].bit;
                        let n = chunks[b - 1].bit + chunks[b - 1].bits - from;
                        w.copy_from(src, from, n)?;
                        for k in &chunks[a..b] {
                            crc = crc.rotate_left(1) ^ k.crc;
                        }
                    }
                    Out::Encoded(_, c, nbits, c_crc) if bits.is_some() => {
                        let w = bits.as_mut().expect("bzip2 writer");
                        w.put_slice(&c, 0, nbits)?;
                        crc = crc.rotate_left(1) ^ c_crc;
                    }
                    Out::Copy(a, b) => {
                        let from = chunks[a].at;
                        let len = chunks[b - 1].at + chunks[b - 1].size - from;
                        src.seek(SeekFrom::Start(from))
                            .map_err(|e| Error::io("reading the compressed image", e))?;
                        let got = io::copy(&mut (&mut src).take(len), &mut out).map_err(werr)?;
                        if got != len {
                            return Err(Error::corrupt(format!(
                                "{}: the file changed size while being copied",
                                st.path.display()
                            )));
                        }
                        records.extend(chunks[a..b].iter().map(|k| (k.unpadded, k.len)));
                    }
                    Out::Encoded(i, c, u, _) => {
                        out.write_all(&c).map_err(werr)?;
                        records.push((u, chunks[i].len));
                    }
                }
                Ok(())
            },
        )?;
        match &st.index.codec {
            Codec::Xz(s) => {
                let tail = xz::index_and_footer([s.header[6], s.header[7]], &records);
                out.write_all(&tail).map_err(werr)?;
            }
            Codec::Bzip2 => {
                let mut w = bits.take().expect("bzip2 writer");
                w.put(
                    bzip2::END_MAGIC
                        .iter()
                        .fold(0u64, |a, &b| a << 8 | b as u64),
                    48,
                )?;
                w.put(crc as u64, 32)?;
                w.finish()?;
            }
            Codec::Gzip => {}
        }
        st.unchanged_source()?;
        tmp.persist_as(dest, perms)?;
        Ok(st.dirty.len())
    }
}

/// The engine's view of a [`Seekable`] image.
struct SeekableDevice {
    state: Arc<Mutex<State>>,
    len: u64,
    writable: bool,
}

impl BlockDevice for SeekableDevice {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(offset, buf.len(), self.len)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.read(offset, buf)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "image opened read-only",
            ));
        }
        check_range(offset, data.len(), self.len)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.write(offset, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing reaches the original before the final rename.
        Ok(())
    }

    fn writable(&self) -> bool {
        self.writable
    }
}
