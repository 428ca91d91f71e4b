//! ext4 metadata checksums: pure functions that compute, set and verify
//! them. Nothing here does I/O; callers hand in the raw bytes of a
//! structure and what it is (its inode, its block number).
//!
//! The layouts below are those of the kernel's
//! `Documentation/filesystems/ext4/` (super.rst, group_descr.rst,
//! bitmaps.rst, inodes.rst, ifork.rst, directory.rst, attributes.rst,
//! orphan.rst), checked against what mke2fs, debugfs and e2fsck put on
//! disk (tests/csum.rs).
//!
//! ## The crc
//! Every metadata checksum is a crc32c (Castagnoli, reflected polynomial
//! 0x82F63B78) taken the way the kernel's `ext4_chksum` takes it: no
//! inversion before or after ([`crc32c_raw`]), chained from structure to
//! structure. The only exception is `uninit_bg` (`RO_COMPAT_GDT_CSUM`,
//! 0x10) without `metadata_csum`: its group descriptors carry the ANSI
//! crc16 (reflected polynomial 0xA001, started at 0xFFFF, no final
//! inversion) of [`crc16`].
//!
//! ## The seed
//! With `metadata_csum` (`RO_COMPAT_METADATA_CSUM`, 0x400) every checksum
//! but the superblock's starts from the file system seed ([`fs_seed`]):
//! `crc32c(~0, s_uuid)`, or the value stored in `s_checksum_seed` (0x270)
//! when `metadata_csum_seed` (`INCOMPAT_CSUM_SEED`, 0x2000) is set, so
//! that the UUID can change without rewriting every checksum. Structures
//! that belong to an inode (the inode itself, its extent blocks, directory
//! blocks, the orphan file's blocks) chain on from the inode seed
//! ([`inode_seed`]): `crc32c(crc32c(fs_seed, le32 inode number), le32
//! i_generation)`.
//!
//! ## Where each checksum lives
//! | Structure | Stored at | Covers |
//! |---|---|---|
//! | superblock | `s_checksum` (0x3FC), le32 | bytes 0..0x3FC, seed ~0 (not the fs seed) |
//! | group descriptor | `bg_checksum` (0x1E), le16 | crc32c: fs seed, le32 group, the descriptor (`s_desc_size` bytes with 64bit, else 32) with bg_checksum as zero; low 16 bits. crc16: uuid, le32 group, bytes 0..0x1E, and with 64bit bytes 0x20..s_desc_size (the field is skipped, not zeroed) |
//! | block bitmap | `bg_block_bitmap_csum_lo` (0x18), `_hi` (0x38) | fs seed, the first clusters_per_group/8 bytes of the bitmap block; hi half only when the descriptor reaches 0x3A |
//! | inode bitmap | `bg_inode_bitmap_csum_lo` (0x1A), `_hi` (0x3A) | fs seed, the first inodes_per_group/8 bytes; hi half only when the descriptor reaches 0x3C |
//! | inode | `l_i_checksum_lo` (0x7C, in osd2), `i_checksum_hi` (0x82) | inode seed, all `s_inode_size` bytes with both fields as zero; the hi half exists only when `i_extra_isize >= 4` (for 128-byte inodes, or a smaller extra size, the checksum is the low 16 bits and 0x82.. is covered as it is) |
//! | extent block | `ext4_extent_tail` right after `eh_max` entries (12 + 12 * eh_max), le32 | inode seed, the block up to the tail |
//! | directory leaf | `ext4_dir_entry_tail`, the last 12 bytes: inode 0, rec_len 12, name_len 0, file type 0xDE, le32 checksum | inode seed, the block up to the tail |
//! | htree node | `dx_tail` right after `limit` dx entries from the count/limit header: le32 dt_reserved, le32 dt_checksum | inode seed, count_offset + count * 8 bytes, dt_reserved, and dt_checksum as zero |
//! | xattr block | `h_checksum` (0x10), le32 | fs seed, le64 block number, the whole block with h_checksum as zero |
//! | orphan file block | the last 8 bytes: le32 magic 0x0b10ca04, le32 checksum | inode seed of the orphan file, le64 block number, the block up to the tail |
//!
//! The journal's own checksums (JBD2 csum v2/v3) are computed in
//! [`crate::journal`] with the same [`crc32c_raw`].
//!
//! The inode checksum lives in the Linux layout of osd2; file systems made
//! for another `s_creator_os` carry none (the kernel skips them), which
//! callers check with [`Params::inode_csums`].

