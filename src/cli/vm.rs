//! Making a VM image ready: `check` (the requirements, with evidence and
//! fixes) and, later in this file, `customize`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ext3edit::customize::aucd;
use ext3edit::customize::check::{self, Container, Fix, Report, Status};
use ext3edit::Error;
use serde_json::{json, Value};

use super::image::open_read;
use super::{failure, report, R};

const CHECK_HELP: &str = "\
Requirements, in order of importance (a cluster that boots users' own
ext3 root images under Xen):
  1 ext3-image   an ext3 file system image (raw, or bzip2/gzip/zip)
  2 openssh      /usr/sbin/sshd, started at boot (SysV S-link in the default
                 runlevel, or systemd wants-link), /etc/ssh/sshd_config that
                 lets somebody in
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
fails or the URL is not allowed, 2 usage error.

--json prints one object (schema 1):
  {\"schema\": 1, \"image\": PATH, \"passed\": BOOL,
   \"distribution\": {\"name\", \"source\", \"redhat_family\"} or null,
   \"requirements\": [{\"number\", \"name\", \"title\", \"status\": \"pass\"|\"warn\"|\"fail\",
                      \"evidence\": [TEXT...],
                      \"fix\": null or {\"command\": TEXT, \"args\": [ARG...]}
                             or {\"manual\": TEXT}}...],
   \"url\": absent, or {\"url\", \"allowed\": BOOL, \"pattern\": {\"regex\", \"line\"} or null,
                      \"patterns\": N, \"invalid\": [{\"line\", \"error\"}...]}}

Examples:
  ext3edit check centos.ext3
  ext3edit check centos.ext3 --json | jq '.requirements[] | select(.status != \"pass\")'
  ext3edit check centos.ext3.bz2 --aucd-conf /etc/tycoon/tycoon_aucd.conf \\
      --url http://example.org/images/centos.ext3.bz2";

#[derive(Subcommand)]
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
}

/// Run check or customize.
pub fn run(cmd: VmCmd) -> R<()> {
    match cmd {
        VmCmd::Check {
            image,
            json,
            aucd_conf,
            url,
        } => run_check(&image, json, aucd_conf.as_deref(), url.as_deref()),
    }
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
    // Read the configuration first: a bad one is a usage problem.
    let verdict = match (conf, url) {
        (Some(c), Some(u)) => {
            let text = std::fs::read_to_string(c)
                .map_err(|e| Error::io(format!("reading {}", c.display()), e))?;
            let v =
                aucd::allowed(&text, u).map_err(|e| failure(format!("{}: {e}", c.display())))?;
            Some((c, u, v))
        }
        _ => None,
    };
    let fs = open_read(image)?;
    let container = Container {
        format: "raw".into(),
    };
    let rep = check::check(fs.superblock(), &fs, &container)
        .map_err(|e| failure(format!("{}: {e}", image.display())))?;
    let url_ok = verdict.as_ref().is_none_or(|(_, _, v)| v.matched.is_some());
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
        match &v.matched {
            Some(p) => {
                s += &format!(
                    "url: {} is allowed by {}:{}: {}\n",
                    sh(u),
                    conf.display(),
                    p.line,
                    sh(&p.regex)
                )
            }
            None => {
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
    if failed.is_empty() {
        s += "result: every requirement is met\n";
    } else {
        s += &format!(
            "result: {} of 7 requirements fail ({}); `ext3edit customize {} --fix` fixes what ext3edit can\n",
            failed.len(),
            failed.join(", "),
            shell_quote(&image.to_string_lossy())
        );
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
        "passed": rep.passed(),
        "distribution": rep.distribution.as_ref().map(|d| json!({
            "name": d.name, "source": d.source, "redhat_family": d.redhat_family
        })),
        "requirements": reqs,
    });
    if let Some((_, u, ver)) = url {
        v["url"] = json!({
            "url": u,
            "allowed": ver.matched.is_some(),
            "pattern": ver.matched.as_ref().map(|p| json!({"regex": p.regex, "line": p.line})),
            "patterns": ver.patterns.len(),
            "invalid": ver.invalid.iter().map(|(l, e)| json!({"line": l, "error": e})).collect::<Vec<_>>(),
        });
    }
    report::print_json(&v)
}
