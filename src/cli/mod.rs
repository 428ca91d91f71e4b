//! The `ext3edit` command line, split by command group: [`inspect`]
//! (read-only commands), [`copy`] (get and put), [`edit`] (the commands
//! that change one entry), [`journal`], [`mkfs`] (a new image). [`image`] opens the image and
//! commits, [`args`] parses what the commands share, [`report`] prints.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ext3edit::Error;

mod args;
mod copy;
mod edit;
mod image;
mod inspect;
mod journal;
mod mkfs;
mod pack;
mod report;
mod signal;
mod tar;
mod vm;
mod zero;

use args::{ImageOpts, WriteOpts};

const AFTER_HELP: &str = "\
Paths inside the image are absolute (/etc/hosts). Nothing needs root: the
image is an ordinary file. Every change is staged in memory and written at
the end, so a failed command leaves the image as it was; on ext3 the write
goes through the journal, so even a crash leaves the old or the new image.
An image whose journal needs recovery is read through the journal, and
replayed before any change (see `ext3edit journal --help`).

Commands that change the image take --output NEW (keep IMAGE, write the
result to NEW), --no-journal and --no-sync; read-only commands never
change the file. IMAGE may be a whole disk with an MBR or GPT partition
table: the only ext2/3/4 partition is used, or the one --partition N
names (`ext3edit info DISK` lists them).

Exit status: 0 success, 1 the operation failed (the message says why and
where), 2 usage error.

Examples:
  ext3edit info disk.ext3
  ext3edit ls disk.ext3 /etc -l
  ext3edit put disk.ext3 resolv.conf /etc/resolv.conf
  echo 'nameserver 1.1.1.1' | ext3edit put disk.ext3 - /etc/resolv.conf
  ext3edit put disk.ext3 ./overlay/ / -r
  ext3edit get disk.ext3 /etc/passwd passwd.txt
  ext3edit mkdir disk.ext3 /root/.ssh -p --mode 700
  ext3edit chown disk.ext3 500:500 /home/alice
  ext3edit rm disk.ext3 /tmp/cache -r
  ext3edit put disk.img --partition 2 hosts /etc/hosts
  ext3edit zero-free disk.ext3 && ext3edit pack disk.ext3 disk.ext3.bz2
  ext3edit mkfs new.ext4 2G            (a new image, as mke2fs makes it)

Timestamps default to now, or to $SOURCE_DATE_EPOCH when it is set
(reproducible builds); --mtime overrides.";

/// Edit ext2/ext3/ext4 filesystem images as plain files: no root, no mount.
#[derive(Parser)]
#[command(name = "ext3edit", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// Write options given before the command name (older form; they apply
    /// only to commands that change the image).
    #[command(flatten)]
    global: WriteOpts,
    #[command(flatten)]
    image: ImageOpts,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(flatten)]
    Inspect(inspect::InspectCmd),
    #[command(flatten)]
    Copy(copy::CopyCmd),
    #[command(flatten)]
    Edit(edit::EditCmd),
    #[command(flatten)]
    Vm(vm::VmCmd),
    #[command(flatten)]
    Pack(pack::PackCmd),
    #[command(flatten)]
    Zero(zero::ZeroCmd),
    #[command(flatten)]
    Mkfs(mkfs::MkfsCmd),
    #[command(flatten)]
    Tar(tar::TarCmd),
    /// Inspect or replay the ext3/ext4 journal.
    #[command(subcommand)]
    Journal(journal::JournalCmd),
}

/// An error with the exit code it deserves.
pub struct Fail {
    code: u8,
    msg: String,
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail {
            code: 1,
            msg: e.to_string(),
        }
    }
}

/// A usage error (exit status 2).
pub fn usage(msg: impl Into<String>) -> Fail {
    Fail {
        code: 2,
        msg: msg.into(),
    }
}

/// A failure (exit status 1) with its message as given.
pub fn failure(msg: impl Into<String>) -> Fail {
    Fail {
        code: 1,
        msg: msg.into(),
    }
}

/// Print one line on stderr: every error, warning and note of the binary
/// goes through here, never through
/// `eprintln!`, which panics when stderr cannot be written (`2>/dev/full`,
/// a closed pipe). A line that cannot be written is lost; the exit status
/// still says what happened. (`clippy::print_stderr` and `print_stdout`
/// are denied in src/main.rs, so clippy flags any new `eprintln!`.)
///
/// The line is escaped ([`report::line_shown`]): a name or an account field
/// from the image it quotes cannot drive the terminal or break the line.
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let line = line.to_string();
    let _ = writeln!(std::io::stderr().lock(), "{}", report::line_shown(&line));
}

/// What every command returns.
pub type R<T> = std::result::Result<T, Fail>;

