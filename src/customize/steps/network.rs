//! Network steps: the host name, interface files, resolv.conf.

use std::net::{IpAddr, Ipv4Addr};

use crate::customize::check::netstack::{self, Stack};
use crate::customize::check::network::SCRIPTS;
use crate::customize::check::{distro, ssh::uses_systemd};
use crate::customize::plan::{Attrs, Content, Plan};
use crate::customize::text::{self, content_lines, read_text, View};
use crate::error::Result;

/// How an interface gets its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetConfig {
    /// DHCP.
    Dhcp,
    /// A fixed address.
    Static {
        /// The address.
        addr: Ipv4Addr,
        /// Prefix length (0 to 32).
        prefix: u8,
        /// Default gateway.
        gw: Option<Ipv4Addr>,
        /// Name servers.
        dns: Vec<IpAddr>,
    },
}

/// A host name as RFC 1123 allows it: labels of letters, digits and
/// hyphens, at most 253 characters.
pub fn check_hostname(n: &str) -> std::result::Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{n:?} is not a valid host name (letters, digits, hyphens and dots; no spaces)"
        ))
    }
}

/// Parse `IFACE=dhcp` or `IFACE=static:ADDR/PREFIX[,gw=GW][,dns=DNS]...`.
pub fn parse_network(a: &str) -> std::result::Result<(String, NetConfig), String> {
    let (iface, cfg) = a
        .split_once('=')
        .ok_or("expected IFACE=dhcp or IFACE=static:ADDR/PREFIX[,gw=GW][,dns=DNS]")?;
    if iface.is_empty()
        || iface.len() > 15
        || !iface
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-:".contains(c))
    {
        return Err(format!("{iface:?} is not an interface name like eth0"));
    }
    if cfg == "dhcp" {
        return Ok((iface.to_string(), NetConfig::Dhcp));
    }
    let Some(rest) = cfg.strip_prefix("static:") else {
        return Err(format!("{cfg:?}: expected dhcp or static:ADDR/PREFIX"));
    };
    let mut parts = rest.split(',');
    let first = parts.next().unwrap_or("");
    let (ad, pf) = first
        .split_once('/')
        .ok_or_else(|| format!("{first:?}: expected ADDR/PREFIX, e.g. 10.0.0.5/24"))?;
    let addr: Ipv4Addr = ad
        .parse()
        .map_err(|_| format!("invalid address {ad:?} (an IPv4 address like 10.0.0.5)"))?;
    let prefix: u8 = pf
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("invalid prefix {pf:?} (0 to 32)"))?;
    let (mut gw, mut dns) = (None, Vec::new());
    for p in parts {
        match p.split_once('=') {
            Some(("gw", g)) => gw = Some(g.parse().map_err(|_| format!("invalid gateway {g:?}"))?),
            Some(("dns", d)) => dns.push(
                d.parse()
                    .map_err(|_| format!("invalid name server {d:?}"))?,
            ),
            _ => return Err(format!("{p:?}: expected gw=ADDR or dns=ADDR")),
        }
    }
    Ok((
        iface.to_string(),
        NetConfig::Static {
            addr,
            prefix,
            gw,
            dns,
        },
    ))
}

