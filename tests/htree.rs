//! The htree (dir_index) index grows as the kernel's does (issue 14): a
//! one-block directory that fills becomes indexed, full leaves split by
//! hash, full index nodes split and the root gains a level (two levels of
//! index; three with large_dir), and past the maximum adding fails with
//! NoSpace instead of dropping the index. After every kind of split,
//! lookups and removals stay right; e2fsck (which checks every leaf's hash
//! range with its own hash code) passes and debugfs lists every name.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::*;
use ext3edit::{Error, Filesystem, Ino, NewFile, OpenOptions};

fn ext3(block: u32, size_kib: u64) -> Img {
    mkfs(&Cfg {
        fstype: "ext3",
        block,
        inode: 256,
        dir_index: true,
        size_kib,
    })
}

fn tool(cmd: &str, args: &[&str], img: &Path) {
    let out = Command::new(cmd).args(args).arg(img).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The root of the index of `path`: (hash version, indirect levels, root
/// count), from debugfs.
fn htree_root(img: &Path, path: &str) -> (u32, u32, u32) {
    let dump = debugfs(img, &format!("htree_dump {path}"));
    let field = |key: &str| -> u32 {
        dump.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| {
                panic!(
                    "no {key:?} in htree_dump of {path}:\n{}",
                    &dump[..dump.len().min(2000)]
                )
            })
            .trim()
            .parse()
            .unwrap()
    };
    (
        field("Hash Version:"),
        field("Indirect levels:"),
        field("Number of entries (count):"),
    )
}

/// The names debugfs `ls` sees in `path` (one per line with -p).
fn debugfs_names(img: &Path, path: &str) -> BTreeSet<String> {
    debugfs(img, &format!("ls -p {path}"))
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect()
}

/// A temporary host directory, in memory (/dev/shm) where there is one:
/// 200,000 files are made and removed there much faster than on a disk.
fn host_tmp() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::Builder::new().tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().unwrap()
}

fn open_rw(img: &Path) -> Filesystem {
    Filesystem::open(img, &OpenOptions::read_write()).unwrap()
}

/// Every name of `names` is found in `dir` (and names the inode given),
/// every one of `gone` is not.
fn check_lookups(fs: &Filesystem, dir: Ino, names: &[(String, Ino)], gone: &[String], when: &str) {
    let d = fs.read_inode(dir).unwrap();
    for (n, ino) in names {
        match fs.lookup(&d, n.as_bytes()).unwrap() {
            Some(e) => assert_eq!(e.ino, *ino, "{when}: {n} names another inode"),
            None => panic!("{when}: {n} not found"),
        }
    }
    for n in gone {
        assert!(
            fs.lookup(&d, n.as_bytes()).unwrap().is_none(),
            "{when}: removed {n} still found"
        );
    }
}

fn name(i: usize) -> String {
    // Some names with bytes >= 0x80, which hash differently with signed
    // and unsigned chars.
    if i % 7 == 3 {
        format!("fichier-é-avec-un-nom-plus-long-{i:05}")
    } else {
        format!("entry-with-a-longer-name-{i:05}")
    }
}

/// Fill /d with `n` empty files through the library, checking lookups of
/// every name after each split (the directory growing by a block), then
/// remove every third name and check again. Returns the names kept.
fn fill_split_remove(img: &Path, n: usize) -> Vec<(String, Ino)> {
    let mut fs = open_rw(img);
    let root = fs.root();
    let d = fs.mkdir(root, b"d", &NewFile::default()).unwrap();
    let mut names: Vec<(String, Ino)> = Vec::new();
    let mut size = fs.read_inode(d).unwrap().size();
    let mut splits = 0;
    for i in 0..n {
        let nm = name(i);
        let ino = fs
            .create_file_from_vec(d, nm.as_bytes(), &NewFile::default(), vec![])
            .unwrap();
        names.push((nm, ino));
        let s = fs.read_inode(d).unwrap().size();
        if s != size {
            size = s;
            splits += 1;
            check_lookups(
                &fs,
                d,
                &names,
                &[],
                &format!("after split {splits} ({i} names)"),
            );
        }
    }
    assert!(splits > 10, "only {splits} splits");
    fs.commit().unwrap();
    drop(fs);
    fsck_clean(img);
    let want: BTreeSet<String> = names.iter().map(|n| n.0.clone()).collect();
    assert_eq!(debugfs_names(img, "/d"), want);

    // Removals after the splits.
    let mut fs = open_rw(img);
    let mut kept = Vec::new();
    let mut gone = Vec::new();
    for (i, (nm, ino)) in names.into_iter().enumerate() {
        if i % 3 == 0 {
            fs.unlink(d, nm.as_bytes()).unwrap();
            gone.push(nm);
        } else {
            kept.push((nm, ino));
        }
    }
    check_lookups(&fs, d, &kept, &gone, "after removals");
    fs.commit().unwrap();
    drop(fs);
    fsck_clean(img);
    let want: BTreeSet<String> = kept.iter().map(|n| n.0.clone()).collect();
    assert_eq!(debugfs_names(img, "/d"), want);
    kept
}

