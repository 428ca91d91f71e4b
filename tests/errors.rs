//! Bad input: every failure is one clear `ext3edit: ` line with the right
//! exit code (1 operation failed, 2 usage), and the image stays
//! byte-for-byte as it was. Covers missing paths, wrong kinds, bad usage,
//! full images, corrupt and truncated images, unsupported features,
//! directory loops and `get -r` that must never write outside DEST.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cfg, Img};

/// Kill an invocation that runs longer than this (a hang is a failure).
const TIME_LIMIT: Duration = Duration::from_secs(20);

// ----------------------------------------------------------------------
// Running the binary

struct Res {
    args: Vec<String>,
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Res {
    fn what(&self) -> String {
        format!(
            "ext3edit {:?} -> {:?}, stderr: {:?}",
            self.args, self.code, self.stderr
        )
    }
}

/// Run the binary with a deadline and optional stdin bytes. Unlike
/// `common::run`, a child that stops reading stdin early (a failed put) is
/// not an error here.
fn run_t(args: &[&str], stdin: Option<&[u8]>) -> Res {
    let mut c = Command::new(common::bin());
    c.args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .env_remove("SOURCE_DATE_EPOCH");
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn ext3edit");
    let feeder = stdin.map(|d| {
        let d = d.to_vec();
        let mut si = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = si.write_all(&d); // EPIPE when the child gave up: fine
        })
    });
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let ro = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let re = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ext3edit {args:?} still running after {TIME_LIMIT:?}: killed (hang)");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = ro.join().unwrap();
    let stderr = String::from_utf8_lossy(&re.join().unwrap()).into_owned();
    let r = Res {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: status.code(),
        stdout,
        stderr,
    };
    assert!(!r.stderr.contains("panicked"), "panic: {}", r.what());
    assert!(r.code.is_some(), "killed by a signal: {}", r.what());
    assert_ne!(r.code, Some(101), "exit 101 (panic): {}", r.what());
    r
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn argv<'a>(cmd: &'a str, img: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![cmd, s(img)];
    a.extend_from_slice(rest);
    a
}

/// Require success.
fn ok(img: &Path, cmd: &str, rest: &[&str]) -> Res {
    let r = run_t(&argv(cmd, img, rest), None);
    assert_eq!(r.code, Some(0), "expected success: {}", r.what());
    r
}

/// The failure rules: exit `code`, stderr exactly one line starting with
/// `ext3edit: ` and containing every needle (case-insensitive), image
/// byte-identical. Returns the message.
fn fails_with(
    img: &Path,
    cmd: &str,
    rest: &[&str],
    stdin: Option<&[u8]>,
    code: i32,
    needles: &[&str],
) -> String {
    let before = common::bytes(img);
    let r = run_t(&argv(cmd, img, rest), stdin);
    assert_eq!(r.code, Some(code), "expected exit {code}: {}", r.what());
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one stderr line: {}",
        r.what()
    );
    let msg = lines[0];
    assert!(
        msg.starts_with("ext3edit: ") && msg.len() > 12,
        "message must start with `ext3edit: `: {}",
        r.what()
    );
    let low = msg.to_lowercase();
    for n in needles {
        assert!(
            low.contains(&n.to_lowercase()),
            "message should mention {n:?}: {}",
            r.what()
        );
    }
    assert!(
        common::bytes(img) == before,
        "the image changed although {cmd} failed: {}",
        r.what()
    );
    msg.to_string()
}

fn fails(img: &Path, cmd: &str, rest: &[&str], needles: &[&str]) -> String {
    fails_with(img, cmd, rest, None, 1, needles)
}

/// A usage error found by the argument parser (clap): exit 2, one line
/// that starts with `ext3edit: usage error:` and names the problem, image
/// unchanged.
fn usage_error(img: &Path, args: &[&str], needle: &str) {
    let before = common::bytes(img);
    let r = run_t(args, None);
    assert_eq!(r.code, Some(2), "expected usage error: {}", r.what());
    assert!(
        r.stderr.starts_with("ext3edit: usage error: ") && r.stderr.trim_end().lines().count() == 1,
        "usage message: {}",
        r.what()
    );
    assert!(
        r.stderr.to_lowercase().contains(needle),
        "usage message should mention {needle:?}: {}",
        r.what()
    );
    assert!(r.stdout.is_empty(), "nothing on stdout: {}", r.what());
    assert!(
        common::bytes(img) == before,
        "image changed by a usage error: {}",
        r.what()
    );
}

// ----------------------------------------------------------------------
// Images

fn cfgs() -> Vec<Cfg> {
    vec![
        Cfg {
            fstype: "ext3",
            block: 1024,
            inode: 128,
            dir_index: true,
            size_kib: 16 * 1024,
        },
        Cfg {
            fstype: "ext2",
            block: 4096,
            inode: 256,
            dir_index: false,
            size_kib: 16 * 1024,
        },
    ]
}

/// A host file with `data`, in its own temp dir.
fn host_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// An image with: /a/b/c (dirs), /a/f, /top (files), /empty (dir),
/// /sym -> /top.
fn populated(cfg: &Cfg) -> Img {
    let img = common::mkfs(cfg);
    let src = host_file(img.dir.path(), "src.txt", b"hello, image\n");
    ok(&img.path, "mkdir", &["/a/b/c", "-p"]);
    ok(&img.path, "mkdir", &["/empty"]);
    ok(&img.path, "put", &[s(&src), "/a/f"]);
    ok(&img.path, "put", &[s(&src), "/top"]);
    ok(&img.path, "ln", &["/top", "/sym", "-s"]);
    common::fsck_clean(&img.path);
    img
}

