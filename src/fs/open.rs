//! Opening an image: the superblock, the group descriptors, the checks
//! that decide whether it may be written, and the journal it needs.

use super::*;

/// The compression format `head` (a file's first bytes) starts with, by
/// its magic: a compressed image is not an ext image until it is
/// decompressed.
pub(super) fn compressed_format(head: &[u8]) -> Option<&'static str> {
    if head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) {
        Some("bzip2")
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some("zip")
    } else {
        None
    }
}

/// `e` (the superblock cannot be read), saying so when the device holds a
/// compressed file: the command line opens those, and the library through
/// `container` (`Spool`: a decompressed copy; `Seekable`: `pack`'s layout).
pub(super) fn compressed_hint(dev: &dyn BlockDevice, e: Error) -> Error {
    let mut head = [0u8; 6];
    let n = (dev.len().min(head.len() as u64)) as usize;
    if dev.read_at(0, &mut head[..n]).is_err() {
        return e;
    }
    match compressed_format(&head[..n]) {
        Some(f) => {
            let why = match &e {
                Error::Corrupt(m) => m.clone(),
                e => e.to_string(),
            };
            Error::Invalid(format!(
                "the file is {f}-compressed, not a raw ext2/3/4 image ({why}); the ext3edit command line opens it as it is (or `ext3edit unpack` it), the library through container::Spool or container::Seekable"
            ))
        }
        None => e,
    }
}

/// The time new timestamps get: `fixed` (whole seconds) when given, or
/// `SOURCE_DATE_EPOCH`, else the system clock with its nanoseconds (large
/// inodes keep them).
pub(super) fn now_timestamp(fixed: Option<i64>) -> Timestamp {
    if let Some(t) = fixed {
        return Timestamp::from_secs(t);
    }
    if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
        return Timestamp::from_secs(default_now());
    }
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => Timestamp {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        },
        Err(_) => Timestamp::from_secs(0),
    }
}

