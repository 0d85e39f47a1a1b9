//! Accounting for every kill: what the kernel side could not deliver (BPF per-CPU counters), and
//! reconciliation with the kernel's own count of OOM kills (`/proc/vmstat` `oom_kill`).
//!
//! Checked after each drain of the ring and at scrape time; there is no timer. A difference is
//! only counted as unexplained once it has been seen twice with the kernel's count unchanged, so
//! a kill that the kernel has counted but whose record is still on its way (microseconds between
//! `count_vm_event(OOM_KILL)` and `mark_oom_victim()` in `__oom_kill_process`) is not reported.
//!
//! Known kernel double count: in a group kill (`memory.oom.group`) the chosen task is killed a
//! second time with its group and counted twice while `mark_victim` fires once (seen on 6.1, see
//! docs/kernel.md); each group-kill OOM therefore allows one kernel kill more than delivered.

use std::{collections::HashMap, path::PathBuf};

use aya::maps::{Array, MapData, PerCpuArray};
use oomtrace_common::counter;

/// Reads `oom_kill` from a /proc/vmstat text.
pub fn vmstat_oom_kills(vmstat: &str) -> Option<u64> {
    vmstat
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

impl std::fmt::Debug for Accounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounting")
            .field("counters", &self.counters.is_some())
            .field("delivered", &self.delivered)
            .field("reported", &self.reported)
            .field("unexplained_total", &self.unexplained_total)
            .finish_non_exhaustive()
    }
}

/// Number of BPF counters.
const N: usize = counter::COUNT as usize;

/// The one owner of loss and reconciliation state. The event loop feeds it (`delivered`,
/// `group_kill_ooms`, [`Accounting::check_lost`], [`Accounting::reconcile`]); the metrics
/// endpoint only reads it ([`Accounting::snapshot`]).
pub struct Accounting {
    counters: Option<PerCpuArray<MapData, u64>>,
    /// The BPF `REPORTED` map: what of `counters` has been reported, kept with the pins.
    reported_map: Option<Array<MapData, u64>>,
    vmstat: PathBuf,
    /// `oom_kill` when we started.
    kernel_base: Option<u64>,
    /// The BPF counters when we started (a pinned set is cumulative over daemons).
    bpf_base: [u64; N],
    /// Of each BPF counter, how much has been reported (as `lost` lines and warnings), by this
    /// daemon or, for pinned counters, by the ones before it.
    reported: [u64; N],
    /// Victims delivered since start that were killed since start (not `delivered_late`).
    pub delivered: u64,
    /// Group-kill OOMs since start (each may count one kill twice in the kernel).
    pub group_kill_ooms: u64,
    /// Kernel kills no event explains.
    pub unexplained_total: u64,
    /// The last check's (kernel count, deficit), to confirm a deficit on the next check.
    pending: Option<(u64, u64)>,
    /// Per memory cgroup: (kernel `oom_kill` and our delivered count when first seen, kills
    /// already reported missing).
    cgroups: HashMap<String, CgroupTally>,
    /// A reader (a metrics scrape) asks the event loop to check now: with no kill arriving, the
    /// loop has no other reason to wake up and reconcile.
    pub check_requested: std::sync::Arc<tokio::sync::Notify>,
}

/// Records newly lost by the kernel side, by kind, since the last [`Accounting::check_lost`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NewLosses {
    /// Victim records: lost kills.
    pub victims: u64,
    /// Context records: an OOM's context (its victims are still delivered, `context_missing`).
    pub contexts: u64,
}

/// What the metrics endpoint shows, read without changing anything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    /// Every BPF counter (cumulative since the programs were loaded), when measurable.
    pub bpf: Option<[u64; N]>,
    pub kernel_kills: Option<u64>,
    pub unexplained_total: u64,
}

/// Per-cgroup reconciliation state.
#[derive(Debug, Clone, Copy, Default)]
struct CgroupTally {
    kernel_base: u64,
    delivered: u64,
    reported: u64,
}

/// Cgroups tracked at once (oldest dropped first is not needed: a node has few OOMing cgroups;
/// past this, new ones are simply not tracked).
const CGROUPS_TRACKED: usize = 4096;

impl Accounting {
    /// `counters`: the BPF `COUNTERS` map (None: loss is not measurable, e.g. kmsg source);
    /// `reported`: the BPF `REPORTED` map beside it.
    pub fn new(
        counters: Option<PerCpuArray<MapData, u64>>,
        reported: Option<Array<MapData, u64>>,
    ) -> Self {
        Self::with_vmstat(counters, reported, "/proc/vmstat".into())
    }

    /// For sharing between the event loop (the only writer) and the metrics endpoint.
    pub fn shared(
        counters: Option<PerCpuArray<MapData, u64>>,
        reported: Option<Array<MapData, u64>>,
    ) -> std::sync::Arc<std::sync::Mutex<Self>> {
        std::sync::Arc::new(std::sync::Mutex::new(Self::new(counters, reported)))
    }

