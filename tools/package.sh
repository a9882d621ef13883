#!/bin/bash
# Usage: tools/package.sh [--out DIR]
#
# Builds the Debian packages of this tree into DIR (default: the tree's
# packages/; a relative DIR is the caller's):
#   demi-rdma_VERSION_amd64.deb    the programs (demi-latency-probe,
#                                  demi-throughput, demi-kv-server,
#                                  demi-kv-loadgen) and their man pages;
#   libdemi-dev_VERSION_amd64.deb  headers, libdemi.a, demi.pc and the
#                                  section 3 and 7 pages.
# The files are those tools/install.sh installs under /usr; Depends comes
# from dpkg-shlibdeps (the programs) and from what linking libdemi.a needs
# (the development package). lintian checks both: exit 1 on any error.
# Then: apt install ./packages/demi-rdma_*.deb
set -euo pipefail

out=
case ${1:-} in
  --out) out=${2:?usage: tools/package.sh [--out DIR]} ;;
  "") ;;
  *) echo "usage: tools/package.sh [--out DIR]" >&2; exit 2 ;;
esac
# --out is the caller's, made absolute before the cd; the default, the tree's.
[ -z "$out" ] || { mkdir -p "$out" && out=$(cd "$out" && pwd); }
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${out:-$PWD/packages}
mkdir -p "$out"
version=$(tr -d ' \n' < VERSION)
arch=$(dpkg --print-architecture)
maintainer="demi-rdma maintainers <maintainers@users.noreply.r-seed-d0fbb957.example>"

stage=$(mktemp -d "${TMPDIR:-/tmp}/demi-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
DESTDIR=$stage/all tools/install.sh --prefix /usr > "$stage/install.log" 2>&1 ||
  { cat "$stage/install.log" >&2; exit 1; }

# move PACKAGE PATH...: files of the staged tree that go into PACKAGE.
move() {
  local package=$1 path
  shift
  for path in "$@"; do
    mkdir -p "$stage/$package/$(dirname "$path")"
    mv "$stage/all/$path" "$stage/$package/$path"
  done
}
move demi-rdma usr/bin usr/share/man/man1
move libdemi-dev usr/include usr/share/man/man3 usr/share/man/man7
# Debian keeps libraries, pkg-config files included, in the multiarch
# directory.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
mkdir -p "$stage/libdemi-dev/usr/lib"
mv "$stage/all/usr/lib" "$stage/libdemi-dev/usr/lib/$multiarch"
sed -i "s|^libdir=.*|libdir=\${prefix}/lib/$multiarch|" \
  "$stage/libdemi-dev/usr/lib/$multiarch/pkgconfig/demi.pc"

# The programs' runtime libraries, as Debian names them.
mkdir -p "$stage/shlibs/debian"
printf 'Source: demi-rdma\n\nPackage: demi-rdma\nArchitecture: any\n' \
  > "$stage/shlibs/debian/control"
program_depends=$(cd "$stage/shlibs" &&
  dpkg-shlibdeps -O -e "$stage"/demi-rdma/usr/bin/* 2> /dev/null |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$program_depends" ] || { echo "package.sh: dpkg-shlibdeps found nothing" >&2; exit 1; }

# finish PACKAGE SECTION DEPENDS SUMMARY DESCRIPTION: docs, control, .deb.
finish() {
  local package=$1 section=$2 depends=$3 summary=$4 description=$5
  local root=$stage/$package doc=$stage/$package/usr/share/doc/$package
  find "$root/usr/share/man" -type f -exec gzip -9n {} +
  find "$root/usr/bin" -type f -exec strip --strip-unneeded \
    --remove-section=.comment --remove-section=.note {} + 2> /dev/null || true
  find "$root/usr/lib" -name '*.a' -exec strip --strip-debug {} + 2> /dev/null || true
  mkdir -p "$doc"
  cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demi-rdma
Comment: The Demikernel C API over RDMA verbs. No license has been chosen
 for this project yet; until one is, all rights are reserved by its authors.

Files: *
Copyright: 2026 the demi-rdma authors
License: none
 No license has been granted yet.
COPYRIGHT
  {
    echo "$package ($version) bookworm; urgency=medium"
    echo
    echo "  * Release $version: see the project's README and git log."
    echo
    echo " -- $maintainer  $(date -R -u -d @"$(git log -1 --format=%ct 2> /dev/null || date +%s)")"
  } | gzip -9n > "$doc/changelog.gz"
  mkdir -p "$root/DEBIAN"
  (cd "$root" && find usr -type f -exec md5sum {} + | sort -k 2) > "$root/DEBIAN/md5sums"
  cat > "$root/DEBIAN/control" <<CONTROL
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: $section
Priority: optional
Homepage: https://github.com/microsoft/demikernel
Description: $summary
$description
CONTROL
  chmod -R u+rwX,go+rX,go-w "$root"
  dpkg-deb --root-owner-group -Zxz --build "$root" \
    "$out/${package}_${version}_${arch}.deb" > /dev/null
  echo "package.sh: $out/${package}_${version}_${arch}.deb"
}

finish demi-rdma net "$program_depends, ibverbs-providers" \
  "latency probe, throughput and key-value tools over RDMA" \
  " Programs built on demi-rdma, the Demikernel C API over RDMA verbs
 (reliable-connected queue pairs set up with librdmacm):
  - demi-latency-probe: message latency between two hosts, like ib_send_lat;
  - demi-throughput: message rate and bandwidth, like ib_send_bw;
  - demi-kv-server and demi-kv-loadgen: an in-memory key-value server and
    its closed-loop load generator.
 They run on any RDMA device rdma-core supports, soft-RoCE (rxe) included."
finish libdemi-dev libdevel \
  "libibverbs-dev, librdmacm-dev, libabsl-dev, libstdc++-12-dev, pkg-config" \
  "Demikernel C API over RDMA verbs (static library)" \
  " The Demikernel C API (demi_init, demi_socket, demi_push, demi_pop,
 demi_wait, ...) over RDMA: messages on reliable-connected queue pairs,
 zero-copy from registered memory, datagrams on unreliable-datagram queue
 pairs. A program written against Demikernel's headers builds against this
 unchanged:
   cc app.c \$(pkg-config --cflags --libs --static demi)
 This package holds the headers, libdemi.a, demi.pc and the manual pages
 (demi_push(3), demi-rdma(7), ...)."

if command -v lintian > /dev/null; then
  # Errors fail the build; warnings and notes are printed.
  lint_status=0
  lint=$(lintian --tag-display-limit 0 "$out/demi-rdma_${version}_${arch}.deb" \
    "$out/libdemi-dev_${version}_${arch}.deb" 2>&1) || lint_status=$?
  grep -v '^running with root privileges' <<< "$lint" || true
  [ "$lint_status" = 0 ] || { echo "package.sh: lintian found errors" >&2; exit 1; }
  echo "package.sh: lintian reports no errors"
else
  echo "package.sh: lintian missing (tools/install_deps.sh)" >&2
  exit 1
fi
