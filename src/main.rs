//! The `ext3edit` command line: see [`cli`].

// Messages go through `cli::say` (and stdout through checked writes): the
// printing macros panic when the stream cannot be written.
#![deny(clippy::print_stderr, clippy::print_stdout)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
