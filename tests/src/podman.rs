//! Real containers: Debian's podman with runc (crun refuses this host's hybrid cgroups), an
//! image imported from a busybox-static rootfs (no registry is reachable), and a
//! `containers.conf` of the tests' own (root here cannot raise rlimits: lower default ulimits).
//! Every container a test starts is removed on drop.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The test image, imported once per test binary.
pub const IMAGE: &str = "localhost/oomtrace-test-busybox:latest";

static CONF: OnceLock<tempfile::TempDir> = OnceLock::new();

fn conf_dir() -> &'static Path {
    CONF.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            d.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [engine]\nruntime = \"runc\"\n",
        )
        .expect("containers.conf");
        d
    })
    .path()
}

/// `podman --runtime runc …` with the tests' containers.conf.
pub fn podman() -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", conf_dir().join("containers.conf"))
        .args(["--runtime", "runc"])
        .stdin(Stdio::null());
    c
}

/// Runs podman to completion (at most `timeout`).
pub fn run(args: &[&str], timeout: Duration) -> Output {
    let child = podman()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning podman");
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    loop {
        if let Ok(out) = rx.try_recv() {
            return out.expect("podman");
        }
        if Instant::now() > deadline {
            // SAFETY: plain kill(2) of our child.
            unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGKILL) };
            panic!("podman {args:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when podman can run a container here; under `CI=true` a failure instead.
pub fn require() -> bool {
    let have = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("runc")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    crate::require(
        "podman and runc (scripts/setup.sh --test installs them)",
        have,
    )
}

/// Imports the busybox image (once).
pub fn image() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if run(&["image", "exists", IMAGE], Duration::from_secs(30))
            .status
            .success()
        {
            return;
        }
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("/bin/busybox (busybox-static)");
        for applet in ["sh", "tail", "sleep", "cat", "kill"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = d.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success(), "tar of the rootfs");
        let out = run(
            &["import", tar.to_str().unwrap(), IMAGE],
            Duration::from_mins(1),
        );
        assert!(
            out.status.success(),
            "podman import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    IMAGE
}

/// A named container, removed on drop.
pub struct Container {
    pub name: String,
}

impl Container {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }

    /// `podman inspect --format FORMAT NAME`.
    pub fn inspect(&self, format: &str) -> String {
        let out = run(
            &["inspect", "--format", format, &self.name],
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "podman inspect {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = run(&["rm", "-f", "-t", "0", &self.name], Duration::from_mins(1));
    }
}
