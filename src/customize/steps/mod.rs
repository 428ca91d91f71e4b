//! The customize steps: parsed from the command line or a recipe file
//! (one step per line), checked before anything runs, then applied in
//! order to a [`Plan`] so that the whole run is one change.
//!
//! A step's argument is the word after it (`--network eth1=dhcp`) or
//! after an `=` (`--network=eth1=dhcp`); in a recipe the rest of the line
//! (`network eth1=dhcp`, the leading `--` optional, `#` comments).

mod accounts;
mod files;
mod fix;
mod network;
mod sshd;
mod xen;

use std::path::PathBuf;

use super::plan::Plan;
use crate::error::{Error, Result};
use crate::superblock::Superblock;

pub use network::NetConfig;

/// True for a host name `--hostname` accepts.
pub fn valid_hostname(n: &str) -> bool {
    network::check_hostname(n).is_ok()
}

/// Where root's new password comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Password {
    /// Given on the command line.
    Plain(String),
    /// The first line of a host file.
    File(PathBuf),
    /// Made up (16 characters), printed once.
    Random,
}

/// One step, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// `--root-password PASS|file:PATH|random`
    RootPassword(Password),
    /// `--root-password-hash HASH`
    RootPasswordHash(String),
    /// `--lock-root`
    LockRoot,
    /// `--ssh-inject USER:PUBKEY_FILE`
    SshInject {
        /// The account (from the image's /etc/passwd).
        user: String,
        /// The host file of public keys.
        keys: PathBuf,
    },
    /// `--sshd-config FILE`
    SshdConfig(PathBuf),
    /// `--sshd-set KEY=VALUE` (empty VALUE: comment the setting out)
    SshdSet {
        /// The keyword.
        key: String,
        /// Its value.
        value: String,
    },
    /// `--enable-sshd`
    EnableSshd,
    /// `--ssh-hostkeys`
    SshHostkeys,
    /// `--hostname NAME`
    Hostname(String),
    /// `--network IFACE=dhcp|static:ADDR/PREFIX[,gw=GW][,dns=DNS]`
    Network {
        /// The interface (eth0).
        iface: String,
        /// How it gets its address.
        config: NetConfig,
    },
    /// `--xen-console [NAME]` (default xvc0)
    XenConsole(String),
    /// `--xen-ldconf`
    XenLdconf,
    /// `--resolv-conf FILE`
    ResolvConf(PathBuf),
    /// `--write PATH:TEXT`
    Write {
        /// File in the image.
        path: String,
        /// Its whole new content (`\n` is a newline).
        text: String,
    },
    /// `--append-line PATH:TEXT`
    AppendLine {
        /// File in the image.
        path: String,
        /// The line to add.
        text: String,
    },
    /// `--upload SRC:DEST`
    Upload {
        /// Host file.
        src: PathBuf,
        /// Path in the image (an existing directory receives SRC's name).
        dest: String,
    },
    /// `--mkdir PATH`
    Mkdir(String),
    /// `--delete PATH`
    Delete(String),
    /// `--chmod MODE:PATH`
    Chmod {
        /// Octal mode.
        mode: u16,
        /// Path in the image.
        path: String,
    },
    /// `--link TARGET:LINK`
    Link {
        /// What the symlink points to.
        target: String,
        /// The link.
        link: String,
    },
    /// `--add-user NAME[:UID]`
    AddUser {
        /// Login name.
        name: String,
        /// Its uid (default: the next free one).
        uid: Option<u32>,
    },
    /// `--fix`
    Fix,
    /// `--selinux-relabel`
    SelinuxRelabel,
}

/// A step and where it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What to do.
    pub kind: StepKind,
    /// As written, e.g. `--network eth1=dhcp`.
    pub text: String,
    /// `argument 4` or `recipe.txt:7`.
    pub origin: String,
}

/// Steps that take no argument.
const FLAGS: &[&str] = &[
    "lock-root",
    "enable-sshd",
    "ssh-hostkeys",
    "xen-ldconf",
    "fix",
    "selinux-relabel",
];
/// Steps whose argument may be left out.
const OPTIONAL: &[&str] = &["xen-console"];
/// Every step name, for the help and for "did you mean".
pub const NAMES: &[&str] = &[
    "root-password",
    "root-password-hash",
    "lock-root",
    "ssh-inject",
    "sshd-config",
    "sshd-set",
    "enable-sshd",
    "ssh-hostkeys",
    "hostname",
    "network",
    "xen-console",
    "xen-ldconf",
    "resolv-conf",
    "write",
    "append-line",
    "upload",
    "mkdir",
    "delete",
    "chmod",
    "link",
    "add-user",
    "fix",
    "selinux-relabel",
    "commands-from-file",
];

