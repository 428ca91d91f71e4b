//! The kernel's view (optional): after `customize`, mount the image
//! read-only through a loop device and read the files with the host's
//! ext3 driver; and ext4 images written by ext3edit (issue 14), read back
//! whole through the kernel's ext4 driver, which verifies every
//! checksum it reads. Needs root and loop devices; skips visibly without
//! them.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_ro(img: &Path, at: &Path) -> Option<Mounted> {
    mount_ro_as(img, at, "ext3")
}

fn mount_ro_as(img: &Path, at: &Path, fstype: &str) -> Option<Mounted> {
    if euid() != 0 {
        skip("not root: the kernel cannot be asked to mount the image");
        return None;
    }
    let out = Command::new("mount")
        .args(["-o", "loop,ro", "-t", fstype])
        .arg(img)
        .arg(at)
        .output()
        .ok()?;
    if !out.status.success() {
        skip(&format!(
            "mount -o loop failed here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return None;
    }
    Some(Mounted(at.to_path_buf()))
}

fn euid() -> u32 {
    // The owner of a file we just made is our effective uid.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x");
    std::fs::write(&p, b"").unwrap();
    std::fs::metadata(&p).unwrap().uid()
}

#[test]
fn kernel_reads_a_customized_image() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("img.ext3");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample.ext3"),
        &img,
    )
    .unwrap();
    let key = d.path().join("k.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKernel k@host\n").unwrap();
    let out = run(
        &[
            "customize",
            img.to_str().unwrap(),
            "--fix",
            "--add-user",
            "alice",
            "--ssh-inject",
            &format!("alice:{}", key.display()),
            "--hostname",
            "vm1.example.org",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fsck_clean(&img);
    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let Some(_m) = mount_ro(&img, &mnt) else {
        return;
    };
    let shadow = std::fs::metadata(mnt.join("etc/shadow")).unwrap();
    assert_eq!(shadow.mode() & 0o7777, 0o400);
    let ak = mnt.join("home/alice/.ssh/authorized_keys");
    let m = std::fs::metadata(&ak).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!(std::fs::read(&ak).unwrap(), std::fs::read(&key).unwrap());
    let uid = m.uid();
    assert!(uid >= 1000, "alice's uid {uid}");
    assert_eq!(
        std::fs::metadata(mnt.join("home/alice")).unwrap().uid(),
        uid
    );
    let inittab = std::fs::read_to_string(mnt.join("etc/inittab")).unwrap();
    assert!(inittab.contains("respawn:/sbin/mingetty xvc0"));
    assert_eq!(
        std::fs::read_to_string(mnt.join("etc/ld.so.conf.d/libc6-xen.conf")).unwrap(),
        "hwcap 0 nosegneg\n"
    );
    let hosts = std::fs::read_to_string(mnt.join("etc/hosts")).unwrap();
    assert!(hosts.contains("vm1.example.org"), "{hosts}");
}

/// Every file under `host` equals the same path under `mnt` (content,
/// permission bits, symlink targets), read through the kernel.
fn same_tree(host: &Path, mnt: &Path, gone: &Path, ctx: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(host).unwrap() {
        let e = e.unwrap();
        let h = e.path();
        let m = mnt.join(e.file_name());
        if h == gone {
            assert!(
                std::fs::symlink_metadata(&m).is_err(),
                "{ctx}: {} is still there",
                m.display()
            );
            continue;
        }
        let ft = e.file_type().unwrap();
        let mm = std::fs::symlink_metadata(&m)
            .unwrap_or_else(|err| panic!("{ctx}: {}: {err}", m.display()));
        if ft.is_symlink() {
            assert_eq!(
                std::fs::read_link(&h).unwrap(),
                std::fs::read_link(&m).unwrap(),
                "{ctx}"
            );
        } else if ft.is_dir() {
            assert!(mm.is_dir(), "{ctx}: {}", m.display());
            n += same_tree(&h, &m, gone, ctx);
        } else {
            let got = std::fs::read(&m)
                .unwrap_or_else(|err| panic!("{ctx}: reading {}: {err}", m.display()));
            assert!(
                got == std::fs::read(&h).unwrap(),
                "{ctx}: {} differs",
                m.display()
            );
            assert_eq!(
                mm.mode() & 0o7777,
                std::fs::metadata(&h).unwrap().mode() & 0o7777,
                "{ctx}"
            );
        }
        n += 1;
    }
    n
}

#[test]
fn kernel_reads_what_ext3edit_writes_on_ext4() {
    require_e2fsprogs!();
    let host = tempfile::tempdir().unwrap();
    let tree = host.path().join("tree");
    std::fs::create_dir_all(tree.join("big/dir")).unwrap();
    for i in 0..3000 {
        std::fs::write(tree.join(format!("big/dir/entry-{i:05}")), format!("{i}")).unwrap();
    }
    std::fs::write(tree.join("big/data"), pseudo_random(5 << 20, 5)).unwrap();
    std::fs::write(tree.join("small"), b"small\n").unwrap();
    std::os::unix::fs::symlink("big/dir/entry-00007", tree.join("link")).unwrap();
    std::os::unix::fs::symlink("x".repeat(200), tree.join("longlink")).unwrap();
    let variants = [
        Cfg {
            fstype: "ext4",
            block: 4096,
            inode: 256,
            dir_index: true,
            size_kib: 64 * 1024,
        },
        Cfg {
            fstype: "ext4",
            block: 1024,
            inode: 256,
            dir_index: true,
            size_kib: 64 * 1024,
        },
        Cfg {
            fstype: "ext4-nocsum",
            block: 4096,
            inode: 128,
            dir_index: true,
            size_kib: 32 * 1024,
        },
    ];
    for cfg in &variants {
        let img = mkfs(cfg);
        let ctx = cfg.name();
        ok(&img.path, "put", &["-r", tree.to_str().unwrap(), "/tree"]);
        ok(&img.path, "rm", &["/tree/big/dir/entry-00100"]);
        fsck_clean(&img.path);
        let mnt = img.dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let Some(_m) = mount_ro_as(&img.path, &mnt, "ext4") else {
            return;
        };
        let n = same_tree(
            &tree,
            &mnt.join("tree"),
            &tree.join("big/dir/entry-00100"),
            &ctx,
        );
        assert!(n > 3000, "{ctx}: {n} entries compared");
    }
}
