# Shared by the benchmark scripts that run on the RDMA device.

# The first RDMA device.
bench_device() { ls /sys/class/infiniband | head -1; }

# record NAME VALUE: one result line for the report.
record() {
  echo "$1 $2" >> "$DEMI_OUT_DIR/results.txt"
  echo "  $1 = $2"
}

# json_field JSON BYTES FIELD: FIELD of the result object for BYTES.
json_field() {
  grep -o "{\"bytes\":$2,[^}]*}" <<< "$1" | grep -o "\"$3\":[0-9.]*" |
    head -1 | cut -d: -f2
}

# retry N CMD...: runs CMD until it succeeds, N tries a second apart (for a
# client whose server, in another VM, may not listen yet).
retry() {
  local tries=$1 i
  shift
  for ((i = 1; i <= tries; i++)); do
    "$@" && return 0
    sleep 1
  done
  return 1
}
