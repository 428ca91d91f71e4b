//! Directories: entry blocks, lookup, adding and removing entries.
//!
//! A directory is a file whose blocks hold a chain of variable-length
//! entries: `inode` (u32, 0 = unused), `rec_len` (u16, distance to the next
//! entry), `name_len` (u8; u16 without the `filetype` feature) and
//! `file_type` (u8), then the name. `rec_len` is a multiple of 4 and the
//! last entry of a block reaches the block's end.
//!
//! Hashed (htree, `dir_index`) directories keep the same leaf blocks and
//! hide their index inside entries that linear readers skip: the root block
//! holds `.` and a `..` entry whose `rec_len` covers the index, and interior
//! index blocks hold one empty entry that covers the whole block. So a
//! linear scan reads every directory correctly.
//!
//! **Writes and the htree index:** removing an entry keeps the index valid
//! (hash ranges do not change). Adding an entry to an indexed directory
//! goes through [`crate::htree`], which keeps the index and grows it
//! (leaf splits, index node splits, new levels); a linear directory of
//! one full block becomes indexed there when the file system has
//! `dir_index`, as the kernel does. Lookups go through the index too. Only
//! an index that cannot be followed is ignored (its `INDEX` flag cleared,
//! the directory used linearly, as the kernel does), and never with
//! `metadata_csum`.
//!
//! **metadata_csum:** every leaf block then ends with a 12-byte dirent
//! tail (a fake entry: inode 0, `rec_len` 12, `name_len` 0, file type
//! 0xDE, then the checksum), which inserting never uses; the checksum is
//! set at commit from the block's role ([`BlockRole`]), which every change
//! here gives.

use std::collections::HashSet;

use crate::csum;
use crate::error::{Error, Result};
use crate::fs::{BlockRole, Filesystem};
use crate::inode::{Ino, Inode};
use crate::layout::{feature, iflag, le16, le32, put16, put32, FileType};

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The inode it names.
    pub ino: Ino,
    /// The name bytes (no NUL, no slash).
    pub name: Vec<u8>,
    /// File type from the entry (`Unknown` without the `filetype` feature).
    pub ftype: FileType,
}

impl DirEntry {
    /// The name, lossily as UTF-8.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Where an entry was found: (logical block, physical block, offset,
/// offset of the entry before it in the block, the entry).
pub(crate) type FoundEntry = (u64, u64, usize, Option<usize>, DirEntry);

struct Raw<'a> {
    off: usize,
    ino: u32,
    rec_len: usize,
    name: &'a [u8],
    ftype: u8,
}

/// Write one directory entry into a block buffer.
fn write_entry_raw(
    d: &mut [u8],
    filetype: bool,
    off: usize,
    ino: Ino,
    rec_len: usize,
    name: &[u8],
    ftype: FileType,
) {
    put32(d, off, ino);
    put16(d, off + 4, rec_len as u16);
    if filetype {
        d[off + 6] = name.len() as u8;
        d[off + 7] = ftype.dirent_code();
    } else {
        put16(d, off + 6, name.len() as u16);
    }
    d[off + 8..off + 8 + name.len()].copy_from_slice(name);
}

/// Smallest record that holds a name of `n` bytes.
pub fn rec_len_for(n: usize) -> usize {
    (8 + n + 3) & !3
}

