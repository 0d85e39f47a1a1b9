//! Records shared by the eBPF programs (`oomtrace-ebpf`) and the daemon (`oomtrace`).
//!
//! Every record sent through the ring buffer starts with [`RecordHeader`]: the kind, the layout
//! version and the record's own size, so the daemon can check a record before it reads it
//! (`oomtrace::decode`). Fields that a kernel or a hook could not provide are marked absent in the
//! record's `present` bit set; the daemon then omits them instead of printing zero.
#![no_std]

/// Layout version of every record below. Bump it when any record changes shape.
pub const RECORD_VERSION: u16 = 3;

/// `RecordHeader::kind` values.
pub mod kind {
    /// [`super::VictimRecord`]: one per task the OOM killer marked as victim.
    pub const VICTIM: u16 = 1;
    /// [`super::ContextRecord`]: one per OOM (`oom_kill_process`).
    pub const CONTEXT: u16 = 2;
    /// [`super::ExitRecord`]: a victim's thread exited (`sched:sched_process_exit`).
    pub const EXIT: u16 = 3;
}

/// `TASK_COMM_LEN` of the kernel.
pub const COMM_LEN: usize = 16;

/// Bytes of cgroup path the kernel side can copy: kernfs names leaf first, each NUL-terminated.
pub const CGROUP_NAMES_LEN: usize = 512;
/// Longest single kernfs name copied at once (the buffer is `CGROUP_NAMES_LEN + CGROUP_NAME_MAX`
/// so the verifier can see every write stays inside it).
pub const CGROUP_NAME_MAX: usize = 256;
/// Deepest cgroup path walked.
pub const CGROUP_MAX_DEPTH: usize = 16;

/// First bytes of every ring record.
#[cfg_attr(
    feature = "user",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::KnownLayout,
        zerocopy::Immutable
    )
)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// One of [`kind`].
    pub kind: u16,
    /// [`RECORD_VERSION`] of the program that wrote it.
    pub version: u16,
    /// `size_of` the whole record.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()` (`CLOCK_BOOTTIME`) when the hook ran.
    pub boot_ns: u64,
}

/// A cgroup as read in the kernel: its kernfs id and the names on the way to the root.
#[cfg_attr(
    feature = "user",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::KnownLayout,
        zerocopy::Immutable
    )
)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CgroupRef {
    /// `kernfs_node.id` (the inode number of the cgroup directory).
    pub id: u64,
    /// Number of names in `names` (0 = the root cgroup).
    pub depth: u16,
    /// Bytes of `names` in use.
    pub len: u16,
    /// Non-zero when the path was deeper or longer than the buffer.
    pub truncated: u16,
    pub pad: u16,
    /// kernfs names from the leaf up to (not including) the root, each NUL-terminated.
    pub names: [u8; CGROUP_NAMES_LEN + CGROUP_NAME_MAX],
}

impl CgroupRef {
    pub const EMPTY: Self = Self {
        id: 0,
        depth: 0,
        len: 0,
        truncated: 0,
        pad: 0,
        names: [0; CGROUP_NAMES_LEN + CGROUP_NAME_MAX],
    };
}

