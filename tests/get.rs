//! `get` on the host side: it writes to what DEST is (a regular file is
//! replaced atomically, a device, fifo, pipe or symlink target is written in
//! place, nothing is removed), keeps directory times, drops setuid/setgid
//! and applies the umask unless `-p`, and trusts the inode's mode over a
//! directory entry's file type.
#![cfg(unix)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{bytes, mkfs, Cfg};

/// A fresh ext3 image with /file (content `DATA`, mode 644), /dir with a
/// file and a hard link pair, made at a fixed time in the past.
fn image() -> common::Img {
    let img = mkfs(&Cfg {
        fstype: "ext3",
        block: 1024,
        inode: 256,
        dir_index: true,
        size_kib: 8 * 1024,
    });
    let src = img.dir.path().join("src");
    std::fs::write(&src, DATA).unwrap();
    let p = img.path.to_str().unwrap();
    let s = src.to_str().unwrap();
    for args in [
        vec!["put", p, s, "/file", "--mode", "644"],
        vec!["mkdir", p, "/dir"],
        vec!["mkdir", p, "/dir/sub"],
        vec!["put", p, s, "/dir/sub/a", "--mode", "600"],
        vec!["ln", p, "/dir/sub/a", "/dir/b"],
    ] {
        ok(&args);
    }
    img
}

const DATA: &[u8] = b"the content from the image\n";

/// Run ext3edit at a fixed SOURCE_DATE_EPOCH; stdout and stderr piped.
fn ext3edit(args: &[&str]) -> Command {
    let mut c = Command::new(common::bin());
    c.args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn ok(args: &[&str]) -> Output {
    let out = ext3edit(args).output().unwrap();
    assert!(
        out.status.success(),
        "ext3edit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run, require exit 1 and one error line; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = ext3edit(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "ext3edit {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    err
}

/// Names in a host directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A host directory beside the image for the test's files.
fn host_dir(img: &common::Img) -> PathBuf {
    let d = img.dir.path().join("host");
    std::fs::create_dir(&d).unwrap();
    d
}

#[test]
fn regular_dest_is_replaced_atomically_with_holes() {
    require_e2fsprogs!();
    let img = image();
    let h = host_dir(&img);
    // A sparse file in the image: 1 MiB hole, then data.
    let sparse = img.dir.path().join("sparse");
    {
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(1 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"tail", 1 << 20).unwrap();
    }
    ok(&["put", s(&img.path), s(&sparse), "/sparse"]);

    let dest = h.join("dest");
    let old = vec![b'O'; 5000];
    std::fs::write(&dest, &old).unwrap();
    // A second name for the old file: an atomic replacement leaves it alone
    // (an in-place truncation would change it too).
    std::fs::hard_link(&dest, h.join("old-link")).unwrap();
    ok(&["get", s(&img.path), "/file", s(&dest)]);
    assert_eq!(std::fs::read(&dest).unwrap(), DATA);
    assert!(
        std::fs::read(h.join("old-link")).unwrap() == old,
        "the old file is untouched: replaced, not truncated"
    );
    assert!(std::fs::symlink_metadata(&dest).unwrap().is_file());
    assert_eq!(names(&h), ["dest", "old-link"], "no temporary file left");

    // A sparse file stays sparse on the host, over an existing file too.
    let sp = h.join("sp");
    std::fs::write(&sp, vec![1u8; 100_000]).unwrap();
    ok(&["get", s(&img.path), "/sparse", s(&sp)]);
    let m = std::fs::metadata(&sp).unwrap();
    assert_eq!(m.len(), (1 << 20) + 4);
    assert!(
        m.blocks() * 512 < 256 * 1024,
        "holes kept: {} blocks",
        m.blocks()
    );
    let got = std::fs::read(&sp).unwrap();
    assert!(got[..1 << 20].iter().all(|&b| b == 0));
    assert_eq!(&got[1 << 20..], b"tail");
    assert_eq!(names(&h), ["dest", "old-link", "sp"]);
}

#[test]
fn symlink_dest_writes_its_target_and_stays_a_link() {
    require_e2fsprogs!();
    let img = image();
    let h = host_dir(&img);
    let target = h.join("target");
    std::fs::write(&target, vec![b'x'; 4000]).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let ino = std::fs::metadata(&target).unwrap().ino();
    let link = h.join("link");
    std::os::unix::fs::symlink("target", &link).unwrap();
    ok(&["get", s(&img.path), "/file", s(&link)]);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("target"));
    assert_eq!(std::fs::read(&target).unwrap(), DATA, "old content gone");
    let m = std::fs::metadata(&target).unwrap();
    assert_eq!(m.ino(), ino, "written in place, as cp does");
    assert_eq!(m.mode() & 0o7777, 0o640, "the target keeps its mode");
    assert_eq!(names(&h), ["link", "target"]);

    // A dangling symlink is refused (as GNU cp does); nothing is created.
    let dl = h.join("dangling");
    std::os::unix::fs::symlink("nowhere", &dl).unwrap();
    let err = fails(&["get", s(&img.path), "/file", s(&dl)]);
    assert!(err.contains("dangling symlink"), "{err}");
    assert!(!h.join("nowhere").exists());
    assert_eq!(std::fs::read_link(&dl).unwrap(), Path::new("nowhere"));
    assert_eq!(names(&h), ["dangling", "link", "target"]);
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success());
}

/// Read a fifo to its end on a thread; `release` unblocks a reader still
/// waiting for a writer (when the command never opened the fifo).
fn fifo_reader(p: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let p = p.to_path_buf();
    std::thread::spawn(move || std::fs::read(&p).unwrap())
}

fn release(p: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p);
}

