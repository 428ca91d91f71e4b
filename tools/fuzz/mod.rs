//! A mutation fuzzer for ext3edit: it mutates the metadata of seed images
//! (the e2fsprogs corpus and images made here with mke2fs), runs the real
//! binary on each mutant with read and write commands under a time limit
//! and a memory cap, and records every way a run goes wrong:
//!
//! - a panic, a death by a signal, a timeout, the memory cap hit;
//! - an exit code other than 0 and 1, or a failure (exit 1) whose error is
//!   not one `ext3edit: ` line (warnings and notes before it are fine);
//! - a read command that changed the image, or wrote on the host outside
//!   the `get` destination; a failed write that changed the image;
//! - a successful write that made an image `e2fsck -fn` calls clean
//!   (after e2fsck's own journal replay, when it needs one) unclean.
//!
//! Every mutant is a function of (seed, iteration) and the seed images:
//! `--replay N` runs one iteration again and says what each command did.
//! Findings are deduplicated by (kind, command, first line of the message
//! with its numbers blanked; a panic keeps its source location) and
//! written to the output directory: the mutant (gzip), the command and
//! the message.
//!
//! Used by `cargo run --example fuzz` (tools/fuzz/main.rs) and by the
//! short run of the test suite (tests/fuzz_short.rs).
#![allow(dead_code)]

pub mod exec;
pub mod mutate;
pub mod seeds;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use exec::{Kind, Limits};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The ext3edit binary.
    pub bin: PathBuf,
    /// ../shared/corpus/e2fsprogs (the directory with MANIFEST.tsv), if any.
    pub corpus: Option<PathBuf>,
    /// Where findings go.
    pub out: PathBuf,
    pub seed: u64,
    /// Stop after this many mutants ...
    pub iterations: Option<u64>,
    /// ... or after this many seconds, whichever comes first.
    pub seconds: Option<u64>,
    pub workers: usize,
    pub limits: Limits,
    /// Print a progress line this often (None: quiet).
    pub progress: Option<Duration>,
}

impl Config {
    pub fn new(bin: PathBuf, out: PathBuf) -> Config {
        Config {
            bin,
            corpus: None,
            out,
            seed: 1,
            iterations: None,
            seconds: None,
            workers: 2,
            limits: Limits {
                time: Duration::from_secs(10),
                memory: 1 << 30,
                file_size: 1 << 30,
            },
            progress: None,
        }
    }
}

/// One distinct finding.
#[derive(Clone, Debug)]
pub struct Finding {
    pub kind: Kind,
    pub command: &'static str,
    pub message: String,
    pub image: String,
    pub iteration: u64,
    pub args: String,
    pub mutations: Vec<String>,
    pub stderr: String,
    /// How many runs hit it.
    pub count: u64,
    /// Its directory under the output directory.
    pub dir: PathBuf,
}

/// Figures of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub seed: u64,
    pub generated: usize,
    pub corpus: usize,
    pub mutants: u64,
    pub runs: u64,
    pub fsck_runs: u64,
    /// Iterations the harness itself failed on (should be 0).
    pub harness_errors: u64,
    pub findings: Vec<Finding>,
    pub elapsed: Duration,
}

impl Summary {
    /// Distinct findings of `kind` and how many runs hit them.
    pub fn of_kind(&self, kind: Kind) -> (usize, u64) {
        let f: Vec<&Finding> = self.findings.iter().filter(|f| f.kind == kind).collect();
        (f.len(), f.iter().map(|f| f.count).sum())
    }

    pub fn line(&self) -> String {
        let kinds: Vec<String> = Kind::ALL
            .iter()
            .map(|&k| {
                let (d, n) = self.of_kind(k);
                if n > d as u64 {
                    format!("{} {d} ({n} runs)", k.name())
                } else {
                    format!("{} {d}", k.name())
                }
            })
            .collect();
        format!(
            "fuzz: seed {}: {} seed images ({} generated, {} corpus), {} mutants, {} command runs, {} e2fsck runs, {:.0} s: {} findings [{}]{}",
            self.seed,
            self.generated + self.corpus,
            self.generated,
            self.corpus,
            self.mutants,
            self.runs,
            self.fsck_runs,
            self.elapsed.as_secs_f64(),
            self.findings.len(),
            kinds.join(", "),
            if self.harness_errors > 0 {
                format!(", {} HARNESS ERRORS", self.harness_errors)
            } else {
                String::new()
            }
        )
    }
}

