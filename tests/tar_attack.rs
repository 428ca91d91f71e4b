//! import-tar and export-tar against hostile input: archives made by hand
//! to overflow the reader's arithmetic, exhaust its memory or smuggle
//! attributes the kernel would refuse, and images crafted so that
//! export-tar would write an archive that escapes the directory it is
//! extracted into. Each test failed before its fix.

mod common;

use std::path::Path;
use std::process::Command;

use common::Cfg;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn cfg(fstype: &'static str, block: u32, inode: u32, dir_index: bool) -> Cfg {
    Cfg {
        fstype,
        block,
        inode,
        dir_index,
        size_kib: 16 * 1024,
    }
}

/// A ustar header; `size` is written as given (12 bytes) when `raw_size`.
fn header(
    name: &[u8],
    typeflag: u8,
    size: u64,
    link: &[u8],
    raw_size: Option<[u8; 12]>,
) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    match raw_size {
        Some(r) => h[124..136].copy_from_slice(&r),
        None => h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes()),
    }
    h[136..148].copy_from_slice(b"13000000000\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn padded(mut v: Vec<u8>) -> Vec<u8> {
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

fn member(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = header(name, b'0', data.len() as u64, b"", None);
    v.extend_from_slice(data);
    padded(v)
}

/// One PAX record, its length counting itself.
fn rec(k: &[u8], v: &[u8]) -> Vec<u8> {
    let body = k.len() + v.len() + 3;
    let mut n = body + 1;
    while n != body + n.to_string().len() {
        n = body + n.to_string().len();
    }
    [n.to_string().as_bytes(), b" ", k, b"=", v, b"\n"].concat()
}

fn pax_of(typeflag: u8, records: &[u8]) -> Vec<u8> {
    let mut v = header(b"PaxHeaders/x", typeflag, records.len() as u64, b"", None);
    v.extend_from_slice(records);
    padded(v)
}

fn pax(records: &[u8]) -> Vec<u8> {
    pax_of(b'x', records)
}

fn end(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut v = parts.concat();
    v.extend_from_slice(&[0u8; 1024]);
    v
}

/// base-256 size field holding u64::MAX.
fn max_size() -> [u8; 12] {
    let mut f = [0u8; 12];
    f[0] = 0x80;
    f[4..].fill(0xff);
    f
}

/// Import `archive` and require exit 1, no panic, one line containing
/// `want`, and the image byte for byte as it was.
fn refused(img: &Path, archive: &[u8], want: &str) {
    let before = common::bytes(img);
    let p = img.with_extension("attack.tar");
    std::fs::write(&p, archive).unwrap();
    let err = common::fails(img, "import-tar", &[s(&p)], 1);
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.contains(want), "wanted {want:?} in: {err}");
    assert!(common::bytes(img) == before, "image changed by: {err}");
}

fn import_ok(img: &Path, archive: &[u8]) {
    let p = img.with_extension("ok.tar");
    std::fs::write(&p, archive).unwrap();
    let o = common::run(&["import-tar", s(img), s(&p)], None);
    assert!(
        o.status.success(),
        "import-tar: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    common::fsck_clean(img);
}

/// A size of 2^64-1 (base-256, or a PAX record) on members whose data is
/// skipped: the reader added the padding to it and overflowed (a panic
/// in debug builds, a wrapped skip of 0 bytes in release builds, which
/// then read the member's data as headers).
#[test]
fn sizes_near_2_64_are_refused_not_overflowed() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfg("ext3", 1024, 128, true));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            end(&[header(b"s", b'2', 0, b"t", Some(max_size()))]),
            "member \"s\"",
        ),
        (
            end(&[header(b"vol", b'V', 0, b"", Some(max_size()))]),
            "member \"vol\"",
        ),
        (
            end(&[
                pax(&rec(b"size", b"18446744073709551615")),
                header(b"d", b'5', 0, b"", None),
            ]),
            "member \"d\"",
        ),
        (
            end(&[
                pax(&rec(b"size", b"18446744073709551615")),
                header(b"h", b'1', 0, b"nowhere", None),
            ]),
            "member \"h\"",
        ),
    ];
    for (a, want) in cases {
        refused(&img.path, &a, want);
    }
}

