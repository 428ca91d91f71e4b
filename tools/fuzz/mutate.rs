//! Structural mutations: find where an image keeps its metadata by simple
//! offset math over the raw bytes (no trust in any of it: every number is
//! bounds-checked), then flip bits and overwrite bytes and fields there.
//!
//! The offsets, from the ext2/3/4 on-disk format:
//! - superblock at byte 1024, 1024 bytes: inodes_count @0, blocks_count_lo
//!   @4, first_data_block @20, log_block_size @24, blocks_per_group @32,
//!   inodes_per_group @40, magic 0xEF53 @56, rev_level @76, inode_size @88,
//!   feature_incompat @96 (0x80 = 64bit), journal_inum @224, desc_size @254,
//!   blocks_count_hi @0x150;
//! - group descriptors in the block after first_data_block, 32 bytes each
//!   (desc_size with 64bit): block bitmap @0, inode bitmap @4, inode table
//!   @8 (high halves @0x20, @0x24, @0x28 with 64bit);
//! - inodes of `inode_size` bytes in the inode tables: mode @0, links @26,
//!   flags @32 (0x80000 = extents), i_block @40 (60 bytes: 12 direct, one
//!   single, double and triple indirect pointer, or an extent header 0xF30A
//!   with entries of 12 bytes), file_acl (xattr block) @104;
//! - the journal's first block is the JBD2 superblock.

/// A seeded xorshift generator: every mutant reproduces from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator for (seed, iteration), decorrelated by splitmix64.
    pub fn new(seed: u64, iteration: u64) -> Rng {
        let mut z = seed ^ iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A byte range of the image that holds one kind of metadata.
#[derive(Clone, Debug)]
pub struct Region {
    pub start: usize,
    pub len: usize,
    pub what: &'static str,
}

fn le16(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]) as u64)
}

fn le32(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64)
}

/// Inodes looked at per image, groups whose tables are mapped, blocks
/// taken per file: enough to reach every structure of a small image.
const MAX_INODES: u64 = 4096;
const MAX_GROUPS: u64 = 32;
const MAX_BLOCKS: usize = 8;

struct Geometry {
    bs: u64,
    ipg: u64,
    isz: u64,
    gdt: u64,
    dsz: u64,
    is64: bool,
    groups: u64,
}

impl Geometry {
    fn inode_table(&self, img: &[u8], g: u64) -> u64 {
        let d = (self.gdt + g * self.dsz) as usize;
        let hi = if self.is64 && self.dsz >= 64 {
            le32(img, d + 0x28) << 32
        } else {
            0
        };
        le32(img, d + 8) | hi
    }
    fn inode_offset(&self, img: &[u8], ino: u64) -> Option<usize> {
        let g = (ino - 1) / self.ipg;
        if g >= self.groups {
            return None;
        }
        let off = self
            .inode_table(img, g)
            .checked_mul(self.bs)?
            .checked_add(((ino - 1) % self.ipg) * self.isz)?;
        (off + self.isz <= img.len() as u64).then_some(off as usize)
    }
}

