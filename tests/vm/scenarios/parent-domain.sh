# The OOM domain above the victim: the limit is on `parent`, the hog runs in `parent/child`.
cgroup_new parent 64M
echo +memory >"$CG/parent/cgroup.subtree_control"
cgroup_new parent/child
start_oomtrace --hooks victim=$VICTIM_HOOK,context=fentry
before_oom
spawn_in parent/child dd if=/dev/zero of=/dev/null bs=128M count=1
pid=$!
info victim_pid $pid
wait_exit $pid 60
after_oom
cgroup_report parent
cgroup_report parent/child
stop_oomtrace 1
