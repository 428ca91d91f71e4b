//! Allocation with the ext4 features that are about groups and inode
//! fields, on images mke2fs makes: uninit_bg (BLOCK_UNINIT and
//! INODE_UNINIT groups, bg_itable_unused, crc16 descriptor checksums),
//! flex_bg, huge_file, dir_nlink, extra_isize. After every write
//! `e2fsck -fn` is clean and debugfs reads back what was written.
//!
//! What mke2fs leaves undefined is scribbled over before writing (the
//! on-disk bitmaps of uninitialised groups, the never-used tail of each
//! inode table), after checking that e2fsck still calls the image clean:
//! a writer that read them would hand out used blocks or garbage inodes.
//!
//! 64bit needs extents in mke2fs; it is tested here at the level of the
//! allocator (block numbers for indirect maps stay below a limit) until
//! extent files are writable.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const BLOCK_UNINIT: u16 = 0x2;
const INODE_UNINIT: u16 = 0x1;

/// mke2fs -t ext3 with `features` and extra arguments; reproducible.
fn mk(dir: &Path, name: &str, block: u32, size: &str, features: &str, extra: &[&str]) -> PathBuf {
    mk_t("ext3", dir, name, block, size, features, extra)
}

/// [`mk`] with mke2fs -t `fstype`.
fn mk_t(
    fstype: &str,
    dir: &Path,
    name: &str,
    block: u32,
    size: &str,
    features: &str,
    extra: &[&str],
) -> PathBuf {
    let img = dir.join(name);
    let _ = std::fs::remove_file(&img);
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", fstype, "-b", &block.to_string()])
        .args(["-O", features])
        .args(["-U", "d9b0c4a0-3a2b-4c1d-8e5f-0123456789ab"])
        .args(extra)
        .arg(&img)
        .arg(size)
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .expect("run mke2fs");
    assert!(
        out.status.success(),
        "mke2fs {features} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    img
}

/// What the tests read from the superblock and the descriptors.
#[derive(Clone, Debug)]
struct Geo {
    bs: u64,
    ipg: u32,
    inode_size: u64,
    groups: Vec<Desc>,
}

#[derive(Clone, Debug)]
struct Desc {
    block_bitmap: u64,
    inode_bitmap: u64,
    inode_table: u64,
    free_inodes: u32,
    flags: u16,
    itable_unused: u32,
}

fn geo(img: &Path) -> Geo {
    let b = std::fs::read(img).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as u64;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64;
    let sb = 1024;
    let bs = 1024u64 << u32_at(sb + 0x18);
    let blocks = u32_at(sb + 4);
    let first = u32_at(sb + 0x14);
    let bpg = u32_at(sb + 0x20);
    let ipg = u32_at(sb + 0x28) as u32;
    let inode_size = u16_at(sb + 0x58);
    let is64 = u32_at(sb + 0x60) & 0x80 != 0;
    let ds = if is64 { u16_at(sb + 0xFE) } else { 32 } as usize;
    let ngroups = (blocks - first).div_ceil(bpg) as usize;
    let gdt = (1024 / bs as usize + 1) * bs as usize;
    let groups = (0..ngroups)
        .map(|g| {
            let o = gdt + g * ds;
            let hi32 =
                |lo: usize, hi: usize| u32_at(o + lo) | if is64 { u32_at(o + hi) << 32 } else { 0 };
            let hi16 = |lo: usize, hi: usize| {
                (u16_at(o + lo) | if is64 { u16_at(o + hi) << 16 } else { 0 }) as u32
            };
            Desc {
                block_bitmap: hi32(0, 0x20),
                inode_bitmap: hi32(4, 0x24),
                inode_table: hi32(8, 0x28),
                free_inodes: hi16(0xE, 0x2E),
                flags: u16_at(o + 0x12) as u16,
                itable_unused: hi16(0x1C, 0x32),
            }
        })
        .collect();
    Geo {
        bs,
        ipg,
        inode_size,
        groups,
    }
}

/// Fill what mke2fs leaves undefined with 0xA5: the block bitmaps of
/// BLOCK_UNINIT groups, the inode bitmaps of INODE_UNINIT groups, and
/// every inode table's tail past ipg - bg_itable_unused. e2fsck must still
/// call the image clean (it reads none of it).
fn scribble_undefined(img: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let g = geo(img);
    let mut f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    let junk = vec![0xA5u8; g.bs as usize];
    for d in &g.groups {
        if d.flags & BLOCK_UNINIT != 0 {
            f.seek(SeekFrom::Start(d.block_bitmap * g.bs)).unwrap();
            f.write_all(&junk).unwrap();
        }
        if d.flags & INODE_UNINIT != 0 {
            f.seek(SeekFrom::Start(d.inode_bitmap * g.bs)).unwrap();
            f.write_all(&junk).unwrap();
        }
        let from = (g.ipg - d.itable_unused) as u64;
        let len = (d.itable_unused as u64 * g.inode_size) as usize;
        f.seek(SeekFrom::Start(d.inode_table * g.bs + from * g.inode_size))
            .unwrap();
        f.write_all(&vec![0xA5u8; len]).unwrap();
    }
    drop(f);
    fsck_silent(img);
}

fn count(g: &Geo, flag: u16) -> usize {
    g.groups.iter().filter(|d| d.flags & flag != 0).count()
}

/// Fill an image across its groups: directories (spread over the groups)
/// each with a file, until it is nearly full; e2fsck after every command;
/// every file read back. Returns how many groups lost BLOCK_UNINIT and
/// INODE_UNINIT.
fn fill_across_groups(img: &Path, dir: &Path, file_kib: usize) -> (usize, usize) {
    let before = geo(img);
    let mut files = Vec::new();
    for i in 0..64 {
        let d = format!("/d{i}");
        ok(img, "mkdir", &[&d]);
        fsck_silent(img);
        let host = dir.join(format!("h{i}"));
        std::fs::write(&host, pseudo_random(file_kib * 1024, i as u64 + 1)).unwrap();
        let dest = format!("{d}/f");
        let out = run(
            &["put", img.to_str().unwrap(), host.to_str().unwrap(), &dest],
            None,
        );
        fsck_silent(img);
        if !out.status.success() {
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(e.contains("no space"), "put {dest}: {e}");
            break;
        }
        files.push((dest, host));
    }
    assert!(files.len() >= 4, "only {} files fit", files.len());
    for (dest, host) in &files {
        assert_eq!(
            debugfs_cat(img, dest),
            std::fs::read(host).unwrap(),
            "{dest} reads back"
        );
    }
    let after = geo(img);
    let used = |flag: u16| {
        before
            .groups
            .iter()
            .zip(&after.groups)
            .filter(|(b, a)| b.flags & flag != 0 && a.flags & flag == 0)
            .count()
    };
    // Nothing is left flagged that holds something.
    for (g, d) in after.groups.iter().enumerate() {
        if d.flags & INODE_UNINIT != 0 {
            assert_eq!(d.free_inodes, after.ipg, "group {g}");
        }
    }
    (used(BLOCK_UNINIT), used(INODE_UNINIT))
}

#[test]
fn uninit_groups_are_initialised_when_first_used() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    for (block, features, extra, kib) in [
        (1024, "uninit_bg", &[][..], 3000),
        (1024, "uninit_bg,flex_bg", &[][..], 3000),
        (1024, "uninit_bg,flex_bg", &["-G", "4"][..], 3000),
        (
            4096,
            "uninit_bg,flex_bg,huge_file,dir_nlink,extra_isize",
            &["-g", "2048", "-I", "256"][..],
            3000,
        ),
        (
            1024,
            "uninit_bg,^resize_inode,^sparse_super",
            &["-I", "128"][..],
            3000,
        ),
    ] {
        let img = mk(dir.path(), "u.img", block, "64M", features, extra);
        let g0 = geo(&img);
        assert!(
            g0.groups.len() >= 8,
            "{features}: {} groups",
            g0.groups.len()
        );
        assert!(count(&g0, BLOCK_UNINIT) >= 3, "{features} {g0:?}");
        assert!(count(&g0, INODE_UNINIT) >= 3, "{features}");
        scribble_undefined(&img);
        let (b, i) = fill_across_groups(&img, dir.path(), kib);
        assert!(b >= 3, "{features} {extra:?}: {b} BLOCK_UNINIT groups used");
        assert!(i >= 3, "{features} {extra:?}: {i} INODE_UNINIT groups used");
    }
}

