#!/bin/bash
# The project's test command: installs what is missing, then runs every test
# (pure-logic tests on this machine; tests tagged rdma on an RDMA device:
# this machine's, or a soft-RoCE device in a QEMU VM when it has none),
# first in a normal build, then under AddressSanitizer and UBSan.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools/install_deps.sh

start=$(date +%s)
status=0
run() {
  echo "+ $*"
  "$@" || status=1
}
run bazel test //... "$@"
run bazel test --config=asan //... "$@"
echo "tools/test.sh: $(($(date +%s) - start))s, $([ $status = 0 ] && echo PASSED || echo FAILED)"
exit "$status"
