//! Whole-disk images: the MBR and GPT partition tables, and a
//! [`BlockDevice`] that exposes one partition's bytes.
//!
//! # MBR
//!
//! Sector 0 (512 bytes) ends with `55 aa` at byte 510. Four 16-byte
//! entries start at byte 446: status (`0x00` or `0x80`), CHS start (3
//! bytes, ignored), type (1 byte), CHS end (3, ignored), first sector (u32
//! LE) and sector count (u32 LE). Sectors are 512 bytes. Type `0x05`,
//! `0x0f` or `0x85` is an *extended* partition: its first sector holds an
//! EBR (the same layout) whose first entry is a logical partition, its
//! start relative to that EBR, and whose second entry points to the next
//! EBR, relative to the start of the extended partition. Logical
//! partitions are numbered from 5. The chain is followed at most
//! [`MAX_LOGICAL`] links and never to an EBR seen before or outside the
//! extended partition (a loop or a wild pointer is an error).
//!
//! # GPT
//!
//! A protective MBR (one entry of type `0xee`) is followed, at LBA 1, by
//! the header: `EFI PART`, revision, header size (u32 at 12, 92 or more),
//! header CRC32 (u32 at 16, computed with the field zeroed over the header
//! size), current LBA (24), backup LBA (32), first and last usable LBA (40,
//! 48), disk GUID (56), entries LBA (u64 at 72), entry count (u32 at 80),
//! entry size (u32 at 84, a multiple of 128), CRC32 of the entries array
//! (u32 at 88). Each entry: type GUID (16 bytes), unique GUID (16), first
//! and last LBA (u64, inclusive), attributes (u64), name (72 bytes
//! UTF-16LE). An all-zero type GUID is an unused slot; partition N is slot
//! N-1. The sector size is 512 bytes, or 4096 when the header is found at
//! byte 4096 instead. A primary header with a bad CRC is replaced by the
//! backup header (last sector of the disk) when that one is good.

use std::io;

use crate::device::BlockDevice;
use crate::{Error, Result};

/// The most logical partitions followed in an EBR chain.
pub const MAX_LOGICAL: usize = 256;
/// The largest GPT entries array read (the usual one is 16 KiB).
const MAX_GPT_ENTRIES_BYTES: u64 = 4 << 20;

/// The kind of partition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// A DOS/MBR table (with logical partitions, if any).
    Mbr,
    /// A GUID partition table.
    Gpt,
}

impl TableKind {
    /// "mbr" or "gpt".
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Mbr => "mbr",
            TableKind::Gpt => "gpt",
        }
    }
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its number (1-4 primary, 5 and up logical; GPT: slot + 1).
    pub number: u32,
    /// The type: `0x83` for MBR, the type GUID for GPT.
    pub type_id: String,
    /// What the type means, when known ("Linux filesystem").
    pub type_name: String,
    /// The GPT partition name (empty for MBR).
    pub name: String,
    /// First byte on the disk.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// It holds an ext2/3/4 superblock magic.
    pub is_ext: bool,
}

/// A parsed partition table.
#[derive(Clone, Debug)]
pub struct Table {
    /// MBR or GPT.
    pub kind: TableKind,
    /// Bytes per sector (512, or 4096 for a GPT found there).
    pub sector_size: u64,
    /// The used partitions, in number order (MBR extended containers not
    /// included).
    pub partitions: Vec<Partition>,
}

/// True when `head` (the first bytes of a file) starts with a partition
/// table we read and is not itself an ext2/3/4 image.
pub fn is_disk(head: &[u8]) -> bool {
    if super::is_ext(head) {
        return false;
    }
    let at = |off: usize, m: &[u8]| head.len() >= off + m.len() && &head[off..off + m.len()] == m;
    if at(510, &[0x55, 0xaa]) && (at(512, b"EFI PART") || at(4096, b"EFI PART")) {
        return true;
    }
    at(510, &[0x55, 0xaa]) && mbr_entries_plausible(&head[..512])
}