/// Host files a step reads whole (keys, configurations, recipes,
/// passwords) are at most this big.
pub const MAX_HOST_FILE: u64 = 16 << 20;

/// Read a host file a step names: a regular file (links followed) of at
/// most [`MAX_HOST_FILE`] bytes, so that /dev/zero or a FIFO cannot make
/// a step read forever.
pub fn read_host_file(p: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
    let m = f
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
    if !m.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not a regular file",
            p.display()
        )));
    }
    let mut v = Vec::new();
    f.take(MAX_HOST_FILE + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
    if v.len() as u64 > MAX_HOST_FILE {
        return Err(Error::Invalid(format!(
            "{} is larger than {} MiB",
            p.display(),
            MAX_HOST_FILE >> 20
        )));
    }
    Ok(v)
}

/// [`read_host_file`] as text.
pub fn read_host_text(p: &std::path::Path) -> Result<String> {
    Ok(String::from_utf8_lossy(&read_host_file(p)?).into_owned())
}

fn bad(origin: &str, text: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{origin}: {text}: {why}"))
}

fn split2<'a>(
    v: &'a str,
    sep: char,
    last: bool,
    what: &str,
) -> std::result::Result<(&'a str, &'a str), String> {
    let r = if last {
        v.rsplit_once(sep)
    } else {
        v.split_once(sep)
    };
    match r {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a, b)),
        _ => Err(format!("expected {what}")),
    }
}

fn image_path(p: &str) -> std::result::Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} is not an absolute path in the image"));
    }
    Ok(p.to_string())
}

/// Turn `\n` into a newline and `\\` into a backslash.
fn unescape(t: &str) -> String {
    let mut o = String::with_capacity(t.len());
    let mut it = t.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => o.push('\n'),
                Some('t') => o.push('\t'),
                Some('\\') => o.push('\\'),
                Some(x) => {
                    o.push('\\');
                    o.push(x);
                }
                None => o.push('\\'),
            }
        } else {
            o.push(c);
        }
    }
    o
}

