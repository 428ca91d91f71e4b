//! Extended attributes: read them, set and remove them (in the inode body
//! and in an attribute block), and release an inode's attribute block when
//! the inode goes away.
//!
//! Layout: both places hold a list of entries, each 16 bytes of header
//! (`e_name_len`, `e_name_index`, `e_value_offs`, `e_value_inum`,
//! `e_value_size`, `e_hash`) followed by the name, padded to 4 bytes, and
//! ended by four zero bytes. In the inode the list follows the magic
//! `0xEA020000` right after `i_extra_isize`, and value offsets count from
//! the first entry; in a block it follows a 32-byte header (magic,
//! reference count, block count, hash) and offsets count from the block
//! start. Values sit at the end of their region, each padded to 4 bytes.
//! Blocks may be shared by several inodes (reference count).
//!
//! Writing ([`Filesystem::set_xattr`], [`Filesystem::remove_xattr`]):
//! a new or replaced attribute goes in the inode body when the inode is
//! larger than 128 bytes and the whole in-inode list still fits there,
//! else in the attribute block (allocated when the inode has none). The
//! block's entries are kept sorted by (name index, name length, name), as
//! the kernel keeps them; every entry carries its hash and the block header
//! the hash of its entries. A block shared with other inodes is copied on
//! write: the old one loses a reference, this inode gets a private copy.
//! A block left empty is freed. Values stored in their own inode
//! (`ea_inode`) are not supported: a value that fits neither place is an
//! error. Values are written as given: POSIX ACLs
//! (`system.posix_acl_*`) must already be in the on-disk ext4 ACL format.

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::{Ino, Inode};
use crate::layout::{le16, le32, put16, put32};

const XATTR_MAGIC: u32 = 0xEA02_0000;
/// Bytes of the attribute block header.
const BLOCK_HEADER: usize = 32;
/// Bytes of an entry header (before the name).
const ENTRY_HEADER: usize = 16;

/// One extended attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    /// Full name, with its namespace prefix (`user.`, `security.`...).
    pub name: String,
    /// The value bytes.
    pub value: Vec<u8>,
}

fn prefix(index: u8) -> &'static str {
    match index {
        1 => "user.",
        2 => "system.posix_acl_access",
        3 => "system.posix_acl_default",
        4 => "trusted.",
        6 => "security.",
        7 => "system.",
        8 => "system.richacl",
        _ => "unknown.",
    }
}

/// Split a full attribute name into its on-disk name index and the rest
/// of the name (what is stored after the entry header).
///
/// Known prefixes: `user.`, `trusted.`, `security.`, `system.` and the
/// whole names `system.posix_acl_access`, `system.posix_acl_default` and
/// `system.richacl`. Anything else, an empty rest after `user.`,
/// `trusted.` or `security.`, or a rest longer than 255 bytes is
/// [`Error::Invalid`].
pub fn split_name(name: &str) -> Result<(u8, &str)> {
    let exact = [
        ("system.posix_acl_access", 2u8),
        ("system.posix_acl_default", 3),
        ("system.richacl", 8),
    ];
    let split = if let Some(&(_, i)) = exact.iter().find(|(n, _)| *n == name) {
        Some((i, ""))
    } else {
        [
            ("user.", 1u8),
            ("trusted.", 4),
            ("security.", 6),
            ("system.", 7),
        ]
        .iter()
        .find_map(|&(p, i)| name.strip_prefix(p).map(|rest| (i, rest)))
    };
    let Some((index, rest)) = split else {
        return Err(Error::Invalid(format!(
            "attribute name {name:?} has no known namespace \
             (user., trusted., security., system.)"
        )));
    };
    if rest.is_empty() && ![2, 3, 8].contains(&index) {
        return Err(Error::Invalid(format!(
            "attribute name {name:?} is empty after its namespace"
        )));
    }
    if rest.len() > 255 {
        return Err(Error::Invalid(format!(
            "attribute name {name:?} is longer than 255 bytes after its namespace"
        )));
    }
    Ok((index, rest))
}

/// One entry as stored: name index, name bytes and value (or value inode).
#[derive(Clone, Debug, PartialEq, Eq)]
struct RawEntry {
    index: u8,
    name: Vec<u8>,
    /// Non-zero when the value lives in its own inode (`ea_inode`).
    value_inum: u32,
    value_size: usize,
    /// The value bytes when stored in the region (empty for `value_inum`).
    value: Vec<u8>,
}

