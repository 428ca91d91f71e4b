//! The commit path under failure, and the memory a data write needs: a
//! failed command leaves the image byte for byte as it was (and its
//! allocation on the host too); a host write error mid-commit says what
//! state the image is in; data of any size goes through bounded memory.

mod common;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use ext3edit::{Filesystem, OpenOptions};

fn ext3(size: &str, block: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.img");
    let st = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-b", block])
        .arg(&img)
        .arg(size)
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap();
    assert!(st.status.success());
    (dir, img)
}

/// Run ext3edit with stdin fed from `input` (written by a thread) and
/// stdout read and counted; (exit code, stderr, stdout bytes, peak RSS in KiB).
fn run_measured(
    args: &[&str],
    input: Option<Box<dyn Read + Send>>,
    fsize: Option<u64>,
) -> (i32, String, u64, i64) {
    let mut c = Command::new(common::bin());
    c.args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(limit) = fsize {
        // SAFETY: the hook only makes async-signal-safe calls.
        unsafe {
            c.pre_exec(move || limit_fsize(limit));
        }
    }
    let mut child = c.spawn().unwrap();
    let feeder = input.map(|mut r| {
        let mut si = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut r, &mut si);
        })
    });
    let mut so = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        while let Ok(k) = so.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        n
    });
    let mut se = child.stderr.take().unwrap();
    let errt = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    // The child's own high-water mark (VmHWM: of its image after exec;
    // getrusage would also count the test process it was forked from),
    // polled until it exits (the mark only grows).
    let pid = child.id();
    let watcher = std::thread::spawn(move || {
        let mut peak = 0i64;
        while let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let Some(l) = s.lines().find(|l| l.starts_with("VmHWM:")) else {
                break;
            };
            let kib: i64 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
            peak = peak.max(kib);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        peak
    });
    let st = child.wait().unwrap();
    let rss = watcher.join().unwrap();
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    let out = reader.join().unwrap();
    let err = errt.join().unwrap();
    (st.code().unwrap_or(-1), err, out, rss)
}

/// `n` bytes, no block of them zero.
struct NonZero {
    left: u64,
    pattern: Vec<u8>,
    pos: usize,
}

impl NonZero {
    fn new(n: u64) -> Self {
        let mut pattern = common::pseudo_random(1 << 20, 7);
        for b in pattern.iter_mut() {
            *b |= 1;
        }
        NonZero {
            left: n,
            pattern,
            pos: 0,
        }
    }
}

impl Read for NonZero {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64)
            .min(self.left)
            .min((self.pattern.len() - self.pos) as u64) as usize;
        buf[..n].copy_from_slice(&self.pattern[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.pattern.len();
        self.left -= n as u64;
        Ok(n)
    }
}

fn one_line(err: &str) {
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("ext3edit: "), "{err:?}");
}

#[test]
fn stdin_larger_than_free_space_changes_nothing() {
    require_e2fsprogs!();
    // Bigger than what the engine stages in memory before writing early.
    let (_d, img) = ext3("96M", "4096");
    let i = img.to_str().unwrap();
    let before = std::fs::read(&img).unwrap();
    let blocks = std::fs::metadata(&img).unwrap().blocks();
    let (code, err, _, _) = run_measured(
        &["put", i, "-", "/big"],
        Some(Box::new(NonZero::new(128 << 20))),
        None,
    );
    assert_eq!(code, 1, "{err}");
    one_line(&err);
    assert!(err.contains("no space left"), "{err}");
    assert!(
        std::fs::read(&img).unwrap() == before,
        "image bytes changed"
    );
    assert_eq!(
        std::fs::metadata(&img).unwrap().blocks(),
        blocks,
        "the image's allocation on the host changed"
    );
    // What fits still goes in.
    let (code, err, _, _) = run_measured(
        &["put", i, "-", "/fits"],
        Some(Box::new(NonZero::new(4 << 20))),
        None,
    );
    assert_eq!(code, 0, "{err}");
    common::fsck_clean(&img);
}

