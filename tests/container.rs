//! Compressed images: pack/unpack round trips against the standard tools
//! (both directions), edits through every format, and bad archives (one
//! line, exit 1, original unchanged, no temporary file left anywhere).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// The tools a format needs, or None after saying why it is skipped.
fn tools_for(fmt: &str) -> bool {
    let t: &[&str] = match fmt {
        "bz2" => &["bzip2", "bunzip2"],
        "gz" => &["gzip", "gunzip"],
        "xz" => &["xz", "unxz"],
        "zip" => &["zip", "unzip"],
        _ => &[],
    };
    for tool in t {
        if !have(tool) {
            skip(&format!(
                "{tool} is not installed: {fmt} cross-checks skipped"
            ));
            return false;
        }
    }
    true
}

/// A test directory with an image holding some data, and a private TMPDIR.
struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    tmp: PathBuf,
    img: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let tmp = d.join("tmpdir");
    std::fs::create_dir(&tmp).unwrap();
    let work = d.join("work");
    std::fs::create_dir(&work).unwrap();
    let cfg = Cfg {
        fstype: "ext3",
        block: 1024,
        inode: 128,
        dir_index: true,
        size_kib: 8192,
    };
    let i = mkfs(&cfg);
    let img = work.join("disk.img");
    std::fs::copy(&i.path, &img).unwrap();
    let data = d.join("data.bin");
    std::fs::write(&data, pseudo_random(1_500_000, 7)).unwrap();
    let o = run_in(&tmp, &["put", s(&img), s(&data), "/data.bin"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Setup {
        _dir: dir,
        dir: work,
        tmp,
        img,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sh(cmd: &str) -> Output {
    Command::new("sh").args(["-c", cmd]).output().unwrap()
}

/// The command fails with one line and exit 1, leaves `file` unchanged,
/// the directory as it was and TMPDIR empty; returns the message.
fn fails_clean(t: &Setup, file: &Path, args: &[&str]) -> String {
    let before = std::fs::read(file).unwrap();
    let names = listing(&t.dir);
    let o = run_in(&t.tmp, args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert_eq!(
        std::fs::read(file).unwrap(),
        before,
        "{args:?} changed the file"
    );
    assert_eq!(listing(&t.dir), names, "{args:?} left files behind");
    assert!(listing(&t.tmp).is_empty(), "{args:?} left files in TMPDIR");
    err
}

const FORMATS: [&str; 4] = ["bz2", "gz", "xz", "zip"];

#[test]
fn packed_by_ext3edit_unpacked_by_the_tools() {
    require_e2fsprogs!();
    let t = setup();
    let raw = std::fs::read(&t.img).unwrap();
    for fmt in FORMATS {
        if !tools_for(fmt) {
            continue;
        }
        for threads in ["1", "3"] {
            let out = t.dir.join(format!("p{threads}.{fmt}"));
            let o = run_in(&t.tmp, &["pack", s(&t.img), s(&out), "--threads", threads]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let back = t.dir.join("back.img");
            tool_unpack(fmt, &out, &back);
            assert!(
                std::fs::read(&back).unwrap() == raw,
                "{fmt} with {threads} threads"
            );
            // And ext3edit reads its own output back, sparsely.
            let mine = t.dir.join("mine.img");
            let o = run_in(&t.tmp, &["unpack", s(&out), s(&mine), "--threads", threads]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(std::fs::read(&mine).unwrap() == raw, "{fmt} unpack");
            std::fs::remove_file(&mine).unwrap();
            std::fs::remove_file(&back).unwrap();
        }
    }
    // The bzip2 chunks are separate streams, the gzip chunks members with
    // their sizes: both have more than one.
    let out = t.dir.join("p1.gz");
    let g = std::fs::read(out).unwrap();
    assert_eq!(&g[12..16], b"E3\x08\x00");
    assert!(listing(&t.tmp).is_empty());
}

#[test]
fn packed_by_the_tools_unpacked_by_ext3edit() {
    require_e2fsprogs!();
    let t = setup();
    let raw = std::fs::read(&t.img).unwrap();
    let i = s(&t.img);
    let d = s(&t.dir);
    let cases = [
        ("bz2", format!("bzip2 -9 -c '{i}' > '{d}/a.bz2'"), "a.bz2"),
        // Multi-stream, as pbzip2/lbzip2 write: two halves, concatenated.
        (
            "bz2",
            format!("head -c 3000000 '{i}' | bzip2 -1 > '{d}/m.bz2' && tail -c +3000001 '{i}' | bzip2 -9 >> '{d}/m.bz2'"),
            "m.bz2",
        ),
        ("gz", format!("gzip -c '{i}' > '{d}/a.gz'"), "a.gz"),
        (
            "gz",
            format!("head -c 3000000 '{i}' | gzip -1 > '{d}/m.gz' && tail -c +3000001 '{i}' | gzip >> '{d}/m.gz'"),
            "m.gz",
        ),
        ("xz", format!("xz -c '{i}' > '{d}/a.xz'"), "a.xz"),
        ("xz", format!("xz -T2 --block-size=1MiB -c '{i}' > '{d}/t.xz'"), "t.xz"),
        ("zip", format!("cd '{d}' && zip -q a.zip disk.img"), "a.zip"),
    ];
    for (fmt, cmd, name) in cases {
        if !tools_for(fmt) {
            continue;
        }
        let o = sh(&cmd);
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for threads in ["1", "2"] {
            let out = t.dir.join("out.img");
            let o = run_in(
                &t.tmp,
                &[
                    "unpack",
                    s(&t.dir.join(name)),
                    s(&out),
                    "--threads",
                    threads,
                ],
            );
            assert!(
                o.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(
                std::fs::read(&out).unwrap() == raw,
                "{name} threads {threads}"
            );
            std::fs::remove_file(&out).unwrap();
        }
    }
}

#[test]
fn put_through_every_format_keeps_the_format() {
    require_e2fsprogs!();
    let t = setup();
    let host = t.dir.join("hello.txt");
    std::fs::write(&host, b"hello through a compressed image\n").unwrap();
    for (fmt, magic) in [
        ("bz2", &b"BZh9"[..]),
        ("gz", &[0x1f, 0x8b][..]),
        ("xz", &b"\xfd7zXZ"[..]),
        ("zip", &b"PK\x03\x04"[..]),
    ] {
        if !tools_for(fmt) {
            continue;
        }
        let f = t.dir.join(format!("e.{fmt}"));
        let o = run_in(&t.tmp, &["pack", s(&t.img), s(&f)]);
        assert!(o.status.success());
        let o = run_in(&t.tmp, &["put", s(&f), s(&host), "/hello.txt"]);
        assert!(
            o.status.success(),
            "{fmt}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            std::fs::read(&f).unwrap().starts_with(magic),
            "{fmt} format kept"
        );
        let raw = t.dir.join("check.img");
        tool_unpack(fmt, &f, &raw);
        fsck_clean(&raw);
        assert_eq!(
            debugfs_cat(&raw, "/hello.txt"),
            b"hello through a compressed image\n"
        );
        // Read-only commands read it too and leave nothing behind.
        let o = run_in(&t.tmp, &["get", s(&f), "/hello.txt", "-"]);
        assert_eq!(o.stdout, b"hello through a compressed image\n");
        std::fs::remove_file(&raw).unwrap();
        assert_eq!(
            listing(&t.dir)
                .iter()
                .filter(|n| n.starts_with('.'))
                .count(),
            0
        );
        assert!(listing(&t.tmp).is_empty());
    }
    // --output with --format converts and leaves the original alone.
    let src = t.dir.join("e.gz");
    let before = std::fs::read(&src).unwrap();
    let out = t.dir.join("conv.xz");
    let o = run_in(
        &t.tmp,
        &[
            "mkdir",
            s(&src),
            "/newdir",
            "--output",
            s(&out),
            "--format",
            "xz",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&src).unwrap(), before);
    assert!(std::fs::read(&out).unwrap().starts_with(b"\xfd7zXZ"));
    let o = run_in(&t.tmp, &["ls", s(&out), "/"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("newdir"));
}

#[test]
fn bad_archives_fail_cleanly() {
    require_e2fsprogs!();
    let t = setup();
    let host = t.dir.join("h.txt");
    std::fs::write(&host, b"x").unwrap();
    for fmt in FORMATS {
        let f = t.dir.join(format!("b.{fmt}"));
        let o = run_in(&t.tmp, &["pack", s(&t.img), s(&f)]);
        assert!(o.status.success());
        let good = std::fs::read(&f).unwrap();
        // Truncated.
        std::fs::write(&f, &good[..good.len() * 2 / 3]).unwrap();
        let e = fails_clean(&t, &f, &["put", s(&f), s(&host), "/h"]);
        assert!(e.contains("b."), "{fmt}: {e}");
        fails_clean(&t, &f, &["ls", s(&f), "/"]);
        fails_clean(&t, &f, &["unpack", s(&f), s(&t.dir.join("u.img"))]);
        // A flipped byte in the data: in the middle for zip; in the first
        // chunk for the others, which `pack` makes seekable: an edit reads
        // only the chunks it needs, and that one holds the superblock (a
        // damaged chunk nothing reads is copied as it is: see
        // tests/seekable.rs).
        let mut bad = good.clone();
        let k = if fmt == "zip" { bad.len() / 2 } else { 64 };
        bad[k] ^= 0x55;
        std::fs::write(&f, &bad).unwrap();
        let e = fails_clean(&t, &f, &["put", s(&f), s(&host), "/h"]);
        assert!(
            e.contains("damaged")
                || e.contains("CRC")
                || e.contains("checksum")
                || e.contains("corrupt"),
            "{fmt}: {e}"
        );
        fails_clean(
            &t,
            &f,
            &["unpack", s(&f), s(&t.dir.join("u.img")), "--threads", "1"],
        );
        // Too big for the limit.
        std::fs::write(&f, &good).unwrap();
        let e = fails_clean(
            &t,
            &f,
            &[
                "unpack",
                s(&f),
                s(&t.dir.join("u.img")),
                "--max-size",
                "1000000",
            ],
        );
        assert!(e.contains("--max-size"), "{e}");
        let before = std::fs::read(&f).unwrap();
        let o = Command::new(bin())
            .args(["put", s(&f), s(&host), "/h"])
            .env("EXT3EDIT_MAX_SIZE", "1000000")
            .env("TMPDIR", &t.tmp)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(std::fs::read(&f).unwrap(), before);
        std::fs::remove_file(&f).unwrap();
    }
    // Not a format we read: says what it looks like.
    let q = t.dir.join("vm.qcow2");
    let mut b = b"QFI\xfb\0\0\0\x03".to_vec();
    b.resize(4096, 0);
    std::fs::write(&q, &b).unwrap();
    let e = fails_clean(&t, &q, &["ls", s(&q), "/"]);
    assert!(e.contains("qcow2") && e.contains("51 46 49 fb"), "{e}");
    std::fs::remove_file(&q).unwrap();
}

#[test]
fn zip_entries() {
    require_e2fsprogs!();
    if !tools_for("zip") {
        return;
    }
    let t = setup();
    let d = s(&t.dir);
    std::fs::write(t.dir.join("notes.txt"), b"not an image\n").unwrap();
    let o = sh(&format!(
        "cd '{d}' && zip -q several.zip disk.img notes.txt && zip -q text.zip notes.txt && zip -q empty.zip notes.txt && zip -q -d empty.zip notes.txt"
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(t.dir.join("notes.txt")).unwrap();
    let several = t.dir.join("several.zip");
    let e = fails_clean(&t, &several, &["ls", s(&several), "/"]);
    assert!(
        e.contains("--entry") && e.contains("disk.img") && e.contains("notes.txt"),
        "{e}"
    );
    let e = fails_clean(
        &t,
        &several,
        &[
            "unpack",
            s(&several),
            s(&t.dir.join("o.img")),
            "--entry",
            "notes.txt",
        ],
    );
    assert!(
        e.contains("not an ext2/3/4 image") && e.contains("text"),
        "{e}"
    );
    let o = run_in(
        &t.tmp,
        &[
            "unpack",
            s(&several),
            s(&t.dir.join("o.img")),
            "--entry",
            "disk.img",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(t.dir.join("o.img")).unwrap() == std::fs::read(&t.img).unwrap());
    std::fs::remove_file(t.dir.join("o.img")).unwrap();
    let text = t.dir.join("text.zip");
    let e = fails_clean(&t, &text, &["ls", s(&text), "/"]);
    assert!(e.contains("notes.txt is not an ext2/3/4 image"), "{e}");
    let empty = t.dir.join("empty.zip");
    if empty.exists() {
        let e = fails_clean(&t, &empty, &["ls", s(&empty), "/"]);
        assert!(
            e.contains("no file") || e.contains("not an ext2/3/4"),
            "{e}"
        );
    }
}

#[test]
fn a_full_disk_while_writing_leaves_the_original() {
    require_e2fsprogs!();
    if !tools_for("bz2") {
        return;
    }
    let t = setup();
    let f = t.dir.join("d.bz2");
    let o = run_in(&t.tmp, &["pack", s(&t.img), s(&f)]);
    assert!(o.status.success());
    // The file packed by ext3edit is edited through its chunks (the new
    // compressed file is what outgrows the limit); the one from bzip2 takes
    // the full path (its raw temporary copy does).
    let g = t.dir.join("g.bz2");
    assert!(sh(&format!("bzip2 -c '{}' > '{}'", s(&t.img), s(&g)))
        .status
        .success());
    let small = t.dir.join("small.txt");
    std::fs::write(&small, b"small").unwrap();
    for f in [&f, &g] {
        let before = std::fs::read(f).unwrap();
        let names = listing(&t.dir);
        // A file size limit makes writes fail (EFBIG) the way a full disk does
        // (ENOSPC): the same error path.
        let o = sh(&format!(
        "trap '' XFSZ; ulimit -f 1024; TMPDIR='{}' EXT3EDIT_NO_PROGRESS=1 exec '{}' put '{}' '{}' /small",
        s(&t.tmp),
        s(&bin()),
        s(f),
        s(&small)
    ));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("too large") || err.contains("No space"),
            "{err}"
        );
        assert_eq!(std::fs::read(f).unwrap(), before);
        assert_eq!(listing(&t.dir), names);
        assert!(listing(&t.tmp).is_empty());
    }
}

/// The mode bits of `p`.
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// This process's umask (the one ext3edit inherits).
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

fn chmod(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// A .gz in pack's layout (edited through its chunks) and one from gzip
/// (the full path: a raw copy, recompressed), in `t.dir`.
fn two_gz(t: &Setup) -> Vec<PathBuf> {
    let chunked = t.dir.join("chunked.gz");
    let o = run_in(&t.tmp, &["pack", s(&t.img), s(&chunked)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plain = t.dir.join("plain.gz");
    assert!(sh(&format!("gzip -c '{}' > '{}'", s(&t.img), s(&plain)))
        .status
        .success());
    vec![chunked, plain]
}

/// Wait until a name in `dir` contains `part`; returns it.
fn wait_for(dir: &Path, part: &str) -> PathBuf {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(n) = listing(dir).into_iter().find(|n| n.contains(part)) {
            return dir.join(n);
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "no {part} in {}: {:?}",
            dir.display(),
            listing(dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `ext3edit ARGS` with stdin a pipe that the caller writes (and closes).
fn spawn_piped(t: &Setup, args: &[&str]) -> std::process::Child {
    Command::new(bin())
        .args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .env("TMPDIR", &t.tmp)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Issue 13 item 5: an edit in place keeps the image's mode (0600 stays
/// 0600, setgid too), `--output NEW` gets what the raw --output gives (the
/// image's read and write bits under the umask), and the temporary copies
/// (beside the image for a write, in TMPDIR for a read) are 0600 while
/// they exist.
#[test]
fn compressed_edits_keep_the_mode_and_temporaries_are_private() {
    require_e2fsprogs!();
    if !tools_for("gz") {
        return;
    }
    let t = setup();
    let h = t.dir.join("h.txt");
    std::fs::write(&h, b"hello").unwrap();
    for f in two_gz(&t) {
        for m in [0o600, 0o640, 0o2640, 0o644] {
            chmod(&f, m);
            let o = run_in(&t.tmp, &["put", s(&f), s(&h), "/h.txt"]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(mode(&f), m, "{} in place", f.display());
            assert!(std::fs::symlink_metadata(&f).unwrap().file_type().is_file());
            // --output: as the raw image's --output.
            let raw = t.dir.join("raw.img");
            std::fs::copy(&t.img, &raw).unwrap();
            chmod(&raw, m);
            let (new, new_raw) = (t.dir.join("new.gz"), t.dir.join("new.img"));
            let o = run_in(
                &t.tmp,
                &["put", s(&f), s(&h), "/o.txt", "--output", s(&new)],
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let o = run_in(
                &t.tmp,
                &["put", s(&raw), s(&h), "/o.txt", "--output", s(&new_raw)],
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let want = ((m & 0o666) | 0o600) & !umask();
            assert_eq!(mode(&new), want, "{} --output", f.display());
            assert_eq!(mode(&new_raw), want, "raw --output");
            for p in [new, new_raw, raw] {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    // The raw copy beside a 0644 image being edited (the command waits for
    // its stdin), and the one in TMPDIR of a read (`get` into a FIFO that
    // nobody reads yet): 0600.
    // (A fresh one: the edits above left plain.gz in pack's layout.)
    let plain = t.dir.join("plain.gz");
    assert!(sh(&format!("gzip -c '{}' > '{}'", s(&t.img), s(&plain)))
        .status
        .success());
    chmod(&plain, 0o644);
    let mut k = spawn_piped(&t, &["put", s(&plain), "-", "/stdin.txt"]);
    let tmp = wait_for(&t.dir, "ext3edit-partial");
    assert_eq!(mode(&tmp), 0o600, "{}", tmp.display());
    {
        use std::io::Write;
        let mut i = k.stdin.take().unwrap();
        i.write_all(b"from stdin").unwrap();
    }
    let o = k.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fifo = t.dir.join("fifo");
    assert!(sh(&format!("mkfifo '{}'", s(&fifo))).status.success());
    // (gzip's layout again: the edit above left pack's.)
    assert!(sh(&format!("gzip -c '{}' > '{}'", s(&t.img), s(&plain)))
        .status
        .success());
    let k = spawn_piped(&t, &["get", s(&plain), "/data.bin", s(&fifo)]);
    let spool = wait_for(&t.tmp, "ext3edit");
    // The copy is complete when get opens the FIFO; its mode is set at
    // creation anyway.
    assert_eq!(mode(&spool), 0o600, "{}", spool.display());
    let got = std::fs::read(&fifo).unwrap();
    let o = k.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(got, pseudo_random(1_500_000, 7));
    std::fs::remove_file(&fifo).unwrap();
    assert!(listing(&t.tmp).is_empty());
    // pack and unpack: OUT as --output NEW.
    chmod(&t.img, 0o600);
    let (p, u) = (t.dir.join("p.xz"), t.dir.join("u.img"));
    assert!(run_in(&t.tmp, &["pack", s(&t.img), s(&p)]).status.success());
    chmod(&p, 0o640);
    assert!(run_in(&t.tmp, &["unpack", s(&p), s(&u)]).status.success());
    assert_eq!(mode(&u), 0o640 & !umask());
    chmod(&t.img, 0o600);
    std::fs::remove_file(&p).unwrap();
    assert!(run_in(&t.tmp, &["pack", s(&t.img), s(&p)]).status.success());
    assert_eq!(mode(&p), 0o600);
}

/// Issue 13 item 5: as root, an edit in place keeps the image's owner and
/// group (and its setuid bit with them), as `cp -p` would.
#[test]
fn compressed_edit_in_place_keeps_the_owner() {
    require_e2fsprogs!();
    if !tools_for("gz") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        skip("not root: files cannot be given to another owner");
        return;
    }
    let t = setup();
    let h = t.dir.join("h.txt");
    std::fs::write(&h, b"hello").unwrap();
    for f in two_gz(&t) {
        std::os::unix::fs::chown(&f, Some(4321), Some(8765)).unwrap();
        chmod(&f, 0o6640);
        let o = run_in(&t.tmp, &["put", s(&f), s(&h), "/h.txt"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 8765), "{}", f.display());
        assert_eq!(mode(&f), 0o6640, "{}", f.display());
    }
}

/// Issue 13 item 15: an edit in place of a compressed image named through
/// a symlink edits the target and keeps the link (as for a raw image).
#[test]
fn compressed_edit_through_a_symlink_edits_the_target() {
    require_e2fsprogs!();
    if !tools_for("gz") {
        return;
    }
    let t = setup();
    let h = t.dir.join("h.txt");
    std::fs::write(&h, b"through the link").unwrap();
    let sub = t.dir.join("links");
    std::fs::create_dir(&sub).unwrap();
    for f in two_gz(&t) {
        let name = f.file_name().unwrap().to_str().unwrap();
        let link = sub.join(format!("link-{name}"));
        std::os::unix::fs::symlink(format!("../{name}"), &link).unwrap();
        let o = run_in(&t.tmp, &["put", s(&link), s(&h), "/via-link.txt"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let lm = std::fs::symlink_metadata(&link).unwrap();
        assert!(
            lm.file_type().is_symlink(),
            "{} was replaced",
            link.display()
        );
        let o = run_in(&t.tmp, &["get", s(&f), "/via-link.txt", "-"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, b"through the link", "{}", f.display());
        // Nothing left beside the link or the target.
        assert_eq!(
            listing(&sub).len(),
            listing(&sub)
                .iter()
                .filter(|n| n.starts_with("link-"))
                .count()
        );
        assert!(!listing(&t.dir).iter().any(|n| n.contains("ext3edit")));
    }
}

/// Issue 13 item 23: `--output NEW` whose extension names another format
/// than the one written says so (one warning line); a matching or unknown
/// extension, or `--format` that agrees with it, says nothing.
#[test]
fn output_extension_that_names_another_format_is_a_warning() {
    require_e2fsprogs!();
    let t = setup();
    let h = t.dir.join("h.txt");
    std::fs::write(&h, b"x").unwrap();
    let gz = t.dir.join("d.gz");
    let o = run_in(&t.tmp, &["pack", s(&t.img), s(&gz)]);
    assert!(o.status.success());
    let warned = |args: &[&str]| -> String {
        let o = run_in(&t.tmp, args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{args:?}: {err}");
        err
    };
    let e = t.dir.join("vm.ext3");
    let err = warned(&["put", s(&gz), s(&h), "/x", "--output", s(&e)]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning") && err.contains("vm.ext3") && err.contains("gz"),
        "{err}"
    );
    assert_eq!(&std::fs::read(&e).unwrap()[..2], &[0x1f, 0x8b]);
    let b = t.dir.join("vm.bz2");
    let err = warned(&["put", s(&t.img), s(&h), "/x", "--output", s(&b)]);
    assert!(err.contains("warning") && err.contains("raw"), "{err}");
    for (out, extra) in [
        ("vm2.gz", None),
        ("vm.qcow", None),
        ("vm3.ext3", Some("raw")),
        ("vm.xz", Some("xz")),
    ] {
        let out = t.dir.join(out);
        let mut args = vec!["put", s(&gz), s(&h), "/x", "--output", s(&out)];
        if let Some(f) = extra {
            args.extend(["--format", f]);
        }
        assert_eq!(warned(&args), "", "{args:?}");
    }
}

/// Issue 13 item 26: a write killed with SIGKILL leaves its temporary raw
/// copy (0600); the next write of that image removes it (and says so),
/// while a live one (another ext3edit writing a copy of the same image
/// beside it at that moment) is never removed.
#[test]
fn stale_temporary_files_of_a_killed_edit_are_removed_by_the_next_write() {
    require_e2fsprogs!();
    if !tools_for("gz") {
        return;
    }
    let t = setup();
    let plain = t.dir.join("plain.gz");
    assert!(sh(&format!("gzip -c '{}' > '{}'", s(&t.img), s(&plain)))
        .status
        .success());
    let h = t.dir.join("h.txt");
    std::fs::write(&h, b"x").unwrap();
    // A live writer: a copy of the same image for another NEW beside it,
    // waiting for its stdin.
    let new = t.dir.join("new.gz");
    let mut live = spawn_piped(&t, &["put", s(&plain), "-", "/live", "--output", s(&new)]);
    let live_tmp = wait_for(&t.dir, "ext3edit-partial");
    // With data in it: only its lock tells it is alive.
    while std::fs::metadata(&live_tmp).map(|m| m.len()).unwrap_or(0) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Then one killed (SIGKILL) while it edits the image in place, once
    // it has decompressed some data (it then waits for its stdin).
    let mut k = spawn_piped(&t, &["put", s(&plain), "-", "/never"]);
    let t0 = std::time::Instant::now();
    let stale = loop {
        let v: Vec<String> = listing(&t.dir)
            .into_iter()
            .filter(|n| n.contains("ext3edit-partial") && t.dir.join(n) != live_tmp)
            .collect();
        if let Some(n) = v.first() {
            break t.dir.join(n);
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(mode(&stale), 0o600);
    while std::fs::metadata(&stale).map(|m| m.len()).unwrap_or(0) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    k.kill().unwrap();
    let _ = k.wait();
    assert!(stale.exists(), "SIGKILL removes nothing");
    let o = run_in(&t.tmp, &["put", s(&plain), s(&h), "/next"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!stale.exists(), "the stale copy is still there");
    assert!(
        err.contains("removed 1 temporary file")
            && err.contains(stale.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    assert!(live_tmp.exists(), "a live temporary file was removed");
    {
        use std::io::Write;
        let mut i = live.stdin.take().unwrap();
        i.write_all(b"live").unwrap();
    }
    let o = live.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_in(&t.tmp, &["get", s(&new), "/live", "-"]);
    assert_eq!(o.stdout, b"live");
    let o = run_in(&t.tmp, &["get", s(&plain), "/next", "-"]);
    assert_eq!(o.stdout, b"x");
    assert!(!listing(&t.dir).iter().any(|n| n.contains("ext3edit")));
    // Not ours: other names are left alone, even with our suffix.
    let other = t.dir.join(".plain.gz.toolong1.ext3edit-partial");
    let mine = t.dir.join("notes.ext3edit-partial");
    std::fs::write(&other, b"keep").unwrap();
    std::fs::write(&mine, b"keep").unwrap();
    let o = run_in(&t.tmp, &["put", s(&plain), s(&h), "/again"]);
    assert!(o.status.success());
    assert!(other.exists() && mine.exists());
    // A read's copy in TMPDIR left by a killed read (not locked, with
    // data): the next read that decompresses that image removes it.
    assert!(sh(&format!("gzip -c '{}' > '{}'", s(&t.img), s(&plain)))
        .status
        .success());
    let left = t.tmp.join(".plain.gz.QwErTy.ext3edit-partial");
    std::fs::write(&left, b"old copy").unwrap();
    let o = run_in(&t.tmp, &["ls", s(&plain), "/"]);
    assert!(o.status.success());
    assert!(!left.exists());
    assert!(listing(&t.tmp).is_empty());
}

/// Issue 13 item 27: the library's `Filesystem::open` on a compressed file
/// says what it is and what opens it, instead of a bare "bad magic".
#[test]
fn filesystem_open_on_a_compressed_file_says_it_is_compressed() {
    require_e2fsprogs!();
    let t = setup();
    for (fmt, name) in [
        ("gz", "gzip"),
        ("bz2", "bzip2"),
        ("xz", "xz"),
        ("zip", "zip"),
    ] {
        let f = t.dir.join(format!("d.{fmt}"));
        let o = run_in(&t.tmp, &["pack", s(&t.img), s(&f)]);
        assert!(o.status.success());
        let e = ext3edit::Filesystem::open(&f, &ext3edit::OpenOptions::read_only())
            .err()
            .expect("a compressed file is not an image")
            .to_string();
        assert!(e.contains(&format!("{name}-compressed")), "{e}");
        assert!(e.contains("container::"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }
    // A raw file that is not an image keeps the plain message.
    let junk = t.dir.join("junk");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let e = ext3edit::Filesystem::open(&junk, &ext3edit::OpenOptions::read_only())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("bad magic") && !e.contains("compressed"), "{e}");
}

/// Issue 13 item 29: on a terminal, the progress bar of `unpack` (a .bz2
/// decoded in parallel, mostly zeros after its data) ends at 100% with
/// its percentages never going back, instead of stopping near 25% and
/// being cleared. The terminal is `script`'s pseudo-terminal.
#[test]
fn progress_bar_reaches_100_percent() {
    require_e2fsprogs!();
    if !have("script") {
        skip("script (util-linux) is not installed: no terminal for the bar");
        return;
    }
    let t = setup();
    let out = t.dir.join("back.img");
    // Slow enough for the bar to be drawn (every 200 ms): a bigger image
    // made of the first one's data and zeros.
    let big = t.dir.join("big.img");
    let mut v = std::fs::read(&t.img).unwrap();
    v.resize(64 << 20, 0);
    // Still a valid ext image at the start; the zeros after are ignored
    // by unpack, which only decompresses.
    std::fs::write(&big, &v).unwrap();
    let fb = t.dir.join("big.bz2");
    let o = run_in(&t.tmp, &["pack", s(&big), s(&fb), "--threads", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cmd = format!(
        "'{}' unpack '{}' '{}' --threads 2",
        s(&bin()),
        s(&fb),
        s(&out)
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TMPDIR", &t.tmp)
        .env_remove("EXT3EDIT_NO_PROGRESS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), v);
    let pcts: Vec<f64> = text
        .split('\r')
        .filter_map(|frame| {
            let (_, rest) = frame.split_once("] ")?;
            rest.trim_start().split('%').next()?.trim().parse().ok()
        })
        .collect();
    if pcts.is_empty() {
        skip("unpack was too fast for the bar to be drawn");
        return;
    }
    assert_eq!(*pcts.last().unwrap(), 100.0, "{text:?}");
    assert!(pcts.windows(2).all(|w| w[0] <= w[1]), "{pcts:?}");
}
