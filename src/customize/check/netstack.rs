//! Which network stack the image brings its interfaces up with, and what
//! that stack reads:
//!
//! - RHEL's network-scripts (`/etc/rc.d/init.d/network`, `ifup-eth`): the
//!   ifcfg files of /etc/sysconfig/network-scripts;
//! - ifupdown (Debian's `networking` service): `iface NAME inet METHOD`
//!   stanzas in /etc/network/interfaces and the files it `source`s, an
//!   `auto NAME` (or `allow-hotplug NAME`) line bringing NAME up at boot;
//! - systemd-networkd: `*.network` files in /etc/systemd/network (which
//!   hide a file of the same name in /usr/lib/systemd/network), the first
//!   one in name order whose `[Match]` fits the interface configures it;
//! - NetworkManager: keyfiles in /etc/NetworkManager/system-connections
//!   (on the Red Hat family it reads the ifcfg files instead).
//!
//! "Installed" means the stack's program is in the image; "enabled" that
//! the image's init starts it: a systemd unit linked into a target's
//! `.wants` directory (in /etc or the vendor's unit directory), or a SysV
//! `S` link in rcS.d or the default runlevel.

use super::ssh::{default_runlevel, rc_dirs, uses_systemd};
use crate::customize::text::{content_lines, read_text, View};
use crate::error::Result;
use crate::layout::FileType;

/// A network stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// RHEL's initscripts: ifcfg files.
    NetworkScripts,
    /// Debian's ifupdown: /etc/network/interfaces.
    Ifupdown,
    /// systemd-networkd: .network files.
    Networkd,
    /// NetworkManager: keyfiles (ifcfg files on the Red Hat family).
    NetworkManager,
}

impl Stack {
    /// Its usual name.
    pub fn name(self) -> &'static str {
        match self {
            Stack::NetworkScripts => "network-scripts",
            Stack::Ifupdown => "ifupdown",
            Stack::Networkd => "systemd-networkd",
            Stack::NetworkManager => "NetworkManager",
        }
    }
}

/// A stack found in the image.
#[derive(Clone, Debug)]
pub struct Found {
    /// Which one.
    pub stack: Stack,
    /// The file that shows it is installed.
    pub installed: String,
    /// The link that starts it at boot, if one does.
    pub enabled: Option<String>,
}

/// Where systemd's vendor units are.
pub const UNIT_DIRS: [&str; 2] = ["/usr/lib/systemd/system", "/lib/systemd/system"];
/// The targets whose `.wants` links start a network stack.
const TARGETS: [&str; 5] = [
    "multi-user.target",
    "network-online.target",
    "network.target",
    "sysinit.target",
    "graphical.target",
];

fn first_present(v: &dyn View, paths: &[&str]) -> Result<Option<String>> {
    for p in paths {
        if v.meta(p, true)?.is_some() {
            return Ok(Some(p.to_string()));
        }
    }
    Ok(None)
}

