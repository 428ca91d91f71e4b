//! Commit: descriptors and superblock into their blocks, data first, then
//! the metadata through the journal (log, flush, checkpoint) or in place;
//! and rollback.

use super::*;

/// What a host write error leaves behind, for the error line.
pub(super) const STATE_UNCHANGED: &str =
    "nothing of the file system changed: only free blocks were written";
pub(super) const STATE_JOURNAL_MAYBE: &str = "the file system is unchanged unless the journal holds the transaction: `ext3edit journal replay IMAGE` (or mounting) completes it either way";
pub(super) const STATE_JOURNALED: &str =
    "the journal holds the transaction: `ext3edit journal replay IMAGE` (or mounting) completes it";
pub(super) const STATE_IN_PLACE: &str =
    "the metadata is partly written in place: the image needs e2fsck";
pub(super) const STATE_REPLAY: &str =
    "the journal replay is partly written: run `ext3edit journal replay IMAGE` again";

/// Say in an I/O error what state the image is left in.
pub(super) fn with_state(e: Error, state: &str) -> Error {
    match e {
        Error::Io { context, source } => Error::Io {
            context: format!("{context} ({state})"),
            source,
        },
        other => other,
    }
}

/// A journal transaction ready to write: its blocks with their places.
pub(super) struct Planned {
    pub(super) tid: u32,
    pub(super) placed: Vec<(u64, Vec<u8>)>,
    pub(super) after: Option<u64>,
    pub(super) jsb_block: u64,
}

/// With metadata_csum, the superblock carries a crc32c of its first 1020
/// bytes.
pub(crate) fn set_sb_csum(raw: &mut [u8]) {
    super::csum::set_superblock_csum(raw);
}

impl Filesystem {
    /// Check once that every block of the journal is mapped inside the
    /// filesystem, so that a commit cannot fail half way on a damaged
    /// journal block map after data or log blocks were written.
    pub(super) fn check_journal_map(&mut self) -> Result<()> {
        if self.journal_map_ok || !(self.use_journal && self.writable) {
            return Ok(());
        }
        let Some(j) = self.journal.as_ref() else {
            return Ok(());
        };
        let maxlen = j.sb.maxlen as u64;
        let Some(jinode) = self.journal_inode.as_ref() else {
            return Ok(());
        };
        let runs = self.block_runs(jinode, maxlen)?;
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
    pub(super) fn commit_step(&mut self, keep: bool) -> Result<()> {
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
        // Every checksum of what is staged, in one place: blocks with a
        // role, inodes, bitmaps into their descriptors, descriptors (the
        // superblock's just below).
        self.set_checksums()?;
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
        self.csum_inodes.clear();
        self.staged_data = 0;
        self.freed_blocks.clear();
        self.new_blocks.clear();
        Ok(())
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

    pub(super) fn flush(&mut self) -> Result<()> {
        self.dev
            .flush()
            .map_err(|e| Error::io("flushing the image", e))
    }

    pub(super) fn write_raw(&mut self, b: u64, data: &[u8]) -> Result<()> {
        self.dev
            .write_at(b * self.bs as u64, data)
            .map_err(|e| Error::io(format!("writing image block {b}"), e))
    }

    /// Build the journal transaction for `meta` and find where each of its
    /// blocks goes (and the block after it, and the journal superblock).
    pub(super) fn plan_transaction(&self, meta: &[u64]) -> Result<Planned> {
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
            placed.push((j.phys(&self.jview(), pos)?, data));
        }
        let after = j.sb.first + placed.len() as u32;
        let after = if after < j.sb.last() {
            Some(j.phys(&self.jview(), after)?)
        } else {
            None
        };
        Ok(Planned {
            tid,
            placed,
            after,
            jsb_block: j.phys(&self.jview(), 0)?,
        })
    }

    pub(super) fn journaled_write(
        &mut self,
        meta: &[u64],
        plan: Planned,
        keep: bool,
    ) -> Result<()> {
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
    pub(super) fn log_transaction(&mut self, plan: &Planned, in_place: &[u64]) -> Result<()> {
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
    pub(super) fn checkpoint_transaction(
        &mut self,
        meta: &[u64],
        mut jsb: crate::journal::JournalSuperblock,
    ) -> Result<()> {
        let (sbb, off) = self.sb_location();
        let tid = jsb.sequence;
        let jsb_block = self.journal.as_ref().unwrap().phys(&self.jview(), 0)?;
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
    pub(super) fn write_runs(&mut self, blocks: &[u64]) -> Result<()> {
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
        self.csum_inodes.clear();
        self.staged_data = 0;
        self.freed_blocks.clear();
        self.new_blocks.clear();
        self.dirty_groups.clear();
        self.sb_dirty = false;
        self.dir_room_hint.clear();
        self.fresh_dirs.clear();
        self.subdir_counts.clear();
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
                let j = self.load_journal()?;
                self.set_journal(j);
            }
            if self.disk_needs_recovery && self.journal.is_some() {
                self.stage_recovery()?;
            }
            self.orphan_report = None;
            if self.writable {
                self.stage_orphans()?;
            }
            return Ok(());
        }
        if self.recovery.take().is_some() {
            self.stage_recovery()?;
        }
        if self.orphan_report.take().is_some() {
            self.stage_orphans()?;
        }
        Ok(())
    }
}