/// Bits of [`VictimRecord::present`] and [`ContextRecord::present`].
pub mod present {
    pub const PID: u64 = 1 << 0;
    pub const TGID: u64 = 1 << 1;
    pub const COMM: u64 = 1 << 2;
    pub const UID: u64 = 1 << 3;
    pub const TOTAL_VM: u64 = 1 << 4;
    pub const ANON_RSS: u64 = 1 << 5;
    pub const FILE_RSS: u64 = 1 << 6;
    pub const SHMEM_RSS: u64 = 1 << 7;
    pub const PGTABLES: u64 = 1 << 8;
    pub const OOM_SCORE_ADJ: u64 = 1 << 9;
    pub const SWAP: u64 = 1 << 10;
    pub const CGROUP: u64 = 1 << 11;
    pub const TRIGGER: u64 = 1 << 12;
    pub const TASK_FLAGS: u64 = 1 << 13;
    /// `ns_pid` and `pid_ns_level` (read together from `task->thread_pid`).
    pub const NS_PID: u64 = 1 << 14;
    /// `limit_pages`, `limit_usage_pages` and `limit_cgroup`: the tightest memcg limit.
    pub const LIMIT: u64 = 1 << 15;
    // Context-only fields.
    pub const CONSTRAINT: u64 = 1 << 32;
    pub const MEMCG: u64 = 1 << 33;
    pub const TOTALPAGES: u64 = 1 << 34;
    pub const CHOSEN_POINTS: u64 = 1 << 35;
    pub const GFP_MASK: u64 = 1 << 36;
    pub const ORDER: u64 = 1 << 37;
    pub const MEMCG_USAGE: u64 = 1 << 38;
    pub const MEMCG_LIMIT: u64 = 1 << 39;
    pub const CHOSEN_PID: u64 = 1 << 40;
    pub const GROUP_KILL: u64 = 1 << 41;
}

/// Which program produced a record (`VictimRecord::hook`, `ContextRecord::hook`).
pub mod hook {
    pub const TRACEPOINT: u32 = 1;
    pub const RAW_TRACEPOINT: u32 = 2;
    pub const TP_BTF: u32 = 3;
    pub const KPROBE: u32 = 4;
    pub const FENTRY: u32 = 5;
}

/// One task marked as OOM victim (`oom:mark_victim`).
#[cfg_attr(
    feature = "user",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::KnownLayout,
        zerocopy::Immutable
    )
)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VictimRecord {
    pub header: RecordHeader,
    /// Bit set of [`present`] fields.
    pub present: u64,
    /// [`hook`] that produced it.
    pub hook: u32,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub oom_score_adj: i32,
    /// `task_struct.flags` of the victim when it was marked.
    pub task_flags: u32,
    /// The task that ran the OOM killer (`current`).
    pub trigger_pid: u32,
    pub trigger_tgid: u32,
    /// The victim's pid as its innermost pid namespace sees it (`pid->numbers[level].nr`).
    pub ns_pid: u32,
    /// Depth of that namespace (`pid->level`): 0 is the host's (initial) pid namespace.
    pub pid_ns_level: u32,
    /// `ContextRecord::seq` of the OOM this victim belongs to, 0 when none was seen.
    pub context_seq: u64,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub swap_kb: u64,
    /// The tightest `page_counter.max` from the victim's memcg up to the root, in pages
    /// (`PAGE_COUNTER_MAX` when nothing on the way has a limit).
    pub limit_pages: u64,
    /// `page_counter.usage` of the memcg that has that limit, in pages.
    pub limit_usage_pages: u64,
    pub comm: [u8; COMM_LEN],
    pub trigger_comm: [u8; COMM_LEN],
    pub cgroup: CgroupRef,
    /// The cgroup whose limit `limit_pages` is.
    pub limit_cgroup: CgroupRef,
}

/// One OOM: the `struct oom_control` handed to `oom_kill_process`, and who ran it.
#[cfg_attr(
    feature = "user",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::KnownLayout,
        zerocopy::Immutable
    )
)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ContextRecord {
    pub header: RecordHeader,
    pub present: u64,
    pub hook: u32,
    pub trigger_pid: u32,
    pub trigger_tgid: u32,
    /// pid of `oc->chosen`.
    pub chosen_pid: u32,
    /// Per-boot sequence number of this OOM, shared with its victims' `context_seq`.
    pub seq: u64,
    /// `enum oom_constraint`.
    pub constraint: u32,
    pub gfp_mask: u32,
    pub order: i32,
    /// Non-zero when `memory.oom.group` makes this a group kill.
    pub group_kill: u32,
    pub totalpages: u64,
    pub chosen_points: i64,
    pub memcg_usage_pages: u64,
    pub memcg_limit_pages: u64,
    pub trigger_comm: [u8; COMM_LEN],
    pub memcg: CgroupRef,
}

