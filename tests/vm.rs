//! `check` and `customize` on the sample image and on variants that fail
//! each requirement in turn: golden output (text and JSON; refresh with
//! UPDATE_GOLDEN=1), e2fsck after every customize, files read back with
//! debugfs, root's hash verified by openssl (another crypt), bad input
//! leaving the image byte for byte as it was.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sample_copy(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample.ext3");
    let dst = dir.join("img.ext3");
    std::fs::copy(src, &dst).unwrap();
    dst
}

/// Compare `got` with tests/golden/NAME, the image path replaced by IMAGE.
fn golden(name: &str, got: &str, img: &Path) {
    let got = got.replace(img.to_str().unwrap(), "IMAGE");
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&p, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p)
        .unwrap_or_else(|_| panic!("missing {}: run with UPDATE_GOLDEN=1", p.display()));
    assert_eq!(
        got,
        want,
        "output differs from {} (UPDATE_GOLDEN=1 refreshes it)",
        p.display()
    );
}

fn check(img: &Path, json: bool) -> (Option<i32>, String) {
    let mut a = vec!["check", img.to_str().unwrap()];
    if json {
        a.push("--json");
    }
    let out = run(&a, None);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

fn cust(img: &Path, steps: &[&str]) -> std::process::Output {
    let mut a = vec!["customize", img.to_str().unwrap()];
    a.extend_from_slice(steps);
    run(&a, None)
}

fn cust_ok(img: &Path, steps: &[&str]) -> String {
    let out = cust(img, steps);
    assert!(
        out.status.success(),
        "customize {steps:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fsck_clean(img);
    String::from_utf8(out.stdout).unwrap()
}

fn status_of(json: &str, n: usize) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["requirements"][n - 1]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn check_the_sample_text_and_json() {
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    let (code, text) = check(&img, false);
    assert_eq!(code, Some(1), "the sample fails 4, 5 and 7");
    golden("check-sample.txt", &text, &img);
    let (code, js) = check(&img, true);
    assert_eq!(code, Some(1));
    golden("check-sample.json", &js, &img);
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["passed"], false);
    let st: Vec<&str> = v["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(st, ["pass", "pass", "pass", "fail", "fail", "pass", "fail"]);
    assert_eq!(
        v["requirements"][3]["fix"]["args"],
        serde_json::json!(["--network", "eth1=dhcp"])
    );
}

/// Break one requirement at a time on a fixed sample; check must fail that
/// one (and name the evidence), and `customize --fix` must fix what it can.
#[test]
fn each_requirement_fails_in_turn() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let base = sample_copy(d.path());
    cust_ok(&base, &["--fix"]);
    let (code, _) = check(&base, false);
    assert_eq!(code, Some(0), "the fixed sample passes");
    let host = d.path().join("f");
    let cases: Vec<(&str, usize, Vec<Vec<&str>>, bool)> = vec![
        ("no-journal", 1, vec![], false),
        ("no-sshd", 2, vec![vec!["rm", "/usr/sbin/sshd"]], false),
        (
            "sshd-not-started",
            2,
            vec![vec!["rm", "/etc/rc.d/rc3.d/S55sshd"]],
            true,
        ),
        (
            "sshd-config-missing",
            2,
            vec![vec!["rm", "/etc/ssh/sshd_config"]],
            true,
        ),
        ("no-home", 3, vec![vec!["rmdir", "/home"]], true),
        (
            "no-eth1",
            4,
            vec![vec!["rm", "/etc/sysconfig/network-scripts/ifcfg-eth1"]],
            true,
        ),
        ("no-hosts", 4, vec![vec!["rm", "/etc/hosts"]], true),
        (
            "no-xen-console",
            5,
            vec![vec!["rm", "/etc/securetty"]],
            true,
        ),
        ("no-shadow", 6, vec![vec!["rm", "/etc/shadow"]], true),
        (
            "no-xen-ldconf",
            7,
            vec![vec!["rm", "/etc/ld.so.conf.d/libc6-xen.conf"]],
            true,
        ),
    ];
    for (name, req, cmds, fixable) in cases {
        let img = d.path().join(format!("{name}.ext3"));
        if name == "no-journal" {
            // An ext2 image: the same tree without its journal.
            std::fs::copy(&base, &img).unwrap();
            let out = Command::new("tune2fs")
                .args(["-O", "^has_journal"])
                .arg(&img)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            std::fs::copy(&base, &img).unwrap();
        }
        for c in cmds {
            let mut a = vec![c[0], img.to_str().unwrap()];
            a.extend_from_slice(&c[1..]);
            let out = run(&a, None);
            assert!(
                out.status.success(),
                "{name}: {c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (code, text) = check(&img, false);
        assert_eq!(code, Some(1), "{name}: check must fail:\n{text}");
        golden(&format!("check-{name}.txt"), &text, &img);
        let (_, js) = check(&img, true);
        assert_eq!(
            status_of(&js, req),
            "fail",
            "{name}: requirement {req}\n{js}"
        );
        let before = bytes(&img);
        let out = cust(&img, &["--fix"]);
        if fixable {
            assert!(
                out.status.success(),
                "{name}: --fix: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            fsck_clean(&img);
            let (code, text) = check(&img, false);
            assert_eq!(code, Some(0), "{name}: after --fix:\n{text}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{name}: --fix cannot fix it");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("but not:"), "{name}: {err}");
            assert!(err.lines().count() == 1, "{name}: one line: {err}");
            if before != bytes(&img) {
                fsck_clean(&img);
            }
        }
        let _ = std::fs::remove_file(&host);
    }
}

#[test]
fn customize_dry_run_is_golden_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    let before = bytes(&img);
    let out = cust(
        &img,
        &[
            "--dry-run",
            "--fix",
            "--hostname",
            "vm1.example.org",
            "--network",
            "eth0=static:10.0.0.5/24,gw=10.0.0.1,dns=10.0.0.1",
            "--sshd-set",
            "PermitRootLogin=without-password",
            "--chmod",
            "0644:/etc/ssh/sshd_config",
            "--mkdir",
            "/srv/data",
            "--link",
            "/srv/data:/data",
            "--delete",
            "/root/.bashrc",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    golden(
        "customize-dry-run.txt",
        &String::from_utf8(out.stdout).unwrap(),
        &img,
    );
    assert_eq!(before, bytes(&img), "--dry-run wrote to the image");
}

#[test]
fn customize_does_what_it_says() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    let key = d.path().join("id.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@laptop\n",
    )
    .unwrap();
    let recipe = d.path().join("recipe.txt");
    std::fs::write(
        &recipe,
        "# the cluster recipe\nadd-user alice:600\nssh-inject alice:id.pub\nssh-inject root:id.pub\nxen-ldconf\nappend-line /etc/motd:welcome\n",
    )
    .unwrap();
    let out = cust_ok(
        &img,
        &[
            "--root-password",
            "s3cret pass",
            "--commands-from-file",
            recipe.to_str().unwrap(),
            "--enable-sshd",
            "--xen-console",
            "hvc0",
            "--network",
            "eth1=static:192.168.7.9/25,gw=192.168.7.1",
        ],
    );
    assert!(out.is_empty(), "no password printed unless random: {out}");
    // Root's hash verifies with openssl's crypt, not ours.
    let shadow = String::from_utf8(debugfs_cat(&img, "/etc/shadow")).unwrap();
    let root = shadow.lines().find(|l| l.starts_with("root:")).unwrap();
    let hash = root.split(':').nth(1).unwrap();
    assert!(hash.starts_with("$6$"), "{root}");
    let salt = hash.split('$').nth(2).unwrap();
    if let Ok(o) = Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, "s3cret pass"])
        .output()
    {
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            hash,
            "openssl disagrees"
        );
    } else {
        skip("openssl is not installed: the hash is not verified by a second crypt");
    }
    // Edited files keep mode and owner: shadow stays 0400.
    let st = debugfs(&img, "stat /etc/shadow");
    assert!(st.contains("Mode:  0400"), "{st}");
    // The new user: passwd, group, home from the skeleton, keys with sshd's modes.
    let passwd = String::from_utf8(debugfs_cat(&img, "/etc/passwd")).unwrap();
    assert!(passwd.contains("alice:x:600:600::/home/alice:"), "{passwd}");
    let st = debugfs(&img, "stat /home/alice/.ssh/authorized_keys");
    assert!(
        st.contains("Mode:  0600") && st.contains("User:   600"),
        "{st}"
    );
    let st = debugfs(&img, "stat /home/alice/.ssh");
    assert!(
        st.contains("Mode:  0700") && st.contains("User:   600"),
        "{st}"
    );
    assert_eq!(
        debugfs_cat(&img, "/root/.ssh/authorized_keys"),
        std::fs::read(&key).unwrap()
    );
    // Running the same key again adds nothing.
    cust_ok(&img, &["--ssh-inject", &format!("root:{}", key.display())]);
    assert_eq!(
        debugfs_cat(&img, "/root/.ssh/authorized_keys"),
        std::fs::read(&key).unwrap()
    );
    // sshd in runlevels 2-5, console, network.
    // (The sample has only rc3.d: links go in the runlevels that exist.)
    let ls = debugfs(&img, "stat /etc/rc.d/rc3.d/S55sshd");
    assert!(ls.contains("Fast link dest: \"../init.d/sshd\""), "{ls}");
    let inittab = String::from_utf8(debugfs_cat(&img, "/etc/inittab")).unwrap();
    assert!(
        inittab.contains(":2345:respawn:/sbin/mingetty hvc0"),
        "{inittab}"
    );
    let ifcfg = String::from_utf8(debugfs_cat(
        &img,
        "/etc/sysconfig/network-scripts/ifcfg-eth1",
    ))
    .unwrap();
    for l in [
        "DEVICE=eth1",
        "ONBOOT=yes",
        "BOOTPROTO=none",
        "IPADDR=192.168.7.9",
        "NETMASK=255.255.255.128",
        "PREFIX=25",
        "GATEWAY=192.168.7.1",
    ] {
        assert!(ifcfg.lines().any(|x| x == l), "{l} in {ifcfg}");
    }
    assert_eq!(debugfs_cat(&img, "/etc/motd"), b"welcome\n");
    // ext4-view reads the same tree.
    let v = view(&img);
    assert!(v.read("/etc/ld.so.conf.d/libc6-xen.conf").unwrap() == b"hwcap 0 nosegneg\n");
    // And the image meets every requirement (hvc0 is a Xen console too).
    let (code, text) = check(&img, false);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn random_password_is_printed_once_and_sshd_set_keeps_comments() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    let before = String::from_utf8(debugfs_cat(&img, "/etc/ssh/sshd_config")).unwrap();
    let out = cust_ok(
        &img,
        &[
            "--root-password",
            "random",
            "--sshd-set",
            "PasswordAuthentication=no",
            "--sshd-set",
            "Port=2222",
        ],
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("root password: "))
        .expect(&out);
    let pass = line.trim_start_matches("root password: ");
    assert_eq!(pass.len(), 16);
    let shadow = String::from_utf8(debugfs_cat(&img, "/etc/shadow")).unwrap();
    let hash = shadow
        .lines()
        .next()
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .to_string();
    let salt = hash.split('$').nth(2).unwrap();
    if let Ok(o) = Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, pass])
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), hash);
    }
    let after = String::from_utf8(debugfs_cat(&img, "/etc/ssh/sshd_config")).unwrap();
    for l in before.lines().filter(|l| l.starts_with('#')) {
        assert!(after.contains(l), "comment {l:?} kept");
    }
    assert!(
        after.lines().any(|l| l == "PasswordAuthentication no"),
        "{after}"
    );
    assert!(after.lines().any(|l| l == "Port 2222"), "{after}");
}

