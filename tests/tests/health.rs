//! Ready and healthy mean it (issue 13, item 4): a link that cannot be pinned stays attached
//! (named in `ready`, with a warning) instead of detaching; `/healthz` answers 503 with a reason
//! when the victim hook was detached by hand (its pinned link removed) or when the drain loop is
//! stuck, and 200 while it is idle.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use oomtrace_tests::{
    cgroup::MemCgroup,
    daemon::Daemon,
    oomtrace_bin,
    prom::{free_port, http_get},
    require_root, unique,
};

const LIMIT: u64 = 64 << 20;

/// A pin root of this test, removed (hooks detached) on drop.
struct Pins(PathBuf);

impl Pins {
    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
    /// The one pin set (layout directory) in the root.
    fn set(&self) -> PathBuf {
        let sets: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .expect("pin root")
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(sets.len(), 1, "one pin set: {sets:?}");
        sets[0].clone()
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = Command::new(oomtrace_bin())
            .args(["cleanup", "--force", "--pin-dir", self.arg()])
            .output();
        // The test's own parent directory.
        if let Some(top) = self.0.ancestors().nth(self.0.components().count() - 5) {
            let _ = std::fs::remove_dir_all(top);
        }
    }
}

fn kill_in(cg: &MemCgroup) -> u32 {
    let mut h = cg.spawn_hog(&[]);
    let pid = h.pid();
    h.expect_oom_killed(Duration::from_mins(1));
    pid
}

