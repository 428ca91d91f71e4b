//! Requirement 4: network configuration in
//! /etc/sysconfig/network-scripts/ifcfg-eth0 and ifcfg-eth1,
//! /etc/sysconfig/network and /etc/hosts.
//!
//! An ifcfg file needs DEVICE and a way to get an address: BOOTPROTO=dhcp
//! (or bootp), or IPADDR (with BOOTPROTO static, none or unset).
//! /etc/sysconfig/network needs NETWORKING=yes; /etc/hosts a line that
//! maps a loopback address to `localhost`.

use super::{text_or_note, Finding, Status};
use crate::customize::text::{content_lines, parse_vars, var, View};
use crate::error::Result;

/// Where RHEL keeps the interface files.
pub const SCRIPTS: &str = "/etc/sysconfig/network-scripts";

/// The image's host name: /etc/hostname, else HOSTNAME of
/// /etc/sysconfig/network, else `localhost.localdomain`.
pub fn current_hostname(v: &dyn View) -> Result<String> {
    if let Some(t) = crate::customize::text::read_text(v, "/etc/hostname")
        .ok()
        .flatten()
    {
        if let Some(l) = t
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if crate::customize::steps::valid_hostname(l) {
                return Ok(l.to_string());
            }
        }
    }
    if let Some(t) = crate::customize::text::read_text(v, "/etc/sysconfig/network")
        .ok()
        .flatten()
    {
        let (vars, _) = parse_vars(&t);
        if let Some(h) = var(&vars, "HOSTNAME") {
            if crate::customize::steps::valid_hostname(&h.value) {
                return Ok(h.value.clone());
            }
        }
    }
    Ok("localhost.localdomain".to_string())
}

/// Check requirement 4.
pub fn check(v: &dyn View) -> Result<Finding> {
    let mut f = Finding::new(
        4,
        "network",
        "network configuration: ifcfg-eth0, ifcfg-eth1, /etc/sysconfig/network, /etc/hosts",
    );
    for dev in ["eth0", "eth1"] {
        let p = format!("{SCRIPTS}/ifcfg-{dev}");
        let Some(t) = text_or_note(v, &mut f, &p)? else {
            f.mark(Status::Fail, format!("{p} is missing"));
            f.fix_with(&["--network", &format!("{dev}=dhcp")]);
            continue;
        };
        let (vars, bad) = parse_vars(&t);
        for n in bad {
            f.mark(Status::Warn, format!("{p}:{n}: not a KEY=VALUE line"));
        }
        let device = var(&vars, "DEVICE");
        let proto = var(&vars, "BOOTPROTO").map(|v| v.value.to_ascii_lowercase());
        let ip = var(&vars, "IPADDR");
        let mut what = Vec::new();
        match device {
            Some(d) if d.value == dev => what.push(format!("DEVICE={} (line {})", d.value, d.line)),
            Some(d) => {
                f.mark(
                    Status::Warn,
                    format!("{p}:{}: DEVICE={} does not name {dev}", d.line, d.value),
                );
            }
            None => {
                f.mark(Status::Fail, format!("{p}: no DEVICE line"));
                f.fix_with(&["--network", &format!("{dev}=dhcp")]);
            }
        }
        match (proto.as_deref(), ip) {
            (Some("dhcp") | Some("bootp"), _) => what.push(format!("BOOTPROTO={}", proto.unwrap())),
            (_, Some(ip)) => what.push(format!("IPADDR={} (line {})", ip.value, ip.line)),
            (p2, None) => {
                f.mark(
                    Status::Fail,
                    format!(
                        "{p}: no address: BOOTPROTO={} and no IPADDR",
                        p2.unwrap_or("(unset)")
                    ),
                );
                f.fix_with(&["--network", &format!("{dev}=dhcp")]);
            }
        }
        if var(&vars, "ONBOOT").is_some_and(|v| v.value.eq_ignore_ascii_case("no")) {
            f.mark(
                Status::Warn,
                format!("{p}: ONBOOT=no: {dev} is not brought up at boot"),
            );
            f.fix_with(&["--network", &format!("{dev}=dhcp")]);
        }
        if !what.is_empty() {
            f.saw(format!("{p}: {}", what.join(", ")));
        }
    }
    let net = "/etc/sysconfig/network";
    match text_or_note(v, &mut f, net)? {
        None => {
            f.mark(Status::Fail, format!("{net} is missing"));
            f.fix_with(&["--network", "eth0=dhcp"]);
        }
        Some(t) => {
            let (vars, _) = parse_vars(&t);
            match var(&vars, "NETWORKING") {
                Some(v) if v.value.eq_ignore_ascii_case("yes") => {
                    let host = var(&vars, "HOSTNAME")
                        .map(|h| format!(", HOSTNAME={}", h.value))
                        .unwrap_or_default();
                    f.saw(format!("{net}:{}: NETWORKING=yes{host}", v.line));
                }
                Some(v) => {
                    f.mark(
                        Status::Fail,
                        format!("{net}:{}: NETWORKING={}", v.line, v.value),
                    );
                    f.fix_with(&["--network", "eth0=dhcp"]);
                }
                None => {
                    f.mark(Status::Fail, format!("{net}: no NETWORKING=yes"));
                    f.fix_with(&["--network", "eth0=dhcp"]);
                }
            }
        }
    }
    let name = current_hostname(v)?;
    match text_or_note(v, &mut f, "/etc/hosts")? {
        None => {
            f.mark(Status::Fail, "/etc/hosts is missing");
            f.fix_with(&["--hostname", &name]);
        }
        Some(t) => {
            let found = content_lines(&t).find(|(_, l)| {
                let mut w = l.split('#').next().unwrap_or("").split_whitespace();
                let addr = w.next().unwrap_or("");
                (addr.starts_with("127.") || addr == "::1") && w.any(|n| n == "localhost")
            });
            match found {
                Some((n, l)) => f.saw(format!("/etc/hosts:{n}: {l}")),
                None => {
                    f.mark(Status::Fail, "/etc/hosts has no localhost line");
                    f.fix_with(&["--hostname", &name]);
                }
            }
        }
    }
    Ok(f)
}
