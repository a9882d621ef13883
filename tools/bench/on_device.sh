#!/bin/bash
# Usage: on_device.sh LATENCY_PROBE THROUGHPUT KV_SERVER KV_LOADGEN \
#          CONNECT_RATE SCALE_TEST
#
# Runs on one RDMA device (one host): each of ours beside its peer from
# perftest and librdmacm (rstream), client and server as two processes on
# DEMI_TEST_ADDR; latency and the 64 B message rate in DEMI_BENCH_ROUNDS
# (5) alternating rounds (64 B datagrams too; their latency pair
# DEMI_BENCH_UD_PAIRS (3) times a round), bandwidth and sequential
# connects in DEMI_BENCH_BW_ROUNDS (3) more: medians kept, and the medians
# of the rounds' own ratios; then instructions.sh. Writes results.txt
# (NAME VALUE lines), the raw outputs and latency_cdf.png into
# DEMI_OUT_DIR.
set -uo pipefail
probe=$(readlink -f "$1") tput=$(readlink -f "$2")
kv_server=$(readlink -f "$3") kv_loadgen=$(readlink -f "$4")
connect_rate=$(readlink -f "$5") scale_test=$(readlink -f "$6")
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
addr=$DEMI_TEST_ADDR out=$DEMI_OUT_DIR dev=$(bench_device)
: > "$out/results.txt"
limit="timeout 300"
record env.kernel "$(uname -r)"
record env.device "$dev"
record env.cpus "$(nproc)"

# perftest TOOL SIZE ITERS [ARG...]: server and client of a perftest tool
# (with the extra ARGs, such as -c UD); prints the client's result line
# (#bytes #iterations ...).
perftest() {
  local tool=$1 size=$2 iters=$3
  shift 3
  local log="$out/$tool-$size$(tr -d ' -' <<< "$*").log"
  $limit "$tool" -d "$dev" -R -s "$size" -n "$iters" "$@" > /dev/null 2>&1 &
  local server=$!
  wait_listen 18515
  retry 3 $limit "$tool" -d "$dev" -R -s "$size" -n "$iters" "$@" "$addr" \
    > "$log" 2>&1
  wait "$server"
  awk -v s="$size" '$1 == s && NF >= 5' "$log" | tail -1
}

# rstream_run ARGS...: server and client; prints the client's result line.
rstream_run() {
  $limit rstream -b "$addr" -p 7471 "$@" > /dev/null 2>&1 &
  local server=$!
  wait_listen 7471
  retry 3 $limit rstream -s "$addr" -p 7471 "$@" > "$out/rstream.log" 2>&1
  wait "$server"
  awk '$1 == "custom"' "$out/rstream.log" | tail -1
}

