//! The real `oomtrace` binary, started as a child process; its stdout lines are collected as they
//! arrive (with the time they arrived).

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, RecvTimeoutError, channel},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

pub struct Daemon {
    child: Option<Child>,
    lines: Receiver<(Instant, String)>,
    /// Every stdout line seen so far.
    pub seen: Vec<(Instant, String)>,
    pub stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `oomtrace <args>` and waits for its `ready` line on stderr.
    pub fn start(args: &[&str]) -> Self {
        Self::start_wrapped(&[], args)
    }

    /// Starts `oomtrace <args>` with `env` added to its environment.
    pub fn start_env(env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::start_full(&[], env, args)
    }

    /// Starts `<wrapper…> oomtrace <args>` (e.g. `setpriv … --`), which must exec oomtrace.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Self {
        Self::start_full(wrapper, &[], args)
    }

    fn start_full(wrapper: &[&str], env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut cmd = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(crate::oomtrace_bin());
                c
            }
            None => Command::new(crate::oomtrace_bin()),
        };
        // Tests do not leave pinned hooks behind, unless a test is about pinning (--pin-dir).
        if !args.contains(&"--pin-dir") {
            cmd.env("OOMTRACE_NO_PIN", "true");
        }
        let mut child = cmd
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning oomtrace");
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send((Instant::now(), l)).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = channel();
        let err = child.stderr.take().expect("stderr");
        let buf = stderr.clone();
        std::thread::spawn(move || {
            // Byte lines: one that is not UTF-8 must not end the reader.
            for l in BufReader::new(err).split(b'\n') {
                let Ok(l) = l else { break };
                let l = String::from_utf8_lossy(&l).into_owned();
                if l.starts_with("ready") {
                    let _ = ready_tx.send(());
                }
                eprintln!("[oomtrace] {l}");
                buf.lock().expect("lock").push_str(&(l + "\n"));
            }
        });
        let mut d = Self {
            child: Some(child),
            lines,
            seen: Vec::new(),
            stderr,
        };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let st = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "oomtrace did not print `ready` within 30 s (exit: {st:?}); stderr:\n{}",
                d.stderr_text()
            );
        }
        d
    }

    pub fn stderr_text(&self) -> String {
        // Give the reader thread a moment to catch up.
        std::thread::sleep(Duration::from_millis(50));
        self.stderr.lock().expect("lock").clone()
    }

    fn pump(&mut self, until: Instant) -> bool {
        let wait = until.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(l) => {
                self.seen.push(l);
                true
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => false,
        }
    }

    /// JSON events seen so far that match `pred`, in order.
    pub fn events(&self, pred: impl Fn(&Value) -> bool) -> Vec<(Instant, Value)> {
        self.seen
            .iter()
            .filter_map(|(t, l)| serde_json::from_str::<Value>(l).ok().map(|v| (*t, v)))
            .filter(|(_, v)| pred(v))
            .collect()
    }

    /// Waits until `n` events match `pred` (or the timeout), then returns those seen.
    pub fn wait_events(
        &mut self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<(Instant, Value)> {
        let until = Instant::now() + timeout;
        loop {
            let got = self.events(&pred);
            if got.len() >= n || !self.pump(until) {
                return self.events(&pred);
            }
        }
    }

    /// The first event for victim `pid`, waiting up to `timeout`.
    pub fn victim(&mut self, pid: u32, timeout: Duration) -> (Instant, Value) {
        let got = self.wait_events(1, timeout, |v| v["victim"]["pid"] == pid);
        got.into_iter().next().unwrap_or_else(|| {
            panic!(
                "no event for victim {pid} within {timeout:?}; stdout: {:?}\nstderr:\n{}",
                self.seen,
                self.stderr_text()
            )
        })
    }

    /// Collects what arrives during `d` more.
    pub fn settle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while self.pump(until) {}
    }

    /// SIGTERM, wait for exit (it must exit 0), collect the remaining output.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        self.stop_signalled();
    }

    /// Waits for a daemon already sent SIGTERM to exit (it must exit 0), collects its output.
    pub fn stop_signalled(&mut self) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(10);
        let st = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "oomtrace did not exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.collect_to_eof();
        assert!(
            st.success(),
            "oomtrace exited with {st:?} after SIGTERM; stderr:\n{}",
            self.stderr_text()
        );
    }
}

impl Daemon {
    /// Waits (up to `timeout`) for oomtrace to exit by itself; collects its remaining output.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        let st = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "oomtrace did not exit within {timeout:?}; stdout: {:?}\nstderr:\n{}",
                    self.seen,
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.collect_to_eof();
        st
    }

    /// After the process exited: every line it wrote, up to the end of its stdout (the end
    /// marker: nothing can come after it).
    fn collect_to_eof(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) => self.seen.push(l),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("oomtrace's stdout still open 10 s after it exited")
                }
            }
        }
    }

    /// Once the daemon has exited (`stop`, `wait_exit`: it drained its ring and all it wrote
    /// was read): no victim was reported twice.
    pub fn assert_each_victim_once(&self) {
        assert!(self.child.is_none(), "call after the daemon exited");
        let mut n: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for (_, v) in self.events(|v| v["kind"] == "oom_kill") {
            *n.entry(v["victim"]["pid"].as_u64().expect("victim.pid"))
                .or_default() += 1;
        }
        let twice: Vec<_> = n.iter().filter(|&(_, &c)| c > 1).collect();
        assert!(
            twice.is_empty(),
            "victims reported more than once: {twice:?}"
        );
    }
}

/// Runs `oomtrace <args>` (with `env`) to completion, killing it after `timeout`:
/// (exit status, stdout, stderr).
pub fn run_to_exit(
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(crate::oomtrace_bin())
        .args(args)
        .env("OOMTRACE_NO_PIN", "true")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning oomtrace");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal (e.g. SIGSTOP / SIGCONT to pause reading).
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(i32::try_from(self.pid()).expect("pid"), sig) };
    }
}