impl RawEntry {
    fn key(&self) -> (u8, usize, &[u8]) {
        (self.index, self.name.len(), &self.name)
    }
    fn full_name(&self) -> String {
        format!(
            "{}{}",
            prefix(self.index),
            String::from_utf8_lossy(&self.name)
        )
    }
    /// Bytes the entry header and name take.
    fn entry_len(&self) -> usize {
        pad4(ENTRY_HEADER + self.name.len())
    }
    /// Bytes the value takes in the region.
    fn value_len(&self) -> usize {
        pad4(self.value.len())
    }
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// The hash of one entry as ext2/3/4 compute it: the name bytes shifted in
/// five bits at a time, then the value as little-endian 32-bit words
/// (zero-padded), sixteen bits at a time.
fn entry_hash(name: &[u8], value: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 5) ^ (h >> 27) ^ c as u32;
    }
    for chunk in value.chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h << 16) ^ (h >> 16) ^ u32::from_le_bytes(w);
    }
    h
}

/// The block header hash: the entry hashes folded sixteen bits at a time
/// (zero when an entry has no hash).
fn block_hash(hashes: &[u32]) -> u32 {
    let mut h: u32 = 0;
    for &e in hashes {
        if e == 0 {
            return 0;
        }
        h = (h << 16) ^ (h >> 16) ^ e;
    }
    h
}

/// Parse the entry list of a region. `entries_at` is where the first entry
/// starts; value offsets count from `values_base`.
fn raw_entries(
    region: &[u8],
    entries_at: usize,
    values_base: usize,
    what: &str,
) -> Result<Vec<RawEntry>> {
    let mut out = Vec::new();
    let mut off = entries_at;
    while off + 4 <= region.len() && le32(region, off) != 0 {
        if off + ENTRY_HEADER > region.len() {
            return Err(Error::corrupt(format!(
                "{what}: entry at offset {off} runs past the end"
            )));
        }
        let name_len = region[off] as usize;
        let index = region[off + 1];
        let voff = le16(region, off + 2) as usize;
        let vino = le32(region, off + 4);
        let vsize = le32(region, off + 8) as usize;
        if off + ENTRY_HEADER + name_len > region.len() {
            return Err(Error::corrupt(format!(
                "{what}: name at offset {off} runs past the end"
            )));
        }
        let name = region[off + ENTRY_HEADER..off + ENTRY_HEADER + name_len].to_vec();
        let value = if vino != 0 {
            Vec::new()
        } else {
            let start = values_base + voff;
            if start + vsize > region.len() {
                return Err(Error::corrupt(format!(
                    "{what}: value of {}{} ({vsize} bytes at {voff}) runs past the end",
                    prefix(index),
                    String::from_utf8_lossy(&name)
                )));
            }
            region[start..start + vsize].to_vec()
        };
        out.push(RawEntry {
            index,
            name,
            value_inum: vino,
            value_size: vsize,
            value,
        });
        off += pad4(ENTRY_HEADER + name_len);
        if out.len() > 10_000 {
            return Err(Error::corrupt(format!("{what}: too many entries")));
        }
    }
    Ok(out)
}

/// Write `entries` into `region`: entries from `entries_at`, values packed
/// at the end, value offsets counted from `values_base`. The caller has
/// checked that they fit. Returns the entry hashes in order.
fn encode(
    region: &mut [u8],
    entries_at: usize,
    values_base: usize,
    entries: &[RawEntry],
) -> Vec<u32> {
    region[entries_at..].fill(0);
    let mut off = entries_at;
    let mut vend = region.len();
    let mut hashes = Vec::with_capacity(entries.len());
    for e in entries {
        let voff = if e.value.is_empty() {
            0
        } else {
            vend -= e.value_len();
            region[vend..vend + e.value.len()].copy_from_slice(&e.value);
            vend - values_base
        };
        let hash = entry_hash(&e.name, &e.value);
        region[off] = e.name.len() as u8;
        region[off + 1] = e.index;
        put16(region, off + 2, voff as u16);
        put32(region, off + 4, 0);
        put32(region, off + 8, e.value.len() as u32);
        put32(region, off + 12, hash);
        region[off + ENTRY_HEADER..off + ENTRY_HEADER + e.name.len()].copy_from_slice(&e.name);
        off += e.entry_len();
        hashes.push(hash);
    }
    hashes
}

/// Bytes a list needs besides its header: entries, terminator and values.
fn list_len(entries: &[RawEntry]) -> usize {
    entries
        .iter()
        .map(|e| e.entry_len() + e.value_len())
        .sum::<usize>()
        + 4
}

