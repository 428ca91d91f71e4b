//! The filesystem handle: open, check, read and stage blocks, inodes,
//! allocation, commit.
//!
//! Every change is staged in memory (a dirty-block overlay) and reaches the
//! image only in [`Filesystem::commit`]: an operation that fails half way is
//! simply dropped and the image file stays as it was. The one exception is
//! the content of *newly allocated* data blocks of very large writes, which
//! may be written early to blocks that are free on disk (so the filesystem
//! the image describes is still the old one until commit).
//!
//! Metadata blocks (bitmaps, inode tables, directories, indirect blocks,
//! group descriptors, the superblock) all pass through [`Filesystem::modify_block`]
//! or [`Filesystem::write_meta_block`], the one place where a journal can log
//! them and checksums can be set.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use crate::device::{BlockDevice, FileDevice};
use crate::error::{Error, Result};
use crate::inode::{Ino, Inode, Timestamp};
use crate::journal::{Journal, Replay};
use crate::layout::{feature, FileType, ROOT_INO, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};
use crate::superblock::{GroupDesc, Superblock};

/// How to open an image.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Open for writing (the image's features must allow it).
    pub write: bool,
    /// fsync at commit (default true).
    pub sync: bool,
    /// Fixed time for every timestamp written; default: `SOURCE_DATE_EPOCH`
    /// if set, else now.
    pub now: Option<i64>,
    /// Commit metadata through the journal when the image has one
    /// (default true). Off: write in place, like debugfs.
    pub journal: bool,
    /// Open for writing only to replay the journal: allowed on images whose
    /// features this crate cannot otherwise write (the replay copies blocks
    /// verbatim). Every other change is refused.
    pub replay_only: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            write: false,
            sync: true,
            now: None,
            journal: true,
            replay_only: false,
        }
    }
}

impl OpenOptions {
    /// Read-only.
    pub fn read_only() -> Self {
        Self::default()
    }
    /// Read-write.
    pub fn read_write() -> Self {
        OpenOptions {
            write: true,
            ..Self::default()
        }
    }
}

/// The current time for new timestamps: `SOURCE_DATE_EPOCH` when set
/// (reproducible builds), else the system clock.
pub fn default_now() -> i64 {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        if let Ok(t) = v.trim().parse::<i64>() {
            return t;
        }
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Metadata, or an existing block changed in place: written at commit.
    Meta,
    /// A block allocated in this transaction: may be written early.
    NewData,
}

struct Staged {
    data: Box<[u8]>,
    kind: Kind,
}

/// Staged new-data bytes above which they are written out early: this
/// bounds the memory a large write needs, whatever the size of the data.
const SPILL_LIMIT: usize = 8 << 20;

/// What a host write error leaves behind, for the error line.
const STATE_UNCHANGED: &str = "nothing of the file system changed: only free blocks were written";
const STATE_JOURNAL_MAYBE: &str = "the file system is unchanged unless the journal holds the transaction: `ext3edit journal replay IMAGE` (or mounting) completes it either way";
const STATE_JOURNALED: &str =
    "the journal holds the transaction: `ext3edit journal replay IMAGE` (or mounting) completes it";
const STATE_IN_PLACE: &str = "the metadata is partly written in place: the image needs e2fsck";
const STATE_REPLAY: &str =
    "the journal replay is partly written: run `ext3edit journal replay IMAGE` again";

/// The previous content of blocks written before the commit point: runs of
/// (first block, count, where the old bytes are in the spool file, or
/// `None` when they were all zeros).
#[derive(Default)]
struct Undo {
    runs: Vec<(u64, u64, Option<u64>)>,
    spool: Option<std::fs::File>,
    spooled: u64,
    /// Blocks whose previous content is already saved: only the oldest
    /// copy counts (a multi-commit change writes some blocks, the journal
    /// and the superblock, at every commit).
    saved: BlockSet,
}

/// An intermediate commit of an undoable change failed and the change was
/// put back: say so instead of the state the failed commit left.
fn put_back(e: Error, restored: Result<()>) -> Error {
    let state = match &restored {
        Ok(()) => "the whole change was put back: the image is as it was".to_string(),
        Err(u) => format!("putting the change back failed: {u}"),
    };
    match e {
        Error::Io { context, source } => {
            let mut base = context.as_str();
            for s in [
                STATE_UNCHANGED,
                STATE_JOURNAL_MAYBE,
                STATE_JOURNALED,
                STATE_IN_PLACE,
                STATE_REPLAY,
            ] {
                if let Some(b) = base.strip_suffix(&format!(" ({s})")) {
                    base = b;
                }
            }
            Error::Io {
                context: format!("{base} ({state})"),
                source,
            }
        }
        other => match restored {
            Ok(()) => other,
            Err(Error::Io { context, source }) => Error::Io {
                context: format!("{other}; then {context} (putting the change back failed)"),
                source,
            },
            Err(u) => u,
        },
    }
}

/// Say in an I/O error what state the image is left in.
fn with_state(e: Error, state: &str) -> Error {
    match e {
        Error::Io { context, source } => Error::Io {
            context: format!("{context} ({state})"),
            source,
        },
        other => other,
    }
}

/// A set of block numbers kept as runs: a write of many GiB allocates (or
/// frees) millions of blocks, mostly in long runs, so this stays small
/// where a hash set would grow with the data.
#[derive(Default, Debug)]
struct BlockSet {
    /// First block of each run -> one past its last block.
    runs: BTreeMap<u64, u64>,
    count: u64,
}

impl BlockSet {
    fn contains(&self, b: u64) -> bool {
        self.runs
            .range(..=b)
            .next_back()
            .is_some_and(|(_, &e)| b < e)
    }
    fn insert_range(&mut self, start: u64, end: u64) {
        let mut b = start;
        while b < end {
            // Skip what is already in the set.
            if let Some((_, &e)) = self.runs.range(..=b).next_back().filter(|(_, &e)| b < e) {
                b = e;
                continue;
            }
            let next = self
                .runs
                .range(b..)
                .next()
                .map(|(&s, _)| s)
                .unwrap_or(u64::MAX);
            let stop = end.min(next);
            self.count += stop - b;
            // Merge with the run ending at b and the one starting at stop.
            let mut s = b;
            if let Some((&ps, &pe)) = self.runs.range(..b).next_back() {
                if pe == b {
                    s = ps;
                }
            }
            let mut e = stop;
            if let Some(ne) = self.runs.remove(&stop) {
                e = ne;
            }
            self.runs.insert(s, e);
            b = stop;
        }
    }
    fn insert(&mut self, b: u64) {
        self.insert_range(b, b + 1);
    }
    fn remove(&mut self, b: u64) {
        let Some((&s, &e)) = self.runs.range(..=b).next_back() else {
            return;
        };
        if b >= e {
            return;
        }
        self.count -= 1;
        self.runs.remove(&s);
        if s < b {
            self.runs.insert(s, b);
        }
        if b + 1 < e {
            self.runs.insert(b + 1, e);
        }
    }
    fn len(&self) -> u64 {
        self.count
    }
    fn clear(&mut self) {
        self.runs.clear();
        self.count = 0;
    }
}

/// What a metadata block that a writer stages is, so that its checksum
/// (metadata_csum) can be set in one place at commit: writers say what a
/// block is with [`Filesystem::set_block_role`] when they stage it; the
/// superblock, group descriptors, bitmaps and inode tables are the
/// engine's own and need no role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRole {
    /// A directory leaf block (linear, or an htree leaf): the dirent tail.
    DirLeaf {
        /// The directory's inode.
        ino: Ino,
        /// Its generation.
        gen: u32,
    },
    /// An htree index node (the root block or an interior node): dx_tail.
    DxNode {
        /// The directory's inode.
        ino: Ino,
        /// Its generation.
        gen: u32,
    },
    /// An extent tree block (index or leaf): the ext4_extent_tail.
    ExtentNode {
        /// The file's inode.
        ino: Ino,
        /// Its generation.
        gen: u32,
    },
    /// An extended attribute block (h_checksum over the block number).
    Xattr,
    /// An orphan file block (ext4 orphan_file): its tail.
    OrphanBlock {
        /// The orphan file's inode.
        ino: Ino,
        /// Its generation.
        gen: u32,
    },
}

