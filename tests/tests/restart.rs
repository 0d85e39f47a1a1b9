//! Restart without loss (issue 7): with pinning, kills that happen while no daemon runs wait in
//! the pinned ring and are delivered by the next daemon, flagged late, none twice; a second daemon
//! never shares the pins; `--no-pin` leaves nothing in bpffs; `oomtrace cleanup` removes pins,
//! and refuses to while a daemon holds them (issue 13) unless `--force`.

use std::{path::PathBuf, process::Command, time::Duration};

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, oomtrace_bin, require_root, unique};

/// A pin root of this test, removed (hooks detached) on drop.
struct Pins(PathBuf);

impl Pins {
    fn new() -> Self {
        Self(PathBuf::from(format!(
            "/sys/fs/bpf/{}",
            unique("oomtrace-test")
        )))
    }
    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = Command::new(oomtrace_bin())
            .args(["cleanup", "--force", "--pin-dir", self.arg()])
            .output();
    }
}

fn pin_sets(p: &Pins) -> Vec<PathBuf> {
    std::fs::read_dir(&p.0)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn kills_during_a_restart_are_delivered_late() {
    if !require_root() {
        return;
    }
    let pin_root = Pins::new();
    let mut first = Daemon::start(&["run", "--pin-dir", pin_root.arg()]);
    first.stop();
    let sets = pin_sets(&pin_root);
    assert_eq!(sets.len(), 1, "one pin set: {sets:?}");
    assert!(
        sets[0].join("events").exists() && sets[0].join("link-victim-tp_btf").exists(),
        "{sets:?}"
    );

    // No daemon runs: five kills.
    let cg = MemCgroup::create(&unique("oomtrace-restart"), Some(64 << 20));
    let pids: Vec<u32> = (0..5)
        .map(|_| {
            let mut h = cg.spawn_hog(&[]);
            let pid = h.pid();
            h.expect_oom_killed(Duration::from_mins(1));
            pid
        })
        .collect();

    let mut second = Daemon::start(&["run", "--pin-dir", pin_root.arg()]);
    assert!(
        second.stderr_text().contains("reusing the pinned hooks"),
        "{}",
        second.stderr_text()
    );
    let ours = |v: &serde_json::Value| pids.iter().any(|p| v["victim"]["pid"] == *p);
    second.wait_events(5, Duration::from_secs(5), ours);
    // A second daemon at the same time does not share the pins: it runs unpinned.
    let mut third = Daemon::start(&["run", "--pin-dir", pin_root.arg()]);
    assert!(
        third
            .stderr_text()
            .contains("another oomtrace holds the pins"),
        "{}",
        third.stderr_text()
    );
    third.stop();
    // A kill while the second daemon runs is not late.
    let mut h = cg.spawn_hog(&[]);
    let live = h.pid();
    h.expect_oom_killed(Duration::from_mins(1));
    let (_, v) = second.victim(live, Duration::from_secs(5));
    assert!(v.get("delivered_late").is_none(), "{v}");
    // Stopped, the daemon has drained its ring and all it wrote was read: now count.
    second.stop();
    second.assert_each_victim_once();
    let got = second.events(ours);
    assert_eq!(
        got.len(),
        5,
        "five events, none twice: {:?}",
        got.iter()
            .map(|(_, v)| &v["victim"]["pid"])
            .collect::<Vec<_>>()
    );
    for (_, v) in &got {
        assert_eq!(v["delivered_late"], true, "{v}");
        assert_eq!(v["victim"]["cgroup"]["path"], cg.path.as_str());
    }

    let out = Command::new(oomtrace_bin())
        .args(["cleanup", "--pin-dir", pin_root.arg()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 1 pin set"));
    assert!(!pin_root.0.exists(), "cleanup removes the pins");
}

#[test]
fn no_pin_leaves_nothing_in_bpffs() {
    if !require_root() {
        return;
    }
    let pin_root = Pins::new();
    let mut d = Daemon::start(&["run", "--no-pin", "--pin-dir", pin_root.arg()]);
    d.stop();
    assert!(!pin_root.0.exists(), "nothing pinned with --no-pin");
}

#[test]
fn cleanup_refuses_while_a_daemon_holds_the_pins() {
    if !require_root() {
        return;
    }
    let pin_root = Pins::new();
    let mut d = Daemon::start(&["run", "--pin-dir", pin_root.arg()]);
    let cleanup = |extra: &[&str]| {
        Command::new(oomtrace_bin())
            .arg("cleanup")
            .args(extra)
            .args(["--pin-dir", pin_root.arg()])
            .output()
            .expect("oomtrace cleanup")
    };
    let out = cleanup(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused: exit 1; stderr: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "one clear error line: {err}"
    );
    assert!(
        err.contains("running oomtrace holds the pins") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(pin_sets(&pin_root).len(), 1, "the pins are still there");

    // The daemon still reports the next kill.
    let cg = MemCgroup::create(&unique("oomtrace-cleanup"), Some(64 << 20));
    let mut h = cg.spawn_hog(&[]);
    let pid = h.pid();
    h.expect_oom_killed(Duration::from_mins(1));
    d.victim(pid, Duration::from_secs(5));

    // --force removes them anyway.
    let out = cleanup(&["--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!pin_root.0.exists(), "--force removes the pins");
    d.stop();
}
