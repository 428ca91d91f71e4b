//! `cargo run --example fuzz -- [--seconds N] [--iterations N] [--seed S]
//! [--out DIR] [--corpus DIR | --no-corpus] [--workers N] [--timeout S]
//! [--memory MIB] [--bin PATH] [--replay N]`
//!
//! The mutation fuzzer of tools/fuzz/mod.rs as a program: prints the
//! summary line and exits 1 when it found anything (2 on a usage error).

#[path = "mod.rs"]
mod fuzz;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: fuzz [--seconds N] [--iterations N] [--seed S] [--out DIR] \
[--corpus DIR | --no-corpus] [--workers N] [--timeout SECONDS] [--memory MIB] [--bin PATH] [--replay N]";

fn main() -> ExitCode {
    // target/<profile>/examples/fuzz -> target/<profile>/ext3edit
    let exe = std::env::current_exe().expect("own path");
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("ext3edit"))
        .unwrap_or_default();
    let mut cfg = fuzz::Config::new(bin, PathBuf::from("fuzz-findings"));
    cfg.progress = Some(Duration::from_secs(60));
    let default_corpus = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/e2fsprogs"
    ));
    cfg.corpus = default_corpus
        .join("MANIFEST.tsv")
        .exists()
        .then_some(default_corpus);
    let mut replay = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |what: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("fuzz: {a} needs {what}\n{USAGE}");
                std::process::exit(2)
            })
        };
        let num = |s: String| -> u64 {
            s.parse().unwrap_or_else(|_| {
                eprintln!("fuzz: not a number: {s:?}\n{USAGE}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--seconds" => cfg.seconds = Some(num(val("a number"))),
            "--iterations" => cfg.iterations = Some(num(val("a number"))),
            "--seed" => cfg.seed = num(val("a number")),
            "--out" => cfg.out = PathBuf::from(val("a directory")),
            "--corpus" => cfg.corpus = Some(PathBuf::from(val("a directory"))),
            "--no-corpus" => cfg.corpus = None,
            "--workers" => cfg.workers = num(val("a number")) as usize,
            "--timeout" => cfg.limits.time = Duration::from_secs(num(val("seconds"))),
            "--memory" => cfg.limits.memory = num(val("MiB")) << 20,
            "--bin" => cfg.bin = PathBuf::from(val("a path")),
            "--replay" => replay = Some(num(val("an iteration"))),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("fuzz: unknown argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if !cfg.bin.exists() {
        eprintln!(
            "fuzz: {} does not exist: build it first (cargo build), or pass --bin",
            cfg.bin.display()
        );
        return ExitCode::from(2);
    }
    if !fuzz::have_e2fsprogs() {
        eprintln!("fuzz: mke2fs, e2fsck and debugfs are needed");
        return ExitCode::from(2);
    }
    if cfg.corpus.is_none() {
        eprintln!("fuzz: no corpus (--no-corpus, or ../shared/corpus/e2fsprogs absent): generated images only");
    }
    let sum = match replay {
        Some(i) => fuzz::replay(&cfg, i),
        None => fuzz::run(&cfg),
    };
    for f in &sum.findings {
        println!(
            "{}: `ext3edit {}` on {} (iteration {}, {} runs): {}",
            f.kind.name(),
            f.args,
            f.image,
            f.iteration,
            f.count,
            f.message
        );
    }
    println!("{}", sum.line());
    if sum.findings.is_empty() && sum.harness_errors == 0 {
        ExitCode::SUCCESS
    } else {
        println!("findings in {}", cfg.out.display());
        ExitCode::FAILURE
    }
}