fn mke2fs(path: &Path, args: &[&str], size: &str) {
    let out = Command::new("mke2fs")
        .args(["-q", "-F"])
        .args(args)
        .arg(path)
        .arg(size)
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .expect("run mke2fs");
    assert!(
        out.status.success(),
        "mke2fs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn info_json(img: &Path) -> serde_json::Value {
    let r = ok(img, "info", &["--json"]);
    serde_json::from_slice(&r.stdout).expect("info --json is JSON")
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn patch(img: &Path, off: u64, data: &[u8]) {
    let mut b = common::bytes(img);
    b[off as usize..off as usize + data.len()].copy_from_slice(data);
    std::fs::write(img, b).unwrap();
}

fn debugfs_w(img: &Path, cmd: &str) {
    let out = Command::new("debugfs")
        .args(["-w", "-R", cmd])
        .arg(img)
        .output()
        .expect("run debugfs");
    assert!(
        out.status.success(),
        "debugfs -w {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// First block of a directory, from `debugfs -R "blocks PATH"`.
fn first_block(img: &Path, path: &str) -> u64 {
    let out = common::debugfs(img, &format!("blocks {path}"));
    out.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("debugfs blocks {path}: {out:?}"))
}

// ----------------------------------------------------------------------
// Paths that do not exist, wrong kinds

#[test]
fn missing_paths_fail_cleanly() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        let out = img.dir.path().join("out");
        let o = s(&out);
        // (path, the part the message must name)
        for (p, last) in [
            ("/missing", "/missing"),
            ("/a/missing", "/a/missing"),
            ("/a/b/c/missing/deeper", "/a/b/c/missing"),
            ("/top/under-a-file", "/top"),
        ] {
            fails(&img.path, "get", &[p, o], &[last]);
            fails(&img.path, "rm", &[p], &[last]);
            fails(&img.path, "rm", &[p, "-r"], &[last]);
            fails(&img.path, "mv", &[p, "/new"], &[last]);
            fails(&img.path, "chmod", &["600", p], &[last]);
            fails(&img.path, "chown", &["1:1", p], &[last]);
            fails(&img.path, "ls", &[p], &[last]);
            fails(&img.path, "stat", &[p], &[last]);
            fails(&img.path, "readlink", &[p], &[last]);
        }
        assert!(!out.exists(), "a failed get created its destination");
        // The plain missing case says so in words.
        fails(
            &img.path,
            "get",
            &["/missing", o],
            &["/missing", "no such file"],
        );
        fails(
            &img.path,
            "rm",
            &["/a/missing"],
            &["/a/missing", "no such file"],
        );
        // rm -f of a missing path is fine and writes nothing.
        let before = common::bytes(&img.path);
        ok(&img.path, "rm", &["/missing", "-f"]);
        assert!(
            common::bytes(&img.path) == before,
            "rm -f of a missing path changed the image"
        );
    }
}

#[test]
fn put_into_missing_parent_needs_p() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        let src = host_file(img.dir.path(), "x.txt", b"payload\n");
        fails(
            &img.path,
            "put",
            &[s(&src), "/no/such/dir/x.txt"],
            &["no such file"],
        );
        fails(&img.path, "put", &["-", "/no/x.txt"], &["no such file"]);
        // Putting under a regular file is not "missing parent" but still fails.
        fails(&img.path, "put", &[s(&src), "/top/x.txt"], &["/top"]);
        // With -p the same put works and the image stays consistent.
        ok(&img.path, "put", &[s(&src), "/no/such/dir/x.txt", "-p"]);
        assert_eq!(
            common::debugfs_cat(&img.path, "/no/such/dir/x.txt"),
            b"payload\n"
        );
        common::fsck_clean(&img.path);
    }
}

#[test]
fn mkdir_existing_path() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        fails(&img.path, "mkdir", &["/a"], &["exists"]);
        fails(&img.path, "mkdir", &["/a/b/c"], &["exists"]);
        fails(&img.path, "mkdir", &["/top"], &["exists"]);
        fails(&img.path, "mkdir", &["/"], &[]);
        // -p: an existing directory is fine and nothing is written...
        let before = common::bytes(&img.path);
        ok(&img.path, "mkdir", &["/a/b", "-p"]);
        assert!(
            common::bytes(&img.path) == before,
            "mkdir -p of an existing directory changed the image"
        );
        // ...but an existing file in the way is still an error.
        fails(
            &img.path,
            "mkdir",
            &["/top", "-p"],
            &["/top", "not a directory"],
        );
        fails(
            &img.path,
            "mkdir",
            &["/top/sub", "-p"],
            &["/top", "not a directory"],
        );
    }
}

#[test]
fn rm_non_empty_directory_needs_r() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        fails(&img.path, "rm", &["/a"], &["/a", "-r"]);
        fails(&img.path, "rm", &["/empty"], &["/empty", "-r"]);
        ok(&img.path, "rm", &["/a", "-r"]);
        let r = run_t(&["ls", s(&img.path), "/a"], None);
        assert_eq!(r.code, Some(1), "/a should be gone: {}", r.what());
        ok(
            &img.path,
            "get",
            &["/top", s(&img.dir.path().join("top-still-there"))],
        );
        common::fsck_clean(&img.path);
    }
}

#[test]
fn rmdir_refuses_non_empty_and_non_directories() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        fails(&img.path, "rmdir", &["/a"], &["/a", "not empty"]);
        fails(&img.path, "rmdir", &["/a/b"], &["not empty"]);
        fails(&img.path, "rmdir", &["/top"], &["/top", "not a directory"]);
        fails(&img.path, "rmdir", &["/missing"], &["no such file"]);
        ok(&img.path, "rmdir", &["/a/b/c"]);
        ok(&img.path, "rmdir", &["/empty"]);
        common::fsck_clean(&img.path);
    }
}

#[test]
fn root_cannot_be_removed_or_moved() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        fails(&img.path, "rm", &["/"], &["/"]);
        fails(&img.path, "rm", &["/", "-r"], &["/"]);
        fails(&img.path, "rm", &["/", "-rf"], &["/"]);
        fails(&img.path, "rmdir", &["/"], &["/"]);
        fails(&img.path, "mv", &["/", "/a/root"], &["/"]);
        common::fsck_clean(&img.path);
    }
}

