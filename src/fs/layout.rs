//! On-disk layouts: byte offsets, feature bits and raw wrappers.
//!
//! Nothing here does I/O or policy. Each structure keeps its raw bytes and
//! offers typed getters and setters, so a round trip never loses a field we
//! do not know about.
//!
//! ## The superblock
//! 1024 bytes at byte offset 1024 of the image, little-endian. The fields we
//! use are listed in [`sb`] with their offsets (from the kernel's
//! `Documentation/filesystems/ext4/super.rst`).
//!
//! ## Group descriptors
//! An array right after the block that holds the superblock (or, with
//! `meta_bg`, one descriptor block at the start of each meta group). Each
//! descriptor is 32 bytes, or `s_desc_size` bytes with the `64bit` feature;
//! the high halves of block numbers and counts live in bytes 32..64.
//!
//! ## Inodes
//! `s_inode_size` bytes each (128 for revision 0), stored in each group's
//! inode table. The first 128 bytes are the classic inode; above them sit
//! `i_extra_isize` bytes of extended fields (nanosecond times, creation time)
//! and then in-inode extended attributes.

/// Read a little-endian u16 at `off`.
#[inline]
pub fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
/// Read a little-endian u32 at `off`.
#[inline]
pub fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
/// Write a little-endian u16 at `off`.
#[inline]
pub fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
/// Write a little-endian u32 at `off`.
#[inline]
pub fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Superblock magic number.
pub const EXT2_MAGIC: u16 = 0xEF53;
/// Byte offset of the primary superblock.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock.
pub const SUPERBLOCK_SIZE: usize = 1024;

/// Superblock field offsets.
#[allow(missing_docs)]
pub mod sb {
    pub const INODES_COUNT: usize = 0x00;
    pub const BLOCKS_COUNT_LO: usize = 0x04;
    pub const R_BLOCKS_COUNT_LO: usize = 0x08;
    pub const FREE_BLOCKS_LO: usize = 0x0C;
    pub const FREE_INODES: usize = 0x10;
    pub const FIRST_DATA_BLOCK: usize = 0x14;
    pub const LOG_BLOCK_SIZE: usize = 0x18;
    pub const LOG_CLUSTER_SIZE: usize = 0x1C;
    pub const BLOCKS_PER_GROUP: usize = 0x20;
    pub const CLUSTERS_PER_GROUP: usize = 0x24;
    pub const INODES_PER_GROUP: usize = 0x28;
    pub const MTIME: usize = 0x2C;
    pub const WTIME: usize = 0x30;
    pub const MNT_COUNT: usize = 0x34;
    pub const MAGIC: usize = 0x38;
    pub const STATE: usize = 0x3A;
    pub const ERRORS: usize = 0x3C;
    pub const LASTCHECK: usize = 0x40;
    pub const CREATOR_OS: usize = 0x48;
    pub const REV_LEVEL: usize = 0x4C;
    pub const FIRST_INO: usize = 0x54;
    pub const INODE_SIZE: usize = 0x58;
    pub const FEATURE_COMPAT: usize = 0x5C;
    pub const FEATURE_INCOMPAT: usize = 0x60;
    pub const FEATURE_RO_COMPAT: usize = 0x64;
    pub const UUID: usize = 0x68;
    pub const VOLUME_NAME: usize = 0x78;
    pub const LAST_MOUNTED: usize = 0x88;
    pub const RESERVED_GDT_BLOCKS: usize = 0xCE;
    pub const JOURNAL_UUID: usize = 0xD0;
    pub const JOURNAL_INUM: usize = 0xE0;
    pub const JOURNAL_DEV: usize = 0xE4;
    pub const LAST_ORPHAN: usize = 0xE8;
    pub const HASH_SEED: usize = 0xEC;
    pub const DEF_HASH_VERSION: usize = 0xFC;
    pub const JNL_BACKUP_TYPE: usize = 0xFD;
    pub const JNL_BLOCKS: usize = 0x10C;
    pub const ORPHAN_FILE_INUM: usize = 0x280;
    pub const DESC_SIZE: usize = 0xFE;
    pub const FIRST_META_BG: usize = 0x104;
    pub const MKFS_TIME: usize = 0x108;
    pub const BLOCKS_COUNT_HI: usize = 0x150;
    pub const R_BLOCKS_COUNT_HI: usize = 0x154;
    pub const FREE_BLOCKS_HI: usize = 0x158;
    pub const MIN_EXTRA_ISIZE: usize = 0x15C;
    pub const WANT_EXTRA_ISIZE: usize = 0x15E;
    pub const FLAGS: usize = 0x160;
    pub const LOG_GROUPS_PER_FLEX: usize = 0x174;
}

