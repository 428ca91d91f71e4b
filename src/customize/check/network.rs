//! Requirement 4: network configuration in
//! /etc/sysconfig/network-scripts/ifcfg-eth0 and ifcfg-eth1,
//! /etc/sysconfig/network and /etc/hosts.
//!
//! An ifcfg file needs DEVICE and a way to get an address: BOOTPROTO=dhcp
//! (or bootp), or IPADDR (with BOOTPROTO static, none or unset).
//! /etc/sysconfig/network needs NETWORKING=yes; /etc/hosts a line that
//! maps a loopback address to `localhost`.

use super::netstack::{self, Stack};
use super::{text_or_note, Finding, Status};
use crate::customize::text::{content_lines, parse_vars, read_text, var, View};
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
    // Which ifcfg files would bring their interface up.
    let mut ifcfg_up = Vec::new();
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
        let onboot = !var(&vars, "ONBOOT").is_some_and(|v| v.value.eq_ignore_ascii_case("no"));
        let has_addr = matches!(proto.as_deref(), Some("dhcp") | Some("bootp")) || ip.is_some();
        if onboot && has_addr && device.is_none_or(|d| d.value == dev) {
            ifcfg_up.push(dev);
        }
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
    stack(v, &mut f, &ifcfg_up)?;
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

/// The image's own network stack: which one it is, whether it starts at
/// boot, and whether it brings eth0 and eth1 up (the ifcfg files only
/// count where network-scripts, or NetworkManager on the Red Hat family,
/// reads them).
fn stack(v: &dyn View, f: &mut Finding, ifcfg_up: &[&str]) -> Result<()> {
    let found = netstack::detect(v)?;
    // None found (a tree of configuration files only): the ifcfg files
    // are what counts, as on RHEL.
    if found.is_empty() {
        return Ok(());
    }
    let redhat = super::distro::detect(v)?.is_some_and(|d| d.redhat_family);
    for s in &found {
        match &s.enabled {
            Some(l) => f.saw(format!(
                "network stack: {} ({}), started at boot by {l}",
                s.stack.name(),
                s.installed
            )),
            None => f.saw(format!(
                "network stack: {} ({}), not started at boot",
                s.stack.name(),
                s.installed
            )),
        }
    }
    let active: Vec<Stack> = found
        .iter()
        .filter(|s| s.enabled.is_some())
        .map(|s| s.stack)
        .collect();
    if active.is_empty() {
        let can = !netstack::targets(v, redhat)?.is_empty();
        let names: Vec<&str> = found.iter().map(|s| s.stack.name()).collect();
        f.mark(
            if can { Status::Fail } else { Status::Warn },
            format!(
                "no network stack starts at boot ({} installed but not enabled): eth0 stays down",
                names.join(", ")
            ),
        );
        if can {
            f.fix_with(&["--network", "eth0=dhcp"]);
        }
        return Ok(());
    }
    let ifaces = netstack::interfaces_files(v)?;
    let networks = netstack::network_files(v)?;
    for dev in ["eth0", "eth1"] {
        let mut up: Option<String> = None;
        let mut why: Vec<String> = Vec::new();
        for s in &active {
            if *s == Stack::NetworkScripts || (redhat && *s == Stack::NetworkManager) {
                if ifcfg_up.contains(&dev) {
                    up.get_or_insert(format!("{} ({SCRIPTS}/ifcfg-{dev})", s.name()));
                } else {
                    why.push(format!("{}: no usable ifcfg-{dev}", s.name()));
                }
                continue;
            }
            match s {
                Stack::NetworkScripts => {}
                Stack::Ifupdown => match netstack::ifupdown_iface(&ifaces, dev) {
                    (Some((st, m)), Some(_)) if m == "dhcp" && !dhcp_client(v)? => why.push(format!(
                        "ifupdown: {st}, but the image has no DHCP client (dhclient, dhcpcd or udhcpc: install isc-dhcp-client)"
                    )),
                    (Some((st, m)), Some(auto)) if m != "manual" => {
                        up.get_or_insert(format!("ifupdown ({st}; {auto})"));
                    }
                    (Some((st, _)), Some(_)) => {
                        why.push(format!("ifupdown: {st}: method manual gives no address"))
                    }
                    (Some((st, _)), None) => why.push(format!(
                        "ifupdown: {st}, but no auto or allow-hotplug line names {dev}"
                    )),
                    (None, _) => why.push(format!(
                        "ifupdown: no `iface {dev} inet` stanza in /etc/network/interfaces or what it sources"
                    )),
                },
                Stack::Networkd => match netstack::networkd_iface(&networks, dev) {
                    Some((p, true)) => {
                        up.get_or_insert(format!("systemd-networkd ({p})"));
                    }
                    Some((p, false)) => {
                        why.push(format!("systemd-networkd: {p} matches {dev} but gives no DHCP or Address"))
                    }
                    None => why.push(format!("systemd-networkd: no .network file matches {dev}")),
                },
                Stack::NetworkManager => match netstack::nm_iface(v, dev)? {
                    Some((p, true)) => {
                        up.get_or_insert(format!("NetworkManager ({p})"));
                    }
                    Some((p, false)) => why.push(format!("NetworkManager: {p} has autoconnect=false")),
                    None if netstack::nm_auto_default(v)? => {
                        up.get_or_insert(
                            "NetworkManager (its automatic wired connection, DHCP)".to_string(),
                        );
                    }
                    None => why.push(format!(
                        "NetworkManager: no keyfile names {dev} and no-auto-default=* is set"
                    )),
                },
            }
        }
        match up {
            Some(u) => f.saw(format!("{dev} is brought up at boot by {u}")),
            None => {
                f.mark(
                    Status::Fail,
                    format!("{dev} is not brought up at boot: {}", why.join("; ")),
                );
                if why.iter().all(|w| w.contains("no DHCP client")) {
                    f.fix_by_hand("install a DHCP client in the image (isc-dhcp-client); ext3edit does not install packages");
                } else {
                    // What the ifcfg file says, so that the fix does not
                    // turn a static address into DHCP.
                    let arg = network_arg(v, dev)?;
                    f.fix_with(&["--network", &arg]);
                }
            }
        }
    }
    if let Some(rule) = netstack::predictable_names(v)? {
        f.saw(format!(
            "interface names: udev's predictable names apply ({rule}, no .link file in /etc/systemd/network): \
             Xen's netfront devices stay eth0 and eth1, but under KVM or qemu they are named ens3 or enp0s3 \
             unless the kernel gets net.ifnames=0"
        ));
    }
    Ok(())
}

