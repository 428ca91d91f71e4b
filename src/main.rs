//! The `ext3edit` command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ext3edit::host::{self, PutOptions};
use ext3edit::layout::FileType;
use ext3edit::path::split_last;
use ext3edit::{Error, Filesystem, Ino, NewFile, OpenOptions, Timestamp};

mod report;

const AFTER_HELP: &str = "\
Paths inside the image are absolute (/etc/hosts). Nothing needs root: the
image is an ordinary file. Every change is staged in memory and written at
the end, so a failed command leaves the image as it was; on ext3 the write
goes through the journal, so even a crash leaves the old or the new image.
An image whose journal needs recovery is read through the journal, and
replayed before any change (see `ext3edit journal --help`).

Exit status: 0 success, 1 the operation failed (the message says why and
where), 2 usage error.

Examples:
  ext3edit info disk.ext3
  ext3edit ls disk.ext3 /etc -l
  ext3edit put disk.ext3 resolv.conf /etc/resolv.conf
  echo 'nameserver 1.1.1.1' | ext3edit put disk.ext3 - /etc/resolv.conf
  ext3edit put disk.ext3 ./overlay / -r
  ext3edit get disk.ext3 /etc/passwd passwd.txt
  ext3edit mkdir disk.ext3 /root/.ssh -p --mode 700
  ext3edit chown disk.ext3 500:500 /home/alice
  ext3edit rm disk.ext3 /tmp/cache -r

Timestamps default to now, or to $SOURCE_DATE_EPOCH when it is set
(reproducible builds); --mtime overrides.";

