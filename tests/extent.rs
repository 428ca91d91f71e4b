//! Writing extent-mapped files (issue 14, "Extent trees"): images from
//! `mke2fs -t ext3 -O extent`, 1 KiB and 4 KiB blocks, 128- and 256-byte
//! inodes. After every write `e2fsck -fn` is clean, and what was written
//! reads back byte for byte through debugfs and the ext4-view crate.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ext3edit::layout::iflag;
use ext3edit::{Filesystem, NewFile, OpenOptions};

struct Img {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bs: u64,
}

/// `mke2fs -t ext3 -O extent` (plus `extra` options), reproducibly.
fn mkfs_ext(block: u32, inode: u32, size_kib: u64, extra: &[&str]) -> Img {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("ext-b{block}-i{inode}.img"));
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-O", "extent"])
        .args(["-b", &block.to_string(), "-I", &inode.to_string()])
        .args([
            "-U",
            "d9b0c4a0-3a2b-4c1d-8e5f-0123456789ab",
            "-E",
            "hash_seed=5b7c1e3a-2f4d-4e6a-9b8c-abcdef012345",
        ])
        .args(extra)
        .arg(&path)
        .arg(format!("{size_kib}k"))
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .expect("run mke2fs");
    assert!(
        out.status.success(),
        "mke2fs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Img {
        _dir: dir,
        path,
        bs: block as u64,
    }
}

/// e2fsck -fn clean, with nothing said about the extent trees either
/// (e2fsck reports a tree that "could be shorter/narrower" without failing).
fn fsck(img: &Path) {
    common::fsck_clean(img);
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        !so.contains("could be") && !so.contains("IGNORED"),
        "e2fsck remarks:\n{so}"
    );
}

fn inode_flags(img: &Path, path: &str) -> u32 {
    let fs = Filesystem::open(img, &OpenOptions::read_only()).unwrap();
    let ino = fs.resolve(path, false).unwrap();
    fs.read_inode(ino).unwrap().flags()
}

fn depth(img: &Path, path: &str) -> u16 {
    let fs = Filesystem::open(img, &OpenOptions::read_only()).unwrap();
    let ino = fs.resolve(path, false).unwrap();
    fs.extent_depth(&fs.read_inode(ino).unwrap()).unwrap()
}

/// The tree depth and number of leaf extents as debugfs `ex` lists them.
fn debugfs_extents(img: &Path, path: &str) -> (u16, usize) {
    let out = common::debugfs(img, &format!("ex {path}"));
    let mut max_depth = 0;
    let mut leaves = 0;
    for l in out.lines().skip(1) {
        // " 1/ 2   1/  4     0 -  8191  1234 - ... "
        let t = l.trim_start();
        let Some((lv, rest)) = t.split_once('/') else {
            continue;
        };
        let (Ok(lv), Some(md)) = (lv.trim().parse::<u16>(), rest.split_whitespace().next()) else {
            continue;
        };
        let md: u16 = md.parse().unwrap();
        max_depth = max_depth.max(md);
        if lv == md {
            leaves += 1;
        }
    }
    (max_depth, leaves)
}

fn put(img: &Path, data: &[u8], path: &str) {
    let host = img.with_extension("src");
    std::fs::write(&host, data).unwrap();
    common::ok(img, "put", &[host.to_str().unwrap(), path]);
}

/// Read back three ways: debugfs cat, debugfs dump, ext4-view; and ours.
fn read_back(img: &Path, path: &str, want: &[u8]) {
    let cat = common::debugfs_cat(img, path);
    assert!(
        cat == want,
        "debugfs cat {path}: {} vs {} bytes",
        cat.len(),
        want.len()
    );
    let dumped = img.with_extension("dump");
    common::debugfs(img, &format!("dump {path} {}", dumped.display()));
    assert!(
        std::fs::read(&dumped).unwrap() == want,
        "debugfs dump {path}"
    );
    let v = common::view(img).read(path).unwrap();
    assert!(
        v == want,
        "ext4-view {path}: {} vs {} bytes",
        v.len(),
        want.len()
    );
    let out = common::ok(img, "get", &[path, "-"]);
    assert!(out.stdout == want, "ext3edit get {path}");
}

fn configs() -> Vec<(u32, u32)> {
    vec![(1024, 128), (1024, 256), (4096, 128), (4096, 256)]
}

