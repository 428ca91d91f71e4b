//! Temporary files and sparse writing.
//!
//! [`TempFile`] is a file with a unique name that is removed when it is
//! dropped (so on every error path) unless it is [`TempFile::persist`]ed:
//! fsync, rename over the destination, fsync of the directory. Every
//! temporary file is also listed in a process-wide registry so that the
//! command line can remove them when it exits on a signal
//! ([`remove_all_temps`]).
//!
//! A temporary file is created mode 0600 (it holds a copy of an image that
//! may be private) and named `.BASE.XXXXXX.ext3edit-partial` ([`TEMP_SUFFIX`]),
//! BASE being the file it is made for. Its writer holds an exclusive
//! `flock` on it for as long as it lives, so that a file left by a killed
//! process (`kill -9`, a power cut) can be told from a live one:
//! [`remove_stale_temps`] removes only those whose lock it can take. The
//! file that a rename puts in place gets its mode (and owner) from
//! [`Perms`] just before the rename.
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
    /// A new empty file in `dir`, named after `base` (hidden, unique,
    /// mode 0600, exclusively locked by this process while it is open).
    pub fn new_in(dir: &Path, base: &str) -> Result<TempFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let pid = std::process::id();
        for n in 0u64..1000 {
            let path = dir.join(format!(".{base}.{}{TEMP_SUFFIX}", random_tag(pid, n)));
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(file) => {
                    // Alive: see remove_stale_temps. (A file system without
                    // locks keeps its temporary files from being cleaned.)
                    let _ = file.try_lock();
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

    /// Close the file handle (the file stays until drop or persist; its
    /// lock goes with the handle, so a cleaner may then take it for a
    /// stale file: only for a file nobody uses any more).
    pub fn close(&mut self) {
        self.file = None;
    }

    /// fsync the file, rename it over `dest`, fsync the directory. The file
    /// gets the mode a new file gets (0666 under the umask); see
    /// [`TempFile::persist_as`].
    pub fn persist(self, dest: &Path) -> Result<()> {
        self.persist_as(dest, Perms::Plain)
    }

    /// [`TempFile::persist`], the file getting `perms` before the rename.
    pub fn persist_as(mut self, dest: &Path, perms: Perms) -> Result<()> {
        let f = match self.file.take() {
            Some(f) => f,
            None => File::open(&self.path)
                .map_err(|e| Error::io(format!("opening {}", self.path.display()), e))?,
        };
        perms
            .apply(&f)
            .map_err(|e| Error::io(format!("setting the mode of {}", self.path.display()), e))?;
        f.sync_all()
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        check_dest(dest)?;
        // Still open (and locked) across the rename: a cleaner never takes
        // it for a stale file.
        std::fs::rename(&self.path, dest).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", self.path.display(), dest.display()),
                e,
            )
        })?;
        drop(f);
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

/// The end of every temporary file's name: `.BASE.XXXXXX.ext3edit-partial`.
pub const TEMP_SUFFIX: &str = ".ext3edit-partial";

/// Six letters and digits for a temporary name, from the time, the
/// process id and a counter (uniqueness comes from `create_new`).
fn random_tag(pid: u32, n: u64) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(nanos);
    h.write_u32(pid);
    h.write_u64(n);
    h.write_u64(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut x = h.finish();
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..6)
        .map(|_| {
            let c = ABC[(x % ABC.len() as u64) as usize] as char;
            x /= ABC.len() as u64;
            c
        })
        .collect()
}