use crate::layout::{feature, le16, le32, put16, put32, sb};
use std::fmt;

/// crc32c as the kernel computes it: no inversion before or after.
pub fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

const fn crc16_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xA001
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}
static CRC16_TABLE: [u16; 256] = crc16_table();

/// The ANSI crc16 (reflected polynomial 0xA001), continued from `crc` with
/// no inversion: what `uninit_bg` group descriptors carry (start at
/// 0xFFFF).
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc = (crc >> 8) ^ CRC16_TABLE[((crc ^ b as u16) & 0xFF) as usize];
    }
    crc
}

/// Why a checksum did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The stored checksum is not the one computed over the bytes.
    Mismatch {
        /// What the structure carries.
        stored: u32,
        /// What its bytes give.
        computed: u32,
    },
    /// The structure has no room for, or no sign of, its checksum (a bad
    /// extent header, a missing directory tail, an htree limit that runs
    /// past the block, a wrong orphan block magic).
    Malformed(&'static str),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Mismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Problem::Malformed(m) => write!(f, "no valid checksum: {m}"),
        }
    }
}

/// The outcome of a verification.
pub type Verdict = std::result::Result<(), Problem>;

fn check(stored: u32, computed: u32) -> Verdict {
    if stored == computed {
        Ok(())
    } else {
        Err(Problem::Mismatch { stored, computed })
    }
}

// ---------------------------------------------------------------- superblock

/// Superblock offset of `s_checksum_type` (1 = crc32c).
pub const SB_CHECKSUM_TYPE: usize = 0x175;
/// Superblock offset of `s_checksum_seed` (with `metadata_csum_seed`).
pub const SB_CHECKSUM_SEED: usize = 0x270;
/// Superblock offset of `s_orphan_file_inum`.
pub const SB_ORPHAN_FILE_INUM: usize = 0x280;
/// Superblock offset of `s_checksum`.
pub const SB_CHECKSUM: usize = 0x3FC;

/// The file system checksum seed from raw superblock bytes:
/// `s_checksum_seed` with `metadata_csum_seed`, else `crc32c(~0, s_uuid)`.
pub fn fs_seed(sb_raw: &[u8]) -> u32 {
    if le32(sb_raw, sb::FEATURE_INCOMPAT) & feature::INCOMPAT_CSUM_SEED != 0 {
        le32(sb_raw, SB_CHECKSUM_SEED)
    } else {
        crc32c_raw(!0, &sb_raw[sb::UUID..sb::UUID + 16])
    }
}

/// The superblock checksum of raw superblock bytes (1024 of them).
pub fn superblock_csum(sb_raw: &[u8]) -> u32 {
    crc32c_raw(!0, &sb_raw[..SB_CHECKSUM])
}

/// Set `s_checksum` when the superblock has `metadata_csum` (else leave
/// the bytes alone).
pub fn set_superblock_csum(sb_raw: &mut [u8]) {
    if le32(sb_raw, sb::FEATURE_RO_COMPAT) & feature::RO_COMPAT_METADATA_CSUM != 0 {
        let c = superblock_csum(sb_raw);
        put32(sb_raw, SB_CHECKSUM, c);
    }
}

/// Verify `s_checksum` (true without `metadata_csum`).
pub fn verify_superblock(sb_raw: &[u8]) -> Verdict {
    if le32(sb_raw, sb::FEATURE_RO_COMPAT) & feature::RO_COMPAT_METADATA_CSUM == 0 {
        return Ok(());
    }
    check(le32(sb_raw, SB_CHECKSUM), superblock_csum(sb_raw))
}

/// The inode seed: `crc32c(crc32c(fs_seed, le32 ino), le32 generation)`.
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    crc32c_raw(
        crc32c_raw(fs_seed, &ino.to_le_bytes()),
        &generation.to_le_bytes(),
    )
}

// --------------------------------------------------------------- parameters

