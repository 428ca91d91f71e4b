//! Changing extent trees (ext4): map new runs of blocks, cut a file back.
//!
//! Reading a tree lives in [`crate::bmap`]; this file writes one.
//!
//! # On disk
//!
//! An extent-mapped inode has the `EXTENTS` flag (0x80000) and its 60-byte
//! `i_block` holds the root node of a B-tree. Every node, in the inode or
//! in a block of its own, starts with a 12-byte `ext4_extent_header`
//! (little endian):
//!
//! | offset | size | field           | meaning                                   |
//! |--------|------|-----------------|-------------------------------------------|
//! | 0      | 2    | `eh_magic`      | `0xF30A`                                  |
//! | 2      | 2    | `eh_entries`    | entries in use                            |
//! | 4      | 2    | `eh_max`        | room for entries (4 in the inode)         |
//! | 6      | 2    | `eh_depth`      | 0 for a leaf; a child has depth - 1       |
//! | 8      | 4    | `eh_generation` | unused (0)                                |
//!
//! followed by `eh_max` 12-byte entries sorted by logical block. In a leaf
//! (depth 0) each is an `ext4_extent`:
//!
//! | offset | size | field      | meaning                                          |
//! |--------|------|------------|--------------------------------------------------|
//! | 0      | 4    | `ee_block` | first logical block                              |
//! | 4      | 2    | `ee_len`   | blocks; above 32768 an unwritten extent of `ee_len - 32768` |
//! | 6      | 2    | `ee_start_hi` | physical start, high 16 bits                  |
//! | 8      | 4    | `ee_start_lo` | physical start, low 32 bits                   |
//!
//! An initialised extent holds at most 32768 blocks, an unwritten one
//! 32767. Above the leaves each entry is an `ext4_extent_idx`:
//!
//! | offset | size | field      | meaning                                          |
//! |--------|------|------------|--------------------------------------------------|
//! | 0      | 4    | `ei_block` | first logical block of the child (equal to the child's first entry) |
//! | 4      | 4    | `ei_leaf_lo` | child node block, low 32 bits                  |
//! | 8      | 2    | `ei_leaf_hi` | child node block, high 16 bits                 |
//! | 10     | 2    | `ei_unused` | 0                                               |
//!
//! A node in a block has room for `(block_size - 12) / 12` entries; with
//! `metadata_csum` the last 4 bytes of the block are the
//! `ext4_extent_tail` (crc32c over the inode number, generation and the
//! block up to the tail), which takes room from the entries when the block
//! size leaves no spare bytes. The checksum is set at commit from the
//! block's [`BlockRole::ExtentNode`]; this module only gives the role.
//! Every tree block counts in the inode's `i_blocks`, as data blocks do.
//!
//! # How the tree changes
//!
//! * A new run is merged into its left (or right) neighbour when the
//!   logical and physical blocks both follow on, up to 32768 blocks; else
//!   it becomes a new entry. Holes stay holes.
//! * A full node splits: appending (the usual case: files are written from
//!   start to end) moves nothing and starts a new node holding the new
//!   entry, so sequential writes leave full nodes; an insertion in the
//!   middle moves the upper half. The new node's first key goes into the
//!   parent, which may split in turn. When the root in the inode is full,
//!   its entries move to a new block and the root becomes one index entry
//!   one level deeper. Depth is limited to 5, as in the kernel.
//! * Cutting a file at logical block `keep` removes the extents at or past
//!   it, trims the one across it, frees leaf and index blocks left empty,
//!   and then pulls the tree back into fewer levels while the entries of
//!   the root's children fit in the inode (so that e2fsck never finds a
//!   tree that "could be shorter").
//! * Writing into an unwritten (preallocated) extent is refused: nothing
//!   ext3edit writes creates one, and converting it needs a split that
//!   keeps the rest unwritten.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::fs::{BlockRole, Filesystem};
use crate::inode::Inode;
use crate::layout::{feature, iflag, le16, le32};

/// `eh_magic`.
pub const MAGIC: u16 = 0xF30A;
/// Most blocks in one initialised extent.
pub const MAX_INIT_LEN: u64 = 32768;
/// The kernel's deepest tree.
pub const MAX_DEPTH: u16 = 5;
/// Entries in the root node inside `i_block`.
const ROOT_MAX: u16 = 4;
const HDR: usize = 12;
const ENT: usize = 12;

