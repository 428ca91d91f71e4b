//! The block device under the engine.
//!
//! The engine never touches a file directly: it reads and writes byte ranges
//! through [`BlockDevice`]. [`FileDevice`] serves an image file (positioned
//! reads and writes);
//! [`MemDevice`] serves a byte vector (tests, and images that were
//! decompressed into memory). A compressed image read chunk by chunk
//! implements the same trait (`container::seekable`).
//!
//! This is the only file of the crate with `unsafe` code: `fcntl` to clear
//! `O_NONBLOCK`, `pwritev`, `lseek(SEEK_DATA)` for sparse copies, and
//! `fallocate(PUNCH_HOLE)` for zeroing free blocks.

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

    /// Make `len` bytes at `offset` read as zeros. The default writes
    /// zeros; files punch a hole instead where the file system can.
    fn zero_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let zeros = vec![0u8; len.min(1 << 20) as usize];
        let mut pos = offset;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| io::Error::other("byte range overflows"))?;
        while pos < end {
            let n = ((end - pos) as usize).min(zeros.len());
            self.write_at(pos, &zeros[..n])?;
            pos += n as u64;
        }
        Ok(())
    }

    /// True only when `len` bytes at `offset` are known to read as zeros
    /// without reading them: a hole of a sparse image file. False when
    /// unknown (the default); the caller then reads.
    fn is_hole(&self, offset: u64, len: u64) -> bool {
        let _ = (offset, len);
        false
    }

    /// Make every write so far durable (fsync for files).
    fn flush(&mut self) -> io::Result<()>;

    /// True if writes are possible at all.
    fn writable(&self) -> bool;
}

/// An error unless bytes `offset..offset + len` lie within `size` bytes
/// (the check every device makes before a read or write).
pub fn check_range(offset: u64, len: usize, size: u64) -> io::Result<()> {
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

/// An image file. Reads are positioned reads (`pread`) of the file: a map
/// of the file would save a system call per read but turns a file that
/// another program shrinks under us into a SIGBUS (see [`FileDevice::open`]).
pub struct FileDevice {
    file: File,
    size: u64,
    writable: bool,
    sync: bool,
}

impl std::fmt::Debug for FileDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDevice")
            .field("size", &self.size)
            .field("writable", &self.writable)
            .finish()
    }
}

/// What an image file may be: a regular file or a block device. Anything
/// else (a FIFO, a character device, a socket, a directory) is refused
/// before it is read, with one message that says what it is.
fn check_image_type(meta: &std::fs::Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_block_device() {
            return Ok(());
        }
        let what = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {what}, not an image file (a regular file or a block device)"),
        ))
    }
    #[cfg(not(unix))]
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        if ft.is_dir() {
            "is a directory, not an image file"
        } else {
            "is not a regular file"
        },
    ))
}

/// Open an image file for reading (and writing with `write`) without ever
/// blocking in `open` or a first read: the file is opened with `O_NONBLOCK`
/// (a FIFO would otherwise wait for a writer forever), its type is taken
/// from the open descriptor (so a symlink to an image works, and what is
/// checked is what is read), anything that is not a regular file or a
/// block device is refused, and `O_NONBLOCK` is then cleared again.
pub fn open_image_file(path: &std::path::Path, write: bool) -> io::Result<File> {
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true).write(write);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        oo.custom_flags(libc::O_NONBLOCK);
    }
    let file = oo.open(path)?;
    check_image_type(&file.metadata()?)?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(file)
}

/// Which lock [`lock_image`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Readers that need a consistent image (the copy of `--output`): any
    /// number at once, none while a writer holds the exclusive lock.
    Shared,
    /// Writers: one at a time, and no shared holder.
    Exclusive,
}