/// Where the image's metadata lives, by kind.
pub fn regions(img: &[u8]) -> Vec<Region> {
    let n = img.len() as u64;
    let mut out = Vec::new();
    let mut push = |start: u64, len: u64, what: &'static str| {
        if start >= 1024 && start < n && len > 0 {
            let len = len.min(n - start);
            out.push(Region {
                start: start as usize,
                len: len as usize,
                what,
            });
        }
    };
    push(1024, 1024, "superblock");
    if n < 2048 || le16(img, 1024 + 56) != 0xEF53 {
        return out;
    }
    let sb = &img[1024..2048];
    let log = le32(sb, 24);
    if log > 6 {
        return out;
    }
    let bs = 1024u64 << log;
    let first = le32(sb, 20);
    let bpg = le32(sb, 32);
    let ipg = le32(sb, 40);
    let is64 = le32(sb, 96) & 0x80 != 0;
    let blocks = le32(sb, 4) | if is64 { le32(sb, 0x150) << 32 } else { 0 };
    let isz = if le32(sb, 76) >= 1 { le16(sb, 88) } else { 128 };
    let dsz = if is64 { le16(sb, 254).max(32) } else { 32 };
    if bpg == 0 || ipg == 0 || isz < 128 || isz > bs || blocks <= first {
        return out;
    }
    let geo = Geometry {
        bs,
        ipg,
        isz,
        gdt: (first + 1) * bs,
        dsz,
        is64,
        groups: (blocks - first).div_ceil(bpg).min(MAX_GROUPS),
    };
    let all_groups = (blocks - first).div_ceil(bpg);
    push(geo.gdt, (all_groups * dsz).min(4 * bs), "group descriptors");
    for g in 0..geo.groups {
        let d = (geo.gdt + g * dsz) as usize;
        let hi = |o: usize| {
            if is64 && dsz >= 64 {
                le32(img, d + o) << 32
            } else {
                0
            }
        };
        push((le32(img, d) | hi(0x20)) * bs, bs, "block bitmap");
        push((le32(img, d + 4) | hi(0x24)) * bs, bs, "inode bitmap");
        push(
            geo.inode_table(img, g).saturating_mul(bs),
            (ipg * isz).min(4 * bs),
            "inode table",
        );
    }
    let journal = le32(sb, 224);
    let max_ino = le32(sb, 0).min(ipg * geo.groups).min(MAX_INODES);
    for ino in 1..=max_ino {
        let Some(off) = geo.inode_offset(img, ino) else {
            continue;
        };
        let mode = le16(img, off);
        if mode == 0 && ino != journal {
            continue;
        }
        push(off as u64, isz, "inode");
        let kind = mode & 0xF000;
        let size = le32(img, off + 4);
        if kind == 0xA000 && size < 60 && le32(img, off + 28) == 0 {
            continue; // fast symlink: the target is in i_block
        }
        let (data, meta) = block_map(img, &geo, off + 40, le32(img, off + 32) & 0x80000 != 0);
        for (b, what) in meta {
            push(b.saturating_mul(bs), bs, what);
        }
        if ino == journal {
            if let Some(&b) = data.first() {
                push(b.saturating_mul(bs), 1024, "journal superblock");
            }
            for &b in data.iter().skip(1) {
                push(b.saturating_mul(bs), bs, "journal block");
            }
        } else if kind == 0x4000 {
            for &b in &data {
                push(b.saturating_mul(bs), bs, "directory block");
            }
        }
        let acl = le32(img, off + 104);
        if acl != 0 {
            push(acl.saturating_mul(bs), bs, "xattr block");
        }
    }
    out
}

