//! Tar archives: import-tar and export-tar.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use ext3edit::tar::export::export;
use ext3edit::tar::import::{import, ImportOptions, Whiteouts};
use ext3edit::Error;

use super::args::WriteOpts;
use super::image::{commit, open_read, open_write};
use super::{failure, say, usage, R};

/// `--whiteouts`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WhiteoutMode {
    /// `.wh.NAME` removes NAME; `.wh..wh..opq` empties the directory of
    /// what the image had before the archive.
    Apply,
    /// Keep overlayfs's form: a 0:0 character device, and
    /// trusted.overlay.opaque=y on an opaque directory.
    Overlay,
}

const IMPORT_HELP: &str = "\
Examples:
  ext3edit import-tar disk.ext4 rootfs.tar.gz            # into /
  docker export c1 | ext3edit import-tar disk.ext4 -
  ext3edit import-tar disk.ext4 layer.tar.zst /srv/app   # into /srv/app
  ext3edit import-tar lower.ext4 layer.tar --whiteouts overlay

TARBALL is a tar archive, plain or compressed with gzip, bzip2, xz or zstd
(recognised by content, not by name), or - for standard input. It is read
once, as a stream. DEST (default /) is an existing directory of the image.

Members are applied as GNU tar extracts them as root with
--numeric-owner --xattrs --acls --same-permissions: numeric uid and gid
from the headers (never the host's or yours), the whole mode (setuid,
setgid, sticky), mtime, and atime/ctime when PAX records give them (with
nanoseconds where the inode has room: inodes larger than 128 bytes);
hard links to earlier members, symlinks, character and block devices,
fifos, sparse members (GNU and PAX 0.0, 0.1, 1.0: holes stay holes),
long names (GNU and PAX), every SCHILY.xattr.* record (security.*,
trusted.*, user.*, system.posix_acl_*), and SCHILY.acl.access/default,
stored as the kernel stores ACLs. An existing file, symlink or node is
replaced (unlinked first: its other hard links keep the old content), an
empty directory too; an existing directory is merged into and takes the
member's mode, owner and times. Directory times are set last. Missing
parent directories are made 0755 root:root.

Safety: a leading / and everything up to a .. component are stripped from
member names, as GNU tar does (one warning line says so). No symlink is
ever followed for a member's parent directories: a member that would go
through a symlink (made by an earlier member, or already in the image) is
refused, naming it. A hard link must name an earlier member.

