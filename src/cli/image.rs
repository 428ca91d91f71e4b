//! Opening the image for a command, and committing the result (with
//! `--output NEW`: the temporary copy being edited and its rename).
//!
//! `--output NEW` copies IMAGE, under the shared lock so that no writer
//! changes it mid-copy, into a temporary file of NEW's directory, created
//! exclusively under a random name (`.NEW.XXXXXX.ext3edit-partial`, never
//! following a symlink), edits the copy (replaying its journal first if
//! IMAGE's needs recovery: IMAGE itself is only read), and renames it to
//! NEW when the command succeeds. Parallel commands with the same NEW each
//! have their own copy; the last rename wins with a whole image. Like `mv`,
//! the rename replaces NEW itself: a symlink named NEW is replaced by the
//! image, never written through. The temporary file is removed on every
//! failure, and by a signal handler on SIGINT, SIGTERM and SIGHUP.
//!
//! A compressed IMAGE (bzip2, gzip, xz, zip: recognised by content) is
//! decompressed into a sparse temporary file: in `$TMPDIR` for reading,
//! beside the destination for writing. A write edits that raw copy, and
//! the commit compresses it in IMAGE's format and level (or `--format`'s)
//! into another temporary file that is fsynced and renamed over the
//! destination. Temporary files are removed on every exit path.
//!
//! Every temporary file is 0600 and locked by its writer (see
//! `container::spool`); the next write of an image removes those that a
//! killed ext3edit left beside it. The result of an edit in place keeps
//! the image's mode and owner (`Perms::Keep`, as `cp -p`); `--output NEW`,
//! raw or compressed, gets IMAGE's read and write bits under the umask
//! (`Perms::From`). An IMAGE named through a symlink is replaced at its
//! target, so the link stays, as a raw image is written through it.
//!
//! An image in ext3edit's chunked layout (as `pack` writes it: see
//! `container::seekable`) takes neither temporary copy: the engine reads
//! and writes it through a [`Seekable`] device that decompresses only the
//! chunks it touches, and the commit writes a new file (beside the
//! destination, fsynced, renamed) where only the changed chunks are
//! compressed again. `--format` to another format takes the full path.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ext3edit::container::partition::{self, PartitionDevice, Table};
use ext3edit::container::{self, Container, Format, Options, Perms, Seekable, Spool, TempFile};
use ext3edit::device::{self, BlockDevice, FileDevice, Lock};
use ext3edit::{Error, Filesystem, OpenOptions};

use super::args::WriteOpts;
use super::{failure, say, signal, Fail, R};

/// `--output NEW`: the temporary copy being edited and its final name.
static OUTPUT: Mutex<Option<Output>> = Mutex::new(None);

struct Output {
    /// The copy; dropping it removes the file.
    tmp: tempfile::TempPath,
    /// The copy open (its lock held until after the rename), to give it
    /// NEW's mode before the rename.
    file: std::fs::File,
    /// That mode.
    perms: Perms,
    /// NEW.
    out: PathBuf,
    /// Sync NEW's directory after the rename.
    sync: bool,
}

/// A compressed image being edited: its raw temporary copy, and where and
/// how the result goes at commit.
struct Packed {
    raw: TempFile,
    dest: PathBuf,
    format: Format,
    level: u32,
    /// The zip entry's name.
    entry: String,
    /// The mode (and owner) the result gets.
    perms: Perms,
    /// IMAGE under the exclusive lock, held until after the rename over it
    /// (an edit in place; None with `--output`).
    _lock: Option<std::fs::File>,
}

/// How long a writer of a compressed image waits for another one to
/// finish: its recompression can take minutes.
const PACKED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

static PACKED: Mutex<Option<Packed>> = Mutex::new(None);
/// A chunked compressed image being edited through its chunks, and
/// `--output`'s NEW if given.
static SEEKABLE: Mutex<Option<(Seekable, Option<PathBuf>)>> = Mutex::new(None);
/// The raw temporary copies of compressed images opened for reading.
static READ_SPOOL: Mutex<Vec<Spool>> = Mutex::new(Vec::new());

