# A memcg OOM under cgroup v1 (the boot of its own that init.sh gives `vmtest.cgroup=v1`: only the
# v1 memory hierarchy at /sys/fs/cgroup/memory, no cgroup2): one `dd bs=128M` in a v1 memory
# cgroup whose memory.limit_in_bytes is 64 MiB, traced with the hooks oomtrace picks itself.
CG=/sys/fs/cgroup/memory
mkdir -p "$CG/v1"
echo $((64 << 20)) >"$CG/v1/memory.limit_in_bytes"
info "cgroup_id:/v1" "$(stat -c %i "$CG/v1")"
put cgroup.mounts grep cgroup /proc/mounts
start_oomtrace
before_oom
spawn_in v1 dd if=/dev/zero of=/dev/null bs=128M count=1
pid=$!
info victim_pid $pid
wait_exit $pid 60
after_oom
for f in memory.oom_control memory.limit_in_bytes memory.failcnt memory.max_usage_in_bytes; do
  put "$f:/v1" cat "$CG/v1/$f"
done
stop_oomtrace 1
