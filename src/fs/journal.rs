//! The ext3/ext4 journal (JBD2): parse it, replay it, and write
//! transactions to it.
//!
//! ## On-disk layout (all fields big-endian)
//! The journal is a circular log kept in an inode (usually 8). Its block 0
//! is the journal superblock: a 12-byte header (magic `0xC03B3998`, block
//! type, sequence), then `s_blocksize`, `s_maxlen` (blocks in the log),
//! `s_first` (first log block), `s_sequence` (first transaction expected),
//! `s_start` (log block where it starts; 0 means the journal is empty),
//! `s_errno`, and for version 2 the feature sets, the UUID and, with
//! checksums v2/v3, a crc32c of the superblock at byte 0xFC.
//!
//! A transaction is one or more *descriptor* blocks, each followed by the
//! blocks it describes (one tag per block: the filesystem block number and
//! flags `ESCAPE` (the copy's first four bytes were the magic and were
//! zeroed), `SAME_UUID` (no 16-byte UUID follows the tag), `LAST_TAG`),
//! optional *revoke* blocks (filesystem blocks whose earlier copies must
//! not be replayed) and a *commit* block. Every block of transaction `T`
//! carries `T` in its header.
//!
//! ## Recovery
//! Three passes over the log, as the kernel and e2fsck do: *scan* finds the
//! last transaction with a valid commit block (checking checksums where the
//! journal has them), *revoke* collects the revoke records, *replay* copies
//! each logged block that is not revoked by a later or the same
//! transaction to its place. Afterwards the journal restarts empty at the
//! next transaction number. Where the journal is corrupt, replay stops at
//! the last valid transaction and the report says what was skipped.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};

/// Journal block magic.
pub const JBD2_MAGIC: u32 = 0xC03B_3998;
const BT_DESCRIPTOR: u32 = 1;
const BT_COMMIT: u32 = 2;
const BT_SB_V1: u32 = 3;
const BT_SB_V2: u32 = 4;
const BT_REVOKE: u32 = 5;

/// Journal feature bits.
#[allow(missing_docs)]
pub mod jfeature {
    pub const COMPAT_CHECKSUM: u32 = 0x1;
    pub const INCOMPAT_REVOKE: u32 = 0x1;
    pub const INCOMPAT_64BIT: u32 = 0x2;
    pub const INCOMPAT_ASYNC_COMMIT: u32 = 0x4;
    pub const INCOMPAT_CSUM_V2: u32 = 0x8;
    pub const INCOMPAT_CSUM_V3: u32 = 0x10;
    pub const INCOMPAT_FAST_COMMIT: u32 = 0x20;
    /// Incompat features recovery understands.
    pub const INCOMPAT_KNOWN: u32 = INCOMPAT_REVOKE
        | INCOMPAT_64BIT
        | INCOMPAT_ASYNC_COMMIT
        | INCOMPAT_CSUM_V2
        | INCOMPAT_CSUM_V3;
}

const FLAG_ESCAPE: u16 = 1;
const FLAG_SAME_UUID: u16 = 2;
const FLAG_LAST_TAG: u16 = 8;

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn be64(b: &[u8], o: usize) -> u64 {
    (be32(b, o) as u64) << 32 | be32(b, o + 4) as u64
}
fn put_be32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_be_bytes());
}
fn put_be64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_be_bytes());
}

pub use crate::csum::crc32c_raw;

