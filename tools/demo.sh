#!/bin/bash
# The main job: the library working on a real RDMA device. On a machine
# without one it boots the soft-RoCE VM. Installs what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools/install_deps.sh
bazel build //examples:tcp-ping-pong //examples:tcp-push-pop

cd bazel-bin/examples
../../testing/run_on_rdma.sh -- bash -c '
  set -e
  echo "== the RDMA device"
  ibv_devinfo | grep -E "hca_id|transport|state|active_mtu|link_layer"
  echo "== ping-pong through the Demikernel API: 64 B, then 1 MiB"
  ./tcp-ping-pong --server "$DEMI_TEST_ADDR" 12345 64 2000 & server=$!
  ./tcp-ping-pong --client "$DEMI_TEST_ADDR" 12345 64 2000
  wait $server
  ./tcp-ping-pong --server "$DEMI_TEST_ADDR" 12346 1048576 20 & server=$!
  ./tcp-ping-pong --client "$DEMI_TEST_ADDR" 12346 1048576 20
  wait $server
  echo "== one-way stream: 100,000 messages of 64 B, then 4 MiB messages"
  ./tcp-push-pop --server "$DEMI_TEST_ADDR" 12347 64 100000 & server=$!
  ./tcp-push-pop --client "$DEMI_TEST_ADDR" 12347 64 100000
  wait $server
  ./tcp-push-pop --server "$DEMI_TEST_ADDR" 12348 4194304 20 & server=$!
  ./tcp-push-pop --client "$DEMI_TEST_ADDR" 12348 4194304 20
  wait $server
'