#[test]
fn mv_directory_into_itself() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        fails(&img.path, "mv", &["/a", "/a/b"], &["/a", "itself"]);
        fails(&img.path, "mv", &["/a", "/a/b/c/x"], &["/a", "itself"]);
        fails(&img.path, "mv", &["/a/b", "/a/b/c"], &["itself"]);
        fails(&img.path, "mv", &["/a", "/a/b/c/"], &["itself"]);
        common::fsck_clean(&img.path);
    }
}

#[test]
fn mv_to_missing_parent() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        fails(
            &img.path,
            "mv",
            &["/top", "/nowhere/top"],
            &["/nowhere", "no such file"],
        );
        fails(&img.path, "mv", &["/a", "/x/y/z"], &["no such file"]);
        fails(&img.path, "mv", &["/top", "/a/f/under-file"], &["/a/f"]);
        ok(&img.path, "get", &["/top", s(&img.dir.path().join("t"))]);
        ok(&img.path, "ls", &["/a/b"]);
        common::fsck_clean(&img.path);
    }
}

#[test]
fn hard_link_to_directory_is_refused() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        fails(&img.path, "ln", &["/a", "/alink"], &["director"]);
        fails(&img.path, "ln", &["/a/b", "/a/b/c/up"], &["director"]);
        // The root: exit 2 today ("/" has no file name), although the link
        // name is given; either way one line and no change.
        let before = common::bytes(&img.path);
        let r = run_t(&["ln", s(&img.path), "/", "/rootlink"], None);
        assert!(matches!(r.code, Some(1) | Some(2)), "{}", r.what());
        assert!(
            r.stderr.starts_with("ext3edit: ") && r.stderr.lines().count() == 1,
            "{}",
            r.what()
        );
        assert!(common::bytes(&img.path) == before);
        fails(
            &img.path,
            "ln",
            &["/missing", "/x"],
            &["/missing", "no such file"],
        );
        fails(&img.path, "ln", &["/top", "/a/f"], &["/a/f", "exists"]);
        // A hard link to a file still works.
        ok(&img.path, "ln", &["/top", "/top2"]);
        common::fsck_clean(&img.path);
    }
}

// ----------------------------------------------------------------------
// Usage errors: exit 2

#[test]
fn bad_usage_exits_2() {
    require_e2fsprogs!();
    let img = populated(&cfgs()[0]);
    let p = &img.path;
    let src = host_file(img.dir.path(), "x.txt", b"x\n");
    fails_with(
        p,
        "chmod",
        &["9z9", "/top"],
        None,
        2,
        &["invalid mode", "9z9"],
    );
    fails_with(p, "chmod", &["8", "/top"], None, 2, &["invalid mode"]);
    fails_with(p, "chmod", &["77777", "/top"], None, 2, &["invalid mode"]);
    fails_with(p, "chmod", &["", "/top"], None, 2, &["invalid mode"]);
    // Names are looked up in the image (which has no /etc/passwd here):
    // exit 1 naming the name and the file.
    fails_with(
        p,
        "chown",
        &["abc", "/top"],
        None,
        1,
        &["unknown user \"abc\"", "/etc/passwd"],
    );
    fails_with(
        p,
        "chown",
        &["1:x", "/top"],
        None,
        1,
        &["unknown group \"x\"", "/etc/group"],
    );
    fails_with(p, "chown", &[":", "/top"], None, 2, &["invalid owner"]);
    fails_with(p, "chown", &["1:2:3", "/top"], None, 2, &["invalid owner"]);
    fails_with(
        p,
        "mkdir",
        &["/newdir", "--mode", "9"],
        None,
        2,
        &["invalid mode"],
    );
    fails_with(
        p,
        "put",
        &[s(&src), "/new", "--owner", ":"],
        None,
        2,
        &["invalid owner"],
    );
    fails_with(
        p,
        "put",
        &[s(&src), "/new", "--mtime", "yesterday"],
        None,
        2,
        &["invalid time"],
    );
    fails_with(
        p,
        "touch",
        &["/new", "--mtime", "2024-13-01"],
        None,
        2,
        &["invalid time"],
    );
    fails_with(
        p,
        "mknod",
        &["/dev0", "x", "1", "2"],
        None,
        2,
        &["invalid node type"],
    );
    fails_with(p, "mknod", &["/dev0", "c"], None, 2, &["major"]);
    // Found by the argument parser.
    usage_error(p, &["frobnicate", s(p)], "unrecognized subcommand");
    usage_error(p, &["get", s(p)], "required");
    usage_error(p, &["put", s(p), s(&src)], "required");
    usage_error(p, &["chmod", s(p), "644"], "required");
    usage_error(p, &["mv", s(p)], "required");
    usage_error(
        p,
        &["rm", s(p), "/top", "--no-such-flag"],
        "unexpected argument",
    );
    usage_error(p, &["chown", s(p), "-1:0", "/top"], "unexpected argument");
    usage_error(p, &["truncate", s(p), "/top", "-5"], "unexpected argument");
    usage_error(p, &["truncate", s(p), "/top", "lots"], "invalid value");
    // No subcommand at all: the help, on stderr, exit 2.
    let r = run_t(&[], None);
    assert_eq!(r.code, Some(2), "{}", r.what());
    assert!(
        r.stderr.contains("Usage:") && r.stdout.is_empty(),
        "{}",
        r.what()
    );
    // Nothing was created by any of these.
    for path in ["/new", "/newdir", "/dev0"] {
        let r = run_t(&["ls", s(p), path], None);
        assert_eq!(
            r.code,
            Some(1),
            "{path} exists after a usage error: {}",
            r.what()
        );
    }
}

// ----------------------------------------------------------------------
// Out of space, out of inodes

/// A 2 MiB ext2 image with 1 KiB blocks, and its free bytes.
fn small_image() -> (Img, u64) {
    let img = common::mkfs(&Cfg {
        fstype: "ext2",
        block: 1024,
        inode: 128,
        dir_index: false,
        size_kib: 2048,
    });
    let free = info_json(&img.path)["free_blocks"].as_u64().unwrap() * 1024;
    assert!(
        free > 1_000_000,
        "2 MiB image should have most of its space free, has {free}"
    );
    (img, free)
}

