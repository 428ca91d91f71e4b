//! mkfs: a new ext2/ext3/ext4 file system, without mke2fs, laid out as
//! mke2fs 1.47 lays it out for the same parameters.
//!
//! [`plan`] turns [`MkfsOptions`] into a [`Plan`]: every parameter as
//! mke2fs picks it (the usage type from the size, as /etc/mke2fs.conf of
//! e2fsprogs 1.47.0 gives it: `floppy` under 3 MiB, `small` under 512 MiB,
//! `default` under 4 TiB), then every block the new file system uses, in
//! the order mke2fs allocates them:
//!
//! 1. each group's superblock backup, group descriptors and reserved GDT
//!    blocks (sparse_super: groups 0, 1 and the powers of 3, 5 and 7);
//! 2. block bitmaps, inode bitmaps and inode tables: in their own group,
//!    or with flex_bg packed at the start of each flex group, every kind
//!    of table in a run of its own (the last flex group's runs sized for
//!    the groups it has);
//! 3. the root directory (inode 2) and lost+found (inode 11, grown to
//!    16 KiB or 12 blocks, at least 2), from the first free block of the
//!    (flex) group;
//! 4. the resize inode (7): a double indirect block whose entries are the
//!    primary reserved GDT blocks, each of them an indirect block listing
//!    its backups;
//! 5. the journal (inode 8): with extents from the start of the group
//!    with the most free blocks around the middle of the file system,
//!    else from the start, its indirect blocks interleaved in logical
//!    order.
//!
//! [`write_plan`] writes only the blocks that are not all zeros, to a new
//! (sparse) device: inode tables beyond the used inodes, free blocks and
//! the journal's log blocks are zeros already, as mke2fs leaves them when
//! the device reads back zeros (ITABLE_ZEROED is set in every group, and
//! the kernel has no table to zero lazily). With `uninit_bg` or
//! `metadata_csum`, groups with nothing allocated but their own metadata
//! are BLOCK_UNINIT (never the last one), groups without inodes in use
//! INODE_UNINIT; their bitmaps are not written and carry no checksum.
//!
//! Reproducible: the UUID and the directory hash seed are derived from the
//! options by a hash unless given, and every time is [`MkfsOptions::time`].
//!
//! tests/mkfs.rs compares the result with mke2fs 1.47.0's for the same
//! parameters: the same bytes everywhere but `s_kbytes_written` (mke2fs
//! counts the bytes its block cache wrote; here it is 1 + the KiB of the
//! blocks written besides superblocks and descriptors, which is mke2fs's
//! figure for small ext4 and a few KiB off elsewhere).
//!
//! Refused, with a message naming them: features other than those of
//! `MAKE` (meta_bg, bigalloc, inline_data, quota, project, sparse_super2,
//! casefold, encrypt, mmp, metadata_csum_seed, large_dir, ea_inode,
//! verity, ...), blocks other than 1, 2 or 4 KiB, 2^32 blocks or more, a
//! layout that would need meta_bg, resize_inode without sparse_super and
//! orphan_file without a journal (as mke2fs), and a journal needing more
//! extents than one leaf block holds (mke2fs would grow its tree deeper).

use std::collections::BTreeMap;

use crate::csum::{self, Params as CsumParams};
use crate::device::BlockDevice;
use crate::layout::feature as f;
use crate::{Error, Result};

/// The file system type, as mke2fs's `-t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsType {
    /// ext2: the base features.
    Ext2,
    /// ext3: ext2 with a journal.
    Ext3,
    /// ext4: extents, flex_bg, 64bit, metadata_csum, ...
    Ext4,
}