/// `--partition N`, set once by the command line before any image opens.
static PARTITION: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();

/// `--entry NAME`, set once by the command line before any image opens.
static ENTRY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Record `--entry NAME` (the zip entry) for every image this command opens.
pub fn set_entry(e: Option<String>) {
    let _ = ENTRY.set(e);
}

/// The zip entry to read: `--entry NAME`, else `$EXT3EDIT_ZIP_ENTRY`.
pub fn zip_entry() -> Option<String> {
    ENTRY
        .get()
        .cloned()
        .flatten()
        .or_else(|| std::env::var("EXT3EDIT_ZIP_ENTRY").ok())
}

/// The partition table of the whole-disk image opened last, and the
/// partition picked (None: none could be picked), for `info`.
static DISK: Mutex<Option<(Table, Option<u32>)>> = Mutex::new(None);

/// Record `--partition N` for every image this command opens.
pub fn set_partition(p: Option<u32>) {
    let _ = PARTITION.set(p);
}

/// True when `--partition` was given.
pub fn partition_given() -> bool {
    PARTITION.get().copied().flatten().is_some()
}

/// The partition table of the whole-disk image opened last, with the
/// number of the partition picked (None when none could be picked).
pub fn disk_table() -> Option<(Table, Option<u32>)> {
    DISK.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The file system's device: `dev` itself for an ext image, or for a
/// whole-disk image (MBR or GPT) the partition `--partition` names, or
/// the only ext partition. Reads and writes never leave that partition.
fn on_partition(dev: Box<dyn BlockDevice>, image: &Path) -> R<Box<dyn BlockDevice>> {
    let wanted = PARTITION.get().copied().flatten();
    let mut head = vec![0u8; (dev.len().min(8192)) as usize];
    dev.read_at(0, &mut head)
        .map_err(|e| at_image(image, Error::io("reading the start of the image", e)))?;
    if !partition::is_disk(&head) {
        return match wanted {
            Some(n) => Err(failure(format!(
                "{}: --partition {n}: not a partitioned disk (the image holds the file system itself)",
                image.display()
            ))),
            None => Ok(dev),
        };
    }
    let table = partition::read_table(&*dev).map_err(|e| at_image(image, e))?;
    let picked = table.select(wanted).cloned();
    *DISK.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((table, picked.as_ref().ok().map(|p| p.number)));
    let p = picked.map_err(|e| at_image(image, e))?;
    Ok(Box::new(
        PartitionDevice::new(dev, &p).map_err(|e| at_image(image, e))?,
    ))
}

/// Open the raw image file `path` (IMAGE itself or a copy of it; `image`
/// names it in errors), on its partition for a whole disk.
pub fn open_fs(path: &Path, opts: &OpenOptions, image: &Path) -> R<Filesystem> {
    let mut dev = FileDevice::open(path, opts.write || opts.replay_only)
        .map_err(|e| at_image(image, Error::io(format!("opening {}", path.display()), e)))?;
    dev.set_sync(opts.sync);
    open_dev(Box::new(dev), opts, image)
}

/// Open the file system on `dev` (on its partition for a whole disk).
fn open_dev(dev: Box<dyn BlockDevice>, opts: &OpenOptions, image: &Path) -> R<Filesystem> {
    let dev = on_partition(dev, image)?;
    Filesystem::open_device(dev, opts).map_err(|e| at_image(image, e))
}

/// How to decompress: `--entry NAME` (else `$EXT3EDIT_ZIP_ENTRY`) picks
/// the zip entry and `$EXT3EDIT_MAX_SIZE` the size limit (`pack`/`unpack`
/// take it as an option too).
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
        entry: zip_entry(),
    })
}

