//! The short run of the mutation fuzzer (tools/fuzz/) in the test suite:
//! a fixed seed, a fixed number of mutants of the e2fsprogs corpus and of
//! generated images, every command of the harness on each; any finding
//! fails the test and is listed with its reproduction. Without
//! ../shared/corpus it says so and fuzzes the generated images only.
//! The long run is documented in docs/RELIABILITY.md.

#[path = "../tools/fuzz/mod.rs"]
mod fuzz;

mod common;

use std::time::Duration;

use fuzz::exec::{judge, Kind, Limits, Outcome};

/// Mutants in the short run: about 40 s of CPU on two workers.
const SHORT_RUN: u64 = 60;

#[test]
fn short_fuzz_run_finds_nothing() {
    require_e2fsprogs!();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = fuzz::Config::new(common::bin(), out.path().to_path_buf());
    cfg.seed = 20261130;
    cfg.iterations = Some(SHORT_RUN);
    cfg.workers = 2;
    cfg.corpus = common::corpus();
    if cfg.corpus.is_none() {
        eprintln!(
            "SKIP (part): ../shared/corpus/e2fsprogs is absent: fuzzing generated images only"
        );
    }
    let sum = fuzz::run(&cfg);
    eprintln!("{}", sum.line());
    assert_eq!(sum.mutants, SHORT_RUN);
    assert_eq!(sum.runs, SHORT_RUN * 15, "every command on every mutant");
    assert!(sum.fsck_runs > 0, "no write succeeded on any mutant");
    assert_eq!(sum.harness_errors, 0, "the harness failed");
    let list: Vec<String> = sum
        .findings
        .iter()
        .map(|f| {
            format!(
                "{}: `ext3edit {}` on a mutant of {} (seed {}, iteration {}; `cargo run --example fuzz -- --seed {} --replay {}`): {}\n  mutations: {}",
                f.kind.name(),
                f.args,
                f.image,
                cfg.seed,
                f.iteration,
                cfg.seed,
                f.iteration,
                f.message,
                f.mutations.join("; ")
            )
        })
        .collect();
    assert!(list.is_empty(), "{}", list.join("\n"));
}

fn outcome(code: Option<i32>, signal: Option<i32>, stderr: &str) -> Outcome {
    Outcome {
        code,
        signal,
        timed_out: false,
        stderr: stderr.into(),
        stdout: String::new(),
    }
}

/// The judge tells each way of ending apart, and passes what is fine.
#[test]
fn the_judge_classifies_each_ending() {
    let lim = Limits {
        time: Duration::from_secs(1),
        memory: 1 << 30,
        file_size: 1 << 30,
    };
    let kind = |o: &Outcome| judge(o, &lim).map(|(k, _)| k);
    let panic = "thread 'main' panicked at src/dir.rs:10:5:\nattempt to add with overflow\n";
    assert_eq!(kind(&outcome(Some(101), None, panic)), Some(Kind::Panic));
    assert_eq!(
        judge(&outcome(Some(101), None, panic), &lim).unwrap().1,
        "panicked at src/dir.rs:10:5: attempt to add with overflow"
    );
    assert_eq!(kind(&outcome(None, Some(11), "")), Some(Kind::Signal));
    let oom = "memory allocation of 8589934592 bytes failed\n";
    assert_eq!(kind(&outcome(None, Some(6), oom)), Some(Kind::Memory));
    let mut slow = outcome(None, Some(9), "");
    slow.timed_out = true;
    assert_eq!(kind(&slow), Some(Kind::Timeout));
    assert_eq!(kind(&outcome(Some(3), None, "")), Some(Kind::ExitCode));
    assert_eq!(
        kind(&outcome(Some(1), None, "ext3edit: a\next3edit: b\n")),
        Some(Kind::ErrorLines)
    );
    assert_eq!(kind(&outcome(Some(1), None, "")), Some(Kind::ErrorLines));
    assert_eq!(
        kind(&outcome(Some(1), None, "oops\n")),
        Some(Kind::ErrorLines)
    );
    // Fine: success, one error line after warnings, a partial ls -R.
    assert_eq!(
        kind(&outcome(Some(0), None, "ext3edit: warning: x\n")),
        None
    );
    let one =
        "ext3edit: note: img: the journal needs recovery\next3edit: img: corrupt image: inode 12\n";
    assert_eq!(kind(&outcome(Some(1), None, one)), None);
    let partial = "ext3edit: /a: corrupt image: inode 12\next3edit: /b: bad\next3edit: 2 directories could not be listed\n";
    assert_eq!(kind(&outcome(Some(1), None, partial)), None);
    let wrong_count = "ext3edit: /a: bad\next3edit: 2 directories could not be listed\n";
    assert_eq!(
        kind(&outcome(Some(1), None, wrong_count)),
        Some(Kind::ErrorLines)
    );
}