/// One node of the tree, decoded.
#[derive(Clone, Debug)]
struct Node {
    /// Where it lives: `None` for the root in the inode.
    blk: Option<u64>,
    depth: u16,
    max: u16,
    ents: Vec<[u8; ENT]>,
}

/// One step down a path from the root: the node, and which entry the path
/// follows (for an index node).
#[derive(Clone, Debug)]
struct Step {
    node: Node,
    at: usize,
}

fn key(e: &[u8; ENT]) -> u64 {
    le32(e, 0) as u64
}

/// (logical start, length, physical start, unwritten) of a leaf entry.
fn leaf(e: &[u8; ENT]) -> (u64, u64, u64, bool) {
    let raw = le16(e, 4) as u64;
    let (len, uninit) = if raw > MAX_INIT_LEN {
        (raw - MAX_INIT_LEN, true)
    } else {
        (raw, false)
    };
    let pblk = (le16(e, 6) as u64) << 32 | le32(e, 8) as u64;
    (le32(e, 0) as u64, len, pblk, uninit)
}

fn make_leaf(lblk: u64, len: u64, pblk: u64, uninit: bool) -> [u8; ENT] {
    let mut e = [0u8; ENT];
    e[0..4].copy_from_slice(&(lblk as u32).to_le_bytes());
    let raw = if uninit { len + MAX_INIT_LEN } else { len };
    e[4..6].copy_from_slice(&(raw as u16).to_le_bytes());
    e[6..8].copy_from_slice(&((pblk >> 32) as u16).to_le_bytes());
    e[8..12].copy_from_slice(&(pblk as u32).to_le_bytes());
    e
}

fn child(e: &[u8; ENT]) -> u64 {
    (le16(e, 8) as u64) << 32 | le32(e, 4) as u64
}

fn make_idx(lblk: u64, child: u64) -> [u8; ENT] {
    let mut e = [0u8; ENT];
    e[0..4].copy_from_slice(&(lblk as u32).to_le_bytes());
    e[4..8].copy_from_slice(&(child as u32).to_le_bytes());
    e[8..10].copy_from_slice(&((child >> 32) as u16).to_le_bytes());
    e
}

fn set_key(e: &mut [u8; ENT], k: u64) {
    e[0..4].copy_from_slice(&(k as u32).to_le_bytes());
}

/// Encode header and entries into the front of `d`; the rest of the entry
/// area (up to `eh_max`) is zeroed, anything after it (the tail) is kept.
fn encode(node: &Node, d: &mut [u8]) {
    d[0..2].copy_from_slice(&MAGIC.to_le_bytes());
    d[2..4].copy_from_slice(&(node.ents.len() as u16).to_le_bytes());
    d[4..6].copy_from_slice(&node.max.to_le_bytes());
    d[6..8].copy_from_slice(&node.depth.to_le_bytes());
    d[8..12].fill(0);
    for (i, e) in node.ents.iter().enumerate() {
        d[HDR + i * ENT..HDR + (i + 1) * ENT].copy_from_slice(e);
    }
    let end = (HDR + node.max as usize * ENT).min(d.len());
    d[HDR + node.ents.len() * ENT..end].fill(0);
}

/// An empty depth-0 root for `i_block`.
pub fn empty_root() -> [u8; 60] {
    let mut r = [0u8; 60];
    encode(
        &Node {
            blk: None,
            depth: 0,
            max: ROOT_MAX,
            ents: Vec::new(),
        },
        &mut r,
    );
    r
}

impl Filesystem {
    /// True when new files get extent trees (the `extent` feature is on).
    pub fn extent_feature(&self) -> bool {
        self.superblock().has_incompat(feature::INCOMPAT_EXTENTS)
    }

    /// Make `inode` (mapping nothing yet) extent-mapped with an empty root.
    pub fn init_extent_root(&self, inode: &mut Inode) {
        inode.set_flags(inode.flags() | iflag::EXTENTS);
        inode.block_bytes_mut().copy_from_slice(&empty_root());
    }

