//! Requirement 1: an ext3 file system image, possibly compressed with
//! bzip2, zip or gzip.
//!
//! ext3 here means what an ext3 driver mounts: a journal, and no feature
//! outside ext3's set (extents, 64bit, flex_bg, metadata_csum and the
//! other ext4 features make it an ext4 image, which an old Xen guest
//! kernel refuses).

use super::{Container, Finding, Status};
use crate::layout::feature::*;
use crate::superblock::Superblock;

/// Feature bits an ext3 driver accepts (compat bits are all harmless).
const EXT3_INCOMPAT: u32 = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;
const EXT3_RO_COMPAT: u32 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;

/// Check requirement 1.
pub fn check(sb: &Superblock, container: &Container) -> Finding {
    let mut f = Finding::new(1, "ext3-image", "an ext3 file system image");
    let (incompat, ro_compat) = (sb.incompat, sb.ro_compat);
    let extra: Vec<String> = crate::layout::feature::NAMES
        .iter()
        .filter(|(set, bit, _)| {
            (*set == 1 && incompat & bit != 0 && EXT3_INCOMPAT & bit == 0)
                || (*set == 2 && ro_compat & bit != 0 && EXT3_RO_COMPAT & bit == 0)
        })
        .map(|(_, _, n)| n.to_string())
        .collect();
    let journal = sb.has_compat(COMPAT_HAS_JOURNAL);
    let size_mib = (sb.blocks_count * sb.block_size as u64) >> 20;
    if !extra.is_empty() {
        f.mark(
            Status::Fail,
            format!(
                "ext4 features an ext3 driver refuses: {} ({size_mib} MiB)",
                extra.join(", ")
            ),
        );
        f.fix_by_hand("make the image again as ext3 (mke2fs -t ext3 -d TREE); ext3edit does not remove ext4 features");
    } else if !journal {
        f.mark(Status::Fail, format!("ext2: no journal ({size_mib} MiB)"));
        f.fix_by_hand("add a journal with e2fsprogs: tune2fs -j IMAGE (on the uncompressed image)");
    } else {
        f.saw(format!(
            "ext3: has_journal, {} KiB blocks, {size_mib} MiB",
            sb.block_size / 1024
        ));
    }
    if sb.has_incompat(INCOMPAT_RECOVER) {
        f.mark(
            Status::Warn,
            "the journal needs recovery (the image was not unmounted cleanly); any ext3edit write replays it",
        );
    }
    match container.format.as_str() {
        "" | "raw" => f.saw("not compressed"),
        "bzip2" | "gzip" | "zip" => f.saw(format!("{}-compressed", container.format)),
        other => {
            f.mark(
                Status::Fail,
                format!("{other}-compressed: the cluster takes raw, bzip2, gzip or zip"),
            );
            f.fix_by_hand("repack it: ext3edit pack IMAGE OUT.bz2 --format bz2");
        }
    }
    f
}
