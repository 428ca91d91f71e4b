//! SELinux file labelling: the context that libselinux's file backend
//! (`setfiles`, `restorecon`, `matchpathcon`) gives a path, computed from
//! the policy's `file_contexts` files without SELinux on the machine.
//!
//! A [`Policy`] is a list of specifications, `REGEX [TYPE] CONTEXT`, read
//! from `file_contexts`, then `file_contexts.homedirs`, then
//! `file_contexts.local`, plus the path aliases of
//! `file_contexts.subs_dist` and `file_contexts.subs`. A lookup follows
//! libselinux:
//! - the path is cleaned (`//` collapsed, a trailing `/` dropped) and
//!   aliased: the first alias whose source is the path or a leading
//!   directory of it replaces that prefix (`.subs` first, then
//!   `.subs_dist` on the result);
//! - specifications without a regular-expression metacharacter
//!   (`.^$?*+|[({`, outside a backslash escape) are tried before all
//!   others, in file order, the last listed first; then the others, the
//!   last listed first; the first that matches wins, so a later line
//!   overrides an earlier one;
//! - a specification whose text starts with a fixed first directory (its
//!   "stem", `/usr` in `/usr/lib/.*`) only applies to paths with the same
//!   first directory; the rest is matched against the rest of the path;
//! - the regular expression is anchored (`^` before, `$` after the text,
//!   as written: a top-level `|` is not grouped), `.` matches a newline
//!   too, and matching is on bytes;
//! - a specification with a type (`--` file, `-d`, `-l`, `-b`, `-c`,
//!   `-p`, `-s`) only matches that type;
//! - the context `<<none>>` means "do not label": [`Policy::label`] gives
//!   `None` for it, as for a path that nothing matches.
//!
//! The expressions are PCRE; they run on the `regex` crate after a small
//! translation: possessive quantifiers (`*+`, `++`, `?+`, `{n,m}+`)
//! become greedy ones and atomic groups `(?>...)` plain groups (these can
//! only differ from PCRE on inputs that need backtracking into them; each
//! such specification is listed by [`Policy::lossy`]), `\Z` becomes
//! "optional newline then end", `\<` and `\>` are the literal characters
//! (as in PCRE) and a `{` that does not start a repetition is a literal.
//! Expressions the crate cannot run (back-references, look-around) make
//! their specification never match; [`Policy::unsupported`] lists them.
//!
//! The value to store in `security.selinux` is the context followed by a
//! NUL byte ([`xattr_value`]), as the kernel and `setfiles` write it.

use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::layout::FileType;
use regex::bytes::Regex;
use std::sync::OnceLock;

/// The policy files of an image, together, are at most this big (a
/// Fedora or RHEL file_contexts is under 1 MiB).
const MAX_POLICY_BYTES: u64 = 32 << 20;
/// At most this many specifications (Fedora has about 7,000).
const MAX_SPECS: usize = 200_000;

/// One line of a `file_contexts` file.
#[derive(Debug)]
pub struct Spec {
    /// The regular expression as written.
    pub regex: String,
    /// The file type it is limited to (`None`: any).
    pub file_type: Option<FileType>,
    /// The context, or `<<none>>`.
    pub context: String,
    /// Where it comes from: `file:line`.
    pub origin: String,
    /// The fixed first directory (`/usr` of `/usr/lib/.*`), if any.
    stem: Option<String>,
    /// True if the expression has a metacharacter.
    has_meta: bool,
    /// What every matching path starts with (a quick first test).
    literal: String,
    /// The expression after the stem, translated and compiled on first use
    /// (`None`: the crate cannot run it).
    compiled: OnceLock<Option<Regex>>,
}

/// A loaded set of file-context specifications and path aliases.
#[derive(Debug, Default)]
pub struct Policy {
    /// Specifications in lookup order: those with metacharacters in file
    /// order, then the exact paths in file order. Lookups go from the end.
    specs: Vec<Spec>,
    /// Aliases of `file_contexts.subs` (tried first), in lookup order.
    subs: Vec<(String, String)>,
    /// Aliases of `file_contexts.subs_dist`, in lookup order.
    dist_subs: Vec<(String, String)>,
    /// Number of specifications read so far (before sorting).
    loaded: usize,
}