/// Edit ext2/ext3/ext4 filesystem images as plain files: no root, no mount.
#[derive(Parser)]
#[command(name = "ext3edit", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// Do not fsync the image after writing (faster; unsafe if the machine crashes).
    #[arg(long, global = true)]
    no_sync: bool,
    /// Write metadata in place instead of through the ext3 journal (faster,
    /// like debugfs; a crash mid-write can damage the image).
    #[arg(long, global = true)]
    no_journal: bool,
    /// Leave IMAGE untouched: write the edited image to NEW instead (a sparse
    /// copy, renamed into place only when the command succeeds).
    #[arg(long, global = true, value_name = "NEW")]
    output: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Attrs {
    /// Permission bits in octal, e.g. 644 (put: default the source's; mkdir: 755).
    #[arg(long, value_name = "OCTAL")]
    mode: Option<String>,
    /// Owner as UID:GID (default 0:0, the image's root).
    #[arg(long, value_name = "UID:GID")]
    owner: Option<String>,
    /// Modification time: seconds since 1970, @SECONDS, or YYYY-MM-DD[THH:MM:SS] (UTC).
    #[arg(long, value_name = "TIME")]
    mtime: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the superblock: size, free space, features, and whether ext3edit can write it.
    #[command(after_help = "Example:\n  ext3edit info disk.ext3 --json")]
    Info {
        /// The image file.
        image: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List a directory.
    #[command(
        after_help = "Examples:\n  ext3edit ls disk.ext3 /etc -l\n  ext3edit ls disk.ext3 / -R --json"
    )]
    Ls {
        /// The image file.
        image: PathBuf,
        /// Directory (or file) inside the image.
        #[arg(default_value = "/")]
        path: String,
        /// Long format: mode, links, owner, size, time.
        #[arg(short = 'l')]
        long: bool,
        /// Recurse into subdirectories.
        #[arg(short = 'R')]
        recursive: bool,
        /// Show . and .. too.
        #[arg(short = 'a')]
        all: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show one inode in detail (does not follow a final symlink).
    #[command(after_help = "Example:\n  ext3edit stat disk.ext3 /etc/shadow --json")]
    Stat {
        /// The image file.
        image: PathBuf,
        /// Path inside the image.
        path: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Copy a file (or with -r a tree) out of the image.
    #[command(
        after_help = "Examples:\n  ext3edit get disk.ext3 /etc/passwd            # to stdout\n  ext3edit get disk.ext3 /etc/passwd passwd.txt\n  ext3edit get disk.ext3 /etc etc-copy -r\n\nDEST that is an existing directory receives the file under its own name.\nget -r never follows a symlink of the image on the host and never writes\noutside DEST; device nodes are skipped with a warning."
    )]
    Get {
        /// The image file.
        image: PathBuf,
        /// Path inside the image.
        path: String,
        /// Host destination; missing or "-" means stdout.
        dest: Option<PathBuf>,
        /// Copy a directory tree.
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
    },
    /// Copy a host file (or with -r a tree, or "-" for stdin) into the image.
    #[command(
        after_help = "Examples:\n  ext3edit put disk.ext3 resolv.conf /etc/           # becomes /etc/resolv.conf\n  ext3edit put disk.ext3 key.pub /root/.ssh/authorized_keys -p --mode 600\n  cat motd | ext3edit put disk.ext3 - /etc/motd\n  ext3edit put disk.ext3 ./rootfs-overlay / -r --owner 0:0\n\nAn existing file is overwritten (its inode is kept, so hard links see the\nnew content). Blocks of zeros become holes. put -r keeps modes, symlinks,\nhard links, fifos and device nodes; --mode applies to regular files."
    )]
    Put {
        /// The image file.
        image: PathBuf,
        /// Host file or directory; "-" reads stdin.
        src: String,
        /// Destination path inside the image.
        dest: String,
        /// Copy a directory tree.
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
        /// Create missing parent directories.
        #[arg(short = 'p')]
        parents: bool,
        #[command(flatten)]
        attrs: Attrs,
    },
    /// Create a directory.
    #[command(
        after_help = "Example:\n  ext3edit mkdir disk.ext3 /home/alice/.ssh -p --mode 700 --owner 500:500"
    )]
    Mkdir {
        /// The image file.
        image: PathBuf,
        /// Directory to create.
        path: String,
        /// Create parents as needed; no error if it exists.
        #[arg(short = 'p')]
        parents: bool,
        #[command(flatten)]
        attrs: Attrs,
    },
    /// Remove a file, symlink or (with -r) a directory tree.
    #[command(
        after_help = "Examples:\n  ext3edit rm disk.ext3 /etc/motd\n  ext3edit rm disk.ext3 /var/cache/yum -r"
    )]
    Rm {
        /// The image file.
        image: PathBuf,
        /// Path inside the image (a final symlink is removed, not followed).
        path: String,
        /// Remove directories and their contents.
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
        /// No error if the path does not exist.
        #[arg(short = 'f')]
        force: bool,
    },
    /// Remove an empty directory.
    Rmdir {
        /// The image file.
        image: PathBuf,
        /// Directory inside the image.
        path: String,
    },
    /// Move or rename a file or directory.
    #[command(
        after_help = "Examples:\n  ext3edit mv disk.ext3 /etc/motd /etc/motd.old\n  ext3edit mv disk.ext3 /tmp/conf.d /etc/         # becomes /etc/conf.d"
    )]
    Mv {
        /// The image file.
        image: PathBuf,
        /// Source path.
        src: String,
        /// Destination path, or an existing directory to move into.
        dest: String,
    },
    /// Make a hard link, or with -s a symbolic link.
    #[command(
        after_help = "Examples:\n  ext3edit ln disk.ext3 /usr/bin/vim /usr/bin/vi\n  ext3edit ln disk.ext3 ../lib/libfoo.so.1 /usr/lib/libfoo.so -s"
    )]
    Ln {
        /// The image file.
        image: PathBuf,
        /// Existing file (hard link) or link text (symlink).
        target: String,
        /// The new link.
        link: String,
        /// Make a symbolic link.
        #[arg(short = 's')]
        symbolic: bool,
        #[command(flatten)]
        attrs: Attrs,
    },
    /// Change permission bits.
    #[command(after_help = "Example:\n  ext3edit chmod disk.ext3 600 /etc/shadow")]
    Chmod {
        /// The image file.
        image: PathBuf,
        /// Octal mode, e.g. 0644 or 4755.
        mode: String,
        /// Path inside the image.
        path: String,
    },
    /// Change owner and group.
    #[command(
        after_help = "Example:\n  ext3edit chown disk.ext3 500:500 /home/alice",
        disable_help_flag = true
    )]
    Chown {
        /// Print help.
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        /// The image file.
        image: PathBuf,
        /// UID:GID (or UID alone to keep the group).
        owner: String,
        /// Path inside the image.
        path: String,
        /// Change a symlink itself instead of its target.
        #[arg(short = 'h', long = "no-dereference")]
        no_deref: bool,
    },
    /// Set a file's modification (and access) time, creating it if missing.
    #[command(
        after_help = "Example:\n  ext3edit touch disk.ext3 /etc/.autorelabel --mtime 2024-01-01"
    )]
    Touch {
        /// The image file.
        image: PathBuf,
        /// Path inside the image.
        path: String,
        /// Time to set (default now): seconds, @SECONDS or YYYY-MM-DD[THH:MM:SS].
        #[arg(long, value_name = "TIME")]
        mtime: Option<String>,
    },
    /// Set a regular file's size (shrink frees blocks, grow makes a hole).
    #[command(after_help = "Example:\n  ext3edit truncate disk.ext3 /var/log/messages 0")]
    Truncate {
        /// The image file.
        image: PathBuf,
        /// Path inside the image.
        path: String,
        /// New size in bytes.
        size: u64,
    },
    /// Print a symlink's target.
    Readlink {
        /// The image file.
        image: PathBuf,
        /// Path inside the image.
        path: String,
    },
    /// Inspect or replay the ext3/ext4 journal.
    #[command(subcommand)]
    Journal(JournalCmd),
    /// Create a device node, fifo or socket.
    #[command(after_help = "Example:\n  ext3edit mknod disk.ext3 /dev/console c 5 1 --mode 600")]
    Mknod {
        /// The image file.
        image: PathBuf,
        /// Path inside the image.
        path: String,
        /// c (character device), b (block device), p (fifo) or s (socket).
        kind: String,
        /// Major number (devices).
        major: Option<u32>,
        /// Minor number (devices).
        minor: Option<u32>,
        #[command(flatten)]
        attrs: Attrs,
    },
}

