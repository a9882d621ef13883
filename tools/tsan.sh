#!/bin/bash
# Usage: tools/tsan.sh [BAZEL_FLAG...] [TARGET...]
#
# Builds and runs test targets under ThreadSanitizer with clang-16
# (--config=tsan in .bazelrc): by default every test tagged `threads`, the
# code that threads share (//demi:sga_pool_test while none is tagged).
# Arguments starting with '-' go to `bazel test` as flags (tools/test.sh
# adds --test_summary=short); the rest are targets. Tests tagged rdma run in
# the soft-RoCE VM as usual; TSAN_OPTIONS reaches them there.
#
# It uses its own Bazel output base, $XDG_CACHE_HOME/demi-tsan: CC is read
# when Bazel configures the C++ toolchain, and switching that in the main
# output base would throw away the gcc build's cache each time. Only what
# the given targets need is built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v clang-16 > /dev/null ||
  { echo "tsan.sh: clang-16 missing (tools/install_deps.sh)" >&2; exit 2; }

flags=()
targets=()
for arg in "$@"; do
  case $arg in
    -*) flags+=("$arg") ;;
    *) targets+=("$arg") ;;
  esac
done

bazel=(bazel "--output_base=${XDG_CACHE_HOME:-$HOME/.cache}/demi-tsan")

if [ ${#targets[@]} = 0 ]; then
  # Not //...: this output base does not know the main one's bazel-*
  # symlinks for its own, and would descend into them.
  universe=//:all
  for dir in */; do
    dir=${dir%/}
    case $dir in bazel-*) continue ;; esac
    [ -z "$(find "$dir" \( -name BUILD -o -name BUILD.bazel \) -print -quit)" ] ||
      universe+=" + //$dir/..."
  done
  tagged=$("${bazel[@]}" query --noshow_progress \
    "attr(tags, \"\\bthreads\\b\", tests($universe))")
  [ -z "$tagged" ] || mapfile -t targets <<< "$tagged"
  [ ${#targets[@]} -gt 0 ] || targets=(//demi:sga_pool_test)
fi

# TSan (LLVM 16) maps its shadow memory at fixed addresses, which a kernel
# with more than 28 bits of mmap randomization (vm.mmap_rnd_bits, the
# default of some newer kernels) can collide with: the test dies with
# "FATAL: ThreadSanitizer: unexpected memory mapping". Rather than lowering
# the sysctl for the whole machine, such a machine runs the tests with
# address randomization off for them alone (setarch -R; the personality is
# inherited by the test's children). The VM runs its own kernel, Debian's
# 6.1 with 28 bits (CONFIG_ARCH_MMAP_RND_BITS), and needs nothing.
rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2> /dev/null || echo 28)
if [ "$rnd_bits" -gt 28 ]; then
  echo "tsan.sh: vm.mmap_rnd_bits=$rnd_bits > 28: tests run under setarch -R"
  flags=("--run_under=/usr/bin/setarch -R" "${flags[@]}")
fi
for config in /boot/config-*; do
  bits=$(sed -n 's/^CONFIG_ARCH_MMAP_RND_BITS=//p' "$config" 2> /dev/null)
  if [ -n "$bits" ] && [ "$bits" -gt 28 ]; then
    echo "tsan.sh: warning: $config has mmap_rnd_bits $bits: TSan may fail in the VM" >&2
  fi
done

# Reports name functions and lines only through llvm-symbolizer, which the
# runtime does not find on PATH by itself here (Debian's /usr/bin one is a
# versioned symlink): name it. Without one, reports show bare addresses.
symbolizer=""
for candidate in /usr/lib/llvm-16/bin/llvm-symbolizer \
    "$(command -v llvm-symbolizer-16 || true)" \
    "$(readlink -f "$(command -v llvm-symbolizer || true)")"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && [ ! -d "$candidate" ]; then
    symbolizer=$candidate
    break
  fi
done
if [ -n "$symbolizer" ]; then
  flags=("--test_env=TSAN_SYMBOLIZER_PATH=$symbolizer" "${flags[@]}")
else
  echo "tsan.sh: no llvm-symbolizer (Debian's llvm-16): reports without symbols" >&2
fi

echo "tsan.sh: ${targets[*]}"
exec "${bazel[@]}" test --config=tsan "${flags[@]}" -- "${targets[@]}"
