//! Robustness over the e2fsprogs regression-test corpus: every image (most of
//! them deliberately corrupted) goes through the read-only commands of the
//! real binary. Nothing may panic, hang, die by a signal or change the image;
//! a failure is one clean `ext3edit: ` line with exit 1.
//!
//! The corpus lives outside the repository (../shared/corpus/e2fsprogs); the
//! test prints SKIP and passes when it is absent.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Kill an invocation that runs longer than this.
const TIME_LIMIT: Duration = Duration::from_secs(20);
/// At most this many `get`s per image.
const MAX_GETS: usize = 200;
/// At most this many of them compared with `debugfs cat` (clean images only).
const MAX_COMPARE: usize = 50;

/// The superblock's needs_recovery flag (incompat 0x4).
fn needs_recovery(img: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut b = [0u8; 4];
    std::fs::File::open(img)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(1024 + 0x60))?;
            f.read_exact(&mut b)
        })
        .is_ok()
        && u32::from_le_bytes(b) & 4 != 0
}

/// A file's content as debugfs reads it.
fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat \"{path}\"")])
        .arg(img)
        .stderr(Stdio::null())
        .output();
    out.map(|o| o.stdout).unwrap_or_default()
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/e2fsprogs"
    ))
}

/// One image of the corpus: test directory and file name inside it.
struct Job {
    test: String,
    file: String,
    path: PathBuf,
}

/// What one run of the binary did.
struct Outcome {
    /// Exit code, or None for a signal / timeout.
    code: Option<i32>,
    timed_out: bool,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
}

/// Run the binary with a deadline. stdout/stderr go to files in `scratch`
/// (no pipe to drain, so a huge listing cannot deadlock us).
fn run_limited(args: &[&str], scratch: &Path) -> Outcome {
    let out_p = scratch.join("stdout");
    let err_p = scratch.join("stderr");
    let out_f = File::create(&out_p).unwrap();
    let err_f = File::create(&err_p).unwrap();
    let start = Instant::now();
    let mut child = Command::new(common::bin())
        .args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .stdout(out_f)
        .stderr(err_f)
        .spawn()
        .expect("spawn ext3edit");
    let mut nap = Duration::from_micros(200);
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break (Some(st), false);
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let stdout = std::fs::read(&out_p).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&std::fs::read(&err_p).unwrap_or_default()).into_owned();
    Outcome {
        code: status.and_then(|s| s.code()),
        timed_out,
        stdout,
        stderr,
        elapsed,
    }
}

/// The rules every invocation must follow; returns a problem description.
fn judge(args: &[&str], o: &Outcome) -> Option<String> {
    let cmd = args.join(" ");
    let first = o.stderr.lines().next().unwrap_or("").to_string();
    if o.timed_out {
        return Some(format!(
            "`{cmd}`: still running after {TIME_LIMIT:?}, killed"
        ));
    }
    if o.stderr.contains("panicked") {
        return Some(format!("`{cmd}`: panicked: {}", o.stderr.trim()));
    }
    match o.code {
        Some(0) | Some(1) => {}
        Some(c) => return Some(format!("`{cmd}`: exit code {c}: {}", o.stderr.trim())),
        None => return Some(format!("`{cmd}`: killed by a signal: {}", o.stderr.trim())),
    }
    if o.code == Some(1) {
        let lines: Vec<&str> = o.stderr.lines().collect();
        if args.contains(&"-R") && lines.len() > 1 {
            // `ls -R` lists what it can (like ls -R of coreutils): one line per
            // directory it could not list, then a summary line with the count.
            return judge_partial_listing(&cmd, &lines);
        }
        if lines.len() != 1 || !lines[0].starts_with("ext3edit: ") {
            return Some(format!(
                "`{cmd}`: failure is not one `ext3edit: ` line: {:?}",
                o.stderr
            ));
        }
        if lines[0].trim() == "ext3edit:" {
            return Some(format!("`{cmd}`: empty error message"));
        }
    } else if let Some(l) = o.stderr.lines().find(|l| !l.starts_with("ext3edit: ")) {
        // Warnings on success are allowed, but only in the tool's own format.
        return Some(format!(
            "`{cmd}`: stray stderr line {l:?} (first: {first:?})"
        ));
    }
    None
}

