#!/bin/bash
# Usage: pause_watch.sh FILE
#
# Runs until killed, at real-time priority, and appends "FROM TO" (wall
# seconds) to FILE for every gap of over 1 s between its wake-ups: the
# times this host (a VM whose QEMU the machine left unscheduled) did not
# run. A host that does not run acknowledges nothing either: a pause
# longer than the RC retry budget (about 1.9 s, rdma/cm_connection.h)
# resets the connections to it (RELIABILITY.md, problem 2).
set -uo pipefail
file=$1
chrt -f -p 10 $$ > /dev/null 2>&1 || true
prev=${EPOCHREALTIME/./}
while :; do
  sleep 0.1
  now=${EPOCHREALTIME/./}
  if ((now - prev > 1000000)); then
    echo "${prev:0:-6}.${prev: -6:3} ${now:0:-6}.${now: -6:3}" >> "$file"
  fi
  prev=$now
done
