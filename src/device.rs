//! The block device under the engine.
//!
//! The engine never touches a file directly: it reads and writes byte ranges
//! through [`BlockDevice`]. [`FileDevice`] serves an image file (reads come
//! from a read-only memory map, writes go through positioned writes);
//! [`MemDevice`] serves a byte vector (tests, and images that were
//! decompressed into memory). A compressed image read chunk by chunk can
//! implement the same trait later.
//!
//! This is the only file of the crate with `unsafe` code: the memory map.

use std::fs::File;
use std::io;

/// A random-access byte store that holds a filesystem image.
pub trait BlockDevice {
    /// Size of the device in bytes.
    fn len(&self) -> u64;

    /// True when the device holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` with the bytes at `offset`. Reading past the end is an
    /// `UnexpectedEof` error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Write `data` at `offset`. Writing past the end is an error: an image
    /// does not grow by accident.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Make every write so far durable (fsync for files).
    fn flush(&mut self) -> io::Result<()>;

    /// True if writes are possible at all.
    fn writable(&self) -> bool;
}

fn check_range(offset: u64, len: usize, size: u64) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("byte range {offset}+{len} is past the end of the image ({size} bytes)"),
        )),
    }
}

/// An image held in memory.
#[derive(Debug, Clone, Default)]
pub struct MemDevice {
    /// The image bytes.
    pub data: Vec<u8>,
}

impl MemDevice {
    /// Wrap a byte vector.
    pub fn new(data: Vec<u8>) -> Self {
        MemDevice { data }
    }
}

impl BlockDevice for MemDevice {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(offset, buf.len(), self.len())?;
        let o = offset as usize;
        buf.copy_from_slice(&self.data[o..o + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        check_range(offset, data.len(), self.len())?;
        let o = offset as usize;
        self.data[o..o + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn writable(&self) -> bool {
        true
    }
}

/// An image file. Reads come from a shared read-only memory map when one can
/// be made (regular files), else from positioned reads.
pub struct FileDevice {
    file: File,
    map: Option<memmap2::Mmap>,
    size: u64,
    writable: bool,
    sync: bool,
}

impl std::fmt::Debug for FileDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDevice")
            .field("size", &self.size)
            .field("mapped", &self.map.is_some())
            .field("writable", &self.writable)
            .finish()
    }
}

impl FileDevice {
    /// Open `path` read-only or read-write.
    pub fn open(path: &std::path::Path, write: bool) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory, not an image file",
            ));
        }
        let size = if meta.is_file() {
            meta.len()
        } else {
            // Block devices report 0 in metadata: seek to the end instead.
            use std::io::Seek;
            let mut f = &file;
            f.seek(io::SeekFrom::End(0))?
        };
        let map = if meta.is_file() && size > 0 {
            // SAFETY: the map is read-only and private to this process. The
            // contract of this tool is that nobody else changes the image
            // while it works on it (as for debugfs or a mount); our own
            // writes go through `write_at` on the same file, which the page
            // cache keeps coherent with the map on the systems we support.
            // A concurrent truncation by another process could raise SIGBUS;
            // that is the documented limit of reading an image in place.
            unsafe { memmap2::MmapOptions::new().map(&file).ok() }
        } else {
            None
        };
        Ok(FileDevice {
            file,
            map,
            size,
            writable: write,
            sync: true,
        })
    }

    /// Whether `flush` calls fsync (default true). Benchmarks and
    /// throw-away images may turn it off.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    #[cfg(unix)]
    fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset)
    }

    #[cfg(windows)]
    fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            let n = self.file.seek_read(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }

    #[cfg(unix)]
    fn pwrite(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(data, offset)
    }

    #[cfg(windows)]
    fn pwrite(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < data.len() {
            let n = self.file.seek_write(&data[done..], offset + done as u64)?;
            done += n;
        }
        Ok(())
    }
}

impl BlockDevice for FileDevice {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(offset, buf.len(), self.size)?;
        match &self.map {
            Some(map) => {
                let o = offset as usize;
                buf.copy_from_slice(&map[o..o + buf.len()]);
                Ok(())
            }
            None => self.pread(offset, buf),
        }
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "image opened read-only",
            ));
        }
        check_range(offset, data.len(), self.size)?;
        self.pwrite(offset, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.writable && self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn writable(&self) -> bool {
        self.writable
    }
}
