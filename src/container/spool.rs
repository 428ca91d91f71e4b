//! Temporary files and sparse writing.
//!
//! [`TempFile`] is a file with a unique name that is removed when it is
//! dropped (so on every error path) unless it is [`TempFile::persist`]ed:
//! fsync, rename over the destination, fsync of the directory. Every
//! temporary file is also listed in a process-wide registry so that the
//! command line can remove them when it exits on a signal
//! ([`remove_all_temps`]).
//!
//! [`SparseWriter`] writes a decompressed image: runs of zero bytes are
//! skipped (the file is extended with `set_len` at the end), so all-zero
//! blocks become holes, and the total is checked against a size limit as it
//! grows.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Error, Result};

static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static TEMP_HOOK: std::sync::OnceLock<fn(&Path)> = std::sync::OnceLock::new();

/// Call `hook` with the name of every temporary file made from now on (the
/// command line registers them with its signal handler).
pub fn on_new_temp(hook: fn(&Path)) {
    let _ = TEMP_HOOK.set(hook);
}

/// Remove every temporary file this process still has (for a signal handler
/// or the last line of `main`).
pub fn remove_all_temps() {
    if let Ok(mut v) = TEMPS.lock() {
        for p in v.drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A temporary file, removed on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// A new empty file in `dir`, named after `base` (hidden, unique).
    pub fn new_in(dir: &Path, base: &str) -> Result<TempFile> {
        let pid = std::process::id();
        for n in 0u32..1000 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = dir.join(format!(".{base}.ext3edit-{pid}-{nanos:08x}{n}.tmp"));
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    if let Some(h) = TEMP_HOOK.get() {
                        h(&path);
                    }
                    TEMPS
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(path.clone());
                    return Ok(TempFile {
                        path,
                        file: Some(file),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("creating a temporary file in {}", dir.display()),
                        e,
                    ))
                }
            }
        }
        Err(Error::Invalid(format!(
            "cannot find a free temporary file name in {}",
            dir.display()
        )))
    }

    /// A new temporary file beside `dest` (same directory, so that a rename
    /// onto `dest` is atomic).
    pub fn beside(dest: &Path) -> Result<TempFile> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        TempFile::new_in(&dir, &base)
    }

    /// A new temporary file in $TMPDIR (or /tmp).
    pub fn in_tmpdir(base: &str) -> Result<TempFile> {
        TempFile::new_in(&std::env::temp_dir(), base)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (read and write).
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("temporary file is open")
    }

    /// Close the file handle (the file stays until drop or persist).
    pub fn close(&mut self) {
        self.file = None;
    }

    /// fsync the file, rename it over `dest`, fsync the directory.
    pub fn persist(mut self, dest: &Path) -> Result<()> {
        let f = match self.file.take() {
            Some(f) => f,
            None => File::open(&self.path)
                .map_err(|e| Error::io(format!("opening {}", self.path.display()), e))?,
        };
        f.sync_all()
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        drop(f);
        check_dest(dest)?;
        std::fs::rename(&self.path, dest).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", self.path.display(), dest.display()),
                e,
            )
        })?;
        forget_temp(&self.path);
        if let Some(dir) = dest.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.path = PathBuf::new();
        Ok(())
    }
}

fn forget_temp(path: &Path) {
    if let Ok(mut v) = TEMPS.lock() {
        v.retain(|p| p != path);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
            forget_temp(&self.path);
        }
    }
}

/// Bytes, rate and time left on stderr when it is a terminal; silent
/// otherwise (or with EXT3EDIT_NO_PROGRESS set).
pub struct ByteProgress {
    label: String,
    total: u64,
    start: Instant,
    last: Instant,
    on: bool,
}

impl ByteProgress {
    /// A bar for `total` bytes (0: unknown).
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        let now = Instant::now();
        ByteProgress {
            label: label.into(),
            total,
            start: now,
            last: now,
            on: io::stderr().is_terminal() && std::env::var_os("EXT3EDIT_NO_PROGRESS").is_none(),
        }
    }

    /// `done` bytes so far.
    pub fn update(&mut self, done: u64) {
        if !self.on || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let mib = done as f64 / 1048576.0;
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let rate = mib / secs;
        let line = if self.total > 0 {
            let frac = (done as f64 / self.total as f64).min(1.0);
            let width = 30;
            let fill = (frac * width as f64) as usize;
            let left = if frac > 0.0 { secs / frac - secs } else { 0.0 };
            format!(
                "\r{}: [{}{}] {:5.1}% {:.0} MiB {:.0} MiB/s {:.0}s left ",
                self.label,
                "#".repeat(fill),
                " ".repeat(width - fill),
                frac * 100.0,
                mib,
                rate,
                left
            )
        } else {
            format!("\r{}: {:.0} MiB {:.0} MiB/s ", self.label, mib, rate)
        };
        let _ = io::stderr().write_all(line.as_bytes());
        let _ = io::stderr().flush();
    }

    /// Clear the line.
    pub fn finish(&mut self) {
        if self.on && self.start.elapsed() >= Duration::from_millis(200) {
            let _ = io::stderr().write_all(b"\r\x1b[K");
            let _ = io::stderr().flush();
        }
    }
}

