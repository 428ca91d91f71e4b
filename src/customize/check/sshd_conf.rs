//! sshd_config read the way the image's OpenSSH reads it, so that `check`
//! can say when sshd would refuse to start and `--sshd-set` can refuse a
//! setting that would stop it.
//!
//! The format: one `Keyword arguments` per line (the keyword ends at white
//! space or one `=`; keywords are case-insensitive; `#` starts a comment).
//! sshd takes the first value it reads for a keyword. A `Match` line opens
//! a block that lasts to the next `Match` or the end of the file; only
//! some keywords are allowed inside one. `Include` (OpenSSH 8.2 and later)
//! reads other files where it stands (relative names under /etc/ssh, the
//! last component may be a glob, a name that matches nothing is skipped),
//! at most 16 levels deep; an included file's `Match` ends with that file.
//!
//! What sshd does with a keyword depends on its version, which
//! [`detect_version`] reads from the image (the `OpenSSH_8.4p1` string in
//! the sshd binary, or dpkg's record of openssh-server): a keyword it does
//! not know, one of the checked keywords with a value it does not take, a
//! line without an argument, a keyword not allowed inside `Match`, or a
//! `Match` criterion it does not know is fatal ("Bad configuration
//! option"); a keyword it has retired ("deprecated", "unsupported") is
//! only logged. The keyword table below was written from the keywords
//! tables of servconf.c in every OpenSSH release from 3.0 to 10.3: when
//! each keyword appeared, since when it is allowed inside `Match`, since
//! when it is retired, and for the two that later disappeared (become
//! unknown again) the last release that knew them. When the version
//! cannot be told, a keyword any release knows is accepted. Distributions
//! patch sshd (RHEL backports `Match` to 4.3, Debian adds `DebianBanner`):
//! a keyword the release does not know is still taken when the binary's
//! own keyword table holds it (a NUL-ended lower-case string in its bytes).

use crate::customize::text::View;
use crate::error::{Error, Result};

/// An OpenSSH release, major and minor (8.4 for OpenSSH_8.4p1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct V(pub u8, pub u8);