/// PAX times at the edge of i64: "-9223372036854775808" negated
/// overflowed (a panic), and a 20-digit time wrapped to a negative one
/// (1969) instead of being refused.
#[test]
fn pax_times_past_i64_are_refused_not_overflowed() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfg("ext4", 4096, 256, true));
    for t in [
        &b"-9223372036854775808"[..],
        b"-9223372036854775808.5",
        b"18446744073709551615",
        b"9223372036854775808",
    ] {
        let a = end(&[pax(&rec(b"mtime", t)), member(b"f", b"x")]);
        refused(&img.path, &a, "mtime");
    }
}

/// Extended headers are bounded one by one (8 MiB), but not in total:
/// any number of `x` headers may come before one member (and `g` headers
/// pile up for the rest of the archive), each adding attributes, so a
/// 1 MiB gzip stream made ext3edit abort on an allocation failure
/// (memory grows with the decompressed archive, not its names).
#[test]
fn stacked_extended_headers_are_bounded() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfg("ext4", 4096, 256, true));
    let value = vec![b'A'; 6 << 20];
    for typeflag in [b'x', b'g'] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        use std::io::Write;
        for i in 0..40 {
            let k = format!("SCHILY.xattr.user.a{i}");
            gz.write_all(&pax_of(typeflag, &rec(k.as_bytes(), &value)))
                .unwrap();
        }
        gz.write_all(&end(&[member(b"f", b"x")])).unwrap();
        let bomb = gz.finish().unwrap();
        let p = img.path.with_extension("bomb.tar.gz");
        std::fs::write(&p, &bomb).unwrap();
        let before = common::bytes(&img.path);
        // 40 headers of 6 MiB: 240 MiB of attributes if they were kept.
        let o = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "ulimit -v 200000; exec '{}' import-tar '{}' '{}'",
                    s(&common::bin()),
                    s(&img.path),
                    s(&p)
                ),
            ])
            .env("EXT3EDIT_NO_PROGRESS", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", typeflag as char);
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        assert!(err.contains("more than"), "{err}");
        assert!(common::bytes(&img.path) == before, "image changed: {err}");
    }
}

