//! Reading kernel memory at offsets resolved from BTF. Every read is a `bpf_probe_read_kernel`
//! that can fail without harm; an [`ABSENT`] offset or a NULL base reads as `None`.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use oomtrace_common::ABSENT;

/// Reads a `T` at `base + off`.
///
/// # Safety
/// Only reads through the helper; `base` may be anything.
#[inline(always)]
pub unsafe fn read<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    if base.is_null() || off == ABSENT {
        return None;
    }
    unsafe { bpf_probe_read_kernel(base.add(off as usize).cast::<T>()).ok() }
}

/// Reads a non-NULL pointer at `base + off`.
///
/// # Safety
/// As [`read`].
#[inline(always)]
pub unsafe fn read_ptr(base: *const u8, off: u32) -> Option<*const u8> {
    unsafe { read::<*const u8>(base, off) }.filter(|p| !p.is_null())
}
