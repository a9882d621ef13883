# Shared by the benchmark scripts that run on the RDMA device.

# The first RDMA device.
bench_device() { ls /sys/class/infiniband | head -1; }

# record NAME VALUE: one result line for the report.
record() {
  echo "$1 $2" >> "$DEMI_OUT_DIR/results.txt"
  echo "  $1 = $2"
}

# msg_rate SIZE: a perftest bandwidth line on stdin -> messages per second
# of SIZE bytes; nothing for a run that gave no figure, which must not
# enter a median as 0. From whichever column is finer: the MsgRate (Mpps,
# six decimals: steps of 1 message/s) up to ~10 KiB, the BW average (MB/s
# of 2^20 B, two decimals: steps of 10,486 B/s, 164 messages/s at 64 B)
# above.
msg_rate() {
  awk -v s="$1" 'NF >= 5 {
    if (s <= 10485 && $5 > 0) printf "%.1f", $5 * 1e6
    else if (s > 10485 && $4 > 0) printf "%.1f", $4 * 1048576 / s
  }'
}

# median_range: numbers on stdin, one a line -> "MEDIAN MIN MAX"; nothing
# for none.
median_range() {
  sort -g | awk 'BEGIN { OFMT = "%.10g" } { v[NR] = $1 } END {
    if (NR == 0) exit
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'
}

# round_ratios PEER OURS ROUNDS_LOG: from the NAME VALUE lines of
# alternating rounds (PEER's figure, then its OURS; VALUE empty for a run
# that gave no figure), the n-th OURS over the n-th PEER, a line each; a
# pair missing either figure (or with a PEER of 0) gives none.
round_ratios() {
  awk -v p="$1" -v o="$2" '
    function figure(v) { return v ~ /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ }
    $1 == p { peer[++np] = $2 }
    $1 == o { ours[++no] = $2 }
    END {
      for (i = 1; i <= np && i <= no; i++)
        if (figure(peer[i]) && figure(ours[i]) && peer[i] + 0 != 0)
          printf "%.4f\n", ours[i] / peer[i]
    }' "$3"
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

# wait_listen PORT: waits (up to 30 s) until an rdma_cm listener on this
# host has PORT: a client that comes too early is rejected, and some
# servers (perftest) then never accept another.
wait_listen() {
  local i
  for ((i = 0; i < 300; i++)); do
    rdma resource show cm_id 2> /dev/null | grep "state LISTEN" |
      grep -q "src-addr [^ ]*:$1 " && return 0
    sleep 0.1
  done
  echo "no rdma_cm listener on port $1" >&2
  return 1
}
