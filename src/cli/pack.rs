//! pack and unpack: move an image between raw and compressed forms
//! (bzip2, gzip, xz, zip), in parallel, sparsely.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ext3edit::container::{self, Container, Format, Options, TempFile};
use ext3edit::device;
use ext3edit::{Error, OpenOptions};

use super::{failure, usage, R};

#[derive(Subcommand)]
#[command(defer = true)]
pub enum PackCmd {
    /// Decompress a compressed image (bzip2, gzip, xz or zip, recognised by
    /// content) into a sparse raw image.
    #[command(
        after_help = "Examples:\n  ext3edit unpack centos.ext3.bz2            (writes centos.ext3)\n  ext3edit unpack disk.zip disk.img --entry disk.img"
    )]
    Unpack {
        /// The compressed image.
        image: PathBuf,
        /// The raw image to write (default: IMAGE without its .bz2/.gz/.xz/.zip).
        out: Option<PathBuf>,
        /// Refuse to decompress more than this many bytes (default: 1024
        /// times the compressed size, at least 64 GiB).
        #[arg(long, value_name = "BYTES")]
        max_size: Option<u64>,
        /// Worker threads (default: one per core).
        #[arg(long, value_name = "N", default_value_t = 0)]
        threads: usize,
        /// Replace OUT if it exists.
        #[arg(short, long)]
        force: bool,
    },
    /// Compress an image in parallel, in independent chunks that the
    /// standard tools read as one ordinary file.
    #[command(
        after_help = "Examples:\n  ext3edit pack disk.ext3 disk.ext3.bz2\n  ext3edit pack disk.ext3 disk.ext3.xz --level 9 --threads 4\n  ext3edit pack disk.ext3.gz disk.zip          (converts)"
    )]
    Pack {
        /// The image (raw, or compressed: it is converted).
        image: PathBuf,
        /// The compressed file to write.
        out: PathBuf,
        /// bz2, gz, xz, zip or raw (default: from OUT's extension, else bz2).
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
        /// Compression level (bz2, gz, zip: 1-9; xz: 0-9; default 9 for
        /// bz2, 6 for the others).
        #[arg(long, value_name = "N")]
        level: Option<u32>,
        /// Worker threads (default: one per core).
        #[arg(long, value_name = "N", default_value_t = 0)]
        threads: usize,
        /// Refuse to decompress IMAGE past this many bytes.
        #[arg(long, value_name = "BYTES")]
        max_size: Option<u64>,
        /// Zero the file system's free blocks in what is packed (as
        /// `zero-free` does, on a temporary copy: IMAGE is not changed).
        #[arg(long)]
        zero_free: bool,
        /// Replace OUT if it exists.
        #[arg(short, long)]
        force: bool,
    },
}

/// OUT `-`: standard output.
fn is_stdout(out: &Path) -> bool {
    out.as_os_str() == "-"
}

fn check_out(out: &Path, force: bool) -> R<()> {
    if is_stdout(out) {
        return Ok(());
    }
    // Never a device node, FIFO or directory replaced by a file, -f or not.
    container::check_dest(out).map_err(|e| failure(e.to_string()))?;
    if out.symlink_metadata().is_ok() && !force {
        return Err(failure(format!(
            "{}: already exists (use --force to replace it)",
            out.display()
        )));
    }
    Ok(())
}

/// IMAGE without its compression extension.
fn default_out(image: &Path) -> R<PathBuf> {
    let ext = image
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("bz2" | "gz" | "xz" | "zip") => Ok(image.with_extension("")),
        _ => Err(usage(format!(
            "{}: name OUT (IMAGE has no .bz2/.gz/.xz/.zip extension to drop)",
            image.display()
        ))),
    }
}

