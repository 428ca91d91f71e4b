//! Crash-point sweep: every command that changes an ext3 image is run
//! against a device that "loses power" after its k-th write or flush, for
//! every k. After each crash the image is recovered twice, by ext3edit
//! (`journal replay`) and by `e2fsck -E journal_only`; both must give an
//! image that `e2fsck -fn` passes and whose content equals the state
//! before or the state after the command. Crash models: writes reach the
//! disk in order; writes since the last flush are lost; or any subset of
//! the writes since the last flush reached the disk (a reordering cache,
//! two different draws).
//!
//! `CRASH_REPORT=path` writes the counts as a table (docs/RELIABILITY.md
//! quotes it).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use ext3edit::device::{CrashDevice, CrashMode, MemDevice};
use ext3edit::host::{put_tree, PutOptions};
use ext3edit::{Filesystem, NewFile, OpenOptions};

type Snapshot = BTreeMap<String, String>;
type Op = Box<dyn Fn(&mut Filesystem) -> ext3edit::Result<()>>;

/// Everything a user can see in the image: path -> type, mode, owner,
/// size, content checksum or link target.
fn snapshot(bytes: &[u8]) -> Result<Snapshot, String> {
    let fs = Filesystem::open_device(
        Box::new(MemDevice::new(bytes.to_vec())),
        &OpenOptions::read_only(),
    )
    .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    let mut stack = vec![("".to_string(), fs.root())];
    while let Some((path, ino)) = stack.pop() {
        let dir = fs.read_inode(ino).map_err(|e| e.to_string())?;
        for e in fs.read_dir(&dir).map_err(|e| e.to_string())? {
            if e.name == b"." || e.name == b".." {
                continue;
            }
            let p = format!("{path}/{}", e.name_lossy());
            let i = fs.read_inode(e.ino).map_err(|e| e.to_string())?;
            let mut desc = format!(
                "{:?} {:o} {}:{} links={}",
                i.file_type(),
                i.perm(),
                i.uid(),
                i.gid(),
                i.links()
            );
            if i.is_reg() {
                let mut v = Vec::new();
                fs.read_file(&i, &mut v).map_err(|e| e.to_string())?;
                desc += &format!(
                    " size={} crc={:08x}",
                    v.len(),
                    ext3edit::journal::crc32c_raw(0, &v)
                );
            } else if i.is_symlink() {
                desc += &format!(
                    " -> {}",
                    String::from_utf8_lossy(&fs.read_link(&i).map_err(|e| e.to_string())?)
                );
            } else if i.is_dir() {
                stack.push((p.clone(), e.ino));
            }
            out.insert(p, desc);
        }
    }
    Ok(out)
}

fn opts() -> OpenOptions {
    OpenOptions {
        write: true,
        now: Some(1_700_000_000),
        journal: std::env::var_os("CRASH_NO_JOURNAL").is_none(),
        ..OpenOptions::default()
    }
}

/// Run `op` and commit on a crashing device; the bytes on "disk" after it,
/// and whether the command completed.
fn run(
    base: &[u8],
    op: &dyn Fn(&mut Filesystem) -> ext3edit::Result<()>,
    budget: Option<usize>,
    mode: CrashMode,
) -> (Vec<u8>, bool) {
    let dev = CrashDevice::new(base.to_vec(), budget, mode);
    let disk = dev.image();
    let done = match Filesystem::open_device(Box::new(dev), &opts()) {
        Ok(mut fs) => {
            let r = op(&mut fs).and_then(|_| fs.commit());
            r.is_ok()
        }
        Err(e) => panic!("open failed: {e}"),
    };
    let bytes = disk.lock().unwrap().clone();
    (bytes, done)
}

fn fsck_ok(img: &Path) -> Result<(), String> {
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "e2fsck -fn exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with("Pass"))
                .take(6)
                .collect::<Vec<_>>()
                .join(" | ")
        ))
    }
}

struct Tally {
    points: usize,
    failures: Vec<String>,
    /// Crash points where the device tore a superblock write between the
    /// needs_recovery bit and the metadata_csum checksum: ext3edit reads
    /// and rewrites it as the consistent version, e2fsck cannot open the
    /// primary superblock (with one group, no backup to fall back on).
    torn_sb: usize,
}

