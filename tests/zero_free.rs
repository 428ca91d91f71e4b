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
