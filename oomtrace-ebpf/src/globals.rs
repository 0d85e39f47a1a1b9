//! Read-only values the daemon writes before load (`EbpfLoader::override_global`).
//!
//! Each is a location resolved on the running kernel at start-up (see `oomtrace::kernel`).

use aya_ebpf::Global;

/// `oom:mark_victim` tracefs field locations, encoded with `oomtrace_common::tp_field`;
/// 0 means "this kernel's event has no such field".
pub mod tp {
    use super::Global;

    #[unsafe(no_mangle)]
    pub static TP_PID: Global<u32> = Global::new(0);
    /// `__data_loc char[] comm`: the field holds `(len << 16) | offset` of the string.
    #[unsafe(no_mangle)]
    pub static TP_COMM: Global<u32> = Global::new(0);
    #[unsafe(no_mangle)]
    pub static TP_TOTAL_VM: Global<u32> = Global::new(0);
    #[unsafe(no_mangle)]
    pub static TP_ANON_RSS: Global<u32> = Global::new(0);
    #[unsafe(no_mangle)]
    pub static TP_FILE_RSS: Global<u32> = Global::new(0);
    #[unsafe(no_mangle)]
    pub static TP_SHMEM_RSS: Global<u32> = Global::new(0);
    #[unsafe(no_mangle)]
    pub static TP_UID: Global<u32> = Global::new(0);
    #[unsafe(no_mangle)]
    pub static TP_PGTABLES: Global<u32> = Global::new(0);
    #[unsafe(no_mangle)]
    pub static TP_OOM_SCORE_ADJ: Global<u32> = Global::new(0);
}

/// Kernel struct member offsets from BTF (see `oomtrace_common::KernelOffsets`).
#[unsafe(no_mangle)]
pub static OFFSETS: oomtrace_common::KernelOffsets = oomtrace_common::KernelOffsets::UNKNOWN;

/// Reads one field of [`OFFSETS`]. Volatile: the value is set at load time, after compilation.
#[macro_export]
macro_rules! off {
    ($field:ident) => {{
        // SAFETY: reading a field of a static; volatile so the compiler can't fold the default.
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(&raw const $crate::globals::OFFSETS.$field) };
        v
    }};
}