/// The raw image to open for IMAGE: IMAGE itself, or a temporary
/// decompressed copy of it (removed when the command ends).
fn raw_for_read(image: &Path) -> R<PathBuf> {
    let c = Container::open(image).map_err(|e| at_image(image, e))?;
    if !c.is_compressed() {
        return Ok(image.to_path_buf());
    }
    // What a read killed earlier left in $TMPDIR for this image (only
    // files no live process holds).
    if let Some(base) = image.file_name() {
        let _ = container::remove_stale_temps(&std::env::temp_dir(), &base.to_string_lossy());
    }
    let spool = Spool::open(image, None, &container_opts()?)?;
    let p = spool.path().to_path_buf();
    READ_SPOOL
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(spool);
    Ok(p)
}

/// Open IMAGE for reading only.
pub fn open_read(image: &Path) -> R<Filesystem> {
    let c = Container::open(image).map_err(|e| at_image(image, e))?;
    if c.is_compressed() {
        let max = container_opts()?.max_size;
        let seek = Seekable::open(&c, false, &std::env::temp_dir(), max)
            .map_err(|e| at_image(image, e))?;
        if let Some(s) = seek {
            let fs = open_dev(s.device(), &OpenOptions::read_only(), image)?;
            note_recovery(&fs, image, READ_THROUGH);
            return Ok(fs);
        }
    }
    let raw = raw_for_read(image)?;
    let fs = open_fs(&raw, &OpenOptions::read_only(), image)?;
    note_recovery(&fs, image, READ_THROUGH);
    Ok(fs)
}

/// Open a compressed IMAGE (or one being converted with `--format`) for
/// writing: a raw temporary copy beside the destination.
fn open_packed(
    image: &Path,
    c: &Container,
    format: Format,
    w: &WriteOpts,
    opts: &OpenOptions,
) -> R<Filesystem> {
    let dest = w.output.clone().unwrap_or_else(|| in_place_dest(image));
    refuse_special_output(&dest)?;
    container::check_dest(&dest).map_err(|e| failure(format!("--output {e}")))?;
    // In place, IMAGE is replaced by a rename: hold its exclusive lock from
    // before it is read until after the rename, and read what is locked.
    let lock = match &w.output {
        Some(_) => None,
        None => Some(
            container::lock_for_rewrite(image, PACKED_LOCK_WAIT).map_err(|e| at_image(image, e))?,
        ),
    };
    remove_stale(&dest, image);
    // In place: the original's mode and owner; NEW: a new file's.
    let perms = match &lock {
        Some(f) => f.metadata().map(|m| Perms::keep_meta(&m)),
        None => std::fs::metadata(image).map(|m| Perms::from_meta(&m)),
    }
    .map_err(|e| at_image(image, Error::io(format!("reading {}", image.display()), e)))?;
    let relocked;
    let c = match &lock {
        Some(_) => {
            relocked = Container::open(image).map_err(|e| at_image(image, e))?;
            &relocked
        }
        None => c,
    };
    let copts = container_opts()?;
    if lock.is_some() && c.format == Format::Zip && format == Format::Zip {
        let names = std::fs::File::open(image)
            .map_err(|e| Error::io(format!("opening {}", image.display()), e))
            .and_then(|f| container::zip::entries(&f))
            .map_err(|e| at_image(image, e))?;
        if names.len() > 1 {
            return Err(failure(format!(
                "{}: the zip archive holds {} files: editing it in place would drop the others; write the edited image to a new file with --output NEW.zip",
                image.display(),
                names.len()
            )));
        }
    }
    let (raw, entry) = if c.is_compressed() {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let spool = Spool::open(image, Some(&dir), &copts)?;
        (spool.raw, spool.entry)
    } else {
        let t = TempFile::beside(&dest)?;
        let opened;
        let src = match &lock {
            Some(f) => f,
            None => {
                opened = device::open_image_file(image, false).map_err(|e| {
                    at_image(image, Error::io(format!("opening {}", image.display()), e))
                })?;
                device::lock_image(&opened, Lock::Shared).map_err(|e| {
                    at_image(image, Error::io(format!("opening {}", image.display()), e))
                })?;
                &opened
            }
        };
        let out = std::fs::OpenOptions::new()
            .write(true)
            .open(t.path())
            .map_err(|e| Error::io(format!("opening {}", t.path().display()), e))?;
        device::copy_sparse(src, &out).map_err(|e| {
            Error::io(
                format!("copying {} to {}", image.display(), t.path().display()),
                e,
            )
        })?;
        (t, None)
    };
    let entry = entry.unwrap_or_else(|| container::zip_entry_name(&dest));
    let level = if format == c.format {
        c.level
    } else {
        format.default_level()
    };
    // The copy's own descriptor (its lock: see container::remove_stale_temps).
    let file = raw
        .file()
        .try_clone()
        .map_err(|e| Error::io(format!("opening {}", raw.path().display()), e))?;
    *PACKED.lock().unwrap_or_else(|p| p.into_inner()) = Some(Packed {
        raw,
        dest,
        format,
        level,
        entry,
        perms,
        _lock: lock,
    });
    let fs = open_file_fs(file, opts, image)?;
    note_recovery(&fs, image, REPLAY_COPY);
    Ok(fs)
}