/// `/healthz` until `pred(code, body)` holds (or `timeout`): the last answer.
fn healthz_until(addr: &str, timeout: Duration, pred: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let (code, body) = http_get(addr, "/healthz", None);
        if pred(code, &body) || Instant::now() >= deadline {
            return (code, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A pin root so long that the maps (`<set>/counters`, 8 bytes) can be pinned but the victim
/// link (`<set>/link-victim-tp_btf`, 18 bytes) cannot: its path is over PATH_MAX (4095 bytes
/// and the NUL), and the kernel refuses it with ENAMETOOLONG. A real failure of BPF_OBJ_PIN
/// after the link was taken from its program.
fn pin_root_too_long_for_the_link() -> Pins {
    let layout = oomtrace::pin::layout_id().len();
    // root + "/" + layout + "/" + name: the maps' longest is 4086 bytes, the link's 4098.
    let want = 4078 - layout;
    let mut root = format!("/sys/fs/bpf/{}", unique("oomtrace-health"));
    // Components of at most 250 bytes (NAME_MAX is 255).
    while want - root.len() > 250 {
        root.push('/');
        root.push_str(&"d".repeat(200));
    }
    let last = want - root.len() - 1;
    root.push('/');
    root.push_str(&"p".repeat(last));
    assert_eq!(root.len(), want);
    let root = PathBuf::from(root);
    // oomtrace wants bpffs at the root's parent (else it mounts it there).
    std::fs::create_dir_all(root.parent().expect("parent")).expect("the pin root's parent");
    Pins(root)
}

#[test]
fn a_link_that_cannot_be_pinned_stays_attached_and_ready_says_so() {
    if !require_root() {
        return;
    }
    let pins = pin_root_too_long_for_the_link();
    let mut d = Daemon::start(&[
        "run",
        "--pin-dir",
        pins.arg(),
        "--hooks",
        "victim=tp_btf,context=none",
    ]);
    let err = d.stderr_text();
    let ready = err
        .lines()
        .find(|l| l.starts_with("ready"))
        .expect("ready line");
    assert!(
        ready.contains("(not pinned: victim-tp_btf"),
        "ready names the unpinned hook: {ready}"
    );
    assert!(
        err.contains("victim-tp_btf: pinning") && err.contains("stays attached but unpinned"),
        "a warning says why: {err}"
    );
    // The pin really failed (the maps beside it were pinned), and the hook still sees kills.
    let set = pins.set();
    assert!(set.join("counters").exists(), "maps pinned in {set:?}");
    assert!(!set.join("link-victim-tp_btf").exists());
    let cg = MemCgroup::create(&unique("oomtrace-unpinned"), Some(LIMIT));
    let pid = kill_in(&cg);
    d.victim(pid, Duration::from_secs(5));
    d.stop();
}

#[test]
fn healthz_is_503_once_the_pinned_victim_link_is_removed() {
    if !require_root() {
        return;
    }
    let pins = Pins(PathBuf::from(format!(
        "/sys/fs/bpf/{}",
        unique("oomtrace-health")
    )));
    let addr = format!("127.0.0.1:{}", free_port());
    let mut d = Daemon::start(&[
        "run",
        "--pin-dir",
        pins.arg(),
        "--hooks",
        "victim=tp_btf,context=none",
        "--metrics-addr",
        &addr,
    ]);
    assert_eq!(http_get(&addr, "/healthz", None), (200, "ok\n".into()));
    let cg = MemCgroup::create(&unique("oomtrace-health"), Some(LIMIT));
    let pid = kill_in(&cg);
    d.victim(pid, Duration::from_secs(5));

    // The daemon closed its own fd of the link after pinning it: the pin alone holds the
    // hook, and removing it detaches the hook.
    let link = pins.set().join("link-victim-tp_btf");
    std::fs::remove_file(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    let (code, body) = http_get(&addr, "/healthz", None);
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("victim hook detached") && body.contains("link-victim-tp_btf"),
        "{body}"
    );
    // It is true: a kill now gives no event.
    let pid = kill_in(&cg);
    let got = d.wait_events(1, Duration::from_secs(3), |v| v["victim"]["pid"] == pid);
    assert!(got.is_empty(), "the hook is detached, yet: {got:?}");
    d.stop();
}

/// A FIFO: reading it blocks until a writer comes.
fn fifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// The drain is stalled for real: with the test setting `OOMTRACE_TEST_DRAIN_STALL`, the daemon
/// reads a FIFO in the drain before it names the first victim, and blocks there until the test
/// writes to it. (A FIFO at a runtime's `config.json` did this until the enricher learnt to
/// refuse anything but regular files.)
#[test]
fn healthz_is_503_while_the_drain_is_stuck_and_200_when_idle() {
    if !require_root() {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    let uid = format!("5d1d2e3f-0000-4000-8000-{:012x}", std::process::id());
    let id = format!(
        "{:064x}",
        u128::from(std::process::id()) * 0x7f4a_7c15_9e37_79b9
    );
    let task = host.path().join(format!(
        "run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}"
    ));
    std::fs::create_dir_all(&task).unwrap();
    let config = serde_json::json!({
        "annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": "stuck",
            "io.kubernetes.cri.sandbox-name": "fifo-pod",
            "io.kubernetes.cri.sandbox-namespace": "health",
            "io.kubernetes.cri.sandbox-uid": uid,
        }
    });
    std::fs::write(task.join("config.json"), config.to_string()).unwrap();
    let stall = host.path().join("stall");
    fifo(&stall);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut d = Daemon::start_env(
        &[("OOMTRACE_TEST_DRAIN_STALL", stall.to_str().unwrap())],
        &[
            "run",
            "--host-root",
            host.path().to_str().unwrap(),
            "--metrics-addr",
            &addr,
            "--healthz-stall",
            "1s",
        ],
    );
    // Idle for longer than the stall time: healthy.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(http_get(&addr, "/healthz", None), (200, "ok\n".into()));

    // A kill in that container: the drain reads the FIFO before naming it, and blocks there.
    let cg = MemCgroup::create(&format!("kubepods/burstable/pod{uid}/{id}"), Some(LIMIT));
    let pid = kill_in(&cg);
    let (code, body) = healthz_until(&addr, Duration::from_secs(10), |c, _| c == 503);
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("drain stalled"), "{body}");

    // Unblock it: the event comes, named, and the daemon is healthy again.
    std::fs::write(&stall, "go").expect("writing the FIFO");
    let (_, ev) = d.victim(pid, Duration::from_secs(5));
    assert_eq!(ev["container"]["name"], "stuck", "{ev}");
    let (code, body) = healthz_until(&addr, Duration::from_secs(5), |c, _| c == 200);
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    d.stop();
}

#[test]
fn healthz_of_a_daemon_reusing_pins_sees_its_victim_link_removed() {
    if !require_root() {
        return;
    }
    let pins = Pins(PathBuf::from(format!(
        "/sys/fs/bpf/{}",
        unique("oomtrace-health")
    )));
    let addr = format!("127.0.0.1:{}", free_port());
    let start = || {
        Daemon::start(&[
            "run",
            "--pin-dir",
            pins.arg(),
            "--hooks",
            "victim=tp_btf,context=none",
            "--metrics-addr",
            &addr,
        ])
    };
    let mut first = start();
    first.stop();
    let mut second = start();
    assert!(
        second.stderr_text().contains("reusing the pinned hooks"),
        "{}",
        second.stderr_text()
    );
    assert_eq!(http_get(&addr, "/healthz", None), (200, "ok\n".into()));
    let link = pins.set().join("link-victim-tp_btf");
    std::fs::remove_file(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    let (code, body) = http_get(&addr, "/healthz", None);
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("victim hook detached"), "{body}");
    second.stop();
}
