//! Copying between the host and the image: `put` (host to image) and
//! `get` (image to host), for single files and whole trees.
//!
//! `get` writes to what DEST is, as `cp` does (see [`get_file`]): a regular
//! file is replaced atomically through ext3edit's own temporary file, a
//! device, fifo or symlink target is written in place, and nothing on the
//! host is removed. `get -r` never follows a symbolic link of the image on
//! the host and never writes outside its destination: inside DEST a file
//! or symlink takes the place of what is there by a rename (never through
//! a host symlink), and a directory path that turns out to be a symlink is
//! refused.

use std::collections::HashMap;
use std::fs as hfs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::{Ino, Timestamp};
use crate::layout::FileType;
use crate::ops::NewFile;

/// Options for copying host files into the image.
///
/// What is created gets the source's permission bits (or `mode` for
/// regular files), owner `uid` and group `gid` (0 when not given). A
/// regular file that is overwritten keeps its own mode, owner, group and
/// extended attributes, except for what is given here (so `uid` alone
/// keeps the group), as `cp` onto an existing file does. Existing
/// directories are merged into and keep their mode and owner.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Permission bits for regular files (default: the source's for a new
    /// file, the old one's for an overwritten file).
    pub mode: Option<u16>,
    /// Owner (default: 0 for a new entry, kept for an overwritten file).
    pub uid: Option<u32>,
    /// Group (default: 0 for a new entry, kept for an overwritten file).
    pub gid: Option<u32>,
    /// Modification time for everything written (default: now).
    pub mtime: Option<Timestamp>,
}

/// A progress line on stderr, shown only when stderr is a terminal.
pub struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    bytes: u64,
    last: Instant,
    on: bool,
}

impl Progress {
    /// A progress counter over `total` items.
    pub fn new(label: &'static str, total: u64) -> Self {
        Progress {
            label,
            total,
            done: 0,
            bytes: 0,
            last: Instant::now(),
            on: std::io::stderr().is_terminal()
                && std::env::var_os("EXT3EDIT_NO_PROGRESS").is_none(),
        }
    }
    /// One more item of `bytes` bytes.
    pub fn tick(&mut self, bytes: u64) {
        self.done += 1;
        self.bytes += bytes;
        if self.on && self.last.elapsed() > Duration::from_millis(100) {
            self.last = Instant::now();
            self.draw();
        }
    }
    fn draw(&self) {
        if self.total == 0 {
            // Unknown total: a counter without a bar.
            // Never eprint!: it panics when stderr cannot be written.
            let mut e = std::io::stderr().lock();
            let _ = write!(
                e,
                "\r{}: {} files, {:.1} MiB",
                self.label,
                self.done,
                self.bytes as f64 / 1048576.0
            );
            let _ = e.flush();
            return;
        }
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
        let width = 30usize;
        let fill = (pct as usize * width / 100).min(width);
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r{} [{}{}] {}/{} files, {:.1} MiB",
            self.label,
            "#".repeat(fill),
            " ".repeat(width - fill),
            self.done,
            self.total,
            self.bytes as f64 / 1048576.0
        );
        let _ = e.flush();
    }
    /// Finish the line.
    pub fn finish(&self) {
        if self.on && self.done > 0 {
            self.draw();
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(unix)]
fn host_perm(m: &hfs::Metadata) -> u16 {
    use std::os::unix::fs::PermissionsExt;
    (m.permissions().mode() & 0o7777) as u16
}
#[cfg(not(unix))]
fn host_perm(m: &hfs::Metadata) -> u16 {
    if m.is_dir() {
        0o755
    } else if m.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

#[cfg(unix)]
fn name_bytes(n: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    n.as_bytes().to_vec()
}
#[cfg(not(unix))]
fn name_bytes(n: &std::ffi::OsStr) -> Vec<u8> {
    n.to_string_lossy().as_bytes().to_vec()
}

#[cfg(unix)]
fn os_name(b: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b).to_os_string()
}
#[cfg(not(unix))]
fn os_name(b: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(b).into_owned().into()
}

fn hio(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", p.display()), e)
}

/// Bytes of a host file that hold data: its size, or less when the file
/// is sparse on the host.
pub fn host_data_len(m: &hfs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        m.len().min(m.blocks().saturating_mul(512))
    }
    #[cfg(not(unix))]
    {
        m.len()
    }
}

/// A host tree, listed once (names sorted), with the metadata of each node
/// (links not followed).
pub struct HostNode {
    /// Host path.
    pub path: PathBuf,
    /// File name bytes.
    pub name: Vec<u8>,
    /// Metadata (lstat).
    pub meta: hfs::Metadata,
    /// Children of a directory.
    pub children: Vec<HostNode>,
}

impl HostNode {
    /// List a host path and everything below it.
    pub fn scan(p: &Path) -> Result<HostNode> {
        let meta = hfs::symlink_metadata(p).map_err(|e| hio("reading", p, e))?;
        let name = p.file_name().map(name_bytes).unwrap_or_default();
        Self::scan_with(p.to_path_buf(), name, meta, 0)
    }

