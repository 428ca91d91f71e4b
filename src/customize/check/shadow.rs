//! Requirement 6: passwords in /etc/shadow, so that root's password can
//! be reset: a root entry in /etc/shadow and `x` in root's password field
//! of /etc/passwd.

use super::{text_or_note, Finding, Status};
use crate::customize::text::content_lines;
use crate::customize::text::View;
use crate::error::Result;

/// Check requirement 6.
pub fn check(v: &dyn View) -> Result<Finding> {
    let mut f = Finding::new(6, "shadow", "passwords in /etc/shadow, with a root entry");
    let Some(shadow) = text_or_note(v, &mut f, "/etc/shadow")? else {
        f.mark(Status::Fail, "/etc/shadow is missing");
        f.fix_with(&["--fix"]);
        return Ok(f);
    };
    let mut root = None;
    for (n, l) in content_lines(&shadow) {
        let p: Vec<&str> = l.split(':').collect();
        if p.len() < 2 || p[0].is_empty() {
            f.mark(Status::Warn, format!("/etc/shadow:{n}: malformed line"));
            continue;
        }
        if p[0] == "root" && root.is_none() {
            root = Some((n, p[1].to_string()));
        }
    }
    match root {
        None => {
            f.mark(Status::Fail, "/etc/shadow has no root entry");
            f.fix_with(&["--root-password", "random"]);
        }
        Some((n, hash)) => {
            let state = if hash.is_empty() {
                "empty: root logs in without a password".to_string()
            } else if hash.starts_with('!') || hash == "*" {
                format!("locked ({hash}): set one with --root-password")
            } else {
                let kind = match hash.split('$').nth(1) {
                    Some("1") => "MD5",
                    Some("5") => "SHA-256",
                    Some("6") => "SHA-512",
                    Some("y") => "yescrypt",
                    Some("2a") | Some("2b") | Some("2y") => "bcrypt",
                    _ => "DES or unknown",
                };
                format!("a {kind} hash")
            };
            f.saw(format!("/etc/shadow:{n}: root's password is {state}"));
        }
    }
    if let Some(passwd) = text_or_note(v, &mut f, "/etc/passwd")? {
        if let Some((n, l)) = content_lines(&passwd).find(|(_, l)| l.starts_with("root:")) {
            let pw = l.split(':').nth(1).unwrap_or("");
            if pw != "x" {
                f.mark(
                    Status::Fail,
                    format!("/etc/passwd:{n}: root's password field is {pw:?}, not \"x\": /etc/shadow is not used for root"),
                );
                f.fix_with(&["--root-password", "random"]);
            }
        }
    }
    Ok(f)
}
