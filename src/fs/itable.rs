//! Inode tables: where inode N lives, reading and writing it through the
//! overlay.

use super::*;

impl Filesystem {
    pub(crate) fn inode_location(&self, ino: Ino) -> Result<(u64, usize)> {
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
        // An inode written in this transaction gets its checksum at
        // commit; every other one is checked as read.
        if !self.csum_inodes.contains(&ino) {
            self.verify_inode_csum(&inode)?;
        }
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
        self.modify_block(blk, |b| b[off..off + raw.len()].copy_from_slice(raw))?;
        self.csum_inodes.insert(inode.ino);
        Ok(())
    }

    /// `i_blocks` of `inode` in 512-byte sectors, as this file system
    /// encodes it (huge_file: 48 bits, or file system blocks with the
    /// HUGE_FILE flag).
    pub fn inode_sectors(&self, inode: &Inode) -> u64 {
        inode.sectors(self.huge_file(), self.bs as u32)
    }

    /// Set `i_blocks` of `inode` to `v` sectors as this file system
    /// encodes it.
    pub fn set_inode_sectors(&self, inode: &mut Inode, v: u64) -> Result<()> {
        inode
            .set_sectors_fs(v, self.huge_file(), self.bs as u32)
            .map_err(Error::Invalid)
    }

    /// Add `delta` sectors to `i_blocks` of `inode` (subtract with a
    /// negative one, stopping at 0).
    pub fn add_inode_sectors(&self, inode: &mut Inode, delta: i64) -> Result<()> {
        let v = self.inode_sectors(inode);
        let nv = if delta >= 0 {
            v.saturating_add(delta as u64)
        } else {
            v.saturating_sub(delta.unsigned_abs())
        };
        self.set_inode_sectors(inode, nv)
    }

    /// Blocks of the inode table of every group (for `info`).
    pub fn inode_table_blocks(&self) -> u64 {
        self.itable_blocks
    }
}