#[derive(Subcommand)]
enum JournalCmd {
    /// Show the journal: size, state, features and the transactions waiting
    /// to be replayed (like debugfs logdump, but readable).
    #[command(after_help = "Example:\n  ext3edit journal info snapshot.ext3 --json")]
    Info {
        /// The image file.
        image: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Replay a journal that needs recovery into the image (what the kernel
    /// does at mount, and e2fsck -E journal_only), and nothing else.
    #[command(
        after_help = "Example:\n  ext3edit journal replay snapshot.ext3\n\nWorks on ext4 images too: the replay copies logged blocks verbatim."
    )]
    Replay {
        /// The image file.
        image: PathBuf,
    },
}

/// An error with the exit code it deserves.
struct Fail {
    code: u8,
    msg: String,
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail {
            code: 1,
            msg: e.to_string(),
        }
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail {
        code: 2,
        msg: msg.into(),
    }
}

type R<T> = std::result::Result<T, Fail>;

fn parse_mode(s: &str) -> R<u16> {
    let t = s.trim_start_matches("0o");
    match u16::from_str_radix(t, 8) {
        Ok(m) if m <= 0o7777 && !t.is_empty() => Ok(m),
        _ => Err(usage(format!(
            "invalid mode {s:?}: expected octal digits like 644 or 0755"
        ))),
    }
}