#[test]
fn put_larger_than_free_space() {
    require_e2fsprogs!();
    let (img, free) = small_image();
    let data = common::pseudo_random(free as usize + 64 * 1024, 7);
    let src = host_file(img.dir.path(), "big.bin", &data);
    let msg = fails(&img.path, "put", &[s(&src), "/big"], &["space"]);
    assert!(msg.contains("/big"), "message names the destination: {msg}");
    // Exactly the free space plus one block is also too much (block maps need room too).
    let src2 = host_file(img.dir.path(), "big2.bin", &data[..free as usize + 1]);
    fails(&img.path, "put", &[s(&src2), "/big2"], &["space"]);
    // Nothing half-made: the name does not exist and fsck is happy.
    let r = run_t(&["ls", s(&img.path), "/big"], None);
    assert_eq!(r.code, Some(1), "{}", r.what());
    common::fsck_clean(&img.path);
    // Overwriting an existing file with a too-big one keeps the old content.
    let small = host_file(img.dir.path(), "small.txt", b"small file\n");
    ok(&img.path, "put", &[s(&small), "/f"]);
    fails(&img.path, "put", &[s(&src), "/f"], &["space"]);
    assert_eq!(common::debugfs_cat(&img.path, "/f"), b"small file\n");
    common::fsck_clean(&img.path);
}

#[test]
fn put_from_stdin_larger_than_free_space() {
    require_e2fsprogs!();
    let (img, free) = small_image();
    // stdin has no size: the failure comes after many blocks were staged.
    let data = common::pseudo_random(free as usize + 256 * 1024, 11);
    fails_with(
        &img.path,
        "put",
        &["-", "/big"],
        Some(&data),
        1,
        &["space", "/big"],
    );
    let r = run_t(&["ls", s(&img.path), "/big"], None);
    assert_eq!(r.code, Some(1), "{}", r.what());
    common::fsck_clean(&img.path);
    // Half the free space from stdin still works afterwards.
    let half = &data[..free as usize / 2];
    let r = run_t(&["put", s(&img.path), "-", "/half"], Some(half));
    assert_eq!(r.code, Some(0), "{}", r.what());
    assert!(
        common::debugfs_cat(&img.path, "/half") == half,
        "content of /half"
    );
    common::fsck_clean(&img.path);
}

#[test]
fn put_r_runs_out_of_inodes() {
    require_e2fsprogs!();
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("few-inodes.img");
    mke2fs(&img, &["-t", "ext2", "-b", "1024", "-N", "16"], "2M");
    let free_inodes = info_json(&img)["free_inodes"].as_u64().unwrap();
    assert!(
        free_inodes < 100,
        "mke2fs -N 16 left {free_inodes} free inodes"
    );
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..100 {
        std::fs::write(tree.join(format!("f{i:03}")), format!("file {i}\n")).unwrap();
    }
    fails(&img, "put", &[s(&tree), "/tree", "-r"], &["inode"]);
    fails(&img, "put", &[s(&tree), "/", "-r"], &["inode"]);
    let r = run_t(&["ls", s(&img), "/tree"], None);
    assert_eq!(r.code, Some(1), "{}", r.what());
    common::fsck_clean(&img);
}

/// Around the last free block every put either succeeds (and fsck is
/// happy, content intact) or fails with one line and no change: no
/// off-by-one in the space estimate, in either direction.
#[test]
fn filling_to_the_last_block() {
    require_e2fsprogs!();
    let (img, free) = small_image();
    let free_blocks = free / 1024;
    // Leave about 90 blocks free.
    let filler = common::pseudo_random(((free_blocks - 90) * 1024) as usize, 5);
    let r = run_t(&["put", s(&img.path), "-", "/filler"], Some(&filler));
    assert_eq!(r.code, Some(0), "{}", r.what());
    let left = info_json(&img.path)["free_blocks"].as_u64().unwrap();
    assert!((80..=100).contains(&left), "{left} blocks left");
    let base = common::bytes(&img.path);
    let work = img.dir.path().join("work.img");
    let (mut oks, mut fulls) = (0, 0);
    let mut judge = |r: &Res, check: &dyn Fn()| match r.code {
        Some(0) => {
            common::fsck_clean(&work);
            check();
            oks += 1;
        }
        Some(1) => {
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.what());
            assert!(
                r.stderr.contains("space") || r.stderr.contains("free"),
                "{}",
                r.what()
            );
            assert!(
                common::bytes(&work) == base,
                "failed put changed the image: {}",
                r.what()
            );
            fulls += 1;
        }
        _ => panic!("{}", r.what()),
    };
    // One file from stdin (no size hint), sizes around the free space.
    for blocks in left.saturating_sub(6)..=left + 1 {
        std::fs::write(&work, &base).unwrap();
        let data = common::pseudo_random((blocks * 1024) as usize, blocks);
        let r = run_t(&["put", s(&work), "-", "/last"], Some(&data));
        judge(&r, &|| {
            assert!(
                common::debugfs_cat(&work, "/last") == data,
                "content of /last"
            )
        });
    }
    // A tree of one-block files: inodes, entries and directory blocks too.
    for n in left.saturating_sub(12)..=left + 1 {
        std::fs::write(&work, &base).unwrap();
        let tree = img.dir.path().join(format!("tree{n}"));
        std::fs::create_dir(&tree).unwrap();
        for i in 0..n {
            std::fs::write(
                tree.join(format!("file-with-a-long-name-{i:04}")),
                [b'x'; 1000],
            )
            .unwrap();
        }
        let r = run_t(&["put", s(&work), s(&tree), "/tree", "-r"], None);
        judge(&r, &|| {
            let out = common::debugfs(&work, "ls -p /tree");
            assert_eq!(
                out.lines()
                    .filter(|l| l.contains("file-with-a-long-name-"))
                    .count() as u64,
                n,
                "entries in /tree"
            );
        });
    }
    eprintln!("{left} blocks free: {oks} puts fit, {fulls} did not");
    assert!(
        oks > 0 && fulls > 0,
        "the sizes should straddle the boundary: {oks} fit, {fulls} did not"
    );
}

