//! POSIX ACLs in their three forms: the text form of tar's
//! `SCHILY.acl.access` / `SCHILY.acl.default` records
//! (`user::rwx,user:1000:r-x,group::r-x,mask::r-x,other::r--`, entries
//! separated by commas or newlines, `#` comments, star's fourth field of
//! a numeric id after a name), the user-space xattr form that
//! `getxattr(2)` returns for `system.posix_acl_*` (a 4-byte version 2,
//! then 8-byte entries: tag u16, perm u16, id u32, little-endian), and
//! the ext2/3/4 on-disk form the kernel stores under name indexes 2
//! (access) and 3 (default): a 4-byte version 1, then entries of tag u16
//! and perm u16, followed by id u32 only for named users (tag 2) and
//! groups (tag 8). Entries are kept in the kernel's order: by tag
//! (user_obj 1, user 2, group_obj 4, group 8, mask 0x10, other 0x20),
//! then by id.

use crate::error::{Error, Result};
use crate::layout::{le16, le32};

const USER_OBJ: u16 = 1;
const USER: u16 = 2;
const GROUP_OBJ: u16 = 4;
const GROUP: u16 = 8;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

/// One ACL entry: tag, permission bits (rwx = 4|2|1), id (named entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The tag (see the module text).
    pub tag: u16,
    /// The id of a named user or group (0 otherwise).
    pub id: u32,
    /// rwx bits.
    pub perm: u16,
}

/// Sort and check an ACL as the kernel's `posix_acl_valid` wants it: one
/// user_obj, group_obj and other each, a mask when named entries exist,
/// no id twice.
fn normalise(mut v: Vec<Entry>) -> std::result::Result<Vec<Entry>, String> {
    v.sort();
    for w in v.windows(2) {
        if w[0].tag == w[1].tag && (w[0].id == w[1].id || ![USER, GROUP].contains(&w[0].tag)) {
            return Err("an entry is given twice".into());
        }
    }
    let has = |t| v.iter().any(|e| e.tag == t);
    if !has(USER_OBJ) || !has(GROUP_OBJ) || !has(OTHER) {
        return Err("it needs user::, group:: and other:: entries".into());
    }
    if (has(USER) || has(GROUP)) && !has(MASK) {
        return Err("it has named entries but no mask:: entry".into());
    }
    Ok(v)
}

fn perm_of(s: &str) -> std::result::Result<u16, String> {
    let mut p = 0;
    for c in s.chars() {
        p |= match c {
            'r' => 4,
            'w' => 2,
            'x' => 1,
            '-' => 0,
            _ => return Err(format!("bad permissions {s:?}")),
        };
    }
    if s.is_empty() || s.len() > 3 {
        return Err(format!("bad permissions {s:?}"));
    }
    Ok(p)
}

/// Parse the text form. `names` turns a user (true) or group (false)
/// name into its id, when the text gives a name without star's numeric
/// fourth field.
pub fn from_text(
    text: &[u8],
    names: &dyn Fn(bool, &str) -> Option<u32>,
) -> std::result::Result<Vec<Entry>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the ACL text is not UTF-8".to_string())?;
    let mut v = Vec::new();
    for raw in text.split([',', '\n']) {
        let e = raw.split('#').next().unwrap_or("").trim();
        if e.is_empty() {
            continue;
        }
        let f: Vec<&str> = e.split(':').collect();
        let (tag, qual, perm, extra) = match f.as_slice() {
            [t, p] => (*t, "", *p, None),
            [t, q, p] => (*t, *q, *p, None),
            [t, q, p, id] => (*t, *q, *p, Some(*id)),
            _ => return Err(format!("bad ACL entry {e:?}")),
        };
        let perm = perm_of(perm)?;
        let id_of = |user: bool| -> std::result::Result<u32, String> {
            if let Some(id) = extra {
                return id.parse().map_err(|_| format!("bad id in ACL entry {e:?}"));
            }
            if let Ok(n) = qual.parse::<u32>() {
                return Ok(n);
            }
            names(user, qual).ok_or_else(|| {
                format!(
                    "ACL entry {e:?} names {} {qual:?}, unknown to the image's /etc/{}",
                    if user { "user" } else { "group" },
                    if user { "passwd" } else { "group" }
                )
            })
        };
        let (tag, id) = match (tag, qual.is_empty()) {
            ("user" | "u", true) => (USER_OBJ, 0),
            ("user" | "u", false) => (USER, id_of(true)?),
            ("group" | "g", true) => (GROUP_OBJ, 0),
            ("group" | "g", false) => (GROUP, id_of(false)?),
            ("mask" | "m", true) => (MASK, 0),
            ("other" | "o", true) => (OTHER, 0),
            _ => return Err(format!("bad ACL entry {e:?}")),
        };
        v.push(Entry { tag, id, perm });
    }
    normalise(v)
}

/// What an access ACL makes of a mode's permission bits, as the kernel
/// sets them (`posix_acl_update_mode`): owner from user::, group from
/// mask:: (group:: without a mask), other from other::; and whether the
/// ACL says more than the mode (named entries), so that it must be
/// stored at all (`posix_acl_equiv_mode`).
pub fn mode_bits(acl: &[Entry]) -> (u16, bool) {
    let get = |t| acl.iter().find(|e| e.tag == t).map(|e| e.perm);
    let group = get(MASK).or(get(GROUP_OBJ)).unwrap_or(0);
    let bits = (get(USER_OBJ).unwrap_or(0) << 6) | (group << 3) | get(OTHER).unwrap_or(0);
    let extended = acl
        .iter()
        .any(|e| ![USER_OBJ, GROUP_OBJ, OTHER].contains(&e.tag));
    (bits, extended)
}