fn parse_owner(s: &str) -> R<(Option<u32>, Option<u32>)> {
    let bad = || {
        usage(format!(
            "invalid owner {s:?}: expected UID:GID with numbers, e.g. 0:0"
        ))
    };
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = if u.is_empty() {
        None
    } else {
        Some(u.parse::<u32>().map_err(|_| bad())?)
    };
    let gid = match g {
        Some(g) if !g.is_empty() => Some(g.parse::<u32>().map_err(|_| bad())?),
        Some(_) => return Err(bad()),
        None => None,
    };
    if uid.is_none() && gid.is_none() {
        return Err(bad());
    }
    Ok((uid, gid))
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

fn parse_time(s: &str) -> R<Timestamp> {
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

/// `--output NEW`: the temporary copy being edited and its final name.
static OUTPUT: std::sync::Mutex<Option<(PathBuf, PathBuf)>> = std::sync::Mutex::new(None);
static OUTPUT_ARG: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
static NO_JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn open(image: &Path, write: bool, no_sync: bool) -> R<Filesystem> {
    let opts = OpenOptions {
        write,
        sync: !no_sync,
        now: None,
        journal: !NO_JOURNAL.get().copied().unwrap_or(false),
        replay_only: false,
    };
    let mut path = image.to_path_buf();
    if let Some(Some(out)) = OUTPUT_ARG.get() {
        if !write {
            return Err(usage(
                "--output applies only to commands that change the image",
            ));
        }
        // Check the source image before copying it.
        Filesystem::open(image, &OpenOptions::read_only())
            .and_then(|fs| match fs.write_refusal() {
                Some(w) => Err(Error::Unsupported(format!("cannot write this image: {w}"))),
                None => Ok(()),
            })
            .map_err(|e| Fail {
                code: 1,
                msg: format!("{}: {e}", image.display()),
            })?;
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(".ext3edit-partial");
        let tmp = out.with_file_name(name);
        ext3edit::device::copy_sparse(image, &tmp).map_err(|e| {
            Error::io(
                format!("copying {} to {}", image.display(), tmp.display()),
                e,
            )
        })?;
        *OUTPUT.lock().unwrap() = Some((tmp.clone(), out.clone()));
        path = tmp;
    }
    let fs = Filesystem::open(&path, &opts).map_err(|e| Fail {
        code: 1,
        msg: format!("{}: {e}", image.display()),
    })?;
    note_recovery(&fs, image, write);
    Ok(fs)
}

fn note_recovery(fs: &Filesystem, image: &Path, write: bool) {
    if let Some(n) = fs.recovery_note() {
        eprintln!("ext3edit: warning: {}: {n}", image.display());
    }
    if let Some(r) = fs.recovery_report() {
        let how = if write {
            "replaying it into the image first, as the kernel does at mount"
        } else {
            "reading through it without changing the file"
        };
        eprintln!(
            "ext3edit: note: {}: the journal needs recovery; {how} ({} transaction{}, {} block{}{})",
            image.display(),
            r.transactions.len(),
            if r.transactions.len() == 1 { "" } else { "s" },
            r.blocks.len(),
            if r.blocks.len() == 1 { "" } else { "s" },
            replay_problems(r)
        );
    }
}

fn replay_problems(r: &ext3edit::journal::Replay) -> String {
    let mut v = Vec::new();
    if let Some(t) = r.failed_commit {
        v.push(format!(
            "transaction {t} has a bad commit block and was skipped"
        ));
    }
    if r.bad_blocks > 0 {
        v.push(format!(
            "{} logged blocks with bad checksums skipped",
            r.bad_blocks
        ));
    }
    if let Some(e) = &r.error {
        v.push(format!("recovery stopped: {e}"));
    }
    if v.is_empty() {
        String::new()
    } else {
        format!("; {}", v.join("; "))
    }
}

fn commit(mut fs: Filesystem) -> R<()> {
    fs.commit()?;
    drop(fs);
    if let Some((tmp, out)) = OUTPUT.lock().unwrap().take() {
        std::fs::rename(&tmp, &out).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", tmp.display(), out.display()),
                e,
            )
        })?;
    }
    Ok(())
}

