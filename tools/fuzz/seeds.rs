//! Seed images: every image of the e2fsprogs corpus (decompressed on first
//! use) and images made here with mke2fs, filled with a small tree.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths inside a seed image that the commands work on.
#[derive(Clone, Debug)]
pub struct Targets {
    pub dir: String,
    pub file: String,
}

/// One seed image.
pub struct Seed {
    pub name: String,
    /// The compressed (or plain) corpus file, or None for a generated image.
    source: Option<PathBuf>,
    /// The raw image on disk (decompressed on first use).
    pub raw: PathBuf,
    targets: OnceLock<Targets>,
}

impl Seed {
    /// The raw bytes (decompressing a corpus image the first time).
    pub fn bytes(&self) -> Vec<u8> {
        if let Some(src) = &self.source {
            static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _g = LOCK.lock().unwrap();
            if !self.raw.exists() {
                let tmp = self.raw.with_extension("part");
                write_sparse(&tmp, &decompress(src));
                std::fs::rename(&tmp, &self.raw).unwrap();
            }
        }
        std::fs::read(&self.raw).expect("read seed image")
    }

    /// A directory and a regular file of the seed, as `ls -R --json`
    /// lists them (found once; defaults when the listing fails).
    pub fn targets(&self, bin: &Path, work: &Path) -> &Targets {
        self.targets.get_or_init(|| {
            let _ = self.bytes();
            find_targets(bin, &self.raw, work)
        })
    }
}

fn find_targets(bin: &Path, img: &Path, work: &Path) -> Targets {
    let mut t = Targets {
        dir: "/lost+found".into(),
        file: "/fuzz-no-such-file".into(),
    };
    let o = super::exec::run(
        bin,
        &[
            "ls".as_ref(),
            img.as_os_str(),
            "/".as_ref(),
            "-R".as_ref(),
            "--json".as_ref(),
        ],
        work,
        &super::exec::Limits {
            time: std::time::Duration::from_secs(30),
            memory: 1 << 30,
            file_size: 1 << 30,
        },
        &[],
    );
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str(&o.stdout) else {
        return t;
    };
    let field =
        |e: &serde_json::Value, k: &str| e.get(k).and_then(|v| v.as_str()).map(String::from);
    // Prefer a directory with something in it, and a file in a subdirectory.
    let mut dir = None;
    let mut file = None;
    let mut file_nested = false;
    for e in &list {
        let (Some(ty), Some(path)) = (field(e, "type"), field(e, "path")) else {
            continue;
        };
        // A name with a NUL cannot be an argument.
        if path.contains('\0') {
            continue;
        }
        let nested = path.matches('/').count() == 2;
        if ty == "dir" && path != "/lost+found" && dir.is_none() {
            dir = Some(path);
        } else if ty == "file" && (file.is_none() || nested && !file_nested) {
            file_nested = nested;
            file = Some(path);
        }
    }
    if let Some(d) = dir {
        t.dir = d;
    }
    if let Some(f) = file {
        t.file = f;
    }
    t
}

/// A corpus image's bytes (`.gz`, `.bz2` or plain).
pub fn decompress(p: &Path) -> Vec<u8> {
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

/// Write `data` to `path`, leaving 4 KiB runs of zeros as holes.
pub fn write_sparse(path: &Path, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).expect("create image file");
    for (i, chunk) in data.chunks(4096).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            f.write_all_at(chunk, (i * 4096) as u64)
                .expect("write image");
        }
    }
    f.set_len(data.len() as u64).expect("size image");
}

/// Every image of the corpus's MANIFEST.tsv (except those inside tar
/// archives), in manifest order.
pub fn corpus(dir: &Path, cache: &Path) -> Vec<Seed> {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("read MANIFEST.tsv");
    let mut lines = manifest.lines();
    let head: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).expect("MANIFEST column");
    let (ct, cf) = (col("test"), col("image_file"));
    let mut v = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() <= ct.max(cf) || f[cf].contains(".tar") {
            continue;
        }
        v.push(Seed {
            name: f[ct].to_string(),
            source: Some(dir.join(f[ct]).join(f[cf])),
            raw: cache.join(format!("{}.img", f[ct])),
            targets: OnceLock::new(),
        });
    }
    v
}

