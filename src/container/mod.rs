//! What the image file is: a raw ext2/3/4 image, a whole disk with an MBR
//! or GPT partition table ([`partition`]), or either travelling compressed
//! (bzip2, gzip, xz, zip), recognised by its magic bytes.
//!
//! [`Container::open`] detects the format; [`Container::unpack_to`]
//! decompresses into a file, sparsely (all-zero 4 KiB blocks become
//! holes), with a size limit; [`pack`] compresses a raw image, in parallel.
//! [`Spool`] ties them together for the commands: a compressed IMAGE is
//! decompressed into a temporary raw file, read or edited there, and
//! (after an edit) compressed again into a temporary file beside the
//! destination that is renamed over it only when everything succeeded.
//! [`Seekable`] skips all of that for a file in the chunked layout below:
//! a block device that decompresses only the chunks the engine reads, and
//! a commit that recompresses only the chunks it wrote
//! ([`seekable`] says which files qualify).
//!
//! # The chunked layout that `pack` writes
//!
//! Every format is cut into independent units of a fixed uncompressed
//! size, each a complete unit of the format, so that the standard tools
//! read the result as one ordinary file and a later reader can seek: find
//! the unit that holds an offset, decompress only it, and rewrite only the
//! changed units (copying the others as compressed bytes).
//!
//! - **bzip2** ([`bzip2`]): one bzip2 *stream* (`BZh<level>`, blocks,
//!   the end magic `17 72 45 38 50 90` and the stream CRC), whose blocks
//!   are the chunks: chunk k covers raw bytes `[k*C, (k+1)*C)` with C =
//!   [`bzip2::chunk_size`]`(level)`, the largest multiple of 4096 whose
//!   run-length coding always fits one block (716,800 bytes at level 9);
//!   the last one may be shorter. Each chunk is compressed alone (a block
//!   carries its own tables, so blocks are independent) and the blocks are
//!   joined at their bit offsets (bzip2 blocks are bit-aligned); the
//!   stream CRC folds the block CRCs (`crc = crc.rotate_left(1) ^
//!   block_crc`). Single-stream readers (Python's `BZ2Decompressor`,
//!   commons-compress) read the whole image, as from bzip2's and lbzip2's
//!   output. bzip2 records no sizes and there is no index: a reader finds
//!   the blocks by their 48-bit magic at every bit offset (as lbzip2
//!   does) and checks that their CRCs fold to the stream CRC. Earlier
//!   versions wrote a stream per chunk between two empty streams; such
//!   files are read (not seekably) and edited into this layout.
//! - **gzip** ([`gzip`]): one gzip *member* per chunk of
//!   [`gzip::CHUNK`] = 1 MiB. Each member header has FLG.FEXTRA set and
//!   one extra subfield, ID `E3` (`0x45 0x33`), length 8: the member's
//!   total size in bytes (header to trailer, little-endian u32) and its
//!   uncompressed size (little-endian u32). This is BGZF's idea (its `BC`
//!   subfield) with 32-bit sizes, since BGZF's 16-bit size limits a member
//!   to 64 KiB. A reader walks the members by their sizes without
//!   decompressing anything. gunzip reads the file as usual.
//! - **xz** ([`xz`]): one xz stream whose blocks each hold one chunk of
//!   [`xz::CHUNK`] = 1 MiB, compressed in parallel; xz's own index at the
//!   end of the stream lists every block's compressed and uncompressed
//!   size (`xz --list -vv` shows them).
//! - **zip** ([`zip`](mod@zip)): one entry (named after the output without
//!   `.zip`), deflate, whose data is the raw deflate stream of each 1 MiB
//!   chunk compressed independently and ended with a full flush (a
//!   byte-aligned empty stored block, which resets nothing the decoder
//!   needs and lets the next chunk start with an empty window), the last
//!   chunk ended with a final block. Zip64 fields are used when the image
//!   is 4 GiB or more.
//!
//! # Size limit
//!
//! A small archive can decompress to something huge (a "bomb"). Unless
//! the caller sets a limit, decompression stops with an error past
//! [`default_max_size`]: 1024 times the compressed size, and never less
//! than 64 GiB (a mostly empty 2 GiB file system can compress 2000:1, and
//! the decompressed image is sparse, so the floor costs no disk).

