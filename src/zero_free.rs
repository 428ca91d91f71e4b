//! Zero the free blocks of a file system, as zerofree does: deleted data
//! left in free blocks stops bloating a compressed image, and a raw image
//! gets its holes back.
//!
//! Only blocks that the block bitmaps mark free are touched, never
//! metadata: a group whose bitmap is not initialised (`BLOCK_UNINIT`) is
//! skipped, and a group whose bitmap disagrees with its descriptor's free
//! count is refused (run e2fsck first). The bitmaps are not trusted
//! alone: as e2fsck's first pass does, every block something uses is
//! collected first (the block map of every in-use inode with its indirect
//! blocks or extent tree nodes, xattr blocks, the journal, resize and bad
//! blocks inodes, superblocks and their backups, group descriptors,
//! reserved GDT blocks, bitmaps, inode tables), and if the bitmaps call
//! one of them free the run is refused before anything is written, naming
//! the block and its user. The walk marks each block once in a bitset
//! ([`BlockSet`]) and refuses a block claimed twice, so a crafted map
//! (loops, huge counts) ends quickly. Any pending journal replay is
//! committed after these checks, so the bitmaps read are the current
//! ones (the checks read through the staged replay) and a refusal leaves
//! the image as it was. Blocks that
//! already read as zeros are left alone; the others are zeroed through
//! [`BlockDevice::zero_range`](crate::device::BlockDevice::zero_range),
//! which punches a hole in an image file where the host file system can.
//! No metadata changes, so nothing goes through the journal: a crash
//! midway leaves some free blocks zeroed and the file system intact.

use std::fmt;

use crate::bmap::BlockSet;
use crate::layout::{feature, le32, FileType};
use crate::{Error, Filesystem, Result};

/// What [`zero_free`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZeroReport {
    /// Blocks the bitmaps mark free (in the groups examined).
    pub free_blocks: u64,
    /// Free blocks that held data and were zeroed.
    pub zeroed_blocks: u64,
    /// Groups skipped because their bitmap is not initialised.
    pub skipped_groups: u32,
    /// Block size in bytes.
    pub block_size: u64,
}

/// `bg_flags` bit: the group's block bitmap is not initialised.
const BG_BLOCK_UNINIT: u16 = 0x2;

/// Zero every free block of `fs` (opened for writing) that is not zero
/// already; the changes are flushed before returning.
pub fn zero_free(fs: &mut Filesystem) -> Result<ZeroReport> {
    if let Some(w) = fs.write_refusal() {
        return Err(Error::Unsupported(format!("cannot write this image: {w}")));
    }
    let bs = fs.block_size() as u64;
    let sb = fs.superblock().clone();
    let csum = has_csum(fs);
    let mut rep = ZeroReport {
        block_size: bs,
        ..Default::default()
    };
    // Check every group, and that no block the bitmaps call free is in
    // use, before anything is written (a refusal leaves the image as it
    // was; a staged journal replay is read through), then write what is
    // staged (the replay, the superblock's counts), then zero.
    check_free_unused(fs)?;
    fs.commit()?;
    // Up to this many blocks are read at once.
    let batch = ((1u64 << 20) / bs).max(1) as usize;
    let mut buf = vec![0u8; batch * bs as usize];
    for g in 0..sb.group_count {
        let Some((bitmap, free)) = group_bitmap(fs, g, csum)? else {
            rep.skipped_groups += 1;
            continue;
        };
        let first = sb.group_first_block(g);
        let n = sb.group_blocks(g) as u64;
        let is_free = |i: u64| bitmap[(i / 8) as usize] & (1 << (i % 8)) == 0;
        rep.free_blocks += free;
        let mut i = 0u64;
        while i < n {
            if !is_free(i) {
                i += 1;
                continue;
            }
            // A run of free blocks, at most one batch long.
            let mut j = i + 1;
            while j < n && j - i < batch as u64 && is_free(j) {
                j += 1;
            }
            rep.zeroed_blocks += zero_run(fs, first + i, (j - i) as usize, &mut buf)?;
            i = j;
        }
    }
    fs.device_mut()
        .flush()
        .map_err(|e| Error::io("flushing the image", e))?;
    Ok(rep)
}

fn has_csum(fs: &Filesystem) -> bool {
    let sb = fs.superblock();
    sb.has_ro_compat(feature::RO_COMPAT_GDT_CSUM)
        || sb.has_ro_compat(feature::RO_COMPAT_METADATA_CSUM)
}

