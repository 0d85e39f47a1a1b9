//! The kernel-log source trusts kernel records only (issue 13, item 3). Lines written to
//! /dev/kmsg by a root process carry a userspace facility; with `--source kmsg` they must not
//! become events nor be joined to a real kill:
//! - a lone `Killed process 1 (systemd) …` line;
//! - `oom-kill:constraint=…,task_memcg=/kubepods/burstable/pod<uid>/…,pid=<victim>` summaries
//!   that would attribute the next real victim to a pod, written again and again while it is
//!   killed (so some land between the kernel's own summary and its `Killed process` line), and
//!   a forged `Killed process <victim>` line after it.
//!
//! The real kill still gives exactly one event, with its own cgroup, and the forged records are
//! counted in `oomtrace_kmsg_untrusted_records_total`.

use std::{
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, prom, require_root, unique};

/// Writes one record to /dev/kmsg. A fresh open each time: the kernel rate-limits each opened
/// file to 10 records per 5 s (printk_devkmsg=ratelimit).
fn forge(line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .expect("opening /dev/kmsg for writing");
    // With its newline: a record without one stays open (unreadable) until the next one.
    f.write_all(format!("{line}\n").as_bytes())
        .expect("writing /dev/kmsg");
}

fn untrusted(addr: &str) -> u64 {
    let (_, text) = prom::http_get(addr, "/metrics", None);
    text.lines()
        .find_map(|l| l.strip_prefix("oomtrace_kmsg_untrusted_records_total "))
        .and_then(|v| v.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no oomtrace_kmsg_untrusted_records_total in:\n{text}"))
}

#[test]
fn forged_kernel_log_lines_are_not_events() {
    if !require_root() {
        return;
    }
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let mut d = Daemon::start(&["run", "--source", "kmsg", "--metrics-addr", &addr]);
    let cg = MemCgroup::create(&unique("oomtrace-forged"), Some(64 << 20));
    let before = untrusted(&addr);

    // Shape 1: a lone kill line.
    forge(
        "<3>Memory cgroup out of memory: Killed process 1 (systemd) total-vm:169084kB, anon-rss:11000kB, file-rss:9000kB, shmem-rss:0kB, UID:0 pgtables:96kB oom_score_adj:0",
    );
    let written = Arc::new(AtomicU64::new(1));

    // Shape 2: summaries that would put the next real victim in a pod, while it is killed.
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    let uid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    let summary = format!(
        "<4>oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/pod{uid},task_memcg=/kubepods/burstable/pod{uid}/0123456789ab,task=oomtrace-hog,pid={pid},uid=0"
    );
    let done = Arc::new(AtomicBool::new(false));
    let spam = {
        let (done, written) = (done.clone(), written.clone());
        std::thread::spawn(move || {
            // At most 150 records (the log buffer is shared with other tests' referees).
            for _ in 0..150 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                forge(&summary);
                written.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    hog.expect_oom_killed(Duration::from_mins(1));
    done.store(true, Ordering::Relaxed);
    spam.join().expect("spam thread");
    // And a second, forged kill line for the same victim.
    forge(&format!(
        "<3>Memory cgroup out of memory: Killed process {pid} (oomtrace-hog) total-vm:310184kB, anon-rss:65408kB, file-rss:1796kB, shmem-rss:0kB, UID:0 pgtables:176kB oom_score_adj:0"
    ));
    written.fetch_add(1, Ordering::Relaxed);

    let (_, ev) = d.victim(pid, Duration::from_secs(10));
    d.settle(Duration::from_secs(1));
    let written = written.load(Ordering::Relaxed);
    let counted = untrusted(&addr) - before;
    d.stop();

    assert!(
        d.events(|v| v["victim"]["pid"] == 1).is_empty(),
        "a forged kill line became an event"
    );
    assert_eq!(
        d.events(|v| v["victim"]["pid"] == pid).len(),
        1,
        "the real kill is one event, the forged line for it none"
    );
    assert!(
        ev.get("pod").is_none(),
        "attributed to the forged pod: {ev}"
    );
    // The kernel's own summary can be rate-limited away (10 per 5 s, shared with other
    // tests): then there is no cgroup, never the forged one.
    let path = ev["victim"]["cgroup"]["path"].as_str();
    assert!(
        path.is_none_or(|p| p == cg.path),
        "the victim's cgroup is {path:?}, not {}",
        cg.path
    );
    assert!(
        counted >= written,
        "{written} forged records written, {counted} counted as untrusted"
    );
    eprintln!("{written} forged records written, {counted} counted; the real kill: {path:?}");
}
