//! import-tar and export-tar: archives made by GNU tar and Python's
//! tarfile go into images made by mke2fs (ext3 and ext4 variants), e2fsck
//! judges every import, debugfs reads back files and attributes, the
//! export is compared with the input header by header (through Python's
//! tarfile, an independent reader) and listed/extracted by GNU tar; bad
//! archives fail with one line and leave the image byte for byte as it
//! was.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Cfg;

fn cfgs() -> Vec<Cfg> {
    let c = |fstype, block, inode| Cfg {
        fstype,
        block,
        inode,
        dir_index: true,
        size_kib: 32 * 1024,
    };
    vec![
        c("ext3", 1024, 128),
        c("ext3", 4096, 256),
        c("ext4", 4096, 256),
        c("ext4-nocsum", 1024, 128),
    ]
}

fn sh(cmd: &str) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A host tree with what a root file system has: nested directories,
/// long names, symlinks, hard links, a fifo, a sparse file, a large
/// directory, odd modes and sub-second times.
fn host_tree(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let d = root.join("etc/deep");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(d.join("f"), common::pseudo_random(70_000, 1)).unwrap();
    std::fs::hard_link(d.join("f"), d.join("hl")).unwrap();
    std::os::unix::fs::symlink("../passwd", d.join("sl")).unwrap();
    std::os::unix::fs::symlink("x".repeat(200), d.join("longlink")).unwrap();
    let long = root.join("l".repeat(120)).join("m".repeat(120));
    std::fs::create_dir_all(&long).unwrap();
    std::fs::write(long.join("n".repeat(150)), b"long\n").unwrap();
    sh(&format!("mkfifo '{}'", s(&root.join("etc/fifo"))));
    let sp = std::fs::File::create(root.join("sparse")).unwrap();
    sp.set_len(3 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sp.write_at(b"middle", 1 << 20).unwrap();
    sp.write_at(b"end", (3 << 20) - 3).unwrap();
    let big = root.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..400 {
        std::fs::write(
            big.join(format!("file-{i:04}-{}", "q".repeat(20))),
            format!("{i}\n"),
        )
        .unwrap();
    }
    std::fs::set_permissions(
        root.join("etc/passwd"),
        std::fs::Permissions::from_mode(0o4751),
    )
    .unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1770)).unwrap();
    sh(&format!(
        "find '{}' -exec touch -h -d @1600000000.123456789 {{}} +",
        s(root)
    ));
}

