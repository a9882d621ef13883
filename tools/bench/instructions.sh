#!/bin/bash
# Usage: instructions.sh LATENCY_PROBE [SIZE...]
#
# Instructions per round trip of SIZE bytes (default 64) of the client
# process, ours (latency_probe) and ib_send_lat's, counted by callgrind on
# the RDMA device of this host. A client that waits spins on its completion
# queue, and how often it polls an empty one depends on timing, not on the
# code; so each client runs four times (2,000 and 4,000 round trips, against
# a native and a slowed server) and the instructions are fitted as
#   total = setup + per_round_trip * round_trips
#           + per_poll * (polls - needed * round_trips),
# where polls counts our progress passes (RdmaLibOs::Poll) and
# ib_send_lat's calls of its provider's poll_cq (the most-called function),
# and needed is the polls a round trip cannot do without: ib_send_lat's 2
# (its send completion, every send signalled, and the reply, on two CQs);
# ours 1 where the push completes in its call (inline: small enough for the
# device's inline limit) and 2 where it completes with its send's
# completion, which comes well before the reply. Which one, the client's
# calls tell (callgrind_polls.awk's SLOW_PUSHES), not the size: the limit
# is the device's.
# per_round_trip keeps those and prices the others as empty ones. Appends
# ir.TOOL.SIZE.* lines (ir.ud.TOOL.SIZE.* with DEMI_IR_UD=1) to
# DEMI_OUT_DIR/results.txt.
# DEMI_IR_TOOLS (default "ib_send_lat probe") picks the clients: "probe"
# alone measures a change of ours in half the time. DEMI_IR_UD=1 measures
# datagrams instead (ib_send_lat -c UD, latency_probe --udp).
set -uo pipefail
probe=$(readlink -f "$1")
[ -x "$probe" ] || { echo "instructions.sh: no probe at $1" >&2; exit 2; }
shift
sizes=("${@:-64}")
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
source "$here/common.sh"
addr=$DEMI_TEST_ADDR out=$DEMI_OUT_DIR dev=$(bench_device)
limit="timeout 600"
provider=$(basename "$(readlink -f "/sys/class/infiniband/$dev/device/driver" \
  2> /dev/null)")
[ -n "$provider" ] && [ "$provider" != . ] || provider=rxe
ud="" kind=""
[ "${DEMI_IR_UD:-0}" = 1 ] && ud=1 kind=ud.
callgrind="valgrind --tool=callgrind --callgrind-out-file"
# The slowed server runs under callgrind too, as slow as the client.
slow="valgrind --tool=callgrind --callgrind-out-file=/dev/null -q"

# one TOOL SIZE ROUND_TRIPS SERVER_PREFIX: runs the client under callgrind
# and prints "ROUND_TRIPS TOTAL_IR POLLS LIBRARY_IR POLL_FN SLOW_PUSHES".
one() {
  local tool=$1 size=$2 n=$3 prefix=$4
  local file="$out/callgrind.$kind$tool.$size.$n.${prefix:+slow}"
  rm -f "$file" "$file.log"  # A run that writes none must not read the last.
  local server rc=0
  if [ "$tool" = ib_send_lat ]; then
    $limit $prefix ib_send_lat -d "$dev" -R ${ud:+-c UD} -s "$size" \
      -n "$n" > /dev/null 2>&1 &
    server=$!
    wait_listen 18515
    $limit $callgrind="$file" ib_send_lat -d "$dev" -R ${ud:+-c UD} \
      -s "$size" -n "$n" "$addr" > "$file.log" 2>&1 || rc=$?
  else
    # The server's output (its path line) must not reach the runs' lines.
    $limit $prefix "$probe" ${ud:+--udp} --server --bind "$addr" \
      --port 13020 --exit_after 1 > /dev/null 2>&1 &
    server=$!
    wait_listen 13020
    $limit $callgrind="$file" "$probe" ${ud:+--udp} --client "$addr" \
      --port 13020 --size "$size" --iters "$n" --warmup 100 \
      > "$file.log" 2>&1 || rc=$?
  fi
  # A client that failed leaves its server waiting: it counts for nothing.
  [ "$rc" = 0 ] || kill "$server" 2> /dev/null
  wait
  [ "$rc" = 0 ] || return 1
  local entry=verbs
  [ "$tool" = ib_send_lat ] || entry=demi
  local counts
  counts=$(awk -v provider="$provider" -v entry="$entry" \
    -f "$here/callgrind_polls.awk" "$file") || return 1
  echo "$n $counts"
}

# fit NEEDED: reads "N IR POLLS ..." lines; prints "PER_ROUND_TRIP PER_POLL
# POLLS_PER_ROUND_TRIP" (fit.awk).
fit() { awk -v need="$1" -f "$here/fit.awk"; }

# needed TOOL: reads one()'s lines; prints the polls a round trip needs.
needed() {
  if [ "$1" = ib_send_lat ]; then echo 2; else awk -f "$here/polls_needed.awk"; fi
}

for size in "${sizes[@]}"; do
  for tool in ${DEMI_IR_TOOLS:-ib_send_lat probe}; do
    runs=$(for n in 2000 4000; do
      for prefix in "" "$slow"; do
        one "$tool" "$size" "$n" "$prefix" || exit 1
      done
    done) || { echo "instructions.sh: a $tool run failed" >&2; continue; }
    echo "$runs" > "$out/callgrind.$kind$tool.$size.runs"
    echo "$runs"
    needed=$(needed "$tool" <<< "$runs")
    read -r per_trip per_poll polls <<< "$(fit $needed <<< "$runs")"
    record "ir.$kind$tool.$size.per_round_trip" "$per_trip"
    record "ir.$kind$tool.$size.per_empty_poll" "$per_poll"
    record "ir.$kind$tool.$size.polls_per_round_trip" "$polls"
    record "ir.$kind$tool.$size.polls_needed" "$needed"
    # The same fit over the instructions inside the library's calls only.
    read -r per_trip per_poll polls <<< "$(awk '{ print $1, $4, $3 }' \
      <<< "$runs" | fit $needed)"
    record "ir.$kind$tool.$size.library_per_round_trip" "$per_trip"
    record "ir.$kind$tool.$size.library_per_empty_poll" "$per_poll"
  done
done
