//! Shared helpers for the integration tests: make images with mke2fs, run
//! the real binary, judge images with e2fsck, read back with debugfs and
//! with the ext4-view crate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One mke2fs configuration.
#[derive(Clone, Debug)]
pub struct Cfg {
    pub fstype: &'static str,
    pub block: u32,
    pub inode: u32,
    pub dir_index: bool,
    pub size_kib: u64,
}

impl Cfg {
    pub fn name(&self) -> String {
        format!(
            "{}-b{}-i{}-{}",
            self.fstype,
            self.block,
            self.inode,
            if self.dir_index { "htree" } else { "linear" }
        )
    }
}

/// ext2 and ext3, blocks 1024/2048/4096, inodes 128/256, with and without
/// dir_index: 24 configurations.
pub fn matrix() -> Vec<Cfg> {
    let mut v = Vec::new();
    for fstype in ["ext2", "ext3"] {
        for block in [1024, 2048, 4096] {
            for inode in [128, 256] {
                for dir_index in [true, false] {
                    v.push(Cfg {
                        fstype,
                        block,
                        inode,
                        dir_index,
                        size_kib: 16 * 1024,
                    });
                }
            }
        }
    }
    v
}

/// The ext4 variants issue 14 names: mke2fs's ext4 defaults and the
/// variations of them, as `fstype` keys that [`mkfs`] turns into
/// `-t ext4 -O ...` (see [`ext4_features`]).
pub fn ext4_matrix() -> Vec<Cfg> {
    let c = |fstype, block, inode, size_kib| Cfg {
        fstype,
        block,
        inode,
        dir_index: true,
        size_kib,
    };
    vec![
        c("ext4", 4096, 256, 64 * 1024),
        c("ext4", 1024, 256, 64 * 1024), // 8 groups with 1 KiB blocks
        c("ext4", 4096, 128, 32 * 1024),
        c("ext4-nocsum", 4096, 256, 32 * 1024),
        c("ext4-nocsum", 1024, 128, 32 * 1024),
        c("ext4-no64", 4096, 256, 32 * 1024),
        c("ext4-noflex", 1024, 256, 32 * 1024),
        c("ext4-orphan", 4096, 256, 32 * 1024),
        c("ext4-largedir", 4096, 256, 32 * 1024),
        c("ext4-nojournal", 4096, 256, 32 * 1024),
    ]
}

/// mke2fs `-O` additions for an ext4 variant key; None for ext2/ext3.
pub fn ext4_features(fstype: &str) -> Option<&'static str> {
    Some(match fstype {
        // Spelled out, so that the host's mke2fs.conf does not decide.
        "ext4" => "has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize",
        "ext4-nocsum" => "has_journal,extent,huge_file,flex_bg,^metadata_csum,uninit_bg,64bit,dir_nlink,extra_isize",
        "ext4-no64" => "has_journal,extent,huge_file,flex_bg,metadata_csum,^64bit,dir_nlink,extra_isize",
        "ext4-noflex" => "has_journal,extent,huge_file,^flex_bg,metadata_csum,64bit,dir_nlink,extra_isize",
        "ext4-orphan" => "has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize,orphan_file",
        "ext4-largedir" => "has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize,large_dir",
        "ext4-nojournal" => "^has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize",
        _ => return None,
    })
}

pub fn have_e2fsprogs() -> bool {
    Command::new("mke2fs").arg("-V").output().is_ok()
}

/// Say that the running test skips part or all of its work, and why, on
/// a line that shows in the normal `cargo test` output (written straight
/// to stderr: the test harness captures only `print!`/`eprint!`).
pub fn skip(why: &str) {
    use std::io::Write;
    let t = std::thread::current();
    let name = t.name().unwrap_or("test");
    let _ = writeln!(std::io::stderr(), "SKIPPED {name}: {why}");
}

/// Skip the calling test (return early) when e2fsprogs is missing.
#[macro_export]
macro_rules! require_e2fsprogs {
    () => {
        if !common::have_e2fsprogs() {
            common::skip("e2fsprogs (mke2fs, e2fsck, debugfs) is not installed");
            return;
        }
    };
}

pub struct Img {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub cfg: Cfg,
}

