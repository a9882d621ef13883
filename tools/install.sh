#!/bin/bash
# Usage: tools/install.sh [--prefix DIR] [--uninstall]
#
# Builds libdemi optimized and installs it for builds outside Bazel, under
# DIR (default /usr/local): the headers, lib/libdemi.a, lib/pkgconfig/demi.pc
# and the man pages. Then:
#   cc app.c $(pkg-config --cflags --libs --static demi)
# (with PKG_CONFIG_PATH=DIR/lib/pkgconfig for a prefix pkg-config does not
# search), and `man -M DIR/share/man demi_push`. --uninstall removes exactly
# what was installed. Installs missing build dependencies first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

prefix=/usr/local
uninstall=0
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    *) echo "usage: tools/install.sh [--prefix DIR] [--uninstall]" >&2; exit 2 ;;
  esac
done
if [ "$uninstall" = 1 ]; then
  exec tools/install_tree.sh --uninstall "$prefix"
fi

tools/install_deps.sh
bazel build --compilation_mode=opt //dist:libdemi //docs/man:pages
bin=$(bazel info --compilation_mode=opt bazel-bin)
tools/install_tree.sh "$prefix" "$bin/dist/libdemi.a" \
  "$bin/dist/libdemi.ldflags" "$bin/docs/man/man.tar" demi/include/demi/*.h