/// The four entries have valid status bytes and at least one is used.
fn mbr_entries_plausible(s: &[u8]) -> bool {
    let mut used = 0;
    for i in 0..4 {
        let e = &s[446 + 16 * i..462 + 16 * i];
        if e[0] != 0 && e[0] != 0x80 {
            return false;
        }
        if e[4] != 0 {
            used += 1;
        }
    }
    used > 0
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn read(dev: &dyn BlockDevice, off: u64, len: usize, what: &str) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    dev.read_at(off, &mut v).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::corrupt(format!(
            "{what} at byte {off} is past the end of the image ({} bytes)",
            dev.len()
        )),
        _ => Error::io(format!("reading {what} at byte {off}"), e),
    })?;
    Ok(v)
}

/// Read the partition table of a whole-disk image (see the module text).
/// Every partition's `is_ext` is filled in by looking for the ext
/// superblock magic inside it.
pub fn read_table(dev: &dyn BlockDevice) -> Result<Table> {
    let mbr = read(dev, 0, 512, "the MBR")?;
    if mbr[510..512] != [0x55, 0xaa] {
        return Err(Error::corrupt(
            "no partition table: sector 0 does not end with 55 aa",
        ));
    }
    let protective = (0..4).any(|i| mbr[446 + 16 * i + 4] == 0xee);
    let mut t = if protective {
        read_gpt(dev)?
    } else {
        read_mbr(dev, &mbr)?
    };
    for p in &mut t.partitions {
        let mut m = [0u8; 2];
        p.is_ext = p.size >= 1082
            && p.start.checked_add(p.size).is_some_and(|e| e <= dev.len())
            && dev.read_at(p.start + 1080, &mut m).is_ok()
            && m == [0x53, 0xef];
    }
    t.partitions.sort_by_key(|p| p.number);
    Ok(t)
}

fn mbr_type_name(t: u8) -> &'static str {
    match t {
        0x01 | 0x04 | 0x06 | 0x0e => "FAT",
        0x05 | 0x0f | 0x85 => "Extended",
        0x07 => "NTFS/exFAT",
        0x0b | 0x0c => "FAT32",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8e => "Linux LVM",
        0xa5 => "FreeBSD",
        0xee => "GPT protective",
        0xef => "EFI System",
        0xfd => "Linux raid autodetect",
        _ => "unknown",
    }
}

fn is_extended(t: u8) -> bool {
    matches!(t, 0x05 | 0x0f | 0x85)
}

fn read_mbr(dev: &dyn BlockDevice, mbr: &[u8]) -> Result<Table> {
    let mut parts = Vec::new();
    let mut extended = None;
    for i in 0..4 {
        let e = &mbr[446 + 16 * i..462 + 16 * i];
        let (status, ty, lba, count) = (e[0], e[4], le32(e, 8) as u64, le32(e, 12) as u64);
        if status != 0 && status != 0x80 {
            return Err(Error::corrupt(format!(
                "MBR entry {}: status byte {status:#04x} is neither 0x00 nor 0x80",
                i + 1
            )));
        }
        if ty == 0 || count == 0 {
            continue;
        }
        if is_extended(ty) {
            if extended.is_some() {
                return Err(Error::corrupt(format!(
                    "MBR entry {}: a second extended partition",
                    i + 1
                )));
            }
            extended = Some((lba, count));
            continue;
        }
        parts.push(mbr_part(i as u32 + 1, ty, lba * 512, count * 512));
    }
    if let Some((ext_lba, ext_count)) = extended {
        let mut seen = std::collections::HashSet::new();
        let mut ebr_lba = ext_lba;
        let mut number = 5u32;
        loop {
            if !seen.insert(ebr_lba) {
                return Err(Error::corrupt(format!(
                    "the chain of logical partitions loops back to sector {ebr_lba}"
                )));
            }
            if seen.len() > MAX_LOGICAL {
                return Err(Error::corrupt(format!(
                    "more than {MAX_LOGICAL} logical partitions"
                )));
            }
            if ebr_lba < ext_lba || ebr_lba >= ext_lba + ext_count {
                return Err(Error::corrupt(format!(
                    "extended boot record at sector {ebr_lba} is outside the extended partition (sectors {ext_lba}..{})",
                    ext_lba + ext_count
                )));
            }
            let ebr = read(dev, ebr_lba * 512, 512, "an extended boot record")?;
            if ebr[510..512] != [0x55, 0xaa] {
                return Err(Error::corrupt(format!(
                    "extended boot record at sector {ebr_lba} does not end with 55 aa"
                )));
            }
            let (ty, rel, count) = (
                ebr[446 + 4],
                le32(&ebr, 446 + 8) as u64,
                le32(&ebr, 446 + 12) as u64,
            );
            if ty != 0 && count != 0 {
                parts.push(mbr_part(number, ty, (ebr_lba + rel) * 512, count * 512));
                number += 1;
            }
            let next = &ebr[462..478];
            if next[4] == 0 || le32(next, 12) == 0 {
                break;
            }
            ebr_lba = ext_lba + le32(next, 8) as u64;
        }
    }
    Ok(Table {
        kind: TableKind::Mbr,
        sector_size: 512,
        partitions: parts,
    })
}

