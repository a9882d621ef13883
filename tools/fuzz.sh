#!/bin/bash
# Usage: tools/fuzz.sh [--runs N | --seconds N] [TARGET...]
#
# Builds the libFuzzer targets (the wire parser, the connect data, datagram
# fragments and their reassembly, the KV request parser, and sequences of C
# API calls against a live libOS) with clang and AddressSanitizer/UBSan, and
# runs each on its seed corpus: N executions (--runs) or N seconds
# (--seconds, default 60). The API fuzzer needs an RDMA device, so it runs
# through testing/run_on_rdma.sh (in the soft-RoCE VM here; its boot, ~10 s,
# comes on top). Findings land in a temporary directory that is printed;
# exit 1 if any target found one. The seed corpora are in the tree; what a
# run adds stays out of it. Naming targets (wire_fuzzer, connect_data_fuzzer,
# datagram_fuzzer, kv_request_fuzzer, api_fuzzer) runs only those.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage="usage: tools/fuzz.sh [--runs N | --seconds N] [TARGET...]"
limit=(-max_total_time=60)
case ${1:-} in
  --runs) limit=(-runs="${2:?$usage}"); shift 2 ;;
  --seconds) limit=(-max_total_time="${2:?$usage}"); shift 2 ;;
esac
all_targets="wire_fuzzer connect_data_fuzzer datagram_fuzzer kv_request_fuzzer api_fuzzer"
for target in "$@"; do
  [[ " $all_targets " == *" $target "* ]] || { echo "$usage" >&2; exit 2; }
done
targets=" ${*:-$all_targets} "
wanted() { [[ $targets == *" $1 "* ]]; }

cxx=$(command -v clang++-16 || true)
[ -n "$cxx" ] || { echo "fuzz.sh: clang++-16 missing (tools/install_deps.sh)" >&2; exit 2; }
work=$(mktemp -d /tmp/demi-fuzz.XXXXXX)
absl=$(pkg-config --libs absl_status absl_statusor absl_strings absl_str_format)
absl_tables=$(pkg-config --libs absl_raw_hash_set absl_hash absl_time)
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -I. -Iexamples/kv)

# compile DIR ARG...: each ARG that is a source (.cc) into DIR/ARG.o with
# "${flags[@]}", as many at once as there are cores (one clang++ for them
# all compiles them one after another: minutes for the API fuzzer's
# library); prints the objects, and the other ARGs (link flags) as they are.
compile() {
  local dir=$1 arg sources=()
  shift
  for arg in "$@"; do
    case $arg in
      *.cc)
        echo "$dir/$arg.o"
        if [ ! -e "$dir/$arg.o" ]; then
          mkdir -p "$dir/$(dirname "$arg")"
          sources+=("$arg")
        fi
        ;;
      *) echo "$arg" ;;
    esac
  done
  [ ${#sources[@]} = 0 ] || printf '%s\n' "${sources[@]}" |
    xargs -P "$(nproc)" -I{} "$cxx" "${flags[@]}" -c {} -o "$dir/{}.o"
}

# name, seed corpus, sources and link flags...
build_and_run() {
  local name=$1 corpus=$2 inputs
  shift 2
  wanted "$name" || return 0
  inputs=$(compile "$work/obj" "$@") || return 1
  "$cxx" "${flags[@]}" $inputs $absl -o "$work/$name" || return 1
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

if ! wanted api_fuzzer; then
  echo "fuzz.sh: work in $work; exit $status"
  exit "$status"
fi

# The VM shares this machine's root but has its own /tmp: the binary goes
# where it can see it; what the run writes comes back through --out.
vm_dir=${XDG_CACHE_HOME:-$HOME/.cache}
mkdir -p "$vm_dir"
vm_work=$(mktemp -d "$vm_dir/demi-fuzz.XXXXXX")
trap 'rm -rf "$vm_work"' EXIT
lib_sources=$(ls demi/*.cc rdma/*.cc | grep -v '_test\.cc$')
# It passes NULL where the headers say nonnull, as the contract allows.
flags+=(-Idemi/include -Wno-nonnull -fno-sanitize=nonnull-attribute)
if ! inputs=$(compile "$work/api_obj" testing/fuzz/api_fuzzer.cc \
       testing/fuzz/api_args.cc testing/fuzz/api_model.cc $lib_sources) ||
   ! "$cxx" "${flags[@]}" $inputs $absl $absl_tables -libverbs -lrdmacm \
       -o "$vm_work/api_fuzzer"; then
  echo "fuzz.sh: api_fuzzer did not build; work in $work" >&2
  exit 1
fi
echo "fuzz.sh: api_fuzzer (${limit[*]}, in the VM)"
# Room for the boot and the libOS's closes at exit; with --runs, for at
# least 2 executions a second (it makes 10 to 30 in the VM).
case ${limit[0]} in
  -max_total_time=*) vm_timeout=$((${limit[0]#*=} + 300)) ;;
  *) vm_timeout=$((${limit[0]#*=} / 2 + 300)) ;;
esac
export DEMI_VM_TIMEOUT=${DEMI_VM_TIMEOUT:-$vm_timeout}
testing/run_on_rdma.sh --out "$work/api_fuzzer.out" -- /bin/bash -c \
  'mkdir -p "$DEMI_OUT_DIR/corpus" && exec "$0" "$@" \
     -artifact_prefix="$DEMI_OUT_DIR/" "$DEMI_OUT_DIR/corpus" \
     testing/fuzz/corpus/api > "$DEMI_OUT_DIR/api_fuzzer.log" 2>&1' \
  "$vm_work/api_fuzzer" "${limit[@]}" -print_final_stats=1 -max_len=256 \
  -timeout=60 -rss_limit_mb=1800 > "$work/api_fuzzer.vm.txt" 2>&1 ||
  status=1
grep -a -E '^(Done|stat::|api_fuzzer:|==[0-9]+==ERROR|SUMMARY|artifact_prefix)' \
  "$work/api_fuzzer.out/api_fuzzer.log" 2> /dev/null ||
  tail -n 20 "$work/api_fuzzer.vm.txt"
echo "fuzz.sh: work in $work; exit $status"
exit "$status"
