//! The block map: which physical block holds each logical block of a file.
//!
//! One interface over both on-disk schemes, so callers never ask which one
//! an inode uses:
//!
//! * **Indirect blocks** (ext2/ext3). `i_block[0..12]` point at the first 12
//!   data blocks; `i_block[12]` at a block of pointers (single indirect),
//!   `i_block[13]` at a block of pointers to pointer blocks (double), and
//!   `i_block[14]` one level deeper (triple). A pointer of 0 is a hole.
//! * **Extents** (ext4). `i_block` holds a 12-byte header (magic `0xF30A`,
//!   entry count, capacity, depth) and up to four 12-byte entries. At depth
//!   0 the entries are leaves `(logical block, length, physical start)`;
//!   above, they are indexes `(logical block, child node block)`. A leaf
//!   length above 32768 marks an unwritten (preallocated) extent that reads
//!   as zeros.
//!
//! Reading works for both, and so does changing the map: indirect blocks
//! here, extent trees in [`crate::extent`] (dispatched from here).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::Inode;
use crate::layout::{iflag, le16, le32, FileType};

/// A run of mapped blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First logical block.
    pub lblk: u64,
    /// First physical block.
    pub pblk: u64,
    /// Number of blocks.
    pub len: u64,
    /// An unwritten extent (reads as zeros).
    pub uninit: bool,
}

const EXT_MAGIC: u16 = 0xF30A;

fn push_run(out: &mut Vec<Run>, lblk: u64, pblk: u64, len: u64, uninit: bool) {
    if let Some(last) = out.last_mut() {
        if last.lblk + last.len == lblk && last.pblk + last.len == pblk && last.uninit == uninit {
            last.len += len;
            return;
        }
    }
    out.push(Run {
        lblk,
        pblk,
        len,
        uninit,
    });
}

/// Where a walk of the block map puts what it finds. In checked mode it
/// also records every physical block the map uses (data, indirect blocks,
/// extent tree nodes) and refuses one used twice: a map that repeats a
/// block is corrupt, and for a directory it would multiply its entries
/// without bound. The walk then costs what the image really holds.
pub(crate) struct RunSink {
    ino: u32,
    runs: Vec<Run>,
    /// Physical ranges seen so far (start -> length), disjoint.
    taken: Option<BTreeMap<u64, u64>>,
    /// Or, for a walk over many inodes, every block seen so far by any of
    /// them, one bit each ([`Filesystem::mark_map_blocks`]).
    set: Option<BlockSet>,
    /// How the inode is named in errors ("inode", "directory inode").
    what: &'static str,
}

/// A set of physical blocks, one bit per block of the file system (32 GiB
/// of 4 KiB blocks take 1 MiB).
#[derive(Clone, Debug, Default)]
pub struct BlockSet {
    words: Vec<u64>,
    len: u64,
}