/// The vendor unit file `unit` (`serial-getty@.service`), if the image has it.
pub fn unit_file(v: &dyn View, unit: &str) -> Result<Option<String>> {
    for d in UNIT_DIRS {
        let p = format!("{d}/{unit}");
        if v.meta(&p, true)?.is_some_and(|m| m.is_reg()) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// The `.wants` link that enables the systemd unit `unit`, unless the
/// unit is masked (linked to /dev/null in /etc/systemd/system).
pub fn unit_enabled(v: &dyn View, unit: &str) -> Result<Option<String>> {
    let masked = format!("/etc/systemd/system/{unit}");
    if v.read_link(&masked)?.as_deref() == Some("/dev/null") {
        return Ok(None);
    }
    for base in std::iter::once("/etc/systemd/system").chain(UNIT_DIRS) {
        for t in TARGETS {
            let p = format!("{base}/{t}.wants/{unit}");
            if v.meta(&p, false)?.is_some() {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

/// The SysV `S` link (in rcS.d or the default runlevel's directory) to
/// the init script named `script`.
fn sysv_enabled(v: &dyn View, script: &str) -> Result<Option<String>> {
    let (level, _) = default_runlevel(v)?;
    let mut dirs = rc_dirs(v, 'S')?;
    dirs.extend(rc_dirs(v, level)?);
    for d in dirs {
        for e in v.list_dir(&d)?.unwrap_or_default() {
            if !e.name.starts_with('S') || e.ftype != FileType::Symlink {
                continue;
            }
            let p = format!("{d}/{}", e.name);
            let t = v.read_link(&p)?.unwrap_or_default();
            if t.rsplit('/').next() == Some(script) {
                return Ok(Some(format!("{p} -> {t}")));
            }
        }
    }
    Ok(None)
}

fn enabled(v: &dyn View, systemd: bool, unit: &str, script: &str) -> Result<Option<String>> {
    if systemd {
        if let Some(l) = unit_enabled(v, unit)? {
            return Ok(Some(l));
        }
        // A SysV script without a native unit runs through systemd's
        // sysv generator.
        if unit_file(v, unit)?.is_some() {
            return Ok(None);
        }
    }
    sysv_enabled(v, script)
}

/// The stacks installed in the image, in the order above.
pub fn detect(v: &dyn View) -> Result<Vec<Found>> {
    let systemd = uses_systemd(v)?;
    let mut out = Vec::new();
    if let Some(p) = first_present(
        v,
        &[
            "/etc/sysconfig/network-scripts/ifup-eth",
            "/etc/rc.d/init.d/network",
        ],
    )? {
        out.push(Found {
            stack: Stack::NetworkScripts,
            installed: p,
            enabled: enabled(v, systemd, "network.service", "network")?,
        });
    }
    let ifup = first_present(v, &["/sbin/ifup", "/usr/sbin/ifup"])?;
    let networking = first_present(
        v,
        &[
            "/etc/init.d/networking",
            "/usr/lib/systemd/system/networking.service",
            "/lib/systemd/system/networking.service",
        ],
    )?;
    if let (Some(p), Some(_)) = (ifup, networking) {
        out.push(Found {
            stack: Stack::Ifupdown,
            installed: p,
            enabled: enabled(v, systemd, "networking.service", "networking")?,
        });
    }
    if let Some(p) = first_present(
        v,
        &[
            "/usr/lib/systemd/systemd-networkd",
            "/lib/systemd/systemd-networkd",
        ],
    )? {
        let en = if systemd {
            unit_enabled(v, "systemd-networkd.service")?
        } else {
            None
        };
        out.push(Found {
            stack: Stack::Networkd,
            installed: p,
            enabled: en,
        });
    }
    if let Some(p) = first_present(v, &["/usr/sbin/NetworkManager", "/usr/bin/NetworkManager"])? {
        let mut en = enabled(v, systemd, "NetworkManager.service", "NetworkManager")?;
        if en.is_none() && !systemd {
            en = sysv_enabled(v, "network-manager")?;
        }
        out.push(Found {
            stack: Stack::NetworkManager,
            installed: p,
            enabled: en,
        });
    }
    Ok(out)
}

/// The stacks whose files `--network` writes besides the ifcfg files:
/// every enabled one (NetworkManager only off the Red Hat family, where
/// it reads ifcfg files), and, when no stack is enabled at all, the one
/// to enable (ifupdown, else systemd-networkd on a systemd image, else
/// NetworkManager): `(stack, enable it)`.
pub fn targets(v: &dyn View, redhat: bool) -> Result<Vec<(Stack, bool)>> {
    let found = detect(v)?;
    let mut out: Vec<(Stack, bool)> = found
        .iter()
        .filter(|f| f.enabled.is_some())
        .filter(|f| f.stack != Stack::NetworkScripts)
        .filter(|f| !(redhat && f.stack == Stack::NetworkManager))
        .map(|f| (f.stack, false))
        .collect();
    let any_enabled = found.iter().any(|f| f.enabled.is_some());
    if !any_enabled {
        let systemd = uses_systemd(v)?;
        let pick = [Stack::Ifupdown, Stack::Networkd, Stack::NetworkManager]
            .into_iter()
            .filter(|s| *s != Stack::Networkd || systemd)
            .filter(|s| !(redhat && *s == Stack::NetworkManager))
            .find(|s| found.iter().any(|f| f.stack == *s));
        out.extend(pick.map(|s| (s, true)));
    }
    Ok(out)
}

/// The ifupdown files: /etc/network/interfaces and what it sources
/// (`source PATTERN`, `source-directory DIR`), one level deep, with their
/// text.
pub fn interfaces_files(v: &dyn View) -> Result<Vec<(String, String)>> {
    let main = "/etc/network/interfaces";
    let Some(t) = read_text(v, main).ok().flatten() else {
        return Ok(Vec::new());
    };
    let mut out = vec![(main.to_string(), t.clone())];
    for p in sourced(v, &t)? {
        if let Some(s) = read_text(v, &p).ok().flatten() {
            if !out.iter().any(|(q, _)| q == &p) {
                out.push((p, s));
            }
        }
    }
    Ok(out)
}

/// The files a text of /etc/network/interfaces sources.
fn sourced(v: &dyn View, t: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (_, l) in content_lines(t) {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() != 2 {
            continue;
        }
        let abs = |p: &str| {
            if p.starts_with('/') {
                p.to_string()
            } else {
                format!("/etc/network/{p}")
            }
        };
        match w[0] {
            "source" => out.extend(super::ssh::expand_glob(v, &abs(w[1]))?),
            "source-directory" | "source-dir" => {
                let d = abs(w[1]).trim_end_matches('/').to_string();
                for e in v.list_dir(&d)?.unwrap_or_default() {
                    // run-parts names: letters, digits, _ and -.
                    if e.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        out.push(format!("{d}/{}", e.name));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// True when a text of /etc/network/interfaces sources the files of
/// /etc/network/interfaces.d.
pub fn sources_interfaces_d(t: &str) -> bool {
    content_lines(t).any(|(_, l)| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.len() == 2
            && match w[0] {
                "source" => {
                    let p = w[1].trim_start_matches("/etc/network/");
                    p == "interfaces.d/*"
                }
                "source-directory" | "source-dir" => {
                    w[1].trim_start_matches("/etc/network/")
                        .trim_end_matches('/')
                        == "interfaces.d"
                }
                _ => false,
            }
    })
}

/// What ifupdown does with `iface`: the `iface IFACE inet METHOD` stanza
/// ("file:line: iface ..."), and the `auto`/`allow-hotplug` line that
/// brings it up at boot.
pub fn ifupdown_iface(
    files: &[(String, String)],
    iface: &str,
) -> (Option<(String, String)>, Option<String>) {
    let mut stanza = None;
    let mut auto = None;
    for (p, t) in files {
        for (n, l) in content_lines(t) {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.first().copied() {
                Some("iface")
                    if w.get(1) == Some(&iface)
                        && w.get(2) == Some(&"inet")
                        && stanza.is_none() =>
                {
                    let method = w.get(3).copied().unwrap_or("").to_string();
                    stanza = Some((format!("{p}:{n}: {l}"), method));
                }
                Some("auto") | Some("allow-auto") | Some("allow-hotplug")
                    if w[1..].contains(&iface) && auto.is_none() =>
                {
                    auto = Some(format!("{p}:{n}: {l}"));
                }
                _ => {}
            }
        }
    }
    (stanza, auto)
}

/// One section's `Key=Value` lines of a systemd-style ini file.
pub fn ini_values<'a>(t: &'a str, section: &str, key: &str) -> Vec<&'a str> {
    let mut cur = "";
    let mut out = Vec::new();
    for l in t.lines() {
        let l = l.trim();
        if l.starts_with('#') || l.starts_with(';') || l.is_empty() {
            continue;
        }
        if l.starts_with('[') && l.ends_with(']') {
            cur = &l[1..l.len() - 1];
            continue;
        }
        if cur == section {
            if let Some((k, val)) = l.split_once('=') {
                if k.trim() == key {
                    out.push(val.trim());
                }
            }
        }
    }
    out
}

/// The .network files systemd-networkd reads, in the order it tries them
/// (by file name; /etc hides a vendor file of the same name): (path, text).
pub fn network_files(v: &dyn View) -> Result<Vec<(String, String)>> {
    let mut by_name: Vec<(String, String)> = Vec::new();
    for d in [
        "/etc/systemd/network",
        "/usr/lib/systemd/network",
        "/lib/systemd/network",
    ] {
        for e in v.list_dir(d)?.unwrap_or_default() {
            if !e.name.ends_with(".network") || by_name.iter().any(|(n, _)| n == &e.name) {
                continue;
            }
            by_name.push((e.name.clone(), format!("{d}/{}", e.name)));
        }
    }
    by_name.sort();
    let mut out = Vec::new();
    for (_, p) in by_name {
        // A file linked to /dev/null (masked) is not read.
        if let Some(t) = read_text(v, &p).ok().flatten() {
            out.push((p, t));
        }
    }
    Ok(out)
}

/// The .network file that configures `iface`, and whether it gives it an
/// address (DHCP or a static Address). A file whose `[Match]` tests more
/// than the name (Type, Driver, Virtualization...) is passed over: the
/// check cannot tell whether it matches.
pub fn networkd_iface(files: &[(String, String)], iface: &str) -> Option<(String, bool)> {
    for (p, t) in files {
        let names: Vec<&str> = ini_values(t, "Match", "Name");
        if names.is_empty() {
            continue;
        }
        let other = t
            .lines()
            .map(str::trim)
            .scan("", |sec, l| {
                if l.starts_with('[') {
                    *sec = if l == "[Match]" { "m" } else { "" };
                    return Some(false);
                }
                Some(
                    *sec == "m"
                        && !l.starts_with('#')
                        && l.split_once('=').is_some_and(|(k, _)| k.trim() != "Name"),
                )
            })
            .any(|b| b);
        if other {
            continue;
        }
        // Every Name= line must match (they are ANDed), each a list of globs.
        let ok = names.iter().all(|n| {
            let (neg, list) = match n.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, *n),
            };
            let any = list
                .split_whitespace()
                .any(|g| super::ssh::glob_match(g.as_bytes(), iface.as_bytes()));
            any != neg
        });
        if !ok {
            continue;
        }
        let dhcp = ini_values(t, "Network", "DHCP")
            .iter()
            .any(|d| matches!(*d, "yes" | "true" | "ipv4" | "1" | "on"));
        let addr = !ini_values(t, "Network", "Address").is_empty()
            || !ini_values(t, "Address", "Address").is_empty();
        return Some((p.clone(), dhcp || addr));
    }
    None
}

/// The NetworkManager keyfile that names `iface` (`interface-name=`),
/// and whether it connects at boot (`autoconnect` not false).
pub fn nm_iface(v: &dyn View, iface: &str) -> Result<Option<(String, bool)>> {
    let d = "/etc/NetworkManager/system-connections";
    for e in v.list_dir(d)?.unwrap_or_default() {
        let p = format!("{d}/{}", e.name);
        let Some(t) = read_text(v, &p).ok().flatten() else {
            continue;
        };
        if ini_values(&t, "connection", "interface-name").contains(&iface) {
            let auto = !ini_values(&t, "connection", "autoconnect")
                .iter()
                .any(|a| matches!(*a, "false" | "no" | "0"));
            return Ok(Some((p, auto)));
        }
    }
    Ok(None)
}

/// True when NetworkManager's automatic wired connection (DHCP on any
/// Ethernet device without a profile) is not turned off by
/// `no-auto-default` in NetworkManager.conf.
pub fn nm_auto_default(v: &dyn View) -> Result<bool> {
    let t = read_text(v, "/etc/NetworkManager/NetworkManager.conf")
        .ok()
        .flatten()
        .unwrap_or_default();
    Ok(!ini_values(&t, "main", "no-auto-default")
        .iter()
        .any(|n| n.split([',', ';']).any(|w| w.trim() == "*")))
}

/// How the image names its network interfaces: `None` when udev's
/// predictable names (ens3, enp0s3) do not apply (no udev, or the image
/// turns them off), else the evidence that they may.
pub fn predictable_names(v: &dyn View) -> Result<Option<String>> {
    let Some(rule) = first_present(
        v,
        &[
            "/usr/lib/udev/rules.d/80-net-setup-link.rules",
            "/lib/udev/rules.d/80-net-setup-link.rules",
        ],
    )?
    else {
        return Ok(None);
    };
    // Turned off: the rule masked by /etc, or a .link of the admin's.
    let mask = "/etc/udev/rules.d/80-net-setup-link.rules";
    if v.meta(mask, false)?.is_some() {
        return Ok(None);
    }
    for e in v.list_dir("/etc/systemd/network")?.unwrap_or_default() {
        if e.name.ends_with(".link") {
            return Ok(None);
        }
    }
    if let Some(t) = read_text(v, "/etc/default/grub").ok().flatten() {
        if t.contains("net.ifnames=0") {
            return Ok(None);
        }
    }
    Ok(Some(rule))
}
