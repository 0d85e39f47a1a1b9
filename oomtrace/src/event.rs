//! The event oomtrace reports for each OOM victim, and how it is built from ring records.
//!
//! The JSON field names are a public contract (docs/events.md): pipelines parse them. Add fields,
//! never rename or retype one. A field the kernel or the hook could not provide is omitted.

use serde::Serialize;

use oomtrace_common::{CgroupRef, ContextRecord, VictimRecord, hook, present};

use crate::clock;

/// `"schema"` of every event: bump only on an incompatible change.
pub const SCHEMA: u32 = 1;

/// One OOM victim.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Always `"oom_kill"` for victims (other kinds of line: `"lost"`).
    pub kind: &'static str,
    pub schema: u32,
    /// Wall time (RFC 3339, UTC, nanoseconds) of the kernel's boot-clock stamp.
    pub time: String,
    /// `CLOCK_BOOTTIME` nanoseconds when the kernel marked the victim.
    pub boot_ns: u64,
    pub node: String,
    /// Program that saw the victim: `tracepoint`, `raw_tracepoint` or `tp_btf`.
    pub hook: &'static str,
    /// Did the container die? See [`Outcome`]. Absent when oomtrace cannot tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Identifies the OOM: shared by every victim of one `oom_kill_process` call (a group kill
    /// has several). Absent when no context was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_id: Option<u64>,
    pub victim: Victim,
    /// The task that ran the OOM killer (`current`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The OOM itself (`struct oom_control`), from the context hook. Absent when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom: Option<Oom>,
    pub flags: Flags,
    /// Present (true) when the kill happened before this daemon started: it waited in the pinned
    /// ring while no daemon ran.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delivered_late: bool,
    /// Whose it was: `container`, `pod`, `systemd_unit`, from the victim's cgroup path and the
    /// node's files (filled by the enrich stage; absent parts omitted).
    #[serde(flatten)]
    pub owner: crate::enrich::Attribution,
    /// The memory limit that was hit, and where oomtrace read it. Absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
}

/// What the kill did to the victim's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Outcome {
    /// Every task of the container goes: the victim is pid 1 of its (non-host) pid namespace, or
    /// the kill is a group kill (`memory.oom.group`). The container exits with 137 and
    /// Kubernetes reports `OOMKilled`.
    ContainerExit,
    /// Another process of a container (a non-host pid namespace) was killed: the container keeps
    /// running without it, and Kubernetes does not report the kill.
    ProcessOnly,
    /// A process of the host's pid namespace, in no container.
    Host,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::ContainerExit => "container_exit",
            Self::ProcessOnly => "process_only",
            Self::Host => "host",
        }
    }

    /// What it means, for people (the text line).
    pub fn explain(self) -> &'static str {
        match self {
            Self::ContainerExit => "container exits with 137; Kubernetes reports OOMKilled",
            Self::ProcessOnly => "container keeps running; Kubernetes does not report this kill",
            Self::Host => "host process, in no container",
        }
    }
}

/// The memory limit of a kill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limit {
    pub bytes: u64,
    /// The usage of the cgroup holding the limit, in bytes, read in the kernel at the kill
    /// (`oom_control`, `bpf`). Absent for `cgroupfs` (a read after the kill is not the kill's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    /// `oom_control`: the OOM domain memcg's limit, read in the kernel by the context hook.
    /// `bpf`: read in the kernel by the victim hook at the kill: the tightest `page_counter.max`
    /// of the victim's memcg and its ancestors. `cgroupfs`: read by oomtrace when the event
    /// arrived from the cgroup filesystem (v1 `memory.limit_in_bytes`, v2 `memory.max`) of the
    /// victim's cgroup, or of its nearest ancestor with a limit: the fallback when neither hook
    /// read one.
    pub source: &'static str,
    /// The cgroup whose limit it is (path from the memory hierarchy's root).
    pub cgroup: String,
}

