//! Extended attributes: read them (in the inode and in an attribute block)
//! and release an inode's attribute block when the inode goes away.
//!
//! Layout: both places hold a list of entries, each 16 bytes of header
//! (`e_name_len`, `e_name_index`, `e_value_offs`, `e_value_inum`,
//! `e_value_size`, `e_hash`) followed by the name, padded to 4 bytes, and
//! ended by four zero bytes. In the inode the list follows the magic
//! `0xEA020000` right after `i_extra_isize`, and value offsets count from
//! the first entry; in a block it follows a 32-byte header (magic,
//! reference count, block count, hash) and offsets count from the block
//! start. Blocks may be shared by several inodes (reference count).

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::Inode;
use crate::layout::{le16, le32, put32};

const XATTR_MAGIC: u32 = 0xEA02_0000;

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

fn parse_entries(
    fs: &Filesystem,
    region: &[u8],
    entries_at: usize,
    values_base: usize,
    what: &str,
    out: &mut Vec<Xattr>,
) -> Result<()> {
    let mut off = entries_at;
    let mut count = 0;
    while off + 4 <= region.len() && le32(region, off) != 0 {
        if off + 16 > region.len() {
            return Err(Error::corrupt(format!(
                "{what}: entry at offset {off} runs past the end"
            )));
        }
        let name_len = region[off] as usize;
        let index = region[off + 1];
        let voff = le16(region, off + 2) as usize;
        let vino = le32(region, off + 4);
        let vsize = le32(region, off + 8) as usize;
        if off + 16 + name_len > region.len() {
            return Err(Error::corrupt(format!(
                "{what}: name at offset {off} runs past the end"
            )));
        }
        let name = format!(
            "{}{}",
            prefix(index),
            String::from_utf8_lossy(&region[off + 16..off + 16 + name_len])
        );
        let value = if vino != 0 {
            let vi = fs.read_inode(vino)?;
            let mut v = Vec::new();
            fs.read_file_range(&vi, 0, vsize.min(1 << 20) as u64, &mut v)?;
            v
        } else {
            let start = values_base + voff;
            if start + vsize > region.len() {
                return Err(Error::corrupt(format!(
                    "{what}: value of {name} ({vsize} bytes at {voff}) runs past the end"
                )));
            }
            region[start..start + vsize].to_vec()
        };
        out.push(Xattr { name, value });
        off += (16 + name_len + 3) & !3;
        count += 1;
        if count > 10_000 {
            return Err(Error::corrupt(format!("{what}: too many entries")));
        }
    }
    Ok(())
}

impl Filesystem {
    /// Every extended attribute of an inode: in-inode ones first.
    pub fn xattrs(&self, inode: &Inode) -> Result<Vec<Xattr>> {
        let mut out = Vec::new();
        let raw = inode.raw();
        if raw.len() > 128 {
            let start = 128 + inode.extra_isize() as usize;
            if start + 4 <= raw.len() && le32(raw, start) == XATTR_MAGIC {
                let region = &raw[start + 4..];
                parse_entries(
                    self,
                    region,
                    0,
                    0,
                    &format!("inode {}: in-inode attributes", inode.ino),
                    &mut out,
                )?;
            }
        }
        let blk = inode.file_acl();
        if blk != 0 {
            let what = format!("inode {}: attribute block {blk}", inode.ino);
            self.check_block(blk, &|| what.clone())?;
            let data = self.block(blk)?;
            if le32(&data, 0) != XATTR_MAGIC {
                return Err(Error::corrupt(format!(
                    "{what}: bad magic {:#x}",
                    le32(&data, 0)
                )));
            }
            parse_entries(self, &data, 32, 0, &what, &mut out)?;
        }
        Ok(out)
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
        let what = format!("inode {}: attribute block {blk}", inode.ino);
        self.check_block(blk, &|| what.clone())?;
        let data = self.block(blk)?;
        if le32(&data, 0) != XATTR_MAGIC {
            return Err(Error::corrupt(format!("{what}: bad magic")));
        }
        let refs = le32(&data, 4);
        if refs <= 1 {
            self.free_block(blk)?;
        } else {
            self.modify_block(blk, |d| put32(d, 4, refs - 1))?;
        }
        let spb = self.block_size() as u64 / 512;
        inode.set_sectors(inode.sectors(false, 0).saturating_sub(spb));
        inode.set_file_acl(0);
        Ok(())
    }
}
