#!/bin/bash
# Usage: tools/package_test.sh
#
# The Debian packages as a user gets them: builds them (tools/package.sh),
# installs them with apt into a fresh Debian 12 root (testing/fresh_root.sh,
# debootstrapped once and copied for each run), builds a C program there
# with pkg-config alone, runs the installed demi-latency-probe and that
# program as server and client between the two hosts of the test bed (two
# soft-RoCE VMs, each running them inside the root), then removes the
# packages: none of their files may be left. Needs root (chroot, mounts).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() { echo "package_test.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || exec sudo -E "$0" "$@"
# Under the home directory, not /tmp: the VMs share this machine's root but
# have their own /tmp.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/demi-package-test
base=$cache/base root=$cache/root
mkdir -p "$cache"
if [ ! -x "$base/usr/bin/apt-get" ]; then
  echo "package_test.sh: debootstrapping a Debian 12 root in $base (once)"
  testing/fresh_root.sh "$base" true > "$cache/debootstrap.log" 2>&1 ||
    { tail -n 20 "$cache/debootstrap.log" >&2; fail "no fresh root"; }
fi
rm -rf "$root"
cp -a "$base" "$root"

tools/package.sh --out "$root/srv/debs"
in_root() { testing/fresh_root.sh "$root" bash -euo pipefail -c "$1"; }

# As a user would: apt resolves Depends from the archive. gcc is the user's
# compiler; libdemi-dev brings the rest of what linking needs.
in_root '
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q /srv/debs/demi-rdma_*.deb \
      /srv/debs/libdemi-dev_*.deb gcc; } > /srv/apt.log 2>&1 ||
    { tail -n 20 /srv/apt.log; exit 1; }
  dpkg-query -L demi-rdma libdemi-dev | sort -u > /srv/files.txt
  for tool in demi-latency-probe demi-throughput demi-kv-server demi-kv-loadgen; do
    $tool --version
    test -f /usr/share/man/man1/$tool.1.gz
  done
  cc -std=c11 -Wall -Werror -I. -o /srv/tcp-ping-pong examples/tcp-ping-pong.c \
    $(pkg-config --cflags --libs --static demi)
  echo "built examples/tcp-ping-pong.c with pkg-config demi $(pkg-config --modversion demi)"
' || fail "installing the packages failed"

DEMI_VM_TIMEOUT=${DEMI_VM_TIMEOUT:-600} testing/run_on_rdma.sh --hosts 2 -- \
  tools/package_test_host.sh "$root" || fail "the installed programs failed"

in_root '
  export DEBIAN_FRONTEND=noninteractive
  apt-get remove -y -q demi-rdma libdemi-dev > /srv/remove.log 2>&1 ||
    { tail -n 20 /srv/remove.log; exit 1; }
  # Every file, and every directory of ours (shared ones like /usr/bin stay).
  left=0
  while read -r path; do
    if [ -f "$path" ] || [ -L "$path" ] ||
       { [ -d "$path" ] && [[ $(basename "$path") == *demi* ]]; }; then
      echo "left: $path"
      left=1
    fi
  done < /srv/files.txt
  [ "$left" = 0 ]
  echo "apt remove: nothing of the packages left ($(wc -l < /srv/files.txt) paths)"
' || fail "removing the packages left files"
rm -rf "$root"
echo "package_test.sh: passed"
