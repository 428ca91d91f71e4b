//! Which distribution the image is: /etc/redhat-release (RHEL, CentOS,
//! Fedora), /etc/os-release (everything recent), /etc/debian_version.

use crate::customize::text::{parse_vars, read_text, var, View};
use crate::error::Result;

/// The distribution as the image names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distro {
    /// A readable name, e.g. `CentOS release 5 (Final)`.
    pub name: String,
    /// The file it came from.
    pub source: String,
    /// True for the Red Hat family (RHEL, CentOS, Fedora, Scientific,
    /// Rocky, Alma...), for which the requirements are written.
    pub redhat_family: bool,
}

/// Read the distribution's name; `None` when the image does not say.
pub fn detect(v: &dyn View) -> Result<Option<Distro>> {
    let text = |p| {
        read_text(v, p).or_else(|e| match e {
            crate::Error::Invalid(_) => Ok(None),
            e => Err(e),
        })
    };
    if let Some(t) = text("/etc/redhat-release")? {
        if let Some(l) = t.lines().map(str::trim).find(|l| !l.is_empty()) {
            return Ok(Some(Distro {
                name: l.to_string(),
                source: "/etc/redhat-release".into(),
                redhat_family: true,
            }));
        }
    }
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Some(t) = text(p)? {
            let (vars, _) = parse_vars(&t);
            let name = var(&vars, "PRETTY_NAME")
                .or_else(|| var(&vars, "NAME"))
                .map(|v| v.value.clone());
            if let Some(name) = name {
                let ids = [var(&vars, "ID"), var(&vars, "ID_LIKE")]
                    .into_iter()
                    .flatten()
                    .map(|v| v.value.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                let redhat_family = ["rhel", "fedora", "centos"]
                    .iter()
                    .any(|k| ids.split_whitespace().any(|w| w == *k));
                return Ok(Some(Distro {
                    name,
                    source: p.into(),
                    redhat_family,
                }));
            }
        }
    }
    if let Some(t) = text("/etc/debian_version")? {
        return Ok(Some(Distro {
            name: format!("Debian {}", t.trim()),
            source: "/etc/debian_version".into(),
            redhat_family: false,
        }));
    }
    Ok(None)
}
