//! The undo of writes made before a commit point: the old content of every
//! block written early (and, in an undoable change, of every intermediate
//! commit), put back byte for byte when a change is abandoned.

use super::*;

/// The previous content of blocks written before the commit point: runs of
/// (first block, count, where the old bytes are in the spool file, or
/// `None` when they were all zeros).
#[derive(Default)]
pub(super) struct Undo {
    pub(super) runs: Vec<(u64, u64, Option<u64>)>,
    pub(super) spool: Option<std::fs::File>,
    /// The saved content while it is small (up to [`UNDO_IN_MEMORY`]); past
    /// that it moves to `spool`.
    pub(super) mem: Vec<u8>,
    pub(super) spooled: u64,
    /// Blocks whose previous content is already saved: only the oldest
    /// copy counts (a multi-commit change writes some blocks, the journal
    /// and the superblock, at every commit).
    pub(super) saved: BlockSet,
}

/// How much previous content is kept in memory before it goes to a file
/// in `$TMPDIR` (a small change then creates no file at all).
const UNDO_IN_MEMORY: usize = 4 << 20;

/// An intermediate commit of an undoable change failed and the change was
/// put back: say so instead of the state the failed commit left.
pub(super) fn put_back(e: Error, restored: Result<()>) -> Error {
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

impl Filesystem {
    /// Write staged new-data blocks to the image now. They are free on disk
    /// (we never reuse a block freed in the same transaction), so the image
    /// still describes the old filesystem.
    /// Remember what `blocks` hold now, before they are written ahead of
    /// the commit point. Zeros (free blocks of a fresh or sparse image) are
    /// only noted, without reading a run the device knows to be a hole;
    /// anything else is kept in memory, or past 4 MiB in an anonymous
    /// file in `$TMPDIR`.
    pub(super) fn save_undo(&mut self, blocks: &[u64]) -> Result<()> {
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
            let at = self.undo.spooled;
            if self.undo.spool.is_none() && self.undo.mem.len() + buf.len() <= UNDO_IN_MEMORY {
                self.undo.mem.extend_from_slice(&buf);
                self.undo.spooled += buf.len() as u64;
                self.undo.runs.push((first, n, Some(at)));
                continue;
            }
            if self.undo.spool.is_none() {
                let mut f = tempfile::tempfile().map_err(|e| {
                    Error::io(
                        "creating a file in $TMPDIR for the blocks' previous content",
                        e,
                    )
                })?;
                f.write_all(&self.undo.mem)
                    .map_err(|e| Error::io("saving the blocks' previous content in $TMPDIR", e))?;
                self.undo.mem = Vec::new();
                self.undo.spool = Some(f);
            }
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
    pub(super) fn restore_undo(&mut self) -> Result<()> {
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
                    } else {
                        let (at, len) = (at as usize, buf.len());
                        buf.copy_from_slice(&undo.mem[at..at + len]);
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
    pub(super) fn forget_undo(&mut self) {
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
}