/// Feature bits.
#[allow(missing_docs)]
pub mod feature {
    // compat
    pub const COMPAT_DIR_PREALLOC: u32 = 0x1;
    pub const COMPAT_IMAGIC_INODES: u32 = 0x2;
    pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
    pub const COMPAT_EXT_ATTR: u32 = 0x8;
    pub const COMPAT_RESIZE_INODE: u32 = 0x10;
    pub const COMPAT_DIR_INDEX: u32 = 0x20;
    pub const COMPAT_LAZY_BG: u32 = 0x40;
    pub const COMPAT_EXCLUDE_INODE: u32 = 0x80;
    pub const COMPAT_EXCLUDE_BITMAP: u32 = 0x100;
    pub const COMPAT_SPARSE_SUPER2: u32 = 0x200;
    pub const COMPAT_FAST_COMMIT: u32 = 0x400;
    pub const COMPAT_STABLE_INODES: u32 = 0x800;
    pub const COMPAT_ORPHAN_FILE: u32 = 0x1000;
    // incompat
    pub const INCOMPAT_COMPRESSION: u32 = 0x1;
    pub const INCOMPAT_FILETYPE: u32 = 0x2;
    pub const INCOMPAT_RECOVER: u32 = 0x4;
    pub const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
    pub const INCOMPAT_META_BG: u32 = 0x10;
    pub const INCOMPAT_EXTENTS: u32 = 0x40;
    pub const INCOMPAT_64BIT: u32 = 0x80;
    pub const INCOMPAT_MMP: u32 = 0x100;
    pub const INCOMPAT_FLEX_BG: u32 = 0x200;
    pub const INCOMPAT_EA_INODE: u32 = 0x400;
    pub const INCOMPAT_DIRDATA: u32 = 0x1000;
    pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
    pub const INCOMPAT_LARGEDIR: u32 = 0x4000;
    pub const INCOMPAT_INLINE_DATA: u32 = 0x8000;
    pub const INCOMPAT_ENCRYPT: u32 = 0x10000;
    pub const INCOMPAT_CASEFOLD: u32 = 0x20000;
    // ro_compat
    pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
    pub const RO_COMPAT_LARGE_FILE: u32 = 0x2;
    pub const RO_COMPAT_BTREE_DIR: u32 = 0x4;
    pub const RO_COMPAT_HUGE_FILE: u32 = 0x8;
    pub const RO_COMPAT_GDT_CSUM: u32 = 0x10;
    pub const RO_COMPAT_DIR_NLINK: u32 = 0x20;
    pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
    pub const RO_COMPAT_HAS_SNAPSHOT: u32 = 0x80;
    pub const RO_COMPAT_QUOTA: u32 = 0x100;
    pub const RO_COMPAT_BIGALLOC: u32 = 0x200;
    pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
    pub const RO_COMPAT_REPLICA: u32 = 0x800;
    pub const RO_COMPAT_READONLY: u32 = 0x1000;
    pub const RO_COMPAT_PROJECT: u32 = 0x2000;
    pub const RO_COMPAT_SHARED_BLOCKS: u32 = 0x4000;
    pub const RO_COMPAT_VERITY: u32 = 0x8000;
    pub const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;