// ----------------------------------------------------------------------
// Read-only image file

/// Undo `chattr +i` even when the test fails.
struct Immutable(PathBuf);
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn read_only_image_file() {
    require_e2fsprogs!();
    use std::os::unix::fs::PermissionsExt;
    let img = populated(&cfgs()[0]);
    let src = host_file(img.dir.path(), "x.txt", b"x\n");
    std::fs::set_permissions(&img.path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mut _guard = None;
    if std::fs::OpenOptions::new()
        .write(true)
        .open(&img.path)
        .is_ok()
    {
        // Root ignores the mode. The immutable attribute stops root too, where
        // the host filesystem and our capabilities allow it.
        let st = Command::new("chattr").arg("+i").arg(&img.path).output();
        if st.is_ok_and(|o| o.status.success()) {
            _guard = Some(Immutable(img.path.clone()));
        }
        if std::fs::OpenOptions::new()
            .write(true)
            .open(&img.path)
            .is_ok()
        {
            common::skip("this process can write a 0444 image file (root without chattr +i)");
            return;
        }
    }
    let name = img.path.file_name().unwrap().to_str().unwrap().to_string();
    fails(&img.path, "put", &[s(&src), "/x"], &[&name]);
    fails(&img.path, "mkdir", &["/d"], &[&name]);
    fails(&img.path, "rm", &["/top"], &[&name]);
    fails(&img.path, "chmod", &["600", "/top"], &[&name]);
    fails(&img.path, "touch", &["/top"], &[&name]);
    // Reading needs no write access.
    ok(&img.path, "info", &[]);
    ok(&img.path, "ls", &["/", "-R"]);
    let out = img.dir.path().join("top.out");
    ok(&img.path, "get", &["/top", s(&out)]);
    assert_eq!(std::fs::read(&out).unwrap(), b"hello, image\n");
}

// ----------------------------------------------------------------------
// Corrupt images: one byte (or word) patched

/// The read and write commands on a corrupt image: all exit 1 naming the
/// problem, image unchanged. `info_fails`: whether `info` (superblock and
/// descriptors only) can see the damage.
fn all_commands_fail(img: &Img, info_fails: bool, needles: &[&str]) {
    let p = &img.path;
    let src = host_file(img.dir.path(), "put-src.txt", b"data\n");
    let out = img.dir.path().join("got");
    let mut n: Vec<&str> = vec!["corrupt"];
    n.extend_from_slice(needles);
    if info_fails {
        fails(p, "info", &[], &n);
        fails(p, "info", &["--json"], &n);
    } else {
        let before = common::bytes(p);
        let r = run_t(&["info", s(p)], None);
        assert_eq!(
            r.code,
            Some(0),
            "info reads only the superblock here: {}",
            r.what()
        );
        assert!(common::bytes(p) == before);
    }
    fails(p, "ls", &["/"], &n);
    fails(p, "ls", &["/", "-R"], &n);
    fails(p, "ls", &["/", "-R", "--json"], &n);
    fails(p, "get", &["/top", s(&out)], &n);
    fails(p, "stat", &["/top"], &n);
    fails(p, "put", &[s(&src), "/new"], &n);
    fails(p, "put", &["-", "/new"], &n);
    fails(p, "mkdir", &["/newdir"], &n);
    fails(p, "mkdir", &["/a/b/new", "-p"], &n);
    fails(p, "rm", &["/top"], &n);
    fails(p, "rm", &["/a", "-r"], &n);
    fails(p, "mv", &["/top", "/top2"], &n);
    fails(p, "chmod", &["600", "/top"], &n);
    assert!(!out.exists(), "a failed get created its destination");
}

/// Superblock fields (the superblock is at byte 1024 for every block size).
const SB: u64 = 1024;

#[test]
fn corrupt_superblock_magic() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        patch(&img.path, SB + 56, &[0x00]); // s_magic 0xef53 -> 0xef00
        all_commands_fail(&img, true, &["magic"]);
    }
}

#[test]
fn corrupt_log_block_size() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        patch(&img.path, SB + 24, &[0x40]); // s_log_block_size = 64
        all_commands_fail(&img, true, &["block size"]);
        patch(&img.path, SB + 24, &[0xff, 0xff, 0xff, 0xff]);
        all_commands_fail(&img, true, &["block size"]);
    }
}

#[test]
fn corrupt_inode_count_mismatch() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        let sb = common::read_sb(&img.path);
        patch(&img.path, SB, &(sb.inodes + 1).to_le_bytes()); // s_inodes_count
        all_commands_fail(&img, true, &["inode count", &(sb.inodes + 1).to_string()]);
    }
}

/// Byte offset of group 0's descriptor.
fn gdt_offset(img: &Path) -> u64 {
    let b = common::bytes(img);
    let first_data_block = u32_at(&b, 1024 + 20) as u64;
    let bs = 1024u64 << u32_at(&b, 1024 + 24);
    (first_data_block + 1) * bs
}

#[test]
fn corrupt_group_descriptor_inode_table_past_end() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        let sb = common::read_sb(&img.path);
        let past = sb.blocks as u32 + 1000;
        patch(&img.path, gdt_offset(&img.path) + 8, &past.to_le_bytes()); // bg_inode_table
        all_commands_fail(&img, false, &["inode table", &past.to_string()]);
        // info can tell, and says why it will not write.
        let v = info_json(&img.path);
        assert_eq!(v["writable"], false, "{v}");
        let why = v["write_refusal"].as_str().unwrap_or("");
        assert!(
            why.contains("inode table") && why.contains(&past.to_string()),
            "{why}"
        );
    }
}

