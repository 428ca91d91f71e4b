//! The changes a customize run makes, planned before anything is written.
//!
//! Steps do not touch the image: they read it through a [`Plan`] (which is
//! itself a [`View`] of the image with the changes planned so far on top,
//! so each step sees what the steps before it did) and record changes in
//! it. Once every step has succeeded, [`apply`] makes the changes
//! on the [`Filesystem`] in order, and the caller commits them as one
//! change; `--dry-run` prints [`Plan::describe`] instead. A step that fails
//! therefore leaves nothing behind.
//!
//! Paths are kept canonical: symlinks in the parents are resolved inside
//! the planned tree, so `/etc/init.d/sshd` and `/etc/rc.d/init.d/sshd` are
//! one file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::text::{Entry, Meta, Node as InodeId, View, MAX_TEXT};
use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::Ino;
use crate::layout::FileType;
use crate::ops::NewFile;
use crate::selinux::Policy;

/// Owner and mode of something new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl From<Attrs> for NewFile {
    fn from(a: Attrs) -> NewFile {
        NewFile {
            perm: a.perm,
            uid: a.uid,
            gid: a.gid,
            mtime: None,
        }
    }
}

impl Attrs {
    /// root:root with `perm`.
    pub fn root(perm: u16) -> Self {
        Attrs {
            perm,
            uid: 0,
            gid: 0,
        }
    }
}

/// Where a file's planned content comes from.
#[derive(Clone, Debug)]
pub enum Content {
    /// These bytes.
    Bytes(Vec<u8>),
    /// A host file, read when the plan is applied.
    Host(PathBuf),
}

