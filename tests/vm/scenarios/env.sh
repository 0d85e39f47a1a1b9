# The VM environment: kernel, mounts, cgroup v2 controllers, hook targets.
put uname uname -r
put mounts cat /proc/mounts
put subtree_control cat "$CG/cgroup.subtree_control"
put kallsyms grep -E ' (oom_kill_process|__oom_kill_process|out_of_memory|mark_oom_victim)([. ]|$)' /proc/kallsyms
put mark_victim_format cat /sys/kernel/tracing/events/oom/mark_victim/format
put kprobe_pmu cat /sys/bus/event_source/devices/kprobe/type
put btf ls -l /sys/kernel/btf/vmlinux
put meminfo grep -E '^(MemTotal|SwapTotal):' /proc/meminfo
