//! Where the internal journal lives: its inode, or, when that inode is
//! damaged, the superblock's backup of its block map (`s_jnl_blocks`, kept
//! by mke2fs, tune2fs and e2fsck when `s_jnl_backup_type` is 1: the 15
//! words of `i_block`, then `i_size_high` and `i_size`).
//!
//! As e2fsck does, the journal inode is taken as damaged when it has no
//! links, is not a regular file, is encrypted, is smaller than the least
//! journal (1024 blocks), or does not map every block of the journal; the
//! backup is then tried the same way. A journal found through the backup is
//! replayed from there, and the replay writes the rebuilt inode back to the
//! journal inode (before the replayed blocks, which win where they overlap).

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::Inode;
use crate::journal::{Journal, JournalStore};
use crate::layout::{feature, iflag};

/// The least journal e2fsck and the kernel accept, in blocks.
const MIN_JOURNAL_BLOCKS: u64 = 1024;
/// `i_mode` of a rebuilt journal inode: a regular file, mode 0600.
const JOURNAL_MODE: u16 = 0o100600;
/// The extent tree magic at the start of `i_block`.
const EXTENT_MAGIC: u16 = 0xF30A;

/// The journal and the inode that maps it.
pub(crate) struct Located {
    pub journal: Journal,
    pub inode: Inode,
    pub from_backup: bool,
}

/// The journal's view of the file system: blocks (through the overlay) and
/// the block map of the journal's inode.
pub(crate) struct JournalView<'a> {
    fs: &'a Filesystem,
    inode: Option<&'a Inode>,
}

impl<'a> JournalView<'a> {
    pub(crate) fn new(fs: &'a Filesystem, inode: Option<&'a Inode>) -> Self {
        JournalView { fs, inode }
    }
}

impl JournalStore for JournalView<'_> {
    fn read_block(&self, b: u64) -> Result<Vec<u8>> {
        self.fs.block(b)
    }
    fn map_block(&self, j: u64) -> Result<Option<u64>> {
        match self.inode {
            Some(i) => self.fs.bmap(i, j),
            None => Err(Error::corrupt("journal: no journal inode is loaded")),
        }
    }
}

impl Filesystem {
    /// Find the internal journal; `Ok(None)` when there is none. An
    /// external journal is an `Unsupported` error. When the journal inode
    /// is damaged and the superblock keeps a backup of its block map, the
    /// backup is used (and the error names both).
    pub(crate) fn load_journal(&self) -> Result<Option<Located>> {
        let sb = self.superblock();
        if !sb.has_compat(feature::COMPAT_HAS_JOURNAL) {
            return Ok(None);
        }
        let ino = sb.journal_inum();
        if ino == 0 {
            return Err(Error::Unsupported(format!(
                "the journal is on an external device ({:#x}); external journals are not supported",
                sb.journal_dev()
            )));
        }
        let (read, err) = match self.read_inode(ino) {
            Ok(inode) => match self.open_journal_with(inode.clone(), false) {
                Ok(l) => return Ok(Some(l)),
                Err(e) => (Some(inode), e),
            },
            Err(e) => (None, e.at("journal inode")),
        };
        let Some(inode) = self.journal_backup_inode(ino)? else {
            return Err(err);
        };
        // A backup that maps the journal as the inode does cannot help.
        if let Some(orig) = &read {
            if orig.raw()[0x28..0x64] == inode.raw()[0x28..0x64]
                && orig.size_with(true) == inode.size_with(true)
            {
                return Err(err);
            }
        }
        match self.open_journal_with(inode, true) {
            Ok(l) => Ok(Some(l)),
            Err(e2) => {
                let m2 = match e2 {
                    Error::Corrupt(m) | Error::Unsupported(m) => m,
                    e => e.to_string(),
                };
                Err(match err {
                    Error::Corrupt(m) => Error::Corrupt(format!(
                        "{m}; the superblock's backup of it does not help either ({m2})"
                    )),
                    e => e,
                })
            }
        }
    }

    /// The journal inode rebuilt from the superblock's backup, as e2fsck
    /// rebuilds it (a regular file of mode 0600, one link, the backup's
    /// `i_block` and size, everything else zero in the first 128 bytes).
    /// `i_flags` gets the extents flag when the backup holds an extent
    /// tree root on an extent file system (e2fsck leaves it out, and then
    /// cannot use the backup of an extent-mapped journal).
    fn journal_backup_inode(&self, ino: u32) -> Result<Option<Inode>> {
        let Some(w) = self.superblock().journal_backup() else {
            return Ok(None);
        };
        // Keep what lies past the first 128 bytes (large inodes), as
        // e2fsck's 128-byte inode write does.
        let mut inode = match self.read_inode(ino) {
            Ok(i) => i,
            Err(_) => Inode::zeroed(ino, self.superblock().inode_size as usize),
        };
        inode.raw_mut()[..128].fill(0);
        inode.set_mode(JOURNAL_MODE);
        inode.set_links(1);
        for (i, v) in w.iter().take(15).enumerate() {
            inode.set_block(i, *v);
        }
        inode.set_size((w[15] as u64) << 32 | w[16] as u64);
        if self.superblock().has_incompat(feature::INCOMPAT_EXTENTS)
            && (w[0] & 0xFFFF) as u16 == EXTENT_MAGIC
        {
            inode.set_flags(iflag::EXTENTS);
        }
        Ok(Some(inode))
    }

