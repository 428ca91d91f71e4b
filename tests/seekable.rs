//! Seekable editing: an image packed by ext3edit (bzip2, gzip, xz) is read
//! and edited through its chunks, without decompressing it whole: the
//! result unpacked by the standard tools passes e2fsck and holds the
//! edit, and only a few chunks' compressed bytes change.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use ext3edit::container::seekable::{Chunk, Index};
use ext3edit::container::Container;

const FORMATS: [&str; 3] = ["bz2", "gz", "xz"];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn x_ok(tmp: &Path, args: &[&str]) -> Output {
    let o = run_in(tmp, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The chunks of a seekable file (panics when it is not one).
fn chunks(p: &Path) -> Vec<Chunk> {
    let c = Container::open(p).unwrap();
    let f = File::open(p).unwrap();
    match Index::read(&c, &f).unwrap() {
        Some((ix, _)) => ix.chunks,
        None => panic!("{} is not seekable", p.display()),
    }
}

fn is_seekable(p: &Path) -> bool {
    let c = Container::open(p).unwrap();
    let f = File::open(p).unwrap();
    Index::read(&c, &f).unwrap().is_some()
}

/// A chunk's compressed bytes (a bzip2 block's bits, which lie at any
/// bit offset, shifted to bit 0).
fn chunk_bytes(p: &Path, k: &Chunk) -> Vec<u8> {
    let mut v = vec![0u8; k.size as usize];
    File::open(p).unwrap().read_exact_at(&mut v, k.at).unwrap();
    if k.bits > 0 {
        return ext3edit::container::bzip2::aligned(&v, k);
    }
    v
}

/// How many chunks of `b` differ from those of `a` (same layout required).
fn changed_chunks(a: &Path, b: &Path) -> usize {
    let ca = chunks(a);
    let cb = chunks(b);
    assert_eq!(ca.len(), cb.len(), "chunk count");
    ca.iter()
        .zip(&cb)
        .filter(|(x, y)| {
            assert_eq!((x.raw, x.len), (y.raw, y.len), "chunk layout");
            chunk_bytes(a, x) != chunk_bytes(b, y)
        })
        .count()
}

fn tools() -> bool {
    for t in ["bunzip2", "gunzip", "unxz"] {
        if !have(t) {
            skip(&format!("{t} is not installed"));
            return false;
        }
    }
    true
}

struct Dirs {
    _t: tempfile::TempDir,
    work: PathBuf,
    tmp: PathBuf,
}

fn dirs() -> Dirs {
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let tmp = t.path().join("tmpdir");
    std::fs::create_dir(&work).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    Dirs { _t: t, work, tmp }
}

fn sample() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample.ext3"))
}

/// A 256 MiB ext3 image (4 KiB blocks) holding some files.
fn big_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
    for i in 0..40u64 {
        let len = 5000 + (i as usize * 37_000) % 400_000;
        std::fs::write(tree.join(format!("usr/lib/f{i}")), pseudo_random(len, i)).unwrap();
    }
    std::fs::write(tree.join("big.bin"), pseudo_random(6 << 20, 99)).unwrap();
    let img = dir.join("big.img");
    let o = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-b", "4096", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("256M")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&tree).unwrap();
    img
}

/// Pack `raw` as `fmt` into `work`.
fn pack(d: &Dirs, raw: &Path, name: &str, fmt: &str) -> PathBuf {
    let out = d.work.join(format!("{name}.{fmt}"));
    x_ok(&d.tmp, &["pack", s(raw), s(&out), "--format", fmt]);
    out
}

