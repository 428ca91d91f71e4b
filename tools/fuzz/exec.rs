//! Running a program under a time limit and resource caps, and judging how
//! it ended.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Caps for every child.
#[derive(Clone, Debug)]
pub struct Limits {
    pub time: Duration,
    /// RLIMIT_AS, bytes.
    pub memory: u64,
    /// RLIMIT_FSIZE, bytes (SIGXFSZ is ignored, so a write past it fails
    /// with EFBIG instead of killing the child).
    pub file_size: u64,
}

/// How a child ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stderr: String,
    pub stdout: String,
}

/// Run `prog args` in `cwd` under `limits`; stdout and stderr go to files
/// in `cwd` (no pipe to drain, however much the child prints).
pub fn run(
    prog: &Path,
    args: &[&OsStr],
    cwd: &Path,
    limits: &Limits,
    env: &[(&str, &str)],
) -> Outcome {
    let out_path = cwd.join(".stdout");
    let err_path = cwd.join(".stderr");
    let out_f = std::fs::File::create(&out_path).expect("create stdout file");
    let err_f = std::fs::File::create(&err_path).expect("create stderr file");
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(cwd)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .stdout(out_f)
        .stderr(err_f);
    for (k, v) in env {
        cmd.env(k, v);
    }
    set_limits(&mut cmd, limits);
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot run {}: {e}", prog.display()),
    };
    let mut nap = Duration::from_micros(200);
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            break st;
        }
        if start.elapsed() > limits.time {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait for killed child");
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    let read = |p: &Path| {
        let b = std::fs::read(p).unwrap_or_default();
        // Keep at most 64 KiB: enough for any diagnosis.
        String::from_utf8_lossy(&b[..b.len().min(65536)]).into_owned()
    };
    Outcome {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        stderr: read(&err_path),
        stdout: read(&out_path),
    }
}

#[cfg(unix)]
fn set_limits(cmd: &mut Command, limits: &Limits) {
    use std::os::unix::process::CommandExt;
    let (mem, fsize) = (limits.memory, limits.file_size);
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only setrlimit and signal, which are async-signal-safe; it allocates
    // nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            let cap = |res, v: u64| {
                let lim = libc::rlimit {
                    rlim_cur: v as libc::rlim_t,
                    rlim_max: v as libc::rlim_t,
                };
                if libc::setrlimit(res, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            cap(libc::RLIMIT_AS, mem)?;
            cap(libc::RLIMIT_FSIZE, fsize)?;
            cap(libc::RLIMIT_CORE, 0)?;
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// What went wrong, if anything, judged from the exit alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Panic,
    Signal,
    Timeout,
    Memory,
    ExitCode,
    ErrorLines,
    FailedWriteChanged,
    ReadChanged,
    UncleanAfterWrite,
    WroteOutside,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Panic,
        Kind::Signal,
        Kind::Timeout,
        Kind::Memory,
        Kind::ExitCode,
        Kind::ErrorLines,
        Kind::FailedWriteChanged,
        Kind::ReadChanged,
        Kind::UncleanAfterWrite,
        Kind::WroteOutside,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Panic => "panic",
            Kind::Signal => "signal",
            Kind::Timeout => "timeout",
            Kind::Memory => "memory-cap",
            Kind::ExitCode => "exit-code",
            Kind::ErrorLines => "error-not-one-line",
            Kind::FailedWriteChanged => "failed-write-changed-image",
            Kind::ReadChanged => "read-changed-image",
            Kind::UncleanAfterWrite => "clean-made-unclean",
            Kind::WroteOutside => "wrote-outside-dest",
        }
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

/// Judge an ext3edit exit: a finding and its message, or None when it
/// ended as it should (0, or 1 with one `ext3edit: ` error line; warnings
/// and notes before it are allowed).
pub fn judge(o: &Outcome, limits: &Limits) -> Option<(Kind, String)> {
    let err = o.stderr.trim_end();
    if o.timed_out {
        return Some((Kind::Timeout, format!("no exit within {:?}", limits.time)));
    }
    if let Some(l) = err.lines().find(|l| l.contains("memory allocation of")) {
        return Some((Kind::Memory, l.trim().to_string()));
    }
    if let Some(i) = err.find("panicked at") {
        // "thread 'main' panicked at src/x.rs:1:2:\nmessage"
        let mut lines = err[i..].lines();
        let at = lines.next().unwrap_or("").trim_end_matches(':');
        let msg = lines.next().unwrap_or("");
        return Some((Kind::Panic, format!("{at}: {msg}")));
    }
    if let Some(s) = o.signal {
        let why = if err.contains("overflowed its stack") {
            " (stack overflow)"
        } else {
            ""
        };
        return Some((
            Kind::Signal,
            format!("killed by signal {s} ({}){why}", signal_name(s)),
        ));
    }
    match o.code {
        Some(0) => None,
        Some(101) => Some((Kind::Panic, format!("exit 101: {}", first_line(err)))),
        Some(1) => {
            let lines: Vec<&str> = err
                .lines()
                .filter(|l| {
                    !l.starts_with("ext3edit: warning: ") && !l.starts_with("ext3edit: note: ")
                })
                .collect();
            if lines.len() == 1 && lines[0].starts_with("ext3edit: ") || partial_listing(&lines) {
                None
            } else {
                Some((
                    Kind::ErrorLines,
                    format!("{} error lines: {}", lines.len(), lines.join(" | ")),
                ))
            }
        }
        c => Some((Kind::ExitCode, format!("exit {c:?}: {}", first_line(err)))),
    }
}

/// `ls -R` goes on past a directory it cannot read, like ls: one
/// `ext3edit: /PATH: problem` line per such directory, then
/// `ext3edit: N directories could not be listed` with the right N.
fn partial_listing(lines: &[&str]) -> bool {
    let Some((last, each)) = lines.split_last() else {
        return false;
    };
    let n = each.len();
    let want = if n == 1 {
        "ext3edit: 1 directory could not be listed".to_string()
    } else {
        format!("ext3edit: {n} directories could not be listed")
    };
    n > 0 && *last == want && each.iter().all(|l| l.starts_with("ext3edit: /"))
}

/// The error of a failed run: its last line (notes and warnings come
/// before it).
pub fn error_line(s: &str) -> &str {
    s.trim().lines().last().unwrap_or("")
}

pub fn first_line(s: &str) -> &str {
    s.trim().lines().next().unwrap_or("")
}
