//! Operations on files and directories inside the image, by inode and name.
//!
//! Each is a short list of layer calls: allocate, fill, link into the
//! directory, fix link counts and times. Nothing reaches the image before
//! [`Filesystem::commit`], so a failure half way leaves the image as it was.

use std::collections::HashSet;
use std::io::Read;

use crate::dir::{check_name, DirEntry};
use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::{Ino, Inode, Timestamp};
use crate::layout::{mode, FileType, ROOT_INO};

/// Most hard links an ext2/ext3 inode may have (as the kernel enforces).
pub const LINK_MAX: u16 = 32000;

/// Most links a directory may have (2 + its subdirectories): e2fsck's and
/// the kernel's EXT4_LINK_MAX. With dir_nlink, a directory with more
/// subdirectories has a link count of 1.
pub const DIR_LINK_MAX: u16 = 65000;

/// Attributes of a new file, directory, link or node.
#[derive(Clone, Debug, Default)]
pub struct NewFile {
    /// Permission bits (07777).
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time; default: the filesystem's `now`.
    pub mtime: Option<Timestamp>,
}

impl Filesystem {
    fn name_str(name: &[u8]) -> String {
        String::from_utf8_lossy(name).into_owned()
    }

    /// A fresh in-memory inode with type, permissions, owner and times.
    fn new_inode(&mut self, parent: Ino, ftype: FileType, attrs: &NewFile) -> Result<Inode> {
        let ino = self.alloc_inode(parent, ftype)?;
        let isz = self.superblock().inode_size as usize;
        let mut inode = Inode::zeroed(ino, isz);
        inode.set_mode(ftype.mode_bits() | (attrs.perm & 0o7777));
        inode.set_owner(attrs.uid, attrs.gid);
        if isz > 128 {
            // s_want_extra_isize (32 when unset: nanosecond times and
            // crtime), at least s_min_extra_isize.
            let sb = self.superblock();
            let want = match sb.want_extra_isize() {
                0 => 32,
                w => w,
            }
            .max(sb.min_extra_isize());
            let max = (isz - 128) as u16;
            inode.set_extra_isize(want.min(max) & !3);
        }
        // On an extent file system, files and directories map their blocks
        // with an extent tree (long symlinks too: see `symlink`).
        if matches!(ftype, FileType::Regular | FileType::Directory) && self.extent_feature() {
            self.init_extent_root(&mut inode);
        }
        let now = self.now();
        inode.set_atime(now);
        inode.set_ctime(now);
        inode.set_mtime(attrs.mtime.unwrap_or(now));
        inode.set_crtime(now);
        Ok(inode)
    }

    fn dir_nlink(&self) -> bool {
        self.superblock()
            .has_ro_compat(crate::layout::feature::RO_COMPAT_DIR_NLINK)
    }

    /// Refuse a new subdirectory of `dir` when its link count cannot grow:
    /// without dir_nlink, at [`DIR_LINK_MAX`] links (as the kernel).
    fn check_subdir_room(&self, dir: &Inode) -> Result<()> {
        if !self.dir_nlink() && (dir.links() >= DIR_LINK_MAX || dir.links() == 1) {
            return Err(Error::Invalid(format!(
                "directory inode {} has {} subdirectories, the most a directory can have without the dir_nlink feature",
                dir.ino,
                DIR_LINK_MAX - 2
            )));
        }
        Ok(())
    }

    /// One more subdirectory in `dir`: its link count grows, and past
    /// [`DIR_LINK_MAX`] (dir_nlink) becomes 1, which it then stays while
    /// the directory has that many (as the kernel, and as e2fsck wants).
    fn inc_dir_links(&mut self, dir: &mut Inode) {
        let n = dir.links();
        if n == 1 {
            if let Some(c) = self.subdir_counts.get_mut(&dir.ino) {
                *c += 1;
            }
            return;
        }
        if n >= DIR_LINK_MAX {
            // Only reached with dir_nlink (check_subdir_room).
            dir.set_links(1);
            self.subdir_counts.insert(dir.ino, n as u64 - 1);
        } else {
            dir.set_links(n + 1);
        }
    }

