//! Allocation. `find_*` searches bitmaps without side effects; `record_*`
//! updates bitmap, group counts and superblock counts together.
//!
//! With uninit_bg (or metadata_csum), a BLOCK_UNINIT group's on-disk block
//! bitmap is not valid: searches read the bitmap the layout implies
//! ([`Filesystem::computed_block_bitmap`]), and the first change to the
//! group stages it and clears the flag. An INODE_UNINIT group has every
//! inode free; its first allocation stages a zeroed inode bitmap. The
//! never-used tail of an inode table (bg_itable_unused) is lowered as
//! inodes are allocated in it, never raised. With flex_bg, directories are
//! spread over flex groups and a file's data starts in its inode's flex
//! group. Indirect block maps get blocks below 2^32 only.

use super::*;
use crate::layout::bgflag;

impl Filesystem {
    /// Free blocks we can still hand out in this transaction.
    pub fn free_blocks(&self) -> u64 {
        self.sb.free_blocks()
    }

    /// Free inodes.
    pub fn free_inodes(&self) -> u32 {
        self.sb.free_inodes()
    }

    pub(super) fn bitmap_block(&self, g: u32, inode: bool) -> Result<u64> {
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
        self.verify_bitmap_csum(g, inode, b)?;
        Ok(b)
    }

    /// True when group `g`'s block bitmap is not initialised on disk
    /// (BLOCK_UNINIT, with uninit_bg or metadata_csum).
    pub(super) fn block_uninit(&self, g: u32) -> bool {
        self.sb.uninit_groups() && self.groups[g as usize].has_flag(bgflag::BLOCK_UNINIT)
    }

    /// True when group `g`'s inode bitmap is not initialised on disk
    /// (INODE_UNINIT): every inode of the group is free.
    pub(super) fn inode_uninit(&self, g: u32) -> bool {
        self.sb.uninit_groups() && self.groups[g as usize].has_flag(bgflag::INODE_UNINIT)
    }

    /// The block bitmap of a BLOCK_UNINIT group, as the layout makes it:
    /// the superblock backup, descriptor table and reserved GDT blocks
    /// when the group has a superblock copy, and every group's bitmaps
    /// and inode table that lie inside it (with flex_bg, other groups'
    /// too); the bits past the group's last block set. Its free count must
    /// be the descriptor's, else the group is refused.
    pub(super) fn computed_block_bitmap(&self, g: u32) -> Result<Vec<u8>> {
        if self.sb.has_incompat(feature::INCOMPAT_META_BG) {
            return Err(Error::Unsupported(format!(
                "group {g}: block bitmaps of uninitialised groups with meta_bg are not supported"
            )));
        }
        let bits = self.bs * 8;
        let mut bm = vec![0u8; self.bs];
        let first = self.sb.group_first_block(g);
        let n = self.sb.group_blocks(g) as u64;
        let mut mark = |start: u64, len: u64| {
            let s = start.max(first);
            let e = start.saturating_add(len).min(first + n);
            for b in s..e.max(s) {
                let i = (b - first) as usize;
                bm[i / 8] |= 1 << (i % 8);
            }
        };
        if self.sb.group_has_super(g) {
            mark(
                first,
                1 + self.sb.gdt_blocks() + self.sb.reserved_gdt_blocks() as u64,
            );
        }
        for gd in &self.groups {
            mark(gd.block_bitmap(), 1);
            mark(gd.inode_bitmap(), 1);
            mark(gd.inode_table(), self.itable_blocks);
        }
        for i in n as usize..bits {
            bm[i / 8] |= 1 << (i % 8);
        }
        let free = (0..n as usize)
            .filter(|&i| bm[i / 8] & (1 << (i % 8)) == 0)
            .count() as u64;
        let want = self.groups[g as usize].free_blocks() as u64;
        if free != want {
            return Err(Error::corrupt(format!(
                "group {g}: its block bitmap is not initialised (BLOCK_UNINIT) and its metadata leaves {free} blocks free, but the descriptor counts {want}; run e2fsck"
            )));
        }
        Ok(bm)
    }

    /// Run `f` on group `g`'s block bitmap: the staged or on-disk block,
    /// or the computed one of a BLOCK_UNINIT group.
    pub(super) fn with_block_bitmap<R>(&self, g: u32, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        if self.block_uninit(g) {
            let bm = self.computed_block_bitmap(g)?;
            return Ok(f(&bm));
        }
        let bmb = self.bitmap_block(g, false)?;
        self.with_block(bmb, f)
    }