    pub fn with_vmstat(
        counters: Option<PerCpuArray<MapData, u64>>,
        reported_map: Option<Array<MapData, u64>>,
        vmstat: PathBuf,
    ) -> Self {
        let mut a = Self {
            counters,
            reported_map,
            vmstat,
            kernel_base: None,
            bpf_base: [0; N],
            reported: [0; N],
            delivered: 0,
            group_kill_ooms: 0,
            unexplained_total: 0,
            pending: None,
            cgroups: HashMap::new(),
            check_requested: std::sync::Arc::default(),
        };
        a.kernel_base = a.kernel_kills();
        // A pinned set carries the counts of the daemons before this one: what they lost is
        // not this daemon's to explain kills with, and what they reported is not reported again.
        // Losses from while no daemon ran (counted, never reported) are reported at the first
        // check.
        if let Some(now) = a.bpf_counters() {
            a.bpf_base = now;
        }
        if let Some(m) = &a.reported_map {
            for (i, r) in a.reported.iter_mut().enumerate() {
                *r = u32::try_from(i)
                    .ok()
                    .and_then(|i| m.get(&i, 0).ok())
                    .unwrap_or(0);
            }
        }
        a
    }

    /// /proc/vmstat `oom_kill` now.
    pub fn kernel_kills(&self) -> Option<u64> {
        match std::fs::read_to_string(&self.vmstat) {
            Ok(t) => vmstat_oom_kills(&t),
            Err(e) => {
                log::warn!("reading {}: {e}", self.vmstat.display());
                None
            }
        }
    }

    /// Kernel kills since start.
    pub fn kernel_delta(&self) -> Option<u64> {
        Some(self.kernel_kills()?.saturating_sub(self.kernel_base?))
    }

    /// Every BPF counter, summed over CPUs.
    fn bpf_counters(&self) -> Option<[u64; N]> {
        let c = self.counters.as_ref()?;
        let mut out = [0; N];
        for (i, o) in out.iter_mut().enumerate() {
            let i = u32::try_from(i).ok()?;
            match c.get(&i, 0) {
                Ok(v) => *o = v.iter().sum(),
                Err(e) => {
                    log::warn!("reading BPF counter {i}: {e}");
                    return None;
                }
            }
        }
        Some(out)
    }