pub mod bzip2;
pub mod gzip;
pub mod parallel;
pub mod partition;
pub mod seekable;
pub mod spool;
pub mod xz;
pub mod zip;

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};
pub use seekable::Seekable;
pub use spool::{
    check_dest, lock_for_rewrite, on_new_temp, remove_all_temps, remove_stale_temps, Perms,
    SparseWriter, TempFile,
};

/// The container formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A plain ext2/3/4 image.
    Raw,
    /// bzip2, one or more streams.
    Bzip2,
    /// gzip, one or more members.
    Gzip,
    /// xz, one or more streams.
    Xz,
    /// A zip archive holding the image as one entry.
    Zip,
}

impl Format {
    /// The name used by `--format`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Bzip2 => "bz2",
            Format::Gzip => "gz",
            Format::Xz => "xz",
            Format::Zip => "zip",
        }
    }

    /// Parse a `--format` value.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "raw" | "img" | "ext" => Format::Raw,
            "bz2" | "bzip2" => Format::Bzip2,
            "gz" | "gzip" => Format::Gzip,
            "xz" => Format::Xz,
            "zip" => Format::Zip,
            _ => return None,
        })
    }

    /// The format a file name's extension asks for, if any.
    pub fn from_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "bz2" | "tbz" => Some(Format::Bzip2),
            "gz" => Some(Format::Gzip),
            "xz" => Some(Format::Xz),
            "zip" => Some(Format::Zip),
            _ => None,
        }
    }

    /// The compression level used when none is given or known.
    pub fn default_level(self) -> u32 {
        match self {
            Format::Raw => 0,
            Format::Bzip2 => 9,
            Format::Gzip | Format::Xz | Format::Zip => 6,
        }
    }

    /// The valid levels.
    pub fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Format::Raw => 0..=0,
            Format::Bzip2 => 1..=9,
            Format::Gzip | Format::Zip => 1..=9,
            Format::Xz => 0..=9,
        }
    }
}

/// The byte offset of the ext2/3/4 superblock magic.
const EXT_MAGIC_AT: u64 = 1080;

/// The format that `head` (the first bytes of a file, 4 KiB or more when
/// the file has them) starts with, if it is one we read.
pub fn detect(head: &[u8]) -> Option<Format> {
    if head.len() >= 10
        && head.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&head[3])
        && (head[4..10] == bzip2::BLOCK_MAGIC || head[4..10] == bzip2::END_MAGIC)
    {
        return Some(Format::Bzip2);
    }
    if head.starts_with(&[0x1f, 0x8b, 8]) {
        return Some(Format::Gzip);
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Some(Format::Xz);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Some(Format::Zip);
    }
    if is_ext(head) || partition::is_disk(head) {
        return Some(Format::Raw);
    }
    None
}

/// True when `head` (the first 8 KiB or more, or the whole file when shorter)
/// can be an image we open: an ext2/3/4 superblock, an MBR or GPT
/// partition table, or an ext image whose superblock is damaged (an empty
/// boot block followed by a superblock area that is not all zeros: the
/// file system code then says what is wrong). A file that starts with
/// 2 KiB of zeros is none of these.
pub fn looks_like_image(head: &[u8]) -> bool {
    is_ext(head)
        || partition::is_disk(head)
        || (head.len() >= 2048 && is_zero_slice(&head[..1024]) && !is_zero_slice(&head[1024..2048]))
}

