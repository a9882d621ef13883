#!/bin/bash
# Usage: run_vm.sh [--hosts 1|2] [--timeout SECONDS] [--keep DIR] -- CMD [ARG...]
#
# Boots one or two QEMU VMs (software emulation) that share this machine's
# root file system read-only, brings up a soft-RoCE (rxe) device in each and
# runs CMD in each, from the current directory. Prints each VM's output and
# exits with the first non-zero exit status of CMD (or 125 if a VM did not
# report one: boot failure or time out).
#
# Now and then an emulated VM stalls before its kernel starts (seen once:
# SeaBIOS at "Booting from ROM" for the whole timeout). A VM that has not
# reached its initramfs within DEMI_VM_BOOT_TIMEOUT seconds (default 240;
# a boot takes 10-40; 0: no limit), or whose QEMU exited before, is
# killed, and the run starts again, every VM of it: three attempts at
# most, the last one without the limit. The attempts share the timeout
# (so that the caller's own, run_on_rdma.sh's, still comes later), and
# one is retried only while two boot limits of it are left.
#
# One host: one VM, rxe on a dummy netdev with address 192.0.2.1; client and
# server processes run side by side in it. Two hosts: two VMs joined by a
# QEMU socket netdev over 127.0.0.1, rxe on each eth0, addresses 192.0.2.1
# (host 0, the server) and 192.0.2.2 (host 1). CMD sees DEMI_TEST_HOST (its
# index), DEMI_TEST_HOSTS, DEMI_TEST_ADDR (its own address) and
# DEMI_TEST_SERVER_ADDR (host 0's). Environment variables named GTEST_*,
# DEMI_*, ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS, TSAN_OPTIONS and
# TSAN_SYMBOLIZER_PATH are passed through.
set -euo pipefail

hosts=1
timeout_s=${DEMI_VM_TIMEOUT:-900}
boot_limit=${DEMI_VM_BOOT_TIMEOUT:-240}
attempts=3
# DEMI_VM_MEMORY_MB: each VM's memory (hand runs with thousands of QPs).
keep=""
while [ $# -gt 0 ]; do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run_vm.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "run_vm.sh: no command" >&2; exit 2; }
case $hosts in 1|2) ;; *) echo "run_vm.sh: --hosts is 1 or 2" >&2; exit 2 ;; esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v qemu-system-x86_64 > /dev/null || {
  echo "run_vm.sh: qemu-system-x86_64 missing (tools/install_deps.sh)" >&2
  exit 2
}