/// Open a compressed IMAGE in the chunked layout for writing through its
/// chunks (None: it is not in that layout).
fn open_seekable(
    image: &Path,
    c: &Container,
    w: &WriteOpts,
    opts: &OpenOptions,
) -> R<Option<Filesystem>> {
    let dest = w.output.clone().unwrap_or_else(|| in_place_dest(image));
    refuse_special_output(&dest)?;
    container::check_dest(&dest).map_err(|e| failure(format!("--output {e}")))?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let max = container_opts()?.max_size;
    // In place, IMAGE is replaced by a rename: the seekable image reads the
    // file under the exclusive lock and holds it until after the rename.
    let seek = match &w.output {
        Some(_) => {
            remove_stale(&dest, image);
            Seekable::open(c, true, &dir, max)
        }
        None => {
            let locked = container::lock_for_rewrite(image, PACKED_LOCK_WAIT)
                .map_err(|e| at_image(image, e))?;
            remove_stale(&dest, image);
            // The target of a symlink: the new file is renamed over it.
            let c = Container::open(&dest).map_err(|e| at_image(image, e))?;
            Seekable::open_file(&c, locked, true, &dir, max)
        }
    };
    // Not seekable: the lock is released here; the full path takes it again.
    let Some(seek) = seek.map_err(|e| at_image(image, e))? else {
        return Ok(None);
    };
    let dev = seek.device();
    *SEEKABLE.lock().unwrap_or_else(|p| p.into_inner()) = Some((seek, w.output.clone()));
    let fs = open_dev(dev, opts, image)?;
    note_recovery(&fs, image, REPLAY_COPY);
    Ok(Some(fs))
}

fn at_image(image: &Path, e: Error) -> Fail {
    Fail {
        code: 1,
        msg: format!("{}: {e}", image.display()),
    }
}

/// Where an edit in place of IMAGE renames its result: IMAGE, or for a
/// symlink the file it points to (the link is kept, as for a raw image,
/// which is written through it).
fn in_place_dest(image: &Path) -> PathBuf {
    match std::fs::symlink_metadata(image) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf())
        }
        _ => image.to_path_buf(),
    }
}

/// Remove what an ext3edit killed while writing `dest` (from `image`)
/// left beside it: its temporary files, named after `dest` or `image`,
/// that no live process holds (see container::remove_stale_temps), and
/// say so (once the command succeeds).
fn remove_stale(dest: &Path, image: &Path) {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut bases: Vec<String> = Vec::new();
    for p in [dest, image] {
        if let Some(n) = p.file_name() {
            let n = n.to_string_lossy().into_owned();
            if !bases.contains(&n) {
                bases.push(n);
            }
        }
    }
    let mut removed = Vec::new();
    for b in &bases {
        removed.extend(container::remove_stale_temps(dir, b));
    }
    if !removed.is_empty() {
        let names: Vec<String> = removed
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        defer(format!(
            "ext3edit: note: removed {} temporary file{} of an interrupted ext3edit in {}: {}",
            removed.len(),
            if removed.len() == 1 { "" } else { "s" },
            dir.display(),
            names.join(", ")
        ));
    }
}