    /// (set, bit, name) for every feature we can name.
    pub const NAMES: &[(u8, u32, &str)] = &[
        (0, COMPAT_DIR_PREALLOC, "dir_prealloc"),
        (0, COMPAT_IMAGIC_INODES, "imagic_inodes"),
        (0, COMPAT_HAS_JOURNAL, "has_journal"),
        (0, COMPAT_EXT_ATTR, "ext_attr"),
        (0, COMPAT_RESIZE_INODE, "resize_inode"),
        (0, COMPAT_DIR_INDEX, "dir_index"),
        (0, COMPAT_LAZY_BG, "lazy_bg"),
        (0, COMPAT_EXCLUDE_INODE, "snapshot_exclude_inode"),
        (0, COMPAT_EXCLUDE_BITMAP, "snapshot_exclude_bitmap"),
        (0, COMPAT_SPARSE_SUPER2, "sparse_super2"),
        (0, COMPAT_FAST_COMMIT, "fast_commit"),
        (0, COMPAT_STABLE_INODES, "stable_inodes"),
        (0, COMPAT_ORPHAN_FILE, "orphan_file"),
        (1, INCOMPAT_COMPRESSION, "compression"),
        (1, INCOMPAT_FILETYPE, "filetype"),
        (1, INCOMPAT_RECOVER, "needs_recovery"),
        (1, INCOMPAT_JOURNAL_DEV, "journal_dev"),
        (1, INCOMPAT_META_BG, "meta_bg"),
        (1, INCOMPAT_EXTENTS, "extent"),
        (1, INCOMPAT_64BIT, "64bit"),
        (1, INCOMPAT_MMP, "mmp"),
        (1, INCOMPAT_FLEX_BG, "flex_bg"),
        (1, INCOMPAT_EA_INODE, "ea_inode"),
        (1, INCOMPAT_DIRDATA, "dirdata"),
        (1, INCOMPAT_CSUM_SEED, "metadata_csum_seed"),
        (1, INCOMPAT_LARGEDIR, "large_dir"),
        (1, INCOMPAT_INLINE_DATA, "inline_data"),
        (1, INCOMPAT_ENCRYPT, "encrypt"),
        (1, INCOMPAT_CASEFOLD, "casefold"),
        (2, RO_COMPAT_SPARSE_SUPER, "sparse_super"),
        (2, RO_COMPAT_LARGE_FILE, "large_file"),
        (2, RO_COMPAT_BTREE_DIR, "btree_dir"),
        (2, RO_COMPAT_HUGE_FILE, "huge_file"),
        (2, RO_COMPAT_GDT_CSUM, "uninit_bg"),
        (2, RO_COMPAT_DIR_NLINK, "dir_nlink"),
        (2, RO_COMPAT_EXTRA_ISIZE, "extra_isize"),
        (2, RO_COMPAT_HAS_SNAPSHOT, "snapshot"),
        (2, RO_COMPAT_QUOTA, "quota"),
        (2, RO_COMPAT_BIGALLOC, "bigalloc"),
        (2, RO_COMPAT_METADATA_CSUM, "metadata_csum"),
        (2, RO_COMPAT_REPLICA, "replica"),
        (2, RO_COMPAT_READONLY, "read-only"),
        (2, RO_COMPAT_PROJECT, "project"),
        (2, RO_COMPAT_SHARED_BLOCKS, "shared_blocks"),
        (2, RO_COMPAT_VERITY, "verity"),
        (2, RO_COMPAT_ORPHAN_PRESENT, "orphan_present"),
    ];

    /// Incompat features this crate can read.
    pub const INCOMPAT_READ: u32 = INCOMPAT_FILETYPE
        | INCOMPAT_RECOVER
        | INCOMPAT_META_BG
        | INCOMPAT_EXTENTS
        | INCOMPAT_64BIT
        | INCOMPAT_MMP
        | INCOMPAT_FLEX_BG
        | INCOMPAT_EA_INODE
        | INCOMPAT_CSUM_SEED
        | INCOMPAT_LARGEDIR
        | INCOMPAT_INLINE_DATA
        | INCOMPAT_ENCRYPT
        | INCOMPAT_CASEFOLD;

