#!/bin/bash
# Usage: report.sh RESULTS_DIR SECONDS
#
# Prints BENCHMARKS.md from the NAME VALUE lines of on_device.sh and
# two_hosts.sh: every figure of ours beside its peer, with the ratio.
set -euo pipefail
dir=$1 seconds=$2

value() { awk -v k="$1" '$1 == k { print $2 }' "$dir"/*.txt | tail -1; }
# fmt EXPR: awk arithmetic on the values, two decimals ("n/a" if missing).
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "" || b == "" || b + 0 == 0) print "n/a";
    else printf "%.2f", a / b }'
}
mbps() {
  awk -v r="$1" -v s="$2" 'BEGIN {
    if (r == "") print ""; else printf "%.1f", r * s / 1e6 }'
}
# label BYTES: 64 B, 4 KiB, 1 MiB.
label() {
  if (($1 >= 1048576)); then echo "$(($1 / 1048576)) MiB"
  elif (($1 >= 1024)); then echo "$(($1 / 1024)) KiB"
  else echo "$1 B"; fi
}
two() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.2f", v }'; }
# row WHAT PEER_NAME PEER OURS TARGET
row() {
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(two "$3")" \
    "$(two "$4")" "$(ratio "$4" "$3")" "$5"
}
# spread NAME: the median of a figure measured in rounds, then its range.
spread() {
  echo "$(two "$(value "$1")") ($(two "$(value "$1.min")")..$(two "$(value "$1.max")"))"
}
# spreadmb NAME SIZE: as spread, of a message rate in rounds, as MB/s.
spreadmb() {
  local v
  v=$(mbps "$(value "$1")" "$2")
  [ -n "$v" ] || { echo "n/a"; return; }
  echo "$v ($(mbps "$(value "$1.min")" "$2")..$(mbps "$(value "$1.max")" "$2"))"
}
# rowbw WHAT PEER_NAME PEER_TOOL SIZE TARGET: a bandwidth row of medians
# over the rounds (PEER_TOOL.SIZE.msg_per_s against throughput's).
rowbw() {
  local peer="$3.$4.msg_per_s" ours="throughput.$4.msg_per_s"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(spreadmb "$peer" "$4")" \
    "$(spreadmb "$ours" "$4")" "$(ratio "$(value "$ours")" "$(value "$peer")")" "$5"
}
# rowm WHAT PEER_NAME PEER_KEY OURS_KEY TARGET: a row of medians over the
# alternating rounds, each with its range; the ratio is the median of the
# rounds' own (ratio.OURS_KEY), the ratio of the medians in parentheses.
rowm() {
  local of_medians
  of_medians=$(ratio "$(value "$4")" "$(value "$3")")
  [ -z "$(value "ratio.$4")" ] ||
    of_medians="$(two "$(value "ratio.$4")") ($of_medians)"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(spread "$3")" \
    "$(spread "$4")" "$of_medians" "$5"
}

cat <<HEAD
# Benchmarks

Written by \`tools/benchmarks.sh\` on $(date -u +%Y-%m-%d) at commit
$(git rev-parse --short HEAD 2> /dev/null || echo unknown), in ${seconds} s.
Benchmarks, not tests: nothing here is asserted anywhere.

## Environment

- Device: $(value env.device), $(value env.cpus) CPUs, kernel
  $(value env.kernel).
  Without an RDMA device on the machine, this is soft-RoCE (rxe) in the
  project's QEMU VM under software emulation (TCG), client and server as
  two processes in one VM boot, rxe looping packets back on a dummy netdev.
  Absolute figures mean little there; the ratios are the point: ours and
  the peer ran on the same device in the same boot, one after the other.
- Host CPU: $(lscpu 2> /dev/null | sed -n 's/^Model name: *//p' | head -1).
- rdma-core $(dpkg-query -W -f '${Version}' rdma-core 2> /dev/null),
  perftest $(dpkg-query -W -f '${Version}' perftest 2> /dev/null),
  QEMU $(dpkg-query -W -f '${Version}' qemu-system-x86 2> /dev/null).

## Ours against the peers

Latencies are one-way in microseconds (half the round trip, as perftest
reports them); rates are messages per second; bandwidths MB/s (10^6 B).
Ratio = ours / peer: below 1 is better for latency, above 1 for rates.
The first rows ran in $(value env.rounds) alternating rounds (perftest, then
ours, then perftest again, ...): each cell is the median, with the range
over the rounds in parentheses (the datagram latency pair ran
$(value env.ud_pairs) times a round). Their ratio is the median of the rounds'
own ratios (ours over the peer's run earlier in the same round, a few
seconds apart), with the ratio of the two medians in parentheses: the
emulation has slow spells, every tool about 1.5 times slower for a
minute or so, and a round's two runs fall in the same spell, where the
medians can pair a fast spell of one with a slow spell of the other. The bandwidth rows and the connects ran
the same way in $(value env.bw_rounds) rounds (the bandwidth ratios are of
the medians: perftest's sizes run before ours); the other peers ran once
(ours beside rstream are the medians of the rounds above).

| What | Peer | Peer | Ours | Ratio | Target |
|---|---|---:|---:|---:|---|
HEAD
rowm "64 B latency p50" "ib_send_lat typical" ib_send_lat.64.p50 probe.64.p50 \
  "<= 1.00"
rowm "64 B latency p99" "ib_send_lat 99%" ib_send_lat.64.p99 probe.64.p99 \
  "<= 1.10"
rowm "4 KiB latency p50" "ib_send_lat typical" ib_send_lat.4096.p50 \
  probe.4096.p50 "<= 1.00"
rowm "4 KiB latency p99" "ib_send_lat 99%" ib_send_lat.4096.p99 \
  probe.4096.p99 ""
rowm "64 B message rate" "ib_send_bw" ib_send_bw.64.msg_per_s \
  throughput.64.msg_per_s ">= 1.00"
rowm "64 B message rate, 4 connections" "ib_send_bw -q 4" \
  ib_send_bw.64.q4.msg_per_s throughput.64.c4.msg_per_s ""
rowm "64 B datagram latency p50" "ib_send_lat -c UD typical" \
  ud.ib_send_lat.64.p50 ud.probe.64.p50 "<= 1.10"
rowm "64 B datagram latency p99" "ib_send_lat -c UD 99%" \
  ud.ib_send_lat.64.p99 ud.probe.64.p99 ""
rowm "64 B datagram rate" "ib_send_bw -c UD" ud.ib_send_bw.64.msg_per_s \
  ud.throughput.64.msg_per_s ">= 1.00"
row "Instructions per 64 B round trip" "ib_send_lat" \
  "$(value ir.ib_send_lat.64.per_round_trip)" \
  "$(value ir.probe.64.per_round_trip)" "<= 1.30"
row "Instructions per 64 B round trip, library only" "ib_send_lat's verbs" \
  "$(value ir.ib_send_lat.64.library_per_round_trip)" \
  "$(value ir.probe.64.library_per_round_trip)" "<= 2.00"
row "Instructions per 4 KiB round trip, library only" "ib_send_lat's verbs" \
  "$(value ir.ib_send_lat.4096.library_per_round_trip)" \
  "$(value ir.probe.4096.library_per_round_trip)" "ours <= 900"
row "Instructions per 64 B datagram round trip, library only" \
  "ib_send_lat -c UD's verbs" \
  "$(value ir.ud.ib_send_lat.64.library_per_round_trip)" \
  "$(value ir.ud.probe.64.library_per_round_trip)" ""
for size in 65536 1048576; do
  rowbw "$(label $size) bandwidth" "ib_send_bw" ib_send_bw $size ""
done
for tool in ib_write_bw ib_read_bw; do
  for size in 1048576 8388608; do
    target=""
    [ "$tool.$size" = ib_write_bw.1048576 ] && target=">= 0.95"
    rowbw "$(label $size) bandwidth" "$tool" $tool $size "$target"
  done
done
for size in 64 4096; do
  row "$(label $size) latency, mean (median)" "rstream" \
    "$(value rstream.$size.lat_us)" "$(value probe.$size.mean)" "<= 0.70"
done
for size in 65536 1048576 8388608; do
  row "$(label $size) bandwidth" "rstream" \
    "$(awk -v g="$(value rstream.$size.gbps)" 'BEGIN { if (g != "") printf "%.1f", g * 125 }')" \
    "$(mbps "$(value throughput.$size.msg_per_s)" $size)" ">= 2.00"
done
rowm "1,000 sequential connects/s" "rdma_cm by hand" connect.rdma_cm.per_s \
  connect.demi.per_s ">= 1.00"
row "64 B latency p50, two VMs" "ib_send_lat typical" \
  "$(value two_hosts.ib_send_lat.64.p50)" "$(value two_hosts.probe.64.p50)" \
  "<= 1.00"
row "64 B latency p99, two VMs" "ib_send_lat 99%" \
  "$(value two_hosts.ib_send_lat.64.p99)" "$(value two_hosts.probe.64.p99)" \
  "<= 1.10"
row "64 B rate, two VMs (msg/s)" "ib_send_bw" \
  "$(value two_hosts.ib_send_bw.64.msg_per_s)" \
  "$(value two_hosts.throughput.64.msg_per_s)" ">= 1.00"

pct() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.1f%%", v * 100 }'; }
cat <<IDLE

## Idle waits (spin, then sleep)

A wait spins for DEMI_SPIN_US (default 100 us), then sleeps on the
completion channels (docs/design.md, "Waits that sleep"). The tools spin
forever unless given \`--sleep\`. Same boot, alternating rounds: ours
with the default budget (both sides \`--sleep\`) against ours spinning
forever (the rows above), medians and ranges.

| What | Spinning forever | Default budget | Ratio | Target |
|---|---:|---:|---:|---|
IDLE
printf '| 64 B latency p50 | %s | %s | %s | <= 1.05 |\n' "$(spread probe.64.p50)" \
  "$(spread probe_sleep.64.p50)" "$(ratio "$(value probe_sleep.64.p50)" "$(value probe.64.p50)")"
printf '| 64 B latency p99 | %s | %s | %s | <= 1.05 |\n' "$(spread probe.64.p99)" \
  "$(spread probe_sleep.64.p99)" "$(ratio "$(value probe_sleep.64.p99)" "$(value probe.64.p99)")"
printf '| 64 B rate (msg/s) | %s | %s | %s | >= 0.95 |\n' \
  "$(spread throughput.64.msg_per_s)" "$(spread throughput_sleep.64.msg_per_s)" \
  "$(ratio "$(value throughput_sleep.64.msg_per_s)" "$(value throughput.64.msg_per_s)")"
cat <<IDLE

Idle servers, share of a core over 10 s (from /proc/PID/stat): the KV
server $(pct "$(value idle.kv_server.cpu)"), the probe's server
$(pct "$(value idle.probe.cpu)") (spinning, its default) and
$(pct "$(value idle.probe_sleep.cpu)") with \`--sleep\`.

The first 64 B round trip after the connection was idle (one-way us,
median and worst of 3, both sides \`--sleep\`), against the busy p50 of
$(two "$(value probe_sleep.64.p50)") us: after 1 s $(two "$(value idle.after_1000.p50)") (worst
$(two "$(value idle.after_1000.max)")), after 5 s $(two "$(value idle.after_5000.p50)") (worst
$(two "$(value idle.after_5000.max)")), after 30 s $(two "$(value idle.after_30000.p50)") (worst
$(two "$(value idle.after_30000.max)")). Both sides spinning forever, after 5 s:
$(two "$(value idle.after_5000_spinning.p50)") (worst $(two "$(value idle.after_5000_spinning.max)")).
IDLE

cat <<KV

## Key-value server (examples/kv)

4 clients (one request in flight each), 1,000 keys, 64 B values, 90% GET,
5 s, every GET's value checked: **$(two "$(value kv.ops_per_s)") operations/s**,
request round trip p50 $(two "$(value kv.p50_us)") us, p99 $(two "$(value kv.p99_us)") us.

With threads (\`kv_server --threads N\`, a libOS per thread, one port through
SO_REUSEPORT), a 2-thread loadgen over 8 connections, median of 3
alternating rounds: 1 server thread $(two "$(value kv.threads1.ops_per_s)") ops/s,
2 server threads $(two "$(value kv.threads2.ops_per_s)") ops/s. This VM has
$(value env.cpus) CPUs for the server and the loadgen together: see
docs/design.md ("Threads") for what a 32-core host would need.

## Datagrams (--udp: SOCK_DGRAM over UD queue pairs)

One-way latency p50 / p99: 64 B $(value ud.probe.64.p50) / $(value ud.probe.64.p99) us
(medians of the rounds above),
4 KiB (5 fragments on rxe's 1,024 B MTU) $(value ud.probe.4096.p50) / $(value ud.probe.4096.p99) us,
60,000 B $(value ud.probe.60000.p50) / $(value ud.probe.60000.p99) us. Sent with 32 in flight:
64 B $(two "$(value ud.throughput.64.msg_per_s)") datagrams/s (median; the server
received $(value ud.throughput.64.received) of the $(value ud.throughput.64.sent) sent over the rounds), 4 KiB
$(two "$(value ud.throughput.4096.msg_per_s)")/s; of the 4 KiB ones the server received
$(value ud.throughput.received) (the rest, if any, were lost: UDP's
semantics).

## Scale (demi/scale_test)

One server process holds **$(value scale.connections) connections** from one
client process, each echoing 64 B twice, in **$(value scale.server_mib) MiB**
registered (the sum of \`mrlen\` in \`rdma resource show mr\` for its pid).
Its full form, 10,000 connections (\`DEMI_SCALE_CONNECTIONS=10000\`), runs by
hand: see docs/benchmarks_by_hand.md.
Connect, echo and close, 1,000 times over against one server:
$(two "$(value churn.cycles_per_s)") cycles/s; the server's heap afterwards
differs by $(value churn.heap_growth) B from before, with the same QPs and MRs.

## Instructions per round trip

Counted by callgrind, so the emulation's speed does not move them (how
often a client spins does: see the fit below): the client
process's instructions per 64 B round trip, ours (\`latency_probe\`, so
the tool's own timing and statistics are in it, as ib_send_lat's are in
its figure) and ib_send_lat's. A waiting client spins on empty completion
queues as often as timing makes it; so each client ran four times (2,000
and 4,000 round trips, against a native server and one slowed by
callgrind) and the totals were fitted as setup + per round trip x round
trips + per poll x the polls beyond those a round trip needs (polls: our
progress passes, RdmaLibOs::Poll, of which a round trip needs 1 at 64 B
and 2 at 4 KiB, where the push waits for its send's completion;
ib_send_lat's calls of its provider's poll_cq, of which it needs 2, its
send completion and the reply). A round trip's figure thus holds the
polls it needs, every further poll priced as an empty one.
ib_send_lat: $(value ir.ib_send_lat.64.per_round_trip) per round trip,
$(value ir.ib_send_lat.64.per_empty_poll) per empty poll; ours:
$(value ir.probe.64.per_round_trip) per round trip,
$(value ir.probe.64.per_empty_poll) per empty progress pass (which polls
the receive CQ, and the send CQs while a signalled send is out).

Library only: the same fit over the instructions inside the client's calls
into the library (the inclusive cost of its demi_* calls; of ib_send_lat's
calls into libibverbs and the provider), leaving out each client's own
loop, clock reads and statistics. ib_send_lat:
$(value ir.ib_send_lat.64.library_per_round_trip) per round trip; ours:
$(value ir.probe.64.library_per_round_trip). Four runs for three unknowns:
read the per-round-trip figures, not the per-poll ones; two fits of one
binary in one boot differ by up to 2% (docs/benchmarks_by_hand.md, stop
43). Issue 27's targets: ours at most 2x ib_send_lat's library figure at
64 B, and at most 900 at 4 KiB.

At 4 KiB (an eager push, not inline: its token completes with a signalled
send), the whole process: ib_send_lat
$(value ir.ib_send_lat.4096.per_round_trip), ours
$(value ir.probe.4096.per_round_trip); library only: ib_send_lat
$(value ir.ib_send_lat.4096.library_per_round_trip), ours
$(value ir.probe.4096.library_per_round_trip).

Datagrams (\`ib_send_lat -c UD\`, \`latency_probe --udp\`), 64 B, the same
fits: the whole process ib_send_lat $(value ir.ud.ib_send_lat.64.per_round_trip),
ours $(value ir.ud.probe.64.per_round_trip); library only ib_send_lat
$(value ir.ud.ib_send_lat.64.library_per_round_trip), ours
$(value ir.ud.probe.64.library_per_round_trip).
Script: \`tools/bench/instructions.sh LATENCY_PROBE 64 4096\` (and
\`DEMI_IR_UD=1\` for datagrams; \`DEMI_IR_TOOLS=probe\` runs our client
alone; the probe must live where the VM sees it, not under the host's
/tmp).

## Measured by hand

Changes measured one at a time, before and after in one boot (instructions
per call, datagram rates, connects, 10,000 connections):
[docs/benchmarks_by_hand.md](docs/benchmarks_by_hand.md).

## Latency distribution

![one-way latency CDF, 64 B and 4 KiB](docs/latency_cdf.png)

## Commands

Everything above comes from one command, \`tools/benchmarks.sh\`. On the
device (client and server are two processes; the server side gets the
same flags without the address):

\`\`\`
# In DEMI_BENCH_ROUNDS (5) alternating rounds:
ib_send_lat -d DEV -R -s {64,4096} -n 10000 ADDR
latency_probe --client ADDR --size 64,4K --iters 10000 --warmup 1000 --json
ib_send_bw  -d DEV -R -s 64 -n 100000 [-q 4] ADDR
throughput --client ADDR --size 64 --window 32 --seconds 3 [--connections 4]
# In each round too, the first pair DEMI_BENCH_UD_PAIRS (3) times:
ib_send_lat -d DEV -R -c UD -s 64 -n 10000 ADDR
latency_probe --udp --client ADDR --size 64 --iters 10000 --warmup 1000 --json
ib_send_bw  -d DEV -R -c UD -s 64 -n 100000 ADDR
throughput --udp --client ADDR --size 64 --window 32 --seconds 3 --json
# In DEMI_BENCH_BW_ROUNDS (3) alternating rounds:
ib_send_bw  -d DEV -R -s {65536,1048576} -n {3000,100} ADDR
ib_write_bw -d DEV -R -s {1048576,8388608} -n {100,15} ADDR
ib_read_bw  -d DEV -R -s {1048576,8388608} -n {100,15} ADDR
throughput --client ADDR --size 64K --window 32 --seconds 3 --json
throughput --client ADDR --size 1M,8M --window 8 --seconds 4 --json
connect_rate --addr ADDR --connections 1000 --mode {rdma_cm,demi}
# Once:
rstream -s ADDR -S {64,4096} -C 1 -I 5000          # latency
rstream -s ADDR -S {65536,1048576,8388608} -C {2000,100,12} -I 1  # bandwidth
latency_probe --udp --client ADDR --size 4K,60000 --iters 10000 --warmup 1000 \\
  --json
throughput --udp --client ADDR --size 4K --window 32 --seconds 3 --json
kv_loadgen --server ADDR --connections 4 --keys 1000 --value_size 64 \\
  --get_ratio 0.9 --seconds 5 --json
DEMI_CHURN_CYCLES=1000 scale_test_bin
tools/bench/instructions.sh latency_probe 64 4096  # callgrind, see above
DEMI_IR_UD=1 tools/bench/instructions.sh latency_probe 64
\`\`\`

Then, between two VMs (two hosts), \`ib_send_lat -s 64 -n 300\` and
\`latency_probe --size 64 --iters 300 --warmup 30\`, then \`ib_send_bw -s 64
-n 5000\` and \`throughput --size 64 --window 32 --seconds 4\`. The raw outputs
are in the directory the command prints.
KV
