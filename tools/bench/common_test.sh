#!/bin/bash
# The benchmark scripts' shared helpers, without a device: a perftest run
# that gave no figure must record nothing (not 0) for the median, nor pair
# with another round's figure.
set -uo pipefail
source "${1:?usage: common_test.sh COMMON_SH}"
fails=0
expect() {  # expect WANT SIZE LINE
  local got
  got=$(msg_rate "$2" <<< "$3")
  if [ "$got" != "$1" ]; then
    echo "msg_rate $2 <<< '$3': got '$got', want '$1'"
    fails=$((fails + 1))
  fi
}
# #bytes #iterations BW-peak BW-average MsgRate (MB/s of 2^20 B; Mpps).
expect 37426.0 64 " 64  100000  0.00  2.28  0.037426"  # MsgRate: finer.
expect 0.5 1048576 " 1048576  100  0.60  0.50  0.000001"
expect "" 64 ""                                  # The client failed.
expect "" 64 " 64  100000  0.00  0.00  0.000000"  # No traffic measured.
expect 50.0 64 " 64  100  0.00  0.00  0.000050"  # Below BW's 0.01 MB/s.
expect "" 1048576 " 1048576  100  0.00  0.00  0.000001"
expect "" 64 "Couldn't connect to 192.0.2.1:18515"
# median_range: the median (of the middle two for an even count), the range.
check() {  # check WHAT WANT GOT
  if [ "$2" != "$3" ]; then
    echo "$1: got '$3', want '$2'"
    fails=$((fails + 1))
  fi
}
check "median of 3" "2 1 30" "$(printf '30\n1\n2\n' | median_range)"
check "median of 4" "2.5 1 30" "$(printf '3\n30\n1\n2\n' | median_range)"
check "median of large rates" "1234568.1 1234567.3 1234568.9" \
  "$(printf '1234567.3\n1234568.9\n' | median_range)"
check "median of none" "" "$(median_range < /dev/null)"
# round_ratios: the n-th of ours over the n-th of the peer; a pair where
# either gave no figure (an empty or non-numeric value) or the peer gave 0
# is left out, and the pairs after it still pair up; a last peer with no
# ours of its own pairs with nothing.
rounds=$(mktemp)
trap 'rm -f "$rounds"' EXIT
printf '%s\n' "peer 10" "other 5" "ours 11" \
  "peer " "ours 30" \
  "peer 20" "ours " \
  "peer 0" "ours 1" \
  "peer 8" "ours 6" \
  "peer 20" "ours n/a" \
  "peer 4" "ours 0" \
  "peer 5" > "$rounds"
check "round_ratios" "1.1000 0.7500 0.0000" \
  "$(round_ratios peer ours "$rounds" | tr '\n' ' ' | sed 's/ $//')"
check "round_ratios of no such name" "" "$(round_ratios peer none "$rounds")"
[ "$fails" = 0 ] && echo PASS
exit "$fails"