impl std::fmt::Display for V {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// One keyword: its name as the manual spells it, the release that
/// brought it, the release since which it is allowed inside `Match`, the
/// release since which sshd only logs it (retired), and the last release
/// that knew it when later ones do not.
struct K(&'static str, V, Option<V>, Option<V>, Option<V>);

#[rustfmt::skip]
const KEYWORDS: &[K] = &[
    K("AcceptEnv", V(3, 9), Some(V(6, 1)), None, None),
    K("AddressFamily", V(4, 0), None, None, None),
    K("AFSTokenPassing", V(3, 0), None, None, None),
    K("AllowAgentForwarding", V(5, 1), Some(V(5, 1)), None, None),
    K("AllowGroups", V(3, 0), Some(V(6, 1)), None, None),
    K("AllowStreamLocalForwarding", V(6, 7), Some(V(6, 7)), None, None),
    K("AllowTcpForwarding", V(3, 0), Some(V(4, 4)), None, None),
    K("AllowUsers", V(3, 0), Some(V(6, 1)), None, None),
    K("AuthenticationMethods", V(6, 2), Some(V(6, 2)), None, None),
    K("AuthorizedKeysCommand", V(6, 2), Some(V(6, 2)), None, None),
    K("AuthorizedKeysCommandUser", V(6, 2), Some(V(6, 2)), None, None),
    K("AuthorizedKeysFile", V(3, 0), Some(V(5, 6)), None, None),
    K("AuthorizedKeysFile2", V(3, 0), Some(V(5, 6)), Some(V(5, 9)), None),
    K("AuthorizedPrincipalsCommand", V(6, 9), Some(V(6, 9)), None, None),
    K("AuthorizedPrincipalsCommandUser", V(6, 9), Some(V(6, 9)), None, None),
    K("AuthorizedPrincipalsFile", V(5, 6), Some(V(5, 6)), None, None),
    K("Banner", V(3, 0), Some(V(4, 6)), None, None),
    K("CASignatureAlgorithms", V(7, 9), Some(V(7, 9)), None, None),
    K("ChallengeResponseAuthentication", V(3, 0), Some(V(8, 7)), None, None),
    K("ChannelTimeout", V(9, 2), Some(V(9, 2)), None, None),
    K("CheckMail", V(3, 0), None, Some(V(3, 0)), None),
    K("ChrootDirectory", V(4, 9), Some(V(4, 9)), None, None),
    K("Ciphers", V(3, 0), None, None, None),
    K("ClientAliveCountMax", V(3, 0), Some(V(7, 4)), None, None),
    K("ClientAliveInterval", V(3, 0), Some(V(7, 4)), None, None),
    K("Compression", V(3, 3), None, None, None),
    K("DenyGroups", V(3, 0), Some(V(6, 1)), None, None),
    K("DenyUsers", V(3, 0), Some(V(6, 1)), None, None),
    K("DisableForwarding", V(7, 4), Some(V(7, 4)), None, None),
    K("DSAAuthentication", V(3, 0), None, None, None),
    K("ExposeAuthInfo", V(7, 6), Some(V(7, 6)), None, None),
    K("FingerprintHash", V(6, 8), None, None, None),
    K("ForceCommand", V(4, 4), Some(V(4, 4)), None, None),
    K("GatewayPorts", V(3, 0), Some(V(4, 4)), None, None),
    K("GSSAPIAuthentication", V(3, 7), Some(V(4, 6)), None, None),
    K("GSSAPICleanupCredentials", V(3, 8), None, None, None),
    K("GSSAPICleanupCreds", V(3, 7), None, None, Some(V(3, 7))),
    K("GSSAPIDelegateCredentials", V(10, 3), None, None, None),
    K("GSSAPIStrictAcceptorCheck", V(6, 9), None, None, None),
    K("HostbasedAcceptedAlgorithms", V(8, 5), Some(V(8, 5)), None, None),
    K("HostbasedAcceptedKeyTypes", V(6, 8), Some(V(6, 8)), None, None),
    K("HostbasedAuthentication", V(3, 0), Some(V(4, 6)), None, None),
    K("HostbasedUsesNameFromPacketOnly", V(3, 0), Some(V(5, 6)), None, None),
    K("HostCertificate", V(5, 4), None, None, None),
    K("HostDsaKey", V(3, 0), None, None, None),
    K("HostKey", V(3, 0), None, None, None),
    K("HostKeyAgent", V(6, 3), None, None, None),
    K("HostKeyAlgorithms", V(7, 0), None, None, None),
    K("IgnoreRhosts", V(3, 0), Some(V(8, 3)), None, None),
    K("IgnoreUserKnownHosts", V(3, 0), None, None, None),
    K("Include", V(8, 2), Some(V(8, 2)), None, None),
    K("IPQoS", V(5, 7), Some(V(5, 7)), None, None),
    K("KbdInteractiveAuthentication", V(3, 0), Some(V(4, 6)), None, None),
    K("KeepAlive", V(3, 0), None, None, None),
    K("KerberosAuthentication", V(3, 0), Some(V(4, 6)), None, None),
    K("KerberosGetAFSToken", V(3, 8), None, None, None),
    K("KerberosOrLocalPasswd", V(3, 0), None, None, None),
    K("KerberosTgtPassing", V(3, 0), None, None, None),
    K("KerberosTicketCleanup", V(3, 0), None, None, None),
    K("KexAlgorithms", V(5, 7), None, None, None),
    K("KeyRegenerationInterval", V(3, 0), None, Some(V(7, 4)), None),
    K("ListenAddress", V(3, 0), None, None, None),
    K("LoginGraceTime", V(3, 0), None, None, None),
    K("LogLevel", V(3, 0), Some(V(7, 6)), None, None),
    K("LogVerbose", V(8, 5), Some(V(8, 5)), None, None),
    K("MACs", V(3, 0), None, None, None),
    K("Match", V(4, 4), Some(V(4, 4)), None, None),
    K("MaxAuthTries", V(3, 9), Some(V(5, 1)), None, None),
    K("MaxSessions", V(5, 1), Some(V(5, 1)), None, None),
    K("MaxStartups", V(3, 0), None, None, None),
    K("ModuliFile", V(8, 6), None, None, None),
    K("PAMAuthenticationViaKbdInt", V(3, 7), None, Some(V(3, 7)), None),
    K("PAMServiceName", V(9, 8), Some(V(9, 8)), None, None),
    K("PasswordAuthentication", V(3, 0), Some(V(4, 6)), None, None),
    K("PermitEmptyPasswords", V(3, 0), Some(V(5, 2)), None, None),
    K("PermitListen", V(7, 8), Some(V(7, 8)), None, None),
    K("PermitOpen", V(4, 4), Some(V(4, 4)), None, None),
    K("PermitRootLogin", V(3, 0), Some(V(4, 9)), None, None),
    K("PermitTTY", V(6, 5), Some(V(6, 5)), None, None),
    K("PermitTunnel", V(4, 3), Some(V(5, 6)), None, None),
    K("PermitUserEnvironment", V(3, 5), None, None, None),
    K("PermitUserRC", V(6, 7), Some(V(6, 7)), None, None),
    K("PerSourceMaxStartups", V(8, 5), None, None, None),
    K("PerSourceNetBlockSize", V(8, 5), None, None, None),
    K("PerSourcePenalties", V(9, 8), None, None, None),
    K("PerSourcePenaltyExemptList", V(9, 8), None, None, None),
    K("PidFile", V(3, 0), None, None, None),
    K("Port", V(3, 0), None, None, None),
    K("PrintLastLog", V(3, 0), None, None, None),
    K("PrintMotd", V(3, 0), None, None, None),
    K("Protocol", V(3, 0), None, Some(V(7, 4)), None),
    K("PubkeyAcceptedAlgorithms", V(8, 5), Some(V(8, 5)), None, None),
    K("PubkeyAcceptedKeyTypes", V(6, 8), Some(V(6, 8)), None, None),
    K("PubkeyAuthentication", V(3, 0), Some(V(4, 6)), None, None),
    K("PubkeyAuthOptions", V(8, 2), Some(V(8, 2)), None, None),
    K("RDomain", V(7, 7), Some(V(7, 7)), None, None),
    K("RefuseConnection", V(9, 9), Some(V(9, 9)), None, None),
    K("RekeyLimit", V(6, 3), Some(V(6, 3)), None, None),
    K("RequiredRSASize", V(9, 1), Some(V(9, 1)), None, None),
    K("ReverseMappingCheck", V(3, 0), None, Some(V(3, 7)), None),
    K("RevokedKeys", V(5, 4), Some(V(5, 4)), None, None),
    K("RhostsAuthentication", V(3, 0), None, Some(V(3, 7)), None),
    K("RhostsRSAAuthentication", V(3, 0), Some(V(4, 6)), Some(V(7, 4)), None),
    K("RSAAuthentication", V(3, 0), Some(V(4, 6)), Some(V(7, 4)), None),
    K("SecurityKeyProvider", V(8, 2), None, None, None),
    K("ServerKeyBits", V(3, 0), None, Some(V(7, 4)), None),
    K("SetEnv", V(7, 8), Some(V(7, 8)), None, None),
    K("SKeyAuthentication", V(3, 0), Some(V(8, 7)), None, None),
    K("SshdAuthPath", V(10, 0), None, None, None),
    K("SshdSessionPath", V(9, 8), None, None, None),
    K("StreamLocalBindMask", V(6, 7), Some(V(6, 7)), None, None),
    K("StreamLocalBindUnlink", V(6, 7), Some(V(6, 7)), None, None),
    K("StrictModes", V(3, 0), None, None, None),
    K("Subsystem", V(3, 0), Some(V(9, 5)), None, None),
    K("SyslogFacility", V(3, 0), None, None, None),
    K("TCPKeepAlive", V(3, 8), None, None, None),
    K("TrustedUserCAKeys", V(5, 4), Some(V(5, 4)), None, None),
    K("UnusedConnectionTimeout", V(9, 2), Some(V(9, 2)), None, None),
    K("UseDNS", V(3, 7), None, None, None),
    K("UseLogin", V(3, 0), None, Some(V(7, 4)), None),
    K("UsePAM", V(3, 7), None, None, None),
    K("UsePrivilegeSeparation", V(3, 3), None, Some(V(7, 5)), None),
    K("VerifyReverseMapping", V(3, 1), None, Some(V(3, 7)), None),
    K("VersionAddendum", V(6, 1), None, None, None),
    K("X11DisplayOffset", V(3, 0), Some(V(4, 4)), None, None),
    K("X11Forwarding", V(3, 0), Some(V(4, 4)), None, None),
    K("X11UseLocalhost", V(3, 1), Some(V(4, 4)), None, None),
    K("XAuthLocation", V(3, 0), None, None, None),
    K("ZeroKnowledgePasswordAuthentication", V(5, 2), Some(V(5, 2)), None, Some(V(6, 5))),
];

/// The image's OpenSSH release, with where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Major and minor.
    pub v: V,
    /// As written (`OpenSSH_8.4p1`, `1:9.2p1-2+deb12u3`).
    pub text: String,
    /// Where: `/usr/sbin/sshd` or `/var/lib/dpkg/status:120`.
    pub from: String,
    /// Keywords newer than the release that the binary's own keyword
    /// table holds all the same (distributions backport them: RHEL 5's
    /// OpenSSH 4.3 knows `Match`).
    pub backported: Vec<&'static str>,
    /// The sshd binary's bytes, to look up keywords a distribution's
    /// patches add (Debian's DebianBanner, GSSAPIKeyExchange): sshd's
    /// keyword table holds each as a NUL-ended lower-case string.
    pub binary: Binary,
}

/// The bytes of an sshd binary (shown by size only).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Binary(pub Option<std::sync::Arc<Vec<u8>>>);

impl std::fmt::Debug for Binary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(b) => write!(f, "Binary({} bytes)", b.len()),
            None => write!(f, "Binary(none)"),
        }
    }
}

