//! Output of the read-only commands: info, ls, stat (text and JSON).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use ext3edit::container::partition::Table;
use ext3edit::dir::DirEntry;
use ext3edit::layout::{feature, FileType};
use ext3edit::{Error, Filesystem, Ino, Inode, Timestamp};
use serde_json::{json, Value};

use super::{join, R};

pub fn out(s: &str) -> R<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())
        .map_err(|e| Error::io("writing output", e))?;
    Ok(())
}

pub fn print_json(v: &Value) -> R<()> {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ))
}

fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// "YYYY-MM-DD HH:MM:SS" in UTC.
pub fn fmt_time(t: Timestamp) -> String {
    let days = t.secs.div_euclid(86400);
    let rem = t.secs.rem_euclid(86400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn mode_string(inode: &Inode) -> String {
    let m = inode.mode();
    let mut s = String::new();
    s.push(inode.file_type().letter());
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (b, c)) in bits.iter().enumerate() {
        let set = m & b != 0;
        let special = match i {
            2 => m & 0o4000 != 0,
            5 => m & 0o2000 != 0,
            8 => m & 0o1000 != 0,
            _ => false,
        };
        s.push(match (set, special, i) {
            (_, false, _) if set => *c,
            (false, false, _) => '-',
            (true, true, 8) => 't',
            (false, true, 8) => 'T',
            (true, true, _) => 's',
            (false, true, _) => 'S',
            _ => '-',
        });
    }
    s
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether text output escapes control characters (set once, at start).
static ESCAPE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Escape control characters in names, link targets and xattr values from
/// now on: when stdout is a terminal (as ls does) or when asked (`-b`).
pub fn set_escape(asked: bool) {
    use std::io::IsTerminal;
    let on = asked || std::io::stdout().is_terminal();
    ESCAPE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// `s` as shown to a person: with escaping on, control characters become
/// C escapes (`\n`, `\t`, `\033`, `\u{9b}`) and a backslash doubles, as
/// `ls -b` shows them, so a crafted name cannot drive the terminal.
pub fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    if !ESCAPE.load(std::sync::atomic::Ordering::Relaxed) {
        return std::borrow::Cow::Borrowed(s);
    }
    escape(s, true)
}

/// A line for stderr (an error, a warning, a note), always escaped: the
/// names, link targets and account fields it quotes come from the image,
/// and stderr may be a terminal. Control characters become C escapes as
/// in [`shown`] (so the line stays one line); backslashes are kept as they
/// are (they cannot drive a terminal, and messages quote them).
pub fn line_shown(s: &str) -> std::borrow::Cow<'_, str> {
    escape(s, false)
}

/// Control characters as C escapes (`\n`, `\t`, `\033`, `\u{9b}`), and
/// with `backslash` a backslash doubled.
fn escape(s: &str, backslash: bool) -> std::borrow::Cow<'_, str> {
    if !s
        .chars()
        .any(|c| c.is_control() || (backslash && c == '\\'))
    {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' if backslash => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x100 && c.is_control() => o.push_str(&format!("\\{:03o}", c as u32)),
            c if c.is_control() => o.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => o.push(c),
        }
    }
    std::borrow::Cow::Owned(o)
}

/// The partition table of a whole-disk image, and the partition picked.
pub type Disk = (Table, Option<u32>);

fn disk_json(d: &Disk) -> Value {
    let (t, picked) = d;
    json!({
        "type": t.kind.name(),
        "sector_size": t.sector_size,
        "selected": picked,
        "partitions": t.partitions.iter().map(|p| json!({
            "number": p.number,
            "type": p.type_id,
            "type_name": p.type_name,
            "name": p.name,
            "start": p.start,
            "size": p.size,
            "ext": p.is_ext,
        })).collect::<Vec<_>>(),
    })
}

