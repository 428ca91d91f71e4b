//! Attacks on ext4 writing (issue 14): each test is a way a write once left
//! an image that `e2fsck -fn` did not pass silently, read back wrong, or
//! changed on a refused command. Every test failed before its fix.

mod common;

use std::path::Path;

use common::{bytes, fails, fsck_clean, mkfs, ok, Cfg};

fn cfg(fstype: &'static str, block: u32, size_kib: u64) -> Cfg {
    Cfg {
        fstype,
        block,
        inode: 256,
        dir_index: true,
        size_kib,
    }
}

fn small_file(img: &Path, dir: &Path) {
    let s = dir.join("s");
    std::fs::write(&s, b"hi\n").unwrap();
    ok(img, "put", &[s.to_str().unwrap(), "/s"]);
}

/// `truncate` to exactly 2^32 blocks made an extent-mapped file that
/// e2fsck finds too big (its limit is 2^32 blocks less one byte; the
/// kernel's is 2^32 - 1 blocks); on ext3 the limit for extents was applied
/// to files with block pointers, whose reach is far shorter (16 GiB with
/// 1 KiB blocks). The largest size allowed must pass e2fsck, one byte more
/// must be refused with the image unchanged.
#[test]
fn truncate_up_to_the_largest_size_and_no_further() {
    require_e2fsprogs!();
    let bs = 1024u64;
    let indirect_max = (12 + 256 + 256 * 256 + 256 * 256 * 256) * bs;
    for (fstype, max) in [("ext4", ((1u64 << 32) - 1) * bs), ("ext3", indirect_max)] {
        let img = mkfs(&cfg(fstype, 1024, 16 * 1024));
        let p = &img.path;
        small_file(p, img.dir.path());
        for too_big in [max + 1, (1u64 << 32) * bs] {
            let before = bytes(p);
            let err = fails(p, "truncate", &["/s", &too_big.to_string()], 1);
            assert!(err.contains("larger than this filesystem allows"), "{err}");
            assert!(
                before == bytes(p),
                "{fstype}: refused truncate changed the image"
            );
        }
        ok(p, "truncate", &["/s", &max.to_string()]);
        fsck_clean(p);
    }
}