/// security.capability is checked by the kernel's setxattr (its size
/// must match its revision: 12, 20 or 24 bytes); a malformed one stored
/// as is makes execve of the file fail with EINVAL. GNU tar as root gets
/// the kernel's refusal; import-tar stored any bytes.
#[test]
fn malformed_file_capabilities_are_refused() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfg("ext4", 4096, 256, true));
    let cap = |v: &[u8]| {
        end(&[
            pax(&rec(b"SCHILY.xattr.security.capability", v)),
            member(b"bin", b"\x7fELF"),
        ])
    };
    // Revision 2 (0x02000000, effective bit) with 20 bytes: fine.
    let mut good = 0x0200_0001u32.to_le_bytes().to_vec();
    good.extend_from_slice(&[0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    import_ok(&img.path, &cap(&good));
    let got = common::debugfs(&img.path, "ea_list /bin");
    assert!(got.contains("security.capability"), "{got}");
    for bad in [
        &b"\x01"[..],
        &good[..12],                                    // revision 2 cut to 12 bytes
        &[good.clone(), vec![0; 4]].concat()[..],       // 24 bytes, but revision 2
        &[0u8, 0, 0, 0x09, 0, 0, 0, 0, 0, 0, 0, 0][..], // unknown revision
    ] {
        refused(&img.path, &cap(bad), "security.capability");
    }
}

/// An image crafted with a directory entry named `../../../../tmp/pwn1`
/// (the format forbids '/' in names; e2fsck flags it): export-tar wrote
/// it as a member of that name, an archive that writes outside the
/// directory it is extracted into with tools that follow `..` (Python's
/// tarfile before 3.14's default filter, old bsdtar, busybox). NUL
/// likewise (the ustar name field ends at it: another name than the
/// image's). export-tar must refuse, naming the directory.
#[test]
fn export_refuses_names_with_slash_or_nul() {
    require_e2fsprogs!();
    for (name, patched) in [
        (&b"AAAAAAAAAAAAAAAAAAAA"[..], &b"../../../../tmp/pwn1"[..]),
        (b"BBBBBBBBBBBBBBBBBBBB", b"ok\0../../../tmp/pwn2"),
    ] {
        let img = common::mkfs(&cfg("ext2", 1024, 128, false));
        let f = img.dir.path().join("evil");
        std::fs::write(&f, b"evil\n").unwrap();
        let dest = format!("/{}", String::from_utf8_lossy(name));
        common::ok(&img.path, "put", &[s(&f), &dest]);
        let mut b = std::fs::read(&img.path).unwrap();
        let at: Vec<usize> = b
            .windows(name.len())
            .enumerate()
            .filter(|(_, w)| *w == name)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 1, "the name once in an ext2 image");
        b[at[0]..at[0] + name.len()].copy_from_slice(patched);
        std::fs::write(&img.path, &b).unwrap();
        let out = img.dir.path().join("out.tar");
        let err = common::fails(&img.path, "export-tar", &[s(&out)], 1);
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        assert!(err.contains("'/' or NUL"), "{err}");
        assert!(!out.exists(), "an archive was left");
        let o = common::run(&["export-tar", s(&img.path), "-"], None);
        assert!(!o.status.success(), "export to stdout succeeded");
        assert!(
            !o.stdout
                .windows(8)
                .any(|w| w == b"tmp/pwn1" || w == b"tmp/pwn2"),
            "the name reached the archive"
        );
    }
}

/// OUT a symlink: GNU tar's `-cf OUT` opens OUT (following the link)
/// and writes the target; `get` writes through it too. export-tar renamed
/// its temporary file over the symlink, replacing the link with a file
/// and leaving the target stale. OUT a fifo (or a device such as
/// /dev/null, or /dev/stdout's symlink, as root) was replaced likewise by
/// a regular file.
#[test]
fn export_writes_through_a_symlink_or_fifo_out() {
    require_e2fsprogs!();
    let img = common::mkfs(&cfg("ext4", 4096, 256, true));
    let d = img.dir.path();
    let target = d.join("real.tar");
    std::fs::write(&target, b"old").unwrap();
    let link = d.join("link.tar");
    std::os::unix::fs::symlink("real.tar", &link).unwrap();
    common::ok(&img.path, "export-tar", &[s(&link)]);
    let m = std::fs::symlink_metadata(&link).unwrap();
    assert!(m.file_type().is_symlink(), "the symlink OUT was replaced");
    let data = std::fs::read(&target).unwrap();
    assert!(
        data.len() >= 10240 && &data[257..262] == b"ustar",
        "target not written"
    );
    let o = Command::new("tar")
        .arg("-tf")
        .arg(&target)
        .output()
        .unwrap();
    assert!(o.status.success(), "GNU tar cannot list it");
    // A dangling symlink is refused, as `get` refuses it.
    let dangling = d.join("dangling.tar");
    std::os::unix::fs::symlink("nowhere/x.tar", &dangling).unwrap();
    let err = common::fails(&img.path, "export-tar", &[s(&dangling)], 1);
    assert!(err.contains("dangling"), "{err}");
    // A fifo: written in place, read by a reader.
    let fifo = d.join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let f2 = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read(&f2).unwrap());
    let o = common::run(&["export-tar", s(&img.path), s(&fifo)], None);
    use std::os::unix::fs::FileTypeExt;
    let m = std::fs::symlink_metadata(&fifo).unwrap();
    // (Not joined when the fifo is gone: its reader waits for ever.)
    assert!(m.file_type().is_fifo(), "the fifo OUT was replaced");
    if !o.status.success() {
        // Unblock the reader before failing.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
    }
    let got = reader.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(got, data, "the fifo got another archive than the file");
}
