//! Reading a victim `struct task_struct` (tp_btf and raw tracepoint hooks).

use aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes;
use oomtrace_common::{ABSENT, VictimRecord, present};

use crate::{
    cgroup,
    kernel::{read, read_ptr},
    memcg, off,
};

/// `get_mm_counter(mm, idx)`: the counter's value, negative per-CPU drift read as 0 (as
/// `percpu_counter_read_positive` does).
#[inline(always)]
unsafe fn rss_pages(mm: *const u8, idx: u32) -> Option<u64> {
    let base = off!(mm_rss_stat);
    let stride = off!(rss_stride);
    let value = off!(rss_value);
    if base == ABSENT || stride == ABSENT || value == ABSENT || idx == ABSENT || idx > 8 {
        return None;
    }
    let v = unsafe { read::<i64>(mm, base + idx * stride + value) }?;
    Some(if v < 0 { 0 } else { v as u64 })
}

/// `MAX_PID_NS_LEVEL` (include/linux/pid_namespace.h): deeper levels are refused.
const MAX_PID_NS_LEVEL: u32 = 32;

/// The task's pid in its innermost pid namespace and that namespace's level:
/// `task->thread_pid->numbers[level].nr` (what `task_pid_vnr()` gives inside the namespace).
#[inline(always)]
unsafe fn ns_pid(task: *const u8) -> Option<(u32, u32)> {
    let numbers = off!(pid_numbers);
    let stride = off!(upid_size);
    let nr = off!(upid_nr);
    if numbers == ABSENT || stride == ABSENT || nr == ABSENT || stride > 64 {
        return None;
    }
    unsafe {
        let pid = read_ptr(task, off!(task_thread_pid))?;
        let level = read::<u32>(pid, off!(pid_level))?;
        if level > MAX_PID_NS_LEVEL {
            return None;
        }
        let v = read::<i32>(pid, numbers + level * stride + nr)?;
        Some((v as u32, level))
    }
}

/// Fills the victim fields of `r` from `task`.
///
/// # Safety
/// `r` points to a reserved record; `task` may be anything (only probe reads).
#[inline(always)]
pub unsafe fn fill_victim(r: *mut VictimRecord, task: *const u8) {
    unsafe {
        let mut p = (*r).present;
        if let Some(v) = read::<i32>(task, off!(task_pid)) {
            (*r).pid = v as u32;
            p |= present::PID;
        }
        if let Some(v) = read::<i32>(task, off!(task_tgid)) {
            (*r).tgid = v as u32;
            p |= present::TGID;
        }
        let comm = off!(task_comm);
        if comm != ABSENT
            && bpf_probe_read_kernel_str_bytes(task.add(comm as usize), &mut (*r).comm).is_ok()
        {
            p |= present::COMM;
        }
        if let Some((nr, level)) = ns_pid(task) {
            (*r).ns_pid = nr;
            (*r).pid_ns_level = level;
            p |= present::NS_PID;
        }
        if let Some(v) = read::<u32>(task, off!(task_flags)) {
            (*r).task_flags = v;
            p |= present::TASK_FLAGS;
        }
        if let Some(sig) = read_ptr(task, off!(task_signal))
            && let Some(v) = read::<i16>(sig, off!(signal_oom_score_adj))
        {
            (*r).oom_score_adj = i32::from(v);
            p |= present::OOM_SCORE_ADJ;
        }
        if let Some(cred) = read_ptr(task, off!(task_real_cred))
            && let Some(v) = read::<u32>(cred, off!(cred_uid))
        {
            (*r).uid = v;
            p |= present::UID;
        }
        // Pages to KiB: << (PAGE_SHIFT - 10), as the tracepoint and the kernel log do.
        let shift = off!(page_shift).saturating_sub(10) & 31;
        if let Some(mm) = read_ptr(task, off!(task_mm)) {
            if let Some(v) = read::<u64>(mm, off!(mm_total_vm)) {
                (*r).total_vm_kb = v << shift;
                p |= present::TOTAL_VM;
            }
            if let Some(v) = read::<i64>(mm, off!(mm_pgtables_bytes)) {
                (*r).pgtables_kb = (if v < 0 { 0 } else { v as u64 }) >> 10;
                p |= present::PGTABLES;
            }
            if let Some(v) = rss_pages(mm, off!(rss_anon_idx)) {
                (*r).anon_rss_kb = v << shift;
                p |= present::ANON_RSS;
            }
            if let Some(v) = rss_pages(mm, off!(rss_file_idx)) {
                (*r).file_rss_kb = v << shift;
                p |= present::FILE_RSS;
            }
            if let Some(v) = rss_pages(mm, off!(rss_shmem_idx)) {
                (*r).shmem_rss_kb = v << shift;
                p |= present::SHMEM_RSS;
            }
            if let Some(v) = rss_pages(mm, off!(rss_swap_idx)) {
                (*r).swap_kb = v << shift;
                p |= present::SWAP;
            }
        }
        if let Some(cg) = cgroup::of_task(task)
            && cgroup::fill(&raw mut (*r).cgroup, cg)
        {
            p |= present::CGROUP;
        }
        if memcg::fill_limit(r, task) {
            p |= present::LIMIT;
        }
        (*r).present = p;
    }
}
