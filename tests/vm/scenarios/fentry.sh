# Context from fentry on oom_kill_process: one memcg OOM kill in a 64 MiB cgroup.
memcg_single fentry --hooks victim=$VICTIM_HOOK,context=fentry