thread_local! {
    /// How many recipes are being read inside each other.
    static RECIPE_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Steps parsed and recipe bytes read in this parse, all includes
    /// together: recipes that include each other many times over grow
    /// as the product of their sizes, whatever the depth.
    static RECIPE_TOTAL: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// At most this many steps in one run, every recipe included.
pub const MAX_STEPS: u64 = 100_000;
/// At most this many bytes of recipes read in one run (a recipe included
/// twice counts twice).
pub const MAX_RECIPE_BYTES: u64 = 32 << 20;

/// Check one step's argument.
fn parse_one(
    name: &str,
    arg: Option<&str>,
    origin: &str,
    base: &std::path::Path,
) -> Result<Vec<Step>> {
    let (steps, read) = RECIPE_TOTAL.with(|t| t.get());
    if steps >= MAX_STEPS {
        return Err(Error::Invalid(format!(
            "{origin}: more than {MAX_STEPS} steps in one run (recipes that include each other many times?)"
        )));
    }
    RECIPE_TOTAL.with(|t| t.set((steps + 1, read)));
    let text = match arg {
        Some(a) => format!("--{name} {a}"),
        None => format!("--{name}"),
    };
    let host = |p: &str| -> PathBuf {
        let pb = PathBuf::from(p);
        if pb.is_absolute() {
            pb
        } else {
            base.join(pb)
        }
    };
    let a = arg.unwrap_or("");
    let kind: std::result::Result<StepKind, String> = match name {
        "root-password" => Ok(StepKind::RootPassword(if a == "random" {
            Password::Random
        } else if let Some(p) = a.strip_prefix("file:") {
            Password::File(host(p))
        } else if a.is_empty() {
            return Err(bad(
                origin,
                &text,
                "an empty password; use --lock-root to lock root",
            ));
        } else {
            Password::Plain(a.to_string())
        })),
        "root-password-hash" => {
            accounts::check_hash(a).map(|_| StepKind::RootPasswordHash(a.to_string()))
        }
        "lock-root" => Ok(StepKind::LockRoot),
        "ssh-inject" => {
            split2(a, ':', false, "USER:PUBKEY_FILE").map(|(u, f)| StepKind::SshInject {
                user: u.to_string(),
                keys: host(f),
            })
        }
        "sshd-config" => Ok(StepKind::SshdConfig(host(a))),
        "sshd-set" => match a.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()) => {
                if v.contains('\n') {
                    Err("a value cannot span lines".into())
                } else if let Err(why) = sshd::check_setting_early(k, v.trim()) {
                    Err(why)
                } else {
                    Ok(StepKind::SshdSet {
                        key: k.to_string(),
                        value: v.trim().to_string(),
                    })
                }
            }
            _ => Err("expected KEY=VALUE with a keyword like PermitRootLogin".into()),
        },
        "enable-sshd" => Ok(StepKind::EnableSshd),
        "ssh-hostkeys" => Ok(StepKind::SshHostkeys),
        "hostname" => network::check_hostname(a).map(|_| StepKind::Hostname(a.to_string())),
        "network" => {
            network::parse_network(a).map(|(iface, config)| StepKind::Network { iface, config })
        }
        "xen-console" => {
            let n = if a.is_empty() { "xvc0" } else { a };
            if n.len() <= 16
                && n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && n.chars().all(|c| c.is_ascii_alphanumeric())
            {
                Ok(StepKind::XenConsole(n.to_string()))
            } else {
                Err(format!(
                    "{n:?} is not a console device name like xvc0 or hvc0"
                ))
            }
        }
        "xen-ldconf" => Ok(StepKind::XenLdconf),
        "resolv-conf" => Ok(StepKind::ResolvConf(host(a))),
        "write" => split2(a, ':', false, "PATH:TEXT (TEXT may be empty only as PATH:)")
            .or_else(|e| match a.strip_suffix(':') {
                Some(p) if !p.is_empty() && !p.contains(':') => Ok((p, "")),
                _ => Err(e),
            })
            .and_then(|(p, t)| {
                Ok(StepKind::Write {
                    path: image_path(p)?,
                    text: unescape(t),
                })
            }),
        "append-line" => split2(a, ':', false, "PATH:TEXT").and_then(|(p, t)| {
            Ok(StepKind::AppendLine {
                path: image_path(p)?,
                text: unescape(t),
            })
        }),
        "upload" => split2(a, ':', true, "SRC:DEST").and_then(|(s, d)| {
            Ok(StepKind::Upload {
                src: host(s),
                dest: image_path(d)?,
            })
        }),
        "mkdir" => image_path(a).map(StepKind::Mkdir),
        "delete" => image_path(a).map(StepKind::Delete),
        "chmod" => split2(a, ':', false, "MODE:PATH").and_then(|(m, p)| {
            let mode = u16::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| format!("invalid mode {m:?}: expected octal like 0644"))?;
            Ok(StepKind::Chmod {
                mode,
                path: image_path(p)?,
            })
        }),
        "link" => split2(a, ':', true, "TARGET:LINK").and_then(|(t, l)| {
            Ok(StepKind::Link {
                target: t.to_string(),
                link: image_path(l)?,
            })
        }),
        "add-user" => {
            let (n, u) = match a.split_once(':') {
                Some((n, u)) => (n, Some(u)),
                None => (a, None),
            };
            accounts::check_user_name(n).and_then(|_| {
                let uid = match u {
                    Some(u) => Some(
                        u.parse::<u32>()
                            .ok()
                            .filter(|u| *u != u32::MAX)
                            .ok_or_else(|| format!("invalid uid {u:?} (0 to 4294967294)"))?,
                    ),
                    None => None,
                };
                Ok(StepKind::AddUser {
                    name: n.to_string(),
                    uid,
                })
            })
        }
        "fix" => Ok(StepKind::Fix),
        "selinux-relabel" => Ok(StepKind::SelinuxRelabel),
        "commands-from-file" => {
            let p = host(a);
            let depth = RECIPE_DEPTH.with(|d| d.get());
            if depth >= 8 {
                return Err(bad(
                    origin,
                    &text,
                    "recipes include each other more than 8 levels deep (a recipe that includes itself?)",
                ));
            }
            let t = read_host_text(&p).map_err(|e| bad(origin, &text, e))?;
            let (steps, read) = RECIPE_TOTAL.with(|t| t.get());
            let read = read + t.len() as u64;
            if read > MAX_RECIPE_BYTES {
                return Err(bad(
                    origin,
                    &text,
                    format_args!(
                        "more than {} MiB of recipes read in one run (recipes that include each other many times?)",
                        MAX_RECIPE_BYTES >> 20
                    ),
                ));
            }
            RECIPE_TOTAL.with(|t| t.set((steps, read)));
            let dir = p.parent().map(|d| d.to_path_buf()).unwrap_or_default();
            RECIPE_DEPTH.with(|d| d.set(depth + 1));
            let r = parse_recipe(&t, &p.display().to_string(), &dir);
            RECIPE_DEPTH.with(|d| d.set(depth));
            return r;
        }
        other => {
            // The first three characters (not bytes: the name may be
            // anything the user typed).
            let head: String = other.chars().take(3).collect();
            let hint = NAMES
                .iter()
                .find(|n| !head.is_empty() && n.starts_with(&head))
                .map(|n| format!(" (did you mean --{n}?)"))
                .unwrap_or_default();
            return Err(Error::Invalid(format!(
                "{origin}: --{other} is not a customize step{hint}; see ext3edit customize --help"
            )));
        }
    };
    match kind {
        Ok(kind) => Ok(vec![Step {
            kind,
            text,
            origin: origin.to_string(),
        }]),
        Err(why) => Err(bad(origin, &text, why)),
    }
}

