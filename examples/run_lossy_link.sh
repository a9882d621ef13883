#!/bin/bash
# Usage: run_lossy_link.sh PING_PONG PUSH_POP (two hosts only)
# The examples' large messages between two VMs whose links drop 0.1% of
# packets: rendezvous READs lose response packets and must recover by
# retrying. Host 0 serves, host 1 is the client.
set -euo pipefail
ping_pong=$1
push_pop=$2
addr=${DEMI_TEST_SERVER_ADDR:?run through testing/run_on_rdma.sh}
host=${DEMI_TEST_HOST:?two hosts: testing/run_on_rdma.sh --hosts 2}
if [ "${DEMI_TEST_VM:-0}" != 1 ]; then
  # A real device's link is not this test's to make lossy.
  echo "lossy link: runs only between the project's VMs (DEMI_FORCE_VM=1)" >&2
  exit 1
fi
netdev=$(ip -o addr show | awk -v a="${DEMI_TEST_ADDR:-$addr}" \
  'index($4, a "/") == 1 { print $2 }')
[ -n "$netdev" ] || { echo "no netdev has this host's address" >&2; exit 1; }
modprobe sch_netem
tc qdisc add dev "$netdev" root netem loss 0.1%
device=$(ls /sys/class/infiniband | head -1)
retries() {
  cat "/sys/class/infiniband/$device/ports/1/hw_counters/completer_retry_err"
}

# run_pair NAME BINARY PORT SIZE COUNT
run_pair() {
  local name=$1 binary=$2 port=$3 size=$4 count=$5
  echo "== $name: $size bytes x $count"
  if [ "$host" = 0 ]; then
    "$binary" --server "$addr" "$port" "$size" "$count"
  else
    "$binary" --client "$addr" "$port" "$size" "$count"
  fi
}

before=$(retries)
run_pair push-pop "$push_pop" 12101 4194304 5
run_pair ping-pong "$ping_pong" 12102 1048576 2
after=$(retries)
echo "transport retries on this host: $((after - before))"
# The server reads 22 MiB (22,528 packets of 1 KiB) and some of its READs
# must have been retried, or the link lost nothing and this proved nothing.
if [ "$host" = 0 ] && [ "$after" -le "$before" ]; then
  echo "no READ was retried: did netem drop anything?" >&2
  exit 1
fi
echo "== lossy link: all examples passed"
