# Global OOM (run in a VM with little RAM): busybox `tail /dev/zero` in the root cgroup grows
# until the kernel kills it. oomtrace runs with its default hooks.
start_oomtrace
before_oom
put meminfo.before grep -E '^(MemTotal|MemFree|MemAvailable|SwapTotal):' /proc/meminfo
tail /dev/zero &
pid=$!
info victim_pid $pid
wait_exit $pid 120
after_oom
put meminfo.after grep -E '^(MemTotal|MemFree|MemAvailable|SwapTotal):' /proc/meminfo
stop_oomtrace 1