/// Parse steps from command-line words (`--name value`, `--name=value`).
/// Relative host paths are taken from the current directory.
pub fn parse_args(words: &[String]) -> Result<Vec<Step>> {
    if RECIPE_DEPTH.with(|d| d.get()) == 0 {
        RECIPE_TOTAL.with(|t| t.set((0, 0)));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let origin = format!("argument {}", i + 1);
        let Some(body) = w.strip_prefix("--") else {
            return Err(Error::Invalid(format!(
                "{origin}: {w:?} is not a step (steps start with --, e.g. --fix)"
            )));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let arg = if FLAGS.contains(&name) {
            if inline.is_some() {
                return Err(Error::Invalid(format!("{origin}: --{name} takes no value")));
            }
            None
        } else if inline.is_some() {
            inline
        } else if OPTIONAL.contains(&name) {
            match words.get(i + 1) {
                Some(n) if !n.starts_with("--") => {
                    i += 1;
                    Some(n.clone())
                }
                _ => None,
            }
        } else if NAMES.contains(&name) {
            i += 1;
            match words.get(i) {
                Some(v) => Some(v.clone()),
                None => return Err(Error::Invalid(format!("{origin}: --{name} needs a value"))),
            }
        } else {
            None
        };
        out.extend(parse_one(
            name,
            arg.as_deref(),
            &origin,
            std::path::Path::new(""),
        )?);
        i += 1;
    }
    Ok(out)
}

/// Parse a recipe: one step per line (`network eth1=dhcp`, or with the
/// leading `--`), `#` comments and blank lines skipped. Relative host
/// paths are taken from the recipe's directory.
pub fn parse_recipe(text: &str, file: &str, dir: &std::path::Path) -> Result<Vec<Step>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let origin = format!("{file}:{}", i + 1);
        let l = l.strip_prefix("--").unwrap_or(l);
        let (name, arg) = match l.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some((n, a)) => (n, Some(a.trim())),
            None => (l, None),
        };
        let arg = if FLAGS.contains(&name) {
            if arg.is_some_and(|a| !a.is_empty()) {
                return Err(Error::Invalid(format!("{origin}: {name} takes no value")));
            }
            None
        } else {
            match arg {
                Some(a) if !a.is_empty() => Some(a),
                _ if OPTIONAL.contains(&name) => None,
                _ if NAMES.contains(&name) => {
                    return Err(Error::Invalid(format!("{origin}: {name} needs a value")))
                }
                _ => None,
            }
        };
        out.extend(parse_one(name, arg, &origin, dir)?);
    }
    Ok(out)
}

/// What the steps need besides the plan.
pub struct Context<'s> {
    /// Now, in seconds (for /etc/shadow's last-change day).
    pub now: i64,
    /// The superblock (for `--fix`'s check of requirement 1).
    pub sb: &'s Superblock,
    /// What the steps have to tell the user after the change is made
    /// (a random password); printed by the caller.
    pub notes: Vec<String>,
    /// What `--fix` could not fix: (requirement, what to do by hand).
    pub unfixed: Vec<String>,
    /// `--selinux-relabel` was asked: the caller relabels the whole image
    /// once the planned changes are made.
    pub relabel: bool,
    /// The console a `--xen-console` step of the run names (set by
    /// [`apply`]): `--fix` puts its getty there rather than on xvc0.
    pub console: Option<String>,
    /// A `--dry-run`: the plan is shown, not written (secrets such as new
    /// host keys are not made, a placeholder stands for them).
    pub dry_run: bool,
}