    /// One BPF counter, summed over CPUs.
    pub fn bpf_counter(&self, index: u32) -> Option<u64> {
        self.bpf_counters()?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// The ring-full losses of victim records reported so far (by this daemon and, pinned, by
    /// the ones before it): the `total` of `lost` lines.
    pub fn lost_total(&self) -> u64 {
        self.reported[counter::RING_FULL as usize]
    }

    /// Records newly lost in the kernel side (ring full) since the last call, by kind; marks them
    /// reported (in the pinned `REPORTED` map too). Called by the event loop only, which turns
    /// lost victims into `lost` records.
    pub fn check_lost(&mut self) -> NewLosses {
        let Some(now) = self.bpf_counters() else {
            return NewLosses::default();
        };
        let mut take = |i: u32| {
            let i = i as usize;
            let new = now[i].saturating_sub(self.reported[i]);
            if new > 0 {
                self.reported[i] = now[i];
                if let Some(m) = self.reported_map.as_mut()
                    && let Err(e) = m.set(u32::try_from(i).unwrap_or(0), now[i], 0)
                {
                    log::warn!("recording reported losses in the REPORTED map: {e}");
                }
            }
            new
        };
        NewLosses {
            victims: take(counter::RING_FULL),
            contexts: take(counter::CONTEXT_RING_FULL),
        }
    }

    /// For the metrics endpoint: everything it shows, changing nothing.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            bpf: self.bpf_counters(),
            kernel_kills: self.kernel_kills(),
            unexplained_total: self.unexplained_total,
        }
    }

    /// Per-cgroup check, for the memory cgroup of a victim just delivered (not for group kills,
    /// which the kernel may count twice): compares the cgroup's own `oom_kill` since we first saw
    /// it with the victims we delivered from it. Returns kills newly found missing there. A
    /// cgroup that is gone is skipped.
    pub fn saw_victim_in(&mut self, mount: &std::path::Path, path: &str) -> u64 {
        let Some(now) = crate::kernel::cgroups::oom_kill_count(mount, path) else {
            self.cgroups.remove(path);
            return 0;
        };
        if !self.cgroups.contains_key(path) {
            if self.cgroups.len() >= CGROUPS_TRACKED {
                return 0;
            }
            // First sight: this victim is one of the kernel's count.
            self.cgroups.insert(
                path.to_string(),
                CgroupTally {
                    kernel_base: now.saturating_sub(1),
                    delivered: 0,
                    reported: 0,
                },
            );
        }
        let t = self.cgroups.get_mut(path).expect("inserted above");
        t.delivered += 1;
        let missing = now
            .saturating_sub(t.kernel_base)
            .saturating_sub(t.delivered);
        if missing > t.reported {
            let new = missing - t.reported;
            t.reported = missing;
            return new;
        }
        0
    }

    /// Kernel OOM kills newly found unexplained (after each drain, and when idle). Only what
    /// happened since start explains them: victims killed since start, and victim records lost
    /// since start.
    pub fn reconcile(&mut self) -> u64 {
        let (Some(now), Some(base)) = (self.kernel_kills(), self.kernel_base) else {
            return 0;
        };
        let ring_full = counter::RING_FULL as usize;
        let lost = self
            .bpf_counters()
            .map_or(0, |c| c[ring_full].saturating_sub(self.bpf_base[ring_full]));
        let explained = self.delivered + lost + self.group_kill_ooms + self.unexplained_total;
        let deficit = now.saturating_sub(base).saturating_sub(explained);
        if deficit == 0 {
            self.pending = None;
            0
        } else if self.pending.is_some_and(|(k, _)| k == now) {
            self.unexplained_total += deficit;
            self.pending = None;
            deficit
        } else {
            self.pending = Some((now, deficit));
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmstat(dir: &tempfile::TempDir, n: u64) -> PathBuf {
        let p = dir.path().join("vmstat");
        std::fs::write(&p, format!("nr_free_pages 1\noom_kill {n}\nfoo 2\n")).unwrap();
        p
    }

    #[test]
    fn parses_vmstat() {
        assert_eq!(vmstat_oom_kills("a 1\noom_kill 42\n"), Some(42));
        assert_eq!(vmstat_oom_kills("a 1\n"), None);
        assert_eq!(vmstat_oom_kills("oom_kill x\n"), None);
    }

    #[test]
    fn a_deficit_counts_only_once_confirmed() {
        let d = tempfile::tempdir().unwrap();
        let p = vmstat(&d, 10);
        let mut a = Accounting::with_vmstat(None, None, p.clone());
        assert_eq!(a.reconcile(), 0);
        // The kernel counted a kill whose record has not arrived yet: not reported at once.
        vmstat(&d, 11);
        assert_eq!(a.reconcile(), 0);
        // The record arrives: nothing to report.
        a.delivered = 1;
        assert_eq!(a.reconcile(), 0);
        // Another kill counted, never delivered: reported at the second look.
        vmstat(&d, 12);
        assert_eq!(a.reconcile(), 0);
        assert_eq!(a.reconcile(), 1);
        assert_eq!(a.unexplained_total, 1);
        assert_eq!(a.reconcile(), 0, "counted once");
        assert_eq!(
            a.check_lost(),
            NewLosses::default(),
            "no BPF counters: nothing lost measurable"
        );
    }

    #[test]
    fn group_kill_double_count_is_allowed() {
        let d = tempfile::tempdir().unwrap();
        let p = vmstat(&d, 0);
        let mut a = Accounting::with_vmstat(None, None, p);
        // Four victims, one group-kill OOM, the kernel says 5.
        vmstat(&d, 5);
        a.delivered = 4;
        a.group_kill_ooms = 1;
        a.reconcile();
        assert_eq!(a.reconcile(), 0);
    }

    #[test]
    fn per_cgroup_counts() {
        let d = tempfile::tempdir().unwrap();
        let cg = d.path().join("x");
        std::fs::create_dir(&cg).unwrap();
        let set = |n: u64| {
            std::fs::write(
                cg.join("memory.events"),
                format!("low 0\noom 9\noom_kill {n}\n"),
            )
            .unwrap();
        };
        let mut a = Accounting::with_vmstat(None, None, "/nonexistent".into());
        set(3); // two kills before we started, and this one
        assert_eq!(a.saw_victim_in(d.path(), "/x"), 0);
        set(4);
        assert_eq!(a.saw_victim_in(d.path(), "/x"), 0);
        // The kernel counted two more, we delivered one: one missing, reported once.
        set(6);
        assert_eq!(a.saw_victim_in(d.path(), "/x"), 1);
        set(7);
        assert_eq!(a.saw_victim_in(d.path(), "/x"), 0);
        // Gone: skipped.
        assert_eq!(a.saw_victim_in(d.path(), "/gone"), 0);
    }

    #[test]
    fn unreadable_vmstat_is_no_finding() {
        let mut a = Accounting::with_vmstat(None, None, "/nonexistent/vmstat".into());
        assert_eq!(a.reconcile(), 0);
        assert_eq!(a.kernel_delta(), None);
    }
}
