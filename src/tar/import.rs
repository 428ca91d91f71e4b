//! `import-tar`: a tar stream into a directory of an existing image.
//!
//! Members are applied in archive order, as GNU tar extracts them:
//! ownership and modes from the headers (numeric ids only), times
//! (sub-second ones where the inode has room), hard links to earlier
//! members, symlinks, device nodes, fifos, sparse files (holes stay
//! holes), every `SCHILY.xattr.*` record and the POSIX ACLs
//! (`SCHILY.acl.*` text, or `system.posix_acl_*` xattrs) in the kernel's
//! on-disk form. An existing entry is replaced (unlinked first, so its
//! other hard links keep the old content); an existing directory is
//! merged into and takes the member's mode, owner and times. Directory
//! times are set once everything is in, as tar does.
//!
//! Safety: member names are made relative (a leading `/` and anything up
//! to a `..` component are stripped, as GNU tar does, with a warning),
//! and a member's parent directories are walked without following any
//! symlink: a member that would go through a symlink (made by an earlier
//! member or already in the image) is refused, naming it. Missing parent
//! directories are created 0755 root:root. Nothing is written on the
//! host. The archive is read once, as a stream; only names (for hard
//! links and OCI whiteouts) are kept.
//!
//! OCI whiteouts ([`Whiteouts`]): `.wh.NAME` and the opaque marker
//! `.wh..wh..opq` are applied as deletions of what the image had before
//! the archive, or kept in overlayfs's form.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::acl;
use super::read::{Data, Kind, Member, TarReader};
use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::{Ino, Timestamp};
use crate::layout::FileType;
use crate::ops::NewFile;

/// What to do with OCI whiteout members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Whiteouts {
    /// `.wh.NAME` removes NAME, `.wh..wh..opq` empties its directory of
    /// what the image had before this archive (layering onto an image).
    #[default]
    Apply,
    /// Keep them as overlayfs does: NAME as a 0:0 character device,
    /// `trusted.overlay.opaque=y` on an opaque directory (an image meant
    /// as an overlay lower layer).
    Overlay,
}

/// Options of an import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// OCI whiteouts.
    pub whiteouts: Whiteouts,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Members applied.
    pub members: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Warnings (printed once the import is committed).
    pub warnings: Vec<String>,
}

/// The archive's bytes, decompressed: gzip, bzip2, xz or zstd recognised
/// by their magic bytes, anything else read as a plain tar.
pub fn decompressed<'a>(mut src: Box<dyn Read + 'a>) -> Result<Box<dyn Read + 'a>> {
    let mut head = Vec::with_capacity(6);
    let mut buf = [0u8; 6];
    while head.len() < 6 {
        match src.read(&mut buf[..6 - head.len()]) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading the archive", e)),
        }
    }
    let whole: Box<dyn Read + 'a> = Box::new(std::io::Cursor::new(head.clone()).chain(src));
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(whole))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(whole))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(whole))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::new(whole)
                .map_err(|e| Error::io("starting the zstd decoder", e))?,
        )
    } else {
        whole
    })
}

