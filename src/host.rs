//! Copying between the host and the image: `put` (host to image) and
//! `get` (image to host), for single files and whole trees.
//!
//! `get` never follows a symbolic link of the image on the host and never
//! writes outside its destination: files are opened with `O_NOFOLLOW`, an
//! existing host symlink in the way is replaced, not followed, and a
//! directory path that turns out to be a symlink is refused.

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
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Permission bits for regular files (default: the source's).
    pub mode: Option<u16>,
    /// Owner for everything created (default 0:0).
    pub owner: Option<(u32, u32)>,
    /// Modification time for everything created (default: now).
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
            eprint!(
                "\r{}: {} files, {:.1} MiB",
                self.label,
                self.done,
                self.bytes as f64 / 1048576.0
            );
            let _ = std::io::stderr().flush();
            return;
        }
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
        let width = 30usize;
        let fill = (pct as usize * width / 100).min(width);
        eprint!(
            "\r{} [{}{}] {}/{} files, {:.1} MiB",
            self.label,
            "#".repeat(fill),
            " ".repeat(width - fill),
            self.done,
            self.total,
            self.bytes as f64 / 1048576.0
        );
        let _ = std::io::stderr().flush();
    }
    /// Finish the line.
    pub fn finish(&self) {
        if self.on && self.done > 0 {
            self.draw();
            eprintln!();
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
    let attrs = attrs_for(opts, opts.mode.unwrap_or(host_perm(&m)));
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
pub fn put_reader(
    fs: &mut Filesystem,
    src: &mut dyn std::io::Read,
    parent: Ino,
    name: &[u8],
    attrs: &NewFile,
) -> Result<Ino> {
    put_reader_sized(fs, src, 0, None, parent, name, attrs)
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

fn attrs_for(opts: &PutOptions, perm: u16) -> NewFile {
    let (uid, gid) = opts.owner.unwrap_or((0, 0));
    NewFile {
        perm,
        uid,
        gid,
        mtime: opts.mtime,
    }
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
pub fn put_tree(
    fs: &mut Filesystem,
    src: &Path,
    parent: Ino,
    name: &[u8],
    opts: &PutOptions,
) -> Result<()> {
    let tree = HostNode::scan(src)?;
    let (inodes, blocks) = tree.needs(fs);
    check_room(fs, inodes, blocks, &format!("copying {}", src.display()))?;
    let mut links = HashMap::new();
    let mut progress = Progress::new("put", inodes);
    let mut files = Vec::new();
    tree.collect_files(&mut files);
    let r = std::thread::scope(|scope| {
        let mut pre = Prefetch::start(scope, &files);
        put_node(
            fs,
            &tree,
            parent,
            name,
            opts,
            &mut links,
            &mut progress,
            &mut pre,
        )
    });
    progress.finish();
    r
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
    parent: Ino,
    name: &[u8],
    opts: &PutOptions,
    links: &mut HashMap<(u64, u64), Ino>,
    progress: &mut Progress,
    pre: &mut Prefetch,
) -> Result<()> {
    let src = &node.path;
    let m = &node.meta;
    let perm = host_perm(m);
    // A directory we created in this run: its name set answers at once.
    let existing = match fs.fresh_dirs.get(&parent) {
        Some(names) if !names.contains(name) => None,
        _ => {
            let dir = fs.read_inode(parent)?;
            fs.lookup(&dir, name)?
        }
    };
    let at = |e: Error| e.at(&src.display().to_string());
    if m.is_dir() {
        let me = match existing {
            Some(e) if fs.read_inode(e.ino)?.is_dir() => e.ino,
            Some(_) => {
                return Err(Error::Exists(format!(
                    "{} (not a directory in the image)",
                    String::from_utf8_lossy(name)
                )))
            }
            None => fs.mkdir(parent, name, &attrs_for(opts, perm)).map_err(at)?,
        };
        progress.tick(0);
        fs.commit_if_large()?;
        for c in &node.children {
            put_node(fs, c, me, &c.name, opts, links, progress, pre)?;
        }
        return Ok(());
    }
    if let Some(e) = &existing {
        if fs.read_inode(e.ino)?.is_dir() {
            return Err(Error::IsADirectory(format!(
                "{} exists in the image as a directory",
                String::from_utf8_lossy(name)
            )));
        }
    }
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
        let attrs = attrs_for(opts, opts.mode.unwrap_or(perm));
        let size = Some(m.len());
        let ino = match existing {
            Some(e) if fs.read_inode(e.ino)?.is_reg() && fs.read_inode(e.ino)?.links() == 1 => {
                fs.overwrite_file_sized(e.ino, &attrs, &mut f, size)
                    .map_err(at)?;
                e.ino
            }
            Some(_) => {
                fs.unlink(parent, name)?;
                fs.create_file_sized(parent, name, &attrs, &mut f, size)
                    .map_err(at)?
            }
            None => fs
                .create_file_sized(parent, name, &attrs, &mut f, size)
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

/// Write one image file to a host path (regular files keep their holes).
pub fn get_file(fs: &Filesystem, ino: Ino, dest: &Path) -> Result<()> {
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
    if let Ok(m) = hfs::symlink_metadata(dest) {
        if m.file_type().is_symlink() {
            hfs::remove_file(dest).map_err(|e| hio("removing", dest, e))?;
        } else if m.is_dir() {
            return Err(Error::IsADirectory(dest.display().to_string()));
        }
    }
    let mut oo = hfs::OpenOptions::new();
    oo.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        oo.custom_flags(libc::O_NOFOLLOW);
    }
    let f = oo.open(dest).map_err(|e| hio("creating", dest, e))?;
    if let Err(e) = write_sparse(fs, &inode, &f, dest) {
        // Leave no half-written file behind.
        drop(f);
        let _ = hfs::remove_file(dest);
        return Err(e);
    }
    set_host_meta(&f, &inode);
    Ok(())
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

fn set_host_meta(f: &hfs::File, inode: &crate::Inode) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = f.set_permissions(hfs::Permissions::from_mode(inode.perm() as u32));
    }
    let mt = inode.mtime();
    if mt.secs >= 0 {
        let t = std::time::UNIX_EPOCH + Duration::new(mt.secs as u64, mt.nanos);
        let _ = f.set_modified(t);
    }
}

/// Copy an image tree to `dest` on the host. Returns warnings for things
/// that cannot be made without privileges (device nodes).
pub fn get_tree(fs: &Filesystem, ino: Ino, dest: &Path) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut links: HashMap<Ino, PathBuf> = HashMap::new();
    let mut progress = Progress::new("get", 0);
    let mut seen = std::collections::HashSet::new();
    get_tree_inner(
        fs,
        ino,
        dest,
        &mut links,
        &mut warnings,
        &mut progress,
        &mut seen,
    )?;
    progress.finish();
    Ok(warnings)
}

#[allow(clippy::too_many_arguments)]
fn get_tree_inner(
    fs: &Filesystem,
    ino: Ino,
    dest: &Path,
    links: &mut HashMap<Ino, PathBuf>,
    warnings: &mut Vec<String>,
    progress: &mut Progress,
    seen: &mut std::collections::HashSet<Ino>,
) -> Result<()> {
    let inode = fs.read_inode(ino)?;
    progress.tick(if inode.is_reg() { inode.size() } else { 0 });
    match inode.file_type() {
        FileType::Directory => {
            if !seen.insert(ino) {
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
                Err(_) => hfs::create_dir(dest).map_err(|e| hio("creating", dest, e))?,
            }
            for e in fs.read_dir(&inode)? {
                if e.name == b"." || e.name == b".." {
                    continue;
                }
                if e.name.contains(&b'/') || e.name.is_empty() || e.name.contains(&0) {
                    warnings.push(format!(
                        "{}: skipped an entry with an invalid name {:?} (inode {})",
                        dest.display(),
                        String::from_utf8_lossy(&e.name),
                        e.ino
                    ));
                    continue;
                }
                let p = dest.join(os_name(&e.name));
                get_tree_inner(fs, e.ino, &p, links, warnings, progress, seen)?;
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = hfs::set_permissions(
                    dest,
                    hfs::Permissions::from_mode(inode.perm() as u32 | 0o700),
                );
            }
            Ok(())
        }
        FileType::Regular => {
            if inode.links() > 1 {
                if let Some(first) = links.get(&ino) {
                    let _ = hfs::remove_file(dest);
                    return hfs::hard_link(first, dest).map_err(|e| hio("linking", dest, e));
                }
                links.insert(ino, dest.to_path_buf());
            }
            get_file(fs, ino, dest)
        }
        FileType::Symlink => {
            let t = fs.read_link(&inode)?;
            if let Ok(m) = hfs::symlink_metadata(dest) {
                if m.is_dir() {
                    return Err(Error::Exists(format!(
                        "{} (a directory is in the way)",
                        dest.display()
                    )));
                }
                hfs::remove_file(dest).map_err(|e| hio("removing", dest, e))?;
            }
            #[cfg(unix)]
            {
                std::os::unix::fs::symlink(os_name(&t), dest)
                    .map_err(|e| hio("creating symlink", dest, e))
            }
            #[cfg(not(unix))]
            {
                warnings.push(format!(
                    "{}: symlinks are not copied on this platform",
                    dest.display()
                ));
                let _ = t;
                Ok(())
            }
        }
        other => {
            warnings.push(format!(
                "{}: {} not copied (needs privileges on the host)",
                dest.display(),
                other.name()
            ));
            Ok(())
        }
    }
}
