//! The read-only commands: info, ls, stat, readlink. They never change the
//! image (a journal that needs recovery is read through, not replayed).

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use ext3edit::Error;

use super::image::open_read;
use super::{report, R};

#[derive(Subcommand)]
#[command(defer = true)]
pub enum InspectCmd {
    /// Show the superblock: size, free space, features, and whether ext3edit can write it.
    #[command(after_help = "Example:\n  ext3edit info disk.ext3 --json")]
    Info {
        /// The image file.
        image: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Print control characters in the label and partition names as C
        /// escapes; the default when stdout is a terminal.
        #[arg(short = 'b', long)]
        escape: bool,
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
        /// Print control characters in names as C escapes (\n, \033), as
        /// ls -b does; the default when stdout is a terminal.
        #[arg(short = 'b', long)]
        escape: bool,
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
        /// Print control characters in names and values as C escapes; the
        /// default when stdout is a terminal.
        #[arg(short = 'b', long)]
        escape: bool,
    },
    /// Print a symlink's target.
    #[command(after_help = "Example:\n  ext3edit readlink disk.ext3 /etc/rc.d/rc3.d/S55sshd")]
    Readlink {
        /// The image file.
        image: PathBuf,
        /// Path inside the image.
        path: String,
    },
}

/// Run a read-only command.
pub fn run(cmd: InspectCmd) -> R<()> {
    match cmd {
        InspectCmd::Info {
            image,
            json,
            escape,
        } => {
            report::set_escape(escape);
            match open_read(&image) {
                Ok(fs) => report::info(&fs, &image, json, super::image::disk_table().as_ref()),
                // A whole disk where no partition could be picked by itself:
                // list the partitions.
                Err(e) => match super::image::disk_table() {
                    Some(d) if d.1.is_none() && !super::image::partition_given() => {
                        report::disk_only(&image, &d, json)
                    }
                    _ => Err(e),
                },
            }
        }
        InspectCmd::Ls {
            image,
            path,
            long,
            recursive,
            all,
            json,
            escape,
        } => {
            report::set_escape(escape);
            let fs = open_read(&image)?;
            report::ls(&fs, &path, long, recursive, all, json)
        }
        InspectCmd::Stat {
            image,
            path,
            json,
            escape,
        } => {
            report::set_escape(escape);
            let fs = open_read(&image)?;
            let ino = fs.resolve(&path, false)?;
            report::stat(&fs, &path, ino, json)
        }
        InspectCmd::Readlink { image, path } => {
            let fs = open_read(&image)?;
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
    }
}