/// An open ext2/3/4 filesystem image.
pub struct Filesystem {
    dev: Box<dyn BlockDevice>,
    sb: Superblock,
    groups: Vec<GroupDesc>,
    bs: usize,
    overlay: HashMap<u64, Staged>,
    staged_data: usize,
    /// What blocks held before this handle wrote them ahead of its commit
    /// (data spilled early, the journal log): put back when the change is
    /// abandoned (rollback, or the handle dropped uncommitted), so that a
    /// failed command leaves the image byte for byte as it was.
    undo: Undo,
    /// An undoable change is open ([`Self::begin_undoable`]): intermediate
    /// commits keep the undo, so that the whole change can still be put
    /// back until the final [`Self::commit`].
    undoable: bool,
    /// What the undo of an open undoable change spans: intermediate
    /// commits were made (the image on disk is no longer the old one).
    undo_committed: bool,
    dirty_groups: BTreeSet<u32>,
    sb_dirty: bool,
    write_refusal: Option<String>,
    writable: bool,
    freed_blocks: BlockSet,
    now: Timestamp,
    /// First directory block that may have room, per directory inode.
    pub(crate) dir_room_hint: HashMap<Ino, u64>,
    /// Directories created in this session (known to hold only what we put).
    /// Directories created through this handle, with the names they hold
    /// (every change to them goes through this handle, so the set is
    /// exact and spares a directory scan per new entry).
    pub(crate) fresh_dirs: HashMap<Ino, HashSet<Vec<u8>>>,
    itable_blocks: u64,
    last_data: Option<u64>,
    pub(crate) io_buf: Vec<u8>,
    ialloc_hint: HashMap<u32, u32>,
    /// Blocks allocated in this transaction.
    new_blocks: BlockSet,
    /// The journal's block map was checked whole (see
    /// [`Self::check_journal_map`]).
    journal_map_ok: bool,
    journal: Option<Journal>,
    use_journal: bool,
    recovery: Option<Recovery>,
    replay_only: bool,
    recovery_note: Option<String>,
    disk_needs_recovery: bool,
    journal_error: Option<String>,
    /// Roles of the metadata blocks staged in this transaction (see
    /// [`BlockRole`]).
    pub(crate) roles: HashMap<u64, BlockRole>,
}

/// A journal replay staged in memory and not yet written to the image.
struct Recovery {
    /// Post-replay content of the filesystem blocks it writes (the
    /// superblock block included, with needs_recovery still set).
    blocks: BTreeMap<u64, Vec<u8>>,
    /// The journal superblock after recovery (empty log).
    jsb: Vec<u8>,
    /// Where the journal superblock lives.
    jsb_block: u64,
    /// What was replayed.
    report: Replay,
    /// The superblock block once recovery is complete.
    final_sb: Vec<u8>,
}

impl std::fmt::Debug for Filesystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filesystem")
            .field("block_size", &self.bs)
            .field("blocks", &self.sb.blocks_count)
            .field("groups", &self.groups.len())
            .field("writable", &self.writable)
            .finish()
    }
}

impl Drop for Filesystem {
    /// A change abandoned without [`Filesystem::commit`]: put back what was
    /// written ahead of the commit point (best effort; nothing to report to).
    fn drop(&mut self) {
        let _ = self.restore_undo();
    }
}

