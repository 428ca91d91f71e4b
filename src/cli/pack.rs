//! pack and unpack: move an image between raw and compressed forms
//! (bzip2, gzip, xz, zip), in parallel, sparsely.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ext3edit::container::{self, Container, Format, Options, TempFile};
use ext3edit::Error;

use super::{failure, usage, R};

#[derive(Subcommand)]
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
        /// The zip entry to read when the archive holds several.
        #[arg(long, value_name = "NAME")]
        entry: Option<String>,
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
        /// The zip entry to read when IMAGE is a zip holding several.
        #[arg(long, value_name = "NAME")]
        entry: Option<String>,
        /// Refuse to decompress IMAGE past this many bytes.
        #[arg(long, value_name = "BYTES")]
        max_size: Option<u64>,
        /// Replace OUT if it exists.
        #[arg(short, long)]
        force: bool,
    },
}

fn check_out(out: &Path, force: bool) -> R<()> {
    if out.exists() && !force {
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
            entry,
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
            let tmp = TempFile::beside(&out)?;
            let opts = Options {
                threads,
                max_size,
                entry,
            };
            c.unpack_to(tmp.file(), &out.display().to_string(), &opts)?;
            tmp.persist(&out)?;
            Ok(())
        }
        PackCmd::Pack {
            image,
            out,
            format,
            level,
            threads,
            entry,
            max_size,
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
                entry,
            };
            // A compressed IMAGE is converted through a raw temporary copy.
            let spool;
            let raw_path: &Path = if c.is_compressed() {
                spool = container::Spool::open(&image, None, &opts)?;
                spool.path()
            } else {
                &image
            };
            container::Spool::finish(raw_path, &out, format, level, threads)?;
            Ok(())
        }
    }
}

fn at(image: &Path, e: Error) -> super::Fail {
    failure(format!("{}: {e}", image.display()))
}
