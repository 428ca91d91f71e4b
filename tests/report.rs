//! What the read-only commands show: stat on every kind of symlink, and
//! names and values from the image escaped before they reach a terminal.

mod common;

use common::*;

#[test]
fn stat_reads_fast_and_slow_symlinks() {
    require_e2fsprogs!();
    for cfg in matrix()
        .into_iter()
        .filter(|c| c.inode == 256 || c.block == 1024)
    {
        let img = mkfs(&cfg);
        let p = &img.path;
        let long = format!("/{}", "t".repeat(100));
        ok(p, "ln", &["-s", "../init.d/sshd", "/fast"]);
        ok(p, "ln", &["-s", &long, "/slow"]);
        fsck_clean(p);
        let out = ok(p, "stat", &["/fast", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["target"], "../init.d/sshd", "{}", cfg.name());
        assert_eq!(v["type"], "symlink");
        // A fast symlink's target lives in the inode: no blocks to show.
        assert_eq!(v["extents"].as_array().unwrap().len(), 0, "{}", cfg.name());
        let text = String::from_utf8(ok(p, "stat", &["/fast"]).stdout).unwrap();
        assert!(text.contains("/fast -> ../init.d/sshd"), "{text}");
        let out = ok(p, "stat", &["/slow", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["target"], long.as_str());
        assert_eq!(v["extents"].as_array().unwrap().len(), 1, "{}", cfg.name());
        // debugfs agrees on what the links hold.
        assert!(debugfs(p, "stat /fast").contains("Fast link dest: \"../init.d/sshd\""));
    }
}

#[test]
fn stat_on_the_sample_fixture_symlink() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample.ext3");
    let out = run(
        &["stat", p.to_str().unwrap(), "/etc/rc.d/rc3.d/S55sshd"],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("-> ../init.d/sshd"), "{text}");
}

/// A name that would clear the screen and set the title if printed raw.
const EVIL: &str = "evil\x1b]0;owned\x07\x1b[2Jname\ttab\\x";

fn evil_image() -> Img {
    let img = mkfs(&matrix()[6]);
    let src = img.dir.path().join("src");
    std::fs::write(&src, b"x").unwrap();
    ok(
        &img.path,
        "put",
        &[src.to_str().unwrap(), &format!("/{EVIL}")],
    );
    ok(&img.path, "ln", &["-s", EVIL, "/link"]);
    img
}

const ESCAPED: &str = "evil\\033]0;owned\\007\\033[2Jname\\ttab\\\\x";

#[test]
fn control_characters_are_escaped_when_asked() {
    require_e2fsprogs!();
    let img = evil_image();
    let p = &img.path;
    let ls = String::from_utf8(ok(p, "ls", &["/", "-b"]).stdout).unwrap();
    assert!(ls.contains(ESCAPED), "{ls:?}");
    assert!(!ls.contains('\x1b'), "{ls:?}");
    let ll = String::from_utf8(ok(p, "ls", &["/", "-l", "-b"]).stdout).unwrap();
    assert!(ll.contains(&format!("link -> {ESCAPED}")), "{ll:?}");
    assert!(!ll.contains('\x1b') && !ll.contains('\x07'), "{ll:?}");
    let st = String::from_utf8(ok(p, "stat", &["/link", "-b"]).stdout).unwrap();
    assert!(st.contains(ESCAPED) && !st.contains('\x1b'), "{st:?}");
    // Into a pipe without -b, names come out as they are (as ls does), and
    // JSON escapes them its own way.
    let raw = String::from_utf8(ok(p, "ls", &["/"]).stdout).unwrap();
    assert!(raw.contains(EVIL), "{raw:?}");
    let js = ok(p, "ls", &["/", "--json"]).stdout;
    assert!(!js.contains(&0x1b), "raw escape in JSON");
    let v: serde_json::Value = serde_json::from_slice(&js).unwrap();
    assert!(v.as_array().unwrap().iter().any(|e| e["name"] == EVIL));
}

#[test]
fn control_characters_are_escaped_on_a_terminal() {
    require_e2fsprogs!();
    // util-linux `script` gives the command a pseudo-terminal as stdout.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        common::skip("`script` (util-linux) is not installed: no pseudo-terminal to test with");
        return;
    }
    let img = evil_image();
    let log = img.dir.path().join("typescript");
    let cmd = format!(
        "EXT3EDIT_NO_PROGRESS=1 {} ls {} /",
        bin().display(),
        img.path.display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd])
        .arg(&log)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.contains(ESCAPED), "{seen:?}");
    assert!(!seen.contains("\x1b]0;owned"), "{seen:?}");
}

#[test]
fn ls_and_stat_json_give_times_in_one_form() {
    require_e2fsprogs!();
    let img = mkfs(&Cfg {
        fstype: "ext3",
        block: 1024,
        inode: 256,
        dir_index: true,
        size_kib: 8 * 1024,
    });
    let p = &img.path;
    ok(p, "mkdir", &["/d"]);
    // mtime 1600000000.123456789: the extra field holds nanos << 2.
    for cmd in [
        "sif /d mtime 1600000000".to_string(),
        format!("sif /d mtime_extra {}", 123_456_789u64 << 2),
    ] {
        let o = std::process::Command::new("debugfs")
            .args(["-w", "-R", &cmd])
            .arg(p)
            .output()
            .unwrap();
        assert!(o.status.success());
    }
    let out = ok(p, "ls", &["/", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "d")
        .unwrap_or_else(|| panic!("no /d in {v}"));
    let out = ok(p, "stat", &["/d", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for j in [d, &st] {
        assert_eq!(j["mtime"], 1600000000, "{j}");
        assert_eq!(j["mtime_nsec"], 123456789, "{j}");
    }
    assert!(st["atime"].is_i64() && st["atime_nsec"].is_u64(), "{st}");
    assert!(st["ctime"].is_i64() && st["ctime_nsec"].is_u64(), "{st}");
}