/// A member name made relative: its components without `.` and empty
/// ones; a leading `/` and everything up to the last `..` are dropped
/// (and said in `stripped`).
fn safe_components(p: &[u8], stripped: &mut Stripped) -> Vec<Vec<u8>> {
    if p.first() == Some(&b'/') {
        stripped.root = true;
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                stripped.dotdot = true;
                out.clear();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

/// Which kinds of prefix were stripped from member names.
#[derive(Default)]
struct Stripped {
    root: bool,
    dotdot: bool,
}

fn joined(c: &[Vec<u8>]) -> Vec<u8> {
    c.join(&b'/')
}

fn shown(c: &[u8]) -> String {
    String::from_utf8_lossy(c).into_owned()
}

/// Times to give a directory once its content is in.
struct DirTimes {
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
}

struct Importer<'f> {
    fs: &'f mut Filesystem,
    dest: Ino,
    opts: ImportOptions,
    /// The parent chain of the previous member: names and inodes.
    cache: (Vec<Vec<u8>>, Vec<Ino>),
    /// Non-directory members by their relative path.
    /// (Keyed by a hash of the path, with random keys: a hard link is
    /// checked by resolving its target again, so a collision could only
    /// refuse a link, never make a wrong one.)
    links: HashMap<u64, Ino>,
    /// (directory, name) made by this archive.
    /// (Hashed likewise: 8 bytes a member.)
    created: HashSet<u64>,
    keys: std::collections::hash_map::RandomState,
    dir_times: HashMap<Ino, DirTimes>,
    stripped: Stripped,
    /// Id lookups for ACL names: the image's own passwd and group.
    accounts: Option<crate::accounts::Accounts>,
    report: ImportReport,
}

/// Import the tar stream `src` (any compression [`decompressed`] knows)
/// into directory `dest` of `fs`. Nothing is committed here; on error the
/// caller rolls back.
pub fn import(
    fs: &mut Filesystem,
    src: Box<dyn Read + '_>,
    dest: Ino,
    opts: &ImportOptions,
) -> Result<ImportReport> {
    if !fs.read_inode(dest)?.is_dir() {
        return Err(Error::NotADirectory(format!("inode {dest}")));
    }
    let src = decompressed(src)?;
    let mut tar = TarReader::new(std::io::BufReader::with_capacity(1 << 20, src));
    let accounts = crate::accounts::Accounts::load(fs).ok();
    let mut im = Importer {
        fs,
        dest,
        opts: opts.clone(),
        cache: (Vec::new(), Vec::new()),
        links: HashMap::new(),
        created: HashSet::new(),
        keys: Default::default(),
        dir_times: HashMap::new(),
        stripped: Stripped::default(),
        accounts,
        report: ImportReport::default(),
    };
    let mut progress = crate::host::Progress::new("import-tar", 0);
    while let Some(m) = tar.next_member()? {
        let size = m.size;
        im.member(&mut tar, &m)
            .map_err(|e| e.at(&format!("archive: {}", m.shown())))?;
        im.report.members += 1;
        im.report.bytes += size;
        progress.tick(size);
        im.fs.commit_if_large()?;
    }
    progress.finish();
    im.finish_dirs()?;
    if im.stripped.root {
        im.report
            .warnings
            .push("removing leading '/' from member names".into());
    }
    if im.stripped.dotdot {
        im.report.warnings.push(
            "removing leading '../' (everything up to a '..' component) from member names".into(),
        );
    }
    Ok(im.report)
}

impl Importer<'_> {
    fn path_key(&self, p: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.keys.hash_one(p)
    }

    fn name_key(&self, dir: Ino, name: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.keys.hash_one((dir, name))
    }

    fn made(&mut self, dir: Ino, name: &[u8]) {
        let k = self.name_key(dir, name);
        self.created.insert(k);
    }

    fn was_made(&self, dir: Ino, name: &[u8]) -> bool {
        self.created.contains(&self.name_key(dir, name))
    }
    /// Look `name` up in `dir` (fresh directories answer from memory).
    fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Option<crate::dir::DirEntry>> {
        if let Some(names) = self.fs.fresh_dirs.get(&dir) {
            if !names.contains(name) {
                return Ok(None);
            }
        }
        let d = self.fs.read_inode(dir)?;
        self.fs.lookup(&d, name)
    }

    /// The directory that holds the last component of `comps`, created
    /// where missing; never through a symlink.
    fn parent(&mut self, comps: &[Vec<u8>]) -> Result<Ino> {
        let want = &comps[..comps.len() - 1];
        let same = self
            .cache
            .0
            .iter()
            .zip(want)
            .take_while(|(a, b)| a == b)
            .count();
        self.cache.0.truncate(same);
        self.cache.1.truncate(same);
        let mut cur = self.cache.1.last().copied().unwrap_or(self.dest);
        for (i, c) in want.iter().enumerate().skip(same) {
            let next = match self.lookup(cur, c)? {
                None => {
                    let attrs = NewFile {
                        perm: 0o755,
                        uid: 0,
                        gid: 0,
                        mtime: None,
                    };
                    let ino = self.fs.mkdir(cur, c, &attrs)?;
                    self.made(cur, c);
                    ino
                }
                Some(e) => {
                    let inode = self.fs.read_inode(e.ino)?;
                    if inode.is_symlink() {
                        return Err(Error::Invalid(format!(
                            "{:?} is a symlink (to {:?}) in the image; not writing through it",
                            shown(&joined(&comps[..=i])),
                            shown(&self.fs.read_link(&inode)?)
                        )));
                    }
                    if !inode.is_dir() {
                        return Err(Error::NotADirectory(format!(
                            "{:?} is a {} in the image",
                            shown(&joined(&comps[..=i])),
                            inode.file_type().name()
                        )));
                    }
                    e.ino
                }
            };
            // A directory on a member's path is part of this layer (an
            // opaque marker of its parent keeps it).
            self.made(cur, c);
            self.cache.0.push(c.clone());
            self.cache.1.push(next);
            cur = next;
        }
        Ok(cur)
    }

    /// The inode `comps` names, walked without following symlinks.
    fn find(&self, comps: &[Vec<u8>]) -> Result<Option<Ino>> {
        let mut cur = self.dest;
        for (i, c) in comps.iter().enumerate() {
            if i > 0 && !self.fs.read_inode(cur)?.is_dir() {
                return Ok(None);
            }
            match self.lookup(cur, c)? {
                Some(e) => cur = e.ino,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// Remove `name` of `dir` (a whole tree for a directory).
    fn remove(&mut self, dir: Ino, name: &[u8]) -> Result<()> {
        self.fs.remove_tree(dir, name)?;
        // A directory on the cached chain may have gone.
        self.cache = (Vec::new(), Vec::new());
        Ok(())
    }

    fn member<R: Read>(&mut self, tar: &mut TarReader<R>, m: &Member) -> Result<()> {
        let comps = safe_components(&m.path, &mut self.stripped);
        if comps.is_empty() {
            // "./" or "/": the destination directory itself.
            if m.kind == Kind::Dir {
                let ino = self.dest;
                return self.set_attrs(ino, m, true);
            }
            self.report.warnings.push(format!(
                "{}: no name left once made relative; skipped",
                m.shown()
            ));
            return Ok(());
        }
        let name = comps.last().unwrap().clone();
        let parent = self.parent(&comps)?;
        if name.starts_with(b".wh.") {
            return self.whiteout(parent, &name, m);
        }
        let existing = self.lookup(parent, &name)?;
        if m.kind == Kind::Dir {
            let ino = match existing {
                Some(e) if self.fs.read_inode(e.ino)?.is_dir() => {
                    self.made(parent, &name);
                    e.ino
                }
                other => {
                    if other.is_some() {
                        self.remove(parent, &name)?;
                    }
                    let ino = self.fs.mkdir(parent, &name, &self.attrs(m))?;
                    self.made(parent, &name);
                    ino
                }
            };
            return self.set_attrs(ino, m, true);
        }
        let key = joined(&comps);
        let link_target = if m.kind == Kind::HardLink {
            let mut st = Stripped::default();
            let t = safe_components(&m.link, &mut st);
            self.stripped.root |= st.root;
            self.stripped.dotdot |= st.dotdot;
            let tkey = joined(&t);
            let ino = match (self.links.get(&self.path_key(&tkey)), self.find(&t)?) {
                (Some(&a), Some(b)) if a == b => a,
                _ => {
                    return Err(Error::NotFound(format!(
                        "hard link to {:?}, which no earlier member of the archive made (or a later one removed)",
                        shown(&m.link)
                    )))
                }
            };
            Some(ino)
        } else {
            None
        };
        if let Some(e) = existing {
            if link_target == Some(e.ino) {
                // Already this very file.
                self.made(parent, &name);
                return Ok(());
            }
            let old = self.fs.read_inode(e.ino)?;
            if old.is_dir() {
                if !self.fs.dir_is_empty(&old)? {
                    return Err(Error::IsADirectory(format!(
                        "{:?} is a directory that is not empty in the image; not replacing it",
                        shown(&key)
                    )));
                }
                self.fs.rmdir(parent, &name)?;
                self.cache = (Vec::new(), Vec::new());
            } else {
                self.fs.unlink(parent, &name)?;
            }
            self.links.remove(&self.path_key(&key));
        }
        let attrs = self.attrs(m);
        let ino = match m.kind {
            Kind::File => {
                let bs = self.fs.block_size() as u64;
                let stored = match &m.sparse {
                    Some(map) => map.iter().map(|r| r.1).sum::<u64>(),
                    None => m.size,
                };
                let blocks = self.fs.blocks_needed(stored.div_ceil(bs)) + 1;
                crate::host::check_room(self.fs, 1, blocks, "the member")?;
                if m.sparse.is_some() {
                    let ino = self.fs.create_file_sized(
                        parent,
                        &name,
                        &attrs,
                        &mut std::io::empty(),
                        Some(0),
                    )?;
                    self.write_sparse(tar, ino, m)?;
                    ino
                } else {
                    let mut data = Data::new(tar, m);
                    self.fs
                        .create_file_sized(parent, &name, &attrs, &mut data, Some(m.size))?
                }
            }
            Kind::HardLink => {
                let ino = link_target.expect("set above");
                // The link keeps the file's own change time.
                let ctime = self.fs.read_inode(ino)?.ctime();
                self.fs.link(ino, parent, &name)?;
                let mut i = self.fs.read_inode(ino)?;
                i.set_ctime(ctime);
                self.fs.write_inode(&i)?;
                let k = self.path_key(&key);
                self.links.insert(k, ino);
                self.made(parent, &name);
                return Ok(());
            }
            Kind::Symlink => self.fs.symlink(parent, &name, &m.link, &attrs)?,
            Kind::Char | Kind::Block | Kind::Fifo => {
                let ft = match m.kind {
                    Kind::Char => FileType::CharDevice,
                    Kind::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                self.fs.mknod(parent, &name, ft, m.dev, &attrs)?
            }
            Kind::Dir => unreachable!("handled above"),
        };
        // An inode number freed and handed out again is no directory of ours.
        self.dir_times.remove(&ino);
        let k = self.path_key(&key);
        self.links.insert(k, ino);
        self.made(parent, &name);
        self.set_attrs(ino, m, false)
    }

    /// Fill the new empty file `ino` with a sparse member: only the
    /// blocks its map holds data for are allocated (a block of zeros
    /// stays a hole too), so a huge hole costs nothing.
    fn write_sparse<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        ino: Ino,
        m: &Member,
    ) -> Result<()> {
        let fs = &mut *self.fs;
        let mut inode = fs.read_inode(ino)?;
        let max = fs.max_file_size(&inode);
        if m.size > max {
            return Err(Error::Invalid(format!(
                "a sparse file of {} bytes is larger than the largest file this filesystem allows ({max} bytes)",
                m.size
            )));
        }
        let bs = fs.block_size() as u64;
        let mut goal = fs.data_goal(ino);
        let flush = |fs: &mut Filesystem,
                     inode: &mut crate::Inode,
                     l: u64,
                     b: Vec<u8>,
                     goal: &mut u64|
         -> Result<()> {
            if crate::device::is_zero(&b) {
                return Ok(());
            }
            let pb = fs.map_new_block(inode, l, goal)?;
            fs.write_new_data_vec(pb, b)
        };
        let mut cur: Option<(u64, Vec<u8>)> = None;
        for &(off, len) in m.sparse.as_deref().unwrap_or_default() {
            let end = off + len;
            let mut p = off;
            while p < end {
                let lblk = p / bs;
                let within = (p % bs) as usize;
                if cur.as_ref().map(|c| c.0) != Some(lblk) {
                    if let Some((l, b)) = cur.take() {
                        flush(fs, &mut inode, l, b, &mut goal)?;
                    }
                    cur = Some((lblk, vec![0u8; bs as usize]));
                }
                let n = (bs - within as u64).min(end - p) as usize;
                let buf = &mut cur.as_mut().expect("set above").1[within..within + n];
                let mut got = 0;
                while got < n {
                    let k = tar
                        .read_data(&mut buf[got..])
                        .map_err(|e| Error::io("reading the archive", e))?;
                    if k == 0 {
                        return Err(Error::Invalid(
                            "the sparse member's data ends before its map does".into(),
                        ));
                    }
                    got += k;
                }
                p += n as u64;
            }
        }
        if let Some((l, b)) = cur.take() {
            flush(fs, &mut inode, l, b, &mut goal)?;
        }
        inode.set_size(m.size);
        fs.note_large_file(m.size);
        fs.set_data_goal(goal);
        fs.write_inode(&inode)
    }

    fn attrs(&self, m: &Member) -> NewFile {
        NewFile {
            perm: m.mode,
            uid: m.uid,
            gid: m.gid,
            mtime: Some(m.mtime),
        }
    }

    /// An ACL in text form, its user and group names looked up in the
    /// image's own passwd and group.
    fn acl_from_text(&self, text: &[u8]) -> std::result::Result<Vec<acl::Entry>, String> {
        let acc = &self.accounts;
        let names = |user: bool, name: &str| -> Option<u32> {
            let a = acc.as_ref()?;
            if user {
                a.user(name).map(|u| u.uid)
            } else {
                a.group(name).map(|g| g.gid)
            }
        };
        acl::from_text(text, &names)
    }

    /// Mode, owner, attributes and times of the member on `ino`
    /// (directories: times later, in [`Self::finish_dirs`]).
    fn set_attrs(&mut self, ino: Ino, m: &Member, dir: bool) -> Result<()> {
        // An access ACL sets the permission bits, as the kernel does.
        let mut perm = m.mode & 0o7777;
        for (name, value) in &m.xattrs {
            let n = std::str::from_utf8(name).map_err(|_| {
                Error::Invalid(format!(
                    "attribute name {:?} is not UTF-8",
                    String::from_utf8_lossy(name)
                ))
            })?;
            let value = if n == "system.posix_acl_access" || n == "system.posix_acl_default" {
                let a = acl::from_xattr(value).map_err(|e| Error::Invalid(format!("{n}: {e}")))?;
                if n == "system.posix_acl_access" {
                    let (bits, extended) = acl::mode_bits(&a);
                    perm = (perm & 0o7000) | bits;
                    if !extended {
                        // The kernel stores no ACL that the mode says whole.
                        continue;
                    }
                }
                acl::to_disk(&a)
            } else {
                if n == "security.capability" {
                    check_capability(value).map_err(|e| Error::Invalid(format!("{n}: {e}")))?;
                }
                value.clone()
            };
            self.fs.set_xattr(ino, n, &value).map_err(|e| e.at(n))?;
        }
        for (text, n) in [
            (&m.acl_access, "system.posix_acl_access"),
            (&m.acl_default, "system.posix_acl_default"),
        ] {
            let Some(text) = text else { continue };
            if n == "system.posix_acl_default" && !dir {
                return Err(Error::Invalid(
                    "a default ACL on something that is not a directory".into(),
                ));
            }
            // GNU tar --xattrs --acls writes both forms: the xattr one has
            // the numeric ids, exactly as stored; the text then only
            // repeats it with names.
            if m.xattrs.iter().any(|(k, _)| k.as_slice() == n.as_bytes()) {
                continue;
            }
            let a = match self.acl_from_text(text) {
                Ok(a) => a,
                // The names may be in a passwd or group file this archive
                // wrote since the image's were read: read them again.
                Err(_) => {
                    self.accounts = crate::accounts::Accounts::load(self.fs).ok();
                    self.acl_from_text(text)
                        .map_err(|e| Error::Invalid(format!("SCHILY.acl: {e}")))?
                }
            };
            if n == "system.posix_acl_access" {
                let (bits, extended) = acl::mode_bits(&a);
                perm = (perm & 0o7000) | bits;
                if !extended {
                    continue;
                }
            }
            self.fs.set_xattr(ino, n, &acl::to_disk(&a))?;
        }
        let now = self.fs.now();
        let mut i = self.fs.read_inode(ino)?;
        let ft = i.mode() & crate::layout::mode::S_IFMT;
        let perm = if i.is_symlink() { 0o777 } else { perm };
        i.set_mode(ft | perm);
        i.set_owner(m.uid, m.gid);
        let t = DirTimes {
            atime: m.atime.unwrap_or(now),
            mtime: m.mtime,
            ctime: m.ctime.unwrap_or(now),
        };
        if dir {
            self.fs.write_inode(&i)?;
            self.dir_times.insert(ino, t);
            return Ok(());
        }
        i.set_atime(t.atime);
        i.set_mtime(t.mtime);
        i.set_ctime(t.ctime);
        self.fs.write_inode(&i)
    }

    fn finish_dirs(&mut self) -> Result<()> {
        let mut v: Vec<(Ino, DirTimes)> = self.dir_times.drain().collect();
        v.sort_by_key(|(i, _)| *i);
        for (ino, t) in v {
            let mut i = self.fs.read_inode(ino)?;
            if !i.is_dir() || i.links() == 0 {
                continue;
            }
            i.set_atime(t.atime);
            i.set_mtime(t.mtime);
            i.set_ctime(t.ctime);
            self.fs.write_inode(&i)?;
            self.fs.commit_if_large()?;
        }
        Ok(())
    }

    fn whiteout(&mut self, parent: Ino, name: &[u8], m: &Member) -> Result<()> {
        let opaque = name == b".wh..wh..opq";
        let target = &name[4..];
        if !opaque
            && (target.starts_with(b".wh.")
                || target.is_empty()
                || target == b"."
                || target == b"..")
        {
            // aufs's own markers (.wh..wh.plnk ...): nothing for the tree.
            self.report
                .warnings
                .push(format!("{}: an aufs marker, skipped", m.shown()));
            return Ok(());
        }
        match (self.opts.whiteouts, opaque) {
            (Whiteouts::Apply, true) => {
                let d = self.fs.read_inode(parent)?;
                let names: Vec<Vec<u8>> = self
                    .fs
                    .read_dir(&d)?
                    .into_iter()
                    .filter(|e| e.ino != 0 && e.name != b"." && e.name != b"..")
                    .map(|e| e.name)
                    .collect();
                for n in names {
                    // The root's lost+found is the file system's, not a
                    // lower layer's (e2fsck wants it).
                    if parent == crate::layout::ROOT_INO && n == b"lost+found" {
                        continue;
                    }
                    if !self.was_made(parent, &n) {
                        self.remove(parent, &n)?;
                    }
                }
                Ok(())
            }
            (Whiteouts::Apply, false) => {
                if self.was_made(parent, target) {
                    // Made by this very layer: a whiteout hides lower ones only.
                    return Ok(());
                }
                if parent == crate::layout::ROOT_INO && target == b"lost+found" {
                    self.report.warnings.push(format!(
                        "{}: the root's lost+found belongs to the file system; kept",
                        m.shown()
                    ));
                    return Ok(());
                }
                if self.lookup(parent, target)?.is_some() {
                    self.remove(parent, target)?;
                }
                Ok(())
            }
            (Whiteouts::Overlay, true) => {
                self.fs.set_xattr(parent, "trusted.overlay.opaque", b"y")?;
                Ok(())
            }
            (Whiteouts::Overlay, false) => {
                if self.lookup(parent, target)?.is_some() {
                    self.remove(parent, target)?;
                }
                let attrs = NewFile {
                    perm: 0,
                    uid: m.uid,
                    gid: m.gid,
                    mtime: Some(m.mtime),
                };
                let ino = self
                    .fs
                    .mknod(parent, target, FileType::CharDevice, (0, 0), &attrs)?;
                self.dir_times.remove(&ino);
                self.made(parent, target);
                Ok(())
            }
        }
    }
}

/// A file capability as the kernel reads it (`vfs_cap_data`): a
/// little-endian `magic_etc` whose top byte is the revision, then 8
/// bytes (revision 1), 16 (revision 2) or 16 and a root id (revision 3).
/// Any other size makes execve of the file fail (EINVAL); setxattr
/// refuses it.
fn check_capability(v: &[u8]) -> std::result::Result<(), String> {
    if v.len() < 4 {
        return Err(format!(
            "{} bytes, too short for a file capability",
            v.len()
        ));
    }
    let rev = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) >> 24;
    let want = match rev {
        1 => 12,
        2 => 20,
        3 => 24,
        r => return Err(format!("capability revision {r} is not 1, 2 or 3")),
    };
    if v.len() != want {
        return Err(format!(
            "a revision {rev} file capability is {want} bytes, not {}",
            v.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_relative() {
        let mut s = Stripped::default();
        assert_eq!(
            safe_components(b"./a//b/", &mut s),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(!s.root && !s.dotdot);
        assert_eq!(
            safe_components(b"/etc/passwd", &mut s),
            vec![b"etc".to_vec(), b"passwd".to_vec()]
        );
        assert!(s.root);
        assert_eq!(
            safe_components(b"a/../../x/y", &mut s),
            vec![b"x".to_vec(), b"y".to_vec()]
        );
        assert!(s.dotdot);
        assert!(safe_components(b"..", &mut s).is_empty());
    }
}