/// Set `KEY=VALUE` lines in a sysconfig-style text, keeping every other
/// line; `None` removes the key. Returns the new text.
pub fn set_vars(text: &str, set: &[(&str, Option<String>)]) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for (k, v) in set {
        let pos = lines.iter().position(|l| {
            let t = l.trim_start();
            let t = t.strip_prefix("export ").unwrap_or(t);
            t.split_once('=').is_some_and(|(key, _)| key.trim() == *k)
        });
        match (pos, v) {
            (Some(i), Some(v)) => lines[i] = format!("{k}={v}"),
            (Some(i), None) => {
                lines.remove(i);
            }
            (None, Some(v)) => lines.push(format!("{k}={v}")),
            (None, None) => {}
        }
        // Later duplicates would win in a shell: drop them.
        if v.is_some() {
            let first = lines.iter().position(|l| l.starts_with(&format!("{k}=")));
            let mut idx = 0;
            lines.retain(|l| {
                let keep = Some(idx) == first
                    || l.trim_start()
                        .split_once('=')
                        .is_none_or(|(key, _)| key.trim() != *k);
                idx += 1;
                keep
            });
        }
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

fn netmask(prefix: u8) -> Ipv4Addr {
    let m: u32 = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Ipv4Addr::from(m)
}

/// `--network IFACE=...`: the ifcfg file (DEVICE, BOOTPROTO, ONBOOT=yes,
/// the address lines), NETWORKING=yes in /etc/sysconfig/network. Lines
/// the step does not own (HWADDR, UUID...) are kept.
pub fn network(plan: &mut Plan, iface: &str, cfg: &NetConfig) -> Result<()> {
    plan.mkdir_p(SCRIPTS, Attrs::root(0o755))?;
    let path = format!("{SCRIPTS}/ifcfg-{iface}");
    let cur = read_text(plan, &path)?.unwrap_or_default();
    let s = |v: &str| Some(v.to_string());
    let mut set: Vec<(&str, Option<String>)> = vec![("DEVICE", s(iface)), ("ONBOOT", s("yes"))];
    match cfg {
        NetConfig::Dhcp => {
            set.push(("BOOTPROTO", s("dhcp")));
            for k in [
                "IPADDR", "NETMASK", "PREFIX", "GATEWAY", "DNS1", "DNS2", "DNS3",
            ] {
                set.push((k, None));
            }
        }
        NetConfig::Static {
            addr,
            prefix,
            gw,
            dns,
        } => {
            set.push(("BOOTPROTO", s("none")));
            set.push(("IPADDR", Some(addr.to_string())));
            set.push(("NETMASK", Some(netmask(*prefix).to_string())));
            set.push(("PREFIX", Some(prefix.to_string())));
            set.push(("GATEWAY", gw.map(|g| g.to_string())));
            for (i, k) in ["DNS1", "DNS2", "DNS3"].into_iter().enumerate() {
                set.push((k, dns.get(i).map(|d| d.to_string())));
            }
        }
    }
    let text = set_vars(&cur, &set);
    plan.write(
        &path,
        Content::Bytes(text::edited(&cur, &text)),
        Attrs::root(0o644),
    )?;
    let net = "/etc/sysconfig/network";
    let cur = read_text(plan, net)?.unwrap_or_default();
    let text = text::edited(&cur, &set_vars(&cur, &[("NETWORKING", s("yes"))]));
    if text != text::encode(&cur) {
        plan.write(net, Content::Bytes(text), Attrs::root(0o644))?;
    }
    // And what the image's own stack reads, where that is not ifcfg.
    let redhat = distro::detect(plan)?.is_some_and(|d| d.redhat_family);
    for (stack, enable) in netstack::targets(plan, redhat)? {
        match stack {
            Stack::Ifupdown => ifupdown(plan, iface, cfg, enable)?,
            Stack::Networkd => networkd(plan, iface, cfg, enable)?,
            Stack::NetworkManager => network_manager(plan, iface, cfg, enable)?,
            Stack::NetworkScripts => {}
        }
    }
    Ok(())
}

/// Link `unit` (a vendor unit file) into `/etc/systemd/system/WANTS`, as
/// `systemctl enable` does; a unit the image lacks is skipped.
fn enable_unit(plan: &mut Plan, unit: &str, wants: &str) -> Result<()> {
    let Some(file) = netstack::unit_file(plan, unit)? else {
        return Ok(());
    };
    let dir = format!("/etc/systemd/system/{wants}");
    plan.mkdir_p(&dir, Attrs::root(0o755))?;
    plan.symlink(&file, &format!("{dir}/{unit}"), 0, 0)
}

/// The first word of an /etc/network/interfaces line that starts a new
/// stanza.
fn stanza_start(l: &str) -> bool {
    let w = l.split_whitespace().next().unwrap_or("");
    matches!(
        w,
        "iface"
            | "mapping"
            | "auto"
            | "source"
            | "source-directory"
            | "source-dir"
            | "rename"
            | "no-auto-down"
            | "no-scripts"
    ) || w.starts_with("allow-")
}

/// ifupdown: the `iface IFACE inet` stanza where the image has one
/// (replaced in its file, other stanzas kept), else a new file in
/// /etc/network/interfaces.d (when /etc/network/interfaces sources it)
/// or a stanza appended to /etc/network/interfaces; `allow-hotplug
/// IFACE` when nothing brings it up yet (ifupdown raises it when the
/// device appears, and an absent eth1 is no error at boot).
fn ifupdown(plan: &mut Plan, iface: &str, cfg: &NetConfig, enable: bool) -> Result<()> {
    let mut body = match cfg {
        NetConfig::Dhcp => format!("iface {iface} inet dhcp\n"),
        NetConfig::Static {
            addr,
            prefix,
            gw,
            dns,
        } => {
            let mut b = format!("iface {iface} inet static\n    address {addr}/{prefix}\n");
            if let Some(g) = gw {
                b.push_str(&format!("    gateway {g}\n"));
            }
            if !dns.is_empty() {
                let d: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
                b.push_str(&format!("    dns-nameservers {}\n", d.join(" ")));
            }
            b
        }
    };
    let files = netstack::interfaces_files(plan)?;
    let (_, auto) = netstack::ifupdown_iface(&files, iface);
    if auto.is_none() {
        body.insert_str(0, &format!("allow-hotplug {iface}\n"));
    }
    let defined = files.iter().find(|(_, t)| {
        content_lines(t).any(|(_, l)| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 3 && w[0] == "iface" && w[1] == iface && w[2] == "inet"
        })
    });
    if let Some((p, t)) = defined {
        // Replace the stanza: its iface line and the option lines under it.
        let mut out = String::new();
        let mut skipping = false;
        let mut done = false;
        for l in t.split_inclusive('\n') {
            let w: Vec<&str> = l.split_whitespace().collect();
            let is_ours = w.len() >= 3 && w[0] == "iface" && w[1] == iface && w[2] == "inet";
            if is_ours {
                if !done {
                    out.push_str(&body);
                    done = true;
                }
                skipping = true;
                continue;
            }
            if skipping && (stanza_start(l) || l.trim().is_empty()) {
                skipping = false;
            }
            if !skipping {
                out.push_str(l);
            }
        }
        let (p, bytes) = (p.clone(), text::edited(t, &out));
        plan.write(&p, Content::Bytes(bytes), Attrs::root(0o644))?;
    } else {
        let main = "/etc/network/interfaces";
        let cur = read_text(plan, main)?;
        match cur {
            Some(t) if netstack::sources_interfaces_d(&t) => {
                let d = "/etc/network/interfaces.d";
                plan.mkdir_p(d, Attrs::root(0o755))?;
                plan.write(
                    &format!("{d}/{iface}"),
                    Content::Bytes(body.into_bytes()),
                    Attrs::root(0o644),
                )?;
            }
            cur => {
                let old = cur.unwrap_or_default();
                let mut t = if old.is_empty() {
                    "auto lo\niface lo inet loopback\n".to_string()
                } else {
                    old.clone()
                };
                if !t.is_empty() && !t.ends_with('\n') {
                    t.push('\n');
                }
                t.push('\n');
                t.push_str(&body);
                plan.mkdir_p("/etc/network", Attrs::root(0o755))?;
                plan.write(
                    main,
                    Content::Bytes(text::edited(&old, &t)),
                    Attrs::root(0o644),
                )?;
            }
        }
    }
    if enable {
        if uses_systemd(plan)? {
            enable_unit(plan, "networking.service", "multi-user.target.wants")?;
        } else if plan.meta("/etc/init.d/networking", true)?.is_some() {
            plan.mkdir_p("/etc/rcS.d", Attrs::root(0o755))?;
            plan.symlink("../init.d/networking", "/etc/rcS.d/S01networking", 0, 0)?;
        }
    }
    Ok(())
}