    fn scan_with(
        path: PathBuf,
        name: Vec<u8>,
        meta: hfs::Metadata,
        depth: u32,
    ) -> Result<HostNode> {
        let mut children = Vec::new();
        if meta.is_dir() {
            if depth > 4096 {
                return Err(Error::Invalid(format!(
                    "{}: directory tree is too deep",
                    path.display()
                )));
            }
            let mut ents: Vec<_> = hfs::read_dir(&path)
                .map_err(|e| hio("listing", &path, e))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| hio("listing", &path, e))?;
            ents.sort_by_key(|e| e.file_name());
            for e in ents {
                // DirEntry::metadata is an lstat relative to the open directory.
                let m = e.metadata().map_err(|err| hio("reading", &e.path(), err))?;
                children.push(HostNode::scan_with(
                    e.path(),
                    name_bytes(&e.file_name()),
                    m,
                    depth + 1,
                )?);
            }
        }
        Ok(HostNode {
            path,
            name,
            meta,
            children,
        })
    }

    fn collect_files<'a>(&'a self, out: &mut Vec<(&'a Path, u64)>) {
        if self.meta.is_file() {
            out.push((&self.path, self.meta.len()));
        }
        for c in &self.children {
            c.collect_files(out);
        }
    }

    /// What the tree will need in the image: (inodes, blocks).
    pub fn needs(&self, fs: &Filesystem) -> (u64, u64) {
        let bs = fs.block_size() as u64;
        if self.meta.is_dir() {
            let mut acc = (1u64, 1u64);
            let mut name_bytes = 0u64;
            for c in &self.children {
                let (i, b) = c.needs(fs);
                acc.0 += i;
                acc.1 += b;
                name_bytes += 8 + c.name.len() as u64 + 3;
            }
            acc.1 += name_bytes.div_ceil(bs);
            acc
        } else if self.meta.is_file() {
            (1, fs.blocks_needed(host_data_len(&self.meta).div_ceil(bs)))
        } else if self.meta.file_type().is_symlink() {
            let len = hfs::read_link(&self.path)
                .map(|t| name_bytes(t.as_os_str()).len())
                .unwrap_or(0);
            (1, if len >= 60 { 1 } else { 0 })
        } else {
            (1, 0)
        }
    }
}

/// Fail early with a clear message when the image lacks room.
pub fn check_room(fs: &Filesystem, inodes: u64, blocks: u64, what: &str) -> Result<()> {
    let free_b = fs.allocatable_blocks();
    let free_i = fs.free_inodes() as u64;
    if blocks > free_b {
        return Err(Error::NoSpace(format!(
            "{what} needs about {blocks} blocks of {} bytes, the image has {free_b} free",
            fs.block_size()
        )));
    }
    if inodes > free_i {
        return Err(Error::NoSpace(format!(
            "{what} needs {inodes} inodes, the image has {free_i} free"
        )));
    }
    Ok(())
}

/// Copy one host file (following a symlink) to `name` in `parent`,
/// overwriting an existing regular file of that name.
pub fn put_file(
    fs: &mut Filesystem,
    src: &Path,
    parent: Ino,
    name: &[u8],
    opts: &PutOptions,
) -> Result<Ino> {
    let m = hfs::metadata(src).map_err(|e| hio("reading", src, e))?;
    if m.is_dir() {
        return Err(Error::IsADirectory(format!(
            "{} (use -r to copy a directory)",
            src.display()
        )));
    }
    let mut f = hfs::File::open(src).map_err(|e| hio("opening", src, e))?;
    let attrs = attrs_at(fs, parent, name, opts, host_perm(&m))?;
    put_reader_sized(
        fs,
        &mut f,
        host_data_len(&m),
        Some(m.len()),
        parent,
        name,
        &attrs,
    )
}

/// Create or overwrite `name` in `parent` from a reader of unknown size.
///
/// The stream is first copied to an anonymous temporary file (in
/// `$TMPDIR`): its size is then known, the room for it is checked before
/// the first byte reaches the image, and a stream too big for the image
/// leaves the image untouched.
pub fn put_reader(
    fs: &mut Filesystem,
    src: &mut dyn std::io::Read,
    parent: Ino,
    name: &[u8],
    attrs: &NewFile,
) -> Result<Ino> {
    use std::io::{Seek, SeekFrom};
    let spool_err = |e| Error::io("spooling the input to a temporary file in $TMPDIR", e);
    let mut spool = tempfile::tempfile().map_err(spool_err)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading the input", e)),
        };
        spool.write_all(&buf[..n]).map_err(spool_err)?;
        len += n as u64;
    }
    drop(buf);
    spool.seek(SeekFrom::Start(0)).map_err(spool_err)?;
    put_reader_sized(fs, &mut spool, len, Some(len), parent, name, attrs)
}

/// [`put_reader`] from this process's standard input. When stdin is a
/// regular file (`< file`), its size is known and it is read in place;
/// otherwise (a pipe, a terminal) it is spooled first.
pub fn put_stdin(fs: &mut Filesystem, parent: Ino, name: &[u8], attrs: &NewFile) -> Result<Ino> {
    #[cfg(unix)]
    {
        use std::io::{Seek, SeekFrom};
        use std::os::fd::AsFd;
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("reading stdin", e))?;
        let mut f = hfs::File::from(fd);
        if let Ok(m) = f.metadata() {
            if m.is_file() {
                let pos = f
                    .stream_position()
                    .map_err(|e| Error::io("reading stdin", e))?;
                let len = m.len().saturating_sub(pos);
                let r = put_reader_sized(fs, &mut f, len, Some(len), parent, name, attrs);
                // Leave stdin's offset where the data ended, as cat would.
                let _ = f.seek(SeekFrom::Start(pos + len));
                return r;
            }
        }
    }
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    put_reader(fs, &mut lock, parent, name, attrs)
}

/// Create or overwrite `name` in `parent` from a reader; `data_len` is
/// what the space check assumes, `size` (if known) where reading stops.
pub fn put_reader_sized(
    fs: &mut Filesystem,
    src: &mut dyn std::io::Read,
    data_len: u64,
    size: Option<u64>,
    parent: Ino,
    name: &[u8],
    attrs: &NewFile,
) -> Result<Ino> {
    let size_hint = data_len;
    let dir = fs.read_inode(parent)?;
    let existing = fs.lookup(&dir, name)?;
    let bs = fs.block_size() as u64;
    check_room(
        fs,
        1,
        fs.blocks_needed(size_hint.div_ceil(bs)) + 1,
        "the file",
    )?;
    match existing {
        Some(e) => {
            let i = fs.read_inode(e.ino)?;
            if i.is_dir() {
                return Err(Error::IsADirectory(
                    String::from_utf8_lossy(name).into_owned(),
                ));
            }
            if !i.is_reg() {
                // Replace a symlink or node with the file.
                fs.unlink(parent, name)?;
                return fs.create_file_sized(parent, name, attrs, src, size);
            }
            fs.overwrite_file_sized(e.ino, attrs, src, size)?;
            Ok(e.ino)
        }
        None => fs.create_file_sized(parent, name, attrs, src, size),
    }
}