/// Which checksum the group descriptors carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescCsum {
    /// None (neither `metadata_csum` nor `uninit_bg`).
    None,
    /// The crc16 of `uninit_bg` (`RO_COMPAT_GDT_CSUM`).
    Crc16,
    /// The low 16 bits of a crc32c (`metadata_csum`, which wins over
    /// `uninit_bg` when both are set).
    Crc32c,
}

/// What the checksums of one file system depend on, read once from its
/// superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// `metadata_csum` is set: every structure of the table above but the
    /// descriptors' crc16 carries a crc32c.
    pub metadata_csum: bool,
    /// The descriptors' checksum.
    pub desc_csum: DescCsum,
    /// The file system seed ([`fs_seed`]).
    pub seed: u32,
    /// `s_uuid` (the crc16 starts from it).
    pub uuid: [u8; 16],
    /// Bytes of a group descriptor that its checksum covers: `s_desc_size`
    /// with 64bit, else 32.
    pub desc_size: usize,
    /// Bytes per inode (`s_inode_size`).
    pub inode_size: usize,
    /// Bytes of a block bitmap that its checksum covers
    /// (clusters_per_group / 8).
    pub block_bitmap_bytes: usize,
    /// Bytes of an inode bitmap that its checksum covers
    /// (inodes_per_group / 8).
    pub inode_bitmap_bytes: usize,
    /// The file system was made for Linux (`s_creator_os` 0): only then do
    /// inodes carry a checksum.
    pub linux: bool,
}

