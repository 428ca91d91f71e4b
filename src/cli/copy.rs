//! Copying between the host and the image: get and put.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use ext3edit::host::{self, GetOptions, PutOptions};
use ext3edit::path::split_last;
use ext3edit::{Error, NewFile};

use super::args::{parse_mode, Attrs, WriteOpts};
use super::edit::{basename, mkdir_p, new_attrs, target_path};
use super::image::{commit, open_read, open_write};
use super::{usage, R};

#[derive(Subcommand)]
#[command(defer = true)]
pub enum CopyCmd {
    /// Copy a file (or with -r a tree) out of the image.
    #[command(
        after_help = "Examples:\n  ext3edit get disk.ext3 /etc/passwd            # to stdout\n  ext3edit get disk.ext3 /etc/passwd passwd.txt\n  ext3edit get disk.ext3 /etc etc-copy -r\n  ext3edit get disk.ext3 / rootfs -r -p         # keep setuid bits and owners\n\nDEST that is an existing directory receives the file under its own name.\nget writes to what DEST is, as cp does: a regular file is replaced\natomically (a temporary file beside it, then a rename); a device, fifo or\nsymlink's target is written in place; a dangling symlink is refused.\nFiles and directories keep the image's times. Without -p, modes lose\nsetuid, setgid and sticky and the umask applies, and the files belong to\nyou; with -p the whole mode is kept and, as root, the image's owner and\ngroup (as cp -p and tar -p do).\nget -r never follows a symlink of the image on the host and never writes\noutside DEST; device nodes are skipped with a warning."
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
        /// Keep setuid/setgid/sticky bits (no umask) and, as root, owners.
        #[arg(short = 'p', long)]
        preserve: bool,
    },
    /// Copy a host file (or with -r a tree, or "-" for stdin) into the image.
    #[command(
        after_help = "Examples:\n  ext3edit put disk.ext3 resolv.conf /etc/           # becomes /etc/resolv.conf\n  ext3edit put disk.ext3 key.pub /root/.ssh/authorized_keys -p --mode 600\n  cat motd | ext3edit put disk.ext3 - /etc/motd\n  ext3edit put disk.ext3 ./rootfs-overlay/ / -r --owner 0:0   # merge into /\n  ext3edit put disk.ext3 ./home-alice/ /home/alice -r --owner alice:alice\n\nAn existing file is overwritten (its inode is kept, so hard links see the\nnew content) and keeps its mode, owner, group and extended attributes,\nexcept for what --mode or --owner gives (--owner USER alone keeps the\ngroup); a new file gets the source's mode and owner 0:0 unless given.\nBlocks of zeros become holes. put -r keeps modes, symlinks, hard links,\nfifos and device nodes; --mode applies to regular files.\n\nput -r SRC/ DEST (or SRC/.) merges the contents of SRC into DEST, as\ncp -r SRC/. DEST and rsync SRC/ DEST do; without the slash SRC is copied\nas DEST/SRC (or as DEST when DEST does not exist), merged into a\ndirectory of that name if there is one. Existing directories keep their\nmode and owner; a symlink of the image to a directory (/sbin -> usr/sbin)\nis followed inside the image and stays a link; existing symlinks and\nnodes are replaced by what SRC has. A directory in SRC where the image\nhas a non-directory is an error found before anything is written.\n\n--owner takes names too, looked up in the image's own /etc/passwd and\n/etc/group (never the host's): alice:wheel, alice: (her login group)."
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
        #[command(flatten)]
        write: WriteOpts,
    },
}

/// Run get or put.
pub fn run(cmd: CopyCmd, global: &WriteOpts) -> R<()> {
    match cmd {
        CopyCmd::Get {
            image,
            path,
            dest,
            recursive,
            preserve,
        } => {
            if global.output.is_some() || global.no_journal || global.no_sync {
                return Err(usage(
                    "get does not change the image: --output, --no-journal and --no-sync apply only to commands that do",
                ));
            }
            get(&image, &path, dest, recursive, &GetOptions { preserve })
        }
        CopyCmd::Put {
            image,
            src,
            dest,
            recursive,
            parents,
            attrs,
            write,
        } => put(
            &image,
            &src,
            &dest,
            recursive,
            parents,
            &attrs,
            &write.merged(global),
        ),
    }
}

