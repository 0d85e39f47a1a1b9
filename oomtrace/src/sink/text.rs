//! One text line per victim, for people: like the kernel's "Killed process" line, with the pod,
//! the container and the limit that was hit (docs/events.md, "Text lines").
//!
//! ```text
//! 2026-11-25T06:12:15Z OOM-KILL pid=2469 comm=python3 pod=shop/cart-7d9 container=cart rss=63.5MiB limit=64MiB (memcg /kubepods/...) score=1000 adj=0 trigger=2469
//! ```

use std::{fmt::Write as _, io::Write};

use super::{Sink, file::Out};
use crate::event::Event;

pub struct TextLines<W: Write + Send> {
    name: String,
    out: W,
    color: bool,
}

impl<W: Write + Send> TextLines<W> {
    /// `color`: highlight `OOM-KILL` with ANSI escapes (only for a terminal).
    pub fn new(name: impl Into<String>, out: W, color: bool) -> Self {
        Self {
            name: name.into(),
            out,
            color,
        }
    }
}

impl<W: Out> Sink for TextLines<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        self.out.reopen()
    }

    fn emit(&mut self, ev: &Event) -> std::io::Result<()> {
        let mut line = format_line(ev, self.color);
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        self.out.flush()
    }

    fn lost(&mut self, rec: &crate::event::Lost) -> std::io::Result<()> {
        let time = rec
            .time
            .split_once('.')
            .map_or(rec.time.as_str(), |(s, _)| s);
        let line = match &rec.sink {
            Some(sink) => format!(
                "{time}Z LOST {} OOM events (output {sink} stalled, its queue was full; {} since start)\n",
                rec.count, rec.total
            ),
            None => format!(
                "{time}Z LOST {} OOM records (ring buffer full; {} since start)\n",
                rec.count, rec.total
            ),
        };
        self.out.write_all(line.as_bytes())?;
        self.out.flush()
    }

    fn exit(&mut self, rec: &crate::exits::VictimExit) -> std::io::Result<()> {
        let mut line = exit_line(rec);
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        self.out.flush()
    }
}

const MIB: u64 = 1 << 20;

/// `63.5MiB`; whole numbers without a decimal (`64MiB`).
pub fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else {
        #[expect(clippy::cast_precision_loss, reason = "one decimal for people")]
        let m = bytes as f64 / MIB as f64;
        format!("{m:.1}MiB")
    }
}

/// A value as one token: quoted (Rust string syntax) when it has spaces, quotes or is empty.
fn token(s: &str) -> String {
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == '"' || c.is_control())
    {
        format!("{s:?}")
    } else {
        s.to_string()
    }
}

/// `2026-11-25T06:12:15.123456789Z` → `2026-11-25T06:12:15Z`.
fn seconds(time: &str) -> String {
    match time.split_once('.') {
        Some((s, _)) => format!("{s}Z"),
        None => time.to_string(),
    }
}

/// `2026-11-25T06:12:15Z VICTIM-EXIT pid=2469 after=2.5ms`, or `… VICTIM-SLOW-EXIT pid=2469 still
/// alive after=10000ms`.
pub fn exit_line(rec: &crate::exits::VictimExit) -> String {
    let what = if rec.kind == "victim_exit" {
        "VICTIM-EXIT"
    } else {
        "VICTIM-SLOW-EXIT"
    };
    let alive = if rec.kind == "victim_exit" {
        ""
    } else {
        " still alive"
    };
    format!(
        "{} {what} pid={}{alive} after={}ms",
        seconds(&rec.time),
        rec.pid,
        rec.after_ms
    )
}

