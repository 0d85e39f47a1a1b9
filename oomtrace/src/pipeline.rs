//! The userspace data path: ring bytes → decode → join with the OOM context → event → enrich →
//! sinks.

use std::{collections::VecDeque, time::Instant};

use oomtrace_common::ContextRecord;

use crate::{
    decode::{self, Record},
    enrich::Enricher,
    event::{Event, System},
    exits::ExitTracker,
    kernel::gfp::GfpTable,
    sink::Sinks,
};

/// Contexts kept for joining. Victims arrive right after their context (same CPU, under the
/// kernel's oom_lock), so a few are plenty; more only guards against reordering across CPUs.
const CONTEXTS_KEPT: usize = 64;

/// Counts of what went through the pipeline.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub records: u64,
    pub victims: u64,
    /// Victims killed before this daemon started (`delivered_late`, from a pinned ring).
    pub late_victims: u64,
    pub contexts: u64,
    /// OOMs since start that were group kills (`memory.oom.group`).
    pub group_kill_ooms: u64,
    pub decode_errors: u64,
    /// Victim exits seen, and victims reported as slow to exit.
    pub exits: u64,
    pub slow_exits: u64,
}

pub struct Pipeline {
    node: String,
    sys: System,
    gfp: GfpTable,
    context_hook: bool,
    contexts: VecDeque<ContextRecord>,
    enricher: Enricher,
    /// Memory cgroup mount to read limits from when the context hook gave none.
    memory_mount: Option<std::path::PathBuf>,
    pub sinks: Sinks,
    pub stats: Stats,
    /// CLOCK_BOOTTIME when this pipeline started: older records waited in a pinned ring.
    started_boot_ns: u64,
    /// Memory cgroups of the victims delivered since the last drain (not group kills), for
    /// per-cgroup reconciliation.
    pub recent_cgroups: Vec<String>,
    /// Victims waiting to exit; None when no exit hook is attached.
    exits: Option<ExitTracker>,
    /// `oomtrace_event_processing_seconds`: wake-up → decode → enrich → write, per victim.
    pub processing: crate::sink::metrics::Processing,
    /// Test setting `OOMTRACE_TEST_DRAIN_STALL=PATH`: the first victim event reads `PATH` in
    /// the drain (a FIFO blocks it there until the test writes), so that the health tests can
    /// stall the drain for real.
    test_stall: Option<std::path::PathBuf>,
}

impl Pipeline {
    /// `context_hook`: a context hook is attached (so a victim without context is notable).
    pub fn new(
        node: String,
        sys: System,
        gfp: GfpTable,
        context_hook: bool,
        enricher: Enricher,
        sinks: Sinks,
    ) -> Self {
        Self {
            node,
            sys,
            gfp,
            context_hook,
            contexts: VecDeque::with_capacity(CONTEXTS_KEPT),
            enricher,
            memory_mount: None,
            sinks,
            stats: Stats::default(),
            started_boot_ns: crate::clock::boot_ns_now(),
            recent_cgroups: Vec::new(),
            exits: None,
            processing: crate::sink::metrics::Processing::default(),
            test_stall: std::env::var_os("OOMTRACE_TEST_DRAIN_STALL").map(Into::into),
        }
    }

    /// Follow the victims' exits (Some when an exit hook is attached): `victim_exit` lines, and
    /// `victim_slow_exit` for a victim still alive `timeout` after its kill.
    #[must_use]
    pub fn with_exit_tracking(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.exits = timeout.map(ExitTracker::new);
        self
    }

    /// True while a victim may still become overdue: the event loop only wakes up to check
    /// then (an idle daemon does not wake).
    pub fn exits_to_watch(&self) -> bool {
        self.exits
            .as_ref()
            .is_some_and(crate::exits::ExitTracker::watching)
    }

    /// Writes `victim_slow_exit` for the victims overdue at `now_boot_ns` (call it now and then).
    pub fn check_exits(&mut self, now_boot_ns: u64) {
        let Some(t) = &mut self.exits else { return };
        for l in t.overdue(now_boot_ns, &self.node) {
            log::warn!(
                "OOM victim pid {} is still alive {} ms after its kill",
                l.pid,
                l.after_ms
            );
            self.stats.slow_exits += 1;
            self.sinks.exit(&l);
        }
    }

