//! sshd steps: replace or edit /etc/ssh/sshd_config, and start sshd at
//! boot the way the image's init does it.

use std::path::Path;

use crate::customize::check::ssh::{
    default_runlevel, host_key_files, rc_dirs, uses_systemd, SSHD_CONFIG,
};
use crate::customize::check::sshd_conf::{check_value, detect_version, keyword_for, Kw, Version};
use crate::customize::plan::{Attrs, Content, Plan};
use crate::customize::text::{self, read_text, View};
use crate::error::{Error, Result};
use crate::layout::FileType;

/// `--sshd-config FILE`: the host file becomes /etc/ssh/sshd_config (an
/// existing one keeps its owner, mode and label). A file the image's sshd
/// would refuse is refused, naming its first bad line.
pub fn replace_config(plan: &mut Plan, src: &Path) -> Result<()> {
    let b = super::read_host_file(src)?;
    let release = detect_version(plan)?;
    let text = String::from_utf8_lossy(&b);
    let c = crate::customize::check::sshd_conf::parse(plan, SSHD_CONFIG, &text, release.as_ref())?;
    if let Some(p) = c.problems.iter().find(|p| p.fatal) {
        let at = match p.at.strip_prefix(SSHD_CONFIG) {
            Some(line) => format!("{}{line}", src.display()),
            None => p.at.clone(),
        };
        return Err(Error::Invalid(format!(
            "{at}: {}: the image's sshd would refuse to start",
            p.text
        )));
    }
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
    // Now that the image is known: what its own sshd takes.
    let release = detect_version(plan)?;
    check_setting(key, value, release.as_ref()).map_err(|why| {
        Error::Invalid(match &release {
            Some(r) => format!("{why} ({} in {})", r.text, r.from),
            None => why,
        })
    })?;
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
    if !value.is_empty() {
        // sshd takes the first value it reads: one an Include above sets
        // wins over the line written here.
        let c =
            crate::customize::check::sshd_conf::parse(plan, SSHD_CONFIG, &out, release.as_ref())?;
        if let Some((v, at)) = c.get(key) {
            if !at.starts_with(&format!("{SSHD_CONFIG}:")) {
                return Err(Error::Invalid(format!(
                    "{at} sets {key} {v} first (an Include read before {SSHD_CONFIG}'s line), and sshd takes the first value: change that file (--write or --delete)"
                )));
            }
        }
    }
    plan.write(
        SSHD_CONFIG,
        Content::Bytes(text::edited(&text, &out)),
        Attrs::root(0o600),
    )
}

/// Would sshd `ver` (any release when `None`) take `key value`? An empty
/// value (comment the keyword out) takes any keyword, even one sshd does
/// not know: that is how a bad line is removed. `Match` cannot be set:
/// it opens a block.
pub fn check_setting(
    key: &str,
    value: &str,
    release: Option<&Version>,
) -> std::result::Result<(), String> {
    let ver = release.map(|r| r.v);
    if key.eq_ignore_ascii_case("match") {
        return Err("Match opens a block: write it with --sshd-config or --append-line".into());
    }
    if value.is_empty() {
        return Ok(());
    }
    match keyword_for(key, release) {
        Kw::Unknown(why) => Err(why),
        Kw::Retired(name) => Err(format!("{name} is retired: this sshd ignores it")),
        Kw::Patched => Ok(()),
        Kw::Ok(..) => check_value(key, value, ver),
    }
}

