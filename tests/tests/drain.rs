//! SIGTERM drains the ring (issue 7): records already in the ring when the daemon is told to
//! stop are written before it exits.

use std::time::Duration;

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, require_root, unique};

#[test]
fn sigterm_drains_what_is_in_the_ring() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["run"]);
    let cg = MemCgroup::create(&unique("oomtrace-drain"), Some(64 << 20));
    // The daemon is paused while four kills land in the ring, then told to stop before it
    // runs again: it must still write all four.
    d.signal(libc::SIGSTOP);
    let mut pids = Vec::new();
    for _ in 0..4 {
        let mut hog = cg.spawn_hog(&[]);
        pids.push(hog.pid());
        hog.expect_oom_killed(Duration::from_mins(1));
    }
    d.signal(libc::SIGTERM);
    d.signal(libc::SIGCONT);
    d.stop_signalled();
    let got = d.events(|v| pids.iter().any(|p| v["victim"]["pid"] == *p));
    assert_eq!(
        got.len(),
        4,
        "every record in the ring is written before exit"
    );
}
