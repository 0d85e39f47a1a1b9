//! Nothing lost under a storm (issue 7): 200 real OOM kills across 20 memory cgroups, 10 hogs at
//! a time → exactly 200 victim events, none twice, nothing lost, and the kernel's own counters
//! agree. Alone in its own test binary: it compares the node-wide /proc/vmstat count, which
//! other tests' kills would move.

use std::{collections::HashSet, time::Duration};

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, prom, require_root, unique};
use serde_json::Value;

const LIMIT: u64 = 64 << 20;
const CGROUPS: usize = 20;
const KILLS: usize = 200;
const AT_ONCE: usize = 10;

fn vmstat_oom_kill() -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .expect("reading /proc/vmstat")
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .expect("oom_kill in /proc/vmstat")
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn storm_of_200_kills_loses_nothing() {
    if !require_root() {
        return;
    }
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let mut d = Daemon::start(&["run", "--metrics-addr", &addr]);
    let cgroups: Vec<MemCgroup> = (0..CGROUPS)
        .map(|_| MemCgroup::create(&unique("oomtrace-storm"), Some(LIMIT)))
        .collect();
    let before = vmstat_oom_kill();
    let started = std::time::Instant::now();
    let mut pids = Vec::with_capacity(KILLS);
    for wave in 0..KILLS / AT_ONCE {
        let mut hogs: Vec<_> = (0..AT_ONCE)
            .map(|i| cgroups[(wave * AT_ONCE + i) % CGROUPS].spawn_hog(&[]))
            .collect();
        for h in &mut hogs {
            pids.push(h.pid());
            h.expect_oom_killed(Duration::from_mins(1));
        }
    }
    let kill_time = started.elapsed();
    let ours: HashSet<u32> = pids.iter().copied().collect();
    assert_eq!(ours.len(), KILLS, "pids are unique");
    let is_ours = |v: &Value| {
        v["victim"]["pid"]
            .as_u64()
            .is_some_and(|p| ours.contains(&u32::try_from(p).unwrap()))
    };
    d.wait_events(KILLS, Duration::from_secs(10), is_ours);
    // The kernel's own counts: node-wide and per cgroup.
    let kernel = vmstat_oom_kill() - before;
    let per_cgroup: u64 = cgroups.iter().map(MemCgroup::oom_kills).sum();
    assert_eq!(
        per_cgroup, KILLS as u64,
        "the cgroups' own oom_kill counters"
    );
    assert_eq!(
        kernel, KILLS as u64,
        "/proc/vmstat oom_kill delta (another process OOM-killed meanwhile?)"
    );

    let (status, text) = prom::http_get(&addr, "/metrics", None);
    assert_eq!(status, 200);
    assert_eq!(
        metric(&text, "oomtrace_events_lost_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "oomtrace_unexplained_kernel_oom_kills_total"),
        Some(0.0),
        "{text}"
    );
    assert!(
        !d.stderr_text().contains("have no event"),
        "no unexplained kills, node-wide or per cgroup"
    );
    eprintln!("storm: {KILLS} kills in {kill_time:?}");
    // Stopped, the daemon has drained its ring and all it wrote was read: now count.
    d.stop();
    let events = d.events(is_ours);
    let seen: HashSet<u64> = events
        .iter()
        .map(|(_, v)| v["victim"]["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(
        events.len(),
        KILLS,
        "exactly {KILLS} victim events ({} distinct)",
        seen.len()
    );
    assert_eq!(seen.len(), KILLS, "no duplicates");
    assert!(
        d.events(|v| v["kind"] == "lost").is_empty(),
        "no lost records"
    );
}