/// Open the file system on the open raw image file `file` (a temporary
/// copy: its descriptor keeps the copy's lock).
pub fn open_file_fs(file: std::fs::File, opts: &OpenOptions, image: &Path) -> R<Filesystem> {
    let mut dev = FileDevice::from_file(file, opts.write || opts.replay_only)
        .map_err(|e| at_image(image, Error::io("opening the temporary copy", e)))?;
    dev.set_sync(opts.sync);
    open_dev(Box::new(dev), opts, image)
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
    let c = Container::open(image).map_err(|e| at_image(image, e))?;
    let format = match &w.format {
        Some(f) => Format::parse(f).ok_or_else(|| {
            super::usage(format!("--format {f}: expected raw, bz2, gz, xz or zip"))
        })?,
        None => c.format,
    };
    if let Some(out) = &w.output {
        warn_extension(out, format, w.format.is_some());
    }
    if c.is_compressed() && format == c.format {
        if let Some(fs) = open_seekable(image, &c, w, &opts)? {
            return Ok(fs);
        }
    }
    if c.is_compressed() || format != Format::Raw {
        return open_packed(image, &c, format, w, &opts);
    }
    let Some(out) = &w.output else {
        let mut fs = open_fs(image, &opts, image)?;
        // Under the image's lock now.
        remove_stale(&in_place_dest(image), image);
        note_recovery(&fs, image, REPLAY_IN_PLACE);
        // A change too large for one journal transaction commits in steps
        // (put -r, rm -r, customize): a command that fails after some of
        // them puts the image back as it was.
        fs.begin_undoable();
        // A signal from here on stops the change and puts it back.
        signal::defer_to_rollback();
        return Ok(fs);
    };
    let copy = copy_for_output(image, out, !w.no_sync)?;
    let mut dev = FileDevice::from_file(copy, true)
        .map_err(|e| at_image(image, Error::io("opening the copy", e)))?;
    dev.set_sync(opts.sync);
    let fs = open_dev(Box::new(dev), &opts, image)?;
    note_recovery(&fs, image, REPLAY_COPY);
    Ok(fs)
}

/// The format a file name's extension names: `.ext2`, `.ext3`, `.ext4`,
/// `.img` and `.raw` raw, `.bz2`, `.gz`, `.xz`, `.zip` (and `.tbz`) theirs;
/// None for any other name (nothing is assumed).
fn extension_format(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "ext2" | "ext3" | "ext4" | "img" | "raw" => Some(Format::Raw),
        _ => Format::from_extension(path),
    }
}

/// Notes and warnings [`commit`] prints once the result is written (a
/// command that fails says only its error).
static DEFERRED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn defer(line: String) {
    DEFERRED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(line);
}

/// Warn (one line, after NEW is written: a failure says only its error)
/// when `--output NEW`'s extension names another format than the one
/// written (IMAGE's, or `--format`'s): `--output vm.ext3` from a .gz
/// IMAGE writes gzip data.
fn warn_extension(out: &Path, written: Format, asked: bool) {
    let Some(named) = extension_format(out) else {
        return;
    };
    if named == written {
        return;
    }
    let what = |f: Format| match f {
        Format::Raw => "a raw image".to_string(),
        f => format!("{} data", f.name()),
    };
    let why = if asked {
        format!("as --format {} asks", written.name())
    } else {
        format!(
            "IMAGE's format; --format {} writes what the name says",
            named.name()
        )
    };
    defer(format!(
        "ext3edit: warning: --output {}: the name says {}, but {} is written ({why})",
        out.display(),
        what(named),
        what(written),
    ));
}