/// A victim has exited: `sched:sched_process_exit` of a thread the victim hook put in the map of
/// victims waiting to exit. `header.boot_ns` is the exit.
#[cfg_attr(
    feature = "user",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::KnownLayout,
        zerocopy::Immutable
    )
)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub header: RecordHeader,
    /// Thread id (`VictimRecord::pid`) and process id of the exiting task.
    pub pid: u32,
    pub tgid: u32,
    /// `header.boot_ns` of the victim record: when it was marked.
    pub kill_boot_ns: u64,
}

/// Encoding of a tracefs field location handed to the classic-tracepoint program:
/// bits 0..16 offset, 16..24 size in bytes, bit 24 signed, bit 31 "present". 0 = absent.
pub mod tp_field {
    pub const PRESENT: u32 = 1 << 31;
    pub const SIGNED: u32 = 1 << 24;

    #[must_use]
    pub const fn encode(offset: u16, size: u8, signed: bool) -> u32 {
        PRESENT | ((size as u32) << 16) | (offset as u32) | if signed { SIGNED } else { 0 }
    }
    #[must_use]
    pub const fn offset(v: u32) -> u32 {
        v & 0xffff
    }
    #[must_use]
    pub const fn size(v: u32) -> u32 {
        (v >> 16) & 0xff
    }
}

/// Indexes of the per-CPU `COUNTERS` array map.
pub mod counter {
    /// Victim records the ring had no room for (`bpf_ringbuf_reserve` failed): lost kills.
    pub const RING_FULL: u32 = 0;
    /// Victim records submitted.
    pub const VICTIMS: u32 = 1;
    /// Context records submitted.
    pub const CONTEXTS: u32 = 2;
    /// Context records not remembered for their victims (map full).
    pub const CONTEXT_MAP_FULL: u32 = 3;
    /// Exit records submitted.
    pub const EXITS: u32 = 4;
    /// Exit records the ring had no room for (not in `RING_FULL`, which counts kill records).
    pub const EXIT_RING_FULL: u32 = 5;
    /// Context records the ring had no room for (an OOM's context, not a kill, is lost).
    pub const CONTEXT_RING_FULL: u32 = 6;
    pub const COUNT: u32 = 7;
}

/// A member offset the running kernel does not have.
pub const ABSENT: u32 = u32::MAX;

