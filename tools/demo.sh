#!/bin/bash
# The main job: the library at work on a real RDMA device. On a machine
# without one it boots the soft-RoCE VM. Runs the key-value server of
# examples/kv (two serving threads on one port) under its load generator
# (two client threads), then the latency probe (with a CDF plot) and the
# throughput tool. Installs what is missing.
# Usage: tools/demo.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools/install_deps.sh
bazel build //tools:latency_probe //tools:throughput
(cd examples/kv && bazel build //:kv_server //:kv_loadgen)

out=${1:-$(mktemp -d /tmp/demi-demo.XXXXXX)}
testing/run_on_rdma.sh --out "$out" -- tools/demo_on_device.sh \
  examples/kv/bazel-bin/kv_server examples/kv/bazel-bin/kv_loadgen \
  bazel-bin/tools/latency_probe bazel-bin/tools/throughput
echo
echo "demo.sh: latency CDF plot in $out/latency_cdf.png"
