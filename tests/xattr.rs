//! Writing extended attributes through the library: in the inode body and
//! in an attribute block, across the mke2fs matrix; every write is read
//! back with debugfs and the library and judged by `e2fsck -fn`.

mod common;

use common::{debugfs, fsck_clean, mkfs, Cfg};
use ext3edit::{Error, Filesystem, Ino, NewFile, OpenOptions};
use std::path::Path;

const LABEL: &[u8] = b"system_u:object_r:etc_t:s0\0";

fn open(p: &Path) -> Filesystem {
    Filesystem::open(p, &OpenOptions::read_write()).unwrap()
}

fn make_file(p: &Path, name: &str) -> Ino {
    let mut fs = open(p);
    let root = fs.root();
    let attrs = NewFile {
        perm: 0o644,
        ..Default::default()
    };
    let ino = fs
        .create_file(root, name.as_bytes(), &attrs, &mut &b"content\n"[..])
        .unwrap();
    fs.commit().unwrap();
    ino
}

/// The value debugfs reads (`ea_get -f`), or None when it has no such
/// attribute.
fn debugfs_get(img: &Path, path: &str, name: &str) -> Option<Vec<u8>> {
    let out = img.with_extension("ea");
    let _ = std::fs::remove_file(&out);
    let run = std::process::Command::new("debugfs")
        .arg("-R")
        .arg(format!("ea_get -f {} {path} {name}", out.display()))
        .arg(img)
        .output()
        .expect("run debugfs");
    let err = String::from_utf8_lossy(&run.stderr);
    if err.contains("not found") {
        return None;
    }
    assert!(
        !err.contains("ea_get:"),
        "debugfs ea_get {path} {name}: {err}"
    );
    Some(std::fs::read(&out).unwrap())
}

fn file_acl(img: &Path, ino: Ino) -> u64 {
    let fs = Filesystem::open(img, &OpenOptions::read_only()).unwrap();
    fs.read_inode(ino).unwrap().file_acl()
}

/// Check one attribute through debugfs and the library, and e2fsck.
fn check(img: &Path, ino: Ino, path: &str, name: &str, want: Option<&[u8]>, ctx: &str) {
    fsck_clean(img);
    assert_eq!(
        debugfs_get(img, path, name).as_deref(),
        want,
        "{ctx}: debugfs ea_get {name}"
    );
    let fs = Filesystem::open(img, &OpenOptions::read_only()).unwrap();
    assert_eq!(
        fs.get_xattr(ino, name).unwrap().as_deref(),
        want,
        "{ctx}: library {name}"
    );
}

fn set(img: &Path, ino: Ino, name: &str, value: &[u8]) {
    let mut fs = open(img);
    fs.set_xattr(ino, name, value).unwrap();
    fs.commit().unwrap();
}

fn remove(img: &Path, ino: Ino, name: &str) -> bool {
    let mut fs = open(img);
    let r = fs.remove_xattr(ino, name).unwrap();
    fs.commit().unwrap();
    r
}

fn configs() -> Vec<Cfg> {
    // dir_index does not matter here: half the matrix.
    common::matrix()
        .into_iter()
        .filter(|c| c.dir_index)
        .collect()
}