    /// One subdirectory fewer in `dir`. A count of 1 (more subdirectories
    /// than a link count holds) stays 1 while the directory still has more
    /// than [`DIR_LINK_MAX`] - 2 of them; below that it becomes the real
    /// count again, since e2fsck -n reports a 1 there (the kernel leaves
    /// it to e2fsck). The subdirectories are counted once per handle.
    fn dec_dir_links(&mut self, dir: &mut Inode) -> Result<()> {
        let n = dir.links();
        if n != 1 {
            dir.set_links(n.saturating_sub(1).max(2));
            return Ok(());
        }
        let count = match self.subdir_counts.get(&dir.ino) {
            // The one being removed is still counted.
            Some(&c) => c.saturating_sub(1),
            None => self.count_subdirs(dir)?,
        };
        if count + 2 <= DIR_LINK_MAX as u64 {
            dir.set_links((count + 2) as u16);
            self.subdir_counts.remove(&dir.ino);
        } else {
            self.subdir_counts.insert(dir.ino, count);
        }
        Ok(())
    }

    /// Set the link count of directory `ino`, when it is 1, from its
    /// subdirectories counted afresh.
    fn settle_dir_links(&mut self, ino: Ino) -> Result<()> {
        let mut d = self.read_inode(ino)?;
        if d.links() != 1 {
            return Ok(());
        }
        let count = self.count_subdirs(&d)?;
        if count + 2 <= DIR_LINK_MAX as u64 {
            d.set_links((count + 2) as u16);
            self.subdir_counts.remove(&ino);
        } else {
            self.subdir_counts.insert(ino, count);
        }
        self.write_inode(&d)
    }

    /// Subdirectories named in `dir` (its entries other than . and ..
    /// that are directories).
    fn count_subdirs(&self, dir: &Inode) -> Result<u64> {
        let filetype = self.has_filetype();
        let mut n = 0u64;
        for e in self.read_dir(dir)? {
            if e.ino == 0 || e.name == b"." || e.name == b".." {
                continue;
            }
            let is_dir = if filetype {
                e.ftype == FileType::Directory
            } else {
                self.read_inode(e.ino)?.is_dir()
            };
            n += is_dir as u64;
        }
        Ok(n)
    }

    fn check_absent(&self, dir: &Inode, name: &[u8]) -> Result<()> {
        check_name(name)?;
        let exists = match self.fresh_dirs.get(&dir.ino) {
            Some(names) => names.contains(name),
            None => self.lookup(dir, name)?.is_some(),
        };
        if exists {
            return Err(Error::Exists(Self::name_str(name)));
        }
        Ok(())
    }

    fn touch_dir(&mut self, dir: Ino) -> Result<()> {
        let mut d = self.read_inode(dir)?;
        let now = self.now();
        d.set_mtime(now);
        d.set_ctime(now);
        self.write_inode(&d)
    }

    fn dir_inode(&self, ino: Ino) -> Result<Inode> {
        let d = self.read_inode(ino)?;
        if !d.is_dir() {
            return Err(Error::NotADirectory(format!("inode {ino}")));
        }
        Ok(d)
    }

    fn link_new(&mut self, parent: Ino, name: &[u8], inode: &Inode) -> Result<()> {
        let mut d = self.dir_inode(parent)?;
        self.add_entry(&mut d, name, inode.ino, inode.file_type())?;
        self.touch_dir(parent)
    }

    /// Create a regular file `name` in directory `parent` with the bytes of
    /// `src`. Fails if the name exists.
    pub fn create_file(
        &mut self,
        parent: Ino,
        name: &[u8],
        attrs: &NewFile,
        src: &mut dyn Read,
    ) -> Result<Ino> {
        self.create_file_sized(parent, name, attrs, src, None)
    }

    /// [`Self::create_file`] for a source whose size is known in advance
    /// (reading stops there).
    pub fn create_file_sized(
        &mut self,
        parent: Ino,
        name: &[u8],
        attrs: &NewFile,
        src: &mut dyn Read,
        size: Option<u64>,
    ) -> Result<Ino> {
        self.create_file_with(parent, name, attrs, |fs, inode| {
            fs.write_data_sized(inode, src, size)
        })
    }