/// Attributes of a new entry: `perm`, and the owner given (default 0:0).
fn attrs_for(opts: &PutOptions, perm: u16) -> NewFile {
    NewFile {
        perm,
        uid: opts.uid.unwrap_or(0),
        gid: opts.gid.unwrap_or(0),
        mtime: opts.mtime,
    }
}

/// Attributes for an overwritten regular file: its own mode, owner and
/// group, except for what `opts` gives.
fn kept_attrs(old: &crate::Inode, opts: &PutOptions) -> NewFile {
    NewFile {
        perm: opts.mode.unwrap_or(old.perm()),
        uid: opts.uid.unwrap_or(old.uid()),
        gid: opts.gid.unwrap_or(old.gid()),
        mtime: opts.mtime,
    }
}

/// The attributes a file written as `name` in `parent` should get: an
/// existing regular file keeps its mode, owner and group (see
/// [`PutOptions`]); otherwise a new file gets `opts.mode` or `src_perm`
/// and the owner given. Pass the result to [`put_reader`].
pub fn attrs_at(
    fs: &Filesystem,
    parent: Ino,
    name: &[u8],
    opts: &PutOptions,
    src_perm: u16,
) -> Result<NewFile> {
    let dir = fs.read_inode(parent)?;
    if let Some(e) = fs.lookup(&dir, name)? {
        let old = fs.read_inode(e.ino)?;
        if old.is_reg() {
            return Ok(kept_attrs(&old, opts));
        }
    }
    Ok(attrs_for(opts, opts.mode.unwrap_or(src_perm)))
}

#[cfg(unix)]
fn host_id(m: &hfs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    if m.nlink() > 1 {
        Some((m.dev(), m.ino()))
    } else {
        None
    }
}
#[cfg(not(unix))]
fn host_id(_m: &hfs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(unix)]
fn host_special(m: &hfs::Metadata) -> Option<(FileType, (u32, u32))> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let ft = m.file_type();
    let rdev = m.rdev();
    let major = (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32;
    let minor = ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32;
    if ft.is_char_device() {
        Some((FileType::CharDevice, (major, minor)))
    } else if ft.is_block_device() {
        Some((FileType::BlockDevice, (major, minor)))
    } else if ft.is_fifo() {
        Some((FileType::Fifo, (0, 0)))
    } else if ft.is_socket() {
        Some((FileType::Socket, (0, 0)))
    } else {
        None
    }
}
#[cfg(not(unix))]
fn host_special(_m: &hfs::Metadata) -> Option<(FileType, (u32, u32))> {
    None
}

/// Copy a host tree (directory, file, symlink or node; links not followed)
/// to `name` in `parent`, merging into an existing directory of that name.
/// Keeps modes, symlinks and hard links (within the tree).
///
/// Merging: an existing directory is kept as it is (mode and owner too)
/// and receives the entries; a symlink of the image where the tree has a
/// directory is followed (inside the image) when it leads to a directory,
/// and stays a link; an existing regular file is overwritten keeping its
/// mode, owner and attributes (see [`PutOptions`]); an existing symlink or
/// node is replaced by what the tree has. A directory of the tree where
/// the image has something else (or the reverse) is found before anything
/// is written, and nothing is copied.
pub fn put_tree(
    fs: &mut Filesystem,
    src: &Path,
    parent: Ino,
    name: &[u8],
    opts: &PutOptions,
) -> Result<()> {
    let tree = HostNode::scan(src)?;
    let chain = fs.dir_chain(parent)?;
    check_node(fs, &tree, &chain, name)?;
    copy_tree(fs, &tree, src, |fs, tree, links, progress, pre| {
        put_node(fs, tree, &chain, name, opts, links, progress, pre)
    })
}

/// Copy the contents of host directory `src` into image directory `dir`
/// (as `cp -r SRC/. DEST` does), merging as [`put_tree`] does.
pub fn put_tree_into(fs: &mut Filesystem, src: &Path, dir: Ino, opts: &PutOptions) -> Result<()> {
    let tree = HostNode::scan(src)?;
    if !tree.meta.is_dir() {
        return Err(Error::NotADirectory(src.display().to_string()));
    }
    if !fs.read_inode(dir)?.is_dir() {
        return Err(Error::NotADirectory(format!("inode {dir}")));
    }
    let chain = fs.dir_chain(dir)?;
    for c in &tree.children {
        check_node(fs, c, &chain, &c.name)?;
    }
    copy_tree(fs, &tree, src, |fs, tree, links, progress, pre| {
        for c in &tree.children {
            put_node(fs, c, &chain, &c.name, opts, links, progress, pre)?;
        }
        Ok(())
    })
}

/// Room check, read-ahead and progress around one tree copy.
fn copy_tree(
    fs: &mut Filesystem,
    tree: &HostNode,
    src: &Path,
    put: impl FnOnce(
        &mut Filesystem,
        &HostNode,
        &mut HashMap<(u64, u64), Ino>,
        &mut Progress,
        &mut Prefetch,
    ) -> Result<()>,
) -> Result<()> {
    let (inodes, blocks) = tree.needs(fs);
    check_room(fs, inodes, blocks, &format!("copying {}", src.display()))?;
    let mut links = HashMap::new();
    let mut progress = Progress::new("put", inodes);
    let mut files = Vec::new();
    tree.collect_files(&mut files);
    let r = std::thread::scope(|scope| {
        let mut pre = Prefetch::start(scope, &files);
        put(fs, tree, &mut links, &mut progress, &mut pre)
    });
    progress.finish();
    r
}

