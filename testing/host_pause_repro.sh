#!/bin/bash
# Usage: testing/host_pause_repro.sh KV_SERVER SOAK_CLIENT SECONDS_PAUSED...
#
# The soak's problem 2 on purpose (RELIABILITY.md): the KV server on host 0
# of the two-VM test bed, the soak's good client (4 connections) on host 1,
# and host 1's QEMU stopped (SIGSTOP) for each SECONDS_PAUSED in turn, 15 s
# apart, once the client's mix runs. A host that does not run does not
# acknowledge either: a pause longer than the RC retry budget (about
# 1.9 s, rdma/cm_connection.h) fails the server's sends and resets every
# connection between the two hosts; a shorter one must cost nothing.
# Prints the pauses (as host 1's own pause watch saw them too), the
# client's errors and the server's log. By hand:
#   (cd examples/kv && bazel build //:kv_server //:soak_client)
#   testing/host_pause_repro.sh examples/kv/bazel-bin/kv_server \
#     examples/kv/bazel-bin/soak_client 1.0 2.5 4.0
# Inside the VMs it runs as itself with --vm.
set -euo pipefail
if [ "${1:-}" = --vm ]; then
  server_bin=$2 client_bin=$3 seconds=$4
  out=${DEMI_OUT_DIR:?}
  "$(dirname "$(readlink -f "$0")")/pause_watch.sh" \
    "$out/pauses.$DEMI_TEST_HOST.txt" &
  trap 'kill $! 2> /dev/null || true' EXIT
  if [ "${DEMI_TEST_HOST:?}" = 0 ]; then
    DEMI_LOG_LEVEL=INFO "$server_bin" --bind "$DEMI_TEST_ADDR" --port 7000 \
      --threads 2 > "$out/server.log" 2>&1 &
    server=$!
    sleep $((seconds + 60))
    kill "$server"
    wait "$server" || true
    cat "$out/server.log"
    exit 0
  fi
  DEMI_LOG_LEVEL=INFO "$client_bin" --server "$DEMI_TEST_SERVER_ADDR" \
    --port 7000 --mode good --connections 4 --keys 128 \
    --seconds "$seconds" --interval 5 --key_prefix good- --timeout 30 \
    > "$out/good.log" 2> "$out/good.err" || true
  cat "$out/good.err"
  sed 's/^/pause watch: did not run from /' "$out/pauses.1.txt" 2> /dev/null
  exit 0
fi

server_bin=$(readlink -f "$1") client_bin=$(readlink -f "$2")
shift 2
[ $# -gt 0 ] || { echo "host_pause_repro.sh: no pause given" >&2; exit 2; }
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
seconds=$((40 + 20 * $#))
out=$(mktemp -d "${TMPDIR:-/tmp}/demi-pause.XXXXXX")
DEMI_FORCE_VM=1 "$root/testing/run_on_rdma.sh" --hosts 2 --out "$out" -- \
  "$root/testing/host_pause_repro.sh" --vm "$server_bin" "$client_bin" \
  "$seconds" > "$out/vms.log" 2>&1 &
vms=$!
# Host 1's results directory, while it runs: testing/vm/run_vm.sh's work
# directory, the newest one that appeared after this run began.
good_err=""
for _ in $(seq 1200); do
  good_err=$(find "${TMPDIR:-/tmp}" -maxdepth 3 -path "*/demi-rdma.*/vm1/good.err" \
    -newer "$out" 2> /dev/null | head -1)
  [ -n "$good_err" ] && grep -q "mix starts" "$good_err" && break
  sleep 0.5
done
if [ -z "$good_err" ] || ! grep -q "mix starts" "$good_err"; then
  echo "host_pause_repro.sh: the client's mix never started" >&2
  cat "$out/vms.log" >&2
  exit 1
fi
sleep 10
# Host 1's QEMU is the one sharing that work directory.
work=$(dirname "$(dirname "$good_err")")
qemu=$(pgrep -f "^qemu-system-x86_64 .*path=$work/vm1," | head -1)
[ -n "$qemu" ] || { echo "host_pause_repro.sh: no QEMU for $work" >&2; exit 1; }
trap 'kill -CONT "$qemu" 2> /dev/null || true' EXIT
for pause in "$@"; do
  echo "$(date +%s.%N | cut -c1-14) host 1 stopped for $pause s"
  kill -STOP "$qemu"
  sleep "$pause"
  kill -CONT "$qemu"
  sleep 15
done
wait "$vms" || true
grep -E "soak_client|demi |kv_server|pause watch" "$out/vms.log" || true
echo "host_pause_repro.sh: outputs in $out"