impl Params {
    /// Read from raw superblock bytes.
    pub fn from_superblock(sb_raw: &[u8]) -> Self {
        let ro = le32(sb_raw, sb::FEATURE_RO_COMPAT);
        let incompat = le32(sb_raw, sb::FEATURE_INCOMPAT);
        let metadata_csum = ro & feature::RO_COMPAT_METADATA_CSUM != 0;
        let desc_csum = if metadata_csum {
            DescCsum::Crc32c
        } else if ro & feature::RO_COMPAT_GDT_CSUM != 0 {
            DescCsum::Crc16
        } else {
            DescCsum::None
        };
        let desc_size = if incompat & feature::INCOMPAT_64BIT != 0 {
            (le16(sb_raw, sb::DESC_SIZE) as usize).max(32)
        } else {
            32
        };
        let inode_size = if le32(sb_raw, sb::REV_LEVEL) == 0 {
            128
        } else {
            le16(sb_raw, sb::INODE_SIZE) as usize
        };
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&sb_raw[sb::UUID..sb::UUID + 16]);
        Params {
            metadata_csum,
            desc_csum,
            seed: fs_seed(sb_raw),
            uuid,
            desc_size,
            inode_size,
            block_bitmap_bytes: (le32(sb_raw, sb::CLUSTERS_PER_GROUP) / 8) as usize,
            inode_bitmap_bytes: (le32(sb_raw, sb::INODES_PER_GROUP) / 8) as usize,
            linux: le32(sb_raw, sb::CREATOR_OS) == 0,
        }
    }

    /// Inodes carry a checksum.
    pub fn inode_csums(&self) -> bool {
        self.metadata_csum && self.linux
    }

    /// The inode seed of inode `ino` with generation `generation`.
    pub fn inode_seed(&self, ino: u32, generation: u32) -> u32 {
        inode_seed(self.seed, ino, generation)
    }

    // ------------------------------------------------------- descriptors

    /// The checksum of group `group`'s descriptor `desc` (at least
    /// [`Self::desc_size`] bytes), or None when descriptors carry none.
    pub fn group_desc_csum(&self, group: u32, desc: &[u8]) -> Option<u16> {
        let n = self.desc_size;
        let le_group = group.to_le_bytes();
        match self.desc_csum {
            DescCsum::None => None,
            DescCsum::Crc32c => {
                let c = crc32c_raw(self.seed, &le_group);
                let mut buf = [0u8; 128];
                if n <= buf.len() {
                    // The descriptor (64 bytes as mke2fs makes them) with
                    // its checksum field zeroed, in one pass.
                    let d = &mut buf[..n];
                    d.copy_from_slice(&desc[..n]);
                    d[GD_CHECKSUM..GD_CHECKSUM + 2].fill(0);
                    return Some(crc32c_raw(c, d) as u16);
                }
                let c = crc32c_raw(c, &desc[..GD_CHECKSUM]);
                let c = crc32c_raw(c, &[0, 0]);
                let c = crc32c_raw(c, &desc[GD_CHECKSUM + 2..n]);
                Some(c as u16)
            }
            DescCsum::Crc16 => {
                let c = crc16(0xFFFF, &self.uuid);
                let c = crc16(c, &le_group);
                let c = crc16(c, &desc[..GD_CHECKSUM]);
                Some(if n > GD_CHECKSUM + 2 {
                    crc16(c, &desc[GD_CHECKSUM + 2..n])
                } else {
                    c
                })
            }
        }
    }

    /// Set `bg_checksum` of group `group`'s descriptor (nothing when
    /// descriptors carry no checksum).
    pub fn set_group_desc_csum(&self, group: u32, desc: &mut [u8]) {
        if let Some(c) = self.group_desc_csum(group, desc) {
            put16(desc, GD_CHECKSUM, c);
        }
    }

    /// Verify `bg_checksum` of group `group`'s descriptor.
    pub fn verify_group_desc(&self, group: u32, desc: &[u8]) -> Verdict {
        match self.group_desc_csum(group, desc) {
            None => Ok(()),
            Some(c) => check(le16(desc, GD_CHECKSUM) as u32, c as u32),
        }
    }

    // ----------------------------------------------------------- bitmaps

    fn bitmap_csum(&self, bitmap: &[u8], bytes: usize) -> std::result::Result<u32, Problem> {
        if bitmap.len() < bytes {
            return Err(Problem::Malformed("bitmap shorter than the group"));
        }
        Ok(crc32c_raw(self.seed, &bitmap[..bytes]))
    }

    /// The crc32c of a block bitmap (its first clusters_per_group/8 bytes).
    pub fn block_bitmap_csum(&self, bitmap: &[u8]) -> std::result::Result<u32, Problem> {
        self.bitmap_csum(bitmap, self.block_bitmap_bytes)
    }

    /// The crc32c of an inode bitmap (its first inodes_per_group/8 bytes).
    pub fn inode_bitmap_csum(&self, bitmap: &[u8]) -> std::result::Result<u32, Problem> {
        self.bitmap_csum(bitmap, self.inode_bitmap_bytes)
    }

    fn put_split(&self, desc: &mut [u8], lo: usize, hi: usize, c: u32) {
        put16(desc, lo, c as u16);
        if self.desc_size >= hi + 2 {
            put16(desc, hi, (c >> 16) as u16);
        }
    }

    fn verify_split(&self, desc: &[u8], lo: usize, hi: usize, c: u32) -> Verdict {
        if self.desc_size >= hi + 2 {
            check(le16(desc, lo) as u32 | (le16(desc, hi) as u32) << 16, c)
        } else {
            check(le16(desc, lo) as u32, c & 0xFFFF)
        }
    }

    /// Store a block bitmap's checksum in its group's descriptor (with
    /// `metadata_csum`; the descriptor's own checksum is then stale).
    pub fn set_block_bitmap_csum(&self, desc: &mut [u8], bitmap: &[u8]) -> Verdict {
        if self.metadata_csum {
            let c = self.block_bitmap_csum(bitmap)?;
            self.put_split(desc, GD_BLOCK_BITMAP_CSUM_LO, GD_BLOCK_BITMAP_CSUM_HI, c);
        }
        Ok(())
    }

    /// Store an inode bitmap's checksum in its group's descriptor.
    pub fn set_inode_bitmap_csum(&self, desc: &mut [u8], bitmap: &[u8]) -> Verdict {
        if self.metadata_csum {
            let c = self.inode_bitmap_csum(bitmap)?;
            self.put_split(desc, GD_INODE_BITMAP_CSUM_LO, GD_INODE_BITMAP_CSUM_HI, c);
        }
        Ok(())
    }

    /// Verify a block bitmap against the checksum its descriptor holds.
    pub fn verify_block_bitmap(&self, desc: &[u8], bitmap: &[u8]) -> Verdict {
        if !self.metadata_csum {
            return Ok(());
        }
        let c = self.block_bitmap_csum(bitmap)?;
        self.verify_split(desc, GD_BLOCK_BITMAP_CSUM_LO, GD_BLOCK_BITMAP_CSUM_HI, c)
    }

    /// Verify an inode bitmap against the checksum its descriptor holds.
    pub fn verify_inode_bitmap(&self, desc: &[u8], bitmap: &[u8]) -> Verdict {
        if !self.metadata_csum {
            return Ok(());
        }
        let c = self.inode_bitmap_csum(bitmap)?;
        self.verify_split(desc, GD_INODE_BITMAP_CSUM_LO, GD_INODE_BITMAP_CSUM_HI, c)
    }

    // ------------------------------------------------------------ inodes

    /// `i_checksum_hi` exists in this raw inode (a large inode whose
    /// `i_extra_isize` reaches past 0x84).
    fn inode_has_hi(&self, raw: &[u8]) -> bool {
        self.inode_size > 128
            && raw.len() > 128
            && 128 + le16(raw, INODE_EXTRA_ISIZE) as usize >= INODE_CSUM_HI + 2
    }

    /// The checksum of raw inode `raw` (its first `s_inode_size` bytes) as
    /// inode `ino`: 32 bits when it has `i_checksum_hi`, else the low 16.
    pub fn inode_csum(&self, ino: u32, raw: &[u8]) -> u32 {
        let n = self.inode_size.min(raw.len());
        let gen = le32(raw, INODE_GENERATION);
        let c = self.inode_seed(ino, gen);
        let c = crc32c_raw(c, &raw[..INODE_CSUM_LO]);
        let c = crc32c_raw(c, &[0, 0]);
        let c = crc32c_raw(c, &raw[INODE_CSUM_LO + 2..128]);
        if n <= 128 {
            return c & 0xFFFF;
        }
        if self.inode_has_hi(raw) {
            let c = crc32c_raw(c, &raw[128..INODE_CSUM_HI]);
            let c = crc32c_raw(c, &[0, 0]);
            crc32c_raw(c, &raw[INODE_CSUM_HI + 2..n])
        } else {
            crc32c_raw(c, &raw[128..n]) & 0xFFFF
        }
    }

    /// Set the checksum of raw inode `raw` as inode `ino` (with
    /// `metadata_csum` on a Linux file system).
    pub fn set_inode_csum(&self, ino: u32, raw: &mut [u8]) {
        if !self.inode_csums() {
            return;
        }
        let c = self.inode_csum(ino, raw);
        put16(raw, INODE_CSUM_LO, c as u16);
        if self.inode_has_hi(raw) {
            put16(raw, INODE_CSUM_HI, (c >> 16) as u16);
        }
    }

    /// The checksum raw inode `raw` carries.
    pub fn stored_inode_csum(&self, raw: &[u8]) -> u32 {
        let mut s = le16(raw, INODE_CSUM_LO) as u32;
        if self.inode_has_hi(raw) {
            s |= (le16(raw, INODE_CSUM_HI) as u32) << 16;
        }
        s
    }

    /// Verify raw inode `raw` as inode `ino`. An inode of all zeros (never
    /// used, as mke2fs leaves the inode table with lazy_itable_init)
    /// carries no checksum; callers that read such inodes decide with
    /// [`inode_is_zero`].
    pub fn verify_inode(&self, ino: u32, raw: &[u8]) -> Verdict {
        if !self.inode_csums() {
            return Ok(());
        }
        check(self.stored_inode_csum(raw), self.inode_csum(ino, raw))
    }
}

