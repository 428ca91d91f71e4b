//! Argument types shared by the commands: write options, attributes, and
//! the parsers for modes, owners and times.

use std::path::PathBuf;

use clap::Args;
use ext3edit::accounts::{self, Accounts};
use ext3edit::{Filesystem, NewFile, Timestamp};

use super::{failure, usage, R};

// (Plain comments, not doc comments: with `#[command(defer = true)]` on the
// command enums, a flattened struct's doc comment would replace the
// command's own `about` in its --help.)
// Options of every command that changes the image.
#[derive(Args, Clone, Default, Debug)]
pub struct WriteOpts {
    /// Leave IMAGE untouched: write the edited image to NEW instead (a sparse
    /// copy, renamed into place only when the command succeeds; like mv, a
    /// symlink named NEW is replaced, not written through).
    #[arg(long, value_name = "NEW")]
    pub output: Option<PathBuf>,
    /// Write metadata in place instead of through the ext3 journal (faster,
    /// like debugfs; a crash mid-write can damage the image).
    #[arg(long)]
    pub no_journal: bool,
    /// Do not fsync the image after writing (faster; unsafe if the machine crashes).
    #[arg(long)]
    pub no_sync: bool,
    /// Write the result as raw, bz2, gz, xz or zip (default: the format
    /// IMAGE is in; a compressed IMAGE is edited through a temporary raw
    /// copy and compressed again).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

impl WriteOpts {
    /// These options, with those given before the command name filled in.
    pub fn merged(&self, global: &WriteOpts) -> WriteOpts {
        WriteOpts {
            output: self.output.clone().or_else(|| global.output.clone()),
            no_journal: self.no_journal || global.no_journal,
            no_sync: self.no_sync || global.no_sync,
            format: self.format.clone().or_else(|| global.format.clone()),
        }
    }
}

// Options of every command that takes IMAGE, read-only or not (given
// before or after the command name).
#[derive(Args, Clone, Default, Debug)]
pub struct ImageOpts {
    /// IMAGE is a whole disk (MBR or GPT partition table): work on its
    /// partition N (default: the only partition holding an ext2/3/4 file
    /// system; `info` lists them). Nothing outside the partition changes.
    #[arg(long, value_name = "N", global = true)]
    pub partition: Option<u32>,
    /// IMAGE is a zip archive holding several files: use the one named
    /// NAME (default: the only file; else $EXT3EDIT_ZIP_ENTRY).
    #[arg(long, value_name = "NAME", global = true)]
    pub entry: Option<String>,
}

// Mode, owner and time of new entries.
#[derive(Args, Clone, Debug)]
pub struct Attrs {
    /// Permission bits in octal, e.g. 644.
    #[arg(long, value_name = "OCTAL")]
    pub mode: Option<String>,
    #[command(flatten)]
    pub owned: OwnerTime,
}

// Owner and modification time of new entries (no mode: symlinks).
#[derive(Args, Clone, Debug)]
pub struct OwnerTime {
    /// Owner as UID:GID or USER:GROUP, names looked up in the image's own
    /// /etc/passwd and /etc/group (default 0:0, the image's root); USER:
    /// means the user's login group, USER alone keeps the group (0 if new).
    #[arg(long, value_name = "UID:GID")]
    pub owner: Option<String>,
    /// Modification time: seconds since 1970, @SECONDS, or YYYY-MM-DD[THH:MM:SS] (UTC).
    #[arg(long, value_name = "TIME")]
    pub mtime: Option<String>,
}

/// Parse an octal permission mode (at most 07777).
pub fn parse_mode(s: &str) -> R<u16> {
    let t = s.trim_start_matches("0o");
    match u16::from_str_radix(t, 8) {
        Ok(m) if m <= 0o7777 && !t.is_empty() => Ok(m),
        _ => Err(usage(format!(
            "invalid mode {s:?}: expected octal digits like 644 or 0755"
        ))),
    }
}

/// An owner as the user wrote it (`--owner` or chown's OWNER), before any
/// name is looked up. As in chown(1): `USER` alone leaves the group alone
/// (keeps it, or 0 for a new entry), `USER:` means the user's login group,
/// `:GROUP` only the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerSpec {
    /// User name or UID.
    pub user: Option<String>,
    /// Group name or GID.
    pub group: Option<String>,
    /// `USER:`: the user's login group from the image's /etc/passwd.
    pub login_group: bool,
}

/// Parse `USER[:GROUP]`, `USER:`, `:GROUP` (names or numbers); syntax only.
pub fn parse_owner(s: &str) -> R<OwnerSpec> {
    let bad = || {
        usage(format!(
            "invalid owner {s:?}: expected USER:GROUP, USER, USER: or :GROUP (names or numbers), e.g. 0:0"
        ))
    };
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    if u.contains(':') || g.is_some_and(|g| g.contains(':')) {
        return Err(bad());
    }
    let user = (!u.is_empty()).then(|| u.to_string());
    let group = g.filter(|g| !g.is_empty()).map(str::to_string);
    let login_group = g == Some("");
    if user.is_none() && (group.is_none() || login_group) {
        return Err(bad());
    }
    Ok(OwnerSpec {
        user,
        group,
        login_group,
    })
}

