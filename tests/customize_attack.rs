//! `customize` against images whose users have planted things: symlinks
//! and hard links in their homes and in /etc/skel (at every level: the
//! home itself, .ssh, authorized_keys, files and directories of the
//! skeleton), ids already taken, crafted policy files and skeletons that
//! would make a run take forever. Every refusal is one line, exit 1, and
//! the image byte for byte as before; /etc/shadow and /root/.ssh are
//! compared with debugfs where a run succeeds.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIrootkey root@admin\n";
const BOB_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbobkey bob@laptop\n";

/// The sample image with a user bob (uid 1000, home /home/bob, 0700
/// bob:bob) and root's own authorized_keys; and bob's key on the host.
fn with_bob(dir: &Path) -> (PathBuf, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample.ext3");
    let img = dir.join("img.ext3");
    std::fs::copy(src, &img).unwrap();
    let key = dir.join("bob.pub");
    std::fs::write(&key, BOB_KEY).unwrap();
    cust_ok(&img, &["--add-user", "bob"]);
    e(&["mkdir", s(&img), "/root/.ssh", "--mode", "700"]);
    put(&img, "/root/.ssh/authorized_keys", ROOT_KEY.as_bytes());
    (img, key)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run ext3edit, require success.
fn e(args: &[&str]) {
    let o = run(args, None);
    assert!(
        o.status.success(),
        "ext3edit {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn put(img: &Path, path: &str, data: &[u8]) {
    let o = run(&["put", s(img), "-", path], Some(data));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn cust(img: &Path, steps: &[&str]) -> std::process::Output {
    let mut a = vec!["customize", s(img)];
    a.extend_from_slice(steps);
    run(&a, None)
}

fn cust_ok(img: &Path, steps: &[&str]) {
    let out = cust(img, steps);
    assert!(
        out.status.success(),
        "customize {steps:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fsck_clean(img);
}

/// debugfs -w on the image (what ext3edit itself would refuse to make).
fn debugfs_w(img: &Path, cmds: &[&str]) {
    for c in cmds {
        let o = Command::new("debugfs")
            .args(["-w", "-R", c])
            .arg(img)
            .output()
            .unwrap();
        assert!(o.status.success(), "debugfs {c}");
    }
}

/// What bob must never reach: /etc/shadow, root's keys, /etc/passwd.
fn guarded(img: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = ["/etc/shadow", "/root/.ssh/authorized_keys", "/etc/passwd"]
        .iter()
        .map(|p| debugfs_cat(img, p))
        .collect();
    for p in ["/etc/shadow", "/root/.ssh/authorized_keys", "/root/.ssh"] {
        // Mode, owner and link count too.
        let st = debugfs(img, &format!("stat {p}"));
        v.push(
            st.lines()
                .filter(|l| {
                    l.starts_with("Inode:") || l.starts_with("User:") || l.contains("Links:")
                })
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
        );
    }
    v
}

/// The run must fail in one line saying `want`, with exit 1, and leave
/// the image byte for byte as it was.
fn refused(img: &Path, steps: &[&str], want: &str) {
    let before = bytes(img);
    let out = cust(img, steps);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{steps:?}: {err}");
    assert!(!err.contains("panicked"), "{steps:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{steps:?}: one line: {err}");
    assert!(err.contains(want), "{steps:?}: {err:?} should say {want:?}");
    assert!(before == bytes(img), "{steps:?} changed the image");
}

fn stat_line(img: &Path, path: &str, start: &str) -> String {
    debugfs(img, &format!("stat {path}"))
        .lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or("")
        .to_string()
}

#[test]
fn ssh_inject_never_writes_through_what_bob_planted() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let (base, key) = with_bob(d.path());
    let inject = format!("bob:{}", key.display());
    let fresh = |name: &str| -> PathBuf {
        let p = d.path().join(name);
        std::fs::copy(&base, &p).unwrap();
        p
    };
    let bob_ssh = |img: &Path| {
        e(&[
            "mkdir",
            s(img),
            "/home/bob/.ssh",
            "--mode",
            "700",
            "--owner",
            "bob:bob",
        ])
    };

    // authorized_keys a symlink to /etc/shadow.
    let img = fresh("ak-symlink");
    bob_ssh(&img);
    e(&[
        "ln",
        "-s",
        s(&img),
        "/etc/shadow",
        "/home/bob/.ssh/authorized_keys",
        "--owner",
        "bob:bob",
    ]);
    refused(
        &img,
        &["--ssh-inject", &inject],
        "authorized_keys is a symlink (to /etc/shadow)",
    );

    // authorized_keys a hard link to /etc/shadow.
    let img = fresh("ak-hardlink");
    bob_ssh(&img);
    e(&[
        "ln",
        s(&img),
        "/etc/shadow",
        "/home/bob/.ssh/authorized_keys",
    ]);
    refused(
        &img,
        &["--ssh-inject", &inject],
        "authorized_keys is a file with 2 hard links",
    );
    // The way out the message gives: the link goes, a fresh file comes.
    let before = guarded(&img);
    cust_ok(
        &img,
        &[
            "--delete",
            "/home/bob/.ssh/authorized_keys",
            "--ssh-inject",
            &inject,
        ],
    );
    assert_eq!(before[0], guarded(&img)[0], "/etc/shadow changed");
    assert_eq!(
        debugfs_cat(&img, "/home/bob/.ssh/authorized_keys"),
        BOB_KEY.as_bytes()
    );
    assert!(stat_line(&img, "/home/bob/.ssh/authorized_keys", "User:").contains("1000"));
    assert!(debugfs(&img, "stat /home/bob/.ssh/authorized_keys").contains("Mode:  0600"));
    assert!(debugfs(&img, "stat /home/bob/.ssh/authorized_keys").contains("Links: 1"));
    assert!(debugfs(&img, "stat /etc/shadow").contains("Links: 1"));

    // .ssh a symlink to root's, absolute or relative.
    for (n, t) in [("dot-abs", "/root/.ssh"), ("dot-rel", "../../root/.ssh")] {
        let img = fresh(n);
        e(&[
            "ln",
            "-s",
            s(&img),
            t,
            "/home/bob/.ssh",
            "--owner",
            "bob:bob",
        ]);
        refused(
            &img,
            &["--ssh-inject", &inject],
            &format!("/home/bob/.ssh is a symlink (to {t})"),
        );
    }

    // .ssh a second name of /root/.ssh (a hard-linked directory).
    let img = fresh("dot-hardlink");
    debugfs_w(&img, &["ln /root/.ssh /home/bob/.ssh"]);
    refused(
        &img,
        &["--ssh-inject", &inject],
        "second name of a directory",
    );

    // The home itself a symlink (to /root, to /etc).
    for (n, t) in [("home-root", "/root"), ("home-etc", "/etc")] {
        let img = fresh(n);
        e(&["rm", "-r", s(&img), "/home/bob"]);
        e(&["ln", "-s", s(&img), t, "/home/bob"]);
        refused(
            &img,
            &["--ssh-inject", &inject],
            &format!("bob's home /home/bob is a symlink (to {t})"),
        );
    }

    // A home in passwd that is not bob's: root's, the root directory.
    for (n, home, want) in [
        ("passwd-root", "/root", "is also the home of root"),
        ("passwd-slash", "/", "home in /etc/passwd is /"),
        ("passwd-dotdot", "/home/bob/../../root", "without .."),
    ] {
        let img = fresh(n);
        let pw = String::from_utf8(debugfs_cat(&img, "/etc/passwd"))
            .unwrap()
            .replace("/home/bob:", &format!("{home}:"));
        put(&img, "/etc/passwd", pw.as_bytes());
        refused(&img, &["--ssh-inject", &inject], want);
    }

    // .ssh that is someone else's, authorized_keys that is a directory.
    let img = fresh("dot-alice");
    e(&["mkdir", s(&img), "/home/bob/.ssh", "--owner", "1001:1001"]);
    refused(
        &img,
        &["--ssh-inject", &inject],
        "/home/bob/.ssh belongs to uid 1001, not to bob",
    );
    let img = fresh("ak-dir");
    e(&[
        "mkdir",
        s(&img),
        "/home/bob/.ssh/authorized_keys",
        "-p",
        "--owner",
        "bob:bob",
    ]);
    refused(
        &img,
        &["--ssh-inject", &inject],
        "authorized_keys is a dir, not a regular file",
    );

    // A home reached through a symlink another user planted in theirs.
    let img = fresh("home-via-carol");
    cust_ok(&img, &["--add-user", "carol"]);
    e(&[
        "ln",
        "-s",
        s(&img),
        "/home",
        "/home/carol/d",
        "--owner",
        "carol:carol",
    ]);
    let pw = String::from_utf8(debugfs_cat(&img, "/etc/passwd"))
        .unwrap()
        .replace("/home/bob:", "/home/carol/d/bob:");
    put(&img, "/etc/passwd", pw.as_bytes());
    refused(
        &img,
        &["--ssh-inject", &inject],
        "/home/carol/d is a symlink (to /home)",
    );

    // A home root made (--mkdir): fine, but not what root left in it.
    let img = fresh("home-by-root");
    e(&["rm", "-r", s(&img), "/home/bob"]);
    cust_ok(&img, &["--mkdir", "/home/bob", "--ssh-inject", &inject]);
    assert_eq!(
        debugfs_cat(&img, "/home/bob/.ssh/authorized_keys"),
        BOB_KEY.as_bytes()
    );
    assert!(stat_line(&img, "/home/bob/.ssh", "User:").contains("1000"));
    let img = fresh("home-by-root-dot");
    e(&["rm", "-r", s(&img), "/home/bob"]);
    e(&["mkdir", s(&img), "/home/bob/.ssh", "-p"]);
    refused(
        &img,
        &["--ssh-inject", &inject],
        "/home/bob/.ssh belongs to uid 0, not to bob",
    );

    // Nothing planted: the key goes in, 0600 bob's, root's untouched.
    let img = fresh("plain");
    let before = guarded(&img);
    cust_ok(&img, &["--ssh-inject", &inject]);
    assert_eq!(before, guarded(&img));
    assert_eq!(
        debugfs_cat(&img, "/home/bob/.ssh/authorized_keys"),
        BOB_KEY.as_bytes()
    );
    assert!(stat_line(&img, "/home/bob/.ssh", "User:").contains("1000"));
}

#[test]
fn file_steps_do_not_follow_links_under_a_home() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let (img, _) = with_bob(d.path());
    e(&[
        "ln",
        "-s",
        s(&img),
        "/etc/shadow",
        "/home/bob/sym",
        "--owner",
        "bob:bob",
    ]);
    e(&["ln", s(&img), "/etc/shadow", "/home/bob/hard"]);
    e(&[
        "ln",
        "-s",
        s(&img),
        "/etc",
        "/home/bob/etc",
        "--owner",
        "bob:bob",
    ]);
    let host = d.path().join("f.txt");
    std::fs::write(&host, "x\n").unwrap();
    let up = format!("{}:/home/bob/etc/", host.display());
    let cases: &[(&[&str], &str)] = &[
        (
            &["--write", "/home/bob/sym:x"],
            "/home/bob/sym is a symlink (to /etc/shadow)",
        ),
        (
            &["--append-line", "/home/bob/sym:x"],
            "/home/bob/sym is a symlink",
        ),
        (
            &["--write", "/home/bob/hard:x"],
            "/home/bob/hard has 2 hard links",
        ),
        (
            &["--append-line", "/home/bob/hard:x"],
            "/home/bob/hard has 2 hard links",
        ),
        (
            &["--chmod", "0644:/home/bob/hard"],
            "/home/bob/hard has 2 hard links",
        ),
        (
            &["--chmod", "0644:/home/bob/sym"],
            "/home/bob/sym is a symlink",
        ),
        (&["--upload", &up], "/home/bob/etc is a symlink (to /etc)"),
        (
            &["--write", "/home/bob/etc/passwd:x"],
            "/home/bob/etc is a symlink",
        ),
        (
            &["--link", "/x:/home/bob/etc/motd"],
            "/home/bob/etc is a symlink",
        ),
        (
            &["--delete", "/home/bob/etc/passwd"],
            "/home/bob/etc is a symlink",
        ),
        (
            &["--mkdir", "/home/bob/etc/new"],
            "/home/bob/etc is a symlink",
        ),
    ];
    for (steps, want) in cases {
        refused(&img, steps, want);
    }
    // rm -r through a second name of /root would empty /root.
    debugfs_w(&img, &["ln /root /home/bob/r"]);
    refused(
        &img,
        &["--delete", "/home/bob/r"],
        "/home/bob/r is a second name of a directory",
    );
    debugfs_w(&img, &["unlink /home/bob/r"]);
    // Removing bob's links is fine, and touches nothing else.
    let before = guarded(&img);
    cust_ok(
        &img,
        &[
            "--delete",
            "/home/bob/sym",
            "--delete",
            "/home/bob/hard",
            "--delete",
            "/home/bob/etc",
        ],
    );
    assert_eq!(before[..3], guarded(&img)[..3]);
    // A symlink root made in a root directory is still followed (/etc/rc.d).
    cust_ok(
        &img,
        &[
            "--link",
            "/etc/hosts:/etc/hosts.link",
            "--append-line",
            "/etc/hosts.link:10.0.0.9 x",
        ],
    );
    assert!(String::from_utf8(debugfs_cat(&img, "/etc/hosts"))
        .unwrap()
        .ends_with("10.0.0.9 x\n"));
}

#[test]
fn add_user_treats_etc_skel_as_planted() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let (base, key) = with_bob(d.path());
    let fresh = |name: &str| -> PathBuf {
        let p = d.path().join(name);
        std::fs::copy(&base, &p).unwrap();
        p
    };
    let inject = format!("alice:{}", key.display());

    // /etc/skel itself a symlink to /root: root's keys would be alice's.
    let img = fresh("skel-symlink");
    e(&["ln", "-s", s(&img), "/root", "/etc/skel"]);
    refused(
        &img,
        &["--add-user", "alice"],
        "/etc/skel is a symlink (to /root)",
    );

    // A file of the skeleton that is /etc/shadow under another name.
    let img = fresh("skel-hardlink");
    e(&["mkdir", s(&img), "/etc/skel"]);
    e(&["ln", s(&img), "/etc/shadow", "/etc/skel/.profile"]);
    refused(
        &img,
        &["--add-user", "alice"],
        "/etc/skel/.profile has 2 hard links",
    );

    // A symlink of the skeleton is copied as a symlink, and never written through.
    let img = fresh("skel-dot-ssh");
    e(&["mkdir", s(&img), "/etc/skel"]);
    e(&["ln", "-s", s(&img), "/root/.ssh", "/etc/skel/.ssh"]);
    refused(
        &img,
        &["--add-user", "alice", "--ssh-inject", &inject],
        "/home/alice/.ssh is a symlink (to /root/.ssh)",
    );
    let before = guarded(&img);
    cust_ok(&img, &["--add-user", "alice"]);
    // Root's keys and /root/.ssh as they were (shadow has alice now).
    let after = guarded(&img);
    assert_eq!(before[1], after[1]);
    assert_eq!(before[4..], after[4..]);
    assert_eq!(
        run(&["readlink", s(&img), "/home/alice/.ssh"], None).stdout,
        b"/root/.ssh\n"
    );

    // A directory of the skeleton that is /root under another name.
    let img = fresh("skel-dir-hardlink");
    e(&["mkdir", s(&img), "/etc/skel"]);
    debugfs_w(&img, &["ln /root /etc/skel/r"]);
    refused(
        &img,
        &["--add-user", "alice"],
        "/etc/skel/r is a second name of a directory",
    );

    // A good skeleton: copied, alice's, with its modes.
    let img = fresh("skel-good");
    e(&["mkdir", s(&img), "/etc/skel/.config", "-p"]);
    put(&img, "/etc/skel/.bashrc", b"# bashrc\n");
    put(&img, "/etc/skel/.config/x", b"x\n");
    cust_ok(&img, &["--add-user", "alice", "--ssh-inject", &inject]);
    assert_eq!(debugfs_cat(&img, "/home/alice/.bashrc"), b"# bashrc\n");
    assert_eq!(debugfs_cat(&img, "/home/alice/.config/x"), b"x\n");
    assert!(stat_line(&img, "/home/alice/.config/x", "User:").contains("1001"));
    assert_eq!(
        debugfs_cat(&img, "/home/alice/.ssh/authorized_keys"),
        BOB_KEY.as_bytes()
    );
}

/// `prlimit --as=1G` around ext3edit, timed; None when prlimit is missing.
fn capped(args: &[&str]) -> Option<(std::process::Output, std::time::Duration)> {
    if !have("prlimit") {
        skip("prlimit is not installed: the 1 GiB cap is not tested");
        return None;
    }
    use std::process::Stdio;
    let t = std::time::Instant::now();
    let mut child = Command::new("prlimit")
        .arg("--as=1073741824")
        .arg(bin())
        .args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that never ends fails the test instead of hanging it.
    while child.try_wait().unwrap().is_none() {
        if t.elapsed().as_secs() > 60 {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("ext3edit {args:?} still running after 60 s: killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    Some((o, t.elapsed()))
}

fn ends_in_one_line(img: &Path, steps: &[&str], want: &str) {
    let before = bytes(img);
    let mut a = vec!["customize", s(img)];
    a.extend_from_slice(steps);
    let Some((o, took)) = capped(&a) else {
        return;
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{steps:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(want), "{err:?} should say {want:?}");
    assert!(took.as_secs() < 10, "took {took:?}");
    assert!(before == bytes(img), "the image changed");
}

#[test]
fn skel_loops_end_in_one_line() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let (img, _) = with_bob(d.path());
    // /etc/skel holding itself, three times: 3^16 paths to copy before.
    e(&["mkdir", s(&img), "/etc/skel"]);
    debugfs_w(
        &img,
        &[
            "ln /etc/skel /etc/skel/a",
            "ln /etc/skel /etc/skel/b",
            "ln /etc/skel /etc/skel/c",
        ],
    );
    ends_in_one_line(
        &img,
        &["--add-user", "alice"],
        "/etc/skel/a is a second name of a directory",
    );
}

#[test]
fn hard_linked_huge_policy_files_end_in_one_line() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let (img, _) = with_bob(d.path());
    let dir = "/etc/selinux/targeted/contexts/files";
    e(&["mkdir", s(&img), dir, "-p"]);
    put(
        &img,
        "/etc/selinux/config",
        b"SELINUX=enforcing\nSELINUXTYPE=targeted\n",
    );
    // A small one under two names: read once, then refused.
    put(
        &img,
        &format!("{dir}/file_contexts"),
        b"/.* system_u:object_r:default_t:s0\n",
    );
    e(&[
        "ln",
        s(&img),
        &format!("{dir}/file_contexts"),
        &format!("{dir}/file_contexts.local"),
    ]);
    refused(
        &img,
        &["--hostname", "vm1"],
        "file_contexts.local is the same file as",
    );
    // 256 MiB (a hole) under three names: 7 GB before.
    e(&["rm", s(&img), &format!("{dir}/file_contexts.local")]);
    e(&[
        "truncate",
        s(&img),
        &format!("{dir}/file_contexts"),
        "268435456",
    ]);
    for n in ["file_contexts.homedirs", "file_contexts.local"] {
        e(&[
            "ln",
            s(&img),
            &format!("{dir}/file_contexts"),
            &format!("{dir}/{n}"),
        ]);
    }
    ends_in_one_line(
        &img,
        &["--hostname", "vm1"],
        "file_contexts: 268435456 bytes",
    );
}

#[test]
fn add_user_never_reuses_an_id() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let (img, _) = with_bob(d.path());
    let ids = |img: &Path| -> Vec<(String, u32, u32)> {
        let pw = String::from_utf8(debugfs_cat(img, "/etc/passwd")).unwrap();
        pw.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (
                    f[0].to_string(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )
            })
            .collect()
    };
    let gids = |img: &Path| -> Vec<u32> {
        let g = String::from_utf8(debugfs_cat(img, "/etc/group")).unwrap();
        g.lines()
            .map(|l| l.split(':').nth(2).unwrap().parse().unwrap())
            .collect()
    };
    let distinct = |img: &Path| {
        let u = ids(img);
        let mut uids: Vec<u32> = u.iter().map(|x| x.1).collect();
        let n = uids.len();
        uids.sort();
        uids.dedup();
        assert_eq!(uids.len(), n, "a uid twice: {u:?}");
        let mut g = gids(img);
        let n = g.len();
        g.sort();
        g.dedup();
        assert_eq!(g.len(), n, "a gid twice: {g:?}");
    };
    // UID_MIN above bob's uid... and bob at exactly UID_MIN.
    let a = d.path().join("a.ext3");
    std::fs::copy(&img, &a).unwrap();
    put(&a, "/etc/login.defs", b"UID_MIN 70000\nGID_MIN 70000\n");
    let pw = String::from_utf8(debugfs_cat(&a, "/etc/passwd"))
        .unwrap()
        .replace("bob:x:1000:1000:", "bob:x:70000:1000:");
    put(&a, "/etc/passwd", pw.as_bytes());
    cust_ok(&a, &["--add-user", "alice", "--add-user", "carol"]);
    distinct(&a);
    let u = ids(&a);
    assert!(u.iter().any(|x| x.0 == "alice" && x.1 == 70001), "{u:?}");
    assert!(u.iter().any(|x| x.0 == "carol" && x.1 == 70002), "{u:?}");

    // The top of the range taken: two users in one run, each a free id.
    let b = d.path().join("b.ext3");
    std::fs::copy(&img, &b).unwrap();
    let pw = String::from_utf8(debugfs_cat(&b, "/etc/passwd")).unwrap()
        + "top:x:59999:59999::/:/bin/sh\n";
    put(&b, "/etc/passwd", pw.as_bytes());
    // A group already has the gid the next uid would give.
    let gr = String::from_utf8(debugfs_cat(&b, "/etc/group")).unwrap() + "staff:x:60000:\n";
    put(&b, "/etc/group", gr.as_bytes());
    cust_ok(
        &b,
        &[
            "--add-user",
            "alice",
            "--add-user",
            "carol",
            "--add-user",
            "dave",
        ],
    );
    distinct(&b);
    for x in ids(&b)
        .iter()
        .filter(|x| ["alice", "carol", "dave"].contains(&x.0.as_str()))
    {
        assert!((1000..=60000).contains(&x.1), "{x:?}");
    }
    // An explicit uid that is taken is refused.
    refused(&b, &["--add-user", "eve:1000"], "uid 1000 in /etc/passwd");
}

/// A directory hard link (only a crafted image has one) anywhere on the
/// way, not only at the end: a path below bob's home through a second name
/// of /etc reaches /etc/shadow, and a home that is a second name of /root
/// (whose .ssh is missing) would give bob /root/.ssh.
#[test]
fn steps_never_go_through_a_hard_linked_directory_on_the_way() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let (img, key) = with_bob(d.path());
    let before = guarded(&img);
    e(&["mkdir", s(&img), "/home/bob/sub"]);
    debugfs_w(&img, &["ln /etc /home/bob/sub/etc"]);
    refused(
        &img,
        &["--write", "/home/bob/sub/etc/shadow:bob::0:0:::::\n"],
        "/home/bob/sub/etc is a second name of a directory",
    );
    refused(
        &img,
        &["--chmod", "0666:/home/bob/sub/etc/shadow"],
        "/home/bob/sub/etc is a second name of a directory",
    );
    debugfs_w(&img, &["unlink /home/bob/sub/etc"]);
    assert_eq!(before, guarded(&img));
    // carol's home is a second name of /root, which has no .ssh yet.
    let pw = String::from_utf8(debugfs_cat(&img, "/etc/passwd")).unwrap()
        + "carol:x:1001:1001::/home/carol:/bin/sh\n";
    put(&img, "/etc/passwd", pw.as_bytes());
    e(&["rm", s(&img), "-r", "/root/.ssh"]);
    debugfs_w(&img, &["ln /root /home/carol"]);
    refused(
        &img,
        &["--ssh-inject", &format!("carol:{}", s(&key))],
        "/home/carol is a second name of a directory",
    );
    assert!(debugfs(&img, "ls /root").find(".ssh").is_none());
}

