//! Filling ring records in place (they are larger than the 512-byte BPF stack).

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns};
use oomtrace_common::{RECORD_VERSION, RecordHeader, VictimRecord, kind, present};

/// Writes the header and the fields every hook knows the same way (trigger = `current`), and
/// clears the rest so no stale ring memory reaches userspace.
///
/// # Safety
/// `r` points to a reserved, writable `VictimRecord` in the ring.
#[inline(always)]
pub unsafe fn init_victim(r: *mut VictimRecord, hook: u32) {
    unsafe {
        (*r).header = RecordHeader {
            kind: kind::VICTIM,
            version: RECORD_VERSION,
            size: core::mem::size_of::<VictimRecord>() as u32,
            boot_ns: bpf_ktime_get_boot_ns(),
        };
        (*r).hook = hook;
        (*r).pid = 0;
        (*r).tgid = 0;
        (*r).uid = 0;
        (*r).oom_score_adj = 0;
        (*r).task_flags = 0;
        (*r).ns_pid = 0;
        (*r).pid_ns_level = 0;
        (*r).context_seq = 0;
        (*r).total_vm_kb = 0;
        (*r).anon_rss_kb = 0;
        (*r).file_rss_kb = 0;
        (*r).shmem_rss_kb = 0;
        (*r).pgtables_kb = 0;
        (*r).swap_kb = 0;
        (*r).limit_pages = 0;
        (*r).limit_usage_pages = 0;
        (*r).limit_cgroup.id = 0;
        (*r).limit_cgroup.depth = 0;
        (*r).limit_cgroup.len = 0;
        (*r).limit_cgroup.truncated = 0;
        (*r).limit_cgroup.pad = 0;
        (*r).comm = [0; 16];
        (*r).cgroup.id = 0;
        (*r).cgroup.depth = 0;
        (*r).cgroup.len = 0;
        (*r).cgroup.truncated = 0;
        (*r).cgroup.pad = 0;
        let pid_tgid = bpf_get_current_pid_tgid();
        (*r).trigger_pid = pid_tgid as u32;
        (*r).trigger_tgid = (pid_tgid >> 32) as u32;
        (*r).trigger_comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*r).present = present::TRIGGER;
    }
}
