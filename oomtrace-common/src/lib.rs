//! Records shared by the eBPF programs (`oomtrace-ebpf`) and the daemon (`oomtrace`).
//!
//! Every record sent through the ring buffer starts with [`RecordHeader`]: the kind, the layout
//! version and the record's own size, so the daemon can check a record before it reads it
//! (`oomtrace::decode`). Fields that a kernel or a hook could not provide are marked absent in the
//! record's `present` bit set; the daemon then omits them instead of printing zero.
#![no_std]

/// Layout version of every record below. Bump it when any record changes shape.
pub const RECORD_VERSION: u16 = 1;

/// `RecordHeader::kind` values.
pub mod kind {
    /// [`super::VictimRecord`]: one per task the OOM killer marked as victim.
    pub const VICTIM: u16 = 1;
    /// [`super::ContextRecord`]: one per OOM (`oom_kill_process`).
    pub const CONTEXT: u16 = 2;
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
    /// `ContextRecord::seq` of the OOM this victim belongs to, 0 when none was seen.
    pub context_seq: u64,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    pub swap_kb: u64,
    pub comm: [u8; COMM_LEN],
    pub trigger_comm: [u8; COMM_LEN],
    pub cgroup: CgroupRef,
}

/// One OOM: the `struct oom_control` handed to `oom_kill_process`, and who ran it.
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
    /// Records the ring had no room for (`bpf_ringbuf_reserve` failed).
    pub const RING_FULL: u32 = 0;
    /// Victim records submitted.
    pub const VICTIMS: u32 = 1;
    /// Context records submitted.
    pub const CONTEXTS: u32 = 2;
    /// Context records not remembered for their victims (map full).
    pub const CONTEXT_MAP_FULL: u32 = 3;
    pub const COUNT: u32 = 4;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] data of integers and byte arrays, valid for any bit pattern.
    unsafe impl aya::Pod for super::RecordHeader {}
    unsafe impl aya::Pod for super::VictimRecord {}
    unsafe impl aya::Pod for super::ContextRecord {}
}