/// --selinux-relabel on a crafted tree: 20,000 names (hard links to one
/// file) in a directory 400 levels deep with 250-byte names, a path of
/// 100 KB: a walk that queues a whole path for each name waiting needs
/// 2 GB before it labels the first (SIGABRT under the 1 GiB cap).
#[test]
fn relabel_of_a_wide_directory_deep_down_stays_small() {
    require_e2fsprogs!();
    use ext3edit::{Filesystem, NewFile, OpenOptions};
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("wide.ext3");
    let o = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-b", "4096", "-N", "2048"])
        .arg(&img)
        .arg("64M")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = "/etc/selinux/targeted/contexts/files";
    e(&["mkdir", s(&img), dir, "-p"]);
    put(
        &img,
        "/etc/selinux/config",
        b"SELINUX=enforcing\nSELINUXTYPE=targeted\n",
    );
    put(
        &img,
        &format!("{dir}/file_contexts"),
        b"/.*\tsystem_u:object_r:default_t:s0\n",
    );
    {
        let mut fs = Filesystem::open(&img, &OpenOptions::read_write()).unwrap();
        let a = NewFile {
            perm: 0o755,
            ..Default::default()
        };
        let mut parent = fs.root();
        let name = [b'd'; 250];
        for _ in 0..400 {
            parent = fs.mkdir(parent, &name, &a).unwrap();
        }
        let f = fs.create_file(parent, b"f", &a, &mut &b""[..]).unwrap();
        for i in 0..20_000 {
            fs.link(f, parent, format!("{i}").as_bytes()).unwrap();
        }
        fs.commit().unwrap();
    }
    fsck_clean(&img);
    let Some((o, _)) = capped(&["customize", s(&img), "--selinux-relabel"]) else {
        return;
    };
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    fsck_clean(&img);
}

