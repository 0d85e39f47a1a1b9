//! Sources and privileges (issue 7): the kernel-log source agrees with BPF on the same real kill;
//! the daemon traces with only CAP_BPF + CAP_PERFMON; without CAP_BPF it falls back to the kernel
//! log and says so.

use std::time::Duration;

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, node_mounts, require_root, unique};
use serde_json::Value;

const LIMIT: u64 = 64 << 20;

/// CapEff of a process, as a bit set.
fn cap_eff(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff");
    u64::from_str_radix(hex.trim(), 16).expect("hex")
}

const CAP_PERFMON: u64 = 1 << 38;
const CAP_BPF: u64 = 1 << 39;
const CAP_SYSLOG: u64 = 1 << 34;

/// `setpriv` keeping only these capabilities (inheritable, ambient and bounding sets), uid 0. Such a
/// daemon cannot mount tracefs or bpffs: the node's mounts are made first, as systemd has them.
fn setpriv(caps: &str) -> Vec<String> {
    node_mounts();
    vec![
        "setpriv".into(),
        format!("--inh-caps=-all,{caps}"),
        format!("--ambient-caps=-all,{caps}"),
        format!("--bounding-set=-all,{caps}"),
        "--".into(),
    ]
}

fn kill_one(tag: &str) -> (u32, MemCgroup) {
    let cg = MemCgroup::create(&unique(tag), Some(LIMIT));
    let mut hog = cg.spawn_hog(&["--adj", "300"]);
    let pid = hog.pid();
    hog.expect_oom_killed(Duration::from_mins(1));
    (pid, cg)
}

fn rss(v: &Value) -> [u64; 3] {
    ["anon_rss_kb", "file_rss_kb", "shmem_rss_kb"].map(|k| v["victim"][k].as_u64().expect(k))
}

#[test]
fn kmsg_and_bpf_agree_on_the_same_kill() {
    if !require_root() {
        return;
    }
    let mut bpf = Daemon::start(&["run", "--source", "bpf"]);
    let mut kmsg = Daemon::start(&["run", "--source", "kmsg"]);
    // The kernel prints an OOM's header and summary (the cgroup paths) at most 10 times per 5 s
    // (dump_header's ratelimit); the tests before this one kill often. Start a fresh window.
    std::thread::sleep(Duration::from_millis(5500));
    let (pid, cg) = kill_one("oomtrace-kmsg");
    let (_, b) = bpf.victim(pid, Duration::from_secs(5));
    let (_, k) = kmsg.victim(pid, Duration::from_secs(5));
    assert_eq!(k["hook"], "kmsg");
    assert_eq!(b["hook"], "tp_btf");
    for f in [
        "pid",
        "comm",
        "oom_score_adj",
        "uid",
        "pgtables_kb",
        "total_vm_kb",
    ] {
        assert_eq!(k["victim"][f], b["victim"][f], "victim.{f}");
    }
    assert_eq!(rss(&k), rss(&b), "RSS");
    assert_eq!(k["victim"]["cgroup"]["path"], cg.path.as_str());
    assert_eq!(b["victim"]["cgroup"]["path"], cg.path.as_str());
    assert_eq!(k["oom"]["constraint"], "memcg", "from the summary line");
    assert_eq!(k["oom"]["memcg"]["path"], cg.path.as_str());
    bpf.stop();
    kmsg.stop();
}

#[test]
fn traces_with_only_cap_bpf_and_cap_perfmon() {
    if !require_root() {
        return;
    }
    let wrap = setpriv("+bpf,+perfmon");
    let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
    let mut d = Daemon::start_wrapped(&wrap, &["run"]);
    assert_eq!(
        cap_eff(d.pid()),
        CAP_BPF | CAP_PERFMON,
        "the daemon holds exactly CAP_BPF + CAP_PERFMON"
    );
    let (pid, _cg) = kill_one("oomtrace-lp");
    let (_, ev) = d.victim(pid, Duration::from_secs(5));
    assert_eq!(ev["hook"], "tp_btf");
    assert_eq!(ev["victim"]["oom_score_adj"], 300);
    d.stop();
}

/// A hook forced with --hooks that this kernel refuses is an error: never the kernel log, which
/// is only for a machine where BPF cannot be used at all. The hook is one `oomtrace check` says
/// is unavailable here (on the CI host: the context hooks; no kprobes, fentry refused).
#[test]
fn forced_hooks_that_cannot_attach_are_an_error_not_the_kernel_log() {
    if !require_root() {
        return;
    }
    let (st, out, err) =
        oomtrace_tests::daemon::run_to_exit(&["check", "--json"], &[], Duration::from_mins(1));
    assert!(st.success(), "oomtrace check: {st}: {err}");
    let check: Value = serde_json::from_str(&out).expect("check --json");
    let refused = check["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .find(|a| a.get("error").is_some())
        .unwrap_or_else(|| panic!("no hook is refused on this kernel: {check:#}"));
    let force = format!(
        "{}={}",
        refused["role"].as_str().unwrap(),
        refused["hook"].as_str().unwrap()
    );
    let (st, _, err) = oomtrace_tests::daemon::run_to_exit(
        &["run", "--no-pin", "--hooks", &force],
        &[],
        Duration::from_mins(1),
    );
    assert!(!st.success(), "run --hooks {force} started: {err}");
    assert!(
        err.contains("cannot be attached")
            && !err.contains("BPF cannot be used")
            && !err.contains("source=kmsg"),
        "run --hooks {force}: {err}"
    );
}

#[test]
fn without_cap_bpf_it_falls_back_to_the_kernel_log() {
    if !require_root() {
        return;
    }
    let wrap = setpriv("+perfmon,+syslog");
    let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
    let mut d = Daemon::start_wrapped(&wrap, &["run"]);
    assert_eq!(cap_eff(d.pid()), CAP_PERFMON | CAP_SYSLOG);
    assert!(
        d.stderr_text().contains("falling back to the kernel log"),
        "{}",
        d.stderr_text()
    );
    let (pid, _cg) = kill_one("oomtrace-nobpf");
    let (_, ev) = d.victim(pid, Duration::from_secs(5));
    assert_eq!(ev["hook"], "kmsg");
    assert_eq!(ev["victim"]["oom_score_adj"], 300);
    d.stop();
}