    /// Entries an extent block has room for.
    fn ext_block_max(&self) -> u16 {
        let bs = self.block_size();
        let tail = if self
            .superblock()
            .has_ro_compat(feature::RO_COMPAT_METADATA_CSUM)
        {
            4
        } else {
            0
        };
        ((bs - HDR - tail) / ENT) as u16
    }

    fn decode(&self, ino: u32, blk: Option<u64>, d: &[u8], depth: Option<u16>) -> Result<Node> {
        let what = || match blk {
            Some(b) => format!("inode {ino}: extent tree block {b}"),
            None => format!("inode {ino}: extent tree root"),
        };
        if le16(d, 0) != MAGIC {
            return Err(Error::corrupt(format!(
                "{}: bad node magic {:#06x}",
                what(),
                le16(d, 0)
            )));
        }
        let n = le16(d, 2);
        let max = le16(d, 4);
        let dep = le16(d, 6);
        let room = match blk {
            None => ROOT_MAX,
            // A node written without a tail may have one entry more.
            Some(_) => ((self.block_size() - HDR) / ENT) as u16,
        };
        if max == 0 || max > room || n > max {
            return Err(Error::corrupt(format!(
                "{}: node claims {n} entries with room for {max}",
                what()
            )));
        }
        if dep > MAX_DEPTH || depth.is_some_and(|x| x != dep) {
            return Err(Error::corrupt(format!("{}: bad node depth {dep}", what())));
        }
        let ents = (0..n as usize)
            .map(|i| d[HDR + i * ENT..HDR + (i + 1) * ENT].try_into().unwrap())
            .collect::<Vec<[u8; ENT]>>();
        if ents.windows(2).any(|w| key(&w[0]) >= key(&w[1])) {
            return Err(Error::corrupt(format!("{}: entries out of order", what())));
        }
        Ok(Node {
            blk,
            depth: dep,
            max,
            ents,
        })
    }

    fn load_root(&self, inode: &Inode) -> Result<Node> {
        self.decode(inode.ino, None, inode.block_bytes(), None)
    }

    fn load_node(&self, inode: &Inode, b: u64, depth: u16) -> Result<Node> {
        let ino = inode.ino;
        self.check_block(b, &|| format!("inode {ino}: extent tree block"))?;
        let d = self.block(b)?;
        // metadata_csum: never build on a node whose checksum is wrong.
        let gen = inode.generation();
        self.verify_block_csum(b, &d, BlockRole::ExtentNode { ino, gen })?;
        self.decode(ino, Some(b), &d, Some(depth))
    }

    fn store(&mut self, inode: &mut Inode, node: &Node) -> Result<()> {
        match node.blk {
            None => encode(node, inode.block_bytes_mut()),
            Some(b) => {
                self.modify_block(b, |d| encode(node, d))?;
                self.set_block_role(
                    b,
                    BlockRole::ExtentNode {
                        ino: inode.ino,
                        gen: inode.generation(),
                    },
                );
            }
        }
        Ok(())
    }

    /// The path from the root to the leaf where logical block `lblk`
    /// belongs.
    fn ext_path(&self, inode: &Inode, lblk: u64) -> Result<Vec<Step>> {
        let mut path = Vec::new();
        let mut node = self.load_root(inode)?;
        loop {
            if node.depth == 0 {
                path.push(Step { node, at: 0 });
                return Ok(path);
            }
            if node.ents.is_empty() {
                return Err(Error::corrupt(format!(
                    "inode {}: extent index node with no entries",
                    inode.ino
                )));
            }
            // The last entry starting at or before lblk (else the first).
            let at = node.ents.iter().rposition(|e| key(e) <= lblk).unwrap_or(0);
            let c = child(&node.ents[at]);
            let d = node.depth - 1;
            path.push(Step { node, at });
            if path.len() > MAX_DEPTH as usize {
                return Err(Error::corrupt(format!(
                    "inode {}: extent tree deeper than {MAX_DEPTH}",
                    inode.ino
                )));
            }
            node = self.load_node(inode, c, d)?;
        }
    }

