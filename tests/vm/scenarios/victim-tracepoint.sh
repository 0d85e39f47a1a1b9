# Victim from the classic tracepoint oom:mark_victim (oomtrace's last victim hook), forced on
# every kernel; one memcg OOM kill in a 64 MiB cgroup whose victim is the task that ran the OOM
# killer: the record is whole on every kernel (what the event lacks is read from `current`).
memcg_single victim-tracepoint --hooks victim=tracepoint,context=fentry