/// `--output NEW` names a new image file: an existing directory, device,
/// FIFO or socket there is refused (the rename would replace it); a
/// symlink is replaced like `mv` replaces it, never written through.
pub fn refuse_special_output(out: &Path) -> R<()> {
    let Ok(m) = std::fs::symlink_metadata(out) else {
        return Ok(());
    };
    let ft = m.file_type();
    let what = if ft.is_dir() {
        "a directory"
    } else if ft.is_file() || ft.is_symlink() {
        return Ok(());
    } else {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_char_device() {
                "a character device"
            } else if ft.is_block_device() {
                "a block device"
            } else if ft.is_fifo() {
                "a FIFO"
            } else {
                "a socket"
            }
        }
        #[cfg(not(unix))]
        "not a regular file"
    };
    Err(failure(format!(
        "--output {}: is {what}; --output writes a new image file there (give a file name)",
        out.display()
    )))
}

/// Copy IMAGE to a new temporary file beside NEW (see the module text) and
/// return it open for writing; the file is registered for removal on
/// failure and on SIGINT/SIGTERM/SIGHUP.
fn copy_for_output(image: &Path, out: &Path, sync: bool) -> R<std::fs::File> {
    refuse_special_output(out)?;
    let src = device::open_image_file(image, false)
        .map_err(|e| at_image(image, Error::io(format!("opening {}", image.display()), e)))?;
    // Under the shared lock from here to the end of the copy: a writer
    // (which holds the exclusive lock while it works) is never copied
    // halfway.
    device::lock_image(&src, Lock::Shared)
        .map_err(|e| at_image(image, Error::io(format!("opening {}", image.display()), e)))?;
    // Check the source image before copying it.
    let fs = open_fs(image, &OpenOptions::read_only(), image)?;
    if let Some(w) = fs.write_refusal() {
        return Err(at_image(
            image,
            Error::Unsupported(format!("cannot write this image: {w}")),
        ));
    }
    drop(fs);
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(&prefix)
        .suffix(container::spool::TEMP_SUFFIX)
        .rand_bytes(6);
    // 0600 while it is written; NEW's mode comes at the rename.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let tmp = builder.tempfile_in(dir).map_err(|e| {
        Fail::from(Error::io(
            format!("creating a temporary file in {}", dir.display()),
            e,
        ))
    })?;
    let (file, path) = tmp.into_parts();
    // Alive while locked (see container::remove_stale_temps).
    let _ = file.try_lock();
    signal::remove_on_signal(&path);
    let tmp_name = path.to_path_buf();
    let perms = src
        .metadata()
        .map(|m| Perms::from_meta(&m))
        .unwrap_or(Perms::From(0o600));
    let kept = file
        .try_clone()
        .map_err(|e| Error::io(format!("opening {}", tmp_name.display()), e))?;
    *OUTPUT.lock().unwrap_or_else(|p| p.into_inner()) = Some(Output {
        tmp: path,
        file: kept,
        perms,
        out: out.to_path_buf(),
        sync,
    });
    remove_stale(out, image);
    let copied =
        device::copy_sparse(&src, &file).and_then(|_| if sync { file.sync_all() } else { Ok(()) });
    copied.map_err(|e| {
        Error::io(
            format!("copying {} to {}", image.display(), tmp_name.display()),
            e,
        )
    })?;
    drop(src); // releases the shared lock
    Ok(file)
}

/// What happens to a journal that needs recovery, for [`note_recovery`].
const READ_THROUGH: &str = "reading through it without changing the file";
const REPLAY_IN_PLACE: &str = "replaying it into the image first, as the kernel does at mount";
const REPLAY_COPY: &str = "replaying it into the copy first (IMAGE itself is not changed)";

