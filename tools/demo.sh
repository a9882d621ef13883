#!/bin/bash
# The main job: the library working on a real RDMA device. On a machine
# without one it boots the soft-RoCE VM. Installs what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools/install_deps.sh
bazel build //examples:tcp-ping-pong //examples:tcp-push-pop

root=$PWD
cd bazel-bin/examples
"$root/testing/run_on_rdma.sh" -- bash -c '
  set -e
  # pair PROGRAM PORT SIZE COUNT: server and client side by side.
  pair() {
    "./$1" --server "$DEMI_TEST_ADDR" "$2" "$3" "$4" & server=$!
    "./$1" --client "$DEMI_TEST_ADDR" "$2" "$3" "$4"
    wait $server
  }
  echo "== the RDMA device"
  ibv_devinfo | grep -E "hca_id|transport|state|active_mtu|link_layer"
  echo "== ping-pong through the Demikernel API: 64 B, then 1 MiB"
  pair tcp-ping-pong 12345 64 2000
  pair tcp-ping-pong 12346 1048576 20
  echo "== one-way stream: 100,000 messages of 64 B, then 4 MiB messages"
  pair tcp-push-pop 12347 64 100000
  pair tcp-push-pop 12348 4194304 20
'
