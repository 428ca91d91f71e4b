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