fn disk_text(d: &Disk) -> String {
    let (t, picked) = d;
    let mut s = format!(
        "Partition table:  {} ({}-byte sectors)\n",
        t.kind.name().to_uppercase(),
        t.sector_size
    );
    s += "  #  start (bytes)      size (bytes)  ext  type\n";
    for p in &t.partitions {
        let mark = if Some(p.number) == *picked { "*" } else { " " };
        let ty = format!("{} ({})", p.type_name, p.type_id);
        let name = if p.name.is_empty() {
            String::new()
        } else {
            format!(" \"{}\"", shown(&p.name))
        };
        s += &format!(
            "{mark}{:>2} {:>14} {:>17}  {}  {ty}{name}\n",
            p.number,
            p.start,
            p.size,
            if p.is_ext { "yes" } else { "no " }
        );
    }
    s
}

/// `info` on a whole disk where no partition could be picked: the table
/// alone.
pub fn disk_only(image: &Path, d: &Disk, json: bool) -> R<()> {
    if json {
        return print_json(&json!({
            "image": image.display().to_string(),
            "partition_table": disk_json(d),
        }));
    }
    let mut s = format!("Image:            {}\n", image.display());
    s += &disk_text(d);
    s += "Pick an ext partition with --partition N to see its file system.\n";
    out(&s)
}

pub fn info(fs: &Filesystem, image: &Path, json: bool, disk: Option<&Disk>) -> R<()> {
    let sb = fs.superblock();
    let kind = if sb.has_incompat(feature::INCOMPAT_EXTENTS)
        || sb.has_incompat(feature::INCOMPAT_64BIT)
        || sb.has_incompat(feature::INCOMPAT_FLEX_BG)
        || sb.has_ro_compat(feature::RO_COMPAT_METADATA_CSUM)
        || sb.has_ro_compat(feature::RO_COMPAT_HUGE_FILE)
        || sb.has_ro_compat(feature::RO_COMPAT_GDT_CSUM)
    {
        "ext4"
    } else if sb.has_compat(feature::COMPAT_HAS_JOURNAL) {
        "ext3"
    } else {
        "ext2"
    };
    let state = match sb.state() & 3 {
        1 => "clean",
        0 => "not clean",
        _ => "with errors",
    };
    let journal = if !sb.has_compat(feature::COMPAT_HAS_JOURNAL) {
        "none".to_string()
    } else if sb.journal_inum() != 0 {
        format!("internal (inode {})", sb.journal_inum())
    } else {
        format!("external (device {:#x})", sb.journal_dev())
    };
    let features = sb.feature_names();
    let v = json!({
        "image": image.display().to_string(),
        "type": kind,
        "label": sb.label(),
        "uuid": sb.uuid(),
        "revision": sb.rev_level(),
        "block_size": sb.block_size,
        "blocks": sb.blocks_count,
        "free_blocks": sb.free_blocks(),
        "reserved_blocks": sb.reserved_blocks(),
        "inodes": sb.inodes_count,
        "free_inodes": sb.free_inodes(),
        "inode_size": sb.inode_size,
        "first_inode": sb.first_ino,
        "groups": sb.group_count,
        "blocks_per_group": sb.blocks_per_group,
        "inodes_per_group": sb.inodes_per_group,
        "features": features,
        "state": state,
        "needs_recovery": fs.needs_recovery(),
        "journal": journal,
        "last_mounted_on": sb.last_mounted(),
        "created": sb.mkfs_time(),
        "last_written": sb.wtime(),
        "last_mounted": sb.mtime(),
        "mount_count": sb.mnt_count(),
        "writable": fs.write_refusal().is_none(),
        "write_refusal": fs.write_refusal(),
    });
    let mut v = v;
    if let Some(d) = disk {
        v["partition"] = json!(d.1);
        v["partition_table"] = disk_json(d);
    }
    if json {
        return print_json(&v);
    }
    let bs = sb.block_size as u64;
    let mib = |b: u64| (b * bs) as f64 / 1048576.0;
    let mut s = String::new();
    s += &format!("Image:            {}\n", image.display());
    if let Some(d) = disk {
        s += &disk_text(d);
        s += &format!("Partition:        {}\n", d.1.unwrap_or(0));
    }
    s += &format!("Filesystem:       {kind} (revision {})\n", sb.rev_level());
    s += &format!(
        "Label:            {}\n",
        if sb.label().is_empty() {
            "<none>".into()
        } else {
            shown(&sb.label()).into_owned()
        }
    );
    s += &format!("UUID:             {}\n", sb.uuid());
    s += &format!("Block size:       {bs}\n");
    s += &format!(
        "Blocks:           {} ({:.1} MiB), {} free ({:.1} MiB), {} reserved\n",
        sb.blocks_count,
        mib(sb.blocks_count),
        sb.free_blocks(),
        mib(sb.free_blocks()),
        sb.reserved_blocks()
    );
    s += &format!(
        "Inodes:           {}, {} free, {} bytes each\n",
        sb.inodes_count,
        sb.free_inodes(),
        sb.inode_size
    );
    s += &format!(
        "Groups:           {} ({} blocks, {} inodes each)\n",
        sb.group_count, sb.blocks_per_group, sb.inodes_per_group
    );
    s += &format!("Features:         {}\n", features.join(" "));
    s += &format!(
        "State:            {state}{}\n",
        if fs.needs_recovery() {
            ", journal needs recovery"
        } else {
            ""
        }
    );
    s += &format!("Journal:          {journal}\n");
    s += &format!(
        "Created:          {}\n",
        fmt_time(Timestamp::from_secs(sb.mkfs_time() as i64))
    );
    s += &format!(
        "Last written:     {}\n",
        fmt_time(Timestamp::from_secs(sb.wtime() as i64))
    );
    s += &format!(
        "Writable:         {}\n",
        match fs.write_refusal() {
            None => "yes".to_string(),
            Some(w) => format!("no: {w}"),
        }
    );
    out(&s)
}