/// 64bit (64-byte descriptors, with extents as mke2fs requires) and
/// uninit_bg without metadata_csum: the crc16 covers the descriptors' high
/// halves too; counts are written with their high halves.
#[test]
fn ext4_64bit_with_uninit_bg_filled_across_groups() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    for (block, extra) in [(1024, &[][..]), (4096, &["-g", "2048"][..])] {
        let img = mk_t(
            "ext4",
            dir.path(),
            "e.img",
            block,
            "64M",
            "has_journal,extent,huge_file,flex_bg,^metadata_csum,uninit_bg,64bit,dir_nlink,extra_isize",
            extra,
        );
        let g0 = geo(&img);
        assert!(g0.groups.len() >= 8);
        scribble_undefined(&img);
        let (b, i) = fill_across_groups(&img, dir.path(), 3000);
        assert!(
            b >= 3 && i >= 3,
            "{block}: {b} block, {i} inode groups used"
        );
        // Extent-mapped, and counted right through the high halves.
        assert!(debugfs(&img, "stat /d0/f").contains("EXTENTS"));
        ok(&img, "rm", &["-r", "/d1"]);
        fsck_silent(&img);
    }
}

/// Many inodes in one group: bg_itable_unused follows the highest inode
/// allocated, is not raised by freeing, and no inode is handed out twice.
#[test]
fn itable_unused_follows_allocation_in_one_group() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let img = mk(
        dir.path(),
        "i.img",
        1024,
        "64M",
        "uninit_bg",
        &["-I", "256"],
    );
    scribble_undefined(&img);
    let tree = dir.path().join("many");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..600 {
        std::fs::write(tree.join(format!("f{i:03}")), format!("{i}\n")).unwrap();
    }
    ok(&img, "put", &["-r", tree.to_str().unwrap(), "/many"]);
    fsck_silent(&img);
    let ino = |p: &str| -> u32 {
        let s = debugfs(&img, &format!("stat {p}"));
        s.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let g = geo(&img);
    let ipg = g.ipg;
    let dg = (ino("/many") - 1) / ipg;
    let inos: Vec<u32> = (0..600).map(|i| ino(&format!("/many/f{i:03}"))).collect();
    assert!(
        inos.iter().all(|&i| (i - 1) / ipg == dg),
        "all in group {dg}"
    );
    let top = inos.iter().map(|&i| (i - 1) % ipg).max().unwrap();
    let d = &g.groups[dg as usize];
    assert_eq!(d.itable_unused, ipg - top - 1, "group {dg}: {d:?}");
    assert_eq!(d.flags & INODE_UNINIT, 0);
    // Free the first half: the count stays.
    for i in 0..300 {
        ok(&img, "rm", &[&format!("/many/f{i:03}")]);
    }
    fsck_silent(&img);
    assert_eq!(geo(&img).groups[dg as usize].itable_unused, ipg - top - 1);
    // New files take the freed inodes, each once.
    let tree2 = dir.path().join("more");
    std::fs::create_dir(&tree2).unwrap();
    for i in 0..400 {
        std::fs::write(tree2.join(format!("n{i:03}")), format!("n{i}\n")).unwrap();
    }
    ok(&img, "put", &["-r", tree2.to_str().unwrap(), "/many/more"]);
    fsck_silent(&img);
    let mut all: Vec<u32> = (300..600).map(|i| ino(&format!("/many/f{i:03}"))).collect();
    all.extend((0..400).map(|i| ino(&format!("/many/more/n{i:03}"))));
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "an inode was handed out twice");
    assert_eq!(debugfs_cat(&img, "/many/more/n399"), b"n399\n", "read back");
}