fn is_zero_slice(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// The bytes of the decompressed start that [`Container::unpack_to`]
/// checks before decompressing further.
const HEAD_CHECK: usize = 65536;

/// True when `head` has the ext2/3/4 superblock magic.
pub fn is_ext(head: &[u8]) -> bool {
    head.len() >= 1082 && head[1080] == 0x53 && head[1081] == 0xef
}

/// A one-line description of a file we do not read: its first bytes and
/// what it looks like.
pub fn describe_unknown(head: &[u8]) -> String {
    if head.is_empty() {
        return "not an ext2/3/4 image or a bzip2/gzip/xz/zip archive: the file is empty".into();
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let at = |off: usize, m: &[u8]| head.len() >= off + m.len() && &head[off..off + m.len()] == m;
    let guess = if head.starts_with(b"QFI\xfb") {
        Some("a qcow2 image")
    } else if at(257, b"ustar") {
        Some("a tar archive")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd compressed data")
    } else if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Some("lz4 compressed data")
    } else if head.starts_with(b"LZIP") {
        Some("lzip compressed data")
    } else if head.starts_with(&[0x5d, 0, 0]) {
        Some("lzma (legacy .lzma) compressed data")
    } else if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        Some("a 7-zip archive")
    } else if head.starts_with(b"Rar!") {
        Some("a rar archive")
    } else if head.starts_with(b"BZh") {
        Some("a damaged bzip2 file")
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip data with an unknown method")
    } else if head.starts_with(&[0x1f, 0x9d]) {
        Some("compress (.Z) data")
    } else if head.starts_with(b"KDMV") {
        Some("a VMDK image")
    } else if head.starts_with(b"conectix") {
        Some("a VHD image")
    } else if at(64, &[0x7f, 0x10, 0xda, 0xbe]) {
        Some("a VirtualBox VDI image")
    } else if head.starts_with(b"hsqs") {
        Some("a squashfs image")
    } else if head.starts_with(b"XFSB") {
        Some("an XFS file system")
    } else if head.starts_with(b"LUKS\xba\xbe") {
        Some("a LUKS encrypted volume")
    } else if head.starts_with(b"\x7fELF") {
        Some("an ELF executable")
    } else if at(512, b"EFI PART") {
        Some("a disk image with a GPT partition table whose MBR is damaged")
    } else if at(510, &[0x55, 0xaa]) {
        Some("a boot sector or a damaged MBR partition table")
    } else if at(0x8001, b"CD001") {
        Some("an ISO 9660 image")
    } else if head.iter().all(|&b| b == 0) {
        Some("all zeros at the start")
    } else if head
        .iter()
        .take(512)
        .all(|&b| b == b'\n' || b == b'\t' || b == b'\r' || (0x20..0x7f).contains(&b))
    {
        Some("text")
    } else {
        None
    };
    let mut s = format!(
        "not an ext2/3/4 image or a bzip2/gzip/xz/zip archive: starts with {}",
        hex.join(" ")
    );
    if let Some(g) = guess {
        s.push_str(&format!(" (looks like {g})"));
    }
    s
}

/// The first bytes of a file (up to 8 KiB: every check of [`detect`],
/// [`looks_like_image`] and [`describe_unknown`] looks below 4.2 KiB), for
/// detection.
pub fn read_head(file: &File) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0u8; 8192];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
}

/// The default `--max-size`: 1024 times the compressed size, at least
/// 64 GiB.
pub fn default_max_size(compressed: u64) -> u64 {
    compressed.saturating_mul(1024).max(64 << 30)
}

/// How to decompress or compress.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// The decompressed size limit (None: [`default_max_size`]).
    pub max_size: Option<u64>,
    /// The zip entry to read (None: the only one).
    pub entry: Option<String>,
}

impl Options {
    fn threads(&self) -> usize {
        if self.threads == 0 {
            parallel::default_threads()
        } else {
            self.threads
        }
    }
}