    /// A new, empty tree block near `*goal`, counted in `i_blocks`.
    fn alloc_tree_block(&mut self, inode: &mut Inode, goal: &mut u64) -> Result<u64> {
        let b = self.alloc_block(*goal)?;
        *goal = b + 1;
        self.write_meta_block(b, &vec![0u8; self.block_size()])?;
        let spb = self.block_size() as u64 / 512;
        self.add_inode_sectors(inode, spb as i64)?;
        Ok(b)
    }

    /// After the first key of `path[level]` changed, carry it up into the
    /// index entries that lead there.
    fn fix_keys(&mut self, inode: &mut Inode, path: &mut [Step], level: usize) -> Result<()> {
        let Some(first) = path[level].node.ents.first() else {
            return Ok(());
        };
        let k = key(first);
        for l in (0..level).rev() {
            let at = path[l].at;
            if key(&path[l].node.ents[at]) == k {
                break;
            }
            set_key(&mut path[l].node.ents[at], k);
            let n = path[l].node.clone();
            self.store(inode, &n)?;
            if at != 0 {
                break;
            }
        }
        Ok(())
    }

    /// Insert entry `ent` at position `pos` of the node `path[level]`,
    /// splitting full nodes and growing the tree as needed.
    fn insert_at(
        &mut self,
        inode: &mut Inode,
        path: &mut Vec<Step>,
        level: usize,
        pos: usize,
        ent: [u8; ENT],
        goal: &mut u64,
    ) -> Result<()> {
        if path[level].node.ents.len() < path[level].node.max as usize {
            path[level].node.ents.insert(pos, ent);
            let n = path[level].node.clone();
            self.store(inode, &n)?;
            if pos == 0 {
                self.fix_keys(inode, path, level)?;
            }
            return Ok(());
        }
        if level == 0 {
            // The root in the inode is full: its entries move to a new
            // block, and the root becomes one index entry, a level deeper.
            let root = &path[0].node;
            if root.depth >= MAX_DEPTH {
                return Err(Error::NoSpace(format!(
                    "inode {}: the extent tree would be deeper than {MAX_DEPTH} levels (the file is too fragmented)",
                    inode.ino
                )));
            }
            let b = self.alloc_tree_block(inode, goal)?;
            let moved = Node {
                blk: Some(b),
                depth: root.depth,
                max: self.ext_block_max(),
                ents: root.ents.clone(),
            };
            self.store(inode, &moved)?;
            let first = moved.ents.first().map(key).unwrap_or(0);
            let new_root = Node {
                blk: None,
                depth: root.depth + 1,
                max: ROOT_MAX,
                ents: vec![make_idx(first, b)],
            };
            self.store(inode, &new_root)?;
            let at = path[0].at;
            path[0] = Step {
                node: new_root,
                at: 0,
            };
            path.insert(1, Step { node: moved, at });
            return self.insert_at(inode, path, 1, pos, ent, goal);
        }
        // Split a full block node.
        let n = path[level].node.ents.len();
        let m = if pos >= n { n } else { n / 2 };
        let b = self.alloc_tree_block(inode, goal)?;
        let mut right = Node {
            blk: Some(b),
            depth: path[level].node.depth,
            max: self.ext_block_max(),
            ents: path[level].node.ents.split_off(m),
        };
        let went_left = pos < m;
        if went_left {
            path[level].node.ents.insert(pos, ent);
        } else {
            right.ents.insert(pos - m, ent);
        }
        let left = path[level].node.clone();
        self.store(inode, &left)?;
        self.store(inode, &right)?;
        if went_left && pos == 0 {
            self.fix_keys(inode, path, level)?;
        }
        let k = key(&right.ents[0]);
        let ppos = path[level - 1].at + 1;
        self.insert_at(inode, path, level - 1, ppos, make_idx(k, b), goal)
    }

