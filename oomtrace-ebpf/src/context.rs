//! Joining victims to their OOM: the context hook remembers, per triggering task, which OOM it
//! is handling; a victim marked by that same task (`current`) during that call belongs to it.
//! All OOM kills are serialized by the kernel's `oom_lock`, and `mark_victim` runs inside
//! `oom_kill_process` on the trigger's CPU, so the trigger's pid_tgid is an exact key.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::map, maps::LruHashMap};
use oomtrace_common::{ContextLink, counter};

use crate::maps;

/// Entries live only while `oom_kill_process` runs (removed by its return hook). An LRU map: when
/// a return hook did not run (or is not attached) the oldest entries make room, so a long
/// uptime with many distinct trigger threads never fills it (a plain hash map refused every
/// insert after 1,024 triggers, and every later victim came out `context_missing`).
#[map]
pub static CONTEXTS: LruHashMap<u64, ContextLink> = LruHashMap::with_max_entries(1024, 0);

/// An entry older than this is stale (its return hook did not run) and is not used.
const MAX_AGE_NS: u64 = 5_000_000_000;

#[inline(always)]
pub fn remember(seq: u64, group_kill: bool) {
    let link = ContextLink {
        seq,
        group_kill: u32::from(group_kill),
        pad: 0,
    };
    if CONTEXTS
        .insert(bpf_get_current_pid_tgid(), link, 0)
        .is_err()
    {
        maps::count(counter::CONTEXT_MAP_FULL);
    }
}

#[inline(always)]
pub fn forget() {
    let _ = CONTEXTS.remove(bpf_get_current_pid_tgid());
}

/// The `seq` of the OOM the current task is handling, or 0.
#[inline(always)]
pub fn current_seq(now_ns: u64) -> u64 {
    // SAFETY: the value is only copied out.
    match unsafe { CONTEXTS.get(bpf_get_current_pid_tgid()) } {
        Some(l) if now_ns.wrapping_sub(l.seq) < MAX_AGE_NS => l.seq,
        _ => 0,
    }
}