/// Take an advisory whole-file lock (`flock`) on an open image, waiting a
/// little for it. Writers take [`Lock::Exclusive`]; a copy that must see a
/// whole image takes [`Lock::Shared`]. The wait covers the short moment in
/// a multi-threaded program where a child process being started holds a
/// copy of a descriptor that was just closed; a writer that works longer
/// makes this fail with one message. On file systems without locks the
/// image is used unlocked.
pub fn lock_image(file: &File, how: Lock) -> io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let r = match how {
            Lock::Shared => file.try_lock_shared(),
            Lock::Exclusive => file.try_lock(),
        };
        match r {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the image is locked by another process that is writing it",
                ))
            }
            Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                return Ok(())
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// The size of an open image: the file size, or for a block device (whose
/// metadata says 0) the offset of its end.
pub fn image_size(file: &File) -> io::Result<u64> {
    let meta = file.metadata()?;
    if meta.is_file() {
        Ok(meta.len())
    } else {
        use std::io::Seek;
        let mut f = file;
        f.seek(io::SeekFrom::End(0))
    }
}

impl FileDevice {
    /// Open `path` read-only or read-write (see [`open_image_file`]: only
    /// regular files and block devices). A writer takes the exclusive lock
    /// ([`lock_image`]).
    ///
    /// Reads are `pread`s, not a memory map: another program may truncate
    /// or rewrite the image while we read it, and a read past the new end
    /// must be an error that says so, not a SIGBUS. The system call per
    /// read costs about 0.6 us of CPU per file in `ls -R -l` and nothing
    /// measurable in writes (docs/BENCHMARKS.md, History).
    pub fn open(path: &std::path::Path, write: bool) -> io::Result<Self> {
        let file = open_image_file(path, write)?;
        Self::from_file(file, write)
    }

    /// Serve an image file that is already open (readable, and writable
    /// with `write`). A writer takes the exclusive lock.
    pub fn from_file(file: File, write: bool) -> io::Result<Self> {
        check_image_type(&file.metadata()?)?;
        if write {
            lock_image(&file, Lock::Exclusive)?;
        }
        let size = image_size(&file)?;
        Ok(FileDevice {
            file,
            size,
            writable: write,
            sync: true,
        })
    }

    /// A read inside the size the image had when it was opened came up
    /// short: another program shrank the file since. Say so (not as
    /// `UnexpectedEof`, which the engine reports as a truncated image).
    fn changed(&self, e: io::Error) -> io::Error {
        if e.kind() != io::ErrorKind::UnexpectedEof {
            return e;
        }
        let now = match image_size(&self.file) {
            Ok(n) => format!("{n} bytes now"),
            Err(_) => "smaller now".into(),
        };
        io::Error::other(format!(
            "the image changed size while being read (another program is writing it): {} bytes when opened, {now}",
            self.size
        ))
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
        self.pread(offset, buf).map_err(|e| self.changed(e))
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

    fn zero_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "image opened read-only",
            ));
        }
        check_range(offset, len as usize, self.size)?;
        #[cfg(target_os = "linux")]
        if self.file.metadata()?.is_file() {
            use std::os::unix::io::AsRawFd;
            // SAFETY: fallocate on a file descriptor we own; no memory is
            // passed. KEEP_SIZE: the file never grows or shrinks.
            let r = unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    offset as libc::off_t,
                    len as libc::off_t,
                )
            };
            if r == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL)
            ) {
                return Err(e);
            }
            // No hole punching here: write the zeros.
        }
        let zeros = vec![0u8; len.min(1 << 20) as usize];
        let mut pos = offset;
        while pos < offset + len {
            let n = ((offset + len - pos) as usize).min(zeros.len());
            self.pwrite(pos, &zeros[..n])?;
            pos += n as u64;
        }
        Ok(())
    }

    fn is_hole(&self, offset: u64, len: u64) -> bool {
        // SEEK_DATA sees data written but not yet on disk as data; a block
        // device, or a file system without SEEK_DATA, says "data here".
        check_range(offset, len as usize, self.size).is_ok()
            && next_data(&self.file, offset).is_some_and(|at| at >= offset.saturating_add(len))
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

/// True when every byte of `b` is zero. Bytes are or-ed 64 at a time
/// (the compiler turns that into vector instructions): a byte-at-a-time
/// scan of the 10 MiB a large `put` saves before writing took 7 ms.
pub fn is_zero(b: &[u8]) -> bool {
    let mut it = b.chunks_exact(64);
    for c in &mut it {
        if c.iter().fold(0u8, |a, &x| a | x) != 0 {
            return false;
        }
    }
    it.remainder().iter().all(|&x| x == 0)
}

/// Where the next data of `f` at or after `pos` is (`SEEK_DATA`): None
/// when this cannot be told (not Linux, a file system or file type without
/// `SEEK_DATA`), `u64::MAX` when only a hole is left (or `pos` is past the
/// end: the caller checks the size).
pub fn next_data(f: &File, pos: u64) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: lseek on a file descriptor we own; no memory is passed.
        let at = unsafe { libc::lseek(f.as_raw_fd(), pos as libc::off_t, libc::SEEK_DATA) };
        if at >= 0 {
            return Some(at as u64);
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
            return Some(u64::MAX);
        }
    }
    let _ = (f, pos);
    None
}

