#!/usr/bin/env bash
# Images from a tree or a tar of it, side by side (issue 15's benchmark):
# ext3edit mkfs + import-tar, ext3edit mkfs + put -r, mke2fs -d TREE,
# mke2fs -d TARBALL (where this machine's e2fsprogs reads tarballs:
# 1.47.1 and later), genext2fs -d TREE and genext2fs -a TARBALL (ext2, no
# journal: it can make nothing else). Rounds alternate between the tools,
# so a load change hits them all alike. Every result must pass e2fsck -fn.
#
#   bash tools/bench-import.sh TREE [EXT3EDIT]
#
# TREE: a root file system tree (tools/boot-test.sh leaves its debootstrap
# trees in /var/tmp/ext3edit-boot-test/); it is tarred once with GNU tar
# (--numeric-owner --xattrs --acls). EXT3EDIT defaults to
# target/release/ext3edit (built when missing).
# Environment: BENCH_DIR (default $TMPDIR or /tmp), BENCH_ROUNDS (3),
# BENCH_SIZE (3G), BENCH_TYPE (ext4; ext3 also makes sense).
# Prints one tab-separated row per tool: median wall seconds, median
# user+system CPU seconds, largest max RSS KiB, rounds.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TREE=${1:?usage: bench-import.sh TREE [EXT3EDIT]}
X=${2:-$ROOT/target/release/ext3edit}
[ -x "$X" ] || (cd "$ROOT" && cargo build --release --quiet)
ROUNDS=${BENCH_ROUNDS:-3}
SIZE=${BENCH_SIZE:-3G}
TYPE=${BENCH_TYPE:-ext4}
W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/ext3edit-bench-import.XXXXXX")
trap 'rm -rf "$W"' EXIT
bytes=$(numfmt --from=iec "$SIZE")

tar --numeric-owner --xattrs --acls -C "$TREE" -cpf "$W/tree.tar" .
echo "# tree: $TREE, $(tar -tf "$W/tree.tar" | wc -l) entries, $(du -h "$W/tree.tar" | cut -f1) tar"
echo "# $(mke2fs -V 2>&1 | head -1); $("$X" --version); $(genext2fs -V 2>&1 | head -1 || true)"
echo "# image: $TYPE $SIZE; $ROUNDS rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"

names=() cmds=() fsck=()
add() { names+=("$1"); cmds+=("$2"); fsck+=("${3:-1}"); }
add "ext3edit mkfs + import-tar" "$(printf '%q mkfs --type %s %q %s && %q import-tar %q %q' "$X" "$TYPE" "$W/img" "$SIZE" "$X" "$W/img" "$W/tree.tar")"
add "ext3edit mkfs + put -r" "$(printf '%q mkfs --type %s %q %s && %q put -r %q %q /' "$X" "$TYPE" "$W/img" "$SIZE" "$X" "$W/img" "$TREE/.")"
add "mke2fs -d TREE" "$(printf 'mke2fs -q -F -t %s -d %q %q %s' "$TYPE" "$TREE" "$W/img" "$SIZE")"
mkdir -p "$W/probe" && echo x >"$W/probe/f" && tar -C "$W/probe" -cf "$W/probe.tar" .
if mke2fs -q -F -d "$W/probe.tar" "$W/probe.img" 8M >/dev/null 2>&1; then
    add "mke2fs -d TARBALL" "$(printf 'mke2fs -q -F -t %s -d %q %q %s' "$TYPE" "$W/tree.tar" "$W/img" "$SIZE")"
else
    echo "# mke2fs -d TARBALL: not in this e2fsprogs (1.47.1 added it); skipped"
fi
if command -v genext2fs >/dev/null; then
    blocks=$((bytes / 4096))
    inodes=$((bytes / 16384))
    add "genext2fs -d TREE (ext2)" "$(printf 'genext2fs -B 4096 -b %d -N %d -d %q %q' "$blocks" "$inodes" "$TREE" "$W/img")"
    add "genext2fs -a TARBALL (ext2)" "$(printf 'genext2fs -B 4096 -b %d -N %d -a %q %q' "$blocks" "$inodes" "$W/tree.tar" "$W/img")"
else
    echo "# genext2fs: not installed (apt install genext2fs); skipped"
fi

for r in $(seq "$ROUNDS"); do
    for i in "${!names[@]}"; do
        rm -f "$W/img"
        sync
        /usr/bin/time -f '%e %U %S %M' -o "$W/t.$i.$r" bash -c "${cmds[$i]}" >/dev/null 2>"$W/err" ||
            { echo "bench-import: ${names[$i]} failed: $(tail -1 "$W/err")" >&2; exit 1; }
        if [ "$r" = 1 ]; then
            e2fsck -fn "$W/img" >"$W/fsck" 2>&1 ||
                { echo "bench-import: e2fsck -fn fails after ${names[$i]}:" >&2; tail -5 "$W/fsck" >&2; exit 1; }
        fi
    done
done
printf 'tool\twall_s\tcpu_s\tmaxrss_kib\trounds\n'
for i in "${!names[@]}"; do
    cat "$W"/t."$i".* | python3 -c '
import sys, statistics
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
wall = statistics.median(r[0] for r in rows)
cpu = statistics.median(r[1] + r[2] for r in rows)
rss = max(int(r[3]) for r in rows)
print(f"{sys.argv[1]}\t{wall:.2f}\t{cpu:.2f}\t{rss}\t{len(rows)}")' "${names[$i]}"
done