/// Bad input: one clear line naming the step (and recipe line), exit
/// non-zero, the image byte for byte as before.
#[test]
fn bad_input_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    let recipe = d.path().join("r.txt");
    std::fs::write(&recipe, "fix\nxen-ldconf\nmake-it-work now\n").unwrap();
    let nopw = d.path().join("nopasswd.ext3");
    std::fs::copy(&img, &nopw).unwrap();
    assert!(run(&["rm", nopw.to_str().unwrap(), "/etc/passwd"], None)
        .status
        .success());
    let badshadow = d.path().join("badshadow.ext3");
    std::fs::copy(&img, &badshadow).unwrap();
    let out = run(
        &["put", badshadow.to_str().unwrap(), "-", "/etc/shadow"],
        Some(b"root\nbin:*:1:0:::::\n"),
    );
    assert!(out.status.success());
    let key = d.path().join("k.pub");
    std::fs::write(&key, "ssh-rsa AAAAB3Nza x@y\n").unwrap();
    let kk = format!("nosuchuser:{}", key.display());
    let cases: Vec<(&Path, Vec<&str>, &str)> = vec![
        (&nopw, vec!["--fix", "--add-user", "bob"], "/etc/passwd"),
        (
            &badshadow,
            vec!["--root-password", "x"],
            "/etc/shadow:1: malformed root entry",
        ),
        (
            &img,
            vec!["--fix", "--ssh-inject", &kk],
            "there is no user nosuchuser in the image's /etc/passwd",
        ),
        (
            &img,
            vec!["--network", "eth0=static:10.0.0.300/24"],
            "invalid address",
        ),
        (&img, vec!["--hostname", "my host"], "not a valid host name"),
        (
            &img,
            vec!["--fix", "--write", "/etc/ssh:oops"],
            "a step would replace it with a file",
        ),
        (
            &img,
            vec!["--fix", "--commands-from-file", recipe.to_str().unwrap()],
            "r.txt:3",
        ),
        (
            &img,
            vec!["--xen-ldconf", "--bogus-step"],
            "not a customize step",
        ),
        // The "did you mean" hint once sliced inside a character.
        (&img, vec!["--ééé"], "--ééé is not a customize step"),
        (
            &img,
            vec!["--upload", "/nonexistent/file:/etc/x"],
            "/nonexistent/file",
        ),
    ];
    for (im, steps, want) in cases {
        let before = bytes(im);
        let out = cust(im, &steps);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(1) | Some(2)),
            "{steps:?}: {:?} {err}",
            out.status.code()
        );
        assert_eq!(err.lines().count(), 1, "{steps:?}: one line: {err}");
        assert!(err.contains(want), "{steps:?}: {err:?} should say {want:?}");
        assert!(!err.contains("panicked"));
        if want.contains("no user") {
            assert!(!err.contains("no such file"), "{steps:?}: {err}");
        }
        assert_eq!(before, bytes(im), "{steps:?} changed the image");
    }
}

