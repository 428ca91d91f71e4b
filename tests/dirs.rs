//! Directory walks on hostile and extreme trees: a directory whose block
//! map repeats a block (issue 7 item 1), a valid tree thousands of levels
//! deep and a real loop (item 12), and `rm -r` of a big directory in linear
//! time (item 11).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ext3edit::{FileType, Filesystem, NewFile, OpenOptions};

fn cfg(block: u32, size_kib: u64) -> Cfg {
    Cfg {
        fstype: "ext3",
        block,
        inode: 256,
        dir_index: true,
        size_kib,
    }
}

/// Run ext3edit under an address-space cap (when prlimit is there).
fn run_capped(args: &[&str], cap: u64) -> (Output, Duration) {
    let have_prlimit = Command::new("prlimit").arg("--version").output().is_ok();
    let mut c = if have_prlimit {
        let mut c = Command::new("prlimit");
        c.arg(format!("--as={cap}")).arg("--").arg(bin());
        c
    } else {
        Command::new(bin())
    };
    c.args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let out = c.output().unwrap();
    (out, t.elapsed())
}

/// `debugfs -R "imap PATH"`: (block, byte offset) of the inode.
fn inode_at(img: &Path, path: &str) -> (u64, u64) {
    let s = debugfs(img, &format!("imap {path}"));
    let blk: u64 = s
        .split("located at block ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("imap: {s}"));
    let off = s.split("offset 0x").nth(1).unwrap().trim();
    (blk, u64::from_str_radix(off, 16).unwrap())
}

fn patch(img: &Path, at: u64, data: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(data).unwrap();
}

fn one_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "want one line, got: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A 128 MiB image (1 KiB blocks, so the walk of the old code had 131,072
/// blocks of budget) with /deep holding 83 entries in one block, whose
/// map then points every direct pointer at that block and the single and
/// double indirect pointers at chains of blocks full of it.
#[test]
fn a_directory_map_that_repeats_a_block_is_corrupt_in_one_line() {
    require_e2fsprogs!();
    let img = mkfs(&cfg(1024, 128 * 1024));
    let path = img.path.clone();
    let d;
    {
        let mut fs = Filesystem::open(&path, &OpenOptions::read_write()).unwrap();
        let root = fs.root();
        d = fs.mkdir(root, b"deep", &NewFile::default()).unwrap();
        for i in 0..83 {
            fs.create_file_from_vec(
                d,
                format!("f{i:03}").as_bytes(),
                &NewFile::default(),
                vec![],
            )
            .unwrap();
        }
        fs.commit().unwrap();
    }
    fsck_clean(&path);
    let data_blk: u64 = debugfs(&path, "bmap /deep 0").trim().parse().unwrap();
    assert_eq!(
        debugfs(&path, "ls /deep")
            .split_whitespace()
            .filter(|w| w.starts_with('f'))
            .count(),
        83
    );
    // Three free blocks near the end of the image for the pointer chains.
    let sb = read_sb(&path);
    let (p1, p2) = (sb.blocks - 10, sb.blocks - 11);
    for b in [p1, p2] {
        assert!(debugfs(&path, &format!("testb {b}")).contains("not in use"));
    }
    let fill = |target: u64| -> Vec<u8> {
        (0..256)
            .flat_map(|_| (target as u32).to_le_bytes())
            .collect()
    };
    patch(&path, p1 * 1024, &fill(data_blk));
    patch(&path, p2 * 1024, &fill(p1));
    let (iblk, ioff) = inode_at(&path, "/deep");
    let at = iblk * 1024 + ioff;
    let mut ptrs = Vec::new();
    for _ in 0..12 {
        ptrs.extend((data_blk as u32).to_le_bytes());
    }
    // Triple indirect: none. With it the old walk ran out of its budget
    // (the filesystem's block count) and failed fast; without it, 65,804
    // pointers to one block fit in that budget, and the old `ls` read
    // 5.4 million entries.
    for p in [p1, p2, 0] {
        ptrs.extend((p as u32).to_le_bytes());
    }
    patch(&path, at + 0x28, &ptrs);
    patch(&path, at + 4, &0xFFFF_FC00u32.to_le_bytes()); // i_size: 4 GiB - 1 KiB
    let before = bytes(&path);
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("out");
    let img_s = path.to_str().unwrap();
    let want = format!("directory inode {d} maps block {data_blk} twice");
    for args in [
        vec!["ls", img_s, "/deep"],
        vec!["ls", img_s, "/", "-R"],
        vec!["get", img_s, "/", dest.to_str().unwrap(), "-r"],
        vec!["rm", img_s, "/deep", "-r"],
    ] {
        // The image is mapped (128 MiB); the cap leaves 256 MiB beside it.
        let (out, took) = run_capped(&args, 384 << 20);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = one_line(&out);
        assert!(err.contains(&want), "{args:?}: {err}");
        assert!(err.contains("corrupt"), "{args:?}: {err}");
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
        assert!(bytes(&path) == before, "{args:?} changed the image");
    }
}

const DEEP: usize = 6000;

/// A valid tree `DEEP` levels deep (/d/d/d/...), built through the library.
fn deep_tree() -> Img {
    let img = mkfs(&cfg(1024, 32 * 1024));
    {
        let mut fs = Filesystem::open(&img.path, &OpenOptions::read_write()).unwrap();
        let mut at = fs.root();
        for i in 0..DEEP {
            at = fs.mkdir(at, b"d", &NewFile::default()).unwrap();
            if i % 1000 == 999 {
                fs.create_file_from_vec(at, b"f", &NewFile::default(), b"x".to_vec())
                    .unwrap();
            }
            fs.commit_if_large().unwrap();
        }
        fs.commit().unwrap();
    }
    fsck_clean(&img.path);
    img
}

#[test]
fn rm_r_and_ls_r_of_a_6000_level_tree() {
    require_e2fsprogs!();
    let img = deep_tree();
    let path = &img.path;
    let sb0 = read_sb(path);
    let out = ok(path, "ls", &["/", "-R"]);
    let text = String::from_utf8_lossy(&out.stdout);
    // One "PATH:" header per directory: the root, lost+found and DEEP levels.
    assert_eq!(text.lines().filter(|l| l.ends_with(':')).count(), DEEP + 2);
    // get -r goes as deep as the host allows (PATH_MAX), then says why in
    // one line: no loop error, no stack overflow.
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("o");
    let out = run(
        &[
            "get",
            path.to_str().unwrap(),
            "/",
            dest.to_str().unwrap(),
            "-r",
        ],
        None,
    );
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = one_line(&out);
        assert!(!err.contains("loop"), "{err}");
    }
    ok(path, "rm", &["/d", "-r"]);
    fsck_clean(path);
    let sb1 = read_sb(path);
    assert_eq!(sb1.free_inodes, sb0.free_inodes + DEEP as u32 + 6);
    assert!(debugfs(path, "ls /").split_whitespace().all(|w| w != "d"));
}