/// systemd-networkd: /etc/systemd/network/10-IFACE.network matching
/// `Name=IFACE` (or the image's own file for IFACE in /etc, when it comes
/// first), and the service enabled when nothing else brings the network up.
fn networkd(plan: &mut Plan, iface: &str, cfg: &NetConfig, enable: bool) -> Result<()> {
    let mut t =
        format!("# Written by ext3edit customize --network.\n[Match]\nName={iface}\n\n[Network]\n");
    match cfg {
        NetConfig::Dhcp => t.push_str("DHCP=ipv4\n"),
        NetConfig::Static {
            addr,
            prefix,
            gw,
            dns,
        } => {
            t.push_str(&format!("Address={addr}/{prefix}\n"));
            if let Some(g) = gw {
                t.push_str(&format!("Gateway={g}\n"));
            }
            for d in dns {
                t.push_str(&format!("DNS={d}\n"));
            }
        }
    }
    let d = "/etc/systemd/network";
    let ours = format!("{d}/10-{iface}.network");
    let files = netstack::network_files(plan)?;
    let path = match netstack::networkd_iface(&files, iface) {
        Some((p, _)) if p.starts_with(d) && p < ours => p,
        _ => ours,
    };
    plan.mkdir_p(d, Attrs::root(0o755))?;
    plan.write(&path, Content::Bytes(t.into_bytes()), Attrs::root(0o644))?;
    if enable {
        enable_unit(plan, "systemd-networkd.service", "multi-user.target.wants")?;
        enable_unit(plan, "systemd-networkd.socket", "sockets.target.wants")?;
    }
    Ok(())
}