#[test]
fn set_replace_remove_across_matrix() {
    require_e2fsprogs!();
    for cfg in configs() {
        let img = mkfs(&cfg);
        let p = img.path.as_path();
        let ctx = cfg.name();
        let free0 = common::read_sb(p).free_blocks;
        let ino = make_file(p, "f");

        // security.selinux: in the inode when it is large, else a block.
        set(p, ino, "security.selinux", LABEL);
        check(p, ino, "/f", "security.selinux", Some(LABEL), &ctx);
        if cfg.inode > 128 {
            assert_eq!(file_acl(p, ino), 0, "{ctx}: label goes in the inode");
        } else {
            assert_ne!(file_acl(p, ino), 0, "{ctx}: label goes to a block");
        }
        let list = debugfs(p, "ea_list /f");
        assert!(list.contains("security.selinux (27)"), "{ctx}: {list}");

        // user.* values until they spill into a block.
        let mut names = Vec::new();
        for i in 0..8 {
            let name = format!("user.attr{i}");
            let value = vec![b'a' + i as u8; 24 + i];
            set(p, ino, &name, &value);
            check(p, ino, "/f", &name, Some(&value), &ctx);
            names.push((name, value));
        }
        assert_ne!(file_acl(p, ino), 0, "{ctx}: spilled into a block");
        let blk = file_acl(p, ino);
        assert_eq!(
            common::read_sb(p).free_blocks,
            free0 - 1 - 1,
            "{ctx}: one data block and one attribute block"
        );

        // Replace with a longer and a shorter value.
        set(p, ino, "user.attr3", &[b'L'; 300]);
        check(p, ino, "/f", "user.attr3", Some(&[b'L'; 300]), &ctx);
        set(p, ino, "user.attr3", b"s");
        check(p, ino, "/f", "user.attr3", Some(b"s"), &ctx);
        set(p, ino, "user.attr3", b"");
        check(p, ino, "/f", "user.attr3", Some(b""), &ctx);
        // The other values are untouched.
        for (n, v) in &names {
            if n != "user.attr3" {
                check(p, ino, "/f", n, Some(v), &ctx);
            }
        }
        check(p, ino, "/f", "security.selinux", Some(LABEL), &ctx);
        assert_eq!(
            file_acl(p, ino),
            blk,
            "{ctx}: private block rewritten in place"
        );

        // Remove them all; the block goes when it is empty.
        assert!(remove(p, ino, "security.selinux"));
        check(p, ino, "/f", "security.selinux", None, &ctx);
        assert!(!remove(p, ino, "security.selinux"), "{ctx}: second remove");
        for (n, _) in &names {
            assert!(remove(p, ino, n), "{ctx}: remove {n}");
            check(p, ino, "/f", n, None, &ctx);
        }
        assert_eq!(file_acl(p, ino), 0, "{ctx}: empty block freed");
        assert_eq!(common::read_sb(p).free_blocks, free0 - 1, "{ctx}");
        let fs = Filesystem::open(p, &OpenOptions::read_only()).unwrap();
        let inode = fs.read_inode(ino).unwrap();
        assert!(fs.xattrs(&inode).unwrap().is_empty(), "{ctx}");
        assert_eq!(inode.sectors(false, 0), cfg.block as u64 / 512, "{ctx}");
    }
}

#[test]
fn too_large_value_is_refused_and_changes_nothing() {
    require_e2fsprogs!();
    let cfg = configs().into_iter().find(|c| c.block == 1024).unwrap();
    let img = mkfs(&cfg);
    let p = img.path.as_path();
    let ino = make_file(p, "f");
    let before = common::bytes(p);
    let mut fs = open(p);
    let err = fs.set_xattr(ino, "user.big", &[0u8; 1024]).unwrap_err();
    assert!(matches!(err, Error::NoSpace(_)), "{err}");
    assert!(err.to_string().contains("ea_inode"), "{err}");
    assert!(!fs.is_dirty(), "nothing staged");
    let err = fs.set_xattr(ino, "bogus.x", b"1").unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    drop(fs);
    assert_eq!(common::bytes(p), before);
    let mut ro = Filesystem::open(p, &OpenOptions::read_only()).unwrap();
    assert!(matches!(
        ro.set_xattr(ino, "user.x", b"1").unwrap_err(),
        Error::ReadOnly(_)
    ));
}

/// Point `other` at the attribute block of `ino` (refcount 2), as the
/// kernel does when two inodes have identical attributes.
fn share_block(p: &Path, ino: Ino, other: Ino) -> u64 {
    let mut fs = open(p);
    let blk = fs.read_inode(ino).unwrap().file_acl();
    assert_ne!(blk, 0);
    let mut o = fs.read_inode(other).unwrap();
    assert_eq!(o.file_acl(), 0);
    o.set_file_acl(blk);
    let spb = fs.block_size() as u64 / 512;
    o.set_sectors(o.sectors(false, 0) + spb);
    fs.write_inode(&o).unwrap();
    fs.modify_block(blk, |d| d[4..8].copy_from_slice(&2u32.to_le_bytes()))
        .unwrap();
    fs.commit().unwrap();
    blk
}