fn entry_json(fs: &Filesystem, path: &str, name: &str, ino: Ino) -> Value {
    match fs.read_inode(ino) {
        Ok(i) => {
            let mut v = json!({
                "path": path,
                "name": name,
                "ino": ino,
                "type": i.file_type().name(),
                "mode": format!("{:04o}", i.perm()),
                "links": i.links(),
                "uid": i.uid(),
                "gid": i.gid(),
                "size": i.size_with(false),
                "mtime": i.mtime().secs,
                "mtime_nsec": i.mtime().nanos,
            });
            if i.is_symlink() {
                if let Ok(t) = fs.read_link(&i) {
                    v["target"] = json!(lossy(&t));
                }
            }
            if matches!(i.file_type(), FileType::CharDevice | FileType::BlockDevice) {
                let (ma, mi) = i.rdev();
                v["rdev"] = json!([ma, mi]);
            }
            v
        }
        Err(e) => json!({"path": path, "name": name, "ino": ino, "error": e.to_string()}),
    }
}

fn long_line(fs: &Filesystem, name: &str, ino: Ino) -> String {
    match fs.read_inode(ino) {
        Ok(i) => {
            let size = match i.file_type() {
                FileType::CharDevice | FileType::BlockDevice => {
                    let (a, b) = i.rdev();
                    format!("{a}, {b}")
                }
                _ => i.size_with(false).to_string(),
            };
            let mut line = format!(
                "{} {:>3} {:>5} {:>5} {:>10} {} {}",
                mode_string(&i),
                i.links(),
                i.uid(),
                i.gid(),
                size,
                &fmt_time(i.mtime())[..16],
                shown(name)
            );
            if i.is_symlink() {
                if let Ok(t) = fs.read_link(&i) {
                    line += &format!(" -> {}", shown(&lossy(&t)));
                }
            }
            line
        }
        Err(e) => format!("?????????? {} ({e})", shown(name)),
    }
}

