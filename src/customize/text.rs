//! Reading the image's configuration files: text files found by path
//! (symlinks followed inside the image), `KEY=VALUE` files as RHEL's
//! /etc/sysconfig uses them, and directory listings.

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::{Ino, Inode};
use crate::layout::FileType;

/// Configuration files larger than this are not read (a crafted image
/// could declare a huge sparse file).
pub const MAX_TEXT: u64 = 16 << 20;

/// What a path is, as far as the checks and the customize steps care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Regular file, directory, symlink...
    pub ftype: FileType,
    /// Permission bits (07777).
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
}

impl Meta {
    /// From an inode.
    pub fn of(i: &Inode) -> Self {
        Meta {
            ftype: i.file_type(),
            perm: i.perm(),
            uid: i.uid(),
            gid: i.gid(),
            size: i.size(),
        }
    }
    /// A regular file.
    pub fn is_reg(&self) -> bool {
        self.ftype == FileType::Regular
    }
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.ftype == FileType::Directory
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The name (invalid UTF-8 replaced).
    pub name: String,
    /// Its type.
    pub ftype: FileType,
}

/// A read-only view of a file tree: the image itself, or the image with
/// the changes a customize run has planned on top (so that a step, and
/// `--fix`'s check, see what the steps before it did). Paths are
/// absolute; symlinks resolve inside the tree.
pub trait View {
    /// What is at `path` (following a final symlink when `follow`);
    /// `None` when nothing is there.
    fn meta(&self, path: &str, follow: bool) -> Result<Option<Meta>>;
    /// The bytes of the regular file at `path` (symlinks followed); `None`
    /// when missing. Not a regular file, or over [`MAX_TEXT`]: an
    /// [`Error::Invalid`] naming the path.
    fn read_bytes(&self, path: &str) -> Result<Option<Vec<u8>>>;
    /// The target of the symlink at `path`; `None` when it is not one.
    fn read_link(&self, path: &str) -> Result<Option<String>>;
    /// The entries of the directory at `path` (no `.` and `..`), sorted by
    /// name; `None` when there is no directory there.
    fn list_dir(&self, path: &str) -> Result<Option<Vec<Entry>>>;
    /// Which inode `path` names (a final symlink not followed), for the
    /// steps that must not be fooled by a second name of a file: `None`
    /// when nothing is there, or when the view cannot tell (then it is
    /// treated as a new file, made by the plan).
    fn node(&self, path: &str) -> Result<Option<Node>> {
        let _ = path;
        Ok(None)
    }
}

/// The identity of an existing inode (see [`View::node`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its inode number (0: made by the plan, not yet in the image).
    pub ino: u32,
    /// Its link count (how many names it has).
    pub links: u16,
    /// For a directory, the inode its `..` names (0 otherwise).
    pub parent: u32,
}

