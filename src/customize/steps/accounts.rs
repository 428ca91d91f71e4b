//! Account steps: root's password, new users, ssh keys. They edit
//! /etc/passwd, /etc/shadow, /etc/group and /etc/gshadow as text, line by
//! line, leaving every other line exactly as it was.

use std::collections::HashSet;
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

/// A root entry for a /etc/shadow that has none (root's passwd entry
/// must exist), as the first line: root's password can then be set.
fn add_root_entry(plan: &Plan, ctx: &Context, sh: &mut Table, hash: &str) -> Result<()> {
    let pw = Table::need(plan, "/etc/passwd")?;
    if pw.find("root").is_none() {
        return Err(Error::Invalid(
            "/etc/passwd has no root entry (and /etc/shadow none either)".into(),
        ));
    }
    let f: Vec<String> = ["root", hash, &days(ctx), "0", "99999", "7", "", "", ""]
        .iter()
        .map(|x| x.to_string())
        .collect();
    sh.lines.insert(0, f.join(":"));
    Ok(())
}

/// Set root's hash in /etc/shadow (and `x` in /etc/passwd); a shadow
/// without a root entry gets one.
pub fn set_root_hash(plan: &mut Plan, ctx: &mut Context, hash: &str) -> Result<()> {
    let mut sh = Table::need(plan, "/etc/shadow")?;
    if sh.find("root").is_none() {
        add_root_entry(plan, ctx, &mut sh, hash)?;
    }
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
    let u = users.iter().find(|u| u.name == name).ok_or_else(|| {
        Error::Invalid(format!(
            "there is no user {name} in the image's /etc/passwd"
        ))
    })?;
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
    if let Some((value, at)) = super::sshd::keys_elsewhere(plan)? {
        return Err(Error::Invalid(format!(
            "the image's sshd reads keys from AuthorizedKeysFile {value} ({at}), not ~/.ssh/authorized_keys: a key put there would never be read (--sshd-set AuthorizedKeysFile=.ssh/authorized_keys first)"
        )));
    }
    let (home, root_home) = user_home(plan, name, uid, &home)?;
    // In a home root owns (made with --mkdir), what is already there must
    // be the user's: a root-owned .ssh there is root's, not the user's.
    let foreign = |m: &crate::customize::text::Meta| m.uid != uid && (m.uid != 0 || root_home);
    let dot = format!("{}/.ssh", home.trim_end_matches('/'));
    match plan.meta(&dot, false)? {
        None => plan.mkdir_p(
            &dot,
            Attrs {
                perm: 0o700,
                uid,
                gid,
            },
        )?,
        Some(m) if m.ftype == FileType::Symlink => {
            return Err(planted(&dot, name, "a symlink", plan.read_link(&dot)?))
        }
        Some(m) if !m.is_dir() => {
            return Err(Error::Invalid(format!(
                "{dot} is a {}, not a directory",
                m.ftype.name()
            )))
        }
        Some(m) if foreign(&m) => {
            return Err(Error::Invalid(format!(
                "{dot} belongs to uid {}, not to {name} (uid {uid}): refusing to put {name}'s keys in it",
                m.uid
            )))
        }
        Some(_) => {
            let (d, h) = (plan.node(&dot)?, plan.node(&home)?);
            if let (Some(d), Some(h)) = (d, h) {
                if d.ino != 0 && h.ino != 0 && d.parent != h.ino {
                    return Err(planted(&dot, name, "a second name of a directory elsewhere", None));
                }
            }
        }
    }
    let ak = format!("{dot}/authorized_keys");
    let existed = match plan.meta(&ak, false)? {
        None => false,
        Some(m) if m.ftype == FileType::Symlink => {
            return Err(planted(&ak, name, "a symlink", plan.read_link(&ak)?))
        }
        Some(m) if !m.is_reg() => {
            return Err(Error::Invalid(format!(
                "{ak} is a {}, not a regular file",
                m.ftype.name()
            )))
        }
        Some(m) if foreign(&m) => {
            return Err(Error::Invalid(format!(
                "{ak} belongs to uid {}, not to {name} (uid {uid}): refusing to add {name}'s keys to it",
                m.uid
            )))
        }
        Some(_) => {
            if let Some(n) = plan.node(&ak)?.filter(|n| n.links > 1) {
                return Err(planted(
                    &ak,
                    name,
                    &format!("a file with {} hard links", n.links),
                    None,
                ));
            }
            true
        }
    };
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

/// The error for something a user may have left in their home to make a
/// step write elsewhere.
fn planted(path: &str, user: &str, what: &str, to: Option<String>) -> Error {
    let to = to.map(|t| format!(" (to {t})")).unwrap_or_default();
    Error::Invalid(format!(
        "{path} is {what}{to} in {user}'s home: refusing to write to it, it could be another name of any file \
         such as /etc/shadow (remove it first with --delete {path})"
    ))
}

/// The home of `name` (uid `uid`) as /etc/passwd gives it, checked before
/// a step writes into it: an absolute path other than /, a directory
/// itself (not a symlink, whatever its parents are), owned by the user,
/// or by root and then the home of no other user (not root's /root).
/// Its canonical path, and whether root owns it.
fn user_home(plan: &Plan, name: &str, uid: u32, home: &str) -> Result<(String, bool)> {
    // Control characters are escaped where the message is shown.
    let shown = home;
    if !home.starts_with('/') || home.split('/').any(|c| c == "..") {
        return Err(Error::Invalid(format!(
            "{name}'s home in /etc/passwd is {shown}: not an absolute path without .."
        )));
    }
    if home.trim_matches('/').is_empty() {
        return Err(Error::Invalid(format!(
            "{name}'s home in /etc/passwd is /: refusing to put ssh keys in the root directory"
        )));
    }
    // Symlinks on the way are followed only where root alone made them.
    let c = plan.target(home.trim_end_matches('/'), false)?;
    match plan.meta(&c, false)? {
        None => Err(Error::NotFound(format!(
            "{name}'s home {shown} (make it first, e.g. with --add-user or --mkdir)"
        ))),
        Some(m) if m.ftype == FileType::Symlink => Err(Error::Invalid(format!(
            "{name}'s home {shown} is a symlink (to {}): refusing to follow it",
            plan.read_link(&c)?.unwrap_or_default()
        ))),
        Some(m) if !m.is_dir() => Err(Error::Invalid(format!(
            "{name}'s home {shown} is a {}",
            m.ftype.name()
        ))),
        Some(m) if m.uid != uid && m.uid != 0 => Err(Error::Invalid(format!(
            "{name}'s home {shown} belongs to uid {}, not to {name} (uid {uid}): refusing to put {name}'s keys there",
            m.uid
        ))),
        Some(m) => {
            let root_home = m.uid != uid;
            if root_home {
                let text = read_text(plan, "/etc/passwd")?.unwrap_or_default();
                let users = crate::accounts::parse_passwd(&text, "/etc/passwd")?;
                let same = |h: &str| {
                    let h = h.trim_end_matches('/');
                    h == home.trim_end_matches('/') || h == c
                };
                if let Some(o) = users.iter().find(|u| u.name != name && same(&u.home)) {
                    return Err(Error::Invalid(format!(
                        "{name}'s home {shown} is also the home of {} and belongs to uid 0: refusing to put {name}'s keys there",
                        o.name
                    )));
                }
            }
            Ok((c, root_home))
        }
    }
}

/// `--add-user NAME[:UID]`: entries in passwd, shadow (locked), group,
/// gshadow where present, and a home under /home with /etc/skel's files.
pub fn add_user(plan: &mut Plan, ctx: &mut Context, name: &str, uid: Option<u32>) -> Result<()> {
    let mut pw = Table::need(plan, "/etc/passwd")?;
    if pw.find(name).is_some() {
        return Err(Error::Exists(format!("user {name} in /etc/passwd")));
    }
    let mut gr = Table::need(plan, "/etc/group")?;
    if gr.find(name).is_some() {
        return Err(Error::Exists(format!("group {name} in /etc/group")));
    }
    // The tables as planned: users added earlier in this run are in them.
    let ids = |t: &Table| -> HashSet<u32> {
        t.entries()
            .filter_map(|f| f.get(2)?.trim().parse().ok())
            .collect()
    };
    let (used, gused) = (ids(&pw), ids(&gr));
    let (umin, umax) = id_range(plan, "UID")?;
    let uid = match uid {
        Some(u) if used.contains(&u) => {
            return Err(Error::Exists(format!("uid {u} in /etc/passwd")));
        }
        Some(u) => u,
        // Like useradd: one past the highest in the range, else the
        // first free; free as a gid too where possible (uid = gid).
        None => {
            let both: HashSet<u32> = used.union(&gused).copied().collect();
            free_id(&both, umin, umax)
                .or_else(|| free_id(&used, umin, umax))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "no free uid between UID_MIN {umin} and UID_MAX {umax} (/etc/login.defs)"
                    ))
                })?
        }
    };
    let gid = if gused.contains(&uid) {
        let (gmin, gmax) = id_range(plan, "GID")?;
        free_id(&gused, gmin, gmax).ok_or_else(|| {
            Error::Invalid(format!(
                "no free gid between GID_MIN {gmin} and GID_MAX {gmax} (/etc/login.defs)"
            ))
        })?
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
    // A stale entry of that name would come first and win (its hash, not
    // the new locked one): refuse it, as passwd and group above.
    if let Some(mut sh) = Table::load(plan, "/etc/shadow")? {
        if sh.find(name).is_some() {
            return Err(Error::Exists(format!(
                "user {name} in /etc/shadow (without a /etc/passwd entry)"
            )));
        }
        sh.push(&s(&[name, "!!", &days(ctx), "0", "99999", "7", "", "", ""]));
        sh.save(plan, 0o400)?;
    }
    if let Some(mut gs) = Table::load(plan, "/etc/gshadow")? {
        if gs.find(name).is_some() {
            return Err(Error::Exists(format!(
                "group {name} in /etc/gshadow (without a /etc/group entry)"
            )));
        }
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
    copy_skel(plan, "/etc/skel", &home, uid, gid)
}

/// `KEY_MIN` and `KEY_MAX` (`UID` or `GID`) of the image's
/// /etc/login.defs, defaulting to 1000 and 60000 as shadow-utils does.
fn id_range(plan: &Plan, key: &str) -> Result<(u32, u32)> {
    let (mut min, mut max) = (1000u32, None);
    if let Some(t) = read_text(plan, "/etc/login.defs").ok().flatten() {
        for (_, l) in crate::customize::text::content_lines(&t) {
            let mut w = l.split_whitespace();
            let (k, v) = (w.next(), w.next().and_then(|v| v.parse::<u32>().ok()));
            match (k, v) {
                (Some(k), Some(v)) if k == format!("{key}_MIN") => min = v,
                (Some(k), Some(v)) if k == format!("{key}_MAX") => max = Some(v),
                _ => {}
            }
        }
    }
    // Without a MAX, a MIN above the usual 60000 leaves room up to the top.
    let max = max.unwrap_or(if min > 60000 { u32::MAX - 1 } else { 60000 });
    if min > max {
        return Err(Error::Invalid(format!(
            "/etc/login.defs: {key}_MIN {min} is above {key}_MAX {max}"
        )));
    }
    // u32::MAX is (uid_t)-1, "no user".
    Ok((min, max.min(u32::MAX - 1)))
}

/// An id in `min..=max` not in `used`: one past the highest used there
/// (useradd's choice), else the lowest free one.
fn free_id(used: &HashSet<u32>, min: u32, max: u32) -> Option<u32> {
    let next = used
        .iter()
        .copied()
        .filter(|u| (min..=max).contains(u))
        .max()
        .map_or(Some(min), |m| m.checked_add(1));
    if let Some(n) = next.filter(|n| *n <= max && !used.contains(n)) {
        return Some(n);
    }
    // At most used.len() + 1 candidates before a free one.
    (min..=max).find(|u| !used.contains(u))
}

/// How much of /etc/skel `--add-user` copies at most: a crafted skeleton
/// must not make a run take forever or fill memory.
const SKEL_MAX_ENTRIES: usize = 10_000;
const SKEL_MAX_BYTES: u64 = 64 << 20;
const SKEL_MAX_DEPTH: u32 = 16;

/// What [`copy_skel`] has seen so far.
#[derive(Default)]
struct SkelWalk {
    dirs: HashSet<u32>,
    entries: usize,
    bytes: u64,
}

/// Copy the image's skeleton directory into a new home, owned by the
/// user. /etc/skel is treated as planted, like a home: it must be a
/// directory itself (not a symlink), each directory in it only once and
/// where its `..` says (no hard-linked directories, no loops), no file
/// with several names (a hard link to /etc/shadow would hand the user a
/// copy); symlinks are copied as symlinks, never followed.
fn copy_skel(plan: &mut Plan, from: &str, to: &str, uid: u32, gid: u32) -> Result<()> {
    match plan.meta(from, false)? {
        None => return Ok(()),
        Some(m) if m.ftype == FileType::Symlink => {
            return Err(Error::Invalid(format!(
                "{from} is a symlink (to {}): refusing to copy what it points to into a new home",
                plan.read_link(from)?.unwrap_or_default()
            )))
        }
        Some(m) if !m.is_dir() => return Ok(()),
        Some(_) => {}
    }
    let mut walk = SkelWalk::default();
    if let Some(n) = plan.node(from)? {
        walk.dirs.insert(n.ino);
    }
    copy_skel_dir(plan, from, to, uid, gid, 0, &mut walk)
}

fn copy_skel_dir(
    plan: &mut Plan,
    from: &str,
    to: &str,
    uid: u32,
    gid: u32,
    depth: u32,
    walk: &mut SkelWalk,
) -> Result<()> {
    if depth >= SKEL_MAX_DEPTH {
        return Err(Error::Invalid(format!(
            "{from}: /etc/skel is more than {SKEL_MAX_DEPTH} directories deep: refusing to copy it"
        )));
    }
    let Some(entries) = plan.list_dir(from)? else {
        return Ok(());
    };
    let up = plan.node(from)?.map_or(0, |n| n.ino);
    for e in entries {
        let src = format!("{from}/{}", e.name);
        let dst = format!("{to}/{}", e.name);
        walk.entries += 1;
        if walk.entries > SKEL_MAX_ENTRIES {
            return Err(Error::Invalid(format!(
                "/etc/skel has more than {SKEL_MAX_ENTRIES} entries: refusing to copy it"
            )));
        }
        let meta = plan.meta(&src, false)?;
        let perm = meta.map(|m| m.perm).unwrap_or(0o644);
        let id = plan.node(&src)?;
        match e.ftype {
            FileType::Directory => {
                if let Some(n) = id.filter(|n| n.ino != 0) {
                    if !walk.dirs.insert(n.ino) || (up != 0 && n.parent != up) {
                        return Err(Error::Invalid(format!(
                            "{src} is a second name of a directory (a hard-linked directory, maybe a loop): refusing to copy /etc/skel"
                        )));
                    }
                }
                plan.mkdir_p(&dst, Attrs { perm, uid, gid })?;
                copy_skel_dir(plan, &src, &dst, uid, gid, depth + 1, walk)?;
            }
            FileType::Regular => {
                if let Some(n) = id.filter(|n| n.links > 1) {
                    return Err(Error::Invalid(format!(
                        "{src} has {} hard links: refusing to copy it into a new home, it may be another file such as /etc/shadow",
                        n.links
                    )));
                }
                walk.bytes += meta.map_or(0, |m| m.size);
                if walk.bytes > SKEL_MAX_BYTES {
                    return Err(Error::Invalid(format!(
                        "/etc/skel holds more than {} MiB: refusing to copy it",
                        SKEL_MAX_BYTES >> 20
                    )));
                }
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
