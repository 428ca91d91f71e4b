//! Requirement 5: consoles configured through /etc/inittab and
//! /etc/securetty for the Xen console (xvc0, or hvc0 on newer kernels):
//! a getty respawned on it, and root allowed to log in there.

use super::{text_or_note, Finding, Status};
use crate::customize::text::content_lines;
use crate::customize::text::View;
use crate::error::Result;

/// The names of the Xen console device.
pub const XEN_CONSOLES: [&str; 2] = ["xvc0", "hvc0"];

/// The inittab line that runs a getty on a Xen console: (line, text).
pub fn getty_line(inittab: &str) -> Option<(usize, &str)> {
    content_lines(inittab).find(|(_, l)| {
        let p: Vec<&str> = l.splitn(4, ':').collect();
        p.len() == 4
            && p[2] == "respawn"
            && p[3]
                .split_whitespace()
                .any(|w| XEN_CONSOLES.contains(&w.trim_start_matches("/dev/")))
    })
}

/// Check requirement 5.
pub fn check(v: &dyn View) -> Result<Finding> {
    let mut f = Finding::new(
        5,
        "console",
        "the Xen console (xvc0 or hvc0) in /etc/inittab and /etc/securetty",
    );
    match text_or_note(v, &mut f, "/etc/inittab")? {
        None => {
            if super::ssh::uses_systemd(v)? {
                f.mark(
                    Status::Warn,
                    "no /etc/inittab: systemd starts a getty on the kernel console itself",
                );
            } else {
                f.mark(Status::Fail, "/etc/inittab is missing");
                f.fix_with(&["--xen-console", "xvc0"]);
            }
        }
        Some(t) => match getty_line(&t) {
            Some((n, l)) => {
                f.saw(format!("/etc/inittab:{n}: {l}"));
                // The program that line runs must be in the image.
                let prog = l
                    .splitn(4, ':')
                    .nth(3)
                    .unwrap_or("")
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                if prog.starts_with('/') && v.meta(prog, true)?.is_none() {
                    f.mark(
                        Status::Warn,
                        format!("{prog} (run by /etc/inittab:{n}) is not in the image"),
                    );
                }
            }
            None => {
                f.mark(Status::Fail, "/etc/inittab runs no getty on xvc0 or hvc0");
                f.fix_with(&["--xen-console", "xvc0"]);
            }
        },
    }
    match text_or_note(v, &mut f, "/etc/securetty")? {
        None => {
            f.mark(
                Status::Fail,
                "/etc/securetty is missing (root may not log in on any console)",
            );
            f.fix_with(&["--xen-console", "xvc0"]);
        }
        Some(t) => {
            let found = content_lines(&t)
                .find(|(_, l)| XEN_CONSOLES.contains(&l.trim_start_matches("/dev/")));
            match found {
                Some((n, l)) => f.saw(format!("/etc/securetty:{n}: {l}")),
                None => {
                    f.mark(Status::Fail, "/etc/securetty does not list xvc0 or hvc0");
                    f.fix_with(&["--xen-console", "xvc0"]);
                }
            }
        }
    }
    Ok(f)
}