fn mbr_part(number: u32, ty: u8, start: u64, size: u64) -> Partition {
    Partition {
        number,
        type_id: format!("{ty:#04x}"),
        type_name: mbr_type_name(ty).into(),
        name: String::new(),
        start,
        size,
        is_ext: false,
    }
}

/// A GUID in its usual text form (the first three fields little-endian).
pub fn guid_text(g: &[u8]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{}",
        le32(g, 0),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10..16]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    )
}

fn gpt_type_name(guid: &str) -> &'static str {
    match guid {
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "44479540-F297-41B2-9AF7-D131D5F0458A" => "Linux root (x86)",
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE" => "Linux root (ARM64)",
        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" => "Linux home",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "Linux LVM",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI System",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "Microsoft reserved",
        _ => "unknown",
    }
}

/// Find and check a GPT header: the primary at LBA 1 (512- or 4096-byte
/// sectors), else the backup in the last sector.
fn gpt_header(dev: &dyn BlockDevice) -> Result<(Vec<u8>, u64)> {
    let mut problems = Vec::new();
    for ss in [512u64, 4096] {
        let Ok(h) = read(dev, ss, ss as usize, "the GPT header") else {
            continue;
        };
        if &h[..8] != b"EFI PART" {
            continue;
        }
        match check_header(&h, ss) {
            Ok(()) => return Ok((h, ss)),
            Err(e) => problems.push(format!("primary GPT header at byte {ss}: {e}")),
        }
        // The backup header, in the disk's last sector.
        let last = dev.len() / ss;
        if last >= 2 {
            if let Ok(b) = read(dev, (last - 1) * ss, ss as usize, "the backup GPT header") {
                if &b[..8] == b"EFI PART" && check_header(&b, ss).is_ok() {
                    return Ok((b, ss));
                }
            }
            problems.push("the backup GPT header is missing or damaged too".into());
        }
        break;
    }
    if problems.is_empty() {
        problems.push("a protective MBR but no GPT header (EFI PART) at byte 512 or 4096".into());
    }
    Err(Error::corrupt(problems.join("; ")))
}

fn check_header(h: &[u8], ss: u64) -> std::result::Result<(), String> {
    let size = le32(h, 12) as usize;
    if size < 92 || size as u64 > ss {
        return Err(format!("header size {size} is not between 92 and {ss}"));
    }
    let mut c = h[..size].to_vec();
    c[16..20].fill(0);
    let want = le32(h, 16);
    let got = crc32fast::hash(&c);
    if got != want {
        return Err(format!(
            "header CRC32 is {want:#010x}, the header gives {got:#010x}"
        ));
    }
    Ok(())
}