    /// [`Self::create_file`] from bytes already in memory; a file of one
    /// block or less is staged without copying them.
    pub fn create_file_from_vec(
        &mut self,
        parent: Ino,
        name: &[u8],
        attrs: &NewFile,
        data: Vec<u8>,
    ) -> Result<Ino> {
        self.create_file_with(parent, name, attrs, |fs, inode| {
            fs.write_data_vec(inode, data)
        })
    }

    fn create_file_with(
        &mut self,
        parent: Ino,
        name: &[u8],
        attrs: &NewFile,
        fill: impl FnOnce(&mut Self, &mut Inode) -> Result<u64>,
    ) -> Result<Ino> {
        self.ensure_writable()?;
        let d = self.dir_inode(parent)?;
        self.check_absent(&d, name)?;
        let mut inode = self.new_inode(parent, FileType::Regular, attrs)?;
        inode.set_links(1);
        fill(self, &mut inode)?;
        self.write_inode(&inode)?;
        self.link_new(parent, name, &inode)?;
        Ok(inode.ino)
    }

    /// Replace the content of regular file `ino` with `src`, and set its
    /// permissions, owner and times from `attrs` (as a new file would get).
    pub fn overwrite_file(&mut self, ino: Ino, attrs: &NewFile, src: &mut dyn Read) -> Result<()> {
        self.overwrite_file_sized(ino, attrs, src, None)
    }

    /// [`Self::overwrite_file`] for a source of known size.
    pub fn overwrite_file_sized(
        &mut self,
        ino: Ino,
        attrs: &NewFile,
        src: &mut dyn Read,
        size: Option<u64>,
    ) -> Result<()> {
        self.ensure_writable()?;
        let mut inode = self.read_inode(ino)?;
        if !inode.is_reg() {
            return Err(Error::Invalid(format!("inode {ino} is not a regular file")));
        }
        self.truncate_blocks(&mut inode, 0)?;
        inode.set_size(0);
        self.write_data_sized(&mut inode, src, size)?;
        inode.set_mode(mode::S_IFREG | (attrs.perm & 0o7777));
        inode.set_owner(attrs.uid, attrs.gid);
        let now = self.now();
        inode.set_ctime(now);
        inode.set_mtime(attrs.mtime.unwrap_or(now));
        self.write_inode(&inode)
    }

    /// Create directory `name` in `parent`.
    pub fn mkdir(&mut self, parent: Ino, name: &[u8], attrs: &NewFile) -> Result<Ino> {
        self.ensure_writable()?;
        let mut p = self.dir_inode(parent)?;
        self.check_absent(&p, name)?;
        self.check_subdir_room(&p)?;
        let mut inode = self.new_inode(parent, FileType::Directory, attrs)?;
        inode.set_links(2);
        let block = self.new_dir_block(inode.ino, parent);
        let mut goal = self.data_goal(inode.ino);
        let b = self.map_new_block(&mut inode, 0, &mut goal)?;
        self.write_meta_block(b, &block)?;
        self.note_dir_block(&inode, 0, b)?;
        inode.set_size(self.block_size() as u64);
        self.write_inode(&inode)?;
        self.add_entry(&mut p, name, inode.ino, FileType::Directory)?;
        let mut p = self.read_inode(parent)?;
        self.inc_dir_links(&mut p);
        let now = self.now();
        p.set_mtime(now);
        p.set_ctime(now);
        self.write_inode(&p)?;
        self.fresh_dirs.insert(inode.ino, HashSet::new());
        Ok(inode.ino)
    }

