//! Requirement 2: OpenSSH installed, sshd started at boot, and its
//! configuration at /etc/ssh/sshd_config letting somebody in.
//!
//! "Started at boot" is read the way the image's init reads it: for SysV
//! init, an `S` link in the default runlevel's rc directory
//! (/etc/rc.d/rcN.d or /etc/rcN.d, N from `initdefault` in /etc/inittab,
//! 3 when unset) to the sshd (or Debian's ssh) init script; for systemd, a
//! `multi-user.target.wants` link to sshd.service or ssh.service.

use super::{sshd_conf, text_or_note, Finding, Status};
use crate::customize::text::{content_lines, read_text, View};
use crate::error::Result;
use crate::layout::FileType;

/// Where sshd's configuration must be.
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";

/// Check requirement 2.
pub fn check(v: &dyn View) -> Result<Finding> {
    let mut f = Finding::new(
        2,
        "openssh",
        "OpenSSH installed, sshd started at boot, /etc/ssh/sshd_config",
    );
    installed(v, &mut f)?;
    let starter = enabled(v, &mut f)?;
    let ver = sshd_conf::detect_version(v)?;
    let c = config(v, &mut f, ver.as_ref())?;
    host_keys(v, &mut f, c.as_ref(), ver.map(|x| x.v), starter.as_deref())?;
    Ok(f)
}

fn installed(v: &dyn View, f: &mut Finding) -> Result<()> {
    for p in ["/usr/sbin/sshd", "/sbin/sshd"] {
        if let Some(i) = v.meta(p, true)? {
            if i.is_reg() && i.perm & 0o111 != 0 {
                f.saw(format!("{p} installed ({} bytes)", i.size));
            } else {
                f.mark(
                    Status::Fail,
                    format!(
                        "{p} is there but not an executable file ({} {:04o})",
                        i.ftype.name(),
                        i.perm
                    ),
                );
                if i.is_reg() {
                    f.fix_with(&["--chmod", &format!("0755:{p}")]);
                }
            }
            return Ok(());
        }
    }
    f.mark(
        Status::Fail,
        "OpenSSH server is not installed: no /usr/sbin/sshd",
    );
    f.fix_by_hand("install openssh-server (for example yum install openssh-server in a chroot, or build the image with it); ext3edit does not install packages");
    Ok(())
}

/// The default runlevel from /etc/inittab (`id:3:initdefault:`), with
/// where it was read.
pub fn default_runlevel(v: &dyn View) -> Result<(char, Option<String>)> {
    let Some(t) = read_text(v, "/etc/inittab").ok().flatten() else {
        return Ok(('3', None));
    };
    for (n, l) in content_lines(&t) {
        let parts: Vec<&str> = l.split(':').collect();
        if parts.len() >= 3 && parts[2] == "initdefault" {
            if let Some(c) = parts[1].chars().find(|c| c.is_ascii_digit()) {
                return Ok((c, Some(format!("/etc/inittab:{n}: {l}"))));
            }
        }
    }
    Ok(('3', None))
}

/// True when the image boots with systemd rather than SysV init.
pub fn uses_systemd(v: &dyn View) -> Result<bool> {
    if let Some(t) = v.read_link("/sbin/init")? {
        if t.contains("systemd") {
            return Ok(true);
        }
    }
    let has_inittab = v.meta("/etc/inittab", true)?.is_some();
    let has_systemd = v.meta("/usr/lib/systemd/systemd", true)?.is_some()
        || v.meta("/lib/systemd/systemd", true)?.is_some();
    Ok(has_systemd && !has_inittab)
}

/// The rc directories of runlevel `level` that exist (RHEL's
/// /etc/rc.d/rcN.d, Debian's /etc/rcN.d; the same directory once).
pub fn rc_dirs(v: &dyn View, level: char) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let rh = format!("/etc/rc.d/rc{level}.d");
    let deb = format!("/etc/rc{level}.d");
    if v.meta(&rh, true)?.is_some_and(|m| m.is_dir()) {
        out.push(rh);
    }
    // On RHEL /etc/rcN.d is a symlink to rc.d/rcN.d: the same directory.
    let deb_is_link = v
        .meta(&deb, false)?
        .is_some_and(|m| m.ftype == FileType::Symlink);
    if (out.is_empty() || !deb_is_link) && v.meta(&deb, true)?.is_some_and(|m| m.is_dir()) {
        out.push(deb);
    }
    Ok(out)
}