impl Binary {
    /// True when the binary holds `word` in lower case as a whole string.
    fn has_keyword(&self, word: &str) -> bool {
        let Some(b) = &self.0 else {
            return false;
        };
        let w = format!("\0{}\0", word.to_ascii_lowercase());
        memchr::memmem::find(b, w.as_bytes()).is_some()
    }
}

impl Version {
    /// [`keyword`] for this binary: a backported keyword is known.
    pub fn keyword(&self, word: &str) -> Kw {
        if self.backported.iter().any(|k| k.eq_ignore_ascii_case(word)) {
            return keyword(word, None);
        }
        match keyword(word, Some(self.v)) {
            Kw::Unknown(_)
                if word.chars().all(|c| c.is_ascii_alphanumeric())
                    && self.binary.has_keyword(word) =>
            {
                Kw::Patched
            }
            k => k,
        }
    }
}

/// [`keyword`] for `ver` when known, else for any release.
pub fn keyword_for(word: &str, ver: Option<&Version>) -> Kw {
    match ver {
        Some(v) => v.keyword(word),
        None => keyword(word, None),
    }
}

/// `X.Y` at the start of `s` (the rest may follow).
fn major_minor(s: &str) -> Option<V> {
    let (a, rest) = s.split_once('.')?;
    let b: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some(V(a.parse().ok()?, b.parse().ok()?))
}

