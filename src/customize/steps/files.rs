//! File steps: write, append a line, upload, mkdir, resolv.conf.

use std::path::Path;

use crate::customize::plan::{Attrs, Content, Plan};
use crate::customize::text::{self, read_text, View};
use crate::error::{Error, Result};

/// `--write PATH:TEXT`: the file's whole content (new files: 0644 root).
pub fn write(plan: &mut Plan, path: &str, text: &str) -> Result<()> {
    plan.write(
        path,
        Content::Bytes(text.as_bytes().to_vec()),
        Attrs::root(0o644),
    )
}

/// `--append-line PATH:TEXT`: TEXT as a new last line (a missing final
/// newline is added first; a missing file is created).
pub fn append_line(plan: &mut Plan, path: &str, text: &str) -> Result<()> {
    let orig = read_text(plan, path)?.unwrap_or_default();
    let mut t = orig.clone();
    if !t.is_empty() && !t.ends_with('\n') {
        t.push('\n');
    }
    t.push_str(text);
    t.push('\n');
    plan.write(
        path,
        Content::Bytes(text::edited(&orig, &t)),
        Attrs::root(0o644),
    )
}

/// `--upload SRC:DEST`: a host file into the image (DEST an existing
/// directory receives SRC's name); new files take SRC's permission bits.
pub fn upload(plan: &mut Plan, src: &Path, dest: &str) -> Result<()> {
    let dest = if plan.meta(dest, true)?.is_some_and(|m| m.is_dir()) {
        let name = src
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{} has no file name", src.display())))?;
        format!("{}/{}", dest.trim_end_matches('/'), name.to_string_lossy())
    } else {
        dest.to_string()
    };
    upload_to(plan, src, &dest)
}

/// Upload `src` to exactly `dest`.
pub fn upload_to(plan: &mut Plan, src: &Path, dest: &str) -> Result<()> {
    let m =
        std::fs::metadata(src).map_err(|e| Error::io(format!("reading {}", src.display()), e))?;
    if !m.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not a regular file",
            src.display()
        )));
    }
    #[cfg(unix)]
    let perm = {
        use std::os::unix::fs::PermissionsExt;
        (m.permissions().mode() & 0o7777) as u16
    };
    #[cfg(not(unix))]
    let perm = 0o644;
    plan.write(dest, Content::Host(src.to_path_buf()), Attrs::root(perm))
}

/// `--mkdir PATH`: like mkdir -p, new directories 0755 root.
pub fn mkdir(plan: &mut Plan, path: &str) -> Result<()> {
    plan.mkdir_p(path, Attrs::root(0o755))
}