fn put_checks(d: &Dirs, raw: &Path, name: &str) {
    let data = pseudo_random(20_000, 5);
    let src = d.work.join("new.bin");
    std::fs::write(&src, &data).unwrap();
    for fmt in FORMATS {
        let packed = pack(d, raw, name, fmt);
        let orig = d.work.join(format!("orig.{fmt}"));
        std::fs::copy(&packed, &orig).unwrap();
        let before = listing(&d.work);
        x_ok(&d.tmp, &["put", s(&packed), s(&src), "/new.bin"]);
        assert_eq!(
            listing(&d.work),
            before,
            "{fmt}: files left beside the image"
        );
        assert!(listing(&d.tmp).is_empty(), "{fmt}: files left in TMPDIR");
        // The standard tool reads it; e2fsck passes; the file is there.
        let back = d.work.join("back.img");
        tool_unpack(fmt, &packed, &back);
        fsck_clean(&back);
        assert_eq!(debugfs_cat(&back, "/new.bin"), data, "{fmt}");
        std::fs::remove_file(&back).unwrap();
        // Same chunk layout, and only a few chunks changed.
        let n = chunks(&orig).len();
        let changed = changed_chunks(&orig, &packed);
        assert!(
            (1..=12).contains(&changed),
            "{name}.{fmt}: {changed} of {n} chunks changed"
        );
        // And reads through the chunks see it.
        let o = x_ok(&d.tmp, &["get", s(&packed), "/new.bin"]);
        assert_eq!(o.stdout, data);
        std::fs::remove_file(&orig).unwrap();
        std::fs::remove_file(&packed).unwrap();
    }
}

#[test]
fn put_into_packed_sample_changes_few_chunks() {
    require_e2fsprogs!();
    if !tools() {
        return;
    }
    let d = dirs();
    put_checks(&d, &sample(), "sample");
}

#[test]
fn put_into_packed_256m_image_changes_few_chunks() {
    require_e2fsprogs!();
    if !tools() {
        return;
    }
    let d = dirs();
    let raw = big_image(&d.work);
    put_checks(&d, &raw, "big");
}

/// Flip bytes in the middle of chunk `i`'s compressed data.
fn damage_chunk(p: &Path, i: usize) -> Chunk {
    let k = chunks(p)[i];
    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
    let mid = k.at + k.size / 2;
    let mut b = [0u8; 4];
    File::open(p).unwrap().read_exact_at(&mut b, mid).unwrap();
    for v in &mut b {
        *v ^= 0x5a;
    }
    f.write_all_at(&b, mid).unwrap();
    k
}