/// The OpenSSH release of the image's sshd: the portable release string
/// (`OpenSSH_8.4p1`) in the binary's bytes, else the openssh-server
/// version in dpkg's status file. `None` when neither tells.
pub fn detect_version(v: &dyn View) -> Result<Option<Version>> {
    for p in ["/usr/sbin/sshd", "/sbin/sshd"] {
        // A binary too large or not a file is no evidence either way.
        let Ok(Some(b)) = v.read_bytes(p) else {
            continue;
        };
        // Compatibility patterns such as "OpenSSH_6.6.1*" are in the
        // binary too: only the release form with "p" is the version.
        let mut found = None;
        for at in memchr::memmem::find_iter(&b, b"OpenSSH_") {
            let tail = &b[at..b.len().min(at + 24)];
            let s: String = tail
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'.' || **c == b'_')
                .map(|&c| c as char)
                .collect();
            let num = &s["OpenSSH_".len()..];
            if let (Some(ver), Some((_, p_rest))) = (major_minor(num), num.split_once('p')) {
                if !p_rest.is_empty() && p_rest.chars().all(|c| c.is_ascii_digit()) {
                    found = Some((ver, s));
                    break;
                }
            }
        }
        let Some((ver, text)) = found else {
            continue;
        };
        // The keyword table is in the binary as NUL-ended lower-case
        // strings.
        let binary = Binary(Some(std::sync::Arc::new(b)));
        let backported = KEYWORDS
            .iter()
            .filter(|k| k.1 > ver && binary.has_keyword(k.0))
            .map(|k| k.0)
            .collect();
        return Ok(Some(Version {
            v: ver,
            text,
            from: p.to_string(),
            backported,
            binary,
        }));
    }
    let Ok(Some(t)) = crate::customize::text::read_text(v, "/var/lib/dpkg/status") else {
        return Ok(None);
    };
    let mut pkg = false;
    for (i, l) in t.lines().enumerate() {
        if l.is_empty() {
            pkg = false;
        } else if let Some(p) = l.strip_prefix("Package:") {
            pkg = p.trim() == "openssh-server";
        } else if let (true, Some(ver)) = (pkg, l.strip_prefix("Version:")) {
            let ver = ver.trim();
            let bare = ver.split_once(':').map_or(ver, |(_, r)| r);
            if let Some(mm) = major_minor(bare) {
                return Ok(Some(Version {
                    v: mm,
                    text: ver.to_string(),
                    from: format!("/var/lib/dpkg/status:{}", i + 1),
                    backported: Vec::new(),
                    binary: Binary::default(),
                }));
            }
        }
    }
    Ok(None)
}