/// The big-endian CRC32 (polynomial 0x04C11DB7) of journal checksum v1.
fn crc32_be(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc ^= (byte as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn tid_gt(x: u32, y: u32) -> bool {
    (x.wrapping_sub(y) as i32) > 0
}
fn tid_geq(x: u32, y: u32) -> bool {
    (x.wrapping_sub(y) as i32) >= 0
}

/// The journal superblock.
#[derive(Clone, Debug)]
pub struct JournalSuperblock {
    raw: Vec<u8>,
    /// 3 (version 1) or 4 (version 2).
    pub version: u32,
    /// Journal block size.
    pub block_size: u32,
    /// Blocks in the journal.
    pub maxlen: u32,
    /// First log block.
    pub first: u32,
    /// First transaction expected in the log.
    pub sequence: u32,
    /// Log block where the log starts; 0 when the journal is empty.
    pub start: u32,
    /// Error recorded by the kernel (negative errno) or 0.
    pub errno: i32,
    /// Compat features.
    pub compat: u32,
    /// Incompat features.
    pub incompat: u32,
    /// Ro-compat features.
    pub ro_compat: u32,
    /// Journal UUID.
    pub uuid: [u8; 16],
    /// Fast-commit blocks at the end of the journal.
    pub num_fc_blocks: u32,
}

impl JournalSuperblock {
    /// Parse and check the journal's block 0.
    pub fn parse(raw: &[u8]) -> Result<Self> {
        if raw.len() < 1024 {
            return Err(Error::corrupt("journal superblock: block too small"));
        }
        if be32(raw, 0) != JBD2_MAGIC {
            return Err(Error::corrupt(format!(
                "journal superblock: bad magic {:#010x}",
                be32(raw, 0)
            )));
        }
        let version = be32(raw, 4);
        if version != BT_SB_V1 && version != BT_SB_V2 {
            return Err(Error::corrupt(format!(
                "journal superblock: unknown block type {version}"
            )));
        }
        let v2 = version == BT_SB_V2;
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&raw[0x30..0x40]);
        let incompat = if v2 { be32(raw, 0x28) } else { 0 };
        let sb = JournalSuperblock {
            raw: raw.to_vec(),
            version,
            block_size: be32(raw, 0x0C),
            maxlen: be32(raw, 0x10),
            first: be32(raw, 0x14),
            sequence: be32(raw, 0x18),
            start: be32(raw, 0x1C),
            errno: be32(raw, 0x20) as i32,
            compat: if v2 { be32(raw, 0x24) } else { 0 },
            incompat,
            ro_compat: if v2 { be32(raw, 0x2C) } else { 0 },
            uuid,
            num_fc_blocks: if v2 && incompat & jfeature::INCOMPAT_FAST_COMMIT != 0 {
                match be32(raw, 0x54) {
                    0 => 256,
                    n => n,
                }
            } else {
                0
            },
        };
        if sb.block_size as usize != raw.len() {
            return Err(Error::corrupt(format!(
                "journal superblock: block size {} differs from the filesystem's {}",
                sb.block_size,
                raw.len()
            )));
        }
        if sb.first == 0 || sb.first >= sb.maxlen {
            return Err(Error::corrupt(format!(
                "journal superblock: first log block {} is outside the journal ({} blocks)",
                sb.first, sb.maxlen
            )));
        }
        if sb.start != 0 && (sb.start < sb.first || sb.start >= sb.last()) {
            return Err(Error::corrupt(format!(
                "journal superblock: log start {} is outside the log ({}..{})",
                sb.start,
                sb.first,
                sb.last()
            )));
        }
        Ok(sb)
    }

    /// The raw block.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// One past the last log block.
    pub fn last(&self) -> u32 {
        self.maxlen.saturating_sub(self.num_fc_blocks)
    }

    /// True with checksum v2 or v3.
    pub fn csum_v2or3(&self) -> bool {
        self.incompat & (jfeature::INCOMPAT_CSUM_V2 | jfeature::INCOMPAT_CSUM_V3) != 0
    }

    fn csum_seed(&self) -> u32 {
        crc32c_raw(!0, &self.uuid)
    }

    /// Bytes per block tag in descriptor blocks.
    pub fn tag_bytes(&self) -> usize {
        if self.incompat & jfeature::INCOMPAT_CSUM_V3 != 0 {
            return 16;
        }
        let mut sz = 12;
        if self.incompat & jfeature::INCOMPAT_CSUM_V2 != 0 {
            sz += 2;
        }
        if self.incompat & jfeature::INCOMPAT_64BIT != 0 {
            sz
        } else {
            sz - 4
        }
    }

    fn tail_size(&self) -> usize {
        if self.csum_v2or3() {
            4
        } else {
            0
        }
    }

    /// Names of the features.
    pub fn feature_names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.compat & jfeature::COMPAT_CHECKSUM != 0 {
            v.push("journal_checksum");
        }
        for (bit, name) in [
            (jfeature::INCOMPAT_REVOKE, "journal_incompat_revoke"),
            (jfeature::INCOMPAT_64BIT, "journal_64bit"),
            (jfeature::INCOMPAT_ASYNC_COMMIT, "journal_async_commit"),
            (jfeature::INCOMPAT_CSUM_V2, "journal_checksum_v2"),
            (jfeature::INCOMPAT_CSUM_V3, "journal_checksum_v3"),
            (jfeature::INCOMPAT_FAST_COMMIT, "journal_fast_commit"),
        ] {
            if self.incompat & bit != 0 {
                v.push(name);
            }
        }
        v
    }

    /// Mark the journal empty, expecting transaction `sequence` next.
    pub fn set_empty(&mut self, sequence: u32) {
        self.set_start(0, sequence);
    }

    /// Point the log at `start` with first transaction `sequence`.
    pub fn set_start(&mut self, start: u32, sequence: u32) {
        self.start = start;
        self.sequence = sequence;
        put_be32(&mut self.raw, 0x1C, start);
        put_be32(&mut self.raw, 0x18, sequence);
        self.update_csum();
    }

    /// Record an error number (negative errno), as e2fsck does after a
    /// failed commit.
    pub fn set_errno(&mut self, errno: i32) {
        self.errno = errno;
        put_be32(&mut self.raw, 0x20, errno as u32);
        self.update_csum();
    }

    fn update_csum(&mut self) {
        if self.version == BT_SB_V2 && self.csum_v2or3() {
            put_be32(&mut self.raw, 0xFC, 0);
            let c = crc32c_raw(!0, &self.raw[..1024]);
            put_be32(&mut self.raw, 0xFC, c);
        }
    }

    /// True when the stored superblock checksum (v2/v3) is right.
    pub fn csum_ok(&self) -> bool {
        if self.version != BT_SB_V2 || !self.csum_v2or3() {
            return true;
        }
        let mut b = self.raw[..1024].to_vec();
        let stored = be32(&b, 0xFC);
        put_be32(&mut b, 0xFC, 0);
        crc32c_raw(!0, &b) == stored
    }
}