/// Python's view of an archive, one line per member (sorted): name,
/// type, mode, owner, mtime (and atime/ctime when given), size, link,
/// device, data digest, xattrs and ACLs (entries as sets). `secs`: whole
/// seconds only (128-byte inodes keep no fraction). `skip`: names
/// dropped (what the image has besides the archive).
const DUMP: &str = r#"
import hashlib, sys, tarfile
from decimal import Decimal
path, secs, skip = sys.argv[1], sys.argv[2] == "1", set(sys.argv[3].split(",")) if sys.argv[3] else set()
t = tarfile.open(path, encoding="utf-8", errors="surrogateescape")
out = []
def tm(v):
    d = Decimal(v)
    return str(int(d // 1)) if secs else str(d.normalize() if d != d.to_integral() else int(d))
for m in t:
    n = m.name
    while n.startswith("./"): n = n[2:]
    n = n.rstrip("/") or "."
    if n in skip: continue
    ph = m.pax_headers
    if m.islnk():
        # A link member's own attributes are not used (those of the file).
        out.append(" ".join([n, "1", "-> " + m.linkname.lstrip("./")]))
        continue
    f = [n, "0" if m.isreg() else m.type.decode(), oct(m.mode), str(m.uid), str(m.gid), tm(ph.get("mtime", m.mtime))]
    for k in ("atime", "ctime"):
        f.append(k + "=" + (tm(ph[k]) if k in ph else "-"))
    if m.isreg():
        data = t.extractfile(m).read()
        f += [str(len(data)), hashlib.sha256(data).hexdigest()[:16]]
    if m.issym():
        f.append("-> " + m.linkname)
    if m.ischr() or m.isblk():
        f.append("%d,%d" % (m.devmajor, m.devminor))
    for k in sorted(ph):
        if k.startswith("SCHILY.xattr."):
            f.append(k[13:] + "=" + ph[k].encode("utf-8", "surrogateescape").hex())
        if k.startswith("SCHILY.acl."):
            e = sorted(x for x in ph[k].replace("\n", ",").split(",") if x)
            f.append(k + "=" + ",".join(e))
    out.append(" ".join(f))
out.sort()
print("\n".join(out))
"#;

fn have_python() -> bool {
    Command::new("python3")
        .args(["-c", "import tarfile"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn dump(archive: &Path, secs: bool, skip: &str) -> String {
    let o = Command::new("python3")
        .args(["-c", DUMP, s(archive), if secs { "1" } else { "0" }, skip])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "dump {}: {}",
        archive.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Equal line sets, or a failure that shows only the lines that differ.
fn same_lines(a: &str, b: &str, what: &str) {
    let la: std::collections::BTreeSet<&str> = a.lines().collect();
    let lb: std::collections::BTreeSet<&str> = b.lines().collect();
    let only_a: Vec<&&str> = la.difference(&lb).take(8).collect();
    let only_b: Vec<&&str> = lb.difference(&la).take(8).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "{what}: only in the input: {only_a:#?}\nonly in the export: {only_b:#?}"
    );
    assert_eq!(a.lines().count(), b.lines().count(), "{what}");
}

fn import_ok(img: &Path, args: &[&str]) -> String {
    let mut a = vec!["import-tar", s(img)];
    a.extend_from_slice(args);
    let o = common::run(&a, None);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "import-tar {args:?}: {err}");
    common::fsck_clean(img);
    err
}

fn export(img: &Path, args: &[&str]) {
    let mut a = vec!["export-tar", s(img)];
    a.extend_from_slice(args);
    let o = common::run(&a, None);
    assert!(
        o.status.success(),
        "export-tar {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn gnu_tar_archives(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let src = dir.join("src");
    host_tree(&src);
    let mut v = Vec::new();
    for (fmt, extra) in [("posix", ""), ("gnu", "")] {
        let a = dir.join(format!("{fmt}.tar"));
        sh(&format!(
            "tar --format={fmt} --sort=name --sparse --owner=1234 --group=99 --numeric-owner {extra} -C '{}' -cf '{}' .",
            s(&src),
            s(&a)
        ));
        v.push((fmt, a));
    }
    v
}

#[test]
fn gnu_tar_archives_round_trip() {
    require_e2fsprogs!();
    if !common::have("tar") {
        common::skip("GNU tar is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let archives = gnu_tar_archives(work.path());
    for cfg in cfgs() {
        for (fmt, a) in &archives {
            let img = common::mkfs(&cfg);
            import_ok(&img.path, &[s(a)]);
            let what = format!("{} {fmt}", cfg.name());
            // debugfs reads the tree back.
            assert_eq!(
                common::debugfs_cat(&img.path, "/etc/passwd"),
                b"root:x:0:0::/root:/bin/sh\n",
                "{what}"
            );
            let st = common::debugfs(&img.path, "stat /etc/deep/f");
            assert!(st.contains("User:  1234   Group:    99"), "{what}: {st}");
            assert!(st.contains("Links: 2"), "{what}: {st}");
            let st = common::debugfs(&img.path, "stat /etc/passwd");
            assert!(st.contains("Mode:  04751"), "{what}: {st}");
            assert!(st.contains("0x5f5e1000"), "{what}: mtime {st}");
            // The sparse file has holes again: 2 data blocks (3 with a
            // 1 KiB block straddling), not 3 MiB.
            let st = common::debugfs(&img.path, "stat /sparse");
            let bc: u64 = st
                .split("Blockcount: ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(bc <= 64, "{what}: sparse file got {bc} sectors");
            let big = common::debugfs(&img.path, "stat /big");
            if cfg.block == 1024 {
                assert!(
                    big.contains("Flags: 0x1000") || big.contains("0x81000"),
                    "{what}: no htree: {big}"
                );
            }
            let out = img.dir.path().join("out.tar");
            export(&img.path, &[s(&out)]);
            let out2 = img.dir.path().join("out2.tar");
            export(&img.path, &[s(&out2)]);
            assert_eq!(
                std::fs::read(&out).unwrap(),
                std::fs::read(&out2).unwrap(),
                "{what}: export is not reproducible"
            );
            let l = Command::new("tar")
                .args(["-tvf", s(&out)])
                .output()
                .unwrap();
            assert!(
                l.status.success(),
                "{what}: tar -tvf: {}",
                String::from_utf8_lossy(&l.stderr)
            );
            let x = img.dir.path().join("x");
            std::fs::create_dir(&x).unwrap();
            let e = Command::new("tar")
                .args(["--xattrs", "--no-same-owner", "-C", s(&x), "-xf", s(&out)])
                .output()
                .unwrap();
            assert!(
                e.status.success(),
                "{what}: tar -x: {}",
                String::from_utf8_lossy(&e.stderr)
            );
            let d = Command::new("diff")
                .args(["-r", "--no-dereference", s(&work.path().join("src")), s(&x)])
                .output()
                .unwrap();
            let diff = String::from_utf8_lossy(&d.stdout);
            let rest: Vec<&str> = diff
                .lines()
                .filter(|l| !l.contains("lost+found") && !l.contains("is a fifo while"))
                .collect();
            assert!(rest.is_empty(), "{what}: {rest:?}");
            if have_python() {
                let secs = cfg.inode == 128;
                // GNU tar writes atime/ctime for posix only; the gnu
                // format's are compared as written (absent).
                let a_dump = dump(a, secs, "");
                let e_dump = dump(&out, secs, "lost+found");
                if *fmt == "posix" {
                    same_lines(&a_dump, &e_dump, &what);
                } else {
                    let strip = |t: &str| -> String {
                        t.lines()
                            .map(|l| {
                                l.split(' ')
                                    .filter(|f| {
                                        !f.starts_with("atime=") && !f.starts_with("ctime=")
                                    })
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    };
                    same_lines(&strip(&a_dump), &strip(&e_dump), &what);
                }
            } else {
                common::skip("python3 is missing: headers compared by GNU tar's extraction only");
            }
        }
    }
}

/// An archive made with Python's tarfile with what GNU tar cannot make
/// unprivileged: devices, owners, xattrs in every namespace, ACLs,
/// nanosecond times, and a PAX 1.0 sparse member.
const MAKE: &str = r#"
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")
def add(name, type=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, pax=None, **kw):
    ti = tarfile.TarInfo(name); ti.type = type; ti.mode = mode; ti.uid = uid; ti.gid = gid
    ti.mtime = 1600000000
    for k, v in kw.items(): setattr(ti, k, v)
    if pax: ti.pax_headers = pax
    if type == tarfile.REGTYPE:
        ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)
cap = bytes([1, 0, 0, 2, 0, 0x20, 0, 0] + [0] * 12).decode("utf-8", "surrogateescape")
add("d", tarfile.DIRTYPE, mode=0o770, uid=1000, gid=1000, pax={
    "SCHILY.acl.access": "user::rwx,user:1001:rwx,group::r-x,mask::rwx,other::---",
    "SCHILY.acl.default": "user::rwx,group::r-x,other::---",
    "mtime": "1600000000.5", "atime": "1600000003.5", "ctime": "1600000004.5"})
add("d/f", data=b"hello\n", mode=0o4755, uid=1234, gid=5678, pax={
    "SCHILY.xattr.user.foo": "bar",
    "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0\x00",
    "SCHILY.xattr.security.capability": cap,
    "SCHILY.xattr.trusted.t": "tv",
    "mtime": "1600000000.123456789", "atime": "1600000001.25", "ctime": "1600000002.75"})
add("d/acl", data=b"x", mode=0o660, pax={"SCHILY.acl.access": "user::rw-\ngroup::r--\ngroup:50:rw-\nmask::rw-\nother::---\n",
    "atime": "1600000001", "ctime": "1600000002"})
add("d/c", tarfile.CHRTYPE, mode=0o620, devmajor=4, devminor=1, pax={"atime": "1", "ctime": "2"})
add("d/b", tarfile.BLKTYPE, mode=0o660, devmajor=259, devminor=70000, pax={"atime": "1", "ctime": "2"})
add("d/p", tarfile.FIFOTYPE, mode=0o600, pax={"atime": "1", "ctime": "2"})
add("d/hl", tarfile.LNKTYPE, linkname="d/f")
# PAX 1.0 sparse: the map at the start of the data.
body = b"2\n4096\n5\n1000000\n3\n"
body += b"\0" * (512 - len(body)) + b"AAAAA" + b"BBB"
ti = tarfile.TarInfo("GNUSparseFile.0/s"); ti.size = len(body); ti.mtime = 1600000000
ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "d/sparse",
    "GNU.sparse.realsize": "2000000", "atime": "1", "ctime": "2"}
t.addfile(ti, io.BytesIO(body))
t.close()
"#;

#[test]
fn python_pax_archive_round_trip() {
    require_e2fsprogs!();
    if !have_python() {
        common::skip("python3 is missing");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("p.tar");
    let o = Command::new("python3")
        .args(["-c", MAKE, s(&a)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut all = common::ext4_matrix();
    all.extend(
        common::matrix()
            .into_iter()
            .filter(|c| c.block == 1024 || c.fstype == "ext2" && c.inode == 256 && c.dir_index),
    );
    for cfg in all {
        let img = common::mkfs(&cfg);
        import_ok(&img.path, &[s(&a)]);
        let ea = common::debugfs(&img.path, "ea_list /d/f");
        assert!(ea.contains("user.foo (3) = \"bar\""), "{ea}");
        assert!(ea.contains("security.selinux (27)"), "{ea}");
        assert!(ea.contains("trusted.t (2) = \"tv\""), "{ea}");
        assert!(
            ea.contains("security.capability (20) = 01 00 00 02 00 20"),
            "{ea}"
        );
        // The kernel's on-disk ACL: version 1, short entries for the
        // owner, group, mask and other, 8 bytes for the named user 1001.
        let ea = common::debugfs(&img.path, "ea_list /d");
        assert!(
            ea.contains("system.posix_acl_access (28) = 01 00 00 00 01 00 07 00 02 00 07 00 e9 03 00 00 04 00 05 00 10 00 07 00 20 00 00 00"),
            "{ea}"
        );
        assert!(
            ea.contains(
                "system.posix_acl_default (16) = 01 00 00 00 01 00 07 00 04 00 05 00 20 00 00 00"
            ),
            "{ea}"
        );
        let st = common::debugfs(&img.path, "stat /d/b");
        assert!(st.contains("Type: block"), "{st}");
        assert!(st.contains("Device major/minor number: 259:70000"), "{st}");
        let st = common::debugfs(&img.path, "stat /d/f");
        assert!(st.contains("Links: 2"), "{st}");
        if cfg.inode > 128 {
            assert!(st.contains("mtime: 0x5f5e1000:1d6f3454"), "{st}");
        } else {
            assert!(st.contains("mtime: 0x5f5e1000 "), "{st}");
        }
        // The sparse member: data where the map says, holes elsewhere.
        let data = common::debugfs_cat(&img.path, "/d/sparse");
        assert_eq!(data.len(), 2_000_000);
        assert_eq!(&data[4096..4101], b"AAAAA");
        assert_eq!(&data[1_000_000..1_000_003], b"BBB");
        assert_eq!(data.iter().filter(|&&b| b != 0).count(), 8);
        let out = img.dir.path().join("out.tar.gz");
        export(&img.path, &[s(&out)]);
        let plain = img.dir.path().join("out.tar");
        sh(&format!("gunzip -c '{}' > '{}'", s(&out), s(&plain)));
        let secs = cfg.inode == 128;
        let input = dump(&a, secs, "").replace("GNUSparseFile.0/s", "d/sparse");
        same_lines(&input, &dump(&plain, secs, ".,lost+found"), &cfg.name());
        if common::have("tar") {
            let l = Command::new("tar")
                .args(["--xattrs", "--acls", "-tvvf", s(&plain)])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&l.stdout);
            assert!(l.status.success(), "{}", String::from_utf8_lossy(&l.stderr));
            assert!(text.contains("user:1001:rwx"), "{text}");
        }
    }
}

#[test]
fn compressed_and_stdin_archives() {
    require_e2fsprogs!();
    if !common::have("tar") {
        common::skip("GNU tar is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("a/b/c"), b"content\n").unwrap();
    let plain = work.path().join("x.tar");
    sh(&format!("tar -C '{}' -cf '{}' a", s(&src), s(&plain)));
    let mut kinds = vec![("plain", plain.clone())];
    for (tool, ext) in [
        ("gzip", "gz"),
        ("bzip2", "bz2"),
        ("xz", "xz"),
        ("zstd", "zst"),
    ] {
        if !common::have(tool) {
            common::skip(&format!("{tool} is not installed"));
            continue;
        }
        // A name that says nothing: recognised by content.
        let p = work.path().join(format!("archive-{ext}"));
        sh(&format!("{tool} -c '{}' > '{}'", s(&plain), s(&p)));
        kinds.push((ext, p));
    }
    let cfg = cfgs()[2].clone();
    for (what, p) in kinds {
        let img = common::mkfs(&cfg);
        common::ok(&img.path, "mkdir", &["/dest"]);
        import_ok(&img.path, &[s(&p), "/dest"]);
        assert_eq!(
            common::debugfs_cat(&img.path, "/dest/a/b/c"),
            b"content\n",
            "{what}"
        );
        // stdin
        let img = common::mkfs(&cfg);
        let o = common::run(
            &["import-tar", s(&img.path), "-"],
            Some(&std::fs::read(&p).unwrap()),
        );
        assert!(
            o.status.success(),
            "{what} stdin: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        common::fsck_clean(&img.path);
        assert_eq!(
            common::debugfs_cat(&img.path, "/a/b/c"),
            b"content\n",
            "{what}"
        );
        // export through each compressor
        let out = img.dir.path().join(format!("e.tar.{what}"));
        export(&img.path, &["/a", s(&out)]);
        let l = Command::new("tar")
            .args(["-taf", s(&out)])
            .output()
            .unwrap();
        if what != "plain" && what != "zst" || common::have("zstd") {
            let names = String::from_utf8_lossy(&l.stdout);
            assert!(
                names.contains("a/b/c"),
                "{what}: {names} {}",
                String::from_utf8_lossy(&l.stderr)
            );
        }
    }
}

/// A minimal ustar header (independent of the crate's writer).
fn ustar(name: &str, typeflag: u8, size: u64, link: &str) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"13000000000\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    fix_sum(&mut h);
    h
}

fn fix_sum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u32 = h[..512].iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn member(name: &str, data: &[u8]) -> Vec<u8> {
    let mut v = ustar(name, b'0', data.len() as u64, "");
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

fn end(mut v: Vec<u8>) -> Vec<u8> {
    v.extend_from_slice(&[0u8; 1024]);
    v
}

fn pax(records: &[u8]) -> Vec<u8> {
    let mut v = ustar("PaxHeaders/x", b'x', records.len() as u64, "");
    v.extend_from_slice(records);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

/// Import `archive` and require exit 1, one line containing `want`, and
/// the image unchanged.
fn refused(img: &Path, archive: &[u8], want: &str) {
    let before = common::bytes(img);
    let p = img.with_extension("bad.tar");
    std::fs::write(&p, archive).unwrap();
    let err = common::fails(img, "import-tar", &[s(&p)], 1);
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.contains(want), "wanted {want:?} in: {err}");
    assert!(common::bytes(img) == before, "image changed by: {err}");
}

#[test]
fn bad_archives_fail_in_one_line_and_change_nothing() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfgs()[0]);
    let good = end([member("a/ok", b"first"), member("a/two", &vec![7u8; 5000])].concat());
    // Truncated inside the second member's data.
    refused(&img.path, &good[..2048], "truncated");
    // A header byte changed: checksum mismatch, naming the offset.
    let mut v = good.clone();
    v[1024 + 3] ^= 0x20;
    refused(&img.path, &v, "checksum mismatch");
    refused(&img.path, &v, "offset 1024");
    // Not octal.
    let mut v = good.clone();
    v[1024 + 100..1024 + 108].copy_from_slice(b"0009999\0");
    fix_sum(&mut v[1024..1536]);
    refused(&img.path, &v, "mode field");
    // A size far past the end.
    let mut v = good.clone();
    v[1024 + 124..1024 + 136].copy_from_slice(b"77777777777\0");
    fix_sum(&mut v[1024..1536]);
    refused(
        &img.path,
        &v,
        "member \"a/two\" (offset 1024): the member needs about",
    );
    // PAX records whose length lies, or that are not records.
    for r in [&b"99 path=a\n"[..], b"4 path=a\n", b"12 path=abc\0", b"xx"] {
        refused(
            &img.path,
            &end([pax(r), member("f", b"x")].concat()),
            "PAX header",
        );
    }
    // A hard link to nothing the archive made.
    let v = end([member("f", b"x"), ustar("l", b'1', 0, "nope")].concat());
    refused(&img.path, &v, "hard link to \"nope\"");
    // Not a tar at all; an empty file; a corrupt gzip stream.
    refused(
        &img.path,
        &common::pseudo_random(4096, 3),
        "not a tar archive",
    );
    refused(&img.path, b"", "empty");
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2_like_gzip(&good);
        let n = e.len();
        e[n / 2] ^= 0xff;
        e[n / 2 + 1] ^= 0xff;
        gz.write_all(&e).unwrap();
    }
    refused(&img.path, &gz, "archive");
    // A member type tar has no business with.
    refused(&img.path, &end(ustar("v", b'M', 0, "")), "not supported");
    common::fsck_clean(&img.path);
}

/// gzip of `data` by the gzip tool.
fn flate2_like_gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut c = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(data).unwrap();
    c.wait_with_output().unwrap().stdout
}

#[test]
fn planted_symlinks_are_never_written_through() {
    require_e2fsprogs!();
    for cfg in [cfgs()[0].clone(), cfgs()[2].clone()] {
        let img = common::mkfs(&cfg);
        common::ok(&img.path, "mkdir", &["/etc"]);
        let passwd = img.dir.path().join("passwd");
        std::fs::write(&passwd, b"root:x:0:0::/root:/bin/sh\n").unwrap();
        common::ok(&img.path, "put", &[s(&passwd), "/etc/passwd"]);
        // a -> /etc made by the archive, then a/passwd.
        let v = end([ustar("a", b'2', 0, "/etc"), member("a/passwd", b"pwned\n")].concat());
        refused(&img.path, &v, "\"a\" is a symlink");
        // Relative, and through several levels.
        let v = end([
            ustar("x", b'2', 0, "../../etc"),
            member("x/y/passwd", b"pwned\n"),
        ]
        .concat());
        refused(&img.path, &v, "symlink");
        // A symlink already in the image.
        common::ok(&img.path, "ln", &["-s", "/etc", "/lnk"]);
        let v = end(member("lnk/passwd", b"pwned\n"));
        refused(&img.path, &v, "\"lnk\" is a symlink");
        assert_eq!(
            common::debugfs_cat(&img.path, "/etc/passwd"),
            b"root:x:0:0::/root:/bin/sh\n"
        );
        // Replacing the symlink itself is fine (as tar does).
        let v = end(member("lnk", b"now a file\n"));
        let p = img.path.with_extension("ok.tar");
        std::fs::write(&p, v).unwrap();
        import_ok(&img.path, &[s(&p)]);
        assert_eq!(common::debugfs_cat(&img.path, "/lnk"), b"now a file\n");
        assert_eq!(
            common::debugfs_cat(&img.path, "/etc/passwd"),
            b"root:x:0:0::/root:/bin/sh\n"
        );
    }
}

#[test]
fn absolute_and_dotdot_names_stay_inside() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfgs()[2]);
    common::ok(&img.path, "mkdir", &["/dest"]);
    let v = end([
        member("/abs/f", b"1"),
        member("../../up/g", b"2"),
        member("a/../../h", b"3"),
    ]
    .concat());
    let p = img.path.with_extension("t.tar");
    std::fs::write(&p, v).unwrap();
    let err = import_ok(&img.path, &[s(&p), "/dest"]);
    assert!(err.contains("removing leading '/'"), "{err}");
    assert!(err.contains("'../'"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert_eq!(common::debugfs_cat(&img.path, "/dest/abs/f"), b"1");
    assert_eq!(common::debugfs_cat(&img.path, "/dest/up/g"), b"2");
    assert_eq!(common::debugfs_cat(&img.path, "/dest/h"), b"3");
    let ls = common::debugfs(&img.path, "ls /");
    assert!(!ls.contains("abs") && !ls.contains("up"), "{ls}");
}

#[test]
fn whiteouts_apply_and_overlay() {
    require_e2fsprogs!();
    let lower = |img: &Path| {
        for d in ["/a", "/b"] {
            common::ok(img, "mkdir", &[d]);
        }
        let f = img.with_extension("f");
        std::fs::write(&f, b"lower\n").unwrap();
        for p in ["/a/x", "/a/y", "/b/keep", "/b/gone", "/c"] {
            common::ok(img, "put", &[s(&f), p]);
        }
    };
    let mut dir_a = ustar("a/", b'5', 0, "");
    dir_a[100..108].copy_from_slice(b"0000755\0");
    fix_sum(&mut dir_a);
    let layer = end([
        dir_a,
        member("a/new", b"upper\n"),
        member("a/.wh..wh..opq", b""),
        member(".wh.c", b""),
        member("b/.wh.gone", b""),
        member("b/.wh.never-there", b""),
        member(".wh..wh..opq", b""),
    ]
    .concat());
    let cfg = cfgs()[2].clone();
    let img = common::mkfs(&cfg);
    lower(&img.path);
    let p = img.path.with_extension("layer.tar");
    std::fs::write(&p, &layer).unwrap();
    import_ok(&img.path, &[s(&p)]);
    let ls = |path: &str| {
        let o = common::ok(&img.path, "ls", &[path]);
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(ls("/a"), vec!["new"]);
    assert_eq!(ls("/b"), vec!["keep"]);
    assert!(!ls("/").contains(&"c".to_string()));
    // The root's opaque marker emptied it of the lower entries, except
    // the file system's lost+found (import_ok ran e2fsck).
    assert_eq!(ls("/"), vec!["a", "b", "lost+found"]);

    let img = common::mkfs(&cfg);
    lower(&img.path);
    import_ok(&img.path, &[s(&p), "--whiteouts", "overlay"]);
    let ea = common::debugfs(&img.path, "ea_list /a");
    assert!(ea.contains("trusted.overlay.opaque (1) = \"y\""), "{ea}");
    let st = common::debugfs(&img.path, "stat /c");
    assert!(st.contains("Type: character special"), "{st}");
    assert!(st.contains("Device major/minor number: 00:00"), "{st}");
    let st = common::debugfs(&img.path, "stat /b/gone");
    assert!(st.contains("Type: character special"), "{st}");
    // The lower entries stay: overlayfs hides them.
    assert_eq!(common::debugfs_cat(&img.path, "/a/x"), b"lower\n");
}

#[test]
fn replacing_entries_as_tar_does() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfgs()[1]);
    let f = img.path.with_extension("f");
    std::fs::write(&f, b"old\n").unwrap();
    common::ok(&img.path, "mkdir", &["/d"]);
    common::ok(&img.path, "put", &[s(&f), "/d/file"]);
    common::ok(&img.path, "ln", &["/d/file", "/other-name"]);
    common::ok(&img.path, "mkdir", &["/d/full"]);
    common::ok(&img.path, "put", &[s(&f), "/d/full/x"]);
    let mut d = ustar("d/", b'5', 0, "");
    d[100..108].copy_from_slice(b"0000700\0");
    d[108..116].copy_from_slice(b"0000144\0");
    fix_sum(&mut d);
    let v = end([d, member("d/file", b"new\n")].concat());
    let p = img.path.with_extension("t.tar");
    std::fs::write(&p, v).unwrap();
    import_ok(&img.path, &[s(&p)]);
    // The file was replaced, its other name keeps the old content; the
    // directory was merged and took the member's mode and owner.
    assert_eq!(common::debugfs_cat(&img.path, "/d/file"), b"new\n");
    assert_eq!(common::debugfs_cat(&img.path, "/other-name"), b"old\n");
    assert_eq!(common::debugfs_cat(&img.path, "/d/full/x"), b"old\n");
    let st = common::debugfs(&img.path, "stat /d");
    assert!(
        st.contains("Mode:  0700") && st.contains("User:   100"),
        "{st}"
    );
    // A file where the image has a directory that is not empty: refused.
    refused(&img.path, &end(member("d/full", b"x")), "not empty");
}

#[test]
fn a_large_import_that_fails_late_is_undone_whole() {
    require_e2fsprogs!();
    // ext3 with 1 KiB blocks: its journal is small, so thousands of
    // members commit in several transactions before the bad one.
    let img = common::mkfs(&Cfg {
        fstype: "ext3",
        block: 1024,
        inode: 128,
        dir_index: true,
        size_kib: 32 * 1024,
    });
    let mut v = Vec::new();
    for i in 0..3000 {
        v.extend(member(
            &format!("d{}/f{i}", i % 7),
            &vec![(i % 251) as u8 + 1; 3000],
        ));
    }
    v.extend(ustar("bad", b'1', 0, "missing"));
    refused(&img.path, &end(v), "hard link to \"missing\"");
    common::fsck_clean(&img.path);
}

#[test]
fn mkfs_options_are_refused_for_now() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfgs()[0]);
    let p = img.path.with_extension("t.tar");
    std::fs::write(&p, end(member("f", b"x"))).unwrap();
    let before = common::bytes(&img.path);
    let err = common::fails(&img.path, "import-tar", &[s(&p), "--mkfs", "64M"], 1);
    assert!(err.contains("mkfs command"), "{err}");
    let err = common::fails(&img.path, "import-tar", &[s(&p), "--size", "auto"], 1);
    assert!(err.contains("mkfs command"), "{err}");
    assert!(common::bytes(&img.path) == before);
}

#[test]
fn every_gnu_sparse_format() {
    require_e2fsprogs!();
    if !common::have("tar") {
        common::skip("GNU tar is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let f = std::fs::File::create(src.join("s")).unwrap();
    f.set_len(8 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    let mut want = vec![0u8; 8 << 20];
    for (i, off) in [0usize, 100_000, 3 << 20, (8 << 20) - 10]
        .into_iter()
        .enumerate()
    {
        let d = common::pseudo_random(10, i as u64 + 7);
        f.write_at(&d, off as u64).unwrap();
        want[off..off + 10].copy_from_slice(&d);
    }
    for (fmt, ver) in [
        ("gnu", ""),
        ("posix", "0.0"),
        ("posix", "0.1"),
        ("posix", "1.0"),
    ] {
        let a = work.path().join(format!("{fmt}{ver}.tar"));
        let v = if ver.is_empty() {
            String::new()
        } else {
            format!("--sparse-version={ver}")
        };
        sh(&format!(
            "tar --format={fmt} --sparse {v} -C '{}' -cf '{}' s",
            s(&src),
            s(&a)
        ));
        let img = common::mkfs(&cfgs()[3]);
        import_ok(&img.path, &[s(&a)]);
        assert!(
            common::debugfs_cat(&img.path, "/s") == want,
            "{fmt} {ver}: content"
        );
        let st = common::debugfs(&img.path, "stat /s");
        assert!(
            st.contains("Blockcount: ") && !st.contains("Blockcount: 16384"),
            "{fmt} {ver}: {st}"
        );
        let bc: u64 = st
            .split("Blockcount: ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(bc < 64, "{fmt} {ver}: {bc} sectors for 40 bytes of data");
    }
}

/// One PAX record, its length counting itself.
fn rec(k: &str, v: &str) -> Vec<u8> {
    let body = k.len() + v.len() + 3;
    let mut n = body + 1;
    while n != body + n.to_string().len() {
        n = body + n.to_string().len();
    }
    format!("{n} {k}={v}\n").into_bytes()
}

#[test]
fn a_terabyte_hole_costs_nothing() {
    require_e2fsprogs!();
    let records = [
        rec("GNU.sparse.map", "1099511627000,5"),
        rec("GNU.sparse.size", "1099511627776"),
    ]
    .concat();
    let v = end([pax(&records), member("huge", b"hello")].concat());
    let img = common::mkfs(&cfgs()[2]);
    let p = img.path.with_extension("t.tar");
    std::fs::write(&p, &v).unwrap();
    let t = std::time::Instant::now();
    import_ok(&img.path, &[s(&p)]);
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    let st = common::debugfs(&img.path, "stat /huge");
    assert!(st.contains("Size: 1099511627776"), "{st}");
    let d = common::debugfs(&img.path, "dump_extents /huge");
    assert!(d.contains("268435455"), "{d}");
    // Exported as a PAX 1.0 sparse member: a few KiB, and back.
    let out = img.dir.path().join("huge.tar");
    export(&img.path, &["/huge", s(&out)]);
    assert!(std::fs::metadata(&out).unwrap().len() < 64 * 1024);
    if common::have("tar") {
        let l = Command::new("tar")
            .args(["-tvf", s(&out)])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&l.stdout);
        assert!(
            text.contains("1099511627776") && text.contains("huge"),
            "{text}"
        );
    }
    let img2 = common::mkfs(&cfgs()[2]);
    import_ok(&img2.path, &[s(&out)]);
    let st = common::debugfs(&img2.path, "stat /huge");
    assert!(st.contains("Size: 1099511627776"), "{st}");
    let d = common::debugfs(&img2.path, "dump_extents /huge");
    assert!(d.contains("268435455"), "{d}");
    let o = common::run(&["export-tar", s(&img2.path), "/huge", "-"], None);
    assert!(
        o.stdout == std::fs::read(&out).unwrap(),
        "export after import differs"
    );
    // ext3 with 1 KiB blocks cannot hold a file that large: one line.
    let img = common::mkfs(&cfgs()[0]);
    refused(&img.path, &v, "larger than the largest file");
}

/// One PAX record with a binary value.
fn rec_bytes(k: &str, v: &[u8]) -> Vec<u8> {
    let body = k.len() + v.len() + 3;
    let mut n = body + 1;
    while n != body + n.to_string().len() {
        n = body + n.to_string().len();
    }
    [format!("{n} {k}=").into_bytes(), v.to_vec(), b"\n".to_vec()].concat()
}

#[test]
fn acls_by_name_and_in_xattr_form() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfgs()[2]);
    let etc = img.dir.path().join("passwd");
    std::fs::write(
        &etc,
        b"root:x:0:0::/root:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n",
    )
    .unwrap();
    common::ok(&img.path, "mkdir", &["/etc"]);
    common::ok(&img.path, "put", &[s(&etc), "/etc/passwd"]);
    let grp = img.dir.path().join("group");
    std::fs::write(&grp, b"root:x:0:\nstaff:x:50:\n").unwrap();
    common::ok(&img.path, "put", &[s(&grp), "/etc/group"]);
    // The user-space xattr form: version 2, 8-byte entries, ids -1 for
    // the owner, group and other entries.
    let mut x = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 4, 1001),
        (4, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        x.extend_from_slice(&tag.to_le_bytes());
        x.extend_from_slice(&perm.to_le_bytes());
        x.extend_from_slice(&id.to_le_bytes());
    }
    let v = end([
        pax(&rec(
            "SCHILY.acl.access",
            "user::rw-,user:bob:r--,group::r--,group:staff:rw-,mask::rw-,other::---",
        )),
        member("named", b"1"),
        pax(&rec_bytes("SCHILY.xattr.system.posix_acl_access", &x)),
        member("xform", b"2"),
        pax(&rec("SCHILY.acl.access", "user::rwx,group::r-x,other::r--")),
        member("minimal", b"3"),
    ]
    .concat());
    let p = img.path.with_extension("t.tar");
    std::fs::write(&p, &v).unwrap();
    import_ok(&img.path, &[s(&p)]);
    let ea = common::debugfs(&img.path, "ea_list /named");
    // user 1001 (bob), group 50 (staff), in the kernel's order.
    assert!(
        ea.contains("system.posix_acl_access (36) = 01 00 00 00 01 00 06 00 02 00 04 00 e9 03 00 00 04 00 04 00 08 00 06 00 32 00 00 00 10 00 06 00 20 00 00 00"),
        "{ea}"
    );
    let ea = common::debugfs(&img.path, "ea_list /xform");
    assert!(ea.contains("system.posix_acl_access (28) = 01 00 00 00 01 00 06 00 02 00 04 00 e9 03 00 00 04 00 04 00 10 00 04 00 20 00 00 00"), "{ea}");
    // An ACL the mode says whole is not stored; it sets the mode.
    let ea = common::debugfs(&img.path, "ea_list /minimal");
    assert!(!ea.contains("posix_acl"), "{ea}");
    assert!(common::debugfs(&img.path, "stat /minimal").contains("Mode:  0754"));
    assert!(common::debugfs(&img.path, "stat /named").contains("Mode:  0660"));
    // A name the image does not know: one line, nothing written.
    let v = end([
        pax(&rec(
            "SCHILY.acl.access",
            "user::rw-,user:mallory:r--,group::r--,mask::r--,other::---",
        )),
        member("f", b"1"),
    ]
    .concat());
    refused(&img.path, &v, "mallory");
}

/// The kernel's view (optional: needs root and loop devices, skips
/// visibly): the imported tree mounted read-only, read with Python's os
/// module (stat, getxattr: ACLs come back in the user-space xattr form
/// the kernel converts them to, so a wrong on-disk form shows).
#[test]
fn kernel_reads_an_imported_tree() {
    require_e2fsprogs!();
    if !have_python() {
        common::skip("python3 is missing");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("p.tar");
    let o = Command::new("python3")
        .args(["-c", MAKE, s(&a)])
        .output()
        .unwrap();
    assert!(o.status.success());
    let img = common::mkfs(&cfgs()[2]);
    import_ok(&img.path, &[s(&a)]);
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let m = Command::new("mount")
        .args(["-o", "loop,ro", "-t", "ext4", s(&img.path), s(&mnt)])
        .output()
        .unwrap();
    if !m.status.success() {
        common::skip(&format!(
            "mount -o loop failed (not root, or no loop devices): {}",
            String::from_utf8_lossy(&m.stderr).trim()
        ));
        return;
    }
    let script = r#"
import os, sys
m = sys.argv[1]
st = os.stat(m + "/d/f")
print("f", oct(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink)
for n in ("user.foo", "trusted.t", "security.capability"):
    print(n, os.getxattr(m + "/d/f", n).hex())
print("acl", os.getxattr(m + "/d", "system.posix_acl_access").hex())
print("dacl", os.getxattr(m + "/d", "system.posix_acl_default").hex())
b = os.stat(m + "/d/b")
print("b", os.major(b.st_rdev), os.minor(b.st_rdev))
print("sparse", os.stat(m + "/d/sparse").st_size, os.stat(m + "/d/sparse").st_blocks)
"#;
    let o = Command::new("python3")
        .args(["-c", script, s(&mnt)])
        .output()
        .unwrap();
    let _ = Command::new("umount").arg(&mnt).status();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("f 0o104755 1234 5678 1600000000123456789 2"),
        "{text}"
    );
    assert!(text.contains("user.foo 626172"), "{text}");
    assert!(text.contains("trusted.t 7476"), "{text}");
    assert!(
        text.contains("security.capability 0100000200200000000000000000000000000000"),
        "{text}"
    );
    // Version 2, then (tag, perm, id): user_obj rwx, user 1001 rwx,
    // group_obj r-x, mask rwx, other ---.
    assert!(
        text.contains("acl 0200000001000700ffffffff02000700e903000004000500ffffffff10000700ffffffff20000000ffffffff"),
        "{text}"
    );
    assert!(
        text.contains("dacl 0200000001000700ffffffff04000500ffffffff20000000ffffffff"),
        "{text}"
    );
    assert!(text.contains("b 259 70000"), "{text}");
    assert!(text.contains("sparse 2000000 16"), "{text}");
}

#[test]
fn bsdtar_archive_round_trip() {
    require_e2fsprogs!();
    if !common::have("bsdtar") || !have_python() {
        common::skip("bsdtar (libarchive-tools) or python3 is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    host_tree(&src);
    let a = work.path().join("bsd.tar");
    sh(&format!(
        "bsdtar --format=pax --uid 1234 --gid 99 -C '{}' -cf '{}' .",
        s(&src),
        s(&a)
    ));
    for cfg in [cfgs()[0].clone(), cfgs()[2].clone()] {
        let img = common::mkfs(&cfg);
        import_ok(&img.path, &[s(&a)]);
        let out = img.dir.path().join("out.tar");
        export(&img.path, &[s(&out)]);
        let secs = cfg.inode == 128;
        // bsdtar's order is the host directory's, not sorted: the dumps
        // are sorted by name; its hard link member may be either name.
        let norm = |t: String| -> String {
            t.lines()
                .filter(|l| !l.contains("etc/deep/f ") && !l.contains("etc/deep/hl "))
                .map(|l| {
                    l.split(' ')
                        .filter(|f| !f.starts_with("atime=") && !f.starts_with("ctime="))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        same_lines(
            &norm(dump(&a, secs, "")),
            &norm(dump(&out, secs, "lost+found")),
            &format!("bsdtar {}", cfg.name()),
        );
        let f = common::debugfs(&img.path, "stat /etc/deep/f");
        assert!(f.contains("Links: 2") && f.contains("User:  1234"), "{f}");
    }
}