/// Where the in-inode list of `inode` starts (at its magic) and how many
/// bytes it may use after the magic; `None` for 128-byte inodes or when
/// there is no room for even the magic and a terminator.
fn ibody_area(inode: &Inode) -> Option<(usize, usize)> {
    let raw = inode.raw();
    if raw.len() <= 128 {
        return None;
    }
    let start = 128 + inode.extra_isize() as usize;
    if start + 8 > raw.len() {
        return None;
    }
    Some((start, raw.len() - start - 4))
}

/// The attribute lists of one inode, as read for writing.
struct Lists {
    /// In-inode entries (`None`: the inode has no room for any).
    ibody: Option<Vec<RawEntry>>,
    /// Entries of the attribute block (empty when there is none).
    block: Vec<RawEntry>,
}

impl Filesystem {
    /// Every extended attribute of an inode: in-inode ones first.
    pub fn xattrs(&self, inode: &Inode) -> Result<Vec<Xattr>> {
        let mut out = Vec::new();
        let (ibody, block) = self.raw_lists(inode)?;
        for e in ibody.into_iter().flatten().chain(block) {
            let name = e.full_name();
            let value = if e.value_inum != 0 {
                let vi = self.read_inode(e.value_inum)?;
                let mut v = Vec::new();
                self.read_file_range(&vi, 0, e.value_size.min(1 << 20) as u64, &mut v)?;
                v
            } else {
                e.value
            };
            out.push(Xattr { name, value });
        }
        Ok(out)
    }

    /// The value of one attribute of inode `ino`, by full name.
    pub fn get_xattr(&self, ino: Ino, name: &str) -> Result<Option<Vec<u8>>> {
        let inode = self.read_inode(ino)?;
        Ok(self
            .xattrs(&inode)?
            .into_iter()
            .find(|x| x.name == name)
            .map(|x| x.value))
    }

    /// The in-inode list (`None` when the inode has no room for one) and
    /// the block list of an inode.
    fn raw_lists(&self, inode: &Inode) -> Result<(Option<Vec<RawEntry>>, Vec<RawEntry>)> {
        let ibody = match ibody_area(inode) {
            Some((start, _)) => {
                let raw = inode.raw();
                if le32(raw, start) == XATTR_MAGIC {
                    let region = &raw[start + 4..];
                    let what = format!("inode {}: in-inode attributes", inode.ino);
                    Some(raw_entries(region, 0, 0, &what)?)
                } else {
                    Some(Vec::new())
                }
            }
            None => None,
        };
        let blk = inode.file_acl();
        let block = if blk != 0 {
            let data = self.xattr_block(inode)?;
            let what = format!("inode {}: attribute block {blk}", inode.ino);
            raw_entries(&data, BLOCK_HEADER, 0, &what)?
        } else {
            Vec::new()
        };
        Ok((ibody, block))
    }

    /// The attribute block of `inode`, checked (range, magic).
    fn xattr_block(&self, inode: &Inode) -> Result<Vec<u8>> {
        let blk = inode.file_acl();
        let what = format!("inode {}: attribute block {blk}", inode.ino);
        self.check_block(blk, &|| what.clone())?;
        let data = self.block(blk)?;
        if le32(&data, 0) != XATTR_MAGIC {
            return Err(Error::corrupt(format!(
                "{what}: bad magic {:#x}",
                le32(&data, 0)
            )));
        }
        self.verify_block_csum(blk, &data, crate::fs::BlockRole::Xattr)
            .map_err(|e| e.at(&format!("inode {}", inode.ino)))?;
        Ok(data)
    }

    /// Stage attribute block `b` whole and give it its role.
    fn stage_xattr_block(&mut self, b: u64, data: &[u8]) -> Result<()> {
        self.write_meta_block(b, data)?;
        self.set_block_role(b, crate::fs::BlockRole::Xattr);
        Ok(())
    }

    /// Drop one reference to the shared attribute block `b` (`refs` now).
    fn unshare_xattr_block(&mut self, b: u64, refs: u32) -> Result<()> {
        self.modify_block(b, |d| put32(d, 4, refs - 1))?;
        self.set_block_role(b, crate::fs::BlockRole::Xattr);
        Ok(())
    }

