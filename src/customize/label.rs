//! SELinux labels for what customize creates, and `--selinux-relabel`:
//! the label the image's own policy (its file_contexts, matched as
//! libselinux does: see [`crate::selinux`]) gives each path, stored in the
//! `security.selinux` attribute as the kernel stores it (with a NUL).
//! Images without a policy get no labels.

use std::rc::Rc;

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::Ino;
use crate::layout::FileType;
use crate::selinux::{xattr_value, Policy};

/// The attribute that holds a file's SELinux context.
pub const ATTR: &str = "security.selinux";

/// Label the new inode `ino` at `path` as the policy says (no label when
/// the policy gives none).
pub fn label_new(fs: &mut Filesystem, policy: &Policy, path: &str, ino: Ino) -> Result<()> {
    let ftype = fs.read_inode(ino)?.file_type();
    if let Some(ctx) = policy.label(path, ftype) {
        fs.set_xattr(ino, ATTR, &xattr_value(&ctx))
            .map_err(|e| e.at(path))?;
    }
    Ok(())
}

/// What a relabel did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relabelled {
    /// Inodes visited (each once, whatever its number of names).
    pub inodes: u64,
    /// Inodes whose label changed.
    pub changed: u64,
    /// Inodes the policy gives no label (`<<none>>` or no match): left as
    /// they are.
    pub unlabelled: u64,
}

/// Give every inode of the image the label the policy gives its first
/// path (as setfiles does, without a VM). Long runs commit in steps
/// ([`Filesystem::commit_if_large`]), each a consistent file system; the
/// caller commits the rest.
pub fn relabel(fs: &mut Filesystem, policy: &Policy) -> Result<Relabelled> {
    let mut st = Relabelled::default();
    let mut seen = std::collections::HashSet::new();
    // Each entry waiting on the stack holds its parent's path shared with
    // its siblings, not a path of its own: a wide directory deep in a
    // crafted tree (20,000 names below a 100 KB path) would otherwise
    // take gigabytes before the first of them is labelled.
    let mut stack: Vec<(Rc<str>, Vec<u8>, Ino)> = vec![(Rc::from(""), Vec::new(), fs.root())];
    while let Some((parent, name, ino)) = stack.pop() {
        if !seen.insert(ino) {
            continue;
        }
        let path = if name.is_empty() {
            "/".to_string()
        } else if &*parent == "/" {
            format!("/{}", String::from_utf8_lossy(&name))
        } else {
            format!("{parent}/{}", String::from_utf8_lossy(&name))
        };
        st.inodes += 1;
        let inode = fs.read_inode(ino)?;
        let ftype = inode.file_type();
        match policy.label(&path, ftype) {
            Some(ctx) => {
                let want = xattr_value(&ctx);
                if fs.get_xattr(ino, ATTR)?.as_deref() != Some(&want[..]) {
                    fs.set_xattr(ino, ATTR, &want).map_err(|e| e.at(&path))?;
                    st.changed += 1;
                    fs.commit_if_large()?;
                }
            }
            None => st.unlabelled += 1,
        }
        if ftype == FileType::Directory {
            let entries = fs.read_dir(&inode).map_err(|e| e.at(&path))?;
            let here: Rc<str> = Rc::from(path);
            for e in entries.into_iter().rev() {
                if e.name == b"." || e.name == b".." || seen.contains(&e.ino) {
                    continue;
                }
                if stack.len() > 10_000_000 {
                    return Err(Error::corrupt("directory tree too large to relabel"));
                }
                stack.push((Rc::clone(&here), e.name, e.ino));
            }
        }
    }
    Ok(st)
}
