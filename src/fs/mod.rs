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
//!
//! ## The engine's files, bottom up
//! On-disk records: [`layout`] (offsets, feature bits), [`superblock`]
//! (superblock, group descriptors), [`inode`], [`csum`] (their
//! checksums: pure functions). The journal: [`journal`]
//! (JBD2 parse, replay plan, transactions). The handle, one concern a
//! file, each an `impl Filesystem` block: `open` (superblock, descriptors,
//! whether the image may be written), `recovery` (a replay staged before
//! anything is written), `stage` (the overlay every read and write goes
//! through), `itable` (inode tables), `alloc` (bitmaps, group and
//! superblock counts), `undo` (old contents of blocks written before a
//! commit point), `checksum` (every checksum set at commit, checked on
//! read), `commit` (the journaled or in-place write, rollback).
//! On top of the handle: [`bmap`] (one block map over indirect blocks and
//! extents), [`extent`] (growing and cutting extent trees), [`dir`] and [`htree`] (entries and the hash index), [`xattr`],
//! [`file`](mod@file) (file data).

pub mod bmap;
pub mod csum;
pub mod dir;
pub mod extent;
pub mod file;
pub mod htree;
pub mod inode;
pub mod journal;
pub mod layout;
pub mod orphan;
pub mod superblock;
pub mod xattr;

mod alloc;
mod blockset;
mod checksum;
mod commit;
mod itable;
mod journal_inode;
mod open;
mod recovery;
mod stage;
mod undo;

use blockset::BlockSet;
use commit::*;
use recovery::*;
pub use stage::BlockRole;
use stage::*;
use undo::*;

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
    /// Subdirectories of directories whose link count is 1 (dir_nlink:
    /// more than a link count holds), counted once per handle.
    pub(crate) subdir_counts: HashMap<Ino, u64>,
    itable_blocks: u64,
    last_data: Option<u64>,
    /// The layout's fixed metadata (superblock copies, descriptor tables,
    /// reserved GDT blocks, bitmaps, inode tables) as sorted block ranges,
    /// built on first use: a block map never frees them.
    meta_ranges: std::cell::OnceCell<alloc::MetaIndex>,
    pub(crate) io_buf: Vec<u8>,
    ialloc_hint: HashMap<u32, u32>,
    /// Blocks allocated in this transaction.
    new_blocks: BlockSet,
    /// The journal's block map was checked whole (see
    /// [`Self::check_journal_map`]).
    journal_map_ok: bool,
    journal: Option<Journal>,
    /// The inode whose block map locates the journal: the journal inode,
    /// or one rebuilt from the superblock's backup (`s_jnl_blocks`) when
    /// the journal inode is damaged.
    journal_inode: Option<Inode>,
    /// True when `journal_inode` comes from the superblock's backup: the
    /// replay writes it back to the journal inode, as e2fsck does.
    journal_from_backup: bool,
    /// The orphan list released in this change (see [`orphan`]).
    orphan_report: Option<orphan::OrphanReport>,
    use_journal: bool,
    recovery: Option<Recovery>,
    replay_only: bool,
    recovery_note: Option<String>,
    disk_needs_recovery: bool,
    journal_error: Option<String>,
    /// Roles of the metadata blocks staged in this transaction (see
    /// [`BlockRole`]).
    pub(crate) roles: HashMap<u64, BlockRole>,
    /// What the checksums of this file system depend on (see
    /// [`csum`]).
    pub(crate) csum: csum::Params,
    /// Inodes written in this transaction: their checksums are set at
    /// commit, over the staged inode table block.
    pub(crate) csum_inodes: BTreeSet<Ino>,
    /// The superblock on disk fails its checksum while the journal needs
    /// recovery (a write of it torn by a crash): the replay must bring a
    /// whole copy of it, else the open fails with this.
    sb_csum_bad: Option<Error>,
    /// The superblock was read from a write torn by a crash between its
    /// needs_recovery bit and its checksum (see `open::untear_recover_flag`).
    sb_untorn: bool,
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

impl Filesystem {
    /// What the journal replay did (or will do at commit), if the image
    /// needed one.
    pub fn recovery_report(&self) -> Option<&Replay> {
        self.recovery.as_ref().map(|r| &r.report)
    }

    /// The superblock on disk was a write torn by a crash between its
    /// needs_recovery bit and its checksum, and is read as the version
    /// its checksum belongs to; `journal replay` (or any write) writes it
    /// back whole.
    pub fn superblock_untorn(&self) -> bool {
        self.sb_untorn
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

    /// True when the journal inode is damaged and the journal was found
    /// through the superblock's backup of its block map (`s_jnl_blocks`).
    pub fn journal_from_backup(&self) -> bool {
        self.journal.is_some() && self.journal_from_backup
    }

    /// The orphan list released by this change, if the image had one.
    pub fn orphan_report(&self) -> Option<&orphan::OrphanReport> {
        self.orphan_report.as_ref()
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
    /// The superblock, to change it (written at the next commit).
    pub(crate) fn superblock_mut(&mut self) -> &mut Superblock {
        self.sb_dirty = true;
        &mut self.sb
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

    // ----------------------------------------------------------------
    // Inodes

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
}
