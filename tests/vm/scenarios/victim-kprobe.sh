# Victim from a kprobe on mark_oom_victim (what oomtrace falls back to where fentry does not
# load); one memcg OOM kill in a 64 MiB cgroup.
memcg_single victim-kprobe --hooks victim=kprobe,context=fentry
