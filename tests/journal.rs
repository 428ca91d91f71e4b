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

/// The clock both sides write (`E2FSCK_TIME`, `SOURCE_DATE_EPOCH`): the
/// dtime of released orphans and the superblock's write time.
const NOW: &str = "1700000000";

/// `e2fsck -E journal_only -y` at [`NOW`]: exit code and stdout.
fn e2fsck_journal_only_at(img: &Path) -> (i32, String) {
    let o = Command::new("e2fsck")
        .args(["-E", "journal_only", "-y"])
        .arg(img)
        .env("E2FSCK_CONFIG", "/dev/null")
        .env("E2FSCK_TIME", NOW)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// `ext3edit journal replay` at [`NOW`].
fn replay_at(img: &Path) -> std::process::Output {
    Command::new(bin())
        .args(["journal", "replay"])
        .arg(img)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .env("SOURCE_DATE_EPOCH", NOW)
        .output()
        .unwrap()
}

/// The installed e2fsck's version as (major, minor, patch).
fn e2fsck_version() -> (u32, u32, u32) {
    let o = Command::new("e2fsck").arg("-V").output().unwrap();
    let s = String::from_utf8_lossy(&o.stderr).to_string();
    let v: Vec<u32> = s
        .split_whitespace()
        .nth(1)
        .unwrap_or("0.0.0")
        .split('.')
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (v[0], *v.get(1).unwrap_or(&0), *v.get(2).unwrap_or(&0))
}

/// e2fsck before 1.47.2 leaves the orphan file's slots and orphan_present
/// as they were after `-E journal_only` (it cleared them only after a full
/// check: e2fsprogs commit db87cf4c, "e2fsck: clear the orphan_file while
/// processing it", whose message says the old way left a corrupt file
/// system). ext3edit clears them as 1.47.2 and later do.
fn e2fsck_keeps_orphan_file() -> bool {
    e2fsck_version() < (1, 47, 2)
}

/// How a corpus image's replay is expected to differ from e2fsck's.
#[derive(PartialEq)]
enum Diff {
    /// ext3edit refuses: one line, non-zero exit, image unchanged.
    Refused,
    /// Both succeed and the images are equal but for the primary
    /// superblock, where e2fsck's `check_super_block` repairs more.
    SuperblockOnly,
    /// Equal but for the extent slots past eh_entries of a truncated
    /// orphan's i_block: e2fsck leaves the removed extents' bytes there,
    /// ext3edit zeroes the unused slots (at most one inode's 48 bytes,
    /// ours zero).
    StaleExtentSlots,
    /// With e2fsck before 1.47.2 only: equal but for the superblock and
    /// the orphan file's blocks, which e2fsck leaves full (and
    /// orphan_present set) where ext3edit empties them as 1.47.2 does.
    OrphanFileEmptied,
    /// ext3edit replays, but e2fsck repairs beyond the replay (superblock
    /// checks that rewrite blocks all over the image); no comparison.
    Repairs,
}

/// Images whose replay does not match byte for byte, and why.
const DIFFERENT: &[(&str, Diff, &str)] = &[
    (
        "f_clear_orphan_file",
        Diff::OrphanFileEmptied,
        "orphan file on metadata_csum: the orphans are released as e2fsck releases them; e2fsck before 1.47.2 leaves the orphan file full and orphan_present set, ext3edit empties it as 1.47.2 does",
    ),
    (
        "f_journal",
        Diff::Repairs,
        "the journal inode (12) is damaged and is found through the superblock's backup, as e2fsck finds it, and the same 48 orphans are freed; but e2fsck then also moves the visible /journal file to the hidden inode 8 and rewrites the superblock's journal backup (check_super_block repairs, not part of a replay)",
    ),
    (
        "f_badorphan",
        Diff::SuperblockOnly,
        "the same orphans are released; e2fsck also writes the journal inode's block map into the superblock's backup (s_jnl_backup_type was 0), a check_super_block repair",
    ),
    (
        "f_orphan_extents_inode",
        Diff::StaleExtentSlots,
        "the orphan (inode 12) is cut to its size as e2fsck cuts it; e2fsck leaves the removed extents in i_block past eh_entries, ext3edit zeroes those slots",
    ),
    (
        "f_orphquot",
        Diff::Refused,
        "quota (and ext4 features): releasing the orphan would need the quota files updated",
    ),
    (
        "j_corrupt_sb_csum",
        Diff::Refused,
        "bad journal superblock checksum: e2fsck repairs it and runs a full check, ext3edit refuses",
    ),
    (
        "j_corrupt_sb_magic",
        Diff::Refused,
        "bad journal superblock magic: e2fsck repairs it and runs a full check, ext3edit refuses",
    ),
    (
        "j_recover_fast_commit",
        Diff::Refused,
        "fast-commit replay is not supported",
    ),
    ("f_ext_journal", Diff::Refused, "external journal"),
    (
        "j_ext_dumpe2fs",
        Diff::Refused,
        "an external journal device, not a filesystem",
    ),
];

/// True when the image has an orphan list (chain or orphan file) or
/// needs recovery, as our reader sees it.
fn replay_relevant(img: &Path) -> bool {
    match Filesystem::open(img, &OpenOptions::read_only()) {
        Ok(fs) => fs.needs_recovery() || fs.orphans_pending(),
        Err(_) => false,
    }
}

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
    let (mut matched, mut refused, mut untouched, mut fixups) = (0, 0, 0, Vec::new());
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let (test, file) = (f[ct], f[cf]);
        if file.contains(".tar.bz2") {
            continue; // a file system and its external journal in a tarball
        }
        let data = common::decompress(&dir.join(test).join(file));
        let a = tmp.path().join("a.img");
        let b = tmp.path().join("b.img");
        std::fs::write(&a, &data).unwrap();
        std::fs::write(&b, &data).unwrap();
        let relevant = f[cr] == "yes" || test.starts_with("j_") || replay_relevant(&b);
        let (fsck, fsck_out) = e2fsck_journal_only_at(&a);
        let o = replay_at(&b);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!err.contains("panicked"), "{test}: {err}");
        let ours = std::fs::read(&b).unwrap();
        let theirs = std::fs::read(&a).unwrap();
        let one_line_refusal = |failures: &mut Vec<String>| {
            if err.trim_end().lines().count() != 1 {
                failures.push(format!("{test}: refusal is not one line: {err}"));
            }
            if ours != data {
                failures.push(format!("{test}: image changed although ext3edit refused"));
            }
        };
        if let Some((_, kind, why)) = DIFFERENT.iter().find(|(t, _, _)| *t == test) {
            seen.push(test.to_string());
            eprintln!("{test}: expected difference ({why}): {}", err.trim());
            match kind {
                Diff::Refused => {
                    if o.status.success() {
                        failures.push(format!("{test}: expected a refusal, got: {err}"));
                    } else {
                        one_line_refusal(&mut failures);
                        refused += 1;
                    }
                }
                Diff::SuperblockOnly => {
                    if !o.status.success() {
                        failures.push(format!("{test}: ext3edit failed: {err}"));
                        continue;
                    }
                    let outside = (0..ours.len())
                        .filter(|&i| ours[i] != theirs[i] && !(1024..2048).contains(&i))
                        .take(5)
                        .collect::<Vec<_>>();
                    if !outside.is_empty() {
                        failures.push(format!(
                            "{test}: differs outside the superblock at {outside:?}"
                        ));
                    }
                }
                Diff::OrphanFileEmptied => {
                    if !o.status.success() {
                        failures.push(format!("{test}: ext3edit failed: {err}"));
                        continue;
                    }
                    let bs = ext3edit::Filesystem::open(&b, &ext3edit::OpenOptions::read_only())
                        .unwrap()
                        .block_size();
                    let orphan_blocks: Vec<u64> = common::debugfs(&b, "blocks <12>")
                        .split_whitespace()
                        .filter_map(|w| w.parse().ok())
                        .collect();
                    let outside: Vec<usize> = (0..ours.len())
                        .filter(|&i| ours[i] != theirs[i] && !(1024..2048).contains(&i))
                        .filter(|&i| {
                            !e2fsck_keeps_orphan_file()
                                || !orphan_blocks.contains(&(i as u64 / bs as u64))
                        })
                        .take(10)
                        .collect();
                    if orphan_blocks.is_empty() || !outside.is_empty() {
                        failures.push(format!(
                            "{test}: differs outside the superblock and the orphan file at {outside:?}"
                        ));
                    } else {
                        matched += 1;
                    }
                }
                Diff::StaleExtentSlots => {
                    if !o.status.success() {
                        failures.push(format!("{test}: ext3edit failed: {err}"));
                        continue;
                    }
                    let differ: Vec<usize> = (0..ours.len())
                        .filter(|&i| ours[i] != theirs[i] && !(1024..2048).contains(&i))
                        .collect();
                    if differ.len() > 48 || differ.iter().any(|&i| ours[i] != 0) {
                        failures.push(format!(
                            "{test}: differs beyond zeroed extent slots at {:?}",
                            &differ[..differ.len().min(10)]
                        ));
                    } else {
                        matched += 1;
                    }
                }
                Diff::Repairs => {
                    // The replay itself must work; e2fsck's extra repairs
                    // are not compared.
                    if !o.status.success() {
                        failures.push(format!("{test}: ext3edit failed: {err}"));
                    }
                }
            }
            continue;
        }
        if !relevant {
            // Neither a replay nor orphans: nothing to do, nothing written.
            // e2fsck -E journal_only may still repair the superblock here
            // (check_super_block: a missing UUID, the journal backup, ...),
            // which a replay does not do.
            if o.status.success() && !err.contains("nothing to do") {
                failures.push(format!("{test}: expected nothing to do, got: {err}"));
            }
            if !o.status.success() {
                one_line_refusal(&mut failures);
            }
            if ours != data {
                failures.push(format!("{test}: image changed with nothing to replay"));
            }
            if theirs != data {
                fixups.push(test.to_string());
            }
            untouched += 1;
            continue;
        }
        if fsck >= 4 || fsck_out.contains("Pass 1") {
            failures.push(format!(
                "{test}: e2fsck -E journal_only went on to a full check (exit {fsck}); name the difference in DIFFERENT"
            ));
            continue;
        }
        if !o.status.success() {
            failures.push(format!("{test}: ext3edit journal replay failed: {err}"));
            continue;
        }
        match same_except_sb_times(&theirs, &ours) {
            Ok(()) => matched += 1,
            Err(e) => failures.push(format!("{test}: {e}")),
        }
    }
    for (t, _, _) in DIFFERENT {
        if !seen.iter().any(|s| s == t) {
            failures.push(format!("{t}: listed in DIFFERENT but not in the corpus"));
        }
    }
    eprintln!(
        "replay matched e2fsck on {matched} images; {refused} refused as documented; {untouched} had nothing to replay (e2fsck's superblock checks changed {} of them: {})",
        fixups.len(),
        fixups.join(" ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(matched >= 15, "only {matched} images compared");
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

// ---------------------------------------------------------------------
// Orphans and a damaged journal inode, on images crafted with mke2fs and
// debugfs, compared with what `e2fsck -E journal_only` makes of a copy.

/// Run debugfs -w with these commands (one per line).
fn debugfs_w(img: &Path, cmds: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cmds");
    std::fs::write(&f, cmds.join("\n") + "\n").unwrap();
    let o = Command::new("debugfs")
        .args(["-w", "-f"])
        .arg(&f)
        .arg(img)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The inode number of `path`.
fn ino_of(img: &Path, path: &str) -> u32 {
    let s = debugfs(img, &format!("stat {path}"));
    s.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no inode for {path}: {s}"))
}

/// A fresh image (`fstype`, `block`-byte blocks, mke2fs options `opts`)
/// holding /f1 (50,000 bytes), /f2 (70,000 bytes, indirect blocks with
/// 1 KiB blocks), /f3 and the directory /dd. Returns (dir, image, f2).
fn files_image(fstype: &str, block: u32, opts: &[&str]) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("o.img");
    let o = Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            fstype,
            "-b",
            &block.to_string(),
            "-I",
            "256",
        ])
        .args(opts)
        .arg(&img)
        .arg("8M")
        .env("E2FSPROGS_FAKE_TIME", NOW)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f2 = pseudo_random(70_000, 2);
    for (name, data) in [
        ("f1", pseudo_random(50_000, 1)),
        ("f2", f2.clone()),
        ("f3", pseudo_random(3000, 3)),
    ] {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    let d = dir.path().display();
    debugfs_w(
        &img,
        &[
            format!("write {d}/f1 f1"),
            format!("write {d}/f2 f2"),
            format!("write {d}/f3 f3"),
            "mkdir dd".into(),
        ],
    );
    (dir, img, f2)
}

/// Leave a committed, unreplayed transaction in the journal (debugfs
/// journal_write of one block of zeros onto the last, free, block), so
/// that the image needs recovery.
fn dirty_journal(img: &Path) {
    let last = read_sb(img).blocks - 1;
    assert!(debugfs(img, &format!("testb {last}")).contains("not in use"));
    debugfs_w(
        img,
        &["jo".into(), format!("jw -b {last} /dev/zero"), "jc".into()],
    );
    assert!(Filesystem::open(img, &OpenOptions::read_only())
        .unwrap()
        .needs_recovery());
}

/// Put /f1 (deleted), /dd (a deleted directory) and /f2 (being truncated
/// to 5,000 bytes) on the ext3 orphan chain: s_last_orphan -> f1 -> dd ->
/// f2, through i_dtime. Returns their inode numbers.
fn make_orphan_chain(img: &Path) -> (u32, u32, u32) {
    let (f1, dd, f2) = (ino_of(img, "/f1"), ino_of(img, "/dd"), ino_of(img, "/f2"));
    let root_links = 2 + 1; // ".", lost+found's ".." (dd's ".." goes)
    debugfs_w(
        img,
        &[
            "unlink f1".into(),
            format!("sif <{f1}> links_count 0"),
            format!("sif <{f1}> dtime {dd}"),
            "unlink dd".into(),
            format!("sif <{dd}> links_count 0"),
            format!("sif <{dd}> dtime {f2}"),
            format!("sif <2> links_count {root_links}"),
            format!("sif <{f2}> size 5000"),
            format!("ssv last_orphan {f1}"),
        ],
    );
    (f1, dd, f2)
}

/// Replay a copy with e2fsck and the image with ext3edit; returns
/// (e2fsck's image, ext3edit's stderr).
fn both_replay(img: &Path) -> (PathBuf, String) {
    let theirs = img.with_extension("e2fsck.img");
    std::fs::copy(img, &theirs).unwrap();
    let (code, out) = e2fsck_journal_only_at(&theirs);
    assert!(code < 4 && !out.contains("Pass 1"), "e2fsck: {code} {out}");
    let o = replay_at(img);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    (theirs, err)
}

/// f1 and dd are free (but for `reused`, which a later write may have
/// taken), f2 holds its first 5,000 bytes, and the orphan list is empty.
fn assert_released(img: &Path, f1: u32, dd: u32, reused: Option<u32>, f2_data: &[u8]) {
    for i in [f1, dd].into_iter().filter(|i| Some(*i) != reused) {
        let s = debugfs(img, &format!("testi <{i}>"));
        assert!(s.contains("not in use"), "inode {i}: {s}");
    }
    assert_eq!(debugfs_cat(img, "/f2"), f2_data[..5000].to_vec());
    let sb = ext3edit::Filesystem::open(img, &OpenOptions::read_only()).unwrap();
    assert_eq!(sb.superblock().last_orphan(), 0);
    assert!(!sb.orphans_pending());
}

#[test]
fn replay_releases_the_orphan_chain_as_e2fsck_does() {
    require_e2fsprogs!();
    for (fstype, block, dirty, opts) in [
        ("ext3", 1024, true, &[][..]),
        ("ext3", 4096, true, &[]),
        ("ext3", 1024, false, &[]),
        ("ext2", 1024, false, &[]),
        ("ext3", 1024, true, &["-O", "extent"]),
    ] {
        let (_d, img, f2_data) = files_image(fstype, block, opts);
        let extents = !opts.is_empty();
        let (f1, dd, f2) = make_orphan_chain(&img);
        if dirty {
            dirty_journal(&img);
        }
        let (theirs, err) = both_replay(&img);
        let what = format!("{fstype} {block} dirty={dirty} {opts:?}");
        assert!(
            err.contains(&format!("freed orphan inodes {f1}, {dd}"))
                && err.contains(&format!("truncated orphan inode {f2}")),
            "{what}: {err}"
        );
        let mut e2 = bytes(&theirs);
        if extents {
            // e2fsck leaves the bytes of the extents it removes in i_block
            // past eh_entries; ext3edit zeroes the unused slots.
            let at = i_blocks_range(&img, f2).start - 0x1C + 0x28;
            let entries = u16::from_le_bytes([e2[at + 2], e2[at + 3]]) as usize;
            e2[at + 12 + 12 * entries..at + 60].fill(0);
        }
        same_except_sb_times(&e2, &bytes(&img)).unwrap_or_else(|e| panic!("{what}: {e}"));
        fsck_clean(&img);
        assert_released(&img, f1, dd, None, &f2_data);
        let _ = f2;
    }
}

#[test]
fn orphan_file_is_released_and_emptied() {
    require_e2fsprogs!();
    let (_d, img, f2_data) = files_image("ext3", 1024, &["-O", "orphan_file"]);
    let (f1, f2) = (ino_of(&img, "/f1"), ino_of(&img, "/f2"));
    debugfs_w(
        &img,
        &[
            "unlink f1".into(),
            format!("sif <{f1}> links_count 0"),
            format!("sif <{f2}> size 5000"),
            "feature orphan_present".into(),
        ],
    );
    // f1 in slot 0 of the orphan file's block 0, f2 in slot 5 of block 1.
    let oino = ext3edit::Filesystem::open(&img, &OpenOptions::read_only())
        .unwrap()
        .superblock()
        .orphan_file_inum();
    let blk = |n: u32| -> u64 {
        debugfs(&img, &format!("bmap <{oino}> {n}"))
            .trim()
            .parse()
            .unwrap()
    };
    let (b0, b1) = (blk(0), blk(1));
    let mut raw = bytes(&img);
    raw[b0 as usize * 1024..][..4].copy_from_slice(&f1.to_le_bytes());
    raw[b1 as usize * 1024 + 20..][..4].copy_from_slice(&f2.to_le_bytes());
    std::fs::write(&img, &raw).unwrap();
    dirty_journal(&img);
    let (theirs, err) = both_replay(&img);
    assert!(
        err.contains(&format!("freed orphan inode {f1}"))
            && err.contains(&format!("truncated orphan inode {f2}")),
        "{err}"
    );
    let (ours, e2) = (bytes(&img), bytes(&theirs));
    if e2fsck_keeps_orphan_file() {
        // Old e2fsck leaves the slots and orphan_present (see
        // e2fsck_keeps_orphan_file): equal everywhere else.
        let slot = |b: u64, o: usize| b as usize * 1024 + o..b as usize * 1024 + o + 4;
        let allowed =
            |i: usize| slot(b0, 0).contains(&i) || slot(b1, 20).contains(&i) || i == 1024 + 0x66;
        let mut a = ours.clone();
        for (i, byte) in a.iter_mut().enumerate() {
            if allowed(i) {
                *byte = e2[i];
            }
        }
        same_except_sb_times(&e2, &a).unwrap();
    } else {
        same_except_sb_times(&e2, &ours).unwrap();
    }
    assert_eq!(&ours[b0 as usize * 1024..][..4], &[0; 4]);
    assert_eq!(&ours[b1 as usize * 1024 + 20..][..4], &[0; 4]);
    fsck_clean(&img);
    let s = debugfs(&img, &format!("testi <{f1}>"));
    assert!(s.contains("not in use"), "{s}");
    assert_eq!(debugfs_cat(&img, "/f2"), f2_data[..5000].to_vec());
    assert!(!common::debugfs(&img, "stats").contains("orphan_present"));
}

#[test]
fn write_open_releases_pending_orphans_first() {
    require_e2fsprogs!();
    for (fstype, dirty) in [("ext3", false), ("ext2", false), ("ext3", true)] {
        let (_d, img, f2_data) = files_image(fstype, 1024, &[]);
        let (f1, dd, f2) = make_orphan_chain(&img);
        if dirty {
            dirty_journal(&img);
        }
        let o = run(&["mkdir", img.to_str().unwrap(), "/new"], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("orphan list was pending"), "{err}");
        assert_eq!(
            err.contains("replaying it into the image first"),
            dirty,
            "{err}"
        );
        fsck_clean(&img);
        let new = ino_of(&img, "/new");
        assert!(new != f2);
        assert_released(&img, f1, dd, Some(new), &f2_data);
    }
}

#[test]
fn a_broken_orphan_chain_is_refused_untouched() {
    require_e2fsprogs!();
    let (_d, img, _) = files_image("ext3", 1024, &[]);
    let (_, dd, _) = make_orphan_chain(&img);
    // dd now names an inode past the end of the inode table as the next.
    debugfs_w(&img, &[format!("sif <{dd}> dtime @999999")]);
    dirty_journal(&img);
    let before = bytes(&img);
    for args in [
        vec!["journal", "replay", img.to_str().unwrap()],
        vec!["mkdir", img.to_str().unwrap(), "/x"],
    ] {
        let o = run(&args, None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("inode {dd} names inode 999999")),
            "{err}"
        );
        assert!(bytes(&img) == before, "{args:?} changed the image");
    }
}