#[test]
fn a_directory_filled_through_leaf_and_index_splits_stays_valid() {
    require_e2fsprogs!();
    // 1 KiB blocks: the root holds 124 leaves, so 4,000 names need a
    // second level of index (and split its nodes); 4 KiB blocks: one
    // level, hundreds of leaf splits.
    for (block, n, levels) in [(1024u32, 4000usize, 1u32), (4096, 4000, 0)] {
        let img = ext3(block, 32 * 1024);
        let kept = fill_split_remove(&img.path, n);
        let (hv, lv, count) = htree_root(&img.path, "/d");
        assert_eq!((hv, lv), (1, levels), "{block}: hash version, levels");
        assert!(count > 1, "{block}: root count {count}");
        // The space of the removed names is used again; the tree still
        // reads right.
        let mut fs = open_rw(&img.path);
        let d = fs.resolve("/d", true).unwrap();
        let mut all = kept.clone();
        for i in n..n + n / 3 {
            let nm = name(i);
            let ino = fs
                .create_file_from_vec(d, nm.as_bytes(), &NewFile::default(), vec![])
                .unwrap();
            all.push((nm, ino));
        }
        check_lookups(&fs, d, &all, &[], "after adding again");
        fs.commit().unwrap();
        drop(fs);
        fsck_clean(&img.path);
        assert_eq!(debugfs_names(&img.path, "/d").len(), all.len());
    }
}

#[test]
fn every_hash_version_signed_and_unsigned() {
    require_e2fsprogs!();
    for (alg, code) in [("legacy", 0u32), ("half_md4", 1), ("tea", 2)] {
        for unsigned in [false, true] {
            let img = ext3(1024, 16 * 1024);
            tool("tune2fs", &["-E", &format!("hash_alg={alg}")], &img.path);
            let flags = if unsigned {
                "ssv flags 2"
            } else {
                "ssv flags 1"
            };
            tool("debugfs", &["-w", "-R", flags], &img.path);
            // The index is made by ext3edit (the directory fills its first
            // block) with the superblock's hash, so e2fsck's check of every
            // leaf's hash range checks the hash, its signedness and seed.
            let mut fs = open_rw(&img.path);
            let root = fs.root();
            let d = fs.mkdir(root, b"d", &NewFile::default()).unwrap();
            let mut names = Vec::new();
            for i in 0..3000 {
                let nm = name(i);
                let ino = fs
                    .create_file_from_vec(d, nm.as_bytes(), &NewFile::default(), vec![])
                    .unwrap();
                names.push((nm, ino));
            }
            check_lookups(&fs, d, &names, &[], &format!("{alg} unsigned={unsigned}"));
            fs.commit().unwrap();
            drop(fs);
            fsck_clean(&img.path);
            let (hv, lv, _) = htree_root(&img.path, "/d");
            assert_eq!(hv, code, "{alg}: hash version of the new index");
            assert_eq!(lv, 1, "{alg}: levels");
            assert_eq!(debugfs_names(&img.path, "/d").len(), 3000);
        }
    }
}

