//! `raw_tracepoint/mark_victim`: the same task pointer as tp_btf, without BTF typing; for kernels
//! or setups where tp_btf cannot load.
//!
//! match-proto:v6.18:include/trace/events/oom.h:TRACE_EVENT(mark_victim, TP_PROTO(struct task_struct *task, uid_t uid)

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use oomtrace_common::hook;

use crate::victim;

#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn mark_victim_raw(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    victim::emit_from_task(&ctx, task, hook::RAW_TRACEPOINT);
    0
}