/// The value to store in `security.selinux` for a context: the context
/// and a trailing NUL byte.
pub fn xattr_value(context: &str) -> Vec<u8> {
    let mut v = context.as_bytes().to_vec();
    v.push(0);
    v
}

fn parse_type(t: &str) -> Option<FileType> {
    Some(match t {
        "--" => FileType::Regular,
        "-d" => FileType::Directory,
        "-l" => FileType::Symlink,
        "-b" => FileType::BlockDevice,
        "-c" => FileType::CharDevice,
        "-p" => FileType::Fifo,
        "-s" => FileType::Socket,
        _ => return None,
    })
}

const META: &[u8] = b".^$?*+|[({";

/// True if `re` has a metacharacter outside a backslash escape.
fn has_meta(re: &str) -> bool {
    let b = re.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if META.contains(&b[i]) {
            return true;
        }
        i += 1;
    }
    false
}

/// The text every path that `re` matches starts with: the characters
/// before the first metacharacter or escape, less the last one when a
/// quantifier follows it; empty when `re` has a top-level `|`.
fn literal_prefix(re: &str) -> String {
    let b = re.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'|' if depth <= 0 => return String::new(),
            _ => {}
        }
        i += 1;
    }
    let end = b
        .iter()
        .position(|c| META.contains(c) || *c == b'\\')
        .unwrap_or(b.len());
    let mut lit = &re[..end];
    if matches!(b.get(end), Some(b'?' | b'*' | b'+' | b'{')) {
        lit = &lit[..lit.len().saturating_sub(1)];
    }
    lit.to_string()
}

/// The fixed first directory of a specification: the text up to the
/// second `/` when it has no metacharacter (escapes are not special here).
fn spec_stem(re: &str) -> Option<&str> {
    let b = re.as_bytes();
    let second = b.get(1..)?.iter().position(|&c| c == b'/')? + 1;
    if b[..second].iter().any(|c| META.contains(c)) {
        return None;
    }
    Some(&re[..second])
}

/// The first directory of a path (`/usr` of `/usr/bin/ls`), if the path
/// has a second `/`.
fn path_stem(path: &[u8]) -> Option<&[u8]> {
    let second = path.get(1..)?.iter().position(|&c| c == b'/')? + 1;
    Some(&path[..second])
}

