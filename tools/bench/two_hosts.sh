#!/bin/bash
# Usage: two_hosts.sh LATENCY_PROBE THROUGHPUT
#
# Runs on two hosts (DEMI_TEST_HOST 0 is the server): ib_send_lat, then the
# latency probe, then the 64 B message rate of ib_send_bw and of
# throughput, between them. Few iterations: two emulated VMs on a socket
# netdev take milliseconds per message, so a stream lives on what it keeps
# in flight. Host 1 writes two_hosts.txt into DEMI_OUT_DIR.
set -uo pipefail
probe=$(readlink -f "$1") tput=$(readlink -f "$2")
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dev=$(bench_device) server=$DEMI_TEST_SERVER_ADDR limit="timeout 300"
if [ "$DEMI_TEST_HOST" = 0 ]; then
  $limit ib_send_lat -d "$dev" -R -s 64 -n 300 > /dev/null 2>&1
  $limit "$probe" --server --bind "$DEMI_TEST_ADDR" --port 13003 \
    --exit_after 1
  $limit ib_send_bw -d "$dev" -R -s 64 -n 5000 > /dev/null 2>&1
  exec $limit "$tput" --server --bind "$DEMI_TEST_ADDR" --port 13004 \
    --exit_after 1 2> /dev/null
fi
log=$DEMI_OUT_DIR/ib_send_lat-two-hosts.log
retry 60 $limit ib_send_lat -d "$dev" -R -s 64 -n 300 "$server" > "$log" 2>&1
line=$(awk '$1 == 64 && NF >= 5' "$log" | tail -1)
json=$(retry 60 $limit "$probe" --client "$server" --port 13003 --size 64 \
  --iters 300 --warmup 30 --json 2> /dev/null)
echo "$json" > "$DEMI_OUT_DIR/latency_probe-two-hosts.json"
bw_log=$DEMI_OUT_DIR/ib_send_bw-two-hosts.log
retry 60 $limit ib_send_bw -d "$dev" -R -s 64 -n 5000 "$server" > "$bw_log" 2>&1
bw_line=$(awk '$1 == 64 && NF >= 5' "$bw_log" | tail -1)
tput_json=$(retry 60 $limit "$tput" --client "$server" --port 13004 \
  --size 64 --window 32 --seconds 4 --json)
echo "$tput_json" > "$DEMI_OUT_DIR/throughput-two-hosts.json"
results=$DEMI_OUT_DIR/two_hosts.txt
{
  echo "two_hosts.ib_send_lat.64.p50 $(awk '{print $5}' <<< "$line")"
  echo "two_hosts.ib_send_lat.64.p99 $(awk '{print $8}' <<< "$line")"
  echo "two_hosts.probe.64.p50 $(json_field "$json" 64 p50_us)"
  echo "two_hosts.probe.64.p99 $(json_field "$json" 64 p99_us)"
  echo "two_hosts.ib_send_bw.64.msg_per_s $(msg_rate 64 <<< "$bw_line")"
  echo "two_hosts.throughput.64.msg_per_s $(json_field "$tput_json" 64 \
    msg_per_s)"
} | tee "$results"
