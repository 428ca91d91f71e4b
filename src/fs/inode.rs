//! Inodes: the raw record with typed accessors.

use crate::layout::{iflag, ino, le16, le32, mode, put16, put32, FileType};

/// An inode number.
pub type Ino = u32;

/// One inode, as its raw on-disk bytes (`s_inode_size` of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    /// Its number.
    pub ino: Ino,
    raw: Vec<u8>,
}

/// A timestamp: seconds since the epoch and nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    /// Seconds since 1970 (may be negative).
    pub secs: i64,
    /// Nanoseconds.
    pub nanos: u32,
}

impl Timestamp {
    /// Whole seconds, no nanoseconds.
    pub fn from_secs(secs: i64) -> Self {
        Timestamp { secs, nanos: 0 }
    }
}

#[allow(missing_docs)]
impl Inode {
    /// Wrap raw bytes read from the inode table.
    pub fn from_raw(ino: Ino, raw: Vec<u8>) -> Self {
        Inode { ino, raw }
    }
    /// A zeroed inode of `size` bytes.
    pub fn zeroed(ino: Ino, size: usize) -> Self {
        Inode {
            ino,
            raw: vec![0; size],
        }
    }
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
    pub fn raw_mut(&mut self) -> &mut [u8] {
        &mut self.raw
    }
    pub fn mode(&self) -> u16 {
        le16(&self.raw, ino::MODE)
    }
    pub fn set_mode(&mut self, m: u16) {
        put16(&mut self.raw, ino::MODE, m)
    }
    /// Permission bits (07777).
    pub fn perm(&self) -> u16 {
        self.mode() & 0o7777
    }
    pub fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode())
    }
    pub fn is_dir(&self) -> bool {
        self.mode() & mode::S_IFMT == mode::S_IFDIR
    }
    pub fn is_reg(&self) -> bool {
        self.mode() & mode::S_IFMT == mode::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.mode() & mode::S_IFMT == mode::S_IFLNK
    }
    pub fn uid(&self) -> u32 {
        le16(&self.raw, ino::UID) as u32 | (le16(&self.raw, ino::UID_HIGH) as u32) << 16
    }
    pub fn gid(&self) -> u32 {
        le16(&self.raw, ino::GID) as u32 | (le16(&self.raw, ino::GID_HIGH) as u32) << 16
    }
    pub fn set_owner(&mut self, uid: u32, gid: u32) {
        put16(&mut self.raw, ino::UID, uid as u16);
        put16(&mut self.raw, ino::UID_HIGH, (uid >> 16) as u16);
        put16(&mut self.raw, ino::GID, gid as u16);
        put16(&mut self.raw, ino::GID_HIGH, (gid >> 16) as u16);
    }
    /// File size. For directories only the low 32 bits count unless
    /// `large_dir` is in use; callers pass that in.
    pub fn size_with(&self, dir_high: bool) -> u64 {
        let lo = le32(&self.raw, ino::SIZE_LO) as u64;
        if self.is_dir() && !dir_high {
            lo
        } else {
            lo | (le32(&self.raw, ino::SIZE_HIGH) as u64) << 32
        }
    }
    /// File size (directories: low 32 bits).
    pub fn size(&self) -> u64 {
        self.size_with(false)
    }
    pub fn set_size(&mut self, s: u64) {
        put32(&mut self.raw, ino::SIZE_LO, s as u32);
        put32(&mut self.raw, ino::SIZE_HIGH, (s >> 32) as u32);
    }
    pub fn links(&self) -> u16 {
        le16(&self.raw, ino::LINKS)
    }
    pub fn set_links(&mut self, n: u16) {
        put16(&mut self.raw, ino::LINKS, n)
    }
    pub fn flags(&self) -> u32 {
        le32(&self.raw, ino::FLAGS)
    }
    pub fn set_flags(&mut self, f: u32) {
        put32(&mut self.raw, ino::FLAGS, f)
    }
    pub fn has_flag(&self, f: u32) -> bool {
        self.flags() & f != 0
    }
    /// `i_blocks` as stored (512-byte sectors, or fs blocks with HUGE_FILE).
    pub fn blocks_raw(&self, huge_file: bool) -> u64 {
        let mut v = le32(&self.raw, ino::BLOCKS_LO) as u64;
        if huge_file {
            v |= (le16(&self.raw, ino::BLOCKS_HIGH) as u64) << 32;
        }
        v
    }
    /// `i_blocks` in 512-byte sectors.
    pub fn sectors(&self, huge_file: bool, block_size: u32) -> u64 {
        let v = self.blocks_raw(huge_file);
        if huge_file && self.has_flag(iflag::HUGE_FILE) {
            v * (block_size as u64 / 512)
        } else {
            v
        }
    }
    /// Set `i_blocks` in 512-byte sectors (ext2/3: 32 bits).
    pub fn set_sectors(&mut self, v: u64) {
        put32(&mut self.raw, ino::BLOCKS_LO, v as u32);
    }
    /// Set `i_blocks` to `v` 512-byte sectors as the file system stores it
    /// (the kernel's encoding): 32 bits without huge_file; with it, 48 bits
    /// (l_i_blocks_high), and past 2^48 - 1 sectors the HUGE_FILE flag with
    /// the count in file system blocks. A count that does not fit is an
    /// error naming the inode.
    pub fn set_sectors_fs(
        &mut self,
        v: u64,
        huge_file: bool,
        block_size: u32,
    ) -> Result<(), String> {
        const MAX48: u64 = (1 << 48) - 1;
        if !huge_file {
            if v > u32::MAX as u64 {
                return Err(format!(
                    "inode {}: {v} sectors do not fit in i_blocks without the huge_file feature",
                    self.ino
                ));
            }
            put32(&mut self.raw, ino::BLOCKS_LO, v as u32);
            return Ok(());
        }
        let (stored, flag) = if v <= MAX48 {
            (v, false)
        } else {
            let spb = (block_size / 512).max(1) as u64;
            let b = v.div_ceil(spb);
            if b > MAX48 {
                return Err(format!(
                    "inode {}: {v} sectors do not fit in i_blocks",
                    self.ino
                ));
            }
            (b, true)
        };
        put32(&mut self.raw, ino::BLOCKS_LO, stored as u32);
        put16(&mut self.raw, ino::BLOCKS_HIGH, (stored >> 32) as u16);
        let f = self.flags();
        self.set_flags(if flag {
            f | iflag::HUGE_FILE
        } else {
            f & !iflag::HUGE_FILE
        });
        Ok(())
    }
    /// The 15 words of `i_block`.
    pub fn block(&self, i: usize) -> u32 {
        le32(&self.raw, ino::BLOCK + 4 * i)
    }
    pub fn set_block(&mut self, i: usize, v: u32) {
        put32(&mut self.raw, ino::BLOCK + 4 * i, v)
    }
    /// The 60 raw bytes of `i_block`.
    pub fn block_bytes(&self) -> &[u8] {
        &self.raw[ino::BLOCK..ino::BLOCK + 60]
    }
    pub fn block_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[ino::BLOCK..ino::BLOCK + 60]
    }
    pub fn file_acl(&self) -> u64 {
        le32(&self.raw, ino::FILE_ACL_LO) as u64
            | (le16(&self.raw, ino::FILE_ACL_HIGH) as u64) << 32
    }
    pub fn set_file_acl(&mut self, b: u64) {
        put32(&mut self.raw, ino::FILE_ACL_LO, b as u32);
        put16(&mut self.raw, ino::FILE_ACL_HIGH, (b >> 32) as u16);
    }
    pub fn dtime(&self) -> u32 {
        le32(&self.raw, ino::DTIME)
    }
    pub fn set_dtime(&mut self, t: u32) {
        put32(&mut self.raw, ino::DTIME, t)
    }
    pub fn generation(&self) -> u32 {
        le32(&self.raw, ino::GENERATION)
    }
    /// Bytes of extended inode fields in use (0 for 128-byte inodes).
    pub fn extra_isize(&self) -> u16 {
        if self.raw.len() > 128 {
            le16(&self.raw, ino::EXTRA_ISIZE)
        } else {
            0
        }
    }
    pub fn set_extra_isize(&mut self, v: u16) {
        if self.raw.len() > 128 {
            put16(&mut self.raw, ino::EXTRA_ISIZE, v)
        }
    }
    fn has_extra(&self, off: usize) -> bool {
        self.raw.len() > 128
            && 128 + self.extra_isize() as usize >= off + 4
            && off + 4 <= self.raw.len()
    }
    fn time(&self, off: usize, extra: Option<usize>) -> Timestamp {
        let lo = le32(&self.raw, off) as i32 as i64;
        match extra {
            Some(x) if self.has_extra(x) => {
                let e = le32(&self.raw, x);
                let epoch = (e & 3) as i64;
                // The extra epoch bits extend the signed 32-bit seconds.
                let secs = lo + (epoch << 32);
                Timestamp {
                    secs,
                    nanos: (e >> 2).min(999_999_999),
                }
            }
            _ => Timestamp::from_secs(lo),
        }
    }
    /// Store a time, clamped (as the kernel clamps) to what the inode can
    /// hold: signed 32-bit seconds (1901-12-13 to 2038-01-19) without the
    /// extra field, two epoch bits more with it (to 2446-05-10). Without
    /// the clamp a later time wrapped around (2100 read back as 1963).
    fn set_time(&mut self, off: usize, extra: Option<usize>, t: Timestamp) {
        let wide = extra.is_some_and(|x| self.has_extra(x));
        let min = i32::MIN as i64;
        let max = if wide {
            (1i64 << 34) - 1 + min
        } else {
            i32::MAX as i64
        };
        let t = if t.secs < min {
            Timestamp {
                secs: min,
                nanos: 0,
            }
        } else if t.secs > max {
            Timestamp {
                secs: max,
                nanos: if wide { 999_999_999 } else { 0 },
            }
        } else {
            t
        };
        put32(&mut self.raw, off, t.secs as u32);
        if let Some(x) = extra {
            if self.has_extra(x) {
                // Epoch bits: (secs - (i32)secs) >> 32, as the kernel encodes.
                let epoch = ((t.secs - (t.secs as i32 as i64)) >> 32) as u32 & 3;
                put32(&mut self.raw, x, (t.nanos << 2) | epoch);
            }
        }
    }
    pub fn atime(&self) -> Timestamp {
        self.time(ino::ATIME, Some(ino::ATIME_EXTRA))
    }
    pub fn mtime(&self) -> Timestamp {
        self.time(ino::MTIME, Some(ino::MTIME_EXTRA))
    }
    pub fn ctime(&self) -> Timestamp {
        self.time(ino::CTIME, Some(ino::CTIME_EXTRA))
    }
    /// Creation time, if the inode has room for it.
    pub fn crtime(&self) -> Option<Timestamp> {
        if self.has_extra(ino::CRTIME_EXTRA) {
            Some(self.time(ino::CRTIME, Some(ino::CRTIME_EXTRA)))
        } else {
            None
        }
    }
    pub fn set_atime(&mut self, t: Timestamp) {
        self.set_time(ino::ATIME, Some(ino::ATIME_EXTRA), t)
    }
    pub fn set_mtime(&mut self, t: Timestamp) {
        self.set_time(ino::MTIME, Some(ino::MTIME_EXTRA), t)
    }
    pub fn set_ctime(&mut self, t: Timestamp) {
        self.set_time(ino::CTIME, Some(ino::CTIME_EXTRA), t)
    }
    pub fn set_crtime(&mut self, t: Timestamp) {
        if self.has_extra(ino::CRTIME_EXTRA) {
            self.set_time(ino::CRTIME, Some(ino::CRTIME_EXTRA), t)
        }
    }
    /// Device number (major, minor) of a device node.
    pub fn rdev(&self) -> (u32, u32) {
        let old = self.block(0);
        if old != 0 {
            ((old >> 8) & 0xff, old & 0xff)
        } else {
            let new = self.block(1);
            ((new & 0xfff00) >> 8, (new & 0xff) | ((new >> 12) & 0xfff00))
        }
    }
    /// Store a device number the way the kernel does.
    pub fn set_rdev(&mut self, major: u32, minor: u32) {
        if major < 256 && minor < 256 {
            self.set_block(0, (major << 8) | minor);
            self.set_block(1, 0);
        } else {
            self.set_block(0, 0);
            self.set_block(1, (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12));
        }
        self.set_block(2, 0);
    }
    /// True when the block map is an extent tree (not indirect blocks).
    pub fn uses_extents(&self) -> bool {
        self.has_flag(iflag::EXTENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_past_2038_with_extra_fields() {
        let mut i = Inode::zeroed(12, 256);
        i.set_extra_isize(32);
        for secs in [
            -1i64,
            0,
            1_700_000_000,
            2_147_483_647,
            2_147_483_648,
            4_000_000_000,
            15_000_000_000,
        ] {
            let t = Timestamp {
                secs,
                nanos: 123_456_789,
            };
            i.set_mtime(t);
            assert_eq!(i.mtime(), t, "secs {secs}");
        }
        i.set_crtime(Timestamp::from_secs(5));
        assert_eq!(i.crtime(), Some(Timestamp::from_secs(5)));
    }

    #[test]
    fn huge_file_block_counts() {
        let mut i = Inode::zeroed(12, 256);
        // Without huge_file: 32 bits, and no more.
        i.set_sectors_fs(u32::MAX as u64, false, 4096).unwrap();
        assert_eq!(i.sectors(false, 4096), u32::MAX as u64);
        assert!(i.set_sectors_fs(1 << 32, false, 4096).is_err());
        // huge_file: the high 16 bits in l_i_blocks_high.
        let v = (1u64 << 40) + 8;
        i.set_sectors_fs(v, true, 4096).unwrap();
        assert_eq!(i.sectors(true, 4096), v);
        assert_eq!(le16(i.raw(), ino::BLOCKS_HIGH), 1 << 8);
        assert!(!i.has_flag(iflag::HUGE_FILE));
        // Past 2^48 - 1 sectors: file system blocks and the HUGE_FILE flag.
        let v = 1u64 << 50;
        i.set_sectors_fs(v, true, 4096).unwrap();
        assert!(i.has_flag(iflag::HUGE_FILE));
        assert_eq!(i.blocks_raw(true), v / 8);
        assert_eq!(i.sectors(true, 4096), v);
        // Back under the limit: sectors again, the flag cleared.
        i.set_sectors_fs(16, true, 4096).unwrap();
        assert!(!i.has_flag(iflag::HUGE_FILE));
        assert_eq!((i.blocks_raw(true), i.sectors(true, 4096)), (16, 16));
        assert!(i.set_sectors_fs(1 << 62, true, 1024).is_err());
    }

    #[test]
    fn small_inodes_keep_32_bit_times() {
        let mut i = Inode::zeroed(12, 128);
        i.set_mtime(Timestamp {
            secs: 1_000,
            nanos: 7,
        });
        assert_eq!(i.mtime(), Timestamp::from_secs(1_000));
        assert_eq!(i.crtime(), None);
    }

    #[test]
    fn device_numbers_old_and_new_encoding() {
        let mut i = Inode::zeroed(12, 128);
        i.set_rdev(5, 1);
        assert_eq!(i.block(0), 0x0501);
        assert_eq!(i.rdev(), (5, 1));
        i.set_rdev(300, 70000);
        assert_eq!(i.block(0), 0);
        assert_eq!(i.rdev(), (300, 70000));
    }

    #[test]
    fn owner_uses_high_halves() {
        let mut i = Inode::zeroed(12, 128);
        i.set_owner(100_000, 70_000);
        assert_eq!((i.uid(), i.gid()), (100_000, 70_000));
    }
}