    /// Features this crate can write (ext2/ext3 as mke2fs makes them).
    pub const COMPAT_WRITE: u32 = COMPAT_DIR_PREALLOC
        | COMPAT_IMAGIC_INODES
        | COMPAT_HAS_JOURNAL
        | COMPAT_EXT_ATTR
        | COMPAT_RESIZE_INODE
        | COMPAT_DIR_INDEX
        | COMPAT_ORPHAN_FILE;
    /// Incompat features this crate can write: extents, flex_bg (metadata
    /// placement is read from the descriptors) and 64bit (64-byte
    /// descriptors, block numbers past 2^32 only where extents map them).
    /// metadata_csum_seed: the checksums' seed kept in the superblock.
    /// large_dir: three levels of htree index, directory sizes past 4 GiB.
    pub const INCOMPAT_WRITE: u32 = INCOMPAT_FILETYPE
        | INCOMPAT_EXTENTS
        | INCOMPAT_FLEX_BG
        | INCOMPAT_64BIT
        | INCOMPAT_CSUM_SEED
        | INCOMPAT_LARGEDIR;
    /// Ro-compat features this crate can write: uninit_bg (uninitialised
    /// groups, crc16 descriptor checksums), huge_file (48-bit i_blocks),
    /// dir_nlink (directory link counts past 65,000), extra_isize.
    /// (`orphan_present` is cleared when a write opens the image: the
    /// orphan list is released first, see [`crate::orphan`].)
    /// metadata_csum: every checksum is set at commit, see [`crate::csum`].
    pub const RO_COMPAT_WRITE: u32 = RO_COMPAT_SPARSE_SUPER
        | RO_COMPAT_LARGE_FILE
        | RO_COMPAT_GDT_CSUM
        | RO_COMPAT_HUGE_FILE
        | RO_COMPAT_DIR_NLINK
        | RO_COMPAT_EXTRA_ISIZE
        | RO_COMPAT_ORPHAN_PRESENT
        | RO_COMPAT_METADATA_CSUM;

    /// Names of the bits set in `bits` of feature set `set` (0 compat,
    /// 1 incompat, 2 ro_compat); unknown bits as `FEATURE_C12` style names.
    pub fn names(set: u8, bits: u32) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..32 {
            let bit = 1u32 << i;
            if bits & bit == 0 {
                continue;
            }
            match NAMES.iter().find(|(s, b, _)| *s == set && *b == bit) {
                Some((_, _, n)) => out.push((*n).to_string()),
                None => out.push(format!("FEATURE_{}{}", ["C", "I", "R"][set as usize], i)),
            }
        }
        out
    }
}

/// Inode field offsets.
#[allow(missing_docs)]
pub mod ino {
    pub const MODE: usize = 0x00;
    pub const UID: usize = 0x02;
    pub const SIZE_LO: usize = 0x04;
    pub const ATIME: usize = 0x08;
    pub const CTIME: usize = 0x0C;
    pub const MTIME: usize = 0x10;
    pub const DTIME: usize = 0x14;
    pub const GID: usize = 0x18;
    pub const LINKS: usize = 0x1A;
    pub const BLOCKS_LO: usize = 0x1C;
    pub const FLAGS: usize = 0x20;
    pub const BLOCK: usize = 0x28;
    pub const GENERATION: usize = 0x64;
    pub const FILE_ACL_LO: usize = 0x68;
    pub const SIZE_HIGH: usize = 0x6C;
    pub const BLOCKS_HIGH: usize = 0x74;
    pub const FILE_ACL_HIGH: usize = 0x76;
    pub const UID_HIGH: usize = 0x78;
    pub const GID_HIGH: usize = 0x7A;
    pub const EXTRA_ISIZE: usize = 0x80;
    pub const CTIME_EXTRA: usize = 0x84;
    pub const MTIME_EXTRA: usize = 0x88;
    pub const ATIME_EXTRA: usize = 0x8C;
    pub const CRTIME: usize = 0x90;
    pub const CRTIME_EXTRA: usize = 0x94;
}

/// Group descriptor `bg_flags` bits (meaningful with uninit_bg or
/// metadata_csum only).
#[allow(missing_docs)]
pub mod bgflag {
    /// The inode bitmap and table are not initialised: every inode is free.
    pub const INODE_UNINIT: u16 = 0x1;
    /// The block bitmap is not initialised: only the group's metadata is
    /// in use (computed from the layout).
    pub const BLOCK_UNINIT: u16 = 0x2;
    /// The inode table is known to be zeroed.
    pub const ITABLE_ZEROED: u16 = 0x4;
}

