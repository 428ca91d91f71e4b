//! Copying between the host and the image: get and put.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use ext3edit::host::{self, PutOptions};
use ext3edit::path::split_last;
use ext3edit::{Error, NewFile};

use super::args::{parse_mode, Attrs, WriteOpts};
use super::edit::{basename, mkdir_p, new_attrs, target_path};
use super::image::{commit, open_read, open_write};
use super::{usage, R};

#[derive(Subcommand)]
pub enum CopyCmd {
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
        } => {
            if global.output.is_some() || global.no_journal || global.no_sync {
                return Err(usage(
                    "get does not change the image: --output, --no-journal and --no-sync apply only to commands that do",
                ));
            }
            get(&image, &path, dest, recursive)
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

fn get(image: &Path, path: &str, dest: Option<PathBuf>, recursive: bool) -> R<()> {
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
        for w in host::get_tree(&fs, ino, &d).map_err(|e| e.at(path))? {
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
    if recursive {
        for w in host::get_tree(&fs, ino, &d).map_err(|e| e.at(path))? {
            super::say(format_args!("ext3edit: warning: {w}"));
        }
        return Ok(());
    }
    host::get_file(&fs, ino, &d).map_err(|e| e.at(path))?;
    Ok(())
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
    let a = new_attrs(attrs, 0o644)?;
    let opts = PutOptions {
        mode: attrs.mode.as_deref().map(parse_mode).transpose()?,
        owner: Some((a.uid, a.gid)),
        mtime: a.mtime,
    };
    let mut fs = open_write(image, w)?;
    let dir_attrs = NewFile {
        perm: 0o755,
        ..a.clone()
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
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        host::put_reader(&mut fs, &mut lock, parent, &name, &a).map_err(|e| e.at(&t))?;
        return commit(fs);
    }
    let sp = Path::new(src);
    let meta = std::fs::symlink_metadata(sp).map_err(|e| Error::io(format!("reading {src}"), e))?;
    let src_name = sp
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| usage(format!("{src:?} has no file name")))?;
    let t = target_path(&fs, dest, Some(&src_name))?;
    let (parent, name) = fs.resolve_parent(&t)?;
    if recursive {
        host::put_tree(&mut fs, sp, parent, &name, &opts).map_err(|e| e.at(&t))?;
    } else {
        if meta.is_dir() || (meta.file_type().is_symlink() && sp.is_dir()) {
            return Err(Error::IsADirectory(format!("{src} (use -r to copy a directory)")).into());
        }
        host::put_file(&mut fs, sp, parent, &name, &opts).map_err(|e| e.at(&t))?;
    }
    commit(fs)
}