/// True when the image has a DHCP client ifupdown can run.
fn dhcp_client(v: &dyn View) -> Result<bool> {
    for p in [
        "/sbin/dhclient",
        "/usr/sbin/dhclient",
        "/sbin/dhcpcd",
        "/usr/sbin/dhcpcd",
        "/sbin/udhcpc",
        "/usr/sbin/udhcpc",
        "/sbin/pump",
    ] {
        if v.meta(p, true)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `IFACE=dhcp`, or `IFACE=static:ADDR/PREFIX[,gw=GW][,dns=DNS]...` when
/// ifcfg-IFACE gives a static address.
fn network_arg(v: &dyn View, dev: &str) -> Result<String> {
    let p = format!("{SCRIPTS}/ifcfg-{dev}");
    let dhcp = format!("{dev}=dhcp");
    let Some(t) = read_text(v, &p).ok().flatten() else {
        return Ok(dhcp);
    };
    let (vars, _) = parse_vars(&t);
    let get = |k: &str| var(&vars, k).map(|x| x.value.clone());
    let proto = get("BOOTPROTO").unwrap_or_default().to_ascii_lowercase();
    let Some(ip) = get("IPADDR").filter(|_| proto != "dhcp" && proto != "bootp") else {
        return Ok(dhcp);
    };
    let Ok(addr) = ip.parse::<std::net::Ipv4Addr>() else {
        return Ok(dhcp);
    };
    let prefix = get("PREFIX")
        .and_then(|p| p.parse::<u8>().ok())
        .or_else(|| {
            let m: std::net::Ipv4Addr = get("NETMASK")?.parse().ok()?;
            let m = u32::from(m);
            (m.leading_ones() + m.trailing_zeros() == 32).then_some(m.leading_ones() as u8)
        })
        .filter(|p| *p <= 32)
        // Neither: the class's netmask, as RHEL's ipcalc gives it.
        .unwrap_or(match addr.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            _ => 24,
        });
    let mut a = format!("{dev}=static:{addr}/{prefix}");
    if let Some(g) = get("GATEWAY").filter(|g| g.parse::<std::net::Ipv4Addr>().is_ok()) {
        a.push_str(&format!(",gw={g}"));
    }
    for k in ["DNS1", "DNS2", "DNS3"] {
        if let Some(d) = get(k).filter(|d| d.parse::<std::net::IpAddr>().is_ok()) {
            a.push_str(&format!(",dns={d}"));
        }
    }
    Ok(a)
}
