//! Requirement 3: user accounts live under /home (home directories are
//! created there).
//!
//! /home must be a directory (a symlink to one inside the image counts),
//! and every regular user of /etc/passwd (UID_MIN from /etc/login.defs up,
//! 1000 when it does not say; nobody's 65534 excepted) must have a home
//! under /home.

use super::{Finding, Status};
use crate::customize::text::{content_lines, read_text, View};
use crate::error::Result;

/// The lowest uid of a regular user (UID_MIN of /etc/login.defs).
pub fn uid_min(v: &dyn View) -> Result<u32> {
    if let Some(t) = read_text(v, "/etc/login.defs").ok().flatten() {
        for (_, l) in content_lines(&t) {
            let mut w = l.split_whitespace();
            if w.next() == Some("UID_MIN") {
                if let Some(v) = w.next().and_then(|v| v.parse().ok()) {
                    return Ok(v);
                }
            }
        }
    }
    Ok(1000)
}

/// Check requirement 3.
pub fn check(v: &dyn View) -> Result<Finding> {
    let mut f = Finding::new(3, "home", "user accounts under /home");
    match v.meta("/home", true)? {
        Some(i) if i.is_dir() => f.saw("/home is a directory"),
        Some(i) => {
            f.mark(
                Status::Fail,
                format!("/home is a {}, not a directory", i.ftype.name()),
            );
            f.fix_by_hand(
                "move /home aside (ext3edit mv IMAGE /home /home.old) and run customize --fix",
            );
        }
        None => {
            f.mark(Status::Fail, "/home is missing");
            f.fix_with(&["--mkdir", "/home"]);
        }
    }
    let Some(passwd) = read_text(v, "/etc/passwd").ok().flatten() else {
        f.mark(Status::Fail, "/etc/passwd is missing: no accounts at all");
        f.fix_by_hand("the image has no /etc/passwd: it is not a usable root file system");
        return Ok(f);
    };
    let min = uid_min(v)?;
    let mut users = Vec::new();
    let mut elsewhere = Vec::new();
    let entries = match crate::accounts::parse_passwd(&passwd, "/etc/passwd") {
        Ok(e) => e,
        Err(e) => {
            f.mark(Status::Warn, e.to_string());
            Vec::new()
        }
    };
    for u in entries {
        if u.uid < min || u.uid == 65534 {
            continue;
        }
        if u.home == "/home" || u.home.starts_with("/home/") {
            users.push(u.name.clone());
        } else {
            elsewhere.push(format!(
                "{} (uid {}) has home {} (/etc/passwd:{})",
                u.name, u.uid, u.home, u.line
            ));
        }
    }
    if users.is_empty() && elsewhere.is_empty() {
        f.saw(format!(
            "no regular users yet (uid {min} and up); new ones get homes under /home"
        ));
    } else if !users.is_empty() {
        f.saw(format!(
            "users with homes under /home: {}",
            users.join(", ")
        ));
    }
    for e in elsewhere {
        f.mark(Status::Warn, e);
    }
    Ok(f)
}