fn get(
    image: &Path,
    path: &str,
    dest: Option<PathBuf>,
    recursive: bool,
    opts: &GetOptions,
) -> R<()> {
    let fs = open_read(image)?;
    let ino = fs.resolve(path, true)?;
    let inode = fs.read_inode(ino)?;
    let to_stdout = dest.as_ref().is_none_or(|d| d.as_os_str() == "-");
    if inode.is_dir() {
        if !recursive {
            return Err(Error::IsADirectory(format!("{path} (use -r to copy a directory)")).into());
        }
        if to_stdout {
            return Err(usage("get -r needs a destination directory"));
        }
        let mut d = dest.unwrap();
        if d.is_dir() && !path.trim_matches('/').is_empty() {
            d = d.join(basename(path)?);
        }
        for w in host::get_tree(&fs, ino, &d, opts).map_err(|e| e.at(path))? {
            super::say(format_args!("ext3edit: warning: {w}"));
        }
        return Ok(());
    }
    if to_stdout {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        fs.read_file(&inode, &mut out).map_err(|e| e.at(path))?;
        out.flush().map_err(|e| Error::io("writing output", e))?;
        return Ok(());
    }
    let mut d = dest.unwrap();
    if d.is_dir() {
        d = d.join(basename(path)?);
    }
    if same_file(image, &d) {
        return Err(Error::Invalid(format!(
            "{}: is the image itself; not writing over it",
            d.display()
        ))
        .into());
    }
    if recursive {
        for w in host::get_tree(&fs, ino, &d, opts).map_err(|e| e.at(path))? {
            super::say(format_args!("ext3edit: warning: {w}"));
        }
        return Ok(());
    }
    host::get_file(&fs, ino, &d, opts).map_err(|e| e.at(path))?;
    Ok(())
}

/// Whether a put -r SRC names the contents of a directory (`SRC/`,
/// `SRC/.`, `.`), to be merged into DEST rather than copied as an entry.
fn names_contents(src: &str) -> bool {
    src.ends_with('/') || src == "." || src == ".." || src.ends_with("/.") || src.ends_with("/..")
}

/// Whether two host paths (links followed) are one file.
#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
#[cfg(not(unix))]
fn same_file(_a: &Path, _b: &Path) -> bool {
    false
}

fn put(
    image: &Path,
    src: &str,
    dest: &str,
    recursive: bool,
    parents: bool,
    attrs: &Attrs,
    w: &WriteOpts,
) -> R<()> {
    let spec = new_attrs(attrs, 0o644)?;
    let mode = attrs.mode.as_deref().map(parse_mode).transpose()?;
    let mut fs = open_write(image, w)?;
    let (uid, gid) = spec.ids(&fs)?;
    let opts = PutOptions {
        mode,
        uid,
        gid,
        mtime: spec.mtime,
    };
    let dir_attrs = NewFile {
        perm: 0o755,
        uid: uid.unwrap_or(0),
        gid: gid.unwrap_or(0),
        mtime: spec.mtime,
    };
    if parents {
        if let Some((p, _)) = split_last(dest) {
            if !dest.ends_with('/') {
                mkdir_p(&mut fs, p, &dir_attrs)?;
            } else {
                mkdir_p(&mut fs, dest, &dir_attrs)?;
            }
        }
    }
    if src == "-" {
        let t = target_path(&fs, dest, None)?;
        let (parent, name) = fs.resolve_parent(&t)?;
        // An existing file keeps its mode, owner and group.
        let a = host::attrs_at(&fs, parent, &name, &opts, 0o644).map_err(|e| e.at(&t))?;
        host::put_stdin(&mut fs, parent, &name, &a).map_err(|e| e.at(&t))?;
        return commit(fs);
    }
    let sp = Path::new(src);
    let meta = std::fs::symlink_metadata(sp).map_err(|e| Error::io(format!("reading {src}"), e))?;
    if recursive && names_contents(src) {
        // SRC/ or SRC/.: its contents go into DEST (made if missing).
        if !sp.is_dir() {
            return Err(Error::NotADirectory(src.to_string()).into());
        }
        match fs.try_resolve(dest, true)? {
            Some(d) if fs.read_inode(d)?.is_dir() => host::put_tree_into(&mut fs, sp, d, &opts)?,
            Some(_) => return Err(Error::NotADirectory(dest.to_string()).into()),
            None => {
                let (parent, name) = fs.resolve_parent(dest)?;
                host::put_tree(&mut fs, sp, parent, &name, &opts)?
            }
        }
        return commit(fs);
    }
    let src_name = sp
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| usage(format!("{src:?} has no file name")))?;
    let t = target_path(&fs, dest, Some(&src_name))?;
    let (parent, name) = fs.resolve_parent(&t)?;
    if recursive {
        host::put_tree(&mut fs, sp, parent, &name, &opts)?;
    } else {
        if meta.is_dir() || (meta.file_type().is_symlink() && sp.is_dir()) {
            return Err(Error::IsADirectory(format!("{src} (use -r to copy a directory)")).into());
        }
        host::put_file(&mut fs, sp, parent, &name, &opts).map_err(|e| e.at(&t))?;
    }
    commit(fs)
}
