//! Opening the image for a command, and committing the result (with
//! `--output NEW`: the temporary copy being edited and its rename).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ext3edit::container::{Container, Format, Options, Spool, TempFile};
use ext3edit::{Error, Filesystem, OpenOptions};

use super::args::WriteOpts;
use super::{Fail, R};

/// `--output NEW`: the temporary copy being edited and its final name.
static OUTPUT: Mutex<Option<(PathBuf, PathBuf)>> = Mutex::new(None);

/// A compressed image being edited: its raw temporary copy, and where and
/// how the result goes at commit.
struct Packed {
    raw: TempFile,
    dest: PathBuf,
    format: Format,
    level: u32,
}

static PACKED: Mutex<Option<Packed>> = Mutex::new(None);
/// The raw temporary copy of a compressed image opened for reading.
static READ_SPOOL: Mutex<Vec<Spool>> = Mutex::new(Vec::new());

/// How to decompress: `$EXT3EDIT_ZIP_ENTRY` picks the zip entry and
/// `$EXT3EDIT_MAX_SIZE` the size limit (command options for these come
/// with the image-opening rewrite).
fn container_opts() -> R<Options> {
    let max_size = match std::env::var("EXT3EDIT_MAX_SIZE") {
        Ok(v) => Some(v.parse::<u64>().map_err(|_| {
            super::usage(format!("EXT3EDIT_MAX_SIZE={v}: expected a number of bytes"))
        })?),
        Err(_) => None,
    };
    Ok(Options {
        threads: 0,
        max_size,
        entry: std::env::var("EXT3EDIT_ZIP_ENTRY").ok(),
    })
}

/// The raw image to open for IMAGE: IMAGE itself, or a temporary
/// decompressed copy of it (removed when the command ends).
fn raw_for_read(image: &Path) -> R<PathBuf> {
    let c = Container::open(image).map_err(|e| at_image(image, e))?;
    if !c.is_compressed() {
        return Ok(image.to_path_buf());
    }
    let spool = Spool::open(image, None, &container_opts()?)?;
    let p = spool.path().to_path_buf();
    READ_SPOOL.lock().unwrap().push(spool);
    Ok(p)
}

/// Open IMAGE for reading only.
pub fn open_read(image: &Path) -> R<Filesystem> {
    let raw = raw_for_read(image)?;
    let fs = Filesystem::open(&raw, &OpenOptions::read_only()).map_err(|e| at_image(image, e))?;
    note_recovery(&fs, image, false);
    Ok(fs)
}

fn at_image(image: &Path, e: Error) -> Fail {
    Fail {
        code: 1,
        msg: format!("{}: {e}", image.display()),
    }
}

/// Open IMAGE for writing with the command's write options (with
/// `--output NEW`, a copy of IMAGE beside NEW is opened instead).
pub fn open_write(image: &Path, w: &WriteOpts) -> R<Filesystem> {
    let opts = OpenOptions {
        write: true,
        sync: !w.no_sync,
        now: None,
        journal: !w.no_journal,
        replay_only: false,
    };
    let mut path = image.to_path_buf();
    let c = Container::open(image).map_err(|e| at_image(image, e))?;
    let format = match &w.format {
        Some(f) => Format::parse(f).ok_or_else(|| {
            super::usage(format!("--format {f}: expected raw, bz2, gz, xz or zip"))
        })?,
        None => c.format,
    };
    if c.is_compressed() || format != Format::Raw {
        // Edit a raw temporary copy beside the destination; commit
        // compresses it into another temporary file and renames that over
        // the destination.
        let dest = w.output.clone().unwrap_or_else(|| image.to_path_buf());
        let raw = if c.is_compressed() {
            let dir = match dest.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            Spool::open(image, Some(&dir), &container_opts()?)?.raw
        } else {
            let t = TempFile::beside(&dest)?;
            ext3edit::device::copy_sparse(image, t.path()).map_err(|e| {
                Error::io(
                    format!("copying {} to {}", image.display(), t.path().display()),
                    e,
                )
            })?;
            t
        };
        let level = if format == c.format {
            c.level
        } else {
            format.default_level()
        };
        let path = raw.path().to_path_buf();
        *PACKED.lock().unwrap() = Some(Packed {
            raw,
            dest,
            format,
            level,
        });
        let fs = Filesystem::open(&path, &opts).map_err(|e| at_image(image, e))?;
        note_recovery(&fs, image, true);
        return Ok(fs);
    }
    if let Some(out) = &w.output {
        // Check the source image before copying it.
        Filesystem::open(image, &OpenOptions::read_only())
            .and_then(|fs| match fs.write_refusal() {
                Some(w) => Err(Error::Unsupported(format!("cannot write this image: {w}"))),
                None => Ok(()),
            })
            .map_err(|e| at_image(image, e))?;
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
    let fs = Filesystem::open(&path, &opts).map_err(|e| at_image(image, e))?;
    note_recovery(&fs, image, true);
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

/// What went wrong in a replay, as a "; ..." suffix (empty when nothing).
pub fn replay_problems(r: &ext3edit::journal::Replay) -> String {
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

/// Commit the staged changes; with `--output`, rename the copy into place.
pub fn commit(mut fs: Filesystem) -> R<()> {
    fs.commit()?;
    drop(fs);
    if let Some(p) = PACKED.lock().unwrap().take() {
        Spool::finish(p.raw.path(), &p.dest, p.format, p.level, 0)?;
        return Ok(());
    }
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

/// Remove the `--output` copy of a command that did not succeed.
pub fn discard_output() {
    PACKED.lock().unwrap().take();
    READ_SPOOL.lock().unwrap().clear();
    ext3edit::container::remove_all_temps();
    if let Some((tmp, _)) = OUTPUT.lock().unwrap().take() {
        let _ = std::fs::remove_file(tmp);
    }
}
