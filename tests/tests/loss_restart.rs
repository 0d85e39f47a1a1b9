//! Losses across a pinned restart (issue 13): a 4 KiB ring overflows while the first daemon is
//! paused and again while no daemon runs. Over both runs every kill is either delivered or
//! counted lost, exactly once: the second daemon reports only the losses of the downtime, not the
//! first daemon's again, and does not take pre-start kills as explaining new ones. Alone in its
//! binary: another test's kills would land in the same tiny ring.

use std::{path::PathBuf, process::Command, time::Duration};

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, oomtrace_bin, prom, require_root, unique};
use serde_json::Value;

fn kills(cg: &MemCgroup, n: usize) -> Vec<u32> {
    (0..n)
        .map(|_| {
            let mut hog = cg.spawn_hog(&[]);
            let pid = hog.pid();
            hog.expect_oom_killed(Duration::from_mins(1));
            pid
        })
        .collect()
}

fn lost_sum(d: &Daemon) -> u64 {
    d.events(|v| v["kind"] == "lost")
        .iter()
        .map(|(_, v)| v["count"].as_u64().expect("count"))
        .sum()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = Command::new(oomtrace_bin())
            .args(["cleanup", "--force", "--pin-dir"])
            .arg(&self.0)
            .output();
        let _ = Command::new(oomtrace_bin())
            .args(["cleanup", "--pin-dir"])
            .arg(&self.0)
            .output();
    }
}

#[test]
fn losses_are_reported_once_across_a_pinned_restart() {
    if !require_root() {
        return;
    }
    let pin_root = Pins(PathBuf::from(format!(
        "/sys/fs/bpf/{}",
        unique("oomtrace-lossrestart")
    )));
    let pin = pin_root.0.to_str().unwrap().to_owned();
    let cg = MemCgroup::create(&unique("oomtrace-lossrestart"), Some(64 << 20));
    let ours = |pids: &[u32], v: &Value| pids.iter().any(|p| v["victim"]["pid"] == *p);

    // Run 1: paused while 10 kills overflow the ring.
    let mut first = Daemon::start(&["run", "--ring-size", "4096", "--pin-dir", &pin]);
    first.signal(libc::SIGSTOP);
    let mut pids = kills(&cg, 10);
    first.signal(libc::SIGCONT);
    first.wait_events(1, Duration::from_secs(5), |v| v["kind"] == "lost");
    first.stop();
    let lost1 = lost_sum(&first);
    let delivered1 = first.events(|v| ours(&pids, v)).len() as u64;
    assert!(lost1 > 0, "a 4 KiB ring cannot hold 10 records");

    // Down: 10 more kills, most of them lost in the pinned ring.
    pids.extend(kills(&cg, 10));

    // Run 2: reuses the pins, delivers what waited, reports the downtime's losses once.
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let mut second = Daemon::start(&[
        "run",
        "--ring-size",
        "4096",
        "--pin-dir",
        &pin,
        "--metrics-addr",
        &addr,
    ]);
    assert!(
        second.stderr_text().contains("reusing the pinned hooks"),
        "{}",
        second.stderr_text()
    );
    second.wait_events(1, Duration::from_secs(5), |v| v["kind"] == "lost");
    // Two scrapes: an unexplained kill would be confirmed by the second look.
    for _ in 0..3 {
        let _ = prom::http_get(&addr, "/metrics", None);
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, text) = prom::http_get(&addr, "/metrics", None);
    assert_eq!(
        metric(&text, "oomtrace_unexplained_kernel_oom_kills_total"),
        Some(0.0),
        "pre-start kills and losses are not taken as explaining, nor as missing:\n{text}"
    );
    second.stop();
    first.assert_each_victim_once();
    second.assert_each_victim_once();
    let lost2 = lost_sum(&second);
    let delivered2 = second.events(|v| ours(&pids, v)).len() as u64;
    let late = second
        .events(|v| ours(&pids, v) && v["delivered_late"] == true)
        .len() as u64;
    assert_eq!(
        late, delivered2,
        "everything run 2 delivered was killed before it started"
    );
    for (_, v) in first.events(|v| ours(&pids, v)) {
        assert!(
            second
                .events(|w| w["victim"]["pid"] == v["victim"]["pid"])
                .is_empty(),
            "delivered twice: {v}"
        );
    }
    assert_eq!(
        delivered1 + delivered2 + lost1 + lost2,
        20,
        "run 1: {delivered1} delivered + {lost1} lost; run 2: {delivered2} + {lost2}"
    );
    // The cumulative total of the second run's lost line counts both runs' losses once.
    let last = second.events(|v| v["kind"] == "lost");
    assert_eq!(last.last().unwrap().1["total"], lost1 + lost2);
}