/// dir_nlink: past 65,000 links a directory's count is 1; it stays 1 while
/// the directory has that many subdirectories, and becomes the real count
/// again below (e2fsck -n reports a 1 there).
#[test]
fn dir_nlink_past_65000_subdirectories() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let img = mk(
        dir.path(),
        "n.img",
        1024,
        "160M",
        "uninit_bg,flex_bg,dir_nlink",
        &["-N", "70000"],
    );
    let tree = dir.path().join("big");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..65_010 {
        std::fs::create_dir(tree.join(i.to_string())).unwrap();
    }
    ok(
        &img,
        "put",
        &["-r", "--no-sync", tree.to_str().unwrap(), "/big"],
    );
    fsck_silent(&img);
    let links = |img: &Path| -> u32 {
        let s = debugfs(img, "stat /big");
        let l = s.split("Links: ").nth(1).unwrap();
        l.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(links(&img), 1, "65,010 subdirectories");
    // Still more than 64,998 after these: 1 stays.
    for i in 0..6 {
        ok(&img, "rmdir", &["--no-sync", &format!("/big/{i}")]);
    }
    fsck_silent(&img);
    assert_eq!(links(&img), 1);
    // Down to 64,998: the real count again.
    for i in 6..12 {
        ok(&img, "rmdir", &["--no-sync", &format!("/big/{i}")]);
    }
    fsck_silent(&img);
    assert_eq!(links(&img), 65_000);
    // And up again.
    ok(&img, "mkdir", &["/big/x"]);
    fsck_silent(&img);
    assert_eq!(links(&img), 1);
    ok(&img, "mv", &["/big/x", "/x"]);
    fsck_silent(&img);
    assert_eq!(links(&img), 65_000);
}

