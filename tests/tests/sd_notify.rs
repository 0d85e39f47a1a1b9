//! systemd's notification protocol (issue 13, item 5), read from a real `NOTIFY_SOCKET`
//! datagram socket the test binds: `READY=1` (with the attached hooks in `STATUS=`) first,
//! `WATCHDOG=1` repeatedly at half of `WATCHDOG_USEC`, `STATUS=` with the counts after a kill,
//! `STOPPING=1` at the end; without `WATCHDOG_USEC`, no watchdog message and no timer wakeups.

use std::{
    os::unix::net::UnixDatagram,
    path::PathBuf,
    time::{Duration, Instant},
};

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, require_root, unique};

const LIMIT: u64 = 64 << 20;

/// A datagram socket standing in for systemd's notification socket.
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("binding the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        Self {
            sock,
            path,
            _dir: dir,
        }
    }

    fn env(&self) -> &str {
        self.path.to_str().expect("utf-8")
    }

    /// Every message received within `d`, each split into its lines.
    fn recv_for(&self, d: Duration) -> Vec<Vec<String>> {
        let until = Instant::now() + d;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                out.push(m.lines().map(str::to_string).collect());
            }
        }
        out
    }
}

fn has(m: &[String], line: &str) -> bool {
    m.iter().any(|l| l == line)
}

fn status(m: &[String]) -> Option<&str> {
    m.iter().find_map(|l| l.strip_prefix("STATUS="))
}

/// "… N kills delivered …" / "1 kill delivered": N.
fn delivered(status: &str) -> Option<u64> {
    let (head, _) = status.split_once(" delivered")?;
    head.rsplit(' ').nth(1)?.parse().ok()
}

#[test]
fn ready_status_and_watchdog_in_order() {
    if !require_root() {
        return;
    }
    let ns = NotifySocket::bind();
    let mut d = Daemon::start_env(
        &[("NOTIFY_SOCKET", ns.env()), ("WATCHDOG_USEC", "200000")],
        &["run", "--hooks", "victim=tp_btf,context=none"],
    );
    let msgs = ns.recv_for(Duration::from_millis(1200));
    let first = msgs.first().expect("a notification");
    assert!(has(first, "READY=1"), "READY=1 comes first: {msgs:?}");
    let st = status(first).expect("STATUS= with READY=1");
    assert!(
        st.starts_with("attached victim=tp_btf context=none"),
        "the hooks are attached when READY=1 is sent: {st}"
    );
    // WATCHDOG_USEC 200 ms: every 100 ms.
    let dogs = msgs.iter().filter(|m| has(m, "WATCHDOG=1")).count();
    assert!(
        (6..=16).contains(&dogs),
        "{dogs} WATCHDOG=1 in 1.2 s: {msgs:?}"
    );

    let cg = MemCgroup::create(&unique("oomtrace-notify"), Some(LIMIT));
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(Duration::from_mins(1));
    d.victim(pid, Duration::from_secs(5));
    let msgs = ns.recv_for(Duration::from_millis(500));
    let counted = msgs
        .iter()
        .filter_map(|m| status(m))
        .filter_map(delivered)
        .max();
    assert!(
        counted.is_some_and(|n| n >= 1),
        "STATUS= counts the kill: {msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| has(m, "WATCHDOG=1")),
        "the watchdog goes on: {msgs:?}"
    );
    d.stop();
    let msgs = ns.recv_for(Duration::from_millis(300));
    assert!(
        msgs.iter().any(|m| has(m, "STOPPING=1")),
        "STOPPING=1 on SIGTERM: {msgs:?}"
    );
}

/// Voluntary context switches of the daemon's main thread (the drain loop).
fn wakeups(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

#[test]
fn without_a_watchdog_the_idle_loop_does_not_wake() {
    if !require_root() {
        return;
    }
    let ns = NotifySocket::bind();
    let mut d = Daemon::start_env(&[("NOTIFY_SOCKET", ns.env())], &["run"]);
    let first = ns.recv_for(Duration::from_millis(300));
    assert!(
        first.first().is_some_and(|m| has(m, "READY=1")),
        "{first:?}"
    );
    // Kills elsewhere on the node (other tests) wake it legitimately: judge a quiet window (no
    // event in it), trying up to five.
    let mut judged = None;
    for _ in 0..5 {
        let seen = d.events(|_| true).len();
        let before = wakeups(d.pid());
        let msgs = ns.recv_for(Duration::from_secs(2));
        let after = wakeups(d.pid());
        assert!(
            !msgs.iter().any(|m| has(m, "WATCHDOG=1")),
            "no WATCHDOG_USEC, no WATCHDOG=1: {msgs:?}"
        );
        d.settle(Duration::from_millis(100));
        if d.events(|_| true).len() == seen {
            judged = Some(after - before);
            break;
        }
    }
    let woke = judged.expect("no 2 s window without OOM kills on the node in five tries");
    assert_eq!(woke, 0, "the idle drain loop woke up {woke} times in 2 s");
    d.stop();
}
