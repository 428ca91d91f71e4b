//! Requirement 5: consoles configured through /etc/inittab and
//! /etc/securetty for the Xen console (xvc0, or hvc0 on newer kernels):
//! a getty respawned on it, and root allowed to log in there.
//!
//! On a systemd image inittab is not read: the getty is the
//! `serial-getty@NAME.service` link in getty.target.wants. /etc/securetty
//! only matters where login's PAM stack uses pam_securetty (Debian's
//! stopped doing so in bullseye).

use super::{text_or_note, Finding, Status};
use crate::customize::text::View;
use crate::customize::text::{content_lines, read_text};
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

/// Where systemd's getty links go.
pub const GETTY_WANTS: &str = "/etc/systemd/system/getty.target.wants";

/// Whether login checks /etc/securetty: `Some((true, where))` when
/// /etc/pam.d/login (or a file it includes) has an active pam_securetty
/// line, `Some((false, ..))` when it has none, `None` without
/// /etc/pam.d/login (no PAM: login reads securetty itself).
pub fn securetty_used(v: &dyn View) -> Result<Option<(bool, String)>> {
    let login = "/etc/pam.d/login";
    let Some(t) = read_text(v, login).ok().flatten() else {
        return Ok(None);
    };
    let mut files = vec![(login.to_string(), t)];
    let mut i = 0;
    while i < files.len() && files.len() < 16 {
        let t = files[i].1.clone();
        for (_, l) in content_lines(&t) {
            let w: Vec<&str> = l.split_whitespace().collect();
            // `@include common-auth` (Debian), `auth include system-auth`,
            // `auth substack ...` (Red Hat).
            let inc = match w.as_slice() {
                ["@include", f, ..] => Some(*f),
                [_, "include" | "substack", f, ..] => Some(*f),
                _ => None,
            };
            if let Some(n) = inc {
                let p = format!("/etc/pam.d/{}", n.trim_start_matches("/etc/pam.d/"));
                if !files.iter().any(|(q, _)| q == &p) {
                    if let Some(s) = read_text(v, &p).ok().flatten() {
                        files.push((p, s));
                    }
                }
            }
        }
        i += 1;
    }
    for (p, t) in &files {
        for (n, l) in content_lines(t) {
            if l.split_whitespace()
                .any(|w| w.rsplit('/').next() == Some("pam_securetty.so"))
            {
                return Ok(Some((true, format!("{p}:{n}: {l}"))));
            }
        }
    }
    Ok(Some((false, login.to_string())))
}

/// The TERM for a getty on a serial console: the first of vt100-nav
/// (RHEL's), vt220, vt100 and linux that the image's terminfo has
/// (/etc/terminfo, /lib/terminfo, /usr/share/terminfo), else vt100.
pub fn console_term(v: &dyn View) -> Result<&'static str> {
    for term in ["vt100-nav", "vt220", "vt100", "linux"] {
        for d in ["/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"] {
            let first = &term[..1];
            let hex = format!("{:x}", term.as_bytes()[0]);
            for sub in [first, hex.as_str()] {
                if v.meta(&format!("{d}/{sub}/{term}"), true)?
                    .is_some_and(|m| m.is_reg())
                {
                    return Ok(term);
                }
            }
        }
    }
    Ok("vt100")
}

/// The Xen console name for the image's kernels: xvc0 for the 2.6.18
/// Xen kernels of RHEL 5 (and when the image has none), hvc0 from 2.6.26
/// on (the mainline Xen console), judged by /lib/modules.
pub fn default_console(v: &dyn View) -> Result<&'static str> {
    for e in v.list_dir("/lib/modules")?.unwrap_or_default() {
        let mut it = e.name.split(['.', '-']).map(|n| n.parse::<u32>().ok());
        let (a, b, c) = (
            it.next().flatten(),
            it.next().flatten(),
            it.next().flatten(),
        );
        match (a, b, c) {
            (Some(a), _, _) if a >= 3 => return Ok("hvc0"),
            (Some(2), Some(6), Some(c)) if c >= 26 => return Ok("hvc0"),
            _ => {}
        }
    }
    Ok("xvc0")
}

/// The systemd link that starts a getty on a Xen console.
fn systemd_getty(v: &dyn View) -> Result<Option<String>> {
    for c in XEN_CONSOLES {
        let p = format!("{GETTY_WANTS}/serial-getty@{c}.service");
        if let Some(t) = v.read_link(&p)? {
            if v.meta(&p, true)?.is_some() {
                return Ok(Some(format!("{p} -> {t}")));
            }
        }
    }
    Ok(None)
}

/// Check requirement 5.
pub fn check(v: &dyn View) -> Result<Finding> {
    let mut f = Finding::new(
        5,
        "console",
        "the Xen console (xvc0 or hvc0) in /etc/inittab and /etc/securetty",
    );
    let systemd = super::ssh::uses_systemd(v)?;
    if systemd {
        match systemd_getty(v)? {
            Some(l) => f.saw(format!("systemd: {l} starts a getty on the Xen console")),
            None => f.mark(
                Status::Warn,
                "systemd: no serial-getty@xvc0 or @hvc0 link in getty.target.wants; systemd's getty generator starts one on hvc0 or xvc0 when the device exists",
            ),
        }
    }
    match (systemd, text_or_note(v, &mut f, "/etc/inittab")?) {
        (true, _) => {}
        (false, None) => {
            f.mark(Status::Fail, "/etc/inittab is missing");
            f.fix_with(&["--xen-console", default_console(v)?]);
        }
        (false, Some(t)) => match getty_line(&t) {
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
                f.fix_with(&["--xen-console", default_console(v)?]);
            }
        },
    }
    if let Some((false, login)) = securetty_used(v)? {
        f.saw(format!(
            "{login} does not use pam_securetty: root may log in on every console, /etc/securetty is not read"
        ));
        return Ok(f);
    }
    match text_or_note(v, &mut f, "/etc/securetty")? {
        None => {
            f.mark(
                Status::Fail,
                "/etc/securetty is missing (root may not log in on any console)",
            );
            f.fix_with(&["--xen-console", default_console(v)?]);
        }
        Some(t) => {
            let found = content_lines(&t)
                .find(|(_, l)| XEN_CONSOLES.contains(&l.trim_start_matches("/dev/")));
            match found {
                Some((n, l)) => f.saw(format!("/etc/securetty:{n}: {l}")),
                None => {
                    f.mark(Status::Fail, "/etc/securetty does not list xvc0 or hvc0");
                    f.fix_with(&["--xen-console", default_console(v)?]);
                }
            }
        }
    }
    Ok(f)
}
