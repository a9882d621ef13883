#!/bin/bash
# Usage: kv_threads.sh KV_SERVER KV_LOADGEN
#
# The KV server with 1 and with 2 threads (one port, SO_REUSEPORT) under
# the same load, alternating, 3 rounds: a 2-thread loadgen, 8 connections,
# 1,000 keys, 64 B values, 90% GET, 5 s. Records the median ops/s of each
# (kv.threads1.ops_per_s, kv.threads2.ops_per_s) in DEMI_OUT_DIR.
set -uo pipefail
kv_server=$(readlink -f "$1") kv_loadgen=$(readlink -f "$2")
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
source "$here/common.sh"
addr=$DEMI_TEST_ADDR
limit="timeout 120"

declare -A runs
for round in 1 2 3; do
  for threads in 1 2; do
    port=$((13200 + round * 10 + threads))
    $limit "$kv_server" --bind "$addr" --port "$port" --threads "$threads" \
      2> /dev/null &
    server=$!
    wait_listen "$port"
    json=$($limit "$kv_loadgen" --server "$addr" --port "$port" --threads 2 \
      --connections 8 --keys 1000 --value_size 64 --get_ratio 0.9 \
      --seconds 5 --json)
    kill "$server"
    wait "$server"
    ops=$(grep -o '"ops_per_s":[0-9.]*' <<< "$json" | cut -d: -f2)
    echo "  round $round, $threads server thread(s): $ops ops/s"
    [ -z "$ops" ] || runs[$threads]+="$ops "
  done
done
for threads in 1 2; do
  # The median of the rounds that gave a figure.
  median=$(tr ' ' '\n' <<< "${runs[$threads]:-}" | grep . | sort -g |
    awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}')
  record "kv.threads$threads.ops_per_s" "$median"
done
