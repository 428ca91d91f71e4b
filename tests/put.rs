//! `put` onto what the image already has: overwritten files keep their
//! mode, owner and extended attributes; `put -r SRC/` merges, through the
//! image's symlinks to directories; owners by name from the image's own
//! /etc/passwd and /etc/group. `e2fsck -fn` after every write.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn cfg(inode: u32) -> Cfg {
    Cfg {
        fstype: "ext3",
        block: 1024,
        inode,
        dir_index: true,
        size_kib: 16 * 1024,
    }
}

/// Run a write command and require success and a clean image.
fn w(img: &Path, cmd: &str, rest: &[&str]) {
    ok(img, cmd, rest);
    fsck_clean(img);
}

/// (type, mode, uid, gid) from debugfs stat (the final symlink not followed).
fn stat(img: &Path, path: &str) -> (String, u32, u32, u32) {
    let s = debugfs(img, &format!("stat \"{path}\""));
    let field = |key: &str| -> String {
        let i = s
            .find(key)
            .unwrap_or_else(|| panic!("no {key} for {path}:\n{s}"));
        s[i + key.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    (
        field("Type:"),
        u32::from_str_radix(&field("Mode:"), 8).unwrap(),
        field("User:").parse().unwrap(),
        field("Group:").parse().unwrap(),
    )
}

fn mode_owner(img: &Path, path: &str) -> (u32, u32, u32) {
    let (_, m, u, g) = stat(img, path);
    (m, u, g)
}

fn ea_get(img: &Path, path: &str, key: &str) -> String {
    debugfs(img, &format!("ea_get \"{path}\" {key}"))
}

fn ea_set(img: &Path, path: &str, key: &str, value: &str) {
    let out = Command::new("debugfs")
        .args(["-w", "-R", &format!("ea_set \"{path}\" {key} {value}")])
        .arg(img)
        .output()
        .unwrap();
    assert!(out.status.success());
    fsck_clean(img);
}

const LABEL: &str = "system_u:object_r:shadow_t:s0";

/// An image with /etc/shadow 0400 0:42 carrying a security.selinux xattr.
fn with_shadow(inode: u32, host: &Path) -> Img {
    let img = mkfs(&cfg(inode));
    let p = &img.path;
    std::fs::write(host.join("shadow0"), "root:!:19000::::::\n").unwrap();
    w(p, "mkdir", &["/etc"]);
    let s0 = host.join("shadow0");
    w(
        p,
        "put",
        &[
            s0.to_str().unwrap(),
            "/etc/shadow",
            "--mode",
            "400",
            "--owner",
            "0:42",
        ],
    );
    ea_set(p, "/etc/shadow", "security.selinux", LABEL);
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o400, 0, 42));
    img
}