/// Apply `steps` to the plan in order; an error names the step.
pub fn apply(steps: &[Step], plan: &mut Plan, ctx: &mut Context) -> Result<()> {
    if ctx.console.is_none() {
        ctx.console = steps.iter().find_map(|s| match &s.kind {
            StepKind::XenConsole(n) => Some(n.clone()),
            _ => None,
        });
    }
    for s in steps {
        apply_step(s, plan, ctx).map_err(|e| {
            // The error's own words say what kind of problem it is ("no
            // such file or directory", "already exists").
            let m = match e {
                Error::Invalid(m) => m,
                other => other.to_string(),
            };
            Error::Invalid(format!("{}: {}: {m}", s.origin, s.text))
        })?;
    }
    Ok(())
}

fn apply_step(s: &Step, plan: &mut Plan, ctx: &mut Context) -> Result<()> {
    match &s.kind {
        StepKind::RootPassword(p) => accounts::root_password(plan, ctx, p),
        StepKind::RootPasswordHash(h) => accounts::set_root_hash(plan, ctx, h),
        StepKind::LockRoot => accounts::lock_root(plan),
        StepKind::SshInject { user, keys } => accounts::ssh_inject(plan, user, keys),
        StepKind::AddUser { name, uid } => accounts::add_user(plan, ctx, name, *uid),
        StepKind::SshdConfig(p) => sshd::replace_config(plan, p),
        StepKind::SshdSet { key, value } => sshd::set(plan, key, value),
        StepKind::EnableSshd => sshd::enable(plan),
        StepKind::SshHostkeys => sshd::host_keys(plan, ctx),
        StepKind::Hostname(n) => network::hostname(plan, n),
        StepKind::Network { iface, config } => network::network(plan, iface, config),
        StepKind::ResolvConf(p) => files::upload_to(plan, p, "/etc/resolv.conf"),
        StepKind::XenConsole(n) => xen::console(plan, n),
        StepKind::XenLdconf => xen::ldconf(plan),
        StepKind::Write { path, text } => files::write(plan, path, text),
        StepKind::AppendLine { path, text } => files::append_line(plan, path, text),
        StepKind::Upload { src, dest } => files::upload(plan, src, dest),
        StepKind::Mkdir(p) => files::mkdir(plan, p),
        StepKind::Delete(p) => plan.delete(p),
        StepKind::Chmod { mode, path } => plan.chmod(path, *mode),
        StepKind::Link { target, link } => plan.symlink(target, link, 0, 0),
        StepKind::Fix => fix::fix(plan, ctx),
        StepKind::SelinuxRelabel => {
            ctx.relabel = true;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn args_and_recipes_give_the_same_steps() {
        let a = parse_args(&words(&[
            "--network",
            "eth1=dhcp",
            "--xen-console",
            "--fix",
            "--hostname=vm1.example.org",
            "--write",
            "/etc/motd:hello\\nworld",
        ]))
        .unwrap();
        let r = parse_recipe(
            "# recipe\nnetwork eth1=dhcp\n--xen-console\nfix\nhostname vm1.example.org\nwrite /etc/motd:hello\\nworld\n",
            "r",
            std::path::Path::new(""),
        )
        .unwrap();
        let ka: Vec<&StepKind> = a.iter().map(|s| &s.kind).collect();
        let kr: Vec<&StepKind> = r.iter().map(|s| &s.kind).collect();
        assert_eq!(ka, kr);
        assert_eq!(a[1].kind, StepKind::XenConsole("xvc0".into()));
        assert_eq!(
            a[4].kind,
            StepKind::Write {
                path: "/etc/motd".into(),
                text: "hello\nworld".into()
            }
        );
        assert_eq!(r[3].origin, "r:5");
    }

    #[test]
    fn bad_steps_name_where() {
        let e = parse_args(&words(&["--fix", "--hostname", "my host"])).unwrap_err();
        assert!(
            e.to_string().contains("argument 2: --hostname my host"),
            "{e}"
        );
        let e = parse_recipe("fix\nbogus thing\n", "r.txt", std::path::Path::new("")).unwrap_err();
        assert!(e.to_string().contains("r.txt:2"), "{e}");
        let e = parse_args(&words(&["--network", "eth0=static:10.0.0.300/24"])).unwrap_err();
        assert!(e.to_string().contains("10.0.0.300"), "{e}");
        let e = parse_args(&words(&["--network", "eth0=static:10.0.0.3/33"])).unwrap_err();
        assert!(e.to_string().contains("prefix"), "{e}");
    }
}
