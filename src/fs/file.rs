//! File content: read (following the block map, holes as zeros, inline
//! data, fast symlinks), write new content, truncate.

use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::Inode;
use crate::layout::iflag;

/// Bytes read from the image in one go while copying a file out.
const READ_CHUNK: u64 = 1 << 20;

impl Filesystem {
    /// The size of a file, checked against the format's limit.
    pub fn checked_size(&self, inode: &Inode) -> Result<u64> {
        let size = inode.size_with(self.large_dir());
        if size > self.max_file_size_read(inode) {
            return Err(Error::corrupt(format!(
                "inode {}: size {size} is larger than this filesystem allows",
                inode.ino
            )));
        }
        Ok(size)
    }

    /// True for a symlink whose target is stored in `i_block` itself (no
    /// data block: under 60 bytes, and no blocks counted but an xattr block's).
    pub fn is_fast_symlink(&self, inode: &Inode) -> bool {
        inode.is_symlink()
            && !inode.has_flag(iflag::INLINE_DATA)
            && inode.size() < 60
            && inode.sectors(self.huge_file(), self.block_size() as u32)
                <= self.xattr_sectors(inode)
    }

    fn inline_bytes(&self, inode: &Inode) -> Result<Vec<u8>> {
        let mut v = inode.block_bytes().to_vec();
        for x in self.xattrs(inode)? {
            if x.name == "system.data" {
                v.extend_from_slice(&x.value);
            }
        }
        Ok(v)
    }