/// NetworkManager: a keyfile for IFACE (the image's own one for IFACE
/// where it has one), mode 0600 as NetworkManager demands.
fn network_manager(plan: &mut Plan, iface: &str, cfg: &NetConfig, enable: bool) -> Result<()> {
    let mut t = format!(
        "# Written by ext3edit customize --network.\n[connection]\nid={iface}\ntype=ethernet\ninterface-name={iface}\nautoconnect=true\n\n[ipv4]\n"
    );
    match cfg {
        NetConfig::Dhcp => t.push_str("method=auto\n"),
        NetConfig::Static {
            addr,
            prefix,
            gw,
            dns,
        } => {
            t.push_str("method=manual\n");
            match gw {
                Some(g) => t.push_str(&format!("address1={addr}/{prefix},{g}\n")),
                None => t.push_str(&format!("address1={addr}/{prefix}\n")),
            }
            if !dns.is_empty() {
                let d: Vec<String> = dns.iter().map(|d| format!("{d};")).collect();
                t.push_str(&format!("dns={}\n", d.concat()));
            }
        }
    }
    t.push_str("\n[ipv6]\nmethod=auto\n");
    let d = "/etc/NetworkManager/system-connections";
    let path = match netstack::nm_iface(plan, iface)? {
        Some((p, _)) => p,
        None => format!("{d}/{iface}.nmconnection"),
    };
    plan.mkdir_p(d, Attrs::root(0o755))?;
    plan.write(&path, Content::Bytes(t.into_bytes()), Attrs::root(0o600))?;
    if enable && uses_systemd(plan)? {
        enable_unit(plan, "NetworkManager.service", "multi-user.target.wants")?;
    }
    Ok(())
}

/// `--hostname NAME`: HOSTNAME in /etc/sysconfig/network, the name on the
/// 127.0.0.1 line of /etc/hosts, and /etc/hostname where the image has one.
pub fn hostname(plan: &mut Plan, name: &str) -> Result<()> {
    plan.mkdir_p("/etc/sysconfig", Attrs::root(0o755))?;
    let net = "/etc/sysconfig/network";
    let cur = read_text(plan, net)?;
    let mut set = vec![("HOSTNAME", Some(name.to_string()))];
    if cur.is_none() {
        set.insert(0, ("NETWORKING", Some("yes".to_string())));
    }
    let text = set_vars(cur.as_deref().unwrap_or(""), &set);
    plan.write(
        net,
        Content::Bytes(text::edited(cur.as_deref().unwrap_or(""), &text)),
        Attrs::root(0o644),
    )?;

    // The names the image had: they leave /etc/hosts with the change.
    let mut old: Vec<String> = Vec::new();
    let had = cur.as_deref().unwrap_or("").lines().find_map(|l| {
        let v = l.trim().strip_prefix("HOSTNAME=")?;
        Some(v.trim_matches(|c| c == '"' || c == '\'').to_string())
    });
    old.extend(had);
    if let Some(h) = read_text(plan, "/etc/hostname")? {
        old.extend(h.split_whitespace().next().map(String::from));
    }
    let hosts = read_text(plan, "/etc/hosts")?.unwrap_or_default();
    // Debian keeps the host's own name on 127.0.1.1, localhost alone on
    // 127.0.0.1 (its installer writes it so, and tools rely on it).
    let debian = plan.meta("/etc/debian_version", true)?.is_some()
        || hosts
            .lines()
            .any(|l| l.split_whitespace().next() == Some("127.0.1.1"));
    let t = if debian {
        update_hosts_debian(&hosts, &old, name)
    } else {
        update_hosts(&hosts, &old, name)
    };
    plan.write(
        "/etc/hosts",
        Content::Bytes(text::edited(&hosts, &t)),
        Attrs::root(0o644),
    )?;
    if plan.meta("/etc/hostname", true)?.is_some() {
        plan.write(
            "/etc/hostname",
            Content::Bytes(format!("{name}\n").into_bytes()),
            Attrs::root(0o644),
        )?;
    }
    Ok(())
}

