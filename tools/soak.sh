#!/bin/bash
# Usage: tools/soak.sh [--seconds N] [--idle N] [--out DIR]
#                      [--mr_tolerance N] [--registered_tolerance_mib N]
#                      [--kv_server BIN --soak_client BIN --hostile_peer BIN]
#
# The KV server (--threads 2) on one host of the two-VM test bed under a
# steady checked load from the other, for N seconds (default 600), while
# faults come on a schedule scaled to N: a client SIGKILLed and restarted
# every 20 s, a hostile raw-verbs peer (flood without credits, data after
# CLOSE, bogus rendezvous rkey), a client that never takes its replies, one
# that opens --idle connections (default 2000) and vanishes, 1% loss and
# 10 ms delay on the link, and the client host's link cut for 20 s.
#
# Writes DIR/report.md (per-interval table, faults, end checks) and
# DIR/soak.png (ops/s and p99 over time, faults marked); exits 1 if a check
# failed. Without the BIN options it builds them with Bazel first. The
# server's MRs and registered memory at the end may exceed their start by
# the two tolerances (default 2 MRs, 4 MiB).
set -euo pipefail

seconds=600
idle=""
out=""
kv_server="" soak_client="" hostile_peer=""
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --kv_server) kv_server=$2; shift 2 ;;
    --soak_client) soak_client=$2; shift 2 ;;
    --hostile_peer) hostile_peer=$2; shift 2 ;;
    --mr_tolerance) export SOAK_MR_TOLERANCE=$2; shift 2 ;;
    --registered_tolerance_mib) export SOAK_REGISTERED_TOLERANCE_MIB=$2; shift 2 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$seconds" -ge 60 ] || { echo "soak.sh: --seconds at least 60" >&2; exit 2; }
# Thousands of connections take minutes to open under emulation.
[ -n "$idle" ] || idle=$((seconds >= 300 ? 2000 : 200))
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
out=${out:-${TEST_UNDECLARED_OUTPUTS_DIR:-$PWD/soak-out}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/{stats,faults,marks,resources}.txt "$out"/pauses.*.txt \
  "$out"/*.log "$out"/*.err

if [ -z "$kv_server" ]; then
  (cd "$root/examples/kv" &&
     bazel build --jobs=2 //:kv_server //:soak_client \
       @demi_rdma//testing:hostile_peer)
  bin=$root/examples/kv/bazel-bin
  kv_server=$bin/kv_server soak_client=$bin/soak_client
  hostile_peer=$bin/external/demi_rdma/testing/hostile_peer
fi
for b in "$kv_server" "$soak_client" "$hostile_peer"; do
  [ -x "$b" ] || { echo "soak.sh: $b is not a program" >&2; exit 2; }
done

echo "soak: $seconds s, $idle idle connections; results in $out"
vm_status=0
# Boot, the run, the read-back and the drain, with room to spare.
DEMI_FORCE_VM=1 DEMI_VM_TIMEOUT=$((seconds + 1200)) \
  "$root/testing/run_on_rdma.sh" --hosts 2 --out "$out" -- \
  "$root/tools/soak_vm.sh" "$seconds" "$idle" "$(readlink -f "$kv_server")" \
  "$(readlink -f "$soak_client")" "$(readlink -f "$hostile_peer")" \
  > "$out/vms.log" 2>&1 || vm_status=$?
grep -E "soak|hostile_peer|kv_server|run_vm" "$out/vms.log" || true

"$root/tools/soak_report.sh" "$out" "$vm_status"
