# The limit read in BPF by the victim hook (issue 15): no context hook, so the event's limit
# can only come from the victim's own memcg and its ancestors, walked in the kernel at the kill.
memcg_single limit-bpf --hooks victim=$VICTIM_HOOK,context=none
