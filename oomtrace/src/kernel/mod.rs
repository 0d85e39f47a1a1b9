//! What oomtrace reads from the kernel, and at which offset.
//!
//! Everything here is resolved on the running kernel at start-up, never hard-coded:
//! - [`tracefs`]: mounting tracefs and the `oom:mark_victim` event's field layout (`format` file);
//! - [`btf`]: a reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`);
//! - [`offsets`]: the struct member offsets the programs read, resolved from BTF;
//! - [`cgroups`]: which hierarchy holds the memory controller (v1, v2, hybrid).
//!
//! The results are handed to the eBPF programs as read-only globals by [`crate::probes`].

pub mod btf;
pub mod cgroups;
pub mod gfp;
pub mod offsets;
pub mod tracefs;
