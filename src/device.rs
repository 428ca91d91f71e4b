//! The block device under the engine.
//!
//! The engine never touches a file directly: it reads and writes byte ranges
//! through [`BlockDevice`]. [`FileDevice`] serves an image file (reads come
//! from a read-only memory map, writes go through positioned writes);
//! [`MemDevice`] serves a byte vector (tests, and images that were
//! decompressed into memory). A compressed image read chunk by chunk can
//! implement the same trait later.
//!
//! This is the only file of the crate with `unsafe` code: the memory map,
//! and `lseek(SEEK_DATA)` for sparse copies.

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

    /// Read file content in bulk: like [`Self::read_at`], but an
    /// implementation may bypass caches that would keep the bytes in this
    /// process's memory (a memory map counts every page it touched).
    fn read_data_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read_at(offset, buf)
    }

    /// Write the concatenation of `bufs` at `offset`. The default copies
    /// them into one buffer; files use one vectored write.
    fn write_vectored_at(&mut self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        let all: Vec<u8> = bufs.concat();
        self.write_at(offset, &all)
    }

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
        if write {
            // One writer at a time. The lock is waited for a little: in a
            // multi-threaded program a child process being started can
            // briefly hold a copy of a descriptor that was just closed.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock)
                        if std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(io::Error::new(
                            io::ErrorKind::WouldBlock,
                            "the image is locked by another process that is writing it",
                        ))
                    }
                    Err(std::fs::TryLockError::Error(e))
                        if e.kind() == io::ErrorKind::Unsupported =>
                    {
                        break
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(e),
                }
            }
        }
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
            let map = unsafe { memmap2::MmapOptions::new().map(&file).ok() };
            // The engine reads scattered metadata blocks: read-ahead around
            // each fault would mostly read (or zero) pages we never use.
            #[cfg(unix)]
            if let Some(m) = &map {
                let _ = m.advise(memmap2::Advice::Random);
            }
            map
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
            let n = self
                .file
                .seek_read(&mut buf[done..], offset + done as u64)?;
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

    fn read_data_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        // Positioned reads: pages read through the map would stay in this
        // process's resident set, so copying a 10 GiB file out would
        // count 10 GiB.
        check_range(offset, buf.len(), self.size)?;
        self.pread(offset, buf)
    }

    #[cfg(target_os = "linux")]
    fn write_vectored_at(&mut self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        use std::os::unix::io::AsRawFd;
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "image opened read-only",
            ));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        check_range(offset, total, self.size)?;
        let mut iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        let mut done = 0usize;
        let mut first = 0usize; // first iovec not fully written
        while first < iov.len() {
            let n = (iov.len() - first).min(1024); // IOV_MAX
                                                   // SAFETY: every iovec points into a slice of `bufs`, alive for
                                                   // this call; the kernel only reads from them.
            let r = unsafe {
                libc::pwritev(
                    self.file.as_raw_fd(),
                    iov[first..].as_ptr(),
                    n as libc::c_int,
                    (offset + done as u64) as libc::off_t,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut w = r as usize;
            if w == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
            }
            done += w;
            // Skip what was written, trimming a partly written iovec.
            while first < iov.len() && w >= iov[first].iov_len {
                w -= iov[first].iov_len;
                first += 1;
            }
            if w > 0 {
                // SAFETY: w < iov_len, so the advanced pointer stays inside
                // the same slice.
                iov[first].iov_base =
                    unsafe { (iov[first].iov_base as *mut u8).add(w) } as *mut libc::c_void;
                iov[first].iov_len -= w;
            }
        }
        Ok(())
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

/// Copy a file keeping its holes (an image of many GiB is mostly holes).
/// On Linux the data ranges are found with `SEEK_DATA`/`SEEK_HOLE`;
/// elsewhere, all-zero chunks are skipped.
pub fn copy_sparse(src: &std::path::Path, dst: &std::path::Path) -> io::Result<u64> {
    let input = File::open(src)?;
    let size = input.metadata()?.len();
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)?;
    out.set_len(size)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut copy_range = |start: u64, end: u64| -> io::Result<()> {
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            read_exact_at(&input, &mut buf[..n], pos)?;
            if buf[..n].iter().any(|&b| b != 0) {
                write_all_at(&out, &buf[..n], pos)?;
            }
            pos += n as u64;
        }
        Ok(())
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let fd = input.as_raw_fd();
        let mut pos: u64 = 0;
        let mut seek_works = true;
        while pos < size {
            // SAFETY: lseek on a file descriptor we own; no memory is passed.
            let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
            if data < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENXIO) {
                    break; // only a hole is left
                }
                seek_works = false;
                break;
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
            if hole < 0 {
                seek_works = false;
                break;
            }
            copy_range(data as u64, (hole as u64).min(size))?;
            pos = hole as u64;
        }
        if !seek_works {
            copy_range(0, size)?;
        }
    }
    #[cfg(not(target_os = "linux"))]
    copy_range(0, size)?;
    out.sync_all()?;
    Ok(size)
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, off)
}
#[cfg(unix)]
fn write_all_at(f: &File, buf: &[u8], off: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(buf, off)
}
#[cfg(not(unix))]
fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
    use std::io::{Read, Seek};
    let mut f = f;
    f.seek(io::SeekFrom::Start(off))?;
    f.read_exact(buf)
}
#[cfg(not(unix))]
fn write_all_at(f: &File, buf: &[u8], off: u64) -> io::Result<()> {
    use std::io::{Seek, Write};
    let mut f = f;
    f.seek(io::SeekFrom::Start(off))?;
    f.write_all(buf)
}