/// The line, without its newline. Fields that are unknown are left out.
pub fn format_line(ev: &Event, color: bool) -> String {
    let v = &ev.victim;
    let mut l = seconds(&ev.time);
    l.push(' ');
    l.push_str(if color {
        "\x1b[1;31mOOM-KILL\x1b[0m"
    } else {
        "OOM-KILL"
    });
    let _ = write!(l, " pid={}", v.pid);
    if let Some(c) = &v.comm {
        let _ = write!(l, " comm={}", token(c));
    }
    if let Some(p) = super::pod_label(ev) {
        let _ = write!(l, " pod={}", token(&p));
    }
    if let Some(c) = super::container_label(ev) {
        let _ = write!(l, " container={}", token(&c));
    }
    if ev.owner.pod.is_none()
        && let Some(u) = &ev.owner.systemd_unit
    {
        let _ = write!(l, " unit={}", token(u));
    }
    if let (Some(a), Some(f), Some(s)) = (v.anon_rss_kb, v.file_rss_kb, v.shmem_rss_kb) {
        let _ = write!(
            l,
            " rss={}",
            mib(a.saturating_add(f).saturating_add(s).saturating_mul(1024))
        );
    }
    if let Some(lim) = &ev.limit {
        let _ = write!(l, " limit={}", mib(lim.bytes));
    }
    match &ev.oom {
        Some(oom) => match (oom.constraint, &oom.memcg) {
            (_, Some(Some(m))) => {
                let _ = write!(l, " (memcg {})", token(&m.path));
            }
            (Some("none"), _) | (_, Some(None)) => l.push_str(" (global)"),
            (Some(c), _) => {
                let _ = write!(l, " ({c})");
            }
            (None, None) => {}
        },
        // No context hook: the victim's own cgroup, not necessarily the OOM domain.
        None => {
            if let Some(cg) = &v.cgroup {
                let _ = write!(l, " (cgroup {})", token(&cg.path));
            }
        }
    }
    if let Some(s) = v.oom_score {
        let _ = write!(l, " score={s}");
    }
    if let Some(a) = v.oom_score_adj {
        let _ = write!(l, " adj={a}");
    }
    if let Some(t) = &ev.trigger {
        let _ = write!(l, " trigger={}", t.pid);
        if t.pid != v.pid && !t.comm.is_empty() {
            let _ = write!(l, "/{}", token(&t.comm));
        }
    }
    if ev.flags.group_kill {
        l.push_str(" group-kill");
    }
    if let Some(o) = ev.outcome {
        let _ = write!(l, " outcome={} ({})", o.name(), o.explain());
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::{Container, Pod};

    fn event() -> Event {
        let r = crate::decode::tests::victim(2469);
        let sys = crate::event::System {
            page_size: 4096,
            ram_pages: 1 << 20,
            swap_pages: 0,
        };
        Event::from_victim(
            &r,
            None,
            false,
            &sys,
            &crate::kernel::gfp::GfpTable::builtin(),
            "n",
        )
    }

    #[test]
    fn sizes() {
        assert_eq!(mib(64 << 20), "64MiB");
        assert_eq!(mib((63 << 20) + (1 << 19)), "63.5MiB");
        assert_eq!(mib(0), "0MiB");
    }

    #[test]
    fn line_with_pod_container_and_limit() {
        let mut ev = event();
        ev.time = "2026-11-25T06:12:15.710650134Z".into();
        ev.victim.comm = Some("python3".into());
        ev.victim.anon_rss_kb = Some(65024);
        ev.victim.file_rss_kb = Some(0);
        ev.victim.shmem_rss_kb = Some(0);
        ev.victim.oom_score_adj = Some(0);
        ev.victim.oom_score = Some(1000);
        ev.victim.cgroup = Some(crate::event::Cgroup {
            id: Some(1),
            path: "/kubepods/podx/abc".into(),
            truncated: false,
        });
        ev.trigger = Some(crate::event::Trigger {
            pid: 2469,
            tgid: 2469,
            comm: "python3".into(),
        });
        ev.owner.pod = Some(Pod {
            uid: "u".into(),
            qos: None,
            name: Some("cart-7d9".into()),
            namespace: Some("shop".into()),
        });
        ev.owner.container = Some(Container {
            id: "a".repeat(64),
            runtime: "containerd".into(),
            name: Some("cart".into()),
        });
        ev.limit = Some(crate::event::Limit {
            bytes: 64 << 20,
            usage_bytes: None,
            source: "cgroupfs",
            cgroup: "/kubepods/podx/abc".into(),
        });
        assert_eq!(
            format_line(&ev, false),
            "2026-11-25T06:12:15Z OOM-KILL pid=2469 comm=python3 pod=shop/cart-7d9 \
             container=cart rss=63.5MiB limit=64MiB (cgroup /kubepods/podx/abc) score=1000 \
             adj=0 trigger=2469"
        );
        assert!(format_line(&ev, true).contains("\x1b[1;31mOOM-KILL\x1b[0m"));
        ev.outcome = Some(crate::event::Outcome::ProcessOnly);
        assert!(
            format_line(&ev, false).ends_with(
                " trigger=2469 outcome=process_only (container keeps running; Kubernetes does \
                 not report this kill)"
            ),
            "{}",
            format_line(&ev, false)
        );
    }

    #[test]
    fn unknown_fields_are_left_out_and_odd_comms_quoted() {
        let mut ev = event();
        ev.victim.comm = Some("a b".into());
        let l = format_line(&ev, false);
        assert!(l.contains(" comm=\"a b\""), "{l}");
        assert!(!l.contains("limit="), "{l}");
        assert!(!l.contains("pod="), "{l}");
        assert!(!l.contains('\n'));
    }
}