/// True when `name` is one of our temporary names for `base`: the
/// `.BASE.XXXXXX.ext3edit-partial` of [`TempFile`] (and of the raw
/// `--output` copy), or the `.BASE.ext3edit-PID-NNN.tmp` of earlier
/// versions.
pub fn is_temp_name(name: &str, base: &str) -> bool {
    let Some(rest) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_prefix(base))
        .and_then(|n| n.strip_prefix('.'))
    else {
        return false;
    };
    if let Some(tag) = rest.strip_suffix(TEMP_SUFFIX) {
        return tag.len() == 6 && tag.bytes().all(|b| b.is_ascii_alphanumeric());
    }
    let Some(tail) = rest
        .strip_prefix("ext3edit-")
        .and_then(|r| r.strip_suffix(".tmp"))
    else {
        return false;
    };
    match tail.split_once('-') {
        Some((pid, n)) => {
            !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Remove the temporary files for `base` in `dir` that a process which
/// no longer runs left behind (killed by SIGKILL or a crash before it
/// could remove them); returns their names. Only our names
/// ([`is_temp_name`]), only regular files with one link that belong to
/// this user, and only those whose `flock` can be taken: a live writer
/// (this process or another, editing the same image or writing the same
/// `--output` at this moment) holds its file's lock from its creation
/// until after its rename. An empty file less than a minute old is left
/// alone too (a writer between `open` and `flock`).
pub fn remove_stale_temps(dir: &Path, base: &str) -> Vec<PathBuf> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut removed = Vec::new();
    let Some(me) = std::fs::metadata("/proc/self").ok().map(|m| m.uid()) else {
        return removed;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temp_name(name, base) {
            continue;
        }
        let path = e.path();
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !m.file_type().is_file() || m.nlink() != 1 || m.uid() != me {
            continue;
        }
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        let Ok(fm) = f.metadata() else { continue };
        if fm.dev() != m.dev() || fm.ino() != m.ino() || f.try_lock().is_err() {
            continue;
        }
        let young = fm
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < Duration::from_secs(60));
        if fm.len() == 0 && young {
            continue;
        }
        // Still the file we locked (names are never reused while it exists).
        match std::fs::symlink_metadata(&path) {
            Ok(now) if now.dev() == fm.dev() && now.ino() == fm.ino() => {}
            _ => continue,
        }
        if std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed.sort();
    removed
}

/// The mode (and owner) that the file a rename puts in place gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perms {
    /// A plain new file: 0666 under the umask.
    Plain,
    /// A new file made from a file of mode `mode` (`--output NEW`, pack,
    /// unpack): its read and write bits, always the owner's, under the
    /// umask, as `cp` without `-p` (the raw `--output` copy gets the same).
    From(u32),
    /// The same file edited in place: its whole mode, and its owner and
    /// group as far as the user may set them (as `cp -p`: a group the
    /// user is not in, or another owner without root, is not kept, and
    /// then setuid or setgid is dropped with it).
    Keep {
        /// st_mode.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

impl Perms {
    /// [`Perms::From`] the file `m` describes.
    pub fn from_meta(m: &std::fs::Metadata) -> Perms {
        use std::os::unix::fs::MetadataExt;
        Perms::From(m.mode())
    }

    /// [`Perms::Keep`] the file `m` describes.
    pub fn keep_meta(m: &std::fs::Metadata) -> Perms {
        use std::os::unix::fs::MetadataExt;
        Perms::Keep {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
        }
    }

    /// The mode bits a new file made from a file of mode `mode` gets.
    pub fn new_mode(mode: u32) -> u32 {
        ((mode & 0o666) | 0o600) & !umask()
    }

    /// Give `f` these permissions.
    pub fn apply(self, f: &File) -> io::Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = match self {
            Perms::Plain => 0o666 & !umask(),
            Perms::From(m) => Perms::new_mode(m),
            Perms::Keep { mode, uid, gid } => {
                let now = f.metadata()?;
                if now.uid() != uid || now.gid() != gid {
                    // Owner and group, else the group alone; EPERM is no
                    // error (cp -p).
                    if std::os::unix::fs::fchown(f, Some(uid), Some(gid)).is_err() {
                        let _ = std::os::unix::fs::fchown(f, None, Some(gid));
                    }
                }
                let now = f.metadata()?;
                let mut mode = mode & 0o7777;
                if now.uid() != uid {
                    mode &= !0o4000;
                }
                if now.gid() != gid {
                    mode &= !0o2000;
                }
                mode
            }
        };
        f.set_permissions(std::fs::Permissions::from_mode(mode))
    }
}

/// The process's umask (from /proc/self/status; 022 when unknown).
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
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
///
/// The rate is smoothed (an exponential average over about three seconds)
/// so that the time left does not jump with every lumpy update (a
/// parallel decoder hands over several chunks at once, a run of zeros
/// takes no time); [`ByteProgress::finish`] draws the finished bar at 100%
/// when the work is done, and a bar dropped unfinished (an error) is
/// cleared.
pub struct ByteProgress {
    label: String,
    total: u64,
    start: Instant,
    last: Instant,
    /// `done` at the last draw.
    last_done: u64,
    done: u64,
    /// Smoothed bytes per second (None until the first measure).
    rate: Option<f64>,
    drawn: bool,
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
            last_done: 0,
            done: 0,
            rate: None,
            drawn: false,
            on: io::stderr().is_terminal() && std::env::var_os("EXT3EDIT_NO_PROGRESS").is_none(),
        }
    }

    /// `done` bytes so far.
    pub fn update(&mut self, done: u64) {
        self.done = self.done.max(done);
        if !self.on {
            return;
        }
        let dt = self.last.elapsed();
        if dt < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let dt = dt.as_secs_f64();
        let inst = self.done.saturating_sub(self.last_done) as f64 / dt;
        self.last_done = self.done;
        self.rate = Some(smooth(self.rate, inst, dt));
        let line = self.line();
        self.draw(&line);
    }

    /// The bar as it is now.
    fn line(&self) -> String {
        let mib = self.done as f64 / 1048576.0;
        let rate = self.rate.unwrap_or(0.0);
        if self.total > 0 {
            let frac = (self.done as f64 / self.total as f64).min(1.0);
            let left = if rate > 0.0 {
                format!(
                    "{:.0}s left",
                    self.total.saturating_sub(self.done) as f64 / rate
                )
            } else {
                "?s left".into()
            };
            format!(
                "\r{}: {} {:5.1}% {:.0} MiB {:.0} MiB/s {left} ",
                self.label,
                bar(frac),
                frac * 100.0,
                mib,
                rate / 1048576.0,
            )
        } else {
            format!(
                "\r{}: {:.0} MiB {:.0} MiB/s ",
                self.label,
                mib,
                rate / 1048576.0
            )
        }
    }

    fn draw(&mut self, line: &str) {
        self.drawn = true;
        let mut e = io::stderr().lock();
        let _ = e.write_all(line.as_bytes());
        let _ = e.write_all(b"\x1b[K");
        let _ = e.flush();
    }

    /// The work is done: a bar that was shown ends at 100% with the time
    /// it took and the average rate, on its own line.
    pub fn finish(&mut self) {
        if self.on && self.drawn {
            let secs = self.start.elapsed().as_secs_f64().max(0.001);
            let total = if self.total > 0 {
                self.total
            } else {
                self.done
            };
            let line = format!(
                "\r{}: {} 100.0% {:.0} MiB in {:.1}s, {:.0} MiB/s\n",
                self.label,
                bar(1.0),
                total as f64 / 1048576.0,
                secs,
                total as f64 / 1048576.0 / secs
            );
            self.draw(&line);
        }
        self.on = false;
    }
}

