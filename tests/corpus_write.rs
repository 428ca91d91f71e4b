//! Write commands on the e2fsprogs test images: on every image, `mkdir`,
//! `put`, `ln -s` and `rm -r` either work or fail with one clean line and
//! leave the image byte for byte as it was (most images are corrupt on
//! purpose, or use features ext3edit does not write). On images that
//! `e2fsck -fn` calls clean and that ext3edit writes, the result must still
//! be clean. Skipped when ../shared/corpus is absent.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

/// Run with a deadline; (exit code, stderr).
fn run_limited(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(common::bin())
        .args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (st.code(), err);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            return (None, "timed out".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn write_commands_on_every_corpus_image() {
    let Some(dir) = common::corpus() else {
        common::skip("../shared/corpus/e2fsprogs is absent");
        return;
    };
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut lines = manifest.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let (ct, cf, cc, cs) = (
        col("test"),
        col("image_file"),
        col("fsck_fn_class"),
        col("sb_info_source"),
    );
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    std::fs::write(&small, b"written by ext3edit\n".repeat(200)).unwrap();
    let img = tmp.path().join("a.img");
    let (mut images, mut written, mut checked) = (0, 0, 0);
    let mut problems = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let (test, file) = (f[ct], f[cf]);
        if file.contains(".tar.bz2") {
            continue;
        }
        images += 1;
        std::fs::write(&img, common::decompress(&dir.join(test).join(file))).unwrap();
        let i = img.to_str().unwrap();
        let s = small.to_str().unwrap();
        let cmds: [&[&str]; 4] = [
            &["mkdir", i, "/ext3edit-t"],
            &["put", i, s, "/ext3edit-t/f"],
            &["ln", i, "/ext3edit-t/f", "/ext3edit-t/l", "-s"],
            &["rm", i, "/ext3edit-t", "-r"],
        ];
        let mut all_ok = true;
        for args in cmds {
            let before = std::fs::read(&img).unwrap();
            let (code, err) = run_limited(args);
            if !matches!(code, Some(0) | Some(1)) || err.contains("panicked") {
                problems.push(format!("{test}: {args:?} -> {code:?}: {}", err.trim()));
                all_ok = false;
                break;
            }
            if code == Some(1) {
                if err.trim_end().lines().count() != 1 || !err.starts_with("ext3edit: ") {
                    problems.push(format!("{test}: {args:?}: not one error line: {err:?}"));
                }
                if std::fs::read(&img).unwrap() != before {
                    problems.push(format!(
                        "{test}: {args:?} failed but changed the image: {}",
                        err.trim()
                    ));
                }
                all_ok = false;
                break;
            }
        }
        if all_ok {
            written += 1;
            let clean = f[cc] == "clean" && f[cs] == "dumpe2fs";
            if clean && common::have_e2fsprogs() {
                checked += 1;
                let o = Command::new("e2fsck")
                    .arg("-fn")
                    .arg(&img)
                    .output()
                    .unwrap();
                if !o.status.success() {
                    problems.push(format!(
                        "{test}: clean before, e2fsck -fn exit {:?} after our writes: {}",
                        o.status.code(),
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .take(8)
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ));
                }
            }
        }
    }
    eprintln!("{images} images: writes done on {written}, {checked} of them clean before and checked with e2fsck after");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        images > 200 && written > 10,
        "too few images: {images}, written {written}"
    );
}

/// f_uninit_disable: no uninit_bg, yet group 0 says most of its inode
/// table is unused (bg_itable_unused), and e2fsck takes a directory entry
/// pointing there for an error. New inodes must move that mark.
#[test]
fn itable_unused_is_respected_without_uninit_bg() {
    let Some(dir) = common::corpus() else {
        eprintln!("SKIP: ../shared/corpus/e2fsprogs is absent");
        return;
    };
    if !common::have_e2fsprogs() {
        eprintln!("SKIP: e2fsprogs not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.img");
    std::fs::write(
        &img,
        common::decompress(&dir.join("f_uninit_disable/image.gz")),
    )
    .unwrap();
    let small = tmp.path().join("small");
    std::fs::write(&small, b"x\n").unwrap();
    let (i, s) = (img.to_str().unwrap(), small.to_str().unwrap());
    for args in [
        vec!["put", i, s, "/x"],
        vec!["mkdir", i, "/d"],
        vec!["put", i, s, "/d/y"],
    ] {
        let (code, err) = run_limited(&args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }
    // The image's own finding (flags without the feature), not ours.
    common::fsck_clean_except(&img, &["marked uninitialized without feature set"]);
}
