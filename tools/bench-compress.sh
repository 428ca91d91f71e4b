#!/usr/bin/env bash
# Time pack/unpack of ext3edit in every format side by side with the
# standard tools, on one image (default: a 2 GiB root image made by
# tools/make-root-image.sh). Prints a Markdown table (seconds, output size).
#   tools/bench-compress.sh [IMAGE] [THREADS]
# Needs: bzip2 lbzip2 pbzip2 gzip pigz xz-utils zip unzip (apt-get install).
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:-/tmp/root2g.img}
n=${2:-2}
[ -f "$img" ] || tools/make-root-image.sh "$img" 2G
cargo build --release -q
x=$PWD/target/release/ext3edit
w=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
trap 'rm -rf "$w"' EXIT
export EXT3EDIT_NO_PROGRESS=1
# Warm the page cache.
cat "$img" >/dev/null
t() { # label, output file, command...
  local label=$1 out=$2; shift 2
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "| $label | failed | |"; return; }
  e=$(date +%s.%N)
  local size=""
  [ -n "$out" ] && [ -f "$out" ] && size=$(stat -c %s "$out")
  printf '| %s | %.2f | %s |\n' "$label" "$(echo "$e - $s" | bc)" "$size"
}
echo "image: $(stat -c %s "$img") bytes ($(du -h "$img" | cut -f1) allocated), $n threads, $(nproc) cores"
echo
echo "| what | seconds | output bytes |"
echo "| --- | ---: | ---: |"
t "ext3edit pack bz2 -9" "$w/e.bz2" "$x" pack "$img" "$w/e.bz2" --threads "$n"
t "lbzip2 -9 -n$n" "$w/l.bz2" sh -c "lbzip2 -9 -n$n -c '$img' > '$w/l.bz2'"
t "pbzip2 -9 -p$n" "$w/p.bz2" sh -c "pbzip2 -9 -p$n -c '$img' > '$w/p.bz2'"
t "bzip2 -9" "$w/b.bz2" sh -c "bzip2 -9 -c '$img' > '$w/b.bz2'"
t "ext3edit unpack (own bz2)" "" "$x" unpack "$w/e.bz2" "$w/o1" --threads "$n"
t "ext3edit unpack (bzip2's single stream)" "" "$x" unpack "$w/b.bz2" "$w/o2" --threads "$n"
t "lbzip2 -d -n$n (own bz2)" "" sh -c "lbzip2 -d -n$n -c '$w/e.bz2' > '$w/o3'"
t "lbzip2 -d -n$n (bzip2's)" "" sh -c "lbzip2 -d -n$n -c '$w/b.bz2' > '$w/o4'"
t "pbzip2 -d -p$n (own bz2)" "" sh -c "pbzip2 -d -p$n -c '$w/e.bz2' > '$w/o5'"
t "bunzip2 (own bz2)" "" sh -c "bunzip2 -c '$w/e.bz2' > '$w/o6'"
rm -f "$w"/o*
t "ext3edit pack gz -6" "$w/e.gz" "$x" pack "$img" "$w/e.gz" --threads "$n"
t "pigz -6 -p$n" "$w/p.gz" sh -c "pigz -6 -p$n -c '$img' > '$w/p.gz'"
t "gzip -6" "$w/g.gz" sh -c "gzip -6 -c '$img' > '$w/g.gz'"
t "ext3edit unpack (own gz)" "" "$x" unpack "$w/e.gz" "$w/o1" --threads "$n"
t "ext3edit unpack (gzip's)" "" "$x" unpack "$w/g.gz" "$w/o2" --threads "$n"
t "pigz -d (own gz)" "" sh -c "pigz -d -c '$w/e.gz' > '$w/o3'"
t "pigz -d (gzip's)" "" sh -c "pigz -d -c '$w/g.gz' > '$w/o5'"
t "gunzip (own gz)" "" sh -c "gunzip -c '$w/e.gz' > '$w/o4'"
rm -f "$w"/o*
t "ext3edit pack xz -6" "$w/e.xz" "$x" pack "$img" "$w/e.xz" --threads "$n"
t "xz -6 -T$n" "$w/x.xz" sh -c "xz -6 -T$n -c '$img' > '$w/x.xz'"
t "ext3edit unpack (own xz)" "" "$x" unpack "$w/e.xz" "$w/o1" --threads "$n"
t "xz -d -T$n (own xz)" "" sh -c "xz -d -T$n -c '$w/e.xz' > '$w/o2'"
rm -f "$w"/o*
t "ext3edit pack zip -6" "$w/e.zip" "$x" pack "$img" "$w/e.zip" --threads "$n"
t "zip -6" "$w/z.zip" sh -c "cd '$(dirname "$img")' && zip -q -6 '$w/z.zip' '$(basename "$img")'"
t "ext3edit unpack (own zip)" "" "$x" unpack "$w/e.zip" "$w/o1" --threads "$n"
t "unzip -p (own zip)" "" sh -c "unzip -p '$w/e.zip' > '$w/o2'"

# Editing: one `put` of a small file, in one command, into an image packed
# by another tool (the full path: decompress, edit, pack as seekable) and
# into one packed by ext3edit (seekable: only touched chunks), against the
# manual cycle (decompress, debugfs write, compress, sync, rename).
echo "hello from the benchmark" > "$w/hello.txt"
cyc() { # decompress-cmd compress-cmd packed
  sh -c "$1 < '$3' > '$w/cyc.img' && debugfs -w -R 'write $w/hello.txt /hello.txt' '$w/cyc.img' && $2 < '$w/cyc.img' > '$w/cyc.new' && sync && mv '$w/cyc.new' '$3' && rm '$w/cyc.img'"
}
edits() { # ext tool decompress-cmd compress-cmd
  sh -c "$4 < '$img' > '$w/peer.$1'"
  cp "$w/peer.$1" "$w/edit.$1"; sync
  t "ext3edit put into $2's .$1 (full path)" "$w/edit.$1" "$x" put "$w/edit.$1" "$w/hello.txt" /hello.txt
  t "ext3edit put into own .$1 (seekable)" "$w/edit.$1" "$x" put "$w/edit.$1" "$w/hello.txt" /hello2.txt
  cp "$w/peer.$1" "$w/cyc.$1"; sync
  t "$3 + debugfs + $4 (+ sync, mv)" "$w/cyc.$1" cyc "$3" "$4" "$w/cyc.$1"
}
edits bz2 lbzip2 "lbzip2 -d -n$n" "lbzip2 -9 -n$n"
edits gz pigz "pigz -d -p$n" "pigz -6 -p$n"
"$x" pack "$img" "$w/edit.xz" --threads "$n"
t "ext3edit put into own .xz (seekable)" "$w/edit.xz" "$x" put "$w/edit.xz" "$w/hello.txt" /hello.txt