/// A host file with mode 0644 (what `get` gives back).
fn host_file(dir: &Path, name: &str, data: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn overwrite_keeps_mode_owner_and_xattrs() {
    require_e2fsprogs!();
    // 128-byte inodes keep the label in an attribute block, 256-byte ones
    // inside the inode.
    for inode in [128, 256] {
        let host = tempfile::tempdir().unwrap();
        let img = with_shadow(inode, host.path());
        let p = &img.path;
        let f = host_file(host.path(), "shadow", "root:$6$new:19500::::::\n");
        w(p, "put", &[&f, "/etc/shadow"]);
        assert_eq!(
            mode_owner(p, "/etc/shadow"),
            (0o400, 0, 42),
            "inode {inode}"
        );
        assert!(ea_get(p, "/etc/shadow", "security.selinux").contains(LABEL));
        assert_eq!(debugfs_cat(p, "/etc/shadow"), b"root:$6$new:19500::::::\n");

        // Through a directory DEST too.
        w(p, "put", &[&f, "/etc/"]);
        assert_eq!(mode_owner(p, "/etc/shadow"), (0o400, 0, 42));
    }
}

#[test]
fn overwrite_changes_only_what_is_given() {
    require_e2fsprogs!();
    let host = tempfile::tempdir().unwrap();
    let img = with_shadow(256, host.path());
    let p = &img.path;
    let f = host_file(host.path(), "shadow", "x\n");
    w(p, "put", &[&f, "/etc/shadow", "--mode", "600"]);
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o600, 0, 42));
    // UID alone keeps the group.
    w(p, "put", &[&f, "/etc/shadow", "--owner", "7"]);
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o600, 7, 42));
    w(p, "put", &[&f, "/etc/shadow", "--owner", "8:9"]);
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o600, 8, 9));
    w(p, "put", &[&f, "/etc/shadow", "--owner", ":3"]);
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o600, 8, 3));
    assert!(ea_get(p, "/etc/shadow", "security.selinux").contains(LABEL));
    // A new file: the source's mode and 0:0, as before.
    w(p, "put", &[&f, "/etc/new"]);
    assert_eq!(mode_owner(p, "/etc/new"), (0o644, 0, 0));
    w(p, "put", &[&f, "/etc/new2", "--owner", "5"]);
    assert_eq!(mode_owner(p, "/etc/new2"), (0o644, 5, 0));
}

#[test]
fn stdin_overwrite_keeps_mode_owner_and_xattrs() {
    require_e2fsprogs!();
    let host = tempfile::tempdir().unwrap();
    let img = with_shadow(256, host.path());
    let p = &img.path;
    let run_put = |extra: &[&str], data: &[u8]| {
        let mut args = vec!["put", p.to_str().unwrap(), "-", "/etc/shadow"];
        args.extend_from_slice(extra);
        let out = run(&args, Some(data));
        assert!(out.status.success(), "{:?}", out);
        fsck_clean(p);
    };
    run_put(&[], b"from stdin\n");
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o400, 0, 42));
    assert!(ea_get(p, "/etc/shadow", "security.selinux").contains(LABEL));
    assert_eq!(debugfs_cat(p, "/etc/shadow"), b"from stdin\n");
    run_put(&["--owner", "3"], b"again\n");
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o400, 3, 42));
    // A new file from stdin: 0644 0:0 as before.
    let out = run(
        &["put", p.to_str().unwrap(), "-", "/etc/motd"],
        Some(b"hi\n"),
    );
    assert!(out.status.success());
    assert_eq!(mode_owner(p, "/etc/motd"), (0o644, 0, 0));
}

/// A host tree `overlay/` with etc/shadow, etc/motd and opt/tool/run.
fn overlay(host: &Path) -> std::path::PathBuf {
    let o = host.join("overlay");
    std::fs::create_dir_all(o.join("etc")).unwrap();
    std::fs::create_dir_all(o.join("opt/tool")).unwrap();
    host_file(&o, "etc/shadow", "root:$6$tree:1::::::\n");
    host_file(&o, "etc/motd", "welcome\n");
    host_file(&o, "opt/tool/run", "#!/bin/sh\n");
    o
}

#[test]
fn put_r_overwrite_keeps_mode_owner_and_xattrs() {
    require_e2fsprogs!();
    let host = tempfile::tempdir().unwrap();
    let img = with_shadow(256, host.path());
    let p = &img.path;
    let o = overlay(host.path());
    w(p, "put", &["-r", o.join("etc").to_str().unwrap(), "/"]);
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o400, 0, 42));
    assert!(ea_get(p, "/etc/shadow", "security.selinux").contains(LABEL));
    assert_eq!(debugfs_cat(p, "/etc/shadow"), b"root:$6$tree:1::::::\n");
    assert_eq!(mode_owner(p, "/etc/motd"), (0o644, 0, 0));
}

/// An image with /etc (0750, 5:6) holding /etc/shadow, for merges.
fn merge_image(host: &Path) -> Img {
    let img = with_shadow(256, host);
    let p = &img.path;
    w(p, "chmod", &["750", "/etc"]);
    w(p, "chown", &["5:6", "/etc"]);
    img
}

