//! What oomtrace reads from the kernel, and at which offset.
//!
//! Everything here is resolved on the running kernel at start-up, never hard-coded:
//! - [`tracefs`]: mounting tracefs and the `oom:mark_victim` event's field layout (`format` file);
//! - [`btf`]: the kernel's BTF (`/sys/kernel/btf/vmlinux`), for struct member offsets.
//!
//! The results are handed to the eBPF programs as read-only globals by [`crate::probes`].

pub mod tracefs;
