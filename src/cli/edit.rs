//! The commands that change entries in place: mkdir, rm, rmdir, mv, ln,
//! chmod, chown, touch, truncate, mknod; and the helpers put shares.

use std::path::PathBuf;

use clap::Subcommand;
use ext3edit::layout::FileType;
use ext3edit::{Error, Filesystem, Ino, NewFile};

use super::args::{parse_mode, parse_owner, parse_time, AttrSpec, Attrs, OwnerTime, WriteOpts};
use super::image::{commit, open_write};
use super::{join, usage, R};

#[derive(Subcommand)]
#[command(defer = true)]
pub enum EditCmd {
    /// Create a directory.
    #[command(
        after_help = "Example:\n  ext3edit mkdir disk.ext3 /home/alice/.ssh -p --mode 700 --owner 500:500\n\nNew directories get mode 755 unless --mode is given; with -p the\nmissing parents get 755 and the last one the --mode and --owner given."
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
        #[command(flatten)]
        write: WriteOpts,
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
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Remove an empty directory.
    #[command(after_help = "Example:\n  ext3edit rmdir disk.ext3 /home/alice/empty")]
    Rmdir {
        /// The image file.
        image: PathBuf,
        /// Directory inside the image.
        path: String,
        #[command(flatten)]
        write: WriteOpts,
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
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Make a hard link, or with -s a symbolic link.
    #[command(
        after_help = "Examples:\n  ext3edit ln disk.ext3 /usr/bin/vim /usr/bin/vi\n  ext3edit ln disk.ext3 ../lib/libfoo.so.1 /usr/lib/libfoo.so -s\n\nA symlink's permission bits are always 777 (they are not used); --owner\nand --mtime apply to a new symlink."
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
        attrs: OwnerTime,
        #[command(flatten)]
        write: WriteOpts,
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
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Change owner and group.
    #[command(
        after_help = "Examples:\n  ext3edit chown disk.ext3 500:500 /home/alice\n  ext3edit chown disk.ext3 alice: /home/alice     # alice and her login group\n  ext3edit chown disk.ext3 0:0 /etc/rc.d/rc3.d/S55sshd -h   # the link itself\n\nAs in chown(1), -h means --no-dereference; --help prints this help.",
        disable_help_flag = true
    )]
    Chown {
        /// Print help (there is no -h: it means --no-dereference).
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        /// The image file.
        image: PathBuf,
        /// USER:GROUP, names or numbers, names looked up in the image's own
        /// /etc/passwd and /etc/group; USER alone keeps the group, USER:
        /// takes the user's login group, :GROUP changes only the group.
        owner: String,
        /// Path inside the image.
        path: String,
        /// Change a symlink itself instead of its target.
        #[arg(short = 'h', long = "no-dereference")]
        no_deref: bool,
        #[command(flatten)]
        write: WriteOpts,
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
        #[command(flatten)]
        write: WriteOpts,
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
        #[command(flatten)]
        write: WriteOpts,
    },
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
        #[command(flatten)]
        write: WriteOpts,
    },
}

/// Attributes of a new entry from the command's options (syntax checked
/// here, before the image is opened; names are looked up with
/// [`AttrSpec::resolve`] once it is).
pub fn new_attrs(a: &Attrs, default_perm: u16) -> R<AttrSpec> {
    let perm = match &a.mode {
        Some(m) => parse_mode(m)?,
        None => default_perm,
    };
    owner_time(&a.owned, perm)
}

fn owner_time(a: &OwnerTime, perm: u16) -> R<AttrSpec> {
    Ok(AttrSpec {
        perm,
        owner: a.owner.as_deref().map(parse_owner).transpose()?,
        mtime: a.mtime.as_deref().map(parse_time).transpose()?,
    })
}