/// `{"kind": "lost", ...}`: records the kernel side could not deliver (the ring was full), found
/// when the daemon compared the BPF loss counter after a drain.
#[derive(Debug, Clone, Serialize)]
pub struct Lost {
    /// Always `"lost"`.
    pub kind: &'static str,
    pub schema: u32,
    /// When the loss was noticed (wall clock).
    pub time: String,
    pub boot_ns: u64,
    pub node: String,
    /// Records lost since the previous `lost` line (of this cause, and this sink).
    pub count: u64,
    /// Records lost since the programs were loaded (`ring_full`), or events this sink dropped
    /// since start (`sink_stalled`).
    pub total: u64,
    /// Why: `ring_full` (the kernel side found the ring full: the records are lost for every
    /// output) or `sink_stalled` (this output could not keep up: its queue was full, other
    /// outputs may have the events).
    pub cause: &'static str,
    /// The output that dropped them (`sink_stalled` only), e.g. `json:stdout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
}

impl Lost {
    pub fn new(node: &str, count: u64, total: u64) -> Self {
        let boot_ns = clock::boot_ns_now();
        Self {
            kind: "lost",
            schema: SCHEMA,
            time: clock::rfc3339(clock::boot_to_unix_ns(boot_ns)),
            boot_ns,
            node: node.to_string(),
            count,
            total,
            cause: "ring_full",
            sink: None,
        }
    }

    /// Events the output `sink` dropped because its queue was full (it could not write).
    pub fn sink_stalled(node: &str, sink: &str, count: u64, total: u64) -> Self {
        Self {
            cause: "sink_stalled",
            sink: Some(sink.to_string()),
            ..Self::new(node, count, total)
        }
    }
}

/// A cgroup as the kernel named it at the kill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cgroup {
    /// kernfs id = inode number of the cgroup directory (absent from the kmsg source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Path from the hierarchy root, e.g. `/kubepods/burstable/pod…/…`; `/` is the root.
    pub path: String,
    /// Present (true) only when the path was deeper or longer than oomtrace copies.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Cgroup {
    /// From the kernel's names (leaf first, NUL-separated).
    pub fn from_ref(c: &CgroupRef) -> Self {
        let len = usize::from(c.len).min(c.names.len());
        let names: Vec<String> = c.names[..len]
            .split(|&b| b == 0)
            .take(usize::from(c.depth))
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        let mut path = String::new();
        for n in names.iter().rev() {
            path.push('/');
            path.push_str(n);
        }
        if path.is_empty() {
            path.push('/');
        }
        Self {
            id: Some(c.id),
            path,
            truncated: c.truncated != 0,
        }
    }
}

/// The OOM: what was hit and why.
#[derive(Debug, Clone, Serialize)]
pub struct Oom {
    /// Program that read it: `kprobe` or `fentry`.
    pub hook: &'static str,
    /// `none` (global), `cpuset`, `mempolicy`, `memcg`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<&'static str>,
    /// The OOM domain's memory cgroup; `null` for a global OOM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memcg: Option<Option<Cgroup>>,
    /// Size of the OOM domain in pages (memcg limit + swap, or RAM + swap): not the victim's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totalpages: Option<u64>,
    /// Badness of the chosen task, in pages (rss + swap + page tables + adj × totalpages / 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_points: Option<i64>,
    /// pid of the task the killer chose (group kills also kill others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen_pid: Option<u32>,
    /// The failed allocation's gfp mask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gfp_mask: Option<u32>,
    /// `gfp_mask` as the kernel names its flags (decoded with this kernel's own table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gfp_flags: Option<Vec<String>>,
    /// The failed allocation's order (pages = 2^order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<i32>,
    /// The domain memcg's usage and limit at the OOM, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memcg_usage_bytes: Option<u64>,
    /// Absent for a global OOM and when the memcg has no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memcg_limit_bytes: Option<u64>,
    /// Whose limit it was: `container`, `pod`, `systemd_unit` of the domain memcg (a pod-level
    /// limit names the pod but no container).
    #[serde(flatten)]
    pub owner: crate::enrich::Attribution,
}

/// How this victim came to be reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Flags {
    /// Killed as a member of a group (`memory.oom.group`), with the other tasks of the group.
    pub group_kill: bool,
    /// The task was already exiting: marked as victim without a new SIGKILL.
    pub already_exiting: bool,
    /// No OOM context joined this victim (no context hook on this kernel, or the OOM path that
    /// marks an exiting task without calling oom_kill_process): `oom` is absent.
    pub context_missing: bool,
}

/// Facts about the machine the event fields are computed with.
#[derive(Debug, Clone, Copy)]
pub struct System {
    pub page_size: u64,
    /// `totalram_pages() + total_swap_pages` (MemTotal + SwapTotal), the denominator of
    /// /proc/<pid>/oom_score.
    pub ram_pages: u64,
    pub swap_pages: u64,
}

