//! Every `ext3edit` command line of the README, run as written against
//! copies of the sample image (disk.ext3, centos.ext3, and packed copies
//! for the compressed examples), in order, in a directory holding the
//! host files the examples name. Each must succeed (`check` may report a
//! failing requirement), and the images must stay e2fsck-clean.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// The shell command lines of the README's ```sh blocks (continuations
/// joined), with their line numbers.
fn readme_commands() -> Vec<(usize, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut console = false;
    let mut cur = String::new();
    let mut start = 0;
    for (i, l) in text.lines().enumerate() {
        if l.starts_with("```") {
            in_sh = l.trim() == "```sh" || l.trim() == "```console";
            console = l.trim() == "```console";
            continue;
        }
        // In a console block only the `$ ` lines are commands.
        if !in_sh || (console && cur.is_empty() && !l.starts_with("$ ")) {
            continue;
        }
        let l = l.trim_end();
        if cur.is_empty() {
            start = i + 1;
        }
        match l.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(l);
                let c = std::mem::take(&mut cur);
                let t = c.trim().trim_start_matches("$ ").to_string();
                if (t.contains("ext3edit ") || t.contains("cargo run")) && !t.starts_with('#') {
                    out.push((start, t));
                }
            }
        }
    }
    out
}

fn setup(dir: &Path) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample.ext3");
    let bin = bin();
    let w = |name: &str, data: &str| std::fs::write(dir.join(name), data).unwrap();
    for img in ["disk.ext3", "centos.ext3", "snapshot.ext3"] {
        std::fs::copy(&sample, dir.join(img)).unwrap();
    }
    // What the examples expect the image to have beyond the sample's tree.
    let c = dir.join("centos.ext3");
    let c = c.to_str().unwrap();
    for (args, stdin) in [
        (vec!["put", c, "-", "/usr/bin/vim", "-p", "--mode", "755"], Some(&b"#!/bin/sh\n"[..])),
        (vec!["put", c, "-", "/var/log/messages", "-p"], Some(&b"boot\n"[..])),
        (vec!["mkdir", c, "/tmp/conf.d", "-p"], None),
        (vec!["mkdir", c, "/mnt/cdrom", "-p"], None),
        (vec!["mkdir", c, "/var/cache/yum/x86_64", "-p"], None),
        // A small SELinux policy, for --selinux-relabel.
        (vec!["put", c, "-", "/etc/selinux/config", "-p"], Some(&b"SELINUX=enforcing\nSELINUXTYPE=targeted\n"[..])),
        (
            vec!["put", c, "-", "/etc/selinux/targeted/contexts/files/file_contexts", "-p"],
            Some(&b"/.*\tsystem_u:object_r:default_t:s0\n/etc(/.*)?\tsystem_u:object_r:etc_t:s0\n/etc/shadow.*\t--\tsystem_u:object_r:shadow_t:s0\n/root/\\.ssh(/.*)?\tsystem_u:object_r:ssh_home_t:s0\n"[..]),
        ),
    ] {
        let out = run(&args, stdin);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    w("resolv.conf", "nameserver 10.0.0.1\n");
    w("motd", "Welcome\n");
    w("pw.txt", "s3cret\n");
    w(
        "my_sshd_config",
        "PermitRootLogin yes\nPasswordAuthentication yes\n",
    );
    w(
        "id_ed25519.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReadme me@host\n",
    );
    w(
        "key.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReadme me@host\n",
    );
    w("app.tar", "not really a tar\n");
    w("recipe.txt", "# recipe\nnetwork eth1=dhcp\nxen-console\n");
    std::fs::create_dir_all(dir.join("overlay/etc")).unwrap();
    w("overlay/etc/motd", "from the overlay\n");
    std::fs::create_dir_all(dir.join("dotfiles")).unwrap();
    w("dotfiles/.bashrc", "alias ll='ls -l'\n");
    w("hosts", "127.0.0.1 localhost\n");
    std::fs::copy(&sample, dir.join("root.ext3")).unwrap();
    // Archives for the import-tar examples, exported from the sample.
    let snap = dir.join("snapshot.ext3");
    for (path, out) in [("/etc", "rootfs.tar.gz"), ("/etc/ssh", "layer.tar.xz")] {
        let o = run(
            &[
                "export-tar",
                snap.to_str().unwrap(),
                path,
                dir.join(out).to_str().unwrap(),
            ],
            None,
        );
        assert!(
            o.status.success(),
            "export-tar: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = run(
        &[
            "mkdir",
            dir.join("disk.ext3").to_str().unwrap(),
            "/srv",
            "-p",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A whole disk: an MBR with a small FAT partition 1 and the sample as
    // partition 2 (sectors 4096 to 12287).
    let mut disk = vec![0u8; 2 << 20];
    let entry = |at: usize, ty: u8, start: u32, count: u32, d: &mut Vec<u8>| {
        d[at + 4] = ty;
        d[at + 8..at + 12].copy_from_slice(&start.to_le_bytes());
        d[at + 12..at + 16].copy_from_slice(&count.to_le_bytes());
    };
    entry(446, 0x0c, 2048, 2048, &mut disk);
    entry(462, 0x83, 4096, 8192, &mut disk);
    disk[510] = 0x55;
    disk[511] = 0xaa;
    disk.extend(std::fs::read(&sample).unwrap());
    std::fs::write(dir.join("disk.img"), &disk).unwrap();
    // The compressed examples: the sample packed by ext3edit itself.
    for (src, out, fmt) in [
        ("centos.ext3", "centos.5-0.ext3.bz2", "bz2"),
        ("centos.ext3", "disk.zip", "zip"),
    ] {
        let st = Command::new(&bin)
            .current_dir(dir)
            .args(["pack", src, out, "--format", fmt])
            .env("EXT3EDIT_NO_PROGRESS", "1")
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "pack: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
}

#[test]
fn every_readme_command_runs_as_written() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    setup(d.path());
    let bin = bin();
    let have_jq = Command::new("jq").arg("--version").output().is_ok();
    let cmds = readme_commands();
    assert!(
        cmds.len() > 50,
        "the README has {} command lines?",
        cmds.len()
    );
    let mut ran = 0;
    for (line, cmd) in &cmds {
        if cmd.contains("cargo test") {
            continue;
        }
        if cmd.contains("| jq") && !have_jq {
            skip(&format!("README.md:{line}: jq is not installed"));
            continue;
        }
        // The quick start writes to /tmp: here, into the test directory.
        let cmd_here = if cmd.contains("cargo run") {
            cmd.replace("/tmp/", "./")
        } else {
            cmd.clone()
        };
        let sh = cmd_here
            .replace("cargo run --release --", "\"$BIN\"")
            .replace(
                "fixtures/sample.ext3",
                &format!("{}/fixtures/sample.ext3", env!("CARGO_MANIFEST_DIR")),
            )
            .replace("ext3edit ", "\"$BIN\" ")
            .replace("\"$BIN\" \"$BIN\"", "\"$BIN\"");
        let out = Command::new("bash")
            .args(["-c", &sh])
            .current_dir(d.path())
            .env("BIN", &bin)
            .env("EXT3EDIT_NO_PROGRESS", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "README.md:{line}: {cmd}\n{err}");
        let is_check = cmd.contains(" check ") && !cmd.contains("&&");
        let ok = out.status.success() || (is_check && out.status.code() == Some(1));
        assert!(
            ok,
            "README.md:{line}: `{cmd}` exited {:?}:\n{err}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        );
        ran += 1;
    }
    assert!(ran > 50);
    for img in [
        "disk.ext3",
        "centos.ext3",
        "centos-ready.ext3",
        "ready.ext3",
    ] {
        let p = d.path().join(img);
        if p.exists() {
            fsck_clean(&p);
        }
    }
    // The compressed image stayed compressed and holds the edit.
    let out = run(
        &[
            "get",
            d.path().join("centos.5-0.ext3.bz2").to_str().unwrap(),
            "/etc/resolv.conf",
        ],
        None,
    );
    assert_eq!(out.stdout, b"nameserver 10.0.0.1\n");
}
