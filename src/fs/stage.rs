//! The overlay: every changed block is staged here until commit; reads go
//! through it. New data blocks of large writes may go out early (to blocks
//! free on disk).

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    /// Metadata, or an existing block changed in place: written at commit.
    Meta,
    /// A block allocated in this transaction: may be written early.
    NewData,
}

pub(super) struct Staged {
    pub(super) data: Box<[u8]>,
    pub(super) kind: Kind,
}

/// Staged new-data bytes above which they are written out early: this
/// bounds the memory a large write needs, whatever the size of the data.
pub(super) const SPILL_LIMIT: usize = 8 << 20;

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

impl Filesystem {
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

    pub(super) fn stage(&mut self, b: u64, kind: Kind) -> Result<&mut Staged> {
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

    pub(super) fn spill_data(&mut self) -> Result<()> {
        let mut blocks: Vec<u64> = self
            .overlay
            .iter()
            .filter(|(_, s)| s.kind == Kind::NewData)
            .map(|(b, _)| *b)
            .collect();
        blocks.sort_unstable();
        // New metadata blocks among them (directory, htree, extent tree,
        // xattr blocks) get their checksums now: they leave the overlay.
        self.set_role_checksums(&blocks)?;
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

    /// True if anything is staged.
    pub fn is_dirty(&self) -> bool {
        !self.overlay.is_empty()
            || self.sb_dirty
            || !self.dirty_groups.is_empty()
            || self.recovery.is_some()
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
}
