#!/bin/bash
# Usage: run_suite.sh TEST_BINARY...
# Runs each test binary in turn on this host's RDMA device (in the VM of an
# rdma_test_suite), every one even after a failure; exits 1 if any failed.
set -uo pipefail
# One XML per binary would overwrite the next: Bazel writes the suite's
# own from the exit status.
unset GTEST_OUTPUT
failed=()
for binary in "$@"; do
  name=$(basename "$binary")
  echo "==== $name"
  start=$(date +%s)
  # A member that hangs stops at its own test's limit, not the suite's.
  timeout --kill-after=10 "${DEMI_SUITE_MEMBER_TIMEOUT:-900}" "$binary"
  rc=$?
  if [ "$rc" = 0 ]; then
    echo "==== $name PASSED in $(($(date +%s) - start))s"
  else
    echo "==== $name FAILED in $(($(date +%s) - start))s (exit $rc)"
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_suite.sh: failed: ${failed[*]}"
  exit 1
fi
echo "run_suite.sh: all ${#} passed"
