//! Maps shared by every program.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use oomtrace_common::counter;

/// Every record goes through this ring, in the order the kernel produced them. Its size is set by
/// the daemon at load time (`--ring-size`); this is the default.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Per-CPU counters, indexed by [`oomtrace_common::counter`]: what was sent and what was dropped.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Written by the daemon only: per [`oomtrace_common::counter`], how much of `COUNTERS` it has
/// already reported. Pinned with the counters, so a restarted daemon reports each loss once.
#[map]
pub static REPORTED: Array<u64> = Array::with_max_entries(counter::COUNT, 0);

#[inline(always)]
pub fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *c += 1 };
    }
}
