//! The library's one error type.
//!
//! Every error says *what* went wrong and *where*: a path inside the image,
//! an inode number, a block number. The command-line front end prints
//! `Display` on one line, so messages never contain a newline.

use std::fmt;
use std::io;

/// Result alias used throughout the library.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while reading or editing an image.
#[derive(Debug)]
pub enum Error {
    /// An I/O error of the host (the image file, a host file, stdout...).
    Io {
        /// What we were doing, e.g. `reading image block 1234`.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The image contradicts itself or the format: names where.
    Corrupt(String),
    /// The image uses a feature this build cannot read or write.
    Unsupported(String),
    /// A path inside the image does not exist.
    NotFound(String),
    /// A path inside the image already exists.
    Exists(String),
    /// A path component is not a directory.
    NotADirectory(String),
    /// A directory was given where something else is needed.
    IsADirectory(String),
    /// A directory is not empty (rm without -r).
    NotEmpty(String),
    /// Not enough free blocks or inodes.
    NoSpace(String),
    /// A bad argument (mode, owner, name, size...).
    Invalid(String),
    /// The operation needs a writable image but it was opened read-only.
    ReadOnly(String),
}

impl Error {
    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }

    /// Wrap an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Prefix the message with a location, keeping the variant.
    pub fn at(self, place: &str) -> Self {
        match self {
            Error::Io { context, source } => Error::Io {
                context: format!("{place}: {context}"),
                source,
            },
            Error::Corrupt(m) => Error::Corrupt(format!("{place}: {m}")),
            Error::Unsupported(m) => Error::Unsupported(format!("{place}: {m}")),
            Error::NotFound(m) => Error::NotFound(format!("{place}: {m}")),
            Error::Exists(m) => Error::Exists(format!("{place}: {m}")),
            Error::NotADirectory(m) => Error::NotADirectory(format!("{place}: {m}")),
            Error::IsADirectory(m) => Error::IsADirectory(format!("{place}: {m}")),
            Error::NotEmpty(m) => Error::NotEmpty(format!("{place}: {m}")),
            Error::NoSpace(m) => Error::NoSpace(format!("{place}: {m}")),
            Error::Invalid(m) => Error::Invalid(format!("{place}: {m}")),
            Error::ReadOnly(m) => Error::ReadOnly(format!("{place}: {m}")),
        }
    }

    /// A short machine-readable kind, used by `--json` error output.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Corrupt(_) => "corrupt",
            Error::Unsupported(_) => "unsupported",
            Error::NotFound(_) => "not_found",
            Error::Exists(_) => "exists",
            Error::NotADirectory(_) => "not_a_directory",
            Error::IsADirectory(_) => "is_a_directory",
            Error::NotEmpty(_) => "not_empty",
            Error::NoSpace(_) => "no_space",
            Error::Invalid(_) => "invalid",
            Error::ReadOnly(_) => "read_only",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Error::Io { context, source } => return write!(f, "{context}: {source}"),
            Error::Corrupt(m) => return write!(f, "corrupt image: {m}"),
            Error::Unsupported(m) => return write!(f, "unsupported: {m}"),
            Error::NotFound(m) => return write!(f, "{m}: no such file or directory"),
            Error::Exists(m) => return write!(f, "{m}: already exists"),
            Error::NotADirectory(m) => return write!(f, "{m}: not a directory"),
            Error::IsADirectory(m) => return write!(f, "{m}: is a directory"),
            Error::NotEmpty(m) => return write!(f, "{m}: directory not empty"),
            Error::NoSpace(m) => return write!(f, "no space left in image: {m}"),
            Error::Invalid(m) => m,
            Error::ReadOnly(m) => m,
        };
        // Keep every message on one line.
        f.write_str(&s.replace('\n', " "))
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