/// /etc/hosts with `name` (and its first label) on the 127.0.0.1 line,
/// and on a 127.0.1.1 line (Debian's place for the host's own name) where
/// one names an old host name; the names in `old` (and their first
/// labels) are taken off both lines, other names and lines stay.
pub fn update_hosts(hosts: &str, old: &[String], name: &str) -> String {
    let short = name.split('.').next().unwrap_or(name);
    let new: Vec<&str> = if short != name {
        vec![name, short]
    } else {
        vec![name]
    };
    let mut gone: Vec<&str> = Vec::new();
    for o in old {
        for n in [o.as_str(), o.split('.').next().unwrap_or(o)] {
            if !n.is_empty() && !n.starts_with("localhost") && !new.contains(&n) {
                gone.push(n);
            }
        }
    }
    let addr_of = |l: &str| {
        l.split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .map(String::from)
    };
    let mut lines: Vec<String> = hosts.lines().map(String::from).collect();
    let mut loopback = false;
    lines.retain_mut(|l| {
        let addr = addr_of(l);
        let own = addr.as_deref() == Some("127.0.1.1");
        if addr.as_deref() != Some("127.0.0.1") && !own {
            return true;
        }
        let (body, comment) = match l.split_once('#') {
            Some((b, c)) => (b.to_string(), format!(" #{c}")),
            None => (l.clone(), String::new()),
        };
        let mut words: Vec<&str> = body.split_whitespace().collect();
        let addr = words.remove(0);
        let before = words.len();
        words.retain(|w| !gone.contains(w));
        let main = addr == "127.0.0.1" && !loopback;
        if main || (own && words.len() < before) {
            for n in new.iter().rev() {
                if !words.contains(n) {
                    words.insert(0, n);
                }
            }
        }
        if main {
            loopback = true;
            if !words.contains(&"localhost") {
                words.push("localhost");
            }
        }
        if words.is_empty() {
            return false;
        }
        *l = format!("{addr}   {}{comment}", words.join(" "));
        true
    });
    if !loopback {
        let mut words = new.clone();
        for w in ["localhost", "localhost.localdomain"] {
            if !words.contains(&w) {
                words.push(w);
            }
        }
        lines.insert(0, format!("127.0.0.1   {}", words.join(" ")));
    }
    let mut t = lines.join("\n");
    t.push('\n');
    t
}