#[test]
fn aucd_conf_decides_the_url() {
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    cust_ok(&img, &["--fix"]);
    let conf = d.path().join("tycoon_aucd.conf");
    std::fs::write(
        &conf,
        "import os\nAllowedFileSystemImageRegexs = [\n  r'http://images\\.example\\.org/.*\\.ext3\\.bz2',\n]\n",
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    let i = img.to_str().unwrap();
    let ok = run(
        &[
            "check",
            i,
            "--aucd-conf",
            c,
            "--url",
            "http://images.example.org/c5.ext3.bz2",
        ],
        None,
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("tycoon_aucd.conf:3"));
    let no = run(
        &[
            "check",
            i,
            "--aucd-conf",
            c,
            "--url",
            "http://evil.example.com/c5.ext3.bz2",
            "--json",
        ],
        None,
    );
    assert_eq!(no.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&no.stdout).unwrap();
    assert_eq!(v["url"]["allowed"], false);
    // Every requirement is met, but a refused URL fails the result.
    assert!(v["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] != "fail"));
    assert_eq!(v["passed"], false);
    let no = run(
        &[
            "check",
            i,
            "--aucd-conf",
            c,
            "--url",
            "http://evil.example.com/c5.ext3.bz2",
        ],
        None,
    );
    assert_eq!(no.status.code(), Some(1));
    let text = String::from_utf8_lossy(&no.stdout);
    assert!(!text.contains("every requirement is met\n"), "{text}");
    assert!(text.contains("but the URL is not allowed"), "{text}");
    // What Python would read differently: cannot decide, never "allowed".
    let url = "http://images.example.org/c5.ext3.bz2";
    for (body, want) in [
        (
            "AllowedFileSystemImageRegexs = [r'http://images\\.example\\.org/.*']\nif os.environ.get('LOCKDOWN'):\n    AllowedFileSystemImageRegexs = []\n",
            "tycoon_aucd.conf:3: AllowedFileSystemImageRegexs inside an indented block",
        ),
        (
            "AllowedFileSystemImageRegexs = [r'http://images\\.example\\.org/.*']\ndel AllowedFileSystemImageRegexs[0]\n",
            "tycoon_aucd.conf:2: del AllowedFileSystemImageRegexs",
        ),
        (
            "AllowedFileSystemImageRegexs = ['http://images\\.example\\.org/\\N{DIGIT ONE}?.*']\n",
            "tycoon_aucd.conf:1: \\N in a plain string",
        ),
    ] {
        std::fs::write(&conf, body).unwrap();
        let out = run(&["check", i, "--aucd-conf", c, "--url", url], None);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{body}: {text}");
        assert!(text.contains("url: cannot decide whether"), "{body}: {text}");
        assert!(text.contains(want), "{body}: {text}");
        assert!(!text.contains(" is allowed by "), "{body}: {text}");
        let out = run(&["check", i, "--aucd-conf", c, "--url", url, "--json"], None);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["url"]["allowed"], serde_json::Value::Null, "{body}");
        assert_eq!(v["passed"], false, "{body}");
    }
    // "\b" in a plain string is a backspace for Python: the pattern does
    // not match a URL with "\b" in it... nor a word boundary.
    std::fs::write(
        &conf,
        "AllowedFileSystemImageRegexs = ['http://images\\.example\\.org/c5\\b']\n",
    )
    .unwrap();
    let out = run(&["check", i, "--aucd-conf", c, "--url", url], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without the setting: it says the setting is missing.
    std::fs::write(&conf, "BankHostName = 'bank.example'\n").unwrap();
    let out = run(&["check", i, "--aucd-conf", c, "--url", url], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("the setting is missing"), "{text}");
}

/// With the image's own SELinux policy (../shared/corpus/selinux, put into
/// the image), what customize creates gets the label libselinux would give
/// it, and --selinux-relabel labels everything.
#[test]
fn selinux_labels_from_the_images_policy() {
    require_e2fsprogs!();
    let pol = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/selinux");
    if !pol.join("expected.tsv").exists() {
        skip("../shared/corpus/selinux is absent");
        return;
    }
    let expected: std::collections::HashMap<String, String> =
        std::fs::read_to_string(pol.join("expected.tsv"))
            .unwrap()
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 3).then(|| (f[0].to_string(), f[2].to_string()))
            })
            .collect();
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("big.ext3");
    // The policy is a few MB: a bigger image than the sample.
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-I", "256", "-d"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample-root"))
        .arg(&img)
        .arg("64M")
        .output()
        .unwrap();
    assert!(out.status.success());
    let i = img.to_str().unwrap();
    let dir = "/etc/selinux/default/contexts/files";
    assert!(run(&["mkdir", i, dir, "-p"], None).status.success());
    for f in [
        "file_contexts",
        "file_contexts.homedirs",
        "file_contexts.subs_dist",
    ] {
        let src = pol.join(f);
        assert!(run(
            &["put", i, src.to_str().unwrap(), &format!("{dir}/{f}")],
            None
        )
        .status
        .success());
    }
    let out = run(
        &["put", i, "-", "/etc/selinux/config"],
        Some(b"SELINUX=enforcing\nSELINUXTYPE=default\n"),
    );
    assert!(out.status.success());
    let key = d.path().join("k.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISelinux s@h\n").unwrap();
    cust_ok(
        &img,
        &[
            "--add-user",
            "alice",
            "--ssh-inject",
            &format!("alice:{}", key.display()),
            "--ssh-inject",
            &format!("root:{}", key.display()),
        ],
    );
    let label = |p: &str| -> String {
        let out = run(&["stat", i, p, "--json"], None);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["xattrs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "security.selinux")
            .map(|x| x["value"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    for p in [
        "/root/.ssh",
        "/root/.ssh/authorized_keys",
        "/home/alice/.ssh/authorized_keys",
    ] {
        assert_eq!(&label(p), &expected[p], "{p}");
        // debugfs reads the same attribute.
        let ea = debugfs(&img, &format!("ea_get {p} security.selinux"));
        assert!(ea.contains(&expected[p]), "{p}: {ea}");
    }
    assert_eq!(label("/etc/shadow"), "", "not labelled before the relabel");
    let out = cust_ok(&img, &["--selinux-relabel"]);
    assert!(out.contains("selinux-relabel:"), "{out}");
    for p in [
        "/etc/shadow",
        "/etc/ssh/sshd_config",
        "/root/.ssh/authorized_keys",
        "/etc/passwd",
    ] {
        if let Some(want) = expected.get(p) {
            assert_eq!(&label(p), want, "{p}");
        }
    }
    // A second relabel changes nothing.
    let out = cust_ok(&img, &["--selinux-relabel"]);
    assert!(out.contains(" 0 labels changed"), "{out}");
}

/// A tree of files for mke2fs -d: (path, content) pairs, and symlinks as
/// (path, "->target").
fn tree_image(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let root = dir.join("root");
    for (p, c) in files {
        let at = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        if let Some(t) = c.strip_prefix("->") {
            std::os::unix::fs::symlink(t, &at).unwrap();
        } else if c.is_empty() && p.ends_with('/') {
            std::fs::create_dir_all(&at).unwrap();
        } else {
            std::fs::write(&at, c).unwrap();
            if p.contains("bin/") || p.contains("/init.d/") || p.contains("systemd/systemd") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
    }
    let img = dir.join("img.ext3");
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-d"])
        .arg(&root)
        .arg(&img)
        .arg("8M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    img
}

/// What a minimal Debian bookworm has either way (sysvinit or systemd).
const DEBIAN_COMMON: &[(&str, &str)] = &[
    ("/etc/debian_version", "12.8\n"),
    (
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
    ),
    ("/etc/hostname", "deb\n"),
    (
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n",
    ),
    (
        "/etc/shadow",
        "root:*:19000:0:99999:7:::\nsshd:!:19000::::::\n",
    ),
    ("/etc/group", "root:x:0:\nusers:x:100:\n"),
    ("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n"),
    (
        "/etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\n",
    ),
    ("/usr/sbin/sshd", "ELF"),
    ("/usr/sbin/agetty", "ELF"),
    ("/sbin", "->usr/sbin"),
    ("/lib", "->usr/lib"),
    ("/usr/lib/terminfo/v/vt100", "ti"),
    ("/usr/lib/terminfo/v/vt220", "ti"),
    ("/usr/lib/udev/rules.d/80-net-setup-link.rules", "# udev\n"),
    ("/usr/lib/modules/6.1.0-28-amd64/modules.dep", ""),
    // Bookworm's login: no pam_securetty.
    (
        "/etc/pam.d/login",
        "auth optional pam_faildelay.so delay=3000000\n@include common-auth\n",
    ),
    (
        "/etc/pam.d/common-auth",
        "auth [success=1 default=ignore] pam_unix.so nullok\n",
    ),
    ("/home/", ""),
    ("/root/", ""),
];

fn ls(img: &Path, dir: &str) -> String {
    let out = run(&["ls", img.to_str().unwrap(), dir, "-l"], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text(img: &Path, p: &str) -> String {
    String::from_utf8_lossy(&debugfs_cat(img, p)).into_owned()
}

/// Items 19, 20, 22 of issue 13 on a Debian sysvinit image (ifupdown):
/// --network and --fix write what ifupdown reads besides the ifcfg files,
/// the getty on hvc0 gets a TERM the image's terminfo has and no second
/// one on xvc0, Debian's S01ssh links stay, no securetty is demanded (PAM
/// does not use it), and the host name goes on 127.0.1.1.
#[test]
fn debian_sysvinit_image_gets_what_its_own_stack_reads() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let mut files: Vec<(&str, &str)> = DEBIAN_COMMON.to_vec();
    files.extend_from_slice(&[
        ("/usr/sbin/init", "ELF"),
        (
            "/etc/inittab",
            "id:2:initdefault:\nsi::sysinit:/etc/init.d/rcS\nl2:2:wait:/etc/init.d/rc 2\n1:2345:respawn:/sbin/getty --noclear 38400 tty1\n",
        ),
        ("/usr/sbin/ifup", "ELF"),
        ("/usr/sbin/dhclient", "ELF"),
        ("/etc/init.d/networking", "#!/bin/sh\n"),
        ("/etc/rcS.d/S10networking", "->../init.d/networking"),
        (
            "/etc/network/interfaces",
            "# interfaces(5)\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
        ),
        ("/etc/network/interfaces.d/", ""),
        ("/etc/init.d/ssh", "#!/bin/sh\n"),
        ("/etc/rc2.d/S01ssh", "->../init.d/ssh"),
        ("/etc/rc3.d/S01ssh", "->../init.d/ssh"),
        ("/etc/rc4.d/S01ssh", "->../init.d/ssh"),
        ("/etc/rc5.d/S01ssh", "->../init.d/ssh"),
    ]);
    let img = tree_image(d.path(), &files);
    let (code, out) = check(&img, false);
    assert_eq!(code, Some(1));
    let net = out.lines().find(|l| l.starts_with("4 ")).unwrap();
    assert!(net.contains("network stack: ifupdown"), "{net}");
    assert!(
        net.contains("eth0 is not brought up at boot: ifupdown: no `iface eth0 inet` stanza"),
        "{net}"
    );
    let con = out.lines().find(|l| l.starts_with("5 ")).unwrap();
    assert!(con.contains("does not use pam_securetty"), "{con}");
    assert!(!con.contains("securetty is missing"), "{con}");
    // The kernel is 6.1: the fix names hvc0, not RHEL 5's xvc0.
    assert!(con.contains("--xen-console hvc0"), "{con}");

    // --fix first, the console after it, as the boot test does.
    cust_ok(
        &img,
        &[
            "--fix",
            "--root-password",
            "pw",
            "--enable-sshd",
            "--xen-console",
            "hvc0",
        ],
    );
    let eth0 = text(&img, "/etc/network/interfaces.d/eth0");
    assert_eq!(eth0, "allow-hotplug eth0\niface eth0 inet dhcp\n");
    assert!(text(&img, "/etc/network/interfaces.d/eth1").contains("iface eth1 inet dhcp"));
    assert!(text(&img, "/etc/sysconfig/network-scripts/ifcfg-eth0").contains("BOOTPROTO=dhcp"));
    let inittab = text(&img, "/etc/inittab");
    assert!(
        inittab.contains(":2345:respawn:/sbin/agetty -L hvc0 9600 vt220\n"),
        "{inittab}"
    );
    assert!(!inittab.contains("xvc0"), "{inittab}");
    assert!(!inittab.contains("vt100-nav"), "{inittab}");
    assert!(
        run(&["stat", img.to_str().unwrap(), "/etc/securetty"], None)
            .status
            .code()
            == Some(1)
    );
    let rc2 = ls(&img, "/etc/rc2.d");
    assert!(rc2.contains("S01ssh -> ../init.d/ssh"), "{rc2}");
    assert!(!rc2.contains("S55"), "{rc2}");
    let hosts = text(&img, "/etc/hosts");
    assert!(
        hosts.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tdeb\n"),
        "{hosts}"
    );
    let (code, out) = check(&img, false);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("eth0 is brought up at boot by ifupdown (/etc/network/interfaces.d/eth0:2: iface eth0 inet dhcp; /etc/network/interfaces.d/eth0:1: allow-hotplug eth0)"), "{out}");
    assert!(out.contains("predictable names apply"), "{out}");

    // A static address replaces the stanza in its file, once.
    cust_ok(
        &img,
        &[
            "--network",
            "eth0=static:10.0.0.5/24,gw=10.0.0.1,dns=10.0.0.1",
        ],
    );
    assert_eq!(
        text(&img, "/etc/network/interfaces.d/eth0"),
        "allow-hotplug eth0\niface eth0 inet static\n    address 10.0.0.5/24\n    gateway 10.0.0.1\n    dns-nameservers 10.0.0.1\n"
    );
    // A stanza of the image's own in /etc/network/interfaces is edited
    // there, its other stanzas kept.
    let d2 = tempfile::tempdir().unwrap();
    let mut files2 = files.clone();
    files2.retain(|f| f.0 != "/usr/sbin/dhclient");
    for f in files2.iter_mut() {
        if f.0 == "/etc/network/interfaces" {
            f.1 = "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address 192.168.1.2/24\n\niface eth9 inet manual\n";
        }
    }
    let img2 = tree_image(d2.path(), &files2);
    cust_ok(&img2, &["--network", "eth0=dhcp"]);
    assert_eq!(
        text(&img2, "/etc/network/interfaces"),
        "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n\niface eth9 inet manual\n"
    );
    // An image whose ifcfg-eth0 has a static address: --fix gives
    // ifupdown the same address, and the ifcfg file keeps it.
    let d3 = tempfile::tempdir().unwrap();
    let mut files3 = files.clone();
    files3.extend_from_slice(&[
        (
            "/etc/sysconfig/network-scripts/ifcfg-eth0",
            "DEVICE=eth0\nBOOTPROTO=static\nIPADDR=10.0.0.5\nNETMASK=255.255.255.0\nGATEWAY=10.0.0.1\nONBOOT=yes\n",
        ),
        ("/etc/sysconfig/network", "NETWORKING=yes\n"),
    ]);
    let img3 = tree_image(d3.path(), &files3);
    cust_ok(&img3, &["--fix"]);
    assert_eq!(
        text(&img3, "/etc/network/interfaces.d/eth0"),
        "allow-hotplug eth0\niface eth0 inet static\n    address 10.0.0.5/24\n    gateway 10.0.0.1\n"
    );
    let ifcfg = text(&img3, "/etc/sysconfig/network-scripts/ifcfg-eth0");
    assert!(ifcfg.contains("IPADDR=10.0.0.5\n"), "{ifcfg}");
    assert!(text(&img3, "/etc/network/interfaces.d/eth1").contains("inet dhcp"));
    // That image has no DHCP client (minbase does not install ifupdown's
    // recommends): eth0 would get no address, and check says so.
    let (code, out) = check(&img2, false);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("eth0 is not brought up at boot: ifupdown: /etc/network/interfaces:5: iface eth0 inet dhcp, but the image has no DHCP client"),
        "{out}"
    );
}

/// Items 19 and 20 of issue 13 on a Debian systemd image: networkd,
/// installed but not enabled, gets a .network file for eth0 and eth1 and
/// is enabled through unit links; the getty on hvc0 is the
/// serial-getty@hvc0 link systemctl enable makes (no inittab written).
#[test]
fn debian_systemd_image_gets_networkd_and_getty_links() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let mut files: Vec<(&str, &str)> = DEBIAN_COMMON.to_vec();
    files.extend_from_slice(&[
        ("/usr/lib/systemd/systemd", "ELF"),
        ("/usr/sbin/init", "->../lib/systemd/systemd"),
        // As RHEL 7 has it: systemd does not read it.
        (
            "/etc/inittab",
            "# inittab is no longer used when using systemd.\n",
        ),
        ("/usr/lib/systemd/systemd-networkd", "ELF"),
        (
            "/usr/lib/systemd/system/systemd-networkd.service",
            "[Unit]\n",
        ),
        (
            "/usr/lib/systemd/system/systemd-networkd.socket",
            "[Unit]\n",
        ),
        ("/usr/lib/systemd/system/serial-getty@.service", "[Unit]\n"),
        ("/usr/lib/systemd/system/ssh.service", "[Unit]\n"),
        (
            "/etc/systemd/system/multi-user.target.wants/ssh.service",
            "->/lib/systemd/system/ssh.service",
        ),
        // A vendor file that matches by more than the name: not eth0's.
        (
            "/usr/lib/systemd/network/80-container-host0.network",
            "[Match]\nVirtualization=container\nName=host0\n\n[Network]\nDHCP=yes\n",
        ),
    ]);
    let img = tree_image(d.path(), &files);
    let (code, out) = check(&img, false);
    assert_eq!(code, Some(1));
    let net = out.lines().find(|l| l.starts_with("4 ")).unwrap();
    assert!(net.contains("network stack: systemd-networkd (/usr/lib/systemd/systemd-networkd), not started at boot"), "{net}");
    assert!(net.contains("no network stack starts at boot"), "{net}");

    cust_ok(
        &img,
        &["--fix", "--root-password", "pw", "--xen-console", "hvc0"],
    );
    assert_eq!(
        text(&img, "/etc/systemd/network/10-eth0.network"),
        "# Written by ext3edit customize --network.\n[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n"
    );
    assert!(text(&img, "/etc/systemd/network/10-eth1.network").contains("Name=eth1\n"));
    let mu = ls(&img, "/etc/systemd/system/multi-user.target.wants");
    assert!(
        mu.contains("systemd-networkd.service -> /usr/lib/systemd/system/systemd-networkd.service"),
        "{mu}"
    );
    assert!(
        mu.contains("ssh.service -> /lib/systemd/system/ssh.service"),
        "{mu}"
    );
    let so = ls(&img, "/etc/systemd/system/sockets.target.wants");
    assert!(
        so.contains("systemd-networkd.socket -> /usr/lib/systemd/system/systemd-networkd.socket"),
        "{so}"
    );
    let gt = ls(&img, "/etc/systemd/system/getty.target.wants");
    assert!(
        gt.contains("serial-getty@hvc0.service -> /usr/lib/systemd/system/serial-getty@.service"),
        "{gt}"
    );
    assert!(!gt.contains("xvc0"), "{gt}");
    assert_eq!(
        text(&img, "/etc/inittab"),
        "# inittab is no longer used when using systemd.\n"
    );
    let (code, out) = check(&img, false);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "eth0 is brought up at boot by systemd-networkd (/etc/systemd/network/10-eth0.network)"
        ),
        "{out}"
    );
    assert!(
        out.contains("systemd: /etc/systemd/system/getty.target.wants/serial-getty@hvc0.service"),
        "{out}"
    );
}

/// Item 20 of issue 13: on an image with RHEL's vt100-nav in its
/// terminfo (and agetty, no mingetty), the getty keeps vt100-nav; and
/// NetworkManager on a non-Red Hat image gets a 0600 keyfile.
#[test]
fn term_follows_terminfo_and_network_manager_gets_a_keyfile() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let mut files: Vec<(&str, &str)> = DEBIAN_COMMON.to_vec();
    files.extend_from_slice(&[
        ("/usr/share/terminfo/v/vt100-nav", "ti"),
        ("/usr/sbin/init", "ELF"),
        ("/etc/inittab", "id:3:initdefault:\n"),
        ("/usr/sbin/NetworkManager", "ELF"),
        ("/etc/init.d/NetworkManager", "#!/bin/sh\n"),
        ("/etc/rc3.d/S20NetworkManager", "->../init.d/NetworkManager"),
        (
            "/etc/NetworkManager/NetworkManager.conf",
            "[main]\nno-auto-default=*\n",
        ),
    ]);
    let img = tree_image(d.path(), &files);
    let (_, out) = check(&img, false);
    assert!(out.contains("eth0 is not brought up at boot: NetworkManager: no keyfile names eth0 and no-auto-default=* is set"), "{out}");
    cust_ok(
        &img,
        &[
            "--xen-console",
            "hvc0",
            "--network",
            "eth0=static:10.1.0.2/16,gw=10.1.0.1",
        ],
    );
    assert!(text(&img, "/etc/inittab").contains("/sbin/agetty -L hvc0 9600 vt100-nav\n"));
    let p = "/etc/NetworkManager/system-connections/eth0.nmconnection";
    let k = text(&img, p);
    assert!(k.contains("interface-name=eth0\n"), "{k}");
    assert!(
        k.contains("method=manual\naddress1=10.1.0.2/16,10.1.0.1\n"),
        "{k}"
    );
    let st = debugfs(&img, &format!("stat {p}"));
    assert!(st.contains("Mode:  0600"), "{st}");
    let (_, out) = check(&img, false);
    assert!(
        out.contains(&format!(
            "eth0 is brought up at boot by NetworkManager ({p})"
        )),
        "{out}"
    );
}

