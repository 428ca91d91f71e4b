//! A journal replay staged in memory before anything is written: reads
//! see the recovered file system; the first commit (or `journal replay`)
//! writes it.

use super::*;

/// A journal replay staged in memory and not yet written to the image.
pub(super) struct Recovery {
    /// Post-replay content of the filesystem blocks it writes (the
    /// superblock block included, with needs_recovery still set).
    pub(super) blocks: BTreeMap<u64, Vec<u8>>,
    /// The journal superblock after recovery (empty log).
    pub(super) jsb: Vec<u8>,
    /// Where the journal superblock lives.
    pub(super) jsb_block: u64,
    /// What was replayed.
    pub(super) report: Replay,
    /// The superblock block once recovery is complete.
    pub(super) final_sb: Vec<u8>,
}

/// Set or clear needs_recovery in raw superblock bytes (and its checksum).
pub(super) fn patch_recover(raw: &mut [u8], on: bool) {
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

impl Filesystem {
    /// Plan the journal replay and stage it in the overlay, so that reads
    /// see the recovered filesystem; nothing is written yet.
    pub(super) fn stage_recovery(&mut self) -> Result<()> {
        let j = self.journal.as_ref().expect("journal loaded");
        let report = j.plan_replay(&self.jview())?;
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
        let jsb_block = j.phys(&self.jview(), 0)?;
        let mut blocks = report.blocks.clone();
        if self.journal_from_backup {
            // As e2fsck: the journal inode rebuilt from the superblock's
            // backup is written back first; replayed blocks win.
            let (blk, data) = self.restored_journal_inode_block()?;
            blocks.entry(blk).or_insert(data);
        }
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

    /// The superblock block as it is on disk, with needs_recovery set or
    /// cleared.
    pub(super) fn disk_sb_block(&self, recover: bool) -> Result<(u64, Vec<u8>)> {
        let (blk, off) = self.sb_location();
        let mut b = vec![0u8; self.bs];
        self.dev
            .read_at(blk * self.bs as u64, &mut b)
            .map_err(|e| Error::io("reading the superblock", e))?;
        patch_recover(&mut b[off..off + SUPERBLOCK_SIZE], recover);
        Ok((blk, b))
    }

    pub(super) fn checkpoint_recovery(&mut self, rec: &Recovery) -> Result<()> {
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
}