/// A partial `ls -R`: every line is `ext3edit: PATH: problem`, and the last
/// one says how many directories could not be listed, which must equal the
/// number of lines before it.
fn judge_partial_listing(cmd: &str, lines: &[&str]) -> Option<String> {
    if let Some(l) = lines
        .iter()
        .find(|l| !l.starts_with("ext3edit: ") || l.trim() == "ext3edit:")
    {
        return Some(format!("`{cmd}`: stray stderr line {l:?}"));
    }
    let last = lines[lines.len() - 1].trim_start_matches("ext3edit: ");
    let n = lines.len() - 1;
    let want = if n == 1 {
        "1 directory could not be listed".to_string()
    } else {
        format!("{n} directories could not be listed")
    };
    if last != want {
        return Some(format!(
            "`{cmd}`: {n} per-directory error line(s) but the summary says {last:?}"
        ));
    }
    if let Some(l) = lines[..n]
        .iter()
        .find(|l| !l.trim_start_matches("ext3edit: ").starts_with('/'))
    {
        return Some(format!(
            "`{cmd}`: per-directory error does not name its path: {l:?}"
        ));
    }
    None
}

/// Decompress (or copy) one corpus image.
fn load(job: &Job) -> std::io::Result<Vec<u8>> {
    let f = File::open(&job.path)?;
    let mut v = Vec::new();
    if job.file.ends_with(".gz") {
        flate2::read::GzDecoder::new(f).read_to_end(&mut v)?;
    } else if job.file.ends_with(".bz2") {
        bzip2::read::BzDecoder::new(f).read_to_end(&mut v)?;
    } else {
        std::io::BufReader::new(f).read_to_end(&mut v)?;
    }
    Ok(v)
}

/// Write `data` to `path` as a sparse file (runs of zero blocks are skipped).
fn write_sparse(path: &Path, data: &[u8]) {
    let mut f = File::create(path).unwrap();
    const CH: usize = 64 * 1024;
    let mut pos = 0usize;
    while pos < data.len() {
        let end = (pos + CH).min(data.len());
        let chunk = &data[pos..end];
        if chunk.iter().any(|&b| b != 0) {
            f.seek(SeekFrom::Start(pos as u64)).unwrap();
            f.write_all(chunk).unwrap();
        }
        pos = end;
    }
    f.set_len(data.len() as u64).unwrap();
}

/// Images that e2fsck -fn calls clean but that ext3edit cannot read yet,
/// with the reason. They are exempt only from the "clean images must list"
/// rule; every other rule still applies. (Empty: keep it that way.)
const KNOWN_BUGS: &[(&str, &str)] = &[];

/// Clean images that once failed, checked on their own.
const FIXED_BUGS: &[(&str, &str)] = &[(
    "f_bigalloc_symlink_with_xattr",
    "bigalloc with 1 KiB blocks: group descriptors were read from block 1 (the superblock) instead of block 2",
)];

/// (test, image_file) -> fsck_fn_class, from MANIFEST.tsv. Only rows whose
/// superblock facts came from the primary superblock count: where e2fsck
/// fell back to a backup superblock (sb_info_source dumpe2fs_backup_sb=N),
/// "clean" says nothing about the primary one that ext3edit reads.
fn manifest(dir: &Path) -> HashMap<(String, String), String> {
    let mut m = HashMap::new();
    let Ok(text) = std::fs::read_to_string(dir.join("MANIFEST.tsv")) else {
        return m;
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(ct), Some(cf), Some(cc), Some(cs)) = (
        col("test"),
        col("image_file"),
        col("fsck_fn_class"),
        col("sb_info_source"),
    ) else {
        panic!("MANIFEST.tsv lacks the test/image_file/fsck_fn_class/sb_info_source columns: {header:?}");
    };
    for l in lines {
        let c: Vec<&str> = l.split('\t').collect();
        if c.len() > ct.max(cf).max(cc).max(cs) {
            let class = if c[cs] == "dumpe2fs" {
                c[cc].to_string()
            } else {
                format!("{} (via {})", c[cc], c[cs])
            };
            m.insert((c[ct].to_string(), c[cf].to_string()), class);
        }
    }
    m
}

fn jobs(dir: &Path, notes: &mut Vec<String>) -> Vec<Job> {
    let mut tests: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    tests.sort();
    let mut v = Vec::new();
    for t in tests {
        let test = t.file_name().unwrap().to_string_lossy().into_owned();
        for file in ["image.gz", "image.bz2", "image"] {
            let p = t.join(file);
            if p.is_file() {
                v.push(Job {
                    test: test.clone(),
                    file: file.to_string(),
                    path: p,
                });
            }
        }
        if t.join("image.tar.bz2").is_file() {
            notes.push(format!(
                "{test}/image.tar.bz2: skipped (filesystem + external journal in a tar)"
            ));
        }
    }
    v
}

