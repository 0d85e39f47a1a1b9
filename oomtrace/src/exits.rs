//! The victims' exits: `{"kind":"victim_exit"}` when a victim's thread has exited (an exit record
//! from `sched:sched_process_exit`), and `{"kind":"victim_slow_exit"}` first when it was still
//! alive `--exit-timeout` after the kill — the livelocks (a victim stuck in the kernel, in
//! uninterruptible sleep, or not scheduled) that nothing else shows.
//!
//! Slow is judged on the kernel's clock: an exit record that arrives after a longer delay than the
//! timeout gives the warning first (so `--exit-timeout 0` always warns), and a victim with no exit
//! record is warned about by [`ExitTracker::overdue`] once the timeout has passed.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use oomtrace_common::ExitRecord;

use crate::{clock, event::SCHEMA};

/// Default `--exit-timeout`.
pub const DEFAULT_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Victims waited for at most: beyond it the oldest is forgotten (its exit line still comes, with
/// no warning first).
const PENDING_KEPT: usize = 4096;

/// `{"kind": "victim_exit" | "victim_slow_exit", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VictimExit {
    /// `victim_exit`: the victim's thread exited. `victim_slow_exit`: it was still alive
    /// `after_ms` after the kill (its `victim_exit` line follows when it does exit).
    pub kind: &'static str,
    pub schema: u32,
    /// Wall time of `boot_ns`.
    pub time: String,
    /// `victim_exit`: when the thread exited. `victim_slow_exit`: the kill + the timeout, an
    /// instant the victim was still alive at.
    pub boot_ns: u64,
    pub node: String,
    /// The victim: `victim.pid` (thread id) and `victim.tgid` of its kill event.
    pub pid: u32,
    pub tgid: u32,
    /// Milliseconds from the kill (`boot_ns` of the kill event) to `boot_ns`.
    pub after_ms: f64,
    /// `boot_ns` of the kill event, to join the two.
    pub kill_boot_ns: u64,
}

impl VictimExit {
    fn new(kind: &'static str, node: &str, pid: u32, tgid: u32, kill: u64, at: u64) -> Self {
        #[expect(
            clippy::cast_precision_loss,
            reason = "milliseconds for people and graphs"
        )]
        let after_ms = (at.saturating_sub(kill) as f64 / 1e3).round() / 1e3;
        Self {
            kind,
            schema: SCHEMA,
            time: clock::rfc3339(clock::boot_to_unix_ns(at)),
            boot_ns: at,
            node: node.to_string(),
            pid,
            tgid,
            after_ms,
            kill_boot_ns: kill,
        }
    }

    /// Seconds from the kill to the exit.
    pub fn seconds(&self) -> f64 {
        self.after_ms / 1e3
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    tgid: u32,
    kill_boot_ns: u64,
    warned: bool,
}

/// The victims seen and not yet exited.
#[derive(Debug)]
pub struct ExitTracker {
    timeout_ns: u64,
    pending: HashMap<u32, Pending>,
}