fn read_gpt(dev: &dyn BlockDevice) -> Result<Table> {
    let (h, ss) = gpt_header(dev)?;
    let entries_lba = le64(&h, 72);
    let count = le32(&h, 80) as u64;
    let esize = le32(&h, 84) as u64;
    if esize < 128 || !esize.is_multiple_of(128) {
        return Err(Error::corrupt(format!(
            "GPT entry size {esize} is not a multiple of 128"
        )));
    }
    let total = count * esize;
    if total > MAX_GPT_ENTRIES_BYTES {
        return Err(Error::corrupt(format!(
            "GPT entries array of {count} x {esize} bytes is implausibly large"
        )));
    }
    let at = entries_lba
        .checked_mul(ss)
        .ok_or_else(|| Error::corrupt(format!("GPT entries LBA {entries_lba} is out of range")))?;
    let arr = read(dev, at, total as usize, "the GPT entries array")?;
    let want = le32(&h, 88);
    let got = crc32fast::hash(&arr);
    if got != want {
        return Err(Error::corrupt(format!(
            "GPT entries array at byte {at}: CRC32 is {got:#010x}, the header says {want:#010x}"
        )));
    }
    let mut parts = Vec::new();
    for (i, e) in arr.chunks_exact(esize as usize).enumerate() {
        if e[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        if last < first {
            return Err(Error::corrupt(format!(
                "GPT partition {}: last sector {last} is before its first {first}",
                i + 1
            )));
        }
        let ty = guid_text(&e[..16]);
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let start = first.checked_mul(ss);
        let size = (last - first + 1).checked_mul(ss);
        let (Some(start), Some(size)) = (start, size) else {
            return Err(Error::corrupt(format!(
                "GPT partition {}: sectors {first}..{last} are out of range",
                i + 1
            )));
        };
        parts.push(Partition {
            number: i as u32 + 1,
            type_name: gpt_type_name(&ty).into(),
            type_id: ty,
            name: String::from_utf16_lossy(&units),
            start,
            size,
            is_ext: false,
        });
    }
    Ok(Table {
        kind: TableKind::Gpt,
        sector_size: ss,
        partitions: parts,
    })
}

impl Partition {
    /// "2 (Linux filesystem, 64 MiB at byte 1048576, ext)" for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {} bytes at byte {}{})",
            self.number,
            self.type_name,
            self.size,
            self.start,
            if self.is_ext { ", ext2/3/4" } else { "" }
        )
    }
}

impl Table {
    /// The partition to open: `wanted`, or the only one holding an ext
    /// file system.
    pub fn select(&self, wanted: Option<u32>) -> Result<&Partition> {
        let list = || {
            if self.partitions.is_empty() {
                "none".to_string()
            } else {
                self.partitions
                    .iter()
                    .map(Partition::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let kind = self.kind.name().to_uppercase();
        match wanted {
            Some(n) => {
                let p = self
                    .partitions
                    .iter()
                    .find(|p| p.number == n)
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                        "--partition {n}: the {kind} disk has no partition {n} (partitions: {})",
                        list()
                    ))
                    })?;
                if !p.is_ext {
                    return Err(Error::Invalid(format!(
                        "--partition {n}: partition {} holds no ext2/3/4 file system",
                        p.describe()
                    )));
                }
                Ok(p)
            }
            None => {
                let ext: Vec<&Partition> = self.partitions.iter().filter(|p| p.is_ext).collect();
                match ext.len() {
                    1 => Ok(ext[0]),
                    0 => Err(Error::Invalid(format!(
                        "a {kind} disk with no ext2/3/4 partition (partitions: {})",
                        list()
                    ))),
                    _ => Err(Error::Invalid(format!(
                        "a {kind} disk with {} ext2/3/4 partitions: pick one with --partition N (partitions: {})",
                        ext.len(),
                        list()
                    ))),
                }
            }
        }
    }
}

