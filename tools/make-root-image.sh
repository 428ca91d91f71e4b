#!/usr/bin/env bash
# Make a realistic root file system image for the compression benchmarks:
# a Debian minbase tree (debootstrap; needs root and a mirror) in an ext3
# image of SIZE (default 2G). Without debootstrap or a mirror, the tree is
# a copy of the host's /usr instead (said on stderr).
#   tools/make-root-image.sh OUT.img [SIZE]
set -euo pipefail
out=${1:?usage: make-root-image.sh OUT.img [SIZE]}
size=${2:-2G}
export PATH=$PATH:/sbin:/usr/sbin
tree=$(mktemp -d "${TMPDIR:-/tmp}/rootfs.XXXXXX")
trap 'rm -rf "$tree"' EXIT
if command -v debootstrap >/dev/null && [ "$(id -u)" = 0 ] &&
   debootstrap --variant=minbase stable "$tree" >"$tree.log" 2>&1; then
  echo "tree: debootstrap --variant=minbase stable" >&2
else
  echo "tree: debootstrap unavailable or failed (see $tree.log); copying the host's /usr" >&2
  rm -rf "$tree"; mkdir -p "$tree"
  cp -a /usr "$tree/usr"
  mkdir -p "$tree/etc" "$tree/var" "$tree/tmp" "$tree/root"
  cp -a /etc/. "$tree/etc/" 2>/dev/null || true
fi
rm -f "$out"
E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext3 -d "$tree" "$out" "$size"
du -h --apparent-size "$out" >&2
du -h "$out" >&2