    /// Create a symbolic link `name` -> `target`.
    pub fn symlink(
        &mut self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        attrs: &NewFile,
    ) -> Result<Ino> {
        self.ensure_writable()?;
        if target.is_empty() || target.len() >= self.block_size().min(4096) || target.contains(&0) {
            return Err(Error::Invalid(format!(
                "symlink target must be 1 to {} bytes without NUL",
                self.block_size().min(4096) - 1
            )));
        }
        let d = self.dir_inode(parent)?;
        self.check_absent(&d, name)?;
        let a = NewFile {
            perm: 0o777,
            ..attrs.clone()
        };
        let mut inode = self.new_inode(parent, FileType::Symlink, &a)?;
        inode.set_links(1);
        if target.len() < 60 {
            inode.block_bytes_mut()[..target.len()].copy_from_slice(target);
            inode.set_size(target.len() as u64);
        } else {
            // A fast symlink keeps its target in i_block; a long one maps a
            // block, with an extent tree where the file system has them.
            if self.extent_feature() {
                self.init_extent_root(&mut inode);
            }
            let mut src = target;
            self.write_data(&mut inode, &mut src)?;
        }
        self.write_inode(&inode)?;
        self.link_new(parent, name, &inode)?;
        Ok(inode.ino)
    }

    /// Create a device node, fifo or socket.
    pub fn mknod(
        &mut self,
        parent: Ino,
        name: &[u8],
        ftype: FileType,
        rdev: (u32, u32),
        attrs: &NewFile,
    ) -> Result<Ino> {
        self.ensure_writable()?;
        if !matches!(
            ftype,
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket
        ) {
            return Err(Error::Invalid(
                "mknod makes device nodes, fifos and sockets only".into(),
            ));
        }
        if matches!(ftype, FileType::CharDevice | FileType::BlockDevice)
            && (rdev.0 > 0xfff || rdev.1 > 0xf_ffff)
        {
            return Err(Error::Invalid(format!(
                "device number {}:{} does not fit (major at most 4095, minor at most 1048575)",
                rdev.0, rdev.1
            )));
        }
        let d = self.dir_inode(parent)?;
        self.check_absent(&d, name)?;
        let mut inode = self.new_inode(parent, ftype, attrs)?;
        inode.set_links(1);
        if matches!(ftype, FileType::CharDevice | FileType::BlockDevice) {
            inode.set_rdev(rdev.0, rdev.1);
        }
        self.write_inode(&inode)?;
        self.link_new(parent, name, &inode)?;
        Ok(inode.ino)
    }

    /// Add a hard link `name` in `parent` to existing inode `ino`.
    pub fn link(&mut self, ino: Ino, parent: Ino, name: &[u8]) -> Result<()> {
        self.ensure_writable()?;
        let mut inode = self.read_inode(ino)?;
        if inode.is_dir() {
            return Err(Error::IsADirectory(format!(
                "inode {ino}: hard links to directories are not allowed"
            )));
        }
        if inode.links() >= LINK_MAX {
            return Err(Error::Invalid(format!("inode {ino} has too many links")));
        }
        let d = self.dir_inode(parent)?;
        self.check_absent(&d, name)?;
        inode.set_links(inode.links() + 1);
        inode.set_ctime(self.now());
        self.write_inode(&inode)?;
        self.link_new(parent, name, &inode)
    }

    /// Drop one link of `ino`; free it when no link is left.
    fn drop_link(&mut self, ino: Ino) -> Result<()> {
        let mut inode = self.read_inode(ino)?;
        let links = inode.links();
        if links > 1 && !inode.is_dir() {
            inode.set_links(links - 1);
            inode.set_ctime(self.now());
            return self.write_inode(&inode);
        }
        self.release_inode(inode)
    }

    /// Free an inode and everything it owns.
    fn release_inode(&mut self, mut inode: Inode) -> Result<()> {
        let was_dir = inode.is_dir();
        self.truncate_blocks(&mut inode, 0)?;
        self.release_xattr_block(&mut inode)?;
        inode.set_links(0);
        inode.set_size(0);
        inode.set_dtime(self.now().secs.clamp(1, u32::MAX as i64) as u32);
        self.write_inode(&inode)?;
        self.free_inode(inode.ino, was_dir)?;
        self.dir_room_hint.remove(&inode.ino);
        self.fresh_dirs.remove(&inode.ino);
        self.subdir_counts.remove(&inode.ino);
        Ok(())
    }