/// Translate a PCRE expression for the `regex` crate. Returns the text and
/// whether the translation may change what matches (possessive
/// quantifiers, atomic groups).
fn translate(re: &str) -> (String, bool) {
    let c: Vec<char> = re.chars().collect();
    let mut out = String::with_capacity(re.len() + 8);
    let mut lossy = false;
    let mut i = 0;
    let mut in_class = false;
    // True when the previous token was a quantifier (a following `+` makes
    // it possessive).
    let mut after_quant = false;
    while i < c.len() {
        let ch = c[i];
        if in_class {
            match ch {
                '\\' if i + 1 < c.len() => {
                    out.push(ch);
                    out.push(c[i + 1]);
                    i += 2;
                    continue;
                }
                '[' if c.get(i + 1) == Some(&':') => {
                    // POSIX class [:name:]
                    if let Some(end) =
                        (i + 2..c.len().saturating_sub(1)).find(|&j| c[j] == ':' && c[j + 1] == ']')
                    {
                        out.extend(&c[i..end + 2]);
                        i = end + 2;
                        continue;
                    }
                    out.push_str("\\[");
                }
                '[' => out.push_str("\\["),
                ']' => {
                    out.push(']');
                    in_class = false;
                }
                '&' | '~' | '-' if c.get(i + 1) == Some(&ch) => {
                    // The crate reads `&&`, `~~`, `--` as set operations.
                    out.push('\\');
                    out.push(ch);
                }
                _ => out.push(ch),
            }
            i += 1;
            continue;
        }
        let quant_before = after_quant;
        after_quant = false;
        match ch {
            '\\' if i + 1 < c.len() => {
                match c[i + 1] {
                    'Z' => out.push_str("(?:\\n?\\z)"),
                    '<' | '>' => out.push(c[i + 1]),
                    n => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                i += 2;
                continue;
            }
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if c.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if c.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            '+' if quant_before => {
                lossy = true;
            }
            '*' | '+' | '?' => {
                out.push(ch);
                after_quant = true;
                // A lazy `?` after a quantifier is itself no quantifier.
                if ch == '?' && quant_before {
                    after_quant = false;
                }
            }
            '{' => {
                let close = (i + 1..c.len()).find(|&j| c[j] == '}');
                let is_rep = close.is_some_and(|e| {
                    let body: String = c[i + 1..e].iter().collect();
                    let mut parts = body.splitn(2, ',');
                    let a = parts.next().unwrap_or("");
                    let b = parts.next();
                    !a.is_empty()
                        && a.bytes().all(|x| x.is_ascii_digit())
                        && b.is_none_or(|b| b.bytes().all(|x| x.is_ascii_digit()))
                });
                if let (true, Some(e)) = (is_rep, close) {
                    out.extend(&c[i..=e]);
                    i = e + 1;
                    after_quant = true;
                    continue;
                }
                out.push_str("\\{");
            }
            '}' => out.push_str("\\}"),
            '(' if c.get(i + 1) == Some(&'?') && c.get(i + 2) == Some(&'>') => {
                out.push_str("(?:");
                lossy = true;
                i += 3;
                continue;
            }
            '$' => out.push_str("(?:\\n?\\z)"),
            _ => out.push(ch),
        }
        i += 1;
    }
    (out, lossy)
}

/// Compile the part of a specification after its stem, anchored.
fn compile(rest: &str) -> Option<Regex> {
    let (t, _) = translate(rest);
    // s: `.` matches a newline (PCRE2_DOTALL); -u: bytes, ASCII classes.
    Regex::new(&format!("(?s-u)^{t}(?:\\n?\\z)")).ok()
}

impl Spec {
    fn new(regex: &str, file_type: Option<FileType>, context: &str, origin: String) -> Spec {
        Spec {
            regex: regex.to_string(),
            file_type,
            context: context.to_string(),
            origin,
            stem: spec_stem(regex).map(str::to_string),
            has_meta: has_meta(regex),
            literal: literal_prefix(regex),
            compiled: OnceLock::new(),
        }
    }

    fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| {
                let rest = match &self.stem {
                    Some(s) => &self.regex[s.len()..],
                    None => &self.regex[..],
                };
                compile(rest)
            })
            .as_ref()
    }

    fn matches(&self, path: &[u8], ftype: Option<FileType>) -> bool {
        if let (Some(want), Some(have)) = (self.file_type, ftype) {
            if want != have {
                return false;
            }
        }
        if !path.starts_with(self.literal.as_bytes()) {
            return false;
        }
        let rest = match &self.stem {
            Some(s) => match path_stem(path) {
                Some(p) if p == s.as_bytes() => &path[s.len()..],
                _ => return false,
            },
            None => path,
        };
        self.regex().is_some_and(|r| r.is_match(rest))
    }
}

fn parse_subs(text: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect();
    // libselinux pushes each alias on the front of its list.
    v.reverse();
    v
}

fn apply_subs(subs: &[(String, String)], path: &str) -> Option<String> {
    for (src, dst) in subs {
        if let Some(rest) = path.strip_prefix(src.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                let rest = if rest.starts_with('/') && dst == "/" {
                    &rest[1..]
                } else {
                    rest
                };
                return Some(format!("{dst}{rest}"));
            }
        }
    }
    None
}

impl Policy {
    /// An empty policy (no specification matches anything).
    pub fn new() -> Policy {
        Policy::default()
    }