/// One planned change, in the order the steps made them.
#[derive(Clone, Debug)]
pub enum Change {
    /// Give a regular file this content: an existing file keeps its inode,
    /// owner, mode and xattrs; a new one gets `attrs`.
    Write {
        /// Canonical path.
        path: String,
        /// The new content.
        content: Content,
        /// Owner and mode when the file is new.
        attrs: Attrs,
    },
    /// Make a directory (its parent exists by then).
    Mkdir {
        /// Canonical path.
        path: String,
        /// Owner and mode.
        attrs: Attrs,
    },
    /// Remove a file, link or whole tree (a final symlink itself).
    Delete {
        /// Canonical path of the parent plus the name.
        path: String,
    },
    /// Change permission bits.
    Chmod {
        /// Canonical path.
        path: String,
        /// New bits.
        perm: u16,
    },
    /// Change owner and group.
    Chown {
        /// Canonical path.
        path: String,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Make a symlink, replacing a symlink of the same name.
    Symlink {
        /// Canonical path of the link.
        path: String,
        /// What it points to.
        target: String,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

#[derive(Clone, Debug)]
enum Kind {
    /// A regular file; `None` content: as in the image.
    File(Option<Content>),
    /// A directory; `fresh`: made by the plan (nothing of the image inside).
    Dir {
        fresh: bool,
    },
    Symlink(String),
    Deleted,
}

#[derive(Clone, Debug)]
struct Node {
    kind: Kind,
    meta: Meta,
}

/// The planned tree: the image with the changes on top.
pub struct Plan<'a> {
    base: &'a dyn View,
    nodes: BTreeMap<String, Node>,
    changes: Vec<Change>,
    /// Regular files the plan creates (not in the image yet).
    fresh_files: BTreeSet<String>,
    /// Bytes of file content the plan holds so far (every write counted,
    /// a file written twice twice): see [`PLAN_MAX_BYTES`].
    held: u64,
}

/// How many bytes of new file content one run may hold in memory. Each
/// edited file can be up to 16 MiB ([`MAX_TEXT`]) and is kept until the
/// plan is applied (twice: in the planned tree and in the change list):
/// forty `--append-line` on crafted 16 MiB files took 1.3 GB and were
/// killed under a 1 GiB cap. Host files (`--upload`) are read when the
/// plan is applied and do not count.
pub const PLAN_MAX_BYTES: u64 = 256 << 20;

fn parent_of(p: &str) -> (&str, &str) {
    match p.rfind('/') {
        Some(0) => ("/", &p[1..]),
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("/", p),
    }
}

/// A name an ext2/3/4 directory entry can hold (checked while planning,
/// so that no step fails on it after others were applied).
fn check_name(name: &str) -> Result<()> {
    if name.len() > 255 {
        let mut cut = 40;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        return Err(Error::Invalid(format!(
            "file name {}... is {} bytes long, more than 255",
            &name[..cut],
            name.len()
        )));
    }
    Ok(())
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl<'a> Plan<'a> {
    /// An empty plan over `base` (usually the image's [`Filesystem`]).
    pub fn new(base: &'a dyn View) -> Self {
        Plan {
            base,
            nodes: BTreeMap::new(),
            changes: Vec::new(),
            fresh_files: BTreeSet::new(),
            held: 0,
        }
    }

    /// The changes planned so far, in order.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The node for a canonical path as planned, or what the image has.
    fn exact(&self, c: &str) -> Result<Option<Meta>> {
        if let Some(n) = self.nodes.get(c) {
            return Ok(match n.kind {
                Kind::Deleted => None,
                _ => Some(n.meta),
            });
        }
        // Inside a directory the plan made or removed, nothing of the image is left.
        let mut a = c;
        while a != "/" {
            a = parent_of(a).0;
            if let Some(n) = self.nodes.get(a) {
                match n.kind {
                    Kind::Deleted | Kind::Dir { fresh: true } => return Ok(None),
                    _ => {}
                }
            }
        }
        self.base.meta(c, false)
    }

    fn exact_link(&self, c: &str) -> Result<Option<String>> {
        match self.nodes.get(c) {
            Some(Node {
                kind: Kind::Symlink(t),
                ..
            }) => Ok(Some(t.clone())),
            Some(_) => Ok(None),
            None => {
                if self.exact(c)?.is_some_and(|m| m.ftype == FileType::Symlink) {
                    self.base.read_link(c)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// `path` with every symlink in it resolved inside the planned tree
    /// (the last component too when `follow`); components that do not
    /// exist are kept as written. `..` stops at the root.
    pub fn canonical(&self, path: &str, follow: bool) -> Result<String> {
        Ok(self.resolve(path, follow, false)?.0)
    }

    /// Who may change the directory `dir` (canonical) besides root: its
    /// owner when not root, everyone when it is world-writable (/tmp),
    /// its group when group-writable. `None`: only root.
    fn controller(&self, dir: &str) -> Result<Option<String>> {
        Ok(match self.exact(dir)? {
            Some(m) if m.is_dir() => {
                if m.uid != 0 {
                    Some(format!("uid {}", m.uid))
                } else if m.perm & 0o002 != 0 {
                    Some("every user".to_string())
                } else if m.perm & 0o020 != 0 && m.gid != 0 {
                    Some(format!("group {}", m.gid))
                } else {
                    None
                }
            }
            _ => None,
        })
    }

    /// [`Plan::canonical`], and with `guard` refusing to follow a symlink
    /// found below a directory that a user other than root may change
    /// (a home, /tmp): such a link is treated as planted by that user.
    /// Also gives who controls where the path ends up (`None`: root
    /// only), counting every directory on the way: below a user's home,
    /// everything is the user's.
    fn resolve(&self, path: &str, follow: bool, guard: bool) -> Result<(String, Option<String>)> {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .rev()
            .map(String::from)
            .collect();
        let mut cur = String::from("/");
        let mut hops = 0;
        let mut owner: Option<String> = None;
        while let Some(comp) = todo.pop() {
            if comp == ".." {
                cur = parent_of(&cur).0.to_string();
                continue;
            }
            if guard && owner.is_none() {
                owner = self.controller(&cur)?;
            }
            let next = join(&cur, &comp);
            let last = todo.is_empty();
            if !last || follow {
                if let Some(t) = self.exact_link(&next)? {
                    if let (true, Some(who)) = (guard, &owner) {
                        return Err(Error::Invalid(format!(
                            "{next} is a symlink (to {t}) in a directory {who} can change: refusing to follow it, \
                             it could point anywhere (remove it first with --delete {next})"
                        )));
                    }
                    hops += 1;
                    if hops > 40 {
                        return Err(Error::Invalid(format!(
                            "{path}: too many levels of symlinks"
                        )));
                    }
                    if t.starts_with('/') {
                        cur = "/".into();
                    }
                    todo.extend(
                        t.split('/')
                            .filter(|c| !c.is_empty() && *c != ".")
                            .rev()
                            .map(String::from),
                    );
                    continue;
                }
            }
            if guard {
                self.not_linked_elsewhere(&cur, &next)?;
            }
            cur = next;
        }
        Ok((cur, owner))
    }

    /// Refuse to go from directory `parent` into `dir` (both canonical)
    /// when `dir` is a directory whose `..` names another directory: a
    /// hard-linked directory (only a crafted image has one), through which
    /// a path below a home could reach /etc or /root.
    fn not_linked_elsewhere(&self, parent: &str, dir: &str) -> Result<()> {
        let Some(d) = self.node(dir)? else {
            return Ok(());
        };
        if d.ino == 0 || d.parent == 0 {
            return Ok(());
        }
        let up = self.node(parent)?.map_or(0, |n| n.ino);
        if up != 0 && d.parent != up {
            return Err(Error::Invalid(format!(
                "{dir} is a second name of a directory that is elsewhere (its .. is inode {}, not {up}): \
                 refusing to go through it, it could be /etc or /root",
                d.parent
            )));
        }
        Ok(())
    }

    /// The canonical path a step may change: no symlink planted by a user
    /// on the way (see [`Plan::resolve`]), and where a user could have
    /// planted it, not a second name of another file (a hard link: its
    /// content, mode and owner are the other file's too) nor a directory
    /// that is not where its `..` says.
    pub fn target(&self, path: &str, follow: bool) -> Result<String> {
        let (c, owner) = self.resolve(path, follow, true)?;
        if let Some(who) = owner {
            self.no_second_name(&c, &who, true)?;
        }
        Ok(c)
    }

    /// Refuse a directory at canonical `c` whose `..` is elsewhere (a
    /// hard-linked directory), and with `files` a file with several links.
    fn no_second_name(&self, c: &str, who: &str, files: bool) -> Result<()> {
        let Some(id) = self.node(c)? else {
            return Ok(());
        };
        let Some(m) = self.exact(c)? else {
            return Ok(());
        };
        if m.is_dir() {
            let up = self.node(parent_of(c).0)?.map_or(0, |n| n.ino);
            if id.ino != 0 && up != 0 && id.parent != up {
                return Err(Error::Invalid(format!(
                    "{c} is a second name of a directory that is elsewhere (its .. is inode {}, not {up}), in a directory {who} can change: refusing to touch it",
                    id.parent
                )));
            }
        } else if files && m.ftype != FileType::Symlink && id.links > 1 {
            return Err(Error::Invalid(format!(
                "{c} has {} hard links and is in a directory {who} can change: refusing to write, chmod or chown it, \
                 it may be another file such as /etc/shadow (remove it first with --delete {c})",
                id.links
            )));
        }
        Ok(())
    }

    /// Whether the planned node at canonical `c` is new (made by the plan).
    fn is_new(&self, c: &str) -> bool {
        if self.fresh_files.contains(c) {
            return true;
        }
        if let Some(n) = self.nodes.get(c) {
            if matches!(n.kind, Kind::Symlink(_) | Kind::Dir { fresh: true }) {
                return true;
            }
        }
        let mut a = c;
        while a != "/" {
            a = parent_of(a).0;
            if matches!(
                self.nodes.get(a).map(|n| &n.kind),
                Some(Kind::Dir { fresh: true })
            ) {
                return true;
            }
        }
        false
    }

    fn parent_dir(&self, c: &str, step_path: &str) -> Result<()> {
        let (p, name) = parent_of(c);
        if name.is_empty() {
            return Err(Error::Invalid(format!("{step_path}: the root has no name")));
        }
        check_name(name)?;
        match self.exact(p)? {
            Some(m) if m.is_dir() => Ok(()),
            Some(m) => Err(Error::NotADirectory(format!("{p} is a {}", m.ftype.name()))),
            None => Err(Error::NotFound(format!(
                "{p} (the directory {step_path} would go in)"
            ))),
        }
    }

    /// Plan writing `content` to the regular file `path` (through a final
    /// symlink, as a shell redirection does). An existing file keeps its
    /// owner, mode and xattrs; a new one gets `attrs`. A directory or
    /// other non-file there is an error.
    pub fn write(&mut self, path: &str, content: Content, attrs: Attrs) -> Result<()> {
        let c = self.target(path, true)?;
        self.parent_dir(&c, path)?;
        let meta = match self.exact(&c)? {
            Some(m) if m.is_reg() => m,
            Some(m) => {
                return Err(Error::Invalid(format!(
                    "{path} is a {}: a step would replace it with a file",
                    m.ftype.name()
                )))
            }
            None => {
                self.fresh_files.insert(c.clone());
                Meta {
                    ftype: FileType::Regular,
                    perm: attrs.perm,
                    uid: attrs.uid,
                    gid: attrs.gid,
                    size: 0,
                }
            }
        };
        let size = match &content {
            Content::Bytes(b) => {
                self.held += b.len() as u64;
                if self.held > PLAN_MAX_BYTES {
                    return Err(Error::Invalid(format!(
                        "{path}: the run's edits would hold more than {} MiB of file contents in memory: \
                         refusing (split the steps into several runs)",
                        PLAN_MAX_BYTES >> 20
                    )));
                }
                b.len() as u64
            }
            Content::Host(p) => std::fs::metadata(p)
                .map_err(|e| Error::io(format!("reading {}", p.display()), e))?
                .len(),
        };
        self.nodes.insert(
            c.clone(),
            Node {
                kind: Kind::File(Some(content.clone())),
                meta: Meta { size, ..meta },
            },
        );
        self.changes.push(Change::Write {
            path: c,
            content,
            attrs,
        });
        Ok(())
    }

    /// Plan `mkdir -p path`: missing directories get `attrs`. Something
    /// other than a directory in the way is an error.
    pub fn mkdir_p(&mut self, path: &str, attrs: Attrs) -> Result<()> {
        let c = self.target(path, true)?;
        let mut cur = String::from("/");
        for comp in c.split('/').filter(|s| !s.is_empty()) {
            check_name(comp)?;
            let next = join(&cur, comp);
            // Resolve again: a parent planned as a symlink is followed.
            let next = self.target(&next, true)?;
            match self.exact(&next)? {
                Some(m) if m.is_dir() => {}
                Some(m) => {
                    return Err(Error::Invalid(format!(
                        "{next} is a {}: a step would need a directory there",
                        m.ftype.name()
                    )))
                }
                None => {
                    self.nodes.insert(
                        next.clone(),
                        Node {
                            kind: Kind::Dir { fresh: true },
                            meta: Meta {
                                ftype: FileType::Directory,
                                perm: attrs.perm,
                                uid: attrs.uid,
                                gid: attrs.gid,
                                size: 0,
                            },
                        },
                    );
                    self.changes.push(Change::Mkdir {
                        path: next.clone(),
                        attrs,
                    });
                }
            }
            cur = next;
        }
        Ok(())
    }

    /// Plan `rm -rf path` (a final symlink is removed, not followed;
    /// nothing there is fine). The root cannot be removed.
    pub fn delete(&mut self, path: &str) -> Result<()> {
        // A hard link may go (that is how to get rid of one), but not
        // through a user's symlink.
        let (c, owner) = self.resolve(path, false, true)?;
        if let Some(who) = owner {
            // rm -r through a second name of /etc would empty /etc.
            self.no_second_name(&c, &who, false)?;
        }
        if c == "/" {
            return Err(Error::Invalid("refusing to delete /".into()));
        }
        let Some(m) = self.exact(&c)? else {
            return Ok(());
        };
        let prefix = format!("{c}/");
        self.nodes.retain(|k, _| !k.starts_with(&prefix));
        self.fresh_files
            .retain(|k| k != &c && !k.starts_with(&prefix));
        self.nodes.insert(
            c.clone(),
            Node {
                kind: Kind::Deleted,
                meta: m,
            },
        );
        self.changes.push(Change::Delete { path: c });
        Ok(())
    }

    fn touch_meta(&mut self, c: &str, path: &str, f: impl FnOnce(&mut Meta)) -> Result<()> {
        let Some(m) = self.exact(c)? else {
            return Err(Error::NotFound(path.to_string()));
        };
        let node = self.nodes.entry(c.to_string()).or_insert_with(|| Node {
            kind: match m.ftype {
                FileType::Directory => Kind::Dir { fresh: false },
                FileType::Regular => Kind::File(None),
                _ => Kind::File(None),
            },
            meta: m,
        });
        f(&mut node.meta);
        Ok(())
    }

    /// Plan `chmod perm path` (following a final symlink).
    pub fn chmod(&mut self, path: &str, perm: u16) -> Result<()> {
        let c = self.target(path, true)?;
        self.touch_meta(&c, path, |m| m.perm = perm)?;
        self.changes.push(Change::Chmod { path: c, perm });
        Ok(())
    }

    /// Plan `chown uid:gid path` (following a final symlink).
    pub fn chown(&mut self, path: &str, uid: u32, gid: u32) -> Result<()> {
        let c = self.target(path, true)?;
        self.touch_meta(&c, path, |m| {
            m.uid = uid;
            m.gid = gid;
        })?;
        self.changes.push(Change::Chown { path: c, uid, gid });
        Ok(())
    }

    /// Plan a symlink `link -> target`, replacing a symlink already there
    /// (anything else there is an error).
    pub fn symlink(&mut self, target: &str, link: &str, uid: u32, gid: u32) -> Result<()> {
        let c = self.resolve(link, false, true)?.0;
        self.parent_dir(&c, link)?;
        if let Some(m) = self.exact(&c)? {
            if m.ftype != FileType::Symlink {
                return Err(Error::Invalid(format!(
                    "{link} is a {}: a step would replace it with a symlink",
                    m.ftype.name()
                )));
            }
            if self.exact_link(&c)?.as_deref() == Some(target) {
                return Ok(());
            }
        }
        self.nodes.insert(
            c.clone(),
            Node {
                kind: Kind::Symlink(target.to_string()),
                meta: Meta {
                    ftype: FileType::Symlink,
                    perm: 0o777,
                    uid,
                    gid,
                    size: target.len() as u64,
                },
            },
        );
        self.changes.push(Change::Symlink {
            path: c,
            target: target.to_string(),
            uid,
            gid,
        });
        Ok(())
    }

    /// The planned changes, to [`apply`] once the plan (and its borrow
    /// of the image) is done.
    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }

    /// What the plan changes, for `--dry-run`: a unified diff for each
    /// file whose text changes, and a line for everything else.
    pub fn describe(&self) -> Result<String> {
        let mut out = String::new();
        let mut done: Vec<&str> = Vec::new();
        for ch in &self.changes {
            let path = match ch {
                Change::Write { path, .. }
                | Change::Mkdir { path, .. }
                | Change::Delete { path }
                | Change::Chmod { path, .. }
                | Change::Chown { path, .. }
                | Change::Symlink { path, .. } => path.as_str(),
            };
            if done.contains(&path) {
                continue;
            }
            done.push(path);
            self.describe_path(path, &mut out)?;
        }
        if out.is_empty() {
            out.push_str("no changes\n");
        }
        Ok(out)
    }

    fn describe_path(&self, path: &str, out: &mut String) -> Result<()> {
        let before = self.base.meta(path, false)?;
        let Some(node) = self.nodes.get(path) else {
            // Removed again by a later delete of a parent.
            return Ok(());
        };
        let after = &node.meta;
        let attrs = |m: &Meta| format!("{:04o} {}:{}", m.perm, m.uid, m.gid);
        match &node.kind {
            Kind::Deleted => {
                if let Some(b) = before {
                    out.push_str(&format!("delete {path} ({})\n", b.ftype.name()));
                }
                return Ok(());
            }
            Kind::Dir { fresh: true } => {
                out.push_str(&format!("mkdir {path} ({})\n", attrs(after)));
                return Ok(());
            }
            Kind::Symlink(t) => {
                let old = self.base.read_link(path)?;
                match old {
                    Some(o) => out.push_str(&format!("symlink {path} -> {t} (was -> {o})\n")),
                    None => out.push_str(&format!("symlink {path} -> {t} (new)\n")),
                }
                return Ok(());
            }
            Kind::File(Some(Content::Host(h))) => {
                out.push_str(&format!(
                    "upload {} -> {path} ({} bytes{})\n",
                    h.display(),
                    after.size,
                    if before.is_some() {
                        ", replacing"
                    } else {
                        ", new"
                    }
                ));
            }
            Kind::File(Some(Content::Bytes(b))) => {
                let old = match before {
                    Some(m) if m.is_reg() => self.base.read_bytes(path)?.unwrap_or_default(),
                    _ => Vec::new(),
                };
                out.push_str(&unified_diff(path, before.is_some(), &old, b));
                if before.is_none() {
                    out.push_str(&format!("new file {path} ({})\n", attrs(after)));
                }
            }
            _ => {}
        }
        if let Some(b) = before {
            if b.perm != after.perm {
                out.push_str(&format!(
                    "mode {path}: {:04o} -> {:04o}\n",
                    b.perm, after.perm
                ));
            }
            if (b.uid, b.gid) != (after.uid, after.gid) {
                out.push_str(&format!(
                    "owner {path}: {}:{} -> {}:{}\n",
                    b.uid, b.gid, after.uid, after.gid
                ));
            }
        }
        Ok(())
    }
}

/// A unified diff of `old` and `new` text (`git diff` style headers).
pub fn unified_diff(path: &str, existed: bool, old: &[u8], new: &[u8]) -> String {
    if old == new {
        return String::new();
    }
    if old.contains(&0) || new.contains(&0) {
        return format!(
            "binary file {path} changes ({} -> {} bytes)\n",
            old.len(),
            new.len()
        );
    }
    let o = String::from_utf8_lossy(old);
    let n = String::from_utf8_lossy(new);
    // Myers' algorithm (similar's default) takes time N x D: a file
    // rewritten whole (80,000 lines) takes minutes. Patience matches the
    // unique lines first (N log N), and the deadline bounds what is left
    // to Myers: past it the rest shows as removed and added (still a
    // correct diff, only not the smallest).
    let diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Patience)
        .timeout(std::time::Duration::from_millis(500))
        .diff_lines(o.as_ref(), n.as_ref());
    let from = if existed {
        format!("a{path}")
    } else {
        "/dev/null".to_string()
    };
    let mut u = diff.unified_diff();
    u.context_radius(3).header(&from, &format!("b{path}"));
    let mut s = u.to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

impl View for Plan<'_> {
    fn meta(&self, path: &str, follow: bool) -> Result<Option<Meta>> {
        let c = self.canonical(path, follow)?;
        self.exact(&c)
    }

    fn read_bytes(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let c = self.canonical(path, true)?;
        match self.nodes.get(&c) {
            Some(Node {
                kind: Kind::File(Some(Content::Bytes(b))),
                ..
            }) => Ok(Some(b.clone())),
            Some(Node {
                kind: Kind::File(Some(Content::Host(h))),
                meta,
            }) => {
                if meta.size > MAX_TEXT {
                    return Err(Error::Invalid(format!(
                        "{path} is {} bytes: too large for a configuration file",
                        meta.size
                    )));
                }
                std::fs::read(h)
                    .map(Some)
                    .map_err(|e| Error::io(format!("reading {}", h.display()), e))
            }
            Some(n) => match n.kind {
                Kind::Deleted => Ok(None),
                Kind::File(None) => self.base.read_bytes(&c),
                _ => Err(Error::Invalid(format!(
                    "{path} is a {}, not a regular file",
                    n.meta.ftype.name()
                ))),
            },
            None => {
                if self.exact(&c)?.is_none() {
                    return Ok(None);
                }
                self.base.read_bytes(&c)
            }
        }
    }

    fn read_link(&self, path: &str) -> Result<Option<String>> {
        let c = self.canonical(path, false)?;
        self.exact_link(&c)
    }

    fn node(&self, path: &str) -> Result<Option<InodeId>> {
        let c = self.canonical(path, false)?;
        if self.exact(&c)?.is_none() {
            return Ok(None);
        }
        if self.is_new(&c) {
            return Ok(Some(InodeId {
                ino: 0,
                links: 1,
                parent: 0,
            }));
        }
        self.base.node(&c)
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<Entry>>> {
        let c = self.canonical(path, true)?;
        match self.exact(&c)? {
            Some(m) if m.is_dir() => {}
            _ => return Ok(None),
        }
        let fresh = matches!(
            self.nodes.get(&c).map(|n| &n.kind),
            Some(Kind::Dir { fresh: true })
        );
        let mut map: BTreeMap<String, FileType> = BTreeMap::new();
        if !fresh {
            for e in self.base.list_dir(&c)?.unwrap_or_default() {
                map.insert(e.name, e.ftype);
            }
        }
        let prefix = if c == "/" {
            "/".to_string()
        } else {
            format!("{c}/")
        };
        for (k, n) in self.nodes.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            if rest.contains('/') {
                continue;
            }
            match n.kind {
                Kind::Deleted => {
                    map.remove(rest);
                }
                _ => {
                    map.insert(rest.to_string(), n.meta.ftype);
                }
            }
        }
        Ok(Some(
            map.into_iter()
                .map(|(name, ftype)| Entry { name, ftype })
                .collect(),
        ))
    }
}

/// Make planned changes on `fs`, in order (nothing is committed: the
/// caller commits, or drops `fs` to forget them). With a policy, what the
/// changes create gets the SELinux label the policy gives its path.
pub fn apply(fs: &mut Filesystem, changes: &[Change], policy: Option<&Policy>) -> Result<()> {
    for ch in changes {
        if let Some(ino) = apply_one(fs, ch)? {
            if let Some(p) = policy {
                let path = match ch {
                    Change::Write { path, .. }
                    | Change::Mkdir { path, .. }
                    | Change::Symlink { path, .. } => path,
                    _ => continue,
                };
                super::label::label_new(fs, p, path, ino)?;
            }
        }
    }
    Ok(())
}

/// Apply one change; the inode it created, if any.
fn apply_one(fs: &mut Filesystem, ch: &Change) -> Result<Option<Ino>> {
    match ch {
        Change::Write {
            path,
            content,
            attrs,
        } => {
            let mut bytes;
            let mut file;
            let (src, size): (&mut dyn std::io::Read, u64) = match content {
                Content::Bytes(b) => {
                    bytes = &b[..];
                    let n = b.len() as u64;
                    (&mut bytes, n)
                }
                Content::Host(p) => {
                    file = std::fs::File::open(p)
                        .map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
                    let n = file
                        .metadata()
                        .map_err(|e| Error::io(format!("reading {}", p.display()), e))?
                        .len();
                    (&mut file, n)
                }
            };
            match fs.try_resolve(path, true)? {
                Some(ino) => {
                    let i = fs.read_inode(ino)?;
                    let keep = NewFile::from(Attrs {
                        perm: i.perm(),
                        uid: i.uid(),
                        gid: i.gid(),
                    });
                    fs.overwrite_file_sized(ino, &keep, src, Some(size))
                        .map_err(|e| e.at(path))?;
                    return Ok(None);
                }
                None => {
                    let (parent, name) = fs.resolve_parent(path)?;
                    let a = NewFile::from(*attrs);
                    return fs
                        .create_file_sized(parent, &name, &a, src, Some(size))
                        .map(Some)
                        .map_err(|e| e.at(path));
                }
            }
        }
        Change::Mkdir { path, attrs } => {
            let (parent, name) = fs.resolve_parent(path)?;
            let a = NewFile::from(*attrs);
            return fs
                .mkdir(parent, &name, &a)
                .map(Some)
                .map_err(|e| e.at(path));
        }
        Change::Delete { path } => {
            let (parent, name) = fs.resolve_parent(path)?;
            let dir = fs.read_inode(parent)?;
            if let Some(e) = fs.lookup(&dir, &name)? {
                if fs.read_inode(e.ino)?.is_dir() {
                    fs.remove_tree(parent, &name).map_err(|e| e.at(path))?;
                } else {
                    fs.unlink(parent, &name).map_err(|e| e.at(path))?;
                }
            }
        }
        Change::Chmod { path, perm } => {
            let ino = fs.resolve(path, true)?;
            fs.set_perm(ino, *perm).map_err(|e| e.at(path))?;
        }
        Change::Chown { path, uid, gid } => {
            let ino = fs.resolve(path, true)?;
            fs.set_owner(ino, *uid, *gid).map_err(|e| e.at(path))?;
        }
        Change::Symlink {
            path,
            target,
            uid,
            gid,
        } => {
            let (parent, name) = fs.resolve_parent(path)?;
            let dir = fs.read_inode(parent)?;
            if fs.lookup(&dir, &name)?.is_some() {
                fs.unlink(parent, &name).map_err(|e| e.at(path))?;
            }
            let a = NewFile::from(Attrs {
                perm: 0o777,
                uid: *uid,
                gid: *gid,
            });
            return fs
                .symlink(parent, &name, target.as_bytes(), &a)
                .map(Some)
                .map_err(|e| e.at(path));
        }
    }
    Ok(None)
}