/// How a release takes a keyword.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kw {
    /// Known and in use: its spelling, and whether `Match` blocks take it.
    Ok(&'static str, bool),
    /// Known but retired: sshd logs it and goes on.
    Retired(&'static str),
    /// Not known to this release (fatal), with why in words.
    Unknown(String),
    /// Not an upstream keyword of this release, but the image's sshd binary
    /// holds it in its keyword table (a distribution's patch or backport):
    /// taken, anywhere.
    Patched,
}

/// The keyword spellings closest to `word` (for "did you mean").
pub fn suggest(word: &str) -> Option<&'static str> {
    let w = word.to_ascii_lowercase();
    KEYWORDS
        .iter()
        .map(|k| (edit_distance(&w, &k.0.to_ascii_lowercase()), k.0))
        .filter(|(d, k)| *d <= 2.max(k.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// What release `ver` (or, when `None`, any release) makes of `word`.
pub fn keyword(word: &str, ver: Option<V>) -> Kw {
    let Some(k) = KEYWORDS.iter().find(|k| k.0.eq_ignore_ascii_case(word)) else {
        let hint = suggest(word)
            .map(|s| format!(" (did you mean {s}?)"))
            .unwrap_or_default();
        return Kw::Unknown(format!("{word} is not an sshd keyword{hint}"));
    };
    let Some(ver) = ver else {
        // Any release: what some release takes is taken.
        return Kw::Ok(k.0, k.2.is_some());
    };
    if ver < k.1 {
        return Kw::Unknown(format!(
            "{} is new in OpenSSH {}: this sshd ({ver}) does not know it",
            k.0, k.1
        ));
    }
    if let Some(last) = k.4.filter(|l| ver > *l) {
        return Kw::Unknown(format!(
            "{}: OpenSSH {ver} no longer knows it (last in {last})",
            k.0
        ));
    }
    if k.3.is_some_and(|d| ver >= d) {
        return Kw::Retired(k.0);
    }
    Kw::Ok(k.0, k.2.is_some_and(|m| ver >= m))
}

/// Is `a` a yes/no flag value for release `ver`? (Before 7.7 sshd took
/// only lower case.)
fn flag(a: &str, ver: Option<V>, extra: &[&str]) -> bool {
    let exact = ver.is_some_and(|v| v < V(7, 7));
    ["yes", "no"].iter().chain(extra).any(|w| {
        if exact {
            a == *w
        } else {
            a.eq_ignore_ascii_case(w)
        }
    })
}

/// A time as sshd reads it: numbers, each with an optional unit
/// (s, m, h, d, w).
fn time_ok(t: &str) -> bool {
    let mut digits = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits = true;
        } else if digits && "sSmMhHdDwW".contains(c) {
            digits = false;
        } else {
            return false;
        }
    }
    !t.is_empty() && t.starts_with(|c: char| c.is_ascii_digit())
}

fn port_ok(p: &str) -> bool {
    p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
}

/// The arguments of a value: separated by spaces and tabs (as sshd 8.7+
/// splits them), double quotes
/// grouping, a word starting with `#` ending the line.
pub fn args(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut inq, mut any) = (false, false);
    for c in value.chars() {
        if c == '"' {
            inq = !inq;
            any = true;
        } else if (c == ' ' || c == '\t') && !inq {
            if any {
                out.push(std::mem::take(&mut cur));
                any = false;
            }
        } else {
            if c == '#' && !any && !inq {
                break;
            }
            cur.push(c);
            any = true;
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Check the value of one of the keywords `check` relies on the way
/// release `ver` would (any release when `None`); other keywords only need
/// an argument. `Err` says what is wrong in words.
pub fn check_value(key: &str, value: &str, ver: Option<V>) -> std::result::Result<(), String> {
    let a = args(value);
    let Some(first) = a.first() else {
        return Err(format!("{key} needs an argument"));
    };
    let k = key.to_ascii_lowercase();
    let one = |ok: bool, what: &str| -> std::result::Result<(), String> {
        if !ok {
            return Err(format!("{key} takes {what}, not {first:?}"));
        }
        // OpenSSH 8.7 and later refuse words after the value.
        if a.len() > 1 && ver.is_none_or(|v| v >= V(8, 7)) {
            return Err(format!("{key} takes one value: garbage after {first:?}"));
        }
        Ok(())
    };
    match k.as_str() {
        "passwordauthentication"
        | "pubkeyauthentication"
        | "kbdinteractiveauthentication"
        | "challengeresponseauthentication"
        | "usepam" => {
            let what = if ver.is_some_and(|v| v < V(7, 7)) {
                "yes or no (lower case before OpenSSH 7.7)"
            } else {
                "yes or no"
            };
            one(flag(first, ver, &[]), what)
        }
        "permitrootlogin" => {
            let mut ok = ["yes", "no", "without-password", "forced-commands-only"].to_vec();
            if ver.is_none_or(|v| v >= V(7, 0)) {
                ok.push("prohibit-password");
            }
            let hit = if ver.is_some_and(|v| v < V(5, 9)) {
                ok.contains(&first.as_str())
            } else {
                ok.iter().any(|w| w.eq_ignore_ascii_case(first))
            };
            one(hit, &ok.join(", "))
        }
        "x11forwarding"
        | "x11uselocalhost"
        | "printmotd"
        | "printlastlog"
        | "strictmodes"
        | "tcpkeepalive"
        | "keepalive"
        | "usedns"
        | "permitemptypasswords"
        | "ignoreuserknownhosts"
        | "hostbasedauthentication"
        | "hostbasedusesnamefrompacketonly"
        | "gssapiauthentication"
        | "gssapicleanupcredentials"
        | "kerberosauthentication"
        | "kerberosorlocalpasswd"
        | "kerberosticketcleanup"
        | "permittty"
        | "permituserrc"
        | "exposeauthinfo"
        | "disableforwarding"
        | "allowagentforwarding"
        | "streamlocalbindunlink" => one(flag(first, ver, &[]), "yes or no"),
        "allowtcpforwarding" | "allowstreamlocalforwarding" => {
            let extra = ["all", "local", "remote"];
            one(flag(first, ver, &extra), "yes, no, all, local or remote")
        }
        "gatewayports" => one(
            flag(first, ver, &["clientspecified"]),
            "yes, no or clientspecified",
        ),
        "compression" => one(flag(first, ver, &["delayed"]), "yes, no or delayed"),
        "permittunnel" => one(
            flag(first, ver, &["point-to-point", "ethernet"]),
            "yes, no, point-to-point or ethernet",
        ),
        "maxauthtries" | "maxsessions" | "clientalivecountmax" => one(
            !first.is_empty() && first.chars().all(|c| c.is_ascii_digit()),
            "a whole number",
        ),
        "logingracetime" | "clientaliveinterval" => one(time_ok(first), "a time (30, 2m, 1h30m)"),
        "loglevel" => one(
            [
                "QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3",
            ]
            .iter()
            .any(|l| l.eq_ignore_ascii_case(first)),
            "QUIET, FATAL, ERROR, INFO, VERBOSE or DEBUG1-3",
        ),
        "addressfamily" => one(
            flag(first, ver, &["any", "inet", "inet6"]) && !flag(first, ver, &[]),
            "any, inet or inet6",
        ),
        "port" => one(port_ok(first), "a port number from 1 to 65535"),
        "listenaddress" => {
            let port = if let Some(r) = first.strip_prefix('[') {
                match r.split_once(']') {
                    Some((_, "")) => None,
                    Some((_, p)) => match p.strip_prefix(':') {
                        Some(p) => Some(p),
                        None => {
                            return Err(format!("ListenAddress {first:?}: expected [ADDRESS]:PORT"))
                        }
                    },
                    None => return Err(format!("ListenAddress {first:?}: no closing ]")),
                }
            } else if first.matches(':').count() == 1 {
                first.split_once(':').map(|(_, p)| p)
            } else {
                None
            };
            if let Some(p) = port {
                if !port_ok(p) {
                    return Err(format!("ListenAddress {first:?}: bad port {p:?}"));
                }
            }
            match a.get(1).map(|s| s.as_str()) {
                None => Ok(()),
                Some("rdomain") if a.len() == 3 && ver.is_none_or(|v| v >= V(7, 7)) => Ok(()),
                Some(x) => Err(format!("ListenAddress {first}: unexpected {x:?}")),
            }
        }
        "subsystem" if a.len() < 2 => {
            Err(format!("Subsystem {first} needs a command after the name"))
        }
        "match" => check_match(&a, ver),
        _ => Ok(()),
    }
}

/// The criteria of a `Match` line.
fn check_match(a: &[String], ver: Option<V>) -> std::result::Result<(), String> {
    let since = |c: &str| -> Option<V> {
        Some(match c {
            "user" | "group" | "host" | "address" => V(4, 4),
            "localaddress" | "localport" => V(6, 1),
            "all" => V(6, 5),
            "rdomain" => V(7, 7),
            "invalid-user" => V(9, 9),
            "version" => V(10, 0),
            _ => return None,
        })
    };
    let mut i = 0;
    while i < a.len() {
        let c = a[i].to_ascii_lowercase();
        let Some(s) = since(&c) else {
            return Err(format!("Match: unsupported attribute {:?}", a[i]));
        };
        if ver.is_some_and(|v| v < s) {
            return Err(format!(
                "Match {}: new in OpenSSH {s}, this sshd is {}",
                a[i],
                ver.unwrap_or(s)
            ));
        }
        if c == "all" || c == "invalid-user" {
            if c == "all" && a.len() != 1 {
                return Err("Match All cannot be combined with other criteria".into());
            }
            i += 1;
            continue;
        }
        if a.get(i + 1).is_none() {
            return Err(format!("Match {}: missing argument", a[i]));
        }
        i += 2;
    }
    Ok(())
}

/// A line sshd would refuse (`fatal`) or only log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `file:line`.
    pub at: String,
    /// True when sshd does not start.
    pub fatal: bool,
    /// What is wrong.
    pub text: String,
    /// The keyword as written, when the line is in /etc/ssh/sshd_config
    /// outside `Match` (so `--sshd-set KEYWORD=` can comment it out).
    pub main_global: Option<String>,
}

/// The configuration as sshd would read it.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The settings outside `Match` blocks, in the order sshd reads them:
    /// (keyword in lower case, value, `file:line`).
    pub settings: Vec<(String, String, String)>,
    /// What sshd would refuse or log.
    pub problems: Vec<Problem>,
    /// Files read through `Include`.
    pub included: Vec<String>,
    /// Retired keywords, which sshd logs and ignores: "Keyword (file:line)".
    pub retired: Vec<String>,
}

impl Config {
    /// The value sshd uses for `key` (the first one), with where it is.
    pub fn get(&self, key: &str) -> Option<(&str, &str)> {
        let key = key.to_ascii_lowercase();
        self.settings
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, v, w)| (v.as_str(), w.as_str()))
    }

    /// Every value of `key` outside `Match` (HostKey may be given often).
    pub fn all(&self, key: &str) -> Vec<&str> {
        let key = key.to_ascii_lowercase();
        self.settings
            .iter()
            .filter(|(k, _, _)| *k == key)
            .map(|(_, v, _)| v.as_str())
            .collect()
    }

    /// True when sshd would refuse to start.
    pub fn fatal(&self) -> bool {
        self.problems.iter().any(|p| p.fatal)
    }
}

