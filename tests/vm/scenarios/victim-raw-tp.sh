# Victim from raw_tracepoint/mark_victim (oomtrace's second choice, where tp_btf cannot load),
# forced on every kernel; one memcg OOM kill in a 64 MiB cgroup. Where mark_victim passes only a
# pid, oomtrace must refuse the forced hook and say why (the kill still happens, for the kernel
# checks).
memcg_single victim-raw-tp --hooks victim=raw_tracepoint,context=kprobe
