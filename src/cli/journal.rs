//! `journal info` and `journal replay`.

use std::path::PathBuf;

use clap::Subcommand;
use ext3edit::OpenOptions;

use super::args::WriteOpts;
use super::image::{open_read, replay_problems};
use super::{failure, report, usage, R};

#[derive(Subcommand)]
#[command(defer = true)]
pub enum JournalCmd {
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
        /// Do not fsync the image after writing (faster; unsafe if the machine crashes).
        #[arg(long)]
        no_sync: bool,
    },
}

/// Run a journal command.
pub fn run(cmd: JournalCmd, g: &WriteOpts) -> R<()> {
    match cmd {
        JournalCmd::Info { image, json } => {
            if g.output.is_some() || g.no_journal || g.no_sync {
                return Err(usage(
                    "journal info does not change the image: --output, --no-journal and --no-sync apply only to commands that do",
                ));
            }
            let fs = open_read(&image)?;
            report::journal_info(&fs, &image, json)
        }
        JournalCmd::Replay { image, no_sync } => {
            if g.output.is_some() || g.no_journal {
                return Err(usage(
                    "journal replay does not take --output or --no-journal",
                ));
            }
            let opts = OpenOptions {
                replay_only: true,
                sync: !(no_sync || g.no_sync),
                ..OpenOptions::default()
            };
            let mut fs = super::image::open_fs(&image, &opts, &image)?;
            if let Some(n) = fs.recovery_note() {
                return Err(failure(format!("{}: {n}", image.display())));
            }
            let orphans = fs.orphan_report().map(super::image::orphan_summary);
            let Some(r) = fs.recovery_report().cloned() else {
                let Some(o) = orphans else {
                    if fs.superblock_untorn() && fs.is_dirty() {
                        fs.commit()?;
                        super::say(format_args!(
                            "ext3edit: {}: the journal does not need recovery; the superblock, torn by a crash between its needs_recovery bit and its checksum, was written back whole",
                            image.display()
                        ));
                        return Ok(());
                    }
                    super::say(format_args!(
                        "ext3edit: {}: the journal does not need recovery; nothing to do",
                        image.display()
                    ));
                    return Ok(());
                };
                fs.commit()?;
                super::say(format_args!(
                    "ext3edit: {}: the journal does not need recovery; {o}",
                    image.display()
                ));
                return Ok(());
            };
            fs.commit()?;
            super::say(format_args!(
                "ext3edit: {}: replayed {} transaction{} ({} block{}){}{}",
                image.display(),
                r.transactions.len(),
                if r.transactions.len() == 1 { "" } else { "s" },
                r.blocks.len(),
                if r.blocks.len() == 1 { "" } else { "s" },
                replay_problems(&r),
                orphans.map(|o| format!("; {o}")).unwrap_or_default()
            ));
            Ok(())
        }
    }
}