/// Group descriptor offset of `bg_block_bitmap_csum_lo`.
pub const GD_BLOCK_BITMAP_CSUM_LO: usize = 0x18;
/// Group descriptor offset of `bg_inode_bitmap_csum_lo`.
pub const GD_INODE_BITMAP_CSUM_LO: usize = 0x1A;
/// Group descriptor offset of `bg_checksum`.
pub const GD_CHECKSUM: usize = 0x1E;
/// Group descriptor offset of `bg_block_bitmap_csum_hi` (64-byte
/// descriptors).
pub const GD_BLOCK_BITMAP_CSUM_HI: usize = 0x38;
/// Group descriptor offset of `bg_inode_bitmap_csum_hi`.
pub const GD_INODE_BITMAP_CSUM_HI: usize = 0x3A;

/// Inode offset of `i_generation`.
pub const INODE_GENERATION: usize = 0x64;
/// Inode offset of `l_i_checksum_lo` (osd2, Linux).
pub const INODE_CSUM_LO: usize = 0x7C;
/// Inode offset of `i_extra_isize`.
pub const INODE_EXTRA_ISIZE: usize = 0x80;
/// Inode offset of `i_checksum_hi`.
pub const INODE_CSUM_HI: usize = 0x82;

/// The raw inode is all zeros (never written).
pub fn inode_is_zero(raw: &[u8]) -> bool {
    raw.iter().all(|&b| b == 0)
}