impl System {
    pub fn read() -> Self {
        let page_size = crate::kernel::offsets::page_size();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kb = |key: &str| {
            meminfo
                .lines()
                .find_map(|l| {
                    l.strip_prefix(key)?
                        .trim()
                        .strip_suffix("kB")?
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or(0)
        };
        let pages = |k: u64| k.saturating_mul(1024) / page_size;
        Self {
            page_size,
            ram_pages: pages(kb("MemTotal:")),
            swap_pages: pages(kb("SwapTotal:")),
        }
    }
}

/// `task_struct.flags` bit of a task in do_exit (include/linux/sched.h).
const PF_EXITING: u32 = 0x4;
const OOM_SCORE_ADJ_MIN: i32 = -1000;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Victim {
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgid: Option<u32>,
    /// The pid as the victim's own (innermost) pid namespace numbers it: 1 for a container's
    /// init. Read in the kernel at the kill; absent where the hook has no task (or BTF lacks the
    /// members).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_pid: Option<u32>,
    /// Depth of that pid namespace: 0 is the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_ns_level: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_vm_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anon_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shmem_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgtables_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// What /proc/<pid>/oom_score showed at the kill (0..2000), computed as fs/proc/base.c
    /// `proc_oom_score()` does from mm/oom_kill.c `oom_badness()`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score: Option<u64>,
    /// The victim's memory cgroup (cgroup v1) or its cgroup (v2), named in the kernel at the kill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<Cgroup>,
}

impl Victim {
    /// `proc_oom_score()`: badness = rss + swap + pgtables/PAGE_SIZE + adj × totalpages/1000
    /// (`oom_badness()`), with totalpages = RAM + swap; score = (1000 + badness × 1000 /
    /// totalpages) × 2 / 3; 0 for OOM_SCORE_ADJ_MIN.
    pub fn compute_oom_score(&self, sys: &System) -> Option<u64> {
        let kb_per_page = sys.page_size / 1024;
        let adj = self.oom_score_adj?;
        if adj == OOM_SCORE_ADJ_MIN {
            return Some(0);
        }
        // Checked arithmetic: absurd inputs give no score, never a wrapped one.
        let rss_kb = self
            .anon_rss_kb?
            .checked_add(self.file_rss_kb?)?
            .checked_add(self.shmem_rss_kb?)?;
        // Without swap configured there are no swap entries.
        let swap_kb = self.swap_kb.or((sys.swap_pages == 0).then_some(0))?;
        let pgtables_pages = self.pgtables_kb?.checked_mul(1024)? / sys.page_size;
        let total = i64::try_from(sys.ram_pages.checked_add(sys.swap_pages)?)
            .ok()
            .filter(|t| *t > 0)?;
        let pages = (rss_kb.checked_add(swap_kb)? / kb_per_page).checked_add(pgtables_pages)?;
        let badness = i64::try_from(pages)
            .ok()?
            .checked_add(i64::from(adj).checked_mul(total / 1000)?)?;
        let score = badness
            .checked_mul(1000)?
            .checked_div(total)?
            .checked_add(1000)?
            .checked_mul(2)?
            / 3;
        u64::try_from(score.max(0)).ok()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Trigger {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
}

/// `task->comm` bytes up to the first NUL, as UTF-8. The kernel cuts comm at 15 bytes, possibly
/// inside a multi-byte character: the broken tail becomes U+FFFD so the JSON stays valid UTF-8.
pub fn comm_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

pub fn hook_name(h: u32) -> &'static str {
    match h {
        hook::TRACEPOINT => "tracepoint",
        hook::RAW_TRACEPOINT => "raw_tracepoint",
        hook::TP_BTF => "tp_btf",
        hook::KPROBE => "kprobe",
        hook::FENTRY => "fentry",
        _ => "unknown",
    }
}

/// The schema's name of a constraint as the kmsg parser names it (`none`, `memcg`, ...).
pub fn constraint_name_str(c: &str) -> Option<&'static str> {
    ["none", "cpuset", "mempolicy", "memcg"]
        .into_iter()
        .find(|n| *n == c)
}

pub fn constraint_name(c: u32) -> Option<&'static str> {
    // enum oom_constraint (include/linux/oom.h).
    match c {
        0 => Some("none"),
        1 => Some("cpuset"),
        2 => Some("mempolicy"),
        3 => Some("memcg"),
        _ => None,
    }
}

/// `PAGE_COUNTER_MAX` (`LONG_MAX / PAGE_SIZE` on 64-bit): a `page_counter.max` this large means
/// "no limit" (v2 `max`, v1's unlimited `limit_in_bytes`).
pub fn page_counter_max(sys: &System) -> u64 {
    u64::try_from(i64::MAX).unwrap_or(u64::MAX) / sys.page_size.max(1)
}

impl Oom {
    pub fn from_context(
        c: &ContextRecord,
        sys: &System,
        gfp: &crate::kernel::gfp::GfpTable,
    ) -> Self {
        let has = |bit: u64| c.present & bit != 0;
        let unlimited = page_counter_max(sys);
        let global = has(present::MEMCG) && c.memcg.id == 0;
        Self {
            hook: hook_name(c.hook),
            constraint: has(present::CONSTRAINT)
                .then(|| constraint_name(c.constraint))
                .flatten(),
            memcg: has(present::MEMCG).then(|| (!global).then(|| Cgroup::from_ref(&c.memcg))),
            totalpages: has(present::TOTALPAGES).then_some(c.totalpages),
            chosen_points: has(present::CHOSEN_POINTS).then_some(c.chosen_points),
            chosen_pid: has(present::CHOSEN_PID).then_some(c.chosen_pid),
            gfp_mask: has(present::GFP_MASK).then_some(c.gfp_mask),
            gfp_flags: has(present::GFP_MASK).then(|| gfp.decode(u64::from(c.gfp_mask))),
            order: has(present::ORDER).then_some(c.order),
            memcg_usage_bytes: (has(present::MEMCG_USAGE) && !global)
                .then(|| c.memcg_usage_pages.saturating_mul(sys.page_size)),
            memcg_limit_bytes: (has(present::MEMCG_LIMIT)
                && !global
                && c.memcg_limit_pages < unlimited)
                .then(|| c.memcg_limit_pages.saturating_mul(sys.page_size)),
            owner: crate::enrich::Attribution::default(),
        }
    }
}

impl Event {
    /// Builds the event of one victim record, with the context of its OOM when one was seen.
    /// `context_hook`: whether a context hook is attached at all.
    pub fn from_victim(
        r: &VictimRecord,
        ctx: Option<&ContextRecord>,
        context_hook: bool,
        sys: &System,
        gfp: &crate::kernel::gfp::GfpTable,
        node: &str,
    ) -> Self {
        let has = |bit: u64| r.present & bit != 0;
        let opt = |bit: u64, v: u64| has(bit).then_some(v);
        let victim = Victim {
            pid: r.pid,
            tgid: has(present::TGID).then_some(r.tgid),
            ns_pid: has(present::NS_PID).then_some(r.ns_pid),
            pid_ns_level: has(present::NS_PID).then_some(r.pid_ns_level),
            comm: has(present::COMM).then(|| comm_str(&r.comm)),
            uid: has(present::UID).then_some(r.uid),
            total_vm_kb: opt(present::TOTAL_VM, r.total_vm_kb),
            anon_rss_kb: opt(present::ANON_RSS, r.anon_rss_kb),
            file_rss_kb: opt(present::FILE_RSS, r.file_rss_kb),
            shmem_rss_kb: opt(present::SHMEM_RSS, r.shmem_rss_kb),
            pgtables_kb: opt(present::PGTABLES, r.pgtables_kb),
            swap_kb: opt(present::SWAP, r.swap_kb),
            oom_score_adj: has(present::OOM_SCORE_ADJ).then_some(r.oom_score_adj),
            oom_score: None,
            cgroup: has(present::CGROUP).then(|| Cgroup::from_ref(&r.cgroup)),
        };
        let mut victim = victim;
        victim.oom_score = victim.compute_oom_score(sys);
        let trigger = has(present::TRIGGER).then(|| Trigger {
            pid: r.trigger_pid,
            tgid: r.trigger_tgid,
            comm: comm_str(&r.trigger_comm),
        });
        let exiting = has(present::TASK_FLAGS) && r.task_flags & PF_EXITING != 0;
        let self_marked =
            ctx.is_none() && context_hook && has(present::TRIGGER) && r.trigger_pid == r.pid;
        let flags = Flags {
            group_kill: ctx.is_some_and(|c| c.group_kill != 0),
            already_exiting: exiting || self_marked,
            context_missing: ctx.is_none(),
        };
        let mut ev = Self::kill(hook_name(r.hook), r.header.boot_ns, node, victim, flags);
        ev.context_id = ctx.map(|c| c.seq);
        ev.trigger = trigger;
        ev.oom = ctx.map(|c| Oom::from_context(c, sys, gfp));
        ev.with_context_limit().with_victim_limit(r, sys)
    }