/// `dir/name` without doubling the slash.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn run(cli: Cli) -> R<()> {
    image::set_partition(cli.image.partition);
    image::set_entry(cli.image.entry.clone());
    let g = &cli.global;
    let read_only = |what: &str| -> R<()> {
        if g.output.is_some() || g.no_journal || g.no_sync || g.format.is_some() {
            return Err(usage(format!(
                "{what} does not change the image: --output, --format, --no-journal and --no-sync apply only to commands that do"
            )));
        }
        Ok(())
    };
    match cli.cmd {
        Cmd::Inspect(c) => {
            read_only("this command")?;
            inspect::run(c)
        }
        Cmd::Copy(c) => copy::run(c, g),
        Cmd::Pack(c) => {
            read_only("pack and unpack write OUT; they")?;
            pack::run(c)
        }
        Cmd::Edit(c) => edit::run(c, g),
        Cmd::Zero(c) => zero::run(c, g),
        Cmd::Mkfs(c) => {
            read_only("mkfs makes a new IMAGE; it")?;
            mkfs::run(c)
        }
        Cmd::Tar(c) => tar::run(c, g),
        Cmd::Vm(c) => vm::run(c, g),
        Cmd::Journal(c) => journal::run(c, g),
    }
}

/// Parse the command line, run the command, print the one-line error.
pub fn main() -> ExitCode {
    // The safety net for a message written with a panicking macro
    // (`eprintln!`, `println!`) to a stream that cannot be written: no
    // panic message (it would go to the same stream), exit 1 below.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if panic_text(info.payload()).is_some_and(|m| m.starts_with("failed printing to std")) {
            return;
        }
        default_hook(info);
    }));
    let r = std::panic::catch_unwind(main_inner);
    // A failed command leaves no partial output behind.
    image::discard_output();
    match r {
        Ok(code) => code,
        Err(payload) => match panic_text(&*payload) {
            Some(m) if m.starts_with("failed printing to stdout") => {
                let why = m.split_once(": ").map_or("", |(_, w)| w);
                say(format_args!("ext3edit: writing output: {why}"));
                ExitCode::from(1)
            }
            Some(m) if m.starts_with("failed printing to stderr") => ExitCode::from(1),
            _ => std::panic::resume_unwind(payload),
        },
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// `Cli::try_parse`, without freeing the command tree and the matches
/// afterwards: the thousands of small allocations clap builds for every
/// subcommand cost more to free than the rest of a 1 KiB `put` costs to
/// run (docs/BENCHMARKS.md, "Start-up"); the process ends soon anyway.
fn parse_args() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    let r = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| {
            let cli = Cli::from_arg_matches_mut(&mut m);
            std::mem::forget(m);
            cli.map_err(|e| e.format(&mut Cli::command()))
        });
    std::mem::forget(cmd);
    r
}

fn main_inner() -> ExitCode {
    // Temporary files of compressed images go when a signal stops us too.
    ext3edit::container::on_new_temp(signal::remove_on_signal);
    // A file size limit (ulimit -f) makes writes fail instead of killing us.
    signal::ignore_file_size_limit();
    let cli = match parse_args() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // No command at all: the help, on stderr.
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            // One line: clap's first line, and where to look for more.
            let text = e.render().to_string();
            let msg: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty())
                .collect();
            let msg = msg.join(" ");
            let msg = msg.trim_start_matches("error: ");
            say(format_args!(
                "ext3edit: usage error: {msg} (see ext3edit --help)"
            ));
            return ExitCode::from(2);
        }
    };
    // Output still buffered in stdout is flushed here, so that a failure to
    // write it is reported (after main returns it would be lost silently).
    let r = run(cli).and_then(|()| {
        use std::io::Write;
        std::io::stdout()
            .flush()
            .map_err(|e| Error::io("writing output", e).into())
    });
    // A failed command leaves no partial output behind.
    image::discard_output();
    if r.is_err() && ext3edit::interrupt::requested() {
        // Stopped by a signal held back while the image was edited in
        // place: say what became of the change, then end by that signal.
        if let Err(f) = &r {
            say(format_args!("ext3edit: {}", f.msg.replace('\n', " ")));
        }
        signal::raise_deferred();
    }
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // A closed stdout (ext3edit get ... | head) is not an error.
            if f.msg.contains("Broken pipe") {
                return ExitCode::SUCCESS;
            }
            if f.msg.is_empty() {
                // The command already said why (check's report).
                return ExitCode::from(f.code);
            }
            let prefix = if f.code == 2 { "usage error: " } else { "" };
            say(format_args!(
                "ext3edit: {prefix}{}",
                f.msg.replace('\n', " ")
            ));
            ExitCode::from(f.code)
        }
    }
}