/// Reading, the notes are said at once; writing, they wait for the
/// commit, so that a command that fails says only its error (and the
/// image, unchanged, was not replayed into after all).
fn note_recovery(fs: &Filesystem, image: &Path, how: &str) {
    let emit = |line: String| {
        if how == READ_THROUGH {
            say(line)
        } else {
            defer(line)
        }
    };
    if let Some(o) = fs.orphan_report() {
        emit(format!(
            "ext3edit: note: {}: the orphan list was pending; releasing it first, as the kernel does at mount ({})",
            image.display(),
            orphan_summary(o)
        ));
    }
    if let Some(n) = fs.recovery_note() {
        emit(format!("ext3edit: warning: {}: {n}", image.display()));
    }
    if let Some(r) = fs.recovery_report() {
        emit(format!(
            "ext3edit: note: {}: the journal needs recovery; {how} ({} transaction{}, {} block{}{})",
            image.display(),
            r.transactions.len(),
            if r.transactions.len() == 1 { "" } else { "s" },
            r.blocks.len(),
            if r.blocks.len() == 1 { "" } else { "s" },
            replay_problems(r)
        ));
    }
}

/// What releasing the orphan list did, in words.
pub fn orphan_summary(o: &ext3edit::orphan::OrphanReport) -> String {
    if o.skipped_errors {
        return "the file system is marked with errors: the orphan list was cleared without releasing its inodes (as e2fsck does); run e2fsck -f".into();
    }
    let n = |v: &Vec<u32>| {
        v.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !o.freed.is_empty() {
        parts.push(format!(
            "freed orphan inode{} {}",
            if o.freed.len() == 1 { "" } else { "s" },
            n(&o.freed)
        ));
    }
    if !o.truncated.is_empty() {
        parts.push(format!(
            "truncated orphan inode{} {} to {} size",
            if o.truncated.len() == 1 { "" } else { "s" },
            n(&o.truncated),
            if o.truncated.len() == 1 {
                "its"
            } else {
                "their"
            }
        ));
    }
    if parts.is_empty() {
        parts.push("emptied the orphan list (it named no inode)".into());
    }
    parts.join("; ")
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
pub fn commit(fs: Filesystem) -> R<()> {
    commit_inner(fs)?;
    let lines = std::mem::take(&mut *DEFERRED.lock().unwrap_or_else(|p| p.into_inner()));
    for l in lines {
        say(l);
    }
    Ok(())
}

fn commit_inner(mut fs: Filesystem) -> R<()> {
    fs.commit()?;
    drop(fs);
    let seek = SEEKABLE.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((s, out)) = seek {
        s.finish(out.as_deref(), 0)?;
        return Ok(());
    }
    let packed = PACKED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(p) = packed {
        Spool::finish_as(
            p.raw.path(),
            &p.dest,
            p.format,
            p.level,
            0,
            &p.entry,
            p.perms,
        )?;
        return Ok(());
    }
    let taken = OUTPUT.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(Output {
        tmp,
        file,
        perms,
        out,
        sync,
    }) = taken
    {
        let tmp_name = tmp.to_path_buf();
        // NEW's mode: IMAGE's read and write bits under the umask, as a
        // compressed --output gets them.
        perms
            .apply(&file)
            .map_err(|e| Error::io(format!("setting the mode of {}", tmp_name.display()), e))?;
        // rename(2): NEW is replaced as a name (a symlink is replaced, not
        // followed); on failure `persist` hands the file back, and dropping
        // it removes it.
        tmp.persist(&out).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", tmp_name.display(), out.display()),
                e.error,
            )
        })?;
        signal::forget_temp();
        drop(file);
        // Make the new name durable too (best effort: NEW is in place).
        #[cfg(unix)]
        if let Some(dir) = out.parent().filter(|_| sync) {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
    }
    Ok(())
}

/// Remove the `--output` copy of a command that did not succeed.
pub fn discard_output() {
    PACKED.lock().unwrap_or_else(|p| p.into_inner()).take();
    SEEKABLE.lock().unwrap_or_else(|p| p.into_inner()).take();
    READ_SPOOL.lock().unwrap_or_else(|p| p.into_inner()).clear();
    ext3edit::container::remove_all_temps();
    let taken = OUTPUT.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(taken); // TempPath removes the file
    signal::forget_temp();
}
