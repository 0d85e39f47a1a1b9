//! What oomtrace reads from the kernel, and at which offset.
//!
//! Everything here is resolved on the running kernel at start-up, never hard-coded:
//! - [`tracefs`]: mounting tracefs and the `oom:mark_victim` event's field layout (`format` file);
//! - [`btf`]: a reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`);
//! - [`offsets`]: the struct member offsets the programs read, resolved from BTF;
//! - [`cgroups`]: which hierarchy holds the memory controller (v1, v2, hybrid).
//!
//! The results are handed to the eBPF programs as read-only globals by [`crate::probes`].

#[cfg(test)]
pub mod bpftool;
pub mod btf;
pub mod cgroups;
pub mod gfp;
pub mod offsets;
pub mod tracefs;

use std::{ffi::CString, io, path::Path};

/// Mounts a pseudo filesystem (`tracefs`, `bpf`) of type `fstype` on `target`.
pub fn mount_pseudo_fs(fstype: &str, target: &Path) -> io::Result<()> {
    let target = CString::new(target.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    let fstype = CString::new(fstype).map_err(io::Error::other)?;
    // SAFETY: valid NUL-terminated strings, no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `statfs` magic of the filesystem `path` is on (include/uapi/linux/magic.h).
pub fn fs_magic(path: &Path) -> Option<i64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: zeroed statfs is a valid out-parameter; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &raw mut st) } == 0).then_some(st.f_type)
}