/// Make a fresh image with mke2fs, reproducibly (fixed UUID, hash seed, time).
pub fn mkfs(cfg: &Cfg) -> Img {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{}.img", cfg.name()));
    let mut features = String::from(if cfg.dir_index {
        "dir_index"
    } else {
        "^dir_index"
    });
    let mut fstype = cfg.fstype;
    if let Some(f) = ext4_features(cfg.fstype) {
        features.push(',');
        features.push_str(f);
        fstype = "ext4";
    } else if cfg.fstype == "ext2" {
        features.push_str(",^has_journal");
    } else {
        features.push_str(",has_journal");
    }
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", fstype])
        .args(["-b", &cfg.block.to_string(), "-I", &cfg.inode.to_string()])
        .args(["-O", &features])
        .args([
            "-U",
            "d9b0c4a0-3a2b-4c1d-8e5f-0123456789ab",
            "-E",
            "hash_seed=5b7c1e3a-2f4d-4e6a-9b8c-abcdef012345",
        ])
        .arg(&path)
        .arg(format!("{}k", cfg.size_kib))
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .expect("run mke2fs");
    assert!(
        out.status.success(),
        "mke2fs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Img {
        dir,
        path,
        cfg: cfg.clone(),
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ext3edit"))
}

/// Run ext3edit with `args` (strings), optional stdin bytes.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut c = Command::new(bin());
    c.args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .env_remove("SOURCE_DATE_EPOCH");
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn ext3edit");
    if let Some(data) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Run ext3edit on an image and require success.
pub fn ok(img: &Path, cmd: &str, rest: &[&str]) -> Output {
    let mut args = vec![cmd, img.to_str().unwrap()];
    args.extend_from_slice(rest);
    let out = run(&args, None);
    assert!(
        out.status.success(),
        "ext3edit {:?} failed ({:?}): {}",
        args,
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run ext3edit on an image and require failure with `code`; returns stderr.
pub fn fails(img: &Path, cmd: &str, rest: &[&str], code: i32) -> String {
    let mut args = vec![cmd, img.to_str().unwrap()];
    args.extend_from_slice(rest);
    let out = run(&args, None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "ext3edit {:?}: expected exit {code}, stderr: {err}",
        args
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    err
}

/// `e2fsck -fn` must exit 0, and its used counts must equal the superblock's.
pub fn fsck_clean(img: &Path) {
    let out = Command::new("e2fsck")
        .args(["-fn"])
        .arg(img)
        .output()
        .expect("run e2fsck");
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    // e2fsck -n exits 0 after some findings it "IGNORED" (a descriptor
    // checksum, say): anything it says beyond its passes and the summary
    // is a finding.
    let said: Vec<&str> = so
        .lines()
        .filter(|l| !l.starts_with("Pass ") && !l.contains(" files (") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && said.is_empty(),
        "e2fsck -fn {} exited {:?}:\n{so}\n{se}",
        img.display(),
        out.status.code()
    );
    // "img: 16/2048 files (0.0% non-contiguous), 1374/8192 blocks"
    let line = so
        .lines()
        .rev()
        .find(|l| l.contains(" files ("))
        .unwrap_or_else(|| panic!("no summary line in:\n{so}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    // After the image name: used_inodes, inodes, pct, pct, used_blocks, blocks
    let n = nums.len();
    let (ui, ti, ub, tb) = (nums[n - 6], nums[n - 5], nums[n - 2], nums[n - 1]);
    let sb = read_sb(img);
    assert_eq!(ti, sb.inodes as u64, "inode count");
    assert_eq!(tb, sb.blocks, "block count");
    assert_eq!(
        ti - ui,
        sb.free_inodes as u64,
        "superblock free inodes != e2fsck's count"
    );
    assert_eq!(
        tb - ub,
        sb.free_blocks,
        "superblock free blocks != e2fsck's count"
    );
}

pub struct Sb {
    pub inodes: u32,
    pub free_inodes: u32,
    pub blocks: u64,
    pub free_blocks: u64,
}

pub fn read_sb(img: &Path) -> Sb {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(img).unwrap();
    f.seek(SeekFrom::Start(1024)).unwrap();
    let mut b = [0u8; 1024];
    f.read_exact(&mut b).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    Sb {
        inodes: u32_at(0),
        blocks: u32_at(4) as u64,
        free_blocks: u32_at(12) as u64,
        free_inodes: u32_at(16),
    }
}

/// debugfs -R "cmd" on the image; stdout.
pub fn debugfs(img: &Path, cmd: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", cmd])
        .arg(img)
        .output()
        .expect("run debugfs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// File content through debugfs `cat`.
pub fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat \"{path}\"")])
        .arg(img)
        .output()
        .expect("run debugfs");
    out.stdout
}

/// Open the image with the independent ext4-view reader.
pub fn view(img: &Path) -> ext4_view::Ext4 {
    ext4_view::Ext4::load(Box::new(std::fs::read(img).unwrap())).expect("ext4-view loads the image")
}

/// Whole image bytes, for "unchanged" checks.
pub fn bytes(img: &Path) -> Vec<u8> {
    std::fs::read(img).unwrap()
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The e2fsprogs test corpus beside the checkout, if it is there.
pub fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/e2fsprogs"
    ));
    p.join("MANIFEST.tsv").exists().then_some(p)
}

/// A corpus image's bytes (`.gz`, `.bz2` or plain).
pub fn decompress(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut v = Vec::new();
    let f = std::fs::File::open(p).unwrap();
    let name = p.to_string_lossy();
    if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(f).read_to_end(&mut v).unwrap();
    } else if name.ends_with(".bz2") {
        bzip2::read::BzDecoder::new(f).read_to_end(&mut v).unwrap();
    } else {
        std::io::BufReader::new(f).read_to_end(&mut v).unwrap();
    }
    v
}

/// Run `op` (which commits) on `base` through a device that crashes after
/// k writes, for k = 0, 1, ...; the image at the first crash point that
/// leaves a committed but not checkpointed transaction in the journal.
pub fn crash_until_dirty(
    base: &[u8],
    opts: &ext3edit::OpenOptions,
    op: &dyn Fn(&mut ext3edit::Filesystem) -> ext3edit::Result<()>,
) -> Vec<u8> {
    use ext3edit::device::{CrashDevice, CrashMode, MemDevice};
    use ext3edit::{Filesystem, OpenOptions};
    for k in 0..400 {
        let dev = CrashDevice::new(base.to_vec(), Some(k), CrashMode::InOrder);
        let disk = dev.image();
        let mut fs = Filesystem::open_device(Box::new(dev), opts).unwrap();
        if op(&mut fs).is_ok() {
            break;
        }
        drop(fs);
        let bytes = disk.lock().unwrap().clone();
        let probe = Filesystem::open_device(
            Box::new(MemDevice::new(bytes.clone())),
            &OpenOptions::read_only(),
        )
        .unwrap();
        if probe
            .recovery_report()
            .is_some_and(|r| !r.transactions.is_empty())
        {
            return bytes;
        }
    }
    panic!("no crash point left the journal dirty");
}

// # Compressed images

/// True when `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Run ext3edit with TMPDIR set to `tmp` (to see what it leaves there)
/// and no progress bar.
pub fn run_in(tmp: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("EXT3EDIT_NO_PROGRESS", "1")
        .env("TMPDIR", tmp)
        .output()
        .unwrap()
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Decompress `f` (format `fmt`: bz2, gz, xz or zip) into `out` with the
/// standard tool (bunzip2, gunzip, unxz, unzip -p).
pub fn tool_unpack(fmt: &str, f: &Path, out: &Path) {
    let (f, out) = (f.display(), out.display());
    let cmd = match fmt {
        "bz2" => format!("bunzip2 -c '{f}' > '{out}'"),
        "gz" => format!("gunzip -c '{f}' > '{out}'"),
        "xz" => format!("unxz -c '{f}' > '{out}'"),
        _ => format!("unzip -p '{f}' > '{out}'"),
    };
    let o = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// [`fsck_clean`], and e2fsck printed nothing but its passes and summary:
/// `e2fsck -fn` exits 0 even after "Group descriptor 1 checksum is 0x...,
/// should be 0x....  IGNORED.", so its output is read too.
pub fn fsck_silent(img: &Path) {
    let out = Command::new("e2fsck")
        .args(["-fn"])
        .arg(img)
        .output()
        .expect("run e2fsck");
    let so = String::from_utf8_lossy(&out.stdout);
    let said: Vec<&str> = so
        .lines()
        .filter(|l| !l.starts_with("Pass ") && !l.contains(" files (") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && said.is_empty(),
        "e2fsck -fn {} exited {:?}:\n{so}",
        img.display(),
        out.status.code()
    );
    let line = so
        .lines()
        .find(|l| l.contains(" files ("))
        .unwrap_or_else(|| panic!("no summary line in:\n{so}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let n = nums.len();
    let sb = read_sb(img);
    assert_eq!(nums[n - 5], sb.inodes as u64, "inode count");
    assert_eq!(nums[n - 1], sb.blocks, "block count");
    assert_eq!(
        nums[n - 5] - nums[n - 6],
        sb.free_inodes as u64,
        "free inodes"
    );
    assert_eq!(nums[n - 1] - nums[n - 2], sb.free_blocks, "free blocks");
}
