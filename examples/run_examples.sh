#!/bin/bash
# Usage: run_examples.sh PING_PONG PUSH_POP [UDP_PING_PONG UDP_PUSH_POP
#   [BAD_CALLS]]
# Runs BAD_CALLS once, then each example as server and client. One host: two processes side by
# side. Two hosts (DEMI_TEST_HOSTS=2): host 0 serves, host 1 is the client.
set -euo pipefail
ping_pong=$1
push_pop=$2
udp_ping_pong=${3:-}
udp_push_pop=${4:-}
bad_calls=${5:-}
addr=${DEMI_TEST_SERVER_ADDR:?run through testing/run_on_rdma.sh}
local_addr=${DEMI_TEST_ADDR:-$addr}
hosts=${DEMI_TEST_HOSTS:-1}
host=${DEMI_TEST_HOST:-0}

# run_pair NAME BINARY PORT SIZE COUNT
run_pair() {
  local name=$1 binary=$2 port=$3 size=$4 count=$5
  echo "== $name: $size bytes x $count"
  if [ "$hosts" = 1 ]; then
    "$binary" --server "$addr" "$port" "$size" "$count" & server=$!
    "$binary" --client "$addr" "$port" "$size" "$count"
    wait "$server"
  elif [ "$host" = 0 ]; then
    "$binary" --server "$addr" "$port" "$size" "$count"
  else
    "$binary" --client "$addr" "$port" "$size" "$count"
  fi
}

# run_udp_pair NAME BINARY PORT SIZE COUNT: the server binds PORT, the
# client PORT + 1000; each names the other.
run_udp_pair() {
  local name=$1 binary=$2 port=$3 size=$4 count=$5
  local client_port=$((port + 1000))
  echo "== $name: $size bytes x $count"
  if [ "$hosts" = 1 ]; then
    "$binary" --server "$addr" "$port" "$addr" "$client_port" "$size" \
      "$count" & server=$!
    "$binary" --client "$addr" "$client_port" "$addr" "$port" "$size" "$count"
    wait "$server"
  elif [ "$host" = 0 ]; then
    "$binary" --server "$addr" "$port" 0.0.0.0 0 "$size" "$count"
  else
    "$binary" --client "$local_addr" "$client_port" "$addr" "$port" "$size" \
      "$count"
  fi
}

if [ -n "$bad_calls" ] && [ "$host" = 0 ]; then
  echo "== bad-calls"
  "$bad_calls" "$local_addr" 12000
fi

# Emulated NICs between two VMs take ~40 ms a round trip: fewer there.
scale=1
[ "$hosts" = 1 ] || scale=5
run_pair ping-pong "$ping_pong" 12001 64 $((1000 / scale))
run_pair ping-pong "$ping_pong" 12002 1048576 $((20 / scale))
run_pair push-pop "$push_pop" 12003 64 $((10000 / scale))
run_pair push-pop "$push_pop" 12004 4194304 10
if [ -n "$udp_ping_pong" ]; then
  run_udp_pair udp-ping-pong "$udp_ping_pong" 12011 64 $((1000 / scale))
  run_udp_pair udp-ping-pong "$udp_ping_pong" 12012 4096 $((200 / scale))
  run_udp_pair udp-ping-pong "$udp_ping_pong" 12013 65000 $((50 / scale))
  run_udp_pair udp-push-pop "$udp_push_pop" 12014 64 $((10000 / scale))
fi
echo "== all examples passed"
