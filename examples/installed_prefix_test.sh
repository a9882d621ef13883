#!/bin/bash
# Usage: installed_prefix_test.sh INSTALL_TREE LATENCY_PROBE PROBE_PAGE
#          LIBDEMI_A LIBDEMI_LDFLAGS MAN_TAR HEADER...
# Installs libdemi and demi-latency-probe into a fresh prefix as
# tools/install.sh does, reads pages with man, builds the examples against
# the prefix with pkg-config alone (cc, CMake, make), runs them and the
# installed probe on the RDMA device, and uninstalls: the prefix must be
# empty again.
set -euo pipefail
install_tree=$(readlink -f "$1") probe=$2 probe_page=$3
archive=$(readlink -f "$4") ldflags=$5 man_tar=$6
shift 6
work=${TEST_TMPDIR:-/tmp}/installed
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
"$install_tree" --program "$probe" demi-latency-probe --man1 "$probe_page" \
  "$prefix" "$archive" "$ldflags" "$man_tar" "$@"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
"$prefix/bin/demi-latency-probe" --version | grep -x "demi-latency-probe $(
  pkg-config --modversion demi)" > /dev/null
MANWIDTH=80 man -M "$prefix/share/man" 1 demi-latency-probe 2> /dev/null |
  grep -e "--iters=N" > /dev/null
echo "demi-latency-probe --version and its page match demi.pc's version"

man -M "$prefix/share/man" -w demi_push > /dev/null
MANWIDTH=80 man -M "$prefix/share/man" 7 demi-rdma 2> /dev/null |
  grep "FLOW CONTROL" > /dev/null
echo "man pages: $(ls "$prefix/share/man/man3" | wc -l) in section 3, demi-rdma(7)"

# Under `bazel test --config=asan` the archive is instrumented: link the
# sanitizer runtimes as any user of such an archive would.
sanitize=""
if nm -u "$prefix/lib/libdemi.a" 2> /dev/null | grep __asan_ > /dev/null; then
  sanitize=-fsanitize=address,undefined
fi
# The sources as a user has them (the build directories are written to).
mkdir -p "$work/src/examples"
cp -r examples/cmake examples/make examples/common.h examples/tcp-ping-pong.c \
  examples/tcp-push-pop.c "$work/src/examples/"
cd "$work/src"
cc -std=c11 -Wall -Wextra -Werror $sanitize -I. examples/tcp-ping-pong.c \
  $(pkg-config --cflags --libs --static demi) -o "$work/ping-pong-cc"
echo "built with cc and pkg-config"
cmake -S examples/cmake -B "$work/cmake" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="$sanitize" -DCMAKE_EXE_LINKER_FLAGS="$sanitize" > /dev/null
cmake --build "$work/cmake" > /dev/null
echo "built with CMake (pkg_check_modules)"
make -s -C examples/make CFLAGS="-O2 $sanitize" LDFLAGS="$sanitize"
echo "built with make"

addr=${DEMI_TEST_SERVER_ADDR:?run through testing/run_on_rdma.sh}
"$work/cmake/tcp-ping-pong" --server "$addr" 12200 256 50 & server=$!
"$work/ping-pong-cc" --client "$addr" 12200 256 50
wait "$server"
examples/make/tcp-push-pop --server "$addr" 12201 64 1000 & server=$!
examples/make/tcp-push-pop --client "$addr" 12201 64 1000
wait "$server"
"$prefix/bin/demi-latency-probe" --server --port 12202 --exit_after 1 & server=$!
for ((try = 1; ; try++)); do  # Until the server listens.
  json=$("$prefix/bin/demi-latency-probe" --client "$addr" --port 12202 \
    --iters 100 --warmup 10 --json) && break
  [ "$try" -lt 30 ] || exit 1
  sleep 0.5
done
grep '"p50_us"' <<< "$json" > /dev/null
wait "$server"
echo "the installed demi-latency-probe measured"

"$install_tree" --uninstall "$prefix"
left=$(find "$prefix" -mindepth 1)
if [ -n "$left" ]; then
  echo "left after --uninstall:"
  echo "$left"
  exit 1
fi
echo "uninstalled: $prefix is empty"
