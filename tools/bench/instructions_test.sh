#!/bin/bash
# The instruction benchmark's logic, without a device: what
# callgrind_polls.awk counts as polls, and what fit.awk recovers.
# Usage: instructions_test.sh CALLGRIND_POLLS_AWK FIT_AWK POLLS_NEEDED_AWK
set -uo pipefail
usage="usage: instructions_test.sh CALLGRIND_POLLS_AWK FIT_AWK POLLS_NEEDED_AWK"
polls_awk=${1:?$usage}
fit_awk=${2:?$usage}
needed_awk=${3:?$usage}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
expect() {  # expect WHAT WANT GOT
  if [ "$2" != "$3" ]; then
    echo "$1: got '$3', want '$2'"
    fails=$((fails + 1))
  fi
}

# A client's file as callgrind writes it: the probe calls demi_wait_next_n
# (100 times, 9,000 instructions inside) and the pass runs 150 times; the
# provider's poll_cq is called 240 times (the pass polls the send CQs too),
# more than the passes. demi_push goes past the inline path 30 times
# (PushNotInline, its name compressed on the second call site).
cat > "$dir/probe.cg" <<'CG'
ob=(1) /work/latency_probe
fl=(1) tools/latency_probe.cc
fn=(1) main
cfn=(2) demi_wait_next_n
calls=100 0
5 9000
fl=(2) demi/c_api.cc
fn=(2)
cfn=(3) demi::RdmaLibOs::Poll()
calls=150 0
7 6000
fl=(3) demi/rdma_libos_poll.cc
fn=(3)
cob=(2) /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so
cfn=(4) 0x0000000000002ca0
calls=240 0
9 3000
ob=(2)
fl=(4) ???
fn=(4)
3 3000
ob=(1)
fl=(1)
fn=(5) demi_push
cfn=(6) demi::Connection::PushNotInline(unsigned long, demi_sgarray const&, unsigned int)
calls=20 0
4 400
cfn=(6)
calls=10 0
4 200
totals: 20000
CG
got=$(awk -v provider=rxe -v entry=demi -f "$polls_awk" "$dir/probe.cg")
expect "probe: total, passes, library, poll function, slow pushes" \
  "20000 150 9000 demi::RdmaLibOs::Poll() 30" "$got"

# ib_send_lat's: its polls are its provider's most-called function.
cat > "$dir/perftest.cg" <<'CG'
ob=(1) /usr/bin/ib_send_lat
fl=(1) perftest.c
fn=(1) main
cob=(2) /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so
cfn=(2) 0x0000000000002ca0
calls=300 0
5 4000
cob=(2)
cfn=(3) 0x0000000000003cc0
calls=100 0
6 2000
totals: 9000
CG
got=$(awk -v provider=rxe -v entry=verbs -f "$polls_awk" "$dir/perftest.cg")
expect "ib_send_lat: total, polls, library, poll function, slow pushes" \
  "9000 300 6000 0x0000000000002ca0 0" "$got"

# A file without a pass of ours gives no count rather than a fit of NaNs.
sed '/RdmaLibOs::Poll/,$d' "$dir/probe.cg" > "$dir/nopass.cg"
if awk -v provider=rxe -v entry=demi -f "$polls_awk" "$dir/nopass.cg" \
  > /dev/null 2>&1; then
  expect "a file without passes" "a failure" "success"
fi

# Four runs made from setup 50,000, 1,500 a round trip that needs NEED
# polls, 200 per further poll: the fit gets 1,500 and 200 back.
for need in 1 2; do
  runs=$(for r in "2000 2300" "2000 20000" "4000 4700" "4000 40000"; do
    set -- $r
    echo "$1 $((50000 + 1500 * $1 + 200 * ($2 - need * $1))) $2"
  done)
  got=$(awk -v need=$need -f "$fit_awk" <<< "$runs")
  expect "fit, $need polls needed" "1500 200.0 5.58" "$got"
done

# The passes our round trip needs, from the pushes that did not complete
# in their call: none (inline) 1; all (too long for the device's inline
# limit, whatever the size) 2; a few (a run that began before its
# connection took the inline path) still 1.
needed_of() {  # needed_of SLOW_PUSHES_PER_RUN
  for n in 2000 4000; do
    echo "$n 900000 $((n + 300)) 700000 demi::RdmaLibOs::Poll() $1"
  done | awk -f "$needed_awk"
}
expect "needed, every push inline" 1 "$(needed_of 0)"
expect "needed, a few pushes not inline" 1 "$(needed_of 5)"
expect "needed, no push inline" 2 "$(needed_of 4100)"

[ "$fails" = 0 ] && echo PASS
exit "$fails"
