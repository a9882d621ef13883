#!/bin/bash
# Usage: tools/install.sh [--prefix DIR] [--uninstall]
#
# Builds libdemi and its programs optimized and installs them under DIR
# (default /usr/local; a relative DIR is the caller's):
# bin/demi-latency-probe, demi-throughput, demi-kv-server and
# demi-kv-loadgen; for builds outside Bazel the headers, lib/libdemi.a and
# lib/pkgconfig/demi.pc; and the man pages (sections 1, 3 and 7). Then:
#   cc app.c $(pkg-config --cflags --libs --static demi)
# (with PKG_CONFIG_PATH=DIR/lib/pkgconfig for a prefix pkg-config does not
# search), and `man -M DIR/share/man demi_push`. --uninstall removes exactly
# what was installed. Installs missing build dependencies first. With
# DESTDIR set, files go under DESTDIR/DIR instead (tools/package.sh).
set -euo pipefail

prefix=/usr/local
uninstall=0
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    *) echo "usage: tools/install.sh [--prefix DIR] [--uninstall]" >&2; exit 2 ;;
  esac
done
# Relative paths are the caller's: made absolute before the cd to the tree.
[[ $prefix == /* ]] || prefix=$PWD/$prefix
[ -z "${DESTDIR:-}" ] || [[ $DESTDIR == /* ]] || export DESTDIR=$PWD/$DESTDIR
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$uninstall" = 1 ]; then
  exec tools/install_tree.sh --uninstall "$prefix"
fi

tools/install_deps.sh
mode=--compilation_mode=opt  # As the tests build (.bazelrc): one cache.
bazel build "$mode" //dist:libdemi //docs/man:pages //tools:latency_probe \
  //tools:throughput //tools:man_pages
bin=$(bazel info "$mode" bazel-bin)
# The key-value server is its own workspace (examples/kv), built on this one.
(cd examples/kv && bazel build "$mode" //:kv_server //:kv_loadgen //:man_pages)
kv_bin=$(cd examples/kv && bazel info "$mode" bazel-bin)
tools/install_tree.sh \
  --program "$bin/tools/latency_probe" demi-latency-probe \
  --program "$bin/tools/throughput" demi-throughput \
  --program "$kv_bin/kv_server" demi-kv-server \
  --program "$kv_bin/kv_loadgen" demi-kv-loadgen \
  --man1 "$bin/tools/demi-latency-probe.1" --man1 "$bin/tools/demi-throughput.1" \
  --man1 "$kv_bin/demi-kv-server.1" --man1 "$kv_bin/demi-kv-loadgen.1" \
  "$prefix" "$bin/dist/libdemi.a" "$bin/dist/libdemi.ldflags" \
  "$bin/docs/man/man.tar" demi/include/demi/*.h
