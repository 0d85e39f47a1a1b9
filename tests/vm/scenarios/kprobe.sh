# Context from a kprobe on oom_kill_process: one memcg OOM kill in a 64 MiB cgroup.
memcg_single kprobe --hooks victim=$VICTIM_HOOK,context=kprobe
