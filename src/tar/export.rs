//! `export-tar`: a tree of the image as a PAX tar stream.
//!
//! Members come depth first, each directory's entries sorted by name
//! (as `tar --sort=name`), a directory before its content; names are
//! relative to the image root (`./` for the root itself, `etc/`,
//! `etc/passwd`). Each member carries its numeric owner, mode, mtime,
//! atime and ctime (PAX records, with nanoseconds), extended attributes
//! as `SCHILY.xattr.NAME` (sorted by name) and POSIX ACLs as
//! `SCHILY.acl.access` / `SCHILY.acl.default` text with numeric ids; the
//! second and later names of a multiply linked inode are hard link
//! members naming the first. A file with holes is a PAX 1.0 sparse
//! member (GNU tar's `--sparse-version=1.0`: `GNU.sparse.major=1`,
//! `minor=0`, `name`, `realsize`, the map in decimal lines at the start
//! of the data, the name in the ustar header `DIR/GNUSparseFile.0/BASE`
//! for readers that know nothing of it); unwritten extents count as
//! holes. Sockets have no tar form and are skipped with a warning.
//! Nothing depends on the clock: the same image gives the same bytes.

use std::collections::HashMap;
use std::io::Write;

use super::acl;
use super::write::{Header, TarWriter};
use crate::error::{Error, Result};
use crate::fs::Filesystem;
use crate::inode::{Ino, Inode};
use crate::layout::FileType;

/// What an export wrote.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// Members written.
    pub members: u64,
    /// File data bytes.
    pub bytes: u64,
    /// Warnings (skipped sockets).
    pub warnings: Vec<String>,
}

/// Write the tree at `ino` (named `path`, absolute, in the image) to `out`.
pub fn export<W: Write>(
    fs: &Filesystem,
    ino: Ino,
    path: &str,
    out: W,
) -> Result<(W, ExportReport)> {
    let mut tar = TarWriter::new(out);
    let mut report = ExportReport::default();
    let mut links: HashMap<Ino, Vec<u8>> = HashMap::new();
    let rel = path.trim_matches('/').as_bytes().to_vec();
    // (inode, member name); a stack of directories still to list.
    let mut stack: Vec<(Ino, Vec<u8>)> = vec![(ino, rel)];
    // Directories listed: one met twice is a loop or a second name.
    let mut seen: std::collections::HashSet<Ino> = Default::default();
    while let Some((ino, name)) = stack.pop() {
        let inode = fs.read_inode(ino)?;
        let shown = if name.is_empty() {
            "/".to_string()
        } else {
            format!("/{}", String::from_utf8_lossy(&name))
        };
        let at = |e: Error| e.at(&shown);
        if inode.is_dir() {
            let mut member = if name.is_empty() {
                b".".to_vec()
            } else {
                name.clone()
            };
            member.push(b'/');
            member_of(fs, &mut tar, &inode, member, b'5', Vec::new(), 0).map_err(at)?;
            report.members += 1;
            if !seen.insert(ino) {
                return Err(Error::corrupt(format!(
                    "{shown}: directory inode {ino} is reached twice (a loop or a second name)"
                )));
            }
            let mut ents: Vec<(Vec<u8>, Ino)> = fs
                .read_dir(&inode)
                .map_err(at)?
                .into_iter()
                .filter(|e| e.ino != 0 && e.name != b"." && e.name != b"..")
                .map(|e| (e.name, e.ino))
                .collect();
            // A name the format forbids would be another path in the
            // archive ("../../x" escapes where it is extracted).
            if let Some((n, _)) = ents
                .iter()
                .find(|(n, _)| n.contains(&b'/') || n.contains(&0) || n.is_empty())
            {
                return Err(Error::corrupt(format!(
                    "{shown}: directory inode {ino} has an entry named {:?}, with '/' or NUL (or empty): not a name a directory can hold",
                    String::from_utf8_lossy(n)
                )));
            }
            ents.sort();
            for w in ents.windows(2) {
                if w[0].0 == w[1].0 {
                    return Err(Error::corrupt(format!(
                        "{shown}: directory inode {ino} names {:?} twice",
                        String::from_utf8_lossy(&w[0].0)
                    )));
                }
            }
            // Pushed in reverse: popped in name order.
            for (n, child) in ents.into_iter().rev() {
                let mut p = name.clone();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(&n);
                stack.push((child, p));
            }
            continue;
        }
        if inode.links() > 1 {
            if let Some(first) = links.get(&ino) {
                member_of(fs, &mut tar, &inode, name.clone(), b'1', first.clone(), 0)
                    .map_err(at)?;
                report.members += 1;
                continue;
            }
            links.insert(ino, name.clone());
        }
        match inode.file_type() {
            FileType::Regular if sparse_map(fs, &inode).map_err(at)?.is_some() => {
                let map = sparse_map(fs, &inode).map_err(at)?.unwrap_or_default();
                let size = fs.checked_size(&inode).map_err(at)?;
                write_sparse(fs, &mut tar, &inode, &name, &map, size).map_err(at)?;
                report.bytes += size;
            }
            FileType::Regular => {
                let size = fs.checked_size(&inode).map_err(at)?;
                member_of(fs, &mut tar, &inode, name.clone(), b'0', Vec::new(), size)
                    .map_err(at)?;
                let mut sink = Sink {
                    tar: &mut tar,
                    n: 0,
                    err: None,
                };
                let r = fs.read_file(&inode, &mut sink);
                if let Some(e) = sink.err.take() {
                    return Err(e);
                }
                r.map_err(at)?;
                if sink.n != size {
                    return Err(Error::corrupt(format!(
                        "{shown}: inode {ino} read {} bytes, its size is {size}",
                        sink.n
                    )));
                }
                tar.end_data(size)?;
                report.bytes += size;
            }
            FileType::Symlink => {
                let t = fs.read_link(&inode).map_err(at)?;
                member_of(fs, &mut tar, &inode, name.clone(), b'2', t, 0).map_err(at)?;
            }
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo => {
                let t = match inode.file_type() {
                    FileType::CharDevice => b'3',
                    FileType::BlockDevice => b'4',
                    _ => b'6',
                };
                member_of(fs, &mut tar, &inode, name.clone(), t, Vec::new(), 0).map_err(at)?;
            }
            other => {
                report.warnings.push(format!(
                    "{shown}: a {} has no tar form; skipped",
                    other.name()
                ));
                links.remove(&ino);
                continue;
            }
        }
        report.members += 1;
    }
    let out = tar.finish()?;
    Ok((out, report))
}

