//! A cgroup's id and path, read from its kernfs nodes in the kernel: right even when the cgroup
//! is removed right after the kill (the usual case when a container dies).

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use oomtrace_common::{ABSENT, CGROUP_MAX_DEPTH, CGROUP_NAME_MAX, CGROUP_NAMES_LEN, CgroupRef};

use crate::{
    kernel::{read, read_ptr},
    off,
};

/// Fills `c` from a `struct cgroup *`. Returns false when nothing could be read.
///
/// # Safety
/// `c` points to writable record memory; `cgrp` may be anything.
#[inline(always)]
pub unsafe fn fill(c: *mut CgroupRef, cgrp: *const u8) -> bool {
    unsafe {
        let Some(kn) = read_ptr(cgrp, off!(cgroup_kn)) else {
            return false;
        };
        (*c).id = read::<u64>(kn, off!(kn_id)).unwrap_or(0);
        (*c).depth = 0;
        (*c).len = 0;
        (*c).truncated = 0;
        let parent_off = off!(kn_parent);
        let name_off = off!(kn_name);
        if parent_off == ABSENT || name_off == ABSENT {
            (*c).truncated = 1;
            return true;
        }
        let mut cur = kn;
        let mut len: u32 = 0;
        let mut reached_root = false;
        for _ in 0..CGROUP_MAX_DEPTH {
            let Some(parent) = read::<*const u8>(cur, parent_off) else {
                break;
            };
            if parent.is_null() {
                // `cur` is the hierarchy's root: its name is not part of the path.
                reached_root = true;
                break;
            }
            if len as usize >= CGROUP_NAMES_LEN {
                break;
            }
            let Some(name) = read_ptr(cur, name_off) else {
                break;
            };
            // The mask shows the verifier the write stays inside names[..LEN + NAME_MAX].
            let at = (len as usize) & (CGROUP_NAMES_LEN - 1);
            let dst = (*c).names.as_mut_ptr().add(at);
            let n = bpf_probe_read_kernel_str(dst.cast(), CGROUP_NAME_MAX as u32, name.cast());
            if n <= 0 {
                break;
            }
            len += n as u32;
            (*c).depth += 1;
            cur = parent;
        }
        // Every name starts below CGROUP_NAMES_LEN and ends inside the buffer: all `len` bytes are
        // names (a longer path stops the walk above and is flagged truncated).
        (*c).len = len.min((CGROUP_NAMES_LEN + CGROUP_NAME_MAX) as u32) as u16;
        if !reached_root {
            (*c).truncated = 1;
        }
        true
    }
}

/// The `struct cgroup *` oomtrace reports for a task: its cgroup v2 cgroup, or on v1 the cgroup
/// of its memory controller.
///
/// # Safety
/// `task` may be anything; only probe reads.
#[inline(always)]
pub unsafe fn of_task(task: *const u8) -> Option<*const u8> {
    unsafe {
        let cgroups = read_ptr(task, off!(task_cgroups))?;
        if off!(use_dfl_cgrp) != 0 {
            read_ptr(cgroups, off!(css_set_dfl_cgrp))
        } else {
            let css = memory_css(cgroups)?;
            read_ptr(css, off!(css_cgroup))
        }
    }
}

/// `css_set->subsys[memory_cgrp_id]`.
///
/// # Safety
/// Only probe reads.
#[inline(always)]
pub unsafe fn memory_css(css_set: *const u8) -> Option<*const u8> {
    let base = off!(css_set_subsys);
    let id = off!(memory_cgrp_id);
    if base == ABSENT || id == ABSENT || id > 64 {
        return None;
    }
    unsafe { read_ptr(css_set, base + id * 8) }
}