/// Without dir_nlink, a directory at 65,000 links gets no subdirectory
/// more: a clear error, the image unchanged.
#[test]
fn without_dir_nlink_the_65000th_link_is_refused() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let img = mk(dir.path(), "n.img", 1024, "16M", "^dir_nlink", &[]);
    ok(&img, "mkdir", &["/d"]);
    // The count as 64,998 subdirectories make it.
    let o = Command::new("debugfs")
        .args(["-w", "-R", "sif /d links_count 65000"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(o.status.success());
    let before = bytes(&img);
    let e = fails(&img, "mkdir", &["/d/one-more"], 1);
    assert!(
        e.contains("dir_nlink") && e.contains("subdirectories") && e.lines().count() == 1,
        "{e}"
    );
    assert!(bytes(&img) == before, "image changed");
    // Files may still be added.
    ok(&img, "put", &["-", "/d/file"]);
    // With dir_nlink, the same directory's count becomes 1.
    let img2 = mk(dir.path(), "n2.img", 1024, "16M", "dir_nlink", &[]);
    ok(&img2, "mkdir", &["/d"]);
    let o = Command::new("debugfs")
        .args(["-w", "-R", "sif /d links_count 65000"])
        .arg(&img2)
        .output()
        .unwrap();
    assert!(o.status.success());
    ok(&img2, "mkdir", &["/d/one-more"]);
    assert!(debugfs(&img2, "stat /d").contains("Links: 1 "));
}

/// huge_file: an inode whose i_blocks counts file system blocks (the
/// HUGE_FILE flag) is shrunk and rewritten with its count right.
#[test]
fn huge_file_counts_in_both_units() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let img = mk(dir.path(), "h.img", 4096, "64M", "huge_file,uninit_bg", &[]);
    let host = dir.path().join("f");
    std::fs::write(&host, pseudo_random(40 * 4096, 5)).unwrap();
    ok(&img, "put", &[host.to_str().unwrap(), "/f"]);
    fsck_silent(&img);
    // 41 blocks (40 data, 1 indirect) in 512-byte units: 328. As e2fsck
    // accepts it too: the flag and the count in 4 KiB blocks.
    let st = debugfs(&img, "stat /f");
    assert!(st.contains("Blockcount: 328"), "{st}");
    let o = Command::new("debugfs")
        .args(["-w", "-f", "-"])
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"sif /f flags 0x40000\nsif /f blocks 41\n")?;
            c.wait()
        })
        .unwrap();
    assert!(o.success());
    fsck_silent(&img);
    // Keep 5 blocks: 5 * 8 sectors, in sectors again (the flag cleared).
    ok(&img, "truncate", &["/f", &(5 * 4096).to_string()]);
    fsck_silent(&img);
    let st = debugfs(&img, "stat /f");
    assert!(st.contains("Blockcount: 40"), "{st}");
    assert!(st.contains("Flags: 0x0"), "{st}");
    let mut want = std::fs::read(&host).unwrap();
    want.truncate(5 * 4096);
    assert_eq!(debugfs_cat(&img, "/f"), want);
}

