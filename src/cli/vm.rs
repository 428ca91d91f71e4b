//! Making a VM image ready: `check` (the requirements, with evidence and
//! fixes) and, later in this file, `customize`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ext3edit::customize::aucd;
use ext3edit::customize::check::{self, Container, Fix, Report, Status};
use serde_json::{json, Value};

use super::args::WriteOpts;
use super::image::{commit, open_read, open_write};
use super::{failure, report, usage, R};
use ext3edit::customize::plan::{self, Plan};
use ext3edit::customize::steps;

const CHECK_HELP: &str = "\
Requirements, in order of importance (a cluster that boots users' own
ext3 root images under Xen):
  1 ext3-image   an ext3 file system image (raw, or bzip2/gzip/zip)
  2 openssh      /usr/sbin/sshd, started at boot (SysV S-link in the default
                 runlevel, or systemd wants-link), /etc/ssh/sshd_config that
                 lets somebody in and that the image's OpenSSH accepts
                 (Include and Match read, file:line of what it refuses),
                 host keys or a boot that makes them
  3 home         /home a directory, regular users' homes under it
  4 network      ifcfg-eth0 and ifcfg-eth1 (DEVICE, BOOTPROTO or IPADDR),
                 NETWORKING=yes in /etc/sysconfig/network, localhost in /etc/hosts
  5 console      a getty on xvc0/hvc0 in /etc/inittab, xvc0/hvc0 in /etc/securetty
  6 shadow       a root entry in /etc/shadow, root's passwd field \"x\"
  7 xen-loader   /etc/ld.so.conf includes ld.so.conf.d/*.conf and
                 libc6-xen.conf says \"hwcap 0 nosegneg\"

Each line: number, status (pass, WARN, FAIL), name, the evidence (files,
line numbers, symlinks), and for what fails the command that fixes it.
Exit status: 0 when nothing fails (warnings allowed), 1 when a requirement
fails or the URL is not allowed for certain, 2 usage error.

--json prints one object (schema 1):
  {\"schema\": 1, \"image\": PATH, \"passed\": BOOL,
   \"distribution\": {\"name\", \"source\", \"redhat_family\"} or null,
   \"requirements\": [{\"number\", \"name\", \"title\", \"status\": \"pass\"|\"warn\"|\"fail\",
                      \"evidence\": [TEXT...],
                      \"fix\": null or {\"command\": TEXT, \"args\": [ARG...]}
                             or {\"manual\": TEXT}}...],
   \"url\": absent, or {\"url\", \"allowed\": BOOL or null (cannot decide),
                      \"set\": BOOL, \"undecided\": null or {\"line\", \"why\"},
                      \"pattern\": {\"regex\", \"line\"} or null,
                      \"patterns\": N, \"invalid\": [{\"line\", \"error\"}...]}}
  \"passed\" is false when the URL is not allowed for certain.

Examples:
  ext3edit check centos.ext3
  ext3edit check centos.ext3 --json | jq '.requirements[] | select(.status != \"pass\")'
  ext3edit check centos.ext3.bz2 --aucd-conf /etc/tycoon/tycoon_aucd.conf \\
      --url http://example.org/images/centos.ext3.bz2";

#[derive(Subcommand)]
#[command(defer = true)]
pub enum VmCmd {
    /// Check an image against the Xen cluster's seven requirements, with the
    /// evidence and the command that fixes each failure.
    #[command(after_help = CHECK_HELP)]
    Check {
        /// The image file.
        image: PathBuf,
        /// Machine-readable output (schema below).
        #[arg(long)]
        json: bool,
        /// A Tycoon auctioneer configuration (tycoon_aucd.conf) whose
        /// AllowedFileSystemImageRegexs the URL must match.
        #[arg(long, value_name = "FILE", requires = "url")]
        aucd_conf: Option<PathBuf>,
        /// The URL the image will be served from (with --aucd-conf).
        #[arg(long, value_name = "URL", requires = "aucd_conf")]
        url: Option<String>,
    },
    /// Make a VM image ready: root password, ssh keys, sshd, network,
    /// consoles, Xen loader config, users, files; all steps in one change.
    #[command(after_help = CUSTOMIZE_HELP)]
    Customize {
        /// The image file.
        image: PathBuf,
        /// Print what would change (unified diffs, mode and owner changes)
        /// and write nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        #[command(flatten)]
        write: WriteOpts,
        /// The steps, applied in the order given (see below).
        #[arg(
            value_name = "STEPS",
            trailing_var_arg = true,
            allow_hyphen_values = true,
            num_args = 0..
        )]
        steps: Vec<String>,
    },
}

const CUSTOMIZE_HELP: &str = "\
Steps, applied in the order given and committed together as one change
(all or nothing; through the journal on ext3). A step that fails names
itself, and nothing of the run is written.

Accounts (users and groups come from the image's own /etc/passwd, /etc/group):
  --root-password PASS|file:PATH|random   SHA-512 crypt, random salt;
                                  random prints the password once
  --root-password-hash HASH       a ready crypt hash ($6$...)
  --lock-root                     lock root's password (a ! before the hash)
  --add-user NAME[:UID]           passwd, shadow, group, gshadow; home under
                                  /home from /etc/skel, owned by the user;
                                  a free uid and gid (UID_MIN..UID_MAX)
  --ssh-inject USER:PUBKEY_FILE   append to ~USER/.ssh/authorized_keys
                                  (.ssh 0700, file 0600, owned by USER)
  Symlinks and hard links in a user's home or /etc/skel are never followed
  or written through: the run is refused (--delete PATH removes them).
sshd:
  --sshd-config FILE              replace /etc/ssh/sshd_config (refused when the
                                  image's sshd would refuse it)
  --sshd-set KEY=VALUE            edit one setting in place (keyword and value
                                  checked against the image's OpenSSH; comments
                                  and other lines kept); KEY= comments it out
  --enable-sshd                   SysV S55sshd links (runlevels 2-5; start links
                                  already there, like Debian's S01ssh, stay), or
                                  the systemd multi-user.target.wants link
  --ssh-hostkeys                  make the host keys sshd lacks (the host's
                                  ssh-keygen; RSA in PEM, ECDSA, Ed25519 as
                                  the image's OpenSSH reads them)
Network:
  --hostname NAME                 /etc/sysconfig/network, /etc/hosts (on Debian the
                                  name goes on 127.0.1.1), /etc/hostname
  --network IFACE=dhcp
  --network IFACE=static:ADDR/PREFIX[,gw=GW][,dns=DNS]
                                  ifcfg-IFACE with ONBOOT=yes; NETWORKING=yes; and
                                  what the image's own stack reads: ifupdown's
                                  interfaces(.d), a networkd 10-IFACE.network
                                  (Name=IFACE), a NetworkManager keyfile; a stack
                                  installed but not started is enabled
  --resolv-conf FILE              copy a host file to /etc/resolv.conf
Xen:
  --xen-console [NAME]            getty in /etc/inittab (TERM from the image's
                                  terminfo), or serial-getty@NAME linked into
                                  getty.target.wants on systemd; NAME in
                                  /etc/securetty where login's PAM uses it
                                  (default xvc0)
  --xen-ldconf                    /etc/ld.so.conf.d/libc6-xen.conf: hwcap 0 nosegneg
Files (paths in the image are absolute; TEXT takes \\n for a newline):
  --write PATH:TEXT               replace a file's content (new: 0644 root)
  --append-line PATH:TEXT         add a line at the end
  --upload SRC:DEST               copy a host file in
  --mkdir PATH                    mkdir -p
  --delete PATH                   rm -rf (a final symlink itself)
  --chmod MODE:PATH               octal mode
  --link TARGET:LINK              symbolic link (replaces a symlink)
Whole jobs:
  --fix                           apply what makes `ext3edit check` pass; say
                                  (exit 1) what it cannot fix
  --selinux-relabel               label every file as the image's own SELinux
                                  policy says (file_contexts, as setfiles)
  --commands-from-file FILE       the same steps, one per line (`network
                                  eth1=dhcp`), # comments; errors give the line
  --check                         after writing, check the result as `ext3edit
                                  check` does (printed after the notes, from
                                  the image just written: a compressed image
                                  is not decompressed again); exit 1 when a
                                  requirement fails

Edited files keep their owner, mode and xattrs (security.selinux too); new
files are root's, and where the image has an SELinux policy
(/etc/selinux/config, SELINUXTYPE's contexts/files/file_contexts) they get
the label that policy gives their path, as setfiles would.

Examples:
  ext3edit customize centos.ext3 --fix
  ext3edit customize centos.ext3 --dry-run --fix
  ext3edit customize centos.ext3 --root-password random --ssh-inject root:id_ed25519.pub
  ext3edit customize centos.ext3 --network eth0=static:10.0.0.5/24,gw=10.0.0.1,dns=10.0.0.1 \\
      --hostname vm1.example.org --enable-sshd --xen-console --xen-ldconf
  ext3edit customize centos.ext3 --commands-from-file recipe.txt --output ready.ext3";

/// Run check or customize.
pub fn run(cmd: VmCmd, g: &WriteOpts) -> R<()> {
    match cmd {
        VmCmd::Check {
            image,
            json,
            aucd_conf,
            url,
        } => {
            if g.output.is_some() || g.no_journal || g.no_sync {
                return Err(usage(
                    "check does not change the image: --output, --no-journal and --no-sync apply only to commands that do",
                ));
            }
            run_check(&image, json, aucd_conf.as_deref(), url.as_deref())
        }
        VmCmd::Customize {
            image,
            dry_run,
            write,
            steps,
        } => run_customize(&image, dry_run, &write.merged(g), steps),
    }
}

/// Split the options customize shares with other writers out of the
/// step words (they may come after the steps).
fn take_options(
    words: Vec<String>,
    w: &mut WriteOpts,
    dry: &mut bool,
    check: &mut bool,
) -> R<Vec<String>> {
    let mut steps = Vec::new();
    let mut it = words.into_iter();
    while let Some(x) = it.next() {
        match x.as_str() {
            "--dry-run" | "-n" => *dry = true,
            "--check" => *check = true,
            "--no-journal" => w.no_journal = true,
            "--no-sync" => w.no_sync = true,
            "--output" => {
                let v = it
                    .next()
                    .ok_or_else(|| usage("--output needs a file name"))?;
                w.output = Some(PathBuf::from(v));
            }
            "--help" | "-h" => {
                let mut c = <super::Cli as clap::CommandFactory>::command();
                if let Some(sc) = c.find_subcommand_mut("customize") {
                    let _ = sc.print_long_help();
                }
                std::process::exit(0);
            }
            _ => match x.strip_prefix("--output=") {
                Some(v) => w.output = Some(PathBuf::from(v)),
                None => steps.push(x),
            },
        }
    }
    Ok(steps)
}

fn run_customize(image: &Path, dry_run: bool, w: &WriteOpts, words: Vec<String>) -> R<()> {
    report::set_escape(false);
    let mut w = w.clone();
    let mut dry = dry_run;
    let mut and_check = false;
    let words = take_options(words, &mut w, &mut dry, &mut and_check)?;
    if words.is_empty() {
        return Err(usage(
            "customize needs at least one step, e.g. --fix (see ext3edit customize --help)",
        ));
    }
    let steps = steps::parse_args(&words).map_err(|e| usage(e.to_string()))?;
    if dry && w.output.is_some() {
        return Err(usage("--dry-run writes nothing: it does not take --output"));
    }
    if dry && and_check {
        return Err(usage(
            "--check checks the image customize wrote; --dry-run writes nothing (run ext3edit check)",
        ));
    }
    // The result's container, for requirement 1 of --check.
    let result_format = if and_check {
        Some(result_format(image, &w)?)
    } else {
        None
    };
    let mut fs = if dry {
        open_read(image)?
    } else {
        open_write(image, &w)?
    };
    let sb = fs.superblock().clone();
    let mut ctx = steps::Context {
        now: fs.now().secs,
        sb: &sb,
        notes: Vec::new(),
        unfixed: Vec::new(),
        relabel: false,
        console: None,
        dry_run: dry,
    };
    let policy = ext3edit::selinux::Policy::load_from_image(&fs).map_err(|e| {
        failure(format!(
            "{}: reading the image's SELinux policy: {e}",
            image.display()
        ))
    })?;
    let mut plan = Plan::new(&fs);
    steps::apply(&steps, &mut plan, &mut ctx)
        .map_err(|e| failure(format!("{}: {e}; nothing was changed", image.display())))?;
    if ctx.relabel && policy.is_none() {
        return Err(failure(format!(
            "{}: --selinux-relabel: the image has no SELinux policy (SELINUXTYPE in /etc/selinux/config and its contexts/files/file_contexts); nothing was changed",
            image.display()
        )));
    }
    if dry {
        let mut d = plan.describe()?;
        if let Some(p) = &policy {
            d += &format!(
                "new files get the label the image's SELinux policy gives them ({} specifications)\n",
                p.len()
            );
            if ctx.relabel {
                d += "selinux-relabel: every inode would get its label from that policy\n";
            }
        }
        // Diffs show the image's text: escaped on a terminal, line by line.
        let shown: String = d
            .split_inclusive('\n')
            .map(|l| match l.strip_suffix('\n') {
                Some(body) => format!("{}\n", report::shown(body)),
                None => report::shown(l).into_owned(),
            })
            .collect();
        report::out(&shown)?;
    } else {
        let changes = plan.into_changes();
        let done = plan::apply(&mut fs, &changes, policy.as_ref())
            .map_err(|e| e.to_string())
            .and_then(|()| match (ctx.relabel, policy.as_ref()) {
                (true, Some(p)) => ext3edit::customize::label::relabel(&mut fs, p)
                    .map(Some)
                    .map_err(|e| format!("--selinux-relabel: {e}")),
                _ => Ok(None),
            });
        let st = match done {
            Ok(st) => st,
            Err(e) => {
                // Large changes commit in steps: put every one of them back.
                let back = match fs.rollback() {
                    Ok(()) => "nothing was changed".to_string(),
                    Err(u) => format!("putting the image back failed: {u}"),
                };
                return Err(failure(format!("{}: {e}; {back}", image.display())));
            }
        };
        if let Some(st) = st {
            ctx.notes.push(format!(
                "selinux-relabel: {} inodes, {} labels changed, {} without a label in the policy",
                st.inodes, st.changed, st.unlabelled
            ));
        }
        // --check: the file system as written, read before the rename
        // (no second decompression of a compressed image).
        let checked = match result_format {
            Some(format) => {
                fs.commit()?;
                let rep = check::check(fs.superblock(), &fs, &Container { format })
                    .map_err(|e| failure(format!("{}: --check: {e}", image.display())))?;
                Some(rep)
            }
            None => None,
        };
        commit(fs)?;
        for n in &ctx.notes {
            report::out(&format!("{n}\n"))?;
        }
        if let Some(rep) = checked {
            let result = w.output.as_deref().unwrap_or(image);
            report::out(&format!("check of the result, {}:\n", result.display()))?;
            print_text(result, &rep, None)?;
            if !rep.passed() {
                // Written; the report says what still fails.
                return Err(failure(String::new()));
            }
        }
    }
    if !ctx.unfixed.is_empty() {
        let done = if dry { "would be fixed" } else { "was fixed" };
        return Err(failure(format!(
            "{}: what ext3edit can fix {done}, but not: {}",
            image.display(),
            ctx.unfixed.join("; ")
        )));
    }
    Ok(())
}

/// The container name `check` reports for the image customize writes:
/// `--format`'s, else IMAGE's.
fn result_format(image: &Path, w: &WriteOpts) -> R<String> {
    use ext3edit::container::Format;
    let f = match &w.format {
        Some(f) => Format::parse(f)
            .ok_or_else(|| usage(format!("--format {f}: expected raw, bz2, gz, xz or zip")))?,
        None => ext3edit::container::Container::open(image)
            .map(|c| c.format)
            .unwrap_or(Format::Raw),
    };
    Ok(match f {
        Format::Raw => "raw",
        Format::Bzip2 => "bzip2",
        Format::Gzip => "gzip",
        Format::Xz => "xz",
        Format::Zip => "zip",
    }
    .into())
}

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn fix_command(image: &Path, args: &[String]) -> String {
    let mut v = vec![
        "ext3edit".to_string(),
        "customize".into(),
        shell_quote(&image.to_string_lossy()),
    ];
    v.extend(args.iter().map(|a| shell_quote(a)));
    v.join(" ")
}

fn run_check(image: &Path, json: bool, conf: Option<&Path>, url: Option<&str>) -> R<()> {
    // Text from the image (names, release strings) is escaped on a terminal.
    report::set_escape(false);
    // Read the configuration first: a bad one is a usage problem.
    let verdict = match (conf, url) {
        (Some(c), Some(u)) => {
            let text = ext3edit::customize::steps::read_host_text(c)?;
            let v =
                aucd::allowed(&text, u).map_err(|e| failure(format!("{}: {e}", c.display())))?;
            Some((c, u, v))
        }
        _ => None,
    };
    let format = ext3edit::container::Container::open(image)
        .map(|c| match c.format {
            ext3edit::container::Format::Raw => "raw",
            ext3edit::container::Format::Bzip2 => "bzip2",
            ext3edit::container::Format::Gzip => "gzip",
            ext3edit::container::Format::Xz => "xz",
            ext3edit::container::Format::Zip => "zip",
        })
        .unwrap_or("raw");
    let fs = open_read(image)?;
    let container = Container {
        format: format.into(),
    };
    let rep = check::check(fs.superblock(), &fs, &container)
        .map_err(|e| failure(format!("{}: {e}", image.display())))?;
    let url_ok = verdict.as_ref().is_none_or(|(_, _, v)| v.allowed());
    if json {
        print_json(image, &rep, verdict.as_ref())?;
    } else {
        print_text(image, &rep, verdict.as_ref())?;
    }
    if rep.passed() && url_ok {
        Ok(())
    } else {
        // The report said it all; exit 1 without another line.
        Err(failure(String::new()))
    }
}

type UrlVerdict<'a> = (&'a Path, &'a str, aucd::Verdict);

fn print_text(image: &Path, rep: &Report, url: Option<&UrlVerdict>) -> R<()> {
    let sh = report::shown;
    let mut s = String::new();
    match &rep.distribution {
        Some(d) => {
            s += &format!("distribution: {} ({})", sh(&d.name), d.source);
            if !d.redhat_family {
                s += "; not Red Hat-like: the requirements are written for RHEL, CentOS and Fedora";
            }
            s.push('\n');
        }
        None => s += "distribution: unknown (no /etc/redhat-release or /etc/os-release)\n",
    }
    for f in &rep.findings {
        let st = match f.status {
            Status::Pass => "pass",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        s += &format!(
            "{} {st} {}: {}",
            f.number,
            f.name,
            sh(&f.evidence.join("; "))
        );
        if f.status != Status::Pass {
            match &f.fix {
                Some(Fix::Customize(a)) => s += &format!(" -> fix: {}", fix_command(image, a)),
                Some(Fix::Manual(t)) => s += &format!(" -> fix by hand: {t}"),
                None => {}
            }
        }
        s.push('\n');
    }
    if let Some((conf, u, v)) = url {
        match (&v.matched, &v.undecided) {
            (_, Some((line, why))) => {
                let at = if *line > 0 {
                    format!("{}:{line}", conf.display())
                } else {
                    conf.display().to_string()
                };
                s += &format!(
                    "url: cannot decide whether {} is allowed: {at}: {}\n",
                    sh(u),
                    sh(why)
                )
            }
            (_, None) if !v.set => {
                s += &format!(
                    "url: {} is NOT allowed: {} sets no {} (the setting is missing)\n",
                    sh(u),
                    conf.display(),
                    aucd::SETTING
                )
            }
            (Some(p), None) => {
                s += &format!(
                    "url: {} is allowed by {}:{}: {}\n",
                    sh(u),
                    conf.display(),
                    p.line,
                    sh(&p.regex)
                )
            }
            (None, None) => {
                s += &format!(
                    "url: {} is NOT allowed: none of the {} patterns of {} in {} matches it\n",
                    sh(u),
                    v.patterns.len(),
                    aucd::SETTING,
                    conf.display()
                )
            }
        }
        for (line, e) in &v.invalid {
            s += &format!("url: {}:{line}: pattern ignored: {e}\n", conf.display());
        }
    }
    let failed: Vec<String> = rep
        .findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| f.number.to_string())
        .collect();
    let url_note = match url {
        Some((_, _, v)) if v.undecided.is_some() => {
            Some("whether the URL is allowed cannot be decided")
        }
        Some((_, _, v)) if !v.allowed() => Some("the URL is not allowed"),
        _ => None,
    };
    if failed.is_empty() {
        match url_note {
            None => s += "result: every requirement is met\n",
            Some(n) => s += &format!("result: every requirement is met, but {n}\n"),
        }
    } else {
        s += &format!(
            "result: {} of 7 requirements fail ({}); `ext3edit customize {} --fix` fixes what ext3edit can\n",
            failed.len(),
            failed.join(", "),
            shell_quote(&image.to_string_lossy())
        );
        if let Some(n) = url_note {
            s += &format!("result: and {n}\n");
        }
    }
    report::out(&s)
}

fn print_json(image: &Path, rep: &Report, url: Option<&UrlVerdict>) -> R<()> {
    let reqs: Vec<Value> = rep
        .findings
        .iter()
        .map(|f| {
            let fix = match (&f.fix, f.status) {
                (_, Status::Pass) | (None, _) => Value::Null,
                (Some(Fix::Customize(a)), _) => {
                    json!({"command": fix_command(image, a), "args": a})
                }
                (Some(Fix::Manual(t)), _) => json!({"manual": t}),
            };
            json!({
                "number": f.number,
                "name": f.name,
                "title": f.title,
                "status": f.status.name(),
                "evidence": f.evidence,
                "fix": fix,
            })
        })
        .collect();
    let mut v = json!({
        "schema": 1,
        "image": image.to_string_lossy(),
        "passed": rep.passed() && url.is_none_or(|(_, _, v)| v.allowed()),
        "distribution": rep.distribution.as_ref().map(|d| json!({
            "name": d.name, "source": d.source, "redhat_family": d.redhat_family
        })),
        "requirements": reqs,
    });
    if let Some((_, u, ver)) = url {
        v["url"] = json!({
            "url": u,
            "allowed": if ver.undecided.is_some() { Value::Null } else { json!(ver.allowed()) },
            "set": ver.set,
            "undecided": ver.undecided.as_ref().map(|(l, w)| json!({"line": l, "why": w})),
            "pattern": ver.matched.as_ref().map(|p| json!({"regex": p.regex, "line": p.line})),
            "patterns": ver.patterns.len(),
            "invalid": ver.invalid.iter().map(|(l, e)| json!({"line": l, "error": e})).collect::<Vec<_>>(),
        });
    }
    report::print_json(&v)
}
