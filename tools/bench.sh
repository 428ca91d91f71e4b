#!/usr/bin/env bash
# Benchmark ext3edit against debugfs, e2cp and mke2fs -d on the same sparse
# ext3 images, side by side, in one run. Figures go in docs/BENCHMARKS.md.
#
#   bash tools/bench.sh
#   bash tools/bench.sh --base REV     # this build against revision REV
#
# With --base REV the script instead builds REV's release binary in a
# temporary git worktree (its own target dir, target/bench-base), and times
# this build, REV's build and debugfs -w on the same rows in alternating
# order: every pair (round) runs each tool once on its own fresh copy, the
# order reversed every other round, BENCH_PAIRS rounds (default 9). It
# prints medians and ratios (debugfs / ext3edit time within each round, then
# the median of those; > 1 means ext3edit is faster), CPU time, and the
# flushes and system calls of one traced run of each; every result is
# checked as below. Rows: 1 KiB and 10 MiB into 2 and 32 GiB images.
#
# Rows (each row is ONE hyperfine invocation, so its tools are timed under the
# same conditions, one after the other):
#   small-2g    1 KiB file into a 2 GiB image
#   small-32g   1 KiB file into a 32 GiB image
#   small-256g  1 KiB file into a 256 GiB image (extra: opening cost of a write)
#   big-2g      10 MiB random file into a 2 GiB image
#   tree-2g     tree of 10,000 small files (100 dirs x 100 files, 100-2000 B)
#   open        read-only opening cost: ext3edit info / debugfs stat / on
#               2, 32 and 256 GiB images
# Tools: ext3edit (default: journaled commit + fsync), ext3edit --no-journal
# (in place + fsync, like debugfs), --no-sync, --no-journal --no-sync (older
# builds without --no-journal: default and --no-sync only), debugfs -w (one
# `write`, or a generated -f script for the tree), e2cp (e2tools; for the tree
# one `e2cp -a -d IMG:/` invocation fed the list of 10,000 files on stdin),
# and mke2fs -d (tree only: builds a fresh 2 GiB image from the tree).
#
# hyperfine runs with -N (no shell). Before each timed run (warmups included)
# --prepare restores a fresh copy of the base image (cp --sparse=always, then
# `sync FILE` so the copy's own dirty pages are not charged to the tool's
# fsync). Page cache is warm: this measures
# the tools, not the disk. After timing, every (row, tool) is run once more on
# a fresh copy under strace (counts fsync/fdatasync/sync_file_range/syncfs/
# msync: the "flushed" column), then checked: e2fsck -fn must exit 0 and the
# files read back with debugfs (dump / rdump) must equal the inputs.
#
# Environment:
#   BENCH_DIR          parent of the work dir (default $TMPDIR or /tmp)
#   BENCH_OUT          where results are copied at the end (default target/bench)
#   BENCH_RUNS         timed runs per tool for single-file rows (default 20)
#   BENCH_WARMUP       warmup runs for single-file rows (default 3)
#   BENCH_TREE_RUNS    timed runs per tool for the tree row (default 8)
#   BENCH_TREE_WARMUP  warmup runs for the tree row (default 1)
#   BENCH_HUGE=0       skip the 256 GiB image (needs ~5.5 GB free transiently)
#   BENCH_KEEP=1       keep the work dir (images, inputs) for inspection
#   BENCH_NO_BUILD=1   do not run cargo build --release
#   BENCH_PAIRS        rounds of the --base comparison (default 9)
#   BENCH_FSTYPE       ext3 (default) or ext4: the type mke2fs -t makes the
#                      images with (ext4: mke2fs's defaults, metadata_csum,
#                      64bit, flex_bg, extents); mke2fs -d builds the same
#   BENCH_REV=REV      benchmark a committed revision (e.g. HEAD) instead of
#                      the work tree: it is exported with git archive and
#                      built in target/bench-build (useful while the work tree
#                      is mid-edit and does not build)
#
# Needs: hyperfine, e2fsprogs, python3, cargo. Optional: e2tools (e2cp rows
# say "not available" without it), strace (flush column), GNU time (page
# faults). Missing packages are installed with apt-get when run as root.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=
while [ $# -gt 0 ]; do
    case $1 in
    --base) [ $# -ge 2 ] || { echo "bench: --base needs a revision" >&2; exit 2; }
            BASE=$2; shift 2 ;;
    --base=*) BASE=${1#--base=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$BASE" ]; then
    BASE_REV=$(git -C "$ROOT" rev-parse --short "$BASE^{commit}") ||
        { echo "bench: --base $BASE is not a revision" >&2; exit 2; }
fi
PAIRS=${BENCH_PAIRS:-9}
RUNS=${BENCH_RUNS:-20}
WARMUP=${BENCH_WARMUP:-3}
TREE_RUNS=${BENCH_TREE_RUNS:-8}
TREE_WARMUP=${BENCH_TREE_WARMUP:-1}
HUGE=${BENCH_HUGE:-1}
FSTYPE=${BENCH_FSTYPE:-ext3}
case $FSTYPE in ext3|ext4) ;; *) echo "bench: BENCH_FSTYPE must be ext3 or ext4" >&2; exit 2;; esac
OUT=${BENCH_OUT:-$ROOT/target/bench}

