//! The kernel's view (optional): after `customize`, mount the image
//! read-only through a loop device and read the files with the host's
//! ext3 driver. Needs root and loop devices; skips visibly without them.

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
    if euid() != 0 {
        skip("not root: the kernel cannot be asked to mount the image");
        return None;
    }
    let out = Command::new("mount")
        .args(["-o", "loop,ro", "-t", "ext3"])
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
