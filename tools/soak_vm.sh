#!/bin/bash
# Usage: soak_vm.sh SECONDS IDLE_CONNECTIONS KV_SERVER SOAK_CLIENT HOSTILE_PEER
#
# One host's part of the soak (tools/soak.sh runs it on both hosts of
# testing/run_on_rdma.sh --hosts 2). Host 0 serves: kv_server --threads 2,
# its resources sampled every few seconds, and a control port through which
# host 1 asks for netem on this side too and says when it is done. Host 1
# runs the good client for SECONDS and the faults on a schedule scaled to
# SECONDS, then a fresh client. Each writes what it saw into DEMI_OUT_DIR:
# resources.txt (host 0); stats.txt, faults.txt, marks.txt (host 1).
set -euo pipefail
seconds=$1 idle_connections=$2
server_bin=$(readlink -f "$3") client_bin=$(readlink -f "$4")
hostile_bin=$(readlink -f "$5")
host=${DEMI_TEST_HOST:?run through testing/run_on_rdma.sh --hosts 2}
server_addr=${DEMI_TEST_SERVER_ADDR:?}
out=${DEMI_OUT_DIR:?}
port=7000 control_port=9999
if [ "${DEMI_TEST_VM:-0}" != 1 ]; then
  # Links are cut and made lossy here: only between the project's VMs.
  echo "soak: runs only between the project's VMs (DEMI_FORCE_VM=1)" >&2
  exit 1
fi
netdev=$(ip -o addr show | awk -v a="$DEMI_TEST_ADDR" \
  'index($4, a "/") == 1 { print $2 }')
[ -n "$netdev" ] || { echo "soak: no netdev has $DEMI_TEST_ADDR" >&2; exit 1; }
now() { date +%s.%N | cut -c1-14; }
netem() {
  case $1 in
    on) tc qdisc replace dev "$netdev" root netem loss 1% delay 10ms ;;
    # The link cut: every packet dropped both ways, the link itself up.
    # `ip link set down` is what the issue asked for, but rxe in the
    # 6.1 guest kernel never makes an rdma_cm connection over the netdev
    # again after a down/up (perftest's neither), so the host could not
    # come back; see RELIABILITY.md.
    cut) tc qdisc replace dev "$netdev" root netem loss 100% ;;
    off) tc qdisc del dev "$netdev" root 2> /dev/null || true ;;
  esac
}
modprobe sch_netem

# When this host did not run (its QEMU unscheduled on a busy machine), so
# that the report can tell the resets that causes from the library's own.
"$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../testing/pause_watch.sh" \
  "$out/pauses.$host.txt" &
pause_watcher=$!
trap 'kill "$pause_watcher" 2> /dev/null || true' EXIT

