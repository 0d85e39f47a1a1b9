//! The victim record of the task-pointer hooks (tp_btf, raw tracepoint).

use aya_ebpf::EbpfContext;
use aya_log_ebpf::debug;
use oomtrace_common::{VictimRecord, counter, present};

use crate::{context, exit, maps, record, task};

#[inline(always)]
pub fn emit_from_task<C: EbpfContext>(ctx: &C, task: *const u8, hook: u32) {
    let Some(mut entry) = maps::EVENTS.reserve::<VictimRecord>(0) else {
        maps::count(counter::RING_FULL);
        // Counted only: userspace turns the counter into a `lost` event and metrics. (A log line
        // would go through aya-log's ring, as full as this one in a storm, and cost the verifier
        // a walk of each of aya-log's record sizes at every load.)
        return;
    };
    let r = entry.as_mut_ptr();
    // SAFETY: `r` is the reserved ring slot; `task` is only probe-read.
    let (pid, has_pid, boot_ns) = unsafe {
        record::init_victim(r, hook);
        (*r).context_seq = context::current_seq((*r).header.boot_ns);
        task::fill_victim(r, task);
        (
            (*r).pid,
            (*r).present & present::PID != 0,
            (*r).header.boot_ns,
        )
    };
    if has_pid {
        exit::expect_exit(pid, boot_ns);
    }
    maps::count(counter::VICTIMS);
    entry.submit(0);
    debug!(ctx, "mark_victim: pid {}", pid);
}
