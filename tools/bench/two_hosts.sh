#!/bin/bash
# Usage: two_hosts.sh LATENCY_PROBE
#
# Runs on two hosts (DEMI_TEST_HOST 0 is the server): ib_send_lat, then the
# latency probe, between them. Few iterations: two emulated VMs on a
# socket netdev take milliseconds per message. Host 1 writes two_hosts.txt into
# DEMI_OUT_DIR.
set -uo pipefail
probe=$(readlink -f "$1")
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dev=$(bench_device) server=$DEMI_TEST_SERVER_ADDR limit="timeout 300"
if [ "$DEMI_TEST_HOST" = 0 ]; then
  $limit ib_send_lat -d "$dev" -R -s 64 -n 300 > /dev/null 2>&1
  exec $limit "$probe" --server --bind "$DEMI_TEST_ADDR" --port 13003 \
    --exit_after 1
fi
log=$DEMI_OUT_DIR/ib_send_lat-two-hosts.log
retry 60 $limit ib_send_lat -d "$dev" -R -s 64 -n 300 "$server" > "$log" 2>&1
line=$(awk '$1 == 64 && NF >= 5' "$log" | tail -1)
json=$(retry 60 $limit "$probe" --client "$server" --port 13003 --size 64 \
  --iters 300 --warmup 30 --json 2> /dev/null)
echo "$json" > "$DEMI_OUT_DIR/latency_probe-two-hosts.json"
results=$DEMI_OUT_DIR/two_hosts.txt
{
  echo "two_hosts.ib_send_lat.64.p50 $(awk '{print $5}' <<< "$line")"
  echo "two_hosts.ib_send_lat.64.p99 $(awk '{print $8}' <<< "$line")"
  echo "two_hosts.probe.64.p50 $(json_field "$json" 64 p50_us)"
  echo "two_hosts.probe.64.p99 $(json_field "$json" 64 p99_us)"
} | tee "$results"