/// What `--sshd-set` can refuse before the image is read: `Match`, and a
/// bad value of a keyword upstream OpenSSH knows. An unknown keyword waits
/// for the image (its sshd may be patched to know it).
pub fn check_setting_early(key: &str, value: &str) -> std::result::Result<(), String> {
    match keyword_for(key, None) {
        Kw::Unknown(_) if !key.eq_ignore_ascii_case("match") => Ok(()),
        _ => check_setting(key, value, None),
    }
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

/// `--ssh-hostkeys`: make the host keys sshd would load and the image
/// lacks (the `HostKey` files, else the defaults of the image's OpenSSH),
/// with the host's `ssh-keygen`, in the formats that release reads (RSA
/// and ECDSA in PEM, which every release reads; Ed25519 in OpenSSH's own
/// format). The key is private to the image: 0600 root, the `.pub` 0644.
/// DSA keys are not made (an RSA key serves every release).
pub fn host_keys(plan: &mut Plan, ctx: &mut super::Context) -> Result<()> {
    let release = detect_version(plan)?;
    let ver = release.as_ref().map(|x| x.v);
    let conf = match read_text(plan, SSHD_CONFIG)? {
        Some(t) => Some(crate::customize::check::sshd_conf::parse(
            plan,
            SSHD_CONFIG,
            &t,
            release.as_ref(),
        )?),
        None => None,
    };
    let mut made = Vec::new();
    for path in host_key_files(conf.as_ref(), ver) {
        if plan
            .meta(&path, true)?
            .is_some_and(|m| m.is_reg() && m.size > 0)
        {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or("");
        let kind = if name.contains("ed25519") {
            "ed25519"
        } else if name.contains("ecdsa") {
            "ecdsa"
        } else if name.contains("dsa") {
            continue;
        } else {
            "rsa"
        };
        let (private, public) = if ctx.dry_run {
            // Show where the key goes, not a key nobody will use.
            keygen_present()?;
            let t = format!("(a new {kind} host key, made by the host's ssh-keygen)\n");
            (t.clone().into_bytes(), t.into_bytes())
        } else {
            keygen(kind)?
        };
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
        if !dir.is_empty() && plan.meta(dir, true)?.is_none() {
            plan.mkdir_p(dir, Attrs::root(0o755))?;
        }
        plan.write(&path, Content::Bytes(private), Attrs::root(0o600))?;
        plan.write(
            &format!("{path}.pub"),
            Content::Bytes(public),
            Attrs::root(0o644),
        )?;
        made.push(path);
    }
    if made.is_empty() {
        ctx.notes
            .push("ssh-hostkeys: the image has its host keys already".into());
    } else {
        ctx.notes
            .push(format!("ssh-hostkeys: made {}", made.join(", ")));
    }
    Ok(())
}

const NO_KEYGEN: &str =
    "making host keys needs the host's ssh-keygen (OpenSSH), which is not on PATH";

/// Can the host's ssh-keygen be run?
fn keygen_present() -> Result<()> {
    match std::process::Command::new("ssh-keygen")
        .arg("-?")
        .stdin(std::process::Stdio::null())
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Invalid(NO_KEYGEN.into())),
        Err(e) => Err(Error::io("running ssh-keygen", e)),
        Ok(_) => Ok(()),
    }
}

/// One new key pair of type `kind` from the host's ssh-keygen, made in a
/// private temporary directory: (private key, public key).
fn keygen(kind: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let dir = tempfile::Builder::new()
        .prefix("ext3edit-hostkey")
        .tempdir()
        .map_err(|e| Error::io("making a temporary directory for ssh-keygen", e))?;
    let key = dir.path().join("key");
    let mut cmd = std::process::Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", ""]);
    match kind {
        "rsa" => cmd.args(["-b", "3072", "-m", "PEM"]),
        "ecdsa" => cmd.args(["-b", "256", "-m", "PEM"]),
        _ => &mut cmd,
    };
    cmd.arg("-f").arg(&key).stdin(std::process::Stdio::null());
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(NO_KEYGEN.into()))
        }
        Err(e) => return Err(Error::io("running ssh-keygen", e)),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Invalid(format!(
            "ssh-keygen -t {kind} failed: {}",
            err.lines().next().unwrap_or("no message").trim()
        )));
    }
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| Error::io(format!("reading {}", p.display()), e));
    Ok((read(&key)?, read(&dir.path().join("key.pub"))?))
}

/// Where the image's sshd looks for a user's keys when that is not
/// `~/.ssh/authorized_keys`: the `AuthorizedKeysFile` value sshd uses
/// (outside `Match`) and where it is set, or `None` when sshd reads that
/// file (the default, or a list that names it as `.ssh/authorized_keys`,
/// `%h/.ssh/authorized_keys` or `~/.ssh/authorized_keys`).
pub fn keys_elsewhere(plan: &Plan) -> Result<Option<(String, String)>> {
    let Some(text) = read_text(plan, SSHD_CONFIG)? else {
        return Ok(None);
    };
    let release = detect_version(plan)?;
    let c = crate::customize::check::sshd_conf::parse(plan, SSHD_CONFIG, &text, release.as_ref())?;
    let Some((value, at)) = c.get("AuthorizedKeysFile") else {
        return Ok(None);
    };
    let reads_default = crate::customize::check::sshd_conf::args(value)
        .iter()
        .any(|a| {
            matches!(
                a.as_str(),
                ".ssh/authorized_keys" | "%h/.ssh/authorized_keys" | "~/.ssh/authorized_keys"
            )
        });
    Ok((!reads_default).then(|| (value.to_string(), at.to_string())))
}
