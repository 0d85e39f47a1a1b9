//! `tracepoint/sched/sched_process_exit`: when does a victim actually go? The victim hooks put
//! each victim's thread id in [`PENDING_EXITS`]; this program, which runs for every exiting
//! thread on the node, costs one map lookup for all others and writes an [`ExitRecord`] for a
//! victim.
//!
//! match-proto:v6.18:include/trace/events/sched.h:TRACE_EVENT(sched_process_exit, TP_PROTO(struct task_struct *p, bool group_dead)
//! match-proto:v4.19:include/trace/events/sched.h:DEFINE_EVENT(sched_process_template, sched_process_exit, TP_PROTO(struct task_struct *p)
//!
//! The only caller is `do_exit()` (kernel/exit.c) with `p = current`, so the exiting thread is
//! the current task and no event field is read.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use oomtrace_common::{ExitRecord, RECORD_VERSION, RecordHeader, counter, kind};

use crate::maps;

/// Victims waiting to exit: thread id → `boot_ns` of the kill. LRU: a victim whose exit is never
/// seen (it was already past this tracepoint when marked) ages out instead of filling the map.
#[map]
pub static PENDING_EXITS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(4096, 0);

/// Called by the victim hooks once the victim's record is written.
#[inline(always)]
pub fn expect_exit(pid: u32, kill_boot_ns: u64) {
    let _ = PENDING_EXITS.insert(pid, kill_boot_ns, 0);
}

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = pid_tgid as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let Some(kill_boot_ns) = (unsafe { PENDING_EXITS.get(pid) }).copied() else {
        return 0;
    };
    let _ = PENDING_EXITS.remove(pid);
    let Some(mut entry) = maps::EVENTS.reserve::<ExitRecord>(0) else {
        maps::count(counter::EXIT_RING_FULL);
        return 0;
    };
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    entry.write(ExitRecord {
        header: RecordHeader {
            kind: kind::EXIT,
            version: RECORD_VERSION,
            size: core::mem::size_of::<ExitRecord>() as u32,
            boot_ns: now,
        },
        pid,
        tgid: (pid_tgid >> 32) as u32,
        kill_boot_ns,
    });
    maps::count(counter::EXITS);
    entry.submit(0);
    0
}
