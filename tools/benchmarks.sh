#!/bin/bash
# Benchmarks: runs each of ours beside its peer (perftest, rstream) on the
# same RDMA device in one VM boot (or on this machine's device), latency
# and message rate alternately over several rounds (DEMI_BENCH_ROUNDS, 5;
# the datagram latency pair DEMI_BENCH_UD_PAIRS, 3, times a round),
# bandwidth and connects too (DEMI_BENCH_BW_ROUNDS, 3), counts
# instructions per round trip under callgrind, then measures the latency
# and the message rate between two VMs, and writes BENCHMARKS.md.
# Installs what is missing. Usage: tools/benchmarks.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

tools/install_deps.sh
bazel build //tools:latency_probe //tools:throughput //tools:connect_rate \
  //demi:scale_test_bin
(cd examples/kv && bazel build //:kv_server //:kv_loadgen)

out=${1:-$(mktemp -d /tmp/demi-bench.XXXXXX)}
mkdir -p "$out"
rm -f "$out"/*.txt
start=$(date +%s)
# The one-device part takes ~30 minutes under emulation: past the VM's
# default limit of 15.
DEMI_VM_TIMEOUT=${DEMI_VM_TIMEOUT:-3000} \
  testing/run_on_rdma.sh --out "$out" -- tools/bench/on_device.sh \
    bazel-bin/tools/latency_probe bazel-bin/tools/throughput \
    examples/kv/bazel-bin/kv_server examples/kv/bazel-bin/kv_loadgen \
    bazel-bin/tools/connect_rate bazel-bin/demi/scale_test_bin
testing/run_on_rdma.sh --hosts 2 --out "$out" -- tools/bench/two_hosts.sh \
  bazel-bin/tools/latency_probe bazel-bin/tools/throughput
seconds=$(($(date +%s) - start))
tools/bench/report.sh "$out" "$seconds" > BENCHMARKS.md
mkdir -p docs
[ ! -f "$out/latency_cdf.png" ] || cp "$out/latency_cdf.png" docs/latency_cdf.png
echo "benchmarks.sh: ${seconds}s; wrote BENCHMARKS.md; raw outputs in $out"
