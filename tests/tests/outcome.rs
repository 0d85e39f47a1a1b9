//! Did the container die? (issue 15) Real OOM kills in memory cgroups, with the victim as pid 1 of
//! a new pid namespace (a container's init), as another process of such a namespace, or as a
//! plain host process. Expected values come from the kernel at test time: namespace levels from
//! /proc/self/status, the hog's namespace pid from the shell that forked it.

use std::time::Duration;

use oomtrace_tests::{
    cgroup::{MemCgroup, Mode},
    daemon::Daemon,
    pidns::{self, ShellInit},
    prom, require_root, unique,
};
use serde_json::Value;

const LIMIT: u64 = 64 << 20;
const KILL_TIMEOUT: Duration = Duration::from_mins(1);

/// The kill event of the victim in `cg` (found by its cgroup path: the victim's host pid is not
/// known to the test when it runs inside a namespace).
fn kill_in(d: &mut Daemon, cg: &MemCgroup) -> Value {
    let path = cg.path.clone();
    let got = d.wait_events(1, Duration::from_secs(10), |v| {
        v["kind"] == "oom_kill" && v["victim"]["cgroup"]["path"] == path.as_str()
    });
    let Some((_, ev)) = got.into_iter().next() else {
        panic!(
            "no oom_kill event in {path} (kernel counted {} kills there); stdout: {:?}",
            cg.oom_kills(),
            d.seen
        )
    };
    ev
}

#[test]
fn hog_as_pid_1_of_a_pid_namespace() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["run"]);
    let cg = MemCgroup::create(&unique("oomtrace-pidns-init"), Some(LIMIT));
    let mut ns = pidns::hog_as_init(&cg, &[]);
    // unshare 2.38 reports its child's SIGKILL oddly (exit 1): only wait for it to end.
    let _ = ns.wait(KILL_TIMEOUT);
    assert_eq!(
        cg.oom_kills(),
        1,
        "the kernel killed one task in {}",
        cg.path
    );
    let ev = kill_in(&mut d, &cg);
    assert_eq!(ev["victim"]["ns_pid"], 1, "pid 1 of its namespace: {ev}");
    assert_eq!(
        ev["victim"]["pid_ns_level"],
        pidns::own_level() + 1,
        "one level below ours: {ev}"
    );
    assert_ne!(
        ev["victim"]["pid"], 1,
        "the host pid is reported as pid: {ev}"
    );
    assert_eq!(ev["outcome"], "container_exit", "{ev}");
    let exit = victim_exit(&mut d, &ev, "victim_exit");
    assert!(
        d.events(|v| v["kind"] == "victim_slow_exit" && v["pid"] == ev["victim"]["pid"])
            .is_empty(),
        "gone well within the default 10 s: {exit}"
    );
    d.stop();
}

/// The `kind` line (`victim_exit`, `victim_slow_exit`) of the victim of kill event `ev`, checked
/// against it.
fn victim_exit(d: &mut Daemon, ev: &Value, kind: &str) -> Value {
    let pid = ev["victim"]["pid"].clone();
    let got = d.wait_events(1, Duration::from_secs(10), |v| {
        v["kind"] == kind && v["pid"] == pid
    });
    let Some((_, x)) = got.into_iter().next() else {
        panic!("no {kind} line for {pid}; stdout: {:?}", d.seen)
    };
    assert_eq!(x["tgid"], ev["victim"]["tgid"], "{x}");
    assert_eq!(x["kill_boot_ns"], ev["boot_ns"], "joins the kill: {x}");
    assert_eq!(x["node"], ev["node"], "{x}");
    let after = x["after_ms"].as_f64().expect("after_ms");
    let (kill, at) = (
        ev["boot_ns"].as_u64().unwrap(),
        x["boot_ns"].as_u64().unwrap(),
    );
    assert!(at >= kill, "after the kill: {x}");
    #[expect(clippy::cast_precision_loss, reason = "milliseconds")]
    let want = (at - kill) as f64 / 1e6;
    assert!(
        (after - want).abs() < 0.01,
        "after_ms {after} = boot_ns difference {want}"
    );
    x
}