    /// Map `len` (at most 32768) new physical blocks `pblk..` at logical
    /// `lblk..` of an extent-mapped inode. Tree blocks it needs are taken
    /// near `*goal` and counted in `i_blocks`; the data blocks are the
    /// caller's to count.
    pub(crate) fn ext_insert(
        &mut self,
        inode: &mut Inode,
        lblk: u64,
        pblk: u64,
        len: u64,
        goal: &mut u64,
    ) -> Result<()> {
        debug_assert!(len > 0 && len <= MAX_INIT_LEN);
        let ino = inode.ino;
        let mut path = self.ext_path(inode, lblk)?;
        let lv = path.len() - 1;
        let ents = &path[lv].node.ents;
        let pos = ents
            .iter()
            .position(|e| key(e) > lblk)
            .unwrap_or(ents.len());
        let overlap = |e: &[u8; ENT]| -> Result<()> {
            let (s, l, _, u) = leaf(e);
            if s < lblk + len && lblk < s + l {
                return Err(if u {
                    Error::Unsupported(format!(
                        "inode {ino}: logical block {} lies in an unwritten (preallocated) extent; writing into one is not supported yet",
                        lblk.max(s)
                    ))
                } else {
                    Error::corrupt(format!(
                        "inode {ino}: logical block {} is already mapped",
                        lblk.max(s)
                    ))
                });
            }
            Ok(())
        };
        if pos > 0 {
            overlap(&ents[pos - 1])?;
        }
        if pos < ents.len() {
            overlap(&ents[pos])?;
        }
        // Merge into the left neighbour.
        if pos > 0 {
            let (s, l, p, u) = leaf(&ents[pos - 1]);
            if !u && s + l == lblk && p + l == pblk && l < MAX_INIT_LEN {
                let take = len.min(MAX_INIT_LEN - l);
                path[lv].node.ents[pos - 1] = make_leaf(s, l + take, p, false);
                let n = path[lv].node.clone();
                self.store(inode, &n)?;
                if take < len {
                    return self.ext_insert(inode, lblk + take, pblk + take, len - take, goal);
                }
                return Ok(());
            }
        }
        // Merge into the right neighbour.
        if pos < ents.len() {
            let (s, l, p, u) = leaf(&ents[pos]);
            if !u && lblk + len == s && pblk + len == p && l + len <= MAX_INIT_LEN {
                path[lv].node.ents[pos] = make_leaf(lblk, l + len, pblk, false);
                let n = path[lv].node.clone();
                self.store(inode, &n)?;
                if pos == 0 {
                    self.fix_keys(inode, &mut path, lv)?;
                }
                return Ok(());
            }
        }
        self.insert_at(
            inode,
            &mut path,
            lv,
            pos,
            make_leaf(lblk, len, pblk, false),
            goal,
        )
    }

    /// Allocate up to `want` blocks near `*goal` for logical blocks
    /// `lblk..` of an extent-mapped inode and map them (one run, at most
    /// 32768 blocks). Returns (first physical block, count). `*goal` moves
    /// past what was allocated.
    pub(crate) fn ext_map_new_run(
        &mut self,
        inode: &mut Inode,
        lblk: u64,
        want: u64,
        goal: &mut u64,
    ) -> Result<(u64, u64)> {
        let want = want.clamp(1, MAX_INIT_LEN);
        if lblk + want > 1 << 32 {
            return Err(Error::Invalid(format!(
                "inode {}: logical block {} is beyond what an extent can map",
                inode.ino,
                lblk + want - 1
            )));
        }
        let (b, n) = self.alloc_blocks(*goal, want as u32)?;
        let n = n as u64;
        *goal = b + n;
        let spb = self.block_size() as u64 / 512;
        self.add_inode_sectors(inode, (n * spb) as i64)?;
        self.ext_insert(inode, lblk, b, n, goal)?;
        Ok((b, n))
    }