// ------------------------------------------------------------- extent blocks

/// Extent header magic.
pub const EXTENT_MAGIC: u16 = 0xF30A;

/// Offset of the `ext4_extent_tail` in an extent block: after the 12-byte
/// header and `eh_max` 12-byte entries.
pub fn extent_tail_offset(block: &[u8]) -> std::result::Result<usize, Problem> {
    if block.len() < 12 || le16(block, 0) != EXTENT_MAGIC {
        return Err(Problem::Malformed("bad extent header magic"));
    }
    let max = le16(block, 4) as usize;
    let off = 12 + 12 * max;
    if off + 4 > block.len() {
        return Err(Problem::Malformed(
            "extent header eh_max leaves no room for the tail",
        ));
    }
    Ok(off)
}

/// The checksum of an extent block of the inode with seed `iseed`.
pub fn extent_block_csum(iseed: u32, block: &[u8]) -> std::result::Result<u32, Problem> {
    let off = extent_tail_offset(block)?;
    Ok(crc32c_raw(iseed, &block[..off]))
}

/// Set the tail checksum of an extent block.
pub fn set_extent_block_csum(iseed: u32, block: &mut [u8]) -> Verdict {
    let off = extent_tail_offset(block)?;
    let c = crc32c_raw(iseed, &block[..off]);
    put32(block, off, c);
    Ok(())
}

/// Verify the tail checksum of an extent block.
pub fn verify_extent_block(iseed: u32, block: &[u8]) -> Verdict {
    let off = extent_tail_offset(block)?;
    check(le32(block, off), crc32c_raw(iseed, &block[..off]))
}

// ---------------------------------------------------------- directory leaves

/// Bytes of the directory leaf tail (`ext4_dir_entry_tail`).
pub const DIRENT_TAIL_LEN: usize = 12;
/// File type byte that marks the directory leaf tail.
pub const DIRENT_TAIL_FT: u8 = 0xDE;

/// The block ends with a directory leaf tail: a fake entry of inode 0,
/// rec_len 12, name_len 0 and file type 0xDE in its last 12 bytes.
pub fn has_dirent_tail(block: &[u8]) -> bool {
    let n = block.len();
    n >= DIRENT_TAIL_LEN && {
        let t = &block[n - DIRENT_TAIL_LEN..];
        le32(t, 0) == 0
            && le16(t, 4) == DIRENT_TAIL_LEN as u16
            && t[6] == 0
            && t[7] == DIRENT_TAIL_FT
    }
}

/// Write an empty directory leaf tail (checksum 0) in the last 12 bytes:
/// the caller has left them out of the last entry's rec_len.
pub fn init_dirent_tail(block: &mut [u8]) {
    let n = block.len();
    let t = &mut block[n - DIRENT_TAIL_LEN..];
    t.fill(0);
    put16(t, 4, DIRENT_TAIL_LEN as u16);
    t[7] = DIRENT_TAIL_FT;
}

/// The checksum of a directory leaf block of the directory with seed
/// `iseed` (over everything before the tail).
pub fn dir_leaf_csum(iseed: u32, block: &[u8]) -> std::result::Result<u32, Problem> {
    if !has_dirent_tail(block) {
        return Err(Problem::Malformed("directory block has no checksum tail"));
    }
    Ok(crc32c_raw(iseed, &block[..block.len() - DIRENT_TAIL_LEN]))
}

/// Set the checksum in a directory leaf block's tail.
pub fn set_dir_leaf_csum(iseed: u32, block: &mut [u8]) -> Verdict {
    let c = dir_leaf_csum(iseed, block)?;
    let n = block.len();
    put32(block, n - 4, c);
    Ok(())
}

