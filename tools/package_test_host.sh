#!/bin/bash
# Usage: package_test_host.sh ROOT
# One host of tools/package_test.sh (through testing/run_on_rdma.sh
# --hosts 2): runs the programs installed in the Debian root ROOT, inside
# it. Host 0 serves demi-latency-probe and tcp-ping-pong, host 1 is their
# client.
set -euo pipefail
root=$1
addr=${DEMI_TEST_SERVER_ADDR:?run through testing/run_on_rdma.sh}
# What the programs need of this host: its devices (/dev/infiniband),
# /sys (where libibverbs finds them), /proc, and a /tmp to write. The root
# may be read-only here (the VMs share the host's): mounts need no write.
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
mountpoint -q "$root/sys" || mount --rbind /sys "$root/sys"
mountpoint -q "$root/dev" || mount --rbind /dev "$root/dev"
mountpoint -q "$root/tmp" || mount -t tmpfs tmpfs "$root/tmp"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp "$@"; }

if [ "${DEMI_TEST_HOST:-0}" = 0 ]; then
  in_root demi-latency-probe --server --port 15000 --exit_after 1 &
  probe=$!
  in_root /srv/tcp-ping-pong --server "$addr" 15001 256 100
  wait "$probe"
  echo "host 0: served the probe and tcp-ping-pong from the installed packages"
  exit 0
fi
# retry CMD...: until the server listens (it starts in another VM).
retry() {
  local try
  for ((try = 1; ; try++)); do
    "$@" && return 0
    [ "$try" -lt 60 ] || return 1
    sleep 0.5
  done
}
# That the installed probe runs, not what it measures (tools_test.sh checks
# its figures): a round trip between the VMs takes ~45 ms, 1,000 of each
# size took 100 s.
retry in_root demi-latency-probe --client "$addr" --port 15000 --size 64,4K \
  --iters 100 --warmup 10 | tee "$DEMI_OUT_DIR/probe.txt"
grep -qE '^64 +100 ' "$DEMI_OUT_DIR/probe.txt"
grep -qE '^4096 +100 ' "$DEMI_OUT_DIR/probe.txt"
retry in_root /srv/tcp-ping-pong --client "$addr" 15001 256 100
echo "host 1: the installed demi-latency-probe and tcp-ping-pong ran"