#[test]
fn fifo_dest_is_written_and_stays_a_fifo() {
    require_e2fsprogs!();
    let img = image();
    let h = host_dir(&img);
    // Holes in the middle: a fifo gets them as zeros.
    let src = img.dir.path().join("holey");
    {
        let f = std::fs::File::create(&src).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", 200_000).unwrap();
    }
    ok(&["put", s(&img.path), s(&src), "/holey"]);
    let fifo = h.join("fifo");
    mkfifo(&fifo);
    let reader = fifo_reader(&fifo);
    let out = ext3edit(&["get", s(&img.path), "/holey", s(&fifo)])
        .output()
        .unwrap();
    release(&fifo);
    let got = reader.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got, std::fs::read(&src).unwrap());
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(names(&h), ["fifo"]);
}

#[test]
fn character_device_dest_is_written_in_place() {
    require_e2fsprogs!();
    let img = image();
    let h = host_dir(&img);
    let null = h.join("null");
    // The same device as /dev/null (1, 3); needs root.
    let made = Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("SKIP: mknod needs root; the character device case is not run");
        return;
    }
    ok(&["get", s(&img.path), "/file", s(&null)]);
    let m = std::fs::symlink_metadata(&null).unwrap();
    assert!(m.file_type().is_char_device(), "still a device");
    assert_eq!(m.rdev(), std::fs::metadata("/dev/null").unwrap().rdev());
    // And through a symlink to it.
    std::os::unix::fs::symlink("null", h.join("to-null")).unwrap();
    ok(&["get", s(&img.path), "/file", s(&h.join("to-null"))]);
    assert!(std::fs::symlink_metadata(&null)
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(names(&h), ["null", "to-null"]);
}

#[test]
fn dev_null_dest_is_kept() {
    require_e2fsprogs!();
    let img = image();
    let before = std::fs::symlink_metadata("/dev/null").unwrap();
    ok(&["get", s(&img.path), "/file", "/dev/null"]);
    let after = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(after.file_type().is_char_device());
    assert_eq!((after.ino(), after.rdev()), (before.ino(), before.rdev()));
}

/// DEST that names the command's own stdout (`/dev/stdout`, or a symlink
/// to /proc/self/fd/1) writes there, whether stdout is a pipe or a file.
fn stdout_dest(dest: &Path) {
    let img = image();
    let out = ok(&["get", s(&img.path), "/file", s(dest)]);
    assert_eq!(out.stdout, DATA, "through a pipe");

    let file = img.dir.path().join("captured");
    std::fs::write(&file, b"old content, longer than the new one.......").unwrap();
    let st = ext3edit(&["get", s(&img.path), "/file", s(dest)])
        .stdout(std::fs::File::create(&file).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&file).unwrap(), DATA, "into a file");
}

