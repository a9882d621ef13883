#!/bin/bash
# Usage: tools_test.sh LATENCY_PROBE THROUGHPUT
# The probe and the throughput tool end to end on an RDMA device: on one
# host, server and client side by side; on two hosts (DEMI_TEST_HOSTS=2),
# host 0 serves. Checks the table, the JSON and the PNG, the errors, the
# throughput tool with two threads on each side (--threads 2), and the path
# every client and server reports (docs/probe-json.md).
set -euo pipefail
probe=$(readlink -f "$1") tput=$(readlink -f "$2")
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/bench/common.sh"
server=${DEMI_TEST_SERVER_ADDR:?run through testing/run_on_rdma.sh}
hosts=${DEMI_TEST_HOSTS:-1} host=${DEMI_TEST_HOST:-0}
out=$(mktemp -d)
fail() { echo "FAIL: $*" >&2; exit 1; }
addr=${DEMI_TEST_ADDR:?run through testing/run_on_rdma.sh}
version=$("$probe" --version | awk '{print $NF}')
[[ "$version" =~ ^[0-9]+\.[0-9]+ ]] || fail "--version gave '$version'"

# check_paths FORM FILE PEER_RE DATAGRAM [SCHEMA ROLE]: the paths FILE
# reports, as "# path:" lines (FORM text, each before any table row) or
# JSON lines (FORM json, with SCHEMA and ROLE), agree with this host's
# device and address; PEER_RE matches the peer ("" for none); DATAGRAM 1
# for a datagram socket (no GID index of its own). In the test VM: rxe0,
# Ethernet, active MTU 1024.
check_paths() {
  python3 - "$@" "$addr" "$version" "${DEMI_TEST_VM:-0}" <<'PY' ||
import ipaddress, json, re, sys
form, path, peer_re, datagram = sys.argv[1:5]
schema, role = sys.argv[5:7] if len(sys.argv) == 10 else (None, None)
addr, version, vm = sys.argv[-3:]
datagram = datagram == "1"
mtus = {256, 512, 1024, 2048, 4096}
found = []
lines = open(path).read().splitlines()
if form == "text":
    rows = [i for i, l in enumerate(lines) if l[:1].isdigit()]
    for i, line in enumerate(lines):
        if not line.startswith("# path: "):
            continue
        assert not rows or i < rows[0], "path after the table: " + line
        words = line[len("# path: "):].split()
        keys, values = words[0::2], words[1::2]
        want = ["device", "port", "link", "active_mtu", "path_mtu",
                "gid_index", "gid_type", "gid", "local"]
        want += ["peer"] if peer_re else []
        assert keys == want + ["library"], "keys %s" % keys
        p = dict(zip(keys, values))
        assert p.pop("library") == version, "library " + line
        p["link_layer"] = p.pop("link")
        for key in ("port", "active_mtu", "path_mtu", "gid_index"):
            p[key] = int(p[key])
        found.append(p)
else:
    for line in lines:
        if not line.startswith("{"):
            continue
        o = json.loads(line)
        assert o["schema"] == schema, o
        assert o["version"] == version, o
        assert o["role"] == role, o
        assert "paths" not in o, "connections on different paths: %s" % o
        if role == "client":
            for key in ("tool", "server", "connections", "results"):
                assert key in o, "no %s: %s" % (key, o)
        found.append(o["path"])
assert found, "no path in " + path
for p in found:
    assert p["device"], p
    assert p["port"] >= 1, p
    assert p["link_layer"] in ("Ethernet", "InfiniBand"), p
    assert p["active_mtu"] in mtus and p["path_mtu"] in mtus, p
    assert p["path_mtu"] <= p["active_mtu"], p
    if datagram:
        assert p["gid_index"] == -1 and p["gid_type"] == "none", p
        assert p["path_mtu"] == p["active_mtu"], p
    else:
        assert p["gid_index"] >= 0, p
        assert p["gid_type"] in ("IB", "RoCEv1", "RoCEv2"), p
    gid = ipaddress.IPv6Address(p["gid"])
    assert p["local"] == addr, p
    if p["link_layer"] == "Ethernet":
        assert gid.ipv4_mapped == ipaddress.IPv4Address(addr), p
        assert datagram or p["gid_type"] != "IB", p
    if peer_re:
        assert re.fullmatch(peer_re, p["peer"]), p
    else:
        assert "peer" not in p, p
    if vm == "1":
        assert (p["device"], p["link_layer"], p["active_mtu"]) == (
            "rxe0", "Ethernet", 1024), p
print("%s: %d path(s) checked, e.g. %s" % (path, len(found), found[0]))
PY
    fail "paths of $2"
}
any_peer='[0-9.]+:[0-9]+'

