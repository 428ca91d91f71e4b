//! zip: one entry holding the image.
//!
//! Reading uses the `zip` crate (deflate, stored, zip64). Writing is ours,
//! so that the deflate work runs in parallel: the entry's data is the raw
//! deflate of each 1 MiB chunk compressed independently, each chunk but
//! the last ended by a full flush (a byte-aligned empty stored block), the
//! last by a final block: together one valid deflate stream that any unzip
//! reads. The CRC-32 is computed over the image as it is read. The
//! archive is: local file header (sizes filled in afterwards, zip64 extra
//! field when the image is 4 GiB or more), data, central directory with
//! the one entry, (zip64 end of central directory record and locator,)
//! end of central directory record.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

use flate2::Crc;

use super::gzip::{deflate, CHUNK};
use super::parallel::ordered;
use super::spool::{ByteProgress, SparseWriter};
use crate::{Error, Result};

fn zip_err(e: ::zip::result::ZipError) -> Error {
    Error::corrupt(format!("zip archive is damaged ({e})"))
}

/// The names of the files in the archive (directories left out), sorted.
/// An archive with two entries of one name is refused: which of them is
/// "the" file differs between tools (the zip crate keeps one, unzip
/// extracts both in turn), so reading either could show another image
/// than the user's unzip.
pub fn entries(input: &File) -> Result<Vec<String>> {
    let a = ::zip::ZipArchive::new(input).map_err(zip_err)?;
    if a.has_duplicate_names() {
        let name = central_names(input, a.central_directory_start())
            .and_then(|v| {
                let mut v = v;
                v.sort();
                v.windows(2).find(|w| w[0] == w[1]).map(|w| w[0].clone())
            })
            .unwrap_or_else(|| "?".into());
        return Err(Error::Invalid(format!(
            "the zip archive holds two entries named {}: it is ambiguous which one is the image",
            name.escape_debug()
        )));
    }
    let mut names = Vec::new();
    for n in a.file_names() {
        let n = n.map_err(zip_err)?;
        if !n.ends_with('/') {
            names.push(n.into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The names of the central directory's records from byte `at` on, as
/// they are (the zip crate keeps one entry per name); None when a record
/// does not parse.
fn central_names(input: &File, at: u64) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut pos = at;
    let mut fixed = [0u8; 46];
    while input.read_exact_at(&mut fixed, pos).is_ok() && fixed[..4] == *b"PK\x01\x02" {
        let len = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]) as u64;
        let mut name = vec![0u8; len(28) as usize];
        input.read_exact_at(&mut name, pos + 46).ok()?;
        names.push(String::from_utf8_lossy(&name).into_owned());
        pos += 46 + len(28) + len(30) + len(32);
    }
    Some(names)
}

/// The entry to read: `entry`, or the only file in the archive.
pub fn choose_entry(input: &File, entry: Option<&str>) -> Result<String> {
    let names = entries(input)?;
    match entry {
        Some(e) => {
            if !names.iter().any(|n| n == e) {
                return Err(Error::NotFound(format!(
                    "zip entry {e} (the archive holds: {})",
                    list(&names)
                )));
            }
            Ok(e.to_string())
        }
        None => match names.len() {
            0 => Err(Error::Invalid("the zip archive holds no file".into())),
            1 => Ok(names[0].clone()),
            _ => Err(Error::Invalid(format!(
                "the zip archive holds {} files: choose one with --entry NAME ({})",
                names.len(),
                list(&names)
            ))),
        },
    }
}

/// Decompress the chosen entry (`entry`, or the only one) into `w`;
/// returns the entry's name.
pub fn decompress(input: &File, w: &mut SparseWriter, entry: Option<&str>) -> Result<String> {
    let name = choose_entry(input, entry)?;
    let mut a = ::zip::ZipArchive::new(input).map_err(zip_err)?;
    let mut f = a.by_name(&name).map_err(zip_err)?;
    // For the progress bar: the compressed bytes done, in proportion.
    let (packed, size) = (f.compressed_size() as u128, f.size() as u128);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Error::corrupt(format!(
                    "zip entry {name} is truncated ({e})"
                )))
            }
            Err(e) => return Err(Error::corrupt(format!("zip entry {name} is damaged ({e})"))),
        };
        if n == 0 {
            break;
        }
        if size > 0 {
            w.input_done = ((w.len() as u128 + n as u128) * packed / size) as u64;
        }
        w.write(&buf[..n])?;
    }
    Ok(name)
}

fn list(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        s.push_str(&format!(", and {} more", names.len() - 10));
    }
    s
}

/// DOS date and time of `$SOURCE_DATE_EPOCH` or now (UTC).
fn dos_time() -> (u16, u16) {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        })
        .max(315_532_800); // 1980-01-01, the first DOS date
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since 1970 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let date = (((y - 1980).clamp(0, 127) as u16) << 9) | ((m as u16) << 5) | d as u16;
    let time =
        (((rem / 3600) as u16) << 11) | ((((rem / 60) % 60) as u16) << 5) | ((rem % 60) / 2) as u16;
    (time, date)
}