    /// Remove every extent at or past logical block `keep` (trimming the one
    /// across it), free their blocks and the tree blocks left empty, and
    /// make the tree as shallow as its entries allow. Updates `i_blocks`.
    pub(crate) fn ext_truncate(&mut self, inode: &mut Inode, keep: u64) -> Result<()> {
        let mut root = self.load_root(inode)?;
        let mut freed: Vec<(u64, u64)> = Vec::new();
        let mut seen = HashSet::new();
        self.trunc_node(inode, &mut root, keep, &mut freed, &mut seen)?;
        if root.ents.is_empty() {
            root.depth = 0;
            root.max = ROOT_MAX;
        }
        // Pull the children up while all their entries fit in the root.
        while root.depth > 0 {
            let mut kids = Vec::new();
            let mut total = 0;
            for e in &root.ents {
                let c = self.load_node(inode, child(e), root.depth - 1)?;
                total += c.ents.len();
                kids.push(c);
            }
            if total > root.max as usize {
                break;
            }
            root.ents = kids.iter().flat_map(|k| k.ents.iter().copied()).collect();
            root.depth -= 1;
            for k in &kids {
                freed.push((k.blk.unwrap_or(0), 1));
            }
        }
        self.store(inode, &root)?;
        let mut total = 0u64;
        freed.sort_unstable();
        for w in freed.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                return Err(Error::corrupt(format!(
                    "inode {}: block {} is mapped twice",
                    inode.ino, w[1].0
                )));
            }
        }
        for &(b, n) in &freed {
            let ino = inode.ino;
            self.check_block(b, &|| format!("inode {ino}: freeing block"))?;
            self.check_block(b + n - 1, &|| format!("inode {ino}: freeing block"))?;
            self.free_blocks_run(b, n as u32)?;
            total += n;
        }
        let spb = self.block_size() as u64 / 512;
        self.add_inode_sectors(inode, -((total * spb) as i64))?;
        Ok(())
    }

    fn trunc_node(
        &mut self,
        inode: &mut Inode,
        node: &mut Node,
        keep: u64,
        freed: &mut Vec<(u64, u64)>,
        seen: &mut HashSet<u64>,
    ) -> Result<()> {
        let mut changed = false;
        if node.depth == 0 {
            while let Some(e) = node.ents.last().copied() {
                let (s, l, p, u) = leaf(&e);
                if s >= keep {
                    if l > 0 {
                        freed.push((p, l));
                    }
                    node.ents.pop();
                    changed = true;
                    continue;
                }
                if s + l > keep {
                    let cut = s + l - keep;
                    freed.push((p + (keep - s), cut));
                    *node.ents.last_mut().unwrap() = make_leaf(s, l - cut, p, u);
                    changed = true;
                }
                break;
            }
        } else {
            let mut i = node.ents.len();
            while i > 0 {
                i -= 1;
                let next = node.ents.get(i + 1).map(key).unwrap_or(u64::MAX);
                if next <= keep {
                    break;
                }
                let c = child(&node.ents[i]);
                if !seen.insert(c) {
                    return Err(Error::corrupt(format!(
                        "inode {}: extent tree block {c} is used twice",
                        inode.ino
                    )));
                }
                let mut kid = self.load_node(inode, c, node.depth - 1)?;
                let before = kid.ents.clone();
                self.trunc_node(inode, &mut kid, keep, freed, seen)?;
                if kid.ents.is_empty() {
                    freed.push((c, 1));
                    node.ents.remove(i);
                    changed = true;
                } else if kid.ents != before {
                    self.store(inode, &kid)?;
                }
            }
        }
        if changed && node.blk.is_some() {
            self.store(inode, node)?;
        }
        Ok(())
    }

    /// Depth of an extent-mapped inode's tree (0: all in the inode).
    pub fn extent_depth(&self, inode: &Inode) -> Result<u16> {
        Ok(self.load_root(inode)?.depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;
    use crate::fs::OpenOptions;
    use crate::ops::NewFile;

    #[test]
    fn entries_encode_and_decode() {
        let e = make_leaf(7, 32768, 0x1_2345_6789, false);
        assert_eq!(leaf(&e), (7, 32768, 0x1_2345_6789, false));
        let u = make_leaf(9, 10, 100, true);
        assert_eq!(leaf(&u), (9, 10, 100, true));
        assert_eq!(le16(&u, 4), 32778);
        let i = make_idx(5, 0xAB_0000_0001);
        assert_eq!((key(&i), child(&i)), (5, 0xAB_0000_0001));
        let r = empty_root();
        assert_eq!(le16(&r, 0), MAGIC);
        assert_eq!((le16(&r, 2), le16(&r, 4), le16(&r, 6)), (0, 4, 0));
    }

    /// The 1 KiB-block sample image with `extent` turned on, and an empty
    /// extent-mapped file in it.
    fn sample() -> (Filesystem, Inode) {
        let mut bytes =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample.ext3")).unwrap();
        bytes[1024 + 0x60] |= 0x40;
        let mut fs =
            Filesystem::open_device(Box::new(MemDevice::new(bytes)), &OpenOptions::read_write())
                .unwrap();
        let root = fs.root();
        let ino = fs
            .create_file_from_vec(root, b"t", &NewFile::default(), Vec::new())
            .unwrap();
        let inode = fs.read_inode(ino).unwrap();
        assert!(inode.has_flag(iflag::EXTENTS));
        (fs, inode)
    }

    /// Walk the tree: every index key equals its child's first key, every
    /// node is within its room, all leaves are at depth 0, and every block
    /// node has the extent role. Returns (leaf entries, tree blocks).
    fn check_tree(fs: &Filesystem, inode: &Inode) -> (Vec<(u64, u64, u64)>, u64) {
        fn walk(
            fs: &Filesystem,
            inode: &Inode,
            n: &Node,
            out: &mut Vec<(u64, u64, u64)>,
            blocks: &mut u64,
        ) {
            assert!(n.ents.len() <= n.max as usize);
            if let Some(b) = n.blk {
                *blocks += 1;
                assert!(matches!(
                    fs.block_role(b),
                    Some(BlockRole::ExtentNode { ino, .. }) if ino == inode.ino
                ));
            }
            for e in &n.ents {
                if n.depth == 0 {
                    let (l, len, p, _) = leaf(e);
                    out.push((l, len, p));
                } else {
                    let c = fs.load_node(inode, child(e), n.depth - 1).unwrap();
                    assert!(!c.ents.is_empty());
                    assert_eq!(key(&c.ents[0]), key(e), "index key = child's first key");
                    walk(fs, inode, &c, out, blocks);
                }
            }
        }
        let mut out = Vec::new();
        let mut blocks = 0;
        walk(
            fs,
            inode,
            &fs.load_root(inode).unwrap(),
            &mut out,
            &mut blocks,
        );
        (out, blocks)
    }

    #[test]
    fn random_order_inserts_split_nodes_up_to_depth_three() {
        let (mut fs, mut inode) = sample();
        // 1 KiB blocks: 84 entries a block, 4 in the root; depth 2 holds
        // 4 * 84 * 84 = 28224 extents. One-block extents with holes between
        // them never merge. A fixed shuffle: (k * 7919 + 5) mod n, so that
        // block 0 comes late and moves the first keys up every level.
        let n = 28_600u64;
        let mut goal = 0;
        for k in 0..n {
            let i = (k * 7919 + 5) % n;
            // Data blocks are not allocated here: only the tree is tested.
            fs.ext_insert(&mut inode, 2 * i, 100 + i % 3000, 1, &mut goal)
                .unwrap();
        }
        assert_eq!(fs.extent_depth(&inode).unwrap(), 3);
        let (ents, blocks) = check_tree(&fs, &inode);
        let want: Vec<_> = (0..n).map(|i| (2 * i, 1, 100 + i % 3000)).collect();
        assert_eq!(ents, want);
        // i_blocks counts exactly the tree blocks (no data was counted).
        assert_eq!(inode.sectors(false, 0), blocks * 2);
        // Mapping an occupied block is refused.
        let e = fs
            .ext_insert(&mut inode, 2 * 77, 5, 1, &mut goal)
            .unwrap_err();
        assert!(e.to_string().contains("already mapped"), "{e}");
    }

    #[test]
    fn runs_merge_up_to_32768_blocks_and_on_both_sides() {
        let (mut fs, mut inode) = sample();
        let mut goal = 0;
        fs.ext_insert(&mut inode, 0, 1000, 30000, &mut goal)
            .unwrap();
        fs.ext_insert(&mut inode, 30000, 31000, 5000, &mut goal)
            .unwrap();
        let (ents, _) = check_tree(&fs, &inode);
        assert_eq!(ents, vec![(0, 32768, 1000), (32768, 2232, 33768)]);
        // A run just before an extent joins it from the left.
        fs.ext_insert(&mut inode, 40000, 50000, 10, &mut goal)
            .unwrap();
        fs.ext_insert(&mut inode, 39990, 49990, 10, &mut goal)
            .unwrap();
        let (ents, _) = check_tree(&fs, &inode);
        assert_eq!(ents[2], (39990, 20, 49990));
        assert_eq!(ents.len(), 3);
    }
}
