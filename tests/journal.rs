//! The journal: replay must equal `e2fsck -E journal_only` on the
//! e2fsprogs journal images and on images we dirty ourselves; read
//! commands read through a dirty journal without changing the file; write
//! commands replay first; our own writes leave the journal empty.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use ext3edit::{Filesystem, NewFile, OpenOptions};

fn e2fsck_journal_only(img: &Path) -> i32 {
    Command::new("e2fsck")
        .args(["-E", "journal_only", "-y"])
        .arg(img)
        .env("E2FSCK_CONFIG", "/dev/null")
        .output()
        .unwrap()
        .status
        .code()
        .unwrap_or(-1)
}

/// Block-by-block comparison, allowing the superblock fields that any two
/// writers set differently: last write time, kbytes written, checksum.
fn same_except_sb_times(a: &[u8], b: &[u8]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err("sizes differ".into());
    }
    let allowed = |o: usize| {
        let r = o.wrapping_sub(1024);
        (0x30..0x34).contains(&r) || (0x178..0x180).contains(&r) || (0x3FC..0x400).contains(&r)
    };
    let diff: Vec<usize> = (0..a.len())
        .filter(|&i| a[i] != b[i] && !allowed(i))
        .take(10)
        .collect();
    if diff.is_empty() {
        Ok(())
    } else {
        Err(format!("bytes differ at {:?}", diff))
    }
}

/// Images whose replay we do not expect to match, and why.
const DIFFERENT: &[(&str, &str)] = &[
    (
        "f_clear_orphan_file",
        "e2fsck also processes the orphan file (ext4 orphan_file feature)",
    ),
    (
        "f_journal",
        "the journal inode is corrupt: e2fsck repairs it, ext3edit refuses",
    ),
    (
        "j_corrupt_sb_csum",
        "bad journal superblock checksum: e2fsck repairs it, ext3edit refuses",
    ),
    (
        "j_corrupt_sb_magic",
        "bad journal superblock magic: e2fsck repairs it, ext3edit refuses",
    ),
    (
        "j_recover_fast_commit",
        "fast-commit replay is not supported",
    ),
    ("f_ext_journal", "external journal"),
    (
        "j_ext_dumpe2fs",
        "an external journal device, not a filesystem",
    ),
];

#[test]
fn replay_equals_e2fsck_on_the_corpus() {
    require_e2fsprogs!();
    let Some(dir) = common::corpus() else {
        common::skip("../shared/corpus/e2fsprogs is absent");
        return;
    };
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut lines = manifest.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let (ct, cf, cr) = (col("test"), col("image_file"), col("needs_recovery"));
    let tmp = tempfile::tempdir().unwrap();
    let (mut matched, mut refused, mut failures) = (0, 0, Vec::new());
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let (test, file) = (f[ct], f[cf]);
        if f[cr] != "yes" && !test.starts_with("j_") {
            continue;
        }
        if file.contains(".tar.bz2") {
            continue; // external journal in a tarball
        }
        let data = common::decompress(&dir.join(test).join(file));
        let a = tmp.path().join("a.img");
        let b = tmp.path().join("b.img");
        std::fs::write(&a, &data).unwrap();
        std::fs::write(&b, &data).unwrap();
        let fsck = e2fsck_journal_only(&a);
        let o = run(&["journal", "replay", b.to_str().unwrap()], None);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!err.contains("panicked"), "{test}: {err}");
        if let Some((_, why)) = DIFFERENT.iter().find(|(t, _)| *t == test) {
            // A documented difference: we refuse cleanly (image untouched)
            // or replay; either way no panic and one message line.
            if !o.status.success() {
                assert_eq!(err.trim_end().lines().count(), 1, "{test}: {err}");
                assert!(
                    std::fs::read(&b).unwrap() == data,
                    "{test}: image changed although replay was refused"
                );
                refused += 1;
            }
            eprintln!("{test}: expected difference ({why}): {}", err.trim());
            continue;
        }
        if fsck >= 4 {
            eprintln!("{test}: e2fsck -E journal_only exits {fsck}; not compared");
            continue;
        }
        if !o.status.success() {
            failures.push(format!("{test}: ext3edit journal replay failed: {err}"));
            continue;
        }
        match same_except_sb_times(&std::fs::read(&a).unwrap(), &std::fs::read(&b).unwrap()) {
            Ok(()) => matched += 1,
            Err(e) => failures.push(format!("{test}: {e}")),
        }
    }
    eprintln!("replay matched e2fsck on {matched} images; {refused} refused as documented");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(matched >= 12, "only {matched} images compared");
}

