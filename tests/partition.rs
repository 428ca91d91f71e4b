//! Whole-disk images: MBR and GPT tables written by the test, ext
//! partitions made by mke2fs, edits confined to the partition picked.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const LINUX_FS: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const EFI: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// The on-disk bytes of a GUID given in text form.
fn guid(s: &str) -> [u8; 16] {
    let h: String = s.chars().filter(|c| *c != '-').collect();
    let b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut g = [0u8; 16];
    g[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    g[4..6].copy_from_slice(&[b[5], b[4]]);
    g[6..8].copy_from_slice(&[b[7], b[6]]);
    g[8..].copy_from_slice(&b[8..]);
    g
}

/// An ext file system of `kib` KiB made by mke2fs, as bytes.
fn ext(fstype: &str, kib: u64, label: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fs");
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", fstype, "-b", "1024", "-L", label])
        .arg(&p)
        .arg(format!("{kib}k"))
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&p).unwrap()
}

/// A GPT disk of `sectors` sectors of `ss` bytes with partitions
/// (type, first, last sector, name); entries at LBA 2, backup at the end.
fn gpt_disk(ss: usize, sectors: u64, parts: &[(&str, u64, u64, &str)]) -> Vec<u8> {
    let mut d = vec![0u8; ss * sectors as usize];
    // Protective MBR.
    let e = &mut d[446..462];
    e[4] = 0xee;
    e[8..12].copy_from_slice(&1u32.to_le_bytes());
    e[12..16].copy_from_slice(&((sectors - 1).min(u32::MAX as u64) as u32).to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xaa;
    let mut entries = vec![0u8; 128 * 128];
    for (i, (ty, first, last, name)) in parts.iter().enumerate() {
        let e = &mut entries[128 * i..128 * (i + 1)];
        e[..16].copy_from_slice(&guid(ty));
        e[16] = i as u8 + 1; // unique GUID
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        for (k, u) in name.encode_utf16().enumerate() {
            e[56 + 2 * k..58 + 2 * k].copy_from_slice(&u.to_le_bytes());
        }
    }
    let ecrc = crc32fast::hash(&entries);
    let esectors = entries.len().div_ceil(ss) as u64;
    let header = |cur: u64, backup: u64, elba: u64| {
        let mut h = vec![0u8; 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x10000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&cur.to_le_bytes());
        h[32..40].copy_from_slice(&backup.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + esectors).to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 2 - esectors).to_le_bytes());
        h[56] = 0x42;
        h[72..80].copy_from_slice(&elba.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&ecrc.to_le_bytes());
        let c = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        h
    };
    let last = sectors - 1;
    let h = header(1, last, 2);
    d[ss..ss + 92].copy_from_slice(&h);
    d[2 * ss..2 * ss + entries.len()].copy_from_slice(&entries);
    let belba = last - esectors;
    let b = header(last, 1, belba);
    d[last as usize * ss..last as usize * ss + 92].copy_from_slice(&b);
    let o = belba as usize * ss;
    d[o..o + entries.len()].copy_from_slice(&entries);
    d
}

fn put_at(d: &mut [u8], off: u64, data: &[u8]) {
    d[off as usize..off as usize + data.len()].copy_from_slice(data);
}

/// `fsck -fn` of the bytes `range` of `disk`, via a copy.
fn fsck_part(disk: &Path, start: u64, len: u64) -> std::path::PathBuf {
    let d = std::fs::read(disk).unwrap();
    let p = disk.with_extension(format!("part{start}"));
    std::fs::write(&p, &d[start as usize..(start + len) as usize]).unwrap();
    fsck_clean(&p);
    p
}