    /// Set attribute `name` (full name with its namespace prefix, e.g.
    /// `security.selinux`) of inode `ino` to `value`, creating or
    /// replacing it. Staged like every write: [`Self::commit`] makes it
    /// permanent. Updates the inode's ctime.
    ///
    /// Errors: [`Error::Invalid`] for a bad name, [`Error::NoSpace`] when
    /// the value fits neither in the inode nor in the attribute block
    /// (values in their own inode, `ea_inode`, are not supported) or no
    /// block is free, [`Error::Unsupported`] when the inode already has a
    /// value stored in an `ea_inode`.
    pub fn set_xattr(&mut self, ino: Ino, name: &str, value: &[u8]) -> Result<()> {
        self.ensure_writable()?;
        let (index, rest) = split_name(name)?;
        let mut inode = self.read_inode(ino)?;
        let mut lists = self.lists_for_write(&inode)?;
        let old_block = lists.block.clone();
        lists
            .ibody
            .iter_mut()
            .for_each(|l| l.retain(|e| e.key() != (index, rest.len(), rest.as_bytes())));
        lists
            .block
            .retain(|e| e.key() != (index, rest.len(), rest.as_bytes()));
        let new = RawEntry {
            index,
            name: rest.as_bytes().to_vec(),
            value_inum: 0,
            value_size: value.len(),
            value: value.to_vec(),
        };
        let in_body = match (&mut lists.ibody, ibody_area(&inode)) {
            (Some(l), Some((_, room))) => {
                l.push(new.clone());
                if list_len(l) <= room {
                    true
                } else {
                    l.pop();
                    false
                }
            }
            _ => false,
        };
        if !in_body {
            lists.block.push(new);
            let bs = self.block_size();
            let need = BLOCK_HEADER + list_len(&lists.block);
            if need > bs {
                return Err(Error::NoSpace(format!(
                    "inode {ino}: attribute {name} ({} bytes) does not fit in the inode \
                     or in the {bs}-byte attribute block with the other attributes \
                     ({need} bytes needed); values in their own inode (ea_inode) \
                     are not supported",
                    value.len()
                )));
            }
        }
        self.store_lists(&mut inode, lists, &old_block)
    }

    /// Remove attribute `name` of inode `ino`. Returns `false` (and
    /// changes nothing) when the inode has no such attribute. Frees the
    /// attribute block when it becomes empty (or drops this inode's
    /// reference when it is shared).
    pub fn remove_xattr(&mut self, ino: Ino, name: &str) -> Result<bool> {
        self.ensure_writable()?;
        let (index, rest) = split_name(name)?;
        let mut inode = self.read_inode(ino)?;
        let mut lists = self.lists_for_write(&inode)?;
        let old_block = lists.block.clone();
        let key = (index, rest.len(), rest.as_bytes());
        let before = lists.ibody.as_ref().map_or(0, |l| l.len()) + lists.block.len();
        lists
            .ibody
            .iter_mut()
            .for_each(|l| l.retain(|e| e.key() != key));
        lists.block.retain(|e| e.key() != key);
        let after = lists.ibody.as_ref().map_or(0, |l| l.len()) + lists.block.len();
        if before == after {
            return Ok(false);
        }
        self.store_lists(&mut inode, lists, &old_block)?;
        Ok(true)
    }

    /// Both lists of `inode`, refusing values in `ea_inode`s.
    fn lists_for_write(&self, inode: &Inode) -> Result<Lists> {
        let (ibody, block) = self.raw_lists(inode)?;
        if let Some(e) = ibody
            .iter()
            .flatten()
            .chain(&block)
            .find(|e| e.value_inum != 0)
        {
            return Err(Error::Unsupported(format!(
                "inode {}: attribute {} has its value in inode {} (ea_inode), \
                 which this build cannot write",
                inode.ino,
                e.full_name(),
                e.value_inum
            )));
        }
        if inode.file_acl() != 0 {
            let data = self.xattr_block(inode)?;
            if le32(&data, 8) != 1 {
                return Err(Error::corrupt(format!(
                    "inode {}: attribute block {} claims {} blocks (must be 1)",
                    inode.ino,
                    inode.file_acl(),
                    le32(&data, 8)
                )));
            }
        }
        Ok(Lists { ibody, block })
    }