/// Kernel struct member offsets, resolved from the running kernel's BTF at start-up by the daemon
/// (`oomtrace::kernel::offsets`) and handed to the programs as one read-only global. Any field may
/// be [`ABSENT`]; whatever depends on it is then reported as absent.
#[cfg_attr(
    feature = "user",
    derive(
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::KnownLayout,
        zerocopy::Immutable
    )
)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    // struct task_struct
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_flags: u32,
    pub task_mm: u32,
    pub task_signal: u32,
    pub task_real_cred: u32,
    pub task_cgroups: u32,
    /// `task_struct.thread_pid` (`struct pid *`).
    pub task_thread_pid: u32,
    // struct pid, struct upid
    /// `pid.level`: depth of the task's innermost pid namespace.
    pub pid_level: u32,
    /// `pid.numbers`: `struct upid numbers[]`, one per level.
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`: the stride of `numbers`.
    pub upid_size: u32,
    /// `upid.nr`: the pid in that level's namespace.
    pub upid_nr: u32,
    // struct signal_struct
    pub signal_oom_score_adj: u32,
    // struct cred
    pub cred_uid: u32,
    // struct mm_struct
    pub mm_total_vm: u32,
    pub mm_pgtables_bytes: u32,
    /// `rss_stat`: an array of counters (`struct percpu_counter` since 6.2, `atomic_long_t` in
    /// `struct mm_rss_stat` before).
    pub mm_rss_stat: u32,
    /// Bytes from one counter to the next.
    pub rss_stride: u32,
    /// Offset of the `s64`/`long` value inside one counter (percpu_counter.count, or 0).
    pub rss_value: u32,
    /// `enum { MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES }` values.
    pub rss_file_idx: u32,
    pub rss_anon_idx: u32,
    pub rss_swap_idx: u32,
    pub rss_shmem_idx: u32,
    // struct css_set
    pub css_set_subsys: u32,
    pub css_set_dfl_cgrp: u32,
    // struct cgroup_subsys_state
    pub css_cgroup: u32,
    pub css_parent: u32,
    // struct cgroup
    pub cgroup_kn: u32,
    // struct kernfs_node
    pub kn_name: u32,
    pub kn_id: u32,
    /// `parent`, renamed `__parent` in 6.15.
    pub kn_parent: u32,
    // struct mem_cgroup
    pub memcg_css: u32,
    pub memcg_memory: u32,
    pub memcg_oom_group: u32,
    // struct page_counter
    pub page_counter_usage: u32,
    pub page_counter_max: u32,
    // struct oom_control
    pub oc_memcg: u32,
    pub oc_gfp_mask: u32,
    pub oc_order: u32,
    pub oc_totalpages: u32,
    pub oc_chosen: u32,
    pub oc_chosen_points: u32,
    pub oc_constraint: u32,
    /// `enum cgroup_subsys_id` value of `memory_cgrp_id` (config-dependent).
    pub memory_cgrp_id: u32,
    /// log2 of the page size.
    pub page_shift: u32,
    /// 1: report a task's cgroup v2 cgroup (`css_set.dfl_cgrp`), 0: its v1 memory cgroup.
    pub use_dfl_cgrp: u32,
}

impl KernelOffsets {
    /// Everything absent (what the programs see before the daemon sets it).
    pub const UNKNOWN: Self = Self {
        task_pid: ABSENT,
        task_tgid: ABSENT,
        task_comm: ABSENT,
        task_flags: ABSENT,
        task_mm: ABSENT,
        task_signal: ABSENT,
        task_real_cred: ABSENT,
        task_cgroups: ABSENT,
        task_thread_pid: ABSENT,
        pid_level: ABSENT,
        pid_numbers: ABSENT,
        upid_size: ABSENT,
        upid_nr: ABSENT,
        signal_oom_score_adj: ABSENT,
        cred_uid: ABSENT,
        mm_total_vm: ABSENT,
        mm_pgtables_bytes: ABSENT,
        mm_rss_stat: ABSENT,
        rss_stride: ABSENT,
        rss_value: ABSENT,
        rss_file_idx: ABSENT,
        rss_anon_idx: ABSENT,
        rss_swap_idx: ABSENT,
        rss_shmem_idx: ABSENT,
        css_set_subsys: ABSENT,
        css_set_dfl_cgrp: ABSENT,
        css_cgroup: ABSENT,
        css_parent: ABSENT,
        cgroup_kn: ABSENT,
        kn_name: ABSENT,
        kn_id: ABSENT,
        kn_parent: ABSENT,
        memcg_css: ABSENT,
        memcg_memory: ABSENT,
        memcg_oom_group: ABSENT,
        page_counter_usage: ABSENT,
        page_counter_max: ABSENT,
        oc_memcg: ABSENT,
        oc_gfp_mask: ABSENT,
        oc_order: ABSENT,
        oc_totalpages: ABSENT,
        oc_chosen: ABSENT,
        oc_chosen_points: ABSENT,
        oc_constraint: ABSENT,
        memory_cgrp_id: ABSENT,
        page_shift: 12,
        use_dfl_cgrp: 0,
    };
}

/// What the context program remembers for the victims of one OOM (map `CONTEXTS`, keyed by the
/// triggering task's pid_tgid, removed when `oom_kill_process` returns).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ContextLink {
    pub seq: u64,
    pub group_kill: u32,
    pub pad: u32,
}

/// aya needs its own `Pod` for a value handed to `EbpfLoader::override_global`: the one global
/// this crate defines. The ring records need none: the daemon decodes them through zerocopy.
#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)] of u32 only: no padding, any bit pattern valid (the zerocopy derives
    // on it check exactly that at compile time).
    unsafe impl aya::Pod for super::KernelOffsets {}
}
