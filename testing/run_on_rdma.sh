#!/bin/bash
# Usage: run_on_rdma.sh [--hosts 1|2] [--out DIR] -- CMD [ARG...]
#
# Runs CMD on a real RDMA device. If this machine has one (a NIC or a host
# rxe device with an IPv4 address) CMD runs here directly; otherwise it runs
# inside the soft-RoCE VM(s) of testing/vm/run_vm.sh. DEMI_FORCE_VM=1 always
# uses the VM. With --hosts 2, CMD runs twice (as host 0, the server, and
# host 1): in two VMs, or as two processes here. CMD sees DEMI_TEST_HOST,
# DEMI_TEST_HOSTS, DEMI_TEST_ADDR and DEMI_TEST_SERVER_ADDR.
#
# With --out DIR, files CMD writes into $DEMI_OUT_DIR end up in DIR.
#
# Under `bazel test` (XML_OUTPUT_FILE set), the gtest XML of host 0 becomes
# the test's XML, so per-case results show as usual.
set -euo pipefail

hosts=1
out=""
while [ $# -gt 0 ]; do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --out) out=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --) shift; break ;;
    *) echo "run_on_rdma.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")

# Prints the IPv4 address of the first RDMA link's netdev, if any.
host_rdma_addr() {
  local netdev
  [ -n "$(ls /sys/class/infiniband 2> /dev/null)" ] || return 0
  command -v rdma > /dev/null || return 0
  for netdev in $(rdma link show 2> /dev/null |
                  sed -n 's/.* netdev \([^ ]*\).*/\1/p'); do
    ip -4 -o addr show dev "$netdev" 2> /dev/null |
      awk '{ split($4, a, "/"); print a[1]; exit }'
    return 0
  done
}

addr=""
[ "${DEMI_FORCE_VM:-0}" = 1 ] || addr=$(host_rdma_addr)

if [ -n "$addr" ]; then
  echo "run_on_rdma.sh: using this machine's RDMA device at $addr"
  export DEMI_TEST_HOSTS=$hosts DEMI_TEST_ADDR=$addr DEMI_TEST_SERVER_ADDR=$addr
  export DEMI_OUT_DIR=${out:-${TEST_UNDECLARED_OUTPUTS_DIR:-${TMPDIR:-/tmp}}}
  if [ "$hosts" = 1 ]; then
    DEMI_TEST_HOST=0 exec "$@"
  fi
  DEMI_TEST_HOST=0 "$@" & server=$!
  DEMI_TEST_HOST=1 "$@" || status=$?
  wait "$server" || status=${status:-$?}
  exit "${status:-0}"
fi

keep=$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/demi-rdma.XXXXXX")
trap 'rm -rf "$keep"' EXIT
if [ -n "${XML_OUTPUT_FILE:-}" ]; then
  export GTEST_OUTPUT=xml:/run/results/test.xml
fi
# Leave Bazel's own timeout room to print the VM's output.
if [ -n "${TEST_TIMEOUT:-}" ] && [ -z "${DEMI_VM_TIMEOUT:-}" ]; then
  export DEMI_VM_TIMEOUT=$((TEST_TIMEOUT > 60 ? TEST_TIMEOUT - 30 : TEST_TIMEOUT))
fi
export DEMI_OUT_DIR=/run/results  # The VM's writable share.
status=0
"$here/vm/run_vm.sh" --hosts "$hosts" --keep "$keep" -- "$@" || status=$?
if [ -n "$out" ]; then
  # What CMD wrote, without the test bed's own files.
  for vm in "$keep"/vm*; do
    find "$vm" -maxdepth 1 -type f ! -name cmd.sh ! -name env.sh \
      ! -name guest_init.sh ! -name vm.conf ! -name output.txt ! -name rc \
      ! -name setup.txt ! -name test.xml ! -name booted -exec cp {} "$out/" \;
  done
fi
if [ -n "${XML_OUTPUT_FILE:-}" ] && [ -f "$keep/vm0/test.xml" ]; then
  cp "$keep/vm0/test.xml" "$XML_OUTPUT_FILE"
fi
exit "$status"