/// Copy an open image into `out` (a new, empty file), keeping its holes
/// (an image of many GiB is mostly holes); returns the bytes copied. On
/// Linux the data ranges of a regular file are found with
/// `SEEK_DATA`/`SEEK_HOLE`; elsewhere, and for block devices, all-zero
/// chunks are skipped. The caller holds whatever lock makes `input` a
/// consistent image for the duration (see [`lock_image`]) and syncs `out`.
pub fn copy_sparse(input: &File, out: &File) -> io::Result<u64> {
    let size = image_size(input)?;
    out.set_len(size)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut copy_range = |start: u64, end: u64| -> io::Result<()> {
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            read_exact_at(input, &mut buf[..n], pos)?;
            if !is_zero(&buf[..n]) {
                write_all_at(out, &buf[..n], pos)?;
            }
            pos += n as u64;
        }
        Ok(())
    };
    #[cfg(target_os = "linux")]
    if input.metadata()?.is_file() {
        use std::os::unix::io::AsRawFd;
        let fd = input.as_raw_fd();
        let mut pos: u64 = 0;
        while pos < size {
            // SAFETY: lseek on a file descriptor we own; no memory is passed.
            let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
            if data < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENXIO) {
                    return Ok(size); // only a hole is left
                }
                // No SEEK_DATA here: copy the rest chunk by chunk.
                copy_range(pos, size)?;
                return Ok(size);
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
            if hole < 0 {
                copy_range(data as u64, size)?;
                return Ok(size);
            }
            copy_range(data as u64, (hole as u64).min(size))?;
            pos = hole as u64;
        }
        return Ok(size);
    }
    copy_range(0, size)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_zero_sees_every_byte() {
        for len in [0usize, 1, 63, 64, 65, 127, 128, 4096, 4099] {
            let mut b = vec![0u8; len];
            assert!(is_zero(&b), "{len} zeros");
            (0..len).for_each(|i| {
                b[i] = 0x80;
                assert!(!is_zero(&b), "{len} bytes, byte {i} set");
                b[i] = 0;
            });
        }
    }

    #[test]
    fn holes_of_a_sparse_file_are_told_apart_from_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let f = File::create(&p).unwrap();
        f.set_len(4 << 20).unwrap();
        write_all_at(&f, &[1u8; 4096], 1 << 20).unwrap();
        drop(f);
        let dev = FileDevice::open(&p, false).unwrap();
        // Data: never a hole. Past the end: not a hole either.
        assert!(!dev.is_hole(1 << 20, 4096));
        assert!(!dev.is_hole((1 << 20) - 4096, 8192));
        assert!(!dev.is_hole((4 << 20) - 4096, 8192));
        if next_data(&dev.file, 0).is_none() {
            return; // no SEEK_DATA here: nothing is known to be a hole
        }
        // What this file system keeps as holes (some allocate small files
        // whole) reads as zeros.
        for (off, len) in [(0u64, 4096u64), (2 << 20, 1 << 20)] {
            if dev.is_hole(off, len) {
                let mut buf = vec![1u8; len as usize];
                dev.read_at(off, &mut buf).unwrap();
                assert!(is_zero(&buf));
            }
        }
    }
}
