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

/// The regular file at `path` as text, losslessly (see [`decode`]);
/// `None` when missing.
pub fn read_text(v: &dyn View, path: &str) -> Result<Option<String>> {
    Ok(v.read_bytes(path)?.map(|b| decode(&b)))
}

/// Bytes that are not UTF-8 (a Latin-1 GECOS, a stray byte) are carried
/// in text as one character each, U+10FF00 plus the byte, from the end of
/// the last private use plane; so are the bytes of such characters where
/// the file really has them. [`encode`] turns them back: what a step does
/// not change keeps its bytes.
const BYTE_CHAR: u32 = 0x10FF00;

/// File bytes as text, every byte kept (see [`BYTE_CHAR`]).
pub fn decode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    let raw = |s: &mut String, bytes: &[u8]| {
        for &x in bytes {
            s.push(char::from_u32(BYTE_CHAR + x as u32).expect("a valid code point"));
        }
    };
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c as u32 >= BYTE_CHAR {
                let mut buf = [0u8; 4];
                raw(&mut s, c.encode_utf8(&mut buf).as_bytes());
            } else {
                s.push(c);
            }
        }
        raw(&mut s, chunk.invalid());
    }
    s
}

/// Text made by [`decode`] (and edited) back to the file's bytes.
pub fn encode(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len());
    for c in s.chars() {
        if c as u32 >= BYTE_CHAR {
            v.push((c as u32 - BYTE_CHAR) as u8);
        } else {
            let mut buf = [0u8; 4];
            v.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    v
}

/// Lines with their ends ("\r\n", "\n", or "" for a last line without
/// one), split as [`str::lines`] does.
fn split_ends(t: &str) -> Vec<(&str, &str)> {
    let mut v = Vec::new();
    let mut rest = t;
    while !rest.is_empty() {
        match rest.find('\n') {
            Some(i) => {
                let (line, end) = if i > 0 && rest.as_bytes()[i - 1] == b'\r' {
                    (&rest[..i - 1], &rest[i - 1..=i])
                } else {
                    (&rest[..i], &rest[i..=i])
                };
                v.push((line, end));
                rest = &rest[i + 1..];
            }
            None => {
                v.push((rest, ""));
                rest = "";
            }
        }
    }
    v
}

/// The bytes of a text file a step edited: `old` is what [`read_text`]
/// gave, `new` the step's result, written with "\n" line ends as steps
/// do. Lines of `new` that are lines of `old` (matched in order, as a
/// diff does) keep their bytes and their line end; lines the step added
/// or changed end as most lines of the file do (CRLF in a CRLF file).
pub fn edited(old: &str, new: &str) -> Vec<u8> {
    let o = split_ends(old);
    let n = split_ends(new);
    let crlf = o.iter().filter(|l| l.1 == "\r\n").count();
    let lf = o.iter().filter(|l| l.1 == "\n").count();
    let eol = if crlf > lf { "\r\n" } else { "\n" };
    let ob: Vec<&str> = o.iter().map(|l| l.0).collect();
    let nb: Vec<&str> = n.iter().map(|l| l.0).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    let ops = similar::capture_diff_slices_deadline(
        similar::Algorithm::Patience,
        &ob,
        &nb,
        Some(deadline),
    );
    let mut out = String::with_capacity(new.len() + n.len());
    for op in ops {
        let (tag, or, nr) = op.as_tag_tuple();
        if tag == similar::DiffTag::Equal {
            for (i, j) in or.zip(nr) {
                out.push_str(o[i].0);
                // The old end, unless the line is now the last without one
                // or was the last without one.
                out.push_str(match (o[i].1, n[j].1) {
                    (_, "") => "",
                    ("", _) => eol,
                    (e, _) => e,
                });
            }
            continue;
        }
        // Changed or added lines end as the file's lines do; one that is
        // its old line after all (the diff gave up at its deadline on a
        // huge file) keeps its old end.
        for (k, j) in nr.enumerate() {
            let same = (tag == similar::DiffTag::Replace && k < or.len())
                .then(|| o[or.start + k])
                .filter(|l| l.0 == n[j].0 && !l.1.is_empty());
            out.push_str(n[j].0);
            out.push_str(match (same, n[j].1) {
                (_, "") => "",
                (Some(l), _) => l.1,
                (None, "\n") => eol,
                (None, e) => e,
            });
        }
    }
    encode(&out)
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

    #[test]
    fn decode_keeps_every_byte() {
        let b = b"caf\xe9 \xc3\xa9 \xf4\x8f\xbc\x80 \xff\r\n";
        let t = decode(b);
        assert!(t.starts_with("caf") && t.contains(" \u{e9} "));
        assert_eq!(encode(&t), b);
    }

    #[test]
    fn edited_keeps_untouched_lines_and_their_ends() {
        let old = decode(b"a:\xe9\r\nb:2\r\nc:3\r\n");
        // A step read lines, changed b, added d, wrote with \n.
        let new: Vec<String> = old
            .lines()
            .map(|l| {
                if l == "b:2" {
                    "b:9".into()
                } else {
                    l.to_string()
                }
            })
            .chain(["d:4".to_string()])
            .collect();
        let new = new.join("\n") + "\n";
        assert_eq!(edited(&old, &new), b"a:\xe9\r\nb:9\r\nc:3\r\nd:4\r\n");
        // Mixed ends stay as they were; a missing final newline is added
        // with the file's convention.
        let old = "x\ny\r\nz";
        assert_eq!(edited(old, "x\ny\nz\nw\n"), b"x\ny\r\nz\nw\n");
        // Nothing changed: the same bytes.
        let old = decode(b"p\r\nq\xfe\r\n");
        let new = old.lines().collect::<Vec<_>>().join("\n") + "\n";
        assert_eq!(edited(&old, &new), b"p\r\nq\xfe\r\n");
        // A new file.
        assert_eq!(edited("", "n\n"), b"n\n");
    }
}