/// /etc/hosts as Debian has it: `127.0.0.1 localhost`, and `name` (and
/// its first label) on the first 127.0.1.1 line, made after the
/// 127.0.0.1 line when missing; the names in `old` (and the new ones)
/// are taken off the other loopback lines, everything else stays. An
/// empty file gets Debian's IPv6 lines too.
pub fn update_hosts_debian(hosts: &str, old: &[String], name: &str) -> String {
    let short = name.split('.').next().unwrap_or(name);
    let mut new: Vec<&str> = vec![name];
    if short != name {
        new.push(short);
    }
    let mut gone: Vec<&str> = new.clone();
    for o in old {
        for n in [o.as_str(), o.split('.').next().unwrap_or(o)] {
            if !n.is_empty() && !n.starts_with("localhost") {
                gone.push(n);
            }
        }
    }
    let mut lines: Vec<String> = hosts.lines().map(String::from).collect();
    let (mut lo, mut own) = (None, false);
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].clone();
        let (body, comment) = match l.split_once('#') {
            Some((b, c)) => (b.to_string(), format!(" #{c}")),
            None => (l.clone(), String::new()),
        };
        let mut words: Vec<&str> = body.split_whitespace().collect();
        let addr = words.first().copied().unwrap_or("");
        if addr != "127.0.0.1" && addr != "127.0.1.1" {
            i += 1;
            continue;
        }
        words.remove(0);
        words.retain(|w| !gone.contains(w));
        if addr == "127.0.0.1" && lo.is_none() {
            lo = Some(i);
            if !words.contains(&"localhost") {
                words.insert(0, "localhost");
            }
        }
        if addr == "127.0.1.1" && !own {
            own = true;
            for n in new.iter().rev() {
                words.insert(0, n);
            }
        }
        if words.is_empty() {
            lines.remove(i);
            continue;
        }
        lines[i] = format!("{addr}\t{}{comment}", words.join(" "));
        i += 1;
    }
    let lo = match lo {
        Some(i) => i,
        None => {
            lines.insert(0, "127.0.0.1\tlocalhost".to_string());
            0
        }
    };
    if !own {
        lines.insert(lo + 1, format!("127.0.1.1\t{}", new.join(" ")));
    }
    if hosts.trim().is_empty() {
        lines.push(String::new());
        lines.push("# The following lines are desirable for IPv6 capable hosts".into());
        lines.push("::1     localhost ip6-localhost ip6-loopback".into());
        lines.push("ff02::1 ip6-allnodes".into());
        lines.push("ff02::2 ip6-allrouters".into());
    }
    let mut t = lines.join("\n");
    t.push('\n');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_the_host_name() {
        // A first name, on an image without one.
        assert_eq!(
            update_hosts("", &[], "vm1.example.org"),
            "127.0.0.1   vm1.example.org vm1 localhost localhost.localdomain\n"
        );
        // A second name replaces the first; other names and lines stay.
        let t = "127.0.0.1   vm1.example.org vm1 localhost # here\n::1 localhost\n10.0.0.2 db\n";
        assert_eq!(
            update_hosts(t, &["vm1.example.org".into()], "vm2.example.org"),
            "127.0.0.1   vm2.example.org vm2 localhost # here\n::1 localhost\n10.0.0.2 db\n"
        );
        // Debian: the host's own name on 127.0.1.1 moves too.
        let t = "127.0.0.1\tlocalhost\n127.0.1.1\told\n";
        assert_eq!(
            update_hosts(t, &["old".into()], "new.example.org"),
            "127.0.0.1   new.example.org new localhost\n127.0.1.1   new.example.org new\n"
        );
        // The same name again changes nothing more.
        let once = update_hosts("", &[], "a.b");
        assert_eq!(update_hosts(&once, &["a.b".into()], "a.b"), once);
    }

    #[test]
    fn debian_hosts_keep_the_name_on_127_0_1_1() {
        let t = update_hosts_debian("", &[], "vm1.example.org");
        assert!(
            t.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tvm1.example.org vm1\n"),
            "{t}"
        );
        assert!(t.contains("::1     localhost ip6-localhost"), "{t}");
        // An old name moves off both lines; other lines stay.
        let t = "127.0.0.1 localhost old\n127.0.1.1\told.lan old # mine\n10.0.0.2 db\n";
        assert_eq!(
            update_hosts_debian(t, &["old.lan".into()], "new"),
            "127.0.0.1\tlocalhost\n127.0.1.1\tnew # mine\n10.0.0.2 db\n"
        );
        // Idempotent.
        let once = update_hosts_debian("", &[], "a.b");
        assert_eq!(update_hosts_debian(&once, &["a.b".into()], "a.b"), once);
    }

    #[test]
    fn set_vars_keeps_other_lines() {
        let t = "# eth0\nDEVICE=eth0\nHWADDR=00:11\nBOOTPROTO=static\nIPADDR=1.2.3.4\n";
        let o = set_vars(
            t,
            &[
                ("BOOTPROTO", Some("dhcp".into())),
                ("IPADDR", None),
                ("ONBOOT", Some("yes".into())),
            ],
        );
        assert_eq!(
            o,
            "# eth0\nDEVICE=eth0\nHWADDR=00:11\nBOOTPROTO=dhcp\nONBOOT=yes\n"
        );
    }

    #[test]
    fn networks_parse() {
        let (i, c) = parse_network("eth1=static:10.1.2.3/24,gw=10.1.2.1,dns=8.8.8.8").unwrap();
        assert_eq!(i, "eth1");
        assert_eq!(
            c,
            NetConfig::Static {
                addr: "10.1.2.3".parse().unwrap(),
                prefix: 24,
                gw: Some("10.1.2.1".parse().unwrap()),
                dns: vec!["8.8.8.8".parse().unwrap()]
            }
        );
        assert_eq!(netmask(24).to_string(), "255.255.255.0");
        assert!(parse_network("eth0=static:10.0.0.1").is_err());
        assert!(check_hostname("my host").is_err());
        assert!(check_hostname("vm-1.example.org").is_ok());
    }
}
