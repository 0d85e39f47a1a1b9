//! Processes in a new pid namespace (`unshare --pid --fork`), the shape of a container: either the
//! hog itself is the namespace's pid 1 (a container whose main process is killed), or a shell is
//! pid 1 and forks the hog (a container that loses a child process).

use std::{
    io::{BufRead as _, BufReader, Lines},
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::Duration,
};

use crate::cgroup::{Hog, MemCgroup};

/// `unshare --pid --fork -- oomtrace-hog --procs <cg>/cgroup.procs <args>`: the hog is pid 1 of a
/// new pid namespace and joins `cg` itself (it writes its pid as that namespace numbers it, 1,
/// which the kernel reads in the writer's namespace). The returned [`Hog`] is the `unshare`
/// process, which waits for its child.
pub fn hog_as_init(cg: &MemCgroup, args: &[&str]) -> Hog {
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--"])
        .arg(crate::hog_bin())
        .arg("--procs")
        .arg(cg.procs_file())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning unshare (util-linux)");
    Hog::from_child(child)
}

/// A shell that is pid 1 of a new pid namespace, inside `cg`, and forks the hog. It prints
/// `child <ns pid of the hog>`, then `status <hog's wait status>` when the hog ends, then stays
/// alive (sleeping) until killed.
pub struct ShellInit {
    child: Option<Child>,
    lines: Receiver<String>,
}

impl ShellInit {
    pub fn start(cg: &MemCgroup, hog_args: &[&str]) -> Self {
        let hog = crate::hog_bin();
        let script = format!(
            "echo $$ > '{}' || exit 3; '{}' {} & echo \"child $!\"; wait $!; echo \"status $?\"; sleep 120",
            cg.procs_file().display(),
            hog.display(),
            hog_args.join(" ")
        );
        let mut child = Command::new("unshare")
            .args(["--pid", "--fork", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning unshare (util-linux)");
        let out: Lines<BufReader<ChildStdout>> =
            BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in out {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            lines,
        }
    }

    /// The value of the next line starting with `key ` (waiting up to `timeout`).
    pub fn value(&self, key: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let l = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("shell printed no `{key} …` line: {e}"));
            if let Some(v) = l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')) {
                return v.trim().to_string();
            }
        }
    }

    /// Whether the `unshare` process (and so the namespace's pid 1, which it waits for) still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }
}

impl Drop for ShellInit {
    fn drop(&mut self) {
        // The namespace's processes are in the test's cgroup, which kills them on drop; this
        // only reaps `unshare`.
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The level of this process's own pid namespace (`NSpid:` in /proc/self/status has one entry
/// per level, the host's first).
pub fn own_level() -> u32 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let n = s
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("NSpid line (Linux 4.1+)")
        .split_whitespace()
        .count();
    u32::try_from(n).expect("small") - 1
}