/// What the image has where a host node goes.
enum Slot {
    /// Nothing of that name.
    Absent,
    /// A directory (possibly reached through a symlink): the chain of
    /// directories from the root down to it.
    Dir(Vec<Ino>),
    /// Something else (not followed).
    Other(crate::dir::DirEntry),
}

/// Look `name` up in the last directory of `chain`; with `follow`, a
/// symlink that leads (inside the image) to a directory is a [`Slot::Dir`].
fn slot(fs: &Filesystem, chain: &[Ino], name: &[u8], follow: bool) -> Result<Slot> {
    let parent = *chain.last().unwrap();
    // A directory we created in this run: its name set answers at once.
    if let Some(names) = fs.fresh_dirs.get(&parent) {
        if !names.contains(name) {
            return Ok(Slot::Absent);
        }
    }
    let dir = fs.read_inode(parent)?;
    let Some(e) = fs.lookup(&dir, name)? else {
        return Ok(Slot::Absent);
    };
    let inode = fs.read_inode(e.ino)?;
    if inode.is_dir() {
        let mut c = chain.to_vec();
        c.push(e.ino);
        return Ok(Slot::Dir(c));
    }
    if follow && inode.is_symlink() {
        match fs.resolve_chain(chain.to_vec(), name, true) {
            Ok(c) if fs.read_inode(*c.last().unwrap())?.is_dir() => return Ok(Slot::Dir(c)),
            Ok(_) | Err(Error::NotFound(_)) | Err(Error::NotADirectory(_)) => {}
            Err(Error::Invalid(m)) => {
                return Err(Error::Invalid(format!(
                    "{}: {m}",
                    String::from_utf8_lossy(name)
                )))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Slot::Other(e))
}

/// The image path of the last directory of `chain` (for messages).
fn chain_path(fs: &Filesystem, chain: &[Ino]) -> Result<String> {
    let mut p = String::new();
    for w in chain.windows(2) {
        let dir = fs.read_inode(w[0])?;
        let name = fs
            .read_dir(&dir)?
            .into_iter()
            .find(|e| e.ino == w[1] && e.name != b"." && e.name != b"..")
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .unwrap_or_else(|| format!("<inode {}>", w[1]));
        p.push('/');
        p.push_str(&name);
    }
    if p.is_empty() {
        p.push('/');
    }
    Ok(p)
}

/// Before writing: a directory of the tree must meet a directory (or
/// nothing) in the image, and a non-directory must not meet a directory.
/// Errors name the host path and the image path below the target.
fn check_node(fs: &Filesystem, node: &HostNode, chain: &[Ino], name: &[u8]) -> Result<()> {
    let shown = || -> Result<String> {
        let mut p = chain_path(fs, chain)?;
        if !p.ends_with('/') {
            p.push('/');
        }
        p.push_str(&String::from_utf8_lossy(name));
        Ok(p)
    };
    if node.meta.is_dir() {
        match slot(fs, chain, name, true)? {
            Slot::Absent => Ok(()),
            Slot::Dir(c) => node
                .children
                .iter()
                .try_for_each(|ch| check_node(fs, ch, &c, &ch.name)),
            Slot::Other(e) => {
                let inode = fs.read_inode(e.ino)?;
                let what = if inode.is_symlink() {
                    format!(
                        "a symlink to {:?} that leads to no directory",
                        String::from_utf8_lossy(&fs.read_link(&inode)?)
                    )
                } else {
                    format!("a {}", inode.file_type().name())
                };
                Err(Error::Invalid(format!(
                    "{}: the image has {what} where {} is a directory; nothing was copied",
                    shown()?,
                    node.path.display()
                )))
            }
        }
    } else {
        match slot(fs, chain, name, false)? {
            Slot::Dir(_) => Err(Error::Invalid(format!(
                "{}: the image has a directory where {} is not one; nothing was copied",
                shown()?,
                node.path.display(),
            ))),
            _ => Ok(()),
        }
    }
}

/// Files up to this size are read ahead by helper threads.
const PREFETCH_MAX: u64 = 1 << 20;
const PREFETCH_THREADS: usize = 2;
/// Files handed over at once by a read-ahead thread.
const PREFETCH_CHUNK: usize = 64;

/// Reads small host files ahead, in the order `put_node` visits them, on
/// helper threads: the host's open/read/close calls then overlap with the
/// work on the image. Thread k reads chunks k, k+N, k+2N... of 64 files
/// into its own bounded channel, so order is kept and memory stays
/// bounded.
type Fetched = Option<std::io::Result<Vec<u8>>>;

struct Prefetch {
    rxs: Vec<std::sync::mpsc::Receiver<Vec<Fetched>>>,
    chunk: std::collections::VecDeque<Fetched>,
    next_chunk: usize,
}

fn read_sized(p: &Path, size: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = hfs::File::open(p)?;
    // Room for a whole block (up to 4 KiB) so that a small file's buffer
    // can become its staged block as it is.
    let mut v = Vec::with_capacity((size as usize).div_ceil(4096).max(1) * 4096);
    v.resize(size as usize, 0);
    let mut got = 0;
    while got < v.len() {
        match f.read(&mut v[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    v.truncate(got);
    Ok(v)
}

impl Prefetch {
    fn start<'s, 'a: 's>(
        scope: &'s std::thread::Scope<'s, '_>,
        files: &'a [(&'a Path, u64)],
    ) -> Prefetch {
        let n = if files.len() > 64 && std::env::var_os("EXT3EDIT_NO_PREFETCH").is_none() {
            PREFETCH_THREADS
        } else {
            0
        };
        let mut rxs = Vec::new();
        for k in 0..n {
            // Chunks of files, not single files: one hand-over per chunk
            // keeps thread switches rare.
            let (tx, rx) = std::sync::mpsc::sync_channel(4);
            rxs.push(rx);
            scope.spawn(move || {
                for chunk in files.chunks(PREFETCH_CHUNK).skip(k).step_by(n) {
                    let items: Vec<Fetched> = chunk
                        .iter()
                        .map(|(p, size)| (*size <= PREFETCH_MAX).then(|| read_sized(p, *size)))
                        .collect();
                    if tx.send(items).is_err() {
                        return;
                    }
                }
            });
        }
        Prefetch {
            rxs,
            chunk: Default::default(),
            next_chunk: 0,
        }
    }

    /// The content of the next regular file in visiting order, if it was
    /// read ahead (None: read it yourself).
    fn take(&mut self) -> Fetched {
        if self.rxs.is_empty() {
            return None;
        }
        if self.chunk.is_empty() {
            let k = self.next_chunk % self.rxs.len();
            self.next_chunk += 1;
            self.chunk = self.rxs[k].recv().ok()?.into();
        }
        self.chunk.pop_front().flatten()
    }
}

#[allow(clippy::too_many_arguments)]
fn put_node(
    fs: &mut Filesystem,
    node: &HostNode,
    chain: &[Ino],
    name: &[u8],
    opts: &PutOptions,
    links: &mut HashMap<(u64, u64), Ino>,
    progress: &mut Progress,
    pre: &mut Prefetch,
) -> Result<()> {
    let src = &node.path;
    let m = &node.meta;
    let perm = host_perm(m);
    let parent = *chain.last().unwrap();
    let at = |e: Error| e.at(&src.display().to_string());
    if m.is_dir() {
        // An existing directory (or a symlink leading to one) is merged
        // into and keeps its mode and owner.
        let here = match slot(fs, chain, name, true)? {
            Slot::Dir(c) => c,
            Slot::Other(_) => {
                return Err(Error::Exists(format!(
                    "{} (not a directory in the image)",
                    String::from_utf8_lossy(name)
                )))
            }
            Slot::Absent => {
                let me = fs.mkdir(parent, name, &attrs_for(opts, perm)).map_err(at)?;
                let mut c = chain.to_vec();
                c.push(me);
                c
            }
        };
        progress.tick(0);
        fs.commit_if_large()?;
        for c in &node.children {
            put_node(fs, c, &here, &c.name, opts, links, progress, pre)?;
        }
        return Ok(());
    }
    let existing = match slot(fs, chain, name, false)? {
        Slot::Absent => None,
        Slot::Other(e) => Some(e),
        Slot::Dir(_) => {
            return Err(Error::IsADirectory(format!(
                "{} exists in the image as a directory",
                String::from_utf8_lossy(name)
            )))
        }
    };
    if m.is_file() {
        let ahead = pre.take();
        if let Some(id) = host_id(m) {
            if let Some(&ino) = links.get(&id) {
                if existing.is_some() {
                    fs.unlink(parent, name)?;
                }
                progress.tick(0);
                return fs.link(ino, parent, name).map_err(at);
            }
        }
        let ahead = match (ahead, &existing) {
            (Some(Ok(data)), None) => {
                // Read ahead and new: hand the bytes over as they are.
                let attrs = attrs_for(opts, opts.mode.unwrap_or(perm));
                let len = data.len() as u64;
                let ino = fs
                    .create_file_from_vec(parent, name, &attrs, data)
                    .map_err(at)?;
                if let Some(id) = host_id(m) {
                    links.insert(id, ino);
                }
                progress.tick(len);
                fs.commit_if_large()?;
                return Ok(());
            }
            (a, _) => a,
        };
        let mut f: Box<dyn std::io::Read> = match ahead {
            Some(Ok(data)) => Box::new(std::io::Cursor::new(data)),
            Some(Err(e)) => return Err(hio("reading", src, e)),
            None => Box::new(hfs::File::open(src).map_err(|e| hio("opening", src, e))?),
        };
        let size = Some(m.len());
        let old = match &existing {
            Some(e) => Some(fs.read_inode(e.ino)?),
            None => None,
        };
        let ino = match (existing, old) {
            (Some(e), Some(old)) if old.is_reg() && old.links() == 1 => {
                // Overwritten in place: mode, owner and attributes stay.
                fs.overwrite_file_sized(e.ino, &kept_attrs(&old, opts), &mut f, size)
                    .map_err(at)?;
                e.ino
            }
            (Some(_), Some(old)) => {
                // A file with other hard links is replaced (the other
                // names keep the old content), with the old mode and owner;
                // a symlink or node is replaced by a new file.
                let attrs = if old.is_reg() {
                    kept_attrs(&old, opts)
                } else {
                    attrs_for(opts, opts.mode.unwrap_or(perm))
                };
                fs.unlink(parent, name)?;
                fs.create_file_sized(parent, name, &attrs, &mut f, size)
                    .map_err(at)?
            }
            _ => fs
                .create_file_sized(
                    parent,
                    name,
                    &attrs_for(opts, opts.mode.unwrap_or(perm)),
                    &mut f,
                    size,
                )
                .map_err(at)?,
        };
        if let Some(id) = host_id(m) {
            links.insert(id, ino);
        }
        progress.tick(m.len());
        // A tree too big for one journal transaction goes in several, each
        // ending between two files (a consistent filesystem).
        fs.commit_if_large()?;
        return Ok(());
    }
    if existing.is_some() {
        fs.unlink(parent, name)?;
    }
    if m.file_type().is_symlink() {
        let t = hfs::read_link(src).map_err(|e| hio("reading link", src, e))?;
        fs.symlink(
            parent,
            name,
            &name_bytes(t.as_os_str()),
            &attrs_for(opts, 0o777),
        )
        .map_err(at)?;
    } else if let Some((ft, rdev)) = host_special(m) {
        fs.mknod(parent, name, ft, rdev, &attrs_for(opts, perm))
            .map_err(at)?;
    } else {
        return Err(Error::Unsupported(format!(
            "{}: unknown file type",
            src.display()
        )));
    }
    progress.tick(0);
    Ok(())
}

/// Options for copying image files to the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct GetOptions {
    /// Keep the whole mode (setuid, setgid, sticky; the umask is not
    /// applied) and the image's owner and group where the host allows it
    /// (as root), as `cp -p` and `tar -p` do. Without it, new files and
    /// directories get the image's permission bits without setuid, setgid
    /// and sticky, less the process umask, and keep the user's ownership.
    pub preserve: bool,
}

/// Write one image file to a host path, to what DEST is, as `cp` does:
///
/// - a missing DEST or a regular file is replaced atomically: the content
///   goes to a new temporary file in DEST's directory (created exclusively,
///   random name, not following symlinks), which is then renamed over DEST;
///   holes stay holes;
/// - a character or block device, a fifo, or the target of a symlink is
///   opened and written in place (a regular target is truncated first, as
///   `cp` does; a device or fifo is written plainly, holes as zeros);
/// - a dangling symlink is refused, as GNU cp does.
///
/// Nothing on the host is removed but ext3edit's own temporary file.
pub fn get_file(fs: &Filesystem, ino: Ino, dest: &Path, opts: &GetOptions) -> Result<()> {
    let inode = fs.read_inode(ino)?;
    if inode.is_dir() {
        return Err(Error::IsADirectory(format!(
            "inode {ino} (use -r to copy a directory)"
        )));
    }
    if !inode.is_reg() && !inode.is_symlink() {
        return Err(Error::Invalid(format!(
            "inode {ino} is a {}, not a regular file: nothing to copy",
            inode.file_type().name()
        )));
    }
    let meta = match hfs::symlink_metadata(dest) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(hio("reading", dest, e)),
    };
    let Some(m) = meta else {
        return replace_file(fs, &inode, dest, opts, false);
    };
    if m.is_dir() {
        return Err(Error::IsADirectory(dest.display().to_string()));
    }
    if m.is_file() {
        return replace_file(fs, &inode, dest, opts, true);
    }
    if m.file_type().is_symlink() {
        match hfs::metadata(dest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Invalid(format!(
                    "{}: not writing through a dangling symlink",
                    dest.display()
                )))
            }
            Err(e) => return Err(hio("reading", dest, e)),
            Ok(t) if t.is_dir() => return Err(Error::IsADirectory(dest.display().to_string())),
            Ok(_) => {}
        }
    } else if is_socket(&m) {
        return Err(Error::Invalid(format!(
            "{}: is a socket; not writing to it",
            dest.display()
        )));
    }
    write_in_place(fs, &inode, dest, opts)
}