fn new_attrs(a: &Attrs, default_perm: u16) -> R<NewFile> {
    let perm = match &a.mode {
        Some(m) => parse_mode(m)?,
        None => default_perm,
    };
    let (uid, gid) = match &a.owner {
        Some(o) => {
            let (u, g) = parse_owner(o)?;
            (u.unwrap_or(0), g.unwrap_or(0))
        }
        None => (0, 0),
    };
    let mtime = a.mtime.as_deref().map(parse_time).transpose()?;
    Ok(NewFile {
        perm,
        uid,
        gid,
        mtime,
    })
}

/// Create the missing directories of `path` (mkdir -p); returns the inode.
fn mkdir_p(fs: &mut Filesystem, path: &str, attrs: &NewFile) -> R<Ino> {
    let mut cur = String::new();
    let mut ino = fs.root();
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        cur.push('/');
        cur.push_str(comp);
        match fs.try_resolve(&cur, true)? {
            Some(i) => {
                if !fs.read_inode(i)?.is_dir() {
                    return Err(Error::NotADirectory(cur.clone()).into());
                }
                ino = i;
            }
            None => {
                if comp == ".." {
                    return Err(usage(format!("{path}: .. in a path to create")));
                }
                let (parent, name) = fs.resolve_parent(&cur)?;
                ino = fs.mkdir(parent, &name, attrs).map_err(|e| e.at(&cur))?;
            }
        }
    }
    Ok(ino)
}