/// Where decompressed bytes go: a fresh file written sparsely.
pub struct SparseWriter<'a> {
    file: &'a File,
    what: String,
    pos: u64,
    max: u64,
    progress: ByteProgress,
    /// Compressed bytes consumed so far, for the progress bar (set by the
    /// decoder when it knows).
    pub input_done: u64,
    /// The first bytes written, kept until [`SparseWriter::check_head`]'s
    /// check has run on them.
    head: Vec<u8>,
    head_len: usize,
    head_check: Option<HeadCheck<'a>>,
}

/// A check of the decompressed start (see [`SparseWriter::check_head`]).
pub type HeadCheck<'a> = Box<dyn Fn(&[u8]) -> Result<()> + 'a>;

/// The granularity of hole detection.
const HOLE: usize = 4096;

impl<'a> SparseWriter<'a> {
    /// Write into `file` (empty), named `what` in errors, refusing to grow
    /// past `max` bytes; the progress bar counts `input_total` compressed
    /// bytes.
    pub fn new(file: &'a File, what: &str, max: u64, input_total: u64) -> Self {
        SparseWriter {
            file,
            what: what.to_string(),
            pos: 0,
            max,
            progress: ByteProgress::new("unpack", input_total),
            input_done: 0,
            head: Vec::new(),
            head_len: 0,
            head_check: None,
        }
    }

    /// Run `check` on the first `len` bytes as soon as they are written;
    /// an error stops the decompression there. (A shorter output is not
    /// checked here: the caller checks the whole of it.)
    pub fn check_head(&mut self, len: usize, check: HeadCheck<'a>) {
        self.head = Vec::with_capacity(len);
        self.head_len = len;
        self.head_check = Some(check);
    }

    /// Keep `data` (or `n` zeros) for the head check; run it when full.
    fn feed_head(&mut self, data: Option<&[u8]>, n: u64) -> Result<()> {
        if self.head_check.is_none() || self.head.len() >= self.head_len {
            return Ok(());
        }
        let take = (self.head_len - self.head.len()).min(n.min(usize::MAX as u64) as usize);
        match data {
            Some(d) => self.head.extend_from_slice(&d[..take]),
            None => self.head.resize(self.head.len() + take, 0),
        }
        if self.head.len() >= self.head_len {
            self.run_head_check()?;
        }
        Ok(())
    }

    fn run_head_check(&mut self) -> Result<()> {
        if let Some(check) = self.head_check.take() {
            let head = std::mem::take(&mut self.head);
            check(&head)?;
        }
        Ok(())
    }

    /// Bytes written so far (the logical size).
    pub fn len(&self) -> u64 {
        self.pos
    }

    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    fn check_max(&self, add: u64) -> Result<()> {
        if self.pos + add > self.max {
            return Err(Error::Invalid(format!(
                "{}: decompresses to more than {} bytes, the limit for an archive of this size (pass --max-size BYTES to allow more)",
                self.what, self.max
            )));
        }
        Ok(())
    }

    /// `n` zero bytes.
    pub fn zeros(&mut self, n: u64) -> Result<()> {
        self.check_max(n)?;
        self.feed_head(None, n)?;
        self.pos += n;
        Ok(())
    }

    /// Append `data`; its all-zero 4 KiB pieces are skipped.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.check_max(data.len() as u64)?;
        self.feed_head(Some(data), data.len() as u64)?;
        let mut i = 0;
        while i < data.len() {
            // Align pieces to the output offset so holes are whole blocks.
            let off = (self.pos as usize + i) % HOLE;
            let end = (i + HOLE - off).min(data.len());
            let piece = &data[i..end];
            if !is_zero(piece) {
                // Extend the run of non-zero pieces and write it at once.
                let mut j = end;
                while j < data.len() {
                    let e = (j + HOLE).min(data.len());
                    if is_zero(&data[j..e]) {
                        break;
                    }
                    j = e;
                }
                self.file
                    .write_all_at(&data[i..j], self.pos + i as u64)
                    .map_err(|e| Error::io(format!("writing {}", self.what), e))?;
                i = j;
            } else {
                i = end;
            }
        }
        self.pos += data.len() as u64;
        self.progress.update(if self.progress.total > 0 {
            self.input_done
        } else {
            self.pos
        });
        Ok(())
    }

    /// Set the final length (the trailing holes) and clear the progress bar.
    pub fn finish(&mut self) -> Result<u64> {
        self.progress.finish();
        self.file
            .set_len(self.pos)
            .map_err(|e| Error::io(format!("writing {}", self.what), e))?;
        Ok(self.pos)
    }

    /// Start over (a parallel decoder falling back to the sequential one).
    pub fn restart(&mut self) -> Result<()> {
        self.pos = 0;
        self.head.clear();
        self.file
            .set_len(0)
            .map_err(|e| Error::io(format!("writing {}", self.what), e))
    }
}

