//! Foundation: `oomtrace run` against real OOM kills in memory cgroups, checked against the
//! kernel's own "Killed process" line.

use std::time::Duration;

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, kmsg::Kmsg, require_root, unique};
use serde_json::Value;

const LIMIT: u64 = 64 << 20;
const KILL_TIMEOUT: Duration = Duration::from_mins(1);

/// One OOM kill of a hog with `args` in a fresh 64 MiB cgroup; checks the event against the
/// kernel's line and returns both.
fn kill_and_check(d: &mut Daemon, args: &[&str]) -> (Value, oomtrace_tests::kmsg::Killed) {
    let mut kmsg = Kmsg::open();
    let cg = MemCgroup::create(&unique("oomtrace-t"), Some(LIMIT));
    let mut hog = cg.spawn_hog(args);
    let pid = hog.pid();
    let died = hog.expect_oom_killed(KILL_TIMEOUT);
    let (arrived, ev) = d.victim(pid, Duration::from_secs(5));
    assert!(
        arrived <= died + Duration::from_secs(1),
        "event for {pid} arrived {:?} after the kill",
        arrived.saturating_duration_since(died)
    );
    let k = kmsg.killed(pid, Duration::from_secs(5));
    let v = &ev["victim"];
    assert_eq!(v["pid"], k.pid);
    assert_eq!(
        v["comm"].as_str().expect("comm"),
        String::from_utf8_lossy(&k.comm),
        "comm"
    );
    assert_eq!(v["anon_rss_kb"], k.anon_rss_kb, "anon_rss_kb");
    assert_eq!(v["file_rss_kb"], k.file_rss_kb, "file_rss_kb");
    assert_eq!(
        v["oom_score_adj"],
        k.oom_score_adj.expect("this kernel prints oom_score_adj"),
        "oom_score_adj"
    );
    assert_eq!(cg.oom_kills(), 1, "the cgroup's own oom_kill counter");
    // Exactly one event per victim: checked by the callers once the daemon has drained and
    // exited (`assert_each_victim_once`).
    (ev, k)
}

#[test]
fn oom_kill_matches_the_kernel_line() {
    if !require_root() {
        return;
    }
    // The classic tracepoint, the hook every kernel since 4.13 has.
    let mut d = Daemon::start(&["run", "--hooks", "victim=tracepoint"]);
    let (ev, k) = kill_and_check(&mut d, &[]);
    assert_eq!(ev["hook"], "tracepoint");
    assert_eq!(ev["kind"], "oom_kill");
    assert!(ev["time"].as_str().expect("time").ends_with('Z'));
    assert!(ev["boot_ns"].as_u64().expect("boot_ns") > 0);
    assert_eq!(ev["victim"]["total_vm_kb"], k.total_vm_kb);
    assert_eq!(ev["victim"]["shmem_rss_kb"], k.shmem_rss_kb);
    assert_eq!(ev["victim"]["uid"], k.uid.expect("uid"));
    assert_eq!(
        ev["victim"]["pgtables_kb"],
        k.pgtables_kb.expect("pgtables")
    );
    // The hog allocated the memory itself: it is its own trigger.
    assert_eq!(ev["trigger"]["pid"], k.pid);
    d.stop();
    d.assert_each_victim_once();
}

#[test]
fn oom_score_adj_500_and_1000() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["run"]);
    for adj in ["500", "1000"] {
        let (ev, _) = kill_and_check(&mut d, &["--adj", adj]);
        assert_eq!(ev["victim"]["oom_score_adj"].to_string(), adj);
    }
    d.stop();
    d.assert_each_victim_once();
}

#[test]
fn long_non_ascii_comm_stays_valid_utf8() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["run"]);
    // 15 bytes cut this inside the 8th 'é' (2 bytes each).
    let name = "ééééééééé-hog-name";
    let (ev, k) = kill_and_check(&mut d, &["--comm", name]);
    assert_eq!(k.comm, &name.as_bytes()[..15], "the kernel keeps 15 bytes");
    assert_eq!(ev["victim"]["comm"], "ééééééé\u{FFFD}");
    d.stop();
    d.assert_each_victim_once();
}

#[test]
fn five_kills_in_five_cgroups_in_order() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["run"]);
    let mut pids = Vec::new();
    for _ in 0..5 {
        let cg = MemCgroup::create(&unique("oomtrace-five"), Some(LIMIT));
        let mut hog = cg.spawn_hog(&[]);
        pids.push(hog.pid());
        hog.expect_oom_killed(KILL_TIMEOUT);
    }
    let ours = |v: &Value| pids.iter().any(|p| v["victim"]["pid"] == *p);
    d.wait_events(5, Duration::from_secs(5), ours);
    d.stop();
    let got: Vec<u64> = d
        .events(ours)
        .iter()
        .map(|(_, v)| v["victim"]["pid"].as_u64().expect("pid"))
        .collect();
    let want: Vec<u64> = pids.iter().map(|p| u64::from(*p)).collect();
    assert_eq!(got, want, "five events, in kill order, none duplicated");
}