/// An image file and the container it is in.
#[derive(Debug)]
pub struct Container {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// The compression level it was made with, as far as the format
    /// records it (bzip2: the block size digit; gzip: XFL (best, fast or
    /// the default 6); zip: the deflate option bits; xz: not recorded, 6).
    pub level: u32,
    /// Its size in bytes.
    pub size: u64,
}

impl Container {
    /// Open `path` and recognise its format by its first bytes.
    pub fn open(path: &Path) -> Result<Container> {
        // Opened without blocking on a FIFO, and refused unless a regular
        // file or a block device.
        let file = crate::device::open_image_file(path, false)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let size = crate::device::image_size(&file)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let head =
            read_head(&file).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let format = match detect(&head) {
            Some(f) => f,
            // An ext image whose superblock is damaged still has its empty
            // boot block: let the file system code say what is wrong.
            None if looks_like_image(&head) => Format::Raw,
            None => return Err(Error::Invalid(describe_unknown(&head))),
        };
        let level = match format {
            Format::Raw => 0,
            Format::Bzip2 => (head[3] - b'0') as u32,
            Format::Gzip => match head[8] {
                2 => 9,
                4 => 1,
                _ => 6,
            },
            Format::Zip => match (head[6] >> 1) & 3 {
                1 => 9,
                2 | 3 => 1,
                _ => 6,
            },
            Format::Xz => 6,
        };
        Ok(Container {
            path: path.to_path_buf(),
            format,
            level,
            size,
        })
    }

    /// True for a compressed image.
    pub fn is_compressed(&self) -> bool {
        self.format != Format::Raw
    }

    /// Decompress into `out` (an empty file), sparsely; returns the size.
    /// The result must be an ext2/3/4 image.
    pub fn unpack_to(&self, out: &File, out_name: &str, opts: &Options) -> Result<u64> {
        self.unpack_entry_to(out, out_name, opts)
            .map(|(len, _)| len)
    }

    /// [`Container::unpack_to`], also returning the name of the zip entry
    /// read (None for the other formats). The decompressed start is checked
    /// as soon as its first 64 KiB are out ([`looks_like_image`]): an
    /// archive of something else stops there, not after decompressing all
    /// of it.
    pub fn unpack_entry_to(
        &self,
        out: &File,
        out_name: &str,
        opts: &Options,
    ) -> Result<(u64, Option<String>)> {
        let max = opts.max_size.unwrap_or_else(|| default_max_size(self.size));
        let mut w = SparseWriter::new(out, out_name, max, self.size);
        let input = File::open(&self.path)
            .map_err(|e| Error::io(format!("opening {}", self.path.display()), e))?;
        let at = |e: Error| e.at(&self.path.display().to_string());
        let mut what = String::from("the archive");
        let mut entry = None;
        if self.format == Format::Zip {
            let name = zip::choose_entry(&input, opts.entry.as_deref()).map_err(at)?;
            what = format!("zip entry {name}");
            entry = Some(name);
        }
        // Without the path: the decoders' errors get it from `at`.
        let not_image = {
            let what = what.clone();
            move |head: &[u8]| {
                let d = describe_unknown(head);
                let d = d.split_once(": ").map(|x| x.1).unwrap_or(&d).to_string();
                Error::Invalid(format!("{what} is not an ext2/3/4 image: {d}"))
            }
        };
        let early = not_image.clone();
        w.check_head(
            HEAD_CHECK,
            Box::new(move |head: &[u8]| {
                if looks_like_image(head) {
                    Ok(())
                } else {
                    Err(early(head))
                }
            }),
        );
        match self.format {
            Format::Raw => raw_copy(&input, &mut w).map_err(at)?,
            Format::Bzip2 => bzip2::decompress(&input, &mut w, opts.threads()).map_err(at)?,
            Format::Gzip => gzip::decompress(&input, &mut w, opts.threads()).map_err(at)?,
            Format::Xz => xz::decompress(&input, &mut w, opts.threads()).map_err(at)?,
            Format::Zip => {
                zip::decompress(&input, &mut w, entry.as_deref()).map_err(at)?;
            }
        }
        let len = w.finish().map_err(at)?;
        let mut head = vec![0u8; HEAD_CHECK];
        let n = out.read_at(&mut head, 0).unwrap_or(0);
        head.truncate(n);
        if !looks_like_image(&head) || len < EXT_MAGIC_AT + 2 {
            return Err(at(not_image(&head)));
        }
        Ok((len, entry))
    }
}