#[cfg(unix)]
fn is_socket(m: &hfs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_socket()
}
#[cfg(not(unix))]
fn is_socket(_m: &hfs::Metadata) -> bool {
    false
}

/// Open DEST (following a symlink) without creating it and write the
/// content there: a regular file is truncated and written with its holes,
/// anything else (device, fifo, pipe) gets the bytes in order. Its mode,
/// owner and times change only with `preserve`, and only on a regular file.
fn write_in_place(
    fs: &Filesystem,
    inode: &crate::Inode,
    dest: &Path,
    opts: &GetOptions,
) -> Result<()> {
    let f = hfs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dest)
        .map_err(|e| hio("opening", dest, e))?;
    let m = f.metadata().map_err(|e| hio("reading", dest, e))?;
    if !m.is_file() {
        return write_plain(fs, inode, &f, dest);
    }
    write_sparse(fs, inode, &f, dest)?;
    if opts.preserve {
        set_host_meta(&f, inode, opts);
    }
    Ok(())
}

/// The content in order, holes as zeros, for a destination that cannot
/// seek (fifo, pipe, character device).
fn write_plain(fs: &Filesystem, inode: &crate::Inode, f: &hfs::File, dest: &Path) -> Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let zeros = vec![0u8; 64 * 1024];
    let mut pos = 0u64;
    let fill = |w: &mut std::io::BufWriter<&hfs::File>, upto: u64, pos: &mut u64| {
        while *pos < upto {
            let n = ((upto - *pos) as usize).min(zeros.len());
            w.write_all(&zeros[..n])
                .map_err(|e| hio("writing", dest, e))?;
            *pos += n as u64;
        }
        Ok::<(), Error>(())
    };
    let size = fs.for_each_data(inode, |off, data| {
        fill(&mut w, off, &mut pos)?;
        w.write_all(data).map_err(|e| hio("writing", dest, e))?;
        pos = off + data.len() as u64;
        Ok(())
    })?;
    fill(&mut w, size, &mut pos)?;
    w.flush().map_err(|e| hio("writing", dest, e))
}