#[test]
fn put_get_many_sizes_and_sparse_files() {
    require_e2fsprogs!();
    for (block, inode) in configs() {
        let img = mkfs_ext(block, inode, 32 * 1024, &[]);
        let bs = img.bs as usize;
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, n) in [
            0,
            1,
            bs - 1,
            bs,
            bs + 1,
            12 * bs,
            13 * bs + 5,
            100_000,
            1 << 20,
        ]
        .into_iter()
        .enumerate()
        {
            cases.push((format!("/s{i}"), common::pseudo_random(n, i as u64 + 1)));
        }
        // Sparse: a hole first, in the middle, zeros at the end.
        let mut sp = vec![0u8; 40 * bs];
        sp[3 * bs..5 * bs].copy_from_slice(&common::pseudo_random(2 * bs, 7));
        sp[20 * bs + 9] = 1;
        cases.push(("/sparse1".into(), sp));
        // Every other block a hole: one extent per data block.
        let mut alt = vec![0u8; 64 * bs];
        for k in (0..64).step_by(2) {
            alt[k * bs..(k + 1) * bs].copy_from_slice(&common::pseudo_random(bs, k as u64));
        }
        cases.push(("/sparse2".into(), alt));
        cases.push(("/zeros".into(), vec![0u8; 10 * bs + 3]));
        for (path, data) in &cases {
            put(&img.path, data, path);
            fsck(&img.path);
            assert!(
                inode_flags(&img.path, path) & iflag::EXTENTS != 0,
                "{path} should be extent-mapped"
            );
        }
        for (path, data) in &cases {
            read_back(&img.path, path, data);
        }
        // Holes stay holes: the zero file maps nothing, the alternating one
        // has exactly 32 extents.
        let st = common::debugfs(&img.path, "stat /zeros");
        assert!(st.contains("Blockcount: 0"), "{st}");
        assert_eq!(debugfs_extents(&img.path, "/sparse2").1, 32);
    }
}

#[test]
fn ten_mib_put_makes_few_extents() {
    require_e2fsprogs!();
    for (block, inode) in [(1024, 256), (4096, 128)] {
        let img = mkfs_ext(block, inode, 64 * 1024, &[]);
        let data = common::pseudo_random(10 << 20, 99);
        put(&img.path, &data, "/big");
        fsck(&img.path);
        read_back(&img.path, "/big", &data);
        let (_, n) = debugfs_extents(&img.path, "/big");
        // 1 KiB blocks: 10240 blocks in groups of 8192 (a few extents);
        // 4 KiB blocks: 2560 blocks in one group.
        assert!((1..=4).contains(&n), "{n} extents");
    }
}

/// Fill the image with one-block files, then delete every other one: the
/// free space is single blocks.
fn fragment(img: &Path) -> usize {
    // Setup only (e2fsck judges it after): no fsync, no journal.
    let fast = OpenOptions {
        sync: false,
        journal: false,
        ..OpenOptions::read_write()
    };
    let mut fs = Filesystem::open(img, &fast).unwrap();
    let root = fs.root();
    let top = fs.mkdir(root, b"frag", &NewFile::default()).unwrap();
    // Small directories (a big one would be searched linearly).
    let mut dirs = Vec::new();
    let mut n = 0;
    'fill: for k in 0.. {
        let d = fs
            .mkdir(top, format!("d{k}").as_bytes(), &NewFile::default())
            .unwrap();
        dirs.push(d);
        for _ in 0..200 {
            if fs.allocatable_blocks() < 64 || fs.free_inodes() < 2 {
                break 'fill;
            }
            let name = format!("f{n}");
            fs.create_file_from_vec(d, name.as_bytes(), &NewFile::default(), vec![1u8; 100])
                .unwrap();
            n += 1;
        }
        fs.commit_if_large().unwrap();
    }
    fs.commit().unwrap();
    drop(fs);
    let mut fs = Filesystem::open(img, &fast).unwrap();
    for i in (0..n).step_by(2) {
        let d = dirs[i / 200];
        fs.unlink(d, format!("f{i}").as_bytes()).unwrap();
    }
    fs.commit().unwrap();
    n
}