fn raw_copy(input: &File, w: &mut SparseWriter) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut r = input;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| Error::io("reading the image", e))?;
        if n == 0 {
            return Ok(());
        }
        w.input_done += n as u64;
        w.write(&buf[..n])?;
    }
}

/// Compress the raw image `raw` (`len` bytes) into `out` (empty) as
/// `format` at `level`. `entry` names the zip entry.
pub fn pack(
    raw: &File,
    len: u64,
    out: &File,
    format: Format,
    level: u32,
    threads: usize,
    entry: &str,
) -> Result<()> {
    let threads = if threads == 0 {
        parallel::default_threads()
    } else {
        threads
    };
    if !format.levels().contains(&level) {
        return Err(Error::Invalid(format!(
            "level {level} is not valid for {} (valid: {}..={})",
            format.name(),
            format.levels().start(),
            format.levels().end()
        )));
    }
    // Another process writing the image while it is read would leave an
    // archive of no state the file ever had: its size and change time
    // are compared before and after.
    let before = Stamp::of(raw)?;
    if before.is_some_and(|b| b.len < len) {
        return Err(shorter(len, before.map_or(0, |b| b.len)));
    }
    let mut progress = spool::ByteProgress::new("pack", len);
    let r = match format {
        Format::Raw => {
            let mut w = SparseWriter::new(out, "the output", u64::MAX, len);
            raw_copy(raw, &mut w).and_then(|_| w.finish().map(|_| ()))
        }
        Format::Bzip2 => bzip2::compress(raw, len, out, level, threads, &mut progress),
        Format::Gzip => gzip::compress(raw, len, out, level, threads, &mut progress),
        Format::Xz => xz::compress(raw, len, out, level, threads, &mut progress),
        Format::Zip => zip::compress(raw, len, out, level, threads, entry, &mut progress),
    };
    // Dropped unfinished on an error: the bar is cleared, not shown at 100%.
    r?;
    progress.finish();
    if Stamp::of(raw)? != before {
        return Err(Error::Invalid(
            "the image changed while it was being packed (another process wrote to it): pack it again when nothing writes it".into(),
        ));
    }
    Ok(())
}

/// What tells that a regular file was written: its size, modification
/// and change times (None for anything else: a block device's times do
/// not follow its contents).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(f: &File) -> Result<Option<Stamp>> {
        use std::os::unix::fs::MetadataExt;
        let m = f
            .metadata()
            .map_err(|e| Error::io("reading the image's size", e))?;
        Ok(m.is_file().then(|| Stamp {
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }))
    }
}

/// The error for an image that ends before the `len` bytes to pack.
fn shorter(len: u64, size: u64) -> Error {
    Error::Invalid(format!(
        "the image ends at byte {size}, before byte {len}: it was truncated while being packed"
    ))
}

/// Append `bytes` to the compressed output `out` (at its position).
pub(crate) fn write_out(out: &File, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    (&*out)
        .write_all(bytes)
        .map_err(|e| Error::io("writing the compressed image", e))
}

/// Read from a decoder into `buf`, again when interrupted. A read error
/// is the file's (truncated: it ends inside a `unit`; damaged: in the
/// decoder's words) or the host's I/O error.
pub(crate) fn read_decoded(
    r: &mut impl std::io::Read,
    buf: &mut [u8],
    format: &str,
    unit: &str,
) -> Result<usize> {
    use std::io::ErrorKind;
    loop {
        return match r.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(Error::corrupt(format!(
                "truncated {format} data (the file ends inside a {unit})"
            ))),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::InvalidData) => {
                Err(Error::corrupt(format!("{format} data is damaged ({e})")))
            }
            Err(e) => Err(Error::io(format!("reading the {format} data"), e)),
        };
    }
}

