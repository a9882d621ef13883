#!/bin/bash
# The main job: shows the library working on a real RDMA device. On a
# machine without one it boots the soft-RoCE VM. Installs what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools/install_deps.sh
bazel build //...

testing/run_on_rdma.sh -- bash -c '
  set -e
  echo "== the RDMA device"
  ibv_devinfo | grep -E "hca_id|transport|state|active_mtu|link_layer"
  echo "== rping between two processes on it"
  rping -s -a "$DEMI_TEST_ADDR" -C 3 & server=$!
  sleep 1
  rping -c -a "$DEMI_TEST_ADDR" -C 3 -v
  wait $server
'