/// The S links to the ssh init script in `dir`: (link path, target).
pub fn sshd_start_links(v: &dyn View, dir: &str) -> Result<Vec<(String, String)>> {
    let mut links = Vec::new();
    for e in v.list_dir(dir)?.unwrap_or_default() {
        if !e.name.starts_with('S') || e.ftype != FileType::Symlink {
            continue;
        }
        let path = format!("{dir}/{}", e.name);
        let Some(target) = v.read_link(&path)? else {
            continue;
        };
        let base = target.rsplit('/').next().unwrap_or("");
        if (base == "sshd" || base == "ssh") && v.meta(&path, true)?.is_some_and(|i| i.is_reg()) {
            links.push((path, target));
        }
    }
    Ok(links)
}

/// Where the symlink at `link` with target `t` points, as a clean
/// absolute path (for evidence: the init script rather than its link).
fn link_target_path(link: &str, t: &str) -> String {
    let base = if t.starts_with('/') {
        String::new()
    } else {
        link.rsplit_once('/')
            .map(|(d, _)| d)
            .unwrap_or("")
            .to_string()
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in base.split('/').chain(t.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Record how sshd starts at boot; the file that starts it (the unit or
/// the init script, through its link), when something does.
fn enabled(v: &dyn View, f: &mut Finding) -> Result<Option<String>> {
    if uses_systemd(v)? {
        for unit in ["sshd.service", "ssh.service"] {
            let p = format!("/etc/systemd/system/multi-user.target.wants/{unit}");
            if v.meta(&p, true)?.is_some() {
                f.saw(format!("systemd: {p} enables sshd at boot"));
                return Ok(Some(p));
            }
        }
        f.mark(
            Status::Fail,
            "systemd: no multi-user.target.wants link to sshd.service or ssh.service",
        );
        f.fix_with(&["--enable-sshd"]);
        return Ok(None);
    }
    let (level, from) = default_runlevel(v)?;
    let mut found_default = Vec::new();
    let mut starter = None;
    let mut found_other = Vec::new();
    for l in ['3', '5'].into_iter().chain(std::iter::once(level)) {
        for d in rc_dirs(v, l)? {
            for (p, t) in sshd_start_links(v, &d)? {
                let s = format!("{p} -> {t}");
                if l == level {
                    starter.get_or_insert_with(|| link_target_path(&p, &t));
                    if !found_default.contains(&s) {
                        found_default.push(s);
                    }
                } else if !found_other.contains(&s) {
                    found_other.push(s);
                }
            }
        }
    }
    let lv = match from {
        Some(w) => format!("runlevel {level} ({w})"),
        None => format!("runlevel {level} (no initdefault in /etc/inittab)"),
    };
    if !found_default.is_empty() {
        f.saw(format!(
            "SysV: sshd starts in {lv}: {}",
            found_default.join(", ")
        ));
    } else if !found_other.is_empty() {
        f.mark(
            Status::Warn,
            format!(
                "SysV: sshd starts in another runlevel ({}) but not in {lv}",
                found_other.join(", ")
            ),
        );
        f.fix_with(&["--enable-sshd"]);
    } else {
        f.mark(
            Status::Fail,
            format!("SysV: no S link to the sshd init script in {lv}"),
        );
        f.fix_with(&["--enable-sshd"]);
    }
    Ok(starter)
}

fn config(
    v: &dyn View,
    f: &mut Finding,
    ver: Option<&sshd_conf::Version>,
) -> Result<Option<sshd_conf::Config>> {
    let Some(text) = text_or_note(v, f, SSHD_CONFIG)? else {
        if !f.evidence.iter().any(|e| e.starts_with(SSHD_CONFIG)) {
            f.mark(Status::Fail, format!("{SSHD_CONFIG} is missing"));
        }
        f.fix_with(&["--sshd-config", "sshd_config"]);
        return Ok(None);
    };
    let c = sshd_conf::parse(v, SSHD_CONFIG, &text, ver)?;
    let mut notes = vec![format!("{SSHD_CONFIG} present")];
    match ver {
        Some(x) if x.backported.is_empty() => notes.push(format!("{} ({})", x.text, x.from)),
        Some(x) => notes.push(format!(
            "{} ({}; with {} backported)",
            x.text,
            x.from,
            x.backported.join(", ")
        )),
        None => {
            notes.push("OpenSSH version unknown, keywords checked against every release".into())
        }
    }
    if !c.included.is_empty() {
        notes.push(format!("includes {}", c.included.join(", ")));
    }
    if !c.retired.is_empty() {
        notes.push(format!(
            "retired, ignored by sshd: {}",
            c.retired.join(", ")
        ));
    }
    for p in &c.problems {
        if p.fatal {
            f.mark(
                Status::Fail,
                format!("sshd would refuse to start: {}: {}", p.at, p.text),
            );
            match &p.main_global {
                Some(k) => f.fix_with(&["--sshd-set", &format!("{k}=")]),
                None => f.fix_by_hand(format!("edit {} (sshd refuses it)", p.at)),
            }
        } else {
            f.mark(Status::Warn, format!("{}: {}", p.at, p.text));
        }
    }
    let off = |k: &str| {
        c.get(k)
            .map(|(v, w)| (v.eq_ignore_ascii_case("no"), w.to_string()))
    };
    let pw = off("PasswordAuthentication");
    let key = off("PubkeyAuthentication");
    let kbd =
        off("KbdInteractiveAuthentication").or_else(|| off("ChallengeResponseAuthentication"));
    let all_off = [&pw, &key, &kbd]
        .iter()
        .all(|o| o.as_ref().is_some_and(|(no, _)| *no));
    if all_off {
        let wh: Vec<String> = [pw, key, kbd]
            .into_iter()
            .flatten()
            .map(|(_, w)| w)
            .collect();
        f.mark(
            Status::Fail,
            format!(
                "sshd_config turns off every way in: password, public key and keyboard-interactive authentication are all \"no\" ({})",
                wh.join(", ")
            ),
        );
        f.fix_with(&["--sshd-set", "PubkeyAuthentication=yes"]);
    } else {
        match &key {
            Some((true, w)) => notes.push(format!("public keys off ({w})")),
            _ => notes.push("public keys allowed".into()),
        }
        match &pw {
            Some((true, w)) => notes.push(format!("passwords off ({w})")),
            _ => notes.push("passwords allowed".into()),
        }
    }
    if let Some((v, w)) = c.get("DenyUsers") {
        if v.split_whitespace().any(|u| u == "*") {
            f.mark(
                Status::Fail,
                format!("DenyUsers {v} ({w}) shuts everybody out"),
            );
            f.fix_with(&["--sshd-set", "DenyUsers="]);
        }
    }
    if let Some((v, w)) = c.get("PermitRootLogin") {
        if v.eq_ignore_ascii_case("no") {
            f.mark(
                Status::Warn,
                format!("root cannot log in over ssh: PermitRootLogin no ({w})"),
            );
        }
    }
    if let Some((v, w)) = c.get("Port") {
        notes.push(format!("port {v} ({w})"));
    }
    f.saw(notes.join(", "));
    Ok(Some(c))
}

/// The host key files sshd `ver` would load: the `HostKey` lines, else
/// its defaults (RSA; DSA before 10.0; ECDSA from 5.7; Ed25519 from 6.5),
/// each with the key type its name says.
pub fn host_key_files(c: Option<&sshd_conf::Config>, ver: Option<sshd_conf::V>) -> Vec<String> {
    use sshd_conf::V;
    let mut set: Vec<String> = Vec::new();
    if let Some(c) = c {
        for k in ["hostkey", "hostdsakey"] {
            for val in c.all(k) {
                if let Some(a) = sshd_conf::args(val).into_iter().next() {
                    if !set.contains(&a) {
                        set.push(a);
                    }
                }
            }
        }
    }
    if !set.is_empty() {
        return set;
    }
    let has = |since: V| ver.is_none_or(|v| v >= since);
    let mut out = vec!["/etc/ssh/ssh_host_rsa_key".to_string()];
    if ver.is_none_or(|v| v < V(10, 0)) {
        out.push("/etc/ssh/ssh_host_dsa_key".into());
    }
    if has(V(5, 7)) {
        out.push("/etc/ssh/ssh_host_ecdsa_key".into());
    }
    if has(V(6, 5)) {
        out.push("/etc/ssh/ssh_host_ed25519_key".into());
    }
    out
}

/// The line of `text` (not a comment) that makes host keys, if any:
/// ssh-keygen run by an init script or a unit, or a unit that pulls in
/// Fedora's and RHEL's sshd-keygen units.
fn keygen_line(text: &str) -> Option<(usize, String)> {
    content_lines(text)
        .find(|(_, l)| l.contains("ssh-keygen") || l.contains("sshd-keygen"))
        .map(|(n, l)| (n, l.to_string()))
}

/// Requirement 2's host keys: sshd does not start without one. Debian's
/// package makes them when it is installed (not at boot); RHEL's init
/// script and Fedora's and RHEL's sshd-keygen units make them at boot.
fn host_keys(
    v: &dyn View,
    f: &mut Finding,
    c: Option<&sshd_conf::Config>,
    ver: Option<sshd_conf::V>,
    starter: Option<&str>,
) -> Result<()> {
    let files = host_key_files(c, ver);
    let mut have = Vec::new();
    for p in &files {
        if v.meta(p, true)?.is_some_and(|m| m.is_reg() && m.size > 0) {
            have.push(p.clone());
        }
    }
    if !have.is_empty() {
        f.saw(format!("host keys: {}", have.join(", ")));
        return Ok(());
    }
    // What the boot runs before sshd: the unit (and its drop-ins) or the
    // init script.
    let mut sources: Vec<String> = Vec::new();
    if let Some(s) = starter {
        sources.push(s.to_string());
        if let Some(unit) = s.rsplit('/').next().filter(|u| u.ends_with(".service")) {
            for d in [
                "/etc/systemd/system",
                "/usr/lib/systemd/system",
                "/lib/systemd/system",
            ] {
                sources.extend(expand_glob(v, &format!("{d}/{unit}.d/*.conf"))?);
            }
        }
    }
    for s in &sources {
        if let Some(t) = read_text(v, s).ok().flatten() {
            if let Some((n, l)) = keygen_line(&t) {
                f.saw(format!(
                    "no host key yet ({}): made at boot ({s}:{n}: {l})",
                    files.join(", ")
                ));
                return Ok(());
            }
        }
    }
    let why = match starter {
        Some(s) => format!("{s} does not run ssh-keygen"),
        None => "nothing at boot runs ssh-keygen".into(),
    };
    f.mark(
        Status::Fail,
        format!(
            "no ssh host key ({}) and {why}: sshd will not start",
            files.join(", ")
        ),
    );
    f.fix_with(&["--ssh-hostkeys"]);
    Ok(())
}

/// Paths matching `pat`, whose last component may hold `*` and `?`.
pub fn expand_glob(v: &dyn View, pat: &str) -> Result<Vec<String>> {
    let Some((dir, last)) = pat.rsplit_once('/') else {
        return Ok(Vec::new());
    };
    if !last.contains(['*', '?']) {
        return Ok(vec![pat.to_string()]);
    }
    let dir = if dir.is_empty() { "/" } else { dir };
    Ok(v.list_dir(dir)?
        .unwrap_or_default()
        .into_iter()
        .filter(|e| glob_match(last.as_bytes(), e.name.as_bytes()))
        .map(|e| format!("{}/{}", dir.trim_end_matches('/'), e.name))
        .collect())
}

/// Shell-style match of one name component (`*`, `?`, no brackets).
pub fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.conf", b"libc6-xen.conf"));
        assert!(!glob_match(b"*.conf", b"libc6-xen.conf.bak"));
        assert!(glob_match(b"a?c*", b"abcdef"));
    }
}