    /// Visit the file's content as (offset, bytes) pieces in order, holes
    /// left out. Returns the file size.
    pub fn for_each_data(
        &self,
        inode: &Inode,
        mut f: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<u64> {
        let size = self.checked_size(inode)?;
        if inode.has_flag(iflag::INLINE_DATA) || self.is_fast_symlink(inode) {
            let v = if inode.has_flag(iflag::INLINE_DATA) {
                self.inline_bytes(inode)?
            } else {
                inode.block_bytes().to_vec()
            };
            let n = (size as usize).min(v.len());
            if n > 0 {
                f(0, &v[..n])?;
            }
            return Ok(size);
        }
        let bs = self.block_size() as u64;
        let nblocks = size.div_ceil(bs);
        let runs = self.block_runs(inode, nblocks)?;
        let mut buf = Vec::new();
        for r in runs {
            if r.uninit {
                continue;
            }
            let mut done = 0u64;
            while done < r.len {
                let n = (r.len - done).min(READ_CHUNK / bs);
                let off = (r.lblk + done) * bs;
                let len = (n * bs).min(size - off) as usize;
                buf.resize(len, 0);
                // Neighbouring blocks in one read (bounded: READ_CHUNK).
                self.read_data_blocks(r.pblk + done, &mut buf)?;
                f(off, &buf)?;
                done += n;
            }
        }
        Ok(size)
    }

    /// Write the whole content to `out`, holes as zeros. Returns the size.
    pub fn read_file(&self, inode: &Inode, out: &mut dyn Write) -> Result<u64> {
        let mut pos = 0u64;
        let zeros = vec![0u8; 64 * 1024];
        let fill = |out: &mut dyn Write, upto: u64, pos: &mut u64| -> Result<()> {
            while *pos < upto {
                let n = ((upto - *pos) as usize).min(zeros.len());
                out.write_all(&zeros[..n])
                    .map_err(|e| Error::io("writing output", e))?;
                *pos += n as u64;
            }
            Ok(())
        };
        let size = self.for_each_data(inode, |off, data| {
            fill(out, off, &mut pos)?;
            out.write_all(data)
                .map_err(|e| Error::io("writing output", e))?;
            pos = off + data.len() as u64;
            Ok(())
        })?;
        fill(out, size, &mut pos)?;
        Ok(size)
    }

    /// Read up to `len` bytes from `offset` into `out`.
    pub fn read_file_range(
        &self,
        inode: &Inode,
        offset: u64,
        len: u64,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let size = self.checked_size(inode)?;
        let end = size.min(offset.saturating_add(len));
        if end <= offset {
            return Ok(());
        }
        let base = out.len();
        out.resize(base + (end - offset) as usize, 0);
        self.for_each_data(inode, |off, data| {
            let dend = off + data.len() as u64;
            if dend <= offset || off >= end {
                return Ok(());
            }
            let s = offset.max(off);
            let e = end.min(dend);
            out[base + (s - offset) as usize..base + (e - offset) as usize]
                .copy_from_slice(&data[(s - off) as usize..(e - off) as usize]);
            Ok(())
        })?;
        Ok(())
    }

    /// The target of a symbolic link.
    pub fn read_link(&self, inode: &Inode) -> Result<Vec<u8>> {
        if !inode.is_symlink() {
            return Err(Error::Invalid(format!(
                "inode {} is not a symbolic link",
                inode.ino
            )));
        }
        let size = inode.size();
        if size > self.block_size() as u64 || size > 65536 {
            return Err(Error::corrupt(format!(
                "symlink inode {}: target length {size} is too long",
                inode.ino
            )));
        }
        let mut v = Vec::new();
        self.read_file_range(inode, 0, size, &mut v)?;
        Ok(v)
    }

    /// Blocks (data and indirect) a dense file of `n` data blocks needs.
    pub fn blocks_needed(&self, n: u64) -> u64 {
        let a = self.block_size() as u64 / 4;
        let mut total = n;
        let mut rest = n.saturating_sub(12);
        if rest == 0 {
            return total;
        }
        // single
        total += 1;
        rest = rest.saturating_sub(a);
        if rest == 0 {
            return total;
        }
        // double
        let d = rest.min(a * a);
        total += 1 + d.div_ceil(a);
        rest -= d;
        if rest == 0 {
            return total;
        }
        // triple
        total += 1 + rest.div_ceil(a * a) + rest.div_ceil(a);
        total
    }

    /// Fill an inode that maps no blocks yet with the bytes of `src`.
    /// All-zero blocks become holes. Sets the size; the caller writes the
    /// inode. Returns the number of bytes written.
    pub fn write_data(&mut self, inode: &mut Inode, src: &mut dyn Read) -> Result<u64> {
        self.write_data_sized(inode, src, None)
    }

    /// Like [`Self::write_data`]; when the source's size is known, reading
    /// stops once that many bytes arrived (saving a read for end of file).
    pub fn write_data_sized(
        &mut self,
        inode: &mut Inode,
        src: &mut dyn Read,
        expect: Option<u64>,
    ) -> Result<u64> {
        let bs = self.block_size();
        let mut goal = self.data_goal(inode.ino);
        let mut buf = std::mem::take(&mut self.io_buf);
        if buf.len() != bs * 64 {
            buf = vec![0u8; bs * 64];
        }
        let r = self.write_data_buf(inode, src, expect, &mut goal, &mut buf);
        self.io_buf = buf;
        let size = r?;
        inode.set_size(size);
        self.note_large_file(size);
        self.set_data_goal(goal);
        Ok(size)
    }

    /// [`Self::write_data`] from bytes in memory. Up to one block, the
    /// vector itself becomes the staged block (no copy).
    pub fn write_data_vec(&mut self, inode: &mut Inode, data: Vec<u8>) -> Result<u64> {
        let bs = self.block_size();
        if data.len() > bs {
            let n = data.len() as u64;
            return self.write_data_sized(inode, &mut &data[..], Some(n));
        }
        let size = data.len() as u64;
        if !crate::device::is_zero(&data) {
            let mut goal = self.data_goal(inode.ino);
            let b = self.map_new_block(inode, 0, &mut goal)?;
            self.write_new_data_vec(b, data)?;
            self.set_data_goal(goal);
        }
        inode.set_size(size);
        Ok(size)
    }

    fn write_data_buf(
        &mut self,
        inode: &mut Inode,
        src: &mut dyn Read,
        expect: Option<u64>,
        goal: &mut u64,
        buf: &mut [u8],
    ) -> Result<u64> {
        let bs = self.block_size();
        let mut size = 0u64;
        let max = self.max_file_size(inode);
        let early = expect.is_some_and(|e| self.writes_early(e));
        loop {
            // Fill the buffer as far as the source gives.
            let mut got = 0;
            let mut eof = false;
            while got < buf.len() {
                if expect.is_some_and(|e| size + got as u64 >= e) {
                    eof = true;
                    break;
                }
                let n = match src.read(&mut buf[got..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("reading the source", e)),
                };
                got += n;
            }
            if size + got as u64 > max {
                return Err(Error::Invalid(format!(
                    "source is larger than the largest file this filesystem allows ({max} bytes)"
                )));
            }
            // Runs of non-zero blocks are mapped a run at a time (one
            // extent per physical run on ext4); all-zero blocks stay holes.
            // A large file's whole blocks go to the image in runs straight
            // from the buffer; the rest is staged.
            let mut run: Option<(u64, usize, usize)> = None; // block, offset, count
            let nch = got.div_ceil(bs);
            let chunk_at = |k: usize| -> (usize, usize) {
                let o = k * bs;
                (o, (got - o).min(bs))
            };
            let mut k = 0;
            while k < nch {
                let (o, l) = chunk_at(k);
                if crate::device::is_zero(&buf[o..o + l]) {
                    if let Some((f, o, n)) = run.take() {
                        self.write_data_early(f, &buf[o..o + n * bs])?;
                    }
                    size += l as u64;
                    k += 1;
                    continue;
                }
                let mut j = k + 1;
                while j < nch {
                    let (o, l) = chunk_at(j);
                    if crate::device::is_zero(&buf[o..o + l]) {
                        break;
                    }
                    j += 1;
                }
                let lblk0 = size / bs as u64;
                let mut m = k;
                while m < j {
                    let (b0, n) =
                        self.map_new_run(inode, lblk0 + (m - k) as u64, (j - m) as u64, goal)?;
                    for i in 0..n as usize {
                        let (o, l) = chunk_at(m + i);
                        let b = b0 + i as u64;
                        if !(early && l == bs) {
                            if let Some((f, o, n)) = run.take() {
                                self.write_data_early(f, &buf[o..o + n * bs])?;
                            }
                            self.write_new_data(b, &buf[o..o + l])?;
                            continue;
                        }
                        run = match run {
                            Some((f, ro, rn)) if f + rn as u64 == b => Some((f, ro, rn + 1)),
                            other => {
                                if let Some((f, ro, rn)) = other {
                                    self.write_data_early(f, &buf[ro..ro + rn * bs])?;
                                }
                                Some((b, o, 1))
                            }
                        };
                    }
                    m += n as usize;
                }
                let end = (j * bs).min(got);
                size += (end - k * bs) as u64;
                k = j;
            }
            if let Some((f, o, n)) = run.take() {
                self.write_data_early(f, &buf[o..o + n * bs])?;
            }
            if eof || got == 0 {
                break;
            }
        }
        Ok(size)
    }

    /// Change a regular file's size: shrinking frees blocks past the end
    /// and zeroes the tail of the last block; growing leaves a hole.
    pub fn truncate(&mut self, inode: &mut Inode, new_size: u64) -> Result<()> {
        if !inode.is_reg() {
            return Err(Error::Invalid(format!(
                "inode {} is not a regular file",
                inode.ino
            )));
        }
        if new_size > self.max_file_size(inode) {
            return Err(Error::Invalid(format!(
                "size {new_size} is larger than this filesystem allows"
            )));
        }
        let bs = self.block_size() as u64;
        let old = inode.size();
        if new_size < old {
            let keep = new_size.div_ceil(bs);
            self.truncate_blocks(inode, keep)?;
            let tail = (new_size % bs) as usize;
            if tail != 0 {
                if let Some(b) = self.bmap(inode, new_size / bs)? {
                    self.modify_block(b, |d| d[tail..].fill(0))?;
                }
            }
        }
        inode.set_size(new_size);
        self.note_large_file(new_size);
        let now = self.now();
        inode.set_mtime(now);
        inode.set_ctime(now);
        self.write_inode(inode)
    }
}
