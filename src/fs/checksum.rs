//! The engine's side of metadata checksums ([`crate::csum`] has the
//! functions and the on-disk layout): set at commit, in one place, over
//! what is staged; verified as metadata is read from the image.
//!
//! At commit ([`Filesystem::set_checksums`], called by the commit before
//! the descriptors and the superblock are placed): every staged block
//! with a [`BlockRole`] gets its checksum, then every inode written in the
//! transaction (over its staged inode table block), then the checksums of
//! the staged bitmaps go into their descriptors, then the descriptors'
//! own; the superblock's is set last, as it is placed.
//!
//! On read, a mismatch is an error that names what and where ("inode 12:
//! checksum mismatch (stored 0x..., computed 0x...)", "block 1234
//! (extent tree of inode 12): ..."), for read-only commands too: the
//! kernel fails such a read (EFSBADCRC) rather than hand out metadata it
//! cannot trust, and a listing or a copy built on a damaged block would
//! be silently wrong; e2fsck is the tool that repairs it. Two exceptions
//! follow the kernel: group descriptors with a bad checksum make the
//! image read-only (the kernel still mounts it read-only) instead of
//! failing the open, and inodes of all zeros (never written; mke2fs
//! leaves the table so) are taken as they are. Blocks and inodes staged
//! in this transaction are not checked: their checksums are set at
//! commit. A write never builds on a block whose checksum is wrong: the
//! bitmaps are checked before allocating from or freeing into them, and
//! every block a writer reads goes through the same checks.

use super::{BlockRole, Filesystem};
use crate::csum::{self, DescCsum, Problem};
use crate::error::{Error, Result};
use crate::inode::Inode;

fn role_what(role: &BlockRole) -> String {
    match role {
        BlockRole::DirLeaf { ino, .. } => format!("directory block of inode {ino}"),
        BlockRole::DxNode { ino, .. } => format!("htree node of directory inode {ino}"),
        BlockRole::ExtentNode { ino, .. } => format!("extent tree of inode {ino}"),
        BlockRole::Xattr => "extended attribute block".into(),
        BlockRole::OrphanBlock { ino, .. } => format!("orphan file inode {ino}"),
    }
}

impl Filesystem {
    /// metadata_csum is on: metadata blocks, inodes and bitmaps carry
    /// crc32c checksums.
    pub(crate) fn metadata_csum(&self) -> bool {
        self.csum.metadata_csum
    }

    /// Check the superblock's own checksum (raw bytes as read).
    pub(super) fn verify_superblock_csum(&self, raw: &[u8]) -> Result<()> {
        csum::verify_superblock(raw).map_err(|p| Error::corrupt(format!("superblock: {p}")))
    }

    /// Why the image may not be written because of a group descriptor
    /// checksum, if one is wrong.
    pub(super) fn check_group_desc_csums(&self) -> Option<String> {
        if self.csum.desc_csum == DescCsum::None {
            return None;
        }
        for (g, gd) in self.groups.iter().enumerate() {
            if let Err(p) = self.csum.verify_group_desc(g as u32, gd.raw()) {
                return Some(format!("group {g} descriptor: {p}; run e2fsck"));
            }
        }
        None
    }

    /// Check an inode read from the image.
    pub(super) fn verify_inode_csum(&self, inode: &Inode) -> Result<()> {
        if !self.csum.inode_csums() || csum::inode_is_zero(inode.raw()) {
            return Ok(());
        }
        self.csum
            .verify_inode(inode.ino, inode.raw())
            .map_err(|p| Error::corrupt(format!("inode {}: {p}", inode.ino)))
    }

    /// Check group `g`'s inode or block bitmap (block `b`) against its
    /// descriptor, unless it is staged (its checksum is set at commit) or
    /// not initialised.
    pub(super) fn verify_bitmap_csum(&self, g: u32, inode: bool, b: u64) -> Result<()> {
        if !self.csum.metadata_csum || self.overlay.contains_key(&b) {
            return Ok(());
        }
        if (inode && self.inode_uninit(g)) || (!inode && self.block_uninit(g)) {
            return Ok(());
        }
        let gd = self.groups[g as usize].raw();
        let data = self.block(b)?;
        let (r, what) = if inode {
            (self.csum.verify_inode_bitmap(gd, &data), "inode bitmap")
        } else {
            (self.csum.verify_block_bitmap(gd, &data), "block bitmap")
        };
        r.map_err(|p| Error::corrupt(format!("block {b} ({what} of group {g}): {p}")))
    }

