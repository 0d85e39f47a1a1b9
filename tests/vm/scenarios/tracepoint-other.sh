# The classic tracepoint when the victim is NOT the task that ran the OOM killer: a resident
# `dd bs=40M` loop is chosen when a second `dd bs=30M` overflows the 64 MiB cgroup. oomtrace may
# give only what the event itself carries (pid only on pid-only kernels): nothing of the
# trigger's may be passed off as the victim's.
cgroup_new tp-other 64M
start_oomtrace --hooks victim=tracepoint,context=fentry
before_oom
spawn_in tp-other dd if=/dev/zero of=/dev/null bs=40M
hog=$!
wait_rss $hog 40000 30 || info "rss_timeout:$hog" yes
info victim_pid $hog
spawn_in tp-other dd if=/dev/zero of=/dev/null bs=30M count=1
trig=$!
info trigger_pid $trig
wait_exit $trig 60
wait_exit $hog 10
after_oom
cgroup_report tp-other
stop_oomtrace 1
