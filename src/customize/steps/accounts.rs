//! Account steps: root's password, new users, ssh keys. They edit
//! /etc/passwd, /etc/shadow, /etc/group and /etc/gshadow as text, line by
//! line, leaving every other line exactly as it was.

use std::path::Path;

use super::{Context, Password};
use crate::customize::plan::{Attrs, Content, Plan};
use crate::customize::text::{self, read_text, View};
use crate::error::{Error, Result};
use crate::layout::FileType;

/// A colon-separated account file, parsed enough to edit one line.
struct Table {
    path: &'static str,
    lines: Vec<String>,
    trailing_newline: bool,
    /// The file as read: unchanged lines keep their bytes.
    orig: String,
}

impl Table {
    fn load(plan: &Plan, path: &'static str) -> Result<Option<Table>> {
        Ok(read_text(plan, path)?.map(|t| Table {
            path,
            trailing_newline: t.is_empty() || t.ends_with('\n'),
            lines: t.lines().map(String::from).collect(),
            orig: t,
        }))
    }

    fn need(plan: &Plan, path: &'static str) -> Result<Table> {
        Self::load(plan, path)?
            .ok_or_else(|| Error::NotFound(format!("{path} (the image has none)")))
    }

    /// The fields of the entry named `name`, and its index.
    fn find(&self, name: &str) -> Option<(usize, Vec<String>)> {
        self.lines.iter().enumerate().find_map(|(i, l)| {
            let f: Vec<String> = l.split(':').map(String::from).collect();
            (f[0] == name).then_some((i, f))
        })
    }

    /// Every entry's fields (comments and blank lines left out).
    fn entries(&self) -> impl Iterator<Item = Vec<&str>> {
        self.lines
            .iter()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split(':').collect())
    }

    fn set(&mut self, i: usize, fields: &[String]) {
        self.lines[i] = fields.join(":");
    }

    fn push(&mut self, fields: &[String]) {
        self.lines.push(fields.join(":"));
    }

    fn save(&self, plan: &mut Plan, new_perm: u16) -> Result<()> {
        let mut t = self.lines.join("\n");
        if self.trailing_newline || !self.lines.is_empty() {
            t.push('\n');
        }
        plan.write(
            self.path,
            Content::Bytes(text::edited(&self.orig, &t)),
            Attrs::root(new_perm),
        )
    }
}

/// A password hash as crypt(3) stores it: `$id$salt$hash`, a DES hash,
/// or a locked one (`!...`, `*`).
pub fn check_hash(h: &str) -> std::result::Result<(), String> {
    let ok_chars = h
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "$./!*=,-".contains(c));
    let shaped = h.starts_with('$') && h.matches('$').count() >= 3
        || h.starts_with('!')
        || h == "*"
        || (h.len() == 13 && !h.contains('$'));
    if ok_chars && shaped {
        Ok(())
    } else {
        Err(format!(
            "{h:?} does not look like a crypt hash ($6$salt$hash, $5$..., $1$..., or ! to lock)"
        ))
    }
}

/// A login name useradd would accept.
pub fn check_user_name(n: &str) -> std::result::Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 32
        && n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{n:?} is not a valid user name (lower-case letters, digits, _ and -, starting with a letter or _)"
        ))
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut v = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut v))
        .map_err(|e| Error::io("reading /dev/urandom", e))?;
    Ok(v)
}

const CRYPT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// SHA-512 crypt of `password` with a random 16-character salt.
pub fn sha512_crypt(password: &str) -> Result<String> {
    let salt: String = random_bytes(16)?
        .iter()
        .map(|b| CRYPT_CHARS[(*b & 63) as usize] as char)
        .collect();
    let params = sha_crypt::Sha512Params::new(5000)
        .map_err(|_| Error::Invalid("SHA-512 crypt parameters".into()))?;
    let h = sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params)
        .map_err(|_| Error::Invalid("SHA-512 crypt failed".into()))?;
    Ok(format!("$6${salt}${h}"))
}

fn random_password() -> Result<String> {
    // Letters and digits without look-alikes.
    const SET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    Ok(random_bytes(16)?
        .iter()
        .map(|b| SET[(*b as usize) % SET.len()] as char)
        .collect())
}

fn days(ctx: &Context) -> String {
    (ctx.now.max(0) / 86400).to_string()
}

/// Set root's hash in /etc/shadow (and `x` in /etc/passwd).
pub fn set_root_hash(plan: &mut Plan, ctx: &mut Context, hash: &str) -> Result<()> {
    let mut sh = Table::need(plan, "/etc/shadow")?;
    let Some((i, mut f)) = sh.find("root") else {
        return Err(Error::Invalid("/etc/shadow has no root entry".into()));
    };
    if f.len() < 3 {
        return Err(Error::Invalid(format!(
            "/etc/shadow:{}: malformed root entry ({} fields, 9 expected)",
            i + 1,
            f.len()
        )));
    }
    f[1] = hash.to_string();
    f[2] = days(ctx);
    sh.set(i, &f);
    sh.save(plan, 0o400)?;
    shadow_root_in_passwd(plan)
}

