//! The checksum functions of src/csum.rs against what e2fsprogs puts on
//! disk: images made by mke2fs (-d with thousands of names, a sparse file
//! with an extent tree of depth 2, an orphan file), indexed by `e2fsck
//! -D`, with xattr blocks from `debugfs ea_set`. Every checksum found on
//! disk must equal the one computed, setting it again must give back the
//! same bytes, and one byte flipped must make verification fail.
//!
//! The image is walked here by hand (superblock, descriptors, bitmaps,
//! inode tables, extent trees and indirect maps, directories), without
//! the engine, so that the checksum functions are tested alone.

mod common;

use ext3edit::csum::{self, DescCsum, Params, Problem};
use std::path::Path;
use std::process::Command;

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", args[0]));
    assert!(
        out.status.success() || (args[0] == "e2fsck" && out.status.code() == Some(1)),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A source tree for mke2fs -d: `names` empty files in big/ (long names,
/// so that 1 KiB blocks need two htree levels), a sparse file of 400
/// one-block extents (an extent tree of depth 2 with 1 KiB blocks, 1 with
/// 4 KiB), a small file and a subdirectory.
fn source_tree(root: &Path, names: usize) {
    std::fs::create_dir_all(root.join("big")).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..names {
        std::fs::write(
            root.join("big")
                .join(format!("file_with_a_rather_long_name_number_{i:05}")),
            b"",
        )
        .unwrap();
    }
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::File::create(root.join("sparse")).unwrap();
    for i in 0..400u64 {
        f.seek(SeekFrom::Start(i * 16384)).unwrap();
        f.write_all(&[b'x'; 1024]).unwrap();
    }
    std::fs::write(root.join("sub/a"), b"hello\n").unwrap();
    std::fs::write(root.join("sub/b"), b"world\n").unwrap();
}

/// Make an image: mke2fs -t `fstype` with `opts`, populated from a source
/// tree, directories indexed by e2fsck -fyD, xattr blocks on sub/a and
/// sub/b. Returns the image bytes.
fn make(tmp: &Path, name: &str, fstype: &str, opts: &[&str], names: usize) -> Vec<u8> {
    let src = tmp.join(format!("{name}.src"));
    source_tree(&src, names);
    let img = tmp.join(format!("{name}.img"));
    let img_s = img.to_str().unwrap();
    let mut args = vec!["mke2fs", "-q", "-F", "-t", fstype];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["-d", src.to_str().unwrap(), img_s, "64M"]);
    sh(&args);
    sh(&["e2fsck", "-fyD", img_s]);
    let big = "v".repeat(300);
    for f in ["/sub/a", "/sub/b"] {
        sh(&[
            "debugfs",
            "-w",
            "-R",
            &format!("ea_set {f} user.big {big}"),
            img_s,
        ]);
    }
    let out = Command::new("e2fsck")
        .args(["-fn", img_s])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: e2fsck -fn: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::read(&img).unwrap()
}

/// A raw reader over image bytes.
struct Raw<'a> {
    img: &'a [u8],
    sb: &'a [u8],
    p: Params,
    bs: usize,
    groups: u32,
    ipg: u32,
    desc_on_disk: usize,
    gdt: usize,
    is64: bool,
}

