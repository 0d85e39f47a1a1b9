//! Real containers end to end (issue 17): OOM kills in podman containers (runc, cgroup v1 here),
//! attributed from the node's own files (no podman command is run by oomtrace): runtime, id and
//! the podman name, and the outcome of the kill.

use std::time::Duration;

use oomtrace_tests::{
    daemon::Daemon,
    podman::{self, Container},
    require_root, unique,
};
use serde_json::Value;

fn start() -> Option<Daemon> {
    if !require_root() || !podman::require() {
        return None;
    }
    podman::image();
    Some(Daemon::start(&["run"]))
}

/// The event of the first victim in the container with id `id`.
fn event_in(d: &mut Daemon, id: &str) -> Value {
    let evs = d.wait_events(1, Duration::from_secs(10), |v| {
        v["container"]["id"].as_str() == Some(id)
    });
    evs[0].1.clone()
}

#[test]
fn a_killed_container_init_is_attributed_and_exits() {
    let Some(mut d) = start() else { return };
    let c = Container::named(&unique("oomtrace-ctr"));
    let out = podman::run(
        &[
            "run",
            "--name",
            &c.name,
            "--memory",
            "48m",
            podman::IMAGE,
            "tail",
            "/dev/zero",
        ],
        Duration::from_mins(2),
    );
    assert_eq!(
        out.status.code(),
        Some(137),
        "podman run exits 137: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = c.inspect("{{.Id}}");
    let ev = event_in(&mut d, &id);
    assert_eq!(ev["container"]["runtime"], "podman", "{ev}");
    assert_eq!(ev["container"]["name"], c.name.as_str(), "{ev}");
    assert_eq!(ev["victim"]["comm"], "tail", "{ev}");
    assert_eq!(ev["victim"]["ns_pid"], 1, "the container's init: {ev}");
    assert_eq!(ev["outcome"], "container_exit", "{ev}");
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "137");
    d.stop();
}

#[test]
fn a_killed_child_leaves_the_container_running() {
    let Some(mut d) = start() else { return };
    let c = Container::named(&unique("oomtrace-ctr"));
    // The shell (the container's init) forks the hog and survives it.
    let out = podman::run(
        &[
            "run",
            "-d",
            "--name",
            &c.name,
            "--memory",
            "48m",
            podman::IMAGE,
            "sh",
            "-c",
            "tail /dev/zero; exec sleep 600",
        ],
        Duration::from_mins(2),
    );
    assert!(
        out.status.success(),
        "podman run -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = c.inspect("{{.Id}}");
    let ev = event_in(&mut d, &id);
    assert_eq!(ev["container"]["runtime"], "podman", "{ev}");
    assert_eq!(ev["container"]["name"], c.name.as_str(), "{ev}");
    assert_eq!(ev["victim"]["comm"], "tail", "{ev}");
    assert_ne!(ev["victim"]["ns_pid"], 1, "{ev}");
    assert_eq!(ev["outcome"], "process_only", "{ev}");
    assert_eq!(
        c.inspect("{{.State.Running}}"),
        "true",
        "the container keeps running"
    );
    d.stop();
}
