//! Hashed directories (htree, `dir_index`): the name hashes, lookups
//! through the index, and adding entries while the index grows.
//!
//! ## Layout
//! Block 0 of an indexed directory holds `.` (12 bytes) and a `..` entry
//! whose `rec_len` covers the rest of the block; inside it, at byte 24,
//! `dx_root_info` (reserved u32, hash version u8, info length u8 = 8,
//! indirect levels u8, flags u8), then at byte 32 the index: a `limit` and
//! `count` (u16 each) in place of the first entry's hash, then `count`
//! entries of (hash u32, logical block u32), sorted by hash. The first
//! entry covers hashes from 0. Interior nodes (with indirect levels > 0)
//! start with an empty 8-byte directory entry covering the block, then the
//! same count/limit and entries. Leaves are ordinary directory blocks whose
//! names hash into the range their index entry starts.
//!
//! Hashes are computed with the superblock's seed; the low bit of an index
//! hash marks a range that continues a collision from the previous leaf
//! (names of one hash on both sides of a split), so a lookup that does not
//! find its name in a leaf goes on to the next one while the next range
//! starts at its hash.
//!
//! With `metadata_csum`, an index node's `limit` leaves 8 bytes at the end
//! for the `dx_tail` (reserved u32, checksum u32), and every leaf ends with
//! the 12-byte dirent tail (see [`crate::dir`]); the checksums themselves
//! are set at commit from the roles given to the blocks here.
//!
//! ## How the index grows
//! - A linear directory of one full block becomes indexed when the file
//!   system has `dir_index` (as the kernel's `make_indexed_dir`): block 0
//!   keeps `.` and `..` and becomes the root; its other entries, sorted by
//!   hash, are split in two new leaves.
//! - A full leaf splits: its entries sorted by hash, the upper half (by
//!   bytes) moved to a new block at the end of the directory, and an index
//!   entry for it inserted after the one that led to the leaf.
//! - A full index node splits the same way (upper half of its entries to a
//!   new node, an entry for it in its parent); a full root moves its entries
//!   into a new node below it and the tree gains a level. Two levels of
//!   index (indirect levels 1) at most, three with `large_dir`; past that
//!   adding fails with `NoSpace` ("the htree index is full") and nothing
//!   changes.
//! - An index this code cannot follow (a bad root, an unknown hash, a count
//!   past its limit...) is ignored as the kernel does: the caller clears the
//!   `INDEX` flag and uses the directory linearly, except with
//!   `metadata_csum` (its index blocks have no dirent tail), where that is
//!   an error.

use crate::dir::{rec_len_for, FoundEntry};
use crate::error::{Error, Result};
use crate::fs::{BlockRole, Filesystem};
use crate::inode::{Ino, Inode};
use crate::layout::{feature, iflag, le16, le32, put16, put32, FileType};

/// Hash algorithms of `s_def_hash_version` / `dx_root_info.hash_version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashVersion {
    /// The original "dx_hack" hash.
    Legacy,
    /// Half MD4 (the default).
    HalfMd4,
    /// TEA.
    Tea,
}

const DEFAULT_SEED: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

fn str2hashbuf(msg: &[u8], num: usize, unsigned: bool) -> Vec<u32> {
    let len = msg.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut val = pad;
    let mut out = Vec::with_capacity(num);
    let n = msg.len().min(num * 4);
    for (i, &c) in msg[..n].iter().enumerate() {
        let ch = if unsigned {
            c as u32
        } else {
            c as i8 as i32 as u32
        };
        val = ch.wrapping_add(val << 8);
        if i % 4 == 3 {
            out.push(val);
            val = pad;
        }
    }
    if out.len() < num {
        out.push(val);
    }
    while out.len() < num {
        out.push(pad);
    }
    out
}

