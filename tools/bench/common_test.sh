#!/bin/bash
# The benchmark scripts' shared helpers, without a device: a perftest run
# that gave no figure must record nothing (not 0) for the median.
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
[ "$fails" = 0 ] && echo PASS
exit "$fails"
