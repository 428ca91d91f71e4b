//! zero-free and pack --zero-free: free blocks read as zeros afterwards,
//! used blocks and metadata unchanged, and the packed image shrinks.

mod common;

use std::path::Path;

use common::*;

fn cfg(fstype: &'static str, block: u32) -> Cfg {
    Cfg {
        fstype,
        block,
        inode: 256,
        dir_index: true,
        size_kib: 16 * 1024,
    }
}

/// Blocks marked free in the bitmaps, from debugfs `ffb` runs: every
/// block number `testb` calls free.
fn free_blocks(img: &Path, total: u64) -> Vec<u64> {
    let out = debugfs(img, &format!("testb 1 {}", total - 1));
    out.lines()
        .filter(|l| l.contains("not in use"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn blocks_count(img: &Path) -> u64 {
    let out = debugfs(img, "stats");
    out.lines()
        .find_map(|l| l.strip_prefix("Block count:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// An image with a kept file and the data of a deleted one left in its
/// free blocks.
fn dirty_image(fstype: &'static str, block: u32) -> (Img, Vec<u8>) {
    let img = mkfs(&cfg(fstype, block));
    let host = img.dir.path().join("big");
    std::fs::write(&host, pseudo_random(3 << 20, 1)).unwrap();
    let keep = pseudo_random(200_000, 2);
    let kp = img.dir.path().join("keep");
    std::fs::write(&kp, &keep).unwrap();
    ok(&img.path, "put", &[host.to_str().unwrap(), "/big"]);
    ok(&img.path, "put", &[kp.to_str().unwrap(), "/keep"]);
    ok(&img.path, "rm", &["/big"]);
    (img, keep)
}

#[test]
fn freed_blocks_read_as_zeros_and_used_blocks_stay() {
    require_e2fsprogs!();
    for (fstype, block) in [("ext3", 1024), ("ext2", 4096)] {
        let (img, keep) = dirty_image(fstype, block);
        let before = bytes(&img.path);
        let bs = block as usize;
        let total = blocks_count(&img.path);
        let free = free_blocks(&img.path, total);
        assert!(!free.is_empty());
        let dirty = free
            .iter()
            .filter(|&&b| {
                before[b as usize * bs..(b as usize + 1) * bs]
                    .iter()
                    .any(|&x| x != 0)
            })
            .count();
        assert!(
            dirty as u64 >= (3 << 20) / block as u64,
            "{fstype}: {dirty} dirty free blocks"
        );
        let out = ok(&img.path, "zero-free", &[]);
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            line.starts_with(&format!("zeroed {dirty} of {} free blocks", free.len())),
            "{line}"
        );
        let after = bytes(&img.path);
        assert_eq!(before.len(), after.len());
        let free_set: std::collections::HashSet<u64> = free.iter().copied().collect();
        for b in 0..total {
            let (s, e) = (b as usize * bs, (b as usize + 1) * bs);
            if free_set.contains(&b) {
                assert!(
                    after[s..e].iter().all(|&x| x == 0),
                    "{fstype}: free block {b} not zero"
                );
            } else {
                assert_eq!(
                    before[s..e],
                    after[s..e],
                    "{fstype}: used block {b} changed"
                );
            }
        }
        fsck_clean(&img.path);
        assert_eq!(debugfs_cat(&img.path, "/keep"), keep);
        // A second run finds nothing left to zero.
        let out = ok(&img.path, "zero-free", &[]);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("zeroed 0 of"));
    }
}

#[test]
fn pack_zero_free_shrinks_the_archive_and_leaves_image_alone() {
    require_e2fsprogs!();
    let (img, keep) = dirty_image("ext3", 1024);
    let before = bytes(&img.path);
    let plain = img.dir.path().join("plain.gz");
    let zeroed = img.dir.path().join("zeroed.gz");
    let p = img.path.to_str().unwrap();
    run_ok(&["pack", p, plain.to_str().unwrap()]);
    run_ok(&["pack", p, zeroed.to_str().unwrap(), "--zero-free"]);
    assert!(bytes(&img.path) == before, "the source image changed");
    let (a, b) = (
        std::fs::metadata(&plain).unwrap().len(),
        std::fs::metadata(&zeroed).unwrap().len(),
    );
    assert!(b * 4 < a, "packed {a} bytes, with --zero-free {b}");
    // The zeroed archive holds a clean image with the kept file.
    let raw = img.dir.path().join("back.img");
    run_ok(&["unpack", zeroed.to_str().unwrap(), raw.to_str().unwrap()]);
    fsck_clean(&raw);
    assert_eq!(debugfs_cat(&raw, "/keep"), keep);
    // zero-free in place shrinks it the same way.
    ok(&img.path, "zero-free", &[]);
    let again = img.dir.path().join("again.gz");
    run_ok(&["pack", p, again.to_str().unwrap()]);
    assert!(
        bytes(&again) == bytes(&zeroed),
        "zero-free + pack differs from pack --zero-free"
    );
    // No temporary file left beside the outputs.
    let left: Vec<_> = std::fs::read_dir(img.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("ext3edit"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn zero_free_holes_and_output() {
    require_e2fsprogs!();
    let (img, _) = dirty_image("ext3", 4096);
    let before = bytes(&img.path);
    let new = img.dir.path().join("new.img");
    ok(&img.path, "zero-free", &["--output", new.to_str().unwrap()]);
    assert!(bytes(&img.path) == before, "IMAGE changed with --output");
    fsck_clean(&new);
    // Holes punched: the copy uses less disk than its data.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&new).unwrap();
    let used = m.blocks() * 512;
    let plain_used = std::fs::metadata(&img.path).unwrap().blocks() * 512;
    assert!(used + (2 << 20) < plain_used, "{used} vs {plain_used}");
}

#[test]
fn zero_free_refuses_inconsistent_bitmap() {
    require_e2fsprogs!();
    let (img, _) = dirty_image("ext2", 1024);
    // Group 0's descriptor free count off by one.
    let out = debugfs(&img.path, "stats");
    assert!(out.contains("Group  0"));
    let mut b = bytes(&img.path);
    // ext2, 1 KiB blocks: descriptors in block 2; free count at 0x0c.
    let at = 2048 + 0x0c;
    let n = u16::from_le_bytes([b[at], b[at + 1]]);
    b[at..at + 2].copy_from_slice(&(n + 1).to_le_bytes());
    std::fs::write(&img.path, &b).unwrap();
    let err = fails(&img.path, "zero-free", &[], 1);
    assert!(
        err.contains("group 0: the block bitmap") && err.contains("run e2fsck -f first"),
        "{err}"
    );
    assert!(bytes(&img.path) == b, "the refused image changed");
}

#[test]
fn zero_free_on_a_partition() {
    require_e2fsprogs!();
    // An MBR disk: 1 MiB gap of non-zero bytes, then the dirty ext3.
    let (img, keep) = dirty_image("ext3", 1024);
    let fsb = bytes(&img.path);
    let mut d = vec![0xa5u8; (1 << 20) + fsb.len() + (1 << 20)];
    d[..512].fill(0);
    let e = &mut d[446..462];
    e[4] = 0x83;
    e[8..12].copy_from_slice(&2048u32.to_le_bytes());
    e[12..16].copy_from_slice(&((fsb.len() / 512) as u32).to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xaa;
    d[1 << 20..(1 << 20) + fsb.len()].copy_from_slice(&fsb);
    let disk = img.dir.path().join("disk.img");
    std::fs::write(&disk, &d).unwrap();
    ok(&disk, "zero-free", &[]);
    let after = bytes(&disk);
    let (s, e) = (1 << 20, (1 << 20) + fsb.len());
    assert_eq!(d[..s], after[..s]);
    assert_eq!(d[e..], after[e..]);
    let part = img.dir.path().join("part.img");
    std::fs::write(&part, &after[s..e]).unwrap();
    fsck_clean(&part);
    assert_eq!(debugfs_cat(&part, "/keep"), keep);
    assert!(
        after[s..e].iter().filter(|&&x| x == 0).count()
            > fsb.iter().filter(|&&x| x == 0).count() + (2 << 20)
    );
}

fn run_ok(args: &[&str]) {
    let out = run(args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// debugfs -w -R "cmd" on the image; it must succeed.
fn debugfs_w(img: &Path, cmd: &str) {
    let out = std::process::Command::new("debugfs")
        .args(["-w", "-R", cmd])
        .arg(img)
        .output()
        .expect("run debugfs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.lines().count() <= 1,
        "debugfs -w {cmd}: {err}"
    );
}

/// A number from debugfs `stats` ("Blocks per group:  8192").
fn stat_field(img: &Path, name: &str) -> u64 {
    debugfs(img, "stats")
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in stats"))
        .trim()
        .parse()
        .unwrap()
}

/// Mark block `b` free in its group's bitmap and raise the group's free
/// count to match: the bitmap and the descriptor agree, and both are
/// wrong (e2fsck would report a bitmap difference only).
fn free_wrongly(img: &Path, b: u64) {
    let first = stat_field(img, "First block:");
    let per = stat_field(img, "Blocks per group:");
    let g = (b - first) / per;
    let stats = debugfs(img, "stats");
    let mut lines = stats.lines();
    lines
        .find(|l| {
            l.trim_start()
                .strip_prefix("Group ")
                .and_then(|r| r.split(':').next())
                .is_some_and(|n| n.trim() == g.to_string())
        })
        .unwrap();
    let free: u64 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    debugfs_w(img, &format!("freeb {b}"));
    debugfs_w(img, &format!("set_bg {g} free_blocks_count {}", free + 1));
}

/// The blocks debugfs `stat` lists for an inode, by label: "(0-11):1367-1378,
/// (IND):1379" gives [("0-11", 1367), ("IND", 1379)] (the first of each run).
fn stat_blocks(img: &Path, what: &str) -> Vec<(String, u64)> {
    let out = debugfs(img, &format!("stat {what}"));
    let mut lines = out.lines();
    lines
        .find(|l| l.starts_with("BLOCKS:") || l.starts_with("EXTENTS:"))
        .unwrap_or_else(|| panic!("no block list for {what}: {out}"));
    lines
        .next()
        .unwrap()
        .split(", ")
        .map(|e| {
            let (label, blk) = e.trim().split_once("):").unwrap();
            let first = blk.split('-').next().unwrap().parse().unwrap();
            (label.trim_start_matches('(').to_string(), first)
        })
        .collect()
}

fn acl_block(img: &Path, what: &str) -> u64 {
    debugfs(img, &format!("stat {what}"))
        .lines()
        .find_map(|l| {
            Some(
                l.split("File ACL:")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .to_string(),
            )
        })
        .unwrap()
        .parse()
        .unwrap()
}

fn inode_number(img: &Path, path: &str) -> u64 {
    let out = debugfs(img, &format!("stat {path}"));
    let r = out.split("Inode:").nth(1).unwrap();
    r.split_whitespace().next().unwrap().parse().unwrap()
}

/// An ext3 image (1 KiB blocks, 128-byte inodes) with a file that has
/// indirect and double indirect blocks and an xattr block, and a
/// directory of several blocks.
fn mapped_image() -> Img {
    let img = mkfs(&Cfg {
        fstype: "ext3",
        block: 1024,
        inode: 128,
        dir_index: false,
        size_kib: 16 * 1024,
    });
    let host = img.dir.path().join("big");
    std::fs::write(&host, pseudo_random(400_000, 7)).unwrap();
    ok(&img.path, "put", &[host.to_str().unwrap(), "/big"]);
    ok(&img.path, "mkdir", &["/dir"]);
    let small = img.dir.path().join("small");
    std::fs::write(&small, b"x").unwrap();
    for i in 0..60 {
        let name = format!("/dir/a-rather-long-name-to-fill-directory-blocks-{i:04}");
        ok(&img.path, "put", &[small.to_str().unwrap(), &name]);
    }
    debugfs_w(
        &img.path,
        &format!("ea_set /big user.note {}", "v".repeat(300)),
    );
    fsck_clean(&img.path);
    img
}

#[test]
fn zero_free_refuses_a_used_block_the_bitmap_calls_free() {
    require_e2fsprogs!();
    let base = mapped_image();
    let big = inode_number(&base.path, "/big");
    let dir = inode_number(&base.path, "/dir");
    let blocks = stat_blocks(&base.path, "/big");
    let find = |label: &str| blocks.iter().find(|(l, _)| l == label).unwrap().1;
    let dir_blocks = stat_blocks(&base.path, "/dir");
    assert!(
        dir_blocks.len() > 1 || dir_blocks[0].0 != "0",
        "{dir_blocks:?}"
    );
    let journal = stat_blocks(&base.path, "<8>");
    let itable = stat_field(&base.path, "Inode blocks per group:");
    assert!(itable > 2);
    let stats = debugfs(&base.path, "stats");
    let itab0: u64 = stats
        .split("inode table at ")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cases: Vec<(&str, u64, String)> = vec![
        ("file data", find("0-11"), format!("inode {big} uses it")),
        (
            "indirect block",
            find("IND"),
            format!("inode {big} uses it"),
        ),
        (
            "double indirect block",
            find("DIND"),
            format!("inode {big} uses it"),
        ),
        (
            "directory block",
            dir_blocks.last().unwrap().1,
            format!("inode {dir} uses it"),
        ),
        (
            "inode table block",
            itab0 + itable - 1,
            "the inode table of group 0 uses it".into(),
        ),
        (
            "xattr block",
            acl_block(&base.path, "/big"),
            format!("the xattr block of inode {big} uses it"),
        ),
        ("journal block", journal[0].1, "inode 8 uses it".into()),
    ];
    for (what, b, who) in cases {
        let img = base.dir.path().join("case.img");
        std::fs::copy(&base.path, &img).unwrap();
        free_wrongly(&img, b);
        let before = bytes(&img);
        let err = fails(&img, "zero-free", &[], 1);
        assert!(
            err.contains(&format!("block {b}: the block bitmap says free but {who}"))
                && err.contains("run e2fsck -f first")
                && err.trim_end().lines().count() == 1,
            "{what} (block {b}): {err}"
        );
        assert!(bytes(&img) == before, "{what}: the refused image changed");
        // pack --zero-free: the same rule, and no archive left.
        let out = base.dir.path().join("case.gz");
        let o = run(
            &[
                "pack",
                img.to_str().unwrap(),
                out.to_str().unwrap(),
                "--zero-free",
            ],
            None,
        );
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && e.contains(&format!("block {b}: the block bitmap says free")),
            "pack --zero-free, {what}: {e}"
        );
        assert!(!out.exists(), "pack --zero-free left {}", out.display());
        assert!(bytes(&img) == before, "{what}: pack changed the image");
    }
}

#[test]
fn zero_free_check_refuses_a_free_extent_tree_block() {
    require_e2fsprogs!();
    // ext4 cannot be written yet, but the check reads it: a file of seven
    // extents has its leaves in a tree block.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("e.img");
    let host = dir.path().join("f");
    std::fs::write(&host, pseudo_random(200_000, 9)).unwrap();
    for feats in [
        "",
        "meta_bg,^resize_inode",
        "^flex_bg,uninit_bg,^metadata_csum",
    ] {
        let mut c = std::process::Command::new("mke2fs");
        c.args(["-q", "-F", "-t", "ext4"]);
        if !feats.is_empty() {
            c.args(["-O", feats]);
        }
        let o = c.arg(&img).arg("16M").output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        debugfs_w(&img, &format!("write {} f", host.display()));
        for i in [1, 3, 5, 7, 9, 11] {
            debugfs_w(&img, &format!("punch f {i} {i}"));
        }
        let check = || {
            let fs = ext3edit::Filesystem::open(&img, &ext3edit::OpenOptions::read_only()).unwrap();
            ext3edit::zero_free::check_free_unused(&fs)
        };
        // A consistent image passes: the metadata is placed right.
        check().unwrap_or_else(|e| panic!("{feats}: {e}"));
        let etb = stat_blocks(&img, "f")
            .into_iter()
            .find(|(l, _)| l == "ETB0")
            .unwrap_or_else(|| panic!("{feats}: no extent tree block"))
            .1;
        free_wrongly(&img, etb);
        let ino = inode_number(&img, "f");
        let err = check().unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "block {etb}: the block bitmap says free but inode {ino} uses it"
            )),
            "{feats}: {err}"
        );
    }
}

#[test]
fn zero_free_walk_ends_on_a_looping_map() {
    require_e2fsprogs!();
    // Every pointer of the double indirect block names the same indirect
    // block: 256 x 256 blocks through one block. The walk refuses the
    // second visit at once, and nothing is written.
    let img = mapped_image();
    let blocks = stat_blocks(&img.path, "/big");
    let dind = blocks.iter().find(|(l, _)| l == "DIND").unwrap().1 as usize;
    let ind = blocks.iter().rev().find(|(l, _)| l == "IND").unwrap().1 as u32;
    let mut b = bytes(&img.path);
    for p in b[dind * 1024..(dind + 1) * 1024].chunks_exact_mut(4) {
        p.copy_from_slice(&ind.to_le_bytes());
    }
    std::fs::write(&img.path, &b).unwrap();
    let t = std::time::Instant::now();
    let err = fails(&img.path, "zero-free", &[], 1);
    assert!(
        err.contains(&format!(
            "maps block {ind}, which it or another inode already uses"
        )) && err.contains("run e2fsck -f first"),
        "{err}"
    );
    assert!(t.elapsed().as_secs() < 5);
    assert!(bytes(&img.path) == b, "the refused image changed");
}

/// A file whose data block and inode the bitmaps both call free (the
/// descriptor counts agreeing): the walk took only the inode bitmap's
/// inodes, so zero-free zeroed the data of a file that a directory still
/// names and that e2fsck keeps (its first pass takes every inode with
/// links; the fifth only sets the bits). It is refused, nothing written.
#[test]
fn zero_free_refuses_a_linked_inode_the_inode_bitmap_calls_free() {
    require_e2fsprogs!();
    let base = mapped_image();
    let big = inode_number(&base.path, "/big");
    let b = stat_blocks(&base.path, "/big")[0].1;
    let img = base.dir.path().join("case.img");
    std::fs::copy(&base.path, &img).unwrap();
    free_wrongly(&img, b);
    let ipg = stat_field(&img, "Inodes per group:");
    let g = (big as u64 - 1) / ipg;
    let stats = debugfs(&img, "stats");
    let mut lines = stats.lines();
    lines
        .find(|l| {
            l.trim_start()
                .strip_prefix("Group ")
                .and_then(|r| r.split(':').next())
                .is_some_and(|n| n.trim() == g.to_string())
        })
        .unwrap();
    let free_inodes: u64 = lines
        .next()
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    debugfs_w(&img, &format!("freei <{big}>"));
    debugfs_w(
        &img,
        &format!("set_bg {g} free_inodes_count {}", free_inodes + 1),
    );
    let before = bytes(&img);
    let err = fails(&img, "zero-free", &[], 1);
    assert!(
        err.contains(&format!(
            "block {b}: the block bitmap says free but inode {big} uses it"
        )) && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert!(bytes(&img) == before, "the refused image changed");
}