pub fn ls(
    fs: &Filesystem,
    path: &str,
    long: bool,
    recursive: bool,
    all: bool,
    json: bool,
) -> R<()> {
    // Like ls: a symlink to a directory is listed as the directory unless -l.
    let ino = fs.resolve(path, !long)?;
    let inode = fs.read_inode(ino)?;
    let inode = if long && inode.is_symlink() && path.ends_with('/') {
        fs.read_inode(fs.resolve(path, true)?)?
    } else {
        inode
    };
    if !inode.is_dir() {
        let name = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(path)
            .to_string();
        if json {
            return out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&json!([entry_json(fs, path, &name, inode.ino)]))
                    .unwrap_or_default()
            ));
        }
        return out(&format!(
            "{}\n",
            if long {
                long_line(fs, path, inode.ino)
            } else {
                shown(path).into_owned()
            }
        ));
    }
    let mut text = String::new();
    let mut items: Vec<Value> = Vec::new();
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    let mut stack: Vec<(String, Ino)> = vec![(path.to_string(), inode.ino)];
    let mut first = true;
    while let Some((dpath, dino)) = stack.pop() {
        if !seen.insert(dino) {
            errors.push(format!(
                "{dpath}: directory loop (inode {dino} already listed)"
            ));
            continue;
        }
        let entries: Vec<DirEntry> = match fs.read_inode(dino).and_then(|d| fs.read_dir(&d)) {
            Ok(e) => e,
            Err(e) => {
                if first {
                    return Err(e.at(&dpath).into());
                }
                errors.push(format!("{dpath}: {e}"));
                continue;
            }
        };
        let mut entries: Vec<DirEntry> = entries
            .into_iter()
            .filter(|e| all || (e.name != b"." && e.name != b".."))
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        if recursive && !json {
            if !first {
                text.push('\n');
            }
            text += &format!("{}:\n", shown(&dpath));
        }
        first = false;
        let mut subdirs = Vec::new();
        for e in &entries {
            let name = lossy(&e.name);
            let p = join(&dpath, &name);
            if json {
                items.push(entry_json(fs, &p, &name, e.ino));
            } else if long {
                text += &long_line(fs, &name, e.ino);
                text.push('\n');
            } else {
                text += &shown(&name);
                text.push('\n');
            }
            if recursive && e.name != b"." && e.name != b".." {
                let is_dir = match e.ftype {
                    FileType::Directory => true,
                    FileType::Unknown => fs.read_inode(e.ino).map(|i| i.is_dir()).unwrap_or(false),
                    _ => false,
                };
                if is_dir {
                    subdirs.push((p, e.ino));
                }
            }
        }
        for s in subdirs.into_iter().rev() {
            stack.push(s);
        }
    }
    if json {
        text = format!(
            "{}\n",
            serde_json::to_string_pretty(&Value::Array(items)).unwrap_or_default()
        );
    }
    out(&text)?;
    if errors.len() == 1 {
        // One directory failed: its error is the one line.
        return Err(super::Fail {
            code: 1,
            msg: errors.remove(0),
        });
    }
    for e in &errors {
        super::say(format_args!("ext3edit: {e}"));
    }
    if !errors.is_empty() {
        return Err(super::Fail {
            code: 1,
            msg: format!(
                "{} director{} could not be listed",
                errors.len(),
                if errors.len() == 1 { "y" } else { "ies" }
            ),
        });
    }
    Ok(())
}