fn basename(p: &str) -> R<String> {
    let t = p.trim_end_matches('/');
    let b = t.rsplit('/').next().unwrap_or("");
    if b.is_empty() || b == "." || b == ".." {
        return Err(usage(format!("{p:?} has no file name")));
    }
    Ok(b.to_string())
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Where a new entry goes: an existing directory receives `src_name`
/// inside it; otherwise DEST itself names the entry.
fn target_path(fs: &Filesystem, dest: &str, src_name: Option<&str>) -> R<String> {
    if let Some(i) = fs.try_resolve(dest, true)? {
        if fs.read_inode(i)?.is_dir() {
            return match src_name {
                Some(n) => Ok(join(dest, n)),
                None => Err(
                    Error::IsADirectory(format!("{dest} (name the new entry explicitly)")).into(),
                ),
            };
        }
    }
    Ok(dest.to_string())
}

fn run(cli: Cli) -> R<()> {
    let ns = cli.no_sync;
    match cli.cmd {
        Cmd::Info { image, json } => {
            let fs = open(&image, false, ns)?;
            report::info(&fs, &image, json)
        }
        Cmd::Ls {
            image,
            path,
            long,
            recursive,
            all,
            json,
        } => {
            let fs = open(&image, false, ns)?;
            report::ls(&fs, &path, long, recursive, all, json)
        }
        Cmd::Stat { image, path, json } => {
            let fs = open(&image, false, ns)?;
            let ino = fs.resolve(&path, false)?;
            report::stat(&fs, &path, ino, json)
        }
        Cmd::Readlink { image, path } => {
            let fs = open(&image, false, ns)?;
            let ino = fs.resolve(&path, false)?;
            let t = fs
                .read_link(&fs.read_inode(ino)?)
                .map_err(|e| e.at(&path))?;
            let mut out = std::io::stdout().lock();
            out.write_all(&t)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|e| Error::io("writing output", e))?;
            Ok(())
        }
        Cmd::Get {
            image,
            path,
            dest,
            recursive,
        } => {
            let fs = open(&image, false, ns)?;
            let ino = fs.resolve(&path, true)?;
            let inode = fs.read_inode(ino)?;
            let to_stdout = dest.as_ref().is_none_or(|d| d.as_os_str() == "-");
            if inode.is_dir() {
                if !recursive {
                    return Err(Error::IsADirectory(format!(
                        "{path} (use -r to copy a directory)"
                    ))
                    .into());
                }
                if to_stdout {
                    return Err(usage("get -r needs a destination directory"));
                }
                let mut d = dest.unwrap();
                if d.is_dir() && !path.trim_matches('/').is_empty() {
                    d = d.join(basename(&path)?);
                }
                for w in host::get_tree(&fs, ino, &d).map_err(|e| e.at(&path))? {
                    eprintln!("ext3edit: warning: {w}");
                }
                return Ok(());
            }
            if to_stdout {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
                fs.read_file(&inode, &mut out).map_err(|e| e.at(&path))?;
                out.flush().map_err(|e| Error::io("writing output", e))?;
                return Ok(());
            }
            let mut d = dest.unwrap();
            if d.is_dir() {
                d = d.join(basename(&path)?);
            }
            if recursive {
                for w in host::get_tree(&fs, ino, &d).map_err(|e| e.at(&path))? {
                    eprintln!("ext3edit: warning: {w}");
                }
                return Ok(());
            }
            host::get_file(&fs, ino, &d).map_err(|e| e.at(&path))?;
            Ok(())
        }
        Cmd::Put {
            image,
            src,
            dest,
            recursive,
            parents,
            attrs,
        } => {
            let a = new_attrs(&attrs, 0o644)?;
            let opts = PutOptions {
                mode: attrs.mode.as_deref().map(parse_mode).transpose()?,
                owner: Some((a.uid, a.gid)),
                mtime: a.mtime,
            };
            let mut fs = open(&image, true, ns)?;
            let dir_attrs = NewFile {
                perm: 0o755,
                ..a.clone()
            };
            if parents {
                if let Some((p, _)) = split_last(&dest) {
                    if !dest.ends_with('/') {
                        mkdir_p(&mut fs, p, &dir_attrs)?;
                    } else {
                        mkdir_p(&mut fs, &dest, &dir_attrs)?;
                    }
                }
            }
            if src == "-" {
                let t = target_path(&fs, &dest, None)?;
                let (parent, name) = fs.resolve_parent(&t)?;
                host::put_stdin(&mut fs, parent, &name, &a).map_err(|e| e.at(&t))?;
                return commit(fs);
            }
            let sp = Path::new(&src);
            let meta = std::fs::symlink_metadata(sp)
                .map_err(|e| Error::io(format!("reading {src}"), e))?;
            let src_name = sp
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| usage(format!("{src:?} has no file name")))?;
            let t = target_path(&fs, &dest, Some(&src_name))?;
            let (parent, name) = fs.resolve_parent(&t)?;
            if recursive {
                host::put_tree(&mut fs, sp, parent, &name, &opts).map_err(|e| e.at(&t))?;
            } else {
                if meta.is_dir() || (meta.file_type().is_symlink() && sp.is_dir()) {
                    return Err(
                        Error::IsADirectory(format!("{src} (use -r to copy a directory)")).into(),
                    );
                }
                host::put_file(&mut fs, sp, parent, &name, &opts).map_err(|e| e.at(&t))?;
            }
            commit(fs)
        }
        Cmd::Mkdir {
            image,
            path,
            parents,
            attrs,
        } => {
            let a = new_attrs(&attrs, 0o755)?;
            let mut fs = open(&image, true, ns)?;
            if parents {
                let ino = mkdir_p(
                    &mut fs,
                    &path,
                    &NewFile {
                        perm: 0o755,
                        ..a.clone()
                    },
                )?;
                // The last directory gets the requested mode and owner.
                if attrs.mode.is_some() || attrs.owner.is_some() {
                    fs.set_perm(ino, a.perm)?;
                    fs.set_owner(ino, a.uid, a.gid)?;
                }
            } else {
                let (parent, name) = fs.resolve_parent(&path)?;
                fs.mkdir(parent, &name, &a).map_err(|e| e.at(&path))?;
            }
            commit(fs)
        }
        Cmd::Rm {
            image,
            path,
            recursive,
            force,
        } => {
            let mut fs = open(&image, true, ns)?;
            let (parent, name) = fs.resolve_parent(&path)?;
            let dir = fs.read_inode(parent)?;
            let Some(e) = fs.lookup(&dir, &name)? else {
                if force {
                    return Ok(());
                }
                return Err(Error::NotFound(path).into());
            };
            if fs.read_inode(e.ino)?.is_dir() {
                if !recursive {
                    return Err(Error::IsADirectory(format!(
                        "{path} (use -r to remove a directory)"
                    ))
                    .into());
                }
                fs.remove_tree(parent, &name).map_err(|e| e.at(&path))?;
            } else {
                fs.unlink(parent, &name).map_err(|e| e.at(&path))?;
            }
            commit(fs)
        }
        Cmd::Rmdir { image, path } => {
            let mut fs = open(&image, true, ns)?;
            let (parent, name) = fs.resolve_parent(&path)?;
            fs.rmdir(parent, &name).map_err(|e| e.at(&path))?;
            commit(fs)
        }
        Cmd::Mv { image, src, dest } => {
            let mut fs = open(&image, true, ns)?;
            let (sp, sname) = fs.resolve_parent(&src)?;
            let sdir = fs.read_inode(sp)?;
            if fs.lookup(&sdir, &sname)?.is_none() {
                return Err(Error::NotFound(src).into());
            }
            let t = target_path(&fs, &dest, basename(&src).ok().as_deref())?;
            let (dp, dname) = fs.resolve_parent(&t)?;
            fs.rename(sp, &sname, dp, &dname)
                .map_err(|e| e.at(&format!("{src} -> {t}")))?;
            commit(fs)
        }
        Cmd::Ln {
            image,
            target,
            link,
            symbolic,
            attrs,
        } => {
            let a = new_attrs(&attrs, 0o777)?;
            let mut fs = open(&image, true, ns)?;
            if symbolic {
                let base = target
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let t = target_path(&fs, &link, if base.is_empty() { None } else { Some(&base) })?;
                let (parent, name) = fs.resolve_parent(&t)?;
                fs.symlink(parent, &name, target.as_bytes(), &a)
                    .map_err(|e| e.at(&t))?;
            } else {
                let ino = fs.resolve(&target, false)?;
                let t = target_path(&fs, &link, basename(&target).ok().as_deref())?;
                let (parent, name) = fs.resolve_parent(&t)?;
                fs.link(ino, parent, &name).map_err(|e| e.at(&t))?;
            }
            commit(fs)
        }
        Cmd::Chmod { image, mode, path } => {
            let m = parse_mode(&mode)?;
            let mut fs = open(&image, true, ns)?;
            let ino = fs.resolve(&path, true)?;
            fs.set_perm(ino, m).map_err(|e| e.at(&path))?;
            commit(fs)
        }
        Cmd::Chown {
            image,
            owner,
            path,
            no_deref,
            ..
        } => {
            let (u, g) = parse_owner(&owner)?;
            let mut fs = open(&image, true, ns)?;
            let ino = fs.resolve(&path, !no_deref)?;
            let cur = fs.read_inode(ino)?;
            fs.set_owner(ino, u.unwrap_or(cur.uid()), g.unwrap_or(cur.gid()))
                .map_err(|e| e.at(&path))?;
            commit(fs)
        }
        Cmd::Touch { image, path, mtime } => {
            let t = mtime.as_deref().map(parse_time).transpose()?;
            let mut fs = open(&image, true, ns)?;
            let now = t.unwrap_or(fs.now());
            match fs.try_resolve(&path, true)? {
                Some(ino) => fs
                    .set_times(ino, Some(now), Some(now))
                    .map_err(|e| e.at(&path))?,
                None => {
                    let (parent, name) = fs.resolve_parent(&path)?;
                    let a = NewFile {
                        perm: 0o644,
                        uid: 0,
                        gid: 0,
                        mtime: Some(now),
                    };
                    fs.create_file(parent, &name, &a, &mut std::io::empty())
                        .map_err(|e| e.at(&path))?;
                }
            }
            commit(fs)
        }
        Cmd::Truncate { image, path, size } => {
            let mut fs = open(&image, true, ns)?;
            let ino = fs.resolve(&path, true)?;
            fs.truncate_ino(ino, size).map_err(|e| e.at(&path))?;
            commit(fs)
        }
        Cmd::Journal(JournalCmd::Info { image, json }) => {
            let fs = open(&image, false, ns)?;
            report::journal_info(&fs, &image, json)
        }
        Cmd::Journal(JournalCmd::Replay { image }) => {
            if OUTPUT_ARG.get().is_some_and(|o| o.is_some()) {
                return Err(usage("journal replay does not take --output"));
            }
            let opts = OpenOptions {
                replay_only: true,
                sync: !ns,
                ..OpenOptions::default()
            };
            let mut fs = Filesystem::open(&image, &opts).map_err(|e| Fail {
                code: 1,
                msg: format!("{}: {e}", image.display()),
            })?;
            if let Some(n) = fs.recovery_note() {
                return Err(Fail {
                    code: 1,
                    msg: format!("{}: {n}", image.display()),
                });
            }
            let Some(r) = fs.recovery_report().cloned() else {
                eprintln!(
                    "ext3edit: {}: the journal does not need recovery; nothing to do",
                    image.display()
                );
                return Ok(());
            };
            fs.commit()?;
            eprintln!(
                "ext3edit: {}: replayed {} transaction{} ({} block{}){}",
                image.display(),
                r.transactions.len(),
                if r.transactions.len() == 1 { "" } else { "s" },
                r.blocks.len(),
                if r.blocks.len() == 1 { "" } else { "s" },
                replay_problems(&r)
            );
            Ok(())
        }
        Cmd::Mknod {
            image,
            path,
            kind,
            major,
            minor,
            attrs,
        } => {
            let ft = match kind.as_str() {
                "c" | "u" => FileType::CharDevice,
                "b" => FileType::BlockDevice,
                "p" => FileType::Fifo,
                "s" => FileType::Socket,
                _ => {
                    return Err(usage(format!(
                        "invalid node type {kind:?}: expected c, b, p or s"
                    )))
                }
            };
            let dev = matches!(ft, FileType::CharDevice | FileType::BlockDevice);
            let rdev = match (dev, major, minor) {
                (true, Some(a), Some(b)) if a <= 0xfff && b <= 0xf_ffff => (a, b),
                (true, Some(a), Some(b)) => {
                    return Err(usage(format!(
                        "device number {a}:{b} does not fit (major at most 4095, minor at most 1048575)"
                    )))
                }
                (true, _, _) => return Err(usage("device nodes need MAJOR and MINOR")),
                (false, None, None) => (0, 0),
                (false, _, _) => return Err(usage("fifos and sockets take no MAJOR/MINOR")),
            };
            let a = new_attrs(&attrs, 0o644)?;
            let mut fs = open(&image, true, ns)?;
            let (parent, name) = fs.resolve_parent(&path)?;
            fs.mknod(parent, &name, ft, rdev, &a)
                .map_err(|e| e.at(&path))?;
            commit(fs)
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // No command at all: the help, on stderr.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // One line: clap's first line, and where to look for more.
            let text = e.render().to_string();
            let msg: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty())
                .collect();
            let msg = msg.join(" ");
            let msg = msg.trim_start_matches("error: ");
            eprintln!("ext3edit: usage error: {msg} (see ext3edit --help)");
            return ExitCode::from(2);
        }
    };
    let _ = OUTPUT_ARG.set(cli.output.clone());
    let _ = NO_JOURNAL.set(cli.no_journal);
    let r = run(cli);
    // A failed command leaves no partial output behind.
    if let Some((tmp, _)) = OUTPUT.lock().unwrap().take() {
        let _ = std::fs::remove_file(tmp);
    }
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // A closed stdout (ext3edit get ... | head) is not an error.
            if f.msg.contains("Broken pipe") {
                return ExitCode::SUCCESS;
            }
            let prefix = if f.code == 2 { "usage error: " } else { "" };
            eprintln!("ext3edit: {prefix}{}", f.msg.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}