/// True when every byte is zero.
pub fn is_zero(b: &[u8]) -> bool {
    let mut it = b.chunks_exact(16);
    for c in &mut it {
        if u128::from_ne_bytes(c.try_into().unwrap()) != 0 {
            return false;
        }
    }
    it.remainder().iter().all(|&x| x == 0)
}

/// Decompressed output of one independent unit (a bzip2 block, a gzip
/// member), with runs of zeros kept as counts so that a unit that expands
/// to many MiB of zeros costs no memory.
#[derive(Default)]
pub struct Pieces {
    parts: Vec<Piece>,
    len: u64,
}

enum Piece {
    Data(Vec<u8>),
    Zeros(u64),
}

impl Pieces {
    /// Append bytes.
    pub fn push(&mut self, data: &[u8]) {
        for c in data.chunks(HOLE) {
            if is_zero(c) {
                match self.parts.last_mut() {
                    Some(Piece::Zeros(n)) => *n += c.len() as u64,
                    _ => self.parts.push(Piece::Zeros(c.len() as u64)),
                }
            } else {
                match self.parts.last_mut() {
                    Some(Piece::Data(v)) => v.extend_from_slice(c),
                    _ => self.parts.push(Piece::Data(c.to_vec())),
                }
            }
        }
        self.len += data.len() as u64;
    }

    /// `n` zeros.
    pub fn zeros(n: u64) -> Self {
        Pieces {
            parts: vec![Piece::Zeros(n)],
            len: n,
        }
    }

    /// Nothing but zeros (and not empty).
    pub fn all_zero(&self) -> bool {
        self.len > 0 && self.parts.iter().all(|p| matches!(p, Piece::Zeros(_)))
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// No bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Write them out.
    pub fn write_to(self, w: &mut SparseWriter) -> Result<()> {
        for p in self.parts {
            match p {
                Piece::Data(v) => w.write(&v)?,
                Piece::Zeros(n) => w.zeros(n)?,
            }
        }
        Ok(())
    }
}

/// Open `path` and take the exclusive image lock on it, for a writer that
/// replaces the file by a rename (a compressed image being edited): held
/// from before the file is read until after the rename, so that parallel
/// writers take turns instead of each renaming its own edit over the
/// others'. A writer that renamed a new file over `path` while we waited
/// leaves us holding the lock of a file that no longer has the name: then
/// the new file is opened and locked again. Waits up to `wait` in all
/// (recompressing a big image takes minutes), then fails with "the image
/// is locked by another process that is writing it".
pub fn lock_for_rewrite(path: &Path, wait: Duration) -> Result<File> {
    use std::os::unix::fs::MetadataExt;
    let deadline = Instant::now() + wait;
    let err = |e| Error::io(format!("opening {}", path.display()), e);
    loop {
        let file = crate::device::open_image_file(path, false).map_err(err)?;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "the image is locked by another process that is writing it",
                    )))
                }
                Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                    return Ok(file)
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
            }
        }
        let locked = file.metadata().map_err(err)?;
        match std::fs::metadata(path) {
            Ok(now) if now.dev() == locked.dev() && now.ino() == locked.ino() => return Ok(file),
            // Replaced (or removed and made again) meanwhile: take the new one.
            Ok(_) if Instant::now() < deadline => continue,
            Ok(_) => {
                return Err(err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the image is locked by another process that is writing it",
                )))
            }
            Err(e) => return Err(err(e)),
        }
    }
}

/// Refuse `dest` as the name of a file that a rename will replace unless
/// it is absent, a regular file or a symlink (which the rename replaces
/// as a name, like mv): a device node, FIFO, socket or directory there is
/// never replaced by a regular file.
pub fn check_dest(dest: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(m) = std::fs::symlink_metadata(dest) else {
        return Ok(());
    };
    let t = m.file_type();
    let kind = if t.is_file() || t.is_symlink() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(Error::Invalid(format!(
        "{} is {kind}: a new file is written there by a rename; give a file name",
        dest.display()
    )))
}
