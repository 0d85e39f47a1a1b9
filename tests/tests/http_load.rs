//! The metrics port under load (issue 13, item 9): 5,000 idle connections held open to
//! `--metrics-addr` (loopback only, one bounded loop). Kills are still delivered, `/metrics` is
//! still served while they are held (the daemon closes the oldest idle connection to make room),
//! the excess is refused and counted, and once they close the daemon's resident size (VmRSS) is
//! within 2 MiB of what it was before.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, prom, require_root, unique};

const IDLE: usize = 5000;
/// The daemon's cap (oomtrace/src/http.rs MAX_CONNECTIONS).
const CAP: u64 = 64;

/// Raises our RLIMIT_NOFILE soft limit to what `IDLE` connections need, within the hard limit
/// (no CAP_SYS_RESOURCE here). Returns the soft limit now set.
fn raise_nofile(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut r), 0);
        r.rlim_cur = want.min(r.rlim_max).max(r.rlim_cur);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &raw const r), 0);
    }
    r.rlim_cur
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `GET /metrics`: the body when answered with 200, None when refused or cut.
fn try_metrics(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

fn kill_one(d: &mut Daemon, cg: &MemCgroup) {
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(Duration::from_mins(1));
    d.victim(pid, Duration::from_secs(10));
}

#[test]
fn idle_connections_are_capped_and_memory_comes_back() {
    if !require_root() {
        return;
    }
    let limit = raise_nofile(IDLE as u64 + 256);
    assert!(
        limit >= IDLE as u64 + 64,
        "RLIMIT_NOFILE hard limit {limit} is too low for {IDLE} connections"
    );
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let mut d = Daemon::start(&["run", "--metrics-addr", &addr]);
    let cg = MemCgroup::create(&unique("oomtrace-http"), Some(64 << 20));
    // Warm up what a kill and a scrape allocate, then take the daemon's size.
    kill_one(&mut d, &cg);
    try_metrics(&addr).expect("/metrics before the load");
    std::thread::sleep(Duration::from_millis(300));
    let rss_start = vm_rss_kib(d.pid());

    let t = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let c =
            TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connection {i} of {IDLE}: {e}"));
        idle.push(c);
    }
    let connected_in = t.elapsed();
    let rss_loaded = vm_rss_kib(d.pid());

    // Kills are still delivered while the connections are held.
    kill_one(&mut d, &cg);
    // /metrics is answered while they are held, at the first try.
    let text = try_metrics(&addr).expect("/metrics served while the idle connections are held");
    let served_after = t.elapsed();
    let refused = counter(&text, "oomtrace_http_connections_refused_total");
    // Each connection past the cap closed one (the oldest idle), the scrape too; a few fewer
    // when idle ones timed out (5 s) and freed their slot first.
    assert!(
        refused >= IDLE as u64 * 9 / 10 && refused <= IDLE as u64 - CAP + 1,
        "{refused} connections refused of {IDLE} (cap {CAP})"
    );

    drop(idle);
    std::thread::sleep(Duration::from_secs(2));
    let rss_end = vm_rss_kib(d.pid());
    eprintln!(
        "{IDLE} idle connections (made in {connected_in:?}): {refused} refused, /metrics served after {served_after:?}; VmRSS {rss_start} KiB before, {rss_loaded} KiB under load, {rss_end} KiB after"
    );
    assert!(
        rss_end <= rss_start + 2048,
        "VmRSS {rss_start} KiB before, {rss_end} KiB after the connections closed"
    );
    // Still serving and tracing afterwards.
    kill_one(&mut d, &cg);
    try_metrics(&addr).expect("/metrics after the load");
    d.stop();
}
