//! `--fix`: check the planned image and apply the steps that make the
//! failing requirements pass; what ext3edit cannot fix is collected and
//! reported (the run then exits non-zero).

use super::{accounts, apply_step, parse_args, Context};
use crate::customize::check::ssh::SSHD_CONFIG;
use crate::customize::check::{self, Container, Fix, Status};
use crate::customize::plan::{Attrs, Content, Plan};
use crate::customize::text::View;
use crate::error::Result;

/// The sshd_config --fix writes when the image has none: OpenSSH's own
/// defaults spelled out as RHEL ships them.
const DEFAULT_SSHD_CONFIG: &str = "\
# Written by ext3edit customize --fix: the image had no sshd_config.
Protocol 2
SyslogFacility AUTHPRIV
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication yes
ChallengeResponseAuthentication no
UsePAM yes
X11Forwarding yes
Subsystem sftp /usr/libexec/openssh/sftp-server
";

/// Apply the fixes for what fails now. A requirement may need several
/// fixes (ifcfg-eth1 and /etc/hosts), and each check names one, so this
/// checks again after each round until nothing new can be done.
pub fn fix(plan: &mut Plan, ctx: &mut Context) -> Result<()> {
    let mut applied: Vec<Vec<String>> = Vec::new();
    for _round in 0..8 {
        let rep = check::check(ctx.sb, plan, &Container::default())?;
        let mut progress = false;
        for f in rep.findings.iter().filter(|f| f.status != Status::Pass) {
            // Missing sshd_config: write a stock one rather than ask for a file.
            if f.name == "openssh"
                && f.evidence
                    .iter()
                    .any(|e| e == &format!("{SSHD_CONFIG} is missing"))
                && plan.meta("/usr/sbin/sshd", true)?.is_some()
                && plan.meta(SSHD_CONFIG, true)?.is_none()
            {
                plan.mkdir_p("/etc/ssh", Attrs::root(0o755))?;
                plan.write(
                    SSHD_CONFIG,
                    Content::Bytes(DEFAULT_SSHD_CONFIG.as_bytes().to_vec()),
                    Attrs::root(0o600),
                )?;
                progress = true;
            }
            if f.name == "shadow" && plan.meta("/etc/shadow", true)?.is_none() {
                accounts::pwconv(plan, ctx)?;
                progress = true;
                continue;
            }
            match &f.fix {
                Some(Fix::Customize(args))
                    if !args.iter().any(|a| a == "--sshd-config" || a == "--fix")
                        && !applied.contains(args) =>
                {
                    // The console the run names later (--xen-console hvc0
                    // after --fix), not a second getty on xvc0.
                    let mut args2 = args.clone();
                    if let Some(c) = &ctx.console {
                        for i in 1..args2.len() {
                            if args2[i - 1] == "--xen-console" {
                                args2[i] = c.clone();
                            }
                        }
                    }
                    for s in parse_args(&args2)? {
                        apply_step(&s, plan, ctx)?;
                    }
                    applied.push(args.clone());
                    progress = true;
                }
                _ => {}
            }
        }
        if !progress {
            break;
        }
    }
    // What still fails after the fixes is what ext3edit cannot fix.
    let after = check::check(ctx.sb, plan, &Container::default())?;
    for f in after.findings.iter().filter(|f| f.status == Status::Fail) {
        let how = match &f.fix {
            Some(Fix::Manual(t)) => t.clone(),
            _ => f.evidence.join("; "),
        };
        ctx.unfixed.push(format!("{} {}: {how}", f.number, f.name));
    }
    Ok(())
}