/// Compress `len` bytes of `raw` into `out` as a zip with one entry named
/// `name`.
pub fn compress(
    raw: &File,
    len: u64,
    out: &File,
    level: u32,
    threads: usize,
    name: &str,
    progress: &mut ByteProgress,
) -> Result<()> {
    let zip64 = len >= 0xffff_0000;
    let (time, date) = dos_time();
    // Deflate option bits 1-2: 1 maximum, 2 fast, 0 normal.
    let flags: u16 = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    } | 0x0800; // UTF-8 name
    let version: u16 = if zip64 { 45 } else { 20 };
    let name_b = name.as_bytes();
    let mut local = Vec::new();
    local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    local.extend_from_slice(&version.to_le_bytes());
    local.extend_from_slice(&flags.to_le_bytes());
    local.extend_from_slice(&8u16.to_le_bytes());
    local.extend_from_slice(&time.to_le_bytes());
    local.extend_from_slice(&date.to_le_bytes());
    let crc_at = local.len();
    local.extend_from_slice(&[0u8; 12]); // crc, csize, usize: filled in later
    local.extend_from_slice(&(name_b.len() as u16).to_le_bytes());
    local.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
    local.extend_from_slice(name_b);
    let x64_at = local.len();
    if zip64 {
        local.extend_from_slice(&1u16.to_le_bytes());
        local.extend_from_slice(&16u16.to_le_bytes());
        local.extend_from_slice(&[0u8; 16]);
    }
    let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
    let werr = |e| Error::io("writing the compressed image", e);
    w.write_all(&local).map_err(werr)?;
    let mut crc = Crc::new();
    let mut csize = 0u64;
    let mut done = 0u64;
    let nchunks = len.div_ceil(CHUNK as u64).max(1);
    let zero = deflate(&vec![0u8; CHUNK], level, false)?;
    let zeros = vec![0u8; CHUNK];
    ordered(
        threads,
        |send| {
            if len == 0 {
                send((0u64, super::RawChunk::Data(Vec::new())));
                return Ok(());
            }
            let mut k = 0u64;
            super::read_chunks(raw, len, CHUNK, &mut |v| {
                k += 1;
                send((k - 1, v))
            })
        },
        |(k, data): (u64, super::RawChunk)| {
            let last = k + 1 == nchunks;
            let n = data.len();
            if !last && n == CHUNK && data.is_zero() {
                let mut c = Crc::new();
                c.update(&zeros);
                return Ok((zero.clone(), c, n));
            }
            let data = data.into_vec();
            let mut c = Crc::new();
            c.update(&data);
            Ok((deflate(&data, level, last)?, c, n))
        },
        |(d, c, n)| {
            crc.combine(&c);
            csize += d.len() as u64;
            done += n as u64;
            progress.update(done);
            w.write_all(&d).map_err(werr)
        },
    )?;
    let crc = crc.sum();
    // Fill in the local header.
    let mut fix = Vec::new();
    fix.extend_from_slice(&crc.to_le_bytes());
    if zip64 {
        fix.extend_from_slice(&[0xff; 8]);
    } else {
        fix.extend_from_slice(&(csize as u32).to_le_bytes());
        fix.extend_from_slice(&(len as u32).to_le_bytes());
    }
    let data_end = local.len() as u64 + csize;
    // Central directory.
    let mut cd = Vec::new();
    cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    cd.extend_from_slice(&((3u16 << 8) | version).to_le_bytes());
    cd.extend_from_slice(&version.to_le_bytes());
    cd.extend_from_slice(&flags.to_le_bytes());
    cd.extend_from_slice(&8u16.to_le_bytes());
    cd.extend_from_slice(&time.to_le_bytes());
    cd.extend_from_slice(&date.to_le_bytes());
    cd.extend_from_slice(&fix);
    cd.extend_from_slice(&(name_b.len() as u16).to_le_bytes());
    cd.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
    cd.extend_from_slice(&0u16.to_le_bytes()); // comment
    cd.extend_from_slice(&0u16.to_le_bytes()); // disk
    cd.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    cd.extend_from_slice(&((0o100644u32) << 16).to_le_bytes());
    cd.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    cd.extend_from_slice(name_b);
    let mut x64 = Vec::new();
    if zip64 {
        x64.extend_from_slice(&1u16.to_le_bytes());
        x64.extend_from_slice(&16u16.to_le_bytes());
        x64.extend_from_slice(&len.to_le_bytes());
        x64.extend_from_slice(&csize.to_le_bytes());
        cd.extend_from_slice(&x64);
    }
    let cd_len = cd.len() as u64;
    let mut tail = cd;
    let big = zip64 || data_end >= 0xffff_ffff;
    if big {
        let eocd64_at = data_end + cd_len;
        tail.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        tail.extend_from_slice(&44u64.to_le_bytes());
        tail.extend_from_slice(&((3u16 << 8) | 45).to_le_bytes());
        tail.extend_from_slice(&45u16.to_le_bytes());
        tail.extend_from_slice(&0u32.to_le_bytes());
        tail.extend_from_slice(&0u32.to_le_bytes());
        tail.extend_from_slice(&1u64.to_le_bytes());
        tail.extend_from_slice(&1u64.to_le_bytes());
        tail.extend_from_slice(&cd_len.to_le_bytes());
        tail.extend_from_slice(&data_end.to_le_bytes());
        tail.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        tail.extend_from_slice(&0u32.to_le_bytes());
        tail.extend_from_slice(&eocd64_at.to_le_bytes());
        tail.extend_from_slice(&1u32.to_le_bytes());
    }
    tail.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    tail.extend_from_slice(&1u16.to_le_bytes());
    tail.extend_from_slice(&1u16.to_le_bytes());
    tail.extend_from_slice(&(cd_len as u32).to_le_bytes());
    let cd_off = if big { 0xffff_ffffu32 } else { data_end as u32 };
    tail.extend_from_slice(&cd_off.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    w.write_all(&tail).map_err(werr)?;
    w.flush().map_err(werr)?;
    drop(w);
    out.write_all_at(&fix, crc_at as u64).map_err(werr)?;
    if zip64 {
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&csize.to_le_bytes());
        out.write_all_at(&v, x64_at as u64 + 4).map_err(werr)?;
    }
    Ok(())
}