impl<'a> Raw<'a> {
    fn new(img: &'a [u8]) -> Self {
        let sb = &img[1024..2048];
        let p = Params::from_superblock(sb);
        let bs = 1024usize << le32(sb, 0x18);
        let first = le32(sb, 0x14) as u64;
        let bpg = le32(sb, 0x20) as u64;
        let mut blocks = le32(sb, 0x04) as u64;
        let is64 = le32(sb, 0x60) & 0x80 != 0;
        if is64 {
            blocks |= (le32(sb, 0x150) as u64) << 32;
        }
        let groups = (blocks - first).div_ceil(bpg) as u32;
        Raw {
            img,
            sb,
            bs,
            groups,
            ipg: le32(sb, 0x28),
            desc_on_disk: p.desc_size,
            gdt: (first as usize + 1) * bs,
            is64,
            p,
        }
    }
    fn block(&self, b: u64) -> &'a [u8] {
        let o = b as usize * self.bs;
        &self.img[o..o + self.bs]
    }
    fn desc(&self, g: u32) -> &'a [u8] {
        let o = self.gdt + g as usize * self.desc_on_disk;
        &self.img[o..o + self.desc_on_disk]
    }
    fn desc_block(&self, d: &[u8], lo: usize, hi: usize) -> u64 {
        let mut v = le32(d, lo) as u64;
        if self.is64 && self.desc_on_disk >= 64 {
            v |= (le32(d, hi) as u64) << 32;
        }
        v
    }
    fn inode_off(&self, ino: u32) -> usize {
        let g = (ino - 1) / self.ipg;
        let i = (ino - 1) % self.ipg;
        let t = self.desc_block(self.desc(g), 0x08, 0x28);
        t as usize * self.bs + i as usize * self.p.inode_size
    }
    fn inode(&self, ino: u32) -> &'a [u8] {
        let o = self.inode_off(ino);
        &self.img[o..o + self.p.inode_size]
    }
    fn inode_used(&self, ino: u32) -> bool {
        let g = (ino - 1) / self.ipg;
        let d = self.desc(g);
        if le16(d, 0x12) & 1 != 0 {
            return false; // INODE_UNINIT
        }
        let bm = self.block(self.desc_block(d, 0x04, 0x24));
        let i = ((ino - 1) % self.ipg) as usize;
        bm[i / 8] & (1 << (i % 8)) != 0
    }
    /// (logical, physical) data blocks of an inode, and its extent tree
    /// blocks (below the root in i_block).
    fn map(&self, raw: &[u8]) -> (Vec<(u64, u64)>, Vec<u64>) {
        let mut data = Vec::new();
        let mut tree = Vec::new();
        if le32(raw, 0x20) & 0x80000 != 0 {
            self.extents(&raw[0x28..0x28 + 60], &mut data, &mut tree);
        } else if le16(raw, 0) & 0xF000 != 0xA000 || le32(raw, 0x1C) != 0 {
            let per = self.bs as u64 / 4;
            for i in 0..12 {
                let b = le32(raw, 0x28 + 4 * i) as u64;
                if b != 0 {
                    data.push((i as u64, b));
                }
            }
            let mut base = 12u64;
            for (k, depth) in [(12usize, 1u32), (13, 2), (14, 3)] {
                let b = le32(raw, 0x28 + 4 * k) as u64;
                if b != 0 {
                    self.indirect(b, depth, base, &mut data);
                }
                base += per.pow(depth);
            }
        }
        (data, tree)
    }
    fn indirect(&self, b: u64, depth: u32, base: u64, data: &mut Vec<(u64, u64)>) {
        let per = self.bs as u64 / 4;
        let blk = self.block(b);
        for i in 0..per {
            let c = le32(blk, i as usize * 4) as u64;
            if c == 0 {
                continue;
            }
            if depth == 1 {
                data.push((base + i, c));
            } else {
                self.indirect(c, depth - 1, base + i * per.pow(depth - 1), data);
            }
        }
    }
    fn extents(&self, node: &[u8], data: &mut Vec<(u64, u64)>, tree: &mut Vec<u64>) {
        assert_eq!(le16(node, 0), 0xF30A, "extent magic");
        let n = le16(node, 2) as usize;
        let depth = le16(node, 6);
        for i in 0..n {
            let e = &node[12 + 12 * i..24 + 12 * i];
            if depth == 0 {
                let lblk = le32(e, 0) as u64;
                let mut len = le16(e, 4) as u64;
                if len > 32768 {
                    len -= 32768;
                }
                let start = (le16(e, 6) as u64) << 32 | le32(e, 8) as u64;
                for k in 0..len {
                    data.push((lblk + k, start + k));
                }
            } else {
                let child = (le16(e, 8) as u64) << 32 | le32(e, 4) as u64;
                tree.push(child);
                self.extents(self.block(child), data, tree);
            }
        }
    }
}

/// Checksums verified in one image, by kind.
#[derive(Default, Debug)]
struct Counts {
    descs: usize,
    block_bitmaps: usize,
    inode_bitmaps: usize,
    inodes: usize,
    zero_inodes: usize,
    extent_blocks: usize,
    dir_leaves: usize,
    dx_roots: usize,
    dx_interior: usize,
    xattr_blocks: usize,
    orphan_blocks: usize,
}

/// Flip one byte at `at` of a copy of `bytes` and expect `verify` to say
/// Mismatch.
fn flip_fails(what: &str, bytes: &[u8], at: usize, verify: impl Fn(&[u8]) -> csum::Verdict) {
    let mut b = bytes.to_vec();
    b[at] ^= 0x40;
    match verify(&b) {
        Err(Problem::Mismatch { .. }) => {}
        other => panic!("{what}: byte {at} flipped, verification gave {other:?}"),
    }
}

/// Zero the stored checksum bytes `fields` of a copy, set it again with
/// `set`, and expect the original bytes back.
fn set_restores(what: &str, bytes: &[u8], fields: &[(usize, usize)], set: impl Fn(&mut [u8])) {
    let mut b = bytes.to_vec();
    for &(o, n) in fields {
        b[o..o + n].fill(0);
    }
    set(&mut b);
    assert!(
        b == bytes,
        "{what}: setting the checksum again changed the bytes"
    );
}

