#!/bin/sh
# /init of the `cargo xtask vm-test` initramfs (see xtask/src/vm.rs and tests/vm/README.md).
#
# Mounts what oomtrace needs, then runs the scenarios named on the kernel command line
# (`vmtest.scenarios=a,b,c`) one after the other, each in its own subshell. Results go to the
# second serial port (/dev/ttyS1, a file on the host), framed by `@@vmtest` lines, so the kernel's
# console output on ttyS0 never interleaves with them. Ends with `poweroff -f`: if this script
# dies instead, the kernel panics and QEMU (-no-reboot, panic=-1) exits all the same.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
# cgroup v2 with +memory; or, with `vmtest.cgroup=v1` (the memcg-v1 boot), only the v1 memory
# hierarchy at /sys/fs/cgroup/memory (a controller bound to v2 cannot be mounted as v1).
if grep -qw 'vmtest.cgroup=v1' /proc/cmdline; then
  mount -t tmpfs cgroup /sys/fs/cgroup
  mkdir /sys/fs/cgroup/memory
  mount -t cgroup -o memory memory /sys/fs/cgroup/memory
else
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  echo +memory > /sys/fs/cgroup/cgroup.subtree_control
fi

. /vmtest/lib.sh

stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3>/dev/ttyS1

scenarios=
for w in $(cat /proc/cmdline); do
  case "$w" in
    vmtest.scenarios=*) scenarios=$(echo "${w#vmtest.scenarios=}" | tr ',' ' ') ;;
    vmtest.ready_timeout=*) READY_TIMEOUT=${w#vmtest.ready_timeout=} ;;
    vmtest.victim_hook=*) VICTIM_HOOK=${w#vmtest.victim_hook=} ;;
  esac
done
export READY_TIMEOUT VICTIM_HOOK

emit "@@vmtest boot uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"
for s in $scenarios; do
  echo "vmtest: scenario $s" >/dev/console
  emit "@@vmtest begin $s"
  if [ -r "/vmtest/scenarios/$s.sh" ]; then
    (SCENARIO=$s; . "/vmtest/scenarios/$s.sh")
    rc=$?
  else
    emit "no such scenario: $s"
    rc=127
  fi
  emit "@@vmtest end $s rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
done
emit "@@vmtest done"
# Closing the tty waits until its output has drained.
exec 3>&-
poweroff -f
