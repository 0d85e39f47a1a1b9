//! `fentry/mark_oom_victim` (or a kprobe where BPF trampolines do not load): the victim hook of
//! kernels whose `oom:mark_victim` tracepoint passes only a pid. `mark_oom_victim()` gets the
//! victim's task pointer, so the whole record is read from that task, as tp_btf does.
//!
//! match-proto:v5.10:mm/oom_kill.c:static void mark_oom_victim(struct task_struct *tsk)
//! match-proto:v6.18:mm/oom_kill.c:static void mark_oom_victim(struct task_struct *tsk)
//!
//! The function runs for every task the killer marks, group-kill members included. It also runs
//! again for a task already marked (the chosen victim of a group kill is killed first and once
//! more with its group), where the kernel returns early (`TIF_MEMDIE` already set) and fires no
//! tracepoint: such a repeat is dropped here by remembering each marked task for a while.

use aya_ebpf::{
    helpers::bpf_ktime_get_boot_ns,
    macros::{fentry, kprobe, map},
    maps::LruHashMap,
    programs::{FEntryContext, ProbeContext},
};
use oomtrace_common::hook;

use crate::{kernel::read, off, victim};

/// Tasks marked lately, keyed by (task pointer, pid) so that a freed and reused `task_struct`
/// is not mistaken for the same task; the value is when it was marked.
#[map]
static MARKED: LruHashMap<[u64; 2], u64> = LruHashMap::with_max_entries(1024, 0);

/// A task marked again within this window is the same kill.
const REPEAT_NS: u64 = 10_000_000_000;

#[fentry(function = "mark_oom_victim")]
pub fn mark_oom_victim_fentry(ctx: FEntryContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    if first_mark(task) {
        victim::emit_from_task(&ctx, task, hook::FENTRY);
    }
    0
}

#[kprobe]
pub fn mark_oom_victim_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(task) = ctx.arg::<*const u8>(0)
        && first_mark(task)
    {
        victim::emit_from_task(&ctx, task, hook::KPROBE);
    }
    0
}

/// False when `task` was marked within [`REPEAT_NS`] (the kernel ignores that call).
#[inline(always)]
fn first_mark(task: *const u8) -> bool {
    // SAFETY: probe read of the task's pid; the map value is only copied.
    let pid = unsafe { read::<i32>(task, off!(task_pid)) }.unwrap_or(0);
    let key = [task as u64, pid as u32 as u64];
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    // SAFETY: the value is only copied out.
    if let Some(&then) = unsafe { MARKED.get(key) }
        && now.wrapping_sub(then) < REPEAT_NS
    {
        return false;
    }
    let _ = MARKED.insert(key, now, 0);
    true
}
