#!/usr/bin/env bash
# Time the manual way of making a compressed VM root image ready (bunzip2,
# mount -o loop, edit as root, umount, bzip2) against ext3edit doing the
# same edits on the .bz2 in one command. The manual path needs root and
# loop devices; without them it is skipped.
#
#   bash tools/workflow-bench.sh [RAW_EXT3_IMAGE]   (default: a 2 GiB image
#                                                    of tools/make-root-image.sh)
#
# The edits are the ones that make `ext3edit check` pass on a Debian or
# RHEL-like image: ifcfg-eth0/eth1, /etc/sysconfig/network, /etc/hosts, the
# Xen console in inittab and securetty, libc6-xen.conf, resolv.conf, and a
# root password.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/target/release/ext3edit
[ -x "$bin" ] || (cd "$here" && cargo build --release -q)
img=${1:-/tmp/root2g.img}
[ -f "$img" ] || bash "$here/tools/make-root-image.sh" "$img"
work=$(mktemp -d /tmp/workflow.XXXXXX)
trap 'umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
echo "nameserver 10.0.0.1" > "$work/resolv.conf"

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N); echo "$e - $s" | bc; }

echo "image: $img ($(du -h --apparent-size "$img" | cut -f1) apparent, $(du -h "$img" | cut -f1) allocated); $(nproc) cores"
lbzip2 -9 -n2 -c "$img" > "$work/orig.ext3.bz2"
echo "compressed: $(stat -c %s "$work/orig.ext3.bz2") bytes"

# ext3edit: one command on the .bz2 (stays .bz2, same level).
cp "$work/orig.ext3.bz2" "$work/a.ext3.bz2"
secs=$(t "$bin" customize "$work/a.ext3.bz2" --fix --resolv-conf "$work/resolv.conf" \
  --root-password-hash '$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.')
echo "ext3edit customize on the .bz2: ${secs} s"
"$bin" check "$work/a.ext3.bz2" | tail -1 || true

# ext3edit on the raw image (the edit alone).
cp --sparse=always "$img" "$work/raw.ext3"
secs=$(t "$bin" customize "$work/raw.ext3" --fix --resolv-conf "$work/resolv.conf")
echo "ext3edit customize on the raw image: ${secs} s"

if [ "$(id -u)" != 0 ] || ! losetup -f >/dev/null 2>&1; then
  echo "manual path skipped: needs root and loop devices"
  exit 0
fi
manual() {
  cp "$work/orig.ext3.bz2" "$work/m.ext3.bz2"
  local s0 s1 s2 s3 s4
  s0=$(date +%s.%N)
  lbzip2 -d -n2 "$work/m.ext3.bz2"
  s1=$(date +%s.%N)
  mkdir -p "$work/mnt"
  mount -o loop "$work/m.ext3" "$work/mnt"
  local r=$work/mnt
  cp "$work/resolv.conf" "$r/etc/resolv.conf"
  mkdir -p "$r/etc/sysconfig/network-scripts" "$r/etc/ld.so.conf.d"
  printf 'DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\n' > "$r/etc/sysconfig/network-scripts/ifcfg-eth0"
  printf 'DEVICE=eth1\nBOOTPROTO=dhcp\nONBOOT=yes\n' > "$r/etc/sysconfig/network-scripts/ifcfg-eth1"
  grep -q NETWORKING "$r/etc/sysconfig/network" 2>/dev/null || echo NETWORKING=yes >> "$r/etc/sysconfig/network"
  grep -q localhost "$r/etc/hosts" 2>/dev/null || echo '127.0.0.1 localhost localhost.localdomain' >> "$r/etc/hosts"
  [ -f "$r/etc/inittab" ] || echo 'id:3:initdefault:' > "$r/etc/inittab"
  echo 'co:2345:respawn:/sbin/mingetty xvc0' >> "$r/etc/inittab"
  echo xvc0 >> "$r/etc/securetty"
  echo 'hwcap 0 nosegneg' > "$r/etc/ld.so.conf.d/libc6-xen.conf"
  sed -i 's|^root:[^:]*:|root:$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.:|' "$r/etc/shadow"
  umount "$work/mnt"
  s2=$(date +%s.%N)
  lbzip2 -9 -n2 "$work/m.ext3"
  s3=$(date +%s.%N)
  echo "manual: lbzip2 -d $(echo "$s1 - $s0" | bc) s, mount+edit+umount $(echo "$s2 - $s1" | bc) s, lbzip2 $(echo "$s3 - $s2" | bc) s, total $(echo "$s3 - $s0" | bc) s"
  "$bin" check "$work/m.ext3.bz2" | tail -1 || true
}
manual