/// One piece of the image as the compressors read it: its bytes, or a
/// count of zeros that the file holds as a hole (not read at all).
pub(crate) enum RawChunk {
    /// Bytes read from the image.
    Data(Vec<u8>),
    /// A hole of this many bytes.
    Zeros(usize),
}

impl RawChunk {
    /// Its size.
    pub(crate) fn len(&self) -> usize {
        match self {
            RawChunk::Data(v) => v.len(),
            RawChunk::Zeros(n) => *n,
        }
    }

    /// True when every byte is zero (a hole, or bytes that are).
    pub(crate) fn is_zero(&self) -> bool {
        match self {
            RawChunk::Data(v) => spool::is_zero(v),
            RawChunk::Zeros(_) => true,
        }
    }

    /// Its bytes.
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            RawChunk::Data(v) => v,
            RawChunk::Zeros(n) => vec![0u8; n],
        }
    }
}

/// Read `raw` in chunks of `chunk` bytes and hand each to `send` (for the
/// parallel compressors); stops early when `send` returns false. A chunk
/// that lies in a hole of a regular file is sent as [`RawChunk::Zeros`]
/// without reading it: a fresh sparse image (a spool just decompressed)
/// would otherwise cost the kernel a zeroed page-cache page per 4 KiB of
/// free space.
pub(crate) fn read_chunks(
    raw: &File,
    len: u64,
    chunk: usize,
    send: &mut dyn FnMut(RawChunk) -> bool,
) -> Result<()> {
    let sparse = raw.metadata().map(|m| m.is_file()).unwrap_or(false);
    // The next data at or after `pos`, when known; None: always read.
    let mut data_at: Option<u64> = if sparse { Some(0) } else { None };
    let mut pos = 0u64;
    while pos < len {
        let n = ((len - pos) as usize).min(chunk);
        if let Some(d) = data_at {
            if d < pos + n as u64 && d != u64::MAX {
                data_at = crate::device::next_data(raw, pos);
                // No data left: a hole to the end, or a file that ends
                // before `len` (cut short meanwhile), whose bytes are not
                // zeros but missing.
                if data_at == Some(u64::MAX) {
                    let size = raw
                        .metadata()
                        .map_err(|e| Error::io("reading the image's size", e))?
                        .len();
                    if size < len {
                        return Err(shorter(len, size));
                    }
                }
            }
        }
        let piece = match data_at {
            Some(d) if d >= pos + n as u64 => RawChunk::Zeros(n),
            _ => {
                let mut buf = vec![0u8; n];
                raw.read_exact_at(&mut buf, pos)
                    .map_err(|e| Error::io(format!("reading the image at byte {pos}"), e))?;
                RawChunk::Data(buf)
            }
        };
        if !send(piece) {
            break;
        }
        pos += n as u64;
    }
    Ok(())
}

/// The chunked compressors' common loop: cut `len` bytes of `raw` into
/// `chunk`-byte pieces, compress each independently with `encode` on
/// `threads` threads (a whole chunk of zeros is compressed once), and
/// write the results to `out` in order (at its current position). `encode`
/// gives the bytes and a number the format keeps for its index (xz: the
/// block's unpadded size); the result lists that number and the chunk's
/// size for each chunk. An empty input writes nothing.
pub(crate) fn compress_chunked(
    raw: &File,
    len: u64,
    out: &File,
    chunk: usize,
    threads: usize,
    progress: &mut spool::ByteProgress,
    encode: impl Fn(&[u8]) -> Result<(Vec<u8>, u64)> + Sync,
) -> Result<Vec<(u64, u64)>> {
    use std::io::Write;
    let mut records = Vec::new();
    if len == 0 {
        return Ok(records);
    }
    let zero = encode(&vec![0u8; chunk])?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut done = 0u64;
    parallel::ordered(
        threads,
        |send| read_chunks(raw, len, chunk, send),
        |data: RawChunk| {
            let n = data.len();
            if n == chunk && data.is_zero() {
                Ok((zero.clone(), n))
            } else {
                encode(&data.into_vec()).map(|c| (c, n))
            }
        },
        |((c, note), n)| {
            done += n as u64;
            progress.update(done);
            records.push((note, n as u64));
            w.write_all(&c)
                .map_err(|e| Error::io("writing the compressed image", e))
        },
    )?;
    w.flush()
        .map_err(|e| Error::io("writing the compressed image", e))?;
    Ok(records)
}

