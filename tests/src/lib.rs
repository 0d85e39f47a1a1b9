//! Helpers for oomtrace's black-box tests: real memory cgroups, the real daemon, the kernel's own
//! log lines as referee. Every resource a test creates is removed on drop, also when it fails.

pub mod cgroup;
pub mod daemon;
pub mod kmsg;
pub mod manifest;
pub mod pidns;
pub mod podman;
pub mod prom;

use std::path::PathBuf;

/// True when the test may go on. Without root (or BPF), outside CI the test is skipped with a
/// message; under `CI=true` it fails.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "these tests need root (CI=true: failing, not skipping)"
    );
    eprintln!("skipping: needs root to load BPF and create memory cgroups");
    false
}

/// True when `what` is there; outside CI a test skips (with a message) when it is not, under
/// `CI=true` it fails.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} is required under CI=true (failing, not skipping)"
    );
    eprintln!("skipping: {what} is not available");
    false
}

/// The node's side of the deployment contract (README, "Kubernetes" and "systemd"): tracefs on
/// /sys/kernel/tracing and bpffs on /sys/fs/bpf, as systemd mounts them at boot. A daemon with
/// only the unit's or the DaemonSet's capabilities (no CAP_SYS_ADMIN) cannot mount them itself;
/// a fresh host (as in CI) may have neither. Mounts those missing and leaves them mounted, as a
/// node has them (unmounting would race with the other tests of the same binary).
pub fn node_mounts() {
    let mounts = std::fs::read_to_string("/proc/mounts").expect("/proc/mounts");
    for (fs, dir) in [("tracefs", "/sys/kernel/tracing"), ("bpf", "/sys/fs/bpf")] {
        let mounted = mounts.lines().any(|l| {
            let mut f = l.split(' ');
            (f.next(), f.next(), f.next()) == (Some(fs), Some(dir), Some(fs))
        });
        if !mounted {
            let st = std::process::Command::new("mount")
                .args(["-t", fs, fs, dir])
                .status()
                .expect("mount");
            assert!(st.success(), "mount -t {fs} {fs} {dir}");
        }
    }
}

/// The directory cargo puts binaries in (the test runs from `<dir>/deps/`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The `oomtrace` binary under test: `$OOMTRACE_BIN`, else the one beside this test binary
/// (build it first: `cargo build -p oomtrace`, which `scripts/test.sh` does).
pub fn oomtrace_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OOMTRACE_BIN") {
        return p.into();
    }
    let p = bin_dir().join("oomtrace");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p oomtrace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The memory hog (this crate's own binary).
pub fn hog_bin() -> PathBuf {
    let p = bin_dir().join("oomtrace-hog");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p oomtrace-tests`",
        p.display()
    );
    p
}

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