/// One partition of a disk: offset `start`, `len` bytes. Reads and writes
/// outside that range are errors (they never reach the rest of the disk).
pub struct PartitionDevice {
    inner: Box<dyn BlockDevice>,
    start: u64,
    len: u64,
}

impl PartitionDevice {
    /// Expose `p` of `inner`; the partition must lie inside the disk.
    pub fn new(inner: Box<dyn BlockDevice>, p: &Partition) -> Result<Self> {
        match p.start.checked_add(p.size) {
            Some(end) if end <= inner.len() => Ok(PartitionDevice {
                inner,
                start: p.start,
                len: p.size,
            }),
            _ => Err(Error::corrupt(format!(
                "partition {} ends past the end of the image ({} bytes): the image is truncated",
                p.describe(),
                inner.len()
            ))),
        }
    }

    fn check(&self, offset: u64, n: usize) -> io::Result<u64> {
        match offset.checked_add(n as u64) {
            Some(end) if end <= self.len => Ok(self.start + offset),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "byte range {offset}+{n} is past the end of the partition ({} bytes)",
                    self.len
                ),
            )),
        }
    }
}

impl BlockDevice for PartitionDevice {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = self.check(offset, buf.len())?;
        self.inner.read_at(at, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let at = self.check(offset, data.len())?;
        self.inner.write_at(at, data)
    }
    fn read_data_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = self.check(offset, buf.len())?;
        self.inner.read_data_at(at, buf)
    }
    fn write_vectored_at(&mut self, offset: u64, bufs: &[&[u8]]) -> io::Result<()> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let at = self.check(offset, total)?;
        self.inner.write_vectored_at(at, bufs)
    }
    fn zero_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let at = self.check(offset, len as usize)?;
        self.inner.zero_range(at, len)
    }
    fn is_hole(&self, offset: u64, len: u64) -> bool {
        self.check(offset, len as usize)
            .is_ok_and(|at| self.inner.is_hole(at, len))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn writable(&self) -> bool {
        self.inner.writable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    fn mbr_entry(s: &mut [u8], i: usize, ty: u8, lba: u32, count: u32) {
        let e = &mut s[446 + 16 * i..462 + 16 * i];
        e[4] = ty;
        e[8..12].copy_from_slice(&lba.to_le_bytes());
        e[12..16].copy_from_slice(&count.to_le_bytes());
    }

    #[test]
    fn ebr_loop_is_an_error() {
        let mut d = vec![0u8; 64 * 512];
        mbr_entry(&mut d[..512], 0, 0x05, 4, 40);
        d[510] = 0x55;
        d[511] = 0xaa;
        // EBR at sector 4: one logical partition, next EBR = itself.
        let e = 4 * 512;
        mbr_entry(&mut d[e..e + 512], 0, 0x83, 1, 8);
        mbr_entry(&mut d[e..e + 512], 1, 0x05, 0, 10);
        d[e + 510] = 0x55;
        d[e + 511] = 0xaa;
        let err = read_table(&MemDevice::new(d)).unwrap_err().to_string();
        assert!(err.contains("loops back to sector 4"), "{err}");
    }

    #[test]
    fn partition_device_refuses_outside() {
        let p = Partition {
            number: 1,
            type_id: "0x83".into(),
            type_name: "Linux".into(),
            name: String::new(),
            start: 1024,
            size: 1024,
            is_ext: true,
        };
        let mut d = PartitionDevice::new(Box::new(MemDevice::new(vec![7u8; 4096])), &p).unwrap();
        let mut b = [0u8; 16];
        assert!(d.read_at(1016, &mut b).is_err());
        assert!(d.write_at(1020, &[1u8; 8]).is_err());
        d.write_at(0, &[1u8; 4]).unwrap();
        d.read_at(0, &mut b).unwrap();
        assert_eq!(&b[..5], &[1, 1, 1, 1, 7]);
        let big = Partition { size: 4096, ..p };
        assert!(PartitionDevice::new(Box::new(MemDevice::new(vec![0u8; 4096])), &big).is_err());
    }
}