#[test]
fn put_r_gives_a_two_level_index_on_1k_blocks() {
    require_e2fsprogs!();
    // The fast one: 6,000 names on 1 KiB blocks need two levels.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big");
    std::fs::create_dir(&src).unwrap();
    for i in 0..6000 {
        std::fs::File::create(src.join(format!("file-{i:06}"))).unwrap();
    }
    let img = ext3(1024, 32 * 1024);
    ok(&img.path, "put", &[src.to_str().unwrap(), "/big", "-r"]);
    fsck_clean(&img.path);
    let (_, levels, count) = htree_root(&img.path, "/big");
    assert_eq!(levels, 1);
    assert!(count >= 2, "root count {count}");
    assert_eq!(debugfs_names(&img.path, "/big").len(), 6000);
    // Lookups through the index from the command line, and a removal.
    let out = ok(&img.path, "ls", &["/big/file-004321"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("file-004321"));
    ok(&img.path, "rm", &["/big/file-000777"]);
    fsck_clean(&img.path);
    let names = debugfs_names(&img.path, "/big");
    assert_eq!(names.len(), 5999);
    assert!(!names.contains("file-000777"));
}

#[test]
fn put_r_of_200000_entries_gives_two_index_levels() {
    require_e2fsprogs!();
    let tmp = host_tmp();
    let src = tmp.path().join("big");
    std::fs::create_dir(&src).unwrap();
    for i in 0..200_000 {
        std::fs::File::create(src.join(format!("f{i:07}"))).unwrap();
    }
    // ext3, and ext4 as mke2fs makes it (metadata_csum: dirent tails,
    // dx_tail, extent-mapped directory).
    for fstype in ["ext3", "ext4"] {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("big.img");
        let out = Command::new("mke2fs")
            .args([
                "-q", "-F", "-t", fstype, "-b", "1024", "-I", "128", "-N", "210000",
            ])
            .args([
                "-O",
                "dir_index",
                "-E",
                "hash_seed=5b7c1e3a-2f4d-4e6a-9b8c-abcdef012345",
            ])
            .arg(&img)
            .arg("320M")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let t = std::time::Instant::now();
        ok(&img, "put", &[src.to_str().unwrap(), "/big", "-r"]);
        let took = t.elapsed();
        fsck_clean(&img);
        let (_, levels, count) = htree_root(&img, "/big");
        assert_eq!(levels, 1, "{fstype}");
        assert!(count >= 2, "{fstype}: root count {count}");
        assert_eq!(debugfs_names(&img, "/big").len(), 200_000, "{fstype}");
        eprintln!("put -r of 200,000 entries ({fstype}, 1 KiB blocks): {took:?}");
    }
}

/// Names of 250 bytes: three to a 1 KiB leaf, so that a few tens of
/// thousands fill two levels of index.
fn long_name(i: usize) -> String {
    format!("{i:06}-{}", "x".repeat(243))
}

/// Add hard links to one file into /d until adding fails or `max` names
/// are in; returns how many went in and the error that stopped it.
/// Commits every 1,000 names. On an error the handle is dropped, and the
/// names since the last commit are added again one by one to find exactly
/// how many fit, which are then committed.
fn fill_with_links(img: &Path, max: usize) -> (usize, Option<Error>) {
    let mut fs = open_rw(img);
    let root = fs.root();
    let f = fs
        .create_file_from_vec(root, b"target", &NewFile::default(), vec![])
        .unwrap();
    let d = fs.mkdir(root, b"d", &NewFile::default()).unwrap();
    fs.commit().unwrap();
    let mut committed = 0;
    let mut i = 0;
    while i < max {
        match fs.link(f, d, long_name(i).as_bytes()) {
            Ok(()) => i += 1,
            Err(e) => {
                drop(fs);
                // Find exactly where it stops.
                let mut fs = open_rw(img);
                let mut k = committed;
                let err = loop {
                    match fs.link(f, d, long_name(k).as_bytes()) {
                        Ok(()) => k += 1,
                        Err(e) => break e,
                    }
                };
                drop(fs);
                assert_eq!(err.to_string(), e.to_string());
                let mut fs = open_rw(img);
                for j in committed..k {
                    fs.link(f, d, long_name(j).as_bytes()).unwrap();
                }
                fs.commit().unwrap();
                return (k, Some(err));
            }
        }
        if i % 1000 == 0 {
            fs.commit().unwrap();
            committed = i;
        }
    }
    fs.commit().unwrap();
    (i, None)
}

#[test]
fn a_full_two_level_index_is_no_space_and_large_dir_gives_a_third() {
    require_e2fsprogs!();
    // Without large_dir: two levels at most, then NoSpace, nothing changed.
    let img = ext3(1024, 48 * 1024);
    let (n, err) = fill_with_links(&img.path, 60_000);
    let err = err.expect("the index never filled");
    let msg = err.to_string();
    assert!(matches!(err, Error::NoSpace(_)), "{msg}");
    assert!(msg.contains("the htree index is full"), "{msg}");
    assert!(msg.contains("directory inode"), "{msg}");
    // At least a name for each of the 124 x 127 leaves.
    assert!(n > 124 * 127, "only {n} names");
    fsck_clean(&img.path);
    let (_, levels, count) = htree_root(&img.path, "/d");
    assert_eq!((levels, count), (1, 124));
    // The command line says it in one line and leaves the image as it was.
    let before = bytes(&img.path);
    let host = img.dir.path().join("one");
    std::fs::write(&host, b"1").unwrap();
    let target = format!("/d/{}", long_name(n));
    let out = fails(&img.path, "put", &[host.to_str().unwrap(), &target], 1);
    assert!(out.contains("the htree index is full"), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(bytes(&img.path) == before, "a failed put changed the image");
    // Lookups through the full index and a removal still work.
    let mut fs = open_rw(&img.path);
    let d = fs.resolve("/d", true).unwrap();
    let di = fs.read_inode(d).unwrap();
    for i in (0..n).step_by(97) {
        assert!(
            fs.lookup(&di, long_name(i).as_bytes()).unwrap().is_some(),
            "{i}"
        );
    }
    fs.unlink(d, long_name(5).as_bytes()).unwrap();
    fs.commit().unwrap();
    drop(fs);
    fsck_clean(&img.path);

    // With large_dir the same names go on into a third level.
    let img = ext3(1024, 48 * 1024);
    tool("tune2fs", &["-O", "large_dir"], &img.path);
    let (m, err) = fill_with_links(&img.path, n + 2000);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(m, n + 2000);
    fsck_clean(&img.path);
    let (_, levels, count) = htree_root(&img.path, "/d");
    assert_eq!(levels, 2);
    assert!(count >= 1);
    let names = debugfs_names(&img.path, "/d");
    assert_eq!(names.len(), m);
    let fs = Filesystem::open(&img.path, &OpenOptions::read_only()).unwrap();
    let d = fs.resolve("/d", true).unwrap();
    let di = fs.read_inode(d).unwrap();
    for i in 0..m {
        assert!(
            fs.lookup(&di, long_name(i).as_bytes()).unwrap().is_some(),
            "{i}"
        );
    }
}

/// ext4 as mke2fs makes it (extents, metadata_csum, 64bit, flex_bg...),
/// also with large_dir: the index made and grown by `put -r` carries its
/// checksums (e2fsck checks every dirent tail and dx_tail), reads back
/// with debugfs, and takes a removal.
#[test]
fn ext4_with_metadata_csum_grows_the_index() {
    require_e2fsprogs!();
    let tmp = host_tmp();
    let src = tmp.path().join("big");
    std::fs::create_dir(&src).unwrap();
    for i in 0..6000 {
        std::fs::File::create(src.join(format!("file-{i:06}"))).unwrap();
    }
    for (block, extra, levels) in [
        ("1024", "^large_dir", 1u32),
        ("1024", "large_dir", 1),
        ("4096", "^large_dir", 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("e4.img");
        let out = Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-b", block, "-O", extra])
            .arg(&img)
            .arg("64M")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        ok(&img, "put", &[src.to_str().unwrap(), "/big", "-r"]);
        fsck_clean(&img);
        let (_, lv, count) = htree_root(&img, "/big");
        assert_eq!(lv, levels, "{block} {extra}");
        assert!(count >= 2, "{block} {extra}: root count {count}");
        assert_eq!(debugfs_names(&img, "/big").len(), 6000);
        ok(&img, "rm", &["/big/file-000777"]);
        fsck_clean(&img);
        let out = ok(&img, "ls", &["/big/file-005999"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("file-005999"));
        assert_eq!(debugfs_names(&img, "/big").len(), 5999);
    }
}