impl OwnerSpec {
    /// UID and GID (each `None` when not given), names looked up in the
    /// image's /etc/passwd and /etc/group. Numbers need no lookup, so they
    /// work on images without those files.
    pub fn resolve(&self, fs: &Filesystem) -> R<(Option<u32>, Option<u32>)> {
        // Read the image's account files only when a name needs them.
        let mut acc: Option<Accounts> = None;
        fn loaded<'a>(acc: &'a mut Option<Accounts>, fs: &Filesystem) -> R<&'a Accounts> {
            if acc.is_none() {
                *acc = Some(Accounts::load(fs)?);
            }
            Ok(acc.as_ref().unwrap())
        }
        let uid = match &self.user {
            Some(u) => Some(match u.parse::<u32>() {
                Ok(n) => n,
                Err(_) => loaded(&mut acc, fs)?.uid_of(u)?,
            }),
            None => None,
        };
        let gid = match (&self.group, &self.user, uid) {
            (Some(g), _, _) => Some(match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => loaded(&mut acc, fs)?.gid_of(g)?,
            }),
            (None, Some(u), Some(n)) if self.login_group => {
                let a = loaded(&mut acc, fs)?;
                Some(if u.parse::<u32>().is_ok() {
                    a.user_by_uid(n).map(|e| e.gid).ok_or_else(|| {
                        failure(format!(
                            "{u}: no user with UID {n} in the image's {} to take a login group from",
                            accounts::PASSWD
                        ))
                    })?
                } else {
                    a.login_gid_of(u)?
                })
            }
            _ => None,
        };
        Ok((uid, gid))
    }
}

/// Mode, owner and time of new entries, parsed; the owner's names are
/// looked up once the image is open.
#[derive(Clone, Debug)]
pub struct AttrSpec {
    /// Permission bits (the --mode given, or the command's default).
    pub perm: u16,
    /// --owner, if given.
    pub owner: Option<OwnerSpec>,
    /// --mtime, if given.
    pub mtime: Option<Timestamp>,
}

impl AttrSpec {
    /// The owner's UID and GID, each `None` when not given.
    pub fn ids(&self, fs: &Filesystem) -> R<(Option<u32>, Option<u32>)> {
        match &self.owner {
            Some(o) => o.resolve(fs),
            None => Ok((None, None)),
        }
    }

    /// The attributes of a new entry (owner and group default to 0).
    pub fn resolve(&self, fs: &Filesystem) -> R<NewFile> {
        let (uid, gid) = self.ids(fs)?;
        Ok(NewFile {
            perm: self.perm,
            uid: uid.unwrap_or(0),
            gid: gid.unwrap_or(0),
            mtime: self.mtime,
        })
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Earliest and latest times an ext4 inode can hold (with the extra
/// epoch bits of 256-byte inodes): 1901-12-13 to 2446-05-10.
const TIME_MIN: i64 = -(1 << 31);
const TIME_MAX: i64 = (1 << 34) - (1 << 31) - 1;

/// Parse seconds, `@SECONDS` or `YYYY-MM-DD[THH:MM:SS]` (UTC).
pub fn parse_time(s: &str) -> R<Timestamp> {
    let bad = || {
        usage(format!(
            "invalid time {s:?}: expected seconds since 1970, @SECONDS or YYYY-MM-DD[THH:MM:SS] between 1901 and 2446"
        ))
    };
    let t = s.strip_prefix('@').unwrap_or(s);
    let secs = if let Ok(v) = t.parse::<i64>() {
        v
    } else {
        let t = t.trim_end_matches('Z');
        let (date, time) = match t.split_once(['T', ' ']) {
            Some((d, tm)) => (d, Some(tm)),
            None => (t, None),
        };
        let dp: Vec<&str> = date.split('-').collect();
        if dp.len() != 3 {
            return Err(bad());
        }
        let y: i64 = dp[0].parse().map_err(|_| bad())?;
        let mo: i64 = dp[1].parse().map_err(|_| bad())?;
        let d: i64 = dp[2].parse().map_err(|_| bad())?;
        if !(1901..=2446).contains(&y) || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
            return Err(bad());
        }
        let days = days_from_civil(y, mo, d);
        // Reject dates like 2024-02-31 that would roll over.
        if days_from_civil(y, mo, 1) + d - 1 != days
            || (mo < 12 && days >= days_from_civil(y, mo + 1, 1))
            || (mo == 12 && days >= days_from_civil(y + 1, 1, 1))
        {
            return Err(bad());
        }
        let mut secs = days * 86400;
        if let Some(tm) = time {
            let tp: Vec<&str> = tm.split(':').collect();
            if tp.is_empty() || tp.len() > 3 {
                return Err(bad());
            }
            let limits = [24i64, 60, 60];
            let muls = [3600i64, 60, 1];
            for (k, p) in tp.iter().enumerate() {
                let v: i64 = p.parse().map_err(|_| bad())?;
                if !(0..limits[k]).contains(&v) {
                    return Err(bad());
                }
                secs += v * muls[k];
            }
        }
        secs
    };
    if !(TIME_MIN..=TIME_MAX).contains(&secs) {
        return Err(bad());
    }
    Ok(Timestamp::from_secs(secs))
}