#[test]
fn fragmented_free_space_grows_the_tree_to_depth_two_and_shrinks_back() {
    require_e2fsprogs!();
    for inode in [128, 256] {
        let img = mkfs_ext(1024, inode, 16 * 1024, &["-N", "16384"]);
        let t = std::time::Instant::now();
        let n = fragment(&img.path);
        eprintln!("fragment: {n} files in {:?}", t.elapsed());
        assert!(n > 10_000, "{n} files");
        fsck(&img.path);
        let before = common::read_sb(&img.path).free_blocks;
        let data = common::pseudo_random(5_000_000, 5);
        let t = std::time::Instant::now();
        put(&img.path, &data, "/five");
        eprintln!("put 5 MB fragmented: {:?}", t.elapsed());
        fsck(&img.path);
        let (d, leaves) = debugfs_extents(&img.path, "/five");
        assert!(d >= 2, "depth {d} ({leaves} extents)");
        assert_eq!(depth(&img.path, "/five"), d);
        assert!(leaves > 4000, "{leaves} extents");
        read_back(&img.path, "/five", &data);
        // i_blocks counts data and tree blocks: all of them come back.
        let used = before - common::read_sb(&img.path).free_blocks;
        let st = common::debugfs(&img.path, "stat /five");
        assert!(
            st.contains(&format!("Blockcount: {}", used * 2)),
            "{used}: {st}"
        );
        // Truncate in steps; e2fsck after each, content is the prefix.
        for size in [4_000_001u64, 2_500_000, 300_000, 20_000, 1500, 0] {
            common::ok(&img.path, "truncate", &["/five", &size.to_string()]);
            fsck(&img.path);
            read_back(&img.path, "/five", &data[..size as usize]);
        }
        assert_eq!(depth(&img.path, "/five"), 0);
        assert_eq!(common::read_sb(&img.path).free_blocks, before);
        // Again, and this time rm it.
        put(&img.path, &data, "/five2");
        fsck(&img.path);
        assert!(debugfs_extents(&img.path, "/five2").0 >= 2);
        common::ok(&img.path, "rm", &["/five"]);
        common::ok(&img.path, "rm", &["/five2"]);
        fsck(&img.path);
        assert_eq!(common::read_sb(&img.path).free_blocks, before);
    }
}

#[test]
fn depth_three_tree_from_a_sparse_file() {
    require_e2fsprogs!();
    // 1 KiB blocks: a leaf holds 84 extents, the root 4 indexes; 4 * 84 *
    // 84 = 28224 extents fit in depth 2. Every other block a hole makes
    // one extent per data block.
    let img = mkfs_ext(1024, 128, 72 * 1024, &[]);
    let bs = 1024usize;
    let nblocks = 2 * 28_500;
    let mut data = vec![0u8; nblocks * bs];
    for k in (0..nblocks).step_by(2) {
        data[k * bs] = (k % 251) as u8 + 1;
        data[k * bs + bs - 1] = (k / 251) as u8;
    }
    let before = common::read_sb(&img.path).free_blocks;
    put(&img.path, &data, "/deep");
    fsck(&img.path);
    let (d, leaves) = debugfs_extents(&img.path, "/deep");
    assert_eq!(d, 3, "{leaves} extents");
    assert_eq!(leaves, 28_500);
    read_back(&img.path, "/deep", &data);
    // Cut back into depth 2, then into the inode.
    common::ok(
        &img.path,
        "truncate",
        &["/deep", &(2 * 20_000 * bs).to_string()],
    );
    fsck(&img.path);
    assert!(depth(&img.path, "/deep") <= 2);
    read_back(&img.path, "/deep", &data[..2 * 20_000 * bs]);
    common::ok(&img.path, "truncate", &["/deep", &(7 * bs).to_string()]);
    fsck(&img.path);
    assert_eq!(depth(&img.path, "/deep"), 0);
    read_back(&img.path, "/deep", &data[..7 * bs]);
    common::ok(&img.path, "rm", &["/deep"]);
    fsck(&img.path);
    assert_eq!(common::read_sb(&img.path).free_blocks, before);
}

