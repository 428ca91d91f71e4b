//! SELinux labelling against a real policy: the labels libselinux gives
//! 6,785 paths (../shared/corpus/selinux, see its README), and labelling
//! from a policy stored inside an image.

mod common;

use ext3edit::selinux::{xattr_value, Policy};
use ext3edit::{FileType, Filesystem, NewFile, OpenOptions};
use std::path::PathBuf;

fn corpus_dir() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/selinux");
    d.join("expected.tsv").exists().then_some(d)
}

fn ftype(t: &str) -> FileType {
    match t {
        "file" => FileType::Regular,
        "dir" => FileType::Directory,
        "lnk" => FileType::Symlink,
        "chr" => FileType::CharDevice,
        "blk" => FileType::BlockDevice,
        "fifo" => FileType::Fifo,
        "sock" => FileType::Socket,
        _ => panic!("unknown type {t}"),
    }
}

#[test]
fn labels_equal_libselinux_on_a_real_policy() {
    let Some(dir) = corpus_dir() else {
        common::skip("../shared/corpus/selinux is absent");
        return;
    };
    let policy = Policy::load_dir(&dir).unwrap();
    assert!(policy.len() > 5000, "{} specifications", policy.len());
    assert!(policy.unsupported().is_empty());
    assert!(policy.lossy().is_empty());
    let text = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut total = 0;
    let mut wrong = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let (path, ty, want) = (f[0], f[1], f[2]);
        let got = policy
            .lookup(path, Some(ftype(ty)))
            .map(|s| s.context.as_str())
            .unwrap_or("<<none>>");
        total += 1;
        if got != want {
            wrong.push(format!("{path} {ty}: got {got}, want {want}"));
        }
        let label = policy.label(path, ftype(ty));
        assert_eq!(label.as_deref(), (want != "<<none>>").then_some(want));
    }
    assert_eq!(total, 6785);
    assert!(
        wrong.is_empty(),
        "{} of {total} labels differ ({:.2}% match):\n{}",
        wrong.len(),
        100.0 * (total - wrong.len()) as f64 / total as f64,
        wrong[..wrong.len().min(40)].join("\n")
    );
}

#[test]
fn policy_loads_from_an_image() {
    require_e2fsprogs!();
    let Some(dir) = corpus_dir() else {
        common::skip("../shared/corpus/selinux is absent");
        return;
    };
    let cfg = common::matrix()
        .into_iter()
        .find(|c| c.block == 4096 && c.inode == 256 && c.fstype == "ext3")
        .unwrap();
    let img = common::mkfs(&cfg);
    let p = img.path.as_path();
    let mut fs = Filesystem::open(p, &OpenOptions::read_write()).unwrap();
    assert!(Policy::load_from_image(&fs).unwrap().is_none(), "no config");
    let attrs = NewFile {
        perm: 0o644,
        ..Default::default()
    };
    let dattrs = NewFile {
        perm: 0o755,
        ..Default::default()
    };
    let mut parent = fs.root();
    for name in ["etc", "selinux"] {
        parent = fs.mkdir(parent, name.as_bytes(), &dattrs).unwrap();
    }
    let selinux = parent;
    fs.create_file(
        selinux,
        b"config",
        &attrs,
        &mut &b"SELINUX=enforcing\nSELINUXTYPE=default\n"[..],
    )
    .unwrap();
    for name in ["default", "contexts", "files"] {
        parent = fs.mkdir(parent, name.as_bytes(), &dattrs).unwrap();
    }
    for name in [
        "file_contexts",
        "file_contexts.homedirs",
        "file_contexts.subs_dist",
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        fs.create_file(parent, name.as_bytes(), &attrs, &mut &data[..])
            .unwrap();
    }
    // A local override, loaded last.
    fs.create_file(
        parent,
        b"file_contexts.local",
        &attrs,
        &mut &b"/etc/shadow\t--\tsystem_u:object_r:local_t:s0\n"[..],
    )
    .unwrap();
    fs.commit().unwrap();

    let policy = Policy::load_from_image(&fs).unwrap().expect("a policy");
    assert_eq!(
        policy
            .label("/etc/ssh/sshd_config", FileType::Regular)
            .as_deref(),
        Some("system_u:object_r:etc_t:s0"),
    );
    assert_eq!(
        policy.label("/etc/shadow", FileType::Regular).as_deref(),
        Some("system_u:object_r:local_t:s0"),
    );
    let key = "/root/.ssh/authorized_keys";
    let ctx = policy.label(key, FileType::Regular).unwrap();
    assert!(ctx.contains("ssh_home_t"), "{ctx}");

    // Label a new file with it, as `customize` will.
    let etc = fs.resolve("/etc", true).unwrap();
    let ino = fs
        .create_file(etc, b"motd", &attrs, &mut &b"hi\n"[..])
        .unwrap();
    let label = policy.label("/etc/motd", FileType::Regular).unwrap();
    fs.set_xattr(ino, "security.selinux", &xattr_value(&label))
        .unwrap();
    fs.commit().unwrap();
    drop(fs);
    common::fsck_clean(p);
    let out = common::debugfs(p, "ea_list /etc/motd");
    assert!(
        out.contains(&format!(
            "security.selinux ({}) = \"{label}\\000\"",
            label.len() + 1
        )),
        "{out}"
    );
}