/// "Inode 2 is part of block group 0\n\tlocated at block 68, offset 0x0080"
fn inode_location(img: &Path, ino: u32) -> u64 {
    let out = common::debugfs(img, &format!("imap <{ino}>"));
    let rest = out
        .split("located at block ")
        .nth(1)
        .unwrap_or_else(|| panic!("imap: {out:?}"));
    let (blk, rest) = rest.split_once(", offset ").unwrap();
    let off = rest
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("0x");
    let blk: u64 = blk.trim().parse().unwrap();
    let off = u64::from_str_radix(off, 16).unwrap();
    let bs = common::bytes(img).len() as u64 / common::read_sb(img).blocks;
    blk * bs + off
}

#[test]
fn corrupt_root_inode_block_past_end() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        let sb = common::read_sb(&img.path);
        let past = sb.blocks as u32 + 77;
        let at = inode_location(&img.path, 2) + 40; // i_block[0]
        assert_eq!(
            u32_at(&common::bytes(&img.path), at as usize) as u64,
            first_block(&img.path, "/")
        );
        patch(&img.path, at, &past.to_le_bytes());
        all_commands_fail(&img, false, &[&past.to_string()]);
    }
}

#[test]
fn corrupt_root_dirent_rec_len_zero() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        let bs = cfg.block as u64;
        let blk = first_block(&img.path, "/");
        // Entry 0 is "." (12 bytes); entry 1 is "..": zero its rec_len.
        let b = common::bytes(&img.path);
        let at = (blk * bs) as usize;
        assert_eq!(&b[at + 8..at + 9], b".", "first entry of / is .");
        assert_eq!(
            &b[at + 12 + 8..at + 12 + 10],
            b"..",
            "second entry of / is .."
        );
        patch(&img.path, blk * bs + 12 + 4, &[0, 0]);
        all_commands_fail(&img, false, &["rec_len"]);
    }
}

#[test]
fn truncated_image_file() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        // A file whose data reaches past the middle of the image.
        let big = host_file(
            img.dir.path(),
            "big.bin",
            &common::pseudo_random(10 << 20, 3),
        );
        ok(&img.path, "put", &[s(&big), "/big"]);
        let len = common::bytes(&img.path).len() as u64;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&img.path)
            .unwrap();
        f.set_len(len / 2).unwrap();
        drop(f);
        let p = &img.path;
        let src = host_file(img.dir.path(), "x.txt", b"x\n");
        let out = img.dir.path().join("big.out");
        fails(p, "get", &["/big", s(&out)], &["/big", "truncated"]);
        fails(p, "get", &["/big"], &["/big", "truncated"]);
        fails(p, "put", &[s(&src), "/x"], &["truncated"]);
        fails(p, "mkdir", &["/newdir"], &["truncated"]);
        fails(p, "rm", &["/top"], &["truncated"]);
        fails(
            p,
            "get",
            &["/", s(&img.dir.path().join("tree")), "-r"],
            &["truncated"],
        );
        // ls -R lists what it can reach: exit 0, or 1 with per-directory lines.
        let before = common::bytes(p);
        let r = run_t(&["ls", s(p), "/", "-R"], None);
        assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
        assert!(
            r.stderr.lines().all(|l| l.starts_with("ext3edit: ")),
            "{}",
            r.what()
        );
        assert!(
            String::from_utf8_lossy(&r.stdout).contains("big"),
            "ls -R still lists /big: {}",
            r.what()
        );
        // The small file near the start is still readable.
        ok(p, "get", &["/top", s(&img.dir.path().join("top.out"))]);
        assert!(
            common::bytes(p) == before,
            "read-only commands changed a truncated image"
        );
    }
}

// ----------------------------------------------------------------------
// Unsupported features for writing

#[test]
fn ext4_image_with_inline_data_is_read_only() {
    require_e2fsprogs!();
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("ext4.img");
    // ext4 itself is written; inline_data is not yet.
    mke2fs(&img, &["-t", "ext4", "-O", "inline_data"], "16M");
    let src = host_file(t.path(), "hello.txt", b"hello from debugfs\n");
    debugfs_w(&img, &format!("write {} hello", s(&src)));
    debugfs_w(&img, "mkdir dir");
    let v = info_json(&img);
    assert_eq!(v["writable"], false, "{v}");
    fails(&img, "put", &[s(&src), "/new"], &["inline_data"]);
    fails(&img, "put", &["-", "/new"], &["inline_data"]);
    fails(&img, "mkdir", &["/newdir"], &["inline_data"]);
    fails(&img, "rm", &["/hello"], &["inline_data"]);
    fails(&img, "chmod", &["600", "/hello"], &["inline_data"]);
    let before = common::bytes(&img);
    let r = ok(&img, "ls", &["/"]);
    let listing = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(
        listing.contains("hello") && listing.contains("dir"),
        "{listing}"
    );
    let r = ok(&img, "get", &["/hello"]);
    assert_eq!(r.stdout, b"hello from debugfs\n");
    assert!(common::bytes(&img) == before);
}

// ----------------------------------------------------------------------
// Directory loops

#[test]
fn directory_loop_terminates() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        // /a/b/up is a second name of /a: a cycle /a -> /a/b -> /a/b/up = /a.
        debugfs_w(&img.path, "ln /a /a/b/up");
        let p = &img.path;
        let before = common::bytes(p);
        let r = run_t(&["ls", s(p), "/", "-R"], None);
        assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
        assert!(
            r.stderr.lines().all(|l| l.starts_with("ext3edit: ")),
            "{}",
            r.what()
        );
        assert!(
            r.stdout.len() < 1 << 20,
            "ls -R output grows without bound: {} bytes",
            r.stdout.len()
        );
        let r = run_t(&["ls", s(p), "/", "-R", "--json"], None);
        assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
        let r = run_t(
            &["get", s(p), "/", s(&img.dir.path().join("tree")), "-r"],
            None,
        );
        assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
        assert!(
            common::bytes(p) == before,
            "read-only commands changed the image"
        );
        let r = run_t(&["rm", s(p), "/a", "-r"], None);
        assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
        if r.code == Some(1) {
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.what());
            assert!(
                common::bytes(p) == before,
                "a failed rm -r changed the image"
            );
        }
    }
}