/// A fresh name in `dir` for ext3edit's temporary file: random, so that no
/// one can prepare it in advance.
fn temp_name(dir: &Path) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    dir.join(format!(".ext3edit-{:016x}.tmp", h.finish()))
}

/// Make something new under a fresh temporary name in `dir` with `make`
/// (which must fail with `AlreadyExists` when the name is taken).
fn make_temp<T>(
    dir: &Path,
    mut make: impl FnMut(&Path) -> std::io::Result<T>,
) -> std::io::Result<(PathBuf, T)> {
    let mut last = None;
    for _ in 0..64 {
        let p = temp_name(dir);
        match make(&p) {
            Ok(t) => return Ok((p, t)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// DEST's directory ("." for a bare name).
fn parent_dir(dest: &Path) -> Result<PathBuf> {
    if dest.file_name().is_none() {
        return Err(Error::Invalid(format!(
            "{}: not a file name",
            dest.display()
        )));
    }
    Ok(match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

/// Write a new regular file beside DEST and rename it over DEST (which is
/// missing, a regular file, or in a tree copy anything but a directory:
/// the rename replaces the name, it never follows a symlink). With
/// `in_place_ok` (DEST is an existing regular file named by the user), a
/// directory where no temporary file may be created falls back to writing
/// DEST in place.
fn replace_file(
    fs: &Filesystem,
    inode: &crate::Inode,
    dest: &Path,
    opts: &GetOptions,
    in_place_ok: bool,
) -> Result<()> {
    let dir = parent_dir(dest)?;
    // Without preserve, the kernel applies the umask to the mode given at
    // creation; with it, the file starts private and gets its whole mode
    // (after the owner) at the end.
    let create_mode = if opts.preserve {
        0o600
    } else {
        (inode.perm() & 0o777) as u32
    };
    let made = make_temp(&dir, |p| {
        let mut oo = hfs::OpenOptions::new();
        oo.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            oo.mode(create_mode).custom_flags(libc::O_NOFOLLOW);
        }
        #[cfg(not(unix))]
        let _ = create_mode;
        oo.open(p)
    });
    let (tmp, f) = match made {
        Ok(x) => x,
        // A writable file in a directory we may not write: write the file
        // in place, as cp does, rather than fail.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && in_place_ok => {
            return write_in_place(fs, inode, dest, opts)
        }
        Err(e) => return Err(hio("creating", dest, e)),
    };
    let done = write_sparse(fs, inode, &f, dest).and_then(|()| {
        set_host_meta(&f, inode, opts);
        drop(f);
        hfs::rename(&tmp, dest).map_err(|e| hio("replacing", dest, e))
    });
    if done.is_err() {
        let _ = hfs::remove_file(&tmp);
    }
    done
}

fn write_sparse(fs: &Filesystem, inode: &crate::Inode, f: &hfs::File, dest: &Path) -> Result<()> {
    let size = fs.for_each_data(inode, |off, data| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            f.write_all_at(data, off)
                .map_err(|e| hio("writing", dest, e))
        }
        #[cfg(not(unix))]
        {
            use std::io::{Seek, SeekFrom};
            let mut f = f;
            f.seek(SeekFrom::Start(off))
                .map_err(|e| hio("writing", dest, e))?;
            f.write_all(data).map_err(|e| hio("writing", dest, e))
        }
    })?;
    f.set_len(size).map_err(|e| hio("writing", dest, e))
}

fn system_time(t: Timestamp) -> Option<std::time::SystemTime> {
    if t.secs >= 0 {
        std::time::UNIX_EPOCH.checked_add(Duration::new(t.secs as u64, t.nanos.min(999_999_999)))
    } else {
        std::time::UNIX_EPOCH
            .checked_sub(Duration::from_secs(t.secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(t.nanos.min(999_999_999) as u64))
    }
}

/// The image's access and modification times.
fn file_times(inode: &crate::Inode) -> hfs::FileTimes {
    let mut ft = hfs::FileTimes::new();
    if let Some(t) = system_time(inode.atime()) {
        ft = ft.set_accessed(t);
    }
    if let Some(t) = system_time(inode.mtime()) {
        ft = ft.set_modified(t);
    }
    ft
}

/// Times, and with `preserve` owner and whole mode, of an open file or
/// directory. Without `preserve` the mode stays as created (the kernel
/// applied the umask then). Best effort, as `cp -p`: where the owner
/// cannot be set, setuid and setgid are dropped.
fn set_host_meta(f: &hfs::File, inode: &crate::Inode, opts: &GetOptions) {
    let _ = f.set_times(file_times(inode));
    if !opts.preserve {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut perm = inode.perm() as u32;
        if std::os::unix::fs::fchown(f, Some(inode.uid()), Some(inode.gid())).is_err() {
            perm &= !0o6000;
        }
        let _ = f.set_permissions(hfs::Permissions::from_mode(perm));
    }
}

/// Copy an image tree to `dest` on the host. Returns warnings for things
/// that cannot be made without privileges (device nodes) and for directory
/// entries whose file type disagrees with their inode's.
///
/// Inside DEST nothing on the host is followed: a file or symlink takes the
/// place of what is there by a rename (never through a host symlink), and a
/// directory path that is a symlink on the host is refused. A top-level
/// regular file is written to what DEST is, as [`get_file`] does. Each
/// directory gets the image's access and modification times once its
/// contents are written.
pub fn get_tree(fs: &Filesystem, ino: Ino, dest: &Path, opts: &GetOptions) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut links: LinkMap = HashMap::new();
    let mut progress = Progress::new("get", 0);
    let mut seen = std::collections::HashSet::new();
    let mut cx = GetCx {
        fs,
        opts,
        links: &mut links,
        warnings: &mut warnings,
        progress: &mut progress,
        seen: &mut seen,
        depth: 0,
    };
    get_tree_inner(&mut cx, ino, None, dest)?;
    progress.finish();
    Ok(warnings)
}

/// For `get -r`: where an inode with several links was copied first, and
/// the host file made there (device, inode).
type LinkMap = HashMap<Ino, (PathBuf, Option<(u64, u64)>)>;

struct GetCx<'a> {
    fs: &'a Filesystem,
    opts: &'a GetOptions,
    /// Where each inode with several links was copied first, and the host
    /// file made there (device, inode): the other links become hard links
    /// to it while that path still holds that file.
    links: &'a mut LinkMap,
    warnings: &'a mut Vec<String>,
    progress: &'a mut Progress,
    seen: &'a mut std::collections::HashSet<Ino>,
    /// Directories between the top and here (the walk recurses).
    depth: usize,
}

/// How deep `get -r` goes. Host paths stop near 4096 bytes (2,048 levels
/// of one-letter names), and the walk recurses: deeper trees are refused
/// with one line instead of overflowing the stack.
const GET_MAX_DEPTH: usize = 1024;

/// (device, inode) of a host path, links not followed.
#[cfg(unix)]
fn host_file_id(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    hfs::symlink_metadata(p).ok().map(|m| (m.dev(), m.ino()))
}
#[cfg(not(unix))]
fn host_file_id(_p: &Path) -> Option<(u64, u64)> {
    None
}

/// Refuse a directory in the way of a non-directory inside the tree.
fn not_a_dir_in_the_way(dest: &Path) -> Result<()> {
    match hfs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => Err(Error::Exists(format!(
            "{} (a directory is in the way)",
            dest.display()
        ))),
        _ => Ok(()),
    }
}