/// extra_isize: new inodes get i_extra_isize, nanosecond times and a
/// creation time; writing an inode keeps its in-inode attributes.
#[test]
fn large_inodes_get_extra_fields_and_keep_them() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let img = mk(
        dir.path(),
        "x.img",
        1024,
        "16M",
        "extra_isize,uninit_bg,huge_file,dir_nlink",
        &["-I", "256"],
    );
    ok(&img, "put", &["-", "/f"]);
    fsck_silent(&img);
    let st = debugfs(&img, "stat /f");
    assert!(st.contains("Size of extra inode fields: 32"), "{st}");
    assert!(st.contains("crtime:"), "{st}");
    // ctime: 0x65544a80:1234abcd -- the extra word holds the nanoseconds.
    let extra = st
        .lines()
        .find(|l| l.trim_start().starts_with("ctime:"))
        .and_then(|l| l.split(':').nth(2))
        .map(|w| w.split_whitespace().next().unwrap().to_string())
        .unwrap();
    assert_ne!(
        u32::from_str_radix(&extra, 16).unwrap() >> 2,
        0,
        "no nanoseconds: {st}"
    );
    // An in-inode attribute set by debugfs survives a chmod.
    let o = Command::new("debugfs")
        .args(["-w", "-R", "ea_set /f user.note kept"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(o.status.success());
    ok(&img, "chmod", &["600", "/f"]);
    fsck_silent(&img);
    let ea = debugfs(&img, "ea_get /f user.note");
    assert!(ea.contains("kept"), "{ea}");
}

/// flex_bg: a new top-level directory goes to the flex group with the
/// fewest directories, and its file's data to that flex group.
#[test]
fn flex_bg_spreads_directories_and_keeps_data_near() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let img = mk(
        dir.path(),
        "f.img",
        1024,
        "64M",
        "uninit_bg,flex_bg",
        &["-G", "4"],
    );
    ok(&img, "mkdir", &["/d"]);
    let host = dir.path().join("f");
    std::fs::write(&host, pseudo_random(100_000, 7)).unwrap();
    ok(&img, "put", &[host.to_str().unwrap(), "/d/f"]);
    fsck_silent(&img);
    let g = geo(&img);
    let ino: u32 = debugfs(&img, "stat /d")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let group = (ino - 1) / g.ipg;
    assert!((4..8).contains(&group), "/d is in group {group}");
    let blocks: Vec<u64> = debugfs(&img, "blocks /d/f")
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect();
    assert!(!blocks.is_empty());
    for b in blocks {
        let bg = (b - 1) / 8192;
        assert!((4..8).contains(&bg), "block {b} of /d/f in group {bg}");
    }
    assert_eq!(debugfs_cat(&img, "/d/f"), std::fs::read(&host).unwrap());
    // A second directory: the same flex group (the other has more
    // directories), its next group. Its file's data still starts in the
    // flex group's first group, after the metadata held there.
    ok(&img, "mkdir", &["/e"]);
    ok(&img, "put", &[host.to_str().unwrap(), "/e/f"]);
    fsck_silent(&img);
    let ino: u32 = debugfs(&img, "stat /e/f")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!((ino - 1) / g.ipg, 5, "/e/f's inode");
    let first: u64 = debugfs(&img, "blocks /e/f")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!((first - 1) / 8192, 4, "/e/f starts at block {first}");
    assert_eq!(debugfs_cat(&img, "/e/f"), std::fs::read(&host).unwrap());
}

