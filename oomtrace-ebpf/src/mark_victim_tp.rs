//! `tracepoint/oom/mark_victim`: the classic tracepoint, oomtrace's last victim hook (proven on
//! the kernels of `cargo xtask vm-test` and the 6.18 CI host; see docs/kernel.md).
//!
//! match-proto:v6.18:include/trace/events/oom.h:TRACE_EVENT(mark_victim, TP_PROTO(struct task_struct *task, uid_t uid)
//! match-proto:v4.13:include/trace/events/oom.h:TRACE_EVENT(mark_victim, TP_PROTO(int pid)
//!
//! The event's fields differ by kernel (pid only before 6.9; comm, RSS, uid, pgtables and
//! oom_score_adj after). Their offsets come from the event's tracefs `format` file, read by the
//! daemon, and a field this kernel lacks stays absent in the record. The event carries no task
//! pointer; when the victim is the task running the OOM killer (it allocated the memory itself,
//! the common case), the rest (tgid, swap, cgroup; everything on pid-only kernels) is read from
//! `current`, and the event's own fields, when present, win.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_probe_read_kernel_str_bytes, generated::bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
};
use aya_log_ebpf::debug;
use oomtrace_common::{VictimRecord, counter, hook, present, tp_field};

use crate::{globals::tp, maps, record};

#[tracepoint]
pub fn mark_victim_tp(ctx: TracePointContext) -> u32 {
    match try_mark_victim(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

/// Reads a field located by `enc` (see `tp_field`), sign-extending signed fields.
#[inline(always)]
fn field(ctx: &TracePointContext, enc: u32) -> Option<i64> {
    if enc & tp_field::PRESENT == 0 {
        return None;
    }
    let off = tp_field::offset(enc) as usize;
    let signed = enc & tp_field::SIGNED != 0;
    // SAFETY: read_at uses bpf_probe_read on the event record; a bad offset fails, it can't fault.
    unsafe {
        match tp_field::size(enc) {
            2 if signed => ctx.read_at::<i16>(off).ok().map(i64::from),
            2 => ctx.read_at::<u16>(off).ok().map(i64::from),
            4 if signed => ctx.read_at::<i32>(off).ok().map(i64::from),
            4 => ctx.read_at::<u32>(off).ok().map(i64::from),
            8 => ctx.read_at::<i64>(off).ok(),
            _ => None,
        }
    }
}

fn try_mark_victim(ctx: &TracePointContext) -> Result<(), i64> {
    let Some(mut entry) = maps::EVENTS.reserve::<VictimRecord>(0) else {
        maps::count(counter::RING_FULL);
        // Counted only: userspace turns the counter into a `lost` event and metrics. (A log line
        // would go through aya-log's ring, as full as this one in a storm, and cost the verifier
        // a walk of each of aya-log's record sizes at every load.)
        return Err(-1);
    };
    let r = entry.as_mut_ptr();
    // SAFETY: `r` is the reserved ring slot; every write stays inside it.
    unsafe {
        record::init_victim(r, hook::TRACEPOINT);
        (*r).context_seq = crate::context::current_seq((*r).header.boot_ns);
        if let Some(v) = field(ctx, tp::TP_PID.load())
            && v as u32 == (*r).trigger_pid
        {
            crate::task::fill_victim(r, bpf_get_current_task() as *const u8);
        }
        let mut p = (*r).present;
        if let Some(v) = field(ctx, tp::TP_PID.load()) {
            (*r).pid = v as u32;
            p |= present::PID;
        }
        if let Some(v) = field(ctx, tp::TP_UID.load()) {
            (*r).uid = v as u32;
            p |= present::UID;
        }
        if let Some(v) = field(ctx, tp::TP_OOM_SCORE_ADJ.load()) {
            (*r).oom_score_adj = v as i32;
            p |= present::OOM_SCORE_ADJ;
        }
        if let Some(v) = field(ctx, tp::TP_TOTAL_VM.load()) {
            (*r).total_vm_kb = v as u64;
            p |= present::TOTAL_VM;
        }
        if let Some(v) = field(ctx, tp::TP_ANON_RSS.load()) {
            (*r).anon_rss_kb = v as u64;
            p |= present::ANON_RSS;
        }
        if let Some(v) = field(ctx, tp::TP_FILE_RSS.load()) {
            (*r).file_rss_kb = v as u64;
            p |= present::FILE_RSS;
        }
        if let Some(v) = field(ctx, tp::TP_SHMEM_RSS.load()) {
            (*r).shmem_rss_kb = v as u64;
            p |= present::SHMEM_RSS;
        }
        if let Some(v) = field(ctx, tp::TP_PGTABLES.load()) {
            (*r).pgtables_kb = v as u64;
            p |= present::PGTABLES;
        }
        // __data_loc: the u32 field holds (len << 16) | offset-from-record-start.
        if let Some(loc) = field(ctx, tp::TP_COMM.load()) {
            let off = (loc as u32 & 0xffff) as usize;
            let src = (ctx.as_ptr() as *const u8).add(off);
            if bpf_probe_read_kernel_str_bytes(src, &mut (*r).comm).is_ok() {
                p |= present::COMM;
            }
        }
        (*r).present = p;
    }
    // SAFETY: written above.
    let (pid, has_pid, boot_ns) = unsafe {
        (
            (*r).pid,
            (*r).present & present::PID != 0,
            (*r).header.boot_ns,
        )
    };
    if has_pid {
        crate::exit::expect_exit(pid, boot_ns);
    }
    maps::count(counter::VICTIMS);
    entry.submit(0);
    debug!(ctx, "mark_victim: pid {}", pid);
    Ok(())
}