#[test]
fn stdout_symlink_dest_pipe_and_file() {
    require_e2fsprogs!();
    if !Path::new("/proc/self/fd/1").exists() {
        eprintln!("SKIP: no /proc/self/fd");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let link = d.path().join("stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    stdout_dest(&link);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn dev_stdout_dest_pipe_and_file() {
    require_e2fsprogs!();
    if !Path::new("/dev/stdout").exists() {
        eprintln!("SKIP: no /dev/stdout");
        return;
    }
    stdout_dest(Path::new("/dev/stdout"));
    assert!(Path::new("/dev/stdout").exists());
}

#[test]
fn failures_leave_dest_as_it_was() {
    require_e2fsprogs!();
    let img = image();
    let h = host_dir(&img);
    let dest = h.join("dest");
    std::fs::write(&dest, b"precious").unwrap();
    let ino = std::fs::metadata(&dest).unwrap().ino();
    // A file whose first block points outside the filesystem: the copy
    // fails in the middle, after DEST was opened by the old code.
    let big = img.dir.path().join("big");
    std::fs::write(&big, common::pseudo_random(40_000, 7)).unwrap();
    ok(&["put", s(&img.path), s(&big), "/big"]);
    let dbg = Command::new("debugfs")
        .args(["-w", "-R", "sif /big block[3] 99999999"])
        .arg(&img.path)
        .output()
        .unwrap();
    assert!(dbg.status.success());
    let image_before = bytes(&img.path);
    for (path, what) in [("/big", "outside"), ("/missing", "missing"), ("/dir", "-r")] {
        let err = fails(&["get", s(&img.path), path, s(&dest)]);
        assert!(err.contains(what), "{path}: {err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"precious", "{path}");
        assert_eq!(std::fs::metadata(&dest).unwrap().ino(), ino, "{path}");
        assert_eq!(names(&h), ["dest"], "{path}: no temporary file left");
    }
    // DEST that is the image itself, by name or through a symlink: refused.
    let link = h.join("img-link");
    std::os::unix::fs::symlink(&img.path, &link).unwrap();
    for to in [&link, &img.path] {
        let err = fails(&["get", s(&img.path), "/file", s(to)]);
        assert!(err.contains("image itself"), "{err}");
    }
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(bytes(&img.path), image_before);
    // A fifo DEST on a failing copy: still a fifo.
    let fifo = h.join("fifo");
    mkfifo(&fifo);
    let reader = fifo_reader(&fifo);
    let out = ext3edit(&["get", s(&img.path), "/big", s(&fifo)])
        .output()
        .unwrap();
    release(&fifo);
    reader.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(bytes(&img.path), image_before, "get never writes the image");
}

/// (atime, mtime) of a path in the image, from `ext3edit stat --json`.
fn image_times(img: &Path, path: &str) -> (i64, i64) {
    let out = ok(&["stat", s(img), path, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["atime"].as_i64().unwrap(), v["mtime"].as_i64().unwrap())
}

fn host_times(p: &Path) -> (i64, i64) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.atime(), m.mtime())
}

#[test]
fn get_r_keeps_directory_times() {
    require_e2fsprogs!();
    let img = image();
    // Distinct atime and mtime on one directory.
    let dbg = Command::new("debugfs")
        .args(["-w", "-R", "sif /dir/sub atime 1600000000"])
        .arg(&img.path)
        .output()
        .unwrap();
    assert!(dbg.status.success());
    let h = host_dir(&img);
    // A host symlink inside DEST pointing outside: replaced, never followed.
    let out = h.join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = h.join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    std::os::unix::fs::symlink("../victim", out.join("file")).unwrap();
    ok(&["get", s(&img.path), "/", s(&out), "-r"]);
    ok(&["get", s(&img.path), "/dir", s(&h.join("copy")), "-r"]);
    // Hard links stay hard links.
    let a = std::fs::metadata(out.join("dir/sub/a")).unwrap();
    let b = std::fs::metadata(out.join("dir/b")).unwrap();
    assert_eq!(a.ino(), b.ino());

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (host, path) in [
        (out.clone(), "/"),
        (out.join("dir"), "/dir"),
        (out.join("dir/sub"), "/dir/sub"),
        (out.join("lost+found"), "/lost+found"),
        (h.join("copy"), "/dir"),
        (h.join("copy/sub"), "/dir/sub"),
        (out.join("file"), "/file"),
    ] {
        let want = image_times(&img.path, path);
        assert!(want.1 < now - 3600, "{path}: image time {want:?} is old");
        assert_eq!(host_times(&host), want, "{}", host.display());
    }
    assert_eq!(image_times(&img.path, "/dir/sub").0, 1600000000);
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
    assert!(std::fs::symlink_metadata(out.join("file"))
        .unwrap()
        .is_file());
    assert_eq!(std::fs::read(out.join("file")).unwrap(), DATA);
    // A second run over the copy works the same (renames, no removals).
    ok(&["get", s(&img.path), "/", s(&out), "-r"]);
    assert_eq!(host_times(&out.join("dir")), image_times(&img.path, "/dir"));
    assert_eq!(
        std::fs::metadata(out.join("dir/b")).unwrap().ino(),
        std::fs::metadata(out.join("dir/sub/a")).unwrap().ino()
    );
    assert_eq!(names(&h), ["copy", "out", "victim"]);
    assert_eq!(names(&out), ["dir", "file", "lost+found"]);
}

/// Run ext3edit under `sh` with the given umask; require success.
fn with_umask(umask: &str, args: &[&str]) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$@\""))
        .arg("sh")
        .arg(common::bin())
        .args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Our own uid and gid on the host (from a file we create).
