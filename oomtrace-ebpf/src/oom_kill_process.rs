//! `oom_kill_process` (kprobe, or fentry where trampolines work): one record per OOM with the
//! `struct oom_control` — the domain memcg (NULL for a global OOM), constraint, the allocation
//! that failed (gfp_mask, order), the domain size and the chosen task's badness — and who ran it.
//! The return hooks (kretprobe / fexit) end the join window of [`crate::context`].
//!
//! match-proto:v6.18:mm/oom_kill.c:static void oom_kill_process(struct oom_control *oc, const char *message)
//! match-proto:v4.19:mm/oom_kill.c:static void oom_kill_process(struct oom_control *oc, const char *message)

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use aya_log_ebpf::debug;
use oomtrace_common::{
    ABSENT, ContextRecord, RECORD_VERSION, RecordHeader, counter, hook, kind, present,
};

use crate::{
    cgroup, context,
    kernel::{read, read_ptr},
    maps, off,
};

#[kprobe]
pub fn oom_kill_process_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(oc) = ctx.arg::<*const u8>(0) {
        on_oom_kill(&ctx, oc, hook::KPROBE);
    }
    0
}

#[kretprobe]
pub fn oom_kill_process_kretprobe(_ctx: RetProbeContext) -> u32 {
    context::forget();
    0
}

#[fentry(function = "oom_kill_process")]
pub fn oom_kill_process_fentry(ctx: FEntryContext) -> i32 {
    let oc: *const u8 = ctx.arg(0);
    on_oom_kill(&ctx, oc, hook::FENTRY);
    0
}

#[fexit(function = "oom_kill_process")]
pub fn oom_kill_process_fexit(_ctx: FExitContext) -> i32 {
    context::forget();
    0
}

/// `mem_cgroup_get_oom_group()`: does `memory.oom.group` on the victim's memcg or an ancestor up
/// to the OOM domain make this a group kill? cgroup v1 has no group kills.
#[inline(always)]
unsafe fn group_kill(chosen: *const u8, domain: *const u8) -> bool {
    if off!(use_dfl_cgrp) == 0 || off!(memcg_oom_group) == ABSENT {
        return false;
    }
    unsafe {
        let Some(cgroups) = read_ptr(chosen, off!(task_cgroups)) else {
            return false;
        };
        let Some(mut css) = cgroup::memory_css(cgroups) else {
            return false;
        };
        let mut group = false;
        for _ in 0..oomtrace_common::CGROUP_MAX_DEPTH {
            let Some(memcg) = crate::memcg::memcg_of_css(css) else {
                break;
            };
            if read::<u8>(memcg, off!(memcg_oom_group)).unwrap_or(0) != 0 {
                group = true;
            }
            if memcg == domain {
                break;
            }
            match read_ptr(css, off!(css_parent)) {
                Some(p) => css = p,
                None => break,
            }
        }
        group
    }
}

#[inline(always)]
fn on_oom_kill<C: EbpfContext>(ctx: &C, oc: *const u8, hook: u32) {
    let Some(mut entry) = maps::EVENTS.reserve::<ContextRecord>(0) else {
        maps::count(counter::CONTEXT_RING_FULL);
        // Counted only: userspace turns the counter into a `lost` event and metrics. (A log line
        // would go through aya-log's ring, as full as this one in a storm, and cost the verifier
        // a walk of each of aya-log's record sizes at every load.)
        return;
    };
    let r = entry.as_mut_ptr();
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    // SAFETY: `r` is the reserved ring slot; `oc` and everything behind it is only probe-read.
    let group = unsafe {
        (*r).header = RecordHeader {
            kind: kind::CONTEXT,
            version: RECORD_VERSION,
            size: core::mem::size_of::<ContextRecord>() as u32,
            boot_ns: now,
        };
        (*r).hook = hook;
        (*r).seq = now;
        let pid_tgid = bpf_get_current_pid_tgid();
        (*r).trigger_pid = pid_tgid as u32;
        (*r).trigger_tgid = (pid_tgid >> 32) as u32;
        (*r).trigger_comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*r).chosen_pid = 0;
        (*r).constraint = 0;
        (*r).gfp_mask = 0;
        (*r).order = 0;
        (*r).group_kill = 0;
        (*r).totalpages = 0;
        (*r).chosen_points = 0;
        (*r).memcg_usage_pages = 0;
        (*r).memcg_limit_pages = 0;
        (*r).memcg.id = 0;
        (*r).memcg.depth = 0;
        (*r).memcg.len = 0;
        (*r).memcg.truncated = 0;
        (*r).memcg.pad = 0;
        let mut p = present::TRIGGER;

        if let Some(v) = read::<u32>(oc, off!(oc_constraint)) {
            (*r).constraint = v;
            p |= present::CONSTRAINT;
        }
        if let Some(v) = read::<u32>(oc, off!(oc_gfp_mask)) {
            (*r).gfp_mask = v;
            p |= present::GFP_MASK;
        }
        if let Some(v) = read::<i32>(oc, off!(oc_order)) {
            (*r).order = v;
            p |= present::ORDER;
        }
        if let Some(v) = read::<u64>(oc, off!(oc_totalpages)) {
            (*r).totalpages = v;
            p |= present::TOTALPAGES;
        }
        if let Some(v) = read::<i64>(oc, off!(oc_chosen_points)) {
            (*r).chosen_points = v;
            p |= present::CHOSEN_POINTS;
        }
        let chosen = read_ptr(oc, off!(oc_chosen)).unwrap_or(core::ptr::null());
        if let Some(v) = read::<i32>(chosen, off!(task_pid)) {
            (*r).chosen_pid = v as u32;
            p |= present::CHOSEN_PID;
        }
        // oc->memcg: NULL = global OOM (reported with MEMCG present and memcg.id 0).
        let memcg = read::<*const u8>(oc, off!(oc_memcg));
        if let Some(memcg) = memcg {
            p |= present::MEMCG;
            if !memcg.is_null() {
                let css = memcg.wrapping_add(off!(memcg_css) as usize);
                if off!(memcg_css) != ABSENT
                    && let Some(cg) = read_ptr(css, off!(css_cgroup))
                {
                    cgroup::fill(&raw mut (*r).memcg, cg);
                }
                let counter_off = off!(memcg_memory);
                if counter_off != ABSENT {
                    let pc = memcg.wrapping_add(counter_off as usize);
                    if let Some(v) = read::<i64>(pc, off!(page_counter_usage)) {
                        (*r).memcg_usage_pages = if v < 0 { 0 } else { v as u64 };
                        p |= present::MEMCG_USAGE;
                    }
                    if let Some(v) = read::<u64>(pc, off!(page_counter_max)) {
                        (*r).memcg_limit_pages = v;
                        p |= present::MEMCG_LIMIT;
                    }
                }
            }
        }
        let group = group_kill(chosen, memcg.unwrap_or(core::ptr::null()));
        (*r).group_kill = u32::from(group);
        if off!(use_dfl_cgrp) == 0 || off!(memcg_oom_group) != ABSENT {
            p |= present::GROUP_KILL;
        }
        (*r).present = p;
        group
    };
    context::remember(now, group);
    maps::count(counter::CONTEXTS);
    entry.submit(0);
    debug!(
        ctx,
        "oom_kill_process: seq {} group {}",
        now,
        u32::from(group)
    );
}