fn run_ok(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_fail(args: &[&str], code: i32) -> String {
    let out = run(args, None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

/// Two ext3 partitions of 8 MiB on a GPT disk (plus an EFI partition).
fn two_part_gpt(ss: usize) -> (tempfile::TempDir, std::path::PathBuf, [(u64, u64); 2]) {
    let spm = (1 << 20) / ss as u64; // sectors per MiB
    let p1 = (spm, 9 * spm - 1);
    let p2 = (9 * spm, 17 * spm - 1);
    let mut d = gpt_disk(
        ss,
        20 * spm,
        &[
            (LINUX_FS, p1.0, p1.1, "one"),
            (LINUX_FS, p2.0, p2.1, "two"),
            (EFI, 17 * spm, 18 * spm - 1, "esp"),
        ],
    );
    let a = ext("ext3", 8192, "first");
    let b = ext("ext3", 8192, "second");
    let r1 = (p1.0 * ss as u64, 8 << 20);
    let r2 = (p2.0 * ss as u64, 8 << 20);
    put_at(&mut d, r1.0, &a);
    put_at(&mut d, r2.0, &b);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    std::fs::write(&path, &d).unwrap();
    (dir, path, [r1, r2])
}

#[test]
fn gpt_edit_in_partition_2_leaves_the_rest_byte_for_byte() {
    require_e2fsprogs!();
    for ss in [512usize, 4096] {
        let (dir, disk, [_, (s2, l2)]) = two_part_gpt(ss);
        let before = std::fs::read(&disk).unwrap();
        let host = dir.path().join("hello");
        std::fs::write(&host, b"hello partition two\n").unwrap();
        let d = disk.to_str().unwrap();
        run_ok(&[
            "put",
            d,
            host.to_str().unwrap(),
            "/hello",
            "--partition",
            "2",
        ]);
        // Given before the command name too.
        run_ok(&["--partition", "2", "mkdir", d, "/dir"]);
        let after = std::fs::read(&disk).unwrap();
        assert_eq!(before.len(), after.len());
        let (s, e) = (s2 as usize, (s2 + l2) as usize);
        assert_eq!(
            before[..s],
            after[..s],
            "sector size {ss}: before partition 2"
        );
        assert_eq!(
            before[e..],
            after[e..],
            "sector size {ss}: after partition 2"
        );
        assert_ne!(before[s..e], after[s..e]);
        let part = fsck_part(&disk, s2, l2);
        assert_eq!(debugfs_cat(&part, "/hello"), b"hello partition two\n");
        // Read back through the disk.
        let out = run_ok(&["ls", d, "/", "--partition", "2"]);
        assert!(out.contains("hello") && out.contains("dir"), "{out}");
        let out = run_ok(&["ls", d, "/", "--partition", "1"]);
        assert!(!out.contains("hello"), "{out}");
    }
}

#[test]
fn several_ext_partitions_need_partition() {
    require_e2fsprogs!();
    let (_dir, disk, _) = two_part_gpt(512);
    let before = std::fs::read(&disk).unwrap();
    let d = disk.to_str().unwrap();
    let err = run_fail(&["mkdir", d, "/x"], 1);
    assert!(
        err.contains("2 ext2/3/4 partitions: pick one with --partition N")
            && err.contains("1 (Linux filesystem")
            && err.contains("2 (Linux filesystem"),
        "{err}"
    );
    let err = run_fail(&["ls", d, "/", "--partition", "3"], 1);
    assert!(
        err.contains("partition 3 (EFI System") && err.contains("no ext2/3/4"),
        "{err}"
    );
    let err = run_fail(&["ls", d, "/", "--partition", "9"], 1);
    assert!(err.contains("has no partition 9"), "{err}");
    assert_eq!(std::fs::read(&disk).unwrap(), before);
    // info lists them without picking one.
    let out = run_ok(&["info", d]);
    assert!(
        out.contains("Partition table:  GPT (512-byte sectors)"),
        "{out}"
    );
    assert!(
        out.contains("Linux filesystem") && out.contains("EFI System"),
        "{out}"
    );
    assert!(out.contains("--partition N"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&run_ok(&["info", d, "--json"])).unwrap();
    let parts = v["partition_table"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1]["number"], 2);
    assert_eq!(parts[1]["start"], 9 << 20);
    assert_eq!(parts[1]["size"], 8 << 20);
    assert_eq!(parts[1]["ext"], true);
    assert_eq!(parts[2]["ext"], false);
    assert_eq!(parts[1]["name"], "two");
    // With --partition, info shows the file system and the table.
    let v: serde_json::Value =
        serde_json::from_str(&run_ok(&["info", d, "--json", "--partition", "2"])).unwrap();
    assert_eq!(v["label"], "second");
    assert_eq!(v["partition"], 2);
    assert_eq!(v["partition_table"]["type"], "gpt");
}

#[test]
fn damaged_gpt_is_an_error_or_uses_the_backup() {
    require_e2fsprogs!();
    let (_dir, disk, _) = two_part_gpt(512);
    let d = disk.to_str().unwrap();
    let mut b = std::fs::read(&disk).unwrap();
    // A bad primary header CRC: the backup header is used.
    b[512 + 16] ^= 1;
    std::fs::write(&disk, &b).unwrap();
    let out = run_ok(&["info", d, "--partition", "1"]);
    assert!(out.contains("first"), "{out}");
    // A damaged entries array (both copies): an error naming the CRC.
    b[512 + 16] ^= 1;
    b[2 * 512 + 40] ^= 1;
    std::fs::write(&disk, &b).unwrap();
    let err = run_fail(&["ls", d, "/"], 1);
    assert!(
        err.contains("GPT entries array at byte 1024: CRC32"),
        "{err}"
    );
}

fn mbr_entry(d: &mut [u8], at: usize, i: usize, ty: u8, lba: u32, count: u32) {
    let e = &mut d[at + 446 + 16 * i..at + 462 + 16 * i];
    e[4] = ty;
    e[8..12].copy_from_slice(&lba.to_le_bytes());
    e[12..16].copy_from_slice(&count.to_le_bytes());
    d[at + 510] = 0x55;
    d[at + 511] = 0xaa;
}

#[test]
fn mbr_disk_with_one_ext_partition_is_picked_by_itself() {
    require_e2fsprogs!();
    // p1: FAT32 (not ext), p2: Linux ext2, p5 (logical in an extended
    // partition): swap.
    let mut d = vec![0u8; 24 << 20];
    mbr_entry(&mut d, 0, 0, 0x0c, 2048, 2048);
    mbr_entry(&mut d, 0, 1, 0x83, 4096, 16384);
    mbr_entry(&mut d, 0, 2, 0x05, 20480, 8192);
    mbr_entry(&mut d, 20480 * 512, 0, 0x82, 2048, 4096);
    put_at(&mut d, 4096 * 512u64, &ext("ext2", 8192, "mbrfs"));
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("mbr.img");
    std::fs::write(&disk, &d).unwrap();
    let dd = disk.to_str().unwrap();
    let host = dir.path().join("f");
    std::fs::write(&host, pseudo_random(100_000, 7)).unwrap();
    run_ok(&["put", dd, host.to_str().unwrap(), "/f"]);
    let after = std::fs::read(&disk).unwrap();
    let (s, e) = (4096 * 512, (4096 + 16384) * 512);
    assert_eq!(d[..s], after[..s]);
    assert_eq!(d[e..], after[e..]);
    let part = fsck_part(&disk, s as u64, (e - s) as u64);
    assert_eq!(debugfs_cat(&part, "/f"), pseudo_random(100_000, 7));
    let v: serde_json::Value = serde_json::from_str(&run_ok(&["info", dd, "--json"])).unwrap();
    assert_eq!(v["label"], "mbrfs");
    assert_eq!(v["partition"], 2);
    let parts = v["partition_table"]["partitions"].as_array().unwrap();
    let nums: Vec<u64> = parts
        .iter()
        .map(|p| p["number"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, [1, 2, 5]);
    assert_eq!(parts[2]["type"], "0x82");
    assert_eq!(parts[2]["start"], (20480 + 2048) * 512);
    let out = run_ok(&["info", dd]);
    assert!(
        out.contains("Partition table:  MBR") && out.contains("Linux swap"),
        "{out}"
    );
    // --partition on an image that is not a disk.
    let err = run_fail(&["ls", part.to_str().unwrap(), "/", "--partition", "1"], 1);
    assert!(err.contains("not a partitioned disk"), "{err}");
}

#[test]
fn logical_partition_holds_the_file_system() {
    require_e2fsprogs!();
    let mut d = vec![0u8; 24 << 20];
    mbr_entry(&mut d, 0, 0, 0x05, 2048, 40000);
    // First EBR: logical 5 (swap), link to the second EBR.
    mbr_entry(&mut d, 2048 * 512, 0, 0x82, 2048, 2048);
    mbr_entry(&mut d, 2048 * 512, 1, 0x05, 6144, 20000);
    // Second EBR: logical 6 (ext3).
    mbr_entry(&mut d, (2048 + 6144) * 512, 0, 0x83, 2048, 16384);
    let start: usize = (2048 + 6144 + 2048) * 512;
    put_at(&mut d, start as u64, &ext("ext3", 8192, "logical"));
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("ebr.img");
    std::fs::write(&disk, &d).unwrap();
    let dd = disk.to_str().unwrap();
    run_ok(&["mkdir", dd, "/in6", "--partition", "6"]);
    let after = std::fs::read(&disk).unwrap();
    let end = start + (8 << 20);
    assert_eq!(d[..start], after[..start]);
    assert_eq!(d[end..], after[end..]);
    let part = fsck_part(&disk, start as u64, 8 << 20);
    assert!(debugfs(&part, "ls -l /").contains("in6"));
}

#[test]
fn compressed_whole_disk() {
    require_e2fsprogs!();
    let (dir, disk, [_, (s2, l2)]) = two_part_gpt(512);
    let before = std::fs::read(&disk).unwrap();
    let gz = dir.path().join("disk.img.gz");
    let d = disk.to_str().unwrap();
    let g = gz.to_str().unwrap();
    run_ok(&["pack", d, g]);
    let host = dir.path().join("h");
    std::fs::write(&host, b"in the gz\n").unwrap();
    run_ok(&["put", g, host.to_str().unwrap(), "/h", "--partition", "2"]);
    let raw = dir.path().join("back.img");
    run_ok(&["unpack", g, raw.to_str().unwrap()]);
    let after = std::fs::read(&raw).unwrap();
    let (s, e) = (s2 as usize, (s2 + l2) as usize);
    assert_eq!(before[..s], after[..s]);
    assert_eq!(before[e..], after[e..]);
    let part = fsck_part(&raw, s2, l2);
    assert_eq!(debugfs_cat(&part, "/h"), b"in the gz\n");
    let out = run_ok(&["ls", g, "/", "--partition", "2"]);
    assert!(out.contains('h'), "{out}");
}

#[test]
fn info_escapes_partition_names_and_the_label() {
    require_e2fsprogs!();
    // A partition name and a volume label that would clear the screen and
    // move the cursor on a terminal.
    let spm = 2048u64;
    let mut d = gpt_disk(
        512,
        20 * spm,
        &[
            (LINUX_FS, spm, 9 * spm - 1, "one\u{1b}[2J\u{9b}1A"),
            (EFI, 17 * spm, 18 * spm - 1, "esp\nsecond line"),
        ],
    );
    put_at(&mut d, spm * 512, &ext("ext3", 8192, "lab\u{1b}]0;x"));
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, &d).unwrap();
    let p = disk.to_str().unwrap();
    let out = run_ok(&["info", p, "-b"]);
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{9b}'),
        "raw escapes in: {out:?}"
    );
    assert!(out.contains("\"one\\033[2J\\2331A\""), "{out}");
    assert!(out.contains("\"esp\\nsecond line\""), "{out}");
    assert!(out.contains("Label:            lab\\033]0;x"), "{out}");
    // --json keeps the names as they are (JSON escapes them itself).
    let v: serde_json::Value = serde_json::from_str(&run_ok(&["info", p, "--json"])).unwrap();
    assert_eq!(
        v["partition_table"]["partitions"][0]["name"],
        "one\u{1b}[2J\u{9b}1A"
    );
}