#[test]
fn a_real_loop_is_one_line_and_changes_nothing() {
    require_e2fsprogs!();
    let img = mkfs(&cfg(1024, 8 * 1024));
    let path = &img.path;
    let a;
    {
        let mut fs = Filesystem::open(path, &OpenOptions::read_write()).unwrap();
        let root = fs.root();
        a = fs.mkdir(root, b"a", &NewFile::default()).unwrap();
        let b = fs.mkdir(a, b"b", &NewFile::default()).unwrap();
        let c = fs.mkdir(b, b"c", &NewFile::default()).unwrap();
        fs.create_file_from_vec(c, b"f", &NewFile::default(), b"x".to_vec())
            .unwrap();
        fs.commit().unwrap();
    }
    fsck_clean(path);
    // Crafted: c gets an entry naming its grandparent a.
    {
        let mut fs = Filesystem::open(path, &OpenOptions::read_write()).unwrap();
        let c = fs.resolve("/a/b/c", true).unwrap();
        let mut ci = fs.read_inode(c).unwrap();
        fs.add_entry(&mut ci, b"up", a, FileType::Directory)
            .unwrap();
        fs.commit().unwrap();
    }
    let before = bytes(path);
    let img_s = path.to_str().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("o");
    for args in [
        vec!["rm", img_s, "/a", "-r"],
        vec!["ls", img_s, "/", "-R"],
        vec!["get", img_s, "/", dest.to_str().unwrap(), "-r"],
    ] {
        let out = run(&args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = one_line(&out);
        assert!(err.contains("directory loop"), "{args:?}: {err}");
        assert!(err.contains(&format!("inode {a}")), "{args:?}: {err}");
        assert!(bytes(path) == before, "{args:?} changed the image");
    }
}

/// An image whose /big holds `n` empty files, made through the library.
fn big_dir(n: usize) -> Img {
    let img = mkfs(&Cfg {
        size_kib: 192 * 1024,
        ..cfg(4096, 0)
    });
    {
        let mut fs = Filesystem::open(&img.path, &OpenOptions::read_write()).unwrap();
        let root = fs.root();
        let d = fs.mkdir(root, b"big", &NewFile::default()).unwrap();
        for i in 0..n {
            let name = format!("file-with-a-longish-name-{i:07}");
            fs.create_file_from_vec(d, name.as_bytes(), &NewFile::default(), vec![])
                .unwrap();
            fs.commit_if_large().unwrap();
        }
        fs.commit().unwrap();
    }
    fsck_clean(&img.path);
    img
}

fn time_rm(n: usize) -> Duration {
    let img = big_dir(n);
    let sb0 = read_sb(&img.path);
    let t = Instant::now();
    ok(&img.path, "rm", &["/big", "-r"]);
    let took = t.elapsed();
    fsck_clean(&img.path);
    assert_eq!(
        read_sb(&img.path).free_inodes,
        sb0.free_inodes + n as u32 + 1
    );
    took
}

#[test]
fn rm_r_of_a_big_directory_is_linear() {
    require_e2fsprogs!();
    // 8 times the entries: about 8 times the time when linear (less, with
    // the fixed costs), 64 times when every entry rescans the directory
    // (the old code: 12 to 15 times from 12,500 to 50,000 in a release
    // build, already past the bound below).
    let small = time_rm(5_000);
    let big = time_rm(40_000);
    assert!(
        big < small * 24 + Duration::from_millis(500),
        "5,000 entries {small:?}, 40,000 entries {big:?}"
    );
}
