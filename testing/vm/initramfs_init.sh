#!/bin/busybox sh
# PID 1 of the tiny initramfs: loads the 9p modules, mounts the host's root
# read-only and the writable results share, then hands over to the project's
# guest_init.sh on the real root. Busybox applets are not on PATH here.
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev /newroot
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
for m in $($bb cat /modules.order); do
  $bb insmod "/modules/$m.ko" || $bb echo "initramfs: insmod $m failed"
done
p9="trans=virtio,version=9p2000.L,msize=262144"
if ! $bb mount -t 9p -o "$p9,ro,cache=loose" hostroot /newroot; then
  $bb echo "initramfs: cannot mount the host root"
  $bb echo o > /proc/sysrq-trigger
fi
$bb mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
$bb mount -t tmpfs tmpfs /newroot/run
$bb mkdir -p /newroot/run/results
$bb mount -t 9p -o "$p9" results /newroot/run/results
# run_vm.sh starts a VM again that has not come this far in time.
$bb touch /newroot/run/results/booted
$bb mount --move /proc /newroot/proc
$bb mount --move /sys /newroot/sys
$bb mount --move /dev /newroot/dev
exec $bb switch_root /newroot /bin/sh /run/results/guest_init.sh