#[test]
fn data_in_and_out_in_bounded_memory() {
    require_e2fsprogs!();
    let (_d, img) = ext3("400M", "4096");
    let i = img.to_str().unwrap();
    let size: u64 = 160 << 20;
    let limit_kib = 64 * 1024;
    let (code, err, _, rss) = run_measured(
        &["put", i, "-", "/in", "--no-sync"],
        Some(Box::new(NonZero::new(size))),
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(rss < limit_kib, "put from stdin: peak RSS {rss} KiB");
    let (code, err, out, rss) = run_measured(&["get", i, "/in", "-"], None, None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, size);
    assert!(rss < limit_kib, "get to stdout: peak RSS {rss} KiB");
    common::fsck_clean(&img);
}

/// Where inode 8 (the journal) keeps i_block[3] in the image file.
fn journal_iblock3(img: &Path) -> u64 {
    let fs = Filesystem::open(img, &OpenOptions::read_only()).unwrap();
    let sb = fs.superblock();
    let table = fs.groups()[0].inode_table();
    table * fs.block_size() as u64 + 7 * sb.inode_size as u64 + 0x28 + 3 * 4
}

#[test]
fn damaged_journal_map_fails_before_any_write() {
    require_e2fsprogs!();
    let (_d, img) = ext3("16M", "1024");
    let i = img.to_str().unwrap();
    let src = img.with_file_name("src");
    std::fs::write(&src, b"some content\n".repeat(3000)).unwrap();
    let at = journal_iblock3(&img);
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[at as usize..at as usize + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    std::fs::write(&img, &bytes).unwrap();
    for args in [
        vec!["mkdir", i, "/newdir"],
        vec!["put", i, src.to_str().unwrap(), "/f"],
    ] {
        let (code, err, _, _) = run_measured(&args, None, None);
        assert_eq!(code, 1, "{args:?}: {err}");
        one_line(&err);
        assert!(err.contains("inode 8"), "{err}");
        assert!(
            std::fs::read(&img).unwrap() == bytes,
            "{args:?} failed but changed the image"
        );
    }
}

fn limit_fsize(limit: u64) -> std::io::Result<()> {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let r = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn host_write_error_says_the_state() {
    require_e2fsprogs!();
    // 1. The data write fails (past 1 MiB): nothing of the file system
    // changed.
    let (_d, img) = ext3("64M", "1024");
    let i = img.to_str().unwrap();
    let src = img.with_file_name("src");
    std::fs::write(&src, common::pseudo_random(2 << 20, 3)).unwrap();
    let (code, err, _, _) = run_measured(
        &["put", i, src.to_str().unwrap(), "/f"],
        None,
        Some(1 << 20),
    );
    assert_eq!(code, 1, "{err}");
    one_line(&err);
    assert!(err.contains("nothing of the file system changed"), "{err}");
    common::fsck_clean(&img);
    assert_eq!(run_measured(&["ls", i, "/f"], None, None).0, 1);

    // 2. The log (in group 0) is written, the checkpoint into group 1
    // fails: the journal holds the transaction and a replay completes it.
    common::ok(&img, "mkdir", &["/d"]);
    let fs = Filesystem::open(&img, &OpenOptions::read_only()).unwrap();
    let d = fs.resolve("/d", true).unwrap();
    let g = fs.inode_group(d);
    assert!(g > 0, "the test needs /d outside group 0");
    let limit = fs.superblock().group_first_block(g) * fs.block_size() as u64;
    drop(fs);
    let (code, err, _, _) = run_measured(
        &["put", i, "-", "/d/z"],
        Some(Box::new(std::io::repeat(0).take(4096))),
        Some(limit),
    );
    assert_eq!(code, 1, "{err}");
    one_line(&err);
    assert!(err.contains("the journal holds the transaction"), "{err}");
    let (code, err, _, _) = run_measured(&["journal", "replay", i], None, None);
    assert_eq!(code, 0, "{err}");
    common::fsck_clean(&img);
    common::ok(&img, "ls", &["/d/z"]);
}

/// A 1 KiB-block ext3 image with a 1 MiB journal holding /big: 40
/// directories of 100 files of `file_len` bytes, whose removal touches more
/// metadata than half a journal transaction holds.
fn small_journal_tree(size: &str, file_len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    journal_tree(size, 40, file_len)
}

/// The same with `dirs` directories of 100 files.
fn journal_tree(
    size: &str,
    dirs: usize,
    file_len: usize,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for i in 0..dirs {
        let sub = root.join(format!("big/d{i:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for j in 0..100 {
            std::fs::write(
                sub.join(format!("f{j:03}")),
                vec![b'a' + (j % 26) as u8; file_len],
            )
            .unwrap();
        }
    }
    let img = dir.path().join("a.img");
    let st = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext3", "-b", "1024", "-I", "128"])
        .args([
            "-J",
            "size=1",
            "-N",
            &(dirs * 100 + 6000).max(10000).to_string(),
            "-d",
        ])
        .arg(&root)
        .arg(&img)
        .arg(size)
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::remove_dir_all(&root).unwrap();
    (dir, img)
}

/// Through the library: a change opened with `begin_undoable` that
/// committed in steps and then failed is put back whole, on drop and on
/// rollback; the final commit keeps it.
#[test]
fn undoable_change_spanning_commits_is_put_back() {
    require_e2fsprogs!();
    let (_d, img) = small_journal_tree("16M", 8);
    let before = std::fs::read(&img).unwrap();
    let opts = OpenOptions {
        write: true,
        ..OpenOptions::default()
    };
    for how in ["drop", "rollback"] {
        let mut fs = Filesystem::open(&img, &opts).unwrap();
        fs.begin_undoable();
        let root = fs.root();
        fs.remove_tree(root, b"big").unwrap();
        assert!(
            fs.has_intermediate_commits(),
            "the delete must span commits"
        );
        // Then a step fails: more data than the file system holds.
        let mut src = std::io::repeat(7).take(40 << 20);
        let e = fs
            .create_file_sized(
                root,
                b"huge",
                &ext3edit::NewFile::default(),
                &mut src,
                Some(40 << 20),
            )
            .unwrap_err();
        assert!(e.to_string().contains("space"), "{e}");
        if how == "rollback" {
            fs.rollback().unwrap();
            assert!(fs.resolve("/big/d39/f099", false).is_ok());
            fs.commit().unwrap();
        }
        drop(fs);
        assert!(
            std::fs::read(&img).unwrap() == before,
            "{how}: the image changed"
        );
        common::fsck_clean(&img);
    }
    let mut fs = Filesystem::open(&img, &opts).unwrap();
    fs.begin_undoable();
    let root = fs.root();
    fs.remove_tree(root, b"big").unwrap();
    fs.commit().unwrap();
    drop(fs);
    common::fsck_clean(&img);
    let fs = Filesystem::open(&img, &OpenOptions::read_only()).unwrap();
    assert!(fs.resolve("/big", false).is_err());
}

/// `put -r` of a large tree on an image with a small journal: it commits
/// in steps, then a host write fails (the file-size limit stops writes
/// past 12 MB of the image file); the image is byte for byte as it was.
#[test]
fn put_r_failing_after_commits_changes_nothing() {
    require_e2fsprogs!();
    let (d, img) = small_journal_tree("16M", 8);
    let src = d.path().join("src");
    for i in 0..50 {
        let sub = src.join(format!("d{i:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for j in 0..100 {
            std::fs::write(sub.join(format!("f{j:03}")), format!("{i} {j}")).unwrap();
        }
    }
    let i = img.to_str().unwrap();
    let before = std::fs::read(&img).unwrap();
    let (code, err, _, _) = run_measured(
        &["put", i, src.to_str().unwrap(), "/new", "-r"],
        None,
        Some(14_000_000),
    );
    assert_eq!(code, 1, "{err}");
    one_line(&err);
    assert!(err.contains("the whole change was put back"), "{err}");
    assert!(
        std::fs::read(&img).unwrap() == before,
        "the image changed: {err}"
    );
    common::fsck_clean(&img);
}

/// The same on an image whose journal needs recovery: the first
/// intermediate commit writes the replay, and putting the change back
/// puts back the pending journal too (the image still needs recovery,
/// byte for byte as before); after a rollback the replay is staged again.
#[test]
fn undoable_change_over_a_pending_replay_is_put_back() {
    require_e2fsprogs!();
    let (d, img) = small_journal_tree("16M", 8);
    let opts = OpenOptions {
        write: true,
        ..OpenOptions::default()
    };
    let base = std::fs::read(&img).unwrap();
    let dirty = common::crash_until_dirty(&base, &opts, &|fs| {
        let root = fs.root();
        fs.create_file(
            root,
            b"x",
            &ext3edit::NewFile::default(),
            &mut &b"pending"[..],
        )?;
        fs.commit()
    });
    let img = d.path().join("dirty.img");
    for how in ["drop", "rollback"] {
        std::fs::write(&img, &dirty).unwrap();
        let mut fs = Filesystem::open(&img, &opts).unwrap();
        assert!(fs.needs_recovery());
        fs.begin_undoable();
        let root = fs.root();
        fs.remove_tree(root, b"big").unwrap();
        assert!(fs.has_intermediate_commits());
        if how == "drop" {
            drop(fs);
            assert!(std::fs::read(&img).unwrap() == dirty, "the image changed");
            continue;
        }
        fs.rollback().unwrap();
        assert!(fs.resolve("/big/d00/f000", false).is_ok());
        assert!(
            fs.resolve("/x", false).is_ok(),
            "the replay is staged again"
        );
        fs.commit().unwrap();
        drop(fs);
        common::fsck_clean(&img);
        let fs = Filesystem::open(&img, &OpenOptions::read_only()).unwrap();
        assert!(!fs.needs_recovery());
        assert!(fs.resolve("/big/d39/f099", false).is_ok());
        assert!(fs.resolve("/x", false).is_ok());
    }
}

/// SIGINT (or SIGTERM) in the middle of a change that commits in steps on
/// an image edited in place: the engine stops before its next write, the
/// intermediate commits are put back (the image byte for byte as before,
/// one line on stderr saying so), and the process ends by that signal.
#[test]
fn signal_during_a_change_in_steps_puts_it_back() {
    use std::os::unix::process::ExitStatusExt;
    require_e2fsprogs!();
    for sig in ["INT", "TERM"] {
        // A signal that comes after the last point where the engine looks
        // lets the change finish (exit 0, the change complete): try again.
        let mut stopped = false;
        for _attempt in 0..5 {
            let (_d, img) = journal_tree("24M", 80, 8);
            let before = std::fs::read(&img).unwrap();
            let mtime0 = std::fs::metadata(&img).unwrap().modified().unwrap();
            let mut child = Command::new(common::bin())
                .args(["rm", img.to_str().unwrap(), "/big", "-r"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The first intermediate commit changes the file's mtime: the
            // signal then comes while the change is half done.
            let started = std::time::Instant::now();
            let mut sent = false;
            while started.elapsed() < std::time::Duration::from_secs(60) {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if std::fs::metadata(&img).unwrap().modified().unwrap() != mtime0 {
                    Command::new("kill")
                        .args([&format!("-{sig}"), &child.id().to_string()])
                        .status()
                        .unwrap();
                    sent = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if !sent || out.status.success() {
                // Too late: the whole change is there.
                assert!(out.status.success(), "{:?}: {err}", out.status);
                common::fsck_clean(&img);
                let ls = common::run(&["ls", img.to_str().unwrap(), "/big"], None);
                assert!(!ls.status.success(), "/big is still there");
                continue;
            }
            let want = if sig == "INT" {
                libc_sig::INT
            } else {
                libc_sig::TERM
            };
            assert_eq!(out.status.signal(), Some(want), "{:?}: {err}", out.status);
            one_line(&err);
            assert!(err.contains("stopped by a signal"), "{err}");
            assert!(err.contains("put back"), "{err}");
            assert!(
                std::fs::read(&img).unwrap() == before,
                "the image changed: {err}"
            );
            common::fsck_clean(&img);
            stopped = true;
            break;
        }
        assert!(
            stopped,
            "SIG{sig} never came in the middle of the change in 5 tries"
        );
    }
}

/// Signal numbers (the same on every Linux architecture for these two).
mod libc_sig {
    pub const INT: i32 = 2;
    pub const TERM: i32 = 15;
}

/// Bytes this thread has read with read system calls so far (`rchar` of
/// /proc/thread-self/io: read and pread, from the page cache too). None
/// where the kernel does not say.
fn thread_rchar() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
}

/// A copy of `img` beside it whose zero blocks are holes.
fn sparse_copy(img: &Path, name: &str) -> std::path::PathBuf {
    let sparse = img.with_file_name(name);
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(img)
        .arg(&sparse)
        .status()
        .unwrap();
    assert!(st.success());
    sparse
}

#[test]
fn large_write_into_sparse_image_does_not_read_its_free_blocks() {
    require_e2fsprogs!();
    // Free blocks written before the commit point are saved first (so a
    // failure can put them back); where the image file has a hole they
    // are known to be zeros and are not read. Reading them made a 10 MiB
    // put into a fresh sparse copy a third slower than without the undo.
    // Size unknown: staged, written out past 8 MiB; size known (a host
    // file): written as it is read.
    let (_d, img) = ext3("128M", "4096");
    let size: usize = 24 << 20;
    let mut data = common::pseudo_random(size, 11);
    for b in data.iter_mut() {
        *b |= 1;
    }
    for known in [false, true] {
        let sparse = sparse_copy(&img, if known { "known.img" } else { "unknown.img" });
        let on_disk = std::fs::metadata(&sparse).unwrap().blocks() * 512;
        if on_disk > 16 << 20 {
            return common::skip("the host file system keeps no holes in the image copy");
        }
        let Some(r0) = thread_rchar() else {
            return common::skip("/proc/thread-self/io is not available");
        };
        let mut fs = Filesystem::open(&sparse, &OpenOptions::read_write()).unwrap();
        let attrs = ext3edit::NewFile {
            perm: 0o644,
            ..Default::default()
        };
        let root = fs.root();
        fs.create_file_sized(
            root,
            b"big",
            &attrs,
            &mut &data[..],
            known.then_some(size as u64),
        )
        .unwrap();
        fs.commit().unwrap();
        drop(fs);
        let read = thread_rchar().unwrap() - r0;
        assert!(
            read < 4 << 20,
            "size known: {known}: writing {size} bytes read {read} bytes of the image (its free blocks are holes)"
        );
        common::fsck_clean(&sparse);
        let fs = Filesystem::open(&sparse, &OpenOptions::read_only()).unwrap();
        let ino = fs.resolve("/big", true).unwrap();
        let mut back = Vec::new();
        let inode = fs.read_inode(ino).unwrap();
        fs.read_file(&inode, &mut back).unwrap();
        assert!(
            back == data,
            "size known: {known}: the file reads back different"
        );
    }
}

#[test]
fn abandoned_large_write_into_sparse_image_restores_the_holes() {
    require_e2fsprogs!();
    // The early writes went into holes; dropping the change punches them
    // again: the same bytes and the same allocation on the host. Size
    // unknown (staged, written out past 8 MiB) and known (written as read).
    let (_d, img) = ext3("128M", "4096");
    for known in [false, true] {
        let sparse = sparse_copy(&img, if known { "known.img" } else { "unknown.img" });
        let before = std::fs::read(&sparse).unwrap();
        let blocks = std::fs::metadata(&sparse).unwrap().blocks();
        let mut fs = Filesystem::open(&sparse, &OpenOptions::read_write()).unwrap();
        let attrs = ext3edit::NewFile {
            perm: 0o644,
            ..Default::default()
        };
        let root = fs.root();
        // 20 MiB of data, then the source fails.
        let mut src = NonZero::new(20 << 20).chain(Failing);
        let err = fs
            .create_file_sized(root, b"big", &attrs, &mut src, known.then_some(24 << 20))
            .unwrap_err();
        assert!(err.to_string().contains("source gave up"), "{err}");
        drop(fs);
        assert!(
            std::fs::read(&sparse).unwrap() == before,
            "size known: {known}: image bytes changed"
        );
        // The host file system may keep a block more for its own extent
        // tree of the file (a hole punched in the middle of an extent
        // splits it).
        let now = std::fs::metadata(&sparse).unwrap().blocks();
        assert!(
            now <= blocks + 128,
            "size known: {known}: the 20 MiB written early stayed allocated on the host: {blocks} -> {now} sectors"
        );
    }
}

/// A reader whose every read fails.
struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("source gave up"))
    }
}

#[test]
fn large_host_file_goes_to_the_image_without_staging() {
    require_e2fsprogs!();
    // A host file's size is known: past 8 MiB its blocks are written to
    // the image from the read buffer as they come, not copied into staged
    // blocks first (8 MiB of them, a page fault each, before they went out
    // early anyway). The process then stays far below the staging limit.
    let (_d, img) = ext3("128M", "4096");
    let i = img.to_str().unwrap();
    let src = img.with_file_name("src");
    let mut data = common::pseudo_random(32 << 20, 21);
    for b in data.iter_mut() {
        *b |= 1;
    }
    std::fs::write(&src, &data).unwrap();
    let (code, err, _, rss) = run_measured(
        &["put", i, src.to_str().unwrap(), "/f", "--no-sync"],
        None,
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        rss < 13 * 1024,
        "put of a 32 MiB host file: peak RSS {rss} KiB"
    );
    common::fsck_clean(&img);
    let (code, err, out, _) = run_measured(&["get", i, "/f", "-"], None, None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, data.len() as u64);
    let back = img.with_file_name("back");
    common::ok(&img, "get", &["/f", back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the file reads back different"
    );
}
