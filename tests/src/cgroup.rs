//! Memory cgroups for tests, v1 or v2, whichever this host has.

use std::{
    fs,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// Which memory hierarchy the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    V1,
    V2,
}

/// The memory hierarchy's mount point and version.
pub fn memory_root() -> (PathBuf, Mode) {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
    if fs::read_to_string(v2).is_ok_and(|c| c.split_whitespace().any(|x| x == "memory")) {
        return ("/sys/fs/cgroup".into(), Mode::V2);
    }
    let v1 = Path::new("/sys/fs/cgroup/memory");
    assert!(
        v1.join("memory.limit_in_bytes").exists(),
        "no memory cgroup hierarchy (v1 or v2) on this host"
    );
    (v1.into(), Mode::V1)
}

/// A memory cgroup, removed (with its processes and children) on drop.
pub struct MemCgroup {
    /// Directory in the cgroup filesystem.
    pub dir: PathBuf,
    /// The path as the kernel names it (relative to the hierarchy root, starting with `/`).
    pub path: String,
    pub mode: Mode,
    children: Vec<MemCgroup>,
    /// Ancestors this cgroup's creation made (removed after it, deepest first).
    made_parents: Vec<PathBuf>,
}

impl MemCgroup {
    /// Creates `/<name>` (a path, possibly nested: parents are created and owned) with a memory
    /// limit in bytes (None: no limit).
    pub fn create(name: &str, limit: Option<u64>) -> Self {
        let (root, mode) = memory_root();
        let rel = name.trim_start_matches('/');
        let dir = root.join(rel);
        // Missing ancestors (e.g. kubepods/burstable/pod…) are made here and removed on drop.
        let mut made_parents = Vec::new();
        let mut at = root.clone();
        for comp in Path::new(rel)
            .parent()
            .into_iter()
            .flat_map(Path::components)
        {
            at = at.join(comp);
            if !at.exists() {
                fs::create_dir(&at).unwrap_or_else(|e| panic!("mkdir {}: {e}", at.display()));
                if mode == Mode::V2 {
                    let _ = fs::write(at.join("cgroup.subtree_control"), "+memory");
                }
                made_parents.push(at.clone());
            }
        }
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let cg = Self {
            dir,
            path: format!("/{rel}"),
            mode,
            children: Vec::new(),
            made_parents,
        };
        if mode == Mode::V2 {
            // Children need the memory controller enabled here.
            let _ = fs::write(cg.dir.join("cgroup.subtree_control"), "+memory");
        }
        if let Some(l) = limit {
            cg.set_limit(l);
        }
        cg
    }

    /// Creates a child cgroup owned by this one.
    pub fn child(&mut self, name: &str, limit: Option<u64>) -> &mut MemCgroup {
        let rel = format!("{}/{name}", self.path);
        let c = MemCgroup::create(&rel, limit);
        self.children.push(c);
        self.children.last_mut().expect("just pushed")
    }

    pub fn set_limit(&self, bytes: u64) {
        let file = match self.mode {
            Mode::V1 => "memory.limit_in_bytes",
            Mode::V2 => "memory.max",
        };
        fs::write(self.dir.join(file), bytes.to_string()).unwrap_or_else(|e| panic!("{file}: {e}"));
    }

    /// Removes this cgroup now (as drop does); for tests that delete it right after a kill.
    pub fn remove(self) {
        drop(self);
    }

    /// Whether the directory still exists.
    pub fn exists(&self) -> bool {
        self.dir.exists()
    }

    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The kernel's own count of OOM kills in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.mode {
            Mode::V1 => "memory.oom_control",
            Mode::V2 => "memory.events",
        };
        let text = fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Starts the hog in this cgroup with extra arguments.
    pub fn spawn_hog(&self, args: &[&str]) -> Hog {
        let procs = self.procs_file();
        let child = Command::new(crate::hog_bin())
            .arg("--procs")
            .arg(&procs)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning the hog");
        Hog { child: Some(child) }
    }

    fn kill_all(&self) {
        for c in &self.children {
            c.kill_all();
        }
        for _ in 0..50 {
            let pids = fs::read_to_string(self.procs_file()).unwrap_or_default();
            let pids: Vec<i32> = pids.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for p in pids {
                // SAFETY: sending a signal has no memory-safety preconditions.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for c in self.children.drain(..) {
            drop(c);
        }
        for d in std::iter::once(&self.dir).chain(self.made_parents.iter().rev()) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::remove_dir(d).is_err() && d.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A running hog; killed on drop.
pub struct Hog {
    child: Option<Child>,
}

impl Hog {
    /// Wraps a process started elsewhere (e.g. a hog behind `unshare`); killed on drop.
    pub fn from_child(child: Child) -> Self {
        Self { child: Some(child) }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits for the hog to end, at most `timeout`; returns the status and when it was seen.
    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, Instant) {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return (st, Instant::now());
            }
            assert!(
                Instant::now() < deadline,
                "hog {} still running after {timeout:?}",
                child.id()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until a `--hold` hog has allocated its memory.
    pub fn wait_held(&mut self) {
        use std::io::BufRead as _;
        let out = self
            .child
            .as_mut()
            .expect("running")
            .stdout
            .take()
            .expect("stdout piped");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("reading hog stdout");
        assert_eq!(line.trim(), "held", "hog did not report holding its memory");
    }

    /// Asserts the hog was OOM-killed (SIGKILL; a shell reports it as exit 137).
    pub fn expect_oom_killed(&mut self, timeout: Duration) -> Instant {
        let (st, at) = self.wait(timeout);
        assert_eq!(
            st.signal(),
            Some(libc::SIGKILL),
            "hog should die by SIGKILL (137), got {st:?}"
        );
        at
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