/// Reads and edits decompress only the chunks they touch: with a chunk
/// that nothing reads damaged, and TMPDIR a directory that does not
/// exist for the reads (so no full temporary copy can be made), `ls`,
/// `get`, `check` and `put` work, and the damaged chunk is copied as it
/// was; the full unpack of the same file fails, so the damage is real.
#[test]
fn untouched_chunks_are_never_decompressed() {
    require_e2fsprogs!();
    let d = dirs();
    let raw = big_image(&d.work);
    let nowhere = d.work.join("no-such-dir");
    let data = pseudo_random(3000, 8);
    let src = d.work.join("new.bin");
    std::fs::write(&src, &data).unwrap();
    for fmt in FORMATS {
        let packed = pack(&d, &raw, "big", fmt);
        let n = chunks(&packed).len();
        // The image's last chunks are free space, far from the files and
        // the journal.
        let k = damage_chunk(&packed, n - 2);
        let damaged = chunk_bytes(&packed, &k);
        let o = run_in(&d.tmp, &["unpack", s(&packed), s(&d.work.join("u.img"))]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{fmt}: full unpack of a damaged file"
        );
        let o = x_ok(&nowhere, &["ls", s(&packed), "/usr/lib"]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("f39"), "{fmt}");
        let o = x_ok(&nowhere, &["get", s(&packed), "/usr/lib/f7"]);
        assert_eq!(o.stdout, pseudo_random(5000 + 7 * 37_000, 7), "{fmt}");
        let want = run_in(&d.tmp, &["check", s(&raw)]);
        let o = run_in(&nowhere, &["check", s(&packed)]);
        assert_eq!(
            o.status.code(),
            want.status.code(),
            "{fmt}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // (A write keeps the previous content of the blocks it overwrites
        // in a small file in TMPDIR: a real directory here, empty after.)
        x_ok(&d.tmp, &["put", s(&packed), s(&src), "/new.bin"]);
        assert!(listing(&d.tmp).is_empty(), "{fmt}");
        let o = x_ok(&nowhere, &["get", s(&packed), "/new.bin"]);
        assert_eq!(o.stdout, data, "{fmt}");
        let k2 = chunks(&packed)[n - 2];
        assert_eq!((k2.raw, k2.len), (k.raw, k.len));
        // The damaged bytes, copied as they were.
        assert!(chunk_bytes(&packed, &k2) == damaged, "{fmt}");
        std::fs::remove_file(&packed).unwrap();
    }
}

/// A command that fails leaves the packed image byte for byte as it was
/// and no temporary file, whether it fails in the engine (no room for the
/// file) or when writing the result (--output in a missing directory).
#[test]
fn failing_write_leaves_the_original() {
    require_e2fsprogs!();
    let d = dirs();
    let big = d.work.join("huge.bin");
    std::fs::write(&big, pseudo_random(4 << 20, 3)).unwrap();
    let small = d.work.join("small.bin");
    std::fs::write(&small, b"small\n").unwrap();
    for fmt in FORMATS {
        let packed = pack(&d, &sample(), "sample", fmt);
        let before = std::fs::read(&packed).unwrap();
        let names = listing(&d.work);
        let o = run_in(&d.tmp, &["put", s(&packed), s(&big), "/huge.bin"]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{fmt}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        let missing = d.work.join("missing/out.img");
        let o = run_in(
            &d.tmp,
            &[
                "put",
                s(&packed),
                s(&small),
                "/small.bin",
                "--output",
                s(&missing),
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{fmt}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            std::fs::read(&packed).unwrap() == before,
            "{fmt}: the image changed"
        );
        assert_eq!(listing(&d.work), names, "{fmt}: files left behind");
        assert!(listing(&d.tmp).is_empty(), "{fmt}");
        std::fs::remove_file(&packed).unwrap();
    }
}

/// `--output` writes the edited image elsewhere, in the same layout, and
/// leaves the original alone; a read-only command changes nothing.
#[test]
fn output_leaves_the_original() {
    require_e2fsprogs!();
    let d = dirs();
    let src = d.work.join("a.txt");
    std::fs::write(&src, b"alpha\n").unwrap();
    for fmt in FORMATS {
        let packed = pack(&d, &sample(), "sample", fmt);
        let before = std::fs::read(&packed).unwrap();
        let out = d.work.join(format!("out.{fmt}"));
        x_ok(
            &d.tmp,
            &["put", s(&packed), s(&src), "/a.txt", "--output", s(&out)],
        );
        assert!(std::fs::read(&packed).unwrap() == before);
        let changed = changed_chunks(&packed, &out);
        assert!((1..=12).contains(&changed), "{fmt}: {changed}");
        let o = x_ok(&d.tmp, &["get", s(&out), "/a.txt"]);
        assert_eq!(o.stdout, b"alpha\n");
        std::fs::remove_file(&out).unwrap();
        std::fs::remove_file(&packed).unwrap();
    }
}

/// Files packed by other tools take the full path once and come out in
/// the chunked layout.
#[test]
fn foreign_files_come_out_seekable() {
    require_e2fsprogs!();
    if !tools() {
        return;
    }
    let d = dirs();
    let src = d.work.join("a.txt");
    std::fs::write(&src, b"alpha\n").unwrap();
    let raw = sample();
    // pbzip2 writes one stream per 900,000 bytes: several streams, but not
    // of ext3edit's chunk size (897,024 at -9).
    let pbzip2 = format!(
        "for i in 0 1 2 3 4; do dd if='{}' bs=900000 skip=$i count=1 2>/dev/null | bzip2 -9; done",
        s(&raw)
    );
    for (fmt, cmd) in [
        ("bz2", format!("bzip2 -9 -c '{}'", s(&raw))),
        ("bz2", pbzip2),
        ("gz", format!("gzip -c '{}'", s(&raw))),
        ("xz", format!("xz -c '{}'", s(&raw))),
    ] {
        let f = d.work.join(format!("foreign.{fmt}"));
        let o = Command::new("sh")
            .args(["-c", &format!("{{ {cmd}; }} > '{}'", s(&f))])
            .output()
            .unwrap();
        assert!(o.status.success());
        assert!(!is_seekable(&f), "{fmt}: a foreign file taken as seekable");
        x_ok(&d.tmp, &["put", s(&f), s(&src), "/a.txt"]);
        assert!(is_seekable(&f), "{fmt}: not seekable after an edit");
        let back = d.work.join("back.img");
        tool_unpack(fmt, &f, &back);
        fsck_clean(&back);
        assert_eq!(debugfs_cat(&back, "/a.txt"), b"alpha\n");
        assert!(listing(&d.tmp).is_empty());
    }
}

/// Two files in the chunked layout, concatenated (as `cat a.bz2 b.bz2`
/// would): the first one's last stream holds less than a chunk, so the
/// streams after it are not where the layout says. bzip2 records no sizes;
/// the markers in the middle tell, and the file takes the full path: the
/// edit lands where it belongs.
#[test]
fn concatenated_bzip2_packs_take_the_full_path() {
    use ext3edit::container::bzip2::{chunk_size, compress_chunk, marker};
    require_e2fsprogs!();
    if !tools() {
        return;
    }
    let d = dirs();
    let raw = std::fs::read(sample()).unwrap();
    let c = chunk_size(1);
    let cut = 3 * c + 5000;
    let packed = |part: &[u8]| {
        let mut f = marker(1).to_vec();
        for piece in part.chunks(c) {
            f.extend_from_slice(&compress_chunk(piece, 1).unwrap());
        }
        f.extend_from_slice(&marker(1));
        f
    };
    let f = d.work.join("cat.bz2");
    std::fs::write(&f, [packed(&raw[..cut]), packed(&raw[cut..])].concat()).unwrap();
    // What bunzip2 reads is the image.
    let back = d.work.join("back.img");
    tool_unpack("bz2", &f, &back);
    assert!(std::fs::read(&back).unwrap() == raw);
    assert!(!is_seekable(&f), "a concatenation taken as seekable");
    let src = d.work.join("a.txt");
    std::fs::write(&src, b"alpha\n").unwrap();
    x_ok(&d.tmp, &["put", s(&f), s(&src), "/a.txt"]);
    assert!(is_seekable(&f), "not seekable after an edit");
    tool_unpack("bz2", &f, &back);
    fsck_clean(&back);
    assert_eq!(debugfs_cat(&back, "/a.txt"), b"alpha\n");
    // Every other file is as it was.
    let o = x_ok(&d.tmp, &["get", s(&f), "/etc/passwd"]);
    assert_eq!(o.stdout, debugfs_cat(&sample(), "/etc/passwd"));
}

/// A damaged chunk that a command reads: one line naming the chunk,
/// exit 1, the file unchanged.
#[test]
fn damaged_chunk_that_is_read_is_an_error() {
    let d = dirs();
    let src = d.work.join("a.txt");
    std::fs::write(&src, b"alpha\n").unwrap();
    for fmt in FORMATS {
        let packed = pack(&d, &sample(), "sample", fmt);
        // Chunk 0 holds the superblock (bzip2 decodes it at open).
        damage_chunk(&packed, 0);
        let before = std::fs::read(&packed).unwrap();
        let names = listing(&d.work);
        for args in [
            vec!["ls", s(&packed), "/"],
            vec!["put", s(&packed), s(&src), "/a.txt"],
        ] {
            let o = run_in(&d.tmp, &args);
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert_eq!(o.status.code(), Some(1), "{fmt} {args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert!(err.contains("damaged"), "{fmt}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
        assert!(std::fs::read(&packed).unwrap() == before, "{fmt}");
        assert_eq!(listing(&d.work), names, "{fmt}");
        assert!(listing(&d.tmp).is_empty(), "{fmt}");
        std::fs::remove_file(&packed).unwrap();
    }
}

/// More written chunks than fit in memory (32 MiB) go to a temporary
/// file beside the image, which is gone afterwards; the result is right.
#[test]
fn large_write_spills_to_a_temporary_file() {
    require_e2fsprogs!();
    if !have("gunzip") {
        skip("gunzip is not installed");
        return;
    }
    let d = dirs();
    let raw = big_image(&d.work);
    let data = pseudo_random(40 << 20, 11);
    let src = d.work.join("large.bin");
    std::fs::write(&src, &data).unwrap();
    let packed = pack(&d, &raw, "big", "gz");
    let orig = d.work.join("orig.gz");
    std::fs::copy(&packed, &orig).unwrap();
    let names = listing(&d.work);
    x_ok(&d.tmp, &["put", s(&packed), s(&src), "/large.bin"]);
    assert_eq!(listing(&d.work), names);
    assert!(listing(&d.tmp).is_empty());
    let changed = changed_chunks(&orig, &packed);
    assert!((40..=60).contains(&changed), "{changed} chunks changed");
    let back = d.work.join("back.img");
    tool_unpack("gz", &packed, &back);
    fsck_clean(&back);
    assert!(debugfs_cat(&back, "/large.bin") == data);
    let o = x_ok(&d.tmp, &["get", s(&packed), "/usr/lib/f3"]);
    assert_eq!(o.stdout, pseudo_random(5000 + 3 * 37_000, 3));
}

/// CRC-32 (IEEE), bit by bit: enough for a test.
fn crc32_ieee(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn vli(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let c = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(c);
            return;
        }
        out.push(c | 0x80);
    }
}

fn vli_get(b: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut sh) = (0u64, 0);
    loop {
        let c = b[*at];
        *at += 1;
        v |= ((c & 0x7f) as u64) << sh;
        sh += 7;
        if c & 0x80 == 0 {
            return v;
        }
    }
}

/// An adversarial pass found it: an xz index whose records' sizes wrap
/// the 64-bit offset around still "added up" to the file, and the first
/// chunk then claimed 2^63 bytes (a panic allocating it). Now such an
/// index is not seekable, and reading ends in one line.
#[test]
fn xz_index_whose_sizes_wrap_around_is_one_line() {
    require_e2fsprogs!();
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("a.img");
    let out = std::process::Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-b", "4096"])
        .arg(&img)
        .arg("8M")
        .output()
        .unwrap();
    assert!(out.status.success());
    let xz = d.path().join("a.xz");
    let o = run(
        &[
            "pack",
            img.to_str().unwrap(),
            xz.to_str().unwrap(),
            "--format",
            "xz",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let data = std::fs::read(&xz).unwrap();
    let foot = &data[data.len() - 12..];
    let bs = (u32::from_le_bytes(foot[4..8].try_into().unwrap()) as usize + 1) * 4;
    let idx = &data[data.len() - 12 - bs..data.len() - 12];
    let body = &data[..data.len() - 12 - bs];
    let mut at = 1;
    let n = vli_get(idx, &mut at);
    let mut recs: Vec<(u64, u64)> = vec![((1 << 63) - 1, 4096), ((1 << 63) - 1, 4096)];
    for _ in 0..n {
        let u = vli_get(idx, &mut at);
        let s = vli_get(idx, &mut at);
        recs.push((u, s));
    }
    let mut ni = vec![0u8];
    vli(recs.len() as u64, &mut ni);
    for (u, s) in &recs {
        vli(*u, &mut ni);
        vli(*s, &mut ni);
    }
    while ni.len() % 4 != 0 {
        ni.push(0);
    }
    let crc = crc32_ieee(&ni);
    ni.extend_from_slice(&crc.to_le_bytes());
    let mut nf = Vec::new();
    let bsz = ((ni.len() / 4 - 1) as u32).to_le_bytes();
    let mut crcd = bsz.to_vec();
    crcd.extend_from_slice(&foot[8..10]);
    nf.extend_from_slice(&crc32_ieee(&crcd).to_le_bytes());
    nf.extend_from_slice(&bsz);
    nf.extend_from_slice(&foot[8..10]);
    nf.extend_from_slice(b"YZ");
    let crafted = d.path().join("t.xz");
    let mut all = body.to_vec();
    all.extend_from_slice(&ni);
    all.extend_from_slice(&nf);
    std::fs::write(&crafted, &all).unwrap();
    let o = run(&["ls", crafted.to_str().unwrap(), "/"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// What a single-stream bzip2 reader (libbzip2 stopping at the first
/// end-of-stream, as Python's `bz2.BZ2Decompressor`, Python 2's `BZ2File`
/// and commons-compress by default) makes of `f`: its bytes and whether
/// anything followed that stream.
fn single_stream(f: &Path) -> (Vec<u8>, bool) {
    use std::io::Read;
    let data = std::fs::read(f).unwrap();
    let mut d = bzip2::read::BzDecoder::new(&data[..]);
    let mut out = Vec::new();
    d.read_to_end(&mut out).unwrap();
    let rest = d.into_inner();
    (out, !rest.is_empty())
}

/// Every check a single-stream reader and the tools make of `f`, which
/// must decompress to `want`.
fn one_stream_checks(f: &Path, want: &[u8], what: &str) {
    let (out, more) = single_stream(f);
    assert!(!more, "{what}: data after the first stream");
    assert!(
        out == want,
        "{what}: a single-stream reader got {} bytes",
        out.len()
    );
    if have("python3") {
        let o = Command::new("python3")
            .args([
                "-c",
                "import bz2,sys\nd=bz2.BZ2Decompressor()\nout=d.decompress(open(sys.argv[1],'rb').read())\nassert d.eof and not d.unused_data\nsys.stdout.buffer.write(out)",
            ])
            .arg(f)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stdout == want,
            "{what}: BZ2Decompressor got {} bytes",
            o.stdout.len()
        );
    }
    for tool in ["bunzip2", "lbzip2"] {
        if !have(tool) {
            continue;
        }
        let o = Command::new(tool)
            .args(["-d", "-c"])
            .arg(f)
            .output()
            .unwrap();
        assert!(o.status.success(), "{what}: {tool} failed");
        assert!(
            o.stderr.is_empty(),
            "{what}: {tool}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stdout == want,
            "{what}: {tool} got {} bytes",
            o.stdout.len()
        );
    }
}

/// A .bz2 that ext3edit writes is one stream, so that single-stream
/// readers get the whole image (the earlier layout began with an empty
/// stream: they got 0 bytes): after `pack`, after a seekable edit, after
/// an edit through the full path, at levels 9 and 1; and a file in the
/// earlier layout (a stream per chunk between two empty streams) is still
/// read, and edited into the new one.
#[test]
fn bzip2_written_by_ext3edit_is_one_stream() {
    use ext3edit::container::bzip2::{compress_chunk, marker};
    require_e2fsprogs!();
    for tool in ["python3", "bunzip2", "lbzip2"] {
        if !have(tool) {
            skip(&format!("{tool} is not installed: not used as an oracle"));
        }
    }
    let d = dirs();
    let src = d.work.join("a.txt");
    std::fs::write(&src, b"alpha\n").unwrap();
    let raw = std::fs::read(sample()).unwrap();
    for level in ["9", "1"] {
        let f = d.work.join(format!("l{level}.bz2"));
        x_ok(&d.tmp, &["pack", s(&sample()), s(&f), "--level", level]);
        one_stream_checks(&f, &raw, &format!("pack --level {level}"));
        assert!(is_seekable(&f), "level {level}");
        assert!(chunks(&f).len() > 1, "level {level}");
        x_ok(&d.tmp, &["put", s(&f), s(&src), "/a.txt"]);
        assert!(is_seekable(&f), "level {level}");
        let back = d.work.join("back.img");
        let (out, _) = single_stream(&f);
        std::fs::write(&back, &out).unwrap();
        one_stream_checks(&f, &out, &format!("seekable put, level {level}"));
        fsck_clean(&back);
        assert_eq!(debugfs_cat(&back, "/a.txt"), b"alpha\n");
    }
    // The earlier layout: 897,024-byte chunks at level 9, each its own
    // stream, between two empty streams.
    let mut old = marker(9).to_vec();
    for part in raw.chunks(897_024) {
        old.extend_from_slice(&compress_chunk(part, 9).unwrap());
    }
    old.extend_from_slice(&marker(9));
    let f = d.work.join("old.bz2");
    std::fs::write(&f, &old).unwrap();
    assert_eq!(
        single_stream(&f).0.len(),
        0,
        "the old layout's first stream"
    );
    let o = x_ok(&d.tmp, &["get", s(&f), "/etc/passwd"]);
    assert_eq!(o.stdout, debugfs_cat(&sample(), "/etc/passwd"));
    x_ok(&d.tmp, &["put", s(&f), s(&src), "/a.txt"]);
    let (out, _) = single_stream(&f);
    one_stream_checks(&f, &out, "an edit of the old layout");
    assert!(is_seekable(&f), "an edit of the old layout");
    let back = d.work.join("back.img");
    std::fs::write(&back, &out).unwrap();
    fsck_clean(&back);
    assert_eq!(debugfs_cat(&back, "/a.txt"), b"alpha\n");
    assert!(listing(&d.tmp).is_empty());
}
