//! `tp_btf/mark_victim` (preferred victim hook): the kernel hands us the victim's
//! `struct task_struct *`, so its cgroup, mm and signal are read from the task itself.
//!
//! match-proto:v6.18:include/trace/events/oom.h:TRACE_EVENT(mark_victim, TP_PROTO(struct task_struct *task, uid_t uid)
//! match-proto:v6.1:include/trace/events/oom.h:TRACE_EVENT(mark_victim, TP_PROTO(struct task_struct *task, uid_t uid) (stable backport; mainline 6.1 has TP_PROTO(int pid))
//!
//! On kernels where the tracepoint only takes `int pid`, the daemon does not use this hook (it
//! checks `btf_trace_mark_victim` in BTF first).

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use oomtrace_common::hook;

use crate::victim;

#[btf_tracepoint(function = "mark_victim")]
pub fn mark_victim_btf(ctx: BtfTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    victim::emit_from_task(&ctx, task, hook::TP_BTF);
    0
}
