#!/usr/bin/env bash
# Time `ext3edit rm IMG /big -r` on directories of 12,500 to 100,000 empty
# files, linear and indexed (htree), the rows of "rm -r of a big directory"
# in docs/BENCHMARKS.md.
#
#   bash tools/bench-rm.sh [EXT3EDIT] [OLD_EXT3EDIT]
#
# EXT3EDIT defaults to target/release/ext3edit (built when missing);
# OLD_EXT3EDIT, when given, is timed on the same images for comparison.
# Each image: mke2fs -t ext3 -b 4096 -d over a host directory of N files
# named file-with-a-longish-name-NNNNNNN (a linear directory); the htree
# variant is the same image after e2fsck -fyD. Every result must pass
# e2fsck -fn. Prints one tab-separated row per (entries, kind, binary):
# wall seconds, user+system CPU seconds, max RSS KiB.
# Environment: BENCH_DIR (default $TMPDIR or /tmp), BENCH_SIZES (default
# "12500 25000 50000 100000").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NEW=${1:-$ROOT/target/release/ext3edit}
OLD=${2:-}
[ -x "$NEW" ] || (cd "$ROOT" && cargo build --release --quiet)
W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/ext3edit-bench-rm.XXXXXX")
trap 'rm -rf "$W"' EXIT
printf 'entries\tkind\tbinary\twall_s\tcpu_s\tmaxrss_kib\n'
for n in ${BENCH_SIZES:-12500 25000 50000 100000}; do
    rm -rf "$W/src" && mkdir -p "$W/src/big"
    (cd "$W/src/big" && seq -f 'file-with-a-longish-name-%07g' 1 "$n" | xargs touch)
    mke2fs -q -F -t ext3 -b 4096 -N $((n + 1000)) -O ^dir_index -d "$W/src" "$W/linear.img" 1G >/dev/null 2>&1
    cp --sparse=always "$W/linear.img" "$W/htree.img"
    tune2fs -O dir_index "$W/htree.img" >/dev/null
    e2fsck -fyD "$W/htree.img" >/dev/null 2>&1 || [ $? -le 1 ]
    debugfs -R "htree /big" "$W/htree.img" 2>/dev/null | grep -q "Number of entries" ||
        { echo "bench-rm: /big is not indexed" >&2; exit 1; }
    for kind in linear htree; do
        for which in new old; do
            bin=$NEW; [ $which = old ] && bin=$OLD
            [ -n "$bin" ] || continue
            cp --sparse=always "$W/$kind.img" "$W/work.img"
            /usr/bin/time -f '%e %U %S %M' -o "$W/t" "$bin" rm "$W/work.img" /big -r
            e2fsck -fn "$W/work.img" >/dev/null 2>&1 || { echo "bench-rm: e2fsck failed ($n $kind $which)" >&2; exit 1; }
            read -r wall u s rss < "$W/t"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$kind" "$which" "$wall" \
                "$(echo "$u + $s" | bc)" "$rss"
        done
    done
done