    /// Remove a non-directory entry.
    pub fn unlink(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        self.ensure_writable()?;
        let mut d = self.dir_inode(parent)?;
        let e = self
            .lookup(&d, name)?
            .ok_or_else(|| Error::NotFound(Self::name_str(name)))?;
        let inode = self.read_inode(e.ino)?;
        if inode.is_dir() {
            return Err(Error::IsADirectory(Self::name_str(name)));
        }
        self.remove_entry(&mut d, name)?;
        self.drop_link(e.ino)?;
        self.touch_dir(parent)
    }

    /// Remove an empty directory.
    pub fn rmdir(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        self.ensure_writable()?;
        let mut d = self.dir_inode(parent)?;
        let e = self
            .lookup(&d, name)?
            .ok_or_else(|| Error::NotFound(Self::name_str(name)))?;
        if name == b"." || name == b".." {
            return Err(Error::Invalid("cannot remove . or ..".into()));
        }
        let inode = self.read_inode(e.ino)?;
        if !inode.is_dir() {
            return Err(Error::NotADirectory(Self::name_str(name)));
        }
        if e.ino == ROOT_INO {
            return Err(Error::Invalid("cannot remove the root directory".into()));
        }
        if !self.dir_is_empty(&inode)? {
            return Err(Error::NotEmpty(Self::name_str(name)));
        }
        self.remove_entry(&mut d, name)?;
        self.release_inode(inode)?;
        let mut p = self.read_inode(parent)?;
        self.dec_dir_links(&mut p)?;
        let now = self.now();
        p.set_mtime(now);
        p.set_ctime(now);
        self.write_inode(&p)
    }

    /// Remove `name` and, for a directory, everything below it. A tree
    /// whose removal does not fit in one journal transaction is committed
    /// in steps, each a consistent filesystem (a partly removed tree).
    ///
    /// The walk is iterative (no recursion, so any depth) and linear: each
    /// directory block is read once, and each entry is removed at the
    /// offset where it was read, without searching the directory again.
    /// Loops are found by the directories on the current path
    /// ([`crate::dir::TreeVisit`]), not by depth.
    pub fn remove_tree(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        self.ensure_writable()?;
        let d = self.dir_inode(parent)?;
        let e = self
            .lookup(&d, name)?
            .ok_or_else(|| Error::NotFound(Self::name_str(name)))?;
        if name == b"." || name == b".." {
            return Err(Error::Invalid("cannot remove . or ..".into()));
        }
        let inode = self.read_inode(e.ino)?;
        if !inode.is_dir() {
            return self.unlink(parent, name);
        }
        if e.ino == ROOT_INO {
            return Err(Error::Invalid("cannot remove the root directory".into()));
        }
        self.empty_tree(parent, e.ino)?;
        self.rmdir(parent, name)
    }

