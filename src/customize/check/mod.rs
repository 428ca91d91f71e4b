//! The requirements check: one module per requirement, in order of
//! importance, each returning a [`Finding`] with its evidence and, when it
//! does not pass, how to fix it.
//!
//! 1. [`fstype`]: an ext3 image (possibly compressed with bzip2, zip or gzip);
//! 2. [`ssh`]: OpenSSH installed, sshd started at boot, /etc/ssh/sshd_config
//!    present and letting somebody in;
//! 3. [`home`]: user accounts under /home;
//! 4. [`network`]: ifcfg-eth0, ifcfg-eth1, /etc/sysconfig/network, /etc/hosts;
//! 5. [`console`]: the Xen console in /etc/inittab and /etc/securetty;
//! 6. [`shadow`]: passwords in /etc/shadow, with a root entry;
//! 7. [`loader`]: /etc/ld.so.conf.d/libc6-xen.conf with `hwcap 0 nosegneg`,
//!    included by /etc/ld.so.conf.
//!
//! [`distro`] names the distribution. A check never fails on a strange
//! file: a file it cannot use is evidence, and the image's corruption is
//! the one thing reported as an error.

pub mod console;
pub mod distro;
pub mod fstype;
pub mod home;
pub mod loader;
pub mod netstack;
pub mod network;
pub mod shadow;
pub mod ssh;
pub mod sshd_conf;

use crate::customize::text::View;
use crate::error::Result;
use crate::superblock::Superblock;

/// How a requirement stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Met.
    Pass,
    /// Met, but something may still get in the way (the evidence says what).
    Warn,
    /// Not met.
    Fail,
}

impl Status {
    /// `pass`, `warn` or `fail`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// How to fix a requirement that is not met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fix {
    /// `ext3edit customize IMAGE` with these arguments fixes it.
    Customize(Vec<String>),
    /// ext3edit cannot fix it; the text says what to do.
    Manual(String),
}

/// The result of one requirement.
#[derive(Clone, Debug)]
pub struct Finding {
    /// 1 to 7, the order of importance.
    pub number: u8,
    /// Short stable name: `ext3-image`, `openssh`, `home`, `network`,
    /// `console`, `shadow`, `xen-loader`.
    pub name: &'static str,
    /// What it asks for, in words.
    pub title: &'static str,
    /// Pass, warn or fail.
    pub status: Status,
    /// What was found: files, lines (`/etc/inittab:5: ...`), symlinks.
    pub evidence: Vec<String>,
    /// How to fix it (none when it passes).
    pub fix: Option<Fix>,
}

impl Finding {
    fn new(number: u8, name: &'static str, title: &'static str) -> Self {
        Finding {
            number,
            name,
            title,
            status: Status::Pass,
            evidence: Vec::new(),
            fix: None,
        }
    }

    /// Record evidence.
    fn saw(&mut self, s: impl Into<String>) {
        self.evidence.push(s.into());
    }

    /// Record evidence that lowers the status to `st` (never raises it).
    fn mark(&mut self, st: Status, s: impl Into<String>) {
        self.status = self.status.max(st);
        self.evidence.push(s.into());
    }

    /// Add a customize step to the fix (a requirement may need several:
    /// ifcfg-eth1 and /etc/hosts); a step already there is not repeated.
    fn fix_with(&mut self, args: &[&str]) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match &mut self.fix {
            None => self.fix = Some(Fix::Customize(args)),
            Some(Fix::Customize(v)) => {
                if !v.windows(args.len()).any(|w| w == &args[..]) {
                    v.extend(args);
                }
            }
            Some(Fix::Manual(_)) => {}
        }
    }

    fn fix_by_hand(&mut self, text: impl Into<String>) {
        if self.fix.is_none() {
            self.fix = Some(Fix::Manual(text.into()));
        }
    }
}

/// What the check learned about the image as a whole.
#[derive(Clone, Debug)]
pub struct Report {
    /// The distribution, as the image names itself.
    pub distribution: Option<distro::Distro>,
    /// One finding per requirement, in order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when no requirement fails (warnings allowed).
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.status != Status::Fail)
    }
}

/// How the image file was packed, for requirement 1 (the check itself
/// only sees the file system).
#[derive(Clone, Debug, Default)]
pub struct Container {
    /// `raw`, `bzip2`, `gzip`, `zip`, `xz`...
    pub format: String,
}

/// Check every requirement on an open image.
pub fn check(sb: &Superblock, v: &dyn View, container: &Container) -> Result<Report> {
    let findings = vec![
        fstype::check(sb, container),
        ssh::check(v)?,
        home::check(v)?,
        network::check(v)?,
        console::check(v)?,
        shadow::check(v)?,
        loader::check(v)?,
    ];
    Ok(Report {
        distribution: distro::detect(v)?,
        findings,
    })
}

/// `path` read as text, or evidence why not: `Ok(None)` when missing or
/// unreadable (with the reason recorded in `f`).
fn text_or_note(v: &dyn View, f: &mut Finding, path: &str) -> Result<Option<String>> {
    match super::text::read_text(v, path) {
        Ok(t) => Ok(t),
        Err(crate::Error::Invalid(m)) => {
            f.mark(Status::Fail, m);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