/// Check what [`zero_free`] relies on, without writing: every group's
/// block bitmap agrees with its descriptor's free count, and no block the
/// bitmaps mark free is used by an inode (its block map, indirect blocks,
/// extent tree nodes, xattr block) or by the file system's own metadata.
/// The error names the first such block and its user, e.g. "block 1234:
/// the block bitmap says free but inode 12 uses it; run e2fsck -f first".
pub fn check_free_unused(fs: &Filesystem) -> Result<()> {
    let sb = fs.superblock();
    if sb.has_ro_compat(feature::RO_COMPAT_BIGALLOC) {
        return Err(Error::Unsupported(
            "zero-free: bigalloc file systems (bitmaps count clusters) are not supported".into(),
        ));
    }
    let csum = has_csum(fs);
    for g in 0..sb.group_count {
        group_bitmap(fs, g, csum)?;
    }
    let (used, _) = walk_used(fs, None)?;
    for g in 0..sb.group_count {
        let Some((bitmap, _)) = group_bitmap(fs, g, csum)? else {
            continue;
        };
        let first = sb.group_first_block(g);
        for i in 0..sb.group_blocks(g) as u64 {
            if bitmap[(i / 8) as usize] & (1 << (i % 8)) == 0 && used.contains(first + i) {
                let b = first + i;
                let who = match walk_used(fs, Some(b))?.1 {
                    Some(o) => o.to_string(),
                    None => "something".into(),
                };
                return Err(Error::corrupt(format!(
                    "block {b}: the block bitmap says free but {who} uses it; run e2fsck -f first"
                )));
            }
        }
    }
    Ok(())
}

/// Who uses a block.
#[derive(Clone, Copy, Debug)]
enum User {
    Inode(u32),
    Xattr(u32),
    Super(u32),
    Gdt(u32),
    BlockBitmap(u32),
    InodeBitmap(u32),
    InodeTable(u32),
    Mmp,
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            User::Inode(i) => write!(f, "inode {i}"),
            User::Xattr(i) => write!(f, "the xattr block of inode {i}"),
            User::Super(g) => write!(f, "the superblock of group {g}"),
            User::Gdt(g) => write!(
                f,
                "the group descriptors (or reserved GDT blocks) of group {g}"
            ),
            User::BlockBitmap(g) => write!(f, "the block bitmap of group {g}"),
            User::InodeBitmap(g) => write!(f, "the inode bitmap of group {g}"),
            User::InodeTable(g) => write!(f, "the inode table of group {g}"),
            User::Mmp => write!(f, "the MMP block"),
        }
    }
}

/// `bg_flags` bit: the group's inode bitmap and table are not initialised.
const BG_INODE_UNINIT: u16 = 0x1;

/// Every block in use, as e2fsck's first pass finds them: the block maps
/// of the in-use inodes (the inode bitmap's, those with links whatever
/// the bitmap says, and the reserved inodes always: bad blocks, resize,
/// journal), their xattr blocks, then the
/// metadata of every group. With `stop`, return as soon as block `stop`
/// is marked, with its user. A corrupt map (a block claimed twice, a
/// pointer outside the file system, a bad extent node) is refused.
fn walk_used(fs: &Filesystem, stop: Option<u64>) -> Result<(BlockSet, Option<User>)> {
    let sb = fs.superblock();
    let mut used = BlockSet::new(sb.blocks_count);
    let hit = |used: &BlockSet| stop.is_some_and(|b| used.contains(b));
    let fix = |e: Error| match e {
        Error::Corrupt(m) => Error::Corrupt(format!("{m}; run e2fsck -f first")),
        e => e,
    };
    let csum = has_csum(fs);
    let ipg = sb.inodes_per_group;
    for g in 0..sb.group_count {
        let gd = &fs.groups()[g as usize];
        let flags = gd.flags();
        if csum && flags & BG_INODE_UNINIT != 0 {
            continue;
        }
        let ibm = gd.inode_bitmap();
        fs.check_block(ibm, &|| format!("inode bitmap of group {g}"))?;
        let bitmap = fs.block(ibm)?;
        let free = (0..ipg as usize)
            .filter(|&i| bitmap[i / 8] & (1 << (i % 8)) == 0)
            .count() as u32;
        if free != gd.free_inodes() {
            return Err(Error::corrupt(format!(
                "group {g}: the inode bitmap (block {ibm}) marks {free} inodes free but the group descriptor says {}; run e2fsck -f first",
                gd.free_inodes()
            )));
        }
        // With checksums, the inodes past bg_itable_unused were never
        // written (e2fsck skips them too).
        let unused_from = if csum {
            ipg.saturating_sub(gd.itable_unused())
        } else {
            ipg
        };
        for i in 0..ipg {
            let ino = g * ipg + i + 1;
            let in_use = bitmap[(i / 8) as usize] & (1 << (i % 8)) != 0;
            if ino > sb.inodes_count || !(in_use || ino < sb.first_ino || i < unused_from) {
                continue;
            }
            let inode = fs.read_inode(ino).map_err(fix)?;
            // An inode the bitmap calls free but that has links is in use
            // for e2fsck's first pass (the fifth then sets its bit): its
            // blocks are a file's.
            if !in_use && ino >= sb.first_ino && inode.links() == 0 {
                continue;
            }
            let no_map = matches!(
                FileType::from_mode(inode.mode()),
                FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket
            );
            if !no_map {
                fs.mark_map_blocks(&inode, &mut used).map_err(fix)?;
                if hit(&used) {
                    return Ok((used, Some(User::Inode(ino))));
                }
            }
            let acl = inode.file_acl();
            if acl != 0 {
                fs.check_block(acl, &|| format!("inode {ino}: xattr block"))
                    .map_err(fix)?;
                // Shared by several inodes: marked once.
                used.insert(acl, 1);
                if hit(&used) {
                    return Ok((used, Some(User::Xattr(ino))));
                }
            }
        }
    }
    let bs = fs.block_size() as u64;
    let per = bs / sb.desc_size as u64;
    let meta_bg = sb.has_incompat(feature::INCOMPAT_META_BG);
    let old_desc = if meta_bg {
        sb.first_meta_bg() as u64
    } else {
        (sb.group_count as u64).div_ceil(per) + sb.reserved_gdt_blocks() as u64
    };
    let itable = (ipg as u64 * sb.inode_size as u64).div_ceil(bs);
    for g in 0..sb.group_count {
        let first = sb.group_first_block(g);
        let has_super = sb.group_has_super(g);
        let gd = &fs.groups()[g as usize];
        let mut areas = Vec::with_capacity(5);
        if has_super {
            areas.push((first, 1, User::Super(g)));
        }
        if !meta_bg || (g as u64 / per) < sb.first_meta_bg() as u64 {
            if has_super {
                areas.push((first + 1, old_desc, User::Gdt(g)));
            }
        } else if [0, 1, per - 1].contains(&(g as u64 % per)) {
            areas.push((first + has_super as u64, 1, User::Gdt(g)));
        }
        areas.push((gd.block_bitmap(), 1, User::BlockBitmap(g)));
        areas.push((gd.inode_bitmap(), 1, User::InodeBitmap(g)));
        areas.push((gd.inode_table(), itable, User::InodeTable(g)));
        for (start, n, who) in areas {
            used.insert(start, n);
            if stop.is_some_and(|b| b >= start && b - start < n) {
                return Ok((used, Some(who)));
            }
        }
    }
    if sb.has_incompat(feature::INCOMPAT_MMP) {
        let raw = sb.raw();
        let mmp = le32(raw, 0x168) as u64 | (le32(raw, 0x16C) as u64) << 32;
        used.insert(mmp, 1);
        if hit(&used) {
            return Ok((used, Some(User::Mmp)));
        }
    }
    Ok((used, None))
}