    /// Reads the limit of a victim's cgroup from the cgroup filesystem mounted at `mount` when
    /// no context hook read the OOM domain's (`limit.source = "cgroupfs"`).
    #[must_use]
    pub fn with_memory_mount(mut self, mount: Option<std::path::PathBuf>) -> Self {
        self.memory_mount = mount;
        self
    }

    pub fn memory_mount(&self) -> Option<&std::path::Path> {
        self.memory_mount.as_deref()
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn system(&self) -> &System {
        &self.sys
    }

    pub fn gfp(&self) -> &GfpTable {
        &self.gfp
    }

    /// The enrich stage: whose cgroup (victim and OOM domain), and the limit when no context gave
    /// one.
    fn enrich(&self, ev: &mut Event) {
        if let Some(cg) = &ev.victim.cgroup {
            ev.owner = self.enricher.attribute(&cg.path);
        }
        if let Some(oom) = &mut ev.oom
            && let Some(Some(domain)) = &oom.memcg
        {
            oom.owner = self.enricher.attribute(&domain.path);
        }
        let init_pid = match (&ev.owner.container, ev.flags.group_kill) {
            (Some(c), false) => self.enricher.container_init_pid(c),
            _ => None,
        };
        ev.outcome = ev.decide_outcome(init_pid);
        if ev.limit.is_none()
            && let (Some(mount), Some(cg)) = (&self.memory_mount, &ev.victim.cgroup)
            && let Some((bytes, cgroup)) = crate::kernel::cgroups::memory_limit(mount, &cg.path)
        {
            ev.limit = Some(crate::event::Limit {
                bytes,
                usage_bytes: None,
                source: "cgroupfs",
                cgroup,
            });
        }
    }

    /// An event made elsewhere (the kernel-log source): enrich it and write it out.
    pub fn handle_event(&mut self, mut ev: Event) -> Event {
        self.stats.victims += 1;
        self.enrich(&mut ev);
        self.sinks.emit(&ev);
        ev
    }

    /// Handles one ring record; returns the event it produced, if any.
    pub fn handle(&mut self, bytes: &[u8]) -> Option<Event> {
        self.handle_woken(bytes, Instant::now())
    }

    /// [`Pipeline::handle`] of a record read after the ring woke the event loop at `woke`: a
    /// victim's stages are timed from then (`oomtrace_event_processing_seconds`).
    pub fn handle_woken(&mut self, bytes: &[u8], woke: Instant) -> Option<Event> {
        self.stats.records += 1;
        let record = decode::decode(bytes);
        let decoded = Instant::now();
        match record {
            Ok(Record::Victim(v)) => {
                self.stats.victims += 1;
                let ctx = (v.context_seq != 0)
                    .then(|| self.contexts.iter().rev().find(|c| c.seq == v.context_seq))
                    .flatten();
                let mut ev = Event::from_victim(
                    &v,
                    ctx,
                    self.context_hook,
                    &self.sys,
                    &self.gfp,
                    &self.node,
                );
                ev.delivered_late = ev.boot_ns < self.started_boot_ns;
                if ev.delivered_late {
                    self.stats.late_victims += 1;
                }
                if !ev.flags.group_kill
                    && let Some(cg) = &ev.victim.cgroup
                {
                    self.recent_cgroups.push(cg.path.clone());
                }
                if let Some(p) = self.test_stall.take() {
                    log::warn!(
                        "test setting: the drain reads {} (OOMTRACE_TEST_DRAIN_STALL)",
                        p.display()
                    );
                    let _ = std::fs::read(&p);
                }
                self.enrich(&mut ev);
                let enriched = Instant::now();
                self.sinks.emit_held(&ev);
                self.processing
                    .observe(woke, decoded, enriched, Instant::now());
                self.sinks.release();
                if let Some(t) = &mut self.exits
                    && v.present & oomtrace_common::present::PID != 0
                {
                    t.killed(v.pid, ev.victim.tgid.unwrap_or(0), v.header.boot_ns);
                }
                Some(ev)
            }
            Ok(Record::Exit(x)) => {
                let lines = match &mut self.exits {
                    Some(t) => t.exited(&x, &self.node),
                    // Pinned programs of an earlier daemon may still send them.
                    None => {
                        ExitTracker::new(crate::exits::DEFAULT_EXIT_TIMEOUT).exited(&x, &self.node)
                    }
                };
                for l in lines {
                    if l.kind == "victim_exit" {
                        self.stats.exits += 1;
                    } else {
                        log::warn!(
                            "OOM victim pid {} was still alive {} ms after its kill",
                            l.pid,
                            l.after_ms
                        );
                        self.stats.slow_exits += 1;
                    }
                    self.sinks.exit(&l);
                }
                None
            }
            Ok(Record::Context(c)) => {
                self.stats.contexts += 1;
                if c.group_kill != 0 && c.header.boot_ns >= self.started_boot_ns {
                    self.stats.group_kill_ooms += 1;
                }
                if self.contexts.len() == CONTEXTS_KEPT {
                    self.contexts.pop_front();
                }
                self.contexts.push_back(*c);
                None
            }
            Err(e) => {
                self.stats.decode_errors += 1;
                log::warn!("dropping a ring record: {e}");
                None
            }
        }
    }
}

/// The node name for events: `$NODE_NAME` (set by the DaemonSet from the downward API), else the
/// kernel's hostname.
pub fn node_name() -> String {
    if let Ok(n) = std::env::var("NODE_NAME")
        && !n.is_empty()
    {
        return n;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::as_bytes;
    use oomtrace_common::{CgroupRef, RECORD_VERSION, RecordHeader, hook, kind, present};

    fn context(seq: u64, group: bool) -> ContextRecord {
        ContextRecord {
            header: RecordHeader {
                kind: kind::CONTEXT,
                version: RECORD_VERSION,
                size: u32::try_from(size_of::<ContextRecord>()).unwrap(),
                boot_ns: seq,
            },
            present: present::CONSTRAINT
                | present::MEMCG
                | present::TOTALPAGES
                | present::GFP_MASK
                | present::MEMCG_LIMIT,
            hook: hook::KPROBE,
            trigger_pid: 9,
            trigger_tgid: 9,
            chosen_pid: 1,
            seq,
            constraint: 3,
            gfp_mask: 0xcc0,
            order: 0,
            group_kill: u32::from(group),
            totalpages: 16384,
            chosen_points: 100,
            memcg_usage_pages: 16384,
            memcg_limit_pages: 16384,
            trigger_comm: [0; 16],
            memcg: CgroupRef {
                id: 5,
                depth: 1,
                len: 2,
                names: {
                    let mut n = [0; 768];
                    n[0] = b'x';
                    n
                },
                ..CgroupRef::EMPTY
            },
        }
    }

    #[test]
    fn each_victim_is_timed_from_the_wake_up_through_every_stage() {
        let sys = System {
            page_size: 4096,
            ram_pages: 1 << 20,
            swap_pages: 0,
        };
        let mut p = Pipeline::new(
            "n".into(),
            sys,
            GfpTable::builtin(),
            false,
            Enricher::new("/nonexistent"),
            Sinks::default(),
        );
        let mut r = prometheus_client::registry::Registry::default();
        p.processing.register(&mut r);
        // A wake-up 50 ms ago: every stage of both victims counts from it.
        let woke = Instant::now()
            .checked_sub(std::time::Duration::from_millis(50))
            .unwrap();
        p.handle_woken(as_bytes(&crate::decode::tests::victim(1)), woke);
        p.handle_woken(as_bytes(&crate::decode::tests::victim(2)), woke);
        // A context record is no event: not timed.
        p.handle_woken(as_bytes(&context(7, false)), woke);
        let mut t = String::new();
        prometheus_client::encoding::text::encode(&mut t, &r).unwrap();
        for stage in ["decode", "enrich", "write"] {
            assert!(
                t.contains(&format!(
                    "oomtrace_event_processing_seconds_count{{stage=\"{stage}\"}} 2"
                )),
                "{t}"
            );
            assert!(
                t.contains(&format!(
                    "oomtrace_event_processing_seconds_bucket{{le=\"0.025\",stage=\"{stage}\"}} 0"
                )),
                "timed from the wake-up, 50 ms ago: {t}"
            );
        }
    }

    #[test]
    fn victims_join_their_context() {
        let sys = System {
            page_size: 4096,
            ram_pages: 1 << 20,
            swap_pages: 0,
        };
        let mut p = Pipeline::new(
            "n".into(),
            sys,
            GfpTable::builtin(),
            true,
            Enricher::new("/nonexistent"),
            Sinks::default(),
        );
        assert!(p.handle(as_bytes(&context(1000, true))).is_none());
        let mut v = crate::decode::tests::victim(1);
        v.context_seq = 1000;
        let ev = p.handle(as_bytes(&v)).expect("event");
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["context_id"], 1000);
        assert_eq!(j["flags"]["group_kill"], true);
        assert_eq!(j["flags"]["context_missing"], false);
        assert_eq!(j["oom"]["constraint"], "memcg");
        assert_eq!(j["oom"]["memcg"]["path"], "/x");
        assert_eq!(j["oom"]["memcg_limit_bytes"], 64 << 20);
        assert_eq!(j["oom"]["gfp_flags"][0], "GFP_KERNEL");
        assert!(j["oom"].get("pod").is_none(), "/x is nobody's");
        // A victim whose context was never seen is still reported.
        v.context_seq = 999;
        let ev = p.handle(as_bytes(&v)).expect("event");
        assert!(ev.oom.is_none());
        assert!(ev.flags.context_missing);
    }

    #[test]
    fn a_pod_level_limit_names_the_pod() {
        let sys = System {
            page_size: 4096,
            ram_pages: 1 << 20,
            swap_pages: 0,
        };
        let mut p = Pipeline::new(
            "n".into(),
            sys,
            GfpTable::builtin(),
            true,
            Enricher::new("/nonexistent"),
            Sinks::default(),
        );
        let mut c = context(7, false);
        let uid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
        // Leaf first, as the kernel side writes them: pod<uid>, burstable, kubepods.
        let names = format!("pod{uid}\0burstable\0kubepods\0");
        c.memcg.names[..names.len()].copy_from_slice(names.as_bytes());
        c.memcg.len = u16::try_from(names.len()).unwrap();
        c.memcg.depth = 3;
        p.handle(as_bytes(&c));
        let mut v = crate::decode::tests::victim(1);
        v.context_seq = 7;
        let j = serde_json::to_value(p.handle(as_bytes(&v)).unwrap()).unwrap();
        assert_eq!(
            j["oom"]["memcg"]["path"],
            format!("/kubepods/burstable/pod{uid}")
        );
        assert_eq!(j["oom"]["pod"]["uid"], uid);
        assert_eq!(j["oom"]["pod"]["qos"], "burstable");
        assert!(j["oom"].get("container").is_none());
    }

    #[test]
    fn global_oom_has_null_memcg() {
        let sys = System {
            page_size: 4096,
            ram_pages: 1 << 20,
            swap_pages: 0,
        };
        let mut p = Pipeline::new(
            "n".into(),
            sys,
            GfpTable::builtin(),
            true,
            Enricher::new("/nonexistent"),
            Sinks::default(),
        );
        let mut c = context(5, false);
        c.memcg = CgroupRef::EMPTY;
        c.constraint = 0;
        p.handle(as_bytes(&c));
        let mut v = crate::decode::tests::victim(1);
        v.context_seq = 5;
        let j = serde_json::to_value(p.handle(as_bytes(&v)).unwrap()).unwrap();
        assert_eq!(j["oom"]["constraint"], "none");
        assert!(
            j["oom"]["memcg"].is_null() && j["oom"].get("memcg").is_some(),
            "memcg: null, not absent"
        );
        assert!(j["oom"].get("memcg_limit_bytes").is_none());
    }
}
