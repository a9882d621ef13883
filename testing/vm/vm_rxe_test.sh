#!/bin/bash
# Checks the soft-RoCE test bed end to end: one VM with an rxe device that
# two processes use through rdma_cm (rping), and a VM without an rxe device,
# so that a command's failure there reaches the caller, and a boot too
# slow for its limit started again. Two VMs whose rxe
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

# A VM that does not boot in time is started again: a limit no boot meets
# makes the first two attempts fail; the third has no limit.
echo "=== boot_retry"
status=0
DEMI_VM_BOOT_TIMEOUT=1 "$here/run_vm.sh" --hosts 1 -- sh -c 'echo retried-ok' \
  > "${TEST_TMPDIR:-/tmp}/boot_retry.txt" 2>&1 || status=$?
cat "${TEST_TMPDIR:-/tmp}/boot_retry.txt"
if [ "$status" = 0 ] && grep -q 'retried-ok' "${TEST_TMPDIR:-/tmp}/boot_retry.txt" &&
   [ "$(grep -c 'did not boot within 1s' "${TEST_TMPDIR:-/tmp}/boot_retry.txt")" = 2 ]; then
  echo "=== boot_retry: OK"
else
  echo "=== boot_retry: FAILED (exit status $status)"
  failures=$((failures + 1))
fi

echo "$((3 - failures)) passed, $failures failed"
[ "$failures" = 0 ]