/// An ext3 image whose journal holds one committed transaction that was
/// never checkpointed: the state a crash leaves between commit and
/// checkpoint. Returns (dir, dirty image path, expected content of /new).
fn dirty_image(block: u32) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let cfg = Cfg {
        fstype: "ext3",
        block,
        inode: 256,
        dir_index: true,
        size_kib: 8 * 1024,
    };
    let img = mkfs(&cfg);
    let base = std::fs::read(&img.path).unwrap();
    let content = pseudo_random(5000, 7);
    let op = |fs: &mut Filesystem| -> ext3edit::Result<()> {
        let root = fs.root();
        fs.create_file(
            root,
            b"new",
            &NewFile {
                perm: 0o640,
                uid: 5,
                gid: 6,
                mtime: None,
            },
            &mut &content[..],
        )?;
        fs.mkdir(
            root,
            b"newdir",
            &NewFile {
                perm: 0o755,
                ..Default::default()
            },
        )?;
        fs.commit()
    };
    // The first crash point at which the image needs recovery: the commit
    // record and journal superblock are on disk, the checkpoint has not
    // started.
    let opts = OpenOptions {
        write: true,
        now: Some(1_700_000_000),
        ..OpenOptions::default()
    };
    let bytes = crash_until_dirty(&base, &opts, &op);
    std::fs::write(&img.path, &bytes).unwrap();
    let p = img.path.clone();
    (img.dir, p, content)
}

#[test]
fn read_commands_read_through_a_dirty_journal() {
    require_e2fsprogs!();
    for block in [1024, 4096] {
        let (_d, img, content) = dirty_image(block);
        let before = bytes(&img);
        // The new file is not in place yet: debugfs, which ignores the
        // journal, does not see it.
        assert!(
            !debugfs(&img, "ls /").contains("newdir"),
            "the change is already in place"
        );
        let o = run(&["get", img.to_str().unwrap(), "/new"], None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, content);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("needs recovery") && err.contains("without changing the file"),
            "{err}"
        );
        let ls = String::from_utf8(ok(&img, "ls", &["/", "-l"]).stdout).unwrap();
        assert!(ls.contains("newdir") && ls.contains("-rw-r-----"), "{ls}");
        let info = String::from_utf8(
            run(&["journal", "info", img.to_str().unwrap(), "--json"], None).stdout,
        )
        .unwrap();
        let j: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(j["state"], "needs recovery");
        assert_eq!(j["transactions"].as_array().unwrap().len(), 1);
        assert!(bytes(&img) == before, "a read command changed the image");
    }
}