/// One command run on every mutant. "IMG" stands for the mutant.
struct Spec {
    name: &'static str,
    write: bool,
    args: Vec<String>,
}

fn commands(t: &seeds::Targets) -> Vec<Spec> {
    let (dir, file) = (t.dir.as_str(), t.file.as_str());
    let r = |name, args: &[&str]| Spec {
        name,
        write: false,
        args: args.iter().map(|s| s.to_string()).collect(),
    };
    let w = |name, args: &[&str]| Spec {
        name,
        write: true,
        args: args
            .iter()
            .map(|s| s.to_string())
            .chain(["--no-sync".to_string()])
            .collect(),
    };
    let in_dir = |n: &str| format!("{dir}/{n}");
    vec![
        r("info", &["info", "IMG"]),
        r("ls -R", &["ls", "IMG", "/", "-R", "-l", "-a"]),
        r("stat", &["stat", "IMG", file]),
        r("get", &["get", "IMG", file, "dest/file"]),
        r("get -r", &["get", "IMG", "/", "dest/tree", "-r"]),
        r("journal info", &["journal", "info", "IMG"]),
        w("put", &["put", "IMG", "src/small", "/fuzz-new"]),
        w("put big", &["put", "IMG", "src/big", &in_dir("fuzz-big")]),
        w("put overwrite", &["put", "IMG", "src/small", file]),
        w("mkdir -p", &["mkdir", "IMG", &in_dir("fuzz-d/e"), "-p"]),
        w("rm -r", &["rm", "IMG", dir, "-r"]),
        w("mv", &["mv", "IMG", file, &in_dir("fuzz-moved")]),
        w("chmod", &["chmod", "IMG", "600", file]),
        w("ln -s", &["ln", "IMG", "/fuzz-target", "/fuzz-link", "-s"]),
        w("journal replay", &["journal", "replay", "IMG"]),
    ]
}

struct Ctx<'a> {
    cfg: &'a Config,
    seeds: Vec<seeds::Seed>,
    generated: usize,
    work: PathBuf,
    runs: AtomicU64,
    fsck_runs: AtomicU64,
    mutants: AtomicU64,
    harness_errors: AtomicU64,
    findings: Mutex<BTreeMap<(Kind, &'static str, String), Finding>>,
}