/// Per-image result.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    invocations: usize,
    gets: usize,
    compared: usize,
    slowest: (Duration, String),
}

fn check_image(job: &Job, class: Option<&str>, scratch: &Path, rep: &mut Report) {
    let name = format!("{}/{}", job.test, job.file);
    let data = match load(job) {
        Ok(d) => d,
        Err(e) => {
            rep.failures.push(format!("{name}: cannot decompress: {e}"));
            return;
        }
    };
    let img = scratch.join("image.img");
    write_sparse(&img, &data);
    let imgs = img.to_str().unwrap();
    let out_file = scratch.join("got");
    let outs = out_file.to_str().unwrap();

    let mut fail = |msg: String| rep.failures.push(format!("{name}: {msg}"));
    let mut invocations = 0;
    let mut slowest = (Duration::ZERO, String::new());
    let mut go = |args: &[&str], fail: &mut dyn FnMut(String)| -> Outcome {
        let o = run_limited(args, scratch);
        invocations += 1;
        if o.elapsed > slowest.0 {
            slowest = (o.elapsed, format!("{name}: {}", args.join(" ")));
        }
        if let Some(p) = judge(args, &o) {
            fail(p);
        }
        o
    };

    let info = go(&["info", imgs], &mut fail);
    let info_json = go(&["info", imgs, "--json"], &mut fail);
    if info_json.code == Some(0) {
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&info_json.stdout) {
            fail(format!("info --json: stdout is not JSON: {e}"));
        }
    }
    if info.code != info_json.code {
        fail(format!(
            "info exits {:?} but info --json exits {:?}",
            info.code, info_json.code
        ));
    }
    let ls = go(&["ls", imgs, "/", "-R"], &mut fail);
    let ls_json = go(&["ls", imgs, "/", "-R", "--json"], &mut fail);
    let mut files: Vec<(String, u64)> = Vec::new();
    if ls_json.code == Some(0) {
        match serde_json::from_slice::<serde_json::Value>(&ls_json.stdout) {
            Ok(serde_json::Value::Array(items)) => {
                for it in items {
                    if it["type"] == "file" {
                        // A corrupt name may hold a NUL, which no argv can carry.
                        if let Some(p) = it["path"].as_str().filter(|p| !p.contains('\0')) {
                            files.push((p.to_string(), it["size"].as_u64().unwrap_or(u64::MAX)));
                        }
                    }
                }
            }
            Ok(other) => fail(format!(
                "ls -R --json: not an array: {:.200}",
                other.to_string()
            )),
            Err(e) => fail(format!("ls -R --json: stdout is not JSON: {e}")),
        }
    }
    if ls.code != ls_json.code {
        fail(format!(
            "ls -R exits {:?} but ls -R --json exits {:?}",
            ls.code, ls_json.code
        ));
    }
    let known_bug = KNOWN_BUGS.iter().any(|(t, _)| *t == job.test);
    if matches!(class, Some("clean")) && !known_bug {
        if info.code != Some(0) {
            fail(format!(
                "e2fsck calls it clean but `info` exits {:?}: {}",
                info.code,
                info.stderr.trim()
            ));
        }
        if ls.code != Some(0) {
            fail(format!(
                "e2fsck calls it clean but `ls / -R` exits {:?}: {}",
                ls.code,
                ls.stderr.trim()
            ));
        }
    }
    let mut gets = 0;
    // debugfs reads the blocks as they are on disk; ext3edit reads through a
    // journal that needs recovery, so only images without one compare.
    let is_clean =
        matches!(class, Some("clean")) && common::have_e2fsprogs() && !needs_recovery(&img);
    let mut compared = 0;
    for (p, size) in files.iter().take(MAX_GETS) {
        let _ = std::fs::remove_file(&out_file);
        let o = go(&["get", imgs, p, outs], &mut fail);
        gets += 1;
        if o.code == Some(0) {
            match std::fs::metadata(&out_file) {
                Ok(m) if m.len() == *size => {
                    // On images e2fsck calls clean, the content must be what
                    // debugfs reads too.
                    if is_clean
                        && compared < MAX_COMPARE
                        && !p.contains(['"', '\\', '\n', '\u{fffd}'])
                    {
                        compared += 1;
                        let want = debugfs_cat(&img, p);
                        let got = std::fs::read(&out_file).unwrap_or_default();
                        if got != want {
                            fail(format!(
                                "get {p}: content differs from debugfs cat ({} vs {} bytes)",
                                got.len(),
                                want.len()
                            ));
                        }
                    }
                }
                Ok(m) => fail(format!(
                    "get {p}: wrote {} bytes, ls says size {size}",
                    m.len()
                )),
                Err(e) => fail(format!("get {p}: exit 0 but no output file: {e}")),
            }
        }
    }
    let _ = std::fs::remove_file(&out_file);

    match std::fs::read(&img) {
        Ok(after) if after == data => {}
        Ok(after) => {
            let first = data.iter().zip(&after).position(|(a, b)| a != b);
            fail(format!(
                "read-only commands changed the image (len {} -> {}, first difference at byte {first:?})",
                data.len(),
                after.len()
            ))
        }
        Err(e) => fail(format!("cannot read the image back: {e}")),
    }
    let _ = std::fs::remove_file(&img);
    rep.invocations += invocations;
    rep.gets += gets;
    rep.compared += compared;
    if slowest.0 > rep.slowest.0 {
        rep.slowest = slowest;
    }
}

