//! Path resolution inside the image.
//!
//! Paths are resolved against the image's own root, never the host's: `..`
//! at the root stays at the root, and a symbolic link's target (absolute or
//! relative) is resolved inside the image too. `..` is taken from the stack
//! of directories walked, not from the on-disk `..` entries, so a corrupt
//! `..` cannot lead anywhere unexpected. At most 40 links are followed.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::Ino;
use crate::layout::ROOT_INO;

/// Links followed before giving up, as Linux does.
pub const MAX_SYMLINKS: u32 = 40;

fn components(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| c.to_vec())
        .collect()
}

/// Split a path into (parent part, last component).
pub fn split_last(path: &str) -> Option<(&str, &str)> {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return None;
    }
    match t.rfind('/') {
        Some(i) => Some((if i == 0 { "/" } else { &t[..i] }, &t[i + 1..])),
        None => Some(("/", t)),
    }
}

impl Filesystem {
    /// Resolve `path` to an inode. With `follow_final`, a symlink as last
    /// component is followed too.
    pub fn resolve(&self, path: &str, follow_final: bool) -> Result<Ino> {
        self.resolve_bytes(path.as_bytes(), follow_final)
            .map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound(path.to_string()),
                Error::NotADirectory(_) => Error::NotADirectory(path.to_string()),
                other => other.at(path),
            })
    }

    fn resolve_bytes(&self, path: &[u8], follow_final: bool) -> Result<Ino> {
        let stack = self.resolve_chain(vec![ROOT_INO], path, follow_final)?;
        Ok(*stack.last().unwrap())
    }

    /// Resolve `path` starting in the last directory of `dirs`, the chain
    /// of directories from the root down (`dirs[0]` is taken to be the
    /// root, whatever it holds); returns the chain down to what `path`
    /// names. `..` pops the chain, never past the root, and absolute
    /// link targets restart at the root: the result stays inside the
    /// image. Get a starting chain with [`Self::dir_chain`].
    pub fn resolve_chain(
        &self,
        mut dirs: Vec<Ino>,
        path: &[u8],
        follow_final: bool,
    ) -> Result<Vec<Ino>> {
        if dirs.is_empty() {
            dirs.push(ROOT_INO);
        }
        dirs[0] = ROOT_INO;
        let mut stack = dirs;
        let mut todo = components(path);
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let cur = *stack.last().unwrap();
            let dir = self.read_inode(cur)?;
            if !dir.is_dir() {
                return Err(Error::NotADirectory(String::new()));
            }
            let Some(e) = self.lookup(&dir, &c)? else {
                return Err(Error::NotFound(String::new()));
            };
            let is_last = todo.is_empty();
            let inode = self.read_inode(e.ino)?;
            if inode.is_symlink() && (!is_last || follow_final) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::Invalid("too many levels of symbolic links".into()));
                }
                let target = self.read_link(&inode)?;
                if target.first() == Some(&b'/') {
                    stack.truncate(1);
                }
                let mut t = components(&target);
                t.extend(todo);
                todo = t;
                continue;
            }
            stack.push(e.ino);
        }
        Ok(stack)
    }

    /// The chain of directories from the root down to directory `dir`,
    /// found by following the `..` entries up (at most 4096 levels).
    pub fn dir_chain(&self, dir: Ino) -> Result<Vec<Ino>> {
        let mut chain = vec![dir];
        let mut cur = dir;
        while cur != ROOT_INO {
            let d = self.read_inode(cur)?;
            if !d.is_dir() {
                return Err(Error::NotADirectory(format!("inode {cur}")));
            }
            let up = self
                .lookup(&d, b"..")?
                .ok_or_else(|| Error::corrupt(format!("directory inode {cur} has no .. entry")))?;
            if chain.len() > 4096 || chain.contains(&up.ino) {
                return Err(Error::corrupt(format!(
                    "directory inode {dir}: its .. entries do not lead to the root"
                )));
            }
            chain.push(up.ino);
            cur = up.ino;
        }
        chain.reverse();
        Ok(chain)
    }

    /// Resolve the parent directory of `path` (following links) and return
    /// it with the last component's name.
    pub fn resolve_parent(&self, path: &str) -> Result<(Ino, Vec<u8>)> {
        let (parent, name) = split_last(path)
            .ok_or_else(|| Error::Invalid(format!("{path}: the root directory has no parent")))?;
        if name == "." || name == ".." {
            return Err(Error::Invalid(format!(
                "{path}: path must not end in . or .."
            )));
        }
        let p = self.resolve(parent, true)?;
        if !self.read_inode(p)?.is_dir() {
            return Err(Error::NotADirectory(parent.to_string()));
        }
        Ok((p, name.as_bytes().to_vec()))
    }

    /// Like [`Self::resolve`], but `Ok(None)` when the path does not exist.
    pub fn try_resolve(&self, path: &str, follow_final: bool) -> Result<Option<Ino>> {
        match self.resolve(path, follow_final) {
            Ok(i) => Ok(Some(i)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;
    use crate::fs::OpenOptions;

    fn sample() -> Filesystem {
        let img =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample.ext3")).unwrap();
        Filesystem::open_device(Box::new(MemDevice::new(img)), &OpenOptions::read_write()).unwrap()
    }

    #[test]
    fn split_last_cases() {
        assert_eq!(split_last("/a/b"), Some(("/a", "b")));
        assert_eq!(split_last("/a/b/"), Some(("/a", "b")));
        assert_eq!(split_last("/a"), Some(("/", "a")));
        assert_eq!(split_last("a"), Some(("/", "a")));
        assert_eq!(split_last("/"), None);
    }

    #[test]
    fn dotdot_never_leaves_the_root() {
        let fs = sample();
        let etc = fs.resolve("/etc", true).unwrap();
        assert_eq!(fs.resolve("/../../etc", true).unwrap(), etc);
        assert_eq!(fs.resolve("/etc/../..", true).unwrap(), ROOT_INO);
    }

    #[test]
    fn symlinks_resolve_inside_the_image() {
        let mut fs = sample();
        let root = fs.root();
        let a = crate::ops::NewFile::default();
        // Absolute and escaping relative targets both stay inside.
        fs.symlink(root, b"abs", b"/etc", &a).unwrap();
        fs.symlink(root, b"up", b"../../../../etc", &a).unwrap();
        let etc = fs.resolve("/etc", true).unwrap();
        assert_eq!(fs.resolve("/abs", true).unwrap(), etc);
        assert_eq!(fs.resolve("/up", true).unwrap(), etc);
        assert_ne!(fs.resolve("/up", false).unwrap(), etc);
        assert!(fs.resolve("/abs/hosts", false).is_ok());
        // Loops end with an error, not a hang.
        fs.symlink(root, b"loop1", b"/loop2", &a).unwrap();
        fs.symlink(root, b"loop2", b"/loop1", &a).unwrap();
        let e = fs.resolve("/loop1/x", true).unwrap_err().to_string();
        assert!(e.contains("too many levels of symbolic links"), "{e}");
    }

    #[test]
    fn missing_and_not_a_directory() {
        let fs = sample();
        assert!(matches!(fs.resolve("/nope", true), Err(Error::NotFound(_))));
        assert!(matches!(
            fs.resolve("/etc/hosts/x", true),
            Err(Error::NotADirectory(_))
        ));
    }
}