/// The compression format `head` (a file's first bytes) starts with, by
/// its magic: a compressed image is not an ext image until it is
/// decompressed.
fn compressed_format(head: &[u8]) -> Option<&'static str> {
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
fn compressed_hint(dev: &dyn BlockDevice, e: Error) -> Error {
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
            now: Timestamp::from_secs(opts.now.unwrap_or_else(default_now)),
            dir_room_hint: HashMap::new(),
            fresh_dirs: HashMap::new(),
            itable_blocks: (sb.inodes_per_group as u64 * sb.inode_size as u64).div_ceil(bs as u64),
            last_data: None,
            io_buf: Vec::new(),
            ialloc_hint: HashMap::new(),
            new_blocks: BlockSet::default(),
            journal_map_ok: false,
            journal: None,
            use_journal: opts.journal,
            recovery: None,
            replay_only: false,
            recovery_note: None,
            disk_needs_recovery: sb.has_incompat(feature::INCOMPAT_RECOVER),
            journal_error: None,
            roles: HashMap::new(),
            sb,
        };
        fs.load_groups()?;
        if fs.sb.has_compat(feature::COMPAT_HAS_JOURNAL) {
            match Journal::load(&fs) {
                Ok(j) => fs.journal = j,
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
        fs.write_refusal = fs.why_not_writable(image_blocks);
        if opts.replay_only {
            if !fs.dev.writable() {
                return Err(Error::ReadOnly("the image file is open read-only".into()));
            }
            if image_blocks < fs.sb.blocks_count {
                return Err(Error::corrupt("the image file is truncated"));
            }
            fs.replay_only = true;
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
        }
        Ok(fs)
    }

    fn desc_location(&self, g: u32) -> (u64, usize) {
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

    fn load_groups(&mut self) -> Result<()> {
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
    fn check_groups(&self) -> Option<String> {
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

    fn why_not_writable(&self, image_blocks: u64) -> Option<String> {
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
                "writing is not supported with feature(s) {} (ext2/ext3 feature sets only for now; the image stays read-only)",
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
    fn reload_super(&mut self) -> Result<()> {
        let raw = self.sb_block_raw_overlay()?;
        self.sb = Superblock::parse(&raw)?;
        self.load_groups()
    }

    fn sb_location(&self) -> (u64, usize) {
        if self.bs == 1024 {
            (1, 0)
        } else {
            (0, 1024)
        }
    }

    fn sb_block_raw_overlay(&self) -> Result<Vec<u8>> {
        let (blk, off) = self.sb_location();
        let b = self.block(blk)?;
        Ok(b[off..off + SUPERBLOCK_SIZE].to_vec())
    }

    /// Plan the journal replay and stage it in the overlay, so that reads
    /// see the recovered filesystem; nothing is written yet.
    fn stage_recovery(&mut self) -> Result<()> {
        let j = self.journal.as_ref().expect("journal loaded");
        let report = j.plan_replay(self)?;
        let mut jsb = j.sb.clone();
        // As e2fsck: after a clean replay the log restarts after the last
        // transaction seen; after a failed one it keeps its number.
        let seq = if report.failed() {
            j.sb.sequence
        } else {
            report.end_tid.wrapping_add(1)
        };
        jsb.set_empty(seq);
        // A failed commit, or an error the kernel recorded in the journal,
        // becomes the filesystem's error flag.
        let mark_error = j.sb.errno != 0 || report.failed_commit.is_some();
        if j.sb.errno != 0 {
            jsb.set_errno(0);
        }
        let jsb_block = j.phys(self, 0)?;
        let mut blocks = report.blocks.clone();
        // The superblock after replay, needs_recovery still set: it is
        // cleared only once the journal is marked empty.
        let (sbb, off) = self.sb_location();
        let mut sbblock = match blocks.get(&sbb) {
            Some(b) => b.clone(),
            None => self.block(sbb)?,
        };
        let mut raw = sbblock[off..off + SUPERBLOCK_SIZE].to_vec();
        patch_recover(&mut raw, true);
        sbblock[off..off + SUPERBLOCK_SIZE].copy_from_slice(&raw);
        blocks.insert(sbb, sbblock);
        for (b, data) in &blocks {
            // Never hand out a block the replay writes, even if the
            // recovered bitmaps call it free: its replayed copy would land
            // on top of new data.
            self.freed_blocks.insert(*b);
            self.overlay.insert(
                *b,
                Staged {
                    data: data.clone().into_boxed_slice(),
                    kind: Kind::Meta,
                },
            );
        }
        self.overlay.insert(
            jsb_block,
            Staged {
                data: jsb.raw().to_vec().into_boxed_slice(),
                kind: Kind::Meta,
            },
        );
        self.reload_super()?;
        // What the filesystem looks like once recovered.
        self.sb.clear_incompat(feature::INCOMPAT_RECOVER);
        if report.failed() {
            self.sb.clear_valid();
        }
        if mark_error {
            self.sb.set_error();
        }
        let mut final_sb = blocks[&sbb].clone();
        final_sb[off..off + SUPERBLOCK_SIZE].copy_from_slice(self.sb.raw());
        set_sb_csum(&mut final_sb[off..off + SUPERBLOCK_SIZE]);
        self.sb_dirty = true;
        if let Some(j) = self.journal.as_mut() {
            j.sb = jsb.clone();
        }
        self.recovery = Some(Recovery {
            blocks,
            jsb: jsb.raw().to_vec(),
            jsb_block,
            report,
            final_sb,
        });
        Ok(())
    }

    /// What the journal replay did (or will do at commit), if the image
    /// needed one.
    pub fn recovery_report(&self) -> Option<&Replay> {
        self.recovery.as_ref().map(|r| &r.report)
    }

    /// A note for the user about the journal (e.g. it could not be
    /// replayed and the image is shown as it is on disk).
    pub fn recovery_note(&self) -> Option<&str> {
        self.recovery_note.as_deref()
    }

    /// The internal journal, if any.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Why this image cannot be written, or `None` if it can.
    pub fn write_refusal(&self) -> Option<&str> {
        self.write_refusal.as_deref()
    }

    /// True if opened for writing.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    pub(crate) fn ensure_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::ReadOnly("the image was opened read-only".into()))
        }
    }

    /// The device under the file system (for whole-range operations such
    /// as [`crate::zero_free`], which write no metadata).
    pub(crate) fn device_mut(&mut self) -> &mut dyn BlockDevice {
        &mut *self.dev
    }

    /// The superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }
    /// The group descriptors.
    pub fn groups(&self) -> &[GroupDesc] {
        &self.groups
    }
    /// Block size in bytes.
    pub fn block_size(&self) -> usize {
        self.bs
    }
    /// The time written into new timestamps.
    pub fn now(&self) -> Timestamp {
        self.now
    }
    /// Change the time written into new timestamps.
    pub fn set_now(&mut self, t: Timestamp) {
        self.now = t;
    }
    /// True if the image on disk says its journal needs recovery (whether
    /// or not the replay is already staged in memory).
    pub fn needs_recovery(&self) -> bool {
        self.disk_needs_recovery
    }
    /// True when directory entries carry a file type.
    pub fn has_filetype(&self) -> bool {
        self.sb.has_incompat(feature::INCOMPAT_FILETYPE)
    }
    pub(crate) fn huge_file(&self) -> bool {
        self.sb.has_ro_compat(feature::RO_COMPAT_HUGE_FILE)
    }
    pub(crate) fn large_dir(&self) -> bool {
        self.sb.has_incompat(feature::INCOMPAT_LARGEDIR)
    }

    // ----------------------------------------------------------------
    // Blocks

    /// Check that `b` is a block number inside the filesystem.
    pub fn check_block(&self, b: u64, what: &dyn Fn() -> String) -> Result<()> {
        if b < self.sb.first_data_block as u64 || b >= self.sb.blocks_count {
            return Err(Error::corrupt(format!(
                "{}: block number {b} is outside the filesystem (0..{})",
                what(),
                self.sb.blocks_count
            )));
        }
        Ok(())
    }

    /// Read block `b` into `buf` (which must be one block long).
    pub fn read_block_into(&self, b: u64, buf: &mut [u8]) -> Result<()> {
        if let Some(s) = self.overlay.get(&b) {
            buf.copy_from_slice(&s.data);
            return Ok(());
        }
        if b >= self.sb.blocks_count {
            return Err(Error::corrupt(format!(
                "block {b} is past the end of the filesystem ({} blocks)",
                self.sb.blocks_count
            )));
        }
        self.dev
            .read_at(b * self.bs as u64, buf)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::corrupt(format!(
                    "block {b} is past the end of the image file ({} bytes): the image is truncated",
                    self.dev.len()
                )),
                _ => Error::io(format!("reading image block {b}"), e),
            })
    }

    /// Read `buf.len() / block size` neighbouring blocks from `first`
    /// (file content: staged blocks win, the rest is read past the
    /// memory map so that the data does not stay resident).
    pub(crate) fn read_data_blocks(&self, first: u64, buf: &mut [u8]) -> Result<()> {
        let bs = self.bs;
        let n = buf.len().div_ceil(bs) as u64;
        let staged =
            !self.overlay.is_empty() && (first..first + n).any(|b| self.overlay.contains_key(&b));
        if staged || first + n > self.sb.blocks_count || !buf.len().is_multiple_of(bs) {
            for (i, chunk) in buf.chunks_mut(bs).enumerate() {
                let b = first + i as u64;
                if chunk.len() == bs {
                    self.read_block_into(b, chunk)?;
                } else {
                    let v = self.block(b)?;
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
            }
            return Ok(());
        }
        self.dev
            .read_data_at(first * bs as u64, buf)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::corrupt(format!(
                    "blocks {first}..{} are past the end of the image file ({} bytes): the image is truncated",
                    first + n,
                    self.dev.len()
                )),
                _ => Error::io(format!("reading image blocks {first}..{}", first + n), e),
            })
    }

    /// Run `f` on the content of block `b` without copying it when it is
    /// staged.
    pub fn with_block<R>(&self, b: u64, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        if let Some(s) = self.overlay.get(&b) {
            return Ok(f(&s.data));
        }
        let v = self.block(b)?;
        Ok(f(&v))
    }

    /// Read block `b`.
    pub fn block(&self, b: u64) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.bs];
        self.read_block_into(b, &mut v)?;
        Ok(v)
    }

    fn stage(&mut self, b: u64, kind: Kind) -> Result<&mut Staged> {
        self.ensure_writable()?;
        if b >= self.sb.blocks_count {
            return Err(Error::corrupt(format!(
                "attempt to write block {b} outside the filesystem"
            )));
        }
        if !self.overlay.contains_key(&b) {
            // A block allocated in this transaction is not referenced by the
            // filesystem on disk: whatever it holds (data, or a new indirect
            // or directory block) is written before the commit, in place,
            // and never needs the journal.
            let class = if kind == Kind::NewData || self.new_blocks.contains(b) {
                Kind::NewData
            } else {
                Kind::Meta
            };
            let data = if kind == Kind::NewData {
                vec![0u8; self.bs]
            } else {
                self.block(b)?
            };
            if class == Kind::NewData {
                self.staged_data += self.bs;
            }
            self.overlay.insert(
                b,
                Staged {
                    data: data.into_boxed_slice(),
                    kind: class,
                },
            );
        }
        Ok(self.overlay.get_mut(&b).unwrap())
    }

    /// Change a metadata block in place through `f`. Every metadata write
    /// of the engine goes through here (or [`Self::write_meta_block`]).
    pub fn modify_block<R>(&mut self, b: u64, f: impl FnOnce(&mut [u8]) -> R) -> Result<R> {
        let s = self.stage(b, Kind::Meta)?;
        Ok(f(&mut s.data))
    }

    /// Replace a whole metadata block.
    pub fn write_meta_block(&mut self, b: u64, data: &[u8]) -> Result<()> {
        self.modify_block(b, |buf| buf.copy_from_slice(data))
    }

    /// Write the content of a data block allocated in this transaction.
    /// `data` may be shorter than a block: the rest is zero.
    pub fn write_new_data(&mut self, b: u64, data: &[u8]) -> Result<()> {
        if !self.overlay.contains_key(&b) && b < self.sb.blocks_count && self.writable {
            // Fast path: build the staged block straight from the data.
            let mut v = Vec::with_capacity(self.bs);
            v.extend_from_slice(data);
            v.resize(self.bs, 0);
            self.staged_data += self.bs;
            self.overlay.insert(
                b,
                Staged {
                    data: v.into_boxed_slice(),
                    kind: Kind::NewData,
                },
            );
        } else {
            let s = self.stage(b, Kind::NewData)?;
            s.data[..data.len()].copy_from_slice(data);
            s.data[data.len()..].fill(0);
        }
        if self.staged_data > SPILL_LIMIT {
            self.spill_data()?;
        }
        Ok(())
    }

    /// [`Self::write_new_data`] taking the bytes by value (at most one
    /// block; padded with zeros in place when the vector has room).
    pub fn write_new_data_vec(&mut self, b: u64, mut data: Vec<u8>) -> Result<()> {
        if data.len() > self.bs
            || self.overlay.contains_key(&b)
            || b >= self.sb.blocks_count
            || !self.writable
        {
            return self.write_new_data(b, &data);
        }
        data.resize(self.bs, 0);
        self.staged_data += self.bs;
        self.overlay.insert(
            b,
            Staged {
                data: data.into_boxed_slice(),
                kind: Kind::NewData,
            },
        );
        if self.staged_data > SPILL_LIMIT {
            self.spill_data()?;
        }
        Ok(())
    }

    /// Whether a file of `size` bytes has its data written to the image as
    /// it is read ([`Self::write_data_early`]) rather than staged: past
    /// [`SPILL_LIMIT`] staged blocks would go out early anyway, and the
    /// copy into a staged block (a page fault per block) would be wasted.
    pub(crate) fn writes_early(&self, size: u64) -> bool {
        size > SPILL_LIMIT as u64
    }

    /// Write whole data blocks allocated in this transaction, `first` and
    /// the ones after it, to the image now, as [`Self::spill_data`] does
    /// for staged ones: free in the old file system, saved first for the
    /// undo, flushed with the log (or before the in-place metadata).
    pub(crate) fn write_data_early(&mut self, first: u64, data: &[u8]) -> Result<()> {
        let bs = self.bs;
        let n = (data.len() / bs) as u64;
        if !data.len().is_multiple_of(bs)
            || !self.writable
            || first.saturating_add(n) > self.sb.blocks_count
            || (first..first + n).any(|b| self.overlay.contains_key(&b))
        {
            for (i, c) in data.chunks(bs).enumerate() {
                self.write_new_data(first + i as u64, c)?;
            }
            return Ok(());
        }
        self.check_journal_map()?;
        let blocks: Vec<u64> = (first..first + n).collect();
        self.save_undo(&blocks)?;
        self.dev.write_at(first * bs as u64, data).map_err(|e| {
            with_state(
                Error::io(format!("writing image blocks {first}..{}", first + n), e),
                STATE_UNCHANGED,
            )
        })
    }

    /// Write staged new-data blocks to the image now. They are free on disk
    /// (we never reuse a block freed in the same transaction), so the image
    /// still describes the old filesystem.
    /// Remember what `blocks` hold now, before they are written ahead of
    /// the commit point. Zeros (free blocks of a fresh or sparse image) are
    /// only noted, without reading a run the device knows to be a hole;
    /// anything else goes to an anonymous file in `$TMPDIR`.
    fn save_undo(&mut self, blocks: &[u64]) -> Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let fresh: Vec<u64> = blocks
            .iter()
            .copied()
            .filter(|&b| !self.undo.saved.contains(b))
            .collect();
        let blocks = &fresh[..];
        for &b in blocks {
            self.undo.saved.insert(b);
        }
        let bs = self.bs as u64;
        let max_run = ((1 << 20) / bs).max(1);
        let mut i = 0;
        let mut buf = Vec::new();
        while i < blocks.len() {
            let first = blocks[i];
            let mut n = 1u64;
            while i + (n as usize) < blocks.len()
                && blocks[i + n as usize] == first + n
                && n < max_run
            {
                n += 1;
            }
            i += n as usize;
            // A hole reads as zeros: reading it would only make the kernel
            // zero-fill page cache (10 MiB for a 10 MiB put into a sparse
            // copy, a third of that command's CPU time).
            if self.dev.is_hole(first * bs, n * bs) {
                self.undo.runs.push((first, n, None));
                continue;
            }
            buf.resize((n * bs) as usize, 0);
            self.dev
                .read_at(first * bs, &mut buf)
                .map_err(|e| Error::io(format!("reading image block {first}"), e))?;
            if crate::device::is_zero(&buf) {
                self.undo.runs.push((first, n, None));
                continue;
            }
            if self.undo.spool.is_none() {
                self.undo.spool = Some(tempfile::tempfile().map_err(|e| {
                    Error::io(
                        "creating a file in $TMPDIR for the blocks' previous content",
                        e,
                    )
                })?);
            }
            let at = self.undo.spooled;
            let f = self.undo.spool.as_mut().unwrap();
            f.seek(SeekFrom::Start(at))
                .and_then(|_| f.write_all(&buf))
                .map_err(|e| Error::io("saving the blocks' previous content in $TMPDIR", e))?;
            self.undo.spooled += buf.len() as u64;
            self.undo.runs.push((first, n, Some(at)));
        }
        Ok(())
    }

    /// Put back what [`Self::save_undo`] saved (newest first), and flush.
    fn restore_undo(&mut self) -> Result<()> {
        use std::os::unix::fs::FileExt;
        if self.undo.runs.is_empty() {
            return Ok(());
        }
        let bs = self.bs as u64;
        let undo = std::mem::take(&mut self.undo);
        let mut buf = Vec::new();
        for &(first, n, at) in undo.runs.iter().rev() {
            match at {
                None => self
                    .dev
                    .zero_range(first * bs, n * bs)
                    .map_err(|e| Error::io(format!("restoring image block {first}"), e))?,
                Some(at) => {
                    buf.resize((n * bs) as usize, 0);
                    if let Some(f) = undo.spool.as_ref() {
                        f.read_exact_at(&mut buf, at)
                            .map_err(|e| Error::io("reading the blocks' previous content", e))?;
                    }
                    self.dev
                        .write_at(first * bs, &buf)
                        .map_err(|e| Error::io(format!("restoring image block {first}"), e))?;
                }
            }
        }
        self.dev
            .flush()
            .map_err(|e| Error::io("flushing the image", e))
    }

    /// From here on the written blocks belong to the change being committed.
    fn forget_undo(&mut self) {
        self.undo = Undo::default();
        self.undo_committed = false;
    }

    /// Open an undoable change: from here until the next [`Self::commit`],
    /// the intermediate commits of [`Self::commit_if_large`] (each a
    /// consistent file system, so a crash leaves one of them) first save
    /// the previous content of every block they overwrite (metadata in
    /// place, journal, superblock, data blocks that were free) in an
    /// anonymous file in `$TMPDIR` (zeros are only noted). If the change
    /// is abandoned ([`Self::rollback`], or the handle dropped without the
    /// final commit), all of it is written back and flushed: the image is
    /// byte for byte as it was when the change was opened. The final
    /// commit forgets the saved blocks. The undo is not replayed after a
    /// crash (the spool file is gone with the process).
    pub fn begin_undoable(&mut self) {
        self.undoable = true;
    }

    /// True while an undoable change spans intermediate commits: the image
    /// on disk is one of them until the change is committed or rolled back.
    pub fn has_intermediate_commits(&self) -> bool {
        self.undo_committed
    }

    fn spill_data(&mut self) -> Result<()> {
        let mut blocks: Vec<u64> = self
            .overlay
            .iter()
            .filter(|(_, s)| s.kind == Kind::NewData)
            .map(|(b, _)| *b)
            .collect();
        blocks.sort_unstable();
        crate::interrupt::check()?;
        // Everything the commit needs must be known good before the first
        // byte reaches the image.
        self.check_journal_map()?;
        self.save_undo(&blocks)?;
        self.write_runs(&blocks)
            .map_err(|e| with_state(e, STATE_UNCHANGED))?;
        for b in blocks {
            self.overlay.remove(&b);
        }
        self.staged_data = 0;
        Ok(())
    }

    /// Check once that every block of the journal is mapped inside the
    /// filesystem, so that a commit cannot fail half way on a damaged
    /// journal block map after data or log blocks were written.
    fn check_journal_map(&mut self) -> Result<()> {
        if self.journal_map_ok || !(self.use_journal && self.writable) {
            return Ok(());
        }
        let Some(j) = self.journal.as_ref() else {
            return Ok(());
        };
        let maxlen = j.sb.maxlen as u64;
        let runs = self.block_runs(&j.inode, maxlen)?;
        let mut next = 0u64;
        for r in &runs {
            if r.lblk != next || r.uninit {
                break;
            }
            self.check_block(r.pblk, &|| format!("journal inode {}", j.ino))?;
            self.check_block(r.pblk + r.len - 1, &|| format!("journal inode {}", j.ino))?;
            next = r.lblk + r.len;
        }
        if next < maxlen {
            return Err(Error::corrupt(format!(
                "journal inode {}: journal block {next} is not mapped",
                j.ino
            )));
        }
        self.journal_map_ok = true;
        Ok(())
    }

    /// True if anything is staged.
    pub fn is_dirty(&self) -> bool {
        !self.overlay.is_empty()
            || self.sb_dirty
            || !self.dirty_groups.is_empty()
            || self.recovery.is_some()
    }

    /// Write every staged change to the image.
    ///
    /// A pending journal replay is written first (replayed blocks, flush,
    /// empty journal, flush, needs_recovery cleared, flush). Then, with a
    /// journal: the blocks allocated in this transaction (file data, new
    /// indirect and directory blocks) in place, the other metadata logged
    /// as one transaction, and the superblock marked needs_recovery, flush;
    /// the journal superblock pointed at the transaction (the commit point),
    /// flush; the metadata in place, flush; the journal emptied, flush;
    /// needs_recovery cleared. A crash at any point leaves an image that
    /// recovery brings to the state before or after the command. Without a
    /// journal (ext2, or `--no-journal`): new blocks, flush, metadata in
    /// place, flush.
    pub fn commit(&mut self) -> Result<()> {
        if let Err(e) = self.commit_step(false) {
            // Failed before its commit point (the undo is still there):
            // put the intermediate commits back now, and say so.
            if self.undo_committed {
                let restored = self.rollback();
                return Err(put_back(e, restored));
            }
            return Err(e);
        }
        // The end of an undoable change: what it wrote stays.
        if self.undoable || self.undo_committed {
            self.undoable = false;
            self.forget_undo();
        }
        Ok(())
    }

    /// One commit. `keep`: an intermediate commit of an undoable change,
    /// which saves what it overwrites and keeps it past its commit point.
    fn commit_step(&mut self, keep: bool) -> Result<()> {
        if !self.is_dirty() {
            return Ok(());
        }
        let replay_commit = self.replay_only && self.recovery.is_some();
        if !self.writable && !replay_commit {
            return self.ensure_writable();
        }
        // A stop asked for (a signal): nothing more reaches the image.
        crate::interrupt::check()?;
        let journaled = self.use_journal && self.journal.is_some() && self.writable;
        if journaled {
            self.check_journal_map()?;
            // Check that the transaction fits before writing anything (an
            // upper bound: staged metadata, descriptor blocks, superblock).
            let j = self.journal.as_ref().unwrap();
            let gd_blocks = self.dirty_groups.len();
            let need = self.staged_meta_blocks() + gd_blocks + 1;
            if need > j.capacity() {
                return Err(Error::NoSpace(format!(
                    "the change touches {need} metadata blocks but the journal holds {}; do it in smaller steps, or use --no-journal",
                    j.capacity()
                )));
            }
        }
        if let Some(rec) = self.recovery.take() {
            if keep {
                let mut touched: Vec<u64> = rec.blocks.keys().copied().collect();
                touched.push(rec.jsb_block);
                touched.push(self.sb_location().0);
                touched.sort_unstable();
                touched.dedup();
                if let Err(e) = self.save_undo(&touched) {
                    self.recovery = Some(rec);
                    return Err(e);
                }
            }
            self.checkpoint_recovery(&rec)
                .map_err(|e| with_state(e, STATE_REPLAY))?;
            // Blocks the replay alone changed need not be written again.
            for (b, data) in &rec.blocks {
                if self.overlay.get(b).is_some_and(|s| s.data[..] == data[..]) {
                    self.overlay.remove(b);
                }
            }
            if self
                .overlay
                .get(&rec.jsb_block)
                .is_some_and(|s| s.data[..] == rec.jsb[..])
            {
                self.overlay.remove(&rec.jsb_block);
            }
            if !self.writable {
                // replay_only: nothing else may be written.
                self.overlay.clear();
                self.sb_dirty = false;
                self.dirty_groups.clear();
                return Ok(());
            }
        }
        // Group descriptors into their blocks.
        let dirty: Vec<u32> = std::mem::take(&mut self.dirty_groups).into_iter().collect();
        for g in dirty {
            let (blk, off) = self.desc_location(g);
            let raw = self.groups[g as usize].raw().to_vec();
            self.modify_block(blk, |b| b[off..off + raw.len()].copy_from_slice(&raw))?;
        }
        // The superblock.
        let now = self.now.secs;
        self.sb.set_wtime(now);
        let mut raw = self.sb.raw().to_vec();
        set_sb_csum(&mut raw);
        let (blk, off) = self.sb_location();
        self.modify_block(blk, |b| b[off..off + SUPERBLOCK_SIZE].copy_from_slice(&raw))?;
        self.sb_dirty = false;

        let mut data: Vec<u64> = Vec::new();
        let mut meta: Vec<u64> = Vec::new();
        for (b, s) in &self.overlay {
            match s.kind {
                Kind::NewData => data.push(*b),
                Kind::Meta => meta.push(*b),
            }
        }
        data.sort_unstable();
        meta.sort_unstable();
        // The journal transaction is built and placed before anything is
        // written: an error there leaves the image as it was.
        let log = if journaled {
            Some(self.plan_transaction(&meta)?)
        } else {
            None
        };
        self.save_undo(&data)?;
        self.write_runs(&data)
            .map_err(|e| with_state(e, STATE_UNCHANGED))?;
        // With the journal, the data shares the first flush with the log:
        // both are on disk before the journal superblock points at the
        // transaction, which is what makes it count. In place, the data
        // is flushed before the first metadata write, also when all of it
        // went out early (spill_data) and none was left for here: the
        // undo runs record every block written ahead of this point.
        if !self.undo.runs.is_empty() && !journaled {
            self.flush().map_err(|e| with_state(e, STATE_UNCHANGED))?;
        }
        if let Some(log) = log {
            self.journaled_write(&meta, log, keep)?;
        } else {
            // In place, the first metadata write is the commit point.
            if keep {
                self.save_undo(&meta)?;
            } else {
                self.forget_undo();
            }
            self.write_runs(&meta)
                .map_err(|e| with_state(e, STATE_IN_PLACE))?;
            self.flush().map_err(|e| with_state(e, STATE_IN_PLACE))?;
        }
        if keep {
            self.undo_committed = true;
        } else {
            self.forget_undo();
        }
        self.overlay.clear();
        self.roles.clear();
        self.staged_data = 0;
        self.freed_blocks.clear();
        self.new_blocks.clear();
        Ok(())
    }

    /// Say what the staged metadata block `b` is, for its checksum at
    /// commit on metadata_csum file systems (see [`BlockRole`]). Call it
    /// for every block of these kinds that is staged; a later role for the
    /// same block replaces the earlier one.
    pub fn set_block_role(&mut self, b: u64, role: BlockRole) {
        self.roles.insert(b, role);
    }

    /// The role given to staged block `b` in this transaction.
    pub fn block_role(&self, b: u64) -> Option<BlockRole> {
        self.roles.get(&b).copied()
    }

    /// Blocks staged as metadata: a caller doing a long series of changes
    /// may commit in between when this grows large.
    pub fn staged_meta_blocks(&self) -> usize {
        // staged_data counts exactly the new-data blocks in the overlay.
        self.overlay.len() - self.staged_data / self.bs
    }

    /// Commit if the staged metadata has grown past half of what one
    /// journal transaction can hold (or 16 MiB without a journal). Long
    /// operations call this between steps that each leave a consistent
    /// filesystem. Inside an undoable change ([`Self::begin_undoable`])
    /// the commit can still be put back; if it fails, the whole change is
    /// put back at once and the error says so.
    pub fn commit_if_large(&mut self) -> Result<bool> {
        let limit = match (&self.journal, self.use_journal) {
            (Some(j), true) => j.capacity() / 2,
            _ => (16 << 20) / self.bs,
        };
        if self.staged_meta_blocks() + self.dirty_groups.len() + 8 > limit {
            if let Err(e) = self.commit_step(self.undoable) {
                if !self.undoable {
                    return Err(e);
                }
                // Put the whole change back now, and say so.
                let restored = self.rollback();
                return Err(put_back(e, restored));
            }
            return Ok(true);
        }
        Ok(false)
    }

    fn flush(&mut self) -> Result<()> {
        self.dev
            .flush()
            .map_err(|e| Error::io("flushing the image", e))
    }

    fn write_raw(&mut self, b: u64, data: &[u8]) -> Result<()> {
        self.dev
            .write_at(b * self.bs as u64, data)
            .map_err(|e| Error::io(format!("writing image block {b}"), e))
    }

    /// The superblock block as it is on disk, with needs_recovery set or
    /// cleared.
    fn disk_sb_block(&self, recover: bool) -> Result<(u64, Vec<u8>)> {
        let (blk, off) = self.sb_location();
        let mut b = vec![0u8; self.bs];
        self.dev
            .read_at(blk * self.bs as u64, &mut b)
            .map_err(|e| Error::io("reading the superblock", e))?;
        patch_recover(&mut b[off..off + SUPERBLOCK_SIZE], recover);
        Ok((blk, b))
    }

    fn checkpoint_recovery(&mut self, rec: &Recovery) -> Result<()> {
        // 1. The replayed blocks (superblock still needs_recovery).
        let blocks: Vec<u64> = rec.blocks.keys().copied().collect();
        let mut i = 0;
        while i < blocks.len() {
            let b = blocks[i];
            self.write_raw(b, &rec.blocks[&b])?;
            i += 1;
        }
        self.flush()?;
        // 2. The journal, empty.
        self.write_raw(rec.jsb_block, &rec.jsb)?;
        self.flush()?;
        // 3. needs_recovery cleared (and the error state if the replay met
        // problems), as e2fsck leaves it.
        let (sbb, _) = self.sb_location();
        self.write_raw(sbb, &rec.final_sb)?;
        self.flush()
    }

    /// Build the journal transaction for `meta` and find where each of its
    /// blocks goes (and the block after it, and the journal superblock).
    fn plan_transaction(&self, meta: &[u64]) -> Result<Planned> {
        let now = self.now.secs;
        let j = self.journal.as_ref().unwrap();
        let tid = j.sb.sequence.wrapping_add(1);
        let log = {
            let blocks: Vec<(u64, &[u8])> = meta
                .iter()
                .map(|b| (*b, &self.overlay[b].data[..]))
                .collect();
            j.build_transaction(tid, &blocks, now)?
        };
        let mut placed = Vec::with_capacity(log.len());
        for (pos, data) in log {
            placed.push((j.phys(self, pos)?, data));
        }
        let after = j.sb.first + placed.len() as u32;
        let after = if after < j.sb.last() {
            Some(j.phys(self, after)?)
        } else {
            None
        };
        Ok(Planned {
            tid,
            placed,
            after,
            jsb_block: j.phys(self, 0)?,
        })
    }

    fn journaled_write(&mut self, meta: &[u64], plan: Planned, keep: bool) -> Result<()> {
        // Until the journal superblock points at the transaction, the
        // file system on disk is the old one.
        self.log_transaction(&plan, if keep { meta } else { &[] })
            .map_err(|e| with_state(e, STATE_UNCHANGED))?;
        // 2. The journal superblock points at the transaction: the commit
        // point. From here on what was written belongs to the change
        // (unless an undoable change keeps it).
        if !keep {
            self.forget_undo();
        }
        let j = self.journal.as_ref().unwrap().clone();
        let tid = plan.tid;
        let jsb_block = plan.jsb_block;
        let mut jsb = j.sb.clone();
        jsb.set_start(jsb.first, tid);
        self.write_raw(jsb_block, jsb.raw())
            .and_then(|_| self.flush())
            .map_err(|e| with_state(e, STATE_JOURNAL_MAYBE))?;
        self.checkpoint_transaction(meta, jsb)
            .map_err(|e| with_state(e, STATE_JOURNALED))
    }

    /// 1. The log, and the on-disk superblock marked needs_recovery.
    ///
    /// `in_place`: blocks the checkpoint will overwrite whose previous
    /// content must be saved too (an intermediate commit of an undoable
    /// change; they are saved with the journal's, before the first write).
    fn log_transaction(&mut self, plan: &Planned, in_place: &[u64]) -> Result<()> {
        let placed = &plan.placed;
        let mut touched: Vec<u64> = placed.iter().map(|p| p.0).collect();
        touched.extend(plan.after);
        touched.push(self.disk_sb_block(true)?.0);
        if !in_place.is_empty() {
            touched.extend_from_slice(in_place);
            touched.push(plan.jsb_block);
        }
        touched.sort_unstable();
        touched.dedup();
        self.save_undo(&touched)?;
        // Neighbouring log blocks go out in one write.
        let mut i = 0;
        let mut buf = Vec::new();
        while i < placed.len() {
            let start = placed[i].0;
            buf.clear();
            let mut k = i;
            while k < placed.len() && placed[k].0 == start + (k - i) as u64 && buf.len() < (1 << 20)
            {
                buf.extend_from_slice(&placed[k].1);
                k += 1;
            }
            self.write_raw(start, &buf)?;
            i = k;
        }
        // A zeroed block right after the commit block ends the log there:
        // older transactions further on can never be taken for ours.
        if let Some(pb) = plan.after {
            let zero = vec![0u8; self.bs];
            self.write_raw(pb, &zero)?;
        }
        let (b, old_sb) = self.disk_sb_block(true)?;
        self.write_raw(b, &old_sb)?;
        self.flush()
    }

    /// 3.-5. The metadata in place, the journal emptied, needs_recovery
    /// cleared.
    fn checkpoint_transaction(
        &mut self,
        meta: &[u64],
        mut jsb: crate::journal::JournalSuperblock,
    ) -> Result<()> {
        let (sbb, off) = self.sb_location();
        let tid = jsb.sequence;
        let jsb_block = self.journal.as_ref().unwrap().phys(self, 0)?;
        // 3. Checkpoint: the metadata in place (superblock still marked).
        if let Some(s) = self.overlay.get_mut(&sbb) {
            patch_recover(&mut s.data[off..off + SUPERBLOCK_SIZE], true);
        }
        self.write_runs(meta)?;
        self.flush()?;
        // 4. The journal is empty again.
        jsb.set_empty(tid.wrapping_add(1));
        self.write_raw(jsb_block, jsb.raw())?;
        self.flush()?;
        // 5. needs_recovery cleared.
        let sb_final = match self.overlay.get_mut(&sbb) {
            Some(s) => {
                patch_recover(&mut s.data[off..off + SUPERBLOCK_SIZE], false);
                s.data.to_vec()
            }
            None => self.disk_sb_block(false)?.1,
        };
        // No flush needed for this last write: the journal is already
        // empty on disk, and needs_recovery with an empty journal is a
        // state mount and e2fsck accept (and clear) as it is.
        self.write_raw(sbb, &sb_final)?;
        if let Some(jj) = self.journal.as_mut() {
            jj.sb = jsb;
        }
        Ok(())
    }

    /// Write staged blocks (sorted numbers), merging neighbours into one
    /// write of up to 1 MiB.
    fn write_runs(&mut self, blocks: &[u64]) -> Result<()> {
        let bs = self.bs;
        let max_run = (1 << 20) / bs;
        let mut i = 0;
        while i < blocks.len() {
            let start = blocks[i];
            let mut j = i;
            while j < blocks.len() && blocks[j] == start + (j - i) as u64 && j - i < max_run {
                j += 1;
            }
            // One vectored write per run of neighbouring blocks: no copy.
            let bufs: Vec<&[u8]> = blocks[i..j]
                .iter()
                .map(|b| &self.overlay[b].data[..])
                .collect();
            self.dev
                .write_vectored_at(start * bs as u64, &bufs)
                .map_err(|e| {
                    Error::io(
                        format!("writing image blocks {start}..{}", start + (j - i) as u64),
                        e,
                    )
                })?;
            i = j;
        }
        Ok(())
    }

    /// Drop every staged change.
    pub fn rollback(&mut self) -> Result<()> {
        let committed = self.undo_committed;
        self.undoable = false;
        self.undo_committed = false;
        self.restore_undo()?;
        self.overlay.clear();
        self.roles.clear();
        self.staged_data = 0;
        self.freed_blocks.clear();
        self.new_blocks.clear();
        self.dirty_groups.clear();
        self.sb_dirty = false;
        self.dir_room_hint.clear();
        self.fresh_dirs.clear();
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        self.dev
            .read_at(SUPERBLOCK_OFFSET, &mut raw)
            .map_err(|e| Error::io("reading the superblock", e))?;
        self.sb = Superblock::parse(&raw)?;
        self.load_groups()?;
        if committed {
            // Intermediate commits moved the journal on; the image is back
            // where the change began (a replay it did is pending again).
            self.recovery = None;
            if self.journal.is_some() {
                self.journal = Journal::load(self)?;
            }
            if self.disk_needs_recovery && self.journal.is_some() {
                self.stage_recovery()?;
            }
            return Ok(());
        }
        if self.recovery.take().is_some() {
            self.stage_recovery()?;
        }
        Ok(())
    }

    // ----------------------------------------------------------------
    // Inodes

    fn inode_location(&self, ino: Ino) -> Result<(u64, usize)> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(Error::corrupt(format!(
                "inode number {ino} is out of range (1..={})",
                self.sb.inodes_count
            )));
        }
        let g = (ino - 1) / self.sb.inodes_per_group;
        let idx = ((ino - 1) % self.sb.inodes_per_group) as u64;
        let table = self.groups[g as usize].inode_table();
        let byte = idx * self.sb.inode_size as u64;
        let blk = table + byte / self.bs as u64;
        self.check_block(blk, &|| format!("inode table of group {g} (inode {ino})"))?;
        Ok((blk, (byte % self.bs as u64) as usize))
    }

    /// Read inode `ino`.
    pub fn read_inode(&self, ino: Ino) -> Result<Inode> {
        let (blk, off) = self.inode_location(ino)?;
        let is = self.sb.inode_size as usize;
        let raw = if let Some(s) = self.overlay.get(&blk) {
            s.data[off..off + is].to_vec()
        } else {
            let mut v = vec![0u8; is];
            let pos = blk * self.bs as u64 + off as u64;
            self.dev.read_at(pos, &mut v).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::corrupt(format!(
                    "inode {ino} lies past the end of the image file: the image is truncated"
                )),
                _ => Error::io(format!("reading inode {ino}"), e),
            })?;
            v
        };
        let inode = Inode::from_raw(ino, raw);
        if self.sb.inode_size > 128 {
            let extra = inode.extra_isize() as usize;
            if 128 + extra > is || !extra.is_multiple_of(4) {
                return Err(Error::corrupt(format!(
                    "inode {ino}: extra inode size {extra} is invalid"
                )));
            }
        }
        Ok(inode)
    }

    /// Stage an inode write.
    pub fn write_inode(&mut self, inode: &Inode) -> Result<()> {
        let (blk, off) = self.inode_location(inode.ino)?;
        let raw = inode.raw();
        self.modify_block(blk, |b| b[off..off + raw.len()].copy_from_slice(raw))
    }

    /// The root directory's inode number.
    pub fn root(&self) -> Ino {
        ROOT_INO
    }

    /// Group of an inode.
    pub fn inode_group(&self, ino: Ino) -> u32 {
        (ino.saturating_sub(1)) / self.sb.inodes_per_group
    }

    /// Group of a block.
    pub fn block_group(&self, b: u64) -> u32 {
        (b.saturating_sub(self.sb.first_data_block as u64) / self.sb.blocks_per_group as u64) as u32
    }

    // ----------------------------------------------------------------
    // Allocation: `find_*` searches without side effects, `record_*`
    // updates bitmap, group counts and superblock counts together.

    /// Free blocks we can still hand out in this transaction.
    pub fn free_blocks(&self) -> u64 {
        self.sb.free_blocks()
    }

    /// Free inodes.
    pub fn free_inodes(&self) -> u32 {
        self.sb.free_inodes()
    }

    fn bitmap_block(&self, g: u32, inode: bool) -> Result<u64> {
        let gd = &self.groups[g as usize];
        let b = if inode {
            gd.inode_bitmap()
        } else {
            gd.block_bitmap()
        };
        let what = if inode {
            "inode bitmap"
        } else {
            "block bitmap"
        };
        self.check_block(b, &|| format!("{what} of group {g}"))?;
        Ok(b)
    }

    /// Find up to `want` contiguous free blocks, searching from `goal` and
    /// wrapping around. Returns (first, count).
    fn find_blocks(&self, goal: u64, want: u32) -> Result<Option<(u64, u32)>> {
        let ngroups = self.sb.group_count;
        let goal = if goal < self.sb.first_data_block as u64 || goal >= self.sb.blocks_count {
            self.sb.first_data_block as u64
        } else {
            goal
        };
        let g0 = self.block_group(goal);
        for i in 0..=ngroups {
            let g = (g0 + i) % ngroups;
            if self.groups[g as usize].free_blocks() == 0 {
                continue;
            }
            let first = self.sb.group_first_block(g);
            let n = self.sb.group_blocks(g);
            let start = if i == 0 { (goal - first) as u32 } else { 0 };
            if i == ngroups && start == 0 {
                break;
            }
            let end = if i == ngroups {
                (goal - first) as u32
            } else {
                n
            };
            let bmb = self.bitmap_block(g, false)?;
            let found = self.with_block(bmb, |bitmap| {
                self.scan_bitmap(bitmap, first, start, end, n, want)
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    fn scan_bitmap(
        &self,
        bitmap: &[u8],
        first: u64,
        start: u32,
        end: u32,
        n: u32,
        want: u32,
    ) -> Option<(u64, u32)> {
        let mut bit = start;
        while bit < end {
            // Skip whole used bytes quickly.
            if bit.is_multiple_of(8) && bitmap[(bit / 8) as usize] == 0xff {
                bit += 8;
                continue;
            }
            let used = bitmap[(bit / 8) as usize] & (1 << (bit % 8)) != 0;
            if used || self.freed_blocks.contains(first + bit as u64) {
                bit += 1;
                continue;
            }
            let mut len = 1u32;
            while len < want
                && bit + len < n
                && bitmap[((bit + len) / 8) as usize] & (1 << ((bit + len) % 8)) == 0
                && !self.freed_blocks.contains(first + (bit + len) as u64)
            {
                len += 1;
            }
            return Some((first + bit as u64, len));
        }
        None
    }

    fn record_blocks(&mut self, first: u64, count: u32, alloc: bool) -> Result<()> {
        let g = self.block_group(first);
        let gfirst = self.sb.group_first_block(g);
        let bm = self.bitmap_block(g, false)?;
        let start = (first - gfirst) as u32;
        let mut bad = None;
        self.modify_block(bm, |b| {
            for bit in start..start + count {
                let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
                let set = b[byte] & mask != 0;
                if set == alloc {
                    bad = Some(gfirst + bit as u64);
                    return;
                }
                if alloc {
                    b[byte] |= mask
                } else {
                    b[byte] &= !mask
                }
            }
        })?;
        if let Some(b) = bad {
            return Err(Error::corrupt(if alloc {
                format!("block {b} is already marked in use")
            } else {
                format!(
                    "block {b} is freed twice (it is not marked in use); the image needs e2fsck"
                )
            }));
        }
        let gd = &mut self.groups[g as usize];
        let free = gd.free_blocks();
        let nf = if alloc {
            free.checked_sub(count)
        } else {
            free.checked_add(count)
        }
        .ok_or_else(|| Error::corrupt(format!("group {g}: free block count {free} is wrong")))?;
        gd.set_free_blocks(nf);
        self.dirty_groups.insert(g);
        let sf = self.sb.free_blocks();
        self.sb.set_free_blocks(if alloc {
            sf.saturating_sub(count as u64)
        } else {
            sf + count as u64
        });
        self.sb_dirty = true;
        Ok(())
    }

    /// Allocate up to `want` contiguous blocks near `goal`.
    pub fn alloc_blocks(&mut self, goal: u64, want: u32) -> Result<(u64, u32)> {
        self.ensure_writable()?;
        match self.find_blocks(goal, want.max(1))? {
            Some((b, n)) => {
                self.record_blocks(b, n, true)?;
                self.new_blocks.insert_range(b, b + n as u64);
                Ok((b, n))
            }
            None => Err(Error::NoSpace("no free block left".into())),
        }
    }

    /// Allocate one block near `goal`.
    pub fn alloc_block(&mut self, goal: u64) -> Result<u64> {
        Ok(self.alloc_blocks(goal, 1)?.0)
    }

    /// Free `count` blocks starting at `first` (inside one group).
    pub fn free_blocks_run(&mut self, first: u64, count: u32) -> Result<()> {
        self.ensure_writable()?;
        let mut b = first;
        let end = first + count as u64;
        while b < end {
            self.check_block(b, &|| "freeing".to_string())?;
            let g = self.block_group(b);
            let gend = self.sb.group_first_block(g) + self.sb.group_blocks(g) as u64;
            let n = (end.min(gend) - b) as u32;
            self.record_blocks(b, n, false)?;
            for x in b..b + n as u64 {
                self.freed_blocks.insert(x);
                self.new_blocks.remove(x);
                if let Some(s) = self.overlay.remove(&x) {
                    if s.kind == Kind::NewData {
                        self.staged_data -= self.bs;
                    }
                }
            }
            b += n as u64;
        }
        Ok(())
    }

    /// Free one block.
    pub fn free_block(&mut self, b: u64) -> Result<()> {
        self.free_blocks_run(b, 1)
    }

    /// Blocks that can be allocated right now (excluding those freed in
    /// this transaction, which are not reused before commit).
    pub fn allocatable_blocks(&self) -> u64 {
        self.sb
            .free_blocks()
            .saturating_sub(self.freed_blocks.len())
    }

    fn pick_inode_group(&self, parent: Ino, dir: bool) -> Option<u32> {
        let n = self.sb.group_count;
        let pg = self.inode_group(parent).min(n - 1);
        if dir {
            let total_fi: u64 = self.groups.iter().map(|g| g.free_inodes() as u64).sum();
            let total_fb: u64 = self.groups.iter().map(|g| g.free_blocks() as u64).sum();
            let avg_fi = total_fi / n as u64;
            let avg_fb = total_fb / n as u64;
            let mut best: Option<(u32, u32)> = None;
            for i in 0..n {
                let g = (pg + i) % n;
                let gd = &self.groups[g as usize];
                if gd.free_inodes() == 0
                    || (gd.free_inodes() as u64) < avg_fi
                    || (gd.free_blocks() as u64) < avg_fb
                {
                    continue;
                }
                if best.is_none_or(|(_, d)| gd.used_dirs() < d) {
                    best = Some((g, gd.used_dirs()));
                }
            }
            if let Some((g, _)) = best {
                return Some(g);
            }
        }
        (0..n)
            .map(|i| (pg + i) % n)
            .find(|&g| self.groups[g as usize].free_inodes() > 0)
    }

    /// Allocate an inode number for a new file (near `parent`).
    pub fn alloc_inode(&mut self, parent: Ino, ftype: FileType) -> Result<Ino> {
        self.ensure_writable()?;
        let dir = ftype == FileType::Directory;
        let mut tried = 0;
        let mut g = match self.pick_inode_group(parent, dir) {
            Some(g) => g,
            None => return Err(Error::NoSpace("no free inode left".into())),
        };
        let ipg = self.sb.inodes_per_group;
        loop {
            if self.groups[g as usize].free_inodes() > 0 {
                let bm = self.bitmap_block(g, true)?;
                let first_ok = if g == 0 { self.sb.first_ino - 1 } else { 0 };
                let hint = self.ialloc_hint.get(&g).copied().unwrap_or(0).max(first_ok);
                let find = |bitmap: &[u8], from: u32| -> Option<u32> {
                    let mut i = from;
                    while i < ipg {
                        let byte = bitmap[(i / 8) as usize];
                        if i.is_multiple_of(8) && byte == 0xff {
                            i += 8;
                            continue;
                        }
                        if byte & (1 << (i % 8)) == 0 {
                            return Some(i);
                        }
                        i += 1;
                    }
                    None
                };
                let found = self.with_block(bm, |b| find(b, hint).or_else(|| find(b, first_ok)))?;
                if let Some(i) = found {
                    self.modify_block(bm, |b| b[(i / 8) as usize] |= 1 << (i % 8))?;
                    self.ialloc_hint.insert(g, i + 1);
                    let gd = &mut self.groups[g as usize];
                    gd.set_free_inodes(gd.free_inodes() - 1);
                    // e2fsck takes inodes past ipg - bg_itable_unused as
                    // never used (even without uninit_bg): shrink the
                    // unused tail so that it starts after this inode.
                    if gd.itable_unused() > 0 && i >= ipg.saturating_sub(gd.itable_unused()) {
                        gd.set_itable_unused(ipg - i - 1);
                    }
                    if dir {
                        gd.set_used_dirs(gd.used_dirs() + 1);
                    }
                    self.dirty_groups.insert(g);
                    let fi = self.sb.free_inodes();
                    self.sb.set_free_inodes(fi.saturating_sub(1));
                    self.sb_dirty = true;
                    return Ok(g * ipg + i + 1);
                }
                return Err(Error::corrupt(format!(
                    "group {g}: descriptor counts free inodes but its inode bitmap is full"
                )));
            }
            tried += 1;
            if tried > self.sb.group_count {
                return Err(Error::NoSpace("no free inode left".into()));
            }
            g = (g + 1) % self.sb.group_count;
        }
    }

    /// Release inode number `ino` (its blocks must be freed already).
    pub fn free_inode(&mut self, ino: Ino, was_dir: bool) -> Result<()> {
        self.ensure_writable()?;
        self.inode_location(ino)?;
        let g = self.inode_group(ino);
        let i = (ino - 1) % self.sb.inodes_per_group;
        let bm = self.bitmap_block(g, true)?;
        let was_set = self.modify_block(bm, |b| {
            let m = 1u8 << (i % 8);
            let s = b[(i / 8) as usize] & m != 0;
            b[(i / 8) as usize] &= !m;
            s
        })?;
        if !was_set {
            return Err(Error::corrupt(format!(
                "inode {ino} is freed but was not marked in use"
            )));
        }
        let h = self.ialloc_hint.entry(g).or_insert(i);
        *h = (*h).min(i);
        let gd = &mut self.groups[g as usize];
        gd.set_free_inodes(gd.free_inodes() + 1);
        if was_dir {
            gd.set_used_dirs(gd.used_dirs().saturating_sub(1));
        }
        self.dirty_groups.insert(g);
        let fi = self.sb.free_inodes();
        self.sb.set_free_inodes(fi + 1);
        self.sb_dirty = true;
        Ok(())
    }

    /// Turn on `large_file` when a file grows past 2 GiB.
    pub(crate) fn note_large_file(&mut self, size: u64) {
        if size >= 1 << 31 && !self.sb.has_ro_compat(feature::RO_COMPAT_LARGE_FILE) {
            self.sb.set_ro_compat(feature::RO_COMPAT_LARGE_FILE);
            self.sb_dirty = true;
        }
    }

    /// Turn on `ext_attr` when an inode gets its first extended attribute.
    pub(crate) fn note_ext_attr(&mut self) {
        if !self.sb.has_compat(feature::COMPAT_EXT_ATTR) {
            self.sb.set_compat(feature::COMPAT_EXT_ATTR);
            self.sb_dirty = true;
        }
    }

    /// Unit tests: turn on a ro_compat feature in memory only.
    #[cfg(test)]
    pub(crate) fn test_set_ro_compat(&mut self, bit: u32) {
        self.sb.set_ro_compat(bit)
    }

    /// Make the superblock counts equal the sum of the group counts, as the
    /// kernel does at mount. Called once before the first change.
    pub(crate) fn sync_sb_counts(&mut self) {
        let fb: u64 = self.groups.iter().map(|g| g.free_blocks() as u64).sum();
        let fi: u64 = self.groups.iter().map(|g| g.free_inodes() as u64).sum();
        if fb != self.sb.free_blocks() || fi != self.sb.free_inodes() as u64 {
            self.sb.set_free_blocks(fb);
            self.sb.set_free_inodes(fi as u32);
            self.sb_dirty = true;
        }
    }

    /// Where to start looking for data blocks of inode `ino`: after the
    /// last data block we allocated when that lies in the inode's group,
    /// else at the start of the inode's group.
    pub(crate) fn data_goal(&self, ino: Ino) -> u64 {
        let g = self.inode_group(ino);
        match self.last_data {
            Some(b) if self.block_group(b) == g => b,
            _ => self.sb.group_first_block(g),
        }
    }

    pub(crate) fn set_data_goal(&mut self, b: u64) {
        self.last_data = Some(b);
    }

    /// Blocks of the inode table of every group (for `info`).
    pub fn inode_table_blocks(&self) -> u64 {
        self.itable_blocks
    }
}

/// A journal transaction ready to write: its blocks with their places.
struct Planned {
    tid: u32,
    placed: Vec<(u64, Vec<u8>)>,
    after: Option<u64>,
    jsb_block: u64,
}

/// Set or clear needs_recovery in raw superblock bytes (and its checksum).
fn patch_recover(raw: &mut [u8], on: bool) {
    use crate::layout::{le32, put32, sb};
    let v = le32(raw, sb::FEATURE_INCOMPAT);
    let v = if on {
        v | feature::INCOMPAT_RECOVER
    } else {
        v & !feature::INCOMPAT_RECOVER
    };
    put32(raw, sb::FEATURE_INCOMPAT, v);
    set_sb_csum(raw);
}

/// With metadata_csum, the superblock carries a crc32c of its first 1020
/// bytes.
pub(crate) fn set_sb_csum(raw: &mut [u8]) {
    use crate::layout::{le32, put32, sb};
    if le32(raw, sb::FEATURE_RO_COMPAT) & feature::RO_COMPAT_METADATA_CSUM != 0 {
        let c = crate::journal::crc32c_raw(!0, &raw[..0x3FC]);
        put32(raw, 0x3FC, c);
    }
}