    /// Load a policy from a directory holding `file_contexts` (required)
    /// and the optional `file_contexts.homedirs`, `file_contexts.local`,
    /// `file_contexts.subs_dist` and `file_contexts.subs`.
    pub fn load_dir(dir: &std::path::Path) -> Result<Policy> {
        let read = |name: &str| -> Result<Option<String>> {
            let p = dir.join(name);
            match std::fs::read(&p) {
                Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
            }
        };
        Policy::from_reader(|name| read(name))
    }

    /// Load a policy through `read`, which gives the text of a file of the
    /// `contexts/files` directory by name (`None` when absent).
    fn from_reader(mut read: impl FnMut(&str) -> Result<Option<String>>) -> Result<Policy> {
        let mut p = Policy::new();
        let Some(main) = read("file_contexts")? else {
            return Err(Error::NotFound("file_contexts".into()));
        };
        p.add_specs(&main, "file_contexts")?;
        for extra in ["file_contexts.homedirs", "file_contexts.local"] {
            if let Some(t) = read(extra)? {
                p.add_specs(&t, extra)?;
            }
        }
        if let Some(t) = read("file_contexts.subs_dist")? {
            p.dist_subs = parse_subs(&t);
        }
        if let Some(t) = read("file_contexts.subs")? {
            p.subs = parse_subs(&t);
        }
        Ok(p)
    }

    /// Read the policy that an image uses: `SELINUXTYPE` of
    /// `/etc/selinux/config`, then `/etc/selinux/TYPE/contexts/files/`.
    /// `Ok(None)` when the image has no `/etc/selinux/config`, no
    /// `SELINUXTYPE` in it, or no `file_contexts` for that type.
    pub fn load_from_image(fs: &Filesystem) -> Result<Option<Policy>> {
        // A crafted image can make these files huge, or one file under
        // several names: each is read once, and all of them together are
        // at most MAX_POLICY_BYTES.
        let mut seen: Vec<(u32, String)> = Vec::new();
        let mut total = 0u64;
        let mut read = |path: &str| -> Result<Option<String>> {
            let Some(ino) = fs.try_resolve(path, true)? else {
                return Ok(None);
            };
            let inode = fs.read_inode(ino)?;
            if !inode.is_reg() {
                return Ok(None);
            }
            if let Some((_, other)) = seen.iter().find(|(i, _)| *i == ino) {
                return Err(Error::corrupt(format!(
                    "{path} is the same file as {other} (inode {ino}): not a policy file"
                )));
            }
            total += inode.size();
            if total > MAX_POLICY_BYTES {
                return Err(Error::corrupt(format!(
                    "{path}: {} bytes, the policy files together over {} MiB: not a policy",
                    inode.size(),
                    MAX_POLICY_BYTES >> 20
                )));
            }
            seen.push((ino, path.to_string()));
            let mut v = Vec::with_capacity(inode.size() as usize);
            fs.read_file(&inode, &mut v)?;
            Ok(Some(match String::from_utf8(v) {
                Ok(t) => t,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }))
        };
        let Some(config) = read("/etc/selinux/config")? else {
            return Ok(None);
        };
        let Some(ty) = selinux_type(&config) else {
            return Ok(None);
        };
        if ty.is_empty() || ty.contains('/') || ty == ".." {
            return Err(Error::corrupt(format!(
                "/etc/selinux/config: SELINUXTYPE={ty:?} is not a policy name"
            )));
        }
        let dir = format!("/etc/selinux/{ty}/contexts/files");
        let main = fs.try_resolve(&format!("{dir}/file_contexts"), true)?;
        if !main
            .map(|i| fs.read_inode(i))
            .transpose()?
            .is_some_and(|i| i.is_reg())
        {
            return Ok(None);
        }
        Policy::from_reader(|name| read(&format!("{dir}/{name}")))
            .map(Some)
            .map_err(|e| e.at(&dir))
    }