say() { printf '\n== [%s] %s\n' "$(date +%T)" "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- installs
apt_install() { # pkg... ; best effort, one package at a time
    [ "$(id -u)" = 0 ] && have apt-get || return 0
    local p updated=0
    for p in "$@"; do
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null 2>&1 && continue
        if [ $updated = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; updated=1; fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null 2>&1 ||
            echo "bench: could not install $p" >&2
    done
}
want=()
have hyperfine || want+=(hyperfine)
{ have debugfs && have mke2fs && have e2fsck; } || want+=(e2fsprogs)
have e2cp || want+=(e2tools)
have python3 || want+=(python3)
have strace || want+=(strace)
[ -x /usr/bin/time ] || want+=(time)
if [ ${#want[@]} -gt 0 ]; then say "installing: ${want[*]}"; apt_install "${want[@]}"; fi
for t in hyperfine debugfs mke2fs e2fsck python3 cargo; do
    have "$t" || { echo "bench: $t is required and missing" >&2; exit 1; }
done
HAVE_E2CP=0; { have e2cp && have e2mkdir; } && HAVE_E2CP=1
HAVE_STRACE=0; have strace && HAVE_STRACE=1
# Filter in the kernel when strace can: tracing every syscall of e2cp's
# 400,000 would take minutes.
STRACE=(strace -f -qq)
[ $HAVE_STRACE = 1 ] && strace -f --seccomp-bpf -qq -e trace=fsync true 2>/dev/null && STRACE+=(--seccomp-bpf)
HAVE_TIME=0; [ -x /usr/bin/time ] && HAVE_TIME=1

# ---------------------------------------------------------------- build
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
if [ -n "${BENCH_REV:-}" ]; then
    REV=$(git -C "$ROOT" rev-parse --short "$BENCH_REV^{commit}")
    say "cargo build --release of $REV (git archive)"
    rm -rf "$ROOT/target/bench-src" && mkdir -p "$ROOT/target/bench-src"
    git -C "$ROOT" archive "$REV" | tar -x -C "$ROOT/target/bench-src"
    (cd "$ROOT/target/bench-src" &&
        CARGO_TARGET_DIR=$ROOT/target/bench-build cargo build --release --quiet)
    E=$ROOT/target/bench-build/release/ext3edit
    VERSION_NOTE="$REV (built from git archive of $BENCH_REV)"
else
    if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
        say "cargo build --release"
        (cd "$ROOT" && cargo build --release --quiet)
    fi
    E=$TARGET/release/ext3edit
    dirty=$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
    VERSION_NOTE="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) (work tree${dirty:+; uncommitted: ${dirty% }})"
fi
[ -x "$E" ] || { echo "bench: $E not built" >&2; exit 1; }

# ---------------------------------------------------------------- work dir
PARENT=${BENCH_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$PARENT"
W=$(mktemp -d "$PARENT/ext3edit-bench.XXXXXX")
IMG=$W/img IN=$W/in R=$W/results
mkdir -p "$IMG" "$IN" "$R"
cleanup() {
    local rc=$?
    mkdir -p "$OUT" && cp -r "$R"/. "$OUT"/ 2>/dev/null || true
    [ -d "$W/base-src" ] && git -C "$ROOT" worktree remove --force "$W/base-src" 2>/dev/null
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work dir kept: $W" >&2
    else rm -rf "$W"; fi
    echo "bench: results in $OUT" >&2
    exit $rc
}
trap cleanup EXIT
q() { printf '%q' "$1"; }   # quote a path for the command strings

# ---------------------------------------------------------------- base build
if [ -n "$BASE" ]; then
    say "cargo build --release of $BASE_REV (git worktree $W/base-src, target/bench-base)"
    git -C "$ROOT" worktree add --detach -q "$W/base-src" "$BASE_REV"
    (cd "$W/base-src" && CARGO_TARGET_DIR=$ROOT/target/bench-base cargo build --release --quiet)
    EB=$W/ext3edit-$BASE_REV
    cp "$ROOT/target/bench-base/release/ext3edit" "$EB"
    git -C "$ROOT" worktree remove --force "$W/base-src"
    HUGE=0
fi

# ---------------------------------------------------------------- machine facts
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    dev=$(df -P "$W" | awk 'NR==2 {print $1}')
    fstype=$(findmnt -n -o FSTYPE -T "$W" 2>/dev/null || stat -f -c %T "$W")
    echo "work dir: $W on $dev, $fstype$(
        b=$(basename "$(readlink -f "$dev" 2>/dev/null || echo "$dev")"); b=${b%%[0-9]*}
        [ -r "/sys/block/$b/queue/rotational" ] && echo ", /sys/block/$b rotational=$(cat /sys/block/$b/queue/rotational)")"
    echo "e2fsprogs: $(mke2fs -V 2>&1 | head -1)"
    echo "images: mke2fs -t $FSTYPE -b 4096"
    echo "hyperfine: $(hyperfine --version)"
    if [ $HAVE_E2CP = 1 ]; then
        echo "e2tools: $(dpkg-query -W -f '${Version}' e2tools 2>/dev/null || echo present)"
    else echo "e2tools: not available"; fi
    echo "ext3edit: $("$E" --version) at $VERSION_NOTE"
    [ -n "$BASE" ] && echo "base: $("$EB" --version) at $BASE_REV (git worktree of $BASE)"
    echo "rustc: $(rustc --version 2>/dev/null)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$R/machine.txt"
say "machine"; cat "$R/machine.txt" >&2

# ---------------------------------------------------------------- images
mkimg() { # name size
    mke2fs -t "$FSTYPE" -q -F -b 4096 "$IMG/$1.tmp" "$2" >/dev/null 2>&1
    # Same content, but the zeroed inode tables become holes: copies are cheap.
    cp --sparse=always "$IMG/$1.tmp" "$IMG/$1.img"
    rm -f "$IMG/$1.tmp"
}
say "making sparse $FSTYPE images (mke2fs -t $FSTYPE -b 4096)"
mkimg base2 2G
mkimg base32 32G
SIZES=(2 32)
if [ "$HUGE" = 1 ]; then
    avail=$(df -Pk "$W" | awk 'NR==2 {print $4}')
    if [ "$avail" -gt $((6 * 1024 * 1024)) ]; then mkimg base256 256G; SIZES+=(256)
    else echo "bench: less than 6 GiB free, skipping the 256 GiB image" >&2; HUGE=0; fi
fi
ls -ls "$IMG" >&2

# ---------------------------------------------------------------- inputs
say "making inputs"
head -c 1024 /dev/urandom > "$IN/small.bin"
head -c $((10 * 1024 * 1024)) /dev/urandom > "$IN/big.bin"
[ -n "$BASE" ] || python3 - "$IN" <<'EOF'
import os, random, sys
base = sys.argv[1]
r = random.Random(42)
root = os.path.join(base, "treeroot", "tree")
script = [f"mkdir /tree"]
lst = []
for d in range(100):
    dn = f"d{d:03d}"
    p = os.path.join(root, dn)
    os.makedirs(p)
    script += [f"mkdir /tree/{dn}", f"cd /tree/{dn}"]
    for f in range(100):
        fn = f"f{f:03d}"
        n = r.randint(100, 2000)
        with open(os.path.join(p, fn), "wb") as fh:
            fh.write(os.urandom(n))
        script.append(f"write {os.path.join(p, fn)} {fn}")
        lst.append(f"tree/{dn}/{fn}")
open(os.path.join(base, "tree.debugfs"), "w").write("\n".join(script) + "\n")
open(os.path.join(base, "tree.list"), "w").write("\n".join(lst) + "\n")
EOF
[ -n "$BASE" ] || echo "tree: $(find "$IN/treeroot/tree" -type f | wc -l) files, $(du -sk "$IN/treeroot/tree" | cut -f1) KiB on disk" >&2

# ---------------------------------------------------------------- --base
if [ -n "$BASE" ]; then
    NEW_REV=${VERSION_NOTE%% *}
    say "comparing $NEW_REV with $BASE_REV and debugfs -w: $PAIRS alternating rounds"
    python3 - "$R" "$PAIRS" "$W" "$E" "$EB" "$NEW_REV" "$BASE_REV" "$HAVE_STRACE" \
        "small-2g|1 KiB file into 2 GiB image|$IMG/base2.img|$IN/small.bin|small.bin" \
        "small-32g|1 KiB file into 32 GiB image|$IMG/base32.img|$IN/small.bin|small.bin" \
        "big-2g|10 MiB file into 2 GiB image|$IMG/base2.img|$IN/big.bin|big.bin" \
        "big-32g|10 MiB file into 32 GiB image|$IMG/base32.img|$IN/big.bin|big.bin" <<'PY' | tee "$R/compare.md"
import os, re, resource, statistics, subprocess, sys, time
R, pairs, W, new, base, new_rev, base_rev, have_strace = sys.argv[1:9]
pairs = int(pairs)
rows = [a.split("|") for a in sys.argv[9:]]
tools = [f"ext3edit {new_rev}", f"ext3edit {base_rev}", "debugfs -w"]
if new_rev == base_rev:
    tools[0] += " (this build)"
def cmd(tool, img, src, name):
    if tool == tools[0]: return [new, "put", img, src, "/" + name]
    if tool == tools[1]: return [base, "put", img, src, "/" + name]
    return ["debugfs", "-w", "-R", f"write {src} {name}", img]
def run(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def fresh(base_img, work):
    # The copy's own dirty pages are synced first: not charged to a tool.
    run(["cp", "--sparse=always", base_img, work])
    run(["sync", work])
wall, cpu = {}, {}
with open(os.path.join(R, "compare.tsv"), "w") as raw:
    raw.write("row\tround\ttool\twall_s\tcpu_s\n")
    for row, title, base_img, src, name in rows:
        work = os.path.join(W, row + ".img")
        for t in tools:  # one warm-up run each, not counted
            fresh(base_img, work)
            run(cmd(t, work, src, name))
        for i in range(pairs):
            for t in (tools if i % 2 == 0 else tools[::-1]):
                fresh(base_img, work)
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                run(cmd(t, work, src, name))
                t1 = time.perf_counter()
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                c = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                wall.setdefault((row, t), []).append(t1 - t0)
                cpu.setdefault((row, t), []).append(c)
                raw.write(f"{row}\t{i}\t{t}\t{t1 - t0:.6f}\t{c:.6f}\n")
# One more run of each under strace -c (flushes, system calls); its result
# is checked: e2fsck -fn, and the file read back with debugfs.
FLUSH = {"fsync", "fdatasync", "sync_file_range", "syncfs", "sync", "msync"}
checks = {}
for row, title, base_img, src, name in rows:
    work = os.path.join(W, row + ".img")
    for t in tools:
        fresh(base_img, work)
        fl = calls = "-"
        if have_strace == "1":
            out = os.path.join(W, "strace.out")
            run(["strace", "-f", "-c", "-o", out] + cmd(t, work, src, name))
            fl = calls = 0
            for l in open(out):
                f = l.split()
                if len(f) >= 5 and f[-1] not in ("total", "syscall") and f[3].isdigit():
                    calls += int(f[3])
                    fl += int(f[3]) if f[-1] in FLUSH else 0
        else:
            run(cmd(t, work, src, name))
        fsck = subprocess.run(["e2fsck", "-fn", work], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
        back = os.path.join(W, "back")
        if os.path.exists(back):
            os.remove(back)
        subprocess.run(["debugfs", "-R", f"dump /{name} {back}", work],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        same = os.path.exists(back) and open(back, "rb").read() == open(src, "rb").read()
        checks[(row, t)] = (fl, calls, fsck, same)
med = statistics.median
def ratios(row, a, b):  # time of b / time of a, round by round
    return [y / x for x, y in zip(wall[(row, a)], wall[(row, b)])]
print("```\n" + open(os.path.join(R, "machine.txt")).read().rstrip() + "\n```\n")
print(f"{pairs} rounds; in each, every tool runs once on its own fresh copy, in reversed order every other round. "
      "Wall-clock medians in milliseconds, hot page cache. Ratios: debugfs (or the base) time / ext3edit time "
      "within a round, median over the rounds, [lowest-highest]; > 1 means ext3edit is faster.\n")
print(f"| Row | {tools[0]} ms | {tools[1]} ms | debugfs -w ms | {tools[0]} vs debugfs | {tools[1]} vs debugfs | {tools[0]} vs {tools[1]} |")
print("|---|---:|---:|---:|---:|---:|---:|")
for row, title, *_ in rows:
    ms = [f"{med(wall[(row, t)]) * 1000:.1f}" for t in tools]
    cells = []
    for a, b in ((0, 2), (1, 2), (0, 1)):
        r = ratios(row, tools[a], tools[b])
        cells.append(f"{med(r):.2f}x [{min(r):.2f}-{max(r):.2f}]")
    print(f"| {title} | " + " | ".join(ms + cells) + " |")
print("\nCPU time (user + system, median ms) of the timed runs; flushes and system calls of the traced run; checks of its result:\n")
print("| Row | Tool | CPU ms | flushes | system calls | e2fsck -fn | read back |")
print("|---|---|---:|---:|---:|---|---|")
bad = []
for row, title, *_ in rows:
    for t in tools:
        fl, calls, fsck, same = checks[(row, t)]
        if fsck != 0 or not same:
            bad.append(f"{row}/{t}")
        print(f"| {title} | {t} | {med(cpu[(row, t)]) * 1000:.1f} | {fl} | {calls} | "
              f"{'ok' if fsck == 0 else f'FAILED ({fsck})'} | {'ok' if same else 'MISMATCH'} |")
print("\nVerification: " + ("all results passed e2fsck -fn and read back equal." if not bad
      else "FAILED for " + ", ".join(bad)))
sys.exit(1 if bad else 0)
PY
    echo "load average after timing: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$R/machine.txt" >&2
    exit 0
fi

# ---------------------------------------------------------------- rows
# Every (row, tool) is one line of $R/plan.tsv:
#   row  tool  image-that-is-checked  check  prepare  command
: > "$R/plan.tsv"
: > "$R/rows.tsv"
add() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$R/plan.tsv"; }
# hyperfine runs with -N (no shell): under load its shell-startup correction
# is noisier than a 2 ms command, and can even report 0 ms. So whatever needs
# a shell is a small script, run with sh (~1 ms, only for prepare and e2cp -a).
cat > "$W/prep.sh" <<'EOF'
cp --sparse=always "$1" "$2" && sync "$2"
EOF
cat > "$W/e2cp-tree.sh" <<'EOF'
cd "$1" && exec e2cp -a -d "$2:/" < "$3"
EOF
prep_for() { echo "sh $(q "$W/prep.sh") $(q "$IMG/$1.img") $(q "$2")"; }

# ext3edit variants: the default (journaled when the image has a journal, and
# fsync), and with --no-journal (in place, like debugfs), --no-sync, or both.
# Builds older than --no-journal get only the default and --no-sync.
VARIANTS=("" "--no-sync")
"$E" --help 2>/dev/null | grep -q -- '--no-journal' &&
    VARIANTS=("" "--no-journal" "--no-sync" "--no-journal --no-sync")
add_ext3edit() { # row img check prepare put-args...
    local row=$1 img=$2 check=$3 prep=$4 v; shift 4
    for v in "${VARIANTS[@]}"; do
        add "$row" "ext3edit${v:+ $v}" "$img" "$check" "$prep" "$(q "$E")${v:+ $v} put $*"
    done
}

file_row() { # row base src dest-name title
    local row=$1 base=$2 src=$3 name=$4 title=$5 w=$W/$1.img p
    p=$(prep_for "$base" "$w")
    printf '%s\t%s\n' "$row" "$title" >> "$R/rows.tsv"
    add_ext3edit "$row" "$w" "file:/$name:$src" "$p" "$(q "$w") $(q "$src") /$name"
    add "$row" "debugfs -w" "$w" "file:/$name:$src" "$p" "debugfs -w -R 'write $src $name' $(q "$w")"
    if [ $HAVE_E2CP = 1 ]; then
        add "$row" "e2cp" "$w" "file:/$name:$src" "$p" "e2cp $(q "$src") $(q "$w"):/$name"
    fi
}
file_row small-2g base2 "$IN/small.bin" small.bin "1 KiB file into 2 GiB image"
file_row small-32g base32 "$IN/small.bin" small.bin "1 KiB file into 32 GiB image"
[ "$HUGE" = 1 ] && file_row small-256g base256 "$IN/small.bin" small.bin "1 KiB file into 256 GiB image (extra)"
file_row big-2g base2 "$IN/big.bin" big.bin "10 MiB file into 2 GiB image"

w=$W/tree-2g.img
p=$(prep_for base2 "$w")
printf '%s\t%s\n' tree-2g "10,000-file tree into 2 GiB image" >> "$R/rows.tsv"
add_ext3edit tree-2g "$w" tree "$p" "$(q "$w") $(q "$IN/treeroot/tree") /tree -r"
add tree-2g "debugfs -w" "$w" tree "$p" "debugfs -w -f $(q "$IN/tree.debugfs") $(q "$w")"
if [ $HAVE_E2CP = 1 ]; then
    add tree-2g "e2cp" "$w" tree "$p" "sh $(q "$W/e2cp-tree.sh") $(q "$IN/treeroot") $(q "$w") $(q "$IN/tree.list")"
fi
m=$W/mkfs.img
add tree-2g "mke2fs -d" "$m" tree "rm -f $(q "$m")" "mke2fs -t $FSTYPE -q -F -b 4096 -d $(q "$IN/treeroot") $(q "$m") 2G"

# ---------------------------------------------------------------- timing
run_row() { # row runs warmup
    local row=$1 runs=$2 warmup=$3 args=() tool img check prep cmd r
    args=(-N --style basic --runs "$runs" --warmup "$warmup"
          --export-json "$R/$row.json" --export-markdown "$R/$row.md")
    while IFS=$'\t' read -r r tool img check prep cmd; do
        [ "$r" = "$row" ] && args+=(--prepare "$prep")
    done < "$R/plan.tsv"
    while IFS=$'\t' read -r r tool img check prep cmd; do
        [ "$r" = "$row" ] && args+=(-n "$tool" "$cmd")
    done < "$R/plan.tsv"
    say "hyperfine: $row"
    hyperfine "${args[@]}" >&2
}
T0=$(date +%s)
run_row small-2g "$RUNS" "$WARMUP"
run_row small-32g "$RUNS" "$WARMUP"
[ "$HUGE" = 1 ] && run_row small-256g "$RUNS" "$WARMUP"
run_row big-2g "$RUNS" "$WARMUP"
run_row tree-2g "$TREE_RUNS" "$TREE_WARMUP"

# Opening cost, read-only: nothing to restore between runs.
say "hyperfine: open"
args=(-N --style basic --runs "$RUNS" --warmup "$WARMUP"
      --export-json "$R/open.json" --export-markdown "$R/open.md")
for s in "${SIZES[@]}"; do args+=(-n "ext3edit info, $s GiB" "$(q "$E") info $(q "$IMG/base$s.img")"); done
for s in "${SIZES[@]}"; do args+=(-n "debugfs stat /, $s GiB" "debugfs -R 'stat /' $(q "$IMG/base$s.img")"); done
hyperfine "${args[@]}" >&2
echo "timing took $(( $(date +%s) - T0 )) s" >&2
echo "load average after timing: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$R/machine.txt" >&2

# ---------------------------------------------------------------- verify
say "verifying each tool's result once (e2fsck -fn, read back with debugfs)"
FLUSH_RE='(^|[[:space:]])(fsync|fdatasync|sync_file_range|syncfs|sync|msync)\('
printf 'row\ttool\tflushes\tfsck\tcontent\n' > "$R/verify.tsv"
while IFS=$'\t' read -r row tool img check prep cmd; do
    bash -c "$prep"
    flushes=-
    if [ $HAVE_STRACE = 1 ]; then
        "${STRACE[@]}" -o "$W/strace.out" -e trace=fsync,fdatasync,sync_file_range,syncfs,sync,msync \
            bash -c "$cmd" >/dev/null 2>&1 || echo "bench: FAILED: $cmd" >&2
        flushes=$(grep -cE "$FLUSH_RE" "$W/strace.out" || true)
    else
        bash -c "$cmd" >/dev/null 2>&1 || echo "bench: FAILED: $cmd" >&2
    fi
    fsck=0; e2fsck -fn "$img" > "$W/fsck.out" 2>&1 || fsck=$?
    [ "$fsck" = 0 ] || { echo "bench: e2fsck -fn failed ($fsck) after $tool, row $row:" >&2; tail -20 "$W/fsck.out" >&2; }
    content=ok
    rm -rf "$W/back"; mkdir -p "$W/back"
    case $check in
    file:*)
        rest=${check#file:}; path=${rest%%:*}; src=${rest#*:}
        debugfs -R "dump $path $W/back/f" "$img" >/dev/null 2>&1 || true
        cmp -s "$src" "$W/back/f" || content=MISMATCH ;;
    tree)
        debugfs -R "rdump /tree $W/back" "$img" >/dev/null 2>&1 || true
        diff -rq "$IN/treeroot/tree" "$W/back/tree" > "$W/diff.out" 2>&1 || {
            content=MISMATCH; head -5 "$W/diff.out" >&2; } ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\n' "$row" "$tool" "$flushes" "$fsck" "$content" | tee -a "$R/verify.tsv" >&2
done < "$R/plan.tsv"
rm -rf "$W/back"

# ---------------------------------------------------------------- pages touched
# ext3edit reads through mmap, so its reads do not show as read calls: count
# minor page faults (pages of the image, the binary and the heap touched).
# debugfs reads with pread: count bytes read from the image with strace -y.
say "opening cost: pages touched / bytes read"
printf 'size_gib\text3edit_info_minflt\text3edit_put_minflt\text3edit_put_maxrss_kib\tdebugfs_write_read_kib\tdebugfs_write_read_calls\n' > "$R/open-io.tsv"
for s in "${SIZES[@]}"; do
    a=- b=- c=- d=- e=-
    if [ $HAVE_TIME = 1 ]; then
        a=$(/usr/bin/time -f %R "$E" info "$IMG/base$s.img" 2>&1 >/dev/null | tail -1)
        cp --sparse=always "$IMG/base$s.img" "$W/io.img"; sync "$W/io.img"
        read -r b c < <(/usr/bin/time -f '%R %M' "$E" --no-sync put "$W/io.img" "$IN/small.bin" /small.bin 2>&1 >/dev/null | tail -1)
    fi
    if [ $HAVE_STRACE = 1 ]; then
        cp --sparse=always "$IMG/base$s.img" "$W/io.img"; sync "$W/io.img"
        "${STRACE[@]}" -y -o "$W/strace.out" -e trace=read,pread64,preadv,preadv2 \
            debugfs -w -R "write $IN/small.bin small.bin" "$W/io.img" >/dev/null 2>&1 || true
        read -r d e < <(grep -F "$W/io.img>" "$W/strace.out" | awk -F'= ' '$NF+0 > 0 {n++; s+=$NF} END {printf "%.0f %d\n", s/1024, n}')
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$a" "$b" "$c" "$d" "$e" | tee -a "$R/open-io.tsv" >&2
done
rm -f "$W/io.img"

# ---------------------------------------------------------------- summary
say "summary"
python3 - "$R" "$HAVE_E2CP" <<'EOF' | tee "$R/summary.md"
import json, os, sys, csv
R, have_e2cp = sys.argv[1], sys.argv[2] == "1"
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(R, "rows.tsv"))]
plan = [l.rstrip("\n").split("\t")[1] for l in open(os.path.join(R, "plan.tsv"))]
variants = [t for t in dict.fromkeys(plan) if t.startswith("ext3edit")]
tools = variants + ["debugfs -w", "e2cp", "mke2fs -d"]
ver = {}
with open(os.path.join(R, "verify.tsv")) as f:
    for d in csv.DictReader(f, delimiter="\t"):
        ver[(d["row"], d["tool"])] = d
def load(row):
    res = json.load(open(os.path.join(R, row + ".json")))["results"]
    return {r["command"]: r for r in res}
def ms(x, nd=1):
    return "?" if x is None else f"{x*1000:.{nd}f}"
def cell(r, nd=1):
    return f"{ms(r['mean'], nd)} ± {ms(r['stddev'], nd)}"
def na(row, t):
    if t == "e2cp" and not have_e2cp: return "not available"
    if t == "mke2fs -d": return "n/a"
    return "-"
print("```\n" + open(os.path.join(R, "machine.txt")).read().rstrip() + "\n```\n")
print("Mean ± stddev, milliseconds, hot page cache.\n")
print("| Row | " + " | ".join(tools) + " |")
print("|---|" + "---:|" * len(tools))
timings = {}
for row, title in rows:
    res = load(row); timings[row] = res
    cells = [cell(res[t]) if t in res else na(row, t) for t in tools]
    print(f"| {title} | " + " | ".join(cells) + " |")
print("\nSpeedup of ext3edit over debugfs -w (debugfs time / ext3edit time, by mean / by median; > 1 is faster):\n")
print("| Row | " + " | ".join(variants) + " |")
print("|---|" + "---:|" * len(variants))
for row, title in rows:
    res = timings[row]; dbg = res.get("debugfs -w")
    sp = [f"{dbg['mean']/res[t]['mean']:.2f}x / {dbg['median']/res[t]['median']:.2f}x" if dbg and t in res else "-"
          for t in variants]
    print(f"| {title} | " + " | ".join(sp) + " |")
print("\nFlushed to disk (fsync/fdatasync/sync_file_range/syncfs/msync calls seen by strace in one run) and checks:\n")
print("| Row | Tool | mean ms | flushed | e2fsck -fn | read back |")
print("|---|---|---:|---|---|---|")
for row, title in rows:
    for t in tools:
        r = timings[row].get(t)
        if not r:
            if t == "e2cp" and not have_e2cp:
                print(f"| {title} | e2cp | not available | | | |")
            continue
        v = ver.get((row, t), {})
        fl = v.get("flushes", "-")
        fl = "unknown (no strace)" if fl == "-" else ("no" if fl == "0" else f"yes ({fl} calls)")
        fsck = "ok" if v.get("fsck") == "0" else f"FAILED (exit {v.get('fsck')})"
        print(f"| {title} | {t} | {cell(r)} | {fl} | {fsck} | {v.get('content','-')} |")
op = load("open")
print("\nOpening cost (read-only, mean ± stddev ms):\n")
print("| Command | mean ms | min ms |")
print("|---|---:|---:|")
for name, r in op.items():
    print(f"| {name} | {cell(r, 2)} | {ms(r['min'], 2)} |")
print("\nPages touched / bytes read when writing 1 KiB (one run each):\n")
print("| Image | ext3edit info minor faults | ext3edit put minor faults | ext3edit put max RSS KiB | debugfs write: KiB read from image | debugfs read calls |")
print("|---|---:|---:|---:|---:|---:|")
with open(os.path.join(R, "open-io.tsv")) as f:
    for d in csv.DictReader(f, delimiter="\t"):
        print(f"| {d['size_gib']} GiB | {d['ext3edit_info_minflt']} | {d['ext3edit_put_minflt']} | {d['ext3edit_put_maxrss_kib']} | {d['debugfs_write_read_kib']} | {d['debugfs_write_read_calls']} |")
bad = [k for k, v in ver.items() if v["fsck"] != "0" or v["content"] != "ok"]
print("\nVerification: " + ("all results passed e2fsck -fn and read back equal." if not bad else
      "FAILED for " + ", ".join(f"{r}/{t}" for r, t in bad)))
EOF
if awk -F'\t' 'NR > 1 && ($4 != 0 || $5 != "ok") {bad=1} END {exit !bad}' "$R/verify.tsv"; then
    exit 1
fi