// ----------------------------------------------------------------------
// get -r never writes outside DEST

/// A host sandbox: `root/out` is DEST, `root/outside` must stay untouched.
struct Sandbox {
    _t: tempfile::TempDir,
    root: PathBuf,
}
impl Sandbox {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        Sandbox { _t: t, root }
    }
    fn out(&self) -> PathBuf {
        self.root.join("out")
    }
    fn outside(&self) -> PathBuf {
        self.root.join("outside")
    }
    /// Every path under root except those under out/.
    fn stray(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, acc: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                acc.push(p.clone());
                if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                    walk(&p, acc);
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.root, &mut v);
        v.retain(|p| !p.starts_with(self.out()));
        v.sort();
        v
    }
}

#[test]
fn get_r_does_not_follow_image_symlinks_on_the_host() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        for outside_exists in [false, true] {
            let img = populated(&cfg);
            let sb = Sandbox::new();
            if outside_exists {
                std::fs::create_dir(sb.outside()).unwrap();
            }
            let target = sb.outside();
            let evil2 = format!("{}/x", s(&target));
            ok(&img.path, "ln", &[s(&target), "/evil", "-s"]);
            ok(&img.path, "ln", &[&evil2, "/a/evil2", "-s"]);
            ok(
                &img.path,
                "ln",
                &["../../../../../../../../outside", "/a/b/rel", "-s"],
            );
            let before_strays = sb.stray();
            let r = run_t(&["get", s(&img.path), "/", s(&sb.out()), "-r"], None);
            assert_eq!(r.code, Some(0), "{}", r.what());
            assert_eq!(sb.stray(), before_strays, "get -r wrote outside DEST");
            let evil = sb.out().join("evil");
            assert!(
                std::fs::symlink_metadata(&evil)
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "out/evil is a symlink"
            );
            assert_eq!(std::fs::read_link(&evil).unwrap(), target);
            assert!(std::fs::symlink_metadata(sb.out().join("a/evil2"))
                .unwrap()
                .file_type()
                .is_symlink());
            assert_eq!(
                std::fs::read(sb.out().join("a/f")).unwrap(),
                b"hello, image\n"
            );
            // A second get -r over the same DEST must not write through the
            // symlinks it made the first time.
            let r = run_t(&["get", s(&img.path), "/", s(&sb.out()), "-r"], None);
            assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
            assert_eq!(
                sb.stray(),
                before_strays,
                "second get -r wrote outside DEST"
            );
        }
    }
}

/// Rename one entry of a directory block in place (same length).
fn rename_entry(img: &Path, dir: &str, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let bs = common::bytes(img).len() as u64 / common::read_sb(img).blocks;
    let blk = first_block(img, dir);
    let mut b = common::bytes(img);
    let start = (blk * bs) as usize;
    let block = &mut b[start..start + bs as usize];
    let i = block
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{from:?} not in {dir}"));
    block[i..i + to.len()].copy_from_slice(to);
    std::fs::write(img, b).unwrap();
}

#[test]
fn get_r_with_crafted_names_stays_inside_dest() {
    require_e2fsprogs!();
    for cfg in cfgs() {
        let img = populated(&cfg);
        let sb = Sandbox::new();
        std::fs::create_dir(sb.outside()).unwrap();
        // Two entries named "evil" in /: first a symlink to the outside, then
        // a directory holding a file. Writing the file through the symlink
        // would land in outside/.
        ok(&img.path, "ln", &[s(&sb.outside()), "/evil", "-s"]);
        ok(&img.path, "mkdir", &["/evix"]);
        let src = host_file(img.dir.path(), "pwn.txt", b"pwned\n");
        ok(&img.path, "put", &[s(&src), "/evix/pwn"]);
        rename_entry(&img.path, "/", b"evix", b"evil");
        // A name with a slash: "../z" would climb out of DEST.
        ok(&img.path, "put", &[s(&src), "/zzzz"]);
        rename_entry(&img.path, "/", b"zzzz", b"../z");
        let before_strays = sb.stray();
        let before = common::bytes(&img.path);
        let r = run_t(&["get", s(&img.path), "/", s(&sb.out()), "-r"], None);
        assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
        assert!(
            r.stderr.lines().all(|l| l.starts_with("ext3edit: ")),
            "{}",
            r.what()
        );
        assert_eq!(
            sb.stray(),
            before_strays,
            "get -r wrote outside DEST: {}",
            r.what()
        );
        assert!(
            std::fs::read_dir(sb.outside()).unwrap().next().is_none(),
            "something was written into outside/"
        );
        assert!(common::bytes(&img.path) == before);
        // The same for a single file whose name climbs: get of "/../z" is just
        // "/z" inside the image, which does not exist.
        let r = run_t(
            &["get", s(&img.path), "/../z", s(&sb.out().join("z"))],
            None,
        );
        assert_eq!(r.code, Some(1), "{}", r.what());
        assert_eq!(sb.stray(), before_strays);
    }
}

// ----------------------------------------------------------------------
// Findings of the independent review

#[test]
fn huge_journal_inode_size_is_a_clean_error() {
    require_e2fsprogs!();
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("j.img");
    mke2fs(&img, &["-t", "ext3", "-b", "1024"], "8M");
    debugfs_w(&img, "sif <8> size 0x7fffffffffffff");
    // Reading and writing work (only the journal blocks in use are
    // mapped, never its whole claimed size) or fail cleanly: never an
    // abort.
    for args in [
        vec!["ls", s(&img), "/"],
        vec!["mkdir", s(&img), "/x"],
        vec!["journal", "info", s(&img)],
    ] {
        let r = run_t(&args, None);
        assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
        assert!(
            !r.stderr.contains("panicked") && !r.stderr.contains("memory allocation"),
            "{}",
            r.what()
        );
    }
}