/// A deterministic tree to put in the generated images: files with
/// direct, indirect and double indirect blocks, a sparse file, a hard link,
/// fast and slow symlinks, a fifo, a deep path and a directory of 200
/// entries (indexed after `e2fsck -D`).
fn make_tree(root: &Path) {
    let w = |p: &str, data: &[u8]| {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("etc/hostname", b"fuzz\n");
    w(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    );
    w("etc/ssh/sshd_config", &b"PermitRootLogin no\n".repeat(300));
    w("bin/busybox", &pseudo_random(20_000, 1));
    w("big", &pseudo_random(300 * 1024, 2));
    w("home/alice/.profile", b"export PATH=/bin\n");
    w("deep/a/b/c/d/e/f/leaf", b"leaf\n");
    for i in 0..200 {
        w(
            &format!("many/an-entry-with-a-fairly-long-name-{i:03}"),
            format!("{i}\n").as_bytes(),
        );
    }
    let sparse = root.join("sparse");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&sparse).unwrap();
        f.write_all_at(&pseudo_random(4096, 3), 0).unwrap();
        f.write_all_at(&pseudo_random(4096, 4), 1 << 20).unwrap();
    }
    std::fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd-")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink(
        "/deep/a/b/c/d/e/f/../../../../../../../many/an-entry-with-a-fairly-long-name-007",
        root.join("bin/slow-link"),
    )
    .unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
}

pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut r = super::mutate::Rng::new(seed, 0);
    (0..len).map(|_| r.next() as u8).collect()
}

/// Image configurations: (name, mke2fs -t, block size, extra -O features,
/// size in KiB). ext4 without metadata_csum, so mutations reach past the
/// checksums (the corpus has checksummed images).
const CONFIGS: [(&str, &str, u32, &str, u32); 7] = [
    ("gen-ext2-1k", "ext2", 1024, "^has_journal", 8192),
    ("gen-ext2-4k", "ext2", 4096, "^has_journal", 16384),
    ("gen-ext3-1k", "ext3", 1024, "has_journal", 8192),
    ("gen-ext3-4k", "ext3", 4096, "has_journal", 16384),
    ("gen-ext3-1k-i128", "ext3", 1024, "has_journal", 8192),
    (
        "gen-ext4-1k",
        "ext4",
        1024,
        "^metadata_csum,^metadata_csum_seed",
        8192,
    ),
    (
        "gen-ext4-4k",
        "ext4",
        4096,
        "^metadata_csum,^metadata_csum_seed",
        16384,
    ),
];

const FAKE_TIME: &str = "1700000000";