/// Verify every checksum of the image; flip and re-set the first of each
/// kind.
fn check_image(name: &str, img: &[u8]) -> Counts {
    let r = Raw::new(img);
    let p = &r.p;
    let mut c = Counts::default();
    // Superblock.
    csum::verify_superblock(r.sb).unwrap_or_else(|e| panic!("{name}: superblock: {e}"));
    if p.metadata_csum {
        flip_fails("superblock", r.sb, 0x10, csum::verify_superblock);
        set_restores("superblock", r.sb, &[(0x3FC, 4)], csum::set_superblock_csum);
    }
    // Descriptors and bitmaps.
    for g in 0..r.groups {
        let d = r.desc(g);
        if p.desc_csum != DescCsum::None {
            p.verify_group_desc(g, d)
                .unwrap_or_else(|e| panic!("{name}: group {g} descriptor: {e}"));
            c.descs += 1;
            if g == r.groups - 1 {
                // Every byte the checksum covers (not only the first 32).
                for at in [0x0C, 0x1C, r.desc_on_disk - 1] {
                    flip_fails("descriptor", d, at, |b| p.verify_group_desc(g, b));
                }
                set_restores("descriptor", d, &[(0x1E, 2)], |b| {
                    p.set_group_desc_csum(g, b)
                });
                // Another group's number gives another checksum.
                assert!(p.verify_group_desc(g + 1, d).is_err());
            }
        }
        if !p.metadata_csum {
            continue;
        }
        let flags = le16(d, 0x12);
        let hi = r.desc_on_disk >= 0x3C;
        if flags & 2 == 0 {
            let bm = r.block(r.desc_block(d, 0x00, 0x20));
            p.verify_block_bitmap(d, bm)
                .unwrap_or_else(|e| panic!("{name}: group {g} block bitmap: {e}"));
            if c.block_bitmaps == 0 {
                flip_fails("block bitmap", bm, p.block_bitmap_bytes - 1, |b| {
                    p.verify_block_bitmap(d, b)
                });
                let mut fields = vec![(0x18, 2)];
                if hi {
                    fields.push((0x38, 2));
                }
                set_restores("block bitmap csum", d, &fields, |dd| {
                    p.set_block_bitmap_csum(dd, bm).unwrap()
                });
            }
            c.block_bitmaps += 1;
        }
        if flags & 1 == 0 {
            let bm = r.block(r.desc_block(d, 0x04, 0x24));
            p.verify_inode_bitmap(d, bm)
                .unwrap_or_else(|e| panic!("{name}: group {g} inode bitmap: {e}"));
            if c.inode_bitmaps == 0 {
                flip_fails("inode bitmap", bm, 0, |b| p.verify_inode_bitmap(d, b));
                let mut fields = vec![(0x1A, 2)];
                if hi {
                    fields.push((0x3A, 2));
                }
                set_restores("inode bitmap csum", d, &fields, |dd| {
                    p.set_inode_bitmap_csum(dd, bm).unwrap()
                });
            }
            c.inode_bitmaps += 1;
        }
    }
    if !p.metadata_csum {
        return c;
    }
    // Inodes and what hangs from them.
    let inodes = le32(r.sb, 0x00);
    let orphan_ino = le32(r.sb, csum::SB_ORPHAN_FILE_INUM);
    for ino in 1..=inodes {
        if !r.inode_used(ino) {
            continue;
        }
        let raw = r.inode(ino);
        if csum::inode_is_zero(raw) {
            c.zero_inodes += 1;
            continue;
        }
        p.verify_inode(ino, raw)
            .unwrap_or_else(|e| panic!("{name}: inode {ino}: {e}"));
        if c.inodes == 0 || ino == 2 {
            flip_fails("inode", raw, 0x04, |b| p.verify_inode(ino, b));
            flip_fails("inode", raw, p.inode_size - 1, |b| p.verify_inode(ino, b));
            assert!(
                p.verify_inode(ino + 1, raw).is_err(),
                "inode number is covered"
            );
            let mut fields = vec![(0x7C, 2)];
            if p.inode_size > 128 && le16(raw, 0x80) >= 4 {
                fields.push((0x82, 2));
            }
            set_restores("inode", raw, &fields, |b| p.set_inode_csum(ino, b));
        }
        c.inodes += 1;
        if le16(raw, 0x1A) == 0 {
            continue; // no links: a reserved inode
        }
        let gen = le32(raw, 0x64);
        let iseed = p.inode_seed(ino, gen);
        let (data, tree) = r.map(raw);
        for &b in &tree {
            let blk = r.block(b);
            csum::verify_extent_block(iseed, blk)
                .unwrap_or_else(|e| panic!("{name}: inode {ino} extent block {b}: {e}"));
            if c.extent_blocks == 0 {
                flip_fails("extent block", blk, 12, |x| {
                    csum::verify_extent_block(iseed, x)
                });
                let off = csum::extent_tail_offset(blk).unwrap();
                set_restores("extent block", blk, &[(off, 4)], |x| {
                    csum::set_extent_block_csum(iseed, x).unwrap()
                });
            }
            c.extent_blocks += 1;
        }
        let acl = le32(raw, 0x68) as u64 | (le16(raw, 0x76) as u64) << 32;
        if acl != 0 {
            let blk = r.block(acl);
            csum::verify_xattr_block(p.seed, acl, blk)
                .unwrap_or_else(|e| panic!("{name}: inode {ino} xattr block {acl}: {e}"));
            if c.xattr_blocks == 0 {
                flip_fails("xattr block", blk, r.bs - 1, |x| {
                    csum::verify_xattr_block(p.seed, acl, x)
                });
                assert!(csum::verify_xattr_block(p.seed, acl + 1, blk).is_err());
                set_restores("xattr block", blk, &[(0x10, 4)], |x| {
                    csum::set_xattr_block_csum(p.seed, acl, x)
                });
            }
            c.xattr_blocks += 1;
        }
        if ino == orphan_ino {
            for &(_, b) in &data {
                let blk = r.block(b);
                csum::verify_orphan_block(iseed, b, blk)
                    .unwrap_or_else(|e| panic!("{name}: orphan file block {b}: {e}"));
                if c.orphan_blocks == 0 {
                    flip_fails("orphan block", blk, 0, |x| {
                        csum::verify_orphan_block(iseed, b, x)
                    });
                    set_restores("orphan block", blk, &[(r.bs - 8, 8)], |x| {
                        csum::set_orphan_block_csum(iseed, b, x)
                    });
                }
                c.orphan_blocks += 1;
            }
        }
        if le16(raw, 0) & 0xF000 != 0x4000 {
            continue;
        }
        let indexed = le32(raw, 0x20) & 0x1000 != 0;
        for &(lblk, b) in &data {
            let blk = r.block(b);
            let dx = if indexed {
                csum::dx_count_offset(blk)
            } else {
                None
            };
            match dx {
                Some(off) => {
                    assert_eq!(off == 0x20, lblk == 0, "{name}: dir {ino} block {lblk}");
                    csum::verify_dx_node(iseed, blk, off)
                        .unwrap_or_else(|e| panic!("{name}: dir {ino} htree block {b}: {e}"));
                    let first = if off == 0x20 {
                        c.dx_roots
                    } else {
                        c.dx_interior
                    };
                    if first == 0 {
                        flip_fails("htree node", blk, off + 4, |x| {
                            csum::verify_dx_node(iseed, x, off)
                        });
                        let tail = off + le16(blk, off) as usize * 8;
                        set_restores("htree node", blk, &[(tail + 4, 4)], |x| {
                            csum::set_dx_node_csum(iseed, x, off).unwrap()
                        });
                    }
                    if off == 0x20 {
                        c.dx_roots += 1
                    } else {
                        c.dx_interior += 1
                    }
                }
                None => {
                    csum::verify_dir_leaf(iseed, blk)
                        .unwrap_or_else(|e| panic!("{name}: dir {ino} block {b}: {e}"));
                    if c.dir_leaves == 0 {
                        flip_fails("dir leaf", blk, 0, |x| csum::verify_dir_leaf(iseed, x));
                        set_restores("dir leaf", blk, &[(r.bs - 4, 4)], |x| {
                            csum::set_dir_leaf_csum(iseed, x).unwrap()
                        });
                        assert!(csum::verify_dir_leaf(iseed ^ 1, blk).is_err());
                    }
                    c.dir_leaves += 1;
                }
            }
        }
    }
    c
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

macro_rules! need {
    () => {
        if !common::have_e2fsprogs() {
            common::skip("e2fsprogs (mke2fs, e2fsck, debugfs) is not installed");
            return;
        }
    };
}

/// The counts every metadata_csum image must reach: the test looked at
/// each kind (not vacuous).
fn assert_full(name: &str, c: &Counts, extents: bool, orphan: bool, interior: bool) {
    eprintln!("{name}: {c:?}");
    assert!(
        c.descs > 0 && c.block_bitmaps > 0 && c.inode_bitmaps > 0,
        "{name}: {c:?}"
    );
    assert!(c.inodes > 6000, "{name}: {c:?}");
    assert!(c.dir_leaves > 100 && c.dx_roots >= 1, "{name}: {c:?}");
    assert!(!interior || c.dx_interior >= 1, "{name}: {c:?}");
    assert_eq!(c.xattr_blocks, 2, "{name}: {c:?}");
    assert_eq!(c.extent_blocks > 0, extents, "{name}: {c:?}");
    assert_eq!(c.orphan_blocks > 0, orphan, "{name}: {c:?}");
}

#[test]
fn ext4_4k_256_64bit() {
    need!();
    let t = tmp();
    let img = make(
        t.path(),
        "a",
        "ext4",
        &["-b", "4096", "-I", "256", "-O", "64bit,orphan_file"],
        6000,
    );
    let c = check_image("4k-256-64bit", &img);
    let p = Params::from_superblock(&img[1024..2048]);
    assert_eq!((p.desc_size, p.desc_csum), (64, DescCsum::Crc32c));
    assert_full("4k-256-64bit", &c, true, true, false);
}

#[test]
fn ext4_1k_128_no64bit() {
    need!();
    let t = tmp();
    let img = make(
        t.path(),
        "b",
        "ext4",
        &["-b", "1024", "-I", "128", "-O", "^64bit,orphan_file"],
        6000,
    );
    let p = Params::from_superblock(&img[1024..2048]);
    assert_eq!((p.desc_size, p.inode_size), (32, 128));
    let c = check_image("1k-128", &img);
    assert_full("1k-128", &c, true, true, true);
}

#[test]
fn ext4_1k_256_64bit_two_levels() {
    need!();
    let t = tmp();
    let img = make(
        t.path(),
        "c",
        "ext4",
        &["-b", "1024", "-I", "256", "-O", "64bit,^orphan_file"],
        6000,
    );
    let c = check_image("1k-256-64bit", &img);
    assert_full("1k-256-64bit", &c, true, false, true);
}

#[test]
fn ext4_csum_seed_after_uuid_change() {
    need!();
    let t = tmp();
    let _ = make(
        t.path(),
        "d",
        "ext4",
        &["-b", "4096", "-O", "metadata_csum_seed,orphan_file"],
        3000,
    );
    let path = t.path().join("d.img");
    // A new UUID: the checksums keep their old seed, kept in the superblock.
    sh(&[
        "tune2fs",
        "-U",
        "0b2c7a3e-4d5f-4a6b-8c9d-0e1f2a3b4c5d",
        path.to_str().unwrap(),
    ]);
    let img = std::fs::read(&path).unwrap();
    let sb = &img[1024..2048];
    let p = Params::from_superblock(sb);
    assert_ne!(
        p.seed,
        csum::crc32c_raw(!0, &sb[0x68..0x78]),
        "the seed is no longer the UUID's"
    );
    let c = check_image("csum_seed", &img);
    assert!(
        c.inodes > 3000 && c.dir_leaves > 10 && c.xattr_blocks == 2,
        "{c:?}"
    );
}

#[test]
fn ext3_with_metadata_csum_indirect_dirs() {
    need!();
    let t = tmp();
    let img = make(
        t.path(),
        "e",
        "ext3",
        &["-b", "1024", "-I", "256", "-O", "metadata_csum"],
        6000,
    );
    let c = check_image("ext3-csum", &img);
    assert_full("ext3-csum", &c, false, false, true);
}

#[test]
fn uninit_bg_crc16_descriptors() {
    need!();
    for (name, opts) in [
        (
            "crc16-64bit",
            &[
                "-b",
                "4096",
                "-g",
                "8192",
                "-O",
                "^metadata_csum,uninit_bg,64bit",
            ][..],
        ),
        (
            "crc16-32",
            &["-b", "1024", "-O", "^metadata_csum,uninit_bg,^64bit"][..],
        ),
    ] {
        let t = tmp();
        let img = make(t.path(), name, "ext4", opts, 100);
        let p = Params::from_superblock(&img[1024..2048]);
        assert_eq!(p.desc_csum, DescCsum::Crc16, "{name}");
        assert!(!p.metadata_csum);
        let c = check_image(name, &img);
        assert!(c.descs >= 2, "{name}: {c:?}");
    }
}

// ------------------------------------------------------------------------
// Reads verify: a damaged checksum is one error line naming what and where.

fn debugfs_out(img: &Path, cmd: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", cmd])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The byte offset of the inode `path` in the image.
fn inode_offset(img: &Path, path: &str, bs: u64) -> (u32, u64) {
    let s = debugfs_out(img, &format!("imap {path}"));
    let ino: u32 = s
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("imap: {s}"));
    let blk: u64 = s
        .split("located at block ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let off = u64::from_str_radix(s.split("offset 0x").nth(1).unwrap().trim(), 16).unwrap();
    (ino, blk * bs + off)
}

fn bmap(img: &Path, path: &str, lblk: u64) -> u64 {
    debugfs_out(img, &format!("bmap {path} {lblk}"))
        .trim()
        .parse()
        .unwrap()
}

fn flip(img: &Path, at: u64) {
    let mut b = std::fs::read(img).unwrap();
    b[at as usize] ^= 0x40;
    std::fs::write(img, b).unwrap();
}

/// Run a read-only command that must fail with one line holding every
/// needle, leaving the image unchanged.
fn read_fails(img: &Path, args: &[&str], needles: &[&str]) {
    let before = std::fs::read(img).unwrap();
    let mut a = vec![args[0], img.to_str().unwrap()];
    a.extend_from_slice(&args[1..]);
    let out = common::run(&a, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{a:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{a:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{a:?}: {err:?} lacks {n:?}");
    }
    assert!(
        std::fs::read(img).unwrap() == before,
        "{a:?} changed the image"
    );
}

#[test]
fn reads_verify_checksums() {
    need!();
    let t = tmp();
    let _ = make(
        t.path(),
        "r",
        "ext4",
        &["-b", "4096", "-O", "orphan_file"],
        3000,
    );
    let clean = t.path().join("r.img");
    let bs = 4096;
    let fresh = |name: &str| {
        let p = t.path().join(name);
        std::fs::copy(&clean, &p).unwrap();
        p
    };
    // Untouched, everything reads.
    common::ok(&clean, "ls", &["/big"]);
    common::ok(
        &clean,
        "get",
        &["/sparse", t.path().join("out").to_str().unwrap()],
    );

    // An inode.
    let img = fresh("inode.img");
    let (ino, at) = inode_offset(&img, "/sub/a", bs);
    flip(&img, at + 0x08);
    read_fails(
        &img,
        &["stat", "/sub/a"],
        &[&format!("inode {ino}: checksum mismatch")],
    );
    common::ok(&img, "ls", &["/sub"]);

    // A directory leaf.
    let img = fresh("leaf.img");
    let b = bmap(&img, "/sub", 0);
    flip(&img, b * bs + 32);
    read_fails(
        &img,
        &["ls", "/sub"],
        &[
            &format!("block {b} (directory block of inode"),
            "checksum mismatch",
        ],
    );
    read_fails(&img, &["get", "/sub/a", "-"], &[&format!("block {b}")]);

    // The htree root of a large directory.
    let img = fresh("dx.img");
    let b = bmap(&img, "/big", 0);
    flip(&img, b * bs + 0x2A);
    read_fails(
        &img,
        &["ls", "/big"],
        &[
            &format!("block {b} (htree node of directory inode"),
            "checksum mismatch",
        ],
    );

    // An extent tree node (the sparse file's tree has depth 1 here).
    let img = fresh("ext.img");
    let s = debugfs_out(&img, "ex /sparse");
    let line = s.lines().nth(1).unwrap();
    // "level/max entry/count lstart - lend physical length": the root's
    // entry names the child node.
    let tok: Vec<&str> = line.split_whitespace().collect();
    let dash = tok.iter().position(|t| *t == "-").unwrap();
    let b: u64 = tok[dash + 2].parse().unwrap();
    flip(&img, b * bs + 12 + 4);
    read_fails(
        &img,
        &["get", "/sparse", t.path().join("o2").to_str().unwrap()],
        &[
            &format!("block {b} (extent tree of inode"),
            "checksum mismatch",
        ],
    );

    // An xattr block (through the library: the CLI shows xattrs only in
    // reports).
    let img = fresh("xattr.img");
    let s = debugfs_out(&img, "stat /sub/a");
    let acl: u64 = s
        .split("File ACL: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    flip(&img, acl * bs + bs - 1);
    let fs = ext3edit::Filesystem::open(&img, &ext3edit::OpenOptions::read_only()).unwrap();
    let ino = fs.resolve("/sub/a", true).unwrap();
    let inode = fs.read_inode(ino).unwrap();
    let err = fs.xattrs(&inode).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "block {acl} (extended attribute block): checksum mismatch"
        )),
        "{err}"
    );

    // The superblock: nothing opens.
    let img = fresh("sb.img");
    flip(&img, 1024 + 0x78); // the volume name
    read_fails(&img, &["ls", "/"], &["superblock: checksum mismatch"]);
}

// ------------------------------------------------------------------------
// Writes set every checksum. These need writing metadata_csum images to be
// allowed (the feature gate, feature::RO_COMPAT_WRITE in src/layout.rs):
// they fail while it is off. ext3 + metadata_csum (mke2fs allows it): the
// engine writes no extents yet.

/// e2fsck -fn clean, and every checksum on the image as our functions
/// compute them.
fn all_good(img: &Path, what: &str) -> Counts {
    common::fsck_clean(img);
    check_image(what, &std::fs::read(img).unwrap())
}

fn mkfs_csum(tmp: &Path, name: &str, opts: &[&str]) -> std::path::PathBuf {
    let img = tmp.join(format!("{name}.img"));
    let mut args = vec!["mke2fs", "-q", "-F", "-t", "ext3", "-O", "metadata_csum"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[img.to_str().unwrap(), "32M"]);
    sh(&args);
    img
}

#[test]
fn writes_set_every_checksum() {
    need!();
    for (name, opts) in [
        ("w1k256", &["-b", "1024", "-I", "256"][..]),
        ("w4k128", &["-b", "4096", "-I", "128"][..]),
        (
            "wseed",
            &[
                "-b",
                "1024",
                "-O",
                "metadata_csum_seed",
                "-U",
                "6b1e0f4a-7c2d-4e3f-8a9b-0c1d2e3f4a5b",
            ][..],
        ),
    ] {
        let t = tmp();
        let img = mkfs_csum(t.path(), name, opts);
        if name == "wseed" {
            sh(&[
                "tune2fs",
                "-U",
                "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                img.to_str().unwrap(),
            ]);
        }
        let host = t.path().join("host");
        std::fs::create_dir_all(host.join("tree/deeper")).unwrap();
        for i in 0..300 {
            std::fs::write(
                host.join(format!("tree/file-number-{i:04}")),
                format!("{i}\n"),
            )
            .unwrap();
        }
        std::fs::write(host.join("tree/deeper/x"), b"x").unwrap();
        // Names of 4 bytes take 12-byte entries, the size of the checksum
        // tail: a full block must not take one more in its tail.
        std::fs::create_dir_all(host.join("short")).unwrap();
        for i in 0..400 {
            std::fs::write(host.join(format!("short/{i:04}")), b"").unwrap();
        }
        let big = common::pseudo_random(1 << 20, 7);
        std::fs::write(host.join("big"), &big).unwrap();

        common::ok(&img, "mkdir", &["/d"]);
        all_good(&img, name);
        common::ok(&img, "put", &[host.join("big").to_str().unwrap(), "/d/big"]);
        all_good(&img, name);
        assert!(
            common::debugfs_cat(&img, "/d/big") == big,
            "{name}: /d/big reads back"
        );
        common::ok(
            &img,
            "put",
            &["-r", host.join("tree").to_str().unwrap(), "/d/tree"],
        );
        common::ok(
            &img,
            "put",
            &["-r", host.join("short").to_str().unwrap(), "/short"],
        );
        common::ok(
            &img,
            "put",
            &[host.join("big").to_str().unwrap(), "/short/b"],
        );
        let c = all_good(&img, name);
        assert!(c.dir_leaves > 3, "{name}: {c:?}");
        common::ok(&img, "mv", &["/d/tree/file-number-0001", "/d/moved"]);
        common::ok(&img, "ln", &["-s", "/d/moved", "/d/link"]);
        common::ok(&img, "rm", &["/d/tree/file-number-0002"]);
        all_good(&img, name);
        // Extended attributes: one in the inode (large inodes), one that
        // needs a block.
        {
            let mut fs =
                ext3edit::Filesystem::open(&img, &ext3edit::OpenOptions::read_write()).unwrap();
            let ino = fs.resolve("/d/moved", true).unwrap();
            fs.set_xattr(ino, "user.small", b"1").unwrap();
            fs.set_xattr(ino, "user.big", &[b'v'; 600]).unwrap();
            fs.commit().unwrap();
        }
        let c = all_good(&img, name);
        assert_eq!(c.xattr_blocks, 1, "{name}: {c:?}");
        {
            let mut fs =
                ext3edit::Filesystem::open(&img, &ext3edit::OpenOptions::read_write()).unwrap();
            let ino = fs.resolve("/d/moved", true).unwrap();
            fs.set_xattr(ino, "user.big", &[b'w'; 700]).unwrap();
            fs.commit().unwrap();
        }
        all_good(&img, name);
        let s = debugfs_out(&img, "ea_get /d/moved user.big");
        assert!(s.contains(&"w".repeat(700)), "{name}: {s}");
        common::ok(&img, "rm", &["-r", "/d/tree"]);
        common::ok(&img, "rm", &["/d/moved"]);
        let c = all_good(&img, name);
        assert_eq!(c.xattr_blocks, 0, "{name}: {c:?}");
    }
}

#[test]
fn writes_into_htree_directories() {
    need!();
    let t = tmp();
    // 1 KiB blocks: two index levels; ext3 with metadata_csum.
    // -N: room in group 0 for what we add (the other groups stay
    // INODE_UNINIT, which the engine does not allocate from yet).
    let _ = make(
        t.path(),
        "h",
        "ext3",
        &["-b", "1024", "-N", "65536", "-O", "metadata_csum"],
        6000,
    );
    let img = t.path().join("h.img");
    let host = t.path().join("many");
    std::fs::create_dir_all(&host).unwrap();
    for i in 0..400 {
        std::fs::write(
            host.join(format!("another_name_that_is_fairly_long_{i:04}")),
            b"",
        )
        .unwrap();
    }
    // e2fsck -D packs the leaves full: about 130 adds fill the interior
    // node (see full_htree_index_is_never_dropped); stay below.
    let mut names: Vec<_> = std::fs::read_dir(&host)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    names.sort();
    for f in names.into_iter().take(60) {
        let dest = format!("/big/{}", f.file_name().unwrap().to_str().unwrap());
        common::ok(&img, "put", &[f.to_str().unwrap(), &dest]);
    }
    let c = all_good(&img, "htree");
    assert!(c.dx_interior >= 1 && c.dx_roots >= 1, "{c:?}");
    let s = debugfs_out(&img, "htree_dump /big");
    assert!(s.contains("Indirect levels: 1"), "the index is kept");
    for i in (0..6000).step_by(97) {
        common::ok(
            &img,
            "rm",
            &[&format!("/big/file_with_a_rather_long_name_number_{i:05}")],
        );
    }
    all_good(&img, "htree after rm");
    let ls = String::from_utf8(common::ok(&img, "ls", &["/big"]).stdout).unwrap();
    assert!(ls.contains("another_name_that_is_fairly_long_"));
    assert!(!ls.contains("file_with_a_rather_long_name_number_00097\n"));
}

/// A write refused because of a bad checksum leaves the image byte for
/// byte as it was.
fn write_fails(img: &Path, args: &[&str], needles: &[&str]) {
    read_fails(img, args, needles)
}

#[test]
fn writes_refuse_bad_checksums() {
    need!();
    let t = tmp();
    let clean = mkfs_csum(t.path(), "bad", &["-b", "1024"]);
    common::ok(&clean, "mkdir", &["/d"]);
    let bs = 1024u64;
    let fresh = |name: &str| {
        let p = t.path().join(name);
        std::fs::copy(&clean, &p).unwrap();
        p
    };
    let img0 = std::fs::read(&clean).unwrap();
    let r = Raw::new(&img0);
    let d0 = r.desc(0);
    // Group 0's block bitmap: nothing is allocated from it.
    let img = fresh("bb.img");
    let bb = le32(d0, 0) as u64;
    flip(&img, bb * bs + 300);
    // A file in / has its inode and its data in group 0 (a new directory
    // may go to another flex group).
    let src = t.path().join("src");
    std::fs::write(&src, b"data\n").unwrap();
    write_fails(
        &img,
        &["put", src.to_str().unwrap(), "/x"],
        &[&format!(
            "block {bb} (block bitmap of group 0): checksum mismatch"
        )],
    );
    common::ok(&img, "ls", &["/d"]);
    // Its inode bitmap.
    let img = fresh("ib.img");
    let ib = le32(d0, 4) as u64;
    flip(&img, ib * bs + 100);
    write_fails(
        &img,
        &["put", src.to_str().unwrap(), "/x"],
        &[&format!(
            "block {ib} (inode bitmap of group 0): checksum mismatch"
        )],
    );
    // A descriptor: the image is read-only (as the kernel mounts it).
    let img = fresh("gd.img");
    flip(&img, 2 * bs + 0x14); // group 0's bg_exclude_bitmap_lo (unused)
    write_fails(
        &img,
        &["mkdir", "/x"],
        &["group 0 descriptor: checksum mismatch"],
    );
    common::ok(&img, "ls", &["/d"]);
    // The directory block a new name would go into.
    let img = fresh("dir.img");
    let b = bmap(&img, "/d", 0);
    flip(&img, b * bs + 12 + 8); // ".." name
    write_fails(
        &img,
        &["put", "/etc/hostname", "/d/h"],
        &[
            &format!("block {b} (directory block of inode"),
            "checksum mismatch",
        ],
    );
    // The inode of the directory.
    let img = fresh("ino.img");
    let (ino, at) = inode_offset(&img, "/d", bs);
    flip(&img, at + 0x08);
    write_fails(
        &img,
        &["mkdir", "/d/x"],
        &[&format!("inode {ino}: checksum mismatch")],
    );
}

/// Large inodes whose i_extra_isize does not reach i_checksum_hi carry
/// only the low 16 bits (and the bytes at 0x82 are covered as they are):
/// debugfs rewrites the inode with its own checksum after `sif`.
#[test]
fn inode_checksum_follows_extra_isize() {
    need!();
    let t = tmp();
    let img = t.path().join("x.img");
    let i = img.to_str().unwrap();
    sh(&[
        "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", i, "16M",
    ]);
    let host = t.path().join("h");
    std::fs::write(&host, b"hello").unwrap();
    sh(&[
        "debugfs",
        "-w",
        "-R",
        &format!("write {} h", host.display()),
        i,
    ]);
    for (extra, full) in [(0u16, false), (2, false), (4, true), (32, true)] {
        sh(&[
            "debugfs",
            "-w",
            "-R",
            &format!("sif h extra_isize {extra}"),
            i,
        ]);
        let (ino, at) = inode_offset(&img, "/h", 4096);
        let bytes = std::fs::read(&img).unwrap();
        let p = Params::from_superblock(&bytes[1024..2048]);
        let raw = &bytes[at as usize..at as usize + 256];
        assert_eq!(le16(raw, 0x80), extra);
        p.verify_inode(ino, raw)
            .unwrap_or_else(|e| panic!("extra_isize {extra}: {e}"));
        let c = p.inode_csum(ino, raw);
        assert_eq!(c > 0xFFFF || full, full, "extra_isize {extra}: {c:#x}");
        // 0x82 is covered as data when the hi half does not fit.
        flip_fails("inode", raw, 0x83, |b| p.verify_inode(ino, b));
    }
}

/// An htree whose index node fills: each add either keeps the index or is
/// refused with one line, the image unchanged (with metadata_csum the
/// index is never dropped: its blocks have no dirent tail, so the
/// directory would not be a valid linear one). e2fsck stays clean.
#[test]
fn full_htree_index_is_never_dropped() {
    need!();
    let t = tmp();
    let src = t.path().join("src/big");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..2000 {
        std::fs::write(
            src.join(format!("a_fairly_long_file_name_for_the_index_{i}")),
            b"",
        )
        .unwrap();
    }
    let img = t.path().join("f.img");
    let i = img.to_str().unwrap();
    sh(&[
        "mke2fs",
        "-q",
        "-F",
        "-t",
        "ext3",
        "-O",
        "metadata_csum",
        "-b",
        "1024",
        "-N",
        "30000",
        "-d",
        t.path().join("src").to_str().unwrap(),
        i,
        "64M",
    ]);
    sh(&["e2fsck", "-fyD", i]);
    let f = t.path().join("f");
    std::fs::write(&f, b"").unwrap();
    let mut refused = None;
    for n in 0..1500 {
        let before = std::fs::read(&img).unwrap();
        let dest = format!("/big/another_long_name_to_fill_the_leaves_{n}");
        let out = common::run(&["put", i, f.to_str().unwrap(), &dest], None);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert!(err.contains("the htree index is full"), "{err}");
            assert!(
                std::fs::read(&img).unwrap() == before,
                "a refused put changed the image"
            );
            refused = Some(n);
            break;
        }
    }
    eprintln!("adds before the index was full: {refused:?}");
    let s = debugfs_out(&img, "htree_dump /big");
    assert!(s.contains("Indirect levels: 1"), "the index is kept");
    all_good(&img, "full htree");
}

/// Extent trees on metadata_csum (ext3 with extent and metadata_csum, as
/// mke2fs makes it): a sparse file of 400 one-block extents needs depth 2
/// with 1 KiB blocks; every node gets its tail checksum, through truncate
/// and rm too.
#[test]
fn extent_trees_keep_their_checksums() {
    need!();
    let t = tmp();
    let img = mkfs_csum(t.path(), "ext", &["-b", "1024", "-O", "extent"]);
    let host = t.path().join("sparse");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&host).unwrap();
        for i in 0..400u64 {
            f.seek(SeekFrom::Start(i * 4096)).unwrap();
            f.write_all(&common::pseudo_random(1024, i)).unwrap();
        }
    }
    let data = std::fs::read(&host).unwrap();
    common::ok(&img, "put", &[host.to_str().unwrap(), "/s"]);
    let c = all_good(&img, "extent");
    assert!(c.extent_blocks >= 5, "{c:?}");
    let s = debugfs_out(&img, "ex /s");
    assert!(s.contains(" 2/ 2 "), "depth 2: {s}");
    assert!(common::debugfs_cat(&img, "/s") == data);
    for size in [1_000_000u64, 300_000, 10_000] {
        common::ok(&img, "truncate", &["/s", &size.to_string()]);
        all_good(&img, "extent truncate");
    }
    common::ok(&img, "put", &[host.to_str().unwrap(), "/s2"]);
    all_good(&img, "extent again");
    // A damaged node: reading the file and writing it are refused.
    let line = debugfs_out(&img, "ex /s2");
    let l1 = line.lines().nth(1).unwrap();
    let tok: Vec<&str> = l1.split_whitespace().collect();
    let dash = tok.iter().position(|t| *t == "-").unwrap();
    let b: u64 = tok[dash + 2].parse().unwrap();
    flip(&img, b * 1024 + 12 + 1);
    let needle = format!("block {b} (extent tree of inode");
    read_fails(
        &img,
        &["get", "/s2", t.path().join("o").to_str().unwrap()],
        &[&needle, "checksum mismatch"],
    );
    write_fails(&img, &["truncate", "/s2", "5000"], &[&needle]);
    write_fails(&img, &["rm", "/s2"], &[&needle]);
    common::ok(&img, "rm", &["/s"]);
}

/// A block staged with a role its bytes do not fit (a directory leaf
/// without its tail) is not written: the commit fails, the image as it
/// was.
#[test]
fn commit_refuses_a_block_that_does_not_fit_its_role() {
    need!();
    let t = tmp();
    let img = mkfs_csum(t.path(), "role", &["-b", "1024"]);
    let before = std::fs::read(&img).unwrap();
    let mut fs = ext3edit::Filesystem::open(&img, &ext3edit::OpenOptions::read_write()).unwrap();
    let b = fs.alloc_block(0).unwrap();
    fs.write_meta_block(b, &[0u8; 1024]).unwrap();
    fs.set_block_role(b, ext3edit::BlockRole::DirLeaf { ino: 2, gen: 0 });
    let err = fs.commit().unwrap_err().to_string();
    assert!(
        err.contains(&format!("block {b} (directory block of inode 2) as staged")),
        "{err}"
    );
    drop(fs);
    assert!(std::fs::read(&img).unwrap() == before, "the image changed");
}
