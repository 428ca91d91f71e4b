//! The image as a file on the host: how `--output NEW` copies, locks and
//! renames (parallel writers, symlinks planted beside NEW, NEW a symlink or
//! a directory, a journal that needs recovery), what IMAGE may be (a FIFO
//! is refused at once), streams that cannot be written (no panic), and an
//! image truncated by another program while it is read (an error, not a
//! SIGBUS).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn cfg(fstype: &'static str, size_kib: u64) -> Cfg {
    Cfg {
        fstype,
        block: 1024,
        inode: 256,
        dir_index: true,
        size_kib,
    }
}

fn spawn(args: &[&Path]) -> Child {
    Command::new(bin())
        .args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ext3edit")
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// Names in `dir` that look like an `--output` temporary file.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ext3edit-partial"))
        .collect()
}

/// One error line, no panic.
fn one_line(err: &str) {
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Ten `put IMG fN /xN --output NEW` to the same NEW, ten more each to
/// their own NEW_N, while another ext3edit writes IMG itself: every command
/// that exits 0 leaves a clean image, the shared NEW is the whole result of
/// exactly one of them, failures say one line, no temporary file is left.
#[test]
fn parallel_output_while_image_is_written() {
    require_e2fsprogs!();
    let img = mkfs(&cfg("ext3", 64 * 1024));
    let d = img.dir.path();
    let big = d.join("big");
    std::fs::write(&big, pseudo_random(6 << 20, 1)).unwrap();
    for n in 0..10 {
        std::fs::write(d.join(format!("f{n}")), pseudo_random(30_000, n)).unwrap();
    }
    let shared = d.join("NEW");
    // The writer on IMG: one big file after another.
    let writer = {
        let (img, big) = (img.path.clone(), big.clone());
        std::thread::spawn(move || {
            let mut codes = Vec::new();
            for k in 0..6 {
                let o = spawn(&[p("put"), &img, &big, p(&format!("/big{k}"))])
                    .wait_with_output()
                    .unwrap();
                codes.push((
                    o.status.code(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                ));
            }
            codes
        })
    };
    let mut kids = Vec::new();
    for n in 0..10 {
        let f = d.join(format!("f{n}"));
        let own = d.join(format!("NEW{n}"));
        let x = format!("/x{n}");
        let y = format!("/y{n}");
        let o = p("--output");
        kids.push((
            n,
            None,
            spawn(&[p("put"), &img.path, &f, p(&x), o, &shared]),
        ));
        kids.push((
            n,
            Some(own.clone()),
            spawn(&[p("put"), &img.path, &f, p(&y), o, &own]),
        ));
        std::thread::sleep(Duration::from_millis(40));
    }
    let mut shared_ok = Vec::new();
    for (n, own, k) in kids {
        let o = k.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        match (o.status.code(), own) {
            (Some(0), Some(own)) => {
                fsck_clean(&own);
                let got = ok(&own, "get", &[&format!("/y{n}")]).stdout;
                assert_eq!(got, pseudo_random(30_000, n), "NEW{n}: /y{n}");
            }
            (Some(0), None) => shared_ok.push(n),
            (Some(1), own) => {
                one_line(&err);
                if let Some(own) = own {
                    assert!(!own.exists(), "a failed command left {}", own.display());
                }
            }
            (c, _) => panic!("exit {c:?}: {err}"),
        }
    }
    for (c, err) in writer.join().unwrap() {
        assert!(c == Some(0) || c == Some(1), "writer exit {c:?}: {err}");
        if c == Some(1) {
            one_line(&err);
        }
    }
    fsck_clean(&img.path);
    if !shared_ok.is_empty() {
        fsck_clean(&shared);
        // The whole result of one command: its /xN and no other.
        let ls = String::from_utf8(ok(&shared, "ls", &["/"]).stdout).unwrap();
        let xs: Vec<&str> = ls.lines().filter(|l| l.starts_with('x')).collect();
        assert_eq!(xs.len(), 1, "NEW holds {xs:?}");
        let n: u64 = xs[0][1..].parse().unwrap();
        assert!(shared_ok.contains(&n), "NEW is from x{n}, which failed");
        let got = ok(&shared, "get", &[&format!("/x{n}")]).stdout;
        assert_eq!(got, pseudo_random(30_000, n));
    } else {
        assert!(!shared.exists());
    }
    assert_eq!(leftovers(d), Vec::<String>::new(), "temporary files left");
}

/// A symlink planted at the name the temporary file used to have
/// (`NEW.ext3edit-partial`) is not followed: the victim is unchanged.
#[test]
fn output_never_writes_through_a_planted_symlink() {
    require_e2fsprogs!();
    let img = mkfs(&cfg("ext3", 8 * 1024));
    let d = img.dir.path();
    let victim = d.join("victim.txt");
    std::fs::write(&victim, b"precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, d.join("NEW.ext3edit-partial")).unwrap();
    std::os::unix::fs::symlink(&victim, d.join(".NEW.ext3edit-partial")).unwrap();
    let f = d.join("f");
    std::fs::write(&f, b"hello\n").unwrap();
    let new = d.join("NEW");
    ok(
        &img.path,
        "put",
        &[f.to_str().unwrap(), "/x", "--output", new.to_str().unwrap()],
    );
    assert!(
        std::fs::read(&victim).unwrap() == b"precious\n",
        "victim.txt changed"
    );
    assert!(std::fs::symlink_metadata(&new)
        .unwrap()
        .file_type()
        .is_file());
    fsck_clean(&new);
    assert_eq!(ok(&new, "get", &["/x"]).stdout, b"hello\n");
}

/// NEW an existing symlink: like mv, the link itself is replaced by the
/// image; its target is not written. NEW a directory: one line, exit 1.
#[test]
fn output_replaces_a_symlink_and_refuses_a_directory() {
    require_e2fsprogs!();
    let img = mkfs(&cfg("ext3", 8 * 1024));
    let d = img.dir.path();
    let target = d.join("target.txt");
    std::fs::write(&target, b"keep me\n").unwrap();
    let new = d.join("NEW");
    std::os::unix::fs::symlink(&target, &new).unwrap();
    let f = d.join("f");
    std::fs::write(&f, b"hello\n").unwrap();
    ok(
        &img.path,
        "put",
        &[f.to_str().unwrap(), "/x", "--output", new.to_str().unwrap()],
    );
    assert!(
        std::fs::read(&target).unwrap() == b"keep me\n",
        "the link's target changed"
    );
    assert!(std::fs::symlink_metadata(&new)
        .unwrap()
        .file_type()
        .is_file());
    fsck_clean(&new);

    let dir = d.join("adir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("inside"), b"x").unwrap();
    let err = fails(
        &img.path,
        "put",
        &[f.to_str().unwrap(), "/x", "--output", dir.to_str().unwrap()],
        1,
    );
    one_line(&err);
    assert!(err.contains("is a directory"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(leftovers(d), Vec::<String>::new());
}

/// SIGTERM during a long `--output` write removes the temporary file.
#[test]
fn output_temporary_file_is_removed_on_sigterm() {
    require_e2fsprogs!();
    let img = mkfs(&cfg("ext2", 256 * 1024));
    let d = img.dir.path();
    let big = d.join("big");
    std::fs::write(&big, pseudo_random(120 << 20, 3)).unwrap();
    let new = d.join("NEW");
    let k = spawn(&[p("put"), &img.path, &big, p("/big"), p("--output"), &new]);
    // Wait until the temporary file exists, then stop the command.
    let t = Instant::now();
    while leftovers(d).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!leftovers(d).is_empty(), "no temporary file seen");
    send_signal(k.id(), "TERM");
    let o = k.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    if o.status.signal() == Some(15) {
        assert!(!new.exists());
    }
    // Killed or (if it was faster than us) finished: no temporary file.
    assert_eq!(leftovers(d), Vec::<String>::new(), "{:?}", o.status);
}

fn send_signal(pid: u32, sig: &str) {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
}

/// A journal that needs recovery is replayed into the copy; IMAGE is only
/// read.
#[test]
fn output_replays_into_the_copy_not_the_image() {
    require_e2fsprogs!();
    let img = mkfs(&cfg("ext3", 8 * 1024));
    let base = std::fs::read(&img.path).unwrap();
    let op = |fs: &mut ext3edit::Filesystem| -> ext3edit::Result<()> {
        let root = fs.root();
        let attrs = ext3edit::NewFile {
            perm: 0o755,
            ..Default::default()
        };
        fs.mkdir(root, b"logged", &attrs)?;
        fs.commit()
    };
    let opts = ext3edit::OpenOptions {
        write: true,
        now: Some(1_700_000_000),
        ..ext3edit::OpenOptions::default()
    };
    std::fs::write(&img.path, crash_until_dirty(&base, &opts, &op)).unwrap();
    let before = bytes(&img.path);
    let d = img.dir.path();
    let f = d.join("f");
    std::fs::write(&f, b"hello\n").unwrap();
    let new = d.join("NEW");
    let o = ok(
        &img.path,
        "put",
        &[f.to_str().unwrap(), "/x", "--output", new.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("replaying it into the copy"), "{err}");
    assert!(bytes(&img.path) == before, "IMAGE changed");
    fsck_clean(&new);
    let ls = String::from_utf8(ok(&new, "ls", &["/"]).stdout).unwrap();
    assert!(ls.contains("logged") && ls.contains('x'), "{ls}");
}

/// A FIFO as IMAGE: one line and exit 1 at once, not a wait for a writer.
#[test]
fn fifo_image_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    for args in [
        vec![p("info"), &fifo],
        vec![p("mkdir"), &fifo, p("/d")],
        vec![
            p("mkdir"),
            &fifo,
            p("/d"),
            p("--output"),
            &dir.path().join("NEW"),
        ],
    ] {
        let mut k = spawn(&args);
        let t = Instant::now();
        let status = loop {
            if let Some(s) = k.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(10) {
                let _ = k.kill();
                panic!("{args:?} on a FIFO still runs after 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let o = k.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        one_line(&err);
        assert!(err.contains("is a FIFO, not an image file"), "{err}");
    }
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

fn with_streams(args: &[&str], stdout: Stdio, stderr: Stdio) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .output()
        .unwrap()
}

fn dev_full() -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .ok()
}

/// stderr that cannot be written: exit 1, not a panic (101).
#[test]
fn unwritable_stderr_is_not_a_panic() {
    let Some(full) = dev_full() else {
        eprintln!("SKIP: no /dev/full");
        return;
    };
    let o = with_streams(
        &["info", "/nonexistent/image"],
        Stdio::null(),
        Stdio::from(full.try_clone().unwrap()),
    );
    assert_eq!(o.status.code(), Some(1));
    // A usage error too: exit 2.
    let o = with_streams(&["info"], Stdio::null(), Stdio::from(full));
    assert_eq!(o.status.code(), Some(2));
}

/// stdout that cannot be written: exit 1 and one line that says so.
#[test]
fn unwritable_stdout_is_one_line() {
    require_e2fsprogs!();
    let Some(full) = dev_full() else {
        eprintln!("SKIP: no /dev/full");
        return;
    };
    let img = mkfs(&cfg("ext3", 8 * 1024));
    let f = img.dir.path().join("f");
    std::fs::write(&f, b"no newline at the end").unwrap();
    ok(&img.path, "put", &[f.to_str().unwrap(), "/f"]);
    let i = img.path.to_str().unwrap();
    for args in [
        vec!["ls", i],
        vec!["ls", i, "/", "-R", "-l", "--json"],
        vec!["info", i],
        vec!["get", i, "/f"],
        vec!["readlink", i, "/f"],
    ] {
        let o = with_streams(
            &args,
            Stdio::from(full.try_clone().unwrap()),
            Stdio::piped(),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        if args[0] == "readlink" {
            // Not a symlink: that error comes first.
            assert_eq!(o.status.code(), Some(1), "{err}");
            continue;
        }
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        one_line(&err);
        assert!(
            err.contains("writing output: No space left on device"),
            "{err}"
        );
    }
}

/// Another program truncates and rewrites the image while `ls -R` reads
/// it (as `cp` over it does): each run ends with exit 0 or one error line,
/// never killed by a signal (a memory map of the file raised SIGBUS).
#[test]
fn image_truncated_while_read_is_an_error_not_a_signal() {
    require_e2fsprogs!();
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for a in 0..40 {
        let sub = tree.join(format!("d{a}"));
        std::fs::create_dir_all(&sub).unwrap();
        for b in 0..50 {
            std::fs::write(sub.join(format!("f{b}")), b"x").unwrap();
        }
    }
    let base = dir.path().join("base.img");
    let st = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-b", "1024", "-N", "4096", "-d"])
        .arg(&tree)
        .arg(&base)
        .arg("16M")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let content = std::fs::read(&base).unwrap();
    let img = dir.path().join("img");
    let t = Instant::now();
    let (mut runs, mut errors) = (0, 0);
    while t.elapsed() < Duration::from_secs(4) && runs < 100 {
        std::fs::write(&img, &content).unwrap();
        let k = Command::new(bin())
            .args(["ls", "-R", "-l"])
            .arg(&img)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(500 * (runs % 20)));
        // What cp does to an existing file: truncate, then write it again.
        let f = std::fs::File::create(&img).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        use std::io::Write;
        (&f).write_all(&content[..content.len() / 2]).unwrap();
        drop(f);
        let o = k.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.signal(),
            None,
            "run {runs} killed by a signal: {err}"
        );
        match o.status.code() {
            Some(0) => {}
            Some(1) => {
                // ls -R goes on past a directory it cannot read: a line
                // per directory, each a complete message.
                assert!(
                    err.lines().all(|l| l.starts_with("ext3edit: ")) && !err.contains("panicked"),
                    "{err}"
                );
                errors += 1;
            }
            c => panic!("run {runs}: exit {c:?}: {err}"),
        }
        runs += 1;
    }
    eprintln!("{runs} runs, {errors} ended in an error");
}
