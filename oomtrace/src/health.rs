//! What `/healthz` answers: 503 with a reason when no victim hook is attached, or when the
//! drain loop has been busy (away from waiting on the ring) for longer than the stall time.
//!
//! Idle is healthy: a node without OOM kills gives the loop nothing to do, and it waits. The
//! loop records when it wakes and when it goes back to waiting; "stalled" is having woken and
//! not come back within `stall_after` (stuck in a read of a hung file, a blocked lock, ...).
//! `/healthz` is served from its own thread, so it still answers while the loop is stuck.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// Default stall time (`metrics.healthz_stall`).
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);

/// How the victim hook is kept attached, and so how to see that it still is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VictimHold {
    /// This process holds the hook (an unpinned link, or the kernel log open): it stays
    /// attached as long as the daemon lives (raw_tracepoint and tracing links cannot be
    /// detached by `BPF_LINK_DETACH`).
    Process,
    /// Only the pin at `path` holds the link `id`: removing the pin (by hand, or `oomtrace
    /// cleanup --force`) detaches the hook.
    Pinned { path: PathBuf, id: u32 },
}

#[derive(Debug)]
pub struct Health {
    start: Instant,
    stall_after: Duration,
    /// Milliseconds since `start` (at least 1) when the loop last woke; 0 while it waits.
    busy_since: AtomicU64,
    victim: VictimHold,
}

impl Health {
    pub fn new(victim: VictimHold, stall_after: Duration) -> Self {
        Self {
            start: Instant::now(),
            stall_after,
            busy_since: AtomicU64::new(0),
            victim,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The drain loop woke (a ring record, a signal, a timer) and works.
    pub fn woke(&self) {
        self.busy_since
            .store(self.now_ms().max(1), Ordering::Relaxed);
    }

    /// The drain loop is back waiting.
    pub fn waiting(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }

    /// How long the loop has been busy without coming back to wait (zero while waiting).
    pub fn busy_for(&self) -> Duration {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            t => Duration::from_millis(self.now_ms().saturating_sub(t)),
        }
    }

    /// Ok, or why the daemon is not healthy.
    pub fn check(&self) -> Result<(), String> {
        if let VictimHold::Pinned { path, id } = &self.victim {
            match crate::pin::pinned_link_id(path) {
                Ok(found) if found == *id => {}
                Ok(found) => {
                    return Err(format!(
                        "victim hook detached: {} now holds link {found}, not this daemon's link {id}",
                        path.display()
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "victim hook detached: its pinned link is gone ({e})"
                    ));
                }
            }
        }
        let busy = self.busy_for();
        if busy > self.stall_after {
            return Err(format!(
                "drain stalled: busy for {:.1} s without coming back to the ring (stall time {:?})",
                busy.as_secs_f64(),
                self.stall_after
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_is_healthy_busy_too_long_is_not() {
        let h = Health::new(VictimHold::Process, Duration::from_millis(50));
        assert_eq!(h.check(), Ok(()));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(
            h.check(),
            Ok(()),
            "waiting (idle) for longer than the stall time"
        );
        h.woke();
        assert_eq!(h.check(), Ok(()));
        std::thread::sleep(Duration::from_millis(80));
        let e = h.check().unwrap_err();
        assert!(e.starts_with("drain stalled"), "{e}");
        h.waiting();
        assert_eq!(h.check(), Ok(()));
    }

    #[test]
    fn a_missing_pin_is_a_detached_hook() {
        let h = Health::new(
            VictimHold::Pinned {
                path: "/nonexistent/link-victim-tp_btf".into(),
                id: 7,
            },
            DEFAULT_STALL,
        );
        let e = h.check().unwrap_err();
        assert!(e.starts_with("victim hook detached"), "{e}");
    }
}