/// Group `g`'s block bitmap and its count of free blocks, checked against
/// the group descriptor; None for a group whose bitmap is not initialised.
fn group_bitmap(fs: &Filesystem, g: u32, csum: bool) -> Result<Option<(Vec<u8>, u64)>> {
    let sb = fs.superblock();
    let gd = &fs.groups()[g as usize];
    let flags = u16::from_le_bytes([gd.raw()[0x12], gd.raw()[0x13]]);
    if csum && flags & BG_BLOCK_UNINIT != 0 {
        return Ok(None);
    }
    let want_free = gd.free_blocks() as u64;
    let bmb = gd.block_bitmap();
    fs.check_block(bmb, &|| format!("block bitmap of group {g}"))?;
    let bitmap = fs.block(bmb)?;
    let n = sb.group_blocks(g) as u64;
    let free = (0..n)
        .filter(|&i| bitmap[(i / 8) as usize] & (1 << (i % 8)) == 0)
        .count() as u64;
    if free != want_free {
        return Err(Error::corrupt(format!(
            "group {g}: the block bitmap (block {bmb}) marks {free} blocks free but the group descriptor says {want_free}; run e2fsck -f first"
        )));
    }
    Ok(Some((bitmap, free)))
}

/// Zero the blocks of `first..first+count` that are not zero; returns how
/// many.
fn zero_run(fs: &mut Filesystem, first: u64, count: usize, buf: &mut [u8]) -> Result<u64> {
    let bs = fs.block_size();
    let data = &mut buf[..count * bs];
    fs.device_mut()
        .read_data_at(first * bs as u64, data)
        .map_err(|e| {
            Error::io(
                format!("reading free blocks {first}..{}", first + count as u64),
                e,
            )
        })?;
    let nonzero: Vec<bool> = data
        .chunks_exact(bs)
        .map(|b| !crate::container::spool::is_zero(b))
        .collect();
    let mut zeroed = 0u64;
    let mut k = 0;
    while k < count {
        if !nonzero[k] {
            k += 1;
            continue;
        }
        let mut e = k + 1;
        while e < count && nonzero[e] {
            e += 1;
        }
        let b = first + k as u64;
        fs.device_mut()
            .zero_range(b * bs as u64, ((e - k) * bs) as u64)
            .map_err(|err| {
                Error::io(
                    format!("zeroing free blocks {b}..{}", first + e as u64),
                    err,
                )
            })?;
        zeroed += (e - k) as u64;
        k = e;
    }
    Ok(zeroed)
}