/// Make root's passwd entry point at /etc/shadow (`x`).
fn shadow_root_in_passwd(plan: &mut Plan) -> Result<()> {
    let mut pw = Table::need(plan, "/etc/passwd")?;
    if let Some((i, mut f)) = pw.find("root") {
        if f.len() >= 2 && f[1] != "x" {
            f[1] = "x".into();
            pw.set(i, &f);
            pw.save(plan, 0o644)?;
        }
    }
    Ok(())
}

/// `--root-password`.
pub fn root_password(plan: &mut Plan, ctx: &mut Context, p: &Password) -> Result<()> {
    let pass = match p {
        Password::Plain(s) => s.clone(),
        Password::File(f) => {
            let t = super::read_host_text(f)?;
            let l = t.lines().next().unwrap_or("").to_string();
            if l.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: the first line is empty",
                    f.display()
                )));
            }
            l
        }
        Password::Random => {
            let r = random_password()?;
            ctx.notes.push(format!("root password: {r}"));
            r
        }
    };
    let h = sha512_crypt(&pass)?;
    set_root_hash(plan, ctx, &h)
}

/// `--lock-root`: a `!` in front of root's hash.
pub fn lock_root(plan: &mut Plan) -> Result<()> {
    let mut sh = Table::need(plan, "/etc/shadow")?;
    let Some((i, mut f)) = sh.find("root") else {
        return Err(Error::Invalid("/etc/shadow has no root entry".into()));
    };
    if f.len() < 2 {
        return Err(Error::Invalid(format!(
            "/etc/shadow:{}: malformed root entry",
            i + 1
        )));
    }
    if !f[1].starts_with('!') {
        f[1] = format!("!{}", f[1]);
        sh.set(i, &f);
        sh.save(plan, 0o400)?;
    }
    Ok(())
}

/// A user of the image's /etc/passwd: (uid, gid, home).
pub fn user(plan: &Plan, name: &str) -> Result<(u32, u32, String)> {
    let text = read_text(plan, "/etc/passwd")?
        .ok_or_else(|| Error::NotFound("/etc/passwd (the image has none)".into()))?;
    let users = crate::accounts::parse_passwd(&text, "/etc/passwd")?;
    let u = users
        .iter()
        .find(|u| u.name == name)
        .ok_or_else(|| Error::NotFound(format!("user {name} in the image's /etc/passwd")))?;
    Ok((u.uid, u.gid, u.home.clone()))
}

/// `--ssh-inject USER:FILE`: append the keys to ~/.ssh/authorized_keys
/// (.ssh 0700 and the file 0600, owned by the user); keys already there
/// are not added twice.
pub fn ssh_inject(plan: &mut Plan, name: &str, keys: &Path) -> Result<()> {
    let (uid, gid, home) = user(plan, name)?;
    let text = super::read_host_text(keys)?;
    let new: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if new.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no public key in it",
            keys.display()
        )));
    }
    for k in &new {
        let kind = k
            .split_whitespace()
            .find(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-"));
        if kind.is_none() || k.contains("PRIVATE KEY") {
            return Err(Error::Invalid(format!(
                "{}: {:?} is not an OpenSSH public key line",
                keys.display(),
                k.chars().take(40).collect::<String>()
            )));
        }
    }
    match plan.meta(&home, true)? {
        Some(m) if m.is_dir() => {}
        Some(m) => {
            return Err(Error::Invalid(format!(
                "{name}'s home {home} is a {}",
                m.ftype.name()
            )))
        }
        None => {
            return Err(Error::NotFound(format!(
                "{name}'s home {home} (make it first, e.g. with --add-user or --mkdir)"
            )))
        }
    }
    let dot = format!("{}/.ssh", home.trim_end_matches('/'));
    if plan.meta(&dot, true)?.is_none() {
        plan.mkdir_p(
            &dot,
            Attrs {
                perm: 0o700,
                uid,
                gid,
            },
        )?;
    }
    let ak = format!("{dot}/authorized_keys");
    let orig = read_text(plan, &ak)?.unwrap_or_default();
    let mut cur = orig.clone();
    let have: Vec<String> = cur.lines().map(|l| l.trim().to_string()).collect();
    let mut added = 0;
    for k in new {
        if !have.iter().any(|h| h == k) {
            if !cur.is_empty() && !cur.ends_with('\n') {
                cur.push('\n');
            }
            cur.push_str(k);
            cur.push('\n');
            added += 1;
        }
    }
    let existed = plan.meta(&ak, true)?.is_some();
    if added > 0 || !existed {
        plan.write(
            &ak,
            Content::Bytes(text::edited(&orig, &cur)),
            Attrs {
                perm: 0o600,
                uid,
                gid,
            },
        )?;
    }
    if existed {
        // sshd's StrictModes wants these exact modes and owners.
        plan.chmod(&ak, 0o600)?;
        plan.chown(&ak, uid, gid)?;
    }
    Ok(())
}

