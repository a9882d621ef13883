#!/bin/bash
# Usage: flags_test.sh LATENCY_PROBE THROUGHPUT
# Flags out of range fail before demi_init, with a message that names the
# flag and exit status 1: no device needed. A client aimed at 127.0.0.1
# sends nothing off this host even where a device is.
set -uo pipefail
probe=$1 tput=$2
fails=0
# rejects FLAG PROGRAM ARG...: the program exits 1 and names FLAG.
rejects() {
  local flag=$1 msg rc
  shift
  msg=$("$@" 2>&1)
  rc=$?
  if [ "$rc" != 1 ] || ! grep -q -e "$flag" <<< "$msg"; then
    echo "FAIL: $* gave $rc: $msg"
    fails=$((fails + 1))
  fi
}
# accepts FLAG PROGRAM ARG...: whatever else happens, FLAG is not refused.
accepts() {
  local flag=$1 msg
  shift
  msg=$(timeout 30 "$@" 2>&1)
  if grep -q -e "$flag" <<< "$msg"; then
    echo "FAIL: $* refused $flag: $msg"
    fails=$((fails + 1))
  fi
}
client=(--client 127.0.0.1 --port 1 --timeout 1)

# The pause would hold up the other connections' replies (one thread).
rejects --pause_ms "$probe" "${client[@]}" --pause_ms 5 --connections 2
rejects --pause_ms "$probe" "${client[@]}" --pause_ms -1
accepts --pause_ms "$probe" "${client[@]}" --pause_ms 5 --connections 1
# Every sample is kept: the count is capped, and warmup + iters fits.
rejects --iters "$probe" "${client[@]}" --iters 2000000000
rejects --iters "$probe" "${client[@]}" --iters 0
rejects --warmup "$probe" "${client[@]}" --warmup 2147483647 --iters 1
rejects --warmup "$probe" "${client[@]}" --warmup -1
accepts "--iters\|--warmup" "$probe" "${client[@]}" --iters 10000000 \
  --warmup 10000000
for value in nan inf -1 0 1e-7 4.9e-324 1e300; do
  rejects --timeout "$probe" "${client[@]}" --timeout "$value"
  rejects --timeout "$tput" --server --timeout "$value"
  rejects --seconds "$tput" "${client[@]}" --seconds "$value"
done
accepts --timeout "$probe" "${client[@]}" --timeout 0.5
accepts --seconds "$tput" "${client[@]}" --seconds 0.5
rejects --exit_after "$probe" --server --exit_after -1
rejects --exit_after "$tput" --server --exit_after -1
rejects --exit_after "$probe" --udp --server --bind 127.0.0.1 --exit_after -1
[ "$fails" = 0 ] && echo PASS
exit "$fails"
