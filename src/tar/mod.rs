//! Images from scratch and from tar archives, and back: [`mkfs`] (a new
//! ext2/ext3/ext4 image laid out as mke2fs does), [`import`] (a tar stream
//! into an existing image), [`export`] (a tree back as a PAX tar); [`read`]
//! parses tar streams, [`write`] writes PAX headers, [`acl`] converts
//! POSIX ACLs.

pub mod acl;
pub mod export;
pub mod import;
pub mod mkfs;
pub mod read;
pub mod write;