/// File data into the archive, an error kept for the caller.
struct Sink<'a, W: Write> {
    tar: &'a mut TarWriter<W>,
    n: u64,
    err: Option<Error>,
}

impl<W: Write> Write for Sink<'_, W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self.tar.data(b) {
            Ok(()) => {
                self.n += b.len() as u64;
                Ok(b.len())
            }
            Err(e) => {
                let msg = e.to_string();
                self.err = Some(e);
                Err(std::io::Error::other(msg))
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The header of one member, with its attributes.
fn member_of<W: Write>(
    fs: &Filesystem,
    tar: &mut TarWriter<W>,
    inode: &Inode,
    path: Vec<u8>,
    typeflag: u8,
    link: Vec<u8>,
    size: u64,
) -> Result<()> {
    member_with(fs, tar, inode, path, typeflag, link, size, Vec::new())
}

/// [`member_of`] with `extra` records first.
#[allow(clippy::too_many_arguments)]
fn member_with<W: Write>(
    fs: &Filesystem,
    tar: &mut TarWriter<W>,
    inode: &Inode,
    path: Vec<u8>,
    typeflag: u8,
    link: Vec<u8>,
    size: u64,
    extra: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    let mut records = extra;
    if typeflag != b'1' {
        let mut xs = fs.xattrs(inode)?;
        xs.sort_by(|a, b| a.name.cmp(&b.name));
        for x in xs {
            match x.name.as_str() {
                "system.data" => {}
                "system.posix_acl_access" | "system.posix_acl_default" => {
                    let a = acl::from_disk(&x.value)
                        .map_err(|e| e.at(&format!("inode {}", inode.ino)))?;
                    let key = if x.name.ends_with("access") {
                        "SCHILY.acl.access"
                    } else {
                        "SCHILY.acl.default"
                    };
                    records.push((key.as_bytes().to_vec(), acl::to_text(&a).into_bytes()));
                }
                n => {
                    let mut k = b"SCHILY.xattr.".to_vec();
                    k.extend_from_slice(n.as_bytes());
                    records.push((k, x.value));
                }
            }
        }
        // ACL records after the attributes, access before default.
        records.sort_by_key(|(k, _)| k.starts_with(b"SCHILY.acl."));
    }
    let dev = if typeflag == b'3' || typeflag == b'4' {
        inode.rdev()
    } else {
        (0, 0)
    };
    let h = Header {
        path,
        typeflag,
        link,
        mode: inode.perm(),
        uid: inode.uid(),
        gid: inode.gid(),
        size,
        mtime: inode.mtime(),
        atime: Some(inode.atime()),
        ctime: Some(inode.ctime()),
        dev,
        records,
    };
    tar.header(&h)
}

/// The data regions of a regular file with holes, as (offset, length)
/// in bytes, with GNU's closing (size, 0) when it ends in a hole; None
/// when it has no hole (or keeps its data inline).
fn sparse_map(fs: &Filesystem, inode: &Inode) -> Result<Option<Vec<(u64, u64)>>> {
    if inode.has_flag(crate::layout::iflag::INLINE_DATA) {
        return Ok(None);
    }
    let size = fs.checked_size(inode)?;
    let bs = fs.block_size() as u64;
    let nblocks = size.div_ceil(bs);
    let mut map: Vec<(u64, u64)> = Vec::new();
    let mut mapped = 0u64;
    for r in fs.block_runs(inode, nblocks)? {
        if r.uninit || r.lblk >= nblocks {
            continue;
        }
        let off = r.lblk * bs;
        let len = (r.len.min(nblocks - r.lblk) * bs).min(size - off);
        mapped += r.len.min(nblocks - r.lblk);
        match map.last_mut() {
            Some(last) if last.0 + last.1 == off => last.1 += len,
            _ => map.push((off, len)),
        }
    }
    if mapped == nblocks {
        return Ok(None);
    }
    if map.last().is_none_or(|&(o, n)| o + n < size) {
        map.push((size, 0));
    }
    Ok(Some(map))
}

/// A PAX 1.0 sparse member.
fn write_sparse<W: Write>(
    fs: &Filesystem,
    tar: &mut TarWriter<W>,
    inode: &Inode,
    name: &[u8],
    map: &[(u64, u64)],
    size: u64,
) -> Result<()> {
    let mut text = format!("{}\n", map.len());
    for (o, n) in map {
        text.push_str(&format!("{o}\n{n}\n"));
    }
    let mut text = text.into_bytes();
    text.resize(text.len().div_ceil(512) * 512, 0);
    let data: u64 = map.iter().map(|r| r.1).sum();
    let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
        Some(i) => (&name[..=i], &name[i + 1..]),
        None => (&b""[..], name),
    };
    let fake = [dir, b"GNUSparseFile.0/", base].concat();
    let extra = vec![
        (b"GNU.sparse.major".to_vec(), b"1".to_vec()),
        (b"GNU.sparse.minor".to_vec(), b"0".to_vec()),
        (b"GNU.sparse.name".to_vec(), name.to_vec()),
        (
            b"GNU.sparse.realsize".to_vec(),
            size.to_string().into_bytes(),
        ),
    ];
    member_with(
        fs,
        tar,
        inode,
        fake,
        b'0',
        Vec::new(),
        text.len() as u64 + data,
        extra,
    )?;
    tar.data(&text)?;
    let mut buf = Vec::new();
    for &(o, n) in map {
        let mut done = 0u64;
        while done < n {
            let k = (n - done).min(1 << 20);
            buf.clear();
            fs.read_file_range(inode, o + done, k, &mut buf)?;
            if buf.len() as u64 != k {
                return Err(Error::corrupt(format!(
                    "inode {}: read {} bytes at offset {}, wanted {k}",
                    inode.ino,
                    buf.len(),
                    o + done
                )));
            }
            tar.data(&buf)?;
            done += k;
        }
    }
    tar.end_data(text.len() as u64 + data)
}
