#!/bin/bash
# Usage: soak_report.sh DIR VM_STATUS
#
# Turns what the soak's two hosts wrote into DIR (tools/soak_vm.sh) into
# DIR/report.md (per-interval table, faults, end checks) and DIR/soak.png,
# and exits 1 if a check failed. VM_STATUS is the hosts' exit status: the
# good client's read-back, the hostile peer and the fresh client are
# checked there.
set -euo pipefail
dir=$1 vm_status=$2
cd "$dir"
report=report.md
# What the end state may differ from the start by: the table holds the
# values put (about 2 MiB) and the heap keeps some of what it grew to; the
# library's pools may keep a slab or two.
rss_tolerance_kib=$((32 * 1024))
mr_tolerance=${SOAK_MR_TOLERANCE:-2}
mr_bytes_tolerance=$((${SOAK_REGISTERED_TOLERANCE_MIB:-4} * 1024 * 1024))
# Errors a good client may see after its own link came back: its keepalive
# and request timeouts, then reconnecting.
cut_grace=60

failures=()
fail() { failures+=("$1"); }
for f in stats.txt faults.txt marks.txt resources.txt; do
  [ -s "$f" ] || fail "missing or empty: $f"
done
t0=$(awk '$2 == "mix" { print $1; exit }' marks.txt 2> /dev/null || true)
if [ -z "$t0" ] || [ ! -s stats.txt ] || [ ! -s resources.txt ]; then
  printf '%s\n' "${failures[@]}" "soak: no run to report on (see vms.log)" |
    tee "$report" >&2
  exit 1
fi
read -r cut_from cut_to < <(awk '$3 == "cut" { print $1, $2; exit }' \
  faults.txt)
cut_from=${cut_from:-0} cut_to=${cut_to:-0}

# The table: one row per interval of the good client's stats, with the
# server's last sample at or before the interval's end and the faults that
# overlapped it.
awk -v t0="$t0" '
  FILENAME == "resources.txt" { n++; rt[n] = $1; rss[n] = $2; qps[n] = $3
                                mrs[n] = $4; mrb[n] = $5; ids[n] = $6
                                dev[n] = NF >= 7 ? $7 : "-"; next }
  FILENAME == "faults.txt" { m++; ff[m] = $1; ft[m] = $2; fn[m] = $3; next }
  {
    len = $1 - (prev ? prev : t0); prev = $1
    if (len <= 0) next
    k = 0
    for (i = 1; i <= n; i++) if (rt[i] <= $1) k = i
    faults = ""; kills = 0
    for (j = 1; j <= m; j++) {
      if (ff[j] > $1 || ft[j] < $1 - len) continue
      if (fn[j] == "kill") { kills++; continue }
      if (index(faults, fn[j]) == 0) faults = faults (faults ? "," : "") fn[j]
    }
    if (kills) faults = faults (faults ? "," : "") "kill" (kills > 1 ? "x" kills : "")
    printf "%.0f %.1f %.1f %.1f %d %d %.1f %d %d %.1f %d %s %s\n", \
      $1 - t0, $2 / len, $3 / 1000, $4 / 1000, $5, $6, \
      (k ? rss[k] / 1024 : 0), (k ? qps[k] : 0), (k ? mrs[k] : 0), \
      (k ? mrb[k] / 1048576 : 0), (k ? ids[k] : 0), (faults ? faults : "-"), \
      (k ? dev[k] : "-")
  }' resources.txt faults.txt stats.txt > table.txt

# Pauses of either host (soak_vm.sh's pause watch): "HOST FROM TO" lines.
# One that outlasts the RC retry budget (~1.9 s) resets the connections
# across it by design, as a host that stops answering would.
for h in 0 1; do
  [ ! -f "pauses.$h.txt" ] || awk -v h="$h" '{ print h, $1, $2 }' "pauses.$h.txt"