    /// Remove everything below directory `top` (whose parent is `parent`),
    /// leaving it empty.
    fn empty_tree(&mut self, parent: Ino, top: Ino) -> Result<()> {
        /// One directory being emptied.
        struct Level {
            ino: Ino,
            blocks: Vec<(u64, u64)>,
            next_block: usize,
            /// Entries of the current block: (offset, entry).
            ents: Vec<(usize, DirEntry)>,
            next_ent: usize,
            lblk: u64,
            pblk: u64,
            /// The live entry before the next one in the current block.
            prev: Option<usize>,
            /// A subdirectory being emptied below: (offset, entry).
            waiting: Option<(usize, DirEntry)>,
        }
        let open = |fs: &Self, ino: Ino, parent: Ino| -> Result<Level> {
            let d = fs.dir_inode(ino)?;
            // A directory reached from `parent` must name it as `..`: a
            // subtree linked elsewhere too must not be removed from here.
            match fs.lookup(&d, b"..")? {
                Some(up) if up.ino == parent => {}
                Some(up) => {
                    return Err(Error::corrupt(format!(
                    "directory inode {ino} is in directory inode {parent} but its .. is inode {}",
                    up.ino
                )))
                }
                None => {
                    return Err(Error::corrupt(format!(
                        "directory inode {ino} has no .. entry"
                    )))
                }
            }
            Ok(Level {
                ino,
                blocks: fs.dir_blocks(&d)?,
                next_block: 0,
                ents: Vec::new(),
                next_ent: 0,
                lblk: 0,
                pblk: 0,
                prev: None,
                waiting: None,
            })
        };
        let mut visit = crate::dir::TreeVisit::new();
        visit.enter(top)?;
        let mut stack = vec![open(self, top, parent)?];
        while let Some(lv) = stack.last_mut() {
            if let Some((off, c)) = lv.waiting.take() {
                // The subdirectory below is empty now: free it and its entry.
                let (dino, lblk, pblk, prev) = (lv.ino, lv.lblk, lv.pblk, lv.prev);
                let sub = self.read_inode(c.ino)?;
                self.release_inode(sub)?;
                let d = self.read_inode(dino)?;
                let keeper = self.remove_entry_at(&d, lblk, pblk, off, prev, &c.name)?;
                let mut d = self.read_inode(dino)?;
                self.dec_dir_links(&mut d)?;
                self.write_inode(&d)?;
                stack.last_mut().expect("still there").prev = Some(keeper);
                self.commit_if_large()?;
                continue;
            }
            if lv.next_ent < lv.ents.len() {
                let (off, c) = lv.ents[lv.next_ent].clone();
                lv.next_ent += 1;
                let keep = c.ino == 0 || c.name == b"." || c.name == b"..";
                if keep {
                    lv.prev = Some(off);
                    continue;
                }
                let (dino, lblk, pblk, prev) = (lv.ino, lv.lblk, lv.pblk, lv.prev);
                let child = self.read_inode(c.ino)?;
                if child.is_dir() {
                    visit.enter(c.ino)?;
                    let sub = open(self, c.ino, dino)?;
                    stack.last_mut().expect("still there").waiting = Some((off, c));
                    stack.push(sub);
                    continue;
                }
                let d = self.read_inode(dino)?;
                let keeper = self.remove_entry_at(&d, lblk, pblk, off, prev, &c.name)?;
                self.drop_link(c.ino)?;
                stack.last_mut().expect("still there").prev = Some(keeper);
                self.commit_if_large()?;
                continue;
            }
            if lv.next_block < lv.blocks.len() {
                let (lblk, pblk) = lv.blocks[lv.next_block];
                lv.next_block += 1;
                let ents = self.block_entries(lv.ino, lblk, pblk)?;
                let lv = stack.last_mut().expect("still there");
                lv.ents = ents.into_iter().map(|(off, _, e)| (off, e)).collect();
                lv.next_ent = 0;
                lv.lblk = lblk;
                lv.pblk = pblk;
                lv.prev = None;
                continue;
            }
            // Every block done: this directory is empty.
            visit.leave(lv.ino);
            stack.pop();
        }
        Ok(())
    }

    /// True if directory `anc` is `ino` or one of its ancestors.
    fn is_ancestor(&self, anc: Ino, mut ino: Ino) -> Result<bool> {
        for _ in 0..65536 {
            if ino == anc {
                return Ok(true);
            }
            if ino == ROOT_INO {
                return Ok(false);
            }
            let d = self.dir_inode(ino)?;
            let up = self
                .lookup(&d, b"..")?
                .ok_or_else(|| Error::corrupt(format!("directory inode {ino} has no .. entry")))?;
            ino = up.ino;
        }
        Err(Error::corrupt("directory loop while walking up"))
    }

