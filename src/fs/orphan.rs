//! The orphan list: inodes that were being deleted (no links left) or
//! truncated when the file system stopped, which the kernel (at mount) and
//! e2fsck (at check) finish.
//!
//! Two forms exist:
//! - ext3's chain: the superblock's `s_last_orphan` names the first inode,
//!   and each inode's `i_dtime` names the next one (0 ends the chain).
//! - ext4's orphan file (`orphan_file`, compat 0x1000): the inode
//!   `s_orphan_file_inum`, whose blocks each hold inode numbers (0 for a
//!   free slot) and end in an 8-byte tail: the magic `0x0b10ca04` and a
//!   crc32c (with metadata_csum). The ro_compat flag `orphan_present`
//!   (0x10000) says that some slot may be in use.
//!
//! Releasing them follows e2fsck (`release_orphan_inodes`, run by
//! `e2fsck -E journal_only` after the replay): `s_last_orphan` is cleared
//! first; on a file system marked with errors nothing else is done (the
//! list cannot be trusted and a full check must follow). Otherwise each
//! inode of the chain, then of the orphan file, is released: with no links
//! its blocks, its extended attribute block reference and the inode itself
//! are freed and its `i_dtime` set to now (its block map is left as it is,
//! as e2fsck leaves it); with links it is truncated to its `i_size`
//! (blocks past the end and emptied indirect blocks freed, `i_dtime`
//! cleared). Orphan file slots are zeroed and `orphan_present` cleared.
//!
//! Where e2fsck would stop half way (an inode number out of range, a block
//! outside the file system or already free, an inode listed twice, a hole
//! in the orphan file, a block without the magic), this refuses before
//! anything is written: e2fsck then leaves a partly released list and a
//! file system marked not clean, which only a full check repairs.
//!
//! One deliberate difference from e2fsck: a truncated (still linked) inode
//! keeps its extended attribute block (e2fsck drops the reference and may
//! free it, losing the attributes; the kernel keeps them). What e2fsck
//! writes into blocks it frees is repeated (the indirect blocks freed by a
//! truncation end up zero, and so does the tail, past the new end's offset,
//! of the first data block freed), so that the images come out the same.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::Ino;
use crate::layout::feature;

/// The orphan block tail magic.
pub const ORPHAN_BLOCK_MAGIC: u32 = 0x0b10_ca04;
/// Superblock state bit: errors were detected.
const STATE_ERROR_FS: u16 = 2;

/// What releasing the orphan list did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Inodes freed (no links left), in the order released.
    pub freed: Vec<Ino>,
    /// Inodes truncated to their size (still linked).
    pub truncated: Vec<Ino>,
    /// True when the file system is marked with errors: as e2fsck does,
    /// only `s_last_orphan` was cleared and nothing released.
    pub skipped_errors: bool,
}