# One host runs two probe clients (table; JSON and plot); two hosts one.
probe_clients=$((hosts == 1 ? 2 : 1))
if [ "$host" = 0 ]; then
  "$probe" --server --bind "$server" --port 14000 \
    --exit_after "$probe_clients" > "$out/probe_server.txt" &
  probe_server=$!
  "$tput" --server --bind "$server" --port 14001 --exit_after 1 --json \
    > "$out/tput_server.json" 2> "$out/tput_server.log" &
  tput_server=$!
  # Two threads on one port, each with its own libOS (SO_REUSEPORT).
  "$tput" --server --bind "$server" --port 14002 --threads 2 --exit_after 4 \
    2> "$out/threads_server.log" &
  threads_server=$!
  # The same over datagrams.
  "$probe" --udp --server --bind "$server" --port 14010 --exit_after 1 \
    > "$out/udp_probe_server.txt" &
  udp_probe_server=$!
  "$tput" --udp --server --bind "$server" --port 14011 --exit_after 1 \
    2> "$out/udp_tput_server.log" &
  udp_tput_server=$!
  wait_listen 14000
  wait_listen 14001
  # Announced once both threads listen: a client sooner might reach only
  # the first.
  for ((i = 0; i < 300; i++)); do
    grep -q "receiving on .* (2 threads)" "$out/threads_server.log" && break
    sleep 0.1
  done
fi
# threads_counts: the server's "thread I accepted N connections" lines.
threads_counts() {
  cat "$out/threads_server.log"
  accepted=($(sed -n 's/^throughput: thread [01] accepted \([0-9]*\) .*/\1/p' \
    "$out/threads_server.log"))
  [ "${#accepted[@]}" = 2 ] || fail "no accept count of each server thread"
  [ $((accepted[0] + accepted[1])) = 4 ] || fail "threads accepted ${accepted[*]}"
}
# The throughput servers' reports at the end of each connection (of the
# datagram socket, at exit): what each received, none left open.
tput_reports() {
  cat "$out/tput_server.log" "$out/udp_tput_server.log"
  [ "$(grep -cE '^throughput: qd [0-9]+ closed after [1-9][0-9]* messages' \
    "$out/tput_server.log")" = 1 ] || fail "throughput server's report"
  [ "$(grep -cE '^throughput: qd [0-9]+ closed after [1-9][0-9]* messages' \
    "$out/threads_server.log")" = 4 ] || fail "threads server's reports"
  grep -qE '^throughput: received [1-9][0-9]* datagrams' \
    "$out/udp_tput_server.log" || fail "datagram server's report"
  ! grep -h "open at exit" "$out/tput_server.log" "$out/threads_server.log" ||
    fail "a connection left open"
}
# The servers' paths: one per connection (the datagram socket's once).
server_paths() {
  cat "$out/probe_server.txt" "$out/tput_server.json" \
    "$out/udp_probe_server.txt"
  check_paths text "$out/probe_server.txt" "$any_peer" 0
  check_paths json "$out/tput_server.json" "$any_peer" 0 demi-throughput/1 \
    server
  check_paths text "$out/udp_probe_server.txt" "" 1
}
if [ "$hosts" = 2 ] && [ "$host" = 0 ]; then
  wait "$probe_server" "$tput_server" "$udp_probe_server" "$udp_tput_server" \
    "$threads_server"
  threads_counts
  tput_reports
  server_paths
  exit
fi
retry_client() { retry 30 "$@"; }

# Table, then JSON with a plot, over two connections.
retry_client "$probe" --client "$server" --port 14000 --size 64,4K \
  --iters 200 --warmup 20 --samples "$out/samples.txt" > "$out/table.txt"
cat "$out/table.txt"
grep -q "one-way latency" "$out/table.txt" || fail "no header"
for size in 64 4096; do
  grep -qE "^$size +200 " "$out/table.txt" || fail "no $size B row"
  # Every sample, each a positive number of microseconds.
  [ "$(awk -v s=$size '$1 == s && $2 > 0' "$out/samples.txt" | wc -l)" = 200 ] ||
    fail "not 200 samples of $size B"