    /// The one constructor of an `oom_kill` event, for every source (the ring's records, the
    /// kernel log): what each source knows beyond the victim is set on it afterwards.
    pub fn kill(
        hook: &'static str,
        boot_ns: u64,
        node: &str,
        victim: Victim,
        flags: Flags,
    ) -> Self {
        Self {
            kind: "oom_kill",
            schema: SCHEMA,
            time: clock::rfc3339(clock::boot_to_unix_ns(boot_ns)),
            boot_ns,
            node: node.to_string(),
            hook,
            // Set by the pipeline (`Event::decide_outcome`), after attribution.
            outcome: None,
            context_id: None,
            victim,
            trigger: None,
            oom: None,
            flags,
            delivered_late: false,
            owner: crate::enrich::Attribution::default(),
            limit: None,
        }
    }

    /// The [`Outcome`], from what the event knows (call it after attribution). `init_pid`: the
    /// host pid of the victim's container's init as its runtime recorded it, when known.
    /// - a group kill takes every task of the memcg: `container_exit`;
    /// - the runtime names the container's init: `container_exit` when it is the victim's
    ///   process (`victim.tgid`), else `process_only` (this covers pods sharing one pid
    ///   namespace, whose pid 1 is the pause process, and `hostPID` pods);
    /// - a victim in a non-host pid namespace (`pid_ns_level` > 0): `container_exit` when it is
    ///   that namespace's pid 1 (`ns_pid` 1), else `process_only`;
    /// - a victim in the host's pid namespace: `host`, unless it is attributed to a container or
    ///   pod: then, without the runtime's init pid, `None`;
    /// - no namespace pid (the kernel-log source, or a hook that had no task): `None`.
    pub fn decide_outcome(&self, init_pid: Option<u32>) -> Option<Outcome> {
        if self.flags.group_kill {
            return Some(Outcome::ContainerExit);
        }
        if let (Some(init), Some(tgid)) = (init_pid, self.victim.tgid) {
            return Some(if tgid == init {
                Outcome::ContainerExit
            } else {
                Outcome::ProcessOnly
            });
        }
        let level = self.victim.pid_ns_level?;
        if level == 0 {
            let contained = self.owner.container.is_some() || self.owner.pod.is_some();
            return (!contained).then_some(Outcome::Host);
        }
        Some(if self.victim.ns_pid? == 1 {
            Outcome::ContainerExit
        } else {
            Outcome::ProcessOnly
        })
    }

