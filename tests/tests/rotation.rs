//! File outputs survive log rotation (issue 13, item 1): Debian's own `logrotate`, run with a
//! config and state file in a temporary directory and `-f`, rotates the daemon's JSON file in
//! the middle of 10 real OOM kills. Every kill is found exactly once across the rotated and the
//! new file, nothing is written to the rotated file after the rotation, and the daemon lives on
//! (SIGHUP from `postrotate` does not end it) and exits 0 on SIGTERM.
//!
//! Needs root and `logrotate` (scripts/setup.sh --test installs it).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, require_root, unique};
use serde_json::Value;

const KILL_TIMEOUT: Duration = Duration::from_mins(1);

/// How logrotate is told to rotate.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The shipped deploy/logrotate/oomtrace: `create` + `postrotate` SIGHUP (`kill -HUP <pid>`
    /// in place of `systemctl reload`): renamed, a new file created, then SIGHUP.
    CreateHup,
    /// `create` and no signal: the daemon must notice the rename on its next write.
    CreateNoSignal,
    /// `copytruncate`: copied, then the same file truncated (O_APPEND writes at the new end).
    CopyTruncate,
}

fn logrotate() -> Option<PathBuf> {
    let found = [
        "/usr/sbin/logrotate",
        "/sbin/logrotate",
        "/usr/bin/logrotate",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "logrotate missing (Debian package logrotate; scripts/setup.sh --test)"
        );
        eprintln!("skipping: logrotate missing (scripts/setup.sh --test installs it)");
    }
    found
}

/// deploy/logrotate/oomtrace, for `log`, with `kill -HUP <pid>` as its postrotate command.
fn shipped_config(log: &Path, pid: u32) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/logrotate/oomtrace");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let (globs, reload) = (
        "/var/log/oomtrace/*.jsonl /var/log/oomtrace/*.log {",
        "systemctl reload oomtrace.service >/dev/null 2>&1 || true",
    );
    assert!(
        text.contains(globs) && text.contains(reload),
        "deploy/logrotate/oomtrace changed: update this test"
    );
    text.replace(globs, &format!("{} {{", log.display()))
        .replace(reload, &format!("kill -HUP {pid}"))
}

/// The `oom_kill` lines of a file, by victim pid.
fn victims(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {l:?}", path.display()))
        })
        .filter(|v| v["kind"] == "oom_kill")
        .filter_map(|v| v["victim"]["pid"].as_u64())
        .collect()
}

/// OOM-kills `n` hogs in `cg` one after the other; returns their pids once the daemon has
/// reported each on stdout (each output writes on its own thread: see [`wait_in`] for the file).
fn kills(d: &mut Daemon, cg: &MemCgroup, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let mut hog = cg.spawn_hog(&[]);
            let pid = hog.pid();
            hog.expect_oom_killed(KILL_TIMEOUT);
            d.victim(pid, Duration::from_secs(30));
            u64::from(pid)
        })
        .collect()
}

/// Waits (up to 10 s) until `path` holds the events of all `pids`.
fn wait_in(path: &Path, pids: &[u64]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|p| victims(path).contains(p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} lacks some of {pids:?} after 10 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rotate_during_kills(mode: Mode) {
    if !require_root() {
        return;
    }
    let Some(logrotate) = logrotate() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("events.jsonl");
    let rotated = dir.path().join("events.jsonl.1");
    let file_out = format!("json:{}", log.display());
    let mut d = Daemon::start(&["run", "-o", &file_out, "-o", "json:stdout"]);
    let cg = MemCgroup::create(&unique("oomtrace-rotate"), Some(64 << 20));

    let before = kills(&mut d, &cg, 5);
    wait_in(&log, &before);

    let conf_text = match mode {
        Mode::CreateHup => shipped_config(&log, d.pid()),
        Mode::CreateNoSignal => format!(
            "{} {{\n    rotate 3\n    create 0600 root root\n}}\n",
            log.display()
        ),
        Mode::CopyTruncate => {
            format!("{} {{\n    rotate 3\n    copytruncate\n}}\n", log.display())
        }
    };
    let conf = dir.path().join("logrotate.conf");
    std::fs::write(&conf, conf_text).expect("writing logrotate.conf");
    let out = Command::new(&logrotate)
        .arg("-v")
        .arg("-f")
        .arg("-s")
        .arg(dir.path().join("state"))
        .arg(&conf)
        .output()
        .expect("running logrotate");
    assert!(
        out.status.success(),
        "logrotate failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let at_rotation = std::fs::read(&rotated)
        .unwrap_or_else(|e| panic!("logrotate made no {}: {e}", rotated.display()));

    let after = kills(&mut d, &cg, 5);
    wait_in(&log, &after);

    // Nothing reached the rotated file after the rotation (not even other tests' kills).
    let now = std::fs::read(&rotated).expect("rotated file");
    assert!(
        now == at_rotation,
        "{mode:?}: written to the rotated file after the rotation ({} bytes then, {} now)",
        at_rotation.len(),
        now.len()
    );
    let new = std::fs::read(&log).expect("new file");
    assert!(
        !new.contains(&0),
        "{mode:?}: NUL bytes in the new file (written at the old offset, not appended)"
    );
    let (old_pids, new_pids) = (victims(&rotated), victims(&log));
    for p in before.iter().chain(&after) {
        let n = old_pids.iter().chain(&new_pids).filter(|q| *q == p).count();
        assert_eq!(
            n, 1,
            "{mode:?}: kill of pid {p} found {n} times across both files"
        );
    }
    assert!(
        before.iter().all(|p| old_pids.contains(p)),
        "{mode:?}: the kills before the rotation are in the rotated file"
    );
    assert!(
        after.iter().all(|p| new_pids.contains(p)),
        "{mode:?}: the kills after the rotation are in the new file"
    );
    if matches!(mode, Mode::CreateHup) {
        assert!(
            d.stderr_text().contains("SIGHUP: reopening"),
            "the SIGHUP was handled"
        );
    }
    // Alive, and a clean exit on SIGTERM (SIGHUP's default action would have killed it).
    // SAFETY: kill with signal 0 only checks the process exists.
    let alive = unsafe { libc::kill(i32::try_from(d.pid()).expect("pid"), 0) } == 0;
    assert!(alive, "{mode:?}: the daemon is gone");
    d.stop();
}

#[test]
fn logrotate_create_and_sighup() {
    rotate_during_kills(Mode::CreateHup);
}

#[test]
fn logrotate_create_without_a_signal() {
    rotate_during_kills(Mode::CreateNoSignal);
}

#[test]
fn logrotate_copytruncate() {
    rotate_during_kills(Mode::CopyTruncate);
}