impl FsType {
    /// Parse "ext2", "ext3" or "ext4".
    pub fn parse(s: &str) -> Result<FsType> {
        match s {
            "ext2" => Ok(FsType::Ext2),
            "ext3" => Ok(FsType::Ext3),
            "ext4" => Ok(FsType::Ext4),
            _ => Err(Error::Invalid(format!(
                "--type {s}: unknown file system type (ext2, ext3 or ext4)"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
        }
    }
}

/// What to make: mke2fs's options that ext3edit takes.
#[derive(Clone, Debug)]
pub struct MkfsOptions {
    /// Size of the image in bytes.
    pub size: u64,
    /// The type (feature set and defaults).
    pub fs_type: FsType,
    /// Block size (1024, 2048 or 4096); default as mke2fs picks it.
    pub block_size: Option<u32>,
    /// Inode size (128, 256, ... up to the block size); default 256.
    pub inode_size: Option<u32>,
    /// Number of inodes (rounded as mke2fs rounds it); default from the
    /// inode ratio of the usage type.
    pub inodes: Option<u64>,
    /// Volume label (at most 16 bytes).
    pub label: Option<Vec<u8>>,
    /// File system UUID; default derived from the other options.
    pub uuid: Option<[u8; 16]>,
    /// Directory hash seed; default derived from the other options.
    pub hash_seed: Option<[u8; 16]>,
    /// Journal size in MiB (mke2fs `-J size=`); default as mke2fs picks it.
    pub journal_size_mb: Option<u64>,
    /// Feature edits in mke2fs's `-O` syntax: `a,b,^c`.
    pub features: Option<String>,
    /// Every timestamp (creation, write, check, inode times).
    pub time: u32,
}

impl MkfsOptions {
    /// Options for a file system of `size` bytes of type `fs_type`, every
    /// other choice left to the defaults, made at time `time`.
    pub fn new(size: u64, fs_type: FsType, time: u32) -> Self {
        MkfsOptions {
            size,
            fs_type,
            block_size: None,
            inode_size: None,
            inodes: None,
            label: None,
            uuid: None,
            hash_seed: None,
            journal_size_mb: None,
            features: None,
            time,
        }
    }
}

// Features ext3edit can make: (set 0 compat / 1 incompat / 2 ro_compat, bit).
const MAKE: &[(u8, u32)] = &[
    (0, f::COMPAT_HAS_JOURNAL),
    (0, f::COMPAT_EXT_ATTR),
    (0, f::COMPAT_RESIZE_INODE),
    (0, f::COMPAT_DIR_INDEX),
    (0, f::COMPAT_ORPHAN_FILE),
    (1, f::INCOMPAT_FILETYPE),
    (1, f::INCOMPAT_EXTENTS),
    (1, f::INCOMPAT_64BIT),
    (1, f::INCOMPAT_FLEX_BG),
    (2, f::RO_COMPAT_SPARSE_SUPER),
    (2, f::RO_COMPAT_LARGE_FILE),
    (2, f::RO_COMPAT_HUGE_FILE),
    (2, f::RO_COMPAT_GDT_CSUM),
    (2, f::RO_COMPAT_DIR_NLINK),
    (2, f::RO_COMPAT_EXTRA_ISIZE),
    (2, f::RO_COMPAT_METADATA_CSUM),
];

/// The three feature words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// s_feature_compat
    pub compat: u32,
    /// s_feature_incompat
    pub incompat: u32,
    /// s_feature_ro_compat
    pub ro_compat: u32,
}

impl Features {
    fn word(&mut self, set: u8) -> &mut u32 {
        match set {
            0 => &mut self.compat,
            1 => &mut self.incompat,
            _ => &mut self.ro_compat,
        }
    }

    fn has(&self, set: u8, bit: u32) -> bool {
        let w = match set {
            0 => self.compat,
            1 => self.incompat,
            _ => self.ro_compat,
        };
        w & bit != 0
    }

    /// The features of a type, as /etc/mke2fs.conf of e2fsprogs 1.47.0
    /// gives them: base_features, then the type's.
    pub fn of_type(t: FsType) -> Features {
        let mut x = Features {
            compat: f::COMPAT_EXT_ATTR | f::COMPAT_RESIZE_INODE | f::COMPAT_DIR_INDEX,
            incompat: f::INCOMPAT_FILETYPE,
            ro_compat: f::RO_COMPAT_SPARSE_SUPER | f::RO_COMPAT_LARGE_FILE,
        };
        if t != FsType::Ext2 {
            x.compat |= f::COMPAT_HAS_JOURNAL;
        }
        if t == FsType::Ext4 {
            x.incompat |= f::INCOMPAT_EXTENTS | f::INCOMPAT_FLEX_BG | f::INCOMPAT_64BIT;
            x.ro_compat |= f::RO_COMPAT_HUGE_FILE
                | f::RO_COMPAT_METADATA_CSUM
                | f::RO_COMPAT_DIR_NLINK
                | f::RO_COMPAT_EXTRA_ISIZE;
        }
        x
    }

    /// Apply `list` in mke2fs's `-O` syntax (comma or space separated,
    /// `^name` clears, `none`/`clear` clears all): an unknown name, or one
    /// ext3edit cannot make, is an error naming it.
    pub fn edit(&mut self, list: &str) -> Result<()> {
        let mut cannot = Vec::new();
        for item in list.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
            let (clear, name) = match item.strip_prefix('^') {
                Some(n) => (true, n),
                None => (false, item),
            };
            if name == "none" || name == "clear" {
                *self = Features::default();
                continue;
            }
            // mke2fs's other names for two features.
            let name = match name {
                "extents" => "extent",
                "gdt_csum" => "uninit_bg",
                n => n,
            };
            let Some(&(set, bit, _)) = f::NAMES.iter().find(|(_, _, n)| *n == name) else {
                return Err(Error::Invalid(format!(
                    "--features: unknown feature '{name}'"
                )));
            };
            if clear {
                *self.word(set) &= !bit;
            } else if MAKE.contains(&(set, bit)) {
                *self.word(set) |= bit;
            } else {
                cannot.push(name.to_string());
            }
        }
        if !cannot.is_empty() {
            return Err(Error::Unsupported(format!(
                "--features: ext3edit mkfs cannot make a file system with {} (it makes {})",
                cannot.join(", "),
                MAKE.iter()
                    .filter_map(|&(s, b)| f::NAMES
                        .iter()
                        .find(|(s2, b2, _)| *s2 == s && *b2 == b)
                        .map(|x| x.2))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    fn csum(&self) -> bool {
        self.ro_compat & (f::RO_COMPAT_GDT_CSUM | f::RO_COMPAT_METADATA_CSUM) != 0
    }
}

/// One extent: logical block, first physical block, length.
type Extent = (u64, u64, u64);

/// Where one journal block map puts its blocks.
#[derive(Clone, Debug, Default)]
struct FileMap {
    /// i_block as 15 little-endian words (indirect maps) or the extent
    /// header and up to 4 extents.
    i_block: [u32; 15],
    /// Indirect blocks to write: block number and entries.
    indirect: Vec<(u64, Vec<u32>)>,
    /// Blocks used, data and map (for i_blocks).
    blocks: u64,
    /// Data blocks in runs (start, length).
    runs: Vec<(u64, u64)>,
    /// An extent tree of depth 1: its leaf block and extents (logical,
    /// start, length).
    leaf: Option<(u64, Vec<Extent>)>,
}

/// Every parameter and block of the file system to be made.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks in the file system.
    pub blocks: u64,
    /// Reserved blocks (5%).
    pub reserved_blocks: u64,
    /// First data block (1 with 1 KiB blocks, else 0).
    pub first_data_block: u64,
    /// Blocks per group.
    pub blocks_per_group: u32,
    /// Block groups.
    pub groups: u32,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// Inode size in bytes.
    pub inode_size: u32,
    /// Inode table blocks per group.
    pub itable_blocks: u32,
    /// Group descriptor size (32, or 64 with 64bit).
    pub desc_size: u32,
    /// Group descriptor blocks.
    pub desc_blocks: u32,
    /// Reserved GDT blocks (resize_inode).
    pub reserved_gdt: u32,
    /// log2 of the flex_bg size (0 without flex_bg).
    pub log_flex: u8,
    /// Journal blocks (0: no journal).
    pub journal_blocks: u64,
    /// The features.
    pub features: Features,
    /// File system UUID.
    pub uuid: [u8; 16],
    /// Directory hash seed.
    pub hash_seed: [u8; 16],
    /// Volume label.
    pub label: Vec<u8>,
    /// The time of every timestamp.
    pub time: u32,
    /// Notes for the user (what mke2fs would print as a warning).
    pub notes: Vec<String>,
    block_bitmap: Vec<u64>,
    inode_bitmap: Vec<u64>,
    inode_table: Vec<u64>,
    root_block: u64,
    lpf_blocks: Vec<u64>,
    resize_dind: u64,
    journal: FileMap,
    /// The orphan file (inode 12), with orphan_file: `blocks` counts its
    /// data blocks, `orphan_map_blocks` its indirect blocks.
    orphan: FileMap,
    orphan_map_blocks: u64,
    used: Bits,
    /// Groups where something was allocated besides their own metadata.
    touched: Vec<bool>,
    /// s_overhead_clusters as mke2fs counts it.
    overhead: u64,
    /// s_kbytes_written: 0, or with ext4 features (where the kernel keeps
    /// the count) 1 + the KiB of blocks written besides superblocks and
    /// descriptors (with the primary reserved GDT blocks). mke2fs counts
    /// its own writes through its block cache, so its figure differs by a
    /// few KiB on most layouts (equal for 64 MiB and 8 MiB ext4).
    kbytes_written: u64,
}

/// A bitmap of the blocks in use.
#[derive(Clone, Debug)]
struct Bits {
    w: Vec<u64>,
    len: u64,
}

impl Bits {
    fn new(len: u64) -> Bits {
        Bits {
            w: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }
    fn get(&self, b: u64) -> bool {
        b < self.len && self.w[(b / 64) as usize] >> (b % 64) & 1 == 1
    }
    fn set(&mut self, b: u64) {
        if b < self.len {
            self.w[(b / 64) as usize] |= 1 << (b % 64);
        }
    }
    fn range_free(&self, b: u64, n: u64) -> bool {
        self.count(b, b + n) == 0
    }
    /// Bits set in [a, b).
    fn count(&self, a: u64, b: u64) -> u64 {
        let b = b.min(self.len);
        if a >= b {
            return 0;
        }
        let (wa, wb) = (a / 64, (b - 1) / 64);
        let mut n = 0u64;
        for w in wa..=wb {
            let mut x = self.w[w as usize];
            if w == wa {
                x &= !0u64 << (a % 64);
            }
            if w == wb && !b.is_multiple_of(64) {
                x &= (1u64 << (b % 64)) - 1;
            }
            n += x.count_ones() as u64;
        }
        n
    }
}

const MIB: u64 = 1 << 20;

/// The usage type mke2fs picks for a size (mke2fs.conf's fs_types).
fn usage_type(bytes: u64) -> &'static str {
    if bytes < 3 * MIB {
        "floppy"
    } else if bytes < 512 * MIB {
        "small"
    } else if bytes < 4 << 40 {
        "default"
    } else if bytes < 16 << 40 {
        "big"
    } else {
        "huge"
    }
}

/// A 16-byte value derived from the options: four crc32c of the options'
/// text with different seeds, marked as an RFC 4122 version 4 UUID.
fn derived(opts: &MkfsOptions, what: &str) -> [u8; 16] {
    let text = format!(
        "ext3edit mkfs {what} size={} type={} bs={:?} is={:?} n={:?} label={:?} j={:?} f={:?} t={} uuid={:?}",
        opts.size,
        opts.fs_type.name(),
        opts.block_size,
        opts.inode_size,
        opts.inodes,
        opts.label,
        opts.journal_size_mb,
        opts.features,
        opts.time,
        if what == "hash" { opts.uuid } else { None },
    );
    let mut out = [0u8; 16];
    for i in 0..4 {
        let c = csum::crc32c_raw(0x9E37_79B9u32.wrapping_mul(i as u32 + 1), text.as_bytes());
        out[i * 4..i * 4 + 4].copy_from_slice(&c.to_le_bytes());
    }
    out[6] = (out[6] & 0x0F) | 0x40;
    out[8] = (out[8] & 0x3F) | 0x80;
    out
}

/// The journal size mke2fs picks for a file system of `blocks` blocks.
fn default_journal_blocks(blocks: u64) -> Option<u64> {
    Some(match blocks {
        b if b < 2048 => return None,
        b if b < 32768 => 1024,
        b if b < 256 * 1024 => 4096,
        b if b < 512 * 1024 => 8192,
        b if b < 4096 * 1024 => 16384,
        b if b < 8192 * 1024 => 32768,
        b if b < 16384 * 1024 => 65536,
        b if b < 32768 * 1024 => 131072,
        _ => 262144,
    })
}

/// Group `g` holds a superblock backup: every group, or with sparse_super
/// groups 0, 1 and the powers of 3, 5 and 7.
fn has_super(sparse: bool, g: u32) -> bool {
    g <= 1 || !sparse || is_power_of(g, 3) || is_power_of(g, 5) || is_power_of(g, 7)
}

fn is_power_of(mut n: u32, p: u32) -> bool {
    while n > 1 && n.is_multiple_of(p) {
        n /= p;
    }
    n == 1
}

impl Plan {
    fn sparse(&self) -> bool {
        self.features.has(2, f::RO_COMPAT_SPARSE_SUPER)
    }

    /// Group `g` holds a superblock backup.
    pub fn has_super(&self, g: u32) -> bool {
        has_super(self.sparse(), g)
    }

    fn group_first(&self, g: u32) -> u64 {
        self.first_data_block + g as u64 * self.blocks_per_group as u64
    }

    fn group_last(&self, g: u32) -> u64 {
        (self.group_first(g) + self.blocks_per_group as u64 - 1).min(self.blocks - 1)
    }

    fn group_of(&self, b: u64) -> u32 {
        ((b - self.first_data_block) / self.blocks_per_group as u64) as u32
    }

    /// mke2fs's search for `num` free blocks starting at `start`, the
    /// start moving up to (not including) `finish`, wrapping at the end.
    fn free_run(&self, start: u64, finish: u64, num: u64) -> Option<u64> {
        let mut b = if start == 0 {
            self.first_data_block
        } else {
            start
        };
        let finish = if finish == 0 { start } else { finish };
        loop {
            if b + num > self.blocks {
                if finish > start {
                    return None;
                }
                b = self.first_data_block;
            }
            if self.used.range_free(b, num) {
                return Some(b);
            }
            b += 1;
            if b == finish {
                return None;
            }
        }
    }

    fn mark(&mut self, b: u64, n: u64, touch: bool) {
        for x in b..b + n {
            self.used.set(x);
            if touch {
                let g = self.group_of(x) as usize;
                self.touched[g] = true;
            }
        }
    }

    /// The first free block at or after `goal`, wrapping; marked used.
    fn alloc(&mut self, goal: u64) -> Result<u64> {
        let goal = if goal >= self.blocks || goal < self.first_data_block {
            self.first_data_block
        } else {
            goal
        };
        let mut b = goal;
        loop {
            if !self.used.get(b) {
                self.mark(b, 1, true);
                return Ok(b);
            }
            b += 1;
            if b >= self.blocks {
                b = self.first_data_block;
            }
            if b == goal {
                return Err(Error::NoSpace(format!(
                    "{} blocks are too few for the file system's metadata",
                    self.blocks
                )));
            }
        }
    }

    fn group_free(&self, g: u32) -> u64 {
        let (a, b) = (self.group_first(g), self.group_last(g) + 1);
        (b - a) - self.used.count(a, b)
    }

    fn too_small(&self) -> Error {
        Error::Invalid(format!(
            "SIZE: {} bytes are too small for this file system (its metadata does not fit)",
            self.blocks * self.block_size as u64
        ))
    }

    // -------------------------------------------------------- allocation

    /// Where the first block of an empty inode goes: the first block of
    /// its (flex) group (ext2fs_find_inode_goal).
    fn inode_goal(&self, ino: u32) -> u64 {
        let mut g = (ino - 1) / self.inodes_per_group;
        if self.log_flex > 0 {
            g &= !((1u32 << self.log_flex) - 1);
        }
        self.group_first(g)
    }

    /// The groups ext2fs_new_inode looks at to find `ino` (from group 0)
    /// lose BLOCK_UNINIT.
    fn touch_inode_group(&mut self, ino: u32) {
        let g = ((ino - 1) / self.inodes_per_group) as usize;
        for t in &mut self.touched[..=g.min(self.groups as usize - 1)] {
            *t = true;
        }
    }

    /// Bitmaps and inode table of group `g` (ext2fs_allocate_group_table).
    fn allocate_group_table(&mut self, g: u32) -> Result<()> {
        let ipb = self.itable_blocks as u64;
        let mut group_blk = self.group_first(g);
        let mut last_blk = self.group_last(g);
        let mut start_blk = group_blk;
        let flex = if self.log_flex > 0 {
            1u32 << self.log_flex
        } else {
            0
        };
        let mut table_offset = 0u64;
        let mut rem = 0u64;
        let mut last_grp = 0;
        if flex > 0 {
            last_grp = (g | (flex - 1)).min(self.groups - 1);
            rem = (last_grp - g + 1) as u64;
            table_offset = flex as u64;
            let mut prev = 0;
            if !g.is_multiple_of(flex) {
                prev = self.block_bitmap[g as usize - 1] + 1;
            } else if last_grp == self.groups - 1 {
                table_offset = (last_grp & (flex - 1)) as u64;
                table_offset = if table_offset == 0 {
                    flex as u64
                } else {
                    table_offset + 1
                };
            }
            start_blk = self.flexbg_offset(g, prev, rem, 1);
            last_blk = self.group_last(last_grp);
        }
        let bb = self
            .free_run(start_blk, last_blk, 1)
            .or_else(|| self.free_run(group_blk, last_blk, 1))
            .ok_or_else(|| self.too_small())?;
        self.mark(bb, 1, flex > 0);
        self.block_bitmap[g as usize] = bb;

        if flex > 0 {
            let prev = if !g.is_multiple_of(flex) {
                self.inode_bitmap[g as usize - 1] + 1
            } else {
                bb + table_offset
            };
            start_blk = self.flexbg_offset(g, prev, rem, 1);
            last_blk = self.group_last(last_grp);
        }
        let ib = self
            .free_run(start_blk, last_blk, 1)
            .or_else(|| self.free_run(group_blk, last_blk, 1))
            .ok_or_else(|| self.too_small())?;
        self.mark(ib, 1, flex > 0);
        self.inode_bitmap[g as usize] = ib;

        if flex > 0 {
            let prev = if !g.is_multiple_of(flex) {
                self.inode_table[g as usize - 1] + ipb
            } else {
                ib + table_offset
            };
            group_blk = self.flexbg_offset(g, prev, rem, ipb);
            last_blk = self.group_last(last_grp);
        }
        let it = self
            .free_run(group_blk, last_blk, ipb)
            .ok_or_else(|| self.too_small())?;
        self.mark(it, ipb, flex > 0);
        self.inode_table[g as usize] = it;
        Ok(())
    }

    /// Where flex_bg puts the next table of group `g` (flexbg_offset).
    fn flexbg_offset(&self, g: u32, start: u64, rem: u64, elem: u64) -> u64 {
        let flex = 1u32 << self.log_flex;
        let flexbg = g / flex;
        let size = (rem * elem).min(self.blocks_per_group as u64 / 4);
        if start != 0 && start < self.blocks {
            if let Some(b) = self.free_run(start, start + size, elem) {
                return b;
            }
        }
        let start = self.group_first(flex * flexbg);
        let last_grp = (g | (flex - 1)).min(self.groups - 1);
        let last = self.group_last(last_grp);
        self.free_run(start, last, size)
            .or_else(|| self.free_run(start, last, elem))
            .or_else(|| self.free_run(0, last, elem))
            .unwrap_or(0)
    }

    /// The journal's first block (get_midpoint_journal_block).
    fn journal_goal(&self) -> u64 {
        let mut group = self.group_of((self.blocks - self.first_data_block) / 2);
        let flex = 1u32 << self.log_flex;
        let start;
        if self.log_flex > 0 && group > flex {
            group &= !(flex - 1);
            while group < self.groups && self.group_free(group) == 0 {
                group += 1;
            }
            if group == self.groups {
                group = 0;
            }
            start = group;
        } else {
            start = group.saturating_sub(1);
        }
        let end = if group + 1 < self.groups {
            group + 1
        } else {
            group
        };
        let mut best = start;
        for i in start + 1..=end {
            if self.group_free(i) > self.group_free(best) {
                best = i;
            }
        }
        self.group_first(best)
    }

    /// `n` blocks for a file mapped by extents (at most 4, in the inode),
    /// from `goal` on: each run as long as the free space there allows
    /// (ext2fs_fallocate on an empty file).
    fn alloc_extents(&mut self, goal: u64, n: u64, opt: &str, what: &str) -> Result<FileMap> {
        let mut map = FileMap::default();
        let mut cursor = goal;
        let mut left = n;
        let mut extents: Vec<(u64, u64, u64)> = Vec::new(); // (lblk, start, len)
        let mut lblk = 0;
        while left > 0 {
            let start = self.alloc(cursor)?;
            let mut len = 1;
            while len < left.min(32768) && start + len < self.blocks && !self.used.get(start + len)
            {
                len += 1;
            }
            self.mark(start + 1, len - 1, true);
            extents.push((lblk, start, len));
            map.runs.push((start, len));
            lblk += len;
            left -= len;
            cursor = start + len;
            let max = (self.block_size as usize - 12) / 12;
            if extents.len() > max {
                return Err(Error::Unsupported(format!(
                    "{opt}: a {what} of {n} blocks would take more than {max} extents here; ext3edit mkfs makes trees of one level (give a smaller {opt})"
                )));
            }
        }
        if extents.len() > 4 {
            // One leaf block, indexed from the inode; mke2fs puts it just
            // before the file's first block when that one is free.
            let leaf = self.alloc(extents[0].1 - 1)?;
            map.i_block[0] = 0xF30A | 1 << 16;
            map.i_block[1] = 4 | 1 << 16; // max 4, depth 1
            map.i_block[3] = 0;
            map.i_block[4] = leaf as u32;
            map.i_block[5] = (leaf >> 32) as u32;
            // Past the index entry the root keeps what it held before it
            // was split (extents 1 to 3), as mke2fs leaves it.
            for (i, &(l, s, len)) in extents[1..4].iter().enumerate() {
                map.i_block[6 + i * 3] = l as u32;
                map.i_block[7 + i * 3] = len as u32 | ((s >> 32) as u32) << 16;
                map.i_block[8 + i * 3] = s as u32;
            }
            map.leaf = Some((leaf, extents));
            map.blocks = n + 1;
            return Ok(map);
        }
        map.i_block[0] = 0xF30A | (extents.len() as u32) << 16;
        map.i_block[1] = 4; // max 4, depth 0
        for (i, &(l, s, len)) in extents.iter().enumerate() {
            map.i_block[3 + i * 3] = l as u32;
            map.i_block[4 + i * 3] = len as u32 | ((s >> 32) as u32) << 16;
            map.i_block[5 + i * 3] = s as u32;
        }
        map.blocks = n;
        Ok(map)
    }

    /// The journal's blocks: extents from the goal, or an indirect map
    /// allocated block by block in logical order.
    fn allocate_journal(&mut self) -> Result<()> {
        let n = self.journal_blocks;
        self.journal = if self.features.has(1, f::INCOMPAT_EXTENTS) {
            self.alloc_extents(self.journal_goal(), n, "--journal-size", "journal")?
        } else {
            self.alloc_blockmap(self.inode_goal(8), n)?
        };
        Ok(())
    }

    /// `n` blocks for a file mapped by indirect blocks, allocated block by
    /// block in logical order from the start (each map block just before
    /// the first block it maps), as ext2fs_bmap allocates them.
    fn alloc_blockmap(&mut self, goal: u64, n: u64) -> Result<FileMap> {
        let mut map = FileMap::default();
        {
            let apb = (self.block_size / 4) as u64;
            let mut cursor = goal;
            // Open indirect blocks: (block, entries) at levels 1..3.
            let mut ind: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
            for l in 0..n {
                // The path: i_block slot, then indexes per level.
                let (slot, idx): (usize, Vec<u64>) = if l < 12 {
                    (l as usize, vec![])
                } else if l - 12 < apb {
                    (12, vec![l - 12])
                } else if l - 12 - apb < apb * apb {
                    let x = l - 12 - apb;
                    (13, vec![x / apb, x % apb])
                } else {
                    let x = l - 12 - apb - apb * apb;
                    if x >= apb * apb * apb {
                        return Err(Error::Invalid("--journal-size: too large".into()));
                    }
                    (14, vec![x / (apb * apb), (x / apb) % apb, x % apb])
                };
                // Walk down, allocating the missing map blocks in order.
                let mut parent: Option<(u64, u64)> = None; // (block, index)
                for &i in idx.iter() {
                    let existing = match parent {
                        None => map.i_block[slot] as u64,
                        Some((pb, pi)) => ind[&pb][pi as usize] as u64,
                    };
                    let b = if existing != 0 {
                        existing
                    } else {
                        let b = self.alloc(cursor)?;
                        cursor = b;
                        map.blocks += 1;
                        ind.insert(b, vec![0; apb as usize]);
                        match parent {
                            None => map.i_block[slot] = b as u32,
                            Some((pb, pi)) => {
                                if let Some(v) = ind.get_mut(&pb) {
                                    v[pi as usize] = b as u32;
                                }
                            }
                        }
                        b
                    };
                    parent = Some((b, i));
                }
                let d = self.alloc(cursor)?;
                cursor = d;
                map.blocks += 1;
                match parent {
                    None => map.i_block[slot] = d as u32,
                    Some((pb, pi)) => {
                        if let Some(v) = ind.get_mut(&pb) {
                            v[pi as usize] = d as u32;
                        }
                    }
                }
                match map.runs.last_mut() {
                    Some((s, len)) if *s + *len == d => *len += 1,
                    _ => map.runs.push((d, 1)),
                }
            }
            map.indirect = ind.into_iter().collect();
        }
        Ok(map)
    }
}

/// Work out every parameter and block of the file system `opts` asks for.
pub fn plan(opts: &MkfsOptions) -> Result<Plan> {
    let mut features = Features::of_type(opts.fs_type);
    if let Some(list) = &opts.features {
        features.edit(list)?;
    }
    let mut notes = Vec::new();
    // mke2fs: metadata_csum supersedes uninit_bg.
    if features.has(2, f::RO_COMPAT_METADATA_CSUM) {
        features.ro_compat &= !f::RO_COMPAT_GDT_CSUM;
    }
    let kind = usage_type(opts.size / 1024 * 1024);
    let block_size = match opts.block_size {
        Some(b @ (1024 | 2048 | 4096)) => b,
        Some(b) => {
            return Err(Error::Invalid(format!(
                "--block-size {b}: ext3edit mkfs makes blocks of 1024, 2048 or 4096 bytes"
            )))
        }
        None => match kind {
            "floppy" | "small" => 1024,
            _ => 4096,
        },
    };
    let inode_ratio: u64 = match kind {
        "floppy" => 8192,
        "small" => 4096,
        "big" => 32768,
        "huge" => 65536,
        _ => 16384,
    }
    .max(block_size as u64);
    let inode_size = opts.inode_size.unwrap_or(256);
    if !inode_size.is_power_of_two() || inode_size < 128 || inode_size > block_size {
        return Err(Error::Invalid(format!(
            "--inode-size {inode_size}: a power of two from 128 to the block size ({block_size})"
        )));
    }
    if features.has(0, f::COMPAT_ORPHAN_FILE) && !features.has(0, f::COMPAT_HAS_JOURNAL) {
        return Err(Error::Invalid(
            "--features: orphan_file needs a journal (has_journal), as for mke2fs".into(),
        ));
    }
    if features.has(0, f::COMPAT_RESIZE_INODE) && !features.has(2, f::RO_COMPAT_SPARSE_SUPER) {
        return Err(Error::Invalid(
            "--features: resize_inode needs sparse_super (as for mke2fs: add ^resize_inode)".into(),
        ));
    }
    if let Some(l) = &opts.label {
        if l.len() > 16 {
            return Err(Error::Invalid(format!(
                "--label: {} bytes, at most 16",
                l.len()
            )));
        }
    }
    let bs = block_size as u64;
    let mut blocks = opts.size / bs;
    if blocks >= 1 << 32 {
        return Err(Error::Unsupported(format!(
            "SIZE: {} blocks of {block_size} bytes; ext3edit mkfs makes at most 2^32 - 1 blocks",
            blocks
        )));
    }
    if blocks < 64 {
        return Err(Error::Invalid(format!(
            "SIZE: {} bytes are too small for a file system (at least {} bytes with {block_size}-byte blocks)",
            opts.size,
            64 * bs
        )));
    }
    let is64 = features.has(1, f::INCOMPAT_64BIT);
    let desc_size: u32 = if is64 { 64 } else { 32 };
    let first_data_block = if block_size == 1024 { 1 } else { 0 };
    let log_flex = if features.has(1, f::INCOMPAT_FLEX_BG) {
        4
    } else {
        0
    };
    let r0 = (5.0 * blocks as f64 / 100.0) as u64;
    let mut reserved_blocks = r0;
    let blocks0 = blocks;
    let mut inodes_wanted = match opts.inodes {
        Some(n) => n,
        None => blocks * bs / inode_ratio,
    };
    let mut bpg = 8 * block_size;
    // ext2fs_initialize: groups, descriptors, inodes per group; a last
    // group too small for its metadata is dropped.
    let (groups, desc_blocks, reserved_gdt, ipg, itb) = loop {
        let groups = (blocks - first_data_block).div_ceil(bpg as u64);
        if groups >= 1 << 32 {
            return Err(Error::Unsupported("SIZE: too many groups".into()));
        }
        let groups = groups as u32;
        let dpb = block_size / desc_size;
        let desc_blocks = groups.div_ceil(dpb);
        let reserved_gdt = if features.has(0, f::COMPAT_RESIZE_INODE) {
            let max_blocks: u64 = if blocks < 0xFFFF_FFFF / 1024 {
                blocks * 1024
            } else {
                0xFFFF_FFFF
            };
            let rsv_groups = (max_blocks - first_data_block).div_ceil(bpg as u64);
            let rsv = (rsv_groups.div_ceil(dpb as u64) as i64 - desc_blocks as i64).max(0) as u32;
            rsv.min(block_size / 4)
        } else {
            0
        };
        if reserved_gdt + desc_blocks > bpg * 3 / 4 {
            if bpg < 8 * block_size {
                return Err(Error::Invalid(
                    "--inodes: too many inodes for this size".into(),
                ));
            }
            return Err(Error::Unsupported(
                "SIZE: the group descriptors would need meta_bg, which ext3edit mkfs does not make"
                    .into(),
            ));
        }
        inodes_wanted = inodes_wanted.max(12);
        if inodes_wanted >= 1 << 32 {
            return Err(Error::Invalid("--inodes: at most 2^32 - 1".into()));
        }
        let mut ipg = (inodes_wanted as u32).div_ceil(groups);
        if ipg > block_size * 8 {
            if bpg >= 256 {
                // Smaller groups, from the full size again (as mke2fs).
                bpg -= 8;
                blocks = blocks0;
                continue;
            }
            return Err(Error::Invalid(
                "--inodes: too many inodes for this size".into(),
            ));
        }
        let max_ipg = 65536 - block_size / inode_size;
        ipg = ipg.min(max_ipg);
        let mut itb = (ipg * inode_size).div_ceil(block_size);
        ipg = itb * block_size / inode_size;
        ipg = ipg.max(8) & !7;
        itb = (ipg * inode_size).div_ceil(block_size);
        let sparse = features.has(2, f::RO_COMPAT_SPARSE_SUPER);
        let mut overhead = 3 + itb + reserved_gdt;
        if has_super(sparse, groups - 1) {
            overhead += 1 + desc_blocks + reserved_gdt;
        }
        if overhead > bpg {
            return Err(Error::Invalid(
                "--inodes: too many inodes for this size".into(),
            ));
        }
        let mut overhead = 2 + itb;
        if has_super(sparse, groups - 1) {
            overhead += 1 + desc_blocks + reserved_gdt;
        }
        let rem = ((blocks - first_data_block) % bpg as u64) as u32;
        if groups == 1 && rem != 0 && rem < overhead {
            return Err(Error::Invalid(format!(
                "SIZE: {} bytes are too small for this file system (its metadata does not fit)",
                opts.size
            )));
        }
        if rem != 0 && rem < overhead + 50 {
            blocks -= rem as u64;
            let ratio = 100.0 * r0 as f64 / blocks0 as f64;
            reserved_blocks = (ratio * blocks as f64 / 100.0) as u64;
            continue;
        }
        break (groups, desc_blocks, reserved_gdt, ipg, itb);
    };
    if (ipg as u64) * (groups as u64) < 13 {
        return Err(Error::Invalid(format!(
            "only {} inodes: too few for the reserved inodes, root and lost+found (give a larger SIZE or --inodes)",
            ipg as u64 * groups as u64
        )));
    }
    let mut journal_blocks = 0;
    if features.has(0, f::COMPAT_HAS_JOURNAL) {
        match opts.journal_size_mb {
            Some(m) => {
                let j = m.saturating_mul(1024) / (bs / 1024);
                if !(1024..=10_240_000).contains(&j) {
                    return Err(Error::Invalid(format!(
                        "--journal-size {m}: the journal must have 1024 to 10240000 blocks ({j} of {block_size} bytes)"
                    )));
                }
                journal_blocks = j;
            }
            None => match default_journal_blocks(blocks) {
                Some(j) => journal_blocks = j,
                None => {
                    features.compat &= !f::COMPAT_HAS_JOURNAL;
                    notes.push(format!(
                        "{blocks} blocks are too few for a journal (2048 at least): made without one, as mke2fs does"
                    ));
                }
            },
        }
    } else if opts.journal_size_mb.is_some() {
        return Err(Error::Invalid(
            "--journal-size: this file system has no journal (has_journal is off)".into(),
        ));
    }
    let uuid = opts.uuid.unwrap_or_else(|| derived(opts, "uuid"));
    let hash_seed = opts.hash_seed.unwrap_or_else(|| derived(opts, "hash"));
    let mut p = Plan {
        block_size,
        blocks,
        reserved_blocks,
        first_data_block,
        blocks_per_group: bpg,
        groups,
        inodes_per_group: ipg,
        inode_size,
        itable_blocks: itb,
        desc_size,
        desc_blocks,
        reserved_gdt,
        log_flex,
        journal_blocks,
        features,
        uuid,
        hash_seed,
        label: opts.label.clone().unwrap_or_default(),
        time: opts.time,
        notes,
        block_bitmap: vec![0; groups as usize],
        inode_bitmap: vec![0; groups as usize],
        inode_table: vec![0; groups as usize],
        root_block: 0,
        lpf_blocks: Vec::new(),
        resize_dind: 0,
        journal: FileMap::default(),
        orphan: FileMap::default(),
        orphan_map_blocks: 0,
        used: Bits::new(blocks),
        touched: vec![false; groups as usize],
        overhead: 0,
        kbytes_written: 0,
    };
    // 1. Superblocks, descriptors, reserved GDT blocks.
    for g in 0..groups {
        if p.has_super(g) {
            let s = p.group_first(g);
            let n = 1 + desc_blocks as u64 + reserved_gdt as u64;
            let s = if g == 0 && first_data_block == 0 {
                0
            } else {
                s
            };
            p.mark(s, n, false);
        }
    }
    // 2. Bitmaps and inode tables.
    for g in 0..groups {
        p.allocate_group_table(g)?;
    }
    let overhead_tables = p.used.count(0, blocks);
    // 3. Root and lost+found.
    p.root_block = p.alloc(p.inode_goal(2))?;
    // ext2fs_new_inode clears BLOCK_UNINIT of the group it takes an inode in.
    p.touch_inode_group(11);
    let mut b = p.alloc(p.inode_goal(11))?;
    p.lpf_blocks.push(b);
    let mut size = 0u64;
    for _ in 1..12 {
        size += bs;
        if size >= 16 * 1024 && size >= 2 * bs {
            break;
        }
        b = p.alloc(b + 1)?;
        p.lpf_blocks.push(b);
    }
    // 4. The resize inode's double indirect block.
    // (mke2fs makes it whenever the feature is on, reserved blocks or not.)
    if p.features.has(0, f::COMPAT_RESIZE_INODE) {
        let goal = first_data_block + desc_blocks as u64 + reserved_gdt as u64 + 2 + itb as u64;
        p.resize_dind = p.alloc(goal)?;
    }
    // 5. The journal.
    if p.journal_blocks > 0 {
        let free = (0..groups).map(|g| p.group_free(g)).sum::<u64>();
        if opts.journal_size_mb.is_some() && p.journal_blocks > free / 2 {
            return Err(Error::Invalid(format!(
                "--journal-size: {} blocks is more than half the free blocks ({free})",
                p.journal_blocks
            )));
        }
        p.allocate_journal()?;
    }
    // 6. The orphan file.
    if p.features.has(0, f::COMPAT_ORPHAN_FILE) {
        let n = match blocks {
            b if b < 128 * 1024 => 32,
            b if b < 2 * 1024 * 1024 => b / 4096,
            _ => 512,
        };
        p.touch_inode_group(12);
        let goal = p.inode_goal(12);
        p.orphan = if p.features.has(1, f::INCOMPAT_EXTENTS) {
            p.alloc_extents(goal, n, "--features orphan_file", "orphan file")?
        } else {
            p.alloc_blockmap(p.group_first(0), n)?
        };
        p.orphan.blocks = p.orphan.runs.iter().map(|r| r.1).sum();
        p.orphan_map_blocks = p.orphan.indirect.len() as u64;
    }
    p.overhead = overhead_tables + p.journal_blocks + first_data_block;
    let ext4ish = opts.fs_type == FsType::Ext4
        || p.features.incompat & f::INCOMPAT_FLEX_BG != 0
        || p.features.ro_compat
            & (f::RO_COMPAT_HUGE_FILE
                | f::RO_COMPAT_GDT_CSUM
                | f::RO_COMPAT_METADATA_CSUM
                | f::RO_COMPAT_DIR_NLINK
                | f::RO_COMPAT_EXTRA_ISIZE)
            != 0;
    if ext4ish {
        let sb_and_gd: usize =
            (0..groups).filter(|&g| p.has_super(g)).count() * (1 + desc_blocks as usize);
        // mke2fs also writes the primary reserved GDT blocks when they are
        // zeros (no backup to list).
        let written = p
            .blocks_to_write()
            .iter()
            .filter(|(&b, d)| {
                !crate::device::is_zero(d)
                    || (b > first_data_block + desc_blocks as u64
                        && b <= first_data_block + (desc_blocks + reserved_gdt) as u64)
            })
            .count();
        p.kbytes_written = 1 + (written.saturating_sub(sb_and_gd) as u64 * bs) / 1024;
    }
    Ok(p)
}

// ------------------------------------------------------------- writing

fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

const EXT4_EXTENTS_FL: u32 = 0x80000;

impl Plan {
    /// Inodes 1 to this one are in use (11 is lost+found, 12 the orphan
    /// file).
    fn used_inodes(&self) -> u32 {
        if self.orphan.blocks > 0 {
            12
        } else {
            11
        }
    }

    fn csum_on(&self) -> bool {
        self.features.csum()
    }

    fn metadata_csum(&self) -> bool {
        self.features.has(2, f::RO_COMPAT_METADATA_CSUM)
    }

    /// Blocks of group `g` in use (from the plan's bitmap).
    fn free_blocks(&self) -> u64 {
        self.blocks - self.first_data_block - self.used.count(0, self.blocks)
    }

    fn inodes_count(&self) -> u64 {
        self.inodes_per_group as u64 * self.groups as u64
    }

    /// The superblock as group `g`'s copy holds it (checksum included).
    fn superblock(&self, g: u32) -> Vec<u8> {
        let mut s = vec![0u8; 1024];
        let t = self.time;
        let free_inodes = self.inodes_count() - self.used_inodes() as u64;
        put32(&mut s, 0x00, self.inodes_count() as u32);
        put32(&mut s, 0x04, self.blocks as u32);
        put32(&mut s, 0x08, self.reserved_blocks as u32);
        put32(&mut s, 0x0C, self.free_blocks() as u32);
        put32(&mut s, 0x10, free_inodes as u32);
        put32(&mut s, 0x14, self.first_data_block as u32);
        let log = self.block_size.trailing_zeros() - 10;
        put32(&mut s, 0x18, log);
        put32(&mut s, 0x1C, log);
        put32(&mut s, 0x20, self.blocks_per_group);
        put32(&mut s, 0x24, self.blocks_per_group);
        put32(&mut s, 0x28, self.inodes_per_group);
        put32(&mut s, 0x30, t); // s_wtime
        put16(&mut s, 0x36, 0xFFFF); // s_max_mnt_count -1
        put16(&mut s, 0x38, 0xEF53);
        // Clean in the primary; mke2fs writes the backups "not clean".
        put16(&mut s, 0x3A, if g == 0 { 1 } else { 0 });
        put16(&mut s, 0x3C, 1); // errors=continue
        put32(&mut s, 0x40, t); // s_lastcheck
        put32(&mut s, 0x4C, 1); // dynamic revision
        put32(&mut s, 0x54, 11);
        put16(&mut s, 0x58, self.inode_size as u16);
        put16(&mut s, 0x5A, g as u16);
        put32(&mut s, 0x5C, self.features.compat);
        put32(&mut s, 0x60, self.features.incompat);
        put32(&mut s, 0x64, self.features.ro_compat);
        s[0x68..0x78].copy_from_slice(&self.uuid);
        s[0x78..0x78 + self.label.len()].copy_from_slice(&self.label);
        put16(&mut s, 0xCE, self.reserved_gdt as u16);
        if self.journal_blocks > 0 {
            put32(&mut s, 0xE0, 8);
        }
        s[0xEC..0xFC].copy_from_slice(&self.hash_seed);
        s[0xFC] = 1; // half_md4
        if self.journal_blocks > 0 {
            s[0xFD] = 1; // s_jnl_blocks holds the journal inode's map
            for (i, w) in self.journal.i_block.iter().enumerate() {
                put32(&mut s, 0x10C + 4 * i, *w);
            }
            let size = self.journal_blocks * self.block_size as u64;
            put32(&mut s, 0x10C + 4 * 15, (size >> 32) as u32);
            put32(&mut s, 0x10C + 4 * 16, size as u32);
        }
        if self.desc_size == 64 {
            put16(&mut s, 0xFE, 64);
        }
        put32(&mut s, 0x100, 0x000C); // user_xattr, acl
        put32(&mut s, 0x108, t); // s_mkfs_time
        put32(&mut s, 0x150, (self.blocks >> 32) as u32);
        put32(&mut s, 0x154, (self.reserved_blocks >> 32) as u32);
        put32(&mut s, 0x158, (self.free_blocks() >> 32) as u32);
        if self.inode_size >= 160 {
            put16(&mut s, 0x15C, 32);
            put16(&mut s, 0x15E, 32);
        }
        put32(&mut s, 0x160, 1); // signed directory hash
        s[0x174] = self.log_flex;
        if self.metadata_csum() {
            s[0x175] = 1; // crc32c
        }
        put64(&mut s, 0x178, self.kbytes_written);
        if self.orphan.blocks > 0 {
            put32(&mut s, 0x280, 12);
        }
        put32(&mut s, 0x248, self.overhead as u32);
        if self.metadata_csum() {
            csum::set_superblock_csum(&mut s);
        }
        s
    }

    fn csum_params(&self) -> CsumParams {
        CsumParams::from_superblock(&self.superblock(0))
    }

    /// Group `g`'s descriptor flags: (BLOCK_UNINIT, INODE_UNINIT).
    fn uninit(&self, g: u32) -> (bool, bool) {
        if !self.csum_on() {
            return (false, false);
        }
        (
            g != self.groups - 1 && !self.touched[g as usize],
            self.used_in_group(g) == 0,
        )
    }

    /// Inodes of group `g` in use (the reserved inodes, lost+found and
    /// the orphan file may spread over several groups when they are
    /// small, as mke2fs lets them).
    fn used_in_group(&self, g: u32) -> u32 {
        self.used_inodes()
            .saturating_sub(g * self.inodes_per_group)
            .min(self.inodes_per_group)
    }

    fn block_bitmap_bytes(&self, g: u32) -> Vec<u8> {
        let mut bm = vec![0xFFu8; self.block_size as usize];
        let first = self.group_first(g);
        for i in 0..self.blocks_per_group as u64 {
            let b = first + i;
            let used = b >= self.blocks || self.used.get(b);
            if !used {
                bm[(i / 8) as usize] &= !(1 << (i % 8));
            }
        }
        bm
    }

    fn inode_bitmap_bytes(&self, g: u32) -> Vec<u8> {
        let mut bm = vec![0xFFu8; self.block_size as usize];
        for i in 0..self.inodes_per_group {
            let ino = g * self.inodes_per_group + i + 1;
            if ino > self.used_inodes() {
                bm[(i / 8) as usize] &= !(1 << (i % 8));
            }
        }
        bm
    }

    /// The group descriptor table (all descriptor blocks).
    fn descriptors(&self, cp: &CsumParams) -> Vec<u8> {
        let ds = self.desc_size as usize;
        let mut t = vec![0u8; self.desc_blocks as usize * self.block_size as usize];
        for g in 0..self.groups {
            let d = &mut t[g as usize * ds..(g as usize + 1) * ds];
            let (bu, iu) = self.uninit(g);
            let bb = self.block_bitmap[g as usize];
            let ib = self.inode_bitmap[g as usize];
            let it = self.inode_table[g as usize];
            let free = self.group_free(g);
            let free_inodes = self.inodes_per_group - self.used_in_group(g);
            let group_of = |ino: u32| (ino - 1) / self.inodes_per_group;
            let dirs = [2, 11].iter().filter(|&&i| group_of(i) == g).count() as u16;
            let unused = if self.csum_on() { free_inodes } else { 0 };
            let mut flags = 0x4u16; // ITABLE_ZEROED
            if bu {
                flags |= 0x2;
            }
            if iu {
                flags |= 0x1;
            }
            put32(d, 0x00, bb as u32);
            put32(d, 0x04, ib as u32);
            put32(d, 0x08, it as u32);
            put16(d, 0x0C, free as u16);
            put16(d, 0x0E, free_inodes as u16);
            put16(d, 0x10, dirs);
            put16(d, 0x12, flags);
            put16(d, 0x1C, unused as u16);
            if ds >= 64 {
                put32(d, 0x20, (bb >> 32) as u32);
                put32(d, 0x24, (ib >> 32) as u32);
                put32(d, 0x28, (it >> 32) as u32);
                put16(d, 0x2C, (free >> 16) as u16);
                put16(d, 0x2E, (free_inodes >> 16) as u16);
                put16(d, 0x32, (unused >> 16) as u16);
            }
            if !bu {
                let _ = cp.set_block_bitmap_csum(d, &self.block_bitmap_bytes(g));
            }
            if !iu {
                let _ = cp.set_inode_bitmap_csum(d, &self.inode_bitmap_bytes(g));
            }
            cp.set_group_desc_csum(g, d);
        }
        t
    }

    /// A new inode's bytes (times, extra size), checksum not yet set.
    fn inode(&self, mode: u16, links: u16, size: u64, blocks: u64, flags: u32) -> Vec<u8> {
        let mut i = vec![0u8; self.inode_size as usize];
        let t = self.time;
        put16(&mut i, 0x00, mode);
        put32(&mut i, 0x04, size as u32);
        put32(&mut i, 0x08, t);
        put32(&mut i, 0x0C, t);
        put32(&mut i, 0x10, t);
        put16(&mut i, 0x1A, links);
        let sectors = blocks * (self.block_size as u64 / 512);
        put32(&mut i, 0x1C, sectors as u32);
        put32(&mut i, 0x20, flags);
        put32(&mut i, 0x6C, (size >> 32) as u32);
        put16(&mut i, 0x74, (sectors >> 32) as u16);
        if self.inode_size >= 160 {
            put16(&mut i, 0x80, 32);
            put32(&mut i, 0x90, t);
        }
        i
    }

    fn extent_root(i: &mut [u8], extents: &[(u32, u64, u16)]) {
        put16(i, 0x28, 0xF30A);
        put16(i, 0x2A, extents.len() as u16);
        put16(i, 0x2C, 4);
        for (k, &(l, s, n)) in extents.iter().enumerate() {
            let o = 0x34 + 12 * k;
            put32(i, o, l);
            put16(i, o + 4, n);
            put16(i, o + 6, (s >> 32) as u16);
            put32(i, o + 8, s as u32);
        }
    }

    /// An extent leaf block of inode `ino` holding `extents` (logical,
    /// start, length), with its checksum tail.
    fn extent_leaf(&self, cp: &CsumParams, ino: u32, extents: &[(u64, u64, u64)]) -> Vec<u8> {
        let bs = self.block_size as usize;
        let mut b = vec![0u8; bs];
        put16(&mut b, 0, 0xF30A);
        put16(&mut b, 2, extents.len() as u16);
        put16(&mut b, 4, ((bs - 12) / 12) as u16);
        for (k, &(l, s, n)) in extents.iter().enumerate() {
            let o = 12 + 12 * k;
            put32(&mut b, o, l as u32);
            put16(&mut b, o + 4, n as u16);
            put16(&mut b, o + 6, (s >> 32) as u16);
            put32(&mut b, o + 8, s as u32);
        }
        if self.metadata_csum() {
            let _ = csum::set_extent_block_csum(cp.inode_seed(ino, 0), &mut b);
        }
        b
    }

    /// A directory block: entries (inode, name), the last one taking the
    /// rest of the block, and the checksum tail with metadata_csum.
    fn dir_block(&self, cp: &CsumParams, ino: u32, entries: &[(u32, &[u8])]) -> Vec<u8> {
        let bs = self.block_size as usize;
        let mut b = vec![0u8; bs];
        let end = if self.metadata_csum() { bs - 12 } else { bs };
        let filetype = self.features.has(1, f::INCOMPAT_FILETYPE);
        let mut o = 0;
        for (k, &(e, name)) in entries.iter().enumerate() {
            let len = if k + 1 == entries.len() {
                end - o
            } else {
                (8 + name.len()).div_ceil(4) * 4
            };
            put32(&mut b, o, e);
            put16(&mut b, o + 4, len as u16);
            b[o + 6] = name.len() as u8;
            if filetype && e != 0 {
                b[o + 7] = 2; // directory
            }
            b[o + 8..o + 8 + name.len()].copy_from_slice(name);
            o += len;
        }
        if entries.is_empty() {
            put16(&mut b, 4, end as u16);
        }
        if self.metadata_csum() {
            csum::init_dirent_tail(&mut b);
            let _ = csum::set_dir_leaf_csum(cp.inode_seed(ino, 0), &mut b);
        }
        b
    }

    /// Every block that is not all zeros, by block number (the primary
    /// superblock of a 1 KiB-block file system is block 1; with larger
    /// blocks it is at byte 1024 of block 0).
    pub fn blocks_to_write(&self) -> BTreeMap<u64, Vec<u8>> {
        let bs = self.block_size as usize;
        let cp = self.csum_params();
        let mut out: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let desc = self.descriptors(&cp);
        // Superblocks and descriptors.
        for g in 0..self.groups {
            if !self.has_super(g) {
                continue;
            }
            let first = if g == 0 { 0 } else { self.group_first(g) };
            let sb = self.superblock(g);
            if bs == 1024 {
                out.insert(self.group_first(g), sb);
            } else {
                let mut blk = vec![0u8; bs];
                let o = if g == 0 { 1024 } else { 0 };
                blk[o..o + 1024].copy_from_slice(&sb);
                out.insert(first, blk);
            }
            let gd_start = self.group_first(g) + 1;
            let gd_start = if g == 0 && self.first_data_block == 0 {
                1
            } else {
                gd_start
            };
            for k in 0..self.desc_blocks as usize {
                out.insert(gd_start + k as u64, desc[k * bs..(k + 1) * bs].to_vec());
            }
        }
        // Bitmaps.
        for g in 0..self.groups {
            let (bu, iu) = self.uninit(g);
            if !bu {
                out.insert(self.block_bitmap[g as usize], self.block_bitmap_bytes(g));
            }
            if !iu {
                out.insert(self.inode_bitmap[g as usize], self.inode_bitmap_bytes(g));
            }
        }
        // Inodes.
        let extents = self.features.has(1, f::INCOMPAT_EXTENTS);
        let dir_flags = if extents { EXT4_EXTENTS_FL } else { 0 };
        let mut inodes: Vec<(u32, Vec<u8>)> = Vec::new();
        // The bad blocks inode: times only, no extra fields (as mke2fs).
        let mut bad = vec![0u8; self.inode_size as usize];
        put32(&mut bad, 0x08, self.time);
        put32(&mut bad, 0x0C, self.time);
        put32(&mut bad, 0x10, self.time);
        inodes.push((1, bad));
        // The other reserved inodes are zeros (with a checksum, as mke2fs
        // leaves them); 7 and 8 are replaced below when they are in use.
        for ino in 3..=10 {
            if (ino == 7 && self.resize_dind != 0) || (ino == 8 && self.journal_blocks > 0) {
                continue;
            }
            inodes.push((ino, vec![0u8; self.inode_size as usize]));
        }
        let mut root = self.inode(0o40755, 3, bs as u64, 1, dir_flags);
        if extents {
            Self::extent_root(&mut root, &[(0, self.root_block, 1)]);
        } else {
            put32(&mut root, 0x28, self.root_block as u32);
        }
        inodes.push((2, root));
        let n = self.lpf_blocks.len();
        let mut lpf = self.inode(0o40700, 2, (n * bs) as u64, n as u64, dir_flags);
        if extents {
            Self::extent_root(&mut lpf, &[(0, self.lpf_blocks[0], n as u16)]);
        } else {
            for (k, b) in self.lpf_blocks.iter().enumerate() {
                put32(&mut lpf, 0x28 + 4 * k, *b as u32);
            }
        }
        inodes.push((11, lpf));
        let apb = bs as u64 / 4;
        if self.resize_dind != 0 {
            let mut dind = vec![0u8; bs];
            let mut count = 1u64;
            for r in 0..self.reserved_gdt as u64 {
                let gdt_blk = self.first_data_block + 1 + self.desc_blocks as u64 + r;
                let off = ((self.desc_blocks as u64 + r) % apb) as usize;
                put32(&mut dind, off * 4, gdt_blk as u32);
                count += 1;
                let mut ind = vec![0u8; bs];
                let mut k = 0;
                for g in 1..self.groups {
                    if self.has_super(g) {
                        let expect = gdt_blk + g as u64 * self.blocks_per_group as u64;
                        put32(&mut ind, k * 4, expect as u32);
                        k += 1;
                        count += 1;
                    }
                }
                out.insert(gdt_blk, ind);
            }
            out.insert(self.resize_dind, dind);
            let size = (apb * apb + apb + 12) * bs as u64;
            let mut ri = self.inode(0o100600, 1, size, count, 0);
            put32(&mut ri, 0x28 + 4 * 13, self.resize_dind as u32);
            inodes.push((7, ri));
        }
        if self.journal_blocks > 0 {
            let size = self.journal_blocks * bs as u64;
            let flags = if extents { EXT4_EXTENTS_FL } else { 0 };
            let mut ji = self.inode(0o100600, 1, size, self.journal.blocks, flags);
            for (k, w) in self.journal.i_block.iter().enumerate() {
                put32(&mut ji, 0x28 + 4 * k, *w);
            }
            inodes.push((8, ji));
            if let Some((leaf, extents)) = &self.journal.leaf {
                out.insert(*leaf, self.extent_leaf(&cp, 8, extents));
            }
            for (b, entries) in &self.journal.indirect {
                let mut blk = vec![0u8; bs];
                for (k, e) in entries.iter().enumerate() {
                    put32(&mut blk, 4 * k, *e);
                }
                out.insert(*b, blk);
            }
            // The journal superblock (JBD2 v2, empty).
            let mut js = vec![0u8; bs];
            js[0..4].copy_from_slice(&0xC03B_3998u32.to_be_bytes());
            js[4..8].copy_from_slice(&4u32.to_be_bytes());
            js[0x0C..0x10].copy_from_slice(&(bs as u32).to_be_bytes());
            js[0x10..0x14].copy_from_slice(&(self.journal_blocks as u32).to_be_bytes());
            js[0x14..0x18].copy_from_slice(&1u32.to_be_bytes());
            js[0x18..0x1C].copy_from_slice(&1u32.to_be_bytes());
            js[0x30..0x40].copy_from_slice(&self.uuid);
            js[0x40..0x44].copy_from_slice(&1u32.to_be_bytes());
            out.insert(self.journal.runs[0].0, js);
        }
        if self.orphan.blocks > 0 {
            let n = self.orphan.blocks;
            let flags = if extents { EXT4_EXTENTS_FL } else { 0 };
            let all = n + self.orphan_map_blocks;
            let mut oi = self.inode(0o100600, 1, n * bs as u64, all, flags);
            for (k, w) in self.orphan.i_block.iter().enumerate() {
                put32(&mut oi, 0x28 + 4 * k, *w);
            }
            inodes.push((12, oi));
            for (b, entries) in &self.orphan.indirect {
                let mut blk = vec![0u8; bs];
                for (k, e) in entries.iter().enumerate() {
                    put32(&mut blk, 4 * k, *e);
                }
                out.insert(*b, blk);
            }
            let iseed = cp.inode_seed(12, 0);
            for &(start, len) in &self.orphan.runs {
                for b in start..start + len {
                    let mut blk = vec![0u8; bs];
                    if self.metadata_csum() {
                        csum::set_orphan_block_csum(iseed, b, &mut blk);
                    } else {
                        put32(&mut blk, bs - 8, csum::ORPHAN_BLOCK_MAGIC);
                    }
                    out.insert(b, blk);
                }
            }
        }
        for (ino, mut raw) in inodes {
            cp.set_inode_csum(ino, &mut raw);
            let g = ((ino - 1) / self.inodes_per_group) as usize;
            let idx = ((ino - 1) % self.inodes_per_group) as u64 * self.inode_size as u64;
            let blk = self.inode_table[g] + idx / bs as u64;
            let off = (idx % bs as u64) as usize;
            let e = out.entry(blk).or_insert_with(|| vec![0u8; bs]);
            e[off..off + raw.len()].copy_from_slice(&raw);
        }
        // Directories.
        out.insert(
            self.root_block,
            self.dir_block(&cp, 2, &[(2, b"."), (2, b".."), (11, b"lost+found")]),
        );
        for (k, b) in self.lpf_blocks.iter().enumerate() {
            let blk = if k == 0 {
                self.dir_block(&cp, 11, &[(11, b"."), (2, b"..")])
            } else {
                self.dir_block(&cp, 11, &[])
            };
            out.insert(*b, blk);
        }
        out
    }

    /// Kilobytes the image's non-zero blocks hold (s_kbytes_written).
    pub fn summary(&self) -> String {
        format!(
            "{} blocks of {} bytes, {} groups, {} inodes ({} bytes each), {}{}",
            self.blocks,
            self.block_size,
            self.groups,
            self.inodes_count(),
            self.inode_size,
            if self.journal_blocks > 0 {
                format!("journal of {} blocks, ", self.journal_blocks)
            } else {
                String::new()
            },
            feature_names(&self.features).join(" ")
        )
    }
}

/// The names of the features set, as dumpe2fs lists them.
pub fn feature_names(x: &Features) -> Vec<&'static str> {
    f::NAMES
        .iter()
        .filter(|(s, b, _)| x.has(*s, *b))
        .map(|(_, _, n)| *n)
        .collect()
}

/// Write the planned file system to `dev` (which must read as zeros:
/// only the blocks that are not all zeros are written), then flush.
pub fn write_plan(p: &Plan, dev: &mut dyn BlockDevice) -> Result<()> {
    let bs = p.block_size as u64;
    if dev.len() < p.blocks * bs {
        return Err(Error::Invalid(format!(
            "the device holds {} bytes, the file system needs {}",
            dev.len(),
            p.blocks * bs
        )));
    }
    for (b, data) in p.blocks_to_write() {
        if crate::device::is_zero(&data) {
            continue;
        }
        dev.write_at(b * bs, &data)
            .map_err(|e| Error::io(format!("writing block {b}"), e))?;
    }
    dev.flush().map_err(|e| Error::io("flushing the image", e))
}

/// Make the file system `opts` asks for on `dev` (a new device reading as
/// zeros); returns the plan it followed.
pub fn mkfs(opts: &MkfsOptions, dev: &mut dyn BlockDevice) -> Result<Plan> {
    let p = plan(opts)?;
    write_plan(&p, dev)?;
    Ok(p)
}

/// Make a new image file at `path` of `opts.size` bytes (sparse). An
/// existing `path` is refused unless `force` (then it is truncated to
/// zero first). On failure no file is left behind (a forced file is
/// removed too: its old contents are gone already). After writing, the
/// image is opened with the engine for writing, to be sure it can be.
pub fn mkfs_file(path: &std::path::Path, opts: &MkfsOptions, force: bool) -> Result<Plan> {
    use std::fs::OpenOptions as O;
    let p = plan(opts)?;
    let shown = path.display().to_string();
    let file = if force {
        match std::fs::symlink_metadata(path) {
            Ok(m) if !m.file_type().is_file() => {
                return Err(Error::Invalid(format!(
                "{shown}: exists and is not a regular file (--force replaces only regular files)"
            )))
            }
            _ => {}
        }
        O::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    } else {
        O::new().read(true).write(true).create_new(true).open(path)
    };
    let file = file.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Invalid(format!(
                "{shown}: already exists (give --force to replace it)"
            ))
        } else {
            Error::io(format!("creating {shown}"), e)
        }
    })?;
    let r = (|| -> Result<()> {
        file.set_len(opts.size)
            .map_err(|e| Error::io(format!("sizing {shown} to {} bytes", opts.size), e))?;
        let mut dev = crate::device::FileDevice::from_file(file, true)
            .map_err(|e| Error::io(format!("opening {shown}"), e))?;
        write_plan(&p, &mut dev)?;
        drop(dev);
        let fs = crate::Filesystem::open(path, &crate::OpenOptions::read_write())
            .map_err(|e| e.at(&format!("{shown}: the new image does not open for writing")))?;
        drop(fs);
        Ok(())
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(p)
}