impl Drop for ByteProgress {
    /// Unfinished (an error stopped the work): clear the bar's line.
    fn drop(&mut self) {
        if self.on && self.drawn {
            let _ = io::stderr().write_all(b"\r\x1b[K");
            let _ = io::stderr().flush();
        }
    }
}

/// The next smoothed rate from `old`, a new measure `inst` over `dt`
/// seconds: an exponential average whose weight halves in about 2 s.
fn smooth(old: Option<f64>, inst: f64, dt: f64) -> f64 {
    match old {
        None => inst,
        Some(r) => {
            let a = 1.0 - (-dt / 3.0).exp();
            r + a * (inst - r)
        }
    }
}

/// `[####    ]`, 30 wide, for a fraction done.
fn bar(frac: f64) -> String {
    let width = 30;
    let fill = ((frac.clamp(0.0, 1.0) * width as f64) as usize).min(width);
    format!("[{}{}]", "#".repeat(fill), " ".repeat(width - fill))
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
        self.show_progress();
        Ok(())
    }

    /// The bar: compressed bytes consumed when the decoder says, else the
    /// bytes written.
    fn show_progress(&mut self) {
        self.progress.update(if self.progress.total > 0 {
            self.input_done
        } else {
            self.pos
        });
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
        self.show_progress();
        Ok(())
    }

    /// Set the final length (the trailing holes) and end the progress bar
    /// (at 100%: everything was decompressed).
    pub fn finish(&mut self) -> Result<u64> {
        self.file
            .set_len(self.pos)
            .map_err(|e| Error::io(format!("writing {}", self.what), e))?;
        self.progress.finish();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Lumpy updates (a parallel decoder hands over work in bursts: 0 and
    /// 2 MB per 200 ms, 5 MB/s on average) give a rate, so a time left,
    /// that stays near the average instead of jumping between 0 and twice.
    #[test]
    fn smoothed_rate_is_steady_under_lumpy_updates() {
        let mut r = None;
        let mut seen = Vec::new();
        for i in 0..100 {
            let inst = if i % 2 == 0 { 0.0 } else { 10e6 };
            r = Some(smooth(r, inst, 0.2));
            seen.push(r.unwrap());
        }
        for &x in &seen[30..] {
            assert!((4.0e6..6.0e6).contains(&x), "{x}");
        }
    }

    #[test]
    fn temp_names_are_ours_only() {
        assert!(is_temp_name(".vm.gz.Ab3dE9.ext3edit-partial", "vm.gz"));
        assert!(is_temp_name(".vm.gz.ext3edit-123-0badf00d7.tmp", "vm.gz"));
        assert!(!is_temp_name(".vm.gz.Ab3dE9.ext3edit-partial", "vm"));
        assert!(!is_temp_name(".vm.gz.Ab3dE.ext3edit-partial", "vm.gz"));
        assert!(!is_temp_name(".vm.gz.Ab-dE9.ext3edit-partial", "vm.gz"));
        assert!(!is_temp_name("vm.gz.Ab3dE9.ext3edit-partial", "vm.gz"));
        assert!(!is_temp_name(".vm.gz.ext3edit-12x-0.tmp", "vm.gz"));
    }
}