# ---- host 0: the server -------------------------------------------------
if [ "$host" = 0 ]; then
  "$server_bin" --bind "$DEMI_TEST_ADDR" --port "$port" --threads 2 \
    > "$out/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    grep -q listening "$out/server.log" && break
    sleep 0.2
  done
  # One line per sample: wall time, RSS (KiB), QPs, MRs, registered bytes,
  # rdma_cm ids (listeners and connections). The process's own lines only.
  sample() {
    local rss tids qps mr_bytes ids dev_qps
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$server/status" 2> /dev/null ||
          echo 0)
    # rdma_cm and verbs record an object under the thread that made it:
    # the serving threads' ids, not only the process's.
    tids=$(ls "/proc/$server/task" 2> /dev/null | tr '\n' ' ')
    ours() {
      awk -v t=" $tids" '
        { for (i = 1; i < NF; i++) if ($i == "pid" && index(t, " " $(i + 1) " ")) { print; next } }'
    }
    qps=$(rdma resource show qp 2> /dev/null | ours | wc -l)
    mr_bytes=$(rdma resource show mr 2> /dev/null | ours | awk '
      { for (i = 1; i < NF; i++) if ($i == "mrlen") bytes += $(i + 1); n++ }
      END { printf "%d %d\n", n, bytes }')
    ids=$(rdma resource show cm_id 2> /dev/null | ours | wc -l)
    # The device's own count too (the kernel's GSI QP included).
    dev_qps=$(rdma resource show 2> /dev/null |
              awk '{ for (i = 1; i < NF; i++) if ($i == "qp") n += $(i + 1) }
                   END { print n + 0 }')
    echo "$(now) ${rss:-0} $qps $mr_bytes $ids $dev_qps"
  }
  period=$((seconds >= 300 ? 5 : 2))
  (
    while kill -0 "$server" 2> /dev/null; do
      sample
      sleep "$period"
    done
  ) > "$out/resources.txt" &
  sampler=$!
  # Until host 1 is done (or long after it should have been).
  hard_end=$(($(date +%s) + seconds + 900))
  while [ "$(date +%s)" -lt "$hard_end" ]; do
    cmd=$(timeout 60 busybox nc -l -p "$control_port" < /dev/null || true)
    case $cmd in
      netem_on) netem on; echo "$(now) netem on" ;;
      netem_off) netem off; echo "$(now) netem off" ;;
      cut_*)
        # Timed here: no command gets through the cut link to end it.
        netem cut
        echo "$(now) link cut for ${cmd#cut_} s"
        (sleep "${cmd#cut_}"; netem off; echo "$(now) link back") &
        ;;
      done) echo "$(now) host 1 done"; break ;;
    esac
  done
  netem off
  # Closed connections drain in the background: give them time to go.
  sleep 10
  kill "$sampler" 2> /dev/null || true
  wait "$sampler" 2> /dev/null || true
  sample >> "$out/resources.txt"
  kill -TERM "$server"
  status=0
  wait "$server" || status=$?
  cat "$out/server.log"
  echo "soak: kv_server exited with $status"
  exit "$status"
fi

# ---- host 1: clients and faults ----------------------------------------
tell_server() {
  local _
  for _ in $(seq 20); do
    if (exec 3<> "/dev/tcp/$server_addr/$control_port" && echo "$1" >&3) \
      2> /dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "soak: could not tell the server $1" >&2
  return 1
}
# A fault: FROM TO NAME, wall seconds, for the report.
mark() { echo "$1 $2 $3" >> "$out/faults.txt"; }
: > "$out/faults.txt"
: > "$out/marks.txt"
: > "$out/stats.txt"
status=0
interval=10
[ "$seconds" -ge 120 ] || interval=5

# The server must be up: the client connects with retries meanwhile. INFO:
# a connection that fails says why (a failed completion or a disconnect).
DEMI_LOG_LEVEL=INFO "$client_bin" --server "$server_addr" --port "$port" --mode good \
  --connections 4 --keys 128 --seconds "$seconds" --interval "$interval" \
  --stats "$out/stats.txt" --key_prefix good- --timeout 30 \
  > "$out/good.log" 2> "$out/good.err" &
good=$!
# Faults begin once the good client's keys are stored and the mix runs.
for _ in $(seq 600); do
  grep -q "mix starts" "$out/good.err" && break
  sleep 0.5
done
t0=$(date +%s)
echo "$(now) mix" >> "$out/marks.txt"
at() { echo $((t0 + $1)); }
wait_until() { while [ "$(date +%s)" -lt "$1" ]; do sleep 0.5; done; }
end=$(at "$seconds")

# 1. A client SIGKILLed and restarted every 20 s, the whole run long.
(
  while [ "$(date +%s)" -lt $((end - 5)) ]; do
    "$client_bin" --server "$server_addr" --port "$port" --mode good \
      --connections 2 --keys 32 --seconds 30 --key_prefix victim- \
      > /dev/null 2>> "$out/victim.err" &
    victim=$!
    sleep 20
    kill -KILL "$victim" 2> /dev/null || true
    wait "$victim" 2> /dev/null || true
    t=$(now)
    mark "$t" "$t" kill
  done
) &
killer=$!

