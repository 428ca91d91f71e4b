//! The superblock and the group descriptors, parsed once into checked values.
//!
//! Both keep their raw bytes; setters patch the raw bytes so that fields we
//! do not interpret survive a write untouched.

use crate::error::{Error, Result};
use crate::layout::{feature, le16, le32, put16, put32, sb, EXT2_MAGIC};

/// The superblock, checked for the geometry the engine relies on.
#[derive(Clone, Debug)]
pub struct Superblock {
    raw: Vec<u8>,
    /// Block size in bytes (1024..=65536).
    pub block_size: u32,
    /// Total blocks.
    pub blocks_count: u64,
    /// Total inodes.
    pub inodes_count: u32,
    /// Blocks in each group.
    pub blocks_per_group: u32,
    /// Inodes in each group.
    pub inodes_per_group: u32,
    /// First data block (1 for 1 KiB blocks, else 0).
    pub first_data_block: u32,
    /// Bytes per on-disk inode.
    pub inode_size: u16,
    /// First non-reserved inode.
    pub first_ino: u32,
    /// Number of block groups.
    pub group_count: u32,
    /// Bytes per group descriptor.
    pub desc_size: u16,
    /// compat feature bits.
    pub compat: u32,
    /// incompat feature bits.
    pub incompat: u32,
    /// ro_compat feature bits.
    pub ro_compat: u32,
}

impl Superblock {
    /// Parse and check 1024 raw bytes. `image_len` bounds the geometry.
    pub fn parse(raw: &[u8]) -> Result<Self> {
        if raw.len() < 1024 {
            return Err(Error::corrupt("superblock: image is smaller than 2 KiB"));
        }
        let raw = raw[..1024].to_vec();
        let magic = le16(&raw, sb::MAGIC);
        if magic != EXT2_MAGIC {
            return Err(Error::corrupt(format!(
                "superblock at byte 1024: bad magic {magic:#06x} (not an ext2/3/4 image)"
            )));
        }
        let log = le32(&raw, sb::LOG_BLOCK_SIZE);
        if log > 6 {
            return Err(Error::corrupt(format!(
                "superblock: block size 2^(10+{log}) is out of range"
            )));
        }
        let block_size = 1024u32 << log;
        let compat = le32(&raw, sb::FEATURE_COMPAT);
        let incompat = le32(&raw, sb::FEATURE_INCOMPAT);
        let ro_compat = le32(&raw, sb::FEATURE_RO_COMPAT);
        let is64 = incompat & feature::INCOMPAT_64BIT != 0;
        let mut blocks_count = le32(&raw, sb::BLOCKS_COUNT_LO) as u64;
        if is64 {
            blocks_count |= (le32(&raw, sb::BLOCKS_COUNT_HI) as u64) << 32;
        }
        let inodes_count = le32(&raw, sb::INODES_COUNT);
        let bigalloc = ro_compat & feature::RO_COMPAT_BIGALLOC != 0;
        let blocks_per_group = if bigalloc {
            // With bigalloc the group is counted in clusters.
            let log_c = le32(&raw, sb::LOG_CLUSTER_SIZE);
            if log_c < log || log_c > 30 {
                return Err(Error::corrupt("superblock: bad cluster size"));
            }
            le32(&raw, sb::CLUSTERS_PER_GROUP)
                .checked_mul(1 << (log_c - log))
                .ok_or_else(|| Error::corrupt("superblock: blocks per group overflow"))?
        } else {
            le32(&raw, sb::BLOCKS_PER_GROUP)
        };
        let inodes_per_group = le32(&raw, sb::INODES_PER_GROUP);
        let first_data_block = le32(&raw, sb::FIRST_DATA_BLOCK);
        let rev = le32(&raw, sb::REV_LEVEL);
        let (inode_size, first_ino) = if rev == 0 {
            (128u16, 11u32)
        } else {
            (le16(&raw, sb::INODE_SIZE), le32(&raw, sb::FIRST_INO))
        };
        if inode_size < 128 || !inode_size.is_power_of_two() || inode_size as u32 > block_size {
            return Err(Error::corrupt(format!(
                "superblock: inode size {inode_size} is invalid"
            )));
        }
        if blocks_per_group == 0 || blocks_per_group > block_size * 8 * 16 {
            return Err(Error::corrupt(format!(
                "superblock: blocks per group {blocks_per_group} is invalid"
            )));
        }
        if inodes_per_group == 0 || inodes_per_group > block_size * 8 {
            return Err(Error::corrupt(format!(
                "superblock: inodes per group {inodes_per_group} is invalid"
            )));
        }
        if blocks_count <= first_data_block as u64 {
            return Err(Error::corrupt(format!(
                "superblock: block count {blocks_count} is invalid"
            )));
        }
        if first_data_block > 1 || (block_size == 1024 && first_data_block != 1 && !bigalloc) {
            return Err(Error::corrupt(format!(
                "superblock: first data block {first_data_block} does not fit block size {block_size}"
            )));
        }
        let groups64 = (blocks_count - first_data_block as u64).div_ceil(blocks_per_group as u64);
        if groups64 > u32::MAX as u64 / 2 {
            return Err(Error::corrupt("superblock: too many block groups"));
        }
        let group_count = groups64 as u32;
        if (group_count as u64) * (inodes_per_group as u64) != inodes_count as u64 {
            return Err(Error::corrupt(format!(
                "superblock: inode count {inodes_count} is not {group_count} groups x {inodes_per_group}"
            )));
        }
        if first_ino < 11 || first_ino > inodes_count {
            return Err(Error::corrupt(format!(
                "superblock: first inode {first_ino} is invalid"
            )));
        }
        let desc_size = if is64 {
            let d = le16(&raw, sb::DESC_SIZE);
            if d < 64 || d as u32 > block_size || !d.is_power_of_two() {
                return Err(Error::corrupt(format!(
                    "superblock: group descriptor size {d} is invalid"
                )));
            }
            d
        } else {
            32
        };
        Ok(Superblock {
            raw,
            block_size,
            blocks_count,
            inodes_count,
            blocks_per_group,
            inodes_per_group,
            first_data_block,
            inode_size,
            first_ino,
            group_count,
            desc_size,
            compat,
            incompat,
            ro_compat,
        })
    }