done
[ "$(wc -l < "$out/samples.txt")" = 400 ] || fail "samples file"
check_paths text "$out/table.txt" "$server:14000" 0
if [ "$hosts" = 1 ]; then
  "$probe" --client "$server" --port 14000 --size 1K --iters 100 \
    --warmup 10 --connections 2 --json --plot "$out/cdf.png" > "$out/p.json"
  cat "$out/p.json"
  grep -q '"connections":2' "$out/p.json" || fail "JSON"
  grep -q '{"bytes":1024,"count":100,' "$out/p.json" || fail "JSON counts"
  [ "$(head -c 4 "$out/cdf.png" | tail -c 3)" = PNG ] || fail "no PNG"
  check_paths json "$out/p.json" "$server:14000" 0 demi-latency-probe/1 client
fi

# Refused: nothing listens on that port. A bad address: a usage error.
set +e
msg=$("$probe" --client "$server" --port 14999 --timeout 20 2>&1)
rc=$?
set -e
echo "$msg"
[ "$rc" = 1 ] && grep -q "Connection refused" <<< "$msg" || fail "refused"
set +e
"$probe" --client not-an-address > /dev/null 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || fail "bad address gave $rc"

retry_client "$tput" --client "$server" --port 14001 --size 64,1M \
  --seconds 0.5 --window 8 --json > "$out/t.json"
cat "$out/t.json"
for size in 64 1048576; do
  grep -qE "\{\"bytes\":$size,\"messages\":[1-9]" "$out/t.json" ||
    fail "no $size B messages"
done
check_paths json "$out/t.json" "$server:14001" 0 demi-throughput/1 client
# Two client threads, two connections each, against the two server threads:
# one result per size, the threads' messages summed.
retry_client "$tput" --client "$server" --port 14002 --threads 2 \
  --connections 4 --size 64,64K --seconds 0.5 --window 8 --json \
  > "$out/threads.json"
cat "$out/threads.json"
grep -q '"connections":4,"threads":2,' "$out/threads.json" || fail "threads JSON"
for size in 64 65536; do
  grep -qE "\{\"bytes\":$size,\"messages\":[1-9]" "$out/threads.json" ||
    fail "no $size B messages with 2 threads"
done
# Both threads' connections took one path.
check_paths json "$out/threads.json" "$server:14002" 0 demi-throughput/1 client
set +e
msg=$("$tput" --client "$server" --port 14002 --threads 3 --connections 2 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "threads: 1 to --connections" <<< "$msg" ||
  fail "3 threads for 2 connections"
# Datagrams: the client finds its own address on the way to the server.
# Between two VMs a 60,000-byte round trip takes ~0.2 s: 64 B only there.
udp_sizes=64,60000
[ "$hosts" = 1 ] || udp_sizes=64
"$probe" --udp --client "$server" --port 14010 --size "$udp_sizes" \
  --iters 100 --warmup 10 > "$out/udp.txt"
cat "$out/udp.txt"
grep -q "datagram socket" "$out/udp.txt" || fail "no UDP header"
for size in ${udp_sizes//,/ }; do
  grep -qE "^$size +100 " "$out/udp.txt" || fail "no $size B UDP row"
done
check_paths text "$out/udp.txt" "$server:14010" 1
"$tput" --udp --client "$server" --port 14011 --size 64 --seconds 0.5 \
  --json > "$out/udp.json"
cat "$out/udp.json"
grep -qE '\{"bytes":64,"messages":[1-9]' "$out/udp.json" || fail "UDP rate"
set +e
msg=$("$probe" --udp --client "$server" --port 14010 --size 1 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "sizes must be" <<< "$msg" || fail "UDP size 1"
set +e
msg=$("$probe" --udp --server --port 14012 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "needs --bind" <<< "$msg" || fail "UDP no --bind"
if [ "$hosts" = 1 ]; then
  wait "$probe_server" "$tput_server" "$udp_probe_server" "$udp_tput_server" \
    "$threads_server"
  threads_counts
  tput_reports
  server_paths
  # Here the client waited for both server threads: each took a share.
  [ "${accepted[0]}" -ge 1 ] && [ "${accepted[1]}" -ge 1 ] ||
    fail "a server thread took no connection: ${accepted[*]}"
fi
echo PASS
