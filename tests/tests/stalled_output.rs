//! A stalled output does not stall the ring (issue 13, item 2): stdout is a pipe of one page
//! (F_SETPIPE_SZ 4096: about three events fill it) that nobody reads for 10 s while real OOM
//! kills happen, with a ring of 4096 bytes (two or three kills). The drain goes on into the
//! output's queue: once the pipe is read, every kill is there and nothing was lost. With a queue
//! too small for the stall, the excess is dropped and counted: a `lost` line with cause
//! `sink_stalled` and `oomtrace_events_dropped_total{cause="sink_stalled"}`.

use std::{
    fs::File,
    io::{BufRead as _, BufReader},
    os::fd::{FromRawFd as _, OwnedFd},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use oomtrace_tests::{cgroup::MemCgroup, oomtrace_bin, prom, require_root, unique};
use serde_json::Value;

const STALL: Duration = Duration::from_secs(10);

/// A pipe whose buffer is one page: (read end, write end).
fn small_pipe() -> (File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: F_SETPIPE_SZ on our own pipe.
    let size = unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 4096) };
    assert_eq!(size, 4096, "F_SETPIPE_SZ");
    // SAFETY: the fds were just created and are owned by nobody else.
    unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// `oomtrace run <args>` with stdout into `out`; returns once it printed `ready`.
fn start(args: &[&str], out: OwnedFd) -> Child {
    let mut child = Command::new(oomtrace_bin())
        .arg("run")
        .args(args)
        .env("OOMTRACE_NO_PIN", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning oomtrace");
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if l.starts_with("ready") {
                let _ = tx.send(());
            }
            eprintln!("[oomtrace] {l}");
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("oomtrace printed `ready`");
    child
}

/// OOM-kills `n` hogs in `cg`, then waits until `STALL` has passed since `from`.
fn kills(cg: &MemCgroup, n: usize, from: Instant) -> Vec<u64> {
    let pids = (0..n)
        .map(|_| {
            let mut hog = cg.spawn_hog(&[]);
            let pid = hog.pid();
            hog.expect_oom_killed(Duration::from_mins(1));
            u64::from(pid)
        })
        .collect();
    std::thread::sleep(STALL.saturating_sub(from.elapsed()));
    pids
}

/// Reads JSON lines from `r` on a thread; the receiver gets them as they come.
fn reader(r: File) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            let v = serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collects lines until `done` says so or `timeout`.
fn collect(
    rx: &mpsc::Receiver<Value>,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let until = Instant::now() + timeout;
    let mut got = Vec::new();
    while !done(&got) {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(v) => got.push(v),
            Err(_) => break,
        }
    }
    got
}

fn ours(lines: &[Value], pids: &[u64]) -> usize {
    lines
        .iter()
        .filter(|v| {
            v["kind"] == "oom_kill"
                && v["victim"]["pid"]
                    .as_u64()
                    .is_some_and(|p| pids.contains(&p))
        })
        .count()
}

fn stop(mut child: Child) {
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(i32::try_from(child.id()).expect("pid"), libc::SIGTERM) };
    let st = child.wait().expect("wait");
    assert!(st.success(), "oomtrace exited with {st:?} after SIGTERM");
}

#[test]
fn stdout_nobody_reads_for_10_s_loses_nothing() {
    if !require_root() {
        return;
    }
    let (r, w) = small_pipe();
    let child = start(&["--ring-size", "4096"], w);
    let cg = MemCgroup::create(&unique("oomtrace-stall"), Some(64 << 20));
    let pids = kills(&cg, 20, Instant::now());
    let rx = reader(r);
    let lines = collect(&rx, Duration::from_secs(30), |l| ours(l, &pids) >= 20);
    stop(child);
    let lost: Vec<_> = lines.iter().filter(|v| v["kind"] == "lost").collect();
    assert_eq!(
        (ours(&lines, &pids), lost.len()),
        (20, 0),
        "20 events and no loss after a 10 s stall; lost lines: {lost:?}"
    );
}

#[test]
fn a_queue_too_small_for_the_stall_drops_and_counts() {
    if !require_root() {
        return;
    }
    let (r, w) = small_pipe();
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let child = start(&["--queue-size", "2", "--metrics-addr", &addr], w);
    let cg = MemCgroup::create(&unique("oomtrace-stall-drop"), Some(64 << 20));
    let t = Instant::now();
    let pids = kills(&cg, 10, t);
    let dropped_metric = || -> u64 {
        let (_, text) = prom::http_get(&addr, "/metrics", None);
        text.lines()
            .find_map(|l| l.strip_prefix("oomtrace_events_dropped_total{cause=\"sink_stalled\"} "))
            .and_then(|v| v.split('.').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no dropped metric in:\n{text}"))
    };
    let during = dropped_metric();
    let rx = reader(r);
    // Until a lost line has come and our delivered kills plus the dropped count reach 10.
    let dropped = |l: &[Value]| -> u64 {
        l.iter()
            .filter(|v| v["kind"] == "lost" && v["cause"] == "sink_stalled")
            .filter_map(|v| v["count"].as_u64())
            .sum()
    };
    let lines = collect(&rx, Duration::from_secs(30), |l| {
        dropped(l) > 0 && ours(l, &pids) as u64 + dropped(l) >= 10
    });
    let after = dropped_metric();
    stop(child);
    let lost: Vec<_> = lines.iter().filter(|v| v["kind"] == "lost").collect();
    eprintln!(
        "queue of 2, 10 kills during the stall: {} written, {} dropped (metric {during} during, {after} after)",
        ours(&lines, &pids),
        dropped(&lines)
    );
    assert!(during > 0, "drops are counted while the output is stalled");
    assert_eq!(
        dropped(&lines),
        after,
        "the lost lines say what the metric counts: {lost:?}"
    );
    assert!(
        lost.iter()
            .all(|v| v["cause"] == "sink_stalled" && v["sink"] == "json:stdout"),
        "{lost:?}"
    );
    assert!(
        ours(&lines, &pids) as u64 + dropped(&lines) >= 10,
        "every kill written or counted as dropped: {} written, {} dropped",
        ours(&lines, &pids),
        dropped(&lines)
    );
}
