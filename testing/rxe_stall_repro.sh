#!/bin/bash
# Usage: rxe_stall_repro.sh BIN LOSS SECONDS VARIANT...
#
# One host's part of the rxe stall reproducer, run on both hosts of
#   testing/run_on_rdma.sh --hosts 2 -- testing/rxe_stall_repro.sh ...
# Puts netem (LOSS% loss, 10 ms delay: the soak's fault, stronger) on this
# host's RDMA netdev, then runs BIN (testing:rxe_stall_repro) once per
# VARIANT, a comma-separated list of its flags without the dashes, e.g.
# "bind=unsignaled,read_size=65536"; "loss=N" in a VARIANT sets the loss
# for that one instead. Host 0 serves, host 1 loops. Around
# each variant it prints rxe's counters and the kernel's rxe messages,
# since a stall that the verbs do not report may show there.
set -euo pipefail
bin=$(readlink -f "$1") loss=$2 seconds=$3
shift 3
host=${DEMI_TEST_HOST:?run through testing/run_on_rdma.sh --hosts 2}
if [ "${DEMI_TEST_VM:-0}" != 1 ]; then
  # The link is made lossy here: only between the project's VMs.
  echo "rxe_stall_repro.sh: runs only between the project's VMs" >&2
  exit 1
fi
netdev=$(ip -o addr show | awk -v a="$DEMI_TEST_ADDR" \
  'index($4, a "/") == 1 { print $2 }')
modprobe sch_netem
port=7100
for variant in "$@"; do
  flags=() variant_loss=$loss
  IFS=, read -ra kvs <<< "$variant"
  for kv in "${kvs[@]}"; do
    case $kv in
      loss=*) variant_loss=${kv#loss=} ;;
      *) flags+=("--$kv") ;;
    esac
  done
  tc qdisc replace dev "$netdev" root netem loss "$variant_loss%" delay 10ms
  echo "=== host $host variant $variant (loss $variant_loss%, delay 10ms)"
  rdma statistic show 2> /dev/null | tr ' ' '\n' | paste - - |
    awk '$2 != 0' | tr '\n' ' '; echo
  "$bin" --port "$port" --seconds "$seconds" "${flags[@]}" || true
  echo "--- host $host counters after $variant:"
  rdma statistic show 2> /dev/null | tr ' ' '\n' | paste - - |
    awk '$2 != 0' | tr '\n' ' '; echo
  dmesg | grep -v -E "rdma_rxe: loaded|set active|added eth0" | tail -n 20 || true
  dmesg -C || true
  port=$((port + 1))
done
tc qdisc del dev "$netdev" root 2> /dev/null || true
