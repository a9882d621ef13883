#!/bin/bash
# Usage: make_initramfs.sh KERNEL_VERSION OUTPUT
# Builds the tiny initramfs that boots the soft-RoCE VM: static busybox, the
# 9p-over-virtio modules (with their dependencies, in load order, from the
# installed kernel's modules.dep) and initramfs_init.sh as /init.
set -euo pipefail

version=$1
output=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
moddir=/lib/modules/$version
[ -f "$moddir/modules.dep" ] || { echo "no $moddir/modules.dep" >&2; exit 1; }
busybox=/bin/busybox
if [ ! -x "$busybox" ] || ldd "$busybox" > /dev/null 2>&1; then
  echo "$busybox is missing or not static: install busybox-static" >&2
  exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/modules"
cp "$busybox" "$root/bin/busybox"
cp "$here/initramfs_init.sh" "$root/init"
chmod 755 "$root/init"

declare -A loaded=()
order=()
# Appends module NAME and, first, everything it depends on.
add_module() {
  local name=$1 line path deps dep i
  [ -n "${loaded[$name]:-}" ] && return 0
  line=$(grep -E "(^|/)${name}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1)
  [ -n "$line" ] || { echo "module $name not found in $moddir" >&2; exit 1; }
  path=${line%%:*}
  read -r -a deps <<< "${line#*:}"
  # modules.dep lists dependencies so that the last one loads first.
  for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
    dep=$(basename "${deps[$i]}")
    add_module "${dep%%.ko*}"
  done
  loaded[$name]=1
  case $path in
    *.ko) cp "$moddir/$path" "$root/modules/$name.ko" ;;
    *.ko.xz) xz -dc "$moddir/$path" > "$root/modules/$name.ko" ;;
    *.ko.zst) zstd -qdc "$moddir/$path" > "$root/modules/$name.ko" ;;
    *.ko.gz) gzip -dc "$moddir/$path" > "$root/modules/$name.ko" ;;
  esac
  order+=("$name")
}

for m in virtio_pci 9pnet_virtio 9p; do add_module "$m"; done
printf '%s\n' "${order[@]}" > "$root/modules.order"
(cd "$root" && find . | cpio -o -H newc --quiet) > "$output"