impl OrphanReport {
    /// Inodes released.
    pub fn count(&self) -> usize {
        self.freed.len() + self.truncated.len()
    }
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Filesystem {
    /// True when the superblock lists orphan inodes (`s_last_orphan`, or
    /// `orphan_present` with an orphan file).
    pub fn orphans_pending(&self) -> bool {
        let sb = self.superblock();
        sb.last_orphan() != 0 || sb.has_ro_compat(feature::RO_COMPAT_ORPHAN_PRESENT)
    }

    /// Release the orphan list as e2fsck does (see the module notes). The
    /// changes are staged; nothing is written until commit. An error
    /// leaves the staged state half done: drop the change.
    pub fn release_orphans(&mut self) -> Result<OrphanReport> {
        self.ensure_writable()?;
        let mut rep = OrphanReport::default();
        if !self.orphans_pending() {
            return Ok(rep);
        }
        let sb = self.superblock();
        if sb.has_ro_compat(feature::RO_COMPAT_QUOTA) {
            return Err(Error::Unsupported(
                "releasing orphan inodes on a file system with quota is not supported yet (the quota files would need updating); run e2fsck".into(),
            ));
        }
        let head = sb.last_orphan();
        let present = sb.has_ro_compat(feature::RO_COMPAT_ORPHAN_PRESENT);
        let has_file = sb.has_compat(feature::COMPAT_ORPHAN_FILE);
        let errors = sb.state() & STATE_ERROR_FS != 0;
        // Win or lose, the head of the chain is not used again.
        self.superblock_mut().set_last_orphan(0);
        if errors {
            rep.skipped_errors = true;
            return Ok(rep);
        }
        if head != 0 && !self.orphan_ino_ok(head) {
            return Err(Error::corrupt(format!(
                "orphan list: the superblock's first orphan inode {head} is out of range"
            )));
        }
        let mut seen = HashSet::new();
        let mut ino = head;
        while ino != 0 {
            if !seen.insert(ino) {
                return Err(Error::corrupt(format!(
                    "orphan list: inode {ino} is listed twice (the chain loops); run e2fsck"
                )));
            }
            ino = self.release_orphan(ino, true, &mut rep)?;
        }
        if present && !has_file {
            return Err(Error::corrupt(
                "orphan_present is set but the file system has no orphan file; run e2fsck",
            ));
        }
        if has_file {
            self.release_orphan_file(&mut seen, &mut rep)?;
            self.superblock_mut()
                .clear_ro_compat(feature::RO_COMPAT_ORPHAN_PRESENT);
        }
        Ok(rep)
    }

    fn orphan_ino_ok(&self, ino: Ino) -> bool {
        let sb = self.superblock();
        ino >= sb.first_ino && ino <= sb.inodes_count
    }

    /// Release one orphan; returns the next inode of the chain (`chain`:
    /// the inode is on ext3's chain, whose links are the `i_dtime`s; an
    /// orphan file's inodes are not linked, and their `i_dtime` is a time).
    fn release_orphan(&mut self, ino: Ino, chain: bool, rep: &mut OrphanReport) -> Result<Ino> {
        let inode = self
            .read_inode(ino)
            .map_err(|e| e.at(&format!("orphan inode {ino}")))?;
        let next = if chain { inode.dtime() } else { 0 };
        if next != 0 && !self.orphan_ino_ok(next) {
            return Err(Error::corrupt(format!(
                "orphan list: inode {ino} names inode {next} as the next orphan, which is out of range; run e2fsck"
            )));
        }
        let at = |e: Error| e.at(&format!("orphan inode {ino}"));
        let mut work = inode.clone();
        if inode.links() == 0 {
            // Delete: free the blocks and the inode; the inode keeps its
            // block map (as e2fsck leaves it) with its dtime set.
            self.truncate_blocks(&mut work, 0).map_err(at)?;
            self.release_xattr_block(&mut work).map_err(at)?;
            let mut out = inode;
            out.set_file_acl(0);
            out.set_dtime(self.now().secs.clamp(1, u32::MAX as i64) as u32);
            self.write_inode(&out)?;
            self.free_inode(ino, out.is_dir()).map_err(at)?;
            rep.freed.push(ino);
        } else {
            let bs = self.block_size() as u64;
            let keep = inode.size_with(true).div_ceil(bs);
            let before = self.indirect_blocks(&inode).map_err(at)?;
            // e2fsck zeroes, from the offset of the new end within its
            // block, the tail of the block *after* the last one kept (the
            // first it frees): match it, since that block is free anyway.
            let tail = (inode.size_with(true) % bs) as usize;
            let mapped =
                inode.has_flag(crate::layout::iflag::EXTENTS) || keep < self.max_indirect_blocks();
            let first_freed = if tail != 0 && mapped {
                self.bmap(&inode, keep).map_err(at)?
            } else {
                None
            };
            self.truncate_blocks(&mut work, keep).map_err(at)?;
            // e2fsck clears the pointers of the indirect blocks it frees
            // before freeing them: the freed blocks end up zero on disk.
            let after = self.indirect_blocks(&work).map_err(at)?;
            let zero = vec![0u8; self.block_size()];
            for b in before.difference(&after) {
                self.write_meta_block(*b, &zero)?;
            }
            if let Some(b) = first_freed {
                self.modify_block(b, |d| d[tail..].fill(0))?;
            }
            work.set_dtime(0);
            self.write_inode(&work)?;
            rep.truncated.push(ino);
        }
        Ok(next)
    }

    /// The indirect blocks of an inode mapped by indirect blocks (empty
    /// for extent trees and inodes that map no blocks).
    fn indirect_blocks(&self, inode: &crate::inode::Inode) -> Result<HashSet<u64>> {
        let mut out = HashSet::new();
        if inode.has_flag(crate::layout::iflag::EXTENTS)
            || inode.has_flag(crate::layout::iflag::INLINE_DATA)
            || !(inode.is_reg() || inode.is_dir() || inode.is_symlink())
        {
            return Ok(out);
        }
        let mut budget = self.superblock().blocks_count;
        for level in 1..=3u32 {
            let b = inode.block(11 + level as usize) as u64;
            self.walk_orphan_indirect(inode.ino, b, level, &mut out, &mut budget)?;
        }
        Ok(out)
    }

    fn walk_orphan_indirect(
        &self,
        ino: Ino,
        b: u64,
        level: u32,
        out: &mut HashSet<u64>,
        budget: &mut u64,
    ) -> Result<()> {
        if b == 0 {
            return Ok(());
        }
        self.check_block(b, &|| format!("inode {ino}: indirect block"))?;
        if *budget == 0 || !out.insert(b) {
            return Err(Error::corrupt(format!(
                "inode {ino}: indirect block {b} is used twice"
            )));
        }
        *budget -= 1;
        if level > 1 {
            let data = self.block(b)?;
            for i in 0..self.block_size() / 4 {
                let c = le32(&data, 4 * i) as u64;
                self.walk_orphan_indirect(ino, c, level - 1, out, budget)?;
            }
        }
        Ok(())
    }

    /// Release the inodes the orphan file lists and zero their slots.
    fn release_orphan_file(
        &mut self,
        seen: &mut HashSet<Ino>,
        rep: &mut OrphanReport,
    ) -> Result<()> {
        let oino = self.superblock().orphan_file_inum();
        if oino == 0 || oino > self.superblock().inodes_count {
            return Err(Error::corrupt(format!(
                "orphan file: the superblock's orphan file inode {oino} is out of range"
            )));
        }
        let oinode = self.read_inode(oino).map_err(|e| e.at("orphan file"))?;
        let bs = self.block_size();
        let size = oinode.size_with(true);
        if size % bs as u64 != 0 {
            return Err(Error::corrupt(format!(
                "orphan file (inode {oino}): its size {size} is not a multiple of the block size"
            )));
        }
        let slots = (bs - 8) / 4;
        for lb in 0..size / bs as u64 {
            let Some(pb) = self.bmap(&oinode, lb)? else {
                return Err(Error::corrupt(format!(
                    "orphan file (inode {oino}) has a hole at block {lb}; run e2fsck"
                )));
            };
            self.check_block(pb, &|| format!("orphan file (inode {oino}), block {lb}"))?;
            let mut data = self.block(pb)?;
            if le32(&data, bs - 8) != ORPHAN_BLOCK_MAGIC {
                return Err(Error::corrupt(format!(
                    "orphan file (inode {oino}): block {lb} (block {pb}) lacks the orphan block magic; run e2fsck"
                )));
            }
            let mut changed = false;
            for j in 0..slots {
                let ino = le32(&data, 4 * j);
                if ino == 0 {
                    continue;
                }
                if !self.orphan_ino_ok(ino) {
                    return Err(Error::corrupt(format!(
                        "orphan file (inode {oino}): block {lb} lists inode {ino}, which is out of range; run e2fsck"
                    )));
                }
                if !seen.insert(ino) {
                    return Err(Error::corrupt(format!(
                        "orphan file (inode {oino}): inode {ino} is listed twice; run e2fsck"
                    )));
                }
                self.release_orphan(ino, false, rep)?;
                data[4 * j..4 * j + 4].fill(0);
                changed = true;
            }
            if changed {
                self.write_meta_block(pb, &data)?;
                self.set_block_role(
                    pb,
                    super::BlockRole::OrphanBlock {
                        ino: oino,
                        gen: oinode.generation(),
                    },
                );
            }
        }
        Ok(())
    }
}

impl Filesystem {
    /// Stage the release of a pending orphan list (see the module notes).
    pub(super) fn stage_orphans(&mut self) -> Result<()> {
        if !self.orphans_pending() {
            return Ok(());
        }
        let r = self
            .release_orphans()
            .map_err(|e| e.at("cannot release the orphan list"))?;
        self.orphan_report = Some(r);
        Ok(())
    }
}
