#!/bin/bash
# Usage: tools/fuzz.sh [--runs N | --seconds N]
#
# Builds the libFuzzer targets (the wire parser, the connect data, datagram
# fragments and their reassembly, the KV request parser) with clang and
# AddressSanitizer/UBSan, and runs each on its seed corpus: N executions
# (--runs) or N seconds (--seconds, default 60). Findings land in a temporary directory that is printed; exit 1 if
# any target found one. The seed corpora are in the tree; what a run adds
# stays out of it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

limit=(-max_total_time=60)
case ${1:-} in
  --runs) limit=(-runs="$2") ;;
  --seconds) limit=(-max_total_time="$2") ;;
  "") ;;
  *) echo "usage: tools/fuzz.sh [--runs N | --seconds N]" >&2; exit 2 ;;
esac

cxx=$(command -v clang++-16 || true)
[ -n "$cxx" ] || { echo "fuzz.sh: clang++-16 missing (tools/install_deps.sh)" >&2; exit 2; }
work=$(mktemp -d /tmp/demi-fuzz.XXXXXX)
absl=$(pkg-config --libs absl_status absl_statusor absl_strings absl_str_format)
absl_tables=$(pkg-config --libs absl_raw_hash_set absl_hash absl_time)
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -I. -Iexamples/kv)

# name, sources..., seed corpus
build_and_run() {
  local name=$1 corpus=$2
  shift 2
  "$cxx" "${flags[@]}" "$@" $absl -o "$work/$name"
  mkdir -p "$work/$name.corpus"
  echo "fuzz.sh: $name (${limit[*]})"
  (cd "$work" && "./$name" "${limit[@]}" -print_final_stats=1 \
    "$name.corpus" "$OLDPWD/$corpus" 2>&1 | tail -n 12)
}

status=0
build_and_run wire_fuzzer testing/fuzz/corpus/wire \
  testing/fuzz/wire_fuzzer.cc demi/wire.cc rdma/status_util.cc || status=1
build_and_run connect_data_fuzzer testing/fuzz/corpus/connect_data \
  testing/fuzz/connect_data_fuzzer.cc demi/wire.cc rdma/status_util.cc || status=1
build_and_run datagram_fuzzer testing/fuzz/corpus/datagram \
  testing/fuzz/datagram_fuzzer.cc demi/datagram_wire.cc demi/reassembly.cc \
  demi/sga_pool.cc rdma/verbs_ptr.cc rdma/log.cc rdma/status_util.cc \
  $absl_tables -libverbs -lrdmacm || status=1
build_and_run kv_request_fuzzer examples/kv/fuzz_corpus \
  examples/kv/protocol_fuzzer.cc examples/kv/protocol.cc || status=1
echo "fuzz.sh: work in $work; exit $status"
exit "$status"
