//! `ext3edit mkfs`: images made without mke2fs, compared with mke2fs's.
//!
//! Every case makes the same file system twice, with `ext3edit mkfs` and
//! with mke2fs (same size, UUID, hash seed and time), and requires: the
//! same `dumpe2fs` output (superblock and every group), the same bytes
//! everywhere but `s_kbytes_written` and the superblock checksum that
//! covers it (mke2fs counts its own writes through its block cache),
//! e2fsck clean, and then ext3edit writing into it, e2fsck clean again
//! and debugfs reading back what was written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

const UUID: &str = "0d0c7a4e-4a2f-4d4e-9a55-3a3c3b2a1f00";
const SEED: &str = "5b7c1e3a-2f4d-4e6a-9b8c-abcdef012345";
const TIME: &str = "1700000000";

fn ext3edit(args: &[&str]) -> Output {
    Command::new(common::bin())
        .args(args)
        .env("SOURCE_DATE_EPOCH", TIME)
        .output()
        .expect("run ext3edit")
}

fn size_bytes(size: &str) -> u64 {
    let (n, m) = size.split_at(size.len() - 1);
    let mul = match m {
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => panic!("size {size}"),
    };
    n.parse::<u64>().unwrap() * mul
}

fn dumpe2fs(img: &Path) -> String {
    let out = Command::new("dumpe2fs")
        .arg(img)
        .output()
        .expect("dumpe2fs");
    assert!(out.status.success(), "dumpe2fs {}", img.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // mke2fs's count of its own writes, and the checksum covering it.
        .filter(|l| !l.starts_with("Lifetime writes:") && !l.starts_with("Checksum:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Compare two images byte by byte, allowing differences only in the
/// `s_kbytes_written` and `s_checksum` fields of superblock copies. Holes
/// of both files are skipped (SEEK_DATA), so images of many GiB compare
/// in the time their data takes.
fn same_bytes_but_kbytes(a: &Path, b: &Path) {
    use std::os::unix::fs::FileExt;
    let (fa, fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let size = fa.metadata().unwrap().len();
    assert_eq!(size, fb.metadata().unwrap().len(), "image sizes");
    const CH: u64 = 1 << 20;
    let mut ba = vec![0u8; CH as usize];
    let mut bb = vec![0u8; CH as usize];
    let mut pos = 0u64;
    while pos < size {
        if let (Some(da), Some(db)) = (
            ext3edit::device::next_data(&fa, pos),
            ext3edit::device::next_data(&fb, pos),
        ) {
            let next = da.min(db);
            if next == u64::MAX {
                break;
            }
            if next > pos {
                pos = next - next % 1024;
            }
        }
        let n = CH.min(size - pos) as usize;
        fa.read_exact_at(&mut ba[..n], pos).unwrap();
        fb.read_exact_at(&mut bb[..n], pos).unwrap();
        if ba[..n] != bb[..n] {
            for i in 0..n {
                if ba[i] != bb[i] {
                    let sb = i - i % 1024;
                    let field = i % 1024;
                    let is_sb = |x: &[u8]| x[sb + 0x38] == 0x53 && x[sb + 0x39] == 0xEF;
                    let ok = is_sb(&ba)
                        && is_sb(&bb)
                        && ((0x178..0x180).contains(&field) || (0x3FC..0x400).contains(&field));
                    assert!(
                        ok,
                        "{} and {} differ at byte {} (block of 1 KiB {}, offset {:#x}): {:#04x} vs {:#04x}",
                        a.display(),
                        b.display(),
                        pos + i as u64,
                        (pos + i as u64) / 1024,
                        field,
                        ba[i],
                        bb[i]
                    );
                }
            }
        }
        pos += n as u64;
    }
}

/// Make `size` with ext3edit (`ours`) and mke2fs (`theirs`), compare,
/// then write into ours.
fn case(size: &str, fstype: &str, ours: &[&str], theirs: &[&str]) {
    require_e2fsprogs!();
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("ours.img");
    let m = dir.path().join("mke2fs.img");
    let os = o.to_str().unwrap();
    let mut args = vec![
        "mkfs",
        os,
        size,
        "--type",
        fstype,
        "--uuid",
        UUID,
        "--hash-seed",
        SEED,
        "-q",
    ];
    args.extend_from_slice(ours);
    let out = ext3edit(&args);
    assert!(
        out.status.success(),
        "ext3edit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = size_bytes(size);
    std::fs::File::create(&m).unwrap().set_len(bytes).unwrap();
    let hash = format!("hash_seed={SEED}");
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", fstype, "-U", UUID, "-E", &hash])
        .args(theirs)
        .arg(&m)
        .arg(format!("{}k", bytes / 1024))
        .env("E2FSPROGS_FAKE_TIME", TIME)
        .env("MKE2FS_CONFIG", "/etc/mke2fs.conf")
        .output()
        .expect("mke2fs");
    assert!(
        out.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sparse: far fewer bytes allocated than the size.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(&o).unwrap();
        assert_eq!(md.len(), bytes);
        assert!(
            md.blocks() * 512 < bytes / 4 + (4 << 20),
            "not sparse: {} bytes allocated of {bytes}",
            md.blocks() * 512
        );
    }
    let (dm, dox) = (dumpe2fs(&m), dumpe2fs(&o));
    if dm != dox {
        let first = dm
            .lines()
            .zip(dox.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("mke2fs: {a}\nours:   {b}"))
            .unwrap_or_else(|| "one is longer".into());
        panic!("dumpe2fs differs, first line:\n{first}");
    }
    same_bytes_but_kbytes(&m, &o);
    common::fsck_clean(&o);
    // ext3edit writes into it; e2fsck and debugfs agree.
    common::ok(&o, "mkdir", &["/etc/ssh", "-p", "--mode", "700"]);
    let data = common::pseudo_random(70_000, 7);
    let src = dir.path().join("data.bin");
    std::fs::write(&src, &data).unwrap();
    common::ok(&o, "put", &[src.to_str().unwrap(), "/etc/ssh/data.bin"]);
    common::fsck_clean(&o);
    assert_eq!(common::debugfs_cat(&o, "/etc/ssh/data.bin"), data);
    assert!(common::debugfs(&o, "ls -l /").contains("lost+found"));
    // The independent reader too, where the image fits in memory (and
    // has the inodes it reads: ext4-view refuses 128-byte inodes with
    // metadata_csum, on mke2fs's image as on ours, byte for byte equal).
    let small_inodes = dm
        .lines()
        .any(|l| l.starts_with("Inode size:") && l.ends_with(" 128"));
    if bytes <= 64 << 20 && !(small_inodes && dm.contains("metadata_csum")) {
        assert_eq!(common::view(&o).read("/etc/ssh/data.bin").unwrap(), data);
    }
}

#[test]
fn ext4_8m() {
    case("8M", "ext4", &[], &[]);
}

#[test]
fn ext4_64m() {
    case("64M", "ext4", &[], &[]);
}

#[test]
fn ext4_300m() {
    case("300M", "ext4", &[], &[]);
}

#[test]
fn ext4_2g_sparse() {
    case("2G", "ext4", &[], &[]);
}

#[test]
fn ext3_64m() {
    case("64M", "ext3", &[], &[]);
}

#[test]
fn ext3_300m() {
    case("300M", "ext3", &[], &[]);
}

#[test]
fn ext3_2g_sparse() {
    case("2G", "ext3", &[], &[]);
}

#[test]
fn ext2_64m() {
    case("64M", "ext2", &[], &[]);
}

#[test]
fn ext2_300m_4k_blocks() {
    case("300M", "ext2", &["--block-size", "4096"], &["-b", "4096"]);
}

#[test]
fn ext2_floppy_1m() {
    case("1M", "ext2", &[], &[]);
}

#[test]
fn ext4_floppy_2900k() {
    case("2900K", "ext4", &[], &[]);
}

#[test]
fn ext4_4k_blocks_64m() {
    case("64M", "ext4", &["--block-size", "4096"], &["-b", "4096"]);
}

#[test]
fn ext4_1k_blocks_inode_128() {
    case("64M", "ext4", &["--inode-size", "128"], &["-I", "128"]);
}

#[test]
fn ext3_4k_blocks_inode_128() {
    case(
        "300M",
        "ext3",
        &["--block-size", "4096", "--inode-size", "128"],
        &["-b", "4096", "-I", "128"],
    );
}

#[test]
fn ext3_2k_blocks() {
    case("1G", "ext3", &["--block-size", "2048"], &["-b", "2048"]);
}

#[test]
fn ext4_no_64bit() {
    case("64M", "ext4", &["--features", "^64bit"], &["-O", "^64bit"]);
}

#[test]
fn ext4_no_flex_bg() {
    case(
        "300M",
        "ext4",
        &["--features", "^flex_bg"],
        &["-O", "^flex_bg"],
    );
}

#[test]
fn ext4_no_metadata_csum() {
    case(
        "64M",
        "ext4",
        &["--features", "^metadata_csum"],
        &["-O", "^metadata_csum"],
    );
}

#[test]
fn ext4_uninit_bg() {
    case(
        "300M",
        "ext4",
        &["--features", "^metadata_csum,uninit_bg"],
        &["-O", "^metadata_csum,uninit_bg"],
    );
}

#[test]
fn ext4_short_last_group_kept() {
    // 68136 KiB: the last group has 2600 blocks, enough to keep.
    case("68136K", "ext4", &[], &[]);
}

#[test]
fn ext4_short_last_group_dropped() {
    // 8492 KiB: the last group's 299 blocks cannot hold its metadata.
    case("8492K", "ext4", &[], &[]);
}

#[test]
fn ext4_inodes_label_journal_size() {
    case(
        "100M",
        "ext4",
        &[
            "--inodes",
            "1000",
            "--label",
            "rootfs",
            "--journal-size",
            "8",
        ],
        &["-N", "1000", "-L", "rootfs", "-J", "size=8"],
    );
}

#[test]
fn ext4_130g_journal_extent_tree() {
    // The default 1 GiB journal needs 8 extents: a tree of depth 1.
    case("130G", "ext4", &[], &[]);
}

#[test]
fn ext4_16g_journal_1g_no_csum() {
    case(
        "16G",
        "ext4",
        &["--journal-size", "1024", "--features", "^metadata_csum"],
        &["-J", "size=1024", "-O", "^metadata_csum"],
    );
}

#[test]
fn same_inputs_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    let c = dir.path().join("c.img");
    for (p, label) in [(&a, "x"), (&b, "x"), (&c, "y")] {
        let out = ext3edit(&["mkfs", p.to_str().unwrap(), "64M", "-q", "--label", label]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (ba, bb, bc) = (common::bytes(&a), common::bytes(&b), common::bytes(&c));
    assert!(ba == bb, "the same inputs gave different bytes");
    // The UUID is derived from the inputs: another label, another UUID.
    assert_ne!(ba[1024 + 0x68..1024 + 0x78], bc[1024 + 0x68..1024 + 0x78]);
    assert_ne!(ba[1024 + 0x68..1024 + 0x78], [0u8; 16]);
    assert_ne!(ba[1024 + 0xEC..1024 + 0xFC], [0u8; 16]);
    // The time is SOURCE_DATE_EPOCH's.
    let mkfs_time = u32::from_le_bytes(ba[1024 + 0x108..1024 + 0x10C].try_into().unwrap());
    assert_eq!(mkfs_time, 1_700_000_000);
}

/// Bad input: one line, a non-zero exit, no file left behind.
fn refused(dir: &Path, args: &[&str], wants: &str) {
    let img = dir.join("bad.img");
    let mut all = vec!["mkfs", img.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = ext3edit(&all);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{all:?} succeeded");
    assert_eq!(err.lines().count(), 1, "{all:?}: not one line: {err}");
    assert!(err.contains(wants), "{all:?}: {err} (wanted '{wants}')");
    assert!(!img.exists(), "{all:?} left {} behind", img.display());
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    refused(d, &["10K"], "too small");
    refused(d, &["12Q"], "unknown suffix");
    refused(
        d,
        &["64M", "--features", "frobnicate"],
        "unknown feature 'frobnicate'",
    );
    refused(
        d,
        &["64M", "--features", "inline_data,^flex_bg,quota"],
        "inline_data, quota",
    );
    refused(d, &["64M", "--block-size", "3000"], "--block-size 3000");
    refused(d, &["64M", "--block-size", "8192"], "1024, 2048 or 4096");
    refused(d, &["64M", "--inode-size", "100"], "--inode-size 100");
    refused(d, &["64M", "--type", "ext5"], "ext5");
    refused(d, &["64M", "--uuid", "not-a-uuid"], "not a UUID");
    refused(
        d,
        &["64M", "--label", "a-label-longer-than-16"],
        "at most 16",
    );
    refused(
        d,
        &["64M", "--type", "ext2", "--journal-size", "4"],
        "no journal",
    );
    refused(d, &["64M", "--journal-size", "60"], "more than half");
    refused(d, &["64M", "--inodes", "4000000000"], "too many inodes");
    refused(d, &["64K"], "too few for the reserved inodes");
    refused(
        d,
        &["64M", "--type", "ext2", "--features", "orphan_file"],
        "orphan_file needs a journal",
    );
    refused(
        d,
        &["64M", "--journal-size", "18446744073709551615"],
        "--journal-size",
    );
}

#[test]
fn existing_image_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    std::fs::write(&img, b"precious").unwrap();
    let out = ext3edit(&["mkfs", img.to_str().unwrap(), "64M"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&img).unwrap(), b"precious");
    let out = ext3edit(&["mkfs", img.to_str().unwrap(), "64M", "--force", "-q"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 << 20);
    if common::have_e2fsprogs() {
        common::fsck_clean(&img);
    }
}

#[test]
fn help_teaches() {
    let out = ext3edit(&["mkfs", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "SIZE",
        "--features",
        "SOURCE_DATE_EPOCH",
        "Examples:",
        "mke2fs",
    ] {
        assert!(text.contains(want), "help lacks {want}: {text}");
    }
}

#[test]
fn library_writes_a_device() {
    use ext3edit::device::MemDevice;
    use ext3edit::tar::mkfs::{mkfs, FsType, MkfsOptions};
    let opts = MkfsOptions::new(16 << 20, FsType::Ext4, 1_700_000_000);
    let mut dev = MemDevice::new(vec![0u8; 16 << 20]);
    let plan = mkfs(&opts, &mut dev).unwrap();
    assert_eq!(plan.block_size, 1024);
    assert_eq!(plan.blocks, 16384);
    let fs = ext3edit::Filesystem::open_device(Box::new(dev), &ext3edit::OpenOptions::read_write())
        .expect("the new file system opens for writing");
    drop(fs);
    // Too small a device is an error, not a panic.
    let mut small = MemDevice::new(vec![0u8; 1 << 20]);
    assert!(mkfs(&opts, &mut small).is_err());
}

#[test]
fn ext4_orphan_file_64m() {
    case(
        "64M",
        "ext4",
        &["--features", "orphan_file"],
        &["-O", "orphan_file"],
    );
}

#[test]
fn ext4_orphan_file_2g() {
    case(
        "2G",
        "ext4",
        &["--features", "orphan_file"],
        &["-O", "orphan_file"],
    );
}

#[test]
fn ext3_orphan_file_block_mapped() {
    case(
        "300M",
        "ext3",
        &["--features", "orphan_file"],
        &["-O", "orphan_file"],
    );
}

#[test]
fn ext3_200k_too_small_for_a_journal() {
    // Under 2048 blocks: no journal (as mke2fs, with a note), and a resize
    // inode without reserved GDT blocks.
    case("200K", "ext3", &[], &[]);
}

#[test]
fn ext3_no_sparse_super() {
    case(
        "300M",
        "ext3",
        &["--features", "^sparse_super,^resize_inode"],
        &["-O", "^sparse_super,^resize_inode"],
    );
}

#[test]
fn resize_inode_needs_sparse_super() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        &["64M", "--features", "^sparse_super"],
        "resize_inode needs sparse_super",
    );
}

/// s_kbytes_written of mke2fs and ours, primary superblock.
fn kbytes_pair(size: &str) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("o.img");
    let m = dir.path().join("m.img");
    let out = ext3edit(&["mkfs", o.to_str().unwrap(), size, "-q"]);
    assert!(out.status.success());
    std::fs::File::create(&m)
        .unwrap()
        .set_len(size_bytes(size))
        .unwrap();
    let st = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4"])
        .arg(&m)
        .arg(format!("{}k", size_bytes(size) / 1024))
        .output()
        .unwrap();
    assert!(st.status.success());
    let k = |p: &Path| {
        let b = common::bytes(p);
        u64::from_le_bytes(b[1024 + 0x178..1024 + 0x180].try_into().unwrap())
    };
    (k(&m), k(&o))
}

#[test]
fn kbytes_written_as_mke2fs_on_small_ext4() {
    require_e2fsprogs!();
    for size in ["2M", "8M", "64M"] {
        let (m, o) = kbytes_pair(size);
        assert_eq!(m, o, "{size}: s_kbytes_written mke2fs {m}, ours {o}");
    }
}

#[test]
fn ext3_8_inodes_per_group() {
    // The reserved inodes and lost+found spread over groups 0 and 1, its
    // blocks in group 1, as mke2fs puts them.
    case(
        "64M",
        "ext3",
        &["--inodes", "1", "--features", "orphan_file"],
        &["-N", "1", "-O", "orphan_file"],
    );
}

#[test]
fn ext4_few_inodes_orphan_file() {
    case(
        "64M",
        "ext4",
        &["--inodes", "20", "--features", "orphan_file"],
        &["-N", "20", "-O", "orphan_file"],
    );
}

#[test]
fn ext4_smaller_groups_for_many_inodes() {
    // More inodes than one group's bitmap holds: mke2fs shrinks the
    // groups (21624 blocks here) until they fit.
    case(
        "92885K",
        "ext4",
        &["--block-size", "4096", "--inodes", "48695"],
        &["-b", "4096", "-N", "48695"],
    );
}

#[test]
fn ext3_extent_small_groups_after_trim() {
    // The short last group is dropped, then the groups shrink to 32600
    // blocks, counted from the whole size again.
    case(
        "266576K",
        "ext3",
        &["--block-size", "4096", "--features", "extent"],
        &["-b", "4096", "-O", "extent"],
    );
}

#[test]
fn failed_write_leaves_no_file() {
    // A file size limit makes the sizing fail after the file was created.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.img");
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 1000; exec \"$BIN\" mkfs \"$IMG\" 64M")
        .env("BIN", common::bin())
        .env("IMG", &img)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("x.img"), "{err}");
    assert!(!img.exists(), "x.img left behind");
}
