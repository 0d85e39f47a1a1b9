//! A real loss (issue 7): a 4 KiB ring holds two victim records (~1.7 KiB each); with the
//! daemon paused (SIGSTOP) ten kills happen, so eight cannot be delivered. The daemon must say so
//! in the stream (`{"kind":"lost"}`), in its log and metrics, and the kernel's count must be fully explained by
//! delivered + lost. Alone in its binary: another test's kills would land in the same tiny ring.

use std::time::Duration;

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, prom, require_root, unique};

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_full_ring_is_reported_not_hidden() {
    if !require_root() {
        return;
    }
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let mut d = Daemon::start(&["run", "--ring-size", "4096", "--metrics-addr", &addr]);
    let cg = MemCgroup::create(&unique("oomtrace-loss"), Some(64 << 20));
    d.signal(libc::SIGSTOP);
    let mut pids = Vec::new();
    for _ in 0..10 {
        let mut hog = cg.spawn_hog(&[]);
        pids.push(hog.pid());
        hog.expect_oom_killed(Duration::from_mins(1));
    }
    d.signal(libc::SIGCONT);
    let lost = d.wait_events(1, Duration::from_secs(5), |v| v["kind"] == "lost");
    let lost_count: u64 = lost[0].1["count"].as_u64().expect("count");
    assert!(
        d.stderr_text()
            .contains("records lost: the ring buffer was full"),
        "{}",
        d.stderr_text()
    );
    let (_, text) = prom::http_get(&addr, "/metrics", None);
    assert_eq!(
        metric(&text, "oomtrace_events_lost_total"),
        Some(f64::from(u32::try_from(lost_count).unwrap())),
        "{text}"
    );
    // Two scrapes: an unexplained difference is confirmed at the second look; there is none.
    let (_, text) = prom::http_get(&addr, "/metrics", None);
    assert_eq!(
        metric(&text, "oomtrace_unexplained_kernel_oom_kills_total"),
        Some(0.0),
        "{text}"
    );
    // Stopped, the daemon has drained its ring and all it wrote was read: now count.
    d.stop();
    d.assert_each_victim_once();
    let delivered = d
        .events(|v| pids.iter().any(|p| v["victim"]["pid"] == *p))
        .len();
    assert!(delivered < 10, "a 4 KiB ring cannot hold 10 records");
    let lost = d.events(|v| v["kind"] == "lost");
    assert_eq!(lost.len(), 1, "one lost record after the drain: {lost:?}");
    assert_eq!(lost[0].1["total"], lost_count);
    assert_eq!(
        delivered as u64 + lost_count,
        10,
        "delivered {delivered} + lost {lost_count}"
    );
}