    /// Add the specifications of one file (`what` names it in errors).
    /// Later specifications override earlier ones.
    pub fn add_specs(&mut self, text: &str, what: &str) -> Result<()> {
        let mut exact = Vec::new();
        let mut meta = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let w: Vec<&str> = line.split_whitespace().collect();
            let origin = format!("{what}:{}", n + 1);
            let spec = match w[..] {
                [re, ctx] => Spec::new(re, None, ctx, origin),
                [re, ty, ctx] => {
                    let Some(t) = parse_type(ty) else {
                        return Err(Error::Invalid(format!(
                            "{origin}: invalid file type {ty:?}"
                        )));
                    };
                    Spec::new(re, Some(t), ctx, origin)
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "{origin}: expected REGEX [TYPE] CONTEXT, found {} fields",
                        w.len()
                    )))
                }
            };
            self.loaded += 1;
            if self.loaded > MAX_SPECS {
                return Err(Error::Invalid(format!(
                    "{}: more than {MAX_SPECS} specifications: not a policy",
                    spec.origin
                )));
            }
            if spec.has_meta {
                meta.push(spec);
            } else {
                exact.push(spec);
            }
        }
        // Keep "expressions, then exact paths", each in file order.
        let first_exact = self
            .specs
            .iter()
            .position(|s| !s.has_meta)
            .unwrap_or(self.specs.len());
        let tail: Vec<Spec> = self.specs.drain(first_exact..).collect();
        self.specs.extend(meta);
        self.specs.extend(tail);
        self.specs.extend(exact);
        Ok(())
    }

    /// Number of specifications.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// True if there is no specification.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The specification that decides the label of `path` (absolute),
    /// for a file of type `ftype` (`None`: any type matches), including
    /// one whose context is `<<none>>`.
    pub fn lookup(&self, path: &str, ftype: Option<FileType>) -> Option<&Spec> {
        let mut key = path.to_string();
        while key.contains("//") {
            key = key.replace("//", "/");
        }
        if key.len() > 1 && key.ends_with('/') {
            key.pop();
        }
        if key.is_empty() {
            return None;
        }
        let key = match apply_subs(&self.subs, &key) {
            Some(k) => apply_subs(&self.dist_subs, &k).unwrap_or(k),
            None => apply_subs(&self.dist_subs, &key).unwrap_or(key),
        };
        self.specs
            .iter()
            .rev()
            .find(|s| s.matches(key.as_bytes(), ftype))
    }

    /// The context for `path` of type `ftype`, or `None` when nothing
    /// matches or the matching specification says `<<none>>`.
    pub fn label(&self, path: &str, ftype: FileType) -> Option<String> {
        let ftype = (ftype != FileType::Unknown).then_some(ftype);
        self.lookup(path, ftype)
            .filter(|s| s.context != "<<none>>")
            .map(|s| s.context.clone())
    }

    /// Specifications whose expression was translated in a way that may
    /// change what matches (possessive quantifiers, atomic groups).
    pub fn lossy(&self) -> Vec<&Spec> {
        self.specs
            .iter()
            .filter(|s| translate(&s.regex).1)
            .collect()
    }

    /// Specifications whose expression the `regex` crate cannot run
    /// (they never match). Compiles every expression.
    pub fn unsupported(&self) -> Vec<&Spec> {
        self.specs.iter().filter(|s| s.regex().is_none()).collect()
    }
}