    fn open_journal_with(&self, inode: Inode, from_backup: bool) -> Result<Located> {
        let ino = inode.ino;
        let what = if from_backup {
            format!("journal inode {ino} (from the superblock's backup)")
        } else {
            format!("journal inode {ino}")
        };
        if inode.links() == 0 || !inode.is_reg() || inode.has_flag(iflag::ENCRYPT) {
            return Err(Error::corrupt(format!(
                "{what}: not a regular file in use (mode {:o}, {} links)",
                inode.mode(),
                inode.links()
            )));
        }
        let bs = self.block_size() as u64;
        let size = inode.size_with(true);
        if size / bs < MIN_JOURNAL_BLOCKS && (from_backup || self.needs_recovery()) {
            return Err(Error::corrupt(format!(
                "{what}: the journal is {} blocks long, less than the least of {MIN_JOURNAL_BLOCKS}",
                size / bs
            )));
        }
        let view = JournalView::new(self, Some(&inode));
        let journal = Journal::open(
            &view,
            ino,
            size,
            self.block_size(),
            self.superblock().blocks_count,
        )
        .map_err(|e| {
            if from_backup {
                e.at("the superblock's backup of the journal inode")
            } else {
                e
            }
        })?;
        // A replay reads the whole journal: check its map first, so that
        // a damaged map sends us to the backup as it sends e2fsck.
        if from_backup || self.needs_recovery() {
            let want = size / bs;
            let runs = self.block_runs(&inode, want)?;
            let mut next = 0u64;
            for r in &runs {
                let inside = r.pblk >= self.superblock().first_data_block as u64
                    && r.pblk + r.len <= self.superblock().blocks_count;
                if r.lblk != next || r.uninit || !inside {
                    break;
                }
                next = r.lblk + r.len;
            }
            if next < want {
                return Err(Error::corrupt(format!(
                    "{what}: journal block {next} is not mapped inside the file system"
                )));
            }
        }
        Ok(Located {
            journal,
            inode,
            from_backup,
        })
    }
}

impl Filesystem {
    /// The inode table block holding the journal inode, with the inode
    /// rebuilt from the superblock's backup written into it (its
    /// `i_blocks` counted from the map, so that e2fsck finds it right;
    /// e2fsck itself leaves it 0).
    pub(crate) fn restored_journal_inode_block(&self) -> Result<(u64, Vec<u8>)> {
        let Some(inode) = self
            .journal_inode
            .as_ref()
            .filter(|_| self.journal_from_backup)
        else {
            return Err(Error::corrupt("journal: no rebuilt journal inode to write"));
        };
        if self
            .superblock()
            .has_ro_compat(feature::RO_COMPAT_METADATA_CSUM)
        {
            return Err(Error::Unsupported(format!(
                "journal inode {}: rebuilding a damaged journal inode from the superblock's backup is not supported with metadata_csum yet; run e2fsck",
                inode.ino
            )));
        }
        let mut inode = inode.clone();
        let mut set = crate::bmap::BlockSet::new(self.superblock().blocks_count);
        self.mark_map_blocks(&inode, &mut set)?;
        inode.set_sectors(set.count() * (self.block_size() as u64 / 512));
        let (blk, off) = self.inode_location(inode.ino)?;
        let mut data = self.block(blk)?;
        data[off..off + 128].copy_from_slice(&inode.raw()[..128]);
        Ok((blk, data))
    }
}

impl Filesystem {
    /// Keep the journal found by [`Self::load_journal`].
    pub(super) fn set_journal(&mut self, j: Option<Located>) {
        match j {
            Some(l) => {
                self.journal = Some(l.journal);
                self.journal_inode = Some(l.inode);
                self.journal_from_backup = l.from_backup;
            }
            None => {
                self.journal = None;
                self.journal_inode = None;
                self.journal_from_backup = false;
            }
        }
    }

    /// The journal's view of this file system (blocks through the overlay,
    /// the journal's block map).
    pub(super) fn jview(&self) -> JournalView<'_> {
        JournalView::new(self, self.journal_inode.as_ref())
    }
}