    /// Move `sname` of `sparent` to `dname` of `dparent`, replacing a
    /// destination file (or empty directory) as rename(2) does.
    pub fn rename(&mut self, sparent: Ino, sname: &[u8], dparent: Ino, dname: &[u8]) -> Result<()> {
        self.ensure_writable()?;
        check_name(dname)?;
        let sd = self.dir_inode(sparent)?;
        let se = self
            .lookup(&sd, sname)?
            .ok_or_else(|| Error::NotFound(Self::name_str(sname)))?;
        if sname == b"." || sname == b".." {
            return Err(Error::Invalid("cannot move . or ..".into()));
        }
        let src = self.read_inode(se.ino)?;
        let is_dir = src.is_dir();
        let dd = self.dir_inode(dparent)?;
        if is_dir && self.is_ancestor(se.ino, dparent)? {
            return Err(Error::Invalid(format!(
                "cannot move directory {} into itself",
                Self::name_str(sname)
            )));
        }
        let existing = self.lookup(&dd, dname)?;
        let mut settle: Vec<Ino> = Vec::new();
        if let Some(de) = &existing {
            if de.ino == se.ino {
                return Ok(()); // same file: nothing to do
            }
            let dst = self.read_inode(de.ino)?;
            match (is_dir, dst.is_dir()) {
                (true, true) => {
                    if !self.dir_is_empty(&dst)? {
                        return Err(Error::NotEmpty(Self::name_str(dname)));
                    }
                }
                (true, false) => return Err(Error::NotADirectory(Self::name_str(dname))),
                (false, true) => return Err(Error::IsADirectory(Self::name_str(dname))),
                (false, false) => {}
            }
            self.retarget_entry(&dd, dname, se.ino, src.file_type())?;
            if dst.is_dir() {
                self.release_inode(dst)?;
                let mut p = self.read_inode(dparent)?;
                if p.links() == 1 {
                    settle.push(dparent);
                } else {
                    self.dec_dir_links(&mut p)?;
                    self.write_inode(&p)?;
                }
            } else {
                self.drop_link(de.ino)?;
            }
        } else {
            if is_dir && sparent != dparent {
                self.check_subdir_room(&dd)?;
            }
            let mut dd = dd;
            self.add_entry(&mut dd, dname, se.ino, src.file_type())?;
        }
        let mut sd = self.read_inode(sparent)?;
        self.remove_entry(&mut sd, sname)?;
        if is_dir && sparent != dparent {
            let moved = self.read_inode(se.ino)?;
            self.retarget_entry(&moved, b"..", dparent, FileType::Directory)?;
            let mut s = self.read_inode(sparent)?;
            if s.links() == 1 {
                settle.push(sparent);
            } else {
                self.dec_dir_links(&mut s)?;
                self.write_inode(&s)?;
            }
            let mut d = self.read_inode(dparent)?;
            if d.links() == 1 {
                settle.push(dparent);
            } else {
                self.inc_dir_links(&mut d);
                self.write_inode(&d)?;
            }
        }
        // Directories whose link count is 1 (dir_nlink): counted again now
        // that every entry is in place.
        for ino in settle {
            self.settle_dir_links(ino)?;
        }
        let now = self.now();
        let mut m = self.read_inode(se.ino)?;
        m.set_ctime(now);
        self.write_inode(&m)?;
        self.touch_dir(sparent)?;
        if dparent != sparent {
            self.touch_dir(dparent)?;
        }
        Ok(())
    }

    /// Set permission bits.
    pub fn set_perm(&mut self, ino: Ino, perm: u16) -> Result<()> {
        self.ensure_writable()?;
        let mut i = self.read_inode(ino)?;
        i.set_mode((i.mode() & mode::S_IFMT) | (perm & 0o7777));
        i.set_ctime(self.now());
        self.write_inode(&i)
    }

    /// Set owner and group.
    pub fn set_owner(&mut self, ino: Ino, uid: u32, gid: u32) -> Result<()> {
        self.ensure_writable()?;
        let mut i = self.read_inode(ino)?;
        i.set_owner(uid, gid);
        i.set_ctime(self.now());
        self.write_inode(&i)
    }

    /// Set access and/or modification time.
    pub fn set_times(
        &mut self,
        ino: Ino,
        atime: Option<Timestamp>,
        mtime: Option<Timestamp>,
    ) -> Result<()> {
        self.ensure_writable()?;
        let mut i = self.read_inode(ino)?;
        if let Some(t) = atime {
            i.set_atime(t);
        }
        if let Some(t) = mtime {
            i.set_mtime(t);
        }
        i.set_ctime(self.now());
        self.write_inode(&i)
    }