#[test]
fn overwrite_keeps_the_mapping_kind() {
    require_e2fsprogs!();
    // An ext3 image with a file in indirect blocks, then `extent` turned on.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.img");
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-b", "1024"])
        .arg(&path)
        .arg("16M")
        .output()
        .unwrap();
    assert!(out.status.success());
    let a = common::pseudo_random(300_000, 1);
    put(&path, &a, "/old");
    assert_eq!(inode_flags(&path, "/old") & iflag::EXTENTS, 0);
    let out = Command::new("tune2fs")
        .args(["-O", "extent"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fsck(&path);
    for (i, n) in [5000usize, 700_000, 10].into_iter().enumerate() {
        let b = common::pseudo_random(n, i as u64 + 10);
        put(&path, &b, "/old");
        fsck(&path);
        assert_eq!(
            inode_flags(&path, "/old") & iflag::EXTENTS,
            0,
            "stays indirect"
        );
        read_back(&path, "/old", &b);
        // A new file on the same image gets extents; overwriting keeps them.
        put(&path, &b, "/new");
        fsck(&path);
        assert_ne!(
            inode_flags(&path, "/new") & iflag::EXTENTS,
            0,
            "new file: extents"
        );
        read_back(&path, "/new", &b);
    }
    common::ok(&path, "rm", &["/old"]);
    common::ok(&path, "rm", &["/new"]);
    fsck(&path);
}

#[test]
fn directories_and_symlinks_on_extent_file_systems() {
    require_e2fsprogs!();
    for (block, inode) in configs() {
        for dir_index in ["dir_index", "^dir_index"] {
            let img = mkfs_ext(block, inode, 16 * 1024, &["-O", dir_index]);
            common::ok(&img.path, "mkdir", &["/d"]);
            fsck(&img.path);
            assert_ne!(inode_flags(&img.path, "/d") & iflag::EXTENTS, 0);
            // Many entries: the directory grows past one block.
            let src = img.path.with_extension("tree");
            std::fs::create_dir(&src).unwrap();
            for i in 0..400 {
                std::fs::write(src.join(format!("a-long-file-name-{i:04}")), [i as u8]).unwrap();
            }
            common::ok(&img.path, "put", &["-r", src.to_str().unwrap(), "/d/t"]);
            fsck(&img.path);
            let st = common::debugfs(&img.path, "stat /d/t");
            assert!(st.contains("Flags: 0x8"), "{st}");
            let v = common::view(&img.path);
            assert_eq!(v.read_dir("/d/t").unwrap().count(), 402);
            assert_eq!(v.read("/d/t/a-long-file-name-0123").unwrap(), [123u8]);
            // Remove some entries, then all.
            for i in (0..400).step_by(7) {
                common::ok(&img.path, "rm", &[&format!("/d/t/a-long-file-name-{i:04}")]);
            }
            fsck(&img.path);
            // Symlinks: a fast one stays inline, a long one gets extents.
            let long = "x/".repeat(70);
            common::ok(&img.path, "ln", &["-s", "short", "/d/fast"]);
            common::ok(&img.path, "ln", &["-s", &long, "/d/slow"]);
            fsck(&img.path);
            assert_eq!(inode_flags(&img.path, "/d/fast") & iflag::EXTENTS, 0);
            assert_ne!(inode_flags(&img.path, "/d/slow") & iflag::EXTENTS, 0);
            let v = common::view(&img.path);
            assert_eq!(v.read_link("/d/slow").unwrap().as_ref(), long.as_bytes());
            assert_eq!(v.read_link("/d/fast").unwrap().as_ref(), b"short");
            common::ok(&img.path, "rm", &["-r", "/d"]);
            fsck(&img.path);
            // The root and lost+found (made by mke2fs with extents) take
            // entries too.
            common::ok(&img.path, "mkdir", &["/lost+found/x"]);
            common::ok(&img.path, "rmdir", &["/lost+found/x"]);
            fsck(&img.path);
        }
    }
}

#[test]
fn unwritten_extents_read_as_zeros_and_truncate() {
    require_e2fsprogs!();
    let img = mkfs_ext(1024, 256, 16 * 1024, &[]);
    let a = common::pseudo_random(10 * 1024, 3);
    put(&img.path, &a, "/f");
    // debugfs fallocate makes unwritten extents past the data.
    for cmd in ["fallocate /f 10 59", "sif /f size 61440"] {
        let out = Command::new("debugfs")
            .args(["-w", "-R", cmd])
            .arg(&img.path)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    fsck(&img.path);
    let ex = common::debugfs(&img.path, "ex /f");
    assert!(ex.contains("Uninit"), "{ex}");
    let mut want = a.clone();
    want.resize(61440, 0);
    read_back(&img.path, "/f", &want);
    common::ok(&img.path, "truncate", &["/f", "30000"]);
    fsck(&img.path);
    read_back(&img.path, "/f", &want[..30000]);
    common::ok(&img.path, "truncate", &["/f", "5000"]);
    fsck(&img.path);
    read_back(&img.path, "/f", &want[..5000]);
    common::ok(&img.path, "rm", &["/f"]);
    fsck(&img.path);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_put_truncate_rm_sequences() {
    require_e2fsprogs!();
    for (seed, (block, inode)) in configs().into_iter().enumerate() {
        let img = mkfs_ext(block, inode, 24 * 1024, &[]);
        let bs = block as usize;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (seed as u64 + 1));
        let mut model: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        let start_free = common::read_sb(&img.path).free_blocks;
        for step in 0..40 {
            let name = format!("/r{}", rng.below(6));
            let op = rng.below(10);
            let ctx = format!("seed {seed} step {step}: op {op} on {name}");
            if op < 5 || !model.contains_key(&name) {
                // A file of random size made of random, zero and
                // repeated blocks (holes and runs).
                let cap = if rng.below(4) == 0 { 3000 } else { 80 };
                let nb = rng.below(cap) as usize;
                let mut d = vec![0u8; nb * bs + rng.below(bs as u64) as usize];
                let mut k = 0;
                while k < nb {
                    let run = 1 + rng.below(40) as usize;
                    if rng.below(3) != 0 {
                        for b in k..(k + run).min(nb) {
                            d[b * bs] = 1 + (rng.below(255) as u8);
                            d[b * bs + 17] = step as u8;
                        }
                    }
                    k += run;
                }
                if let Some(last) = d.last_mut() {
                    *last = 0x5a;
                }
                put(&img.path, &d, &name);
                model.insert(name.clone(), d);
            } else if op < 8 {
                let cur = model.get_mut(&name).unwrap();
                let new = rng.below(cur.len() as u64 * 5 / 4 + 2) as usize;
                common::ok(&img.path, "truncate", &[&name, &new.to_string()]);
                cur.resize(new, 0);
            } else {
                common::ok(&img.path, "rm", &[&name]);
                model.remove(&name);
            }
            fsck(&img.path);
            let v = common::view(&img.path);
            for (p, d) in &model {
                let got = v.read(p.as_str()).unwrap();
                assert!(&got == d, "{ctx}: {p} reads back differently");
            }
            let _ = ctx;
        }
        for p in model.keys() {
            read_back(&img.path, p, &model[p]);
            common::ok(&img.path, "rm", &[p]);
        }
        fsck(&img.path);
        assert_eq!(common::read_sb(&img.path).free_blocks, start_free);
    }
}

#[test]
fn writing_into_an_unwritten_extent_is_refused_and_changes_nothing() {
    require_e2fsprogs!();
    let img = mkfs_ext(1024, 128, 8 * 1024, &["-O", "^dir_index"]);
    common::ok(&img.path, "mkdir", &["/d"]);
    // Unwritten blocks 1..5 of the directory, past its size: the next
    // block it needs lies in them.
    let out = Command::new("debugfs")
        .args(["-w", "-R", "fallocate /d 1 5"])
        .arg(&img.path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut refused = false;
    for i in 0..100 {
        let before = common::bytes(&img.path);
        let p = format!("/d/a-rather-long-name-for-entry-{i:03}");
        let out = common::run(&["touch", img.path.to_str().unwrap(), &p], None);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(
                err.contains("unwritten") && err.contains("inode 12"),
                "{err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(common::bytes(&img.path) == before, "image changed");
            refused = true;
            break;
        }
    }
    assert!(refused, "the directory never needed its second block");
}

#[test]
fn a_corrupt_extent_block_is_refused_and_the_image_is_unchanged() {
    require_e2fsprogs!();
    let img = mkfs_ext(1024, 128, 8 * 1024, &[]);
    // 40 one-block extents: a depth-1 tree with one leaf block.
    let mut d = vec![0u8; 80 * 1024];
    for k in (0..80).step_by(2) {
        d[k * 1024] = 1;
    }
    put(&img.path, &d, "/f");
    fsck(&img.path);
    let (ino, leaf) = {
        let fs = Filesystem::open(&img.path, &OpenOptions::read_only()).unwrap();
        let ino = fs.resolve("/f", false).unwrap();
        let inode = fs.read_inode(ino).unwrap();
        let r = inode.block_bytes();
        assert_eq!(u16::from_le_bytes([r[6], r[7]]), 1, "depth 1");
        (
            ino,
            u32::from_le_bytes(r[16..20].try_into().unwrap()) as u64,
        )
    };
    // Break the leaf's magic.
    let mut raw = std::fs::read(&img.path).unwrap();
    raw[(leaf * 1024) as usize] ^= 0xff;
    std::fs::write(&img.path, &raw).unwrap();
    let src = img.path.with_extension("src");
    std::fs::write(&src, b"new").unwrap();
    for (cmd, rest) in [
        ("rm", vec!["/f"]),
        ("truncate", vec!["/f", "1000"]),
        ("put", vec![src.to_str().unwrap(), "/f"]),
    ] {
        let err = common::fails(&img.path, cmd, &rest, 1);
        assert!(
            err.contains(&format!("inode {ino}")) && err.contains(&format!("block {leaf}")),
            "{cmd}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{cmd}: {err}");
        assert!(common::bytes(&img.path) == raw, "{cmd} changed the image");
    }
}

#[test]
fn depth_two_with_4k_blocks_from_a_sparse_file() {
    require_e2fsprogs!();
    // 4 KiB blocks: 340 extents a block, so 1500 one-block extents need
    // five leaves under an index block.
    for inode in [128, 256] {
        let img = mkfs_ext(4096, inode, 32 * 1024, &[]);
        let bs = 4096usize;
        let mut data = vec![0u8; 3000 * bs];
        for k in (0..3000).step_by(2) {
            data[k * bs + k % bs] = 0xa5;
        }
        let before = common::read_sb(&img.path).free_blocks;
        put(&img.path, &data, "/s");
        fsck(&img.path);
        let (d, n) = debugfs_extents(&img.path, "/s");
        assert_eq!((d, n), (2, 1500));
        read_back(&img.path, "/s", &data);
        common::ok(&img.path, "truncate", &["/s", &(1001 * bs + 3).to_string()]);
        fsck(&img.path);
        assert_eq!(depth(&img.path, "/s"), 1);
        read_back(&img.path, "/s", &data[..1001 * bs + 3]);
        common::ok(&img.path, "rm", &["/s"]);
        fsck(&img.path);
        assert_eq!(common::read_sb(&img.path).free_blocks, before);
    }
}

#[test]
fn every_write_command_on_extent_images() {
    require_e2fsprogs!();
    for (block, inode) in [(1024, 128), (4096, 256)] {
        let img = mkfs_ext(block, inode, 32 * 1024, &[]);
        let p = &img.path;
        let tmp = img._dir.path();
        let big = common::pseudo_random(3 << 20, 11);
        std::fs::write(tmp.join("big"), &big).unwrap();
        let tree = tmp.join("tree");
        std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
        for i in 0..300 {
            std::fs::write(tree.join(format!("file-{i:04}")), format!("{i}\n")).unwrap();
        }
        std::fs::write(
            tree.join("sub/deeper/data"),
            common::pseudo_random(70_000, 7),
        )
        .unwrap();
        let w = |cmd: &str, rest: &[&str]| {
            common::ok(p, cmd, rest);
            fsck(p);
        };
        let big_s = tmp.join("big");
        w("mkdir", &["-p", "/a/b/c"]);
        w("put", &[big_s.to_str().unwrap(), "/a/big"]);
        w("put", &["-r", tree.to_str().unwrap(), "/tree"]);
        w("ln", &["-s", &"long-target/".repeat(8), "/a/link"]);
        w("ln", &["/a/big", "/a/b/hard"]);
        w("mv", &["/a/big", "/a/b/c/big"]);
        w("chmod", &["600", "/a/b/c/big"]);
        w("chown", &["5:6", "/a/b/c/big"]);
        w("touch", &["/a/new"]);
        w("mknod", &["/a/fifo", "p"]);
        w("truncate", &["/a/b/c/big", "1000000"]);
        w("truncate", &["/a/b/c/big", "5000000"]);
        w("rm", &["/a/b/hard"]);
        w("rm", &["-r", "/tree/sub"]);
        w("mkdir", &["/a/empty"]);
        w("rmdir", &["/a/empty"]);
        let mut want = big[..1_000_000].to_vec();
        want.resize(5_000_000, 0);
        read_back(p, "/a/b/c/big", &want);
        let v = common::view(p);
        assert_eq!(v.read("/tree/file-0299").unwrap(), b"299\n");
        assert_eq!(v.read_dir("/tree").unwrap().count(), 302);
        w("rm", &["-r", "/a"]);
        w("rm", &["-r", "/tree"]);
    }
}
