//! # ext3edit
//!
//! Read and edit ext2/ext3/ext4 filesystem images as plain files: no root,
//! no loop mount, no FUSE, no VM.
//!
//! ```no_run
//! use ext3edit::{Filesystem, OpenOptions};
//! let mut fs = Filesystem::open("disk.ext3".as_ref(), &OpenOptions::read_write())?;
//! let etc = fs.resolve("/etc", true)?;
//! let attrs = ext3edit::NewFile { perm: 0o644, ..Default::default() };
//! fs.create_file(etc, b"resolv.conf", &attrs, &mut &b"nameserver 10.0.0.1\n"[..])?;
//! fs.commit()?;
//! # Ok::<(), ext3edit::Error>(())
//! ```
//!
//! The engine reads and writes the images `mke2fs` makes (ext2, ext3 and
//! ext4 with its default features: extents at any depth, metadata_csum,
//! 64bit, flex_bg, uninitialised groups, huge_file, dir_nlink,
//! extra_isize, orphan_file; indirect blocks, linear and htree
//! directories, extended attributes). Images with features it cannot
//! write (bigalloc, inline_data, encrypt, casefold, meta_bg, quota, ...)
//! are refused for writing with a message that names them.
//!
//! Layers, bottom up: [`device`] (bytes), [`layout`] (on-disk offsets),
//! [`csum`] (metadata checksums, pure functions), [`superblock`] and
//! [`inode`] (checked records), [`fs`] (staging, allocation, commit),
//! [`journal`] (JBD2 replay and transactions: every commit on ext3 and
//! ext4 goes through the journal), [`bmap`] (one block map over
//! indirect blocks and extents), [`extent`] (growing and cutting extent
//! trees), [`dir`] and [`htree`] (directory entries
//! and the hash index), [`xattr`] (read, set and remove extended
//! attributes), [`file`](mod@file), [`path`] (resolution confined
//! to the image), [`ops`] (operations by inode and name) and [`host`]
//! (copying between the host and the image); [`accounts`] reads the
//! image's own /etc/passwd and /etc/group, and [`selinux`] computes the
//! SELinux label a policy's `file_contexts` gives a path, as libselinux
//! does. On top of them, [`customize`] checks a VM image against a Xen
//! cluster's requirements and plans and applies the changes that make it
//! meet them. [`tar`] makes images from scratch ([`tar::mkfs`], laid out
//! as mke2fs lays them out).

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod accounts;
pub mod container;
pub mod customize;
pub mod device;
pub mod error;
pub mod fs;
// The engine's modules live in src/fs/; they keep their crate-root paths.
pub use fs::{
    bmap, csum, dir, extent, file, htree, inode, journal, layout, orphan, superblock, xattr,
};
pub mod host;
pub mod interrupt;
pub mod ops;
pub mod path;
pub mod selinux;
pub mod tar;
pub mod zero_free;

pub use error::{Error, Result};
pub use fs::{BlockRole, Filesystem, OpenOptions};
pub use inode::{Ino, Inode, Timestamp};
pub use layout::FileType;
pub use ops::NewFile;