/// One transaction found in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnSummary {
    /// Transaction number.
    pub tid: u32,
    /// Log block of its first block.
    pub log_start: u32,
    /// Blocks it logs.
    pub blocks: u32,
    /// Revoke records it carries.
    pub revokes: u32,
    /// True when its commit block was found and valid.
    pub committed: bool,
    /// Commit time (seconds), where recorded.
    pub commit_time: Option<u64>,
}

impl TxnSummary {
    fn starting(tid: u32, log_start: u32) -> Self {
        TxnSummary {
            tid,
            log_start,
            blocks: 0,
            revokes: 0,
            committed: false,
            commit_time: None,
        }
    }
}

/// What a replay does (or did).
#[derive(Clone, Debug, Default)]
pub struct Replay {
    /// Final content of every filesystem block the replay writes.
    pub blocks: BTreeMap<u64, Vec<u8>>,
    /// Transactions replayed, first to last.
    pub transactions: Vec<TxnSummary>,
    /// The first transaction number that was not replayed.
    pub end_tid: u32,
    /// A transaction whose commit block failed its checksum.
    pub failed_commit: Option<u32>,
    /// Logged blocks skipped because of a bad checksum.
    pub bad_blocks: u32,
    /// Logged blocks skipped because a later revoke covers them.
    pub revoked: u32,
    /// An error that stopped recovery early (the replay still applies what
    /// was valid, as e2fsck does), or inconsistent passes.
    pub error: Option<String>,
}

impl Replay {
    /// True when recovery failed part way (a pass failed, or logged blocks
    /// had bad checksums): as e2fsck does, the journal then keeps its
    /// sequence number and the filesystem is marked not clean.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.bad_blocks > 0
    }

    /// True when the replay met any problem worth reporting.
    pub fn had_errors(&self) -> bool {
        self.failed() || self.failed_commit.is_some()
    }
}

/// What the journal needs from the file system under it: its blocks, and
/// where each block of the journal lives. The file system provides it
/// (for the journal inode's block map, or the superblock's backup of it),
/// so that this module does not depend on the file system type.
pub trait JournalStore {
    /// Read filesystem block `b`.
    fn read_block(&self, b: u64) -> Result<Vec<u8>>;
    /// The filesystem block holding journal block `j`; `None` for a hole.
    fn map_block(&self, j: u64) -> Result<Option<u64>>;
}

/// An internal journal, located through its inode.
#[derive(Clone, Debug)]
pub struct Journal {
    /// The journal inode.
    pub ino: u32,
    /// The journal superblock.
    pub sb: JournalSuperblock,
    sb_block: u64,
    /// Blocks in the file system (logged block numbers must be below).
    fs_blocks: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    Scan,
    Revoke,
    Replay,
}