fn half_md4_transform(buf: &mut [u32; 4], inp: &[u32]) {
    let f = |x: u32, y: u32, z: u32| z ^ (x & (y ^ z));
    let g = |x: u32, y: u32, z: u32| (x & y).wrapping_add((x ^ y) & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    const K2: u32 = 0o13240474631;
    const K3: u32 = 0o15666365641;
    let (mut a, mut b, mut c, mut d) = (buf[0], buf[1], buf[2], buf[3]);
    macro_rules! round {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $x:expr, $s:expr) => {
            $a = $a
                .wrapping_add($f($b, $c, $d))
                .wrapping_add($x)
                .rotate_left($s);
        };
    }
    round!(f, a, b, c, d, inp[0], 3);
    round!(f, d, a, b, c, inp[1], 7);
    round!(f, c, d, a, b, inp[2], 11);
    round!(f, b, c, d, a, inp[3], 19);
    round!(f, a, b, c, d, inp[4], 3);
    round!(f, d, a, b, c, inp[5], 7);
    round!(f, c, d, a, b, inp[6], 11);
    round!(f, b, c, d, a, inp[7], 19);
    round!(g, a, b, c, d, inp[1].wrapping_add(K2), 3);
    round!(g, d, a, b, c, inp[3].wrapping_add(K2), 5);
    round!(g, c, d, a, b, inp[5].wrapping_add(K2), 9);
    round!(g, b, c, d, a, inp[7].wrapping_add(K2), 13);
    round!(g, a, b, c, d, inp[0].wrapping_add(K2), 3);
    round!(g, d, a, b, c, inp[2].wrapping_add(K2), 5);
    round!(g, c, d, a, b, inp[4].wrapping_add(K2), 9);
    round!(g, b, c, d, a, inp[6].wrapping_add(K2), 13);
    round!(h, a, b, c, d, inp[3].wrapping_add(K3), 3);
    round!(h, d, a, b, c, inp[7].wrapping_add(K3), 9);
    round!(h, c, d, a, b, inp[2].wrapping_add(K3), 11);
    round!(h, b, c, d, a, inp[6].wrapping_add(K3), 15);
    round!(h, a, b, c, d, inp[1].wrapping_add(K3), 3);
    round!(h, d, a, b, c, inp[5].wrapping_add(K3), 9);
    round!(h, c, d, a, b, inp[0].wrapping_add(K3), 11);
    round!(h, b, c, d, a, inp[4].wrapping_add(K3), 15);
    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

fn tea_transform(buf: &mut [u32; 4], inp: &[u32]) {
    let mut sum: u32 = 0;
    let (mut b0, mut b1) = (buf[0], buf[1]);
    let (a, b, c, d) = (inp[0], inp[1], inp[2], inp[3]);
    for _ in 0..16 {
        sum = sum.wrapping_add(0x9E37_79B9);
        b0 = b0.wrapping_add(
            ((b1 << 4).wrapping_add(a)) ^ (b1.wrapping_add(sum)) ^ ((b1 >> 5).wrapping_add(b)),
        );
        b1 = b1.wrapping_add(
            ((b0 << 4).wrapping_add(c)) ^ (b0.wrapping_add(sum)) ^ ((b0 >> 5).wrapping_add(d)),
        );
    }
    buf[0] = buf[0].wrapping_add(b0);
    buf[1] = buf[1].wrapping_add(b1);
}

fn legacy_hash(name: &[u8], unsigned: bool) -> u32 {
    let (mut h0, mut h1): (u32, u32) = (0x12a3_fe2d, 0x37ab_e8f9);
    for &c in name {
        let ch = if unsigned {
            c as u32
        } else {
            c as i8 as i32 as u32
        };
        let mut h = h1.wrapping_add(h0 ^ ch.wrapping_mul(7_152_373));
        if h & 0x8000_0000 != 0 {
            h = h.wrapping_sub(0x7fff_ffff);
        }
        h1 = h0;
        h0 = h;
    }
    h0 << 1
}

/// The (major, minor) hash of a name, as ext4 computes it.
pub fn dx_hash(name: &[u8], version: HashVersion, seed: [u32; 4], unsigned: bool) -> (u32, u32) {
    let mut buf = if seed.iter().all(|&s| s == 0) {
        DEFAULT_SEED
    } else {
        seed
    };
    let (hash, minor) = match version {
        HashVersion::Legacy => (legacy_hash(name, unsigned), 0),
        HashVersion::HalfMd4 => {
            let mut p = name;
            loop {
                let inp = str2hashbuf(p, 8, unsigned);
                half_md4_transform(&mut buf, &inp);
                if p.len() <= 32 {
                    break;
                }
                p = &p[32..];
            }
            (buf[1], buf[2])
        }
        HashVersion::Tea => {
            let mut p = name;
            loop {
                let inp = str2hashbuf(p, 4, unsigned);
                tea_transform(&mut buf, &inp);
                if p.len() <= 16 {
                    break;
                }
                p = &p[16..];
            }
            (buf[0], buf[1])
        }
    };
    let mut hash = hash & !1;
    if hash == 0x7fff_ffff << 1 {
        hash = (0x7fff_ffff - 1) << 1;
    }
    (hash, minor)
}

/// Byte offset of the root's count/limit (and entry 0).
const ROOT_BASE: usize = 0x20;
/// Byte offset of an interior node's count/limit (and entry 0).
const NODE_BASE: usize = 8;
/// The bits of an index entry's block field that are the block.
const DX_BLOCK_MASK: u32 = 0x0fff_ffff;

/// A hash version with its signedness.
type HashKind = (HashVersion, bool);

/// Why an index cannot be followed (the kernel's "bad dx dir").
pub(crate) type BadIndex = String;

/// One level of the index on the way down to a leaf.
#[derive(Clone, Copy, Debug)]
struct Frame {
    pblk: u64,
    /// Byte offset of count/limit (and of entry 0).
    base: usize,
    count: usize,
    limit: usize,
    /// Entry chosen on the way down.
    at: usize,
}

/// Where a name's hash leads.
struct Probe {
    hash: u32,
    hv: HashKind,
    /// Indirect levels (0: the root points at leaves).
    levels: usize,
    /// Root first; `levels + 1` of them.
    frames: Vec<Frame>,
    leaf_lblk: u64,
    leaf_pblk: u64,
}

/// A live entry of a leaf that is split.
struct LeafEnt {
    hash: u32,
    ino: Ino,
    ftype: FileType,
    name: Vec<u8>,
}

fn ents_size(v: &[LeafEnt]) -> usize {
    v.iter().map(|e| rec_len_for(e.name.len())).sum()
}

/// Split entries sorted by hash in two by bytes, as the kernel does: the
/// upper part gets entries from the end while less than half of the
/// next one would cross the middle of the usable space. Returns the split
/// point (1..len) and the index hash of the upper part (with the
/// continuation bit when the two parts share a hash).
fn split_point(ents: &[LeafEnt], usable: usize) -> (usize, u32) {
    let mut size = 0;
    let mut moved = 0;
    for e in ents.iter().rev() {
        let s = rec_len_for(e.name.len());
        if size + s / 2 > usable / 2 {
            break;
        }
        size += s;
        moved += 1;
    }
    let split = (ents.len() - moved).clamp(1, ents.len() - 1);
    let hash2 = ents[split].hash;
    let continued = (ents[split - 1].hash == hash2) as u32;
    (split, hash2 | continued)
}

impl Filesystem {
    fn dx_tail_len(&self) -> usize {
        if self.metadata_csum() {
            8
        } else {
            0
        }
    }

    /// Entries the root can hold.
    pub(crate) fn dx_root_limit(&self) -> usize {
        (self.block_size() - ROOT_BASE - self.dx_tail_len()) / 8
    }

    /// Entries an interior index node can hold.
    pub(crate) fn dx_node_limit(&self) -> usize {
        (self.block_size() - NODE_BASE - self.dx_tail_len()) / 8
    }

    /// Levels of index (the root included) this file system allows: 2,
    /// or 3 with `large_dir`.
    pub(crate) fn dx_max_levels(&self) -> usize {
        if self.large_dir() {
            3
        } else {
            2
        }
    }

    /// The hash of a root's `hash_version` code: 0-2 signed or unsigned
    /// as the superblock's flags say, 3-5 their unsigned variants.
    fn dx_hash_kind(&self, code: u8) -> Option<HashKind> {
        // s_flags: 0x1 signed hash, 0x2 unsigned hash.
        let unsigned = self.superblock().flags() & 0x2 != 0;
        Some(match code {
            0 => (HashVersion::Legacy, unsigned),
            1 => (HashVersion::HalfMd4, unsigned),
            2 => (HashVersion::Tea, unsigned),
            3 => (HashVersion::Legacy, true),
            4 => (HashVersion::HalfMd4, true),
            5 => (HashVersion::Tea, true),
            _ => return None,
        })
    }

    fn dx_hash_with(&self, hv: HashKind, name: &[u8]) -> u32 {
        dx_hash(name, hv.0, self.superblock().hash_seed(), hv.1).0
    }

    /// Hash a name the way this filesystem's indexed directories do.
    pub fn name_hash(&self, version: HashVersion, name: &[u8]) -> u32 {
        let unsigned = self.superblock().flags() & 0x2 != 0;
        self.dx_hash_with((version, unsigned), name)
    }

    /// The directory's index is in use: its `INDEX` flag and the file
    /// system's `dir_index` feature.
    pub(crate) fn is_dx(&self, dir: &Inode) -> bool {
        dir.has_flag(iflag::INDEX) && self.superblock().has_compat(feature::COMPAT_DIR_INDEX)
    }

    fn dx_nblocks(&self, dir: &Inode) -> u64 {
        dir.size_with(self.large_dir())
            .div_ceil(self.block_size() as u64)
    }

    /// Read the index node in `pblk`: (count, limit, chosen entry, its
    /// block) where the chosen entry is the last whose hash is at most
    /// `hash` (entry 0 when `hash` is None). None when the node is not
    /// one.
    #[allow(clippy::too_many_arguments)]
    fn dx_read_node(
        &self,
        dir: &Inode,
        lblk: u64,
        pblk: u64,
        base: usize,
        limit_want: usize,
        hash: Option<u32>,
    ) -> Result<Option<(usize, usize, usize, u64)>> {
        let bs = self.block_size();
        self.with_block(pblk, |b| {
            // With metadata_csum the node's checksum is checked first: a
            // write never builds on a damaged block.
            self.check_dir_block(dir, lblk, pblk, b)?;
            Ok(Self::dx_parse_node(b, bs, base, limit_want, hash))
        })?
    }

    fn dx_parse_node(
        b: &[u8],
        bs: usize,
        base: usize,
        limit_want: usize,
        hash: Option<u32>,
    ) -> Option<(usize, usize, usize, u64)> {
        {
            if base == NODE_BASE && (le32(b, 0) != 0 || le16(b, 4) as usize != bs) {
                return None;
            }
            let limit = le16(b, base) as usize;
            let count = le16(b, base + 2) as usize;
            if limit != limit_want || count == 0 || count > limit {
                return None;
            }
            let at = match hash {
                None => 0,
                Some(h) => {
                    // First entry in 1..count whose hash is above h.
                    let (mut lo, mut hi) = (1usize, count);
                    while lo < hi {
                        let m = (lo + hi) / 2;
                        if le32(b, base + 8 * m) <= h {
                            lo = m + 1;
                        } else {
                            hi = m;
                        }
                    }
                    lo - 1
                }
            };
            let child = (le32(b, base + 8 * at + 4) & DX_BLOCK_MASK) as u64;
            Some((count, limit, at, child))
        }
    }

    /// Walk the index down to the leaf for `name`.
    fn dx_probe(&self, dir: &Inode, name: &[u8]) -> Result<std::result::Result<Probe, BadIndex>> {
        let bs = self.block_size();
        let nblocks = self.dx_nblocks(dir);
        let Some(root_p) = self.bmap(dir, 0)? else {
            return Ok(Err("its block 0 is not mapped".into()));
        };
        let (ok, code, levels) = self.with_block(root_p, |b| {
            (
                le16(b, 4) == 12 && le16(b, 16) as usize == bs - 12 && b[0x1D] == 8,
                b[0x1C],
                b[0x1E] as usize,
            )
        })?;
        if !ok {
            return Ok(Err("its block 0 is not an index root".into()));
        }
        if levels >= self.dx_max_levels() {
            return Ok(Err(format!(
                "its index has {} levels, more than the {} this file system allows",
                levels + 1,
                self.dx_max_levels()
            )));
        }
        let Some(hv) = self.dx_hash_kind(code) else {
            return Ok(Err(format!("its index uses unknown hash version {code}")));
        };
        let hash = self.dx_hash_with(hv, name);
        let mut frames = Vec::with_capacity(levels + 1);
        let (mut lblk, mut pblk, mut base, mut want) =
            (0u64, root_p, ROOT_BASE, self.dx_root_limit());
        loop {
            let Some((count, limit, at, child)) =
                self.dx_read_node(dir, lblk, pblk, base, want, Some(hash))?
            else {
                return Ok(Err(format!("its index block {lblk} is damaged")));
            };
            if child == 0 || child >= nblocks {
                return Ok(Err(format!(
                    "its index block {lblk} points to block {child}, outside the directory"
                )));
            }
            frames.push(Frame {
                pblk,
                base,
                count,
                limit,
                at,
            });
            let Some(p) = self.bmap(dir, child)? else {
                return Ok(Err(format!("its index points to block {child}, a hole")));
            };
            if frames.len() > levels {
                return Ok(Ok(Probe {
                    hash,
                    hv,
                    levels,
                    frames,
                    leaf_lblk: child,
                    leaf_pblk: p,
                }));
            }
            (lblk, pblk, base, want) = (child, p, NODE_BASE, self.dx_node_limit());
        }
    }

    /// Move `p` to the next leaf when it continues the range of `p.hash`
    /// (the next index entry's hash, continuation bit aside, is it).
    /// Ok(Ok(false)) when no leaf continues it.
    fn dx_next_leaf(
        &self,
        dir: &Inode,
        p: &mut Probe,
    ) -> Result<std::result::Result<bool, BadIndex>> {
        let nblocks = self.dx_nblocks(dir);
        let mut i = p.frames.len();
        loop {
            if i == 0 {
                return Ok(Ok(false));
            }
            i -= 1;
            if p.frames[i].at + 1 < p.frames[i].count {
                break;
            }
        }
        p.frames[i].at += 1;
        let Frame { pblk, base, at, .. } = p.frames[i];
        let (bhash, mut child) = self.with_block(pblk, |b| {
            (
                le32(b, base + 8 * at),
                (le32(b, base + 8 * at + 4) & DX_BLOCK_MASK) as u64,
            )
        })?;
        if bhash & !1 != p.hash {
            return Ok(Ok(false));
        }
        let bad = |child: u64| {
            format!("its index points to block {child}, outside the directory or a hole")
        };
        for j in i + 1..p.frames.len() {
            if child == 0 || child >= nblocks {
                return Ok(Err(bad(child)));
            }
            let Some(pb) = self.bmap(dir, child)? else {
                return Ok(Err(bad(child)));
            };
            let Some((count, limit, _, c)) =
                self.dx_read_node(dir, child, pb, NODE_BASE, self.dx_node_limit(), None)?
            else {
                return Ok(Err(format!("its index block {child} is damaged")));
            };
            p.frames[j] = Frame {
                pblk: pb,
                base: NODE_BASE,
                count,
                limit,
                at: 0,
            };
            child = c;
        }
        if child == 0 || child >= nblocks {
            return Ok(Err(bad(child)));
        }
        let Some(pb) = self.bmap(dir, child)? else {
            return Ok(Err(bad(child)));
        };
        p.leaf_lblk = child;
        p.leaf_pblk = pb;
        Ok(Ok(true))
    }

    /// Find `name` through the index. Ok(Err(why)) when the index cannot
    /// be followed (the caller scans the directory instead).
    pub(crate) fn dx_find(
        &self,
        dir: &Inode,
        name: &[u8],
    ) -> Result<std::result::Result<Option<FoundEntry>, BadIndex>> {
        let mut p = match self.dx_probe(dir, name)? {
            Ok(p) => p,
            Err(why) => return Ok(Err(why)),
        };
        loop {
            if let Some((off, prev, de)) =
                self.find_in_block(dir, p.leaf_lblk, p.leaf_pblk, name)?
            {
                return Ok(Ok(Some((p.leaf_lblk, p.leaf_pblk, off, prev, de))));
            }
            match self.dx_next_leaf(dir, &mut p)? {
                Ok(true) => {}
                Ok(false) => return Ok(Ok(None)),
                Err(why) => return Ok(Err(why)),
            }
        }
    }

    fn dx_role(dir: &Inode) -> BlockRole {
        BlockRole::DxNode {
            ino: dir.ino,
            gen: dir.generation(),
        }
    }

    /// Append a block to a directory: (logical, physical). Writes the
    /// inode (size and block count).
    pub(crate) fn dir_append_block(
        &mut self,
        dir: &mut Inode,
        mut goal: u64,
    ) -> Result<(u64, u64)> {
        let bs = self.block_size() as u64;
        let lblk = dir.size_with(self.large_dir()).div_ceil(bs);
        let size = (lblk + 1) * bs;
        if (!self.large_dir() && size > u32::MAX as u64) || lblk > DX_BLOCK_MASK as u64 {
            return Err(Error::NoSpace(format!(
                "directory inode {}: {lblk} blocks, as large as a directory can grow here",
                dir.ino
            )));
        }
        let pblk = self.map_new_block(dir, lblk, &mut goal)?;
        dir.set_size(size);
        self.write_inode(dir)?;
        Ok((lblk, pblk))
    }

    /// The live entries of leaf `pblk` with their hashes.
    fn leaf_entries(
        &self,
        dir: &Inode,
        lblk: u64,
        pblk: u64,
        hv: HashKind,
    ) -> Result<Vec<LeafEnt>> {
        Ok(self
            .block_entries(dir.ino, lblk, pblk)?
            .into_iter()
            .filter(|(_, _, e)| e.ino != 0)
            .map(|(_, _, e)| LeafEnt {
                hash: self.dx_hash_with(hv, &e.name),
                ino: e.ino,
                ftype: e.ftype,
                name: e.name,
            })
            .collect())
    }

    fn write_leaf(&mut self, dir: &Inode, pblk: u64, ents: &[LeafEnt]) -> Result<()> {
        let v: Vec<(&[u8], Ino, FileType)> =
            ents.iter().map(|e| (&e.name[..], e.ino, e.ftype)).collect();
        let blk = self.pack_dir_block(&v);
        self.write_meta_block(pblk, &blk)?;
        self.set_block_role(pblk, Self::dir_leaf_role(dir));
        Ok(())
    }

    /// Insert the index entry (hash, lblk) after the chosen entry of `f`,
    /// which has room.
    fn dx_insert_entry(&mut self, dir: &Inode, f: &mut Frame, hash: u32, lblk: u64) -> Result<()> {
        debug_assert!(f.count < f.limit);
        let (base, at, count) = (f.base, f.at + 1, f.count);
        self.modify_block(f.pblk, |b| {
            let start = base + 8 * at;
            let end = base + 8 * count;
            b.copy_within(start..end, start + 8);
            put32(b, start, hash);
            put32(b, start + 4, lblk as u32);
            put16(b, base + 2, (count + 1) as u16);
        })?;
        self.set_block_role(f.pblk, Self::dx_role(dir));
        f.count += 1;
        Ok(())
    }

    /// A new interior node holding `entries` (raw 8-byte entries; the
    /// first one's hash is overwritten by count/limit).
    fn dx_new_node(&mut self, dir: &mut Inode, goal: u64, entries: &[u8]) -> Result<(u64, u64)> {
        let bs = self.block_size();
        let (nl, np) = self.dir_append_block(dir, goal)?;
        let mut node = vec![0u8; bs];
        // An empty entry covering the block (block sizes below 64 KiB).
        put16(&mut node, 4, bs as u16);
        node[NODE_BASE..NODE_BASE + entries.len()].copy_from_slice(entries);
        put16(&mut node, NODE_BASE, self.dx_node_limit() as u16);
        put16(&mut node, NODE_BASE + 2, (entries.len() / 8) as u16);
        self.write_meta_block(np, &node)?;
        self.set_block_role(np, Self::dx_role(dir));
        Ok((nl, np))
    }

    /// The root is full: move its entries into a new node below it, the
    /// root keeping one entry for that node (the tree gains a level).
    fn dx_add_level(&mut self, dir: &mut Inode, p: &mut Probe) -> Result<()> {
        let root = p.frames[0];
        let ents = self.with_block(root.pblk, |b| {
            b[ROOT_BASE..ROOT_BASE + 8 * root.count].to_vec()
        })?;
        let (nl, np) = self.dx_new_node(dir, root.pblk + 1, &ents)?;
        self.modify_block(root.pblk, |b| {
            b[0x1E] += 1;
            b[ROOT_BASE + 8..ROOT_BASE + 8 * root.count].fill(0);
            put16(b, ROOT_BASE + 2, 1);
            put32(b, ROOT_BASE + 4, nl as u32);
        })?;
        self.set_block_role(root.pblk, Self::dx_role(dir));
        p.frames.insert(
            1,
            Frame {
                pblk: np,
                base: NODE_BASE,
                count: root.count,
                limit: self.dx_node_limit(),
                at: root.at,
            },
        );
        p.frames[0].count = 1;
        p.frames[0].at = 0;
        p.levels += 1;
        Ok(())
    }

    /// Split the full interior node `p.frames[j]`, whose parent has room:
    /// its upper half of entries goes to a new node.
    fn dx_split_node(&mut self, dir: &mut Inode, p: &mut Probe, j: usize) -> Result<()> {
        let f = p.frames[j];
        let half = f.count / 2;
        let moved = self.with_block(f.pblk, |b| {
            b[f.base + 8 * half..f.base + 8 * f.count].to_vec()
        })?;
        let hash2 = le32(&moved, 0);
        let (nl, np) = self.dx_new_node(dir, f.pblk + 1, &moved)?;
        self.modify_block(f.pblk, |b| {
            put16(b, f.base + 2, half as u16);
            b[f.base + 8 * half..f.base + 8 * f.count].fill(0);
        })?;
        self.set_block_role(f.pblk, Self::dx_role(dir));
        let mut parent = p.frames[j - 1];
        self.dx_insert_entry(dir, &mut parent, hash2, nl)?;
        if f.at >= half {
            p.frames[j] = Frame {
                pblk: np,
                base: NODE_BASE,
                count: f.count - half,
                limit: f.limit,
                at: f.at - half,
            };
            parent.at += 1;
        } else {
            p.frames[j].count = half;
        }
        p.frames[j - 1] = parent;
        Ok(())
    }

    /// Make room for one more entry in the bottom index node of `p`:
    /// split the full nodes above the leaf, adding a level when the root
    /// is full too. When the index is as deep as it may be and full,
    /// NoSpace before anything changes.
    fn dx_make_room(&mut self, dir: &mut Inode, p: &mut Probe) -> Result<()> {
        let full = |p: &Probe| {
            let mut k = p.frames.len();
            while k > 0 && p.frames[k - 1].count >= p.frames[k - 1].limit {
                k -= 1;
            }
            k
        };
        let mut k = full(p);
        if k == p.frames.len() {
            return Ok(());
        }
        if k == 0 {
            if p.levels + 1 >= self.dx_max_levels() {
                return Err(Error::NoSpace(format!(
                    "directory inode {}: the htree index is full ({} levels of index, {}; {} leaf blocks)",
                    dir.ino,
                    p.levels + 1,
                    if self.large_dir() {
                        "the most there can be"
                    } else {
                        "the most without the large_dir feature"
                    },
                    self.dx_nblocks(dir) - 1
                )));
            }
            self.dx_add_level(dir, p)?;
            k = full(p);
            debug_assert!(k >= 1);
        }
        for j in k..p.frames.len() {
            self.dx_split_node(dir, p, j)?;
        }
        Ok(())
    }

    /// Add `name` to an indexed directory keeping the index valid and
    /// growing it as needed. Ok(Err(why)) (nothing changed) when the index
    /// cannot be followed.
    pub(crate) fn htree_add(
        &mut self,
        dir: &mut Inode,
        name: &[u8],
        ino: Ino,
        ftype: FileType,
    ) -> Result<std::result::Result<(), BadIndex>> {
        let mut p = match self.dx_probe(dir, name)? {
            Ok(p) => p,
            Err(why) => return Ok(Err(why)),
        };
        // 1. Room in the leaf?
        if self.insert_in_block(dir, p.leaf_lblk, p.leaf_pblk, name, ino, ftype)? {
            return Ok(Ok(()));
        }
        let usable = self.block_size() - self.dir_tail_len();
        let need = rec_len_for(name.len());
        let mut ents = self.leaf_entries(dir, p.leaf_lblk, p.leaf_pblk, p.hv)?;
        let (leaf_lblk, dino) = (p.leaf_lblk, dir.ino);
        let no_room = || {
            Error::corrupt(format!(
                "directory inode {dino}: no room for a {}-byte name in block {leaf_lblk} after splitting it",
                name.len()
            ))
        };
        // 2. Room, but in pieces: pack the leaf.
        if ents_size(&ents) + need <= usable {
            self.write_leaf(dir, p.leaf_pblk, &ents)?;
            if !self.insert_in_block(dir, p.leaf_lblk, p.leaf_pblk, name, ino, ftype)? {
                return Err(no_room());
            }
            return Ok(Ok(()));
        }
        if ents.len() < 2 {
            return Err(no_room());
        }
        // 3. Split the leaf; its index node first needs room for one more
        // entry.
        ents.sort_by_key(|e| e.hash);
        let (split, hash2) = split_point(&ents, usable);
        let (lo, hi) = ents.split_at(split);
        let goes_high = p.hash >= hash2 & !1;
        if ents_size(if goes_high { hi } else { lo }) + need > usable {
            return Err(no_room());
        }
        self.dx_make_room(dir, &mut p)?;
        let (nl, np) = self.dir_append_block(dir, p.leaf_pblk + 1)?;
        self.write_leaf(dir, p.leaf_pblk, lo)?;
        self.write_leaf(dir, np, hi)?;
        let bottom = p.frames.len() - 1;
        let mut f = p.frames[bottom];
        self.dx_insert_entry(dir, &mut f, hash2, nl)?;
        let (dl, dp) = if goes_high {
            (nl, np)
        } else {
            (p.leaf_lblk, p.leaf_pblk)
        };
        if !self.insert_in_block(dir, dl, dp, name, ino, ftype)? {
            return Err(no_room());
        }
        Ok(Ok(()))
    }

    /// Turn a linear directory of one full block into an indexed one and
    /// add `name` (the kernel's `make_indexed_dir`). False (nothing
    /// changed) when block 0 does not start with `.` and `..` as an index
    /// root needs, or the default hash version is unknown.
    pub(crate) fn dx_make_indexed(
        &mut self,
        dir: &mut Inode,
        name: &[u8],
        ino: Ino,
        ftype: FileType,
    ) -> Result<bool> {
        let bs = self.block_size();
        let code = self.superblock().def_hash_version();
        let Some(hv) = self.dx_hash_kind(code) else {
            return Ok(false);
        };
        let Some(root_p) = self.bmap(dir, 0)? else {
            return Ok(false);
        };
        let all = self.block_entries(dir.ino, 0, root_p)?;
        if all.len() < 2
            || all[0].0 != 0
            || all[0].1 != 12
            || all[0].2.name != b"."
            || all[1].0 != 12
            || all[1].2.name != b".."
        {
            return Ok(false);
        }
        let (dot, dotdot) = (all[0].2.clone(), all[1].2.clone());
        let mut ents: Vec<LeafEnt> = all[2..]
            .iter()
            .filter(|(_, _, e)| e.ino != 0)
            .map(|(_, _, e)| LeafEnt {
                hash: self.dx_hash_with(hv, &e.name),
                ino: e.ino,
                ftype: e.ftype,
                name: e.name.clone(),
            })
            .collect();
        ents.sort_by_key(|e| e.hash);
        let usable = bs - self.dir_tail_len();
        let hash = self.dx_hash_with(hv, name);
        let (split, hash2) = if ents.len() >= 2 {
            split_point(&ents, usable)
        } else {
            (ents.len(), u32::MAX)
        };
        let (lo, hi) = ents.split_at(split);
        let (l1, p1) = self.dir_append_block(dir, root_p + 1)?;
        self.write_leaf(dir, p1, lo)?;
        let mut index = vec![(0u32, l1)];
        let mut dest = (l1, p1);
        if !hi.is_empty() {
            let (l2, p2) = self.dir_append_block(dir, p1 + 1)?;
            self.write_leaf(dir, p2, hi)?;
            index.push((hash2, l2));
            if hash >= hash2 & !1 {
                dest = (l2, p2);
            }
        }
        // The root: `.`, `..` covering the block, dx_root_info, the index.
        let mut root = vec![0u8; bs];
        self.write_entry(&mut root, 0, dot.ino, 12, b".", dot.ftype);
        self.write_entry(&mut root, 12, dotdot.ino, bs - 12, b"..", dotdot.ftype);
        root[0x1C] = code;
        root[0x1D] = 8;
        put16(&mut root, ROOT_BASE, self.dx_root_limit() as u16);
        put16(&mut root, ROOT_BASE + 2, index.len() as u16);
        for (i, &(h, l)) in index.iter().enumerate() {
            if i > 0 {
                put32(&mut root, ROOT_BASE + 8 * i, h);
            }
            put32(&mut root, ROOT_BASE + 8 * i + 4, l as u32);
        }
        self.write_meta_block(root_p, &root)?;
        dir.set_flags(dir.flags() | iflag::INDEX);
        self.write_inode(dir)?;
        self.set_block_role(root_p, Self::dx_role(dir));
        if !self.insert_in_block(dir, dest.0, dest.1, name, ino, ftype)? {
            return Err(Error::corrupt(format!(
                "directory inode {}: no room for a {}-byte name after indexing it",
                dir.ino,
                name.len()
            )));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values from e2fsprogs: `debugfs -R "dx_hash -h <alg> [-s <seed>] <name>"`.
    const SEED: [u32; 4] = [0x3d2c_1b0a, 0x6b4a_5f4e, 0x0f9e_7d8c, 0x4d3c_2b1a]; // 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
    const LONG: &[u8] = b"averyveryverylongfilename-with-more-than-32-bytes.txt";

    #[test]
    fn default_seed_hashes_match_e2fsprogs() {
        let z = [0u32; 4];
        assert_eq!(
            dx_hash(b"hello", HashVersion::Legacy, z, false).0,
            0x3225_2546
        );
        assert_eq!(
            dx_hash(b"hello", HashVersion::HalfMd4, z, false),
            (0x1746_da32, 0x4200_13b5)
        );
        assert_eq!(
            dx_hash(b"hello", HashVersion::Tea, z, false),
            (0x6f5b_b1a8, 0x2319_17c2)
        );
    }

    #[test]
    fn seeded_and_long_names_match_e2fsprogs() {
        assert_eq!(
            dx_hash(LONG, HashVersion::Legacy, SEED, false).0,
            0xb002_ac28
        );
        assert_eq!(
            dx_hash(LONG, HashVersion::HalfMd4, SEED, false),
            (0x6cc5_a0f8, 0xdb89_548e)
        );
        assert_eq!(
            dx_hash(LONG, HashVersion::Tea, SEED, false),
            (0xd23d_732c, 0x3ee9_9f2b)
        );
    }

    #[test]
    fn signed_chars_match_e2fsprogs() {
        let n = "héllo-wörld".as_bytes();
        assert_eq!(dx_hash(n, HashVersion::Legacy, SEED, false).0, 0x030e_0ffc);
        assert_eq!(
            dx_hash(n, HashVersion::HalfMd4, SEED, false),
            (0xd49c_5824, 0x2e76_b9a7)
        );
        assert_eq!(
            dx_hash(n, HashVersion::Tea, SEED, false),
            (0x4401_8fa8, 0x39c8_b500)
        );
        // Unsigned chars give another hash for bytes >= 0x80.
        assert_ne!(dx_hash(n, HashVersion::HalfMd4, SEED, true).0, 0xd49c_5824);
        assert_eq!(
            dx_hash(b"ascii", HashVersion::HalfMd4, SEED, true),
            dx_hash(b"ascii", HashVersion::HalfMd4, SEED, false)
        );
    }
}

/// Growing the index, and the metadata_csum layout of what it writes, on
/// images held in memory (mke2fs makes them; skipped without it).
#[cfg(test)]
mod grow_tests {
    use super::*;
    use crate::csum::has_dirent_tail;
    use crate::device::MemDevice;
    use crate::fs::OpenOptions;
    use crate::ops::NewFile;

    /// An image made by mke2fs (ext3 with dir_index, and metadata_csum
    /// when `csum`), opened for writing in memory.
    fn mem_fs(block: u32, mib: u32, csum: bool) -> Option<Filesystem> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.img");
        let out = std::process::Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext3", "-b", &block.to_string()])
            .args([
                "-O",
                if csum {
                    "dir_index,metadata_csum"
                } else {
                    "dir_index"
                },
            ])
            .args(["-N", "8192"])
            .arg(&p)
            .arg(format!("{mib}M"))
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            _ => {
                eprintln!("SKIPPED: mke2fs is not installed");
                return None;
            }
        }
        let data = std::fs::read(&p).unwrap();
        Some(
            Filesystem::open_device(Box::new(MemDevice::new(data)), &OpenOptions::read_write())
                .unwrap(),
        )
    }

    fn name(i: usize) -> Vec<u8> {
        format!("a-name-of-some-length-{i:05}").into_bytes()
    }

    /// Check every block of indexed directory `d`: index nodes have the
    /// limits this file system wants and the DxNode role, leaves end as
    /// `tail` says and have the DirLeaf role. Returns the indirect levels.
    fn check_layout(fs: &Filesystem, d: Ino, tail: bool) -> u8 {
        let di = fs.read_inode(d).unwrap();
        assert!(di.has_flag(iflag::INDEX));
        let bs = fs.block_size();
        let dx = BlockRole::DxNode {
            ino: d,
            gen: di.generation(),
        };
        let leaf = BlockRole::DirLeaf {
            ino: d,
            gen: di.generation(),
        };
        let root_p = fs.bmap(&di, 0).unwrap().unwrap();
        let root = fs.block(root_p).unwrap();
        assert_eq!(le16(&root, ROOT_BASE) as usize, fs.dx_root_limit());
        assert_eq!(fs.block_role(root_p), Some(dx));
        let levels = root[0x1E];
        for (lblk, pblk) in fs.dir_blocks(&di).unwrap().into_iter().skip(1) {
            let b = fs.block(pblk).unwrap();
            if le32(&b, 0) == 0 && le16(&b, 4) as usize == bs {
                // An interior node.
                assert_eq!(le16(&b, NODE_BASE) as usize, fs.dx_node_limit(), "{lblk}");
                assert_eq!(fs.block_role(pblk), Some(dx), "{lblk}");
                continue;
            }
            assert_eq!(fs.block_role(pblk), Some(leaf), "block {lblk}");
            assert_eq!(has_dirent_tail(&b), tail, "block {lblk}");
            let ents = fs.block_entries(d, lblk, pblk).unwrap();
            let last = ents.last().unwrap();
            // The entries stop where the tail starts (parsing leaves the
            // tail out).
            let end = if tail { bs - 12 } else { bs };
            assert_eq!(last.0 + last.1, end, "block {lblk}");
        }
        levels
    }

    fn fill(fs: &mut Filesystem, d: Ino, n: usize) {
        for i in 0..n {
            fs.create_file_from_vec(d, &name(i), &NewFile::default(), vec![])
                .unwrap();
        }
        let di = fs.read_inode(d).unwrap();
        for i in 0..n {
            assert!(fs.lookup(&di, &name(i)).unwrap().is_some(), "{i}");
        }
    }

    #[test]
    fn metadata_csum_leaves_keep_the_dirent_tail_and_nodes_room_for_dx_tail() {
        for block in [1024u32, 4096] {
            let Some(mut fs) = mem_fs(block, 16, true) else {
                return;
            };
            let bs = block as usize;
            assert_eq!(fs.dx_root_limit(), (bs - 40) / 8);
            assert_eq!(fs.dx_node_limit(), (bs - 16) / 8);
            let root = fs.root();
            let d = fs.mkdir(root, b"d", &NewFile::default()).unwrap();
            // A new directory's block ends with the tail.
            let di = fs.read_inode(d).unwrap();
            let p0 = fs.bmap(&di, 0).unwrap().unwrap();
            let b0 = fs.block(p0).unwrap();
            assert!(has_dirent_tail(&b0));
            assert_eq!(le16(&b0, 16) as usize, bs - 24);
            assert_eq!(
                fs.block_role(p0),
                Some(BlockRole::DirLeaf {
                    ino: d,
                    gen: di.generation()
                })
            );
            // Through leaf splits and (1 KiB) index splits.
            let n = if block == 1024 { 4000 } else { 1500 };
            fill(&mut fs, d, n);
            let levels = check_layout(&fs, d, true);
            assert_eq!(levels, if block == 1024 { 1 } else { 0 });
        }
    }

    #[test]
    fn without_metadata_csum_leaves_use_the_whole_block() {
        let Some(mut fs) = mem_fs(1024, 16, false) else {
            return;
        };
        assert_eq!(fs.dx_root_limit(), 124);
        assert_eq!(fs.dx_node_limit(), 127);
        let root = fs.root();
        let d = fs.mkdir(root, b"d", &NewFile::default()).unwrap();
        fill(&mut fs, d, 4000);
        assert_eq!(check_layout(&fs, d, false), 1);
    }

    /// A linear block whose entries fill all but the tail: with
    /// metadata_csum a 1-byte name (12 bytes) must not go into the tail;
    /// without, the same 12 bytes at the end take it.
    #[test]
    fn inserting_never_uses_the_tail() {
        for csum in [true, false] {
            let Some(mut fs) = mem_fs(1024, 16, csum) else {
                return;
            };
            let root = fs.root();
            let d = fs.mkdir(root, b"d", &NewFile::default()).unwrap();
            let mut di = fs.read_inode(d).unwrap();
            let p0 = fs.bmap(&di, 0).unwrap().unwrap();
            // `.` and `..` (24 bytes) and 19 entries of 52 bytes: 1012.
            let names: Vec<Vec<u8>> = (0..19).map(|i| format!("{i:044}").into_bytes()).collect();
            let mut ents: Vec<(&[u8], Ino, FileType)> = vec![
                (b".", d, FileType::Directory),
                (b"..", root, FileType::Directory),
            ];
            ents.extend(names.iter().map(|n| (&n[..], 11, FileType::Regular)));
            let blk = fs.pack_dir_block(&ents);
            fs.write_meta_block(p0, &blk).unwrap();
            let fits = fs
                .insert_in_block(&di, 0, p0, b"a", 11, FileType::Regular)
                .unwrap();
            assert_eq!(fits, !csum);
            let b = fs.block(p0).unwrap();
            assert_eq!(has_dirent_tail(&b), csum);
            if csum {
                assert_eq!(b, blk, "the block changed");
                // Adding the name indexes the directory instead.
                fs.add_entry(&mut di, b"a", 11, FileType::Regular).unwrap();
                let di = fs.read_inode(d).unwrap();
                assert_eq!(check_layout(&fs, d, true), 0);
                assert_eq!(fs.lookup(&di, b"a").unwrap().unwrap().ino, 11);
                for n in &names {
                    assert!(fs.lookup(&di, n).unwrap().is_some());
                }
            }
        }
    }

    /// A full index without large_dir: NoSpace, the index kept, and the
    /// failed add changes nothing (tried twice: the same state both times).
    #[test]
    fn a_full_index_is_no_space_and_changes_nothing() {
        let Some(mut fs) = mem_fs(1024, 48, false) else {
            return;
        };
        let root = fs.root();
        let d = fs.mkdir(root, b"d", &NewFile::default()).unwrap();
        let long = |i: usize| format!("{i:06}-{}", "y".repeat(243)).into_bytes();
        let mut i = 0;
        let err = loop {
            let mut di = fs.read_inode(d).unwrap();
            match fs.add_entry(&mut di, &long(i), 11, FileType::Regular) {
                Ok(()) => i += 1,
                Err(e) => break e,
            }
            assert!(i < 100_000);
        };
        assert!(matches!(err, Error::NoSpace(_)), "{err}");
        assert!(err.to_string().contains("the htree index is full"), "{err}");
        let snapshot = |fs: &Filesystem| -> (u64, usize, Vec<Vec<u8>>) {
            let di = fs.read_inode(d).unwrap();
            let blocks = fs
                .dir_blocks(&di)
                .unwrap()
                .iter()
                .map(|&(_, p)| fs.block(p).unwrap())
                .collect();
            (di.size(), fs.staged_meta_blocks(), blocks)
        };
        let before = snapshot(&fs);
        let mut di = fs.read_inode(d).unwrap();
        let again = fs.add_entry(&mut di, &long(i), 11, FileType::Regular);
        assert!(matches!(again, Err(Error::NoSpace(_))), "{again:?}");
        assert!(snapshot(&fs) == before, "the failed add changed something");
        let di = fs.read_inode(d).unwrap();
        assert!(di.has_flag(iflag::INDEX), "the index was dropped");
        assert_eq!(check_layout(&fs, d, false), 1);
        for j in (0..i).step_by(11) {
            assert!(fs.lookup(&di, &long(j)).unwrap().is_some(), "{j}");
        }
    }
}