    /// Change a regular file's size (by inode number).
    pub fn truncate_ino(&mut self, ino: Ino, size: u64) -> Result<()> {
        self.ensure_writable()?;
        let mut i = self.read_inode(ino)?;
        self.truncate(&mut i, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;
    use crate::fs::OpenOptions;

    fn sample_bytes() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample.ext3")).unwrap()
    }

    fn open(bytes: Vec<u8>) -> Filesystem {
        Filesystem::open_device(Box::new(MemDevice::new(bytes)), &OpenOptions::read_write())
            .unwrap()
    }

    #[test]
    fn nothing_is_written_before_commit() {
        let bytes = sample_bytes();
        let mut fs = open(bytes.clone());
        let root = fs.root();
        fs.create_file(root, b"f", &NewFile::default(), &mut &b"data"[..])
            .unwrap();
        assert!(fs.is_dirty());
        // Staged content is visible before commit...
        let ino = fs.resolve("/f", true).unwrap();
        let mut out = Vec::new();
        fs.read_file(&fs.read_inode(ino).unwrap(), &mut out)
            .unwrap();
        assert_eq!(out, b"data");
        // ...and a rollback forgets it.
        fs.rollback().unwrap();
        assert!(fs.try_resolve("/f", true).unwrap().is_none());
        assert_eq!(
            fs.free_blocks(),
            crate::superblock::Superblock::parse(&bytes[1024..2048])
                .unwrap()
                .free_blocks()
        );
    }

    #[test]
    fn free_counts_return_after_create_and_remove() {
        let mut fs = open(sample_bytes());
        let (b0, i0) = (fs.free_blocks(), fs.free_inodes());
        let root = fs.root();
        let d = fs
            .mkdir(
                root,
                b"d",
                &NewFile {
                    perm: 0o755,
                    ..Default::default()
                },
            )
            .unwrap();
        let data = vec![7u8; 300 * 1024];
        fs.create_file(d, b"big", &NewFile::default(), &mut &data[..])
            .unwrap();
        fs.commit().unwrap();
        assert!(fs.free_blocks() < b0 - 300);
        fs.remove_tree(root, b"d").unwrap();
        fs.commit().unwrap();
        assert_eq!((fs.free_blocks(), fs.free_inodes()), (b0, i0));
    }

    #[test]
    fn errors_leave_state_alone() {
        let mut fs = open(sample_bytes());
        let root = fs.root();
        assert!(matches!(
            fs.mkdir(root, b"etc", &NewFile::default()),
            Err(Error::Exists(_))
        ));
        assert!(matches!(fs.rmdir(root, b"etc"), Err(Error::NotEmpty(_))));
        assert!(matches!(
            fs.unlink(root, b"etc"),
            Err(Error::IsADirectory(_))
        ));
        let etc = fs.resolve("/etc", true).unwrap();
        assert!(matches!(
            fs.rename(root, b"etc", etc, b"inside"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            fs.create_file(root, b"a/b", &NewFile::default(), &mut &b""[..]),
            Err(Error::Invalid(_))
        ));
        let hosts = fs.resolve("/etc/hosts", true).unwrap();
        assert!(matches!(
            fs.link(etc, root, b"etc2"),
            Err(Error::IsADirectory(_))
        ));
        fs.link(hosts, root, b"hosts2").unwrap();
        assert_eq!(fs.read_inode(hosts).unwrap().links(), 2);
    }

    #[test]
    fn read_only_filesystem_refuses_changes() {
        let fs0 = Filesystem::open_device(
            Box::new(MemDevice::new(sample_bytes())),
            &OpenOptions::read_only(),
        )
        .unwrap();
        let mut fs = fs0;
        let root = fs.root();
        assert!(matches!(
            fs.mkdir(root, b"x", &NewFile::default()),
            Err(Error::ReadOnly(_))
        ));
    }

    #[test]
    fn unsupported_features_refuse_writes_but_read() {
        let mut bytes = sample_bytes();
        // Turn on the encrypt feature (incompat 0x10000) in the superblock.
        bytes[1024 + 0x62] |= 0x01;
        let e = Filesystem::open_device(
            Box::new(MemDevice::new(bytes.clone())),
            &OpenOptions::read_write(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("encrypt"), "{e}");
        let fs =
            Filesystem::open_device(Box::new(MemDevice::new(bytes)), &OpenOptions::read_only())
                .unwrap();
        assert!(fs.write_refusal().unwrap().contains("encrypt"));
        assert!(fs.resolve("/etc/hosts", true).is_ok());
    }
}