fn my_ids(dir: &Path) -> (u32, u32) {
    let p = dir.join(".ids");
    std::fs::write(&p, b"").unwrap();
    let m = std::fs::metadata(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn setuid_dropped_without_preserve_kept_with_it() {
    require_e2fsprogs!();
    let img = image();
    let h = host_dir(&img);
    let (uid, gid) = my_ids(&h);
    let root = uid == 0;
    // As root -p gives the image's owner; otherwise the owner can only be
    // ourselves, so the image's file is made ours.
    let owner = if root {
        "1234:5678".to_string()
    } else {
        format!("{uid}:{gid}")
    };
    let src = img.dir.path().join("src");
    let p = s(&img.path);
    ok(&[
        "put",
        p,
        s(&src),
        "/suid",
        "--mode",
        "4755",
        "--owner",
        &owner,
    ]);
    ok(&["mkdir", p, "/tree", "--mode", "1777", "--owner", &owner]);
    ok(&[
        "put",
        p,
        s(&src),
        "/tree/sgid",
        "--mode",
        "2775",
        "--owner",
        &owner,
    ]);

    let mode = |q: &Path| std::fs::symlink_metadata(q).unwrap().mode() & 0o7777;
    let run = |args: &[&str]| with_umask("022", args);
    run(&["get", p, "/suid", s(&h.join("plain"))]);
    assert_eq!(mode(&h.join("plain")), 0o755);
    run(&["get", p, "/suid", s(&h.join("kept")), "-p"]);
    assert_eq!(mode(&h.join("kept")), 0o4755);
    run(&["get", p, "/tree", s(&h.join("tree")), "-r"]);
    assert_eq!(mode(&h.join("tree")), 0o755);
    assert_eq!(mode(&h.join("tree/sgid")), 0o755);
    run(&["get", p, "/tree", s(&h.join("tree-p")), "-r", "--preserve"]);
    assert_eq!(mode(&h.join("tree-p")), 0o1777);
    assert_eq!(mode(&h.join("tree-p/sgid")), 0o2775);
    let ids = |q: &Path| {
        let m = std::fs::symlink_metadata(q).unwrap();
        (m.uid(), m.gid())
    };
    if root {
        for q in ["kept", "tree-p", "tree-p/sgid"] {
            assert_eq!(ids(&h.join(q)), (1234, 5678), "{q}");
        }
        for q in ["plain", "tree", "tree/sgid"] {
            assert_eq!(ids(&h.join(q)), (0, 0), "{q}: not given away without -p");
        }
    }
}

#[test]
fn umask_applies_without_preserve() {
    require_e2fsprogs!();
    let img = image();
    let h = host_dir(&img);
    let src = img.dir.path().join("src");
    let p = s(&img.path);
    ok(&["put", p, s(&src), "/open", "--mode", "666"]);
    ok(&["mkdir", p, "/wide", "--mode", "777"]);
    ok(&["put", p, s(&src), "/wide/f", "--mode", "777"]);
    let mode = |q: &str| std::fs::symlink_metadata(h.join(q)).unwrap().mode() & 0o7777;
    with_umask("027", &["get", p, "/open", s(&h.join("open"))]);
    assert_eq!(mode("open"), 0o640);
    with_umask("027", &["get", p, "/wide", s(&h.join("wide")), "-r"]);
    assert_eq!(mode("wide"), 0o750);
    assert_eq!(mode("wide/f"), 0o750);
    // -p keeps the image's mode whatever the umask.
    with_umask("027", &["get", p, "/open", s(&h.join("open-p")), "-p"]);
    assert_eq!(mode("open-p"), 0o666);
    with_umask(
        "027",
        &["get", p, "/wide", s(&h.join("wide-p")), "-r", "-p"],
    );
    assert_eq!(mode("wide-p"), 0o777);
    assert_eq!(mode("wide-p/f"), 0o777);
}

#[test]
fn entry_type_disagreeing_with_inode_trusts_the_inode() {
    require_e2fsprogs!();
    let img = image();
    let p = s(&img.path);
    ok(&["ln", p, "/file", "/hardlinkname"]);
    // Patch the entry's file_type byte (just before the name) to symlink.
    let mut b = bytes(&img.path);
    let name = b"hardlinkname";
    let at = b
        .windows(name.len())
        .position(|w| w == name)
        .expect("entry name in the image");
    assert_eq!(b[at - 2] as usize, name.len(), "name_len byte");
    assert_eq!(b[at - 1], 1, "file_type: regular file");
    b[at - 1] = 7;
    std::fs::write(&img.path, &b).unwrap();

    let h = host_dir(&img);
    let out = ok(&["get", p, "/", s(&h.join("out")), "-r"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let warn: Vec<&str> = err.lines().filter(|l| l.contains("hardlinkname")).collect();
    assert_eq!(warn.len(), 1, "one warning line: {err}");
    assert!(
        warn[0].contains("symlink") && warn[0].contains("regular file"),
        "{}",
        warn[0]
    );
    let m = std::fs::symlink_metadata(h.join("out/hardlinkname")).unwrap();
    assert!(m.is_file(), "a regular file, not a symlink");
    assert_eq!(
        m.ino(),
        std::fs::metadata(h.join("out/file")).unwrap().ino(),
        "and still a hard link"
    );
    assert_eq!(std::fs::read(h.join("out/hardlinkname")).unwrap(), DATA);
}

#[test]
fn writable_file_in_a_read_only_directory_is_written_in_place() {
    require_e2fsprogs!();
    let img = image();
    let h = host_dir(&img);
    let ro = h.join("ro");
    std::fs::create_dir(&ro).unwrap();
    let dest = ro.join("f");
    std::fs::write(&dest, b"old content, longer than the new one..........").unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let (uid, _) = my_ids(&h);
    if uid == 0 {
        // Root writes any directory: the command runs as nobody.
        if Command::new("setpriv").arg("--help").output().is_err() {
            eprintln!("SKIP: as root this case needs setpriv");
            return;
        }
        for d in [img.dir.path(), h.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&img.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let get = |to: &Path| {
        let mut c = if uid == 0 {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(common::bin());
            c
        } else {
            Command::new(common::bin())
        };
        c.args(["get", s(&img.path), "/file", s(to)])
            .env("EXT3EDIT_NO_PROGRESS", "1")
            .output()
            .unwrap()
    };
    let ok_in_place = get(&dest);
    // A new file there cannot be made: one error line, nothing left.
    let refused = get(&ro.join("new"));
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        ok_in_place.status.success(),
        "{}",
        String::from_utf8_lossy(&ok_in_place.stderr)
    );
    assert_eq!(std::fs::read(&dest).unwrap(), DATA);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Permission denied") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(names(&ro), ["f"]);
}

#[test]
fn a_name_twice_keeps_the_first_and_hard_links_stay_hard_links() {
    require_e2fsprogs!();
    // A corrupt directory: a file and a symlink under one name, and a
    // hard link to the file after them.
    let img = image();
    let p = s(&img.path);
    ok(&["mkdir", p, "/dup"]);
    ok(&["put", p, s(&img.dir.path().join("src")), "/dup/twice"]);
    ok(&["ln", p, "-s", "/file", "/dup/twicf"]);
    ok(&["ln", p, "/dup/twice", "/dup/hard"]);
    let mut b = bytes(&img.path);
    let mut n = 0;
    while let Some(at) = b.windows(5).position(|w| w == b"twicf") {
        b[at + 4] = b'e';
        n += 1;
    }
    assert!(n >= 1);
    std::fs::write(&img.path, &b).unwrap();
    let listing = String::from_utf8(ok(&["ls", p, "/dup"]).stdout).unwrap();
    assert_eq!(listing.matches("twice").count(), 2, "{listing}");

    let h = host_dir(&img);
    let out = ok(&["get", p, "/dup", s(&h.join("out")), "-r"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let warn: Vec<&str> = err.lines().filter(|l| l.contains("twice")).collect();
    assert!(
        warn.len() == 1 && warn[0].contains("second entry of this name"),
        "one warning about the name: {err}"
    );
    let first = std::fs::symlink_metadata(h.join("out/twice")).unwrap();
    let hard = std::fs::symlink_metadata(h.join("out/hard")).unwrap();
    assert!(first.is_file(), "the first entry (the file) is kept");
    assert!(
        hard.is_file(),
        "the hard link is a regular file, not a symlink"
    );
    assert_eq!(hard.ino(), first.ino(), "and a hard link to the file");
    assert_eq!(std::fs::read(h.join("out/hard")).unwrap(), DATA);
    assert_eq!(names(&h.join("out")), ["hard", "twice"]);
}