    /// Write both lists back: the in-inode one into the inode, the block
    /// one (when it changed from `old_block`) into the attribute block,
    /// allocating, copying on write or freeing it as needed.
    fn store_lists(
        &mut self,
        inode: &mut Inode,
        mut lists: Lists,
        old_block: &[RawEntry],
    ) -> Result<()> {
        lists.block.sort_by(|a, b| a.key().cmp(&b.key()));
        let mut sorted_old = old_block.to_vec();
        sorted_old.sort_by(|a, b| a.key().cmp(&b.key()));
        if lists.block != sorted_old || (inode.file_acl() != 0 && lists.block.is_empty()) {
            if lists.block.is_empty() {
                self.release_xattr_block(inode)?;
            } else {
                self.write_xattr_block(inode, &lists.block)?;
            }
        }
        if let (Some(mut list), Some((start, _))) = (lists.ibody, ibody_area(inode)) {
            list.sort_by(|a, b| a.key().cmp(&b.key()));
            let raw = inode.raw_mut();
            if list.is_empty() {
                raw[start..].fill(0);
            } else {
                put32(raw, start, XATTR_MAGIC);
                encode(&mut raw[start + 4..], 0, 0, &list);
            }
        }
        inode.set_ctime(self.now());
        self.note_ext_attr();
        self.write_inode(inode)
    }

    /// Put `entries` (sorted, known to fit) in the attribute block of
    /// `inode`: in place when the inode owns its block alone, else in a
    /// newly allocated block (dropping a reference to a shared one).
    fn write_xattr_block(&mut self, inode: &mut Inode, entries: &[RawEntry]) -> Result<()> {
        let bs = self.block_size();
        let mut data = vec![0u8; bs];
        put32(&mut data, 0, XATTR_MAGIC);
        put32(&mut data, 4, 1);
        put32(&mut data, 8, 1);
        let hashes = encode(&mut data, BLOCK_HEADER, 0, entries);
        put32(&mut data, 12, block_hash(&hashes));
        let old = inode.file_acl();
        let refs = if old != 0 {
            le32(&self.xattr_block(inode)?, 4)
        } else {
            0
        };
        if old != 0 && refs <= 1 {
            return self.stage_xattr_block(old, &data);
        }
        let goal = self.data_goal(inode.ino);
        let b = self.alloc_block(goal)?;
        self.stage_xattr_block(b, &data)?;
        if old != 0 {
            // Copy on write: the others keep the old block.
            self.unshare_xattr_block(old, refs)?;
        } else {
            let spb = bs as u64 / 512;
            self.add_inode_sectors(inode, spb as i64)?;
        }
        inode.set_file_acl(b);
        Ok(())
    }

    /// Sectors that the attribute block adds to `i_blocks`.
    pub(crate) fn xattr_sectors(&self, inode: &Inode) -> u64 {
        if inode.file_acl() != 0 {
            self.block_size() as u64 / 512
        } else {
            0
        }
    }

    /// Drop this inode's reference to its attribute block, freeing the block
    /// when it was the last one.
    pub(crate) fn release_xattr_block(&mut self, inode: &mut Inode) -> Result<()> {
        let blk = inode.file_acl();
        if blk == 0 {
            return Ok(());
        }
        let data = self.xattr_block(inode)?;
        let refs = le32(&data, 4);
        if refs <= 1 {
            self.free_block(blk)?;
        } else {
            self.unshare_xattr_block(blk, refs)?;
        }
        let spb = self.block_size() as u64 / 512;
        self.add_inode_sectors(inode, -(spb as i64))?;
        inode.set_file_acl(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_by_namespace() {
        assert_eq!(split_name("user.foo").unwrap(), (1, "foo"));
        assert_eq!(split_name("security.selinux").unwrap(), (6, "selinux"));
        assert_eq!(split_name("trusted.x").unwrap(), (4, "x"));
        assert_eq!(split_name("system.posix_acl_access").unwrap(), (2, ""));
        assert_eq!(split_name("system.posix_acl_default").unwrap(), (3, ""));
        assert_eq!(split_name("system.data").unwrap(), (7, "data"));
        assert!(split_name("user.").is_err());
        assert!(split_name("foo.bar").is_err());
        assert!(split_name(&format!("user.{}", "a".repeat(256))).is_err());
    }

    #[test]
    fn hashes_fold_name_then_value_words() {
        // name "a": 0x61; value "b\0\0\0" as one word: (0x61 << 16) ^ 0x62
        assert_eq!(entry_hash(b"a", b"b"), (0x61 << 16) ^ 0x62);
        assert_eq!(entry_hash(b"ab", b""), (0x61 << 5) ^ 0x62);
        assert_eq!(block_hash(&[1, 0, 2]), 0);
        assert_eq!(block_hash(&[1, 2]), (1 << 16) ^ 2);
    }
}