impl Filesystem {
    /// Open an image file.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let mut dev = FileDevice::open(path, opts.write || opts.replay_only)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        dev.set_sync(opts.sync);
        Self::open_device(Box::new(dev), opts)
    }

    /// Open an image on any block device.
    pub fn open_device(dev: Box<dyn BlockDevice>, opts: &OpenOptions) -> Result<Self> {
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        if dev.len() < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64 {
            return Err(compressed_hint(
                &*dev,
                Error::corrupt(format!(
                    "image is {} bytes, too small to hold a superblock",
                    dev.len()
                )),
            ));
        }
        dev.read_at(SUPERBLOCK_OFFSET, &mut raw)
            .map_err(|e| Error::io("reading the superblock", e))?;
        let sb_untorn = untear_recover_flag(&mut raw);
        let sb = Superblock::parse(&raw).map_err(|e| compressed_hint(&*dev, e))?;
        if sb.has_incompat(feature::INCOMPAT_JOURNAL_DEV) {
            return Err(Error::Unsupported(
                "this is an external journal device, not a filesystem".into(),
            ));
        }
        let unknown = sb.incompat & !feature::INCOMPAT_READ;
        if unknown != 0 {
            return Err(Error::Unsupported(format!(
                "cannot read images with incompatible feature(s) {}",
                feature::names(1, unknown).join(", ")
            )));
        }
        let bs = sb.block_size as usize;
        let image_blocks = dev.len() / bs as u64;
        let mut fs = Filesystem {
            dev,
            groups: Vec::new(),
            bs,
            overlay: HashMap::new(),
            staged_data: 0,
            undo: Undo::default(),
            undoable: false,
            undo_committed: false,
            dirty_groups: BTreeSet::new(),
            sb_dirty: false,
            write_refusal: None,
            writable: false,
            freed_blocks: BlockSet::default(),
            now: now_timestamp(opts.now),
            dir_room_hint: HashMap::new(),
            fresh_dirs: HashMap::new(),
            subdir_counts: HashMap::new(),
            itable_blocks: (sb.inodes_per_group as u64 * sb.inode_size as u64).div_ceil(bs as u64),
            last_data: None,
            meta_ranges: std::cell::OnceCell::new(),
            io_buf: Vec::new(),
            ialloc_hint: HashMap::new(),
            new_blocks: BlockSet::default(),
            journal_map_ok: false,
            journal: None,
            journal_inode: None,
            journal_from_backup: false,
            orphan_report: None,
            use_journal: opts.journal,
            recovery: None,
            replay_only: false,
            recovery_note: None,
            disk_needs_recovery: sb.has_incompat(feature::INCOMPAT_RECOVER),
            journal_error: None,
            roles: HashMap::new(),
            csum: super::csum::Params::from_superblock(sb.raw()),
            csum_inodes: std::collections::BTreeSet::new(),
            sb_csum_bad: None,
            sb_untorn,
            sb,
        };
        if let Err(e) = fs.verify_superblock_csum(&raw) {
            // A crash can tear the superblock's write (its sectors land
            // apart) while the journal holds the transaction that logged
            // it: the replay puts a whole copy back, as e2fsck's does.
            if !(fs.needs_recovery() && fs.sb.has_compat(feature::COMPAT_HAS_JOURNAL)) {
                return Err(e);
            }
            fs.sb_csum_bad = Some(e);
        }
        fs.load_groups()?;
        if fs.sb.has_compat(feature::COMPAT_HAS_JOURNAL) {
            match fs.load_journal() {
                Ok(j) => fs.set_journal(j),
                Err(e) => {
                    fs.journal_error = Some(e.to_string());
                    if fs.needs_recovery() && (opts.write || opts.replay_only) {
                        return Err(e.at("cannot recover the journal"));
                    }
                    if fs.needs_recovery() {
                        fs.recovery_note = Some(format!(
                            "the journal needs recovery but cannot be read ({e}); showing the image as it is on disk"
                        ));
                    }
                    // A journal we cannot use: writes go in place only if
                    // the user asks (--no-journal); see why_not_writable.
                }
            }
        }
        if fs.needs_recovery() && fs.journal.is_some() {
            match fs.stage_recovery() {
                Ok(()) => {}
                Err(e) if fs.sb_csum_bad.is_some() => return Err(e),
                Err(e) if !(opts.write || opts.replay_only) => {
                    fs.recovery_note = Some(format!(
                        "the journal needs recovery but cannot be replayed ({e}); showing the image as it is on disk"
                    ));
                    fs.overlay.clear();
                    fs.recovery = None;
                    fs.reload_super()?;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = fs.sb_csum_bad.take() {
            if fs.recovery.is_none() {
                return Err(e);
            }
        }
        fs.write_refusal = fs.why_not_writable(image_blocks);
        if fs.write_refusal.is_none() {
            // A write never builds on a descriptor whose checksum is wrong
            // (reading goes on, as the kernel mounts such an image
            // read-only).
            fs.write_refusal = fs.check_group_desc_csums();
        }
        if opts.replay_only {
            if !fs.dev.writable() {
                return Err(Error::ReadOnly("the image file is open read-only".into()));
            }
            if image_blocks < fs.sb.blocks_count {
                return Err(Error::corrupt("the image file is truncated"));
            }
            fs.replay_only = true;
            if fs.orphans_pending() {
                // As e2fsck -E journal_only: the orphan list is released
                // after the replay, in place (without the journal, so that
                // the journal ends as e2fsck leaves it).
                if let Some(why) = &fs.write_refusal {
                    return Err(Error::Unsupported(format!(
                        "cannot release the orphan list: {why}"
                    )));
                }
                fs.writable = true;
                fs.use_journal = false;
                fs.stage_orphans()?;
            }
            if fs.sb_untorn && fs.recovery.is_none() && fs.write_refusal.is_none() {
                // Nothing to replay, but the torn superblock is written
                // back whole (in place, as e2fsck repairs a superblock).
                fs.writable = true;
                fs.use_journal = false;
                fs.sb_dirty = true;
            }
        } else if opts.write {
            if let Some(why) = &fs.write_refusal {
                return Err(Error::Unsupported(format!(
                    "cannot write this image: {why}"
                )));
            }
            if !fs.dev.writable() {
                return Err(Error::ReadOnly("the image file is open read-only".into()));
            }
            fs.writable = true;
            fs.sync_sb_counts();
            // As the kernel at mount: a pending orphan list is released
            // before anything else, in the first transaction.
            fs.stage_orphans()?;
        }
        Ok(fs)
    }

    pub(super) fn desc_location(&self, g: u32) -> (u64, usize) {
        let ds = self.sb.desc_size as u64;
        let bs = self.bs as u64;
        let per_block = bs / ds;
        if self.sb.has_incompat(feature::INCOMPAT_META_BG)
            && (g as u64 / per_block) >= self.sb.first_meta_bg() as u64
        {
            let first = (g as u64 / per_block * per_block) as u32;
            let mut blk = self.sb.group_first_block(first) + self.sb.group_has_super(first) as u64;
            // bigalloc with 1 KiB blocks: group 0 starts at block 0 but the
            // superblock still sits in block 1.
            if first == 0 && bs == 1024 && self.sb.first_data_block == 0 {
                blk += 1;
            }
            (blk, ((g as u64 % per_block) * ds) as usize)
        } else {
            // The table follows the block that holds the superblock (byte
            // 1024): block 2 with 1 KiB blocks, else block 1.
            let byte = g as u64 * ds;
            (SUPERBLOCK_OFFSET / bs + 1 + byte / bs, (byte % bs) as usize)
        }
    }

    pub(super) fn load_groups(&mut self) -> Result<()> {
        let is64 = self.sb.has_incompat(feature::INCOMPAT_64BIT);
        let ds = self.sb.desc_size as usize;
        let mut cur: Option<(u64, Vec<u8>)> = None;
        let mut groups = Vec::with_capacity(self.sb.group_count as usize);
        for g in 0..self.sb.group_count {
            let (blk, off) = self.desc_location(g);
            if cur.as_ref().map(|c| c.0) != Some(blk) {
                let data = self
                    .block(blk)
                    .map_err(|e| e.at(&format!("group descriptor of group {g}")))?;
                cur = Some((blk, data));
            }
            let data = &cur.as_ref().unwrap().1;
            groups.push(GroupDesc::new(&data[off..off + ds], is64));
        }
        self.groups = groups;
        Ok(())
    }

    /// Check every group's metadata locations; used before writing.
    pub(super) fn check_groups(&self) -> Option<String> {
        let bc = self.sb.blocks_count;
        let lo = self.sb.first_data_block as u64;
        for (g, gd) in self.groups.iter().enumerate() {
            let ok = |b: u64, n: u64| b >= lo && b.checked_add(n).is_some_and(|e| e <= bc);
            if !ok(gd.block_bitmap(), 1) {
                return Some(format!(
                    "group {g}: block bitmap at {} is outside the filesystem",
                    gd.block_bitmap()
                ));
            }
            if !ok(gd.inode_bitmap(), 1) {
                return Some(format!(
                    "group {g}: inode bitmap at {} is outside the filesystem",
                    gd.inode_bitmap()
                ));
            }
            if !ok(gd.inode_table(), self.itable_blocks) {
                return Some(format!(
                    "group {g}: inode table at {} is outside the filesystem",
                    gd.inode_table()
                ));
            }
            if gd.free_blocks() > self.sb.group_blocks(g as u32)
                || gd.free_inodes() > self.sb.inodes_per_group
            {
                return Some(format!("group {g}: free counts are larger than the group"));
            }
        }
        None
    }

    pub(super) fn why_not_writable(&self, image_blocks: u64) -> Option<String> {
        let sb = &self.sb;
        if sb.has_incompat(feature::INCOMPAT_RECOVER) && self.recovery.is_none() {
            return Some("the journal needs recovery but cannot be replayed".into());
        }
        let bad_i = sb.incompat & !feature::INCOMPAT_WRITE;
        let bad_r = sb.ro_compat & !feature::RO_COMPAT_WRITE;
        let bad_c = sb.compat & !feature::COMPAT_WRITE;
        if bad_i | bad_r | bad_c != 0 {
            let mut names = feature::names(1, bad_i);
            names.extend(feature::names(2, bad_r));
            names.extend(feature::names(0, bad_c));
            return Some(format!(
                "writing is not supported with feature(s) {} (ext2, ext3 and ext4 as mke2fs makes them by default, only for now; the image stays read-only)",
                names.join(", ")
            ));
        }
        if sb.block_size > 4096 {
            return Some(format!(
                "writing is not supported with {}-byte blocks",
                sb.block_size
            ));
        }
        if image_blocks < sb.blocks_count {
            return Some(format!(
                "the image file holds {image_blocks} blocks but the filesystem says {}: the file is truncated",
                sb.blocks_count
            ));
        }
        if let Some(e) = self.check_groups() {
            return Some(format!("corrupt group descriptors ({e}); run e2fsck"));
        }
        if self.journal_from_backup && self.recovery.is_none() {
            return Some(format!(
                "journal inode {} is damaged (the journal is found only through the superblock's backup of its block map); run e2fsck, which rebuilds it",
                sb.journal_inum()
            ));
        }
        if sb.has_compat(feature::COMPAT_HAS_JOURNAL) && self.use_journal {
            match &self.journal {
                None => {
                    return Some(format!(
                        "the journal cannot be used ({}); use --no-journal to write in place",
                        self.journal_error.as_deref().unwrap_or("unknown reason")
                    ))
                }
                Some(j) if j.sb.incompat & crate::journal::jfeature::INCOMPAT_FAST_COMMIT != 0 => {
                    return Some("journals with fast commits are not supported for writing".into())
                }
                Some(_) => {}
            }
        }
        None
    }

    /// Re-read the superblock and group descriptors (through the overlay).
    pub(super) fn reload_super(&mut self) -> Result<()> {
        let raw = self.sb_block_raw_overlay()?;
        self.sb = Superblock::parse(&raw)?;
        self.load_groups()
    }

    pub(super) fn sb_location(&self) -> (u64, usize) {
        if self.bs == 1024 {
            (1, 0)
        } else {
            (0, 1024)
        }
    }

    pub(super) fn sb_block_raw_overlay(&self) -> Result<Vec<u8>> {
        let (blk, off) = self.sb_location();
        let b = self.block(blk)?;
        Ok(b[off..off + SUPERBLOCK_SIZE].to_vec())
    }
}

/// A commit writes the superblock twice with nothing changed but the
/// needs_recovery bit (set before the log is committed, cleared once the
/// journal is empty again). A crash can tear such a write: the bit (in
/// the superblock's first 512-byte sector) of one version, the checksum
/// (in its second) of the other. Both versions are consistent states of
/// the file system; when flipping the bit makes the checksum right, the
/// superblock is the version the checksum belongs to.
/// Returns whether it did so.
pub(super) fn untear_recover_flag(raw: &mut [u8]) -> bool {
    use crate::layout::{le32, put32, sb};
    if crate::csum::verify_superblock(raw).is_ok() {
        return false;
    }
    let v = le32(raw, sb::FEATURE_INCOMPAT) ^ feature::INCOMPAT_RECOVER;
    let mut alt = raw.to_vec();
    put32(&mut alt, sb::FEATURE_INCOMPAT, v);
    if crate::csum::verify_superblock(&alt).is_ok() {
        raw.copy_from_slice(&alt);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::untear_recover_flag;
    use crate::layout::{feature, le32, put32, sb};

    /// A metadata_csum superblock: version `y` (needs_recovery clear) and
    /// `x` (set), each with its checksum; a torn write of `x` over `y`
    /// (first sector of `x`, second of `y`) reads as `y`, and the other
    /// tear as `x`; anything else is left for the checksum to refuse.
    #[test]
    fn a_torn_write_of_the_recovery_bit_reads_as_one_version() {
        let mut y = vec![0u8; 1024];
        put32(
            &mut y,
            sb::FEATURE_RO_COMPAT,
            feature::RO_COMPAT_METADATA_CSUM,
        );
        put32(&mut y, 0x30, 1_700_000_000);
        crate::fs::commit::set_sb_csum(&mut y);
        let mut x = y.clone();
        let v = le32(&x, sb::FEATURE_INCOMPAT) | feature::INCOMPAT_RECOVER;
        put32(&mut x, sb::FEATURE_INCOMPAT, v);
        crate::fs::commit::set_sb_csum(&mut x);
        assert_ne!(x[0x3FC..], y[0x3FC..]);
        let mut torn = [&x[..512], &y[512..]].concat();
        assert!(untear_recover_flag(&mut torn));
        assert_eq!(torn, y);
        let mut torn = [&y[..512], &x[512..]].concat();
        assert!(untear_recover_flag(&mut torn));
        assert_eq!(torn, x);
        // Another field torn: left as it is (its checksum fails).
        let mut z = y.clone();
        put32(&mut z, 0x30, 1_700_000_001);
        crate::fs::commit::set_sb_csum(&mut z);
        let mut torn = [&z[..512], &y[512..]].concat();
        let before = torn.clone();
        assert!(!untear_recover_flag(&mut torn));
        assert_eq!(torn, before);
        assert!(crate::csum::verify_superblock(&torn).is_err());
    }
}