    /// Check block `b`, read as `data`, as a block of kind `role`, unless
    /// it is staged in this transaction (its checksum is set at commit).
    pub(crate) fn verify_block_csum(&self, b: u64, data: &[u8], role: BlockRole) -> Result<()> {
        if !self.csum.metadata_csum || self.overlay.contains_key(&b) {
            return Ok(());
        }
        let p = &self.csum;
        let r = match role {
            BlockRole::DirLeaf { ino, gen } => csum::verify_dir_leaf(p.inode_seed(ino, gen), data),
            BlockRole::DxNode { ino, gen } => match csum::dx_count_offset(data) {
                Some(off) => csum::verify_dx_node(p.inode_seed(ino, gen), data, off),
                None => Err(Problem::Malformed("not an htree node")),
            },
            BlockRole::ExtentNode { ino, gen } => {
                csum::verify_extent_block(p.inode_seed(ino, gen), data)
            }
            BlockRole::Xattr => csum::verify_xattr_block(p.seed, b, data),
            BlockRole::OrphanBlock { ino, gen } => {
                csum::verify_orphan_block(p.inode_seed(ino, gen), b, data)
            }
        };
        r.map_err(|e| Error::corrupt(format!("block {b} ({}): {e}", role_what(&role))))
    }

    /// Set the checksums of those of `blocks` that are staged with a role
    /// (metadata_csum): at commit, and for new blocks that are written
    /// ahead of it (see `spill_data`).
    pub(super) fn set_role_checksums(&mut self, blocks: &[u64]) -> Result<()> {
        if !self.csum.metadata_csum {
            return Ok(());
        }
        let p = self.csum.clone();
        for &b in blocks {
            let Some(role) = self.roles.get(&b).copied() else {
                continue;
            };
            // A block freed after it was given a role is no longer
            // staged.
            let Some(s) = self.overlay.get_mut(&b) else {
                continue;
            };
            let data = &mut s.data[..];
            let r = match role {
                BlockRole::DirLeaf { ino, gen } => {
                    csum::set_dir_leaf_csum(p.inode_seed(ino, gen), data)
                }
                BlockRole::DxNode { ino, gen } => match csum::dx_count_offset(data) {
                    Some(off) => csum::set_dx_node_csum(p.inode_seed(ino, gen), data, off),
                    None => Err(Problem::Malformed("not an htree node")),
                },
                BlockRole::ExtentNode { ino, gen } => {
                    csum::set_extent_block_csum(p.inode_seed(ino, gen), data)
                }
                BlockRole::Xattr => {
                    csum::set_xattr_block_csum(p.seed, b, data);
                    Ok(())
                }
                BlockRole::OrphanBlock { ino, gen } => {
                    csum::set_orphan_block_csum(p.inode_seed(ino, gen), b, data);
                    Ok(())
                }
            };
            // A writer staged a block that does not have the shape its
            // role says: refuse the commit rather than write it.
            r.map_err(|e| {
                Error::corrupt(format!(
                    "block {b} ({}) as staged: cannot set its checksum: {e}",
                    role_what(&role)
                ))
            })?;
        }
        Ok(())
    }

    /// Set every checksum of what is staged (see the module
    /// documentation); the superblock's is set as it is placed.
    pub(super) fn set_checksums(&mut self) -> Result<()> {
        if self.csum.desc_csum == DescCsum::None {
            return Ok(());
        }
        let p = self.csum.clone();
        if p.metadata_csum {
            let mut blocks: Vec<u64> = self.roles.keys().copied().collect();
            blocks.sort_unstable();
            self.set_role_checksums(&blocks)?;
            if p.inode_csums() {
                let is = p.inode_size;
                let inos: Vec<_> = self.csum_inodes.iter().copied().collect();
                for ino in inos {
                    let (blk, off) = self.inode_location(ino)?;
                    if let Some(s) = self.overlay.get_mut(&blk) {
                        p.set_inode_csum(ino, &mut s.data[off..off + is]);
                    }
                }
            }
            // The staged blocks, sorted: a group's bitmaps are looked up
            // there by binary search (a few staged blocks against every
            // group of the file system; hashing each group's two bitmap
            // numbers cost more than the rest of a small commit).
            let mut staged: Vec<u64> = self.overlay.keys().copied().collect();
            staged.sort_unstable();
            for g in 0..self.groups.len() {
                let (bb, ib) = {
                    let gd = &self.groups[g];
                    (gd.block_bitmap(), gd.inode_bitmap())
                };
                for (b, inode) in [(bb, false), (ib, true)] {
                    if staged.binary_search(&b).is_err() {
                        continue;
                    }
                    let Some(s) = self.overlay.get(&b) else {
                        continue;
                    };
                    let raw = self.groups[g].raw_mut();
                    let r = if inode {
                        p.set_inode_bitmap_csum(raw, &s.data)
                    } else {
                        p.set_block_bitmap_csum(raw, &s.data)
                    };
                    r.map_err(|e| Error::corrupt(format!("group {g} bitmap: {e}")))?;
                    self.dirty_groups.insert(g as u32);
                }
            }
        }
        let dirty: Vec<u32> = self.dirty_groups.iter().copied().collect();
        for g in dirty {
            p.set_group_desc_csum(g, self.groups[g as usize].raw_mut());
        }
        Ok(())
    }
}