/// A file type in words, for messages.
fn type_words(ft: FileType) -> &'static str {
    match ft {
        FileType::Regular => "regular file",
        FileType::Directory => "directory",
        FileType::CharDevice => "character device",
        FileType::BlockDevice => "block device",
        other => other.name(),
    }
}

fn get_tree_inner(
    cx: &mut GetCx,
    ino: Ino,
    entry_type: Option<FileType>,
    dest: &Path,
) -> Result<()> {
    let fs = cx.fs;
    let inode = fs.read_inode(ino)?;
    cx.progress
        .tick(if inode.is_reg() { inode.size() } else { 0 });
    let ft = inode.file_type();
    // The inode's mode says what the file is; a directory entry's type
    // byte that disagrees (a corrupt image) is reported, not trusted.
    if let Some(et) = entry_type {
        if et != FileType::Unknown && et != ft {
            cx.warnings.push(format!(
                "{}: the directory entry says {} but inode {ino} is a {}; copied as a {}",
                dest.display(),
                type_words(et),
                type_words(ft),
                type_words(ft)
            ));
        }
    }
    match ft {
        FileType::Directory => {
            if !cx.seen.insert(ino) {
                return Err(Error::corrupt(format!("directory loop at inode {ino}")));
            }
            match hfs::symlink_metadata(dest) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::Invalid(format!(
                        "{} is a symlink on the host; refusing to write through it",
                        dest.display()
                    )))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::Exists(format!(
                        "{} (not a directory)",
                        dest.display()
                    )))
                }
                Err(_) => {
                    let mut b = hfs::DirBuilder::new();
                    #[cfg(unix)]
                    {
                        // The umask applies; the owner keeps rwx so that the
                        // contents can be written (and the copy removed).
                        use std::os::unix::fs::DirBuilderExt;
                        b.mode((inode.perm() & 0o777) as u32 | 0o700);
                    }
                    b.create(dest).map_err(|e| hio("creating", dest, e))?
                }
            }
            // A corrupt directory can hold a name twice: the first entry
            // is copied, a later one is reported and skipped (it would
            // replace the first on the host).
            let mut names = std::collections::HashSet::new();
            for e in fs.read_dir(&inode)? {
                if e.name == b"." || e.name == b".." {
                    continue;
                }
                if e.name.contains(&b'/') || e.name.is_empty() || e.name.contains(&0) {
                    cx.warnings.push(format!(
                        "{}: skipped an entry with an invalid name {:?} (inode {})",
                        dest.display(),
                        String::from_utf8_lossy(&e.name),
                        e.ino
                    ));
                    continue;
                }
                let p = dest.join(os_name(&e.name));
                if !names.insert(e.name.clone()) {
                    cx.warnings.push(format!(
                        "{}: the directory (inode {ino}) has a second entry of this name (inode {}); skipped it, the first was copied (run e2fsck)",
                        p.display(),
                        e.ino
                    ));
                    continue;
                }
                if cx.depth >= GET_MAX_DEPTH {
                    return Err(Error::Invalid(format!(
                        "{}: more than {GET_MAX_DEPTH} directory levels: too deep to copy to the host",
                        p.display()
                    )));
                }
                cx.depth += 1;
                let r = get_tree_inner(cx, e.ino, Some(e.ftype), &p);
                cx.depth -= 1;
                r?;
            }
            // Times (and with preserve owner and mode) after the contents:
            // writing them changed the directory's mtime.
            let mut oo = hfs::OpenOptions::new();
            oo.read(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                oo.custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY);
            }
            let d = oo.open(dest).map_err(|e| hio("opening", dest, e))?;
            set_host_meta(&d, &inode, cx.opts);
            Ok(())
        }
        FileType::Regular => {
            // The top of the walk (no directory entry above it).
            if entry_type.is_none() {
                return get_file(fs, ino, dest, cx.opts);
            }
            not_a_dir_in_the_way(dest)?;
            if inode.links() > 1 {
                if let Some((first, id)) = cx.links.get(&ino) {
                    let now = host_file_id(first);
                    // Only while `first` is still the copy made of this
                    // inode (not replaced since): else copy it again.
                    if id.is_none() || now == *id {
                        if now.is_some() && now == host_file_id(dest) {
                            return Ok(());
                        }
                        let dir = parent_dir(dest)?;
                        let (tmp, ()) = make_temp(&dir, |p| hfs::hard_link(first, p))
                            .map_err(|e| hio("linking", dest, e))?;
                        return hfs::rename(&tmp, dest).map_err(|e| {
                            let _ = hfs::remove_file(&tmp);
                            hio("linking", dest, e)
                        });
                    }
                }
                replace_file(fs, &inode, dest, cx.opts, false)?;
                cx.links
                    .insert(ino, (dest.to_path_buf(), host_file_id(dest)));
                return Ok(());
            }
            replace_file(fs, &inode, dest, cx.opts, false)
        }
        FileType::Symlink => {
            let t = fs.read_link(&inode)?;
            not_a_dir_in_the_way(dest)?;
            #[cfg(unix)]
            {
                let dir = parent_dir(dest)?;
                let (tmp, ()) = make_temp(&dir, |p| std::os::unix::fs::symlink(os_name(&t), p))
                    .map_err(|e| hio("creating symlink", dest, e))?;
                if cx.opts.preserve {
                    let _ = std::os::unix::fs::lchown(&tmp, Some(inode.uid()), Some(inode.gid()));
                }
                hfs::rename(&tmp, dest).map_err(|e| {
                    let _ = hfs::remove_file(&tmp);
                    hio("creating symlink", dest, e)
                })
            }
            #[cfg(not(unix))]
            {
                cx.warnings.push(format!(
                    "{}: symlinks are not copied on this platform",
                    dest.display()
                ));
                let _ = t;
                Ok(())
            }
        }
        other => {
            cx.warnings.push(format!(
                "{}: {} not copied (needs privileges on the host)",
                dest.display(),
                other.name()
            ));
            Ok(())
        }
    }
}