/// Check a name for use in a directory.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Error::Invalid(format!(
            "invalid file name {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    if name.len() > 255 {
        return Err(Error::Invalid(format!(
            "file name is {} bytes long, more than 255: {}...",
            name.len(),
            String::from_utf8_lossy(&name[..40])
        )));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(Error::Invalid(format!(
            "file name {:?} contains '/' or NUL",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// What block `lblk` of directory `dir`, holding `data`, is: an htree
/// node (the root, block 0 of an indexed directory, or an interior node,
/// one empty entry covering the block) or a leaf.
pub(crate) fn dir_block_role(dir: &Inode, lblk: u64, data: &[u8]) -> BlockRole {
    let (ino, gen) = (dir.ino, dir.generation());
    if dir.has_flag(iflag::INDEX) && (lblk == 0 || csum::dx_count_offset(data) == Some(8)) {
        BlockRole::DxNode { ino, gen }
    } else {
        BlockRole::DirLeaf { ino, gen }
    }
}

impl Filesystem {
    fn decode_rec_len(&self, v: u16) -> usize {
        let bs = self.block_size();
        if bs < 65536 {
            v as usize
        } else if v == 65535 || v == 0 {
            bs
        } else {
            (v as usize & 65532) | ((v as usize & 3) << 16)
        }
    }

    /// Bytes at the end of each directory leaf block that entries do not
    /// cover: the checksum tail with metadata_csum, else none.
    pub(crate) fn dir_tail_len(&self) -> usize {
        if self.metadata_csum() {
            csum::DIRENT_TAIL_LEN
        } else {
            0
        }
    }

    /// Check the checksum of directory block `lblk` (at `pblk`, holding
    /// `data`) of `dir`, as read.
    pub(crate) fn check_dir_block(
        &self,
        dir: &Inode,
        lblk: u64,
        pblk: u64,
        data: &[u8],
    ) -> Result<()> {
        if !self.metadata_csum() {
            return Ok(());
        }
        self.verify_block_csum(pblk, data, dir_block_role(dir, lblk, data))
    }

    /// Say what the staged directory block `pblk` (block `lblk` of `dir`)
    /// is, for its checksum at commit.
    pub(crate) fn note_dir_block(&mut self, dir: &Inode, lblk: u64, pblk: u64) -> Result<()> {
        if !self.metadata_csum() {
            return Ok(());
        }
        let role = self.with_block(pblk, |d| dir_block_role(dir, lblk, d))?;
        self.set_block_role(pblk, role);
        Ok(())
    }

    /// Read directory block `lblk` at `pblk` of `dir` and check it.
    fn dir_block_checked(&self, dir: &Inode, lblk: u64, pblk: u64) -> Result<Vec<u8>> {
        let data = self.block(pblk)?;
        self.check_dir_block(dir, lblk, pblk, &data)?;
        Ok(data)
    }

    /// The role of a directory leaf block of `dir`.
    pub(crate) fn dir_leaf_role(dir: &Inode) -> BlockRole {
        BlockRole::DirLeaf {
            ino: dir.ino,
            gen: dir.generation(),
        }
    }

    /// A leaf block holding `ents` packed from the start, the last one
    /// reaching the end (the dirent tail with metadata_csum); one empty
    /// entry when there are none.
    pub(crate) fn pack_dir_block(&self, ents: &[(&[u8], Ino, FileType)]) -> Vec<u8> {
        let bs = self.block_size();
        let end = bs - self.dir_tail_len();
        let mut b = vec![0u8; bs];
        let mut off = 0;
        for (i, &(name, ino, ft)) in ents.iter().enumerate() {
            let rec = if i + 1 == ents.len() {
                end - off
            } else {
                rec_len_for(name.len())
            };
            self.write_entry(&mut b, off, ino, rec, name, ft);
            off += rec;
        }
        if ents.is_empty() {
            put16(&mut b, 4, end as u16);
        }
        if self.metadata_csum() {
            csum::init_dirent_tail(&mut b);
        }
        b
    }

    /// Walk the entries of one directory block. `f` returns true to stop.
    fn parse_dir_block(
        &self,
        dir: Ino,
        lblk: u64,
        data: &[u8],
        mut f: impl FnMut(&Raw) -> bool,
    ) -> Result<()> {
        let ft = self.has_filetype();
        // With metadata_csum, leaf blocks end with the checksum tail,
        // which is no entry.
        let end = if self.metadata_csum() && csum::has_dirent_tail(data) {
            data.len() - csum::DIRENT_TAIL_LEN
        } else {
            data.len()
        };
        let data = &data[..end];
        let mut off = 0;
        while off + 8 <= data.len() {
            let ino = le32(data, off);
            let rec_len = self.decode_rec_len(le16(data, off + 4));
            let (name_len, ftype) = if ft {
                (data[off + 6] as usize, data[off + 7])
            } else {
                (le16(data, off + 6) as usize, 0)
            };
            if rec_len < 8
                || !rec_len.is_multiple_of(4)
                || off + rec_len > data.len()
                || (ino != 0 && 8 + name_len > rec_len)
            {
                return Err(Error::corrupt(format!(
                    "directory inode {dir}, block {lblk}, offset {off}: bad entry (rec_len {rec_len}, name_len {name_len})"
                )));
            }
            let name = if ino != 0 {
                &data[off + 8..off + 8 + name_len]
            } else {
                &[][..]
            };
            if f(&Raw {
                off,
                ino,
                rec_len,
                name,
                ftype,
            }) {
                return Ok(());
            }
            off += rec_len;
        }
        if off != data.len() {
            return Err(Error::corrupt(format!(
                "directory inode {dir}, block {lblk}: entries do not end at the block end"
            )));
        }
        Ok(())
    }

    fn dir_check(&self, dir: &Inode) -> Result<()> {
        if !dir.is_dir() {
            return Err(Error::NotADirectory(format!("inode {}", dir.ino)));
        }
        Ok(())
    }

    /// The mapped blocks of a directory as (logical, physical). A map that
    /// uses a block twice is corrupt (it would repeat entries without
    /// bound): "directory inode N maps block B twice".
    pub(crate) fn dir_blocks(&self, dir: &Inode) -> Result<Vec<(u64, u64)>> {
        let n = dir
            .size_with(self.large_dir())
            .div_ceil(self.block_size() as u64);
        let runs = self.block_runs_distinct(dir, n, "directory inode")?;
        let mut v = Vec::new();
        for r in runs {
            if r.uninit {
                continue;
            }
            for i in 0..r.len {
                v.push((r.lblk + i, r.pblk + i));
            }
        }
        Ok(v)
    }

    /// Every entry of a directory, `.` and `..` included, in on-disk order.
    pub fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        self.dir_check(dir)?;
        let mut out = Vec::new();
        if dir.has_flag(iflag::INLINE_DATA) {
            return self.read_inline_dir(dir);
        }
        for (lblk, pblk) in self.dir_blocks(dir)? {
            let data = self.dir_block_checked(dir, lblk, pblk)?;
            self.collect_entries(dir.ino, lblk, &data, &mut out)?;
        }
        Ok(out)
    }

    /// The live entries of one directory block (or inline area), appended
    /// to `out`.
    fn collect_entries(
        &self,
        ino: Ino,
        lblk: u64,
        data: &[u8],
        out: &mut Vec<DirEntry>,
    ) -> Result<()> {
        self.parse_dir_block(ino, lblk, data, |e| {
            if e.ino != 0 {
                out.push(DirEntry {
                    ino: e.ino,
                    name: e.name.to_vec(),
                    ftype: FileType::from_dirent_code(e.ftype),
                });
            }
            false
        })?;
        Ok(())
    }

    fn read_inline_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        // Inline directories: i_block holds the parent inode (4 bytes) and
        // then entries; more may follow in the system.data attribute.
        let mut out = vec![
            DirEntry {
                ino: dir.ino,
                name: b".".to_vec(),
                ftype: FileType::Directory,
            },
            DirEntry {
                ino: le32(dir.block_bytes(), 0),
                name: b"..".to_vec(),
                ftype: FileType::Directory,
            },
        ];
        let mut areas = vec![dir.block_bytes()[4..].to_vec()];
        for x in self.xattrs(dir)? {
            if x.name == "system.data" && !x.value.is_empty() {
                areas.push(x.value);
            }
        }
        for a in areas {
            self.collect_entries(dir.ino, 0, &a, &mut out)?;
        }
        Ok(out)
    }

    /// Find `name` in a directory.
    pub fn lookup(&self, dir: &Inode, name: &[u8]) -> Result<Option<DirEntry>> {
        self.dir_check(dir)?;
        if dir.has_flag(iflag::INLINE_DATA) {
            return Ok(self
                .read_inline_dir(dir)?
                .into_iter()
                .find(|e| e.name == name));
        }
        if self.is_dx(dir) && name != b"." && name != b".." {
            if let Ok(hit) = self.dx_find(dir, name)? {
                return Ok(hit.map(|h| h.4));
            }
        }
        for (lblk, pblk) in self.dir_blocks(dir)? {
            let mut found = None;
            self.with_block(pblk, |data| {
                self.check_dir_block(dir, lblk, pblk, data)?;
                self.parse_dir_block(dir.ino, lblk, data, |e| {
                    if e.ino != 0 && e.name == name {
                        found = Some(DirEntry {
                            ino: e.ino,
                            name: e.name.to_vec(),
                            ftype: FileType::from_dirent_code(e.ftype),
                        });
                        true
                    } else {
                        false
                    }
                })
            })??;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    pub(crate) fn write_entry(
        &self,
        d: &mut [u8],
        off: usize,
        ino: Ino,
        rec_len: usize,
        name: &[u8],
        ftype: FileType,
    ) {
        write_entry_raw(d, self.has_filetype(), off, ino, rec_len, name, ftype)
    }

    /// The first block of a new directory: `.` and `..`.
    pub(crate) fn new_dir_block(&self, me: Ino, parent: Ino) -> Vec<u8> {
        self.pack_dir_block(&[
            (b".", me, FileType::Directory),
            (b"..", parent, FileType::Directory),
        ])
    }

    /// Add an entry. The caller has checked that `name` is absent. Writes
    /// the directory inode when it grows.
    pub fn add_entry(
        &mut self,
        dir: &mut Inode,
        name: &[u8],
        ino: Ino,
        ftype: FileType,
    ) -> Result<()> {
        self.dir_check(dir)?;
        check_name(name)?;
        if dir.has_flag(iflag::INLINE_DATA) {
            return Err(Error::Unsupported(format!(
                "directory inode {}: adding entries to inline directories",
                dir.ino
            )));
        }
        let hint = self.dir_room_hint.get(&dir.ino).copied().unwrap_or(0);
        let dir_index = self.superblock().has_compat(feature::COMPAT_DIR_INDEX);
        if dir.has_flag(iflag::INDEX) {
            // Keep the index and grow it (see the module documentation).
            let why = if dir_index {
                match self.htree_add(dir, name, ino, ftype)? {
                    Ok(()) => {
                        self.note_fresh_name(dir.ino, name);
                        return Ok(());
                    }
                    Err(why) => why,
                }
            } else {
                "the file system has no dir_index".to_string()
            };
            if self.metadata_csum() {
                return Err(Error::corrupt(format!(
                    "directory inode {}: {why}; its htree index cannot be used or dropped (e2fsck -fD rebuilds it)",
                    dir.ino
                )));
            }
            // Like the kernel: ignore the index; the directory's blocks are
            // all valid linear blocks.
            dir.set_flags(dir.flags() & !iflag::INDEX);
            self.write_inode(dir)?;
        }
        let blocks = self.dir_blocks(dir)?;
        for &(lblk, pblk) in blocks.iter().filter(|(l, _)| *l >= hint) {
            if self.insert_in_block(dir, lblk, pblk, name, ino, ftype)? {
                self.dir_room_hint.insert(dir.ino, lblk);
                self.note_fresh_name(dir.ino, name);
                return Ok(());
            }
        }
        let bs = self.block_size() as u64;
        // One full block: index the directory, as the kernel does.
        if dir_index
            && dir.size_with(self.large_dir()) == bs
            && self.dx_make_indexed(dir, name, ino, ftype)?
        {
            self.dir_room_hint.remove(&dir.ino);
            self.note_fresh_name(dir.ino, name);
            return Ok(());
        }
        // No room: append a block.
        let goal = match blocks.last() {
            Some(&(_, p)) => p + 1,
            None => self
                .superblock()
                .group_first_block(self.inode_group(dir.ino)),
        };
        let (lblk, pblk) = self.dir_append_block(dir, goal)?;
        let buf = self.pack_dir_block(&[(name, ino, ftype)]);
        self.write_meta_block(pblk, &buf)?;
        self.set_block_role(pblk, Self::dir_leaf_role(dir));
        self.dir_room_hint.insert(dir.ino, lblk);
        self.note_fresh_name(dir.ino, name);
        Ok(())
    }

    fn note_fresh_name(&mut self, dir: Ino, name: &[u8]) {
        if let Some(names) = self.fresh_dirs.get_mut(&dir) {
            names.insert(name.to_vec());
        }
    }

    /// Put an entry into directory block `pblk` if it has room; false if
    /// it has none.
    pub(crate) fn insert_in_block(
        &mut self,
        dir: &Inode,
        lblk: u64,
        pblk: u64,
        name: &[u8],
        ino: Ino,
        ftype: FileType,
    ) -> Result<bool> {
        let need = rec_len_for(name.len());
        let mut spot: Option<(usize, usize, usize)> = None; // (off, used, rec_len)
                                                            // With metadata_csum the checked block ends with its tail, which
                                                            // parsing leaves out: it is never a free slot.
        self.with_block(pblk, |data| {
            self.check_dir_block(dir, lblk, pblk, data)?;
            self.parse_dir_block(dir.ino, lblk, data, |e| {
                let used = if e.ino == 0 {
                    0
                } else {
                    rec_len_for(e.name.len())
                };
                if e.rec_len - used >= need {
                    spot = Some((e.off, used, e.rec_len));
                    true
                } else {
                    false
                }
            })
        })??;
        let Some((off, used, rec_len)) = spot else {
            return Ok(false);
        };
        let ft = self.has_filetype();
        self.modify_block(pblk, |buf| {
            if used == 0 {
                write_entry_raw(buf, ft, off, ino, rec_len, name, ftype);
            } else {
                put16(buf, off + 4, used as u16);
                write_entry_raw(buf, ft, off + used, ino, rec_len - used, name, ftype);
            }
        })?;
        self.note_dir_block(dir, lblk, pblk)?;
        Ok(true)
    }

    /// Find `name` in one directory block: (offset, offset of the entry
    /// before it, the entry).
    pub(crate) fn find_in_block(
        &self,
        dir: &Inode,
        lblk: u64,
        pblk: u64,
        name: &[u8],
    ) -> Result<Option<(usize, Option<usize>, DirEntry)>> {
        let mut hit = None;
        let mut prev: Option<usize> = None;
        self.with_block(pblk, |data| {
            self.check_dir_block(dir, lblk, pblk, data)?;
            self.parse_dir_block(dir.ino, lblk, data, |e| {
                if e.ino != 0 && e.name == name {
                    hit = Some((
                        e.off,
                        prev,
                        DirEntry {
                            ino: e.ino,
                            name: e.name.to_vec(),
                            ftype: FileType::from_dirent_code(e.ftype),
                        },
                    ));
                    return true;
                }
                prev = Some(e.off);
                false
            })
        })??;
        Ok(hit)
    }

    /// Find the block and offsets of `name`: (lblk, pblk, off, prev_off).
    /// [`Self::find_entry`] for a change of the entry: the directory
    /// checked, inline directories refused (`what` says what is not
    /// supported), a missing name NotFound.
    fn find_entry_to_change(&self, dir: &Inode, name: &[u8], what: &str) -> Result<FoundEntry> {
        self.dir_check(dir)?;
        if dir.has_flag(iflag::INLINE_DATA) {
            return Err(Error::Unsupported(format!(
                "directory inode {}: {what}",
                dir.ino
            )));
        }
        self.find_entry(dir, name)?
            .ok_or_else(|| Error::NotFound(String::from_utf8_lossy(name).into_owned()))
    }

    fn find_entry(&self, dir: &Inode, name: &[u8]) -> Result<Option<FoundEntry>> {
        if self.is_dx(dir) && name != b"." && name != b".." {
            if let Ok(hit) = self.dx_find(dir, name)? {
                return Ok(hit);
            }
        }
        for (lblk, pblk) in self.dir_blocks(dir)? {
            if let Some((off, prev, de)) = self.find_in_block(dir, lblk, pblk, name)? {
                return Ok(Some((lblk, pblk, off, prev, de)));
            }
        }
        Ok(None)
    }

    /// Remove the entry `name`; returns what it named. Link counts are the
    /// caller's business.
    pub fn remove_entry(&mut self, dir: &mut Inode, name: &[u8]) -> Result<DirEntry> {
        let (lblk, pblk, off, prev, de) =
            self.find_entry_to_change(dir, name, "removing entries from inline directories")?;
        let bs = self.block_size();
        self.modify_block(pblk, |d| {
            let rec = le16(d, off + 4) as usize;
            match prev {
                Some(p) => {
                    let prec = le16(d, p + 4) as usize;
                    put16(d, p + 4, (prec + rec) as u16);
                    d[off..off + rec.min(bs - off)].fill(0);
                }
                None => {
                    put32(d, off, 0);
                    // Clear the name so no stale bytes linger.
                    let n = rec.saturating_sub(8);
                    d[off + 6..off + 8].fill(0);
                    d[off + 8..off + 8 + n].fill(0);
                }
            }
        })?;
        self.note_dir_block(dir, lblk, pblk)?;
        let h = self.dir_room_hint.entry(dir.ino).or_insert(lblk);
        *h = (*h).min(lblk);
        if let Some(names) = self.fresh_dirs.get_mut(&dir.ino) {
            names.remove(name);
        }
        Ok(de)
    }

    /// Point the existing entry `name` at another inode.
    pub fn retarget_entry(
        &mut self,
        dir: &Inode,
        name: &[u8],
        ino: Ino,
        ftype: FileType,
    ) -> Result<()> {
        let (lblk, pblk, off, _, _) = self.find_entry_to_change(dir, name, "inline directories")?;
        let ft = self.has_filetype();
        self.modify_block(pblk, |d| {
            put32(d, off, ino);
            if ft {
                d[off + 7] = ftype.dirent_code();
            }
        })?;
        self.note_dir_block(dir, lblk, pblk)?;
        Ok(())
    }

    /// The entries of one directory block as (offset, rec_len, entry),
    /// empty slots (inode 0) included with an empty name.
    pub(crate) fn block_entries(
        &self,
        dir: Ino,
        lblk: u64,
        pblk: u64,
    ) -> Result<Vec<(usize, usize, DirEntry)>> {
        let mut out = Vec::new();
        let d = if self.metadata_csum() {
            Some(self.read_inode(dir)?)
        } else {
            None
        };
        self.with_block(pblk, |data| {
            if let Some(d) = &d {
                self.check_dir_block(d, lblk, pblk, data)?;
            }
            self.parse_dir_block(dir, lblk, data, |e| {
                out.push((
                    e.off,
                    e.rec_len,
                    DirEntry {
                        ino: e.ino,
                        name: e.name.to_vec(),
                        ftype: FileType::from_dirent_code(e.ftype),
                    },
                ));
                false
            })
        })??;
        Ok(out)
    }

    /// Remove the entry at `off` of directory block `pblk`, knowing where
    /// the live entry before it is (`prev`, None when it is the first of
    /// the block). O(1): no scan. Returns the offset of the entry that now
    /// covers the removed one (the new `prev` for the entry after it).
    pub(crate) fn remove_entry_at(
        &mut self,
        dir: &Inode,
        lblk: u64,
        pblk: u64,
        off: usize,
        prev: Option<usize>,
        name: &[u8],
    ) -> Result<usize> {
        if dir.has_flag(iflag::INLINE_DATA) {
            return Err(Error::Unsupported(format!(
                "directory inode {}: removing entries from inline directories",
                dir.ino
            )));
        }
        let bs = self.block_size();
        let dec = |v: u16| self.decode_rec_len(v);
        let (rec, prec) = self.with_block(pblk, |d| {
            self.check_dir_block(dir, lblk, pblk, d)?;
            Ok::<_, Error>((dec(le16(d, off + 4)), prev.map(|p| dec(le16(d, p + 4)))))
        })??;
        let keeper = match (prev, prec) {
            (Some(p), Some(prec)) if p + prec == off => {
                self.modify_block(pblk, |d| {
                    put16(d, p + 4, (prec + rec) as u16);
                    d[off..(off + rec).min(bs)].fill(0);
                })?;
                p
            }
            (None, _) => {
                self.modify_block(pblk, |d| {
                    put32(d, off, 0);
                    let n = rec.saturating_sub(8);
                    d[off + 6..off + 8].fill(0);
                    d[off + 8..off + 8 + n].fill(0);
                })?;
                off
            }
            _ => {
                return Err(Error::corrupt(format!(
                    "directory inode {}, block {lblk}: entry at offset {off} changed while it was removed",
                    dir.ino
                )))
            }
        };
        self.note_dir_block(dir, lblk, pblk)?;
        let h = self.dir_room_hint.entry(dir.ino).or_insert(lblk);
        *h = (*h).min(lblk);
        if let Some(names) = self.fresh_dirs.get_mut(&dir.ino) {
            names.remove(name);
        }
        Ok(keeper)
    }

    /// True if the directory holds nothing but `.` and `..`.
    pub fn dir_is_empty(&self, dir: &Inode) -> Result<bool> {
        Ok(self
            .read_dir(dir)?
            .iter()
            .all(|e| e.name == b"." || e.name == b".."))
    }
}

/// Loop and repeat detection for a walk over a directory tree. A directory
/// has one parent, so in a sound tree the walk meets each directory once.
/// One met again while it is still on the path from the walk's start is a
/// loop; one met again elsewhere is linked twice. Either is corruption.
/// Depth alone is no sign of either: a valid tree can be thousands of
/// levels deep.
#[derive(Default)]
pub struct TreeVisit {
    on_path: HashSet<Ino>,
    seen: HashSet<Ino>,
}

impl TreeVisit {
    /// A walk that has met nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Step into directory `ino`.
    pub fn enter(&mut self, ino: Ino) -> Result<()> {
        if self.on_path.contains(&ino) {
            return Err(Error::corrupt(format!("directory loop at inode {ino}")));
        }
        if !self.seen.insert(ino) {
            return Err(Error::corrupt(format!(
                "directory inode {ino} is linked from two directories"
            )));
        }
        self.on_path.insert(ino);
        Ok(())
    }

    /// Step out of directory `ino` (after its entries).
    pub fn leave(&mut self, ino: Ino) {
        self.on_path.remove(&ino);
    }
}
