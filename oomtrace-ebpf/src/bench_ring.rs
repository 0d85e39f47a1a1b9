//! Benchmark only (`--features bench`, built by `cargo xtask bench`, never in the shipped
//! object): one victim-sized record per `oom:oom_score_adj_update`, which userspace fires at
//! will by writing /proc/self/oom_score_adj, to measure the ring → decoder → JSON path.
//!
//! match-proto:v6.18:include/trace/events/oom.h:TRACE_EVENT(oom_score_adj_update, TP_PROTO(struct task_struct *task)

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use oomtrace_common::{VictimRecord, counter, hook, present};

use crate::{maps, record};

#[tracepoint]
pub fn bench_ring(_ctx: TracePointContext) -> u32 {
    let Some(mut entry) = maps::EVENTS.reserve::<VictimRecord>(0) else {
        maps::count(counter::RING_FULL);
        return 0;
    };
    let r = entry.as_mut_ptr();
    // SAFETY: `r` is the reserved ring slot.
    unsafe {
        record::init_victim(r, hook::TRACEPOINT);
        (*r).pid = (*r).trigger_pid;
        (*r).present |= present::PID;
    }
    maps::count(counter::VICTIMS);
    entry.submit(0);
    0
}
