//! mkfs: a new image file, without mke2fs.

use std::path::PathBuf;

use clap::Subcommand;
use ext3edit::tar::mkfs::{mkfs_file, FsType, MkfsOptions};

use super::{failure, say, usage, R};

const MKFS_HELP: &str = "\
Makes IMAGE, a new sparse file of SIZE bytes holding an empty file
system (a root directory and lost+found), as `mke2fs -t TYPE` of
e2fsprogs 1.47 makes it for the same parameters: the same features, block
and inode sizes, inode count, reserved blocks (5%), journal size and the
same block layout (groups, descriptors, reserved GDT blocks for resizing,
flex_bg packing, where the journal goes). No mke2fs, no root.

SIZE: bytes, or a number with K, M, G or T (powers of 1024): 64M, 2G.
Defaults by size, as mke2fs.conf says: under 3 MiB 1 KiB blocks and an
inode per 8 KiB; under 512 MiB 1 KiB blocks and an inode per 4 KiB; else
4 KiB blocks and an inode per 16 KiB. Inodes are 256 bytes.

Types: ext2 (sparse_super, large_file, filetype, resize_inode, dir_index,
ext_attr), ext3 (ext2 + has_journal), ext4 (ext3 + extent, huge_file,
flex_bg, metadata_csum, 64bit, dir_nlink, extra_isize; the default).
--features edits that list in mke2fs's syntax: `^flex_bg,^64bit` removes,
`uninit_bg` adds. Features ext3edit cannot make (meta_bg, bigalloc,
inline_data, quota, orphan_file, ...) are refused by name.

Reproducible: the UUID and the directory hash seed are derived from the
options unless given, and every time is $SOURCE_DATE_EPOCH when set (else
now), so the same command gives the same bytes. The image is written
sparse (only blocks that are not zeros); inode tables are left as holes
(mke2fs's lazy_itable_init with ITABLE_ZEROED: nothing left to zero).
An existing IMAGE is refused unless --force; a failed mkfs leaves no file.

Examples:
  ext3edit mkfs disk.ext4 2G
  ext3edit mkfs root.ext3 512M --type ext3 --label root
  ext3edit mkfs small.img 64M --block-size 4096 --inode-size 128 --inodes 4096
  ext3edit mkfs disk.ext4 8G --features ^metadata_csum,uninit_bg --journal-size 128
  SOURCE_DATE_EPOCH=1700000000 ext3edit mkfs disk.ext4 1G --uuid 0d0c7a4e-4a2f-4d4e-9a55-3a3c3b2a1f00
  ext3edit mkfs disk.ext4 1G && ext3edit put disk.ext4 ./rootfs/ / -r";

#[derive(Subcommand)]
#[command(defer = true)]
pub enum MkfsCmd {
    /// Make a new image file holding an empty ext2/ext3/ext4 file system
    /// (as mke2fs would, without mke2fs).
    #[command(after_help = MKFS_HELP)]
    Mkfs {
        /// The image file to create (refused if it exists, unless --force).
        image: PathBuf,
        /// Its size: bytes, or with K, M, G, T (1024-based): 64M, 2G.
        size: String,
        /// ext2, ext3 or ext4.
        #[arg(
            long = "type",
            short = 't',
            value_name = "TYPE",
            default_value = "ext4"
        )]
        fs_type: String,
        /// Block size: 1024, 2048 or 4096 (default by size).
        #[arg(long, short = 'b', value_name = "N")]
        block_size: Option<u32>,
        /// Inode size in bytes: 128, 256, ... (default 256).
        #[arg(long, short = 'I', value_name = "N")]
        inode_size: Option<u32>,
        /// Number of inodes (rounded up to fill the inode table blocks, as
        /// mke2fs does).
        #[arg(long, short = 'N', value_name = "N")]
        inodes: Option<u64>,
        /// Volume label (at most 16 bytes).
        #[arg(long, short = 'L', value_name = "L")]
        label: Option<String>,
        /// File system UUID (default: derived from the options).
        #[arg(long, short = 'U', value_name = "U")]
        uuid: Option<String>,
        /// Directory hash seed, a UUID (default: derived from the options).
        #[arg(long, value_name = "U")]
        hash_seed: Option<String>,
        /// Journal size in MiB (default by size, as mke2fs picks it).
        #[arg(long, value_name = "M")]
        journal_size: Option<u64>,
        /// Features to add or (with ^) remove, comma separated.
        #[arg(long, short = 'O', value_name = "LIST", allow_hyphen_values = true)]
        features: Option<String>,
        /// Replace IMAGE if it exists (a regular file only).
        #[arg(long)]
        force: bool,
        /// Print nothing on success.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
}

/// "64M" -> 67108864.
pub fn parse_size(s: &str) -> R<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => {
                    return Err(usage(format!(
                        "SIZE '{s}': unknown suffix '{c}' (K, M, G or T)"
                    )))
                }
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| {
        usage(format!(
            "SIZE '{s}': not a size (bytes, or a number with K, M, G or T)"
        ))
    })?;
    n.checked_mul(mul)
        .ok_or_else(|| usage(format!("SIZE '{s}': too large")))
}

/// "0d0c7a4e-4a2f-4d4e-9a55-3a3c3b2a1f00" -> 16 bytes.
pub fn parse_uuid(what: &str, s: &str) -> R<[u8; 16]> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    let bad = || {
        usage(format!(
            "{what} '{s}': not a UUID (like 0d0c7a4e-4a2f-4d4e-9a55-3a3c3b2a1f00)"
        ))
    };
    if hex.len() != 32 || s.len() != 36 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn now() -> R<u32> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v.trim().parse::<u32>().map_err(|_| {
            usage(format!(
                "SOURCE_DATE_EPOCH '{v}': not a time in seconds (0 to 4294967295)"
            ))
        });
    }
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0))
}

pub fn run(cmd: MkfsCmd) -> R<()> {
    let MkfsCmd::Mkfs {
        image,
        size,
        fs_type,
        block_size,
        inode_size,
        inodes,
        label,
        uuid,
        hash_seed,
        journal_size,
        features,
        force,
        quiet,
    } = cmd;
    let size = parse_size(&size)?;
    let fs_type = FsType::parse(&fs_type).map_err(|e| usage(e.to_string()))?;
    let mut opts = MkfsOptions::new(size, fs_type, now()?);
    opts.block_size = block_size;
    opts.inode_size = inode_size;
    opts.inodes = inodes;
    opts.label = label.map(String::into_bytes);
    opts.uuid = uuid.map(|u| parse_uuid("--uuid", &u)).transpose()?;
    opts.hash_seed = hash_seed
        .map(|u| parse_uuid("--hash-seed", &u))
        .transpose()?;
    opts.journal_size_mb = journal_size;
    opts.features = features;
    let p = mkfs_file(&image, &opts, force).map_err(|e| failure(format!("mkfs: {e}")))?;
    for n in &p.notes {
        say(format_args!("ext3edit: note: {n}"));
    }
    if !quiet {
        super::report::out(&format!("{}: {}\n", image.display(), p.summary()))?;
    }
    Ok(())
}