#[test]
fn corpus_read_only_commands_never_misbehave() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        common::skip(&format!("corpus folder {} is absent", dir.display()));
        return;
    }
    let start = Instant::now();
    let classes = manifest(&dir);
    let mut notes = Vec::new();
    let jobs = jobs(&dir, &mut notes);
    assert!(
        jobs.len() > 100,
        "expected the ~220 corpus images, found {}",
        jobs.len()
    );
    let clean = jobs
        .iter()
        .filter(|j| {
            classes
                .get(&(j.test.clone(), j.file.clone()))
                .is_some_and(|c| c == "clean")
        })
        .count();
    assert!(
        clean > 20,
        "MANIFEST.tsv should mark dozens of images clean, found {clean}"
    );

    let next = AtomicUsize::new(0);
    let total = Mutex::new(Report::default());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let scratch = tempfile::tempdir().unwrap();
                let mut rep = Report::default();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let class = classes
                        .get(&(job.test.clone(), job.file.clone()))
                        .map(|s| s.as_str());
                    check_image(job, class, scratch.path(), &mut rep);
                }
                let mut t = total.lock().unwrap();
                t.failures.extend(rep.failures);
                t.invocations += rep.invocations;
                t.gets += rep.gets;
                t.compared += rep.compared;
                if rep.slowest.0 > t.slowest.0 {
                    t.slowest = rep.slowest;
                }
            });
        }
    });
    let mut rep = total.into_inner().unwrap();
    rep.failures.sort();
    for n in &notes {
        eprintln!("note: {n}");
    }
    eprintln!(
        "corpus: {} images ({clean} clean per MANIFEST), {} invocations ({} gets, {} compared with debugfs) in {:.1?}; slowest {:.2?} ({})",
        jobs.len(),
        rep.invocations,
        rep.gets,
        rep.compared,
        start.elapsed(),
        rep.slowest.0,
        rep.slowest.1
    );
    assert!(
        rep.failures.is_empty(),
        "{} problem(s):\n{}",
        rep.failures.len(),
        rep.failures.join("\n")
    );
}

/// Open the one corpus image of `test` (first of image.gz / image.bz2 / image).
fn corpus_image(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = corpus_dir().join(test);
    for file in ["image.gz", "image.bz2", "image"] {
        let p = dir.join(file);
        if p.is_file() {
            let data = load(&Job {
                test: test.into(),
                file: file.into(),
                path: p,
            })
            .unwrap();
            let t = tempfile::tempdir().unwrap();
            let img = t.path().join("image.img");
            write_sparse(&img, &data);
            return Some((t, img));
        }
    }
    None
}

/// The images of FIXED_BUGS: e2fsck -fn calls them clean, so `ls / -R` must work.
#[test]
fn fixed_bug_clean_images_list() {
    for (test, why) in FIXED_BUGS {
        let Some((_t, img)) = corpus_image(test) else {
            common::skip(&format!("corpus image {test} is absent"));
            continue;
        };
        let o = common::run(&["ls", img.to_str().unwrap(), "/", "-R"], None);
        assert!(
            o.status.success(),
            "{test} ({why}): {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The same bug without the corpus: a fresh bigalloc image with 1 KiB blocks.
#[test]
fn bigalloc_1k_blocks_lists() {
    require_e2fsprogs!();
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("ba.img");
    let out = Command::new("mke2fs")
        .args([
            "-q", "-F", "-t", "ext4", "-O", "bigalloc", "-b", "1024", "-C", "16384",
        ])
        .arg(&img)
        .arg("8M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = common::bytes(&img);
    let o = common::run(&["ls", img.to_str().unwrap(), "/"], None);
    assert!(
        o.status.success(),
        "ls: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("lost+found"));
    assert_eq!(common::bytes(&img), before);
}