/// `gid`: what /etc/shadow's group should be (--owner 0:0 sets it).
fn check_merged(p: &Path, gid: u32) {
    assert_eq!(debugfs_cat(p, "/etc/motd"), b"welcome\n");
    assert_eq!(debugfs_cat(p, "/etc/shadow"), b"root:$6$tree:1::::::\n");
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o400, 0, gid));
    assert!(ea_get(p, "/etc/shadow", "security.selinux").contains(LABEL));
    assert_eq!(debugfs_cat(p, "/opt/tool/run"), b"#!/bin/sh\n");
    // The existing directory keeps its mode and owner, --owner or not.
    assert_eq!(mode_owner(p, "/etc"), (0o750, 5, 6));
    assert!(
        debugfs(p, "ls -l /")
            .lines()
            .all(|l| !l.contains("overlay")),
        "no /overlay: {}",
        debugfs(p, "ls -l /")
    );
}

#[test]
fn put_r_trailing_slash_merges_into_dest() {
    require_e2fsprogs!();
    for spelling in ["overlay/", "overlay/.", "./overlay/"] {
        let host = tempfile::tempdir().unwrap();
        let img = merge_image(host.path());
        let p = &img.path;
        overlay(host.path());
        let out = Command::new(bin())
            .current_dir(host.path())
            .env("EXT3EDIT_NO_PROGRESS", "1")
            .args(["put", p.to_str().unwrap(), spelling, "/", "-r"])
            .args(["--owner", "0:0"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{spelling}: {out:?}");
        fsck_clean(p);
        check_merged(p, 0);
    }
}

#[test]
fn put_r_merges_into_an_existing_directory_of_the_same_name() {
    require_e2fsprogs!();
    let host = tempfile::tempdir().unwrap();
    let img = merge_image(host.path());
    let p = &img.path;
    let o = overlay(host.path());
    // No slash: overlay/etc goes to /etc, which exists: merged.
    w(p, "put", &["-r", o.join("etc").to_str().unwrap(), "/"]);
    assert_eq!(mode_owner(p, "/etc/shadow"), (0o400, 0, 42));
    // And DEST naming the existing directory itself, with a slash on SRC.
    let opt = format!("{}/", o.join("opt").display());
    w(p, "mkdir", &["/opt"]);
    w(p, "put", &["-r", &opt, "/opt"]);
    assert_eq!(debugfs_cat(p, "/opt/tool/run"), b"#!/bin/sh\n");
    assert_eq!(debugfs_cat(p, "/etc/motd"), b"welcome\n");
    assert_eq!(mode_owner(p, "/etc"), (0o750, 5, 6));
    // SRC/ into a DEST that does not exist: DEST becomes a copy of SRC.
    w(p, "put", &["-r", &opt, "/srv"]);
    assert_eq!(debugfs_cat(p, "/srv/tool/run"), b"#!/bin/sh\n");
}

#[test]
fn put_r_goes_through_image_symlinks_to_directories() {
    require_e2fsprogs!();
    let img = mkfs(&cfg(256));
    let p = &img.path;
    w(p, "mkdir", &["/usr/sbin", "-p"]);
    w(p, "mkdir", &["/etc/rc.d/init.d", "-p"]);
    w(p, "ln", &["-s", "usr/sbin", "/sbin"]);
    w(p, "ln", &["-s", "rc.d/init.d", "/etc/init.d"]);
    w(p, "mkdir", &["/tmp"]);
    w(p, "ln", &["-s", "../../../../tmp", "/x"]);
    let host = tempfile::tempdir().unwrap();
    let o = host.path().join("overlay");
    for d in ["sbin", "etc/init.d", "x"] {
        std::fs::create_dir_all(o.join(d)).unwrap();
    }
    host_file(&o, "sbin/tool", "tool\n");
    host_file(&o, "etc/init.d/svc", "svc\n");
    host_file(&o, "x/f", "in tmp\n");
    w(p, "put", &["-r", &format!("{}/", o.display()), "/"]);
    assert_eq!(debugfs_cat(p, "/usr/sbin/tool"), b"tool\n");
    assert_eq!(debugfs_cat(p, "/etc/rc.d/init.d/svc"), b"svc\n");
    // A link that climbs above the root stays inside the image.
    assert_eq!(debugfs_cat(p, "/tmp/f"), b"in tmp\n");
    for l in ["/sbin", "/etc/init.d", "/x"] {
        assert_eq!(stat(p, l).0, "symlink", "{l} stays a link");
    }
    // Without the slash, into a DEST that is such a link.
    w(p, "put", &["-r", o.join("sbin").to_str().unwrap(), "/"]);
    assert_eq!(stat(p, "/sbin").0, "symlink");
    assert_eq!(debugfs_cat(p, "/usr/sbin/tool"), b"tool\n");
}

#[test]
fn put_r_directory_over_a_file_fails_before_writing() {
    require_e2fsprogs!();
    let img = mkfs(&cfg(256));
    let p = &img.path;
    let host = tempfile::tempdir().unwrap();
    let f = host_file(host.path(), "f", "f\n");
    w(p, "mkdir", &["/etc"]);
    w(p, "put", &[&f, "/etc/hosts"]);
    w(p, "ln", &["-s", "/nowhere", "/dangling"]);
    let o = host.path().join("overlay");
    std::fs::create_dir_all(o.join("aaa")).unwrap();
    host_file(&o, "aaa/first", "first\n");
    std::fs::create_dir_all(o.join("etc/hosts")).unwrap();
    host_file(&o, "etc/hosts/x", "x\n");
    let before = bytes(p);
    let src = format!("{}/", o.display());
    let err = fails(p, "put", &["-r", &src, "/"], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("ext3edit: /etc/hosts: the image has a file where")
            && err.contains("overlay/etc/hosts is a directory; nothing was copied"),
        "{err}"
    );
    assert_eq!(bytes(p), before, "image unchanged");
    std::fs::remove_dir_all(o.join("etc")).unwrap();
    std::fs::create_dir_all(o.join("dangling")).unwrap();
    let err = fails(p, "put", &["-r", &src, "/"], 1);
    assert!(
        err.contains("dangling") && err.contains("/nowhere"),
        "{err}"
    );
    assert_eq!(bytes(p), before, "image unchanged");
}

/// An image with /etc/passwd and /etc/group naming alice (500, login
/// group 501) and the group staff (50).
fn with_accounts() -> (Img, tempfile::TempDir) {
    let img = mkfs(&cfg(256));
    let p = &img.path;
    let host = tempfile::tempdir().unwrap();
    let pw = host_file(
        host.path(),
        "passwd",
        "# users\nroot:x:0:0:root:/root:/bin/sh\n\nalice:x:500:501:Alice:/home/alice:/bin/sh\n",
    );
    let gr = host_file(
        host.path(),
        "group",
        "root:x:0:\nalice:x:501:\nstaff:x:50:alice\n",
    );
    w(p, "mkdir", &["/etc"]);
    w(p, "put", &[&pw, "/etc/passwd"]);
    w(p, "put", &[&gr, "/etc/group"]);
    (img, host)
}

#[test]
fn owner_names_come_from_the_image() {
    require_e2fsprogs!();
    let (img, host) = with_accounts();
    let p = &img.path;
    let f = host_file(host.path(), "f", "f\n");
    w(p, "put", &[&f, "/a", "--owner", "alice:alice"]);
    assert_eq!(mode_owner(p, "/a"), (0o644, 500, 501));
    w(p, "put", &[&f, "/b", "--owner", "alice:staff"]);
    assert_eq!(mode_owner(p, "/b"), (0o644, 500, 50));
    // USER: is the login group; USER alone leaves the group (0 when new).
    w(p, "put", &[&f, "/c", "--owner", "alice:"]);
    assert_eq!(mode_owner(p, "/c"), (0o644, 500, 501));
    w(p, "put", &[&f, "/d", "--owner", "alice"]);
    assert_eq!(mode_owner(p, "/d"), (0o644, 500, 0));
    w(p, "mkdir", &["/home/alice", "-p", "--owner", "alice:"]);
    assert_eq!(mode_owner(p, "/home/alice"), (0o755, 500, 501));
    w(p, "mknod", &["/fifo", "p", "--owner", "root:staff"]);
    assert_eq!(mode_owner(p, "/fifo"), (0o644, 0, 50));
    w(p, "ln", &["-s", "/a", "/lnk", "--owner", "alice:staff"]);
    assert_eq!(stat(p, "/lnk").2, 500);
    // chown: a name alone keeps the group, as chown(1).
    w(p, "chown", &["0:staff", "/a"]);
    w(p, "chown", &["alice", "/a"]);
    assert_eq!(mode_owner(p, "/a"), (0o644, 500, 50));
    w(p, "chown", &[":alice", "/a"]);
    assert_eq!(mode_owner(p, "/a"), (0o644, 500, 501));
    // Numbers keep working, even where no name exists.
    w(p, "chown", &["1234:5678", "/a"]);
    assert_eq!(mode_owner(p, "/a"), (0o644, 1234, 5678));
    // put -r with names.
    let t = host.path().join("tree");
    std::fs::create_dir_all(&t).unwrap();
    host_file(&t, "g", "g\n");
    w(
        p,
        "put",
        &[
            "-r",
            t.to_str().unwrap(),
            "/home/alice",
            "--owner",
            "alice:alice",
        ],
    );
    assert_eq!(mode_owner(p, "/home/alice/tree/g"), (0o644, 500, 501));
}

#[test]
fn unknown_owner_names_fail_with_the_image_unchanged() {
    require_e2fsprogs!();
    let (img, host) = with_accounts();
    let p = &img.path;
    let f = host_file(host.path(), "f", "f\n");
    let before = bytes(p);
    let err = fails(p, "put", &[&f, "/a", "--owner", "bob:alice"], 1);
    assert_eq!(
        err.trim(),
        "ext3edit: unknown user \"bob\": not in the image's /etc/passwd"
    );
    let err = fails(p, "chown", &["alice:wheel", "/etc"], 1);
    assert_eq!(
        err.trim(),
        "ext3edit: unknown group \"wheel\": not in the image's /etc/group"
    );
    let err = fails(p, "mkdir", &["/x", "--owner", "bob"], 1);
    assert!(err.contains("\"bob\""), "{err}");
    // The host's users are never consulted.
    let err = fails(
        p,
        "put",
        &[
            "-r",
            host.path().to_str().unwrap(),
            "/",
            "--owner",
            "daemon",
        ],
        1,
    );
    assert!(
        err.contains("\"daemon\"") && err.contains("/etc/passwd"),
        "{err}"
    );
    assert_eq!(bytes(p), before, "image unchanged");
    // An image without /etc/group says so.
    w(p, "rm", &["/etc/group"]);
    let before = bytes(p);
    let err = fails(p, "chown", &[":staff", "/etc"], 1);
    assert!(err.contains("has no /etc/group"), "{err}");
    // A malformed line is reported with its number.
    let bad = host_file(host.path(), "group", "root:x:0:\nbroken line\n");
    w(p, "put", &[&bad, "/etc/group"]);
    let before2 = bytes(p);
    let err = fails(p, "chown", &[":root", "/etc"], 1);
    assert!(err.contains("/etc/group line 2"), "{err}");
    assert_eq!(bytes(p), before2);
    let _ = before;
}
