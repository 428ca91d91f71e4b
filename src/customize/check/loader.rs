//! Requirement 7: the loader reads /etc/ld.so.conf.d/libc6-xen.conf, and
//! that file says `hwcap 0 nosegneg` (so glibc avoids the segment-register
//! tricks that are slow under Xen).

use super::ssh::glob_match;
use super::{text_or_note, Finding, Status};
use crate::customize::text::content_lines;
use crate::customize::text::View;
use crate::error::Result;

/// The Xen loader configuration file.
pub const XEN_CONF: &str = "/etc/ld.so.conf.d/libc6-xen.conf";

/// The line libc6-xen.conf must hold, words split by blanks.
pub const HWCAP: [&str; 3] = ["hwcap", "0", "nosegneg"];

/// Check requirement 7.
pub fn check(v: &dyn View) -> Result<Finding> {
    let mut f = Finding::new(
        7,
        "xen-loader",
        "/etc/ld.so.conf.d/libc6-xen.conf with hwcap 0 nosegneg, read by the loader",
    );
    match text_or_note(v, &mut f, "/etc/ld.so.conf")? {
        None => {
            f.mark(Status::Fail, "/etc/ld.so.conf is missing");
            f.fix_with(&["--xen-ldconf"]);
        }
        Some(t) => {
            let inc = content_lines(&t).find(|(_, l)| {
                let mut w = l.split_whitespace();
                w.next() == Some("include")
                    && w.any(|pat| {
                        let pat = if pat.starts_with('/') {
                            pat.to_string()
                        } else {
                            format!("/etc/{pat}")
                        };
                        match pat.rsplit_once('/') {
                            Some((dir, last)) => {
                                dir == "/etc/ld.so.conf.d"
                                    && glob_match(last.as_bytes(), b"libc6-xen.conf")
                            }
                            None => false,
                        }
                    })
            });
            match inc {
                Some((n, l)) => f.saw(format!("/etc/ld.so.conf:{n}: {l}")),
                None => {
                    f.mark(
                        Status::Fail,
                        "/etc/ld.so.conf does not include ld.so.conf.d/*.conf",
                    );
                    f.fix_with(&["--xen-ldconf"]);
                }
            }
        }
    }
    match text_or_note(v, &mut f, XEN_CONF)? {
        None => {
            f.mark(Status::Fail, format!("{XEN_CONF} is missing"));
            f.fix_with(&["--xen-ldconf"]);
        }
        Some(t) => {
            let line =
                content_lines(&t).find(|(_, l)| l.split_whitespace().eq(HWCAP.iter().copied()));
            match line {
                Some((n, l)) => f.saw(format!("{XEN_CONF}:{n}: {l}")),
                None => {
                    f.mark(
                        Status::Fail,
                        format!("{XEN_CONF} has no \"hwcap 0 nosegneg\" line"),
                    );
                    f.fix_with(&["--xen-ldconf"]);
                }
            }
        }
    }
    Ok(f)
}