/// The text form, numeric ids, comma-separated (what `acl_from_text`
/// and GNU tar read back).
pub fn to_text(acl: &[Entry]) -> String {
    let mut out = Vec::new();
    for e in acl {
        let p = format!(
            "{}{}{}",
            if e.perm & 4 != 0 { 'r' } else { '-' },
            if e.perm & 2 != 0 { 'w' } else { '-' },
            if e.perm & 1 != 0 { 'x' } else { '-' }
        );
        out.push(match e.tag {
            USER_OBJ => format!("user::{p}"),
            USER => format!("user:{}:{p}", e.id),
            GROUP_OBJ => format!("group::{p}"),
            GROUP => format!("group:{}:{p}", e.id),
            MASK => format!("mask::{p}"),
            _ => format!("other::{p}"),
        });
    }
    out.join(",")
}

/// The ext4 on-disk form.
pub fn to_disk(acl: &[Entry]) -> Vec<u8> {
    let mut v = 1u32.to_le_bytes().to_vec();
    for e in acl {
        v.extend_from_slice(&e.tag.to_le_bytes());
        v.extend_from_slice(&e.perm.to_le_bytes());
        if e.tag == USER || e.tag == GROUP {
            v.extend_from_slice(&e.id.to_le_bytes());
        }
    }
    v
}

/// Parse the ext4 on-disk form.
pub fn from_disk(b: &[u8]) -> Result<Vec<Entry>> {
    let bad = |m: &str| Error::corrupt(format!("ACL attribute: {m}"));
    if b.len() < 4 || le32(b, 0) != 1 {
        return Err(bad("not version 1 of the ext4 ACL format"));
    }
    let mut v = Vec::new();
    let mut at = 4;
    while at < b.len() {
        if at + 4 > b.len() {
            return Err(bad("an entry is cut short"));
        }
        let tag = le16(b, at);
        let perm = le16(b, at + 2) & 7;
        at += 4;
        let id = if tag == USER || tag == GROUP {
            if at + 4 > b.len() {
                return Err(bad("an entry is cut short"));
            }
            at += 4;
            le32(b, at - 4)
        } else if [USER_OBJ, GROUP_OBJ, MASK, OTHER].contains(&tag) {
            0
        } else {
            return Err(bad(&format!("unknown tag {tag:#x}")));
        };
        v.push(Entry { tag, id, perm });
    }
    normalise(v).map_err(|m| bad(&m))
}

/// Parse the user-space xattr form (version 2, 8-byte entries).
pub fn from_xattr(b: &[u8]) -> std::result::Result<Vec<Entry>, String> {
    if b.len() < 4 || le32(b, 0) != 2 || !(b.len() - 4).is_multiple_of(8) {
        return Err("not a POSIX ACL in the xattr form (version 2, 8-byte entries)".into());
    }
    let mut v = Vec::new();
    for c in b[4..].chunks(8) {
        let tag = le16(c, 0);
        if ![USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER].contains(&tag) {
            return Err(format!("unknown ACL tag {tag:#x}"));
        }
        let id = if tag == USER || tag == GROUP {
            le32(c, 4)
        } else {
            0
        };
        v.push(Entry {
            tag,
            id,
            perm: le16(c, 2) & 7,
        });
    }
    normalise(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: bool, _: &str) -> Option<u32> {
        None
    }

    #[test]
    fn text_round_trip() {
        let a = from_text(
            b"user::rw-\nuser:1000:r--\ngroup::r--\nmask::r--\nother::---\n",
            &none,
        )
        .unwrap();
        assert_eq!(
            to_text(&a),
            "user::rw-,user:1000:r--,group::r--,mask::r--,other::---"
        );
        let d = to_disk(&a);
        assert_eq!(d.len(), 4 + 4 + 8 + 4 + 4 + 4);
        assert_eq!(from_disk(&d).unwrap(), a);
        // star's form: a name and its id.
        let b = from_text(b"u::rwx,u:bob:r-x:1000,g::r-x,m::r-x,o::r-x", &none).unwrap();
        assert_eq!(
            b[1],
            Entry {
                tag: USER,
                id: 1000,
                perm: 5
            }
        );
    }

    #[test]
    fn bad_acls() {
        for t in [
            &b"user::rw-"[..],
            b"user::rw-,user:5:r--,group::r--,other::---",
            b"user::rwz,group::r--,other::---",
            b"user::rw-,group::r--,other::---,other::---",
            b"user:bob:rw-,user::rw-,group::r--,mask::rw-,other::---",
        ] {
            assert!(
                from_text(t, &none).is_err(),
                "{:?}",
                String::from_utf8_lossy(t)
            );
        }
    }

    #[test]
    fn xattr_form() {
        let mut b = 2u32.to_le_bytes().to_vec();
        for (t, p, id) in [
            (1u16, 6u16, u32::MAX),
            (4, 4, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            b.extend_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&p.to_le_bytes());
            b.extend_from_slice(&id.to_le_bytes());
        }
        let a = from_xattr(&b).unwrap();
        assert_eq!(to_text(&a), "user::rw-,group::r--,other::r--");
        assert!(from_xattr(&b[..10]).is_err());
    }
}