fn resolve_opt(fs: &Filesystem, path: &str, follow: bool) -> Result<Option<Ino>> {
    match fs.try_resolve(path, follow) {
        Ok(r) => Ok(r),
        Err(Error::NotFound(_)) | Err(Error::NotADirectory(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl View for Filesystem {
    fn meta(&self, path: &str, follow: bool) -> Result<Option<Meta>> {
        match resolve_opt(self, path, follow)? {
            Some(ino) => Ok(Some(Meta::of(&self.read_inode(ino)?))),
            None => Ok(None),
        }
    }

    fn read_bytes(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let Some(ino) = resolve_opt(self, path, true)? else {
            return Ok(None);
        };
        let inode = self.read_inode(ino)?;
        if !inode.is_reg() {
            return Err(Error::Invalid(format!(
                "{path} is a {}, not a regular file",
                inode.file_type().name()
            )));
        }
        if inode.size() > MAX_TEXT {
            return Err(Error::Invalid(format!(
                "{path} is {} bytes: too large for a configuration file",
                inode.size()
            )));
        }
        let mut v = Vec::with_capacity(inode.size() as usize);
        self.read_file(&inode, &mut v).map_err(|e| e.at(path))?;
        Ok(Some(v))
    }

    fn read_link(&self, path: &str) -> Result<Option<String>> {
        let Some(ino) = resolve_opt(self, path, false)? else {
            return Ok(None);
        };
        let inode = self.read_inode(ino)?;
        if !inode.is_symlink() {
            return Ok(None);
        }
        let t = Filesystem::read_link(self, &inode).map_err(|e| e.at(path))?;
        Ok(Some(String::from_utf8_lossy(&t).into_owned()))
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<Entry>>> {
        let Some(ino) = resolve_opt(self, path, true)? else {
            return Ok(None);
        };
        let dir = self.read_inode(ino)?;
        if !dir.is_dir() {
            return Ok(None);
        }
        let mut v = Vec::new();
        for e in self.read_dir(&dir).map_err(|e| e.at(path))? {
            if e.name == b"." || e.name == b".." {
                continue;
            }
            let ftype = self.read_inode(e.ino)?.file_type();
            v.push(Entry {
                name: String::from_utf8_lossy(&e.name).into_owned(),
                ftype,
            });
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(v))
    }

    fn node(&self, path: &str) -> Result<Option<Node>> {
        let Some(ino) = resolve_opt(self, path, false)? else {
            return Ok(None);
        };
        let i = self.read_inode(ino)?;
        let parent = if i.is_dir() {
            self.lookup(&i, b"..")
                .map_err(|e| e.at(path))?
                .map_or(0, |e| e.ino)
        } else {
            0
        };
        Ok(Some(Node {
            ino,
            links: i.links(),
            parent,
        }))
    }
}

/// The regular file at `path` as text (invalid UTF-8 replaced); `None`
/// when missing.
pub fn read_text(v: &dyn View, path: &str) -> Result<Option<String>> {
    Ok(v.read_bytes(path)?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// One `KEY=VALUE` assignment of a shell-style variables file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Var {
    /// 1-based line number.
    pub line: usize,
    /// The variable name.
    pub key: String,
    /// The value, with one level of quotes removed.
    pub value: String,
}

/// Parse `KEY=VALUE` lines (RHEL's ifcfg and /etc/sysconfig files,
/// os-release): comments and blank lines skipped, `export` allowed, one
/// level of single or double quotes removed. Lines that are not
/// assignments are returned apart, with their line numbers.
pub fn parse_vars(text: &str) -> (Vec<Var>, Vec<usize>) {
    let mut vars = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
        let Some((k, v)) = l.split_once('=') else {
            bad.push(i + 1);
            continue;
        };
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bad.push(i + 1);
            continue;
        }
        vars.push(Var {
            line: i + 1,
            key: k.to_string(),
            value: unquote(v.trim()).to_string(),
        });
    }
    (vars, bad)
}

/// The last value of `key` among `vars`.
pub fn var<'a>(vars: &'a [Var], key: &str) -> Option<&'a Var> {
    vars.iter().rev().find(|v| v.key == key)
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    // An unquoted value ends at a comment.
    match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    }
}

/// Lines of `text` that are not blank or comments, with 1-based numbers.
pub fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_quotes_comments_and_bad_lines() {
        let (v, bad) = parse_vars(
            "# c\nDEVICE=eth0\nBOOTPROTO=\"dhcp\"\n export ONBOOT='yes'\nnonsense\nIPADDR=1.2.3.4 # x\n",
        );
        assert_eq!(var(&v, "DEVICE").unwrap().value, "eth0");
        assert_eq!(var(&v, "BOOTPROTO").unwrap().value, "dhcp");
        assert_eq!(var(&v, "ONBOOT").unwrap().value, "yes");
        assert_eq!(var(&v, "IPADDR").unwrap().value, "1.2.3.4");
        assert_eq!(var(&v, "ONBOOT").unwrap().line, 4);
        assert_eq!(bad, vec![5]);
    }
}