/// Mutants are a function of (seed, iteration); the regions cover the
/// structures of a generated image.
#[test]
fn mutants_reproduce_and_hit_metadata() {
    require_e2fsprogs!();
    let img = common::mkfs(&common::Cfg {
        fstype: "ext3",
        block: 1024,
        inode: 256,
        dir_index: true,
        size_kib: 4096,
    });
    let big = img.dir.path().join("big");
    std::fs::write(&big, common::pseudo_random(300 * 1024, 7)).unwrap();
    common::ok(&img.path, "put", &[big.to_str().unwrap(), "/big"]);
    let base = std::fs::read(&img.path).unwrap();
    let mut kinds: Vec<&str> = fuzz::mutate::regions(&base)
        .iter()
        .map(|r| r.what)
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    for k in [
        "superblock",
        "group descriptors",
        "block bitmap",
        "inode bitmap",
        "inode table",
        "inode",
        "directory block",
        "indirect block",
        "double indirect block",
        "journal superblock",
        "journal block",
    ] {
        assert!(kinds.contains(&k), "no {k} region in {kinds:?}");
    }
    let make = |seed, i| {
        let mut b = base.clone();
        let mut rng = fuzz::mutate::Rng::new(seed, i);
        let m = fuzz::mutate::mutate(&mut b, &mut rng);
        (b, m)
    };
    let (a, ma) = make(5, 17);
    let (b, mb) = make(5, 17);
    assert_eq!(ma, mb);
    assert!(a == b, "same seed and iteration, different mutants");
    assert!(a != base, "the mutant is the seed: {ma:?}");
    let (c, _) = make(5, 18);
    assert!(c != a, "two iterations made the same mutant");
}

/// End to end: a binary that panics on everything gives one panic finding
/// per command, written to the output directory with its mutant.
#[test]
fn a_panicking_binary_is_reported() {
    require_e2fsprogs!();
    let out = tempfile::tempdir().unwrap();
    let fake = out.path().join("fake-ext3edit");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"thread 'main' panicked at src/main.rs:1:1:\" >&2\necho boom >&2\nexit 101\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = fuzz::Config::new(fake, out.path().join("findings"));
    cfg.iterations = Some(2);
    cfg.workers = 1;
    let sum = fuzz::run(&cfg);
    assert_eq!(sum.of_kind(Kind::Panic), (15, 30), "{}", sum.line());
    let f = &sum.findings[0];
    assert!(f.dir.join("mutant.img.gz").exists());
    let text = std::fs::read_to_string(f.dir.join("finding.txt")).unwrap();
    assert!(text.contains("src/main.rs:1:1: boom"), "{text}");
    let tsv = std::fs::read_to_string(out.path().join("findings/findings.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), 16);
}

/// The long run's finding (seed 7, iteration 244: a dirty journal whose
/// block map is damaged past the replayed transaction): every write used
/// to replay first and then fail, leaving the image changed. Found on the
/// code before the commit-path checks; kept as a regression test. The
/// seed image is generated, so this needs no corpus.
#[test]
fn long_run_finding_seed7_iteration244_stays_fixed() {
    require_e2fsprogs!();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = fuzz::Config::new(common::bin(), out.path().to_path_buf());
    cfg.seed = 7;
    cfg.corpus = common::corpus();
    let sum = fuzz::replay(&cfg, 244);
    let list: Vec<String> = sum
        .findings
        .iter()
        .map(|f| format!("{}: `ext3edit {}`: {}", f.kind.name(), f.args, f.message))
        .collect();
    assert!(list.is_empty(), "{}", list.join("\n"));
    assert!(sum.runs > 0);
}