/// sshd's white space (WHITESPACE in misc.h), and with the form feed it
/// allows at the end of a line.
const SSHD_SPACE: &[char] = &[' ', '\t', '\r', '\n'];
const SSHD_SPACE_FF: &[char] = &[' ', '\t', '\r', '\n', '\u{c}'];

/// The keyword as written when the line is in the main file outside
/// `Match` (so `--sshd-set KEYWORD=` can comment it out).
fn here_global(word: &str, in_match: bool, main: bool) -> Option<&str> {
    (main && !in_match && !word.eq_ignore_ascii_case("match")).then_some(word)
}

/// How deep sshd follows `Include`.
const MAX_DEPTH: usize = 16;
/// Bounds on what `Include` may pull in here: files and bytes.
const MAX_FILES: usize = 256;
const MAX_BYTES: usize = 16 << 20;

struct Reader<'a> {
    v: &'a dyn View,
    release: Option<&'a Version>,
    ver: Option<V>,
    main: &'a str,
    files: usize,
    bytes: usize,
    /// The bounds were reached: nothing more is read (or reported).
    stopped: bool,
    /// Subsystem names defined outside Match.
    subsystems: Vec<String>,
    c: Config,
}

/// Read `main` (its text given) and what it includes, as the image's
/// sshd `release` would (any release when `None`).
pub fn parse(v: &dyn View, main: &str, text: &str, release: Option<&Version>) -> Result<Config> {
    let mut r = Reader {
        v,
        release,
        ver: release.map(|x| x.v),
        main,
        files: 1,
        bytes: text.len(),
        stopped: false,
        subsystems: Vec::new(),
        c: Config::default(),
    };
    r.file(main, text, 0, false)?;
    Ok(r.c)
}