# The newest installed Debian kernel that ships rdma_rxe.
kernel_version=""
for dir in $(ls -d /lib/modules/*/ 2>/dev/null | sort -V -r); do
  v=$(basename "$dir")
  if [ -r "/boot/vmlinuz-$v" ] &&
     find "$dir/kernel/drivers/infiniband/sw/rxe" -name 'rdma_rxe.ko*' \
       2>/dev/null | grep -q .; then
    kernel_version=$v
    break
  fi
done
[ -n "$kernel_version" ] || {
  echo "run_vm.sh: no kernel with rdma_rxe in /boot (install linux-image-amd64)" >&2
  exit 2
}

if [ -n "$keep" ]; then
  work=$keep
  mkdir -p "$work"
else
  work=$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/demi-vm.XXXXXX")
fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

"$here/make_initramfs.sh" "$kernel_version" "$work/initramfs.cpio"

# Writes the share of VM $1 with address $2.
prepare_share() {
  local index=$1 addr=$2 share=$work/vm$1 name
  shift 2
  mkdir -p "$share"
  cp "$here/guest_init.sh" "$share/guest_init.sh"
  {
    echo "VM_INDEX=$index"
    echo "VM_HOSTS=$hosts"
    echo "VM_ADDR=$addr"
    echo "VM_SERVER_ADDR=192.0.2.1"
    echo "DEMI_VM_NO_RXE=${DEMI_VM_NO_RXE:-0}"
    printf 'VM_CWD=%q\n' "$PWD"
  } > "$share/vm.conf"
  : > "$share/env.sh"
  for name in $(compgen -e); do
    case $name in
      GTEST_*|DEMI_*|ASAN_OPTIONS|UBSAN_OPTIONS|LSAN_OPTIONS|TSAN_OPTIONS|TSAN_SYMBOLIZER_PATH)
        printf 'export %s=%q\n' "$name" "${!name}" >> "$share/env.sh" ;;
    esac
  done
  printf '%q ' "$@" > "$share/cmd.sh"
  echo >> "$share/cmd.sh"
}

# Starts VM $1; the rest are extra QEMU arguments.
start_vm() {
  local index=$1
  shift
  # no_timer_check: on a busy host, emulation can be too slow for the
  # kernel's IO-APIC timer check, which then panics at boot.
  timeout --kill-after=10 "$run_timeout" qemu-system-x86_64 \
    -machine q35 -accel tcg -cpu max -smp 2 -m "${DEMI_VM_MEMORY_MB:-2048}" \
    -nographic -no-reboot -nic none \
    -kernel "/boot/vmlinuz-$kernel_version" -initrd "$work/initramfs.cpio" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 clocksource=tsc tsc=reliable no_timer_check" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$work/vm$index,mount_tag=results,security_model=none" \
    "$@" < /dev/null > "$work/console$index.txt" 2>&1 &
  pids+=($!)
}

# A free TCP port on 127.0.0.1 for the socket netdev between two VMs.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! grep -qi ":$(printf '%04X' "$port") " /proc/net/tcp; then
      echo "$port"
      return
    fi
  done
}

# Starts the run's VMs, each with a fresh share.
start_all() {
  rm -rf "$work"/vm[01]
  if [ "$hosts" = 1 ]; then
    prepare_share 0 192.0.2.1 "$@"
    start_vm 0
    return
  fi
  prepare_share 0 192.0.2.1 "$@"
  prepare_share 1 192.0.2.2 "$@"
  local port
  port=$(free_port)
  start_vm 0 -netdev "socket,id=n0,listen=127.0.0.1:$port" \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:de:00:01
  # The second VM connects only once the first one listens.
  for _ in $(seq 100); do
    grep -qi ":$(printf '%04X' "$port") 00000000:0000 0A" /proc/net/tcp && break
    sleep 0.1
  done
  start_vm 1 -netdev "socket,id=n0,connect=127.0.0.1:$port" \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:de:00:02
}

# Waits until every VM has reached its initramfs (its share's "booted");
# false once one has not within boot_limit seconds, or exited before
# (then `exited` says so).
wait_boot() {
  local deadline=$((SECONDS + boot_limit)) i missing
  exited=0
  while :; do
    missing=0
    for ((i = 0; i < hosts; i++)); do
      [ -e "$work/vm$i/booted" ] && continue
      if ! kill -0 "${pids[$i]}" 2> /dev/null; then
        # It may have booted, run and exited since the look above.
        [ -e "$work/vm$i/booted" ] && continue
        exited=1
        return 1
      fi
      missing=1
    done
    [ "$missing" = 1 ] || return 0
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

start=$(date +%s)
begin=$SECONDS
for ((attempt = 1; attempt <= attempts; attempt++)); do
  run_timeout=$((timeout_s - (SECONDS - begin)))
  start_all "$@"
  [ "$attempt" -lt "$attempts" ] && [ "$boot_limit" -gt 0 ] &&
    [ "$run_timeout" -gt $((2 * boot_limit)) ] || break
  wait_boot && break
  if [ "$exited" = 1 ]; then
    why="exited before it booted"
  else
    why="did not boot within ${boot_limit}s"
  fi
  echo "run_vm.sh: a VM $why (attempt $attempt of $attempts), starting again; its console ended:" >&2
  for ((i = 0; i < hosts; i++)); do
    [ -e "$work/vm$i/booted" ] || tail -n 3 "$work/console$i.txt" | sed 's/^/  /' >&2
  done
  echo >&2  # The console's last line may have no end.
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  pids=()
done

for pid in "${pids[@]}"; do wait "$pid" || true; done
pids=()
elapsed=$(($(date +%s) - start))

status=0
for ((i = 0; i < hosts; i++)); do
  share=$work/vm$i
  prefix=""
  [ "$hosts" = 1 ] || prefix="[host $i] "
  if [ -f "$share/output.txt" ]; then
    sed "s/^/$prefix/" "$share/output.txt"
  fi
  if [ -f "$share/rc" ]; then
    rc=$(cat "$share/rc")
  else
    rc=125
    echo "${prefix}run_vm.sh: the VM reported no exit status (boot failure or time out after ${timeout_s}s); its console:"
    sed "s/^/$prefix  /" "$work/console$i.txt" | tail -n 40
  fi
  if [ "$rc" != 0 ] && [ "$status" = 0 ]; then status=$rc; fi
done
echo "run_vm.sh: $hosts VM(s), kernel $kernel_version, ${elapsed}s, exit status $status"
exit "$status"