/// Inode flag bits.
#[allow(missing_docs)]
pub mod iflag {
    pub const IMMUTABLE: u32 = 0x10;
    pub const APPEND: u32 = 0x20;
    pub const INDEX: u32 = 0x1000;
    pub const IMAGIC: u32 = 0x2000;
    pub const HUGE_FILE: u32 = 0x40000;
    pub const EXTENTS: u32 = 0x80000;
    pub const ENCRYPT: u32 = 0x800;
    pub const EA_INODE: u32 = 0x200000;
    pub const INLINE_DATA: u32 = 0x1000_0000;
}

/// File type bits of `i_mode`.
#[allow(missing_docs)]
pub mod mode {
    pub const S_IFMT: u16 = 0o170000;
    pub const S_IFSOCK: u16 = 0o140000;
    pub const S_IFLNK: u16 = 0o120000;
    pub const S_IFREG: u16 = 0o100000;
    pub const S_IFBLK: u16 = 0o060000;
    pub const S_IFDIR: u16 = 0o040000;
    pub const S_IFCHR: u16 = 0o020000;
    pub const S_IFIFO: u16 = 0o010000;
}

/// Reserved inode numbers.
pub const ROOT_INO: u32 = 2;
/// The resize inode.
pub const RESIZE_INO: u32 = 7;
/// The usual journal inode.
pub const JOURNAL_INO: u32 = 8;

/// Type of a file, as in the mode and the directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Symbolic link.
    Symlink,
    /// Anything else (a corrupt mode).
    Unknown,
}

impl FileType {
    /// From the `S_IFMT` bits of a mode.
    pub fn from_mode(m: u16) -> Self {
        match m & mode::S_IFMT {
            mode::S_IFREG => FileType::Regular,
            mode::S_IFDIR => FileType::Directory,
            mode::S_IFCHR => FileType::CharDevice,
            mode::S_IFBLK => FileType::BlockDevice,
            mode::S_IFIFO => FileType::Fifo,
            mode::S_IFSOCK => FileType::Socket,
            mode::S_IFLNK => FileType::Symlink,
            _ => FileType::Unknown,
        }
    }
    /// The `S_IFMT` bits.
    pub fn mode_bits(self) -> u16 {
        match self {
            FileType::Regular => mode::S_IFREG,
            FileType::Directory => mode::S_IFDIR,
            FileType::CharDevice => mode::S_IFCHR,
            FileType::BlockDevice => mode::S_IFBLK,
            FileType::Fifo => mode::S_IFIFO,
            FileType::Socket => mode::S_IFSOCK,
            FileType::Symlink => mode::S_IFLNK,
            FileType::Unknown => 0,
        }
    }
    /// The directory-entry file type code.
    pub fn dirent_code(self) -> u8 {
        match self {
            FileType::Unknown => 0,
            FileType::Regular => 1,
            FileType::Directory => 2,
            FileType::CharDevice => 3,
            FileType::BlockDevice => 4,
            FileType::Fifo => 5,
            FileType::Socket => 6,
            FileType::Symlink => 7,
        }
    }
    /// From a directory-entry file type code.
    pub fn from_dirent_code(c: u8) -> Self {
        match c {
            1 => FileType::Regular,
            2 => FileType::Directory,
            3 => FileType::CharDevice,
            4 => FileType::BlockDevice,
            5 => FileType::Fifo,
            6 => FileType::Socket,
            7 => FileType::Symlink,
            _ => FileType::Unknown,
        }
    }
    /// The letter `ls -l` shows.
    pub fn letter(self) -> char {
        match self {
            FileType::Regular => '-',
            FileType::Directory => 'd',
            FileType::CharDevice => 'c',
            FileType::BlockDevice => 'b',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
            FileType::Symlink => 'l',
            FileType::Unknown => '?',
        }
    }
    /// A lower-case name for JSON output.
    pub fn name(self) -> &'static str {
        match self {
            FileType::Regular => "file",
            FileType::Directory => "dir",
            FileType::CharDevice => "chardev",
            FileType::BlockDevice => "blockdev",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
            FileType::Symlink => "symlink",
            FileType::Unknown => "unknown",
        }
    }
}