/// Create the missing directories of `path` (mkdir -p); returns the inode.
pub fn mkdir_p(fs: &mut Filesystem, path: &str, attrs: &NewFile) -> R<Ino> {
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

/// The last component of `p`, which must name something.
pub fn basename(p: &str) -> R<String> {
    let t = p.trim_end_matches('/');
    let b = t.rsplit('/').next().unwrap_or("");
    if b.is_empty() || b == "." || b == ".." {
        return Err(usage(format!("{p:?} has no file name")));
    }
    Ok(b.to_string())
}

/// Where a new entry goes: an existing directory receives `src_name`
/// inside it; otherwise DEST itself names the entry.
pub fn target_path(fs: &Filesystem, dest: &str, src_name: Option<&str>) -> R<String> {
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

/// Run one of the editing commands.
pub fn run(cmd: EditCmd, g: &WriteOpts) -> R<()> {
    match cmd {
        EditCmd::Mkdir {
            image,
            path,
            parents,
            attrs,
            write,
        } => {
            let a = new_attrs(&attrs, 0o755)?;
            let mut fs = open_write(&image, &write.merged(g))?;
            let a = a.resolve(&fs)?;
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
                if attrs.mode.is_some() || attrs.owned.owner.is_some() {
                    fs.set_perm(ino, a.perm)?;
                    fs.set_owner(ino, a.uid, a.gid)?;
                }
            } else {
                let (parent, name) = fs.resolve_parent(&path)?;
                fs.mkdir(parent, &name, &a).map_err(|e| e.at(&path))?;
            }
            commit(fs)
        }
        EditCmd::Rm {
            image,
            path,
            recursive,
            force,
            write,
        } => {
            let mut fs = open_write(&image, &write.merged(g))?;
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
        EditCmd::Rmdir { image, path, write } => {
            let mut fs = open_write(&image, &write.merged(g))?;
            let (parent, name) = fs.resolve_parent(&path)?;
            fs.rmdir(parent, &name).map_err(|e| e.at(&path))?;
            commit(fs)
        }
        EditCmd::Mv {
            image,
            src,
            dest,
            write,
        } => {
            let mut fs = open_write(&image, &write.merged(g))?;
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
        EditCmd::Ln {
            image,
            target,
            link,
            symbolic,
            attrs,
            write,
        } => {
            let a = owner_time(&attrs, 0o777)?;
            let mut fs = open_write(&image, &write.merged(g))?;
            let a = a.resolve(&fs)?;
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
                if attrs.owner.is_some() || attrs.mtime.is_some() {
                    return Err(usage(
                        "a hard link shares its file's owner and times: --owner and --mtime go with ln -s",
                    ));
                }
                let ino = fs.resolve(&target, false)?;
                let t = target_path(&fs, &link, basename(&target).ok().as_deref())?;
                let (parent, name) = fs.resolve_parent(&t)?;
                fs.link(ino, parent, &name).map_err(|e| e.at(&t))?;
            }
            commit(fs)
        }
        EditCmd::Chmod {
            image,
            mode,
            path,
            write,
        } => {
            let m = parse_mode(&mode)?;
            let mut fs = open_write(&image, &write.merged(g))?;
            let ino = fs.resolve(&path, true)?;
            fs.set_perm(ino, m).map_err(|e| e.at(&path))?;
            commit(fs)
        }
        EditCmd::Chown {
            image,
            owner,
            path,
            no_deref,
            write,
            ..
        } => {
            let spec = parse_owner(&owner)?;
            let mut fs = open_write(&image, &write.merged(g))?;
            let (u, gid) = spec.resolve(&fs)?;
            let ino = fs.resolve(&path, !no_deref)?;
            let cur = fs.read_inode(ino)?;
            fs.set_owner(ino, u.unwrap_or(cur.uid()), gid.unwrap_or(cur.gid()))
                .map_err(|e| e.at(&path))?;
            commit(fs)
        }
        EditCmd::Touch {
            image,
            path,
            mtime,
            write,
        } => {
            let t = mtime.as_deref().map(parse_time).transpose()?;
            let mut fs = open_write(&image, &write.merged(g))?;
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
        EditCmd::Truncate {
            image,
            path,
            size,
            write,
        } => {
            let mut fs = open_write(&image, &write.merged(g))?;
            let ino = fs.resolve(&path, true)?;
            fs.truncate_ino(ino, size).map_err(|e| e.at(&path))?;
            commit(fs)
        }
        EditCmd::Mknod {
            image,
            path,
            kind,
            major,
            minor,
            attrs,
            write,
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
            let mut fs = open_write(&image, &write.merged(g))?;
            let a = a.resolve(&fs)?;
            let (parent, name) = fs.resolve_parent(&path)?;
            fs.mknod(parent, &name, ft, rdev, &a)
                .map_err(|e| e.at(&path))?;
            commit(fs)
        }
    }
}
