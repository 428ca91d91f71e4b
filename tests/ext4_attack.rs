//! Attacks on ext4 writing (issue 14): each test is a way a write once left
//! an image that `e2fsck -fn` did not pass silently, read back wrong, or
//! changed on a refused command. Every test failed before its fix.

mod common;

use std::path::Path;

use common::{bytes, fails, fsck_clean, mkfs, ok, Cfg};

fn cfg(fstype: &'static str, block: u32, size_kib: u64) -> Cfg {
    Cfg {
        fstype,
        block,
        inode: 256,
        dir_index: true,
        size_kib,
    }
}

fn small_file(img: &Path, dir: &Path) {
    let s = dir.join("s");
    std::fs::write(&s, b"hi\n").unwrap();
    ok(img, "put", &[s.to_str().unwrap(), "/s"]);
}

/// `truncate` to exactly 2^32 blocks made an extent-mapped file that
/// e2fsck finds too big (its limit is 2^32 blocks less one byte; the
/// kernel's is 2^32 - 1 blocks); on ext3 the limit for extents was applied
/// to files with block pointers, whose reach is far shorter (16 GiB with
/// 1 KiB blocks). The largest size allowed must pass e2fsck, one byte more
/// must be refused with the image unchanged.
#[test]
fn truncate_up_to_the_largest_size_and_no_further() {
    require_e2fsprogs!();
    let bs = 1024u64;
    let indirect_max = (12 + 256 + 256 * 256 + 256 * 256 * 256) * bs;
    for (fstype, max) in [("ext4", ((1u64 << 32) - 1) * bs), ("ext3", indirect_max)] {
        let img = mkfs(&cfg(fstype, 1024, 16 * 1024));
        let p = &img.path;
        small_file(p, img.dir.path());
        for too_big in [max + 1, (1u64 << 32) * bs] {
            let before = bytes(p);
            let err = fails(p, "truncate", &["/s", &too_big.to_string()], 1);
            assert!(err.contains("larger than this filesystem allows"), "{err}");
            assert!(
                before == bytes(p),
                "{fstype}: refused truncate changed the image"
            );
        }
        ok(p, "truncate", &["/s", &max.to_string()]);
        fsck_clean(p);
    }
}
