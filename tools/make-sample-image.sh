#!/usr/bin/env bash
# Build fixtures/sample.ext3 from the tree fixtures/sample-root,
# reproducibly: fixed UUID, hash seed, timestamps, owners and modes.
#
#   bash tools/make-sample-image.sh [OUTPUT]     (default fixtures/sample.ext3)
#
# Needs mke2fs and debugfs (e2fsprogs). The committed image was made with
# e2fsprogs 1.47.0; other versions may lay blocks out differently.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/fixtures/sample.ext3}
epoch=1262304000   # 2010-01-01 00:00:00 UTC
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

root=$work/root
cp -a "$here/fixtures/sample-root" "$root"
# Directories git cannot keep, and the modes a real system has.
mkdir -p "$root"/{home,tmp,proc,sys,dev,var/log,var/empty/sshd,etc/ld.so.conf.d}
chmod 0755 "$root" && find "$root" -type d -exec chmod 0755 {} + && find "$root" -type f -exec chmod 0644 {} +
chmod 0400 "$root/etc/shadow"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"
chmod 0755 "$root/etc/rc.d/init.d/sshd" "$root/usr/sbin/sshd" "$root/sbin/mingetty"
chmod 0600 "$root/etc/ssh/sshd_config"
find "$root" -exec touch -h -d "@$epoch" {} +

rm -f "$out"
E2FSPROGS_FAKE_TIME=$epoch mke2fs -q -F -t ext3 -b 1024 -I 256 -N 128 \
  -L sample-root -O has_journal,dir_index,^metadata_csum \
  -U 3f2a9c4e-1b7d-4e8a-9c0f-5d6e7f8a9b0c \
  -E hash_seed=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d,root_owner=0:0 \
  -d "$root" "$out" 4M

# mke2fs -d copies the owners and change times of the host files: make them
# the same for everybody who runs this script.
cmds=$work/fix.cmds
(cd "$root" && find . -mindepth 1 | sort) | while read -r p; do
  p=${p#.}
  for f in uid gid; do echo "sif \"$p\" $f 0"; done
  for f in ctime atime mtime crtime; do echo "sif \"$p\" $f @$epoch"; done
done > "$cmds"
for f in ctime atime mtime crtime; do echo "sif / $f @$epoch"; done >> "$cmds"
E2FSPROGS_FAKE_TIME=$epoch debugfs -w -f "$cmds" "$out" >/dev/null 2>&1
# Fixed superblock times (debugfs writes the clock into s_wtime).
E2FSPROGS_FAKE_TIME=$epoch debugfs -w -R "ssv wtime @$epoch" "$out" >/dev/null 2>&1
E2FSPROGS_FAKE_TIME=$epoch debugfs -w -R "ssv lastcheck @$epoch" "$out" >/dev/null 2>&1
E2FSPROGS_FAKE_TIME=$epoch debugfs -w -R "ssv mtime @$epoch" "$out" >/dev/null 2>&1
e2fsck -fn "$out" >/dev/null
echo "wrote $out ($(stat -c %s "$out") bytes)"
