//! Faults (issue 7): a sink that fails — stdout closed under the daemon (`oomtrace run | head
//! -1`), an output file on a full filesystem — is reported and counted, and the daemon keeps
//! tracing: the next kills are still counted in its metrics.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, oomtrace_bin, prom, require_root, unique};

const LIMIT: u64 = 64 << 20;

fn kill_one(cg: &MemCgroup) -> u32 {
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(Duration::from_mins(1));
    pid
}

/// `oomtrace_oom_kills_total` of one cgroup (other tests' kills have other cgroups), waiting
/// until it reaches `n`.
fn wait_kills(addr: &str, cgroup: &str, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let label = format!("cgroup=\"{cgroup}\"");
    loop {
        let (_, text) = prom::http_get(addr, "/metrics", None);
        let total: u64 = text
            .lines()
            .filter(|l| l.starts_with("oomtrace_oom_kills_total{") && l.contains(&label))
            // Counters print as integers ("3") or floats ("3.0"): take the integer part.
            .filter_map(|l| l.rsplit_once(' ')?.1.split('.').next()?.parse::<u64>().ok())
            .sum();
        if total >= n || Instant::now() > deadline {
            return total;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pid of the oomtrace process whose command line contains `needle`.
fn find_oomtrace(needle: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        (cmd.contains("oomtrace\0run") && cmd.contains(needle)).then_some(pid)
    })
}

/// Kills the pipeline's oomtrace (found by its unique metrics address) if the test fails before
/// stopping it: `sh` is our child, oomtrace is not.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = find_oomtrace(&self.0) {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn stdout_closed_mid_run_keeps_tracing() {
    if !require_root() {
        return;
    }
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let bin = oomtrace_bin();
    let _guard = KillOnDrop(addr.clone());
    let mut sh = Command::new("sh")
        .env("OOMTRACE_NO_PIN", "true")
        .args([
            "-c",
            // oomtrace's own exit status goes to stderr: the pipeline's is head's.
            "{ \"$0\" run --metrics-addr \"$1\"; echo \"oomtrace exited: $?\" >&2; } | head -n 1",
            bin.to_str().unwrap(),
            &addr,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    let (tx, rx) = mpsc::channel();
    let err = sh.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log2 = log.clone();
    let reader = std::thread::spawn(move || {
        // Lines, not Strings: a line that is not UTF-8 must not end the reader.
        for l in BufReader::new(err).split(b'\n').map_while(Result::ok) {
            let l = String::from_utf8_lossy(&l).into_owned();
            if l.starts_with("ready") {
                let _ = tx.send(());
            }
            log2.lock().unwrap().push_str(&(l + "\n"));
        }
    });
    if let Err(e) = rx.recv_timeout(Duration::from_secs(30)) {
        panic!(
            "no `ready` from oomtrace ({e}); its stderr:\n{}",
            log.lock().unwrap()
        );
    }
    let cg = MemCgroup::create(&unique("oomtrace-epipe"), Some(LIMIT));
    let _first = kill_one(&cg);
    // `head -n 1` passes one event line (ours, or another test's kill) and exits.
    let mut line = String::new();
    BufReader::new(sh.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"kind\":\"oom_kill\""), "{line}");
    // `head` has exited: oomtrace's stdout is a pipe with no reader now.
    let _second = kill_one(&cg);
    let _third = kill_one(&cg);
    assert_eq!(
        wait_kills(&addr, &cg.path, 3),
        3,
        "kills after the pipe closed are still counted"
    );
    let pid = find_oomtrace(&addr).expect("oomtrace still running");
    let text = log.lock().unwrap().clone();
    assert!(
        text.contains("sink json:stdout") && text.contains("Broken pipe"),
        "{text}"
    );
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = sh.wait().expect("sh");
    assert!(st.success(), "head's status: {st:?}");
    reader.join().expect("stderr reader");
    assert!(find_oomtrace(&addr).is_none(), "oomtrace exited on SIGTERM");
    let text = log.lock().unwrap().clone();
    assert!(
        text.contains("oomtrace exited: 0\n"),
        "oomtrace drains and exits 0 on SIGTERM, even with its stdout closed:\n{text}"
    );
}

/// A tiny tmpfs, filled up; unmounted on drop.
struct FullFs {
    dir: tempfile::TempDir,
}

impl FullFs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs");
        // Fill it: write until ENOSPC.
        let mut f = std::fs::File::create(dir.path().join("filler")).unwrap();
        let block = [0u8; 4096];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        Self { dir }
    }
}

impl Drop for FullFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn output_file_on_a_full_disk_keeps_tracing() {
    if !require_root() {
        return;
    }
    let fs = FullFs::new();
    let out = fs.dir.path().join("events.jsonl");
    // Opening works (an empty file fits); writing fails with ENOSPC.
    std::fs::write(&out, "").unwrap();
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let file_sink = format!("json:{}", out.display());
    let mut d = Daemon::start(&[
        "run",
        "-o",
        "json:stdout",
        "-o",
        &file_sink,
        "--metrics-addr",
        &addr,
    ]);
    let cg = MemCgroup::create(&unique("oomtrace-enospc"), Some(LIMIT));
    let a = kill_one(&cg);
    let b = kill_one(&cg);
    // The other sink still gets both.
    d.victim(a, Duration::from_secs(5));
    d.victim(b, Duration::from_secs(5));
    assert_eq!(wait_kills(&addr, &cg.path, 2), 2);
    let log = d.stderr_text();
    assert!(log.contains("No space left on device"), "{log}");
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        0,
        "nothing fit in the file"
    );
    d.stop();
}