# ours TOOL PORT FLAGS -- CLIENT_FLAGS...: a server of ours (TOOL with FLAGS)
# on PORT for one client, its stderr in server.PORT.log, then that client
# (FLAGS and CLIENT_FLAGS); prints the client's output.
ours() {
  local tool=$1 port=$2 flags=()
  shift 2
  while (($# > 0)) && [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  $limit "$tool" "${flags[@]}" --server --bind "$addr" --port "$port" \
    --exit_after 1 > /dev/null 2> "$out/server.$port.log" &
  wait_listen "$port"
  $limit "$tool" "${flags[@]}" --client "$addr" --port "$port" "$@"
  wait
}

# round NAME VALUE: one run's figure (a run a round, or DEMI_BENCH_UD_PAIRS);
# settle then records the median and the spread (NAME.min, NAME.max) of
# every figure over the rounds.
round() {
  echo "$1 $2" >> "$out/rounds.log"
  echo "  $1 = $2"
}
settle() {
  local name
  for name in $(awk '{print $1}' "$out/rounds.log" | sort -u); do
    awk -v k="$name" '$1 == k && $2 != "" {print $2}' "$out/rounds.log" |
      median_range | record_range "$name"
  done
}
# record_range NAME: "MEDIAN MIN MAX" on stdin -> NAME, NAME.min, NAME.max.
record_range() {
  local median min max
  read -r median min max || return 0
  printf '%s %s\n%s.min %s\n%s.max %s\n' "$1" "$median" "$1" "$min" \
    "$1" "$max" >> "$out/results.txt"
}
# pair_ratios PEER:OURS...: the median and range of the rounds' own ratios,
# as ratio.OURS. The emulation has slow spells that outlast a few runs
# (every tool about 1.5 times slower at once): a round's ratio, of two
# runs a few seconds apart, cancels them, while medians taken apart can
# pair a fast spell of one with a slow spell of the other.
pair_ratios() {
  local pair
  for pair in "$@"; do
    round_ratios "${pair%%:*}" "${pair#*:}" "$out/rounds.log" |
      median_range | record_range "ratio.${pair#*:}"
  done
}

# Latency and the 64 B message rate swing with the emulation's load from
# one run to the next: ours and perftest run alternately, round after
# round, and the report takes medians.
rounds=${DEMI_BENCH_ROUNDS:-5}
record env.rounds "$rounds"
ud_pairs=${DEMI_BENCH_UD_PAIRS:-3}
record env.ud_pairs "$ud_pairs"
: > "$out/rounds.log"
for ((r = 1; r <= rounds; r++)); do
  echo "== round $r of $rounds: ib_send_lat, latency_probe (one-way us);" \
    "ib_send_bw, throughput (64 B messages/s, 1 and 4 connections)"
  for size in 64 4096; do
    line=$(perftest ib_send_lat $size 10000)
    round "ib_send_lat.$size.p50" "$(awk '{print $5}' <<< "$line")"
    round "ib_send_lat.$size.p99" "$(awk '{print $8}' <<< "$line")"
    round "ib_send_lat.$size.mean" "$(awk '{print $6}' <<< "$line")"
  done
  plot=()
  [ "$r" != 1 ] || plot=(--plot "$out/latency_cdf.png")
  $limit "$probe" --server --bind "$addr" --port 13000 --exit_after 1 \
    2> /dev/null &
  wait_listen 13000
  json=$($limit "$probe" --client "$addr" --port 13000 --size 64,4K \
    --iters 10000 --warmup 1000 --json "${plot[@]}")
  wait
  echo "$json" >> "$out/latency_probe.json"
  for size in 64 4096; do
    for field in p50 p99 mean; do
      round "probe.$size.$field" "$(json_field "$json" $size ${field}_us)"
    done
  done
  line=$(perftest ib_send_bw 64 100000)
  round ib_send_bw.64.msg_per_s \
    "$(msg_rate 64 <<< "$line")"
  line=$(perftest ib_send_bw 64 100000 -q 4)
  round ib_send_bw.64.q4.msg_per_s \
    "$(msg_rate 64 <<< "$line")"
  $limit "$tput" --server --bind "$addr" --port 13001 --exit_after 5 \
    2> /dev/null &
  wait_listen 13001
  one=$($limit "$tput" --client "$addr" --port 13001 --size 64 --window 32 \
    --seconds 3 --json)
  four=$($limit "$tput" --client "$addr" --port 13001 --size 64 --window 32 \
    --connections 4 --seconds 3 --json)
  wait
  echo "$one$four" >> "$out/throughput.json"
  round throughput.64.msg_per_s "$(json_field "$one" 64 msg_per_s)"
  round throughput.64.c4.msg_per_s "$(json_field "$four" 64 msg_per_s)"
  # The same with the library's default spin budget (waits that sleep).
  json=$(ours "$probe" 13003 --sleep -- --size 64 --iters 10000 \
    --warmup 1000 --json)
  round probe_sleep.64.p50 "$(json_field "$json" 64 p50_us)"
  round probe_sleep.64.p99 "$(json_field "$json" 64 p99_us)"
  one=$(ours "$tput" 13004 --sleep -- --size 64 --window 32 --seconds 3 \
    --json)
  round throughput_sleep.64.msg_per_s "$(json_field "$one" 64 msg_per_s)"
  # Datagrams of 64 B: perftest over UD, then ours (--udp), latency then
  # rate, each pair one run after the other. The latency pair runs
  # DEMI_BENCH_UD_PAIRS (3) times a round: its ratio swings widely from one
  # pair to the next (0.76x to 1.57x in 21 pairs of one boot, stop 51 in
  # docs/benchmarks_by_hand.md), and its runs are short.
  for ((i = 1; i <= ud_pairs; i++)); do
    line=$(perftest ib_send_lat 64 10000 -c UD)
    round ud.ib_send_lat.64.p50 "$(awk '{print $5}' <<< "$line")"
    round ud.ib_send_lat.64.p99 "$(awk '{print $8}' <<< "$line")"
    json=$(ours "$probe" 13012 --udp -- --size 64 --iters 10000 \
      --warmup 1000 --json)
    echo "$json" >> "$out/latency_probe_udp_64.json"
    round ud.probe.64.p50 "$(json_field "$json" 64 p50_us)"
    round ud.probe.64.p99 "$(json_field "$json" 64 p99_us)"
  done
  line=$(perftest ib_send_bw 64 100000 -c UD)
  round ud.ib_send_bw.64.msg_per_s "$(msg_rate 64 <<< "$line")"
  one=$(ours "$tput" 13013 --udp -- --size 64 --window 32 --seconds 3 --json)
  echo "$one" >> "$out/throughput_udp_64.json"
  # Sent and received (the server's count): UDP may lose some.
  echo "$(json_field "$one" 64 messages)" \
    "$(awk '/received/ {print $3}' "$out/server.13013.log")" \
    >> "$out/udp_64_counts.log"
  round ud.throughput.64.msg_per_s "$(json_field "$one" 64 msg_per_s)"
done
settle
pair_ratios ib_send_lat.64.p50:probe.64.p50 ib_send_lat.64.p99:probe.64.p99 \
  ib_send_lat.4096.p50:probe.4096.p50 ib_send_lat.4096.p99:probe.4096.p99 \
  ib_send_bw.64.msg_per_s:throughput.64.msg_per_s \
  ib_send_bw.64.q4.msg_per_s:throughput.64.c4.msg_per_s \
  ud.ib_send_lat.64.p50:ud.probe.64.p50 ud.ib_send_lat.64.p99:ud.probe.64.p99 \
  ud.ib_send_bw.64.msg_per_s:ud.throughput.64.msg_per_s
read -r sent received <<< "$(awk '{ s += $1; r += $2 } END { print s, r }' \
  "$out/udp_64_counts.log")"
record ud.throughput.64.sent "$sent"
record ud.throughput.64.received "$received"

echo "== idle waits: CPU of idle servers, the first round trip after idle"
# cpu_share PID SECONDS: the share of a core PID used over SECONDS.
cpu_share() {
  local ticks before after
  ticks=$(getconf CLK_TCK)
  before=$(awk '{print $14 + $15}' "/proc/$1/stat")
  sleep "$2"
  after=$(awk '{print $14 + $15}' "/proc/$1/stat")
  awk -v d=$((after - before)) -v t="$ticks" -v s="$2" \
    'BEGIN { printf "%.3f", d / t / s }'
}
# idle_server NAME PORT COMMAND...: CPU of an idle server over 10 s.
idle_server() {
  local name=$1 port=$2
  shift 2
  "$@" > /dev/null 2>&1 &
  local pid=$!
  wait_listen "$port"
  sleep 1
  record "idle.$name.cpu" "$(cpu_share "$pid" 10)"
  kill "$pid"
  wait "$pid" 2> /dev/null
}
idle_server kv_server 13005 "$kv_server" --bind "$addr" --port 13005
idle_server probe 13006 "$probe" --server --bind "$addr" --port 13006
idle_server probe_sleep 13007 "$probe" --sleep --server --bind "$addr" \
  --port 13007
# idle_rtt NAME PAUSE_MS [--sleep]: the first round trips after PAUSE_MS
# of idle, median and worst of 3.
idle_rtt() {
  local name=$1 pause=$2
  shift 2
  $limit "$probe" "$@" --server --bind "$addr" --port 13008 --exit_after 1 \
    2> /dev/null &
  wait_listen 13008
  json=$($limit "$probe" "$@" --client "$addr" --port 13008 --size 64 \
    --iters 3 --warmup 1000 --pause_ms "$pause" --timeout 60 --json)
  wait
  echo "$json" >> "$out/latency_probe_idle.json"
  record "idle.$name.p50" "$(json_field "$json" 64 p50_us)"
  record "idle.$name.max" "$(json_field "$json" 64 max_us)"
}
for pause in 1000 5000 30000; do idle_rtt "after_$pause" "$pause" --sleep; done
idle_rtt after_5000_spinning 5000

# Bandwidth and connects swing as much from run to run (one run each put
# a 64 KiB stream at 0.58x of ib_send_bw in one boot, and two runs in
# another at 0.84x and 1.01x): they too run in alternating rounds,
# DEMI_BENCH_BW_ROUNDS (3).
bw_rounds=${DEMI_BENCH_BW_ROUNDS:-3}
record env.bw_rounds "$bw_rounds"
mv "$out/rounds.log" "$out/rounds.latency.log"
: > "$out/rounds.log"
for ((r = 1; r <= bw_rounds; r++)); do
  echo "== round $r of $bw_rounds: bandwidth, perftest then throughput" \
    "(messages/s); 1,000 sequential connects, rdma_cm by hand then ours"
  for spec in "ib_send_bw 65536 3000" \
              "ib_send_bw 1048576 100" "ib_write_bw 1048576 100" \
              "ib_write_bw 8388608 15" "ib_read_bw 1048576 100" \
              "ib_read_bw 8388608 15"; do
    set -- $spec
    line=$(perftest "$1" "$2" "$3")
    # The MsgRate column has too few digits for large messages.
    round "$1.$2.msg_per_s" "$(msg_rate "$2" <<< "$line")"
  done
  $limit "$tput" --server --bind "$addr" --port 13001 --exit_after 2 \
    2> /dev/null &
  wait_listen 13001
  small=$($limit "$tput" --client "$addr" --port 13001 --size 64K \
    --window 32 --seconds 3 --json)
  large=$($limit "$tput" --client "$addr" --port 13001 --size 1M,8M \
    --window 8 --seconds 4 --json)
  wait
  echo "$small$large" >> "$out/throughput.json"
  round throughput.65536.msg_per_s "$(json_field "$small" 65536 msg_per_s)"
  for size in 1048576 8388608; do
    round "throughput.$size.msg_per_s" "$(json_field "$large" $size msg_per_s)"
  done
  for mode in rdma_cm demi; do
    line=$($limit "$connect_rate" --addr "$addr" --port $((13100 + r)) \
      --connections 1000 --mode $mode)
    echo "$line" >> "$out/connect_rate.log"
    round "connect.$mode.per_s" "$(awk '{print $7}' <<< "$line")"
  done
done
settle
pair_ratios connect.rdma_cm.per_s:connect.demi.per_s

echo "== datagrams of several fragments (one-way us, messages/s)"
$limit "$probe" --udp --server --bind "$addr" --port 13010 --exit_after 1 \
  2> /dev/null &
wait_listen 13010
json=$($limit "$probe" --udp --client "$addr" --port 13010 --size 4K,60000 \
  --iters 10000 --warmup 1000 --json)
wait
echo "$json" > "$out/latency_probe_udp.json"
for size in 4096 60000; do
  record "ud.probe.$size.p50" "$(json_field "$json" $size p50_us)"
  record "ud.probe.$size.p99" "$(json_field "$json" $size p99_us)"
done
$limit "$tput" --udp --server --bind "$addr" --port 13011 --exit_after 1 \
  2> "$out/throughput_udp_server.log" &
wait_listen 13011
json=$($limit "$tput" --udp --client "$addr" --port 13011 --size 4K \
  --window 32 --seconds 3 --json)
wait
echo "$json" > "$out/throughput_udp.json"
record ud.throughput.4096.msg_per_s "$(json_field "$json" 4096 msg_per_s)"
record ud.throughput.received \
  "$(awk '/received/ {print $3}' "$out/throughput_udp_server.log")"

echo "== rsocket (rstream): latency (one-way, us) and bandwidth (Gb/s)"
for size in 64 4096; do
  line=$(rstream_run -S $size -C 1 -I 5000)
  record "rstream.$size.lat_us" "$(awk '{print $8}' <<< "$line")"
done
for spec in "65536 2000" "1048576 100" "8388608 12"; do
  set -- $spec
  line=$(rstream_run -S "$1" -C "$2" -I 1)
  record "rstream.$1.gbps" "$(awk '{print $7}' <<< "$line")"
done

echo "== key-value server: 4 clients, 1,000 keys, 64 B values, 90% GET"
$limit "$kv_server" --bind "$addr" --port 13002 2> /dev/null &
server=$!
wait_listen 13002
json=$($limit "$kv_loadgen" --server "$addr" --port 13002 --connections 4 \
  --keys 1000 --value_size 64 --get_ratio 0.9 --seconds 5 --json)
kill "$server"
wait "$server"
echo "$json" > "$out/kv_loadgen.json"
record kv.ops_per_s "$(grep -o '"ops_per_s":[0-9.]*' <<< "$json" | cut -d: -f2)"
record kv.p50_us "$(grep -o '"p50_us":[0-9.]*' <<< "$json" | cut -d: -f2)"
record kv.p99_us "$(grep -o '"p99_us":[0-9.]*' <<< "$json" | cut -d: -f2)"

echo "== key-value server: 1 and 2 threads on one port, alternating"
"$(dirname "${BASH_SOURCE[0]}")/kv_threads.sh" "$kv_server" "$kv_loadgen"

echo "== scale: 1,024 connections held by one server process"
DEMI_CHURN_CYCLES=1000 $limit "$scale_test" \
  --gtest_filter='ScaleTest.OneServer*:ScaleTest.ConnectEcho*' \
  > "$out/scale_test.log" 2>&1
sed -n 's/^scale: server holds \([0-9]*\) connections: .* MRs of \([0-9.]*\) MiB.*/\1 \2/p' \
  "$out/scale_test.log" | {
  read -r held mib
  record scale.connections "$held"
  record scale.server_mib "$mib"
}
record churn.cycles_per_s "$(sed -n 's/^churn: .* cycles in .*: \([0-9.]*\) per second/\1/p' "$out/scale_test.log")"
record churn.heap_growth "$(awk '/^churn: after/ { h[n++] = $NF } END { if (n == 2) print h[1] - h[0] }' "$out/scale_test.log")"

echo "== instructions per 64 B and 4 KiB round trip (callgrind)"
"$(dirname "${BASH_SOURCE[0]}")/instructions.sh" "$probe" 64 4096
echo "== instructions per 64 B datagram round trip (callgrind)"
DEMI_IR_UD=1 "$(dirname "${BASH_SOURCE[0]}")/instructions.sh" "$probe" 64