/// Run the fuzzer; findings are in the summary and under `cfg.out`.
pub fn run(cfg: &Config) -> Summary {
    let start = Instant::now();
    let (ctx, _tmp) = setup(cfg);
    let next = AtomicU64::new(0);
    let deadline = cfg.seconds.map(|s| start + Duration::from_secs(s));
    let limit = cfg
        .iterations
        .unwrap_or(if cfg.seconds.is_some() { u64::MAX } else { 100 });
    std::thread::scope(|s| {
        for w in 0..cfg.workers.max(1) {
            let (ctx, next) = (&ctx, &next);
            s.spawn(move || {
                let wd = worker_dir(&ctx.work, w);
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= limit {
                        break;
                    }
                    // A bug of the harness costs one iteration, not the run.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        iteration(ctx, &wd, i, false)
                    }));
                    if r.is_err() {
                        eprintln!("fuzz: harness error in iteration {i} (see the panic above)");
                        ctx.harness_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        if let Some(every) = cfg.progress {
            let ctx = &ctx;
            let next = &next;
            s.spawn(move || {
                let mut last = Instant::now();
                while next.load(Ordering::Relaxed) < limit
                    && deadline.is_none_or(|d| Instant::now() < d)
                {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= every {
                        last = Instant::now();
                        eprintln!("{}", summary(ctx, start).line());
                    }
                }
            });
        }
    });
    let sum = summary(&ctx, start);
    write_report(cfg, &sum);
    sum
}

/// Run iteration `i` alone and say what each command did.
pub fn replay(cfg: &Config, i: u64) -> Summary {
    let start = Instant::now();
    let (ctx, _tmp) = setup(cfg);
    let wd = worker_dir(&ctx.work, 0);
    iteration(&ctx, &wd, i, true);
    let sum = summary(&ctx, start);
    write_report(cfg, &sum);
    sum
}

fn summary(ctx: &Ctx, start: Instant) -> Summary {
    Summary {
        seed: ctx.cfg.seed,
        generated: ctx.generated,
        corpus: ctx.seeds.len() - ctx.generated,
        mutants: ctx.mutants.load(Ordering::Relaxed),
        runs: ctx.runs.load(Ordering::Relaxed),
        fsck_runs: ctx.fsck_runs.load(Ordering::Relaxed),
        harness_errors: ctx.harness_errors.load(Ordering::Relaxed),
        findings: ctx.findings.lock().unwrap().values().cloned().collect(),
        elapsed: start.elapsed(),
    }
}

fn setup(cfg: &Config) -> (Ctx<'_>, tempfile::TempDir) {
    std::fs::create_dir_all(&cfg.out).expect("create the output directory");
    // In memory when there is room (a container's /dev/shm may have 64
    // MiB): the runs write images and trees all the time.
    let shm = Path::new("/dev/shm");
    let base = if free_bytes(shm) >= 4 << 30 {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let tmp = tempfile::Builder::new()
        .prefix("ext3edit-fuzz-")
        .tempdir_in(base)
        .expect("temporary directory");
    let work = tmp.path().to_path_buf();
    let gen_dir = work.join("generated");
    std::fs::create_dir_all(&gen_dir).unwrap();
    let mut all = seeds::generate(&cfg.bin, &gen_dir);
    let generated = all.len();
    if let Some(c) = &cfg.corpus {
        let cache = work.join("corpus");
        std::fs::create_dir_all(&cache).unwrap();
        all.extend(seeds::corpus(c, &cache));
    }
    let ctx = Ctx {
        cfg,
        seeds: all,
        generated,
        work,
        runs: AtomicU64::new(0),
        fsck_runs: AtomicU64::new(0),
        mutants: AtomicU64::new(0),
        harness_errors: AtomicU64::new(0),
        findings: Mutex::new(BTreeMap::new()),
    };
    (ctx, tmp)
}

/// Free bytes of the filesystem holding `p` (0 if unknown).
fn free_bytes(p: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: a NUL-terminated path and a buffer of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: statvfs succeeded and filled it.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // u32 on some targets
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    free
}

fn worker_dir(work: &Path, w: usize) -> PathBuf {
    let d = work.join(format!("w{w}"));
    std::fs::create_dir_all(d.join("src")).unwrap();
    std::fs::create_dir_all(d.join("dest")).unwrap();
    std::fs::write(d.join("src/small"), b"written by the fuzzer\n".repeat(100)).unwrap();
    std::fs::write(d.join("src/big"), seeds::pseudo_random(150 * 1024, 9)).unwrap();
    std::fs::write(d.join("canary"), b"must not change\n").unwrap();
    d
}

/// Half the mutants come from the generated images (they hold every kind
/// of structure and are clean), half from the corpus.
fn pick<'a>(ctx: &'a Ctx, rng: &mut mutate::Rng) -> &'a seeds::Seed {
    let corpus = ctx.seeds.len() - ctx.generated;
    let i = if corpus == 0 || rng.below(2) == 0 {
        rng.below(ctx.generated as u64) as usize
    } else {
        ctx.generated + rng.below(corpus as u64) as usize
    };
    &ctx.seeds[i]
}

