# Victim from fentry on mark_oom_victim (oomtrace's choice where mark_victim passes only a pid),
# forced on every kernel; one memcg OOM kill in a 64 MiB cgroup.
memcg_single victim-fentry --hooks victim=fentry,context=kprobe
