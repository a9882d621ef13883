#!/bin/sh
# PID 1 inside the VM, on the host's (read-only) root: brings up a soft-RoCE
# device, runs the requested command, records its exit status in the results
# share and powers off. Settings come from /run/results/vm.conf.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp TMPDIR=/tmp
results=/run/results
. "$results/vm.conf"
out="$results/output.txt"

power_off() {
  sync
  echo o > /proc/sysrq-trigger
  sleep 60
}

setup_rdma() {
  mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
  ip link set lo up
  if [ "$VM_HOSTS" = 1 ]; then
    # rxe cannot use lo (rdma_resolve_route fails), so one host gets a
    # dummy netdev; rxe loops packets between processes on the same address.
    modprobe dummy || return 1
    ip link add demi0 type dummy || return 1
    netdev=demi0
  else
    modprobe virtio_net || return 1
    netdev=eth0
  fi
  ip addr add "$VM_ADDR/24" dev "$netdev" || return 1
  ip link set "$netdev" up || return 1
  modprobe ib_uverbs && modprobe rdma_ucm || return 1
  if [ "${DEMI_VM_NO_RXE:-0}" = 1 ]; then
    echo "guest: DEMI_VM_NO_RXE=1, no rxe device created"
    return 0
  fi
  modprobe rdma_rxe || return 1
  rdma link add rxe0 type rxe netdev "$netdev" || return 1
}

if ! setup_rdma > "$results/setup.txt" 2>&1; then
  echo "guest: RDMA setup failed:" > "$out"
  cat "$results/setup.txt" >> "$out"
  echo 126 > "$results/rc"
  power_off
fi

# The other VM may still be booting (both start at once, and a loaded host
# slows one down): until the server host answers, a client's connect fails
# with EHOSTUNREACH, not the ECONNREFUSED that clients retry.
if [ "$VM_HOSTS" != 1 ] && [ "$VM_ADDR" != "$VM_SERVER_ADDR" ]; then
  for _ in $(seq 120); do
    busybox ping -c 1 -W 1 "$VM_SERVER_ADDR" > /dev/null 2>&1 && break
  done
fi

ulimit -l unlimited
cd "$VM_CWD" 2>/dev/null || cd /
(
  export DEMI_TEST_HOST="$VM_INDEX" DEMI_TEST_HOSTS="$VM_HOSTS"
  export DEMI_TEST_ADDR="$VM_ADDR" DEMI_TEST_SERVER_ADDR="$VM_SERVER_ADDR"
  export DEMI_TEST_RESULTS="$results" TEST_TMPDIR=/tmp DEMI_TEST_VM=1
  [ -f "$results/env.sh" ] && . "$results/env.sh"
  exec /bin/bash "$results/cmd.sh"
) > "$out" 2>&1
echo $? > "$results/rc.tmp" && mv "$results/rc.tmp" "$results/rc"
power_off
