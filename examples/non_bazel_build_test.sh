#!/bin/bash
# Usage: non_bazel_build_test.sh LIBDEMI_A LIBDEMI_LDFLAGS EXAMPLE_C
# Builds an example the way a project without Bazel would (cc, the public
# headers, libdemi.a and libdemi.ldflags) and runs it as server and client.
set -euo pipefail
archive=$(readlink -f "$1")
ldflags=$2
source=$3
headers=demi/include
out=${TEST_TMPDIR:-/tmp}/ping-pong
# Under `bazel test --config=asan` the archive is instrumented: link the
# sanitizer runtimes as any user of such an archive would.
sanitize=""
if nm -u "$archive" 2> /dev/null | grep __asan_ > /dev/null; then
  sanitize=-fsanitize=address,undefined
fi
cc -std=c11 -Wall -Wextra -Werror $sanitize -I. -I"$headers" "$source" \
  "$archive" $(cat "$ldflags") -o "$out"
echo "built $out with cc against $(basename "$archive")"
addr=${DEMI_TEST_SERVER_ADDR:?run through testing/run_on_rdma.sh}
"$out" --server "$addr" 12100 256 100 & server=$!
"$out" --client "$addr" 12100 256 100
wait "$server"