# The others, each at a fraction of the run: hostile peer, deaf client,
# idle connections, lossy link, link cut. Short runs overlap them.
frac() { awk -v s="$seconds" -v f="$1" -v m="$2" \
  'BEGIN { v = s * f; if (v < m) v = m; printf "%d\n", v }'; }
hostile_times=("$(frac 0.1 5)")
if [ "$seconds" -ge 300 ]; then
  for ((t = ${hostile_times[0]} + 60; t < seconds - 30; t += 60)); do
    hostile_times+=("$t")
  done
fi
deaf_at=$(frac 0.2 10) deaf_for=$(frac 0.1 10)
idle_at=$(frac 0.3 15) idle_for=$(frac 0.25 15)
netem_for=$(frac 0.1 10) cut_for=20
# The cut leaves the good client time to notice, reconnect and carry on
# before its mix ends; the lossy link comes before it.
cut_at=$(frac 0.6 30)
[ "$cut_at" -le $((seconds - 30)) ] || cut_at=$((seconds - 30))
netem_at=$(frac 0.45 10)
[ "$netem_at" -le $((cut_at - netem_for)) ] || netem_at=$((cut_at - netem_for))

(
  for t in "${hostile_times[@]}"; do
    wait_until "$(at "$t")"
    from=$(now)
    if ! timeout 300 "$hostile_bin" --server "$server_addr" --port "$port" \
      --timeout 60 >> "$out/hostile.log" 2>&1; then
      echo "hostile peer at $t s: an attack was not ended" >> "$out/failures.txt"
    fi
    mark "$from" "$(now)" hostile
  done
) &
hostile=$!

(
  wait_until "$(at "$deaf_at")"
  from=$(now)
  timeout $((deaf_for + 60)) "$client_bin" --server "$server_addr" \
    --port "$port" --mode deaf --seconds "$deaf_for" --key_prefix deaf- \
    >> "$out/deaf.log" 2>&1 || true
  mark "$from" "$(now)" deaf
) &
deaf=$!

(
  wait_until "$(at "$idle_at")"
  from=$(now)
  timeout $((idle_for + 60)) "$client_bin" --server "$server_addr" \
    --port "$port" --mode idle --connections "$idle_connections" \
    --window 32 --seconds "$idle_for" >> "$out/idle.log" 2>&1 || true
  mark "$from" "$(now)" idle
) &
idle=$!

wait_until "$(at "$netem_at")"
from=$(now)
tell_server netem_on || status=1
netem on
sleep "$netem_for"
netem off
tell_server netem_off || status=1
mark "$from" "$(now)" netem

wait_until "$(at "$cut_at")"
from=$(now)
tell_server "cut_$cut_for" || status=1
netem cut
sleep "$cut_for"
netem off
mark "$from" "$(now)" cut

# The good client's mix ends at its own time; its read-back follows.
wait "$good" || { status=1; echo "soak: the good client failed" >&2; }
echo "$(now) end" >> "$out/marks.txt"
wait "$killer" || true
for job in "$hostile" "$deaf" "$idle"; do wait "$job" || true; done
cat "$out/good.log"
[ ! -f "$out/failures.txt" ] || { cat "$out/failures.txt"; status=1; }

# The server still accepts and serves a new client.
if "$client_bin" --server "$server_addr" --port "$port" --mode good \
  --connections 2 --keys 16 --seconds 3 --interval 3 --key_prefix fresh- \
  > "$out/fresh.log" 2> "$out/fresh.err"; then
  echo "$(now) fresh ok" >> "$out/marks.txt"
else
  echo "$(now) fresh failed" >> "$out/marks.txt"
  cat "$out/fresh.err" >&2
  status=1
fi
tell_server done || status=1
echo "soak: host 1 finished with status $status"
exit "$status"