/// Item 22 of issue 13: `--fix` followed by `--xen-console hvc0` puts one
/// getty on hvc0, not a second one on xvc0 that would respawn too fast
/// (the sample has no kernel, so --fix alone would name xvc0).
#[test]
fn fix_puts_its_getty_on_the_console_the_run_names() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    cust_ok(&img, &["--fix", "--xen-console", "hvc0"]);
    let inittab = text(&img, "/etc/inittab");
    assert!(
        inittab.contains(":respawn:/sbin/mingetty hvc0\n"),
        "{inittab}"
    );
    assert!(!inittab.contains("xvc0"), "{inittab}");
    let securetty = text(&img, "/etc/securetty");
    assert!(securetty.lines().any(|l| l == "hvc0"), "{securetty}");
    // Alone, --fix still names RHEL 5's xvc0.
    let d2 = tempfile::tempdir().unwrap();
    let img2 = sample_copy(d2.path());
    cust_ok(&img2, &["--fix"]);
    assert!(text(&img2, "/etc/inittab").contains(":respawn:/sbin/mingetty xvc0\n"));
}

/// sshd's own lexing: white space is space, tab, CR and LF (a no-break
/// space or a vertical tab is part of the word), one `=` only, quotes must
/// close; and the values of common yes/no, number and time keywords are
/// checked. Each of these lines stops that sshd; check used to pass them.
#[test]
fn sshd_config_lexed_and_valued_as_sshd_does() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let base = sample_copy(d.path());
    cust_ok(&base, &["--fix"]);
    let conf = String::from_utf8(debugfs_cat(&base, "/etc/ssh/sshd_config")).unwrap();
    for bad in [
        "PermitRootLogin\u{a0}yes",
        "PasswordAuthentication\u{b}yes",
        "PermitRootLogin==yes",
        "Banner \"/etc/issue",
        "X11Forwarding yess",
        "LoginGraceTime abc",
        "MaxAuthTries -1",
    ] {
        let img = d.path().join("lex.ext3");
        std::fs::copy(&base, &img).unwrap();
        put(
            &img,
            "/etc/ssh/sshd_config",
            format!("{bad}\n{conf}").as_bytes(),
        );
        let r = req2(&img);
        assert_eq!(r["status"], "fail", "{bad:?}: {r}");
        assert!(r.to_string().contains("sshd_config:1"), "{bad:?}: {r}");
        let host = d.path().join("lex_conf");
        std::fs::write(&host, format!("{bad}\n{conf}")).unwrap();
        let before = bytes(&base);
        let out = cust(&base, &["--sshd-config", host.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert_eq!(before, bytes(&base));
    }
    // What sshd takes still passes.
    let img = d.path().join("lex.ext3");
    std::fs::copy(&base, &img).unwrap();
    let good =
        "X11Forwarding yes\nLoginGraceTime 1m30s\nPermitRootLogin = yes\n\tUseDNS\tno\u{c}\n";
    put(
        &img,
        "/etc/ssh/sshd_config",
        format!("{good}{conf}").as_bytes(),
    );
    assert_eq!(req2(&img)["status"], "pass", "{}", req2(&img));
}

/// Debian's sshd_config reads sshd_config.d/*.conf first: a value set
/// there wins, so `--sshd-set` of the same keyword below would change
/// nothing; it is refused, naming that file and line.
#[test]
fn sshd_set_refuses_what_an_earlier_include_overrides() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    cust_ok(&img, &["--fix"]);
    put(&img, "/usr/sbin/sshd", b"\x7fELF\0OpenSSH_9.2p1\0");
    put(
        &img,
        "/etc/ssh/sshd_config",
        b"Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n",
    );
    cust_ok(&img, &["--mkdir", "/etc/ssh/sshd_config.d"]);
    put(
        &img,
        "/etc/ssh/sshd_config.d/50-cloud.conf",
        b"PasswordAuthentication no\n",
    );
    let before = bytes(&img);
    let out = cust(&img, &["--sshd-set", "PasswordAuthentication=yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/etc/ssh/sshd_config.d/50-cloud.conf:1"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(before, bytes(&img));
    // A keyword the included file leaves alone is set as before.
    cust_ok(&img, &["--sshd-set", "PermitRootLogin=yes"]);
}

/// `--ssh-inject` into ~/.ssh/authorized_keys when the image's sshd reads
/// keys from somewhere else (AuthorizedKeysFile, here through an Include)
/// would give a key nobody's sshd reads: refused with one line naming the
/// setting; after `--sshd-set AuthorizedKeysFile=.ssh/authorized_keys` in
/// the same run (or with the default list) it works.
#[test]
fn ssh_inject_refuses_where_sshd_reads_keys_elsewhere() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    let key = d.path().join("k.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl t@h\n",
    )
    .unwrap();
    let k = format!("root:{}", key.display());
    put(
        &img,
        "/etc/ssh/sshd_config",
        b"AuthorizedKeysFile /etc/ssh/keys/%u\nUsePAM yes\n",
    );
    let before = bytes(&img);
    let out = cust(&img, &["--ssh-inject", &k]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("AuthorizedKeysFile /etc/ssh/keys/%u (/etc/ssh/sshd_config:1)"),
        "{err}"
    );
    assert_eq!(before, bytes(&img));
    // Pointed back at the default in the same run: the key goes in.
    cust_ok(
        &img,
        &[
            "--sshd-set",
            "AuthorizedKeysFile=.ssh/authorized_keys .ssh/authorized_keys2",
            "--ssh-inject",
            &k,
        ],
    );
    assert!(text(&img, "/root/.ssh/authorized_keys").contains("t@h"));
}

fn put(img: &Path, path: &str, body: &[u8]) {
    let out = run(&["put", img.to_str().unwrap(), "-", path], Some(body));
    assert!(
        out.status.success(),
        "put {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn req2(img: &Path) -> serde_json::Value {
    let (_, js) = check(img, true);
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    v["requirements"][1].clone()
}

/// An sshd_config the image's sshd would refuse ("Bad configuration
/// option", a keyword not allowed in Match, an Include it does not know)
/// fails requirement 2 naming file and line; `--sshd-set` refuses to
/// write one.
#[test]
fn sshd_config_is_read_as_the_images_openssh_reads_it() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let base = sample_copy(d.path());
    cust_ok(&base, &["--fix"]);
    // --sshd-set: an unknown keyword or a bad value, one line, nothing written.
    for (steps, code, want) in [
        (
            vec!["--sshd-set", "PermitRootLogn=yes"],
            1,
            "PermitRootLogn is not an sshd keyword (did you mean PermitRootLogin?)",
        ),
        (
            vec!["--sshd-set", "PermitRootLogin=maybe"],
            2,
            "not \"maybe\"",
        ),
        (vec!["--sshd-set", "Port=0"], 2, "a port number"),
        (
            vec!["--sshd-set", "Match=User bob"],
            2,
            "Match opens a block",
        ),
        // The sample's sshd is OpenSSH 4.3: newer words are refused.
        (
            vec!["--sshd-set", "Include=extra.conf"],
            1,
            "new in OpenSSH 8.2",
        ),
        (
            vec!["--sshd-set", "PermitRootLogin=prohibit-password"],
            1,
            "OpenSSH_4.3p2",
        ),
        (
            vec!["--sshd-set", "PasswordAuthentication=Yes"],
            1,
            "lower case",
        ),
    ] {
        let before = bytes(&base);
        let out = cust(&base, &steps);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{steps:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{steps:?}: {err}");
        assert!(err.contains(want), "{steps:?}: {err}");
        assert_eq!(before, bytes(&base), "{steps:?} changed the image");
    }
    // --sshd-config: a file sshd would refuse, named with its line.
    let bad = d.path().join("bad_sshd_config");
    std::fs::write(
        &bad,
        "Port 22\nPasswordAuthentication yes\nUseDNS no\nPubkeyAuthentcation yes\n",
    )
    .unwrap();
    let before = bytes(&base);
    let out = cust(&base, &["--sshd-config", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad_sshd_config:4: Bad configuration option: PubkeyAuthentcation"),
        "{err}"
    );
    assert_eq!(before, bytes(&base));
    // Keywords are case-insensitive, and KEY= comments out even a bad one.
    let img = d.path().join("case.ext3");
    std::fs::copy(&base, &img).unwrap();
    cust_ok(&img, &["--sshd-set", "permitrootlogin=no"]);
    assert_eq!(check(&img, false).0, Some(0));

    let conf = String::from_utf8(debugfs_cat(&base, "/etc/ssh/sshd_config")).unwrap();
    // (name, sshd_config, other files, evidence, the fix --fix applies)
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, &'a [u8])>,
        &'a str,
        Option<&'a [&'a str]>,
    );
    let cases: Vec<Case> = vec![
        (
            "typo",
            format!("{conf}PermitRootLogn yes\n"),
            vec![],
            ":9: Bad configuration option: PermitRootLogn is not an sshd keyword (did you mean PermitRootLogin?)",
            Some(&["--sshd-set", "PermitRootLogn="]),
        ),
        (
            "empty",
            format!("Port\n{conf}"),
            vec![],
            "sshd_config:1: no argument after Port",
            Some(&["--sshd-set", "Port="]),
        ),
        (
            "bad-value",
            format!("PasswordAuthentication maybe\n{conf}"),
            vec![],
            "sshd_config:1: PasswordAuthentication takes yes or no",
            Some(&["--sshd-set", "PasswordAuthentication="]),
        ),
        (
            "in-match",
            format!("{conf}Match User bob\n  PasswordAuthentication no\n  Port 2222\n"),
            vec![("/usr/sbin/sshd", b"OpenSSH_5.3p1\0".as_slice())],
            "sshd_config:11: Port is not allowed within a Match block",
            None,
        ),
        (
            "match-criterion",
            format!("{conf}Match Usr bob\n"),
            vec![("/usr/sbin/sshd", b"OpenSSH_5.3p1\0".as_slice())],
            "sshd_config:9: Match: unsupported attribute \"Usr\"",
            None,
        ),
        (
            "include-too-new",
            format!("Include /etc/ssh/sshd_config.d/*.conf\n{conf}"),
            vec![],
            "sshd_config:1: Bad configuration option: Include is new in OpenSSH 8.2",
            Some(&["--sshd-set", "Include="]),
        ),
        (
            "include-bad",
            format!("Include /etc/ssh/sshd_config.d/*.conf\n{conf}"),
            vec![
                ("/usr/sbin/sshd", b"\x7fELF stand-in OpenSSH_6.6.1* OpenSSH_8.4p1\0".as_slice()),
                ("/etc/ssh/sshd_config.d/10-ok.conf", b"# fine\nPermitRootLogin prohibit-password\n".as_slice()),
                ("/etc/ssh/sshd_config.d/20-bad.conf", b"\nPasswordAuthentcation no\n".as_slice()),
            ],
            "/etc/ssh/sshd_config.d/20-bad.conf:2: Bad configuration option: PasswordAuthentcation",
            None,
        ),
        (
            "include-loop",
            format!("Include /etc/ssh/loop.conf\n{conf}"),
            vec![
                ("/usr/sbin/sshd", b"OpenSSH_9.2p1\0".as_slice()),
                ("/etc/ssh/loop.conf", b"Include /etc/ssh/loop.conf\n".as_slice()),
            ],
            "more than 16 levels of Include",
            None,
        ),
    ];
    for (name, text, extra, want, fix) in cases {
        let img = d.path().join(format!("{name}.ext3"));
        std::fs::copy(&base, &img).unwrap();
        put(&img, "/etc/ssh/sshd_config", text.as_bytes());
        if extra.len() > 1 {
            assert!(run(
                &["mkdir", img.to_str().unwrap(), "/etc/ssh/sshd_config.d"],
                None
            )
            .status
            .success());
        }
        for (p, b) in extra {
            put(&img, p, b);
        }
        let r = req2(&img);
        assert_eq!(r["status"], "fail", "{name}: {r}");
        let ev: Vec<&str> = r["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        let ev = ev.join("; ");
        assert!(ev.contains("sshd would refuse to start"), "{name}: {ev}");
        assert!(ev.contains(want), "{name}: {ev}");
        match fix {
            Some(args) => {
                assert_eq!(r["fix"]["args"], serde_json::json!(args), "{name}");
                cust_ok(&img, &["--fix"]);
                let (code, text) = check(&img, false);
                assert_eq!(code, Some(0), "{name}: after --fix:\n{text}");
            }
            None => assert!(
                r["fix"]["manual"].as_str().unwrap_or("").contains(":"),
                "{name}: {r}"
            ),
        }
    }
    // The version an image's sshd names decides: the same Include passes on 8.4.
    let img = d.path().join("include-ok.ext3");
    std::fs::copy(&base, &img).unwrap();
    put(
        &img,
        "/etc/ssh/sshd_config",
        format!("Include /etc/ssh/extra.conf\n{conf}").as_bytes(),
    );
    put(
        &img,
        "/etc/ssh/extra.conf",
        b"PermitRootLogin prohibit-password\n",
    );
    put(&img, "/usr/sbin/sshd", b"OpenSSH_8.4p1\0");
    let r = req2(&img);
    assert_eq!(r["status"], "pass", "{r}");
    assert!(
        r["evidence"]
            .to_string()
            .contains("includes /etc/ssh/extra.conf"),
        "{r}"
    );
    // A distribution's backport: a 4.3 binary whose keyword table has "match".
    let img = d.path().join("backport.ext3");
    std::fs::copy(&base, &img).unwrap();
    put(
        &img,
        "/etc/ssh/sshd_config",
        format!("{conf}Match User bob\n  X11Forwarding no\n").as_bytes(),
    );
    put(&img, "/usr/sbin/sshd", b"OpenSSH_4.3p2\0port\0match\0");
    let r = req2(&img);
    assert_eq!(r["status"], "pass", "{r}");
    assert!(
        r["evidence"].to_string().contains("with Match backported"),
        "{r}"
    );
    put(&img, "/usr/sbin/sshd", b"OpenSSH_4.3p2\0port\0");
    assert_eq!(req2(&img)["status"], "fail");
    // A distribution's own keyword (Debian's DebianBanner) is known where
    // the image's sshd binary holds it, and only there.
    let out = cust(&base, &["--sshd-set", "DebianBanner=no"]);
    assert_eq!(out.status.code(), Some(1));
    let img = d.path().join("debian.ext3");
    std::fs::copy(&base, &img).unwrap();
    put(
        &img,
        "/usr/sbin/sshd",
        b"\0OpenSSH_9.2p1\0port\0debianbanner\0",
    );
    cust_ok(&img, &["--sshd-set", "DebianBanner=no"]);
    let r = req2(&img);
    assert_eq!(r["status"], "pass", "{r}");
}

/// No host key and nothing at boot that makes one: sshd never starts.
/// check fails requirement 2 and names --ssh-hostkeys; --fix makes keys
/// the image's OpenSSH reads.
#[test]
fn missing_host_keys_fail_and_ssh_hostkeys_makes_them() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let base = sample_copy(d.path());
    cust_ok(&base, &["--fix"]);
    // The sample's init script makes the key at boot, as CentOS 5's does.
    let r = req2(&base);
    assert_eq!(r["status"], "pass", "{r}");
    assert!(
        r["evidence"]
            .to_string()
            .contains("made at boot (/etc/rc.d/init.d/sshd:"),
        "{r}"
    );
    // Debian's init script does not (its package makes them when installed).
    let img = d.path().join("nokeygen.ext3");
    std::fs::copy(&base, &img).unwrap();
    put(
        &img,
        "/etc/rc.d/init.d/sshd",
        b"#!/bin/sh\n# no ssh-keygen here\nexec /usr/sbin/sshd\n",
    );
    let r = req2(&img);
    assert_eq!(r["status"], "fail", "{r}");
    let ev = r["evidence"].to_string();
    assert!(
        ev.contains("no ssh host key (/etc/ssh/ssh_host_rsa_key"),
        "{ev}"
    );
    assert!(
        ev.contains("/etc/rc.d/init.d/sshd does not run ssh-keygen: sshd will not start"),
        "{ev}"
    );
    assert_eq!(r["fix"]["args"], serde_json::json!(["--ssh-hostkeys"]));
    // systemd: Debian's ssh.service has no keygen, Fedora's sshd.service
    // pulls in sshd-keygen.target.
    let sd = d.path().join("systemd.ext3");
    std::fs::copy(&base, &sd).unwrap();
    let s = sd.to_str().unwrap();
    assert!(run(&["rm", s, "/etc/inittab"], None).status.success());
    for dir in [
        "/lib/systemd/system",
        "/etc/systemd/system/multi-user.target.wants",
    ] {
        assert!(run(&["mkdir", s, "-p", dir], None).status.success());
    }
    put(&sd, "/lib/systemd/systemd", b"stand-in");
    put(
        &sd,
        "/lib/systemd/system/ssh.service",
        b"[Service]\nExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D\n",
    );
    assert!(run(
        &[
            "ln",
            s,
            "-s",
            "/lib/systemd/system/ssh.service",
            "/etc/systemd/system/multi-user.target.wants/ssh.service"
        ],
        None
    )
    .status
    .success());
    let r = req2(&sd);
    assert_eq!(r["status"], "fail", "{r}");
    assert!(
        r["evidence"]
            .to_string()
            .contains("ssh.service does not run ssh-keygen"),
        "{r}"
    );
    put(
        &sd,
        "/lib/systemd/system/ssh.service",
        b"[Unit]\n# keys\nWants=sshd-keygen.target\n[Service]\nExecStart=/usr/sbin/sshd -D\n",
    );
    let r = req2(&sd);
    assert_eq!(r["status"], "pass", "{r}");

    // Without ssh-keygen on the host: one line, nothing written.
    let before = bytes(&img);
    let out = Command::new(bin())
        .args(["customize", img.to_str().unwrap(), "--fix"])
        .env("PATH", d.path().join("nowhere"))
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs the host's ssh-keygen"), "{err}");
    assert_eq!(before, bytes(&img));
    if Command::new("ssh-keygen").arg("-?").output().is_err() {
        skip("ssh-keygen is not installed: --ssh-hostkeys is not tried");
        return;
    }
    // A dry run shows where the keys go, not a key.
    let out = cust_ok(&img, &["--dry-run", "--fix"]);
    assert!(out.contains("+++ b/etc/ssh/ssh_host_rsa_key\n"), "{out}");
    assert!(out.contains("(a new rsa host key"), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    assert_eq!(before, bytes(&img));
    let out = cust_ok(&img, &["--fix"]);
    assert!(
        out.contains("ssh-hostkeys: made /etc/ssh/ssh_host_rsa_key"),
        "{out}"
    );
    let (code, text) = check(&img, false);
    assert_eq!(code, Some(0), "{text}");
    // OpenSSH 4.3 reads PEM RSA keys, and no ECDSA or Ed25519 ones.
    let key = debugfs_cat(&img, "/etc/ssh/ssh_host_rsa_key");
    assert!(
        key.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"),
        "{}",
        String::from_utf8_lossy(&key[..40.min(key.len())])
    );
    assert!(debugfs(&img, "stat /etc/ssh/ssh_host_rsa_key").contains("Mode:  0600"));
    assert!(debugfs(&img, "stat /etc/ssh/ssh_host_rsa_key.pub").contains("Mode:  0644"));
    assert!(!debugfs(&img, "ls /etc/ssh").contains("ed25519"));
    // The public key is the private key's (ssh-keygen -y, an independent reader).
    let kf = d.path().join("k");
    std::fs::write(&kf, &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let y = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&kf)
        .output()
        .unwrap();
    assert!(y.status.success(), "{}", String::from_utf8_lossy(&y.stderr));
    let public = debugfs_cat(&img, "/etc/ssh/ssh_host_rsa_key.pub");
    let field = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(field(&y.stdout), field(&public));
    // A second run makes nothing new.
    let out = cust_ok(&img, &["--ssh-hostkeys"]);
    assert!(out.contains("has its host keys already"), "{out}");
    // A newer OpenSSH gets ECDSA and Ed25519 keys too.
    put(&sd, "/usr/sbin/sshd", b"OpenSSH_9.2p1\0");
    put(
        &sd,
        "/lib/systemd/system/ssh.service",
        b"[Service]\nExecStart=/usr/sbin/sshd -D\n",
    );
    cust_ok(&sd, &["--fix"]);
    let ls = debugfs(&sd, "ls /etc/ssh");
    for k in [
        "ssh_host_rsa_key",
        "ssh_host_ecdsa_key",
        "ssh_host_ed25519_key",
    ] {
        assert!(ls.contains(k), "{k}: {ls}");
    }
    assert!(!ls.contains("dsa_key.pub") || ls.contains("ecdsa"), "{ls}");
    assert_eq!(check(&sd, false).0, Some(0));
}

#[test]
fn shadow_without_a_root_entry_is_fixed() {
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    let shadow = String::from_utf8(debugfs_cat(&img, "/etc/shadow")).unwrap();
    let rest: String = shadow
        .lines()
        .filter(|l| !l.starts_with("root:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let out = run(
        &["put", img.to_str().unwrap(), "-", "/etc/shadow"],
        Some(rest.as_bytes()),
    );
    assert!(out.status.success());
    let copy = d.path().join("fix.ext3");
    std::fs::copy(&img, &copy).unwrap();
    // The fix check names works as it is.
    let (_, json) = check(&img, true);
    assert_eq!(status_of(&json, 6), "fail");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let fix: Vec<String> = v["requirements"][5]["fix"]["args"]
        .as_array()
        .unwrap_or_else(|| panic!("requirement 6 names a customize fix: {json}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let args: Vec<&str> = fix.iter().map(String::as_str).collect();
    cust_ok(&img, &args);
    let (_, json) = check(&img, true);
    assert_eq!(status_of(&json, 6), "pass", "{json}");
    let after = String::from_utf8(debugfs_cat(&img, "/etc/shadow")).unwrap();
    assert!(after.starts_with("root:$6$"), "{after}");
    assert!(after.ends_with(&rest), "the other entries stay: {after}");
    // --fix fixes it and the rest.
    cust_ok(&copy, &["--fix"]);
    let (code, text) = check(&copy, false);
    assert_eq!(code, Some(0), "{text}");
}

/// Issue 13 item 30: `customize --check` reports the check of what it
/// wrote in the same run (the image is not decompressed again): after
/// the notes, "check of the result, PATH:" and the very text `check PATH`
/// prints; exit 1 when a requirement of the result fails (the image is
/// written all the same). Without --check the output is as before.
#[test]
fn customize_check_reports_the_result_in_the_same_run() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let raw = sample_copy(d.path());
    let mut imgs = vec![raw.clone()];
    if have("bzip2") {
        let bz = d.path().join("img.ext3.bz2");
        let o = Command::new("sh")
            .args([
                "-c",
                &format!("bzip2 -c '{}' > '{}'", raw.display(), bz.display()),
            ])
            .status()
            .unwrap();
        assert!(o.success());
        imgs.push(bz);
    } else {
        skip("bzip2 is not installed: --check on a .bz2 not tried");
    }
    for img in &imgs {
        let out = cust(img, &["--fix", "--root-password", "random", "--check"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = String::from_utf8(out.stdout).unwrap();
        let mut lines = out.lines();
        assert!(
            lines.next().unwrap().starts_with("root password: "),
            "{out}"
        );
        let head = format!("check of the result, {}:", img.display());
        let (_, report) = out.split_once(&format!("{head}\n")).expect(&out);
        let (code, again) = check(img, false);
        assert_eq!(code, Some(0));
        assert_eq!(report, again, "the reported check differs from check's");
        assert!(report.ends_with("result: every requirement is met\n"));
        // A result that fails: exit 1 after writing it, with the report.
        let before = std::fs::read(img).unwrap();
        let out = cust(
            img,
            &["--delete", "/etc/ld.so.conf.d/libc6-xen.conf", "--check"],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("7 FAIL xen-loader"), "{text}");
        assert_ne!(std::fs::read(img).unwrap(), before, "not written");
        let (code, again) = check(img, false);
        assert_eq!(code, Some(1));
        assert!(text.ends_with(&again), "{text}");
    }
    fsck_clean(&raw);
    if let Some(bz) = imgs.get(1) {
        let back = d.path().join("back.img");
        let o = run(
            &["unpack", bz.to_str().unwrap(), back.to_str().unwrap()],
            None,
        );
        assert!(o.status.success());
        fsck_clean(&back);
    }
    let out = cust(&raw, &["--dry-run", "--fix", "--check"]);
    assert_eq!(out.status.code(), Some(2));
}

/// An ext3 image with a 1 MiB journal holding /big, a tree whose deletion
/// touches more metadata than half a journal transaction holds (so a
/// `--delete /big` commits in steps), with `dirs` directories of 100 files.
fn big_tree_image(d: &Path, size: &str, dirs: usize) -> PathBuf {
    let root = d.join("root");
    for i in 0..dirs {
        let sub = root.join(format!("big/d{i:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for j in 0..100 {
            std::fs::write(sub.join(format!("f{j:03}")), format!("{i} {j}\n")).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    // A one-line SELinux policy: every file etc_t.
    let files = root.join("etc/selinux/targeted/contexts/files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        root.join("etc/selinux/config"),
        "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
    )
    .unwrap();
    std::fs::write(
        files.join("file_contexts"),
        "/.*\tsystem_u:object_r:etc_t:s0\n",
    )
    .unwrap();
    let img = d.join("big.ext3");
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-b", "1024", "-I", "128"])
        .args(["-J", "size=1", "-N", &(dirs * 100 + 2000).to_string(), "-d"])
        .arg(&root)
        .arg(&img)
        .arg(size)
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    img
}

#[test]
fn failing_step_after_a_large_delete_changes_nothing() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let img = big_tree_image(d.path(), "16M", 40);
    let before = bytes(&img);
    let long = format!("/etc/{}:x", "n".repeat(300));
    let huge = d.path().join("huge");
    std::fs::write(&huge, vec![7u8; 20 << 20]).unwrap();
    let upload = format!("{}:/huge", huge.display());
    for failing in [["--write", long.as_str()], ["--upload", upload.as_str()]] {
        let mut steps = vec!["--delete", "/big"];
        steps.extend_from_slice(&failing);
        let out = cust(&img, &steps);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{failing:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("nothing was changed"), "{err}");
        assert!(
            bytes(&img) == before,
            "{failing:?}: the image changed: {err}"
        );
        fsck_clean(&img);
    }
    // The delete alone goes through (in several transactions).
    cust_ok(&img, &["--delete", "/big"]);
    assert!(!debugfs(&img, "ls -l /").contains("big"));

    // A relabel that runs out of room (with 128-byte inodes every label
    // takes a block) after labelling most of the tree in steps.
    let d = tempfile::tempdir().unwrap();
    let img = big_tree_image(d.path(), "15M", 70);
    let before = bytes(&img);
    let out = cust(&img, &["--selinux-relabel"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no free block") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(
        bytes(&img) == before,
        "the relabel changed the image: {err}"
    );
    fsck_clean(&img);
}

/// Run the binary under a 1 GiB address-space cap (prlimit) and a time
/// limit (timeout); None when either tool is missing.
fn run_capped(args: &[&str], secs: u32) -> Option<(Option<i32>, String, String, f64)> {
    if !have("prlimit") || !have("timeout") {
        skip("prlimit or timeout is not installed");
        return None;
    }
    let t = std::time::Instant::now();
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .args(["prlimit", "--as=1073741824", "--"])
        .arg(bin())
        .args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .output()
        .unwrap();
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed().as_secs_f64(),
    ))
}

/// An image whose /etc/passwd has `n` users and CRLF line ends.
fn crlf_accounts_image(d: &Path, n: usize) -> PathBuf {
    let root = d.join("root/etc");
    std::fs::create_dir_all(&root).unwrap();
    let mut p = b"root:x:0:0:root:/root:/bin/bash\r\n".to_vec();
    for i in 0..n {
        p.extend_from_slice(
            format!("u{i}:x:{}:{}::/home/u{i}:/bin/sh\r\n", 1000 + i, 1000 + i).as_bytes(),
        );
    }
    std::fs::write(root.join("passwd"), &p).unwrap();
    std::fs::write(root.join("shadow"), "root:*:19000:0:99999:7:::\r\n").unwrap();
    std::fs::write(root.join("group"), "root:x:0:\r\n").unwrap();
    let img = d.join("crlf.ext3");
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-d"])
        .arg(d.join("root"))
        .arg(&img)
        .arg("64M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    img
}

#[test]
fn dry_run_diff_of_a_large_file_is_fast() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let img = crlf_accounts_image(d.path(), 80_000);
    let i = img.to_str().unwrap();
    // A whole file replaced: every line differs.
    let Some((code, out, err, secs)) = run_capped(
        &[
            "customize",
            i,
            "--dry-run",
            "--write",
            "/etc/passwd:root:x:0:0::/root:/bin/sh\\n",
        ],
        60,
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "{err}");
    assert!(secs < 30.0, "{secs} s");
    assert!(
        out.contains("+root:x:0:0::/root:/bin/sh"),
        "{}",
        &out[..out.len().min(500)]
    );
    assert_eq!(out.lines().filter(|l| l.starts_with("-u")).count(), 80_000);
}

#[test]
fn nested_recipes_are_bounded_in_total() {
    let d = tempfile::tempdir().unwrap();
    let img = sample_copy(d.path());
    let before = bytes(&img);
    // Five levels, each 1,000 lines naming the next: 10^15 steps in all.
    std::fs::write(d.path().join("r5.txt"), "mkdir /x\n".repeat(1000)).unwrap();
    for n in (1..5).rev() {
        let line = format!("commands-from-file r{}.txt\n", n + 1);
        std::fs::write(d.path().join(format!("r{n}.txt")), line.repeat(1000)).unwrap();
    }
    let r1 = d.path().join("r1.txt");
    let Some((code, _, err, secs)) = run_capped(
        &[
            "customize",
            img.to_str().unwrap(),
            "--commands-from-file",
            r1.to_str().unwrap(),
        ],
        60,
    ) else {
        return;
    };
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("in one run"), "{err}");
    assert!(secs < 20.0, "{secs} s");
    assert!(bytes(&img) == before);
}

/// Copy a host tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else if t.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Lines with their ends.
fn raw_lines(b: &[u8]) -> Vec<Vec<u8>> {
    b.split_inclusive(|&c| c == b'\n')
        .map(|l| l.to_vec())
        .collect()
}

#[test]
fn edited_files_keep_untouched_bytes_and_line_ends() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample-root"),
        &root,
    );
    // Every file a step below edits: CRLF line ends and a Latin-1 line.
    let files = [
        (
            "etc/passwd",
            b"jose:x:1500:1500:Jos\xe9 M\xfcller:/home/jose:/bin/sh\n".to_vec(),
        ),
        ("etc/shadow", b"jose:!!:19000:0:99999:7:::\n".to_vec()),
        ("etc/group", b"jos\xe9grp:x:1500:\n".to_vec()),
        ("etc/hosts", b"# caf\xe9\n".to_vec()),
        ("etc/inittab", b"# caf\xe9\n".to_vec()),
        ("etc/securetty", b"# caf\xe9\n".to_vec()),
        ("etc/ssh/sshd_config", b"# caf\xe9\n".to_vec()),
        ("etc/sysconfig/network", b"# caf\xe9\n".to_vec()),
        (
            "etc/fstab",
            b"# caf\xe9\n/dev/sda1 / ext3 defaults 1 1\n".to_vec(),
        ),
    ];
    let mut before = std::collections::HashMap::new();
    for (f, extra) in &files {
        let p = root.join(f);
        let mut b = std::fs::read(&p).unwrap_or_default();
        b.extend_from_slice(extra);
        let crlf: Vec<u8> = raw_lines(&b)
            .into_iter()
            .flat_map(|l| {
                let body = l.strip_suffix(b"\n").unwrap_or(&l).to_vec();
                [body, b"\r\n".to_vec()].concat()
            })
            .collect();
        std::fs::write(&p, &crlf).unwrap();
        before.insert(*f, crlf);
    }
    let img = d.path().join("img.ext3");
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-d"])
        .arg(&root)
        .arg(&img)
        .arg("16M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cust_ok(
        &img,
        &[
            "--lock-root",
            "--add-user",
            "alice",
            "--sshd-set",
            "PermitRootLogin=yes",
            "--hostname",
            "vm1.example.com",
            "--xen-console",
            "hvc0",
            "--network",
            "eth0=dhcp",
            "--append-line",
            "/etc/fstab:tmpfs /tmp tmpfs defaults 0 0",
        ],
    );
    for (f, _) in &files {
        let new = debugfs_cat(&img, &format!("/{f}"));
        let old = &before[f];
        assert_ne!(&new, old, "{f} was not edited");
        let (o, n) = (raw_lines(old), raw_lines(&new));
        for l in &n {
            assert!(
                l.ends_with(b"\r\n"),
                "{f}: a line without CRLF: {:?}",
                String::from_utf8_lossy(l)
            );
        }
        // Every Latin-1 line is still there, byte for byte.
        for l in o.iter().filter(|l| !l.is_ascii()) {
            assert!(n.contains(l), "{f}: lost {:?}", String::from_utf8_lossy(l));
        }
        // At most a few lines changed: the rest are the old ones.
        let kept = o.iter().filter(|l| n.contains(l)).count();
        assert!(
            kept + 3 >= o.len(),
            "{f}: only {kept} of {} lines kept",
            o.len()
        );
    }
    // passwd only gains alice's line.
    let pw = debugfs_cat(&img, "/etc/passwd");
    assert!(pw.starts_with(&before["etc/passwd"]));
    assert!(pw[before["etc/passwd"].len()..].starts_with(b"alice:"));
}