/// Edits of many crafted 16 MiB files (holes: a small image) in one run:
/// each planned content is held until the plan is applied, 1.3 GB for
/// forty of them (SIGABRT under the 1 GiB cap). The run's total is
/// bounded: one line, exit 1, the image as before.
#[test]
fn many_large_edits_in_one_run_end_in_one_line() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let (img, _) = with_bob(d.path());
    let mut steps = Vec::new();
    for i in 0..40 {
        let f = format!("/etc/big{i}");
        put(&img, &f, b"x\n");
        e(&["truncate", s(&img), &f, "16777215"]);
        steps.push("--append-line".to_string());
        steps.push(format!("{f}:hello"));
    }
    let before = bytes(&img);
    let mut a = vec!["customize", s(&img)];
    a.extend(steps.iter().map(String::as_str));
    let Some((o, _)) = capped(&a) else {
        return;
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{:?}: {err}", o.status);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("MiB of file contents"), "{err}");
    assert!(before == bytes(&img), "the image changed");
}

/// A stale /etc/shadow (or gshadow) entry for the name being added, with
/// no passwd entry: appending the new locked one after it leaves the
/// stale hash first, and that is the one login uses.
#[test]
fn add_user_refuses_a_stale_shadow_entry_of_that_name() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let (img, _) = with_bob(d.path());
    let sh = String::from_utf8(debugfs_cat(&img, "/etc/shadow")).unwrap()
        + "alice:$6$known$KnownHashOfTheImageAuthor:19000:0:99999:7:::\n";
    put(&img, "/etc/shadow", sh.as_bytes());
    refused(
        &img,
        &["--add-user", "alice"],
        "user alice in /etc/shadow (without a /etc/passwd entry)",
    );
    let sh = sh.replace(
        "alice:$6$known$KnownHashOfTheImageAuthor:19000:0:99999:7:::\n",
        "",
    );
    put(&img, "/etc/shadow", sh.as_bytes());
    if debugfs(&img, "ls /etc").contains("gshadow") {
        let gs =
            String::from_utf8(debugfs_cat(&img, "/etc/gshadow")).unwrap() + "alice:$6$known$x::\n";
        put(&img, "/etc/gshadow", gs.as_bytes());
        refused(
            &img,
            &["--add-user", "alice"],
            "group alice in /etc/gshadow (without a /etc/group entry)",
        );
    }
}
