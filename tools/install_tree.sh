#!/bin/bash
# Usage: install_tree.sh [--program FILE NAME]... [--man1 PAGE]...
#          PREFIX LIBDEMI_A LIBDEMI_LDFLAGS MAN_TAR HEADER...
#        install_tree.sh --uninstall PREFIX
#
# Installs built artifacts under PREFIX: include/demi/*.h, lib/libdemi.a,
# lib/pkgconfig/demi.pc, share/man/man{3,7}, and each program as bin/NAME
# with its page in share/man/man1. Every file written is listed in
# share/demi/installed, which --uninstall removes exactly (then the
# directories left empty, up to PREFIX). tools/install.sh builds and calls
# this; tests call it with Bazel's outputs. With DESTDIR set (packaging),
# files go to DESTDIR/PREFIX, demi.pc still names PREFIX, and no list is
# written: the package manager keeps it. The version in demi.pc is
# DEMI_VERSION, or the tree's VERSION file.
set -euo pipefail

manifest_of() { echo "$1/share/demi/installed"; }

if [ "${1:-}" = --uninstall ]; then
  prefix=$2
  manifest=$(manifest_of "$prefix")
  [ -f "$manifest" ] || { echo "install_tree.sh: nothing installed in $prefix" >&2; exit 1; }
  while read -r file; do
    rm -f "$prefix/$file"
  done < "$manifest"
  rm -f "$manifest"
  # Directories this install made and that are empty now.
  for dir in bin include/demi lib/pkgconfig share/man/man1 share/man/man3 \
             share/man/man7 share/man share/demi include lib share; do
    rmdir "$prefix/$dir" 2> /dev/null || true
  done
  echo "install_tree.sh: removed libdemi from $prefix"
  exit 0
fi

programs=() man1=()
while [ $# -gt 0 ]; do
  case $1 in
    --program) programs+=("$2" "$3"); shift 3 ;;
    --man1) man1+=("$2"); shift 2 ;;
    *) break ;;
  esac
done
prefix=$1 archive=$2 ldflags=$3 man_tar=$4
shift 4
version=${DEMI_VERSION:-$(cat "$(dirname "$(readlink -f "$0")")/../VERSION")}
destdir=${DESTDIR:-}
if [ -z "$destdir" ]; then
  mkdir -p "$prefix"
  prefix=$(cd "$prefix" && pwd)
fi
installed=()
put() {  # put SOURCE RELATIVE_DEST MODE
  install -D -m "$3" "$1" "$destdir$prefix/$2"
  installed+=("$2")
}
for ((i = 0; i < ${#programs[@]}; i += 2)); do
  put "${programs[i]}" "bin/${programs[i + 1]}" 755
done
for page in ${man1[@]+"${man1[@]}"}; do
  put "$page" "share/man/man1/$(basename "$page")" 644
done
for header in "$@"; do
  put "$header" "include/demi/$(basename "$header")" 644
done
put "$archive" lib/libdemi.a 644
pc=$(mktemp)
cat > "$pc" <<PC
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: demi
Description: The Demikernel C API over RDMA verbs (static)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -ldemi
Libs.private: $(cat "$ldflags") -lm -lpthread
PC
put "$pc" lib/pkgconfig/demi.pc 644
rm -f "$pc"
pages=$(mktemp -d)
tar -C "$pages" -xf "$man_tar"
for page in "$pages"/man3/* "$pages"/man7/*; do
  section=$(basename "$(dirname "$page")")
  put "$page" "share/man/$section/$(basename "$page")" 644
done
rm -rf "$pages"
if [ -n "$destdir" ]; then
  echo "install_tree.sh: staged libdemi for $prefix in $destdir (${#installed[@]} files)"
  exit 0
fi
mkdir -p "$(dirname "$(manifest_of "$prefix")")"
printf '%s\n' "${installed[@]}" > "$(manifest_of "$prefix")"
echo "install_tree.sh: installed libdemi in $prefix (${#installed[@]} files)"
