//! Compressed images under attack: parallel writers, device nodes and
//! FIFOs as OUT, zip archives with several entries or a renamed file, and
//! archives of something that is not an ext image.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

struct T {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    img: PathBuf,
    file: PathBuf,
}

fn setup() -> T {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    std::fs::create_dir(dir.join("tmp")).unwrap();
    let i = mkfs(&Cfg {
        fstype: "ext3",
        block: 1024,
        inode: 128,
        dir_index: true,
        size_kib: 4096,
    });
    let img = dir.join("disk.img");
    std::fs::copy(&i.path, &img).unwrap();
    let file = dir.join("hello");
    std::fs::write(&file, b"hello\n").unwrap();
    T {
        _dir: d,
        dir,
        img,
        file,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run ext3edit in `dir` (TMPDIR inside it).
fn x(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .env("TMPDIR", dir.join("tmp"))
        .env_remove("EXT3EDIT_ZIP_ENTRY")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let o = x(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Exit 1 with one line; returns it.
fn fails(dir: &Path, args: &[&str]) -> String {
    let o = x(dir, args);
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
    e
}

fn names_in(dir: &Path, img: &str) -> Vec<String> {
    let o = ok(dir, &["ls", img, "/"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.to_string())
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn file_type(p: &Path) -> std::fs::FileType {
    std::fs::symlink_metadata(p).unwrap().file_type()
}

/// Four parallel `put`s on the same packed image: every one that exits 0
/// has its file in the result (each writer holds IMAGE's lock from its
/// read to its rename).
#[test]
fn parallel_writers_of_a_packed_image_keep_every_edit() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    for fmt in ["gz", "zip", "bz2", "xz"] {
        let packed = format!("img.{fmt}");
        ok(&t.dir, &["pack", s(&t.img), &packed, "-f"]);
        let kids: Vec<_> = (1..=4)
            .map(|i| {
                Command::new(bin())
                    .args(["put", &packed, s(&t.file), &format!("/f{i}")])
                    .current_dir(&t.dir)
                    .env("EXT3EDIT_NO_PROGRESS", "1")
                    .env("TMPDIR", t.dir.join("tmp"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = kids
            .into_iter()
            .map(|k| k.wait_with_output().unwrap())
            .collect();
        let names = names_in(&t.dir, &packed);
        for (i, o) in outs.iter().enumerate() {
            let e = String::from_utf8_lossy(&o.stderr);
            let f = format!("f{}", i + 1);
            if o.status.success() {
                assert!(names.contains(&f), "{fmt}: {f} was lost: {names:?}");
            } else {
                assert_eq!(e.trim_end().lines().count(), 1, "{fmt}: {e}");
            }
        }
        let raw = t.dir.join("check.img");
        ok(&t.dir, &["unpack", &packed, s(&raw), "-f"]);
        fsck_clean(&raw);
    }
}

/// pack/unpack -f and a compressed --output never replace a FIFO or a
/// device node with a regular file; `unpack X -` writes to stdout.
#[test]
fn pack_and_unpack_refuse_fifos_and_devices_as_out() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    ok(&t.dir, &["pack", s(&t.img), "a.gz"]);
    let fifo = t.dir.join("fifo");
    let mk = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(mk.success());
    let mut nodes = vec![fifo.clone()];
    if is_root() {
        let null = t.dir.join("null");
        let mk = Command::new("mknod")
            .args([s(&null), "c", "1", "3"])
            .status()
            .unwrap();
        assert!(mk.success());
        nodes.push(null);
    } else {
        skip("not root: no character device node made");
    }
    for n in &nodes {
        let e = fails(&t.dir, &["pack", s(&t.img), s(n), "-f"]);
        assert!(e.contains("give a file name"), "{e}");
        fails(&t.dir, &["unpack", "a.gz", s(n), "-f"]);
        let e = fails(&t.dir, &["put", "a.gz", s(&t.file), "/x", "--output", s(n)]);
        assert!(e.contains("--output"), "{e}");
        let ft = file_type(n);
        assert!(!ft.is_file(), "{} was replaced by a file", n.display());
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(file_type(&fifo).is_fifo());
    // A symlink is replaced as a name (like mv), its target left alone.
    std::fs::write(t.dir.join("target"), b"keep").unwrap();
    std::os::unix::fs::symlink("target", t.dir.join("link")).unwrap();
    ok(&t.dir, &["unpack", "a.gz", "link", "-f"]);
    assert_eq!(std::fs::read(t.dir.join("target")).unwrap(), b"keep");
    assert_eq!(bytes(&t.dir.join("link")), bytes(&t.img));
    // `-` is standard output, not a file named "-".
    let o = ok(&t.dir, &["unpack", "a.gz", "-"]);
    assert!(o.stdout == bytes(&t.img), "unpack - wrote something else");
    let o = ok(&t.dir, &["pack", s(&t.img), "-", "--format", "gz"]);
    std::fs::write(t.dir.join("again.gz"), &o.stdout).unwrap();
    ok(&t.dir, &["unpack", "again.gz", "again.img"]);
    assert_eq!(bytes(&t.dir.join("again.img")), bytes(&t.img));
    assert!(!t.dir.join("-").exists(), "a file named - was made");
}

/// The names of a zip's entries, in order.
fn zip_names(p: &Path) -> Vec<String> {
    let a = zip::ZipArchive::new(std::fs::File::open(p).unwrap()).unwrap();
    a.file_names().map(|n| n.unwrap().into_owned()).collect()
}

/// A zip holding `files` (name, bytes), stored.
fn make_zip(p: &Path, files: &[(&str, Vec<u8>)]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(p).unwrap());
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    for (n, d) in files {
        w.start_file(*n, o).unwrap();
        w.write_all(d).unwrap();
    }
    w.finish().unwrap();
}

/// An edited zip keeps its entry's name; a zip with several entries is
/// not edited in place (the others would be lost), and `--entry` picks
/// one for every command.
#[test]
fn zip_edits_keep_the_entry_and_the_other_members() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    let img = bytes(&t.img);
    let one = t.dir.join("img.zip");
    make_zip(&one, &[("centos.ext3", img.clone())]);
    ok(&t.dir, &["put", "img.zip", s(&t.file), "/new"]);
    assert_eq!(zip_names(&one), ["centos.ext3"]);
    assert!(names_in(&t.dir, "img.zip").contains(&"new".to_string()));

    let two = t.dir.join("two.zip");
    make_zip(&two, &[("a.img", img.clone()), ("b.img", img.clone())]);
    let before = bytes(&two);
    let e = fails(&t.dir, &["ls", "two.zip", "/"]);
    assert!(e.contains("--entry NAME"), "{e}");
    ok(&t.dir, &["ls", "two.zip", "/", "--entry", "b.img"]);
    ok(&t.dir, &["--entry", "a.img", "info", "two.zip"]);
    let e = fails(
        &t.dir,
        &["put", "two.zip", s(&t.file), "/new", "--entry", "b.img"],
    );
    assert!(e.contains("2 files"), "{e}");
    assert_eq!(bytes(&two), before, "the archive changed");
    // Into a new file: the edited entry alone, under its own name.
    ok(
        &t.dir,
        &[
            "put",
            "two.zip",
            s(&t.file),
            "/new",
            "--entry",
            "b.img",
            "--output",
            "b.zip",
        ],
    );
    assert_eq!(zip_names(&t.dir.join("b.zip")), ["b.img"]);
    ok(&t.dir, &["unpack", "two.zip", "b.out", "--entry", "b.img"]);
    assert_eq!(bytes(&t.dir.join("b.out")), img);
}

/// An archive whose start is not an ext image is refused as soon as its
/// first 64 KiB are out: here its second part is damaged, and the error
/// is about the start, not the damage further on (which the whole
/// decompression would reach first).
#[test]
fn an_archive_of_something_else_stops_at_its_start() {
    let t = setup();
    let mut gz = Vec::new();
    for _ in 0..2 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&vec![0u8; 4 << 20]).unwrap();
        gz.extend_from_slice(&e.finish().unwrap());
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&pseudo_random(1 << 20, 3)).unwrap();
    let tail = e.finish().unwrap();
    gz.extend_from_slice(&tail[..tail.len() / 2]);
    std::fs::write(t.dir.join("z.gz"), &gz).unwrap();
    let mut bz = Vec::new();
    for _ in 0..2 {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&vec![0u8; 4 << 20]).unwrap();
        bz.extend_from_slice(&e.finish().unwrap());
    }
    bz.extend_from_slice(b"BZh91AY&SY\x00\x01\x02");
    std::fs::write(t.dir.join("z.bz2"), &bz).unwrap();
    for f in ["z.gz", "z.bz2"] {
        for cmd in ["info", "check"] {
            let e = fails(&t.dir, &[cmd, f]);
            assert!(
                e.contains("is not an ext2/3/4 image") && e.contains("all zeros"),
                "{cmd} {f}: {e}"
            );
        }
        let e = fails(&t.dir, &["unpack", f, "out.img"]);
        assert!(e.contains("is not an ext2/3/4 image"), "{e}");
        assert!(!t.dir.join("out.img").exists());
    }
    // A damaged superblock after an empty boot block still reaches the
    // file system code, raw or packed alike.
    let mut img = bytes(&t.img);
    img[1080] = 0;
    img[1081] = 0;
    std::fs::write(t.dir.join("bad.img"), &img).unwrap();
    let raw = fails(&t.dir, &["info", "bad.img"]);
    ok(&t.dir, &["pack", "bad.img", "bad.gz"]);
    let packed = fails(&t.dir, &["info", "bad.gz"]);
    assert!(!raw.contains("all zeros"), "{raw}");
    assert!(!packed.contains("is not an ext2/3/4 image"), "{packed}");
}

/// `pack` is asked for more bytes than the image holds (it was cut short
/// after its size was read): an error, not an archive padded with zeros
/// (the bytes past the end are missing, not a hole).
#[test]
fn pack_of_an_image_shorter_than_asked_fails() {
    if !have_e2fsprogs() {
        return;
    }
    use ext3edit::container::{pack, Format};
    let t = setup();
    let f = std::fs::File::open(&t.img).unwrap();
    let len = f.metadata().unwrap().len();
    for fmt in [Format::Bzip2, Format::Gzip, Format::Zip, Format::Xz] {
        let out = tempfile::tempfile().unwrap();
        let r = pack(&f, len + (3 << 20), &out, fmt, 1, 2, "disk.img");
        let e = r.err().unwrap_or_else(|| panic!("{fmt:?}: packed"));
        assert!(e.to_string().contains("byte"), "{fmt:?}: {e}");
    }
}

/// The bytes that bunzip2 makes of `p`.
fn bunzip(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut v = Vec::new();
    bzip2::read::MultiBzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_end(&mut v)
        .unwrap();
    v
}

/// Another process truncates IMAGE, or writes behind and ahead of where
/// `pack` reads, while it runs: pack fails with one line and writes no
/// OUT, or OUT holds the image as it was before or after, never a mix.
#[test]
fn pack_racing_a_writer_packs_one_state_or_fails() {
    if !have_e2fsprogs() {
        return;
    }
    use std::os::unix::fs::FileExt;
    let t = setup();
    let fs = std::fs::read(&t.img).unwrap();
    let big = t.dir.join("big.img");
    let data = pseudo_random(12 << 20, 7);
    for mutation in ["truncate", "two writes"] {
        let f = std::fs::File::create(&big).unwrap();
        f.write_all_at(&fs, 0).unwrap();
        f.set_len(256 << 20).unwrap();
        f.write_all_at(&data, 200 << 20).unwrap();
        drop(f);
        let before = std::fs::read(&big).unwrap();
        let out = t.dir.join("big.img.bz2");
        let _ = std::fs::remove_file(&out);
        let kid = Command::new(bin())
            .args(["pack", s(&big), s(&out), "--level", "1", "--threads", "1"])
            .current_dir(&t.dir)
            .env("EXT3EDIT_NO_PROGRESS", "1")
            .env("TMPDIR", t.dir.join("tmp"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
        match mutation {
            "truncate" => f.set_len(8 << 20).unwrap(),
            _ => {
                f.write_all_at(b"behind", 1 << 20).unwrap();
                f.write_all_at(b"ahead", 250 << 20).unwrap();
            }
        }
        drop(f);
        let after = std::fs::read(&big).unwrap();
        let o = kid.wait_with_output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            let got = bunzip(&out);
            assert!(
                got == before || got == after,
                "{mutation}: pack succeeded with an archive of neither state"
            );
        } else {
            assert_eq!(o.status.code(), Some(1), "{mutation}: {e}");
            assert_eq!(e.trim_end().lines().count(), 1, "{mutation}: {e}");
            assert!(!out.exists(), "{mutation}: OUT left behind");
        }
    }
}

/// A gzip image followed by zeros (a tape block, a partition or a loop
/// device rounded up) unpacks as gunzip reads it: the zeros are padding.
/// Other bytes after them are still an error.
#[test]
fn gzip_followed_by_zeros_unpacks() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    let raw = std::fs::read(&t.img).unwrap();
    // pack's members, and one foreign member (no E3 sizes: the sequential path).
    ok(&t.dir, &["pack", s(&t.img), "p.gz"]);
    let mut foreign = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    foreign.write_all(&raw).unwrap();
    std::fs::write(t.dir.join("f.gz"), foreign.finish().unwrap()).unwrap();
    for name in ["p.gz", "f.gz"] {
        let mut gz = std::fs::read(t.dir.join(name)).unwrap();
        gz.resize(gz.len().div_ceil(512) * 512 + 512, 0);
        std::fs::write(t.dir.join(name), &gz).unwrap();
        for threads in ["1", "2"] {
            ok(
                &t.dir,
                &["unpack", name, "out.img", "-f", "--threads", threads],
            );
            assert!(
                std::fs::read(t.dir.join("out.img")).unwrap() == raw,
                "{name}"
            );
        }
        gz.push(1);
        std::fs::write(t.dir.join(name), &gz).unwrap();
        let e = fails(&t.dir, &["unpack", name, "bad.img"]);
        assert!(e.contains("trailing data"), "{name}: {e}");
        assert!(!t.dir.join("bad.img").exists());
    }
}

/// A loop device (root only: skipped otherwise) as IMAGE: `pack` packs
/// all of it (its metadata says 0 bytes), and a compressed image on one
/// unpacks.
#[test]
fn pack_and_unpack_a_block_device() {
    if !have_e2fsprogs() || !is_root() {
        return;
    }
    let t = setup();
    let attach = |p: &Path| -> Option<String> {
        let o = Command::new("losetup")
            .args(["-f", "--show", s(p)])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let detach = |dev: &str| {
        let _ = Command::new("losetup").args(["-d", dev]).status();
    };
    let Some(dev) = attach(&t.img) else {
        return skip("no loop device");
    };
    let raw = std::fs::read(&t.img).unwrap();
    let mut bad = Vec::new();
    for fmt in ["bz2", "gz", "xz", "zip"] {
        // No panic while the device is attached.
        let out = format!("d.{fmt}");
        let p = x(&t.dir, &["pack", &dev, &out]);
        let u = x(&t.dir, &["unpack", &out, "d.img", "-f"]);
        if !p.status.success()
            || !u.status.success()
            || std::fs::read(t.dir.join("d.img")).ok().as_ref() != Some(&raw)
        {
            bad.push(format!(
                "pack {fmt}: {}",
                String::from_utf8_lossy(&u.stderr)
            ));
        }
    }
    detach(&dev);
    assert!(bad.is_empty(), "{bad:?}");
    for fmt in ["bz2", "gz", "xz"] {
        let packed = t.dir.join(format!("d.{fmt}"));
        let mut v = std::fs::read(&packed).unwrap();
        v.resize(v.len().div_ceil(512) * 512, 0);
        std::fs::write(&packed, &v).unwrap();
        let Some(dev) = attach(&packed) else {
            return skip("no loop device");
        };
        let o = x(&t.dir, &["unpack", &dev, "u.img", "-f"]);
        detach(&dev);
        if !o.status.success() || std::fs::read(t.dir.join("u.img")).ok().as_ref() != Some(&raw) {
            bad.push(format!(
                "unpack {fmt}: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
}

/// Under a file size limit (`ulimit -f`, a quota-like full disk), pack,
/// unpack and an edit of a compressed image fail with one line, leave no
/// temporary file and keep IMAGE as it was (SIGXFSZ used to kill the
/// process with its temporary files left behind).
#[test]
fn a_file_size_limit_is_an_error_not_a_kill() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    // A file that does not compress, so that OUT outgrows the limit too.
    std::fs::write(&t.file, pseudo_random(2 << 20, 9)).unwrap();
    ok(&t.dir, &["put", s(&t.img), s(&t.file), "/noise"]);
    ok(&t.dir, &["pack", s(&t.img), "d.bz2"]);
    let packed = std::fs::read(t.dir.join("d.bz2")).unwrap();
    let limited = |args: &[&str]| -> Output {
        // ulimit -f counts 512-byte blocks: 1 MiB.
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 2048 && exec \"$@\"")
            .arg("sh")
            .arg(bin())
            .args(args)
            .current_dir(&t.dir)
            .env("EXT3EDIT_NO_PROGRESS", "1")
            .env("TMPDIR", t.dir.join("tmp"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for args in [
        &["pack", s(&t.img), "e.bz2"][..],
        &["unpack", "d.bz2", "e.img"],
        // A seekable edit: the new d.bz2 outgrows the limit.
        &["put", "-r", "d.bz2", "tmp", "/again"],
    ] {
        let o = limited(args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {:?} {e}", o.status);
        assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains("too large"), "{args:?}: {e}");
        let mut left: Vec<_> = std::fs::read_dir(&t.dir)
            .unwrap()
            .chain(std::fs::read_dir(t.dir.join("tmp")).unwrap())
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["d.bz2", "disk.img", "hello", "tmp"], "{args:?}");
        assert!(std::fs::read(t.dir.join("d.bz2")).unwrap() == packed);
    }
}

/// One bzip2 stream of `data` at `level`.
fn bz(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `pack --level 1`'s layout (one stream per 98,304 bytes) with one
/// chunk compressed again at level 9 by hand: bunzip2 reads it as
/// before, and so must every command. The seekable path used to miss the
/// level-9 stream's start, so every later chunk was read from the stream
/// after it: `ls` saw a corrupt image, and a `put` exited 0 with its file
/// lost. (The image file is 1 MiB longer than the file system, so the
/// missing chunk did not show as a short image.)
#[test]
fn a_bzip2_chunk_compressed_again_at_another_level() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    // Files spread over the image, so that reads and writes reach chunks
    // past the altered one.
    std::fs::write(&t.file, pseudo_random(1 << 20, 3)).unwrap();
    ok(&t.dir, &["put", s(&t.img), s(&t.file), "/noise"]);
    let mut raw = std::fs::read(&t.img).unwrap();
    raw.resize(raw.len() + (1 << 20), 0);
    const C: usize = 98_304;
    for k in [5, 30] {
        // pack's layout at level 1 (markers included), but for chunk k.
        let mut f = ext3edit::container::bzip2::marker(1).to_vec();
        for (i, c) in raw.chunks(C).enumerate() {
            f.extend_from_slice(&bz(c, if i == k { 9 } else { 1 }));
        }
        f.extend_from_slice(&ext3edit::container::bzip2::marker(1));
        let name = format!("m{k}.img.bz2");
        std::fs::write(t.dir.join(&name), &f).unwrap();
        assert!(bunzip(&t.dir.join(&name)) == raw);
        let names = names_in(&t.dir, &name);
        assert!(names.contains(&"noise".to_string()), "{k}: {names:?}");
        ok(&t.dir, &["put", &name, s(&t.dir.join("tmp")), "/new", "-r"]);
        let names = names_in(&t.dir, &name);
        assert!(names.contains(&"new".to_string()), "{k}: {names:?}");
        let out = t.dir.join("m.img");
        std::fs::write(&out, bunzip(&t.dir.join(&name))).unwrap();
        fsck_clean(&out);
        assert_eq!(debugfs_cat(&out, "/noise"), pseudo_random(1 << 20, 3));
    }
}

/// Flip bit `bit` (from the first byte's top bit) of `v`.
fn flip(v: &mut [u8], bit: usize) {
    v[bit / 8] ^= 0x80 >> (bit % 8);
}

/// The bit offset of a single-block stream's end magic.
fn end_magic_bit(stream: &[u8]) -> usize {
    const END: u64 = 0x1772_4538_5090;
    let bit = |i: usize| (stream[i / 8] >> (7 - i % 8)) as u64 & 1;
    (0..stream.len() * 8 - 48)
        .rev()
        .find(|&o| (0..48).fold(0u64, |a, k| a << 1 | bit(o + k)) == END)
        .unwrap()
}

/// Parallel bzip2 decoding remembers blocks that decode to zeros and does
/// not decode them again: the result must still be what bunzip2 makes of
/// the file, and a damaged copy of a remembered block (its stream CRC,
/// its block CRC, the level it is read at) must still be an error.
#[test]
fn remembered_zero_blocks_are_checked_like_any_other() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    let raw = std::fs::read(&t.img).unwrap();
    let head = bz(&raw, 9);
    let z = bz(&[0u8; 98_304], 1);
    let z9 = bz(&[0u8; 98_304], 9);
    // 40 MiB of zeros: one level-9 block, too big for a level-1 stream.
    let big = bz(&vec![0u8; 40 << 20], 9);
    let mut big1 = big.clone();
    big1[3] = b'1';
    let e = end_magic_bit(&z);
    let mut stream_crc = z.clone();
    flip(&mut stream_crc, e + 48 + 5);
    let mut block_crc = stream_crc.clone();
    flip(&mut block_crc, 10 * 8 + 5);
    let mut data = z.clone();
    data[z.len() / 2] ^= 0x55;
    let cat = |parts: &[&[u8]]| parts.concat();
    let good = [
        cat(&[&head, &z, &z, &z9, &z9, &z, &bz(&[0u8; 50_000], 9), &z]),
        cat(&[&head, &big, &big, &z, &big]),
    ];
    for (i, f) in good.iter().enumerate() {
        std::fs::write(t.dir.join("g.bz2"), f).unwrap();
        let want = bunzip(&t.dir.join("g.bz2"));
        for threads in ["1", "2"] {
            ok(
                &t.dir,
                &["unpack", "g.bz2", "g.img", "-f", "--threads", threads],
            );
            assert!(std::fs::read(t.dir.join("g.img")).unwrap() == want, "{i}");
        }
    }
    let bad = [
        cat(&[&head, &z, &z, &z, &stream_crc, &z]),
        cat(&[&head, &z, &z, &z, &block_crc, &z]),
        cat(&[&head, &z, &z, &z, &data, &z]),
        cat(&[&head, &big, &big, &big1]),
        cat(&[&head, &z, &z, &z[..z.len() - 3]]),
    ];
    for (i, f) in bad.iter().enumerate() {
        std::fs::write(t.dir.join("b.bz2"), f).unwrap();
        let e = fails(&t.dir, &["unpack", "b.bz2", "b.img", "--threads", "2"]);
        assert!(e.contains("bzip2"), "{i}: {e}");
        assert!(!t.dir.join("b.img").exists(), "{i}");
    }
}

/// A gzip member as `pack` writes it (the `E3` subfield: member size,
/// raw size), but whose E3 raw size says `claimed`.
fn e3_member(data: &[u8], claimed: u32) -> Vec<u8> {
    let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    d.write_all(data).unwrap();
    let body = d.finish().unwrap();
    let size = (24 + body.len() + 8) as u32;
    let mut m = vec![
        0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 12, 0, b'E', b'3', 8, 0,
    ];
    m.extend_from_slice(&size.to_le_bytes());
    m.extend_from_slice(&claimed.to_le_bytes());
    m.extend_from_slice(&body);
    let mut crc = flate2::Crc::new();
    crc.update(data);
    m.extend_from_slice(&crc.sum().to_le_bytes());
    m.extend_from_slice(&(data.len() as u32).to_le_bytes());
    m
}

/// A gzip image in `pack`'s member layout where two members were cut
/// differently but kept E3 sizes of 1 MiB each (gunzip reads it as the
/// image, since it ignores E3): the seekable path must not trust E3 over
/// the trailer's ISIZE. It used to read (or, with a whole-chunk write,
/// write) those chunks at the wrong offsets; a `put` failed with "a member
/// holds more than its header says".
#[test]
fn gzip_members_whose_e3_sizes_lie() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    std::fs::write(&t.file, pseudo_random(1 << 20, 5)).unwrap();
    ok(&t.dir, &["put", s(&t.img), s(&t.file), "/noise"]);
    let raw = std::fs::read(&t.img).unwrap();
    const M: usize = 1 << 20;
    let mut f = Vec::new();
    f.extend_from_slice(&e3_member(&raw[..M + M / 2], M as u32));
    f.extend_from_slice(&e3_member(&raw[M + M / 2..2 * M], M as u32));
    for c in raw[2 * M..].chunks(M) {
        f.extend_from_slice(&e3_member(c, c.len() as u32));
    }
    std::fs::write(t.dir.join("l.gz"), &f).unwrap();
    ok(
        &t.dir,
        &["put", "l.gz", s(&t.dir.join("tmp")), "/new", "-r"],
    );
    let mut out = Vec::new();
    use std::io::Read;
    flate2::read::MultiGzDecoder::new(std::fs::File::open(t.dir.join("l.gz")).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    std::fs::write(t.dir.join("l.img"), &out).unwrap();
    fsck_clean(&t.dir.join("l.img"));
    assert_eq!(
        debugfs_cat(&t.dir.join("l.img"), "/noise"),
        pseudo_random(1 << 20, 5)
    );
    assert!(names_in(&t.dir, "l.img").contains(&"new".to_string()));
}

/// Raw deflate of `data`, ended by a full flush (byte-aligned, no
/// reference to anything before it: pieces made so can be concatenated)
/// or, with `last`, by the final block.
fn deflate_piece(data: &[u8], last: bool) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    let flush = if last {
        flate2::FlushCompress::Finish
    } else {
        flate2::FlushCompress::Full
    };
    loop {
        let i = c.total_in() as usize;
        let st = c.compress_vec(&data[i..], &mut out, flush).unwrap();
        if (last && st == flate2::Status::StreamEnd)
            || (!last && c.total_in() as usize == data.len() && out.len() < out.capacity())
        {
            return out;
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// The members of a file in `pack`'s gzip layout, by their E3 sizes.
fn e3_members(f: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let mut at = 0;
    while at < f.len() {
        let size = u32::from_le_bytes(f[at + 16..at + 20].try_into().unwrap()) as usize;
        v.push(&f[at..at + size]);
        at += size;
    }
    v
}

/// A member in `pack`'s layout whose E3 size and trailer (ISIZE, modulo
/// 2^32) say 1 MiB while it inflates to its 1 MiB chunk and 4 GiB of
/// zeros after it (4 MB of deflate): gunzip reads 4 GiB more than the
/// seekable reader's index says. A member that nothing reads (free
/// space) was copied unread, so `ls` and `put` went on with another image
/// than gunzip's (where everything after it is 4 GiB further). Such a
/// file must not be seekable: the full path then reads it as gunzip does
/// (here: past the size limit, one line).
#[test]
fn a_gzip_member_that_hides_4_gib_is_not_seekable() {
    use std::io::Read;
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    ok(&t.dir, &["pack", s(&t.img), "p.gz"]);
    let packed = std::fs::read(t.dir.join("p.gz")).unwrap();
    let raw = std::fs::read(&t.img).unwrap();
    const M: usize = 1 << 20;
    let chunk = &raw[2 * M..3 * M];
    // 4 GiB of zeros: 64 pieces of 64 MiB, each deflated once.
    let zeros = vec![0u8; 64 * M];
    let zpiece = deflate_piece(&zeros, false);
    let mut body = deflate_piece(chunk, false);
    let mut crc = flate2::Crc::new();
    crc.update(chunk);
    let mut zcrc = flate2::Crc::new();
    zcrc.update(&zeros);
    for _ in 0..64 {
        body.extend_from_slice(&zpiece);
        crc.combine(&zcrc);
    }
    body.extend_from_slice(&deflate_piece(&[], true));
    let size = (24 + body.len() + 8) as u32;
    let mut bad = vec![0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 3, 12, 0, b'E', b'3', 8, 0];
    bad.extend_from_slice(&size.to_le_bytes());
    bad.extend_from_slice(&(M as u32).to_le_bytes());
    bad.extend_from_slice(&body);
    bad.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: (4 GiB + 1 MiB) modulo 2^32.
    bad.extend_from_slice(&(M as u32).to_le_bytes());
    let mut members = e3_members(&packed);
    assert_eq!(members.len(), raw.len() / M);
    members[2] = &bad;
    let f = t.dir.join("a.gz");
    let attack = members.concat();
    std::fs::write(&f, &attack).unwrap();
    // The oracle: gunzip's view is 4 GiB longer than the image.
    let mut n = 0u64;
    let mut d = flate2::read::MultiGzDecoder::new(std::fs::File::open(&f).unwrap());
    let mut buf = vec![0u8; 4 * M];
    loop {
        let k = d.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    assert_eq!(n, raw.len() as u64 + (4 << 30));
    let c = ext3edit::container::Container::open(&f).unwrap();
    let sk = ext3edit::container::Seekable::open(&c, false, &t.dir, None).unwrap();
    assert!(
        sk.is_none(),
        "a member that can hide 2^32 bytes is seekable"
    );
    // The full path: past the limit, one line, nothing written.
    let limited = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .current_dir(&t.dir)
            .env("EXT3EDIT_NO_PROGRESS", "1")
            .env("EXT3EDIT_MAX_SIZE", (64 * M).to_string())
            .env("TMPDIR", t.dir.join("tmp"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for args in [
        &["ls", "a.gz", "/"][..],
        &["put", "a.gz", s(&t.file), "/new"],
    ] {
        let o = limited(args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains("more than"), "{args:?}: {e}");
        assert!(std::fs::read(&f).unwrap() == attack, "{args:?}");
        assert!(listing(&t.dir.join("tmp")).is_empty(), "{args:?}");
    }
}

/// One gzip member with `pack`'s E3 subfield holding the image and then
/// 1.5 GiB of `y\n` (7 MB compressed): the parallel decoder used to inflate
/// the whole member into memory before the size limit applied (2.1 GB for
/// 2 GiB; SIGABRT under a 1 GiB address space limit, its temporary file
/// left).
/// It must stream it: under `prlimit --as=1G`, `ls` succeeds (within the
/// default limit) and `unpack --max-size` stops with one line, neither
/// leaving a temporary file.
#[test]
fn a_gzip_bomb_member_is_streamed_under_the_size_limit() {
    if !have_e2fsprogs() {
        return;
    }
    if !have("prlimit") {
        skip("prlimit not installed: the gzip bomb test needs it");
        return;
    }
    let t = setup();
    let raw = std::fs::read(&t.img).unwrap();
    const M: usize = 1 << 20;
    let ys: Vec<u8> = b"y\n".iter().copied().cycle().take(64 * M).collect();
    let ypiece = deflate_piece(&ys, false);
    let mut body = deflate_piece(&raw, false);
    let mut crc = flate2::Crc::new();
    crc.update(&raw);
    let mut ycrc = flate2::Crc::new();
    ycrc.update(&ys);
    for _ in 0..24 {
        body.extend_from_slice(&ypiece);
        crc.combine(&ycrc);
    }
    body.extend_from_slice(&deflate_piece(&[], true));
    let len = (raw.len() as u64 + 24 * 64 * M as u64) as u32;
    let size = (24 + body.len() + 8) as u32;
    let mut m = vec![0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 3, 12, 0, b'E', b'3', 8, 0];
    m.extend_from_slice(&size.to_le_bytes());
    m.extend_from_slice(&len.to_le_bytes());
    m.extend_from_slice(&body);
    m.extend_from_slice(&crc.sum().to_le_bytes());
    m.extend_from_slice(&len.to_le_bytes());
    std::fs::write(t.dir.join("b.gz"), &m).unwrap();
    let capped = |args: &[&str]| {
        let start = std::time::Instant::now();
        let o = Command::new("prlimit")
            .arg(format!("--as={}", 1u64 << 30))
            .arg(bin())
            .args(args)
            .current_dir(&t.dir)
            .env("EXT3EDIT_NO_PROGRESS", "1")
            .env("TMPDIR", t.dir.join("tmp"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (o, start.elapsed())
    };
    let (o, took) = capped(&["ls", "b.gz", "/"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{:?}: {e}", o.status);
    assert!(String::from_utf8_lossy(&o.stdout).contains("lost+found"));
    assert!(took.as_secs() < 120, "{took:?}");
    let (o, took) = capped(&["unpack", "b.gz", "b.img", "--max-size", "100000000"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{:?}: {e}", o.status);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.contains("more than 100000000 bytes"), "{e}");
    assert!(took.as_secs() < 30, "{took:?}");
    assert!(listing(&t.dir.join("tmp")).is_empty());
    assert!(!t.dir.join("b.img").exists());
}

/// A zip with two entries of one name (a planted second image): the zip
/// crate keeps one of them, so the archive counted as one file and was
/// read (and edited) as that one, while unzip extracts both in turn. It
/// is ambiguous: every command refuses it with one line naming the entry,
/// and nothing is written.
#[test]
fn a_zip_with_two_entries_of_one_name_is_refused() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    let img = bytes(&t.img);
    let mut other = img.clone();
    other[2000] ^= 1;
    let z = t.dir.join("dup.zip");
    make_zip(&z, &[("a.img", img.clone()), ("b.img", other)]);
    let mut raw = std::fs::read(&z).unwrap();
    let hits: Vec<usize> = (0..raw.len() - 5)
        .filter(|&i| &raw[i..i + 5] == b"b.img")
        .collect();
    assert_eq!(hits.len(), 2, "local header and central directory");
    for i in hits {
        raw[i..i + 5].copy_from_slice(b"a.img");
    }
    std::fs::write(&z, &raw).unwrap();
    for args in [
        &["ls", "dup.zip", "/"][..],
        &["ls", "dup.zip", "/", "--entry", "a.img"],
        &["put", "dup.zip", s(&t.file), "/new"],
        &["unpack", "dup.zip", "out.img"],
    ] {
        let e = fails(&t.dir, args);
        assert!(e.contains("two entries named a.img"), "{args:?}: {e}");
        assert!(std::fs::read(&z).unwrap() == raw, "{args:?}");
        assert!(!t.dir.join("out.img").exists());
    }
}

/// A member in `pack`'s layout whose E3 size spans it and the plain
/// member after it (its deflate data ends before the stated end): gunzip
/// reads both, and so must `unpack` (whose parallel decoder used to call
/// it damaged).
#[test]
fn a_gzip_member_whose_e3_size_spans_the_next_member() {
    use std::io::Read;
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    let raw = std::fs::read(&t.img).unwrap();
    const M: usize = 1 << 20;
    let mut a = e3_member(&raw[..M / 2], M as u32);
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    g.write_all(&raw[M / 2..M]).unwrap();
    let b = g.finish().unwrap();
    let span = (a.len() + b.len()) as u32;
    a[16..20].copy_from_slice(&span.to_le_bytes());
    let mut f = [a, b].concat();
    for c in raw[M..].chunks(M) {
        f.extend_from_slice(&e3_member(c, c.len() as u32));
    }
    std::fs::write(t.dir.join("s.gz"), &f).unwrap();
    let mut want = Vec::new();
    flate2::read::MultiGzDecoder::new(&f[..])
        .read_to_end(&mut want)
        .unwrap();
    assert!(want == raw);
    for threads in ["1", "2"] {
        ok(
            &t.dir,
            &["unpack", "s.gz", "s.img", "-f", "--threads", threads],
        );
        assert!(bytes(&t.dir.join("s.img")) == want, "--threads {threads}");
    }
    assert!(names_in(&t.dir, "s.gz").contains(&"lost+found".to_string()));
}

/// A file in `pack`'s gzip layout where one member's E3 size spans it and
/// a whole plain member after it (its own deflate data ending early), the
/// trailer at the span's end agreeing with E3: gunzip reads 1 MiB more
/// there than the E3 sizes say. The seekable reader decodes only the
/// chunks the engine reads, so with that member in free space it used to
/// show (and edit) another image than gunzip's. Such a file is not
/// seekable.
#[test]
fn a_gzip_member_spanning_a_hidden_member_is_not_seekable() {
    use std::io::Read;
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    ok(&t.dir, &["pack", s(&t.img), "p.gz"]);
    let packed = std::fs::read(t.dir.join("p.gz")).unwrap();
    let raw = std::fs::read(&t.img).unwrap();
    const M: usize = 1 << 20;
    let mut a = e3_member(&raw[2 * M..3 * M], M as u32);
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    g.write_all(&vec![0u8; M]).unwrap();
    let hidden = g.finish().unwrap();
    let span = (a.len() + hidden.len()) as u32;
    a[16..20].copy_from_slice(&span.to_le_bytes());
    let bad = [a, hidden].concat();
    let mut members = e3_members(&packed);
    members[2] = &bad;
    let f = t.dir.join("h.gz");
    std::fs::write(&f, members.concat()).unwrap();
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&f).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out.len(), raw.len() + M, "gunzip's view");
    let c = ext3edit::container::Container::open(&f).unwrap();
    let sk = ext3edit::container::Seekable::open(&c, false, &t.dir, None).unwrap();
    assert!(sk.is_none(), "a member hiding another is seekable");
    // The packed file itself stays seekable.
    let c = ext3edit::container::Container::open(&t.dir.join("p.gz")).unwrap();
    assert!(ext3edit::container::Seekable::open(&c, false, &t.dir, None)
        .unwrap()
        .is_some());
}

/// A member in `pack`'s layout whose deflate data is an empty final block,
/// followed by its trailer and a whole member with gzip 0.5's magic
/// (`1f 9e`, which gunzip 1.12 still reads as a member, silently) holding
/// other bytes for the chunk, its trailer agreeing with E3: the span held
/// no `1f 8b 08`, so it was not decoded at open, and with that chunk
/// unread (file data `ls` and `put` do not touch) the seekable reader
/// showed and edited another image than gunzip's, exit 0. Such a file is
/// not seekable.
#[test]
fn a_gzip_member_spanning_an_old_magic_member_is_not_seekable() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    ok(&t.dir, &["pack", s(&t.img), "p.gz"]);
    let packed = std::fs::read(t.dir.join("p.gz")).unwrap();
    let raw = std::fs::read(&t.img).unwrap();
    const M: usize = 1 << 20;
    let other = vec![0x5au8; M];
    let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    d.write_all(&other).unwrap();
    let body = d.finish().unwrap();
    let mut crc = flate2::Crc::new();
    crc.update(&other);
    let mut hidden = vec![0x1f, 0x9e, 8, 0, 0, 0, 0, 0, 0, 3];
    hidden.extend_from_slice(&body);
    hidden.extend_from_slice(&crc.sum().to_le_bytes());
    hidden.extend_from_slice(&(M as u32).to_le_bytes());
    // An empty final stored block, then CRC 0 and ISIZE 0.
    let inner = [&[3u8, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], &hidden].concat();
    let mut bad = vec![0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 3, 12, 0, b'E', b'3', 8, 0];
    bad.extend_from_slice(&((24 + inner.len()) as u32).to_le_bytes());
    bad.extend_from_slice(&(M as u32).to_le_bytes());
    bad.extend_from_slice(&inner);
    let mut members = e3_members(&packed);
    members[2] = &bad;
    let f = t.dir.join("h.gz");
    std::fs::write(&f, members.concat()).unwrap();
    if let Ok(o) = Command::new("gunzip").arg("-c").arg(&f).output() {
        if o.status.success() {
            assert_eq!(o.stdout.len(), raw.len(), "gunzip's view");
            assert!(o.stdout[2 * M..3 * M] == other[..], "gunzip's view");
        }
    }
    let c = ext3edit::container::Container::open(&f).unwrap();
    let sk = ext3edit::container::Seekable::open(&c, false, &t.dir, None).unwrap();
    assert!(
        sk.is_none(),
        "a member hiding an old-magic member is seekable"
    );
    let before = std::fs::read(&f).unwrap();
    let e = fails(&t.dir, &["put", "h.gz", s(&t.file), "/new"]);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(std::fs::read(&f).unwrap() == before);
}

/// bzip2's block CRC (CRC-32, most significant bit first) of `data`.
fn bz_crc(data: &[u8]) -> u32 {
    let mut t = [0u32; 256];
    for (i, e) in t.iter_mut().enumerate() {
        let mut c = (i as u32) << 24;
        for _ in 0..8 {
            c = if c & 0x8000_0000 != 0 {
                c << 1 ^ 0x04c1_1db7
            } else {
                c << 1
            };
        }
        *e = c;
    }
    !data
        .iter()
        .fold(!0u32, |c, &b| c << 8 ^ t[((c >> 24) as u8 ^ b) as usize])
}

/// A `.bz2` in `pack`'s layout (one stream, one block per 700 KiB chunk)
/// where chunk 2's bytes are a set of byte values chosen so that its
/// block's symbol map (16 bits per group of 16 byte values that occur)
/// spells a block magic and 32 bits after it, and chunk 0's first 4
/// bytes (the boot sector, unused) are set so that the stream CRC, which
/// bunzip2 checks, also folds to the CRCs the scanner reads, the planted
/// "block" included. No bzip2 encoder of one's own is needed. The
/// seekable index took chunk 2 as two chunks and every chunk after it one
/// chunk (700 KiB) further into the image than bunzip2 puts it: a file
/// there read as other bytes (a decoy) than bunzip2 + debugfs show, and
/// an edit wrote at the wrong offsets (exit 0, a file bunzip2 rejects).
/// The magic inside a block's header is noticed: the file takes the full
/// path.
#[test]
fn a_bzip2_block_magic_planted_in_a_symbol_map_is_noticed() {
    use std::io::Read;
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    let c = 716_800usize; // the chunk of level 9
    let mut raw = bytes(&t.img);
    let x = 2;
    assert!(raw.len() > (x + 2) * c);
    let c2: u32 = 0x1234_1234; // even weight, both halves non-zero
    let mut groups = [0x8000u16; 16];
    groups[1..4].copy_from_slice(&[0x3141, 0x5926, 0x5359]);
    groups[4] = (c2 >> 16) as u16;
    groups[5] = c2 as u16;
    let set: Vec<u8> = (0..256usize)
        .filter(|&v| groups[v / 16] >> (15 - v % 16) & 1 == 1)
        .map(|v| v as u8)
        .collect();
    for (i, b) in raw[x * c..(x + 1) * c].iter_mut().enumerate() {
        *b = set[i % set.len()];
    }
    // The fold of the real CRCs up to chunk x must be P with
    // P ^ rotl(P, 1) == c2 for both folds to agree.
    let mut bits = [0u32; 32];
    for i in 1..32 {
        bits[i] = (c2 >> i & 1) ^ bits[i - 1];
    }
    let p: u32 = (0..32).map(|i| bits[i] << i).sum();
    let rest = (1..=x).fold(0u32, |a, j| {
        a ^ bz_crc(&raw[j * c..(j + 1) * c]).rotate_left((x - j) as u32)
    });
    let want0 = (p ^ rest).rotate_right(x as u32);
    raw[..4].fill(0);
    let f0 = bz_crc(&raw[..c]);
    // Solve the 32 boot-sector bits that give chunk 0 the CRC `want0`.
    let mut basis: Vec<(u32, u32)> = Vec::new();
    for i in 0..32 {
        raw[i / 8] ^= 1 << (i % 8);
        let (mut v, mut m) = (bz_crc(&raw[..c]) ^ f0, 1u32 << i);
        raw[i / 8] ^= 1 << (i % 8);
        for &(bv, bm) in &basis {
            if v ^ bv < v {
                v ^= bv;
                m ^= bm;
            }
        }
        if v != 0 {
            basis.push((v, m));
            basis.sort_unstable_by(|a, b| b.cmp(a));
        }
    }
    let (mut r, mut m) = (want0 ^ f0, 0u32);
    for &(bv, bm) in &basis {
        if r ^ bv < r {
            r ^= bv;
            m ^= bm;
        }
    }
    assert_eq!(r, 0, "the boot sector bits give any CRC");
    for i in 0..32 {
        if m >> i & 1 == 1 {
            raw[i / 8] ^= 1 << (i % 8);
        }
    }
    assert_eq!(bz_crc(&raw[..c]), want0);
    std::fs::write(t.dir.join("planted.img"), &raw).unwrap();
    ok(
        &t.dir,
        &[
            "pack",
            "planted.img",
            "p.bz2",
            "--format",
            "bz2",
            "--level",
            "9",
        ],
    );
    let f = t.dir.join("p.bz2");
    let mut real = Vec::new();
    bzip2::read::MultiBzDecoder::new(std::fs::File::open(&f).unwrap())
        .read_to_end(&mut real)
        .unwrap();
    assert!(real == raw, "bunzip2's view is the image");
    let co = ext3edit::container::Container::open(&f).unwrap();
    if let Some(sk) = ext3edit::container::Seekable::open(&co, false, &t.dir, None).unwrap() {
        assert_eq!(sk.len(), raw.len() as u64, "the seekable view is shifted");
    }
    let before = std::fs::read(&f).unwrap();
    ok(&t.dir, &["unpack", "p.bz2", "u.img"]);
    assert!(bytes(&t.dir.join("u.img")) == raw);
    assert!(std::fs::read(&f).unwrap() == before);
}

/// A member of a file in `pack`'s layout with a reserved FLG bit set
/// (0x20: gunzip says "encrypted -- not supported" and gives nothing),
/// and one with a wrong FHCRC (gunzip: "header checksum ... != computed"):
/// the seekable reader took both and read, listed and edited the image
/// (exit 0) where gunzip gives none. Neither is seekable now.
#[test]
fn gzip_members_gunzip_refuses_for_their_header_are_not_seekable() {
    if !have_e2fsprogs() {
        return;
    }
    let t = setup();
    ok(&t.dir, &["pack", s(&t.img), "p.gz"]);
    let packed = std::fs::read(t.dir.join("p.gz")).unwrap();
    let members = e3_members(&packed);
    let mut flagged = members[1].to_vec();
    flagged[3] |= 0x20;
    // FHCRC over a header whose CRC field holds the wrong value: the
    // member grows by the two bytes, so its E3 size too.
    let m = members[2];
    let mut hcrc = m[..24].to_vec();
    hcrc[3] |= 2;
    let size = (m.len() + 2) as u32;
    hcrc[16..20].copy_from_slice(&size.to_le_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&hcrc);
    hcrc.extend_from_slice(&((crc.sum() as u16) ^ 1).to_le_bytes());
    hcrc.extend_from_slice(&m[24..]);
    for (what, i, new) in [("reserved flag", 1, flagged), ("header CRC", 2, hcrc)] {
        let mut v = members.clone();
        v[i] = &new;
        let f = t.dir.join("f.gz");
        std::fs::write(&f, v.concat()).unwrap();
        if let Ok(o) = Command::new("gunzip").arg("-t").arg(&f).output() {
            assert!(!o.status.success(), "{what}: gunzip takes it");
        }
        let c = ext3edit::container::Container::open(&f).unwrap();
        let sk = ext3edit::container::Seekable::open(&c, false, &t.dir, None).unwrap();
        assert!(sk.is_none(), "{what}: seekable");
    }
}