#[test]
fn journal_args_come_after_the_subcommand() {
    // `ext3edit journal info IMAGE`: the image follows `info`.
    let o = run(&["journal", "info"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn write_commands_replay_first() {
    require_e2fsprogs!();
    for block in [1024, 4096] {
        let (d, img, content) = dirty_image(block);
        let src = d.path().join("more");
        std::fs::write(&src, b"more data").unwrap();
        let o = run(
            &[
                "put",
                img.to_str().unwrap(),
                src.to_str().unwrap(),
                "/newdir/more",
            ],
            None,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("replaying it into the image first"));
        fsck_clean(&img);
        assert_eq!(view(&img).read("/new").unwrap(), content);
        assert_eq!(view(&img).read("/newdir/more").unwrap(), b"more data");
        let info = String::from_utf8(
            run(&["journal", "info", img.to_str().unwrap(), "--json"], None).stdout,
        )
        .unwrap();
        assert!(info.contains("empty (clean)"), "{info}");
    }
}

#[test]
fn replay_of_our_own_dirty_images_equals_e2fsck() {
    require_e2fsprogs!();
    for block in [1024, 2048, 4096] {
        let (d, img, content) = dirty_image(block);
        let theirs = d.path().join("theirs.img");
        std::fs::copy(&img, &theirs).unwrap();
        assert!(e2fsck_journal_only(&theirs) < 4);
        let o = run(&["journal", "replay", img.to_str().unwrap()], None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("replayed 1 transaction"));
        same_except_sb_times(&bytes(&theirs), &bytes(&img)).unwrap();
        fsck_clean(&img);
        assert_eq!(view(&img).read("/new").unwrap(), content);
        // A second replay has nothing to do.
        let o = run(&["journal", "replay", img.to_str().unwrap()], None);
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to do"));
    }
}

#[test]
fn writes_go_through_the_journal_and_leave_it_empty() {
    require_e2fsprogs!();
    let cfg = Cfg {
        fstype: "ext3",
        block: 1024,
        inode: 128,
        dir_index: true,
        size_kib: 8 * 1024,
    };
    let img = mkfs(&cfg);
    let seq = |p: &Path| -> u32 {
        let out = Command::new("dumpe2fs").arg("-h").arg(p).output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        let l = s
            .lines()
            .find(|l| l.starts_with("Journal sequence:"))
            .unwrap()
            .to_string();
        u32::from_str_radix(l.split("0x").nth(1).unwrap().trim(), 16).unwrap()
    };
    let s0 = seq(&img.path);
    ok(&img.path, "mkdir", &["/a"]);
    let s1 = seq(&img.path);
    assert!(s1 > s0, "the journal was not used ({s0} -> {s1})");
    // Our transaction is still readable in the log, and debugfs finds its
    // descriptor and commit blocks.
    let dump = debugfs(&img.path, "logdump -O");
    let tid = s1 - 1;
    assert!(
        dump.contains(&format!(
            "Found expected sequence {tid}, type 1 (descriptor block)"
        )),
        "{dump}"
    );
    assert!(
        dump.contains(&format!(
            "Found expected sequence {tid}, type 2 (commit block)"
        )),
        "{dump}"
    );
    // --no-journal writes in place and leaves the journal alone.
    ok(&img.path, "mkdir", &["/b", "--no-journal"]);
    assert_eq!(seq(&img.path), s1);
    fsck_clean(&img.path);
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(&img.path)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("Journal start:            0"), "{s}");
    assert!(!s.contains("needs_recovery"));
}

/// An ext3 image with a tiny journal (1024 blocks of 1 KiB), and a host
/// tree of 10,000 files whose metadata does not fit in one transaction.
fn small_journal_and_big_tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("small-journal.img");
    let st = Command::new("mke2fs")
        .args([
            "-q", "-F", "-t", "ext3", "-b", "1024", "-J", "size=1", "-N", "12000",
        ])
        .arg(&img)
        .arg("32M")
        .status()
        .unwrap();
    assert!(st.success());
    let tree = dir.path().join("tree");
    for d in 0..100 {
        std::fs::create_dir_all(tree.join(format!("d{d}"))).unwrap();
        for f in 0..100 {
            std::fs::write(tree.join(format!("d{d}/f{f}")), b"x").unwrap();
        }
    }
    (dir, img, tree)
}

#[test]
fn a_tree_larger_than_the_journal_goes_in_several_transactions() {
    require_e2fsprogs!();
    // put -r commits in steps, each a consistent filesystem; a single
    // transaction that large would be refused.
    let (_d, img, tree) = small_journal_and_big_tree();
    ok(&img, "put", &[tree.to_str().unwrap(), "/", "-r"]);
    fsck_clean(&img);
    let names = view(&img).read_dir("/tree/d99").unwrap().count();
    assert_eq!(names, 102);
}

#[test]
fn rm_r_of_a_tree_larger_than_the_journal_goes_in_several_transactions() {
    require_e2fsprogs!();
    let (_d, img, tree) = small_journal_and_big_tree();
    let free0 = read_sb(&img);
    ok(&img, "put", &[tree.to_str().unwrap(), "/", "-r"]);
    ok(&img, "rm", &["/tree", "-r"]);
    fsck_clean(&img);
    let free1 = read_sb(&img);
    assert_eq!(
        (free1.free_blocks, free1.free_inodes),
        (free0.free_blocks, free0.free_inodes)
    );
}
