# memory.oom.group=1: three `dd bs=18M` (resident, looping) and a fourth `dd bs=40M` in one
# 64 MiB cgroup. The fourth triggers the OOM; the kernel kills all four.
cgroup_new group 64M
echo 1 >"$CG/group/memory.oom.group"
start_oomtrace --hooks victim=$VICTIM_HOOK,context=kprobe
before_oom
loops=
for i in 1 2 3; do
  spawn_in group dd if=/dev/zero of=/dev/null bs=18M
  p=$!
  loops="$loops $p"
  wait_rss $p 18000 30 || info "rss_timeout:$p" yes
done
info loop_pids "${loops# }"
for p in $loops; do info "oom_score:$p" "$(cat /proc/$p/oom_score)"; done
spawn_in group dd if=/dev/zero of=/dev/null bs=40M count=1
big=$!
info trigger_pid $big
wait_exit $big 60
for p in $loops; do wait_exit $p 10; done
after_oom
cgroup_report group
stop_oomtrace 4