/// A compressed image decompressed into a temporary raw file.
pub struct Spool {
    /// The container it came from.
    pub container: Container,
    /// The raw temporary copy.
    pub raw: TempFile,
    /// The zip entry it came from (None for the other formats).
    pub entry: Option<String>,
}

impl Spool {
    /// Decompress `image` into a temporary file in `dir` (None: $TMPDIR).
    pub fn open(image: &Path, dir: Option<&Path>, opts: &Options) -> Result<Spool> {
        let container = Container::open(image)?;
        let base = image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let raw = match dir {
            Some(d) => TempFile::new_in(d, &base)?,
            None => TempFile::in_tmpdir(&base)?,
        };
        let name = format!("the temporary copy {}", raw.path().display());
        let (_, entry) = container.unpack_entry_to(raw.file(), &name, opts)?;
        Ok(Spool {
            container,
            raw,
            entry,
        })
    }

    /// The raw image path.
    pub fn path(&self) -> &Path {
        self.raw.path()
    }

    /// Compress the raw image at `raw` into `dest` as `format` at `level`:
    /// into a temporary file beside `dest`, fsynced and renamed over it
    /// only when everything succeeded. `dest` gets the mode of a new file
    /// made from `raw` ([`Perms::From`]).
    pub fn finish(
        raw: &Path,
        dest: &Path,
        format: Format,
        level: u32,
        threads: usize,
    ) -> Result<()> {
        Spool::finish_entry(raw, dest, format, level, threads, &zip_entry_name(dest))
    }

    /// [`Spool::finish`] with the zip entry named `entry` (an edited zip
    /// keeps its entry's name).
    pub fn finish_entry(
        raw: &Path,
        dest: &Path,
        format: Format,
        level: u32,
        threads: usize,
        entry: &str,
    ) -> Result<()> {
        let perms = std::fs::metadata(raw)
            .map(|m| Perms::from_meta(&m))
            .unwrap_or(Perms::Plain);
        Spool::finish_as(raw, dest, format, level, threads, entry, perms)
    }

    /// [`Spool::finish_entry`], `dest` getting `perms` (the image's mode
    /// for an edit in place, a new file's for `--output`).
    pub fn finish_as(
        raw: &Path,
        dest: &Path,
        format: Format,
        level: u32,
        threads: usize,
        entry: &str,
        perms: Perms,
    ) -> Result<()> {
        check_dest(dest)?;
        let input =
            File::open(raw).map_err(|e| Error::io(format!("opening {}", raw.display()), e))?;
        // A block device's metadata says 0 bytes: its end says how many.
        let len = crate::device::image_size(&input)
            .map_err(|e| Error::io(format!("reading {}", raw.display()), e))?;
        let tmp = TempFile::beside(dest)?;
        pack(&input, len, tmp.file(), format, level, threads, entry)
            .map_err(|e| e.at(&dest.display().to_string()))?;
        tmp.persist_as(dest, perms)
    }
}

/// The zip entry name for an archive: its file name without `.zip`.
pub fn zip_entry_name(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    match name
        .strip_suffix(".zip")
        .or_else(|| name.strip_suffix(".ZIP"))
    {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => format!("{name}.img"),
    }
}
