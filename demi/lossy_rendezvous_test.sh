#!/bin/bash
# Usage: lossy_rendezvous_test.sh BIN (two hosts, the project's VMs only)
# Runs BIN (demi:lossy_rendezvous_test_bin) with DEMI_LOSSY_LOSS% loss
# (default 3) and 10 ms delay on this host's RDMA netdev: the link of
# testing/rxe_stall_repro.sh, where rxe wedged 3 to 9 connections a minute
# before the library bound its windows on an empty send queue only.
# DEMI_LOSSY_SECONDS (default 60) is how long host 1 streams.
set -euo pipefail
bin=$(readlink -f "$1")
host=${DEMI_TEST_HOST:?two hosts: testing/run_on_rdma.sh --hosts 2}
if [ "${DEMI_TEST_VM:-0}" != 1 ]; then
  # A real device's link is not this test's to make lossy.
  echo "lossy_rendezvous_test.sh: runs only between the project's VMs" >&2
  exit 1
fi
netdev=$(ip -o addr show | awk -v a="$DEMI_TEST_ADDR" \
  'index($4, a "/") == 1 { print $2 }')
[ -n "$netdev" ] || { echo "no netdev has this host's address" >&2; exit 1; }
modprobe sch_netem
tc qdisc replace dev "$netdev" root netem loss "${DEMI_LOSSY_LOSS:-3}%" \
  delay 10ms
device=$(ls /sys/class/infiniband | head -1)
counter() {
  cat "/sys/class/infiniband/$device/ports/1/hw_counters/$1" 2> /dev/null ||
    echo 0
}
before=$(counter completer_retry_err)
status=0
"$bin" || status=$?
echo "host $host: transport retries $(($(counter completer_retry_err) - before))"
tc qdisc del dev "$netdev" root 2> /dev/null || true
exit "$status"
