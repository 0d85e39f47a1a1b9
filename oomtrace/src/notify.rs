//! systemd's notification protocol (`Type=notify`), through the `sd-notify` crate: `READY=1`
//! once every hook is attached and pinned, `STATUS=` with the hooks and the counts whenever they
//! change, and `WATCHDOG=1` from the drain loop at half of `WATCHDOG_USEC` when systemd asks for
//! a watchdog (`WatchdogSec=`): a drain loop that is stuck stops sending it, and systemd
//! restarts the daemon. Without `NOTIFY_SOCKET` every call does nothing; without
//! `WATCHDOG_USEC` the loop never wakes on a timer.

use std::time::Duration;

use sd_notify::NotifyState;

pub struct Systemd {
    /// False for `oomtrace trace`.
    enabled: bool,
    /// The hooks, as in the `ready` line.
    hooks: String,
    /// Interval of `WATCHDOG=1`: half of `WATCHDOG_USEC`.
    watchdog: Option<Duration>,
    last: Option<(u64, u64)>,
}

impl Systemd {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`, which must be this process when set).
    pub fn from_env(hooks: &str) -> Self {
        let watchdog = sd_notify::watchdog_enabled()
            .filter(|d| !d.is_zero())
            .map(|d| d / 2);
        Self {
            enabled: true,
            hooks: hooks.to_string(),
            watchdog,
            last: None,
        }
    }

    /// Sends nothing (`oomtrace trace`: not a service).
    pub fn off() -> Self {
        Self {
            enabled: false,
            hooks: String::new(),
            watchdog: None,
            last: None,
        }
    }

    /// How often the drain loop must send `WATCHDOG=1` (None: no watchdog, no timer).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn status_line(&self, delivered: u64, lost: u64) -> String {
        let s = |n: u64| if n == 1 { "" } else { "s" };
        format!(
            "attached {}; {delivered} kill{} delivered, {lost} lost",
            self.hooks,
            s(delivered)
        )
    }

    fn send(states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            log::warn!("sd_notify: {e}");
        }
    }

    /// `READY=1` and the first `STATUS=`.
    pub fn ready(&mut self) {
        if !self.enabled {
            return;
        }
        self.last = Some((0, 0));
        let status = self.status_line(0, 0);
        Self::send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    /// `STATUS=` when the counts changed since the last one.
    pub fn counts(&mut self, delivered: u64, lost: u64) {
        if !self.enabled || self.last == Some((delivered, lost)) {
            return;
        }
        self.last = Some((delivered, lost));
        let status = self.status_line(delivered, lost);
        Self::send(&[NotifyState::Status(&status)]);
    }

    /// `WATCHDOG=1`.
    pub fn alive(&self) {
        if self.enabled && self.watchdog.is_some() {
            Self::send(&[NotifyState::Watchdog]);
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        if self.enabled {
            Self::send(&[NotifyState::Stopping]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_hooks_and_counts() {
        let s = Systemd {
            enabled: true,
            hooks: "victim=tp_btf context=none".into(),
            watchdog: None,
            last: None,
        };
        assert_eq!(
            s.status_line(1, 0),
            "attached victim=tp_btf context=none; 1 kill delivered, 0 lost"
        );
        assert_eq!(
            s.status_line(3, 2),
            "attached victim=tp_btf context=none; 3 kills delivered, 2 lost"
        );
        assert!(Systemd::off().watchdog_interval().is_none());
    }
}