done > pauses.txt
# Every error of the good client must fall in its own host's link cut
# (plus the time to notice and reconnect), or in a host pause of over
# pause_excuse seconds (plus pause_grace).
pause_excuse=1.8 pause_grace=10
read -r errors in_cut in_pause stray < <(awk -v a="$cut_from" -v b="$cut_to" \
  -v g="$cut_grace" -v x="$pause_excuse" -v pg="$pause_grace" '
  FILENAME == "pauses.txt" { if ($3 - $2 > x) { n++; pf[n] = $2; pt[n] = $3 }
                             next }
  /error at/ {
    t = $4 + 0; all++
    if (a != 0 && t >= a - 1 && t <= b + g) { cut++; next }
    for (i = 1; i <= n; i++) if (t >= pf[i] - 1 && t <= pt[i] + pg) break
    if (i <= n) paused++; else other++
  }
  END { print all + 0, cut + 0, paused + 0, other + 0 }' pauses.txt \
  good.err 2> /dev/null || echo 0 0 0 0)
[ "$stray" = 0 ] ||
  fail "$stray errors of the good client outside its host's link cut and host pauses"

# The link cut: the server must drop the cut host's connections on its own
# (keepalive) and take the good client's reconnects afterwards.
read -r before during < <(awk -v a="$cut_from" -v b="$cut_to" '
  $1 >= a - 30 && $1 < a && $3 > before { before = $3 }
  $1 >= a && $1 <= b + 2 { if (!seen || $3 < during) during = $3; seen = 1 }
  END { print before + 0, (seen ? during : -1) }' resources.txt)
back=$(awk -v a="$cut_from" '/back at/ { if ($NF + 0 > a) n++ }
  END { print n + 0 }' good.err 2> /dev/null || echo 0)
if [ "$cut_from" = 0 ]; then
  fail "the link cut did not happen"
else
  [ "$during" -ge 0 ] && [ "$during" -le $((before - 4)) ] ||
    fail "the server kept the cut host's connections (QPs $before before, lowest $during during the cut)"
  [ "$back" -ge 4 ] ||
    fail "the good client got $back of its 4 connections back after the cut"
fi

# The end against the start. QPs: against the server before any client
# (none may be left). Memory: against the server under the good load just
# before the first fault, once the library's pools and the table have
# grown to what that load needs (the pools keep their slabs for reuse).
first_fault=$(awk 'NR == 1 || $1 < m { m = $1 } END { print m }' faults.txt)
read -r s_rss s_qps s_mrs s_mrb < <(awk -v f="$first_fault" '
  NR == 1 { q = $3 } $1 < f { r = $2; m = $4; b = $5 }
  END { print r, q, m, b }' resources.txt)
read -r e_rss e_qps e_mrs e_mrb < <(tail -1 resources.txt | awk '{ print $2, $3, $4, $5 }')
read -r p_rss p_qps p_mrs p_mrb < <(awk '
  { if ($2 > r) r = $2; if ($3 > q) q = $3; if ($4 > m) m = $4; if ($5 > b) b = $5 }
  END { print r, q, m, b }' resources.txt)
# A listener holds no QP: with every client gone, none may be left (the
# first sample may already count the good client's).
[ "$e_qps" -eq 0 ] || fail "server QPs: $e_qps left at the end, with every client gone"
[ "$e_mrs" -le $((s_mrs + mr_tolerance)) ] ||
  fail "server MRs: $s_mrs at the start, $e_mrs at the end (tolerance $mr_tolerance)"
[ "$e_mrb" -le $((s_mrb + mr_bytes_tolerance)) ] ||
  fail "server registered bytes: $s_mrb at the start, $e_mrb at the end"
[ "$e_rss" -le $((s_rss + rss_tolerance_kib)) ] ||
  fail "server RSS: $s_rss KiB at the start, $e_rss KiB at the end"
verify=$(grep -h "verify:" good.log 2> /dev/null || echo "no read-back")
fresh=$(awk '$2 == "fresh" { print $3 }' marks.txt)
[ "$fresh" = ok ] || fail "a fresh client was not served"
[ "$vm_status" = 0 ] || fail "a host's part failed (exit status $vm_status; see vms.log)"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
{
  echo "# Soak under faults"
  echo
  echo "Run of $(awk -v a="$t0" -v b="$(awk '$2 == "end" { print $1 }' marks.txt)" \
    'BEGIN { printf "%.0f", b - a }') s of mix; good client: 4 connections, 128 keys"
  echo "(every 8th 64 KiB, the others 64 B), 90% GET, every reply checked."
  echo
  echo "| t (s) | ops/s | p50 (ms) | p99 (ms) | errors | reconnects | server RSS (MiB) | QPs | device QPs | MRs | registered (MiB) | cm ids | faults |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|"
  awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", \
    $1, $2, $3, $4, $5, $6, $7, $8, $13, $9, $10, $11, $12 }' table.txt
  echo
  echo "QPs: the server's, as \`rdma resource show qp\` lists them; device QPs:"
  echo "the server VM's device count (\`rdma resource show\`), the kernel's GSI QP"
  echo "included; cm ids: the server's rdma_cm ids (listener and connections)."

  echo
  echo "Faults (seconds after the mix began):"
  echo
  awk -v t0="$t0" '$3 != "kill" { printf "- %s: %.0f to %.0f s\n", $3, $1 - t0, $2 - t0 }
    $3 == "kill" { k++ } END { printf "- a client SIGKILLed and restarted: %d times\n", k }' \
    faults.txt
  # Not injected: the machine's load (negative: before the mix began).
  awk -v t0="$t0" '{ printf "- host %d (%s) did not run for %.1f s at %.0f s\n",
    $1, $1 == 0 ? "the server" : "the clients", $3 - $2, $2 - t0 }' pauses.txt
  [ -s pauses.txt ] || echo "- no host paused for over 1 s"
  grep -h "hostile_peer:" hostile.log 2> /dev/null | sort | uniq -c |
    sed 's/^ */- /' || true
  grep -h "idle:\|deaf:" idle.log deaf.log 2> /dev/null | sed 's/^/- /' || true
  echo
  echo "End checks:"
  echo
  echo "- good client: $errors errors: $in_cut within its own host's link cut (+${cut_grace} s), $in_pause within host pauses of over ${pause_excuse} s (+${pause_grace} s), $stray elsewhere"
  echo "- ${verify#soak_client: }"
  echo "- link cut: server QPs $before before, lowest $during during the cut; $back connections back after it"
  echo "- server at the start (QPs: before any client; memory: under the good load before the first fault) / peak / end (every client gone):"
  echo "  RSS $((s_rss / 1024)) / $((p_rss / 1024)) / $((e_rss / 1024)) MiB (tolerance $((rss_tolerance_kib / 1024)) MiB),"
  echo "  QPs $s_qps / $p_qps / $e_qps (none may be left), MRs $s_mrs / $p_mrs / $e_mrs (tolerance $mr_tolerance),"
  echo "  registered $(mib "$s_mrb") / $(mib "$p_mrb") / $(mib "$e_mrb") MiB (tolerance $(mib "$mr_bytes_tolerance") MiB)"
  echo "- a fresh client afterwards: ${fresh:-not run}"
  echo
  if [ ${#failures[@]} = 0 ]; then
    echo "**PASS**"
  else
    echo "**FAIL**:"
    printf -- '- %s\n' "${failures[@]}"
  fi
} > "$report"

# The plot: ops/s and p99 per interval below; above them, a lane per
# fault showing when it was on, and the kills as ticks.
read -r max_ops max_p99 < <(awk '$2 > o { o = $2 } $4 > p { p = $4 }
  END { print (o > 0 ? o : 1), (p > 0 ? p : 1) }' table.txt)
{
  echo "set terminal pngcairo size 1000,520 font ',10'"
  echo "set output 'soak.png'"
  echo "set title 'demi-rdma KV soak: the good client under faults'"
  echo "set xlabel 'seconds since the mix began'"
  echo "set ylabel 'ops/s'"
  echo "set y2label 'p99 (ms)'"
  echo "set ytics nomirror"
  echo "set y2tics"
  # The data use the lower 60%; the fault lanes sit above.
  echo "set yrange [0:$max_ops * 1.7]"
  echo "set y2range [0:$max_p99 * 1.7]"
  echo "set key outside bottom center horizontal"
  awk -v t0="$t0" '
    BEGIN { split("#e06060 #5080e0 #40a040 #d0a020 #a050c0", c, " ")
            split("hostile deaf idle netem cut", order, " ")
            for (i = 1; i <= 5; i++) lane[order[i]] = i }
    $3 == "kill" {
      printf "set arrow from %.1f,graph 0.98 to %.1f,graph 0.93 nohead lw 2 lc rgb \"#aa0000\"\n", $1 - t0, $1 - t0
      next
    }
    {
      l = ($3 in lane) ? lane[$3] : 5
      top = 0.92 - 0.055 * (l - 1); bottom = top - 0.04
      a = $1 - t0; b = $2 - t0; if (b - a < 1) b = a + 1
      printf "set object rect from %.1f,graph %.3f to %.1f,graph %.3f fc rgb \"%s\" fs solid 0.6 noborder\n", a, bottom, b, top, c[l]
      if (!($3 in named)) {
        printf "set label \"%s\" at %.1f,graph %.3f right offset -0.5,0 font \",9\"\n", $3, a, bottom + 0.02
        named[$3] = 1
      }
    }' faults.txt
  echo "plot 'table.txt' using 1:2 with linespoints lw 2 title 'ops/s', \\"
  echo "     'table.txt' using 1:4 axes x1y2 with linespoints lw 2 title 'p99 (ms)', \\"
  echo "     NaN with lines lw 2 lc rgb '#aa0000' title 'client SIGKILLed (ticks)'"
} > soak.gp
gnuplot soak.gp || fail "gnuplot could not draw soak.png"

cat "$report"
[ ${#failures[@]} = 0 ]
