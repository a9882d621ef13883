#!/bin/bash
# The project's test command: installs what is missing, then runs every test
# (pure-logic tests on this machine; tests tagged rdma on an RDMA device:
# this machine's, or a soft-RoCE device in a QEMU VM when it has none),
# first in a normal build, then under AddressSanitizer and UBSan, then the
# tests of code that threads share (tagged `threads`) under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools/install_deps.sh

start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
run() {
  echo "+ $*"
  local step_start=$(date +%s) result=ok
  "$@" --test_summary=short 2>&1 | tee -a "$log" ||
    { echo 1 > "$log.failed"; result=FAILED; }
  echo "tools/test.sh: $* ($(pwd)): $(($(date +%s) - step_start))s, $result"
}
# step NAME CMD...: a step outside Bazel, counted as the test NAME.
step() {
  local name=$1 step_start=$(date +%s) result=PASSED
  shift
  echo "+ $*"
  "$@" || { echo 1 > "$log.failed"; result=FAILED; }
  echo "$name $result" >> "$log"
  echo "tools/test.sh: $*: $(($(date +%s) - step_start))s, $result"
}
run bazel test //... "$@"
# The Debian packages, installed in a fresh Debian root and run between two
# VMs; right after the tests' build, whose outputs they package.
step //tools:package_test.sh tools/package_test.sh
run bazel test --config=asan //... "$@"
# clang-16 in its own output base; only the thread tests and what they need.
run tools/tsan.sh "$@"
# The key-value example is its own Bazel workspace, built on this one the
# way an outside project would be. Under ASan only its protocol's test: the
# library's paths are the ASan run's above (examples/kv/BUILD.bazel).
(cd examples/kv && run bazel test //... "$@")
(cd examples/kv && run bazel test --config=asan //... "$@")
# The fuzz targets, 10 s each: a smoke run that replays the seed corpora and
# fuzzes a little (tools/fuzz.sh --runs 1000000 or --seconds 2400 by hand).
step //tools:fuzz.sh tools/fuzz.sh --seconds "${DEMI_FUZZ_SECONDS:-10}"
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FLAKY)|FAILED TO BUILD' "$log" || true)
echo "tools/test.sh: $(($(date +%s) - start))s (normal, ASan/UBSan and TSan builds)"
echo "tests: $passed passed, $failed failed"
[ ! -e "$log.failed" ] || status=1
rm -f "$log.failed"
exit "$status"
