//! Requirement 2: OpenSSH installed, sshd started at boot, and its
//! configuration at /etc/ssh/sshd_config letting somebody in.
//!
//! "Started at boot" is read the way the image's init reads it: for SysV
//! init, an `S` link in the default runlevel's rc directory
//! (/etc/rc.d/rcN.d or /etc/rcN.d, N from `initdefault` in /etc/inittab,
//! 3 when unset) to the sshd (or Debian's ssh) init script; for systemd, a
//! `multi-user.target.wants` link to sshd.service or ssh.service.

use super::{text_or_note, Finding, Status};
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
    enabled(v, &mut f)?;
    config(v, &mut f)?;
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

fn enabled(v: &dyn View, f: &mut Finding) -> Result<()> {
    if uses_systemd(v)? {
        for unit in ["sshd.service", "ssh.service"] {
            let p = format!("/etc/systemd/system/multi-user.target.wants/{unit}");
            if v.meta(&p, true)?.is_some() {
                f.saw(format!("systemd: {p} enables sshd at boot"));
                return Ok(());
            }
        }
        f.mark(
            Status::Fail,
            "systemd: no multi-user.target.wants link to sshd.service or ssh.service",
        );
        f.fix_with(&["--enable-sshd"]);
        return Ok(());
    }
    let (level, from) = default_runlevel(v)?;
    let mut found_default = Vec::new();
    let mut found_other = Vec::new();
    for l in ['3', '5'].into_iter().chain(std::iter::once(level)) {
        for d in rc_dirs(v, l)? {
            for (p, t) in sshd_start_links(v, &d)? {
                let s = format!("{p} -> {t}");
                if l == level {
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
    Ok(())
}

/// sshd_config's settings: keyword (lower case), value, line; only the
/// global part (before the first `Match`), in file order. sshd uses the
/// first value it reads for each keyword.
#[derive(Debug, Default)]
pub struct SshdConfig {
    /// (keyword in lower case, value, "file:line").
    pub settings: Vec<(String, String, String)>,
    /// Lines that do not parse: "file:line: text".
    pub bad: Vec<String>,
}

impl SshdConfig {
    /// Parse sshd_config text (`Include` is not followed here).
    pub fn parse(text: &str, file: &str) -> Self {
        let mut c = SshdConfig::default();
        for (n, l) in content_lines(text) {
            let (k, v) = match l.split_once(|ch: char| ch.is_whitespace() || ch == '=') {
                Some((k, v)) => (k, v.trim().trim_start_matches('=').trim()),
                None => (l, ""),
            };
            let k = k.to_ascii_lowercase();
            if k == "match" {
                break;
            }
            if v.is_empty() || !k.chars().all(|ch| ch.is_ascii_alphanumeric()) {
                c.bad.push(format!("{file}:{n}: {l}"));
                continue;
            }
            c.settings.push((k, v.to_string(), format!("{file}:{n}")));
        }
        c
    }

    /// The value sshd uses for `key` (the first one), with where it is.
    pub fn get(&self, key: &str) -> Option<(&str, &str)> {
        let key = key.to_ascii_lowercase();
        self.settings
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, v, w)| (v.as_str(), w.as_str()))
    }
}

fn config(v: &dyn View, f: &mut Finding) -> Result<()> {
    let Some(text) = text_or_note(v, f, SSHD_CONFIG)? else {
        if !f.evidence.iter().any(|e| e.starts_with(SSHD_CONFIG)) {
            f.mark(Status::Fail, format!("{SSHD_CONFIG} is missing"));
        }
        f.fix_with(&["--sshd-config", "sshd_config"]);
        return Ok(());
    };
    let mut c = SshdConfig::parse(&text, SSHD_CONFIG);
    // Include (OpenSSH 8.2+) pulls other files in where it stands.
    let includes: Vec<String> = c
        .settings
        .iter()
        .filter(|(k, _, _)| k == "include")
        .map(|(_, v, _)| v.clone())
        .collect();
    for inc in includes {
        for pat in inc.split_whitespace() {
            let pat = if pat.starts_with('/') {
                pat.to_string()
            } else {
                format!("/etc/ssh/{pat}")
            };
            for p in expand_glob(v, &pat)? {
                if let Some(t) = read_text(v, &p).ok().flatten() {
                    let sub = SshdConfig::parse(&t, &p);
                    c.settings.extend(sub.settings);
                    c.bad.extend(sub.bad);
                }
            }
        }
    }
    let mut notes = vec![format!("{SSHD_CONFIG} present")];
    for b in &c.bad {
        f.mark(Status::Warn, format!("does not parse: {b}"));
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
    fn sshd_config_first_value_wins_and_match_ends_global() {
        let c = SshdConfig::parse(
            "# x\nPort 22\nPasswordAuthentication no\npasswordauthentication yes\nBadLine\nMatch User bob\nPubkeyAuthentication no\n",
            "f",
        );
        assert_eq!(c.get("PasswordAuthentication"), Some(("no", "f:3")));
        assert_eq!(c.get("PubkeyAuthentication"), None);
        assert_eq!(c.bad, vec!["f:5: BadLine".to_string()]);
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*.conf", b"libc6-xen.conf"));
        assert!(!glob_match(b"*.conf", b"libc6-xen.conf.bak"));
        assert!(glob_match(b"a?c*", b"abcdef"));
    }
}