    /// `limit` from the OOM context, when the context hook read one.
    fn with_context_limit(mut self) -> Self {
        if let Some(oom) = &self.oom
            && let (Some(bytes), Some(Some(memcg))) = (oom.memcg_limit_bytes, &oom.memcg)
        {
            self.limit = Some(Limit {
                bytes,
                usage_bytes: oom.memcg_usage_bytes,
                source: "oom_control",
                cgroup: memcg.path.clone(),
            });
        }
        self
    }

    /// `limit` from the victim hook's walk of the memcg hierarchy, when no context gave one.
    fn with_victim_limit(mut self, r: &VictimRecord, sys: &System) -> Self {
        if self.limit.is_none()
            && r.present & present::LIMIT != 0
            && r.limit_pages < page_counter_max(sys)
        {
            self.limit = Some(Limit {
                bytes: r.limit_pages * sys.page_size,
                usage_bytes: Some(r.limit_usage_pages * sys.page_size),
                source: "bpf",
                cgroup: Cgroup::from_ref(&r.limit_cgroup).path,
            });
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_sizes_give_no_score_not_a_wrapped_one() {
        let sys = System {
            page_size: 4096,
            ram_pages: 1 << 20,
            swap_pages: 0,
        };
        let v = Victim {
            oom_score_adj: Some(0),
            anon_rss_kb: Some(u64::MAX - 1),
            file_rss_kb: Some(8),
            shmem_rss_kb: Some(0),
            pgtables_kb: Some(4),
            ..Victim::default()
        };
        assert_eq!(v.compute_oom_score(&sys), None);
        let v = Victim {
            anon_rss_kb: Some(4),
            pgtables_kb: Some(u64::MAX / 512),
            ..v
        };
        assert_eq!(v.compute_oom_score(&sys), None);
        let v = Victim {
            pgtables_kb: Some(4),
            ..v
        };
        assert!(v.compute_oom_score(&sys).is_some());
    }

    #[test]
    fn comm_cut_inside_a_character_stays_utf8() {
        // "ééééééé-x" is 2*7+2 bytes; the kernel keeps 15: 7 'é' and the first byte of... no:
        // 14 bytes of 'é' then '-'. Cut one byte earlier to split a character.
        let name = "ééééééééé"; // 18 bytes
        let mut buf = [0u8; 16];
        buf[..15].copy_from_slice(&name.as_bytes()[..15]);
        let s = comm_str(&buf);
        assert_eq!(s, "ééééééé\u{FFFD}");
        assert!(serde_json::to_string(&s).is_ok());
    }

    const SYS: System = System {
        page_size: 4096,
        ram_pages: 6_000_000,
        swap_pages: 0,
    };

    #[test]
    fn absent_fields_are_omitted() {
        let r = crate::decode::tests::victim(42);
        let e = Event::from_victim(
            &r,
            None,
            false,
            &SYS,
            &crate::kernel::gfp::GfpTable::builtin(),
            "n1",
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["victim"]["pid"], 42);
        assert_eq!(v["victim"]["comm"], "hog1");
        assert!(v["victim"].get("uid").is_none(), "uid absent, not 0: {v}");
        assert!(v["victim"].get("oom_score_adj").is_none());
        assert!(v.get("trigger").is_none());
        assert_eq!(v["hook"], "tracepoint");
        assert_eq!(v["schema"], 1);
        assert!(v.get("oom").is_none());
        assert_eq!(v["flags"]["context_missing"], true);
        assert!(v["victim"].get("oom_score").is_none(), "needs rss and adj");
    }

    #[test]
    fn namespace_pid_only_when_read() {
        let mut r = crate::decode::tests::victim(4242);
        let gfp = crate::kernel::gfp::GfpTable::builtin();
        let v = serde_json::to_value(Event::from_victim(&r, None, false, &SYS, &gfp, "n")).unwrap();
        assert!(v["victim"].get("ns_pid").is_none(), "{v}");
        assert!(v["victim"].get("pid_ns_level").is_none(), "{v}");
        r.present |= present::NS_PID;
        r.ns_pid = 1;
        r.pid_ns_level = 0;
        let v = serde_json::to_value(Event::from_victim(&r, None, false, &SYS, &gfp, "n")).unwrap();
        assert_eq!(v["victim"]["ns_pid"], 1);
        assert_eq!(
            v["victim"]["pid_ns_level"], 0,
            "level 0 is reported, not omitted"
        );
    }

    #[test]
    fn outcome_from_namespace_and_group_kill() {
        let mut ev = crate::testutil::event(10);
        assert_eq!(ev.decide_outcome(None), None, "no namespace pid: unknown");
        ev.victim.pid_ns_level = Some(0);
        ev.victim.ns_pid = Some(10);
        assert_eq!(ev.decide_outcome(None), Some(Outcome::Host));
        ev.owner.container = Some(crate::enrich::Container {
            id: "c".repeat(64),
            runtime: "containerd".into(),
            name: None,
        });
        assert_eq!(
            ev.decide_outcome(None),
            None,
            "hostPID container: init unknown"
        );
        ev.victim.tgid = Some(10);
        assert_eq!(
            ev.decide_outcome(Some(10)),
            Some(Outcome::ContainerExit),
            "the runtime names it the init"
        );
        assert_eq!(ev.decide_outcome(Some(3)), Some(Outcome::ProcessOnly));
        ev.victim.pid_ns_level = Some(1);
        assert_eq!(ev.decide_outcome(None), Some(Outcome::ProcessOnly));
        ev.victim.ns_pid = Some(1);
        assert_eq!(ev.decide_outcome(None), Some(Outcome::ContainerExit));
        // A shared pid namespace: pid 1 is the pause process, the runtime knows better.
        assert_eq!(ev.decide_outcome(Some(3)), Some(Outcome::ProcessOnly));
        ev.victim.ns_pid = Some(5);
        assert_eq!(ev.decide_outcome(Some(10)), Some(Outcome::ContainerExit));
        ev.victim.ns_pid = Some(1);
        ev.victim.ns_pid = Some(7);
        ev.flags.group_kill = true;
        assert_eq!(
            ev.decide_outcome(None),
            Some(Outcome::ContainerExit),
            "group kill"
        );
        let mut kmsg = crate::testutil::event(10);
        kmsg.flags.group_kill = true;
        assert_eq!(kmsg.decide_outcome(None), Some(Outcome::ContainerExit));
        ev.outcome = Some(Outcome::ProcessOnly);
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["outcome"], "process_only");
    }

    #[test]
    fn limit_from_the_victim_hook() {
        let gfp = crate::kernel::gfp::GfpTable::builtin();
        let mut r = crate::decode::tests::victim(5);
        let ev = Event::from_victim(&r, None, false, &SYS, &gfp, "n");
        assert!(ev.limit.is_none(), "not read: absent");
        r.present |= present::LIMIT;
        r.limit_pages = 16384;
        r.limit_usage_pages = 16000;
        let names = b"parent\0";
        r.limit_cgroup.names[..names.len()].copy_from_slice(names);
        r.limit_cgroup.len = u16::try_from(names.len()).unwrap();
        r.limit_cgroup.depth = 1;
        let ev = Event::from_victim(&r, None, false, &SYS, &gfp, "n");
        assert_eq!(
            ev.limit,
            Some(Limit {
                bytes: 64 << 20,
                usage_bytes: Some(16000 * 4096),
                source: "bpf",
                cgroup: "/parent".into(),
            })
        );
        // Nothing on the way had a limit: PAGE_COUNTER_MAX is no limit.
        r.limit_pages = page_counter_max(&SYS);
        let ev = Event::from_victim(&r, None, false, &SYS, &gfp, "n");
        assert!(ev.limit.is_none(), "{:?}", ev.limit);
    }

    #[test]
    fn oom_score_follows_proc_oom_score() {
        // 64 MiB anon, no file/shmem, 192 KiB page tables, adj 0, 6,000,000 pages of RAM:
        // badness = 16384 + 48 = 16432; (1000 + 16432*1000/6000000) * 2 / 3 = (1000 + 2) * 2 / 3.
        let v = Victim {
            anon_rss_kb: Some(65536),
            file_rss_kb: Some(0),
            shmem_rss_kb: Some(0),
            pgtables_kb: Some(192),
            oom_score_adj: Some(0),
            ..Victim::default()
        };
        assert_eq!(v.compute_oom_score(&SYS), Some(668));
        let v1000 = Victim {
            oom_score_adj: Some(1000),
            ..v.clone()
        };
        // adj 1000 adds 1000 * (6000000 / 1000) = 6,000,000 pages: (1000 + 1002) * 2 / 3 = 1334.
        assert_eq!(v1000.compute_oom_score(&SYS), Some(1334));
        let vmin = Victim {
            oom_score_adj: Some(-1000),
            ..v.clone()
        };
        assert_eq!(vmin.compute_oom_score(&SYS), Some(0));
        // With swap configured but the swap count unknown, no guess.
        let sys_swap = System {
            swap_pages: 1000,
            ..SYS
        };
        assert_eq!(v.compute_oom_score(&sys_swap), None);
    }

    #[test]
    fn cgroup_path_from_kernel_names() {
        let mut c = CgroupRef::EMPTY;
        let names = b"leaf\0mid\0top\0";
        c.names[..names.len()].copy_from_slice(names);
        c.len = u16::try_from(names.len()).unwrap();
        c.depth = 3;
        c.id = 77;
        let g = Cgroup::from_ref(&c);
        assert_eq!(g.path, "/top/mid/leaf");
        assert_eq!(g.id, Some(77));
        assert_eq!(Cgroup::from_ref(&CgroupRef::EMPTY).path, "/");
    }
}