fn iteration(ctx: &Ctx, wd: &Path, i: u64, verbose: bool) {
    let cfg = ctx.cfg;
    let mut rng = mutate::Rng::new(cfg.seed, i);
    let seed = pick(ctx, &mut rng);
    let mut img = seed.bytes();
    let mutations = mutate::mutate(&mut img, &mut rng);
    let targets = seed.targets(&cfg.bin, wd).clone();
    ctx.mutants.fetch_add(1, Ordering::Relaxed);
    if verbose {
        println!("iteration {i}: image {} ({} bytes)", seed.name, img.len());
        for m in &mutations {
            println!("  mutation: {m}");
        }
        let p = cfg.out.join(format!("replay-{i}.img"));
        seeds::write_sparse(&p, &img);
        println!("  mutant written to {}", p.display());
    }
    let m_img = wd.join("m.img");
    let report = |kind: Kind, spec: &Spec, msg: String, stderr: &str| {
        record(ctx, &img, seed, i, &mutations, kind, spec, msg, stderr);
    };
    let specs = commands(&targets);
    seeds::write_sparse(&m_img, &img);
    let mut ok_writes: Vec<(&Spec, PathBuf)> = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        if spec.write {
            seeds::write_sparse(&m_img, &img);
        }
        clear_dir(&wd.join("dest"));
        let before = snapshot(wd);
        let args: Vec<&OsStr> = spec
            .args
            .iter()
            .map(|a| {
                if a == "IMG" {
                    OsStr::new("m.img")
                } else {
                    OsStr::new(a)
                }
            })
            .collect();
        let t0 = Instant::now();
        let o = exec::run(&cfg.bin, &args, wd, &cfg.limits, &[]);
        let took = t0.elapsed();
        ctx.runs.fetch_add(1, Ordering::Relaxed);
        let judged = exec::judge(&o, &cfg.limits);
        if verbose {
            println!(
                "  {:<15} {:>5} ms exit {:?} signal {:?}{}: {}",
                spec.name,
                took.as_millis(),
                o.code,
                o.signal,
                if o.timed_out { " TIMEOUT" } else { "" },
                o.stderr.trim().replace('\n', " | ")
            );
        }
        if let Some((kind, msg)) = judged {
            report(kind, spec, msg, &o.stderr);
        }
        if snapshot(wd) != before {
            report(
                Kind::WroteOutside,
                spec,
                "the host directory around DEST changed".into(),
                &o.stderr,
            );
        }
        let changed = || std::fs::read(&m_img).map_or(true, |b| b != img);
        if !spec.write {
            if changed() {
                report(
                    Kind::ReadChanged,
                    spec,
                    "the image changed".into(),
                    &o.stderr,
                );
                seeds::write_sparse(&m_img, &img);
            }
        } else if o.code == Some(1) && changed() {
            let msg = format!(
                "failed ({}) but changed the image",
                exec::error_line(&o.stderr)
            );
            report(Kind::FailedWriteChanged, spec, msg, &o.stderr);
        } else if o.code == Some(0) && !o.timed_out {
            let kept = wd.join(format!("ok-{k}.img"));
            std::fs::rename(&m_img, &kept).unwrap();
            ok_writes.push((spec, kept));
        }
    }
    if !ok_writes.is_empty() && base_clean(ctx, wd, &img) {
        for (spec, p) in &ok_writes {
            if let Some(problem) = fsck(ctx, p) {
                if verbose {
                    println!("  {}: e2fsck -fn after it: {problem}", spec.name);
                }
                report(
                    Kind::UncleanAfterWrite,
                    spec,
                    format!("e2fsck -fn after it: {problem}"),
                    "",
                );
            }
        }
    }
    for (_, p) in ok_writes {
        let _ = std::fs::remove_file(p);
    }
}

/// Whether e2fsck calls the mutant clean. A mutant that needs recovery
/// must be clean as it is (e2fsck -fn skips the replay), and e2fsck's own
/// replay (`-E journal_only`) must do nothing but replay (exit 0) and leave
/// it clean: a write command replays first.
fn base_clean(ctx: &Ctx, wd: &Path, img: &[u8]) -> bool {
    let p = wd.join("base.img");
    seeds::write_sparse(&p, img);
    let mut clean = fsck(ctx, &p).is_none();
    if clean && mutate::needs_recovery(img) {
        let o = exec::run(
            Path::new("e2fsck"),
            &[
                "-y".as_ref(),
                "-E".as_ref(),
                "journal_only".as_ref(),
                p.as_os_str(),
            ],
            wd,
            &fsck_limits(ctx),
            &[],
        );
        ctx.fsck_runs.fetch_add(1, Ordering::Relaxed);
        clean = o.code == Some(0) && fsck(ctx, &p).is_none();
    }
    let _ = std::fs::remove_file(p);
    clean
}

/// e2fsck is the judge, not the suspect: generous caps.
fn fsck_limits(_ctx: &Ctx) -> Limits {
    Limits {
        time: Duration::from_secs(60),
        memory: 4 << 30,
        file_size: 1 << 40,
    }
}

/// None when `e2fsck -fn` exits 0; else its first complaint.
fn fsck(ctx: &Ctx, img: &Path) -> Option<String> {
    let dir = img.parent().unwrap();
    let o = exec::run(
        Path::new("e2fsck"),
        &["-fn".as_ref(), img.as_os_str()],
        dir,
        &fsck_limits(ctx),
        &[],
    );
    ctx.fsck_runs.fetch_add(1, Ordering::Relaxed);
    // e2fsck -n can decline a fix and still exit 0 (when it skipped a
    // journal replay): a declined fix is a complaint too.
    let declined = |l: &str| l.ends_with("? no") || l.ends_with("?  no");
    if o.code == Some(0) && !o.stdout.lines().any(|l| declined(l.trim())) {
        return None;
    }
    let complaint = o
        .stdout
        .lines()
        .chain(o.stderr.lines())
        .map(str::trim)
        .find(|l| {
            !l.is_empty()
                && !l.starts_with("Pass ")
                && !l.starts_with("e2fsck ")
                && !l.starts_with("Warning: skipping journal")
        })
        .unwrap_or("")
        .to_string();
    Some(format!("exit {:?}: {complaint}", o.code))
}

