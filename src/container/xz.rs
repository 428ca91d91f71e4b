//! xz: liblzma's multithreaded encoder and decoder.
//!
//! `pack` writes one xz stream (CRC64 check) whose blocks each hold
//! [`CHUNK`] = 1 MiB of the image, compressed with LZMA2 at the preset
//! level but with a 1 MiB dictionary (a larger one cannot help inside a
//! 1 MiB block and would cost memory on every thread). xz's index at the
//! end of the stream lists each block's sizes, which is what a seekable
//! reader needs. Decompression uses liblzma's multithreaded decoder, which
//! decodes blocks in parallel when the stream records their sizes (ours
//! and `xz -T` ones do); concatenated streams and stream padding are
//! handled one stream after another.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use liblzma::stream::{Action, Check, Filters, LzmaOptions, MtStreamBuilder, Status, Stream};

use super::spool::{is_zero, ByteProgress, SparseWriter};
use crate::{Error, Result};

/// The uncompressed size of each xz block `pack` writes.
pub const CHUNK: u64 = 1 << 20;

fn lz_err(e: liblzma::stream::Error) -> Error {
    Error::corrupt(format!("xz data is damaged ({e})"))
}

/// Compress `len` bytes of `raw` into `out`.
pub fn compress(
    raw: &File,
    len: u64,
    out: &File,
    level: u32,
    threads: usize,
    progress: &mut ByteProgress,
) -> Result<()> {
    let mut opts = LzmaOptions::new_preset(level)
        .map_err(|e| Error::Invalid(format!("xz level {level}: {e}")))?;
    opts.dict_size(CHUNK as u32);
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    let stream = MtStreamBuilder::new()
        .threads(threads as u32)
        .block_size(CHUNK)
        .filters(filters)
        .check(Check::Crc64)
        .timeout_ms(300)
        .encoder()
        .map_err(|e| Error::Invalid(format!("xz encoder: {e}")))?;
    let mut w = liblzma::write::XzEncoder::new_stream(
        std::io::BufWriter::with_capacity(1 << 20, out),
        stream,
    );
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let n = ((len - pos) as usize).min(buf.len());
        raw.read_exact_at(&mut buf[..n], pos)
            .map_err(|e| Error::io(format!("reading the image at byte {pos}"), e))?;
        w.write_all(&buf[..n])
            .map_err(|e| Error::io("writing the compressed image", e))?;
        pos += n as u64;
        progress.update(pos);
    }
    let mut inner = w
        .finish()
        .map_err(|e| Error::io("writing the compressed image", e))?;
    inner
        .flush()
        .map_err(|e| Error::io("writing the compressed image", e))
}

fn decoder(threads: usize) -> Result<Stream> {
    MtStreamBuilder::new()
        .threads(threads as u32)
        .memlimit_threading(1 << 30)
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(|e| Error::Invalid(format!("xz decoder: {e}")))
}

/// Decompress `input` into `w`: every stream, in order.
pub fn decompress(input: &File, w: &mut SparseWriter, threads: usize) -> Result<()> {
    let total = input
        .metadata()
        .map_err(|e| Error::io("reading the xz data", e))?
        .len();
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
