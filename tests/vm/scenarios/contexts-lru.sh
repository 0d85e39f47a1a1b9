# Long uptimes without the return hook (issue 13): a CONTEXTS map of 2 entries (test setting) and
# no return hook on oom_kill_process, then four memcg OOM kills by four different trigger tasks.
# Nothing removes the map's entries; every victim must still join its OOM (an LRU map evicts the
# oldest; a plain hash map refused the third insert and left every later victim context_missing).
export OOMTRACE_TEST_CONTEXT_MAP_ENTRIES=2 OOMTRACE_TEST_NO_RETURN_HOOK=1
start_oomtrace --hooks victim=$VICTIM_HOOK,context=kprobe
before_oom
for i in 1 2 3 4; do
  cgroup_new lru$i 64M
  spawn_in lru$i dd if=/dev/zero of=/dev/null bs=128M count=1
  pid=$!
  info victim_pid:$i $pid
  wait_exit $pid 60
done
after_oom
stop_oomtrace 4