/// Byte range of inode `ino`'s i_blocks (lo) field in the image.
fn i_blocks_range(img: &Path, ino: u32) -> std::ops::Range<usize> {
    // "Inode 8 is part of block group 0\n\tlocated at block 36, offset 0x0700"
    let s = debugfs(img, &format!("imap <{ino}>"));
    let blk: usize = s
        .split("located at block ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("imap: {s}"));
    let off = usize::from_str_radix(s.split("offset 0x").nth(1).unwrap().trim(), 16).unwrap();
    let bs = ext3edit::Filesystem::open(img, &OpenOptions::read_only())
        .unwrap()
        .block_size();
    let at = blk * bs + off + 0x1C;
    at..at + 4
}

#[test]
fn damaged_journal_inode_is_replayed_from_the_superblock_backup() {
    require_e2fsprogs!();
    // Our own crash images (whose transaction may log the inode table
    // block of the journal inode, which the replay then restores), and a
    // one-block debugfs transaction that leaves the rebuilt inode in place.
    for (block, ours_crash) in [(1024, true), (4096, true), (1024, false), (4096, false)] {
        let (_d, img, content) = if ours_crash {
            let (d, img, content) = dirty_image(block);
            (d, img, Some(content))
        } else {
            let (d, img, _) = files_image("ext3", block, &[]);
            dirty_journal(&img);
            (d, img, None)
        };
        debugfs_w(&img, &["clri <8>".into()]);
        let info = run(&["journal", "info", img.to_str().unwrap(), "--json"], None);
        let j: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(j["from_superblock_backup"], true, "{j}");
        assert_eq!(j["state"], "needs recovery");
        let range = i_blocks_range(&img, 8);
        let (theirs, err) = both_replay(&img);
        assert!(err.contains("replayed 1 transaction"), "{err}");
        let (ours, mut e2) = (bytes(&img), bytes(&theirs));
        if e2[range.clone()] == [0; 4] {
            // e2fsck rebuilds the journal inode with i_blocks 0 (which its
            // own full check then calls wrong); ext3edit counts the blocks.
            assert_ne!(&ours[range.clone()], &[0; 4]);
            e2[range.clone()].copy_from_slice(&ours[range.clone()]);
        }
        same_except_sb_times(&e2, &ours).unwrap_or_else(|e| panic!("{block} {ours_crash}: {e}"));
        if ours_crash {
            fsck_clean(&img);
        } else {
            // debugfs's transaction changes bitmaps without the
            // superblock's free counts (the kernel keeps those loosely
            // too); a replay leaves them so, e2fsck's as ours.
            common::fsck_clean_except(
                &img,
                &["Free blocks count wrong (", "Free inodes count wrong ("],
            );
        }
        if let Some(content) = content {
            assert_eq!(view(&img).read("/new").unwrap(), content);
        }
        // The journal works again: a write goes through it.
        ok(&img, "mkdir", &["/after"]);
        fsck_clean(&img);
    }
}

#[test]
fn a_damaged_journal_inode_refuses_writes_until_e2fsck() {
    require_e2fsprogs!();
    let (_d, img, _) = files_image("ext3", 1024, &[]);
    debugfs_w(&img, &["clri <8>".into()]);
    let before = bytes(&img);
    let o = run(&["mkdir", img.to_str().unwrap(), "/x"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("journal inode 8 is damaged"), "{err}");
    assert!(bytes(&img) == before);
}

#[test]
fn on_a_file_system_with_errors_the_orphan_list_is_only_cleared() {
    require_e2fsprogs!();
    let (_d, img, _) = files_image("ext3", 1024, &[]);
    let (f1, _, _) = make_orphan_chain(&img);
    debugfs_w(&img, &["ssv state 3".into()]); // valid + errors
    let (theirs, err) = both_replay(&img);
    assert!(err.contains("marked with errors"), "{err}");
    same_except_sb_times(&bytes(&theirs), &bytes(&img)).unwrap();
    let fs = Filesystem::open(&img, &OpenOptions::read_only()).unwrap();
    assert_eq!(fs.superblock().last_orphan(), 0);
    // Nothing released: the inode is still in use, for e2fsck -f to judge.
    assert!(debugfs(&img, &format!("testi <{f1}>")).contains("marked in use"));
}