/// The write gate: these features are written; metadata_csum still not.
#[test]
fn write_gate_opens_for_these_features_only() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let img = mk(
        dir.path(),
        "g.img",
        1024,
        "16M",
        "uninit_bg,flex_bg,huge_file,dir_nlink,extra_isize",
        &["-I", "256"],
    );
    ok(&img, "mkdir", &["/ok"]);
    fsck_silent(&img);
    let img = mk(dir.path(), "m.img", 1024, "16M", "metadata_csum", &[]);
    let e = fails(&img, "mkdir", &["/x"], 1);
    assert!(e.contains("metadata_csum"), "{e}");
}

/// Block numbers for indirect maps stay below a limit (2^32 on a 64bit
/// file system), whatever the goal.
#[test]
fn allocation_below_a_limit() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let img = mk(dir.path(), "l.img", 1024, "16M", "uninit_bg", &[]);
    let mut fs = ext3edit::Filesystem::open(&img, &ext3edit::OpenOptions::read_write()).unwrap();
    let (first, _) = fs.alloc_blocks(0, 1).unwrap();
    let limit = first + 20;
    let mut got = 0u64;
    loop {
        match fs.alloc_blocks_below(10_000, 8, limit) {
            Ok((b, n)) => {
                assert!(b + n as u64 <= limit, "{b}+{n} past {limit}");
                got += n as u64;
            }
            Err(ext3edit::Error::NoSpace(_)) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(got < 20, "more blocks below {limit} than there are");
    }
    assert!(got > 0);
    // Blocks at or past the limit are still there for others.
    let (b, _) = fs.alloc_blocks(limit, 1).unwrap();
    assert!(b >= limit);
    // Dropped uncommitted: the image stays as it was.
}

/// An inode allocated past the start of the unused tail (here: a hint
/// kept across a rollback, in an INODE_UNINIT group again) gives up the
/// inodes below it to e2fsck: on a table that is not zeroed they are
/// zeroed first.
#[test]
fn inodes_given_up_by_the_unused_tail_are_zeroed() {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let img = mk(
        dir.path(),
        "z.img",
        1024,
        "64M",
        "uninit_bg",
        &["-I", "256"],
    );
    scribble_undefined(&img);
    let a = ext3edit::NewFile {
        perm: 0o755,
        ..Default::default()
    };
    let mut fs = ext3edit::Filesystem::open(&img, &ext3edit::OpenOptions::read_write()).unwrap();
    let root = fs.root();
    let d = fs.mkdir(root, b"d", &a).unwrap();
    let ipg = fs.superblock().inodes_per_group;
    let g = (d - 1) / ipg;
    assert!(g > 0, "the directory went to an uninitialised group");
    for i in 0..4u8 {
        fs.create_file(d, &[b'f', b'0' + i], &a, &mut &b"x"[..])
            .unwrap();
    }
    fs.rollback().unwrap();
    let d2 = fs.mkdir(root, b"d", &a).unwrap();
    assert_eq!((d2 - 1) / ipg, g, "same group again");
    fs.create_file(d2, b"f", &a, &mut &b"y"[..]).unwrap();
    fs.commit().unwrap();
    drop(fs);
    fsck_silent(&img);
    let gd = &geo(&img).groups[g as usize];
    let top = (d2 - 1) % ipg + 1;
    assert!(gd.itable_unused <= ipg - top, "{gd:?}");
    assert_eq!(debugfs_cat(&img, "/d/f"), b"y");
}
