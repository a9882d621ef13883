#!/bin/bash
# Checks the soft-RoCE test bed end to end: one VM with an rxe device that
# two processes use through rdma_cm (rping), and a VM without an rxe device,
# so that a command's failure there reaches the caller. Two VMs whose rxe
# devices talk across the socket netdev: //rdma:two_host_test (rdma_cm and
# an RC echo between them, below the library), not booted here a second
# time (two VMs at once take ~35 s on 2 cores).
set -uo pipefail
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
failures=0
check() {  # check NAME EXPECTED_STATUS -- run_vm.sh ARGS...
  local name=$1 expected=$2 status=0
  shift 3
  echo "=== $name"
  "$here/run_vm.sh" "$@" || status=$?
  if [ "$status" = "$expected" ]; then
    echo "=== $name: OK"
  else
    echo "=== $name: FAILED (exit status $status, expected $expected)"
    failures=$((failures + 1))
  fi
}

check one_host 0 -- --hosts 1 -- sh -c '
  ibv_devices | grep -q rxe0 || exit 1
  rping -s -a "$DEMI_TEST_ADDR" -C 5 & server=$!
  sleep 1
  rping -c -a "$DEMI_TEST_ADDR" -C 5 -v || exit 2
  wait $server'

DEMI_VM_NO_RXE=1 check no_device_fails 7 -- --hosts 1 -- sh -c '
  if ibv_devices | grep -q rxe; then exit 0; fi
  exit 7'

echo "$((2 - failures)) passed, $failures failed"
[ "$failures" = 0 ]