    /// Before the first change to group `g`'s block bitmap: a BLOCK_UNINIT
    /// group gets its computed bitmap staged and the flag cleared.
    pub(super) fn init_block_bitmap(&mut self, g: u32) -> Result<()> {
        if !self.block_uninit(g) {
            return Ok(());
        }
        let bm = self.computed_block_bitmap(g)?;
        let bmb = self.bitmap_block(g, false)?;
        self.write_meta_block(bmb, &bm)?;
        self.groups[g as usize].clear_flag(bgflag::BLOCK_UNINIT);
        self.dirty_groups.insert(g);
        Ok(())
    }

    /// Before the first change to group `g`'s inode bitmap: an
    /// INODE_UNINIT group gets a zeroed bitmap staged (the padding bits
    /// past inodes_per_group set, as e2fsck writes them) and the flag
    /// cleared.
    pub(super) fn init_inode_bitmap(&mut self, g: u32) -> Result<()> {
        if !self.inode_uninit(g) {
            return Ok(());
        }
        let mut bm = vec![0u8; self.bs];
        for i in self.sb.inodes_per_group as usize..self.bs * 8 {
            bm[i / 8] |= 1 << (i % 8);
        }
        let ibm = self.bitmap_block(g, true)?;
        self.write_meta_block(ibm, &bm)?;
        self.groups[g as usize].clear_flag(bgflag::INODE_UNINIT);
        self.dirty_groups.insert(g);
        Ok(())
    }

