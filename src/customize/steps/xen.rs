//! Xen steps: a getty and root login on the Xen console, and the loader
//! configuration for Xen's segment handling.

use crate::customize::check::console::{console_term, securetty_used, GETTY_WANTS};
use crate::customize::check::loader::XEN_CONF;
use crate::customize::check::netstack::unit_file;
use crate::customize::check::ssh::uses_systemd;
use crate::customize::plan::{Attrs, Content, Plan};
use crate::customize::text::{self, content_lines, read_text, View};
use crate::error::Result;

/// `--xen-console NAME`: a respawned getty on NAME in /etc/inittab (on a
/// systemd image, which ignores inittab, the serial-getty@NAME link in
/// getty.target.wants), and NAME in /etc/securetty where login uses it.
/// Nothing is added twice.
pub fn console(plan: &mut Plan, name: &str) -> Result<()> {
    let systemd = uses_systemd(plan)?;
    match (systemd, read_text(plan, "/etc/inittab")?) {
        (false, Some(t)) => {
            let has = content_lines(&t).any(|(_, l)| {
                let p: Vec<&str> = l.splitn(4, ':').collect();
                p.len() == 4
                    && p[2] == "respawn"
                    && p[3]
                        .split_whitespace()
                        .any(|w| w.trim_start_matches("/dev/") == name)
            });
            if !has {
                // An id not used yet: "co" as RHEL's Xen images have, else x0..x9.
                let ids: Vec<&str> = content_lines(&t)
                    .filter_map(|(_, l)| l.split(':').next())
                    .collect();
                let id = [
                    "co", "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9",
                ]
                .into_iter()
                .find(|i| !ids.contains(i))
                .unwrap_or("xc");
                // A getty the image has: mingetty (RHEL), agetty
                // (util-linux, everywhere else), busybox getty.
                let getty = if plan.meta("/sbin/mingetty", true)?.is_some() {
                    format!("/sbin/mingetty {name}")
                } else if plan.meta("/sbin/agetty", true)?.is_some() {
                    // A TERM the image's terminfo knows (Debian has no
                    // vt100-nav: tput and less would not work).
                    let term = console_term(plan)?;
                    format!("/sbin/agetty -L {name} 9600 {term}")
                } else if plan.meta("/sbin/getty", true)?.is_some() {
                    format!("/sbin/getty 9600 {name}")
                } else {
                    // None found (a tree without util-linux yet): RHEL's
                    // default; `check` warns that it is missing.
                    format!("/sbin/mingetty {name}")
                };
                let mut out = t.clone();
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&format!("{id}:2345:respawn:{getty}\n"));
                plan.write(
                    "/etc/inittab",
                    Content::Bytes(text::edited(&t, &out)),
                    Attrs::root(0o644),
                )?;
            }
        }
        // systemd does not read inittab: the unit link, as `systemctl
        // enable serial-getty@NAME.service` makes it.
        (true, _) => {
            let unit = unit_file(plan, "serial-getty@.service")?
                .unwrap_or_else(|| "/usr/lib/systemd/system/serial-getty@.service".into());
            plan.mkdir_p(GETTY_WANTS, Attrs::root(0o755))?;
            plan.symlink(
                &unit,
                &format!("{GETTY_WANTS}/serial-getty@{name}.service"),
                0,
                0,
            )?;
        }
        (false, None) => {
            let t = format!("id:3:initdefault:\nco:2345:respawn:/sbin/mingetty {name}\n");
            plan.write(
                "/etc/inittab",
                Content::Bytes(t.into_bytes()),
                Attrs::root(0o644),
            )?;
        }
    }
    let cur = read_text(plan, "/etc/securetty")?;
    // Where login's PAM does not use pam_securetty, nothing reads the
    // file: none is made.
    if cur.is_none() && matches!(securetty_used(plan)?, Some((false, _))) {
        return Ok(());
    }
    let has = cur
        .as_deref()
        .is_some_and(|t| content_lines(t).any(|(_, l)| l.trim_start_matches("/dev/") == name));
    if !has {
        let orig = cur.unwrap_or_default();
        let mut t = orig.clone();
        if !t.is_empty() && !t.ends_with('\n') {
            t.push('\n');
        }
        t.push_str(name);
        t.push('\n');
        plan.write(
            "/etc/securetty",
            Content::Bytes(text::edited(&orig, &t)),
            Attrs::root(0o600),
        )?;
    }
    Ok(())
}

/// `--xen-ldconf`: /etc/ld.so.conf.d/libc6-xen.conf with `hwcap 0
/// nosegneg`, and /etc/ld.so.conf including ld.so.conf.d/*.conf.
pub fn ldconf(plan: &mut Plan) -> Result<()> {
    plan.mkdir_p("/etc/ld.so.conf.d", Attrs::root(0o755))?;
    let want = "hwcap 0 nosegneg";
    let cur = read_text(plan, XEN_CONF)?;
    if !cur.as_deref().is_some_and(|t| {
        content_lines(t).any(|(_, l)| l.split_whitespace().eq(want.split_whitespace()))
    }) {
        let orig = cur.unwrap_or_default();
        let mut t = orig.clone();
        if !t.is_empty() && !t.ends_with('\n') {
            t.push('\n');
        }
        t.push_str(want);
        t.push('\n');
        plan.write(
            XEN_CONF,
            Content::Bytes(text::edited(&orig, &t)),
            Attrs::root(0o644),
        )?;
    }
    let conf = read_text(plan, "/etc/ld.so.conf")?;
    let includes = conf.as_deref().is_some_and(|t| {
        content_lines(t).any(|(_, l)| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 2
                && w[0] == "include"
                && (w[1] == "ld.so.conf.d/*.conf" || w[1] == "/etc/ld.so.conf.d/*.conf")
        })
    });
    if !includes {
        let orig = conf.unwrap_or_default();
        let mut t = orig.clone();
        if !t.is_empty() && !t.ends_with('\n') {
            t.push('\n');
        }
        t.push_str("include ld.so.conf.d/*.conf\n");
        plan.write(
            "/etc/ld.so.conf",
            Content::Bytes(text::edited(&orig, &t)),
            Attrs::root(0o644),
        )?;
    }
    Ok(())
}
