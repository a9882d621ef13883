#!/bin/bash
# Usage: demo_on_device.sh KV_SERVER KV_LOADGEN LATENCY_PROBE THROUGHPUT
# The main job's part on the RDMA device (see tools/demo.sh).
set -euo pipefail
kv_server=$(readlink -f "$1") kv_loadgen=$(readlink -f "$2")
probe=$(readlink -f "$3") tput=$(readlink -f "$4")
addr=$DEMI_TEST_ADDR
source "$(dirname "${BASH_SOURCE[0]}")/bench/common.sh"  # wait_listen

echo "== the RDMA device"
ibv_devinfo | grep -E "hca_id|transport|state|active_mtu|link_layer"

echo
echo "== key-value server (examples/kv) and its load generator:"
echo "   2 server threads on one port (a libOS each), 8 clients on 2 threads,"
echo "   1,000 keys, 64 B values, 90% GET, 5 s"
log=$(mktemp)
"$kv_server" --bind "$addr" --port 7000 --threads 2 2> "$log" & server=$!
# Announced once both threads listen.
for ((i = 0; i < 300; i++)); do
  grep -q "listening on" "$log" && break
  sleep 0.1
done
cat "$log"
"$kv_loadgen" --server "$addr" --port 7000 --connections 8 --threads 2 \
  --keys 1000 --value_size 64 --get_ratio 0.9 --seconds 5
echo "   ... and 1 MiB values, 2 clients on 2 threads, 50% GET"
"$kv_loadgen" --server "$addr" --port 7000 --connections 2 --threads 2 \
  --keys 20 --value_size 1048576 --get_ratio 0.5 --seconds 3 --key_prefix big-
kill "$server"
wait "$server"
echo "   the server at exit:"
tail -n +2 "$log"
rm -f "$log"

echo
echo "== latency probe: 64 B, 4 KiB and 64 KiB"
"$probe" --server --bind "$addr" --port 7001 --exit_after 1 2> /dev/null &
wait_listen 7001
"$probe" --client "$addr" --port 7001 --size 64,4K,64K --iters 5000 \
  --warmup 500 --plot "$DEMI_OUT_DIR/latency_cdf.png"
wait

echo
echo "== throughput: one connection, 32 pushes in flight"
"$tput" --server --bind "$addr" --port 7002 --exit_after 1 2> /dev/null &
wait_listen 7002
"$tput" --client "$addr" --port 7002 --size 64,4K,64K,1M --seconds 1
wait