impl BlockSet {
    /// An empty set for blocks `0..len`.
    pub fn new(len: u64) -> Self {
        BlockSet {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    /// How many blocks the set holds.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// True if block `b` is in the set.
    pub fn contains(&self, b: u64) -> bool {
        b < self.len && self.words[(b / 64) as usize] & (1 << (b % 64)) != 0
    }

    /// Add blocks `start..start + n` (clipped to the set's range).
    pub fn insert(&mut self, start: u64, n: u64) {
        let end = start.saturating_add(n).min(self.len);
        let mut b = start;
        while b < end {
            if b.is_multiple_of(64) && end - b >= 64 {
                self.words[(b / 64) as usize] = u64::MAX;
                b += 64;
            } else {
                self.words[(b / 64) as usize] |= 1 << (b % 64);
                b += 1;
            }
        }
    }

    /// Add blocks `start..start + n`, or return the first of them already
    /// in the set (the set is then left partly updated).
    pub fn insert_new(&mut self, start: u64, n: u64) -> std::result::Result<(), u64> {
        let end = start.saturating_add(n).min(self.len);
        let mut b = start;
        while b < end {
            let w = &mut self.words[(b / 64) as usize];
            if b.is_multiple_of(64) && end - b >= 64 {
                if *w != 0 {
                    return Err(b + w.trailing_zeros() as u64);
                }
                *w = u64::MAX;
                b += 64;
            } else {
                if *w & (1 << (b % 64)) != 0 {
                    return Err(b);
                }
                *w |= 1 << (b % 64);
                b += 1;
            }
        }
        Ok(())
    }
}

impl RunSink {
    fn new(ino: u32) -> Self {
        RunSink {
            ino,
            runs: Vec::new(),
            taken: None,
            set: None,
            what: "inode",
        }
    }

    fn checked(ino: u32, what: &'static str) -> Self {
        RunSink {
            ino,
            runs: Vec::new(),
            taken: Some(BTreeMap::new()),
            set: None,
            what,
        }
    }

    /// Record physical blocks `pblk..pblk + len` as used by the map.
    fn take(&mut self, pblk: u64, len: u64) -> Result<()> {
        if let Some(set) = &mut self.set {
            return set.insert_new(pblk, len).map_err(|b| {
                Error::corrupt(format!(
                    "{} {} maps block {b}, which it or another inode already uses",
                    self.what, self.ino
                ))
            });
        }
        let Some(t) = &mut self.taken else {
            return Ok(());
        };
        if let Some((&s, &l)) = t.range(..pblk + len).next_back() {
            if s + l > pblk {
                return Err(Error::corrupt(format!(
                    "{} {} maps block {} twice",
                    self.what,
                    self.ino,
                    s.max(pblk)
                )));
            }
        }
        t.insert(pblk, len);
        Ok(())
    }

    fn push(&mut self, lblk: u64, pblk: u64, len: u64, uninit: bool) -> Result<()> {
        self.take(pblk, len)?;
        push_run(&mut self.runs, lblk, pblk, len, uninit);
        Ok(())
    }
}

impl Filesystem {
    fn ptrs_per_block(&self) -> u64 {
        self.block_size() as u64 / 4
    }

    /// The largest logical block count an indirect-mapped file can have.
    pub fn max_indirect_blocks(&self) -> u64 {
        let a = self.ptrs_per_block();
        12 + a + a * a + a * a * a
    }

    /// The largest size a write may give the regular file `inode`: an
    /// extent-mapped file ends before logical block 2^32 - 1 (the kernel's
    /// `s_maxbytes`), an indirect-mapped one where its triple-indirect
    /// reach ends (e2fsck's limit for it; an ext4 file system's limit for
    /// extents does not apply to a file with block pointers). Without
    /// huge_file, `i_blocks` (32 bits of sectors) caps both.
    pub fn max_file_size(&self, inode: &Inode) -> u64 {
        let bs = self.block_size() as u64;
        let by_map = if inode.has_flag(iflag::EXTENTS) {
            ((1u64 << 32) - 1) * bs
        } else {
            self.max_indirect_blocks().saturating_mul(bs)
        };
        by_map.min(self.max_size_by_iblocks())
    }

    /// The largest size a file read from the image may claim: e2fsck's
    /// limits (an extent-mapped file below 2^32 blocks, one byte more
    /// than a write makes; an indirect-mapped one the reach of its map).
    pub fn max_file_size_read(&self, inode: &Inode) -> u64 {
        let bs = self.block_size() as u64;
        let by_map = if inode.has_flag(iflag::EXTENTS) {
            (1u64 << 32) * bs - 1
        } else {
            self.max_indirect_blocks().saturating_mul(bs)
        };
        by_map.min(self.max_size_by_iblocks())
    }

    fn max_size_by_iblocks(&self) -> u64 {
        // i_blocks is 32 bits of 512-byte sectors without huge_file.
        if self.huge_file() {
            i64::MAX as u64
        } else {
            ((1u64 << 32) - 1) * 512
        }
    }

    /// Physical block of logical block `lblk`, or `None` for a hole.
    pub fn bmap(&self, inode: &Inode, lblk: u64) -> Result<Option<u64>> {
        if inode.has_flag(iflag::EXTENTS) {
            let runs = self.extent_runs(inode, lblk, lblk + 1)?;
            return Ok(runs
                .iter()
                .find(|r| r.lblk <= lblk && lblk < r.lblk + r.len && !r.uninit)
                .map(|r| r.pblk + (lblk - r.lblk)));
        }
        let a = self.ptrs_per_block();
        let ino = inode.ino;
        if lblk < 12 {
            return self.ptr(inode.block(lblk as usize), ino, lblk);
        }
        let mut rest = lblk - 12;
        let mut span = 1u64;
        for level in 1..=3u32 {
            span *= a;
            if rest < span {
                let mut b = inode.block(11 + level as usize) as u64;
                let mut sub = span;
                for _ in 0..level {
                    if b == 0 {
                        return Ok(None);
                    }
                    self.check_block(b, &|| format!("inode {ino}: indirect block"))?;
                    sub /= a;
                    let idx = (rest / sub) as usize;
                    rest %= sub;
                    b = self.with_block(b, |d| le32(d, idx * 4))? as u64;
                }
                return self.ptr(b as u32, ino, lblk);
            }
            rest -= span;
        }
        Err(Error::corrupt(format!(
            "inode {ino}: logical block {lblk} is beyond the indirect map"
        )))
    }

    fn ptr(&self, p: u32, ino: u32, lblk: u64) -> Result<Option<u64>> {
        if p == 0 {
            return Ok(None);
        }
        self.check_block(p as u64, &|| format!("inode {ino}, logical block {lblk}"))?;
        Ok(Some(p as u64))
    }

    /// All mapped runs of the file below logical block `limit`, in order.
    pub fn block_runs(&self, inode: &Inode, limit: u64) -> Result<Vec<Run>> {
        let mut out = RunSink::new(inode.ino);
        self.walk_map(inode, limit, &mut out)?;
        Ok(out.runs)
    }

    /// [`Self::block_runs`], refusing a map that uses any physical block
    /// twice ("`what` N maps block B twice"). The walk stops at the first
    /// repeat, so its cost is bounded by the distinct blocks of the file.
    pub(crate) fn block_runs_distinct(
        &self,
        inode: &Inode,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<Run>> {
        let mut out = RunSink::checked(inode.ino, what);
        self.walk_map(inode, limit, &mut out)?;
        Ok(out.runs)
    }

    /// Add to `set` every physical block the map of `inode` uses: data,
    /// indirect blocks and extent tree nodes (not its xattr block). A
    /// block already in `set` is refused ("inode N maps block B, which it
    /// or another inode already uses"), so a walk over every inode marks
    /// each block once and costs what the image really holds, whatever
    /// loops a crafted map has. On error, `set` is left partly marked.
    pub fn mark_map_blocks(&self, inode: &Inode, set: &mut BlockSet) -> Result<()> {
        let mut out = RunSink::new(inode.ino);
        out.set = Some(std::mem::take(set));
        let r = self.walk_map(inode, u64::MAX, &mut out);
        *set = out.set.take().unwrap_or_default();
        r
    }

    fn walk_map(&self, inode: &Inode, limit: u64, out: &mut RunSink) -> Result<()> {
        if inode.has_flag(iflag::EXTENTS) {
            return self.walk_extents(inode, 0, limit, out);
        }
        if inode.has_flag(iflag::INLINE_DATA) || self.is_fast_symlink(inode) {
            // The content lives in the inode: i_block holds bytes, not blocks.
            return Ok(());
        }
        let mut budget = self.superblock().blocks_count;
        let ino = inode.ino;
        for i in 0..12u64.min(limit) {
            let p = inode.block(i as usize);
            if p != 0 {
                self.check_block(p as u64, &|| format!("inode {ino}, logical block {i}"))?;
                out.push(i, p as u64, 1, false)?;
            }
        }
        let a = self.ptrs_per_block();
        let mut base = 12u64;
        let mut span = 1u64;
        for level in 1..=3u32 {
            span *= a;
            if base >= limit {
                break;
            }
            let p = inode.block(11 + level as usize) as u64;
            if p != 0 {
                self.walk_indirect(ino, p, level, base, limit, out, &mut budget)?;
            }
            base += span;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_indirect(
        &self,
        ino: u32,
        blk: u64,
        level: u32,
        base: u64,
        limit: u64,
        out: &mut RunSink,
        budget: &mut u64,
    ) -> Result<()> {
        // Every block visited is charged: a corrupt map that points at the
        // same indirect block over and over ends quickly.
        if *budget == 0 {
            return Err(Error::corrupt(format!(
                "inode {ino} maps more blocks than the filesystem has"
            )));
        }
        *budget -= 1;
        self.check_block(blk, &|| {
            format!("inode {ino}: indirect block (level {level})")
        })?;
        out.take(blk, 1)?;
        let a = self.ptrs_per_block();
        let span = a.pow(level - 1);
        let data = self.block(blk)?;
        for i in 0..a {
            let lb = base + i * span;
            if lb >= limit {
                break;
            }
            let p = le32(&data, (i * 4) as usize) as u64;
            if p == 0 {
                continue;
            }
            if level == 1 {
                self.check_block(p, &|| format!("inode {ino}, logical block {lb}"))?;
                if *budget == 0 {
                    return Err(Error::corrupt(format!(
                        "inode {ino} maps more blocks than the filesystem has"
                    )));
                }
                *budget -= 1;
                out.push(lb, p, 1, false)?;
            } else {
                self.walk_indirect(ino, p, level - 1, lb, limit, out, budget)?;
            }
        }
        Ok(())
    }

    fn extent_runs(&self, inode: &Inode, from: u64, limit: u64) -> Result<Vec<Run>> {
        let mut out = RunSink::new(inode.ino);
        self.walk_extents(inode, from, limit, &mut out)?;
        Ok(out.runs)
    }

    fn walk_extents(&self, inode: &Inode, from: u64, limit: u64, out: &mut RunSink) -> Result<()> {
        let root = inode.block_bytes().to_vec();
        let mut budget = self.superblock().blocks_count;
        let gen = inode.generation();
        self.walk_extent_node(
            inode.ino,
            gen,
            &root,
            None,
            from,
            limit,
            out,
            &mut budget,
            0,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_extent_node(
        &self,
        ino: u32,
        gen: u32,
        node: &[u8],
        expect_depth: Option<u16>,
        from: u64,
        limit: u64,
        out: &mut RunSink,
        budget: &mut u64,
        nodes_seen: u32,
    ) -> Result<()> {
        let where_ = || format!("inode {ino}: extent tree");
        if le16(node, 0) != EXT_MAGIC {
            return Err(Error::corrupt(format!(
                "{}: bad node magic {:#06x}",
                where_(),
                le16(node, 0)
            )));
        }
        let entries = le16(node, 2) as usize;
        let max = le16(node, 4) as usize;
        let depth = le16(node, 6);
        if entries > max || 12 + entries * 12 > node.len() {
            return Err(Error::corrupt(format!(
                "{}: node claims {entries} entries (room for {max})",
                where_()
            )));
        }
        if depth > 5 || expect_depth.is_some_and(|d| d != depth) {
            return Err(Error::corrupt(format!(
                "{}: bad node depth {depth}",
                where_()
            )));
        }
        if nodes_seen > 100_000 {
            return Err(Error::corrupt(format!("{}: too many nodes", where_())));
        }
        for i in 0..entries {
            let e = &node[12 + i * 12..24 + i * 12];
            let lblk = le32(e, 0) as u64;
            if depth == 0 {
                let raw_len = le16(e, 4) as u64;
                let (len, uninit) = if raw_len > 32768 {
                    (raw_len - 32768, true)
                } else {
                    (raw_len, false)
                };
                let pblk = (le16(e, 6) as u64) << 32 | le32(e, 8) as u64;
                if len == 0 || lblk + len <= from || lblk >= limit {
                    continue;
                }
                self.check_block(pblk, &|| {
                    format!("inode {ino}: extent at logical block {lblk}")
                })?;
                self.check_block(pblk + len - 1, &|| {
                    format!("inode {ino}: extent at logical block {lblk}")
                })?;
                if *budget < len {
                    return Err(Error::corrupt(format!(
                        "inode {ino} maps more blocks than the filesystem has"
                    )));
                }
                *budget -= len;
                if let Some(last) = out.runs.last() {
                    if lblk < last.lblk + last.len {
                        return Err(Error::corrupt(format!(
                            "{}: extents overlap or are out of order at logical block {lblk}",
                            where_()
                        )));
                    }
                }
                out.push(lblk, pblk, len, uninit)?;
            } else {
                let next_lblk = if i + 1 < entries {
                    le32(node, 12 + (i + 1) * 12) as u64
                } else {
                    u64::MAX
                };
                if next_lblk <= from || lblk >= limit {
                    continue;
                }
                let child = (le16(e, 8) as u64) << 32 | le32(e, 4) as u64;
                self.check_block(child, &|| format!("inode {ino}: extent index node"))?;
                out.take(child, 1)?;
                let data = self.block(child)?;
                // metadata_csum: the node's tail checksum (inode seed).
                self.verify_block_csum(
                    child,
                    &data,
                    crate::fs::BlockRole::ExtentNode { ino, gen },
                )?;
                self.walk_extent_node(
                    ino,
                    gen,
                    &data,
                    Some(depth - 1),
                    from,
                    limit,
                    out,
                    budget,
                    nodes_seen + 1,
                )?;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Changing the map (indirect blocks).

    fn refuse_inline(&self, inode: &Inode) -> Result<()> {
        if inode.has_flag(iflag::INLINE_DATA) {
            return Err(Error::Unsupported(format!(
                "inode {}: changing inline-data files is not supported yet",
                inode.ino
            )));
        }
        Ok(())
    }

    fn sectors_per_block(&self) -> u64 {
        self.block_size() as u64 / 512
    }

    /// Allocate data blocks for logical blocks `lblk..lblk + want` near
    /// `*goal` and map them: one contiguous run, perhaps shorter than
    /// `want`. Returns (first physical block, count); the caller writes the
    /// data and asks again for the rest. An extent-mapped inode gets the
    /// run as one extent (merged with its neighbour where it follows on);
    /// an indirect one gets one block per call.
    pub fn map_new_run(
        &mut self,
        inode: &mut Inode,
        lblk: u64,
        want: u64,
        goal: &mut u64,
    ) -> Result<(u64, u64)> {
        self.refuse_inline(inode)?;
        if inode.has_flag(iflag::EXTENTS) {
            return self.ext_map_new_run(inode, lblk, want, goal);
        }
        Ok((self.map_new_block(inode, lblk, goal)?, 1))
    }

    /// Allocate a data block for logical block `lblk` (and any indirect
    /// block the path needs), near `*goal`; map it and return it. `*goal`
    /// moves past what was allocated. The caller writes the data.
    pub fn map_new_block(&mut self, inode: &mut Inode, lblk: u64, goal: &mut u64) -> Result<u64> {
        self.refuse_inline(inode)?;
        if inode.has_flag(iflag::EXTENTS) {
            return Ok(self.ext_map_new_run(inode, lblk, 1, goal)?.0);
        }
        if lblk >= self.max_indirect_blocks() {
            return Err(Error::Invalid(format!(
                "inode {}: logical block {lblk} is beyond the largest file this filesystem can map",
                inode.ino
            )));
        }
        let spb = self.sectors_per_block();
        let a = self.ptrs_per_block();
        let alloc = |fs: &mut Filesystem, goal: &mut u64| -> Result<u64> {
            // Indirect maps hold 32-bit block numbers.
            let b = fs.alloc_block_32(*goal)?;
            *goal = b + 1;
            Ok(b)
        };
        if lblk < 12 {
            if inode.block(lblk as usize) != 0 {
                return Err(Error::corrupt(format!(
                    "inode {}: logical block {lblk} is already mapped",
                    inode.ino
                )));
            }
            let b = alloc(self, goal)?;
            inode.set_block(lblk as usize, b as u32);
            self.add_inode_sectors(inode, spb as i64)?;
            return Ok(b);
        }
        let mut rest = lblk - 12;
        let mut span = 1u64;
        let mut level = 1u32;
        loop {
            span *= a;
            if rest < span {
                break;
            }
            rest -= span;
            level += 1;
        }
        // Top pointer in the inode.
        let slot = 11 + level as usize;
        let mut cur = inode.block(slot) as u64;
        if cur == 0 {
            cur = alloc(self, goal)?;
            self.write_meta_block(cur, &vec![0u8; self.block_size()])?;
            inode.set_block(slot, cur as u32);
            self.add_inode_sectors(inode, spb as i64)?;
        }
        let mut sub = span;
        for depth in 0..level {
            sub /= a;
            let idx = (rest / sub) as usize;
            rest %= sub;
            let last = depth + 1 == level;
            let existing = self.with_block(cur, |d| le32(d, idx * 4))? as u64;
            if last {
                if existing != 0 {
                    return Err(Error::corrupt(format!(
                        "inode {}: logical block {lblk} is already mapped",
                        inode.ino
                    )));
                }
                let b = alloc(self, goal)?;
                self.modify_block(cur, |d| {
                    d[idx * 4..idx * 4 + 4].copy_from_slice(&(b as u32).to_le_bytes())
                })?;
                self.add_inode_sectors(inode, spb as i64)?;
                return Ok(b);
            }
            if existing == 0 {
                let nb = alloc(self, goal)?;
                self.write_meta_block(nb, &vec![0u8; self.block_size()])?;
                self.modify_block(cur, |d| {
                    d[idx * 4..idx * 4 + 4].copy_from_slice(&(nb as u32).to_le_bytes())
                })?;
                self.add_inode_sectors(inode, spb as i64)?;
                cur = nb;
            } else {
                self.check_block(existing, &|| format!("inode {}: indirect block", inode.ino))?;
                cur = existing;
            }
        }
        unreachable!("the loop returns at the last level")
    }

    /// Free every block mapped at logical block `keep` or beyond, and the
    /// indirect blocks that no longer map anything. Updates `i_blocks`; the
    /// caller sets the size and writes the inode.
    pub fn truncate_blocks(&mut self, inode: &mut Inode, keep: u64) -> Result<()> {
        // Only regular files, directories and slow symlinks map blocks:
        // device nodes keep their device number in i_block.
        let maps_blocks = match inode.file_type() {
            FileType::Regular | FileType::Directory => true,
            FileType::Symlink => self.inode_sectors(inode) > self.xattr_sectors(inode),
            _ => false,
        };
        if !maps_blocks || inode.has_flag(iflag::INLINE_DATA) {
            return Ok(());
        }
        if inode.has_flag(iflag::EXTENTS) {
            return self.ext_truncate(inode, keep);
        }
        let mut freed: Vec<u64> = Vec::new();
        let mut visits = 0u64;
        for i in keep.min(12)..12 {
            let p = inode.block(i as usize) as u64;
            if p != 0 {
                self.check_block(p, &|| format!("inode {}: block {i}", inode.ino))?;
                freed.push(p);
                inode.set_block(i as usize, 0);
            }
        }
        let a = self.ptrs_per_block();
        let mut base = 12u64;
        let mut span = 1u64;
        for level in 1..=3u32 {
            span *= a;
            let slot = 11 + level as usize;
            let p = inode.block(slot) as u64;
            if p != 0
                && base + span > keep
                && self.trunc_tree(inode.ino, p, level, base, keep, &mut freed, &mut visits)?
            {
                inode.set_block(slot, 0);
            }
            base += span;
        }
        freed.sort_unstable();
        if freed.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::corrupt(format!(
                "inode {}: a block is mapped twice",
                inode.ino
            )));
        }
        let n = freed.len() as u64;
        let mut i = 0;
        while i < freed.len() {
            let mut j = i + 1;
            while j < freed.len()
                && freed[j] == freed[j - 1] + 1
                && self.block_group(freed[j]) == self.block_group(freed[i])
            {
                j += 1;
            }
            self.free_blocks_run(freed[i], (j - i) as u32)?;
            i = j;
        }
        self.add_inode_sectors(inode, -((n * self.sectors_per_block()) as i64))?;
        Ok(())
    }

    /// Returns true when the whole subtree at `blk` was freed.
    #[allow(clippy::too_many_arguments)]
    fn trunc_tree(
        &mut self,
        ino: u32,
        blk: u64,
        level: u32,
        base: u64,
        keep: u64,
        freed: &mut Vec<u64>,
        visits: &mut u64,
    ) -> Result<bool> {
        self.check_block(blk, &|| format!("inode {ino}: indirect block"))?;
        *visits += 1;
        if freed.len() as u64 > self.superblock().blocks_count
            || *visits > self.superblock().blocks_count
        {
            return Err(Error::corrupt(format!(
                "inode {ino} maps more blocks than the filesystem has"
            )));
        }
        let a = self.ptrs_per_block();
        let span = a.pow(level - 1);
        let data = self.block(blk)?;
        let mut cleared = Vec::new();
        for i in 0..a {
            let lb = base + i * span;
            if lb + span <= keep {
                continue;
            }
            let p = le32(&data, (i * 4) as usize) as u64;
            if p == 0 {
                continue;
            }
            if level == 1 {
                self.check_block(p, &|| format!("inode {ino}, logical block {lb}"))?;
                freed.push(p);
                cleared.push(i);
            } else if self.trunc_tree(ino, p, level - 1, lb, keep, freed, visits)? {
                cleared.push(i);
            }
        }
        if base >= keep {
            freed.push(blk);
            return Ok(true);
        }
        if !cleared.is_empty() {
            self.modify_block(blk, |d| {
                for i in cleared {
                    d[(i * 4) as usize..(i * 4 + 4) as usize].fill(0);
                }
            })?;
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::BlockSet;

    #[test]
    fn block_set_marks_ranges_and_finds_the_first_repeat() {
        let mut s = BlockSet::new(300);
        assert_eq!(s.insert_new(10, 150), Ok(()));
        assert!(s.contains(10) && s.contains(159) && !s.contains(9) && !s.contains(160));
        // A repeat inside a whole word, and one at a range's edge.
        assert_eq!(s.insert_new(128, 64), Err(128));
        assert_eq!(s.insert_new(0, 64), Err(10));
        assert_eq!(s.insert_new(160, 40), Ok(()));
        assert_eq!(s.insert_new(199, 1), Err(199));
        s.insert(250, 1000);
        assert!(s.contains(299) && !s.contains(300) && !s.contains(249));
        assert_eq!(s.insert_new(290, 5), Err(290));
    }
}