OCI layers: --whiteouts apply (default) removes NAME for a .wh.NAME member
and, for .wh..wh..opq, everything the directory held before
the archive but what the archive names itself (the root's lost+found stays);
--whiteouts overlay keeps them as overlayfs reads them (NAME as a 0:0
character device; trusted.overlay.opaque=y on the directory).

All or nothing: a truncated or corrupt archive (bad checksum, bad number,
a PAX record whose length lies, a hard link to a missing member...) fails
with one line naming the member and its offset in the decompressed
stream, and the image is left byte for byte as it was, also when the
import was committed in several journal transactions.

Not yet: --mkfs SIZE and --size auto (a new image for the archive in one
step). Make the image first: ext3edit mkfs IMAGE SIZE, then import-tar.";

const EXPORT_HELP: &str = "\
Examples:
  ext3edit export-tar disk.ext4 rootfs.tar
  ext3edit export-tar disk.ext4 /etc etc.tar.gz
  ext3edit export-tar disk.ext4 - | tar -tvf -
  ext3edit export-tar disk.ext4 / - --compress zst > rootfs.tar.zst

Writes a POSIX.1-2001 (PAX) tar of the tree at PATH (default /): members
named from the image root (./ for the root itself, etc/, etc/passwd),
depth first with each directory's entries sorted by name; numeric owners
(no user names), whole modes, mtime, atime and ctime with nanoseconds,
hard links as link members, symlinks, devices, fifos, extended attributes
as SCHILY.xattr.*, POSIX ACLs as SCHILY.acl.access/default (text, numeric
ids). The same image gives the same bytes (nothing depends on the clock),
and import-tar of the result gives the same tree back. A file with holes
is a PAX 1.0 sparse member (GNU tar's --sparse-version=1.0 form: GNU tar,
Python's tarfile and import-tar restore the holes). Sockets have no tar form and are skipped with a
warning.

OUT - is standard output; otherwise OUT is written through a temporary
file beside it, renamed over OUT at the end. Compression: by OUT's name
(.gz/.tgz, .bz2/.tbz2, .xz/.txz, .zst/.tzst) or --compress none, gz,
bz2, xz, zst (the one for stdout). Extract with GNU tar as root:
tar --xattrs --xattrs-include='*' --acls --numeric-owner -xpf OUT";

#[derive(Subcommand)]
#[command(defer = true)]
pub enum TarCmd {
    /// Unpack a tar archive (tar, .gz, .bz2, .xz, .zst, or - for stdin) into the image.
    #[command(name = "import-tar", after_help = IMPORT_HELP)]
    ImportTar {
        /// The image file.
        image: PathBuf,
        /// The archive; "-" reads stdin.
        tarball: String,
        /// Directory of the image to unpack into (default /).
        dest: Option<String>,
        /// What OCI whiteout members (.wh.NAME, .wh..wh..opq) do.
        #[arg(long, value_enum, default_value = "apply")]
        whiteouts: WhiteoutMode,
        /// (not yet) make a new image of SIZE first; comes with the mkfs command.
        #[arg(long, value_name = "SIZE")]
        mkfs: Option<String>,
        /// (not yet) --size auto: a new image that fits the content.
        #[arg(long, value_name = "auto")]
        size: Option<String>,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Write a tree of the image as a PAX tar archive (reproducible).
    #[command(name = "export-tar", after_help = EXPORT_HELP)]
    ExportTar {
        /// The image file.
        image: PathBuf,
        /// PATH inside the image (default /), then OUT ("-" is stdout).
        #[arg(num_args = 1..=2, required = true, value_name = "[PATH] OUT")]
        args: Vec<String>,
        /// none, gz, bz2, xz or zst (default: by OUT's name; none for stdout).
        #[arg(long, value_name = "FORMAT")]
        compress: Option<String>,
    },
}

/// Run import-tar or export-tar.
pub fn run(cmd: TarCmd, global: &WriteOpts) -> R<()> {
    match cmd {
        TarCmd::ImportTar {
            image,
            tarball,
            dest,
            whiteouts,
            mkfs,
            size,
            write,
        } => {
            if mkfs.is_some() || size.is_some() {
                return Err(failure(
                    "import-tar --mkfs/--size: not implemented yet; make the image first (ext3edit mkfs IMAGE SIZE), then import-tar into it",
                ));
            }
            let opts = ImportOptions {
                whiteouts: match whiteouts {
                    WhiteoutMode::Apply => Whiteouts::Apply,
                    WhiteoutMode::Overlay => Whiteouts::Overlay,
                },
            };
            import_tar(
                &image,
                &tarball,
                dest.as_deref().unwrap_or("/"),
                &opts,
                &write.merged(global),
            )
        }
        TarCmd::ExportTar {
            image,
            args,
            compress,
        } => {
            if global.output.is_some()
                || global.no_journal
                || global.no_sync
                || global.format.is_some()
            {
                return Err(usage(
                    "export-tar does not change the image: --output, --format, --no-journal and --no-sync apply only to commands that do",
                ));
            }
            let (path, out) = match args.as_slice() {
                [out] => ("/".to_string(), out.clone()),
                [p, out] => (p.clone(), out.clone()),
                _ => return Err(usage("export-tar IMAGE [PATH] OUT")),
            };
            export_tar(&image, &path, &out, compress.as_deref())
        }
    }
}

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

fn import_tar(
    image: &Path,
    tarball: &str,
    dest: &str,
    opts: &ImportOptions,
    w: &WriteOpts,
) -> R<()> {
    let src: Box<dyn std::io::Read> = if tarball == "-" {
        Box::new(std::io::stdin())
    } else {
        let p = Path::new(tarball);
        if same_file(p, image) {
            return Err(failure(format!("{tarball}: is the image itself")));
        }
        let f = std::fs::File::open(p).map_err(|e| Error::io(format!("opening {tarball}"), e))?;
        if f.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(failure(format!(
                "{tarball}: is a directory, not a tar archive (use put -r)"
            )));
        }
        Box::new(f)
    };
    let mut fs = open_write(image, w)?;
    let dir = fs.resolve(dest, true).map_err(|e| e.at(dest))?;
    if !fs.read_inode(dir)?.is_dir() {
        return Err(Error::NotADirectory(dest.to_string()).into());
    }
    let what = if tarball == "-" { "stdin" } else { tarball };
    let report = import(&mut fs, src, dir, opts).map_err(|e| e.at(what))?;
    commit(fs)?;
    for wline in report.warnings {
        say(format_args!("ext3edit: warning: {what}: {wline}"));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Compress {
    None,
    Gz,
    Bz2,
    Xz,
    Zst,
}

fn compress_of(out: &str, given: Option<&str>) -> R<Compress> {
    if let Some(g) = given {
        return Ok(match g {
            "none" | "tar" => Compress::None,
            "gz" | "gzip" => Compress::Gz,
            "bz2" | "bzip2" => Compress::Bz2,
            "xz" => Compress::Xz,
            "zst" | "zstd" => Compress::Zst,
            _ => {
                return Err(usage(format!(
                    "--compress {g}: expected none, gz, bz2, xz or zst"
                )))
            }
        });
    }
    let l = out.to_ascii_lowercase();
    Ok(if l.ends_with(".gz") || l.ends_with(".tgz") {
        Compress::Gz
    } else if l.ends_with(".bz2") || l.ends_with(".tbz2") || l.ends_with(".tbz") {
        Compress::Bz2
    } else if l.ends_with(".xz") || l.ends_with(".txz") {
        Compress::Xz
    } else if l.ends_with(".zst") || l.ends_with(".tzst") {
        Compress::Zst
    } else {
        Compress::None
    })
}

/// The archive stream through its compressor.
fn write_compressed<W: Write>(
    fs: &ext3edit::Filesystem,
    ino: ext3edit::Ino,
    path: &str,
    out: W,
    c: Compress,
) -> R<(W, ext3edit::tar::export::ExportReport)> {
    let werr = |e| Error::io("writing the archive", e);
    Ok(match c {
        Compress::None => export(fs, ino, path, out)?,
        Compress::Gz => {
            let enc = flate2::GzBuilder::new().write(out, flate2::Compression::new(6));
            let (enc, r) = export(fs, ino, path, enc)?;
            (enc.finish().map_err(werr)?, r)
        }
        Compress::Bz2 => {
            let enc = bzip2::write::BzEncoder::new(out, bzip2::Compression::new(9));
            let (enc, r) = export(fs, ino, path, enc)?;
            (enc.finish().map_err(werr)?, r)
        }
        Compress::Xz => {
            let enc = liblzma::write::XzEncoder::new(out, 6);
            let (enc, r) = export(fs, ino, path, enc)?;
            (enc.finish().map_err(werr)?, r)
        }
        Compress::Zst => {
            let enc = zstd::stream::write::Encoder::new(out, 3).map_err(werr)?;
            let (enc, r) = export(fs, ino, path, enc)?;
            (enc.finish().map_err(werr)?, r)
        }
    })
}

fn export_tar(image: &Path, path: &str, out: &str, compress: Option<&str>) -> R<()> {
    let c = compress_of(if out == "-" { "" } else { out }, compress)?;
    let fs = open_read(image)?;
    let ino = fs.resolve(path, true).map_err(|e| e.at(path))?;
    let report = if out == "-" {
        let stdout = std::io::stdout();
        let w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let (mut w, r) = write_compressed(&fs, ino, path, w, c)?;
        w.flush().map_err(|e| Error::io("writing output", e))?;
        r
    } else {
        let outp = PathBuf::from(out);
        if same_file(&outp, image) {
            return Err(failure(format!(
                "{out}: is the image itself; not writing over it"
            )));
        }
        if outp.is_dir() {
            return Err(failure(format!("{out}: is a directory; give a file name")));
        }
        if let Some(r) = export_in_place(&fs, ino, path, &outp, out, c)? {
            for wline in r.warnings {
                say(format_args!("ext3edit: warning: {wline}"));
            }
            return Ok(());
        }
        let dir = match outp.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = outp
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".ext3edit-partial")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(format!("creating a temporary file in {}", dir.display()), e))?;
        // A signal removes the partial archive too.
        super::signal::remove_on_signal(tmp.path());
        let w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
        let (w, r) = write_compressed(&fs, ino, path, w, c)?;
        w.into_inner()
            .map_err(|e| Error::io("writing the archive", e.into_error()))?
            .sync_all()
            .map_err(|e| Error::io("writing the archive", e))?;
        // Readable as a new file would be (under the umask), not 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let umask = process_umask();
            let _ = std::fs::set_permissions(
                tmp.path(),
                std::fs::Permissions::from_mode(0o666 & !umask),
            );
        }
        tmp.persist(&outp)
            .map_err(|e| Error::io(format!("renaming the archive to {out}"), e.error))?;
        super::signal::forget_temp();
        r
    };
    for wline in report.warnings {
        say(format_args!("ext3edit: warning: {wline}"));
    }
    Ok(())
}

/// OUT that is a symlink, a fifo or a device is written in place, as GNU
/// tar's `-cf OUT` and `get` write it (following the symlink): renaming a
/// temporary file over it would replace the link, or /dev/null. A
/// dangling symlink is refused, as `get` refuses it. None: OUT is a
/// regular file or missing (replaced through a temporary file).
fn export_in_place(
    fs: &ext3edit::Filesystem,
    ino: ext3edit::Ino,
    path: &str,
    outp: &Path,
    out: &str,
    c: Compress,
) -> R<Option<ext3edit::tar::export::ExportReport>> {
    let m = match std::fs::symlink_metadata(outp) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {out}"), e).into()),
    };
    if m.is_file() {
        return Ok(None);
    }
    if m.file_type().is_symlink() {
        match std::fs::metadata(outp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(failure(format!(
                    "{out}: not writing through a dangling symlink"
                )))
            }
            Err(e) => return Err(Error::io(format!("reading {out}"), e).into()),
            Ok(t) if t.is_dir() => {
                return Err(failure(format!("{out}: is a directory; give a file name")))
            }
            Ok(_) => {}
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if m.file_type().is_socket() {
            return Err(failure(format!("{out}: is a socket; not writing to it")));
        }
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(outp)
        .map_err(|e| Error::io(format!("opening {out}"), e))?;
    let regular = f.metadata().is_ok_and(|m| m.is_file());
    let w = std::io::BufWriter::with_capacity(1 << 20, &f);
    let (w, r) = write_compressed(fs, ino, path, w, c)?;
    w.into_inner()
        .map_err(|e| Error::io("writing the archive", e.into_error()))?;
    if regular {
        f.sync_all()
            .map_err(|e| Error::io("writing the archive", e))?;
    }
    Ok(Some(r))
}

/// The process umask, read from /proc (no unsafe call): 022 when unknown.
#[cfg(unix)]
fn process_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}