    /// The raw 1024 bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// True if the incompat/ro_compat/compat bit is set.
    pub fn has_incompat(&self, bit: u32) -> bool {
        self.incompat & bit != 0
    }
    /// True if the ro_compat bit is set.
    pub fn has_ro_compat(&self, bit: u32) -> bool {
        self.ro_compat & bit != 0
    }
    /// True if the compat bit is set.
    pub fn has_compat(&self, bit: u32) -> bool {
        self.compat & bit != 0
    }

    fn is64(&self) -> bool {
        self.has_incompat(feature::INCOMPAT_64BIT)
    }

    /// Free blocks as the superblock records them.
    pub fn free_blocks(&self) -> u64 {
        let mut v = le32(&self.raw, sb::FREE_BLOCKS_LO) as u64;
        if self.is64() {
            v |= (le32(&self.raw, sb::FREE_BLOCKS_HI) as u64) << 32;
        }
        v
    }
    /// Set the superblock's free block count.
    pub fn set_free_blocks(&mut self, v: u64) {
        put32(&mut self.raw, sb::FREE_BLOCKS_LO, v as u32);
        if self.is64() {
            put32(&mut self.raw, sb::FREE_BLOCKS_HI, (v >> 32) as u32);
        }
    }
    /// Reserved blocks (for root).
    pub fn reserved_blocks(&self) -> u64 {
        let mut v = le32(&self.raw, sb::R_BLOCKS_COUNT_LO) as u64;
        if self.is64() {
            v |= (le32(&self.raw, sb::R_BLOCKS_COUNT_HI) as u64) << 32;
        }
        v
    }
    /// Free inodes as the superblock records them.
    pub fn free_inodes(&self) -> u32 {
        le32(&self.raw, sb::FREE_INODES)
    }
    /// Set the superblock's free inode count.
    pub fn set_free_inodes(&mut self, v: u32) {
        put32(&mut self.raw, sb::FREE_INODES, v);
    }
    /// Set the last write time.
    pub fn set_wtime(&mut self, t: i64) {
        put32(&mut self.raw, sb::WTIME, t.clamp(0, u32::MAX as i64) as u32);
    }
    /// Turn off an incompat feature bit.
    pub fn clear_incompat(&mut self, bit: u32) {
        self.incompat &= !bit;
        put32(&mut self.raw, sb::FEATURE_INCOMPAT, self.incompat);
    }
    /// Clear the "cleanly unmounted" state bit (errors were found).
    pub fn clear_valid(&mut self) {
        let st = le16(&self.raw, sb::STATE) & !1;
        put16(&mut self.raw, sb::STATE, st);
    }
    /// Set the "errors detected" state bit.
    pub fn set_error(&mut self) {
        let st = le16(&self.raw, sb::STATE) | 2;
        put16(&mut self.raw, sb::STATE, st);
    }
    /// Turn on a compat feature bit.
    pub fn set_compat(&mut self, bit: u32) {
        self.compat |= bit;
        put32(&mut self.raw, sb::FEATURE_COMPAT, self.compat);
    }
    /// Turn on a ro_compat feature bit.
    pub fn set_ro_compat(&mut self, bit: u32) {
        self.ro_compat |= bit;
        put32(&mut self.raw, sb::FEATURE_RO_COMPAT, self.ro_compat);
    }
    /// The revision level.
    pub fn rev_level(&self) -> u32 {
        le32(&self.raw, sb::REV_LEVEL)
    }
    /// The filesystem state bits (1 clean, 2 errors, 4 orphans being recovered).
    pub fn state(&self) -> u16 {
        le16(&self.raw, sb::STATE)
    }
    /// The UUID as the usual hyphenated string.
    pub fn uuid(&self) -> String {
        uuid_string(&self.raw[sb::UUID..sb::UUID + 16])
    }
    /// The volume label.
    pub fn label(&self) -> String {
        cstr(&self.raw[sb::VOLUME_NAME..sb::VOLUME_NAME + 16])
    }
    /// Where it was last mounted.
    pub fn last_mounted(&self) -> String {
        cstr(&self.raw[sb::LAST_MOUNTED..sb::LAST_MOUNTED + 64])
    }
    /// Journal inode number (0 if none or external).
    pub fn journal_inum(&self) -> u32 {
        le32(&self.raw, sb::JOURNAL_INUM)
    }
    /// External journal device number.
    pub fn journal_dev(&self) -> u32 {
        le32(&self.raw, sb::JOURNAL_DEV)
    }
    /// Head of the orphan inode list.
    pub fn last_orphan(&self) -> u32 {
        le32(&self.raw, sb::LAST_ORPHAN)
    }
    /// Set the head of the orphan inode list.
    pub fn set_last_orphan(&mut self, ino: u32) {
        put32(&mut self.raw, sb::LAST_ORPHAN, ino);
    }
    /// Turn off a ro_compat feature bit.
    pub fn clear_ro_compat(&mut self, bit: u32) {
        self.ro_compat &= !bit;
        put32(&mut self.raw, sb::FEATURE_RO_COMPAT, self.ro_compat);
    }
    /// The orphan file's inode (orphan_file feature).
    pub fn orphan_file_inum(&self) -> u32 {
        le32(&self.raw, sb::ORPHAN_FILE_INUM)
    }
    /// The superblock's backup of the journal inode's block map
    /// (`s_jnl_blocks`: 15 words of `i_block`, then `i_size_high`,
    /// `i_size`) when `s_jnl_backup_type` says it holds one (1).
    pub fn journal_backup(&self) -> Option<[u32; 17]> {
        if self.raw[sb::JNL_BACKUP_TYPE] != 1 {
            return None;
        }
        let mut w = [0u32; 17];
        for (i, v) in w.iter_mut().enumerate() {
            *v = le32(&self.raw, sb::JNL_BLOCKS + 4 * i);
        }
        Some(w)
    }
    /// Reserved GDT blocks per group (resize_inode).
    pub fn reserved_gdt_blocks(&self) -> u16 {
        le16(&self.raw, sb::RESERVED_GDT_BLOCKS)
    }
    /// First meta block group (meta_bg).
    pub fn first_meta_bg(&self) -> u32 {
        le32(&self.raw, sb::FIRST_META_BG)
    }
    /// Default hash version for htree directories.
    pub fn def_hash_version(&self) -> u8 {
        self.raw[sb::DEF_HASH_VERSION]
    }
    /// The htree hash seed.
    pub fn hash_seed(&self) -> [u32; 4] {
        let mut s = [0u32; 4];
        for (i, v) in s.iter_mut().enumerate() {
            *v = le32(&self.raw, sb::HASH_SEED + 4 * i);
        }
        s
    }
    /// The extra inode size every inode must have (extra_isize).
    pub fn min_extra_isize(&self) -> u16 {
        le16(&self.raw, sb::MIN_EXTRA_ISIZE)
    }
    /// The extra inode size new inodes should get.
    pub fn want_extra_isize(&self) -> u16 {
        le16(&self.raw, sb::WANT_EXTRA_ISIZE)
    }
    /// Groups per flex group (1 without flex_bg, or with a log size that
    /// is out of range).
    pub fn flex_size(&self) -> u32 {
        if !self.has_incompat(feature::INCOMPAT_FLEX_BG) {
            return 1;
        }
        let log = self.raw[sb::LOG_GROUPS_PER_FLEX] as u32;
        if log >= 31 {
            1
        } else {
            1 << log
        }
    }
    /// True when the descriptors' uninit flags and bg_itable_unused count
    /// (uninit_bg, or metadata_csum) are in force.
    pub fn uninit_groups(&self) -> bool {
        self.has_ro_compat(feature::RO_COMPAT_GDT_CSUM)
            || self.has_ro_compat(feature::RO_COMPAT_METADATA_CSUM)
    }
    /// Blocks of the group descriptor table (without meta_bg).
    pub fn gdt_blocks(&self) -> u64 {
        (self.group_count as u64 * self.desc_size as u64).div_ceil(self.block_size as u64)
    }
    /// Creation time of the filesystem.
    pub fn mkfs_time(&self) -> u32 {
        le32(&self.raw, sb::MKFS_TIME)
    }
    /// Last write time.
    pub fn wtime(&self) -> u32 {
        le32(&self.raw, sb::WTIME)
    }
    /// Last mount time.
    pub fn mtime(&self) -> u32 {
        le32(&self.raw, sb::MTIME)
    }
    /// Mount count.
    pub fn mnt_count(&self) -> u16 {
        le16(&self.raw, sb::MNT_COUNT)
    }
    /// Last check time.
    pub fn lastcheck(&self) -> u32 {
        le32(&self.raw, sb::LASTCHECK)
    }
    /// Creator OS code.
    pub fn creator_os(&self) -> u32 {
        le32(&self.raw, sb::CREATOR_OS)
    }
    /// The `errors` behaviour field.
    pub fn errors_behaviour(&self) -> u16 {
        le16(&self.raw, sb::ERRORS)
    }
    /// Flags (signed/unsigned directory hash...).
    pub fn flags(&self) -> u32 {
        le32(&self.raw, sb::FLAGS)
    }
    /// Names of every feature that is set.
    pub fn feature_names(&self) -> Vec<String> {
        let mut v = feature::names(0, self.compat);
        v.extend(feature::names(1, self.incompat));
        v.extend(feature::names(2, self.ro_compat));
        v
    }
    /// First block of group `g`.
    pub fn group_first_block(&self, g: u32) -> u64 {
        self.first_data_block as u64 + g as u64 * self.blocks_per_group as u64
    }
    /// Number of blocks in group `g` (the last one may be short).
    pub fn group_blocks(&self, g: u32) -> u32 {
        let first = self.group_first_block(g);
        (self.blocks_count - first).min(self.blocks_per_group as u64) as u32
    }
    /// True if group `g` holds a superblock backup.
    pub fn group_has_super(&self, g: u32) -> bool {
        if g == 0 {
            return true;
        }
        if self.has_compat(feature::COMPAT_SPARSE_SUPER2) {
            let b1 = le32(&self.raw, 0x24C);
            let b2 = le32(&self.raw, 0x250);
            return g == b1 || g == b2;
        }
        if !self.has_ro_compat(feature::RO_COMPAT_SPARSE_SUPER) || g == 1 {
            return true;
        }
        for base in [3u32, 5, 7] {
            let mut p = base;
            while p < g {
                match p.checked_mul(base) {
                    Some(n) => p = n,
                    None => break,
                }
            }
            if p == g {
                return true;
            }
        }
        false
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn uuid_string(b: &[u8]) -> String {
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// One group descriptor, with its raw bytes.
///
/// Descriptors of up to 64 bytes (every size mke2fs makes) are kept
/// inline: an image of thousands of groups opens without an allocation
/// per group. Larger `s_desc_size` values go to the heap.
#[derive(Clone, Debug)]
pub struct GroupDesc {
    raw: DescBytes,
    is64: bool,
}

#[derive(Clone, Debug)]
enum DescBytes {
    Inline { buf: [u8; 64], len: u8 },
    Heap(Vec<u8>),
}

#[allow(missing_docs)]
impl GroupDesc {
    /// Wrap raw descriptor bytes (32 or `desc_size`).
    pub fn new(raw: &[u8], is64: bool) -> Self {
        let raw = if raw.len() <= 64 {
            let mut buf = [0u8; 64];
            buf[..raw.len()].copy_from_slice(raw);
            DescBytes::Inline {
                buf,
                len: raw.len() as u8,
            }
        } else {
            DescBytes::Heap(raw.to_vec())
        };
        GroupDesc { raw, is64 }
    }
    #[inline]
    pub fn raw(&self) -> &[u8] {
        match &self.raw {
            DescBytes::Inline { buf, len } => &buf[..*len as usize],
            DescBytes::Heap(v) => v,
        }
    }
    /// The raw bytes, to patch fields the setters do not cover (the
    /// checksums of [`crate::csum`]).
    #[inline]
    pub fn raw_mut(&mut self) -> &mut [u8] {
        match &mut self.raw {
            DescBytes::Inline { buf, len } => &mut buf[..*len as usize],
            DescBytes::Heap(v) => v,
        }
    }
    #[inline]
    fn get(&self, lo: usize, hi: usize) -> u64 {
        let mut v = le32(self.raw(), lo) as u64;
        if self.is64 {
            v |= (le32(self.raw(), hi) as u64) << 32;
        }
        v
    }
    #[inline]
    fn get16(&self, lo: usize, hi: usize) -> u32 {
        let mut v = le16(self.raw(), lo) as u32;
        if self.is64 {
            v |= (le16(self.raw(), hi) as u32) << 16;
        }
        v
    }
    fn set16(&mut self, lo: usize, hi: usize, v: u32) {
        put16(self.raw_mut(), lo, v as u16);
        if self.is64 {
            put16(self.raw_mut(), hi, (v >> 16) as u16);
        }
    }
    pub fn block_bitmap(&self) -> u64 {
        self.get(0x00, 0x20)
    }
    pub fn inode_bitmap(&self) -> u64 {
        self.get(0x04, 0x24)
    }
    pub fn inode_table(&self) -> u64 {
        self.get(0x08, 0x28)
    }
    pub fn free_blocks(&self) -> u32 {
        self.get16(0x0C, 0x2C)
    }
    pub fn set_free_blocks(&mut self, v: u32) {
        self.set16(0x0C, 0x2C, v)
    }
    pub fn free_inodes(&self) -> u32 {
        self.get16(0x0E, 0x2E)
    }
    pub fn set_free_inodes(&mut self, v: u32) {
        self.set16(0x0E, 0x2E, v)
    }
    pub fn used_dirs(&self) -> u32 {
        self.get16(0x10, 0x30)
    }
    pub fn set_used_dirs(&mut self, v: u32) {
        self.set16(0x10, 0x30, v)
    }
    pub fn flags(&self) -> u16 {
        le16(self.raw(), 0x12)
    }
    pub fn set_flags(&mut self, f: u16) {
        put16(self.raw_mut(), 0x12, f)
    }
    /// True if `bg_flags` has `flag` (see [`crate::layout::bgflag`]).
    pub fn has_flag(&self, flag: u16) -> bool {
        self.flags() & flag != 0
    }
    pub fn clear_flag(&mut self, flag: u16) {
        self.set_flags(self.flags() & !flag)
    }
    /// `bg_checksum`.
    pub fn checksum(&self) -> u16 {
        le16(self.raw(), 0x1E)
    }
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.raw_mut(), 0x1E, v)
    }
    /// Inodes at the end of the group's table that were never used
    /// (bg_itable_unused): e2fsck reads it, feature or not.
    pub fn itable_unused(&self) -> u32 {
        self.get16(0x1C, 0x32)
    }
    pub fn set_itable_unused(&mut self, v: u32) {
        self.set16(0x1C, 0x32, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let img =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample.ext3")).unwrap();
        img[1024..2048].to_vec()
    }

    #[test]
    fn parses_the_sample() {
        let sb = Superblock::parse(&sample()).unwrap();
        assert_eq!(sb.block_size, 1024);
        assert_eq!(sb.inode_size, 256);
        assert_eq!(sb.blocks_count, 4096);
        assert_eq!(sb.first_data_block, 1);
        assert_eq!(sb.group_count, 1);
        assert_eq!(sb.label(), "sample-root");
        assert_eq!(sb.uuid(), "3f2a9c4e-1b7d-4e8a-9c0f-5d6e7f8a9b0c");
        assert!(sb.has_compat(feature::COMPAT_HAS_JOURNAL));
    }

    #[test]
    fn bad_magic_is_named() {
        let mut raw = sample();
        raw[sb::MAGIC] = 0x12;
        let e = Superblock::parse(&raw).unwrap_err().to_string();
        assert!(e.contains("bad magic 0xef12"), "{e}");
    }

    #[test]
    fn huge_block_size_is_refused() {
        let mut raw = sample();
        raw[sb::LOG_BLOCK_SIZE] = 30;
        let e = Superblock::parse(&raw).unwrap_err().to_string();
        assert!(e.contains("block size"), "{e}");
    }

    #[test]
    fn inode_count_must_match_groups() {
        let mut raw = sample();
        put32(&mut raw, sb::INODES_COUNT, 1000);
        let e = Superblock::parse(&raw).unwrap_err().to_string();
        assert!(e.contains("inode count 1000 is not 1 groups x 128"), "{e}");
    }

    #[test]
    fn zero_blocks_per_group_is_refused() {
        let mut raw = sample();
        put32(&mut raw, sb::BLOCKS_PER_GROUP, 0);
        assert!(Superblock::parse(&raw)
            .unwrap_err()
            .to_string()
            .contains("blocks per group 0"));
    }

    #[test]
    fn sparse_super_backup_groups() {
        let sb = Superblock::parse(&sample()).unwrap();
        let with: Vec<u32> = (0..60).filter(|&g| sb.group_has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49]);
    }

    #[test]
    fn feature_names_include_unknown_bits() {
        assert_eq!(
            feature::names(1, feature::INCOMPAT_FILETYPE | 1 << 31),
            vec!["filetype", "FEATURE_I31"]
        );
    }
}
