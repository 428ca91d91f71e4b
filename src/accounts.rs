//! The image's own user database: `/etc/passwd` and `/etc/group`, read
//! from the image through the [`Filesystem`] API (never the host's).
//!
//! Both files are lines of fields separated by `:`:
//!
//! ```text
//! /etc/passwd   name:password:UID:GID:gecos:home:shell      (7 fields)
//! /etc/group    name:password:GID:member,member,...         (4 fields)
//! ```
//!
//! Blank lines and lines starting with `#` are skipped, and so are NIS
//! compat entries (lines starting with `+` or `-`), which name no local
//! account. Any other line that does not have the right number of fields,
//! has an empty name, or a UID/GID that is not a number up to 2^32-1 is
//! malformed: loading fails with an error naming the file and line number,
//! so that nothing is ever looked up in a half-understood file.
//!
//! A file that does not exist in the image is an empty table; looking a
//! name up in it fails with a message that says the file is missing.
//!
//! ```no_run
//! use ext3edit::{accounts::Accounts, Filesystem, OpenOptions};
//! let fs = Filesystem::open("disk.ext3".as_ref(), &OpenOptions::read_only())?;
//! let acc = Accounts::load(&fs)?;
//! let uid = acc.uid_of("alice")?;
//! let gid = acc.gid_of("wheel")?;
//! # Ok::<(), ext3edit::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::fs::Filesystem;

/// Where the user table lives in the image.
pub const PASSWD: &str = "/etc/passwd";
/// Where the group table lives in the image.
pub const GROUP: &str = "/etc/group";

/// Largest account file read (a passwd of 100,000 users is about 8 MiB).
const MAX_FILE: u64 = 64 << 20;

/// One line of `/etc/passwd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Password field (usually `x`: the hash is in /etc/shadow).
    pub password: String,
    /// User ID.
    pub uid: u32,
    /// Login (primary) group ID.
    pub gid: u32,
    /// Comment (full name).
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// Line number in the file (1-based).
    pub line: usize,
}

impl User {
    /// The entry as a passwd line (without newline).
    pub fn to_line(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}",
            self.name, self.password, self.uid, self.gid, self.gecos, self.home, self.shell
        )
    }
}

/// One line of `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Password field (usually `x` or empty).
    pub password: String,
    /// Group ID.
    pub gid: u32,
    /// Supplementary members (user names).
    pub members: Vec<String>,
    /// Line number in the file (1-based).
    pub line: usize,
}

impl Group {
    /// The entry as a group line (without newline).
    pub fn to_line(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.name,
            self.password,
            self.gid,
            self.members.join(",")
        )
    }
}

/// The lines of an account file that hold entries: (line number, fields).
fn entries<'a>(
    text: &'a str,
    file: &'a str,
    nfields: usize,
) -> impl Iterator<Item = Result<(usize, Vec<&'a str>)>> + 'a {
    text.lines().enumerate().filter_map(move |(i, l)| {
        let n = i + 1;
        let t = l.trim_end_matches('\r');
        if t.trim().is_empty() || t.starts_with('#') || t.starts_with('+') || t.starts_with('-') {
            return None;
        }
        let f: Vec<&str> = t.split(':').collect();
        if f.len() != nfields {
            return Some(Err(malformed(
                file,
                n,
                &format!(
                    "expected {nfields} fields separated by ':', found {}",
                    f.len()
                ),
            )));
        }
        if f[0].is_empty() {
            return Some(Err(malformed(file, n, "empty name")));
        }
        Some(Ok((n, f)))
    })
}

fn malformed(file: &str, line: usize, what: &str) -> Error {
    Error::Invalid(format!("{file} line {line} in the image: {what}"))
}

fn id(field: &str, file: &str, line: usize, what: &str) -> Result<u32> {
    field
        .parse::<u32>()
        .map_err(|_| malformed(file, line, &format!("{what} {field:?} is not a number")))
}

/// Parse the text of a passwd file; `file` names it in errors.
pub fn parse_passwd(text: &str, file: &str) -> Result<Vec<User>> {
    entries(text, file, 7)
        .map(|r| {
            let (line, f) = r?;
            Ok(User {
                name: f[0].to_string(),
                password: f[1].to_string(),
                uid: id(f[2], file, line, "UID")?,
                gid: id(f[3], file, line, "GID")?,
                gecos: f[4].to_string(),
                home: f[5].to_string(),
                shell: f[6].to_string(),
                line,
            })
        })
        .collect()
}

/// Parse the text of a group file; `file` names it in errors.
pub fn parse_group(text: &str, file: &str) -> Result<Vec<Group>> {
    entries(text, file, 4)
        .map(|r| {
            let (line, f) = r?;
            Ok(Group {
                name: f[0].to_string(),
                password: f[1].to_string(),
                gid: id(f[2], file, line, "GID")?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
                line,
            })
        })
        .collect()
}

/// Read a text file of the image; `None` when it does not exist.
fn read_text(fs: &Filesystem, path: &str) -> Result<Option<String>> {
    let Some(ino) = fs.try_resolve(path, true)? else {
        return Ok(None);
    };
    let inode = fs.read_inode(ino)?;
    if !inode.is_reg() {
        return Err(Error::Invalid(format!(
            "{path} in the image is a {}, not a regular file",
            inode.file_type().name()
        )));
    }
    if inode.size() > MAX_FILE {
        return Err(Error::Invalid(format!(
            "{path} in the image is {} bytes, more than an account file can be",
            inode.size()
        )));
    }
    let mut buf = Vec::new();
    fs.read_file(&inode, &mut buf).map_err(|e| e.at(path))?;
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| Error::Invalid(format!("{path} in the image is not UTF-8 text")))
}

