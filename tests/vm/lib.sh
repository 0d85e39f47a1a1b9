# Helpers for the VM scenarios (sourced by /init). Everything a scenario reports goes to fd 3
# (/dev/ttyS1) as sections: `@@vmtest section NAME` followed by raw lines. The host
# (xtask/src/vm/report.rs) concatenates repeated sections of one scenario.

READY_TIMEOUT=${READY_TIMEOUT:-120}
OOMTRACE=/usr/local/bin/oomtrace
CG=/sys/fs/cgroup
# The victim hook the memcg scenarios force (vmtest.victim_hook= on the kernel command line):
# what `oomtrace run` picks on this kernel (tp_btf, or fentry where mark_victim has only a pid).
VICTIM_HOOK=${VICTIM_HOOK:-tp_btf}

emit() { printf '%s\n' "$*" >&3; }
section() { emit "@@vmtest section $1"; }
# put NAME CMD...: the output (stdout and stderr) of CMD as section NAME.
put() { n=$1; shift; section "$n"; "$@" >&3 2>&1; }
# info KEY VALUE: one `KEY=VALUE` line in section `info`.
info() { section info; emit "$1=$2"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# alive PID: the process exists and is not a zombie.
alive() {
  [ -r "/proc/$1/stat" ] || return 1
  read -r _ _ st _ <"/proc/$1/stat" 2>/dev/null || return 1
  [ "$st" != Z ]
}

vmstat_oom_kill() { awk '$1 == "oom_kill" { print $2 }' /proc/vmstat; }

# cgroup_new PATH [MAX]: create /sys/fs/cgroup/PATH, report its inode (= kernfs/cgroup id).
cgroup_new() {
  mkdir -p "$CG/$1"
  [ -n "$2" ] && echo "$2" >"$CG/$1/memory.max"
  info "cgroup_id:/$1" "$(stat -c %i "$CG/$1")"
}

# spawn_in CGROUP CMD...: run CMD in the background inside cgroup CGROUP; its pid is in $!.
spawn_in() {
  c=$1; shift
  sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG/$c" "$@" &
}

# wait_rss PID KB [SECONDS]: wait until PID's VmRSS reaches KB kB.
wait_rss() {
  i=0
  while [ $i -lt $((${3:-60} * 10)) ]; do
    r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
    [ -n "$r" ] && [ "$r" -ge "$2" ] && return 0
    alive "$1" || return 1
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

# start_oomtrace ARGS...: `oomtrace run ARGS` in the background; waits for its `ready` line.
start_oomtrace() {
  OT_PID=
  OT_OUT=/tmp/oomtrace.$SCENARIO.out
  OT_ERR=/tmp/oomtrace.$SCENARIO.err
  if [ ! -x "$OOMTRACE" ]; then
    info oomtrace absent
    return 0
  fi
  info oomtrace_args "run $*"
  t0=$(uptime_s)
  # Each scenario forces its own hooks: no pinned hooks carried from one to the next.
  "$OOMTRACE" run --no-pin "$@" >"$OT_OUT" 2>"$OT_ERR" &
  OT_PID=$!
  i=0
  while [ $i -lt $((READY_TIMEOUT * 10)) ]; do
    if grep -q '^ready' "$OT_ERR"; then
      info oomtrace_ready "yes t0=$t0 t1=$(uptime_s)"
      return 0
    fi
    if ! alive "$OT_PID"; then
      info oomtrace_ready "exited t0=$t0 t1=$(uptime_s)"
      return 0
    fi
    sleep 0.1; i=$((i + 1))
  done
  info oomtrace_ready "timeout t0=$t0 t1=$(uptime_s)"
}

# stop_oomtrace N: wait (10 s at most) for N victim lines, then stop oomtrace and report.
stop_oomtrace() {
  [ -n "$OT_PID" ] || return 0
  i=0
  while [ $i -lt 100 ] && [ "$(grep -c '"victim"' "$OT_OUT")" -lt "$1" ] && alive "$OT_PID"; do
    sleep 0.1; i=$((i + 1))
  done
  if alive "$OT_PID"; then info oomtrace_alive yes; else info oomtrace_alive no; fi
  kill -INT "$OT_PID" 2>/dev/null
  i=0
  while [ $i -lt 50 ] && alive "$OT_PID"; do sleep 0.1; i=$((i + 1)); done
  alive "$OT_PID" && kill -KILL "$OT_PID" 2>/dev/null
  wait "$OT_PID"
  info oomtrace_rc $?
  put oomtrace.stdout cat "$OT_OUT"
  put oomtrace.stderr cat "$OT_ERR"
}

# before_oom / after_oom: kernel ground truth around the OOM of a scenario.
before_oom() {
  dmesg -c >/dev/null
  info vmstat_oom_kill_before "$(vmstat_oom_kill)"
  put meminfo grep -E '^(MemTotal|SwapTotal):' /proc/meminfo
}
after_oom() {
  info vmstat_oom_kill_after "$(vmstat_oom_kill)"
  put dmesg dmesg
}

# wait_exit PID SECONDS: wait for PID to end; kill -9 it when it outlives SECONDS (reported as
# `survived:PID`). Then reports its exit status as `rc:PID`.
wait_exit() {
  i=0
  while [ $i -lt $(($2 * 10)) ] && alive "$1"; do sleep 0.1; i=$((i + 1)); done
  if alive "$1"; then
    info "survived:$1" yes
    kill -KILL "$1" 2>/dev/null
  fi
  wait "$1"
  info "rc:$1" $?
}

# cgroup_report PATH: memory.* files of cgroup PATH as sections `memory.events:/PATH`, ...
cgroup_report() {
  for f in memory.events memory.events.local memory.max memory.peak; do
    [ -r "$CG/$1/$f" ] && put "$f:/$1" cat "$CG/$1/$f"
  done
}

# memcg_single CGROUP ARGS...: oomtrace run ARGS; one `dd bs=128M` in a 64 MiB cgroup.
memcg_single() {
  cg=$1; shift
  cgroup_new "$cg" 64M
  start_oomtrace "$@"
  before_oom
  spawn_in "$cg" dd if=/dev/zero of=/dev/null bs=128M count=1
  pid=$!
  info victim_pid $pid
  wait_exit $pid 60
  after_oom
  cgroup_report "$cg"
  stop_oomtrace 1
}