/// Make the generated seed images in `dir` (plus, for ext3, a copy whose
/// journal holds a committed transaction not yet checkpointed).
pub fn generate(bin: &Path, dir: &Path) -> Vec<Seed> {
    let tree = dir.join("tree");
    if !tree.exists() {
        make_tree(&tree);
    }
    let mut v = Vec::new();
    for (name, fstype, block, features, kib) in CONFIGS {
        let img = dir.join(format!("{name}.img"));
        let inode = if name.ends_with("i128") { "128" } else { "256" };
        let out = Command::new("mke2fs")
            .args([
                "-q",
                "-F",
                "-t",
                fstype,
                "-b",
                &block.to_string(),
                "-I",
                inode,
            ])
            .args(["-O", features, "-d"])
            .arg(&tree)
            .args(["-U", "d9b0c4a0-3a2b-4c1d-8e5f-0123456789ab"])
            .args(["-E", "hash_seed=5b7c1e3a-2f4d-4e6a-9b8c-abcdef012345"])
            .arg(&img)
            .arg(format!("{kib}k"))
            .env("E2FSPROGS_FAKE_TIME", FAKE_TIME)
            .output()
            .expect("run mke2fs");
        assert!(
            out.status.success(),
            "mke2fs {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fix_times(bin, &img, dir);
        // Index the directories (htree), as a kernel would have.
        let _ = Command::new("e2fsck")
            .args(["-fyD"])
            .arg(&img)
            .env("E2FSPROGS_FAKE_TIME", FAKE_TIME)
            .env("E2FSCK_TIME", FAKE_TIME)
            .output();
        fix_superblock_times(&img);
        v.push(Seed {
            name: name.to_string(),
            source: None,
            raw: img.clone(),
            targets: OnceLock::new(),
        });
        if fstype == "ext3" && inode == "256" {
            let dirty = dir.join(format!("{name}-dirty-journal.img"));
            std::fs::write(&dirty, dirty_journal(&std::fs::read(&img).unwrap())).unwrap();
            v.push(Seed {
                name: format!("{name}-dirty-journal"),
                source: None,
                raw: dirty,
                targets: OnceLock::new(),
            });
        }
    }
    v
}

/// mke2fs -d copies the host's times (ctime cannot be set on the host):
/// set every inode's times to the fixed time with debugfs, so the seeds are
/// the same bytes on every run.
fn fix_times(bin: &Path, img: &Path, work: &Path) {
    let o = Command::new(bin)
        .args([
            "ls".as_ref(),
            img.as_os_str(),
            "/".as_ref(),
            "-R".as_ref(),
            "-a".as_ref(),
            "--json".as_ref(),
        ])
        .output()
        .expect("run ext3edit ls");
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let mut inos: Vec<u64> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("ino").and_then(|i| i.as_u64()))
        .collect();
    inos.push(2);
    inos.sort_unstable();
    inos.dedup();
    let mut script = String::new();
    for ino in inos {
        for field in ["atime", "mtime", "ctime", "crtime"] {
            script.push_str(&format!("sif <{ino}> {field} 20231114221320\n"));
        }
    }
    let sp = work.join("fix-times.debugfs");
    std::fs::write(&sp, script).unwrap();
    let _ = Command::new("debugfs")
        .args(["-w", "-f"])
        .arg(&sp)
        .arg(img)
        .env("E2FSPROGS_FAKE_TIME", FAKE_TIME)
        .output();
}

/// debugfs and e2fsck stamp the superblock's mount, write and check times
/// with the clock: set them to the fixed time (no checksum to update: the
/// generated images have none).
fn fix_superblock_times(img: &Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    let t = FAKE_TIME.parse::<u32>().unwrap().to_le_bytes();
    for field in [0x2c, 0x30, 0x40] {
        f.write_all_at(&t, 1024 + field).unwrap();
    }
}

/// The image after a crash between commit and checkpoint of a transaction
/// that adds a file and a directory.
fn dirty_journal(base: &[u8]) -> Vec<u8> {
    use ext3edit::device::{CrashDevice, CrashMode, MemDevice};
    use ext3edit::{Filesystem, NewFile, OpenOptions};
    let opts = OpenOptions {
        write: true,
        now: Some(1_700_000_000),
        ..OpenOptions::default()
    };
    let attrs = NewFile {
        perm: 0o644,
        ..NewFile::default()
    };
    for k in 0..400 {
        let dev = CrashDevice::new(base.to_vec(), Some(k), CrashMode::InOrder);
        let disk = dev.image();
        let mut fs = Filesystem::open_device(Box::new(dev), &opts).expect("open generated image");
        let root = fs.resolve("/", true).expect("root");
        let done = fs
            .create_file(root, b"journaled", &attrs, &mut &pseudo_random(5000, 5)[..])
            .and_then(|_| fs.mkdir(root, b"journaled-dir", &attrs))
            .and_then(|_| fs.commit());
        if done.is_ok() {
            break;
        }
        drop(fs);
        let bytes = disk.lock().unwrap().clone();
        let probe = Filesystem::open_device(
            Box::new(MemDevice::new(bytes.clone())),
            &OpenOptions::read_only(),
        )
        .expect("reopen crashed image");
        if probe
            .recovery_report()
            .is_some_and(|r| !r.transactions.is_empty())
        {
            return bytes;
        }
    }
    panic!("no crash point left the journal dirty");
}
