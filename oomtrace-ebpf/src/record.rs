//! Filling ring records in place (they are larger than the 512-byte BPF stack).

use core::mem::{offset_of, size_of};

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated::bpf_get_current_comm,
};
use oomtrace_common::{CgroupRef, RECORD_VERSION, RecordHeader, VictimRecord, kind, present};

/// Writes the header and the fields every hook knows the same way (trigger = `current`), and
/// clears the rest so no stale ring memory reaches userspace.
///
/// # Safety
/// `r` points to a reserved, writable `VictimRecord` in the ring.
#[inline(always)]
pub unsafe fn init_victim(r: *mut VictimRecord, hook: u32) {
    unsafe {
        // Everything after the header up to the victim's cgroup names, and the limit cgroup's
        // fixed part; the names are only read up to `len`.
        let base = r.cast::<u8>();
        zero_words(base, size_of::<RecordHeader>(), NAMES_AT);
        zero_words(base, LIMIT_CGROUP_AT, LIMIT_CGROUP_AT + CGROUP_FIXED);
        (*r).header = RecordHeader {
            kind: kind::VICTIM,
            version: RECORD_VERSION,
            size: size_of::<VictimRecord>() as u32,
            boot_ns: bpf_ktime_get_boot_ns(),
        };
        (*r).hook = hook;
        let pid_tgid = bpf_get_current_pid_tgid();
        (*r).trigger_pid = pid_tgid as u32;
        (*r).trigger_tgid = (pid_tgid >> 32) as u32;
        // Straight into the record (the helper zeroes the buffer when it fails): through
        // `bpf_get_current_comm()`'s Result the 16 bytes are copied one by one, twice.
        bpf_get_current_comm(
            (&raw mut (*r).trigger_comm).cast(),
            size_of::<[u8; 16]>() as u32,
        );
        (*r).present = present::TRIGGER;
    }
}

const NAMES_AT: usize = offset_of!(VictimRecord, cgroup) + offset_of!(CgroupRef, names);
const LIMIT_CGROUP_AT: usize = offset_of!(VictimRecord, limit_cgroup);
const CGROUP_FIXED: usize = offset_of!(CgroupRef, names);
const _: () = assert!(size_of::<RecordHeader>().is_multiple_of(8) && NAMES_AT.is_multiple_of(8));
const _: () = assert!(LIMIT_CGROUP_AT.is_multiple_of(8) && CGROUP_FIXED.is_multiple_of(8));

/// Zeroes bytes `from..to` of `base` (8-aligned) one word at a time. Zeroing field by field,
/// LLVM merges the stores into `memset` calls, which BPF code gets as a byte loop that the
/// verifier walks byte by byte (about 1,200 of the ~10,000 instructions it processed for
/// mark_victim_btf); volatile stores are never merged.
#[inline(always)]
unsafe fn zero_words(base: *mut u8, from: usize, to: usize) {
    let mut at = from;
    while at < to {
        unsafe { core::ptr::write_volatile(base.add(at).cast::<u64>(), 0) };
        at += 8;
    }
}
