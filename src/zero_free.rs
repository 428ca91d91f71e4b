//! Zero the free blocks of a file system, as zerofree does: deleted data
//! left in free blocks stops bloating a compressed image, and a raw image
//! gets its holes back.
//!
//! Only blocks that the block bitmaps mark free are touched, never
//! metadata: a group whose bitmap is not initialised (`BLOCK_UNINIT`) is
//! skipped, and a group whose bitmap disagrees with its descriptor's free
//! count is refused (run e2fsck first). Any pending journal replay is
//! committed first, so the bitmaps read are the current ones. Blocks that
//! already read as zeros are left alone; the others are zeroed through
//! [`BlockDevice::zero_range`](crate::device::BlockDevice::zero_range),
//! which punches a hole in an image file where the host file system can.
//! No metadata changes, so nothing goes through the journal: a crash
//! midway leaves some free blocks zeroed and the file system intact.

use crate::layout::feature;
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
    // A staged journal replay goes to the image first, so that the
    // bitmaps read below are the current ones.
    if fs.recovery_report().is_some() {
        fs.commit()?;
    }
    let bs = fs.block_size() as u64;
    let sb = fs.superblock().clone();
    let csum = sb.has_ro_compat(feature::RO_COMPAT_GDT_CSUM)
        || sb.has_ro_compat(feature::RO_COMPAT_METADATA_CSUM);
    if sb.has_ro_compat(feature::RO_COMPAT_BIGALLOC) {
        return Err(Error::Unsupported(
            "zero-free: bigalloc file systems (bitmaps count clusters) are not supported".into(),
        ));
    }
    let mut rep = ZeroReport {
        block_size: bs,
        ..Default::default()
    };
    // Check every group before anything is written (a refusal leaves the
    // image as it was), then write what is staged (the superblock's
    // counts), then zero.
    for g in 0..sb.group_count {
        group_bitmap(fs, g, csum)?;
    }
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