fn refcount(p: &Path, blk: u64) -> u32 {
    let fs = Filesystem::open(p, &OpenOptions::read_only()).unwrap();
    let d = fs.block(blk).unwrap();
    u32::from_le_bytes(d[4..8].try_into().unwrap())
}

#[test]
fn shared_block_is_copied_on_write() {
    require_e2fsprogs!();
    for cfg in configs() {
        let img = mkfs(&cfg);
        let p = img.path.as_path();
        let ctx = cfg.name();
        let a = make_file(p, "a");
        let b = make_file(p, "b");
        // 200 bytes: too large for any inode body here, so in a block.
        let big = vec![b'v'; 200];
        set(p, a, "user.shared", &big);
        let blk = share_block(p, a, b);
        check(p, b, "/b", "user.shared", Some(&big), &ctx);
        let free = common::read_sb(p).free_blocks;

        // Writing through b gives b its own block; a keeps the old one.
        // (100 bytes: too large for the inode body, so in the block.)
        let mine = vec![b'm'; 100];
        set(p, b, "user.mine", &mine);
        check(p, b, "/b", "user.mine", Some(&mine[..]), &ctx);
        check(p, b, "/b", "user.shared", Some(&big), &ctx);
        check(p, a, "/a", "user.mine", None, &ctx);
        check(p, a, "/a", "user.shared", Some(&big), &ctx);
        assert_eq!(file_acl(p, a), blk, "{ctx}");
        assert_ne!(file_acl(p, b), blk, "{ctx}: copied on write");
        assert_eq!(refcount(p, blk), 1, "{ctx}");
        assert_eq!(common::read_sb(p).free_blocks, free - 1, "{ctx}");

        // Removing from a shared block: c gets a copy without it.
        let bblk = file_acl(p, b);
        let c = make_file(p, "c");
        share_block(p, b, c);
        assert!(remove(p, c, "user.shared"));
        check(p, c, "/c", "user.shared", None, &ctx);
        check(p, c, "/c", "user.mine", Some(&mine[..]), &ctx);
        check(p, b, "/b", "user.shared", Some(&big), &ctx);
        assert_eq!(file_acl(p, b), bblk, "{ctx}");
        assert_eq!(refcount(p, bblk), 1, "{ctx}");

        // Emptying a shared block drops the reference, frees nothing.
        let cblk = file_acl(p, c);
        let e = make_file(p, "e");
        share_block(p, c, e);
        let free = common::read_sb(p).free_blocks;
        assert!(remove(p, e, "user.mine"));
        check(p, e, "/e", "user.mine", None, &ctx);
        check(p, c, "/c", "user.mine", Some(&mine[..]), &ctx);
        assert_eq!(file_acl(p, e), 0, "{ctx}");
        assert_eq!(refcount(p, cblk), 1, "{ctx}");
        assert_eq!(common::read_sb(p).free_blocks, free, "{ctx}");

        // rm of one sharer keeps the block for the other; rm of the last
        // one frees it.
        let d = make_file(p, "d");
        share_block(p, a, d);
        let free = common::read_sb(p).free_blocks;
        let mut fs = open(p);
        let root = fs.root();
        fs.unlink(root, b"a").unwrap();
        fs.commit().unwrap();
        drop(fs);
        check(p, d, "/d", "user.shared", Some(&big), &ctx);
        assert_eq!(refcount(p, blk), 1, "{ctx}");
        let mut fs = open(p);
        fs.unlink(root, b"d").unwrap();
        fs.commit().unwrap();
        fsck_clean(p);
        // Two data blocks and the attribute block come back.
        assert_eq!(common::read_sb(p).free_blocks, free + 3, "{ctx}");
    }
}