#[test]
fn hog_forked_by_a_shell_that_is_pid_1() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let text = dir.path().join("kills.log");
    let text_arg = format!("text:{}", text.display());
    let mut d = Daemon::start(&["run", "-o", "json:stdout", "-o", &text_arg]);
    let cg = MemCgroup::create(&unique("oomtrace-pidns-child"), Some(LIMIT));
    let mut sh = ShellInit::start(&cg, &[]);
    let child: u32 = sh
        .value("child", Duration::from_secs(10))
        .parse()
        .expect("a pid");
    let status = sh.value("status", KILL_TIMEOUT);
    assert_eq!(status, "137", "the hog was SIGKILLed");
    let ev = kill_in(&mut d, &cg);
    assert_eq!(ev["victim"]["ns_pid"], child, "the pid the shell saw: {ev}");
    assert_ne!(child, 1);
    assert_eq!(ev["victim"]["pid_ns_level"], pidns::own_level() + 1, "{ev}");
    assert_eq!(ev["outcome"], "process_only", "{ev}");
    assert!(sh.running(), "the namespace's pid 1 (the shell) lives on");
    let procs = std::fs::read_to_string(cg.procs_file()).expect("cgroup.procs");
    assert!(
        !procs.trim().is_empty(),
        "the shell is still in {}: {procs:?}",
        cg.path
    );
    d.stop();
    let lines = std::fs::read_to_string(&text).expect("text sink");
    let pid = ev["victim"]["pid"].as_u64().expect("pid");
    let line = lines
        .lines()
        .find(|l| l.contains(" OOM-KILL ") && l.contains(&format!(" pid={pid} ")))
        .unwrap_or_else(|| panic!("no text line for {pid}: {lines}"));
    assert!(
        line.ends_with(
            " outcome=process_only (container keeps running; Kubernetes does not report this kill)"
        ),
        "{line}"
    );
}

#[test]
fn plain_host_process() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["run"]);
    let cg = MemCgroup::create(&unique("oomtrace-host"), Some(LIMIT));
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(KILL_TIMEOUT);
    let (_, ev) = d.victim(pid, Duration::from_secs(10));
    assert_eq!(ev["victim"]["pid_ns_level"], pidns::own_level(), "{ev}");
    if pidns::own_level() == 0 {
        assert_eq!(ev["victim"]["ns_pid"], pid, "the host numbers it: {ev}");
        assert_eq!(ev["outcome"], "host", "{ev}");
    }
    d.stop();
}

/// `trace --outcome process_only` shows the kill of a namespace's child and not a host kill.
#[test]
fn trace_filters_by_outcome() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["trace", "--json", "--outcome", "process_only"]);
    let host = MemCgroup::create(&unique("oomtrace-trace-host"), Some(LIMIT));
    let mut hog = host.spawn_hog(&[]);
    hog.expect_oom_killed(KILL_TIMEOUT);
    let cg = MemCgroup::create(&unique("oomtrace-trace-child"), Some(LIMIT));
    let sh = ShellInit::start(&cg, &[]);
    assert_eq!(sh.value("status", KILL_TIMEOUT), "137");
    let ev = kill_in(&mut d, &cg);
    assert_eq!(ev["outcome"], "process_only", "{ev}");
    d.settle(Duration::from_millis(500));
    let hosts = d.events(|v| v["victim"]["cgroup"]["path"] == host.path.as_str());
    assert!(hosts.is_empty(), "the host kill is filtered out: {hosts:?}");
    assert_eq!(host.oom_kills(), 1, "but it happened");
    d.stop();
}

/// The limit as the cgroup filesystem states it now (v1 `memory.limit_in_bytes`, v2
/// `memory.max`): what the kernel keeps as `page_counter.max`, in bytes.
fn configured_limit(cg: &MemCgroup) -> u64 {
    let file = match cg.mode {
        Mode::V1 => "memory.limit_in_bytes",
        Mode::V2 => "memory.max",
    };
    let text = std::fs::read_to_string(cg.dir.join(file)).expect(file);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{file} of {}: {text:?}", cg.path))
}

/// Checks `limit` against the cgroup `holder` that has it: bytes as configured, read in BPF,
/// usage at the kill near the limit.
fn assert_limit(ev: &Value, holder: &MemCgroup) {
    let want = configured_limit(holder);
    let limit = &ev["limit"];
    assert_eq!(limit["bytes"], want, "{}'s limit: {ev}", holder.path);
    assert_eq!(limit["source"], "bpf", "{ev}");
    assert_eq!(limit["cgroup"], holder.path.as_str(), "{ev}");
    let usage = limit["usage_bytes"].as_u64().expect("usage_bytes");
    assert!(
        (want / 2..=want).contains(&usage),
        "usage at the kill {usage} within [limit/2, limit]: {ev}"
    );
}

#[test]
fn limit_is_read_in_the_kernel() {
    if !require_root() {
        return;
    }
    // No context hook (none attaches on this host anyway): the victim hook's own reading.
    let mut d = Daemon::start(&["run", "--hooks", "context=none"]);
    let cg = MemCgroup::create(&unique("oomtrace-limit"), Some(LIMIT));
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(KILL_TIMEOUT);
    let (_, ev) = d.victim(pid, Duration::from_secs(10));
    assert_limit(&ev, &cg);
    d.stop();
}

/// The parent holds the limit, the child has none: the parent's limit and path are reported.
#[test]
fn limit_held_by_the_parent() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["run", "--hooks", "context=none"]);
    let mut parent = MemCgroup::create(&unique("oomtrace-limit-parent"), Some(LIMIT));
    let child = parent.child("worker", None);
    if child.mode == Mode::V1 {
        // v1: the parent's limit binds the child only with hierarchical accounting.
        let h =
            std::fs::read_to_string(child.dir.join("memory.use_hierarchy")).expect("use_hierarchy");
        assert_eq!(h.trim(), "1", "memory.use_hierarchy of {}", child.path);
    }
    assert!(
        configured_limit(child) > 1 << 50,
        "the child has no limit of its own"
    );
    let child_path = child.path.clone();
    let mut hog = child.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(KILL_TIMEOUT);
    let (_, ev) = d.victim(pid, Duration::from_secs(10));
    assert_eq!(ev["victim"]["cgroup"]["path"], child_path.as_str(), "{ev}");
    assert_limit(&ev, &parent);
    d.stop();
}

