//! zero-free: zero the free blocks of the file system (as zerofree does).

use std::path::PathBuf;

use clap::Subcommand;
use ext3edit::zero_free::{zero_free, ZeroReport};

use super::args::WriteOpts;
use super::image::{commit, open_write};
use super::R;

#[derive(Subcommand)]
#[command(defer = true)]
pub enum ZeroCmd {
    /// Zero the free blocks of the file system, so that deleted data stops
    /// bloating the packed image (holes are punched in a raw image where
    /// the host file system can; metadata and used blocks are never touched).
    #[command(
        name = "zero-free",
        after_help = "Examples:\n  ext3edit zero-free disk.ext3\n  ext3edit zero-free disk.img --partition 2\n  ext3edit pack disk.ext3 disk.ext3.bz2 --zero-free   (leaves disk.ext3 as it is)"
    )]
    ZeroFree {
        /// The image file.
        image: PathBuf,
        #[command(flatten)]
        write: WriteOpts,
    },
}

pub fn run(cmd: ZeroCmd, g: &WriteOpts) -> R<()> {
    match cmd {
        ZeroCmd::ZeroFree { image, write } => {
            let mut fs = open_write(&image, &write.merged(g))?;
            let r = zero_free(&mut fs).map_err(|e| e.at(&image.display().to_string()))?;
            commit(fs)?;
            report(&r)
        }
    }
}

/// "zeroed 1200 of 5000 free blocks (4.7 MiB)".
pub fn report(r: &ZeroReport) -> R<()> {
    let mut line = format!(
        "zeroed {} of {} free blocks ({:.1} MiB)",
        r.zeroed_blocks,
        r.free_blocks,
        (r.zeroed_blocks * r.block_size) as f64 / 1048576.0
    );
    if r.skipped_groups > 0 {
        line += &format!(
            "; {} groups with uninitialised bitmaps skipped",
            r.skipped_groups
        );
    }
    super::report::out(&format!("{line}\n"))
}