/// `--add-user NAME[:UID]`: entries in passwd, shadow (locked), group,
/// gshadow where present, and a home under /home with /etc/skel's files.
pub fn add_user(plan: &mut Plan, ctx: &mut Context, name: &str, uid: Option<u32>) -> Result<()> {
    let mut pw = Table::need(plan, "/etc/passwd")?;
    if pw.find(name).is_some() {
        return Err(Error::Exists(format!("user {name} in /etc/passwd")));
    }
    let min = crate::customize::check::home::uid_min(plan)?;
    let used: Vec<u32> = pw
        .entries()
        .filter_map(|f| f.get(2)?.parse().ok())
        .collect();
    let uid = match uid {
        Some(u) if used.contains(&u) => {
            return Err(Error::Exists(format!("uid {u} in /etc/passwd")));
        }
        Some(u) => u,
        None => used
            .iter()
            .copied()
            .filter(|u| *u >= min && *u < 60000)
            .max()
            .map_or(min, |m| m + 1),
    };
    let mut gr = Table::need(plan, "/etc/group")?;
    if gr.find(name).is_some() {
        return Err(Error::Exists(format!("group {name} in /etc/group")));
    }
    let gused: Vec<u32> = gr
        .entries()
        .filter_map(|f| f.get(2)?.parse().ok())
        .collect();
    let gid = if gused.contains(&uid) {
        (min..60000).find(|g| !gused.contains(g)).unwrap_or(uid)
    } else {
        uid
    };
    let home = format!("/home/{name}");
    let shell = if plan.meta("/bin/bash", true)?.is_some() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    pw.push(&s(&[
        name,
        "x",
        &uid.to_string(),
        &gid.to_string(),
        "",
        &home,
        shell,
    ]));
    pw.save(plan, 0o644)?;
    gr.push(&s(&[name, "x", &gid.to_string(), ""]));
    gr.save(plan, 0o644)?;
    if let Some(mut sh) = Table::load(plan, "/etc/shadow")? {
        sh.push(&s(&[name, "!!", &days(ctx), "0", "99999", "7", "", "", ""]));
        sh.save(plan, 0o400)?;
    }
    if let Some(mut gs) = Table::load(plan, "/etc/gshadow")? {
        gs.push(&s(&[name, "!", "", ""]));
        gs.save(plan, 0o400)?;
    }
    if plan.meta("/home", true)?.is_none() {
        plan.mkdir_p("/home", Attrs::root(0o755))?;
    }
    if plan.meta(&home, false)?.is_some() {
        return Err(Error::Exists(format!("{home} (a home for {name})")));
    }
    plan.mkdir_p(
        &home,
        Attrs {
            perm: 0o700,
            uid,
            gid,
        },
    )?;
    copy_skel(plan, "/etc/skel", &home, uid, gid, 0)
}

/// Copy the image's skeleton directory into a new home, owned by the user.
fn copy_skel(plan: &mut Plan, from: &str, to: &str, uid: u32, gid: u32, depth: u32) -> Result<()> {
    if depth > 16 {
        return Ok(());
    }
    let Some(entries) = plan.list_dir(from)? else {
        return Ok(());
    };
    for e in entries {
        let src = format!("{from}/{}", e.name);
        let dst = format!("{to}/{}", e.name);
        let meta = plan.meta(&src, false)?;
        let perm = meta.map(|m| m.perm).unwrap_or(0o644);
        match e.ftype {
            FileType::Directory => {
                plan.mkdir_p(&dst, Attrs { perm, uid, gid })?;
                copy_skel(plan, &src, &dst, uid, gid, depth + 1)?;
            }
            FileType::Regular => {
                let b = plan.read_bytes(&src)?.unwrap_or_default();
                plan.write(&dst, Content::Bytes(b), Attrs { perm, uid, gid })?;
            }
            FileType::Symlink => {
                if let Some(t) = plan.read_link(&src)? {
                    plan.symlink(&t, &dst, uid, gid)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// What `pwconv` does: move the password fields of /etc/passwd into a new
/// /etc/shadow (0400), leaving `x` in their place. Used by `--fix` when
/// the image has no /etc/shadow.
pub fn pwconv(plan: &mut Plan, ctx: &Context) -> Result<()> {
    let mut pw = Table::need(plan, "/etc/passwd")?;
    let mut sh = Table {
        path: "/etc/shadow",
        lines: Vec::new(),
        trailing_newline: true,
        orig: String::new(),
    };
    for i in 0..pw.lines.len() {
        let l = pw.lines[i].clone();
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let mut f: Vec<String> = l.split(':').map(String::from).collect();
        if f.len() < 7 {
            return Err(Error::Invalid(format!(
                "/etc/passwd:{}: malformed entry",
                i + 1
            )));
        }
        let hash = match f[1].as_str() {
            "x" | "" => "!!".to_string(),
            h => h.to_string(),
        };
        sh.push(&[
            f[0].clone(),
            hash,
            days(ctx),
            "0".into(),
            "99999".into(),
            "7".into(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        f[1] = "x".into();
        pw.set(i, &f);
    }
    pw.save(plan, 0o644)?;
    sh.save(plan, 0o400)
}