pub fn stat(fs: &Filesystem, path: &str, ino: Ino, json: bool) -> R<()> {
    let i = fs.read_inode(ino)?;
    let huge = fs.superblock().has_ro_compat(feature::RO_COMPAT_HUGE_FILE);
    let sectors = i.sectors(huge, fs.superblock().block_size);
    let xattrs = fs.xattrs(&i).map_err(|e| e.at(path))?;
    let runs = if matches!(
        i.file_type(),
        FileType::Regular | FileType::Directory | FileType::Symlink
    ) {
        let nb = i.size_with(false).div_ceil(fs.block_size() as u64);
        fs.block_runs(&i, nb).map_err(|e| e.at(path))?
    } else {
        Vec::new()
    };
    let target = if i.is_symlink() {
        Some(lossy(&fs.read_link(&i).map_err(|e| e.at(path))?))
    } else {
        None
    };
    let xv: Vec<Value> = xattrs
        .iter()
        .map(|x| match std::str::from_utf8(&x.value) {
            Ok(s) if !s.trim_end_matches('\0').contains('\0') => json!({"name": x.name, "value": s.trim_end_matches('\0')}),
            _ => json!({"name": x.name, "hex": x.value.iter().map(|b| format!("{b:02x}")).collect::<String>()}),
        })
        .collect();
    let mut v = json!({
        "path": path,
        "ino": ino,
        "type": i.file_type().name(),
        "mode": format!("{:04o}", i.perm()),
        "uid": i.uid(),
        "gid": i.gid(),
        "size": i.size_with(false),
        "links": i.links(),
        "sectors": sectors,
        "flags": format!("{:#x}", i.flags()),
        "generation": i.generation(),
        // Times as ls --json gives them: whole seconds, and the
        // nanoseconds apart.
        "atime": i.atime().secs,
        "atime_nsec": i.atime().nanos,
        "mtime": i.mtime().secs,
        "mtime_nsec": i.mtime().nanos,
        "ctime": i.ctime().secs,
        "ctime_nsec": i.ctime().nanos,
        "crtime": i.crtime().map(|c| c.secs),
        "crtime_nsec": i.crtime().map(|c| c.nanos),
        "xattr_block": i.file_acl(),
        "xattrs": xv,
        "extents": runs.iter().map(|r| json!({"logical": r.lblk, "physical": r.pblk, "length": r.len, "unwritten": r.uninit})).collect::<Vec<_>>(),
    });
    if let Some(tg) = &target {
        v["target"] = json!(tg);
    }
    if matches!(i.file_type(), FileType::CharDevice | FileType::BlockDevice) {
        let (a, b) = i.rdev();
        v["rdev"] = json!([a, b]);
    }
    if json {
        return print_json(&v);
    }
    let mut s = String::new();
    s += &format!(
        "  File: {}{}\n",
        shown(path),
        target
            .as_ref()
            .map(|t| format!(" -> {}", shown(t)))
            .unwrap_or_default()
    );
    s += &format!(
        "  Type: {}   Inode: {ino}   Links: {}\n",
        i.file_type().name(),
        i.links()
    );
    s += &format!(
        "  Size: {}   Sectors: {sectors}   Flags: {:#x}\n",
        i.size_with(false),
        i.flags()
    );
    s += &format!(
        "Access: ({:04o}/{})  Uid: {}  Gid: {}\n",
        i.perm(),
        mode_string(&i),
        i.uid(),
        i.gid()
    );
    if let Some((a, b)) = v
        .get("rdev")
        .and_then(|r| r.as_array())
        .map(|r| (r[0].clone(), r[1].clone()))
    {
        s += &format!("Device: {a}, {b}\n");
    }
    s += &format!("Access: {}.{:09}\n", fmt_time(i.atime()), i.atime().nanos);
    s += &format!("Modify: {}.{:09}\n", fmt_time(i.mtime()), i.mtime().nanos);
    s += &format!("Change: {}.{:09}\n", fmt_time(i.ctime()), i.ctime().nanos);
    if let Some(c) = i.crtime() {
        s += &format!(" Birth: {}.{:09}\n", fmt_time(c), c.nanos);
    }
    if !runs.is_empty() {
        let shown: Vec<String> = runs
            .iter()
            .take(20)
            .map(|r| {
                if r.len == 1 {
                    format!("({}):{}", r.lblk, r.pblk)
                } else {
                    format!(
                        "({}-{}):{}-{}",
                        r.lblk,
                        r.lblk + r.len - 1,
                        r.pblk,
                        r.pblk + r.len - 1
                    )
                }
            })
            .collect();
        s += &format!(
            "Blocks: {}{}\n",
            shown.join(", "),
            if runs.len() > 20 {
                format!(", ... ({} runs)", runs.len())
            } else {
                String::new()
            }
        );
    }
    for x in &xv {
        s += &format!(
            "Xattr: {} = {}\n",
            shown(x["name"].as_str().unwrap_or("")),
            shown(
                x.get("value")
                    .or(x.get("hex"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
            )
        );
    }
    out(&s)
}

pub fn journal_info(fs: &Filesystem, image: &Path, json: bool) -> R<()> {
    let Some(j) = fs.journal() else {
        let why = if fs.superblock().has_compat(feature::COMPAT_HAS_JOURNAL) {
            "the journal cannot be read (external device or corrupt)"
        } else {
            "no journal (ext2)"
        };
        return Err(Error::Invalid(format!("{}: {why}", image.display())).into());
    };
    // The journal as it is on disk (before any replay staged in memory).
    let disk = fs.recovery_report().cloned();
    let jsb = &j.sb;
    let state = if fs.recovery_report().is_some() {
        "needs recovery"
    } else if jsb.start == 0 {
        "empty (clean)"
    } else {
        "has a log but the filesystem does not ask for recovery"
    };
    let txns: Vec<Value> = disk
        .as_ref()
        .map(|r| {
            r.transactions
                .iter()
                .map(|t| json!({"tid": t.tid, "log_block": t.log_start, "blocks": t.blocks, "revokes": t.revokes, "committed": t.committed, "commit_time": t.commit_time}))
                .collect()
        })
        .unwrap_or_default();
    let v = json!({
        "image": image.display().to_string(),
        "inode": j.ino,
        "from_superblock_backup": fs.journal_from_backup(),
        "version": if jsb.version == 4 { 2 } else { 1 },
        "block_size": jsb.block_size,
        "blocks": jsb.maxlen,
        "first_log_block": jsb.first,
        "state": state,
        "features": jsb.feature_names(),
        "errno": jsb.errno,
        "transactions": txns,
        "replay_blocks": disk.as_ref().map(|r| r.blocks.len()).unwrap_or(0),
        "revoked_blocks": disk.as_ref().map(|r| r.revoked).unwrap_or(0),
        "bad_checksum_blocks": disk.as_ref().map(|r| r.bad_blocks).unwrap_or(0),
        "failed_commit": disk.as_ref().and_then(|r| r.failed_commit),
        "replay_error": disk.as_ref().and_then(|r| r.error.clone()),
        "note": fs.recovery_note(),
    });
    if json {
        return print_json(&v);
    }
    let mut s = String::new();
    s += &format!(
        "Journal:        inode {}, version {}, {} blocks of {} bytes ({:.1} MiB)\n",
        j.ino,
        v["version"],
        jsb.maxlen,
        jsb.block_size,
        jsb.maxlen as f64 * jsb.block_size as f64 / 1048576.0
    );
    if fs.journal_from_backup() {
        s += &format!(
            "Journal inode:  {} is damaged; the journal is found through the superblock's backup of its block map (a replay writes the inode back)\n",
            j.ino
        );
    }
    s += &format!("State:          {state}\n");
    s += &format!(
        "Features:       {}\n",
        if jsb.feature_names().is_empty() {
            "(none)".to_string()
        } else {
            jsb.feature_names().join(" ")
        }
    );
    if jsb.errno != 0 {
        s += &format!("Error:          errno {}\n", jsb.errno);
    }
    if let Some(n) = fs.recovery_note() {
        s += &format!("Note:           {n}\n");
    }
    if let Some(r) = &disk {
        s += &format!(
            "To replay:      {} transaction(s), {} block(s); {} revoked copies skipped\n",
            r.transactions.len(),
            r.blocks.len(),
            r.revoked
        );
        for t in &r.transactions {
            s += &format!(
                "  transaction {:>8}  at log block {:>6}  {:>5} blocks  {:>4} revokes  committed {}\n",
                t.tid,
                t.log_start,
                t.blocks,
                t.revokes,
                t.commit_time
                    .map(|c| if c < (1 << 34) { fmt_time(Timestamp::from_secs(c as i64)) } else { format!("(time {c})") })
                    .unwrap_or_else(|| "-".into())
            );
        }
        if let Some(t) = r.failed_commit {
            s += &format!("  transaction {t}: bad commit block, not replayed\n");
        }
        if r.bad_blocks > 0 {
            s += &format!(
                "  {} logged block(s) with bad checksums will be skipped\n",
                r.bad_blocks
            );
        }
        if let Some(e) = &r.error {
            s += &format!("  recovery stops early: {e}\n");
        }
    }
    out(&s)
}