/// `SELINUXTYPE` of an `/etc/selinux/config` text.
fn selinux_type(config: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let l = l.trim();
        let v = l
            .strip_prefix("SELINUXTYPE")?
            .trim_start()
            .strip_prefix('=')?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        let mut p = Policy::new();
        p.add_specs(text, "test").unwrap();
        p
    }

    #[test]
    fn last_matching_expression_wins() {
        let p = policy("/usr/.*\tu:r:usr_t\n/usr/lib/.*\tu:r:lib_t\n/usr/lib/x.*\t<<none>>\n");
        assert_eq!(
            p.label("/usr/bin/ls", FileType::Regular).as_deref(),
            Some("u:r:usr_t")
        );
        assert_eq!(
            p.label("/usr/lib/a", FileType::Regular).as_deref(),
            Some("u:r:lib_t")
        );
        assert_eq!(p.label("/usr/lib/xyz", FileType::Regular), None);
        assert_eq!(p.lookup("/usr/lib/xyz", None).unwrap().context, "<<none>>");
        assert_eq!(p.label("/etc", FileType::Directory), None);
    }

    #[test]
    fn exact_paths_beat_later_expressions() {
        // The exact spec comes first in the file, yet wins over the later
        // expression; among exact specs the later one wins.
        let p =
            policy("/etc/shadow\tu:r:shadow_t\n/etc/shadow\tu:r:shadow2_t\n/etc/.*\tu:r:etc_t\n");
        assert_eq!(
            p.label("/etc/shadow", FileType::Regular).as_deref(),
            Some("u:r:shadow2_t")
        );
        assert_eq!(
            p.label("/etc/passwd", FileType::Regular).as_deref(),
            Some("u:r:etc_t")
        );
        // Escaped dots are no metacharacters: still an exact path.
        let p = policy("/a\\.b\tu:r:x_t\n/a.*\tu:r:y_t\n");
        assert_eq!(
            p.label("/a.b", FileType::Regular).as_deref(),
            Some("u:r:x_t")
        );
    }

    #[test]
    fn file_types_stems_and_aliases() {
        let mut p =
            policy("/usr/bin(/.*)?\tu:r:bin_t\n/usr/bin/x\t-d\tu:r:dir_t\n/usr/?\tu:r:odd_t\n");
        p.dist_subs = parse_subs("/bin /usr/bin\n");
        assert_eq!(
            p.label("/usr/bin/x", FileType::Directory).as_deref(),
            Some("u:r:dir_t")
        );
        assert_eq!(
            p.label("/usr/bin/x", FileType::Regular).as_deref(),
            Some("u:r:bin_t")
        );
        assert_eq!(
            p.label("/bin/x/", FileType::Directory).as_deref(),
            Some("u:r:dir_t")
        );
        assert_eq!(
            p.label("//bin", FileType::Symlink).as_deref(),
            Some("u:r:bin_t")
        );
        assert_eq!(p.label("/binx", FileType::Regular), None);
        // Stem "/usr": the path "/usr" has no stem, so libselinux skips it.
        assert_eq!(p.label("/usr", FileType::Directory), None);
        assert_eq!(p.label("/usr/", FileType::Directory), None);
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("/usr/lib/x?y"), "/usr/lib/");
        assert_eq!(literal_prefix("/usr/lib(/.*)?"), "/usr/lib");
        assert_eq!(literal_prefix("/a\\.b"), "/a");
        assert_eq!(literal_prefix("/a/b|/c"), "");
        assert_eq!(literal_prefix("/a/(b|c)"), "/a/");
        assert_eq!(literal_prefix("/etc/shadow"), "/etc/shadow");
    }

    #[test]
    fn translation() {
        assert_eq!(translate("/a.*+").0, "/a.*");
        assert!(translate("/a.*+").1);
        assert!(!translate("/a(/.*)?").1);
        assert_eq!(translate("/a{x").0, "/a\\{x");
        assert_eq!(translate("/a{2,}").0, "/a{2,}");
        assert_eq!(translate("/a[]x-]").0, "/a[\\]x-]");
        assert_eq!(translate("/a\\<").0, "/a<");
        assert!(compile("/dev/[[:alpha:]]+$").is_some());
        assert!(compile("/a(?=b)").is_none());
        assert_eq!(
            xattr_value("system_u:object_r:etc_t:s0"),
            b"system_u:object_r:etc_t:s0\0"
        );
        assert_eq!(
            selinux_type("# x\nSELINUX=enforcing\nSELINUXTYPE=targeted\n").as_deref(),
            Some("targeted")
        );
    }
}