/// Names, kinds, sizes and times of everything in the worker directory
/// but the image, DEST and the captured output.
fn snapshot(wd: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>, bool)> {
    let mut v = Vec::new();
    let mut stack = vec![wd.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if d == wd
                && (name == "dest"
                    || name == "m.img"
                    || name.starts_with(".std")
                    || name.starts_with("ok-"))
            {
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            v.push((p, m.len(), m.modified().ok(), m.is_dir()));
        }
    }
    v.sort();
    v
}

/// Empty a directory, whatever modes `get` gave what it made inside.
fn clear_dir(d: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(rd) = std::fs::read_dir(d) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700));
            clear_dir(&p);
            let _ = std::fs::remove_dir(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Blank the numbers of a message, so that one bug on many inodes is one
/// finding; a panic keeps its source location.
fn dedup_key(kind: Kind, msg: &str) -> String {
    let first = exec::first_line(msg);
    let (keep, rest) = match (kind, first.find(".rs:")) {
        (Kind::Panic, Some(i)) => {
            let end = first[i..].find(": ").map_or(first.len(), |j| i + j);
            first.split_at(end)
        }
        _ => ("", first),
    };
    let mut out = keep.to_string();
    let mut in_num = false;
    for c in rest.chars() {
        if c.is_ascii_digit() {
            if !in_num {
                out.push('#');
            }
            in_num = true;
        } else {
            in_num = false;
            out.push(c);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn record(
    ctx: &Ctx,
    img: &[u8],
    seed: &seeds::Seed,
    i: u64,
    mutations: &[String],
    kind: Kind,
    spec: &Spec,
    message: String,
    stderr: &str,
) {
    let key = (kind, spec.name, dedup_key(kind, &message));
    let mut all = ctx.findings.lock().unwrap();
    if let Some(f) = all.get_mut(&key) {
        f.count += 1;
        return;
    }
    let n = all.len() + 1;
    let dir = ctx.cfg.out.join(format!(
        "{n:03}-{}-{}",
        kind.name(),
        spec.name.replace(' ', "-")
    ));
    let args = spec
        .args
        .iter()
        .map(|a| if a == "IMG" { "mutant.img" } else { a.as_str() })
        .collect::<Vec<_>>()
        .join(" ");
    let f = Finding {
        kind,
        command: spec.name,
        message,
        image: seed.name.clone(),
        iteration: i,
        args,
        mutations: mutations.to_vec(),
        stderr: stderr.trim().to_string(),
        count: 1,
        dir: dir.clone(),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let gz = std::fs::File::create(dir.join("mutant.img.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
    enc.write_all(img).unwrap();
    enc.finish().unwrap();
    let mut text = format!(
        "kind: {}\ncommand: ext3edit {}\nmessage: {}\nseed image: {}\nfuzzer seed: {}\niteration: {}\n",
        kind.name(),
        f.args,
        f.message,
        f.image,
        ctx.cfg.seed,
        i
    );
    for m in mutations {
        text.push_str(&format!("mutation: {m}\n"));
    }
    text.push_str(&format!(
        "reproduce: gunzip -k mutant.img.gz; mkdir -p dest src; put a text file in src/small \
         and 150 KiB in src/big; ext3edit {}\n\
         or: cargo run --example fuzz -- --seed {} --replay {i}{}\nstderr:\n{}\n",
        f.args,
        ctx.cfg.seed,
        if ctx.cfg.corpus.is_some() {
            ""
        } else {
            " --no-corpus"
        },
        f.stderr
    ));
    std::fs::write(dir.join("finding.txt"), text).unwrap();
    all.insert(key, f);
}

fn write_report(cfg: &Config, sum: &Summary) {
    let mut t = String::from("kind\tcommand\truns\timage\titeration\tmessage\tdir\n");
    for f in &sum.findings {
        t.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            f.kind.name(),
            f.command,
            f.count,
            f.image,
            f.iteration,
            f.message.replace(['\t', '\n'], " "),
            f.dir.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    let _ = std::fs::write(cfg.out.join("findings.tsv"), t);
    let _ = std::fs::write(cfg.out.join("summary.txt"), sum.line() + "\n");
}

/// Whether mke2fs, e2fsck and debugfs are here (the generated seeds and
/// the clean-image check need them).
pub fn have_e2fsprogs() -> bool {
    Command::new("mke2fs").arg("-V").output().is_ok()
}