/// An orphan file's inodes are not chained: their `i_dtime` is a time (the
/// kernel's ext4 documentation: only ext3's list overloads `i_dtime` as
/// the next orphan). A still-linked inode in the orphan file whose
/// `i_dtime` holds a time made the release read that time as the next
/// inode number and refuse every write ("names inode 1700000000 as the
/// next orphan, which is out of range"). It must be truncated to its size
/// as any orphan, and the image pass e2fsck.
#[test]
fn orphan_file_entries_are_not_read_as_a_chain() {
    require_e2fsprogs!();
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("o.img");
    let st = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096"])
        .args(["-O", "orphan_file,^metadata_csum"])
        .arg(&p)
        .arg("32M")
        .status()
        .unwrap();
    assert!(st.success());
    let f = dir.path().join("f");
    std::fs::write(&f, common::pseudo_random(12_000, 5)).unwrap();
    ok(&p, "put", &[f.to_str().unwrap(), "/f"]);
    let dbgw = |cmd: &str| {
        let o = Command::new("debugfs")
            .args(["-w", "-R", cmd])
            .arg(&p)
            .output()
            .unwrap();
        assert!(o.status.success(), "debugfs {cmd}");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    dbgw("sif /f dtime 1700000000");
    dbgw("feature orphan_present");
    let ino: u32 = common::debugfs(&p, "stat /f")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // The superblock's s_orphan_file_inum (offset 0x280), and that
    // file's first block: slot 0 names /f.
    let sbb = bytes(&p);
    let oino = u32::from_le_bytes(sbb[1024 + 0x280..1024 + 0x284].try_into().unwrap());
    let ob: u64 = common::debugfs(&p, &format!("blocks <{oino}>"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut img = sbb;
    let at = (ob * 4096) as usize;
    img[at..at + 4].copy_from_slice(&ino.to_le_bytes());
    std::fs::write(&p, &img).unwrap();
    ok(&p, "mkdir", &["/nd"]);
    fsck_clean(&p);
    assert_eq!(
        common::debugfs_cat(&p, "/f"),
        common::pseudo_random(12_000, 5)
    );
}

/// A 128-byte inode holds signed 32-bit seconds: `touch --mtime
/// 2100-01-01` wrapped around and read back (debugfs, the kernel) as
/// 1963-11-25. It is clamped to 2038-01-19 03:14:07 as the kernel clamps;
/// a large inode keeps 2100.
#[test]
fn times_past_2038_are_clamped_in_small_inodes() {
    require_e2fsprogs!();
    for (fstype, inode, want) in [
        ("ext4", 128, "mtime: 0x7fffffff"),
        ("ext3", 128, "mtime: 0x7fffffff"),
        ("ext4", 256, "mtime: 0xf4865700:00000001"),
    ] {
        let mut c = cfg(fstype, 1024, 16 * 1024);
        c.inode = inode;
        let img = mkfs(&c);
        let p = &img.path;
        ok(p, "touch", &["/t", "--mtime", "2100-01-01"]);
        fsck_clean(p);
        let st = common::debugfs(p, "stat /t");
        assert!(st.contains(want), "{fstype} -I {inode}: {st}");
    }
}

/// The first block of group 0's inode table, from dumpe2fs.
fn inode_table_block(img: &Path) -> u64 {
    let out = std::process::Command::new("dumpe2fs")
        .arg(img)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let at = s.find("Inode table at ").unwrap() + "Inode table at ".len();
    s[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A crafted extent that maps an inode table block: `rm` freed that block
/// in the bitmap, and the next `put` wrote file data over the inode
/// table. A bitmap that says an inode table block is free made `put`
/// write there directly. Both must be refused, the image unchanged.
#[test]
fn metadata_blocks_are_never_freed_or_allocated() {
    require_e2fsprogs!();
    use std::process::Command;
    let img = mkfs(&cfg("ext4-nocsum", 1024, 16 * 1024));
    let p = &img.path;
    small_file(p, img.dir.path());
    let it = inode_table_block(p);
    // i_block word 5 is the first extent's ee_start_lo.
    let o = Command::new("debugfs")
        .args(["-w", "-R", &format!("sif /s block[5] {it}")])
        .arg(p)
        .output()
        .unwrap();
    assert!(o.status.success());
    let before = bytes(p);
    let err = fails(p, "rm", &["/s"], 1);
    assert!(
        err.contains(&format!("block {it} is file system metadata")),
        "{err}"
    );
    assert!(before == bytes(p), "refused rm changed the image");

    // A block bitmap (no checksums here) that clears the inode table's
    // first block.
    let img = mkfs(&cfg("ext4-nocsum", 1024, 16 * 1024));
    let p = &img.path;
    let out = Command::new("dumpe2fs").arg(p).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let at = s.find("Block bitmap at ").unwrap() + "Block bitmap at ".len();
    let bb: u64 = s[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let it = inode_table_block(p);
    let mut d = bytes(p);
    let bit = (it - 1) as usize; // group 0 starts at block 1 (1 KiB blocks)
    d[bb as usize * 1024 + bit / 8] &= !(1 << (bit % 8));
    // The allocator searches group 0 from its start: the first clear bit
    // is the inode table's.
    std::fs::write(p, &d).unwrap();
    let f = img.dir.path().join("f");
    std::fs::write(&f, vec![7u8; 5000]).unwrap();
    let before = bytes(p);
    let out = common::run(
        &["put", p.to_str().unwrap(), f.to_str().unwrap(), "/f"],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !out.status.success(),
        "put used a free-marked inode table block"
    );
    assert!(err.contains("file system metadata"), "{err}");
    assert!(before == bytes(p), "refused put changed the image");
}