fn sweep(
    name: &str,
    base: &[u8],
    op: &dyn Fn(&mut Filesystem) -> ext3edit::Result<()>,
    tally: &mut Tally,
) {
    let before = snapshot(base).expect("base image readable");
    let (after_bytes, done) = run(base, op, None, CrashMode::InOrder);
    assert!(done, "{name}: the command fails without a crash");
    let after = snapshot(&after_bytes).expect("result readable");
    assert_ne!(before, after, "{name}: the command changed nothing visible");
    let dir = tempfile::tempdir().unwrap();
    for mode in [
        CrashMode::InOrder,
        CrashMode::LoseUnflushed,
        CrashMode::Reorder(0x9e37_79b9),
        CrashMode::Reorder(0x5bd1_e995),
    ] {
        for k in 0.. {
            let (bytes, done) = run(base, op, Some(k), mode);
            if done {
                break; // k is past the last write: the sweep is complete
            }
            assert!(k < 10_000, "{name}: runaway sweep");
            tally.points += 1;
            let tag = format!("{name} {mode:?} crash after {k} ops");
            // Recovery by ext3edit.
            let a = dir.path().join("a.img");
            std::fs::write(&a, &bytes).unwrap();
            let o = common::run(&["journal", "replay", a.to_str().unwrap()], None);
            if !o.status.success() {
                tally.failures.push(format!(
                    "{tag}: ext3edit journal replay failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
                continue;
            }
            let mut problems = Vec::new();
            if let Err(e) = fsck_ok(&a) {
                problems.push(format!("after ext3edit replay: {e}"));
            }
            let ours = snapshot(&std::fs::read(&a).unwrap());
            match &ours {
                Ok(s) if *s == before || *s == after => {}
                Ok(_) => problems.push(
                    "after ext3edit replay: content is neither the old nor the new state".into(),
                ),
                Err(e) => problems.push(format!("after ext3edit replay: unreadable: {e}")),
            }
            // Recovery by e2fsck must agree.
            let b = dir.path().join("b.img");
            std::fs::write(&b, &bytes).unwrap();
            let o = Command::new("e2fsck")
                .args(["-E", "journal_only", "-y"])
                .arg(&b)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            if o.status.code().unwrap_or(8) >= 4
                && said.contains("Superblock checksum does not match superblock")
                && problems.is_empty()
            {
                tally.torn_sb += 1;
            } else if o.status.code().unwrap_or(8) >= 4 {
                problems.push(format!("e2fsck -E journal_only exit {:?}", o.status.code()));
            } else {
                if let Err(e) = fsck_ok(&b) {
                    problems.push(format!("after e2fsck replay: {e}"));
                }
                let theirs = snapshot(&std::fs::read(&b).unwrap());
                if theirs.as_ref().ok() != ours.as_ref().ok() {
                    problems.push("e2fsck's replay and ours differ".into());
                }
            }
            if !problems.is_empty() {
                tally
                    .failures
                    .push(format!("{tag}: {}", problems.join("; ")));
            }
        }
    }
}

fn base_image(fstype: &'static str, block: u32) -> (tempfile::TempDir, Vec<u8>) {
    let cfg = Cfg {
        fstype,
        block,
        inode: 256,
        dir_index: true,
        size_kib: 8 * 1024,
    };
    let img = mkfs(&cfg);
    if fstype.starts_with("ext4") {
        // As the kernel leaves a metadata_csum file system's journal once
        // mounted: checksums v3, 64-bit block numbers (mke2fs sets none).
        // `-R "jo -c"` alone sets them in memory only: close the journal.
        let mut child = std::process::Command::new("debugfs")
            .args(["-w", "-f", "-"])
            .arg(&img.path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"jo -c\njc\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let h = std::process::Command::new("dumpe2fs")
            .arg("-h")
            .arg(&img.path)
            .output()
            .unwrap();
        let h = String::from_utf8_lossy(&h.stdout);
        assert!(h.contains("journal_checksum_v3"), "{h}");
    }
    // Some existing content to change.
    let src = img.dir.path().join("seed");
    std::fs::create_dir_all(src.join("etc/ssh")).unwrap();
    std::fs::create_dir_all(src.join("home/alice/docs")).unwrap();
    std::fs::write(src.join("etc/inittab"), b"id:3:initdefault:\n").unwrap();
    std::fs::write(src.join("etc/ssh/sshd_config"), b"PermitRootLogin no\n").unwrap();
    for i in 0..20 {
        std::fs::write(
            src.join(format!("home/alice/docs/note{i}")),
            pseudo_random(300 + i * 500, i as u64),
        )
        .unwrap();
    }
    let mut fs = Filesystem::open(&img.path, &opts()).unwrap();
    let root = fs.root();
    for c in ["etc", "home"] {
        put_tree(
            &mut fs,
            &src.join(c),
            root,
            c.as_bytes(),
            &PutOptions::default(),
        )
        .unwrap();
    }
    fs.commit().unwrap();
    drop(fs);
    let bytes = std::fs::read(&img.path).unwrap();
    (img.dir, bytes)
}

/// `base` with one committed but not checkpointed transaction in its
/// journal (a crash between commit and checkpoint).
fn dirty_image(base: &[u8]) -> Vec<u8> {
    let op = |fs: &mut Filesystem| -> ext3edit::Result<()> {
        put_file(fs, "/etc/hostname", b"crashed-host\n")?;
        fs.commit()
    };
    let journaled = OpenOptions {
        journal: true,
        ..opts()
    };
    crash_until_dirty(base, &journaled, &op)
}

fn put_file(fs: &mut Filesystem, path: &str, data: &[u8]) -> ext3edit::Result<()> {
    let (parent, name) = fs.resolve_parent(path)?;
    ext3edit::host::put_reader(
        fs,
        &mut &data[..],
        parent,
        &name,
        &NewFile {
            perm: 0o644,
            ..Default::default()
        },
    )?;
    Ok(())
}

#[test]
fn crash_at_every_write_recovers_to_old_or_new() {
    require_e2fsprogs!();
    let mut tally = Tally {
        points: 0,
        failures: Vec::new(),
        torn_sb: 0,
    };
    let mut rows = Vec::new();
    for (fstype, block) in [("ext3", 1024u32), ("ext3", 4096), ("ext4", 4096)] {
        let (_keep, base) = base_image(fstype, block);
        let host = tempfile::tempdir().unwrap();
        let tree = host.path().join("tree");
        for d in 0..4 {
            std::fs::create_dir_all(tree.join(format!("d{d}"))).unwrap();
            for f in 0..6 {
                std::fs::write(
                    tree.join(format!("d{d}/f{f}")),
                    pseudo_random(100 + f * 900, (d * 10 + f) as u64),
                )
                .unwrap();
            }
        }
        std::os::unix::fs::symlink("d0/f0", tree.join("link")).unwrap();
        let tree2 = tree.clone();
        let scenarios: Vec<(&str, Op)> = vec![
            (
                "put",
                Box::new(|fs: &mut Filesystem| {
                    put_file(fs, "/etc/resolv.conf", b"nameserver 10.0.0.1\n")
                }),
            ),
            (
                "put overwrite",
                Box::new(|fs: &mut Filesystem| {
                    put_file(fs, "/etc/inittab", &pseudo_random(40_000, 99))
                }),
            ),
            (
                "put -r",
                Box::new(move |fs: &mut Filesystem| {
                    let root = fs.root();
                    put_tree(fs, &tree2, root, b"tree", &PutOptions::default())
                }),
            ),
            (
                "rm -r",
                Box::new(|fs: &mut Filesystem| {
                    let (p, n) = fs.resolve_parent("/home/alice")?;
                    fs.remove_tree(p, &n)
                }),
            ),
            (
                "mv",
                Box::new(|fs: &mut Filesystem| {
                    let (sp, sn) = fs.resolve_parent("/home/alice/docs")?;
                    let etc = fs.resolve("/etc", true)?;
                    fs.rename(sp, &sn, etc, b"docs")
                }),
            ),
            (
                "mkdir -p",
                Box::new(|fs: &mut Filesystem| {
                    let mut cur = fs.root();
                    for c in ["var", "lib", "app", "data"] {
                        cur = fs.mkdir(
                            cur,
                            c.as_bytes(),
                            &NewFile {
                                perm: 0o755,
                                ..Default::default()
                            },
                        )?;
                    }
                    Ok(())
                }),
            ),
            (
                "customize batch",
                Box::new(|fs: &mut Filesystem| {
                    put_file(fs, "/etc/resolv.conf", b"nameserver 1.1.1.1\n")?;
                    put_file(
                        fs,
                        "/etc/ssh/sshd_config",
                        b"PermitRootLogin yes\nUseDNS no\n",
                    )?;
                    let root = fs.root();
                    let r = fs.mkdir(
                        root,
                        b"root",
                        &NewFile {
                            perm: 0o700,
                            ..Default::default()
                        },
                    )?;
                    let ssh = fs.mkdir(
                        r,
                        b".ssh",
                        &NewFile {
                            perm: 0o700,
                            ..Default::default()
                        },
                    )?;
                    fs.create_file(
                        ssh,
                        b"authorized_keys",
                        &NewFile {
                            perm: 0o600,
                            ..Default::default()
                        },
                        &mut &b"ssh-ed25519 AAAA test\n"[..],
                    )?;
                    let etc = fs.resolve("/etc", true)?;
                    fs.symlink(
                        etc,
                        b"localtime",
                        b"/usr/share/zoneinfo/UTC",
                        &NewFile::default(),
                    )?;
                    let inittab = fs.resolve("/etc/inittab", true)?;
                    fs.set_perm(inittab, 0o600)?;
                    fs.set_owner(inittab, 0, 10)
                }),
            ),
        ];
        for (name, op) in &scenarios {
            let before = tally.points;
            let fails = tally.failures.len();
            let label = format!("{name} ({fstype}, {block}-byte blocks)");
            sweep(&label, &base, op.as_ref(), &mut tally);
            rows.push((label, tally.points - before, tally.failures.len() - fails));
        }
        // A write on an image whose journal needs recovery: the command
        // replays it first, then makes its change.
        let dirty = dirty_image(&base);
        let before = tally.points;
        let fails = tally.failures.len();
        let label = format!("replay + put ({fstype}, {block}-byte blocks)");
        sweep(
            &label,
            &dirty,
            &|fs: &mut Filesystem| put_file(fs, "/etc/motd", b"welcome\n"),
            &mut tally,
        );
        rows.push((label, tally.points - before, tally.failures.len() - fails));
    }
    let mut report = String::from("| command | crash points | failures |\n|---|---:|---:|\n");
    for (l, p, f) in &rows {
        report += &format!("| {l} | {p} | {f} |\n");
    }
    report += &format!(
        "| **total** | **{}** | **{}** |\n",
        tally.points,
        tally.failures.len()
    );
    report += &format!(
        "\n{} crash points tore a superblock write between the needs_recovery bit and its checksum (metadata_csum): ext3edit recovered them to the old or new state; e2fsck cannot open such a primary superblock\n",
        tally.torn_sb
    );
    eprintln!("{report}");
    if let Ok(p) = std::env::var("CRASH_REPORT") {
        std::fs::write(p, &report).unwrap();
    }
    assert!(tally.points > 100, "too few crash points: {}", tally.points);
    assert!(
        tally.failures.is_empty(),
        "{} of {} crash points failed:\n{}",
        tally.failures.len(),
        tally.points,
        tally.failures.join("\n")
    );
}

/// What a [`Recorder`] saw: writes (byte offset, length) and flushes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Event {
    Write(u64, u64),
    Flush,
}

/// An in-memory image that records every write and flush, in order.
struct Recorder {
    mem: MemDevice,
    log: std::sync::Arc<std::sync::Mutex<Vec<Event>>>,
}

impl ext3edit::device::BlockDevice for Recorder {
    fn len(&self) -> u64 {
        self.mem.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.mem.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(Event::Write(offset, data.len() as u64));
        self.mem.write_at(offset, data)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.log.lock().unwrap().push(Event::Flush);
        self.mem.flush()
    }
    fn writable(&self) -> bool {
        true
    }
}

#[test]
fn in_place_commit_flushes_data_written_early_before_the_metadata() {
    require_e2fsprogs!();
    // Without a journal the first metadata write is the commit point: the
    // file's data must be on disk before it, also when all of it was
    // written early (past 8 MiB staged) and none is left for the commit.
    let cfg = Cfg {
        fstype: "ext3",
        block: 4096,
        inode: 256,
        dir_index: true,
        size_kib: 32 * 1024,
    };
    let img = mkfs(&cfg);
    let base = std::fs::read(&img.path).unwrap();
    let in_place = OpenOptions {
        journal: false,
        ..opts()
    };
    let mut checked = 0;
    // File sizes around the 8 MiB (2048 blocks) the engine stages: one of
    // them ends exactly where the staged data is written out.
    for blocks in 2035u64..2060 {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let dev = Recorder {
            mem: MemDevice::new(base.clone()),
            log: log.clone(),
        };
        let mut fs = Filesystem::open_device(Box::new(dev), &in_place).unwrap();
        let mut data = pseudo_random((blocks * 4096) as usize, blocks);
        for b in data.iter_mut() {
            *b |= 1;
        }
        put_file(&mut fs, "/big", &data).unwrap();
        fs.commit().unwrap();
        // Where the file's data and its inode are.
        let ino = fs.resolve("/big", true).unwrap();
        let inode = fs.read_inode(ino).unwrap();
        let runs = fs.block_runs(&inode, fs.max_indirect_blocks()).unwrap();
        let bs = fs.block_size() as u64;
        let sb = fs.superblock();
        let ipg = sb.inodes_per_group as u64;
        let isz = sb.inode_size as u64;
        let g = ((ino as u64 - 1) / ipg) as usize;
        let at = fs.groups()[g].inode_table() * bs + ((ino as u64 - 1) % ipg) * isz;
        drop(fs);
        let events = log.lock().unwrap().clone();
        let is_data = |off: u64, len: u64| {
            runs.iter().any(|r| {
                let (a, b) = (r.pblk * bs, (r.pblk + r.len) * bs);
                off < b && a < off + len
            })
        };
        let last_data = events
            .iter()
            .rposition(|e| matches!(*e, Event::Write(o, l) if is_data(o, l)))
            .expect("the data was written");
        let inode_write = events
            .iter()
            .position(|e| matches!(*e, Event::Write(o, l) if o <= at && at < o + l))
            .expect("the inode was written");
        assert!(
            inode_write > last_data,
            "{blocks} blocks: the inode was written before the data"
        );
        assert!(
            events[last_data..inode_write].contains(&Event::Flush),
            "{blocks} blocks: no flush between the last data write (event {last_data}) and the inode's (event {inode_write}) in {events:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 25);
}

#[test]
fn crash_during_a_large_write_recovers_to_old_or_new() {
    require_e2fsprogs!();
    // A file past 8 MiB whose size is known is written to the image as it
    // is read, before the commit point: every crash point of that must
    // still recover to the image before or after.
    let cfg = Cfg {
        fstype: "ext3",
        block: 4096,
        inode: 256,
        dir_index: true,
        size_kib: 24 * 1024,
    };
    let img = mkfs(&cfg);
    let base = std::fs::read(&img.path).unwrap();
    let data = pseudo_random(9 << 20, 5);
    let op = move |fs: &mut Filesystem| put_file(fs, "/big", &data);
    let mut tally = Tally {
        points: 0,
        failures: Vec::new(),
        torn_sb: 0,
    };
    sweep("put 9 MiB", &base, &op, &mut tally);
    assert!(tally.points > 40, "too few crash points: {}", tally.points);
    assert!(
        tally.failures.is_empty(),
        "{} of {} crash points failed:\n{}",
        tally.failures.len(),
        tally.points,
        tally.failures.join("\n")
    );
}
