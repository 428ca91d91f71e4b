//! Allocation. `find_*` searches bitmaps without side effects; `record_*`
//! updates bitmap, group counts and superblock counts together.

use super::*;

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
        Ok(b)
    }

    /// Find up to `want` contiguous free blocks, searching from `goal` and
    /// wrapping around. Returns (first, count).
    pub(super) fn find_blocks(&self, goal: u64, want: u32) -> Result<Option<(u64, u32)>> {
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

    pub(super) fn pick_inode_group(&self, parent: Ino, dir: bool) -> Option<u32> {
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
}