/// Verify a directory leaf block's tail checksum.
pub fn verify_dir_leaf(iseed: u32, block: &[u8]) -> Verdict {
    let c = dir_leaf_csum(iseed, block)?;
    check(le32(block, block.len() - 4), c)
}

// --------------------------------------------------------------- htree nodes

/// Where the count/limit header of an htree node sits: 0x20 in the root
/// block (after ".", ".." and the 8-byte dx_root_info), 8 in an interior
/// node (after a fake entry of inode 0 covering the whole block). None
/// when the block is neither; only meaningful for blocks of an indexed
/// directory (a linear directory's blocks are never htree nodes).
pub fn dx_count_offset(block: &[u8]) -> Option<usize> {
    let n = block.len();
    if n < 0x28 {
        return None;
    }
    let rec0 = le16(block, 4) as usize;
    if rec0 == n && le32(block, 0) == 0 {
        return Some(8);
    }
    if rec0 == 12 && le16(block, 12 + 4) as usize == n - 12 && block[0x1D] == 8 {
        return Some(0x20);
    }
    None
}

fn dx_tail(block: &[u8], count_offset: usize) -> std::result::Result<(usize, usize), Problem> {
    if count_offset + 4 > block.len() {
        return Err(Problem::Malformed(
            "htree count/limit header past the block",
        ));
    }
    let limit = le16(block, count_offset) as usize;
    let count = le16(block, count_offset + 2) as usize;
    let tail = count_offset + limit * 8;
    if tail + 8 > block.len() {
        return Err(Problem::Malformed(
            "htree limit leaves no room for the checksum tail",
        ));
    }
    if count > limit {
        return Err(Problem::Malformed("htree count exceeds its limit"));
    }
    Ok((tail, count))
}

/// The checksum of an htree node (root or interior) of the directory with
/// seed `iseed`, its count/limit header at `count_offset`
/// ([`dx_count_offset`]).
pub fn dx_node_csum(
    iseed: u32,
    block: &[u8],
    count_offset: usize,
) -> std::result::Result<u32, Problem> {
    let (tail, count) = dx_tail(block, count_offset)?;
    let c = crc32c_raw(iseed, &block[..count_offset + count * 8]);
    let c = crc32c_raw(c, &block[tail..tail + 4]);
    Ok(crc32c_raw(c, &[0; 4]))
}

/// Set the dx_tail checksum of an htree node.
pub fn set_dx_node_csum(iseed: u32, block: &mut [u8], count_offset: usize) -> Verdict {
    let c = dx_node_csum(iseed, block, count_offset)?;
    let (tail, _) = dx_tail(block, count_offset)?;
    put32(block, tail + 4, c);
    Ok(())
}

/// Verify the dx_tail checksum of an htree node.
pub fn verify_dx_node(iseed: u32, block: &[u8], count_offset: usize) -> Verdict {
    let c = dx_node_csum(iseed, block, count_offset)?;
    let (tail, _) = dx_tail(block, count_offset)?;
    check(le32(block, tail + 4), c)
}

// -------------------------------------------------------------- xattr blocks

/// Xattr block offset of `h_checksum`.
pub const XATTR_CHECKSUM: usize = 0x10;

/// The checksum of the xattr block at block number `blocknr`.
pub fn xattr_block_csum(fs_seed: u32, blocknr: u64, block: &[u8]) -> u32 {
    let c = crc32c_raw(fs_seed, &blocknr.to_le_bytes());
    let c = crc32c_raw(c, &block[..XATTR_CHECKSUM]);
    let c = crc32c_raw(c, &[0; 4]);
    crc32c_raw(c, &block[XATTR_CHECKSUM + 4..])
}

/// Set `h_checksum` of the xattr block at `blocknr`.
pub fn set_xattr_block_csum(fs_seed: u32, blocknr: u64, block: &mut [u8]) {
    let c = xattr_block_csum(fs_seed, blocknr, block);
    put32(block, XATTR_CHECKSUM, c);
}

/// Verify `h_checksum` of the xattr block at `blocknr`.
pub fn verify_xattr_block(fs_seed: u32, blocknr: u64, block: &[u8]) -> Verdict {
    check(
        le32(block, XATTR_CHECKSUM),
        xattr_block_csum(fs_seed, blocknr, block),
    )
}