/// The first data blocks of a file and the blocks that map it.
fn block_map(
    img: &[u8],
    geo: &Geometry,
    ib: usize,
    extents: bool,
) -> (Vec<u64>, Vec<(u64, &'static str)>) {
    let mut data = Vec::new();
    let mut meta = Vec::new();
    if extents {
        extent_node(img, geo, ib, 2, &mut data, &mut meta);
    } else {
        for i in 0..12 {
            let b = le32(img, ib + 4 * i);
            if b != 0 && data.len() < MAX_BLOCKS {
                data.push(b);
            }
        }
        for (i, what) in [
            (12, "indirect block"),
            (13, "double indirect block"),
            (14, "triple indirect block"),
        ] {
            let b = le32(img, ib + 4 * i);
            if b != 0 {
                meta.push((b, what));
            }
        }
    }
    (data, meta)
}

/// Walk an extent node at byte `at` (in an inode or a block), `levels` deep.
fn extent_node(
    img: &[u8],
    geo: &Geometry,
    at: usize,
    levels: u32,
    data: &mut Vec<u64>,
    meta: &mut Vec<(u64, &'static str)>,
) {
    if le16(img, at) != 0xF30A {
        return;
    }
    let entries = le16(img, at + 2).min(4) as usize;
    let depth = le16(img, at + 6);
    for e in 0..entries {
        let ent = at + 12 + 12 * e;
        if depth == 0 {
            let mut len = le16(img, ent + 4);
            if len > 32768 {
                len -= 32768;
            }
            let start = (le16(img, ent + 6) << 32) | le32(img, ent + 8);
            for k in 0..len.min(MAX_BLOCKS as u64) {
                if data.len() < MAX_BLOCKS {
                    data.push(start + k);
                }
            }
        } else {
            let leaf = le32(img, ent + 4) | (le16(img, ent + 8) << 32);
            meta.push((leaf, "extent block"));
            if levels > 0 {
                if let Some(b) = leaf.checked_mul(geo.bs) {
                    if b + geo.bs <= img.len() as u64 {
                        extent_node(img, geo, b as usize, levels - 1, data, meta);
                    }
                }
            }
        }
    }
}

/// Apply 1 to 6 mutations (mostly 1 or 2) to `img`; one line per mutation.
pub fn mutate(img: &mut [u8], rng: &mut Rng) -> Vec<String> {
    let regs = regions(img);
    let mut kinds: Vec<&'static str> = regs.iter().map(|r| r.what).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let count = match rng.below(10) {
        0..=4 => 1,
        5..=7 => 2,
        _ => 3 + rng.below(4),
    };
    let mut done = Vec::new();
    for _ in 0..count {
        if img.len() < 2048 {
            break;
        }
        // One in ten anywhere; else a kind of metadata, then one region of it.
        let reg = if rng.below(10) == 0 || kinds.is_empty() {
            Region {
                start: 0,
                len: img.len(),
                what: "anywhere",
            }
        } else {
            let k = kinds[rng.below(kinds.len() as u64) as usize];
            let of: Vec<&Region> = regs.iter().filter(|r| r.what == k).collect();
            of[rng.below(of.len() as u64) as usize].clone()
        };
        let rel = rng.below(reg.len as u64) as usize;
        let o = reg.start + rel;
        let what = apply(img, o, reg.start + reg.len, rng);
        done.push(format!("{}+{:#x} (byte {:#x}): {}", reg.what, rel, o, what));
    }
    done
}

fn apply(img: &mut [u8], o: usize, end: usize, rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=3 => {
            let bit = rng.below(8);
            img[o] ^= 1 << bit;
            format!("flip bit {bit}")
        }
        4 => {
            img[o] = 0;
            "byte = 0".into()
        }
        5 => {
            img[o] = 0xff;
            "byte = 0xff".into()
        }
        6 => {
            let v = rng.next() as u8;
            img[o] = v;
            format!("byte = {v:#x}")
        }
        7 => {
            let o = o & !1;
            let old = le16(img, o);
            let v = match rng.below(6) {
                0 => 0,
                1 => 1,
                2 => 0xffff,
                3 => 0x8000,
                4 => old.wrapping_add(1) & 0xffff,
                _ => old.wrapping_sub(1) & 0xffff,
            };
            img[o..o + 2].copy_from_slice(&(v as u16).to_le_bytes());
            format!("u16 {old:#x} -> {v:#x}")
        }
        8 if o + 4 <= img.len() => {
            let o = o & !3;
            let old = le32(img, o);
            let v = match rng.below(9) {
                0 => 0,
                1 => 1,
                2 => 0xffff_ffff,
                3 => 0x7fff_ffff,
                4 => 0x8000_0000,
                5 => old.wrapping_add(1) & 0xffff_ffff,
                6 => old.wrapping_sub(1) & 0xffff_ffff,
                7 => rng.below(4096),
                _ => (img.len() as u64 / 1024) + rng.below(64),
            };
            img[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes());
            format!("u32 {old:#x} -> {v:#x}")
        }
        _ => {
            let len = (2 + rng.below(31) as usize).min(end - o);
            match rng.below(3) {
                0 => {
                    img[o..o + len].fill(0);
                    format!("{len} bytes = 0")
                }
                1 => {
                    for b in &mut img[o..o + len] {
                        *b = rng.next() as u8;
                    }
                    format!("{len} random bytes")
                }
                _ => {
                    let from = rng.below((img.len() - len) as u64) as usize;
                    img.copy_within(from..from + len, o);
                    format!("{len} bytes copied from {from:#x}")
                }
            }
        }
    }
}

/// Whether the superblock says the journal needs recovery.
pub fn needs_recovery(img: &[u8]) -> bool {
    le32(img, 1024 + 96) & 4 != 0
}
