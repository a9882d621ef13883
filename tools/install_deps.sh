#!/bin/bash
# Installs what building and testing need from Debian's archive, and only
# what is missing: Bazel, the compiler, rdma-core and perftest, Abseil,
# GoogleTest, Google Benchmark, and for the soft-RoCE VM QEMU, the Debian
# kernel (which ships rdma_rxe), static busybox and cpio; clang and
# libFuzzer for the fuzz targets; python3 and man-db for the man pages,
# CMake and make for the examples built against an installed prefix;
# valgrind for the benchmarks' instruction counts; dpkg-dev, lintian and
# debootstrap to build the Debian packages and try them in a fresh root.
# Idempotent.
set -euo pipefail

packages=(
  bazel-bootstrap bazel-rules-java g++ git
  libibverbs-dev librdmacm-dev ibverbs-providers ibverbs-utils rdmacm-utils
  rdma-core perftest
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  qemu-system-x86 linux-image-amd64 busybox-static cpio kmod iproute2
  gnuplot-nox
  clang-16 libfuzzer-16-dev libclang-rt-16-dev llvm-16 pkg-config
  python3 man-db cmake make valgrind
  dpkg-dev lintian debootstrap
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2> /dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps.sh: all packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
# apt's output goes to a log, not the first screens of whoever runs this:
# one line now, one at the end, and the log's tail if it fails.
log=${DEMI_DEPS_LOG:-${TMPDIR:-/tmp}/demi-install-deps.log}
echo "install_deps.sh: installing ${#missing[@]} packages (${missing[*]});" \
  "apt's log: $log"
start=$(date +%s)
if ! { $sudo apt-get update -q &&
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
    --no-install-recommends "${missing[@]}"; } > "$log" 2>&1; then
  echo "install_deps.sh: apt failed; the end of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
echo "install_deps.sh: installed in $(($(date +%s) - start))s"
