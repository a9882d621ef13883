#!/bin/bash
# Usage: testing/fresh_root.sh DIR [COMMAND...]
# Tries the committed tree as a new user would: debootstraps a fresh Debian
# 12 root in DIR (once), puts `git archive HEAD` in DIR/srv/project and runs
# COMMAND there (default: the README's test command, tools/test.sh). A tree
# that is not a git checkout (one such root's copy, where the package test
# makes roots of its own) goes in as it is, without Bazel's output links.
set -euo pipefail
dir=$(readlink -f "$1")
shift
[ $# -gt 0 ] || set -- tools/test.sh
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The archive this machine's apt uses (deb822 sources, or the classic list).
mirror() {
  local uri=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; exit}}' \
      /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "fresh_root.sh: no Debian mirror in apt's sources" >&2; exit 2; }
  echo "$uri"
}

if [ ! -x "$dir/usr/bin/apt-get" ]; then
  command -v debootstrap > /dev/null || apt-get install -y -q debootstrap
  debootstrap --variant=minbase bookworm "$dir" "$(mirror)"
fi
mkdir -p "$dir/etc/apt/sources.list.d"
cp /etc/apt/sources.list.d/debian.sources "$dir/etc/apt/sources.list.d/" 2> /dev/null || true
cp /etc/resolv.conf "$dir/etc/resolv.conf"
rm -rf "$dir/srv/project"
mkdir -p "$dir/srv/project"
if git -C "$top" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  git -C "$top" archive HEAD | tar -x -C "$dir/srv/project"
else
  tar -C "$top" --exclude='./bazel-*' --exclude='./examples/kv/bazel-*' -c . |
    tar -x -C "$dir/srv/project"
fi

mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
mountpoint -q "$dir/sys" || mount --rbind /sys "$dir/sys"
mountpoint -q "$dir/dev" || mount --rbind /dev "$dir/dev"
status=0
chroot "$dir" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  TERM=dumb bash -c 'cd /srv/project && "$@"' bash "$@" || status=$?
umount -R "$dir/dev" "$dir/sys" "$dir/proc" 2> /dev/null || true
exit "$status"