// -------------------------------------------------------- orphan file blocks

/// Magic in the tail of an orphan file block.
pub const ORPHAN_BLOCK_MAGIC: u32 = 0x0b10_ca04;

/// The checksum of the orphan file block at `blocknr` (physical), of the
/// orphan file with inode seed `iseed`.
pub fn orphan_block_csum(iseed: u32, blocknr: u64, block: &[u8]) -> u32 {
    let c = crc32c_raw(iseed, &blocknr.to_le_bytes());
    crc32c_raw(c, &block[..block.len() - 8])
}

/// Write the tail (magic and checksum) of an orphan file block.
pub fn set_orphan_block_csum(iseed: u32, blocknr: u64, block: &mut [u8]) {
    let n = block.len();
    put32(block, n - 8, ORPHAN_BLOCK_MAGIC);
    let c = orphan_block_csum(iseed, blocknr, block);
    put32(block, n - 4, c);
}

/// Verify the tail of an orphan file block.
pub fn verify_orphan_block(iseed: u32, blocknr: u64, block: &[u8]) -> Verdict {
    let n = block.len();
    if le32(block, n - 8) != ORPHAN_BLOCK_MAGIC {
        return Err(Problem::Malformed("orphan file block has no tail magic"));
    }
    check(le32(block, n - 4), orphan_block_csum(iseed, blocknr, block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_values() {
        // The standard check inputs: CRC-32C("123456789") = 0xE3069283
        // with the usual inversions; CRC-16/MODBUS (init 0xFFFF, reflected
        // 0x8005, no final xor) = 0x4B37; CRC-16/ARC (init 0) = 0xBB3D.
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
        assert_eq!(crc16(0xFFFF, b"123456789"), 0x4B37);
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
        // Chaining is the same as one pass.
        assert_eq!(
            crc32c_raw(crc32c_raw(7, b"1234"), b"56789"),
            crc32c_raw(7, b"123456789")
        );
        assert_eq!(crc16(crc16(0xFFFF, b"1234"), b"56789"), 0x4B37);
    }

    #[test]
    fn dirent_tail_round_trip() {
        let mut b = vec![0u8; 1024];
        put16(&mut b, 4, 1012);
        assert!(!has_dirent_tail(&b));
        init_dirent_tail(&mut b);
        assert!(has_dirent_tail(&b));
        set_dir_leaf_csum(5, &mut b).unwrap();
        verify_dir_leaf(5, &b).unwrap();
        assert!(matches!(
            verify_dir_leaf(6, &b),
            Err(Problem::Mismatch { .. })
        ));
        b[100] ^= 1;
        assert!(verify_dir_leaf(5, &b).is_err());
    }

    #[test]
    fn malformed_structures_refused() {
        let b = vec![0u8; 1024];
        assert!(matches!(extent_tail_offset(&b), Err(Problem::Malformed(_))));
        let mut e = vec![0u8; 1024];
        put16(&mut e, 0, EXTENT_MAGIC);
        put16(&mut e, 4, 85); // 12 + 85 * 12 = 1032 > 1024
        assert!(extent_tail_offset(&e).is_err());
        put16(&mut e, 4, 84);
        assert_eq!(extent_tail_offset(&e), Ok(1020));
        assert!(verify_orphan_block(0, 0, &b).is_err());
        let mut d = vec![0u8; 1024];
        put16(&mut d, 4, 1024);
        assert_eq!(dx_count_offset(&d), Some(8));
        put16(&mut d, 8, 127); // 8 + 127 * 8 + 8 = 1032
        assert!(dx_node_csum(1, &d, 8).is_err());
        put16(&mut d, 8, 126);
        put16(&mut d, 10, 127);
        assert!(dx_node_csum(1, &d, 8).is_err());
        put16(&mut d, 10, 1);
        set_dx_node_csum(1, &mut d, 8).unwrap();
        verify_dx_node(1, &d, 8).unwrap();
        // Bytes past count entries (before the tail) are not covered.
        d[500] ^= 1;
        verify_dx_node(1, &d, 8).unwrap();
        d[12] ^= 1;
        assert!(matches!(
            verify_dx_node(1, &d, 8),
            Err(Problem::Mismatch { .. })
        ));
    }
}