impl Reader<'_> {
    fn match_backported(&self) -> bool {
        self.release
            .is_some_and(|r| r.backported.contains(&"Match"))
    }

    fn problem(&mut self, at: String, fatal: bool, text: String, kw: Option<&str>) {
        self.c.problems.push(Problem {
            at,
            fatal,
            text,
            main_global: kw.map(String::from),
        });
    }

    fn file(&mut self, path: &str, text: &str, depth: usize, inherited_match: bool) -> Result<()> {
        let mut in_match = inherited_match;
        for (i, raw) in text.lines().enumerate() {
            let at = format!("{path}:{}", i + 1);
            // sshd's white space is space, tab, CR and LF only (a form
            // feed may end the line): a vertical tab or a no-break space
            // is part of the word.
            let line = raw
                .trim_end_matches(SSHD_SPACE_FF)
                .trim_start_matches(SSHD_SPACE);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The keyword ends at white space or one `=`; one `=` may
            // follow the white space.
            let (word, value) = match line.find(|c: char| SSHD_SPACE.contains(&c) || c == '=') {
                Some(at) => {
                    let (k, rest) = line.split_at(at);
                    let eq = rest.starts_with('=');
                    let rest = rest[1..].trim_start_matches(SSHD_SPACE);
                    let rest = match rest.strip_prefix('=') {
                        Some(r) if !eq => r.trim_start_matches(SSHD_SPACE),
                        _ => rest,
                    };
                    (k, rest)
                }
                None => (line, ""),
            };
            if value.chars().filter(|&c| c == '"').count() % 2 == 1 {
                self.problem(
                    at,
                    true,
                    format!("{word}: invalid quotes"),
                    here_global(word, in_match, path == self.main),
                );
                continue;
            }
            let here_global = here_global(word, in_match, path == self.main);
            if value.is_empty() || value.starts_with('#') {
                self.problem(at, true, format!("no argument after {word}"), here_global);
                continue;
            }
            let (name, in_match_ok) = match keyword_for(word, self.release) {
                Kw::Unknown(why) => {
                    self.problem(
                        at,
                        true,
                        format!("Bad configuration option: {why}"),
                        here_global,
                    );
                    continue;
                }
                Kw::Retired(name) => {
                    self.c.retired.push(format!("{name} ({at})"));
                    continue;
                }
                Kw::Patched => {
                    if !in_match {
                        let k = word.to_ascii_lowercase();
                        self.c.settings.push((k, value.to_string(), at));
                    }
                    continue;
                }
                Kw::Ok(name, m) if !self.match_backported() => (name, m),
                // What a backported Match allows cannot be told by release.
                Kw::Ok(name, _) => (name, matches!(keyword(word, None), Kw::Ok(_, true))),
            };
            if in_match && !in_match_ok {
                self.problem(
                    at,
                    true,
                    format!("{name} is not allowed within a Match block"),
                    None,
                );
                continue;
            }
            let ver = if name == "Match" && self.match_backported() {
                None
            } else {
                self.ver
            };
            if let Err(why) = check_value(name, value, ver) {
                self.problem(at, true, why, here_global);
                continue;
            }
            if name == "Subsystem" && !in_match {
                let sub = args(value).into_iter().next().unwrap_or_default();
                if self.subsystems.contains(&sub) {
                    // Before 9.5 sshd refuses a second definition.
                    match self.ver {
                        Some(v) if v >= V(9, 5) => {}
                        v => self.problem(
                            at.clone(),
                            v.is_some(),
                            format!(
                                "Subsystem '{sub}' already defined (OpenSSH before 9.5 refuses it)"
                            ),
                            None,
                        ),
                    }
                } else {
                    self.subsystems.push(sub);
                }
            }
            match name {
                "Match" => in_match = true,
                "Include" => self.include(&at, value, depth, in_match)?,
                _ if !in_match => {
                    self.c
                        .settings
                        .push((name.to_ascii_lowercase(), value.to_string(), at))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn include(&mut self, at: &str, value: &str, depth: usize, in_match: bool) -> Result<()> {
        for pat in args(value) {
            if self.stopped {
                return Ok(());
            }
            let pat = if pat.starts_with('/') || pat.starts_with('~') {
                pat
            } else {
                format!("/etc/ssh/{pat}")
            };
            for p in super::ssh::expand_glob(self.v, &pat)? {
                if depth + 1 > MAX_DEPTH {
                    // sshd stops there; so does this reading.
                    self.stopped = true;
                    self.problem(
                        at.to_string(),
                        true,
                        format!("Include {p}: more than {MAX_DEPTH} levels of Include"),
                        None,
                    );
                    return Ok(());
                }
                let t = match self.v.read_bytes(&p) {
                    Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
                    // A name that matches nothing is skipped, as by sshd.
                    Ok(None) => continue,
                    Err(Error::Invalid(m)) => {
                        self.problem(at.to_string(), true, format!("Include: {m}"), None);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                self.files += 1;
                self.bytes += t.len();
                if self.files > MAX_FILES || self.bytes > MAX_BYTES {
                    self.stopped = true;
                    self.problem(
                        at.to_string(),
                        false,
                        format!("Include pulls in more than {MAX_FILES} files or {} MiB: not checked further", MAX_BYTES >> 20),
                        None,
                    );
                    return Ok(());
                }
                if !self.c.included.contains(&p) {
                    self.c.included.push(p.clone());
                }
                self.file(&p, &t, depth + 1, in_match)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_by_release() {
        assert!(matches!(
            keyword("permitrootlogin", Some(V(4, 3))),
            Kw::Ok("PermitRootLogin", false)
        ));
        assert!(matches!(
            keyword("PermitRootLogin", Some(V(8, 4))),
            Kw::Ok(_, true)
        ));
        assert!(matches!(keyword("Include", Some(V(7, 4))), Kw::Unknown(_)));
        assert!(matches!(keyword("Protocol", Some(V(8, 4))), Kw::Retired(_)));
        assert!(matches!(
            keyword("Protocol", Some(V(5, 3))),
            Kw::Ok(_, false)
        ));
        assert!(matches!(
            keyword("GSSAPICleanupCreds", Some(V(4, 3))),
            Kw::Unknown(_)
        ));
        match keyword("PermitRootLogn", None) {
            Kw::Unknown(w) => assert!(w.contains("did you mean PermitRootLogin?"), "{w}"),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn values() {
        assert!(check_value("PermitRootLogin", "prohibit-password", Some(V(6, 6))).is_err());
        assert!(check_value("PermitRootLogin", "prohibit-password", Some(V(7, 4))).is_ok());
        assert!(check_value("PasswordAuthentication", "Yes", Some(V(7, 4))).is_err());
        assert!(check_value("PasswordAuthentication", "Yes", Some(V(8, 4))).is_ok());
        assert!(check_value("PasswordAuthentication", "yes no", Some(V(8, 9))).is_err());
        assert!(check_value("Port", "0", None).is_err());
        assert!(check_value("Port", "2222", None).is_ok());
        assert!(check_value("ListenAddress", "[::1]:2222", None).is_ok());
        assert!(check_value("ListenAddress", "10.0.0.1:99999", None).is_err());
        assert!(check_value("Subsystem", "sftp", None).is_err());
        assert!(check_value("Match", "User bob Address 10.0.0.0/8", None).is_ok());
        assert!(check_value("Match", "Usr bob", None).is_err());
        assert!(check_value("Match", "All", Some(V(6, 1))).is_err());
    }

    #[test]
    fn a_second_subsystem() {
        let t = "Subsystem sftp /a\nSubsystem sftp /b\n";
        let v: &dyn View = &NoFiles;
        let c = parse(v, "/etc/ssh/sshd_config", t, None).unwrap();
        assert!(!c.fatal() && c.problems.len() == 1, "{:?}", c.problems);
        let rel = |v| Version {
            v,
            text: String::new(),
            from: String::new(),
            backported: Vec::new(),
            binary: Binary::default(),
        };
        let c = parse(v, "/etc/ssh/sshd_config", t, Some(&rel(V(8, 4)))).unwrap();
        assert!(
            c.fatal() && c.problems[0].at == "/etc/ssh/sshd_config:2",
            "{:?}",
            c.problems
        );
        let c = parse(v, "/etc/ssh/sshd_config", t, Some(&rel(V(9, 6)))).unwrap();
        assert!(c.problems.is_empty());
    }

    struct NoFiles;
    impl View for NoFiles {
        fn meta(&self, _: &str, _: bool) -> Result<Option<crate::customize::text::Meta>> {
            Ok(None)
        }
        fn read_bytes(&self, _: &str) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn read_link(&self, _: &str) -> Result<Option<String>> {
            Ok(None)
        }
        fn list_dir(&self, _: &str) -> Result<Option<Vec<crate::customize::text::Entry>>> {
            Ok(None)
        }
    }

    #[test]
    fn release_from_the_binary() {
        assert_eq!(major_minor("8.4p1"), Some(V(8, 4)));
        assert_eq!(major_minor("10.0p2"), Some(V(10, 0)));
    }
}