/// How a [`CrashDevice`] loses writes when it "crashes".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every write before the crash point reached the disk, in order.
    InOrder,
    /// Writes since the last flush are lost (a volatile disk cache).
    LoseUnflushed,
    /// Each 512-byte sector written since the last flush reaches the disk
    /// or not, as a pseudo-random draw from the seed: a disk that reorders
    /// its cache and splits writes.
    Reorder(u64),
}

/// A test aid: an in-memory image that stops accepting writes and flushes
/// after a given number of them, as if the machine lost power there. The
/// bytes that "reached the disk" stay readable through [`CrashDevice::image`].
pub struct CrashDevice {
    disk: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    pending: Vec<(u64, Vec<u8>)>,
    budget: Option<usize>,
    ops: usize,
    mode: CrashMode,
    crashed: bool,
}

impl CrashDevice {
    /// Crash after `budget` writes and flushes (None: never).
    pub fn new(image: Vec<u8>, budget: Option<usize>, mode: CrashMode) -> Self {
        CrashDevice {
            disk: std::sync::Arc::new(std::sync::Mutex::new(image)),
            pending: Vec::new(),
            budget,
            ops: 0,
            mode,
            crashed: false,
        }
    }

    /// A handle on the bytes that reached the disk.
    pub fn image(&self) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
        self.disk.clone()
    }

    /// Writes and flushes seen so far (the crash point counts too).
    pub fn ops(&self) -> usize {
        self.ops
    }

    fn tick(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(io::Error::other("simulated crash"));
        }
        if self.budget.is_some_and(|b| self.ops >= b) {
            self.crashed = true;
            if let CrashMode::Reorder(seed) = self.mode {
                let mut x = seed | 1;
                let mut disk = self.disk.lock().unwrap();
                // Each 512-byte sector of each pending write lands or not:
                // a multi-block write is not atomic either.
                for (off, data) in self.pending.drain(..) {
                    for (i, sector) in data.chunks(512).enumerate() {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if x & 1 == 1 {
                            let o = off as usize + i * 512;
                            disk[o..o + sector.len()].copy_from_slice(sector);
                        }
                    }
                }
            }
            self.pending.clear();
            return Err(io::Error::other("simulated crash"));
        }
        self.ops += 1;
        Ok(())
    }
}

impl BlockDevice for CrashDevice {
    fn len(&self) -> u64 {
        self.disk.lock().unwrap().len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let disk = self.disk.lock().unwrap();
        check_range(offset, buf.len(), disk.len() as u64)?;
        let o = offset as usize;
        buf.copy_from_slice(&disk[o..o + buf.len()]);
        // Writes still in the "cache" are visible to the writer.
        for (off, data) in &self.pending {
            let (a, b) = (*off, *off + data.len() as u64);
            let (c, d) = (offset, offset + buf.len() as u64);
            if a < d && c < b {
                let s = a.max(c);
                let e = b.min(d);
                buf[(s - c) as usize..(e - c) as usize]
                    .copy_from_slice(&data[(s - a) as usize..(e - a) as usize]);
            }
        }
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.tick()?;
        check_range(offset, data.len(), self.len())?;
        match self.mode {
            CrashMode::InOrder => {
                let mut disk = self.disk.lock().unwrap();
                disk[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            }
            CrashMode::LoseUnflushed | CrashMode::Reorder(_) => {
                self.pending.push((offset, data.to_vec()))
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tick()?;
        let mut disk = self.disk.lock().unwrap();
        for (off, data) in self.pending.drain(..) {
            disk[off as usize..off as usize + data.len()].copy_from_slice(&data);
        }
        Ok(())
    }
    fn writable(&self) -> bool {
        true
    }
}