/// The users and groups of an image.
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    /// Entries of /etc/passwd, in file order.
    pub users: Vec<User>,
    /// Entries of /etc/group, in file order.
    pub groups: Vec<Group>,
    /// Whether /etc/passwd exists in the image.
    pub has_passwd: bool,
    /// Whether /etc/group exists in the image.
    pub has_group: bool,
}

impl Accounts {
    /// Read /etc/passwd and /etc/group from the image (symlinks resolved
    /// inside the image). A missing file gives an empty table; a malformed
    /// line is an error naming the file and line.
    pub fn load(fs: &Filesystem) -> Result<Accounts> {
        let p = read_text(fs, PASSWD)?;
        let g = read_text(fs, GROUP)?;
        Ok(Accounts {
            users: p
                .as_deref()
                .map(|t| parse_passwd(t, PASSWD))
                .transpose()?
                .unwrap_or_default(),
            groups: g
                .as_deref()
                .map(|t| parse_group(t, GROUP))
                .transpose()?
                .unwrap_or_default(),
            has_passwd: p.is_some(),
            has_group: g.is_some(),
        })
    }

    /// The first user of that name (as getpwnam(3) finds it).
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The first user with that UID.
    pub fn user_by_uid(&self, uid: u32) -> Option<&User> {
        self.users.iter().find(|u| u.uid == uid)
    }

    /// The first group of that name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The first group with that GID.
    pub fn group_by_gid(&self, gid: u32) -> Option<&Group> {
        self.groups.iter().find(|g| g.gid == gid)
    }

    /// The UID of a user name; an error names the name and the file.
    pub fn uid_of(&self, name: &str) -> Result<u32> {
        self.user(name).map(|u| u.uid).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown user {name:?}: {}",
                missing_in(PASSWD, self.has_passwd)
            ))
        })
    }

    /// The GID of a group name; an error names the name and the file.
    pub fn gid_of(&self, name: &str) -> Result<u32> {
        self.group(name).map(|g| g.gid).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown group {name:?}: {}",
                missing_in(GROUP, self.has_group)
            ))
        })
    }

    /// The login group of a user name; an error names the name and file.
    pub fn login_gid_of(&self, name: &str) -> Result<u32> {
        self.user(name).map(|u| u.gid).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown user {name:?}: {}",
                missing_in(PASSWD, self.has_passwd)
            ))
        })
    }
}

fn missing_in(file: &str, exists: bool) -> String {
    if exists {
        format!("not in the image's {file}")
    } else {
        format!("the image has no {file} to look it up in")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_and_skips_comments() {
        let t = "# users\n\nroot:x:0:0:root:/root:/bin/bash\n+@nis::::::\nalice:x:500:501:Alice A:/home/alice:/bin/sh\r\n";
        let u = parse_passwd(t, PASSWD).unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].name, "alice");
        assert_eq!((u[1].uid, u[1].gid, u[1].line), (500, 501, 5));
        assert_eq!(u[1].shell, "/bin/sh");
        assert_eq!(
            u[1].to_line(),
            "alice:x:500:501:Alice A:/home/alice:/bin/sh"
        );
    }

    #[test]
    fn parses_group_members() {
        let g = parse_group("wheel:x:10:root,alice\nusers::100:\n", GROUP).unwrap();
        assert_eq!(g[0].members, ["root", "alice"]);
        assert!(g[1].members.is_empty());
        assert_eq!(g[1].to_line(), "users::100:");
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let e = parse_passwd("root:x:0:0:root:/root:/bin/sh\nbad:x:0\n", PASSWD)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/passwd line 2"), "{e}");
        assert!(e.contains("expected 7 fields"), "{e}");
        let e = parse_group("g:x:ten:\n", GROUP).unwrap_err().to_string();
        assert!(e.contains("/etc/group line 1"), "{e}");
        assert!(e.contains("\"ten\" is not a number"), "{e}");
        let e = parse_group(":x:1:\n", GROUP).unwrap_err().to_string();
        assert!(e.contains("empty name"), "{e}");
    }

    #[test]
    fn lookups_and_errors() {
        let a = Accounts {
            users: parse_passwd("alice:x:500:501::/:/bin/sh\n", PASSWD).unwrap(),
            groups: Vec::new(),
            has_passwd: true,
            has_group: false,
        };
        assert_eq!(a.uid_of("alice").unwrap(), 500);
        assert_eq!(a.login_gid_of("alice").unwrap(), 501);
        assert_eq!(a.user_by_uid(500).unwrap().name, "alice");
        let e = a.uid_of("bob").unwrap_err().to_string();
        assert_eq!(e, "unknown user \"bob\": not in the image's /etc/passwd");
        let e = a.gid_of("staff").unwrap_err().to_string();
        assert!(e.contains("no /etc/group"), "{e}");
    }
}