impl ExitTracker {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout_ns: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            pending: HashMap::new(),
        }
    }

    /// A victim was killed (its kill event was delivered).
    pub fn killed(&mut self, pid: u32, tgid: u32, kill_boot_ns: u64) {
        if self.pending.len() >= PENDING_KEPT
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.kill_boot_ns)
                .map(|(k, _)| *k)
        {
            self.pending.remove(&oldest);
        }
        self.pending.insert(
            pid,
            Pending {
                tgid,
                kill_boot_ns,
                warned: false,
            },
        );
    }

    /// An exit record: the lines to write, a `victim_slow_exit` first when it took longer than
    /// the timeout and no warning was given yet.
    pub fn exited(&mut self, r: &ExitRecord, node: &str) -> Vec<VictimExit> {
        let mut out = Vec::with_capacity(2);
        let warned = self.pending.remove(&r.pid).is_none_or(|p| p.warned);
        let at = r.header.boot_ns;
        if !warned && at.saturating_sub(r.kill_boot_ns) >= self.timeout_ns {
            out.push(self.slow(node, r.pid, r.tgid, r.kill_boot_ns));
        }
        out.push(VictimExit::new(
            "victim_exit",
            node,
            r.pid,
            r.tgid,
            r.kill_boot_ns,
            at,
        ));
        out
    }

    /// `victim_slow_exit` lines for the victims still alive `timeout` after their kill at
    /// `now_boot_ns`, each once.
    pub fn overdue(&mut self, now_boot_ns: u64, node: &str) -> Vec<VictimExit> {
        let timeout = self.timeout_ns;
        let mut due: Vec<(u32, Pending)> = self
            .pending
            .iter_mut()
            .filter(|(_, p)| !p.warned && now_boot_ns.saturating_sub(p.kill_boot_ns) >= timeout)
            .map(|(pid, p)| {
                p.warned = true;
                (*pid, *p)
            })
            .collect();
        due.sort_by_key(|(_, p)| p.kill_boot_ns);
        due.into_iter()
            .map(|(pid, p)| self.slow(node, pid, p.tgid, p.kill_boot_ns))
            .collect()
    }

    fn slow(&self, node: &str, pid: u32, tgid: u32, kill: u64) -> VictimExit {
        VictimExit::new(
            "victim_slow_exit",
            node,
            pid,
            tgid,
            kill,
            kill.saturating_add(self.timeout_ns),
        )
    }

    /// True while a victim may still become overdue (one waited for and not yet warned about):
    /// only then does the event loop look at the clock.
    pub fn watching(&self) -> bool {
        self.pending.values().any(|p| !p.warned)
    }

    /// Victims waited for now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomtrace_common::{RECORD_VERSION, RecordHeader, kind};

    fn exit(pid: u32, kill: u64, at: u64) -> ExitRecord {
        ExitRecord {
            header: RecordHeader {
                kind: kind::EXIT,
                version: RECORD_VERSION,
                size: u32::try_from(size_of::<ExitRecord>()).unwrap(),
                boot_ns: at,
            },
            pid,
            tgid: pid,
            kill_boot_ns: kill,
        }
    }

    #[test]
    fn a_quick_exit_is_one_line() {
        let mut t = ExitTracker::new(Duration::from_secs(10));
        t.killed(5, 5, 1_000_000);
        let l = t.exited(&exit(5, 1_000_000, 3_500_000), "n");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].kind, "victim_exit");
        assert!((l[0].after_ms - 2.5).abs() < 1e-9, "{}", l[0].after_ms);
        assert_eq!(t.pending(), 0);
        assert!(t.overdue(u64::MAX, "n").is_empty());
    }

    #[test]
    fn late_exits_warn_once_then_exit() {
        let s = 1_000_000_000;
        let mut t = ExitTracker::new(Duration::from_secs(10));
        t.killed(5, 5, s);
        t.killed(6, 6, 2 * s);
        assert!(t.overdue(10 * s, "n").is_empty(), "not yet 10 s");
        let w = t.overdue(11 * s, "n");
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].kind, w[0].pid, w[0].boot_ns),
            ("victim_slow_exit", 5, 11 * s)
        );
        assert!(
            t.overdue(20 * s, "n").iter().all(|w| w.pid == 6),
            "5 warned once"
        );
        // 5 exits after its warning: only the exit line.
        let l = t.exited(&exit(5, s, 30 * s), "n");
        assert_eq!(
            l.iter().map(|l| l.kind).collect::<Vec<_>>(),
            ["victim_exit"]
        );
        assert!((l[0].seconds() - 29.0).abs() < 1e-9);
        // An exit record later than the timeout, before any timer saw it: warning first.
        let mut t = ExitTracker::new(Duration::ZERO);
        t.killed(7, 7, s);
        let l = t.exited(&exit(7, s, s + 1_000), "n");
        assert_eq!(
            l.iter().map(|l| l.kind).collect::<Vec<_>>(),
            ["victim_slow_exit", "victim_exit"]
        );
        // An exit of a victim this daemon never saw killed: just the exit line.
        let l = t.exited(&exit(8, s, 50 * s), "n");
        assert_eq!(l.len(), 1);
    }
}