/// `--exit-timeout 0`: every victim is "still alive after 0 s": a `victim_slow_exit` line, then
/// its `victim_exit` line; counted in the metrics.
#[test]
fn exit_timeout_zero_warns_then_reports_the_exit() {
    if !require_root() {
        return;
    }
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let mut d = Daemon::start(&["run", "--exit-timeout", "0", "--metrics-addr", &addr]);
    let cg = MemCgroup::create(&unique("oomtrace-slow-exit"), Some(LIMIT));
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(KILL_TIMEOUT);
    let (_, ev) = d.victim(pid, Duration::from_secs(10));
    let slow = victim_exit(&mut d, &ev, "victim_slow_exit");
    assert_eq!(slow["after_ms"], 0.0, "the timeout: {slow}");
    let exit = victim_exit(&mut d, &ev, "victim_exit");
    let order: Vec<String> = d
        .events(|v| v["pid"] == pid)
        .into_iter()
        .filter_map(|(_, v)| v["kind"].as_str().map(String::from))
        .collect();
    assert_eq!(order, ["victim_slow_exit", "victim_exit"], "{exit}");
    let (_, text) = prom::http_get(&addr, "/metrics", None);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    // Other kills on the node count too: at least ours.
    assert!(value("oomtrace_victim_slow_exits_total") >= 1.0, "{text}");
    assert!(value("oomtrace_victim_exit_seconds_count") >= 1.0, "{text}");
    d.stop();
}

/// A containerd task directory under a fixture host root, as the CRI plugin leaves it
/// (`config.json` with the CRI annotations, containerd `internal/cri/annotations`), with
/// `init.pid` naming the container's init (the runc shim's pid file).
fn containerd_task(root: &std::path::Path, uid: &str, id: &str, init: u32) {
    let task = root.join(format!(
        "run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}"
    ));
    std::fs::create_dir_all(&task).expect("task dir");
    let config = serde_json::json!({
        "ociVersion": "1.1.0",
        "annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": "app",
            "io.kubernetes.cri.sandbox-name": "shop-0",
            "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.sandbox-uid": uid,
        }
    });
    std::fs::write(task.join("config.json"), config.to_string()).expect("config.json");
    std::fs::write(task.join("init.pid"), init.to_string()).expect("init.pid");
}

/// A container whose processes share the host's pid namespace (no ns pid to go by): the
/// runtime's `init.pid` decides. A kill of another process is `process_only`; a kill of the
/// process it names is `container_exit`.
#[test]
fn the_runtime_names_the_init() {
    if !require_root() {
        return;
    }
    let host = tempfile::tempdir().expect("temp dir");
    let mut d = Daemon::start(&["run", "--host-root", host.path().to_str().expect("utf-8")]);
    for (i, victim_is_init) in [false, true].into_iter().enumerate() {
        let uid = format!("5d2e3f40-0000-4000-8000-{:012x}", std::process::id());
        let id = format!(
            "{:064x}",
            u128::from(std::process::id()) * 0x9e37_79b9_7f4a_7c15 + i as u128
        );
        let cg = MemCgroup::create(&format!("kubepods/burstable/pod{uid}/{id}"), Some(LIMIT));
        let procs = cg.procs_file();
        // The hog, started through a shell that waits for a line before it execs (so its pid is
        // known, and written as init.pid, before it allocates anything).
        let mut sh = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "read go; exec '{}' --procs '{}'",
                oomtrace_tests::hog_bin().display(),
                procs.display()
            ))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let hog_pid = sh.id();
        let mut other = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("sleep");
        std::fs::write(&procs, other.id().to_string()).expect("sleep joins the cgroup");
        let init = if victim_is_init { hog_pid } else { other.id() };
        containerd_task(host.path(), &uid, &id, init);
        std::io::Write::write_all(&mut sh.stdin.take().expect("stdin"), b"go\n").expect("go");
        let _ = sh.wait();
        let (_, ev) = d.victim(hog_pid, Duration::from_secs(20));
        assert_eq!(ev["container"]["id"], id.as_str(), "{ev}");
        assert_eq!(ev["victim"]["pid_ns_level"], pidns::own_level(), "{ev}");
        let want = if victim_is_init {
            "container_exit"
        } else {
            "process_only"
        };
        assert_eq!(
            ev["outcome"], want,
            "init.pid {init}, victim {hog_pid}: {ev}"
        );
        let _ = other.kill();
        let _ = other.wait();
    }
    d.stop();
}
