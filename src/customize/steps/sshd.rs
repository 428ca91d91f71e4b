//! sshd steps: replace or edit /etc/ssh/sshd_config, and start sshd at
//! boot the way the image's init does it.

use std::path::Path;

use crate::customize::check::ssh::{default_runlevel, rc_dirs, uses_systemd, SSHD_CONFIG};
use crate::customize::plan::{Attrs, Content, Plan};
use crate::customize::text::{read_text, View};
use crate::error::{Error, Result};
use crate::layout::FileType;

/// `--sshd-config FILE`: the host file becomes /etc/ssh/sshd_config (an
/// existing one keeps its owner, mode and label).
pub fn replace_config(plan: &mut Plan, src: &Path) -> Result<()> {
    let b = super::read_host_file(src)?;
    if plan.meta("/etc/ssh", true)?.is_none() {
        plan.mkdir_p("/etc/ssh", Attrs::root(0o755))?;
    }
    plan.write(SSHD_CONFIG, Content::Bytes(b), Attrs::root(0o600))
}

/// `--sshd-set KEY=VALUE`: the first active `KEY` line of the global part
/// becomes `KEY VALUE` (later duplicates are commented out, since sshd
/// takes the first); without one, the line goes before the first `Match`
/// or at the end. An empty VALUE comments the setting out. Every other
/// line, comments included, stays.
pub fn set(plan: &mut Plan, key: &str, value: &str) -> Result<()> {
    let Some(text) = read_text(plan, SSHD_CONFIG)? else {
        return Err(Error::NotFound(format!(
            "{SSHD_CONFIG} (use --sshd-config FILE to provide one)"
        )));
    };
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut done = false;
    let mut match_at = None;
    for (i, l) in lines.iter_mut().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let kw = t
            .split(|c: char| c.is_whitespace() || c == '=')
            .next()
            .unwrap_or("");
        if kw.eq_ignore_ascii_case("match") {
            match_at = Some(i);
            break;
        }
        if kw.eq_ignore_ascii_case(key) {
            if value.is_empty() || done {
                *l = format!("#{l}");
            } else {
                *l = format!("{key} {value}");
                done = true;
            }
        }
    }
    if !done && !value.is_empty() {
        let line = format!("{key} {value}");
        match match_at {
            Some(i) => lines.insert(i, line),
            None => lines.push(line),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    plan.write(
        SSHD_CONFIG,
        Content::Bytes(out.into_bytes()),
        Attrs::root(0o600),
    )
}

/// `--enable-sshd`: SysV: `S55sshd` links in runlevels 2 to 5 (and the
/// default runlevel) to the sshd init script, `K` links there removed,
/// where the runlevel has no start link to it yet;
/// systemd: the multi-user.target.wants link to the sshd unit.
pub fn enable(plan: &mut Plan) -> Result<()> {
    if uses_systemd(plan)? {
        for (unit, dirs) in [
            (
                "sshd.service",
                ["/usr/lib/systemd/system", "/lib/systemd/system"],
            ),
            (
                "ssh.service",
                ["/usr/lib/systemd/system", "/lib/systemd/system"],
            ),
        ] {
            for d in dirs {
                let u = format!("{d}/{unit}");
                if plan.meta(&u, true)?.is_some() {
                    let wants = "/etc/systemd/system/multi-user.target.wants";
                    plan.mkdir_p(wants, Attrs::root(0o755))?;
                    return plan.symlink(&u, &format!("{wants}/{unit}"), 0, 0);
                }
            }
        }
        return Err(Error::NotFound(
            "an sshd.service or ssh.service unit: is OpenSSH installed?".into(),
        ));
    }
    // The init script: RHEL's /etc/rc.d/init.d/sshd, Debian's /etc/init.d/ssh.
    let script = [
        "/etc/rc.d/init.d/sshd",
        "/etc/init.d/sshd",
        "/etc/init.d/ssh",
    ]
    .into_iter()
    .find(|p| {
        plan.meta(p, true)
            .ok()
            .flatten()
            .is_some_and(|m| m.is_reg())
    });
    let Some(script) = script else {
        return Err(Error::NotFound(
            "the sshd init script (/etc/rc.d/init.d/sshd or /etc/init.d/ssh): is OpenSSH installed?".into(),
        ));
    };
    let name = script.rsplit('/').next().unwrap_or("sshd");
    let (default, _) = default_runlevel(plan)?;
    let mut levels = vec!['2', '3', '4', '5'];
    if !levels.contains(&default) {
        levels.push(default);
    }
    let mut made = 0;
    for l in levels {
        let dirs = rc_dirs(plan, l)?;
        let dir = match dirs.first() {
            Some(d) => d.clone(),
            None if l == default => {
                // The default runlevel must have one: make its directory.
                let d = if plan.meta("/etc/rc.d", true)?.is_some_and(|m| m.is_dir()) {
                    format!("/etc/rc.d/rc{l}.d")
                } else {
                    format!("/etc/rc{l}.d")
                };
                plan.mkdir_p(&d, Attrs::root(0o755))?;
                d
            }
            None => continue,
        };
        // A start link already there stays as it is (Debian's insserv
        // numbers its links by dependency: S01ssh is not to be renamed).
        let mine: Vec<(String, String)> = plan
            .list_dir(&dir)?
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.ftype == FileType::Symlink)
            .map(|e| {
                let p = format!("{dir}/{}", e.name);
                let t = plan.read_link(&p).ok().flatten().unwrap_or_default();
                (e.name, t)
            })
            .filter(|(_, t)| t.rsplit('/').next() == Some(name))
            .collect();
        let live = |n: &str| {
            plan.meta(&format!("{dir}/{n}"), true)
                .ok()
                .flatten()
                .is_some_and(|m| m.is_reg())
        };
        if mine.iter().any(|(n, _)| n.starts_with('S') && live(n)) {
            made += 1;
            continue;
        }
        for (n, _) in &mine {
            if n.starts_with('K') || n.starts_with('S') {
                plan.delete(&format!("{dir}/{n}"))?;
            }
        }
        // ../init.d/sshd relative to rcN.d, wherever init.d is.
        let script_dir = script
            .rsplit_once('/')
            .map(|(d, _)| d)
            .unwrap_or("/etc/init.d");
        let target = if dir.rsplit_once('/').map(|(d, _)| d)
            == script_dir.rsplit_once('/').map(|(d, _)| d)
        {
            format!("../init.d/{name}")
        } else {
            script.to_string()
        };
        plan.symlink(&target, &format!("{dir}/S55{name}"), 0, 0)?;
        made += 1;
    }
    if made == 0 {
        return Err(Error::NotFound(
            "an rc directory (/etc/rc.d/rcN.d or /etc/rcN.d)".into(),
        ));
    }
    Ok(())
}