#[test]
fn an_indirect_map_pointing_at_itself_ends_quickly() {
    require_e2fsprogs!();
    // A double-indirect block whose entries all point at the same
    // single-indirect block, whose entries all point at one data block: a
    // huge logical file over a handful of blocks. Reading must end with a
    // clean error (or the bytes), never spin.
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("loop.img");
    mke2fs(&img, &["-t", "ext3", "-b", "1024", "-I", "128"], "8M");
    let src = host_file(t.path(), "f", &vec![7u8; 300 * 1024]);
    ok(&img, "put", &[s(&src), "/f"]);
    let stat = common::debugfs(&img, "stat /f");
    // "(IND):x" and "(DIND):y" in debugfs' block list.
    let find = |tag: &str| -> u64 {
        let i = stat.find(tag).unwrap_or_else(|| panic!("{tag} in {stat}"));
        stat[i + tag.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let ind = find("(IND):");
    let dind = find("(DIND):");
    let mut b = common::bytes(&img);
    let first_data = u32_at(&b, (ind * 1024) as usize);
    for i in 0..256usize {
        b[(dind * 1024) as usize + 4 * i..(dind * 1024) as usize + 4 * i + 4]
            .copy_from_slice(&(ind as u32).to_le_bytes());
        b[(ind * 1024) as usize + 4 * i..(ind * 1024) as usize + 4 * i + 4]
            .copy_from_slice(&first_data.to_le_bytes());
    }
    std::fs::write(&img, &b).unwrap();
    let start = Instant::now();
    let r = run_t(&["get", s(&img), "/f", s(&t.path().join("out"))], None);
    assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    let r = run_t(&["rm", s(&img), "/f"], None);
    assert!(matches!(r.code, Some(0) | Some(1)), "{}", r.what());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn device_numbers_out_of_range_are_usage_errors() {
    require_e2fsprogs!();
    let img = populated(&cfgs()[0]);
    let p = &img.path;
    usage_error(
        p,
        &["mknod", s(p), "/d1", "c", "99999", "1"],
        "does not fit",
    );
    usage_error(
        p,
        &["mknod", s(p), "/d2", "b", "1", "2000000"],
        "does not fit",
    );
    ok(p, "mknod", &["/d3", "c", "4095", "1048575"]);
    let j: serde_json::Value =
        serde_json::from_slice(&ok(p, "stat", &["/d3", "--json"]).stdout).unwrap();
    assert_eq!(j["rdev"], serde_json::json!([4095, 1048575]));
}

#[test]
fn times_out_of_range_are_usage_errors() {
    require_e2fsprogs!();
    let img = populated(&cfgs()[0]);
    let p = &img.path;
    for t in [
        "9223372036854775807",
        "99999999999-01-01",
        "2024-02-31",
        "2024-01-01T25:00:00",
        "2024-01-01T12:99",
        "2024-01-01T9223372036854775807",
        "1800-01-01",
    ] {
        usage_error(p, &["touch", s(p), "/top", "--mtime", t], "invalid time");
    }
    ok(p, "touch", &["/top", "--mtime", "2024-02-29T23:59:59"]);
    ok(p, "touch", &["/top", "--mtime", "@-1"]);
}

#[test]
fn a_locked_image_is_not_written() {
    require_e2fsprogs!();
    let img = populated(&cfgs()[0]);
    let p = &img.path;
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap();
    holder.lock().unwrap();
    fails(p, "mkdir", &["/locked"], &["locked"]);
    // Reading does not need the lock.
    ok(p, "ls", &["/"]);
    holder.unlock().unwrap();
    drop(holder);
    ok(p, "mkdir", &["/locked"]);
    common::fsck_clean(p);
}

#[test]
fn error_lines_escape_control_characters_from_the_image() {
    if !common::have_e2fsprogs() {
        common::skip("e2fsprogs is not installed");
        return;
    }
    // A passwd home with an ESC sequence, a tab and a C1 control: the
    // error that names it stays one line and cannot drive a terminal.
    let img = common::mkfs(&cfgs()[0]);
    let passwd = host_file(
        img.dir.path(),
        "passwd",
        "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/\u{1b}[2Jbob\t\u{9b}:/bin/sh\n"
            .as_bytes(),
    );
    let key = host_file(
        img.dir.path(),
        "k.pub",
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@x\n",
    );
    ok(&img.path, "mkdir", &["/etc"]);
    ok(&img.path, "put", &[s(&passwd), "/etc/passwd"]);
    let arg = format!("bob:{}", s(&key));
    let msg = fails(
        &img.path,
        "customize",
        &["--ssh-inject", &arg],
        &["/home/\\033[2Jbob\\t\\233"],
    );
    assert!(
        !msg.contains('\u{1b}') && !msg.contains('\t') && !msg.contains('\u{9b}'),
        "{msg:?}"
    );
}

/// Every command's `--help` starts with the same summary that
/// `ext3edit --help` lists for it (the commands' arguments are built
/// lazily, and a flattened option group's own description once replaced
/// the command's there), and teaches its usage.
#[test]
fn every_command_help_starts_with_its_summary() {
    let top = common::run(&["--help"], None);
    assert!(top.status.success());
    let text = String::from_utf8(top.stdout).unwrap();
    let mut seen = 0;
    let mut in_list = false;
    for l in text.lines() {
        if l.starts_with("Commands:") {
            in_list = true;
            continue;
        }
        if !in_list || l.trim().is_empty() {
            in_list = in_list && !l.trim().is_empty();
            continue;
        }
        let (name, summary) = l.trim().split_once(' ').unwrap();
        if name == "help" {
            continue;
        }
        let o = common::run(&[name, "--help"], None);
        assert!(o.status.success(), "{name} --help failed");
        let help = String::from_utf8(o.stdout).unwrap();
        let first = help.lines().next().unwrap_or("");
        assert_eq!(
            first,
            summary.trim(),
            "{name} --help starts with another text"
        );
        assert!(
            help.contains(&format!("Usage: ext3edit {name} ")),
            "{name} --help: no usage line"
        );
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} commands listed");
}