    /// Find up to `want` contiguous free blocks below `limit`, searching
    /// from `goal` and wrapping around. Returns (first, count).
    pub(super) fn find_blocks_below(
        &self,
        goal: u64,
        want: u32,
        limit: u64,
    ) -> Result<Option<(u64, u32)>> {
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
            if first >= limit {
                continue;
            }
            // Blocks at or past `limit` are not looked at.
            let n = n.min((limit - first).min(u32::MAX as u64) as u32);
            let end = end.min(n);
            let found = self.with_block_bitmap(g, |bitmap| {
                self.scan_bitmap(bitmap, first, start, end, n, want)
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    pub(super) fn scan_bitmap(
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

    pub(super) fn record_blocks(&mut self, first: u64, count: u32, alloc: bool) -> Result<()> {
        let g = self.block_group(first);
        let gfirst = self.sb.group_first_block(g);
        self.init_block_bitmap(g)?;
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
        self.alloc_blocks_below(goal, want, u64::MAX)
    }

    /// [`Self::alloc_blocks`] among blocks below `limit` only (block maps
    /// of indirect blocks hold 32-bit numbers: `1 << 32`).
    pub fn alloc_blocks_below(&mut self, goal: u64, want: u32, limit: u64) -> Result<(u64, u32)> {
        self.ensure_writable()?;
        match self.find_blocks_below(goal, want.max(1), limit)? {
            Some((b, n)) => {
                if let Some(m) = self.meta_block_in(b, n as u64) {
                    return Err(Error::corrupt(format!(
                        "block {m} is file system metadata (superblock, descriptors, bitmap or inode table) but its group's block bitmap says it is free; run e2fsck"
                    )));
                }
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

    /// Allocate one block near `goal` that an indirect block map can hold
    /// (below 2^32: on a 64bit file system larger blocks are for extents).
    pub fn alloc_block_32(&mut self, goal: u64) -> Result<u64> {
        let goal = if goal >= 1 << 32 { 0 } else { goal };
        match self.alloc_blocks_below(goal, 1, 1 << 32) {
            Err(Error::NoSpace(_)) if self.sb.blocks_count > 1 << 32 => Err(Error::NoSpace(
                "no free block below 2^32 left for a file mapped by indirect blocks".into(),
            )),
            r => Ok(r?.0),
        }
    }

    /// The fixed metadata of the layout, built at the first allocation:
    /// superblock copies with their descriptor tables and reserved GDT
    /// blocks, every group's bitmaps and inode table.
    fn meta_index(&self) -> &MetaIndex {
        self.meta_ranges.get_or_init(|| {
            let sb = &self.sb;
            let supers = (0..sb.group_count)
                .filter(|&g| sb.group_has_super(g))
                .map(|g| sb.group_first_block(g))
                .collect();
            let kind = |f: fn(&super::GroupDesc) -> u64| -> Vec<u64> {
                let mut v: Vec<u64> = self.groups.iter().map(f).collect();
                // In order in mke2fs's layouts (flex_bg too): a check, not
                // a sort, unless the layout was moved.
                if !v.is_sorted() {
                    v.sort_unstable();
                }
                v
            };
            MetaIndex {
                kinds: [
                    (
                        supers,
                        1 + sb.gdt_blocks() + sb.reserved_gdt_blocks() as u64,
                    ),
                    (kind(|g| g.block_bitmap()), 1),
                    (kind(|g| g.inode_bitmap()), 1),
                    (kind(|g| g.inode_table()), self.itable_blocks.max(1)),
                ],
            }
        })
    }

    /// The first block of `first..first + count` that is fixed metadata.
    fn meta_block_in(&self, first: u64, count: u64) -> Option<u64> {
        self.meta_index().first_in(first, first + count)
    }

    /// Free `count` blocks starting at `first` (inside one group).
    pub fn free_blocks_run(&mut self, first: u64, count: u32) -> Result<()> {
        self.ensure_writable()?;
        // A block map (corrupt) that names the superblock, a bitmap or an
        // inode table must not free it: the next allocation would write
        // file data over the file system's own structures.
        if let Some(b) = self.meta_block_in(first, count as u64) {
            return Err(Error::corrupt(format!(
                "block {b} is file system metadata (superblock, descriptors, bitmap or inode table), yet a file maps it; run e2fsck"
            )));
        }
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

    /// The group a new inode goes to: a directory to a group (with
    /// flex_bg, a flex group) with at least average free inodes and
    /// blocks and the fewest directories, searching from the parent's;
    /// anything else to the parent's group or the next one with a free
    /// inode.
    pub(super) fn pick_inode_group(&self, parent: Ino, dir: bool) -> Option<u32> {
        let n = self.sb.group_count;
        let pg = self.inode_group(parent).min(n - 1);
        if dir {
            let flex = self.sb.flex_size().min(n).max(1);
            let nflex = n.div_ceil(flex);
            // (free inodes, free blocks, directories) per flex group.
            let mut agg = vec![(0u64, 0u64, 0u64); nflex as usize];
            for (g, gd) in self.groups.iter().enumerate() {
                let a = &mut agg[g / flex as usize];
                a.0 += gd.free_inodes() as u64;
                a.1 += gd.free_blocks() as u64;
                a.2 += gd.used_dirs() as u64;
            }
            let avg_fi = agg.iter().map(|a| a.0).sum::<u64>() / nflex as u64;
            let avg_fb = agg.iter().map(|a| a.1).sum::<u64>() / nflex as u64;
            let pf = pg / flex;
            let mut best: Option<(u32, u64)> = None;
            for i in 0..nflex {
                let f = (pf + i) % nflex;
                let (fi, fb, dirs) = agg[f as usize];
                if fi == 0 || fi < avg_fi || fb < avg_fb {
                    continue;
                }
                if best.is_none_or(|(_, d)| dirs < d) {
                    best = Some((f, dirs));
                }
            }
            if let Some((f, _)) = best {
                // Within the flex group: the group with free inodes and the
                // fewest directories.
                let groups = f * flex..((f + 1) * flex).min(n);
                if let Some(g) = groups
                    .filter(|&g| self.groups[g as usize].free_inodes() > 0)
                    .min_by_key(|&g| self.groups[g as usize].used_dirs())
                {
                    return Some(g);
                }
            }
        }
        (0..n)
            .map(|i| (pg + i) % n)
            .find(|&g| self.groups[g as usize].free_inodes() > 0)
    }

    /// Allocate an inode number for a new file (near `parent`).
    ///
    /// With uninit_bg: an INODE_UNINIT group gets its bitmap initialised;
    /// bg_itable_unused (the never-used tail of the table, which e2fsck
    /// does not read) is lowered so that it starts after the inode, and
    /// when the table is not known to be zeroed, inodes between the old
    /// and the new start of the tail are zeroed (the new inode itself is
    /// written whole by its creator).
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
                let found = if self.inode_uninit(g) {
                    // Every inode is free; the on-disk bitmap is not read.
                    Some(hint.min(ipg - 1))
                } else {
                    self.with_block(bm, |b| find(b, hint).or_else(|| find(b, first_ok)))?
                };
                if let Some(i) = found {
                    self.init_inode_bitmap(g)?;
                    let was = self.modify_block(bm, |b| {
                        let m = 1u8 << (i % 8);
                        let was = b[(i / 8) as usize] & m != 0;
                        b[(i / 8) as usize] |= m;
                        was
                    })?;
                    if was {
                        return Err(Error::corrupt(format!(
                            "group {g}: inode {} is already marked in use",
                            g * ipg + i + 1
                        )));
                    }
                    self.ialloc_hint.insert(g, i + 1);
                    self.lower_itable_unused(g, i)?;
                    let gd = &mut self.groups[g as usize];
                    gd.set_free_inodes(gd.free_inodes() - 1);
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

    /// Inode index `i` of group `g` is being allocated: e2fsck takes the
    /// inodes from ipg - bg_itable_unused on as never used (even without
    /// uninit_bg), so the unused tail must start after it. Inodes the tail
    /// gives up below `i` are zeroed when the table is not known zeroed
    /// (e2fsck reads them from now on). Freeing never raises the count
    /// (as the kernel).
    fn lower_itable_unused(&mut self, g: u32, i: u32) -> Result<()> {
        let ipg = self.sb.inodes_per_group;
        let gd = &self.groups[g as usize];
        let unused = gd.itable_unused();
        if unused == 0 {
            return Ok(());
        }
        let mark = ipg.saturating_sub(unused);
        if i < mark {
            return Ok(());
        }
        // Without uninit_bg, mke2fs writes the whole table.
        let zeroed = !self.sb.uninit_groups() || gd.has_flag(bgflag::ITABLE_ZEROED);
        if !zeroed {
            let is = self.sb.inode_size as usize;
            for j in mark..i {
                let ino = g * ipg + j + 1;
                let (blk, off) = self.inode_location(ino)?;
                self.modify_block(blk, |b| b[off..off + is].fill(0))?;
            }
        }
        let gd = &mut self.groups[g as usize];
        gd.set_itable_unused(ipg - i - 1);
        self.dirty_groups.insert(g);
        Ok(())
    }

    /// Release inode number `ino` (its blocks must be freed already).
    pub fn free_inode(&mut self, ino: Ino, was_dir: bool) -> Result<()> {
        self.ensure_writable()?;
        self.inode_location(ino)?;
        let g = self.inode_group(ino);
        let i = (ino - 1) % self.sb.inodes_per_group;
        if self.inode_uninit(g) {
            return Err(Error::corrupt(format!(
                "inode {ino} is freed but its group {g} has no inode in use (INODE_UNINIT)"
            )));
        }
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
    /// last data block we allocated when that lies in the inode's group
    /// (with flex_bg, its flex group), else at the start of that group or
    /// flex group (as the kernel does: a flex group's data starts after
    /// the metadata its first group holds).
    pub(crate) fn data_goal(&self, ino: Ino) -> u64 {
        let flex = self.sb.flex_size().max(1);
        let g = self.inode_group(ino).min(self.sb.group_count - 1) / flex * flex;
        match self.last_data {
            Some(b) if self.block_group(b) / flex * flex == g => b,
            _ => self.sb.group_first_block(g),
        }
    }

    pub(crate) fn set_data_goal(&mut self, b: u64) {
        self.last_data = Some(b);
    }
}

/// Where the fixed metadata lies: per kind, the sorted first blocks of its
/// extents and their common length (one length per kind, so their ends
/// are in order too).
#[derive(Debug, Default)]
pub(crate) struct MetaIndex {
    kinds: [(Vec<u64>, u64); 4],
}

impl MetaIndex {
    /// The first metadata block in `first..end`.
    fn first_in(&self, first: u64, end: u64) -> Option<u64> {
        self.kinds
            .iter()
            .filter_map(|(starts, len)| {
                // The first extent that ends after `first` (ends are in
                // order: one length per kind).
                let i = starts.partition_point(|&s| s.saturating_add(*len) <= first);
                let s = *starts.get(i)?;
                (s < end).then(|| s.max(first))
            })
            .min()
    }
}

#[cfg(test)]
mod meta_index_tests {
    use super::MetaIndex;

    #[test]
    fn first_metadata_block_of_a_run() {
        let m = MetaIndex {
            kinds: [
                (vec![0, 32768], 3),
                (vec![10, 11], 1),
                (vec![20, 21], 1),
                (vec![30, 40], 10),
            ],
        };
        assert_eq!(m.first_in(3, 10), None);
        assert_eq!(m.first_in(3, 11), Some(10));
        assert_eq!(m.first_in(12, 20), None);
        assert_eq!(m.first_in(25, 100), Some(30));
        assert_eq!(m.first_in(45, 50), Some(45));
        assert_eq!(m.first_in(50, 32768), None);
        assert_eq!(m.first_in(32769, 32770), Some(32769));
        assert_eq!(m.first_in(32771, 40000), None);
        assert_eq!(m.first_in(0, 1), Some(0));
    }
}
