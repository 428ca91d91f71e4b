//! The committed sample image: readable without any other tool, the
//! README's first command works on it, and tools/make-sample-image.sh
//! rebuilds it byte for byte (with the e2fsprogs version that made it).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn sample() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample.ext3"))
}

#[test]
fn sample_is_readable_without_e2fsprogs() {
    let out = ok(sample(), "ls", &["/etc/ssh", "-l"]);
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("-rw-------") && s.contains("sshd_config"), "{s}");
    let cfg = ok(sample(), "get", &["/etc/ssh/sshd_config"]).stdout;
    let host = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/sample-root/etc/ssh/sshd_config"
    ))
    .unwrap();
    assert_eq!(cfg, host);
    let link = ok(sample(), "readlink", &["/etc/rc.d/rc3.d/S55sshd"]).stdout;
    assert_eq!(link, b"../init.d/sshd\n");
    let info = String::from_utf8(ok(sample(), "info", &["--json"]).stdout).unwrap();
    let j: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(j["type"], "ext3");
    assert_eq!(j["label"], "sample-root");
}

#[test]
fn readme_first_command_leaves_the_fixture_alone() {
    let before = bytes(sample());
    let dir = tempfile::tempdir().unwrap();
    let out_img = dir.path().join("edited.ext3");
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let o = run(
        &[
            "put",
            sample().to_str().unwrap(),
            readme,
            "/root/README.md",
            "--output",
            out_img.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(bytes(sample()), before, "the fixture changed");
    let got = ok(&out_img, "get", &["/root/README.md"]).stdout;
    assert_eq!(got, std::fs::read(readme).unwrap());
    assert!(!dir.path().join("edited.ext3.ext3edit-partial").exists());
    if have_e2fsprogs() {
        fsck_clean(&out_img);
    }
    // A failing command with --output leaves no output behind.
    let bad = dir.path().join("bad.ext3");
    let o = run(
        &[
            "put",
            sample().to_str().unwrap(),
            readme,
            "/no/such/dir/x",
            "--output",
            bad.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!bad.exists());
    assert!(!dir.path().join("bad.ext3.ext3edit-partial").exists());
}

#[test]
fn make_sample_image_is_reproducible() {
    require_e2fsprogs!();
    let v = Command::new("mke2fs").arg("-V").output().unwrap();
    let version = String::from_utf8_lossy(&v.stderr).to_string();
    if !version.contains("1.47.0") {
        common::skip(&format!(
            "the fixture was made with e2fsprogs 1.47.0, this is {}",
            version.lines().next().unwrap_or("")
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample.ext3");
    let st = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tools/make-sample-image.sh"
        ))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(
        bytes(&out) == bytes(sample()),
        "tools/make-sample-image.sh no longer rebuilds fixtures/sample.ext3"
    );
}