#[derive(Default)]
struct State {
    end_tid: Option<u32>,
    failed_commit: Option<u32>,
    revoke: HashMap<u64, u32>,
    blocks: BTreeMap<u64, Vec<u8>>,
    txns: Vec<TxnSummary>,
    bad_blocks: u32,
    revoked: u32,
    error: Option<String>,
}

struct Tag {
    block: u64,
    flags: u16,
    csum: u32,
}

impl Journal {
    /// Open the journal kept in inode `ino`, `size` bytes long, in a file
    /// system of `block_size`-byte blocks and `fs_blocks` blocks. Only
    /// the journal superblock is located now: the rest of the journal is
    /// mapped block by block (through `store`) when a replay or a commit
    /// needs it, so opening an image does not read the journal's whole
    /// block map.
    pub fn open(
        store: &dyn JournalStore,
        ino: u32,
        size: u64,
        block_size: usize,
        fs_blocks: u64,
    ) -> Result<Journal> {
        let bs = block_size as u64;
        let nblocks = size / bs;
        if nblocks < 2 {
            return Err(Error::corrupt(format!(
                "journal inode {ino}: the journal is {nblocks} blocks long"
            )));
        }
        let sb_block = store
            .map_block(0)
            .map_err(|e| e.at("journal inode"))?
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "journal inode {ino}: block 0 (the journal superblock) is not mapped"
                ))
            })?;
        if sb_block >= fs_blocks {
            return Err(Error::corrupt(format!(
                "journal inode {ino}: block 0 (the journal superblock) maps to block {sb_block}, outside the file system"
            )));
        }
        let jsb = JournalSuperblock::parse(&store.read_block(sb_block)?)
            .map_err(|e| e.at(&format!("journal inode {ino}")))?;
        if !jsb.csum_ok() {
            return Err(Error::corrupt(format!(
                "journal inode {ino}: the journal superblock checksum is wrong; run e2fsck"
            )));
        }
        if jsb.maxlen as u64 > nblocks {
            return Err(Error::corrupt(format!(
                "journal superblock: the journal has {} blocks but says {}",
                nblocks, jsb.maxlen
            )));
        }
        Ok(Journal {
            ino,
            sb: jsb,
            sb_block,
            fs_blocks,
        })
    }

    /// Filesystem block of journal block `j`.
    pub fn phys(&self, store: &dyn JournalStore, j: u32) -> Result<u64> {
        if j == 0 {
            return Ok(self.sb_block);
        }
        if j >= self.sb.maxlen {
            return Err(Error::corrupt(format!(
                "journal inode {}: journal block {j} is beyond the journal ({} blocks)",
                self.ino, self.sb.maxlen
            )));
        }
        store.map_block(j as u64)?.ok_or_else(|| {
            Error::corrupt(format!(
                "journal inode {}: journal block {j} is not mapped",
                self.ino
            ))
        })
    }

    fn read(&self, store: &dyn JournalStore, j: u32) -> Result<Vec<u8>> {
        if j >= self.sb.maxlen {
            return Err(Error::corrupt(
                "journal: log position beyond the journal (corrupted journal superblock)",
            ));
        }
        store.read_block(self.phys(store, j)?)
    }

    fn wrap(&self, j: u32) -> u32 {
        if j >= self.sb.last() {
            j - (self.sb.last() - self.sb.first)
        } else {
            j
        }
    }

    fn tags(&self, blk: &[u8]) -> Vec<Tag> {
        let tb = self.sb.tag_bytes();
        let end = blk.len() - self.sb.tail_size();
        let v3 = self.sb.incompat & jfeature::INCOMPAT_CSUM_V3 != 0;
        let is64 = self.sb.incompat & jfeature::INCOMPAT_64BIT != 0;
        let mut out = Vec::new();
        let mut p = 12;
        while p + tb <= end {
            let flags = be16(blk, p + 6);
            let mut block = be32(blk, p) as u64;
            if is64 {
                block |= (be32(blk, p + 8) as u64) << 32;
            }
            let csum = if v3 {
                be32(blk, p + 12)
            } else {
                be16(blk, p + 4) as u32
            };
            out.push(Tag { block, flags, csum });
            p += tb;
            if flags & FLAG_SAME_UUID == 0 {
                p += 16;
            }
            if flags & FLAG_LAST_TAG != 0 {
                break;
            }
        }
        out
    }

    fn tail_csum_ok(&self, blk: &[u8]) -> bool {
        if !self.sb.csum_v2or3() {
            return true;
        }
        let n = blk.len();
        let stored = be32(blk, n - 4);
        let mut b = blk.to_vec();
        put_be32(&mut b, n - 4, 0);
        crc32c_raw(self.sb.csum_seed(), &b) == stored
    }

    fn commit_csum_ok(&self, blk: &[u8]) -> bool {
        if !self.sb.csum_v2or3() {
            return true;
        }
        let stored = be32(blk, 16);
        let mut b = blk.to_vec();
        put_be32(&mut b, 16, 0);
        crc32c_raw(self.sb.csum_seed(), &b) == stored
    }

    fn data_csum_ok(&self, tag: &Tag, data: &[u8], seq: u32) -> bool {
        if !self.sb.csum_v2or3() {
            return true;
        }
        let c = crc32c_raw(self.sb.csum_seed(), &seq.to_be_bytes());
        let c = crc32c_raw(c, data);
        if self.sb.incompat & jfeature::INCOMPAT_CSUM_V3 != 0 {
            tag.csum == c
        } else {
            tag.csum == c & 0xffff
        }
    }

    /// Work out what recovery writes, without writing anything.
    pub fn plan_replay(&self, store: &dyn JournalStore) -> Result<Replay> {
        if self.sb.incompat & jfeature::INCOMPAT_FAST_COMMIT != 0 {
            return Err(Error::Unsupported(
                "journals with fast commits cannot be replayed yet".into(),
            ));
        }
        let unknown = self.sb.incompat & !jfeature::INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(Error::Unsupported(format!(
                "journal has unknown incompatible features {unknown:#x}"
            )));
        }
        let mut st = State::default();
        if self.sb.start == 0 {
            return Ok(Replay {
                end_tid: self.sb.sequence,
                ..Default::default()
            });
        }
        for pass in [Pass::Scan, Pass::Revoke, Pass::Replay] {
            if let Err(e) = self.pass(store, pass, &mut st) {
                // e2fsck applies nothing when a pass fails; say why.
                st.error = Some(e.to_string());
                st.blocks.clear();
                break;
            }
        }
        let end = st.end_tid.unwrap_or(self.sb.sequence);
        st.txns.retain(|t| tid_gt(end, t.tid));
        Ok(Replay {
            blocks: st.blocks,
            transactions: st.txns,
            end_tid: end,
            failed_commit: st.failed_commit,
            bad_blocks: st.bad_blocks,
            revoked: st.revoked,
            error: st.error,
        })
    }

    fn pass(&self, store: &dyn JournalStore, pass: Pass, st: &mut State) -> Result<()> {
        let bs = self.sb.block_size as usize;
        let v1_csum = self.sb.compat & jfeature::COMPAT_CHECKSUM != 0;
        let mut next_tid = self.sb.sequence;
        let mut pos = self.sb.start;
        let mut crc32_sum: u32 = !0;
        let mut need_check_commit_time = false;
        let mut commit_time: u64 = 0;
        let mut last_commit_time: u64 = 0;
        let mut cur = TxnSummary::starting(next_tid, pos);
        let mut guard = 0u64;
        'walk: loop {
            guard += 1;
            if guard > 4 * self.sb.maxlen as u64 + 16 {
                return Err(Error::corrupt("journal: the log does not end"));
            }
            if pass != Pass::Scan && tid_geq(next_tid, st.end_tid.unwrap_or(next_tid)) {
                break;
            }
            let blk = self.read(store, pos)?;
            pos = self.wrap(pos + 1);
            if be32(&blk, 0) != JBD2_MAGIC {
                break;
            }
            let btype = be32(&blk, 4);
            let seq = be32(&blk, 8);
            if seq != next_tid {
                break;
            }
            match btype {
                BT_DESCRIPTOR => {
                    if !self.tail_csum_ok(&blk) {
                        if pass != Pass::Scan {
                            return Err(Error::corrupt(format!(
                                "journal: invalid checksum in descriptor block at log block {}",
                                pos.wrapping_sub(1)
                            )));
                        }
                        need_check_commit_time = true;
                    }
                    let tags = self.tags(&blk);
                    if pass == Pass::Scan {
                        cur.blocks += tags.len() as u32;
                    }
                    if pass != Pass::Replay {
                        if pass == Pass::Scan
                            && v1_csum
                            && !need_check_commit_time
                            && st.end_tid.is_none()
                        {
                            crc32_sum = crc32_be(crc32_sum, &blk);
                            for _ in 0..tags.len() {
                                let d = self.read(store, pos)?;
                                pos = self.wrap(pos + 1);
                                crc32_sum = crc32_be(crc32_sum, &d);
                            }
                            continue;
                        }
                        pos = self.wrap(pos + tags.len() as u32);
                        continue;
                    }
                    for tag in tags {
                        let io = pos;
                        pos = self.wrap(pos + 1);
                        let mut data = self.read(store, io)?;
                        if let Some(&rt) = st.revoke.get(&tag.block) {
                            if !tid_gt(next_tid, rt) {
                                st.revoked += 1;
                                continue;
                            }
                        }
                        if !self.data_csum_ok(&tag, &data, seq) {
                            st.bad_blocks += 1;
                            continue;
                        }
                        if tag.flags & FLAG_ESCAPE != 0 {
                            put_be32(&mut data, 0, JBD2_MAGIC);
                        }
                        if tag.block >= self.fs_blocks || data.len() != bs {
                            st.bad_blocks += 1;
                            continue;
                        }
                        st.blocks.insert(tag.block, data);
                    }
                }
                BT_COMMIT => {
                    let mut chksum_error = false;
                    if pass == Pass::Scan && v1_csum {
                        let found = be32(&blk, 16);
                        if st.end_tid.is_some() {
                            st.failed_commit = st.end_tid;
                            continue 'walk;
                        }
                        let (ctype, csize) = (blk[12], blk[13]);
                        let matches = crc32_sum == found && ctype == 1 && csize == 4;
                        let unused = ctype == 0 && csize == 0 && found == 0;
                        if !(matches || unused) {
                            chksum_error = true;
                        }
                        crc32_sum = !0;
                    }
                    if pass == Pass::Scan && (chksum_error || !self.commit_csum_ok(&blk)) {
                        if commit_time < last_commit_time {
                            break 'walk; // stale block: end of a valid log
                        }
                        st.end_tid = Some(next_tid);
                        if self.sb.incompat & jfeature::INCOMPAT_ASYNC_COMMIT == 0 {
                            st.failed_commit = Some(next_tid);
                            continue 'walk;
                        }
                    }
                    if pass == Pass::Scan {
                        commit_time = be64(&blk, 48);
                        if need_check_commit_time {
                            if commit_time >= last_commit_time {
                                return Err(Error::corrupt(format!(
                                    "journal: invalid checksum found in transaction {next_tid}"
                                )));
                            }
                            break 'walk; // stale data: end the log here
                        }
                        last_commit_time = commit_time;
                        cur.committed = true;
                        cur.commit_time = Some(commit_time);
                        st.txns.push(cur.clone());
                    }
                    next_tid = next_tid.wrapping_add(1);
                    cur = TxnSummary::starting(next_tid, pos);
                }
                BT_REVOKE => {
                    if pass == Pass::Scan && !self.tail_csum_ok(&blk) {
                        need_check_commit_time = true;
                    }
                    let rcount = be32(&blk, 12) as usize;
                    let rec = if self.sb.incompat & jfeature::INCOMPAT_64BIT != 0 {
                        8
                    } else {
                        4
                    };
                    if pass == Pass::Scan {
                        cur.revokes += (rcount.saturating_sub(16) / rec) as u32;
                    }
                    if pass != Pass::Revoke {
                        continue;
                    }
                    if rcount > bs - self.sb.tail_size() {
                        return Err(Error::corrupt(format!(
                            "journal: revoke block of transaction {next_tid} claims {rcount} bytes"
                        )));
                    }
                    let mut off = 16;
                    while off + rec <= rcount {
                        let b = if rec == 8 {
                            be64(&blk, off)
                        } else {
                            be32(&blk, off) as u64
                        };
                        off += rec;
                        let e = st.revoke.entry(b).or_insert(next_tid);
                        if tid_gt(next_tid, *e) {
                            *e = next_tid;
                        }
                    }
                }
                _ => break,
            }
        }
        if pass == Pass::Scan {
            if st.end_tid.is_none() {
                st.end_tid = Some(next_tid);
            }
        } else if st.end_tid != Some(next_tid) {
            st.error = Some(format!(
                "journal: recovery pass ended at transaction {next_tid}, expected {}",
                st.end_tid.unwrap_or(0)
            ));
        }
        Ok(())
    }

    /// The log blocks of one transaction that logs `blocks` (filesystem
    /// block number and content), as transaction `tid`, starting at the
    /// first log block. Returns (journal block, content) pairs: descriptor
    /// blocks with the copies they describe, then the commit block.
    /// Journals with checksums v2/v3 get them.
    pub fn build_transaction(
        &self,
        tid: u32,
        blocks: &[(u64, &[u8])],
        now: i64,
    ) -> Result<Vec<(u32, Vec<u8>)>> {
        let bs = self.sb.block_size as usize;
        let tb = self.sb.tag_bytes();
        let tail = self.sb.tail_size();
        let need = self.transaction_blocks(blocks.len());
        // One block stays free after the commit block (it is zeroed to end
        // the log there).
        let room = (self.sb.last() - self.sb.first) as usize - 1;
        if need > room {
            return Err(Error::NoSpace(format!(
                "the change needs {need} journal blocks but the journal holds {room}; split it, or use --no-journal"
            )));
        }
        if self.sb.incompat & jfeature::INCOMPAT_64BIT == 0
            && blocks.iter().any(|(b, _)| *b > u32::MAX as u64)
        {
            return Err(Error::Invalid(
                "block number too large for a 32-bit journal".into(),
            ));
        }
        let v3 = self.sb.incompat & jfeature::INCOMPAT_CSUM_V3 != 0;
        let seed = self.sb.csum_seed();
        let mut out = Vec::new();
        let mut pos = self.sb.first;
        let mut i = 0;
        while i < blocks.len() {
            let mut desc = vec![0u8; bs];
            put_be32(&mut desc, 0, JBD2_MAGIC);
            put_be32(&mut desc, 4, BT_DESCRIPTOR);
            put_be32(&mut desc, 8, tid);
            let desc_pos = pos;
            pos += 1;
            let mut p = 12;
            let mut copies = Vec::new();
            let mut first = true;
            while i < blocks.len() {
                let extra = if first { 16 } else { 0 };
                if p + tb + extra > bs - tail {
                    break;
                }
                let (fsb, data) = blocks[i];
                let mut copy = data.to_vec();
                let mut flags: u16 = 0;
                if be32(&copy, 0) == JBD2_MAGIC {
                    put_be32(&mut copy, 0, 0);
                    flags |= FLAG_ESCAPE;
                }
                if !first {
                    flags |= FLAG_SAME_UUID;
                }
                put_be32(&mut desc, p, fsb as u32);
                if self.sb.incompat & jfeature::INCOMPAT_64BIT != 0 {
                    put_be32(&mut desc, p + 8, (fsb >> 32) as u32);
                }
                if self.sb.csum_v2or3() {
                    let c = crc32c_raw(crc32c_raw(seed, &tid.to_be_bytes()), &copy);
                    if v3 {
                        put_be32(&mut desc, p + 12, c);
                    } else {
                        desc[p + 4..p + 6].copy_from_slice(&(c as u16).to_be_bytes());
                    }
                }
                if v3 {
                    put_be32(&mut desc, p + 4, flags as u32);
                } else {
                    desc[p + 6..p + 8].copy_from_slice(&flags.to_be_bytes());
                }
                let tag_at = p;
                p += tb;
                if first {
                    desc[p..p + 16].copy_from_slice(&self.sb.uuid);
                    p += 16;
                }
                first = false;
                copies.push((tag_at, copy));
                i += 1;
            }
            // Mark the last tag.
            if let Some((tag_at, _)) = copies.last() {
                // The low 16 bits of the flags sit at byte 6 of both tag layouts.
                let fo = tag_at + 6;
                let f = be16(&desc, fo) | FLAG_LAST_TAG;
                desc[fo..fo + 2].copy_from_slice(&f.to_be_bytes());
            }
            if tail > 0 {
                let c = crc32c_raw(seed, &desc);
                put_be32(&mut desc, bs - 4, c);
            }
            out.push((desc_pos, desc));
            for (_, copy) in copies {
                out.push((pos, copy));
                pos += 1;
            }
        }
        let mut commit = vec![0u8; bs];
        put_be32(&mut commit, 0, JBD2_MAGIC);
        put_be32(&mut commit, 4, BT_COMMIT);
        put_be32(&mut commit, 8, tid);
        put_be64(&mut commit, 48, now.max(0) as u64);
        if self.sb.csum_v2or3() {
            let c = crc32c_raw(seed, &commit);
            put_be32(&mut commit, 16, c);
        } else if self.sb.compat & jfeature::COMPAT_CHECKSUM != 0 {
            let mut crc = !0u32;
            for (_, b) in &out {
                crc = crc32_be(crc, b);
            }
            commit[12] = 1; // JBD2_CRC32_CHKSUM
            commit[13] = 4;
            put_be32(&mut commit, 16, crc);
        }
        out.push((pos, commit));
        Ok(out)
    }

    /// Log blocks a transaction of `n` blocks takes.
    pub fn transaction_blocks(&self, n: usize) -> usize {
        let bs = self.sb.block_size as usize;
        let usable = bs - 12 - self.sb.tail_size() - 16;
        let per_desc = (usable / self.sb.tag_bytes()).max(1);
        n + n.div_ceil(per_desc) + 1
    }

    /// Blocks a transaction may log at most.
    pub fn capacity(&self) -> usize {
        let room = (self.sb.last() - self.sb.first) as usize - 1;
        let mut n = room.saturating_sub(2);
        while n > 0 && self.transaction_blocks(n) > room {
            n -= 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A journal of 64 blocks at filesystem blocks 100..164, in memory.
    struct MemStore {
        blocks: RefCell<HashMap<u64, Vec<u8>>>,
    }

    impl JournalStore for MemStore {
        fn read_block(&self, b: u64) -> Result<Vec<u8>> {
            Ok(self
                .blocks
                .borrow()
                .get(&b)
                .cloned()
                .unwrap_or_else(|| vec![0; 1024]))
        }
        fn map_block(&self, j: u64) -> Result<Option<u64>> {
            Ok((j < 64).then_some(100 + j))
        }
    }

    fn jsb(start: u32, sequence: u32) -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        put_be32(&mut b, 0, JBD2_MAGIC);
        put_be32(&mut b, 4, BT_SB_V2);
        put_be32(&mut b, 0x0C, 1024);
        put_be32(&mut b, 0x10, 64);
        put_be32(&mut b, 0x14, 1);
        put_be32(&mut b, 0x18, sequence);
        put_be32(&mut b, 0x1C, start);
        put_be32(&mut b, 0x28, jfeature::INCOMPAT_REVOKE);
        b
    }

    #[test]
    fn replays_through_any_store_without_a_file_system() {
        let store = MemStore {
            blocks: RefCell::new(HashMap::new()),
        };
        store.blocks.borrow_mut().insert(100, jsb(0, 7));
        let j = Journal::open(&store, 8, 64 * 1024, 1024, 1000).unwrap();
        assert_eq!(j.plan_replay(&store).unwrap().blocks.len(), 0);
        // One transaction logging block 500, written into the log, and the
        // journal superblock pointed at it.
        let data = vec![0x5Au8; 1024];
        let log = j
            .build_transaction(7, &[(500, &data)], 1_700_000_000)
            .unwrap();
        for (pos, b) in log {
            store
                .blocks
                .borrow_mut()
                .insert(j.phys(&store, pos).unwrap(), b);
        }
        store.blocks.borrow_mut().insert(100, jsb(1, 7));
        let j = Journal::open(&store, 8, 64 * 1024, 1024, 1000).unwrap();
        let r = j.plan_replay(&store).unwrap();
        assert_eq!(r.transactions.len(), 1);
        assert_eq!(r.blocks.get(&500), Some(&data));
        assert_eq!(r.end_tid, 8);
        // A block number past the file system's end is not replayed.
        let j = Journal::open(&store, 8, 64 * 1024, 1024, 400).unwrap();
        let r = j.plan_replay(&store).unwrap();
        assert!(r.blocks.is_empty() && r.bad_blocks == 1);
        // A journal whose superblock is not mapped is refused.
        struct Holes;
        impl JournalStore for Holes {
            fn read_block(&self, _: u64) -> Result<Vec<u8>> {
                Ok(vec![0; 1024])
            }
            fn map_block(&self, _: u64) -> Result<Option<u64>> {
                Ok(None)
            }
        }
        let e = Journal::open(&Holes, 8, 64 * 1024, 1024, 1000).unwrap_err();
        assert!(e.to_string().contains("not mapped"), "{e}");
    }
}