pub fn run(cmd: PackCmd) -> R<()> {
    match cmd {
        PackCmd::Unpack {
            image,
            out,
            max_size,
            threads,
            force,
        } => {
            let out = match out {
                Some(o) => o,
                None => default_out(&image)?,
            };
            check_out(&out, force)?;
            let c = Container::open(&image).map_err(|e| at(&image, e))?;
            let opts = Options {
                threads,
                max_size,
                entry: super::image::zip_entry(),
            };
            if is_stdout(&out) {
                // Through a sparse temporary file, then every byte to stdout.
                let tmp = TempFile::in_tmpdir("unpack")?;
                c.unpack_to(tmp.file(), "standard output", &opts)?;
                return to_stdout(tmp.file());
            }
            let tmp = TempFile::beside(&out)?;
            c.unpack_to(tmp.file(), &out.display().to_string(), &opts)?;
            // OUT: IMAGE's read and write bits under the umask.
            let perms = std::fs::metadata(&image)
                .map(|m| container::Perms::from_meta(&m))
                .map_err(|e| at(&image, Error::io("reading its mode", e)))?;
            tmp.persist_as(&out, perms)?;
            Ok(())
        }
        PackCmd::Pack {
            image,
            out,
            format,
            level,
            threads,
            max_size,
            zero_free,
            force,
        } => {
            let format = match format {
                Some(f) => Format::parse(&f).ok_or_else(|| {
                    usage(format!("--format {f}: expected raw, bz2, gz, xz or zip"))
                })?,
                None => Format::from_extension(&out).unwrap_or(Format::Bzip2),
            };
            let level = level.unwrap_or(format.default_level());
            if !format.levels().contains(&level) {
                return Err(usage(format!(
                    "--level {level}: {} takes {}..={}",
                    format.name(),
                    format.levels().start(),
                    format.levels().end()
                )));
            }
            check_out(&out, force)?;
            let c = Container::open(&image).map_err(|e| at(&image, e))?;
            let opts = Options {
                threads,
                max_size,
                entry: super::image::zip_entry(),
            };
            // A compressed IMAGE is converted through a raw temporary copy;
            // --zero-free works on a temporary copy too.
            let spool;
            let copy;
            let (raw_path, temp): (&Path, Option<&TempFile>) = if c.is_compressed() {
                spool = container::Spool::open(&image, None, &opts)?;
                (spool.path(), Some(&spool.raw))
            } else if zero_free {
                copy = sparse_copy(&image, &out)?;
                (copy.path(), Some(&copy))
            } else {
                (&image, None)
            };
            if zero_free {
                let opts = OpenOptions {
                    sync: false,
                    ..OpenOptions::read_write()
                };
                // A temporary copy through its own (locked) descriptor.
                let mut fs = match temp {
                    Some(t) => {
                        let f = t
                            .file()
                            .try_clone()
                            .map_err(|e| Error::io(format!("opening {}", t.path().display()), e))?;
                        super::image::open_file_fs(f, &opts, &image)?
                    }
                    None => super::image::open_fs(raw_path, &opts, &image)?,
                };
                let r = ext3edit::zero_free::zero_free(&mut fs).map_err(|e| at(&image, e))?;
                drop(fs);
                super::zero::report(&r)?;
            }
            if is_stdout(&out) {
                let input = std::fs::File::open(raw_path)
                    .map_err(|e| Error::io(format!("opening {}", raw_path.display()), e))?;
                let len = device::image_size(&input)
                    .map_err(|e| Error::io(format!("reading {}", raw_path.display()), e))?;
                let tmp = TempFile::in_tmpdir("pack")?;
                // The zip entry: IMAGE's name without a compression extension.
                let name = default_out(&image)
                    .unwrap_or_else(|_| image.clone())
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into());
                container::pack(&input, len, tmp.file(), format, level, threads, &name)
                    .map_err(|e| at(&image, e))?;
                return to_stdout(tmp.file());
            }
            // OUT: IMAGE's read and write bits under the umask.
            let perms = std::fs::metadata(&image)
                .map(|m| container::Perms::from_meta(&m))
                .map_err(|e| at(&image, Error::io("reading its mode", e)))?;
            let entry = container::zip_entry_name(&out);
            container::Spool::finish_as(raw_path, &out, format, level, threads, &entry, perms)?;
            Ok(())
        }
    }
}

/// Copy `file` from its start to standard output.
fn to_stdout(file: &std::fs::File) -> R<()> {
    use std::io::{Seek, Write};
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(0))
        .map_err(|e| Error::io("reading the temporary file", e))?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut f, &mut out)
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("writing to standard output", e))?;
    Ok(())
}

/// A sparse copy of the raw IMAGE beside OUT (under IMAGE's shared lock,
/// so that no writer changes it mid-copy); removed when dropped.
fn sparse_copy(image: &Path, out: &Path) -> R<TempFile> {
    let t = TempFile::beside(out)?;
    let src = device::open_image_file(image, false)
        .map_err(|e| at(image, Error::io(format!("opening {}", image.display()), e)))?;
    device::lock_image(&src, device::Lock::Shared)
        .map_err(|e| at(image, Error::io(format!("opening {}", image.display()), e)))?;
    device::copy_sparse(&src, t.file()).map_err(|e| {
        at(
            image,
            Error::io(format!("copying it to {}", t.path().display()), e),
        )
    })?;
    Ok(t)
}

fn at(image: &Path, e: Error) -> super::Fail {
    failure(format!("{}: {e}", image.display()))
}
