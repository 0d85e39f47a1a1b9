//! Attribution end to end (issue 5): a real OOM kill in a memory cgroup at a Kubernetes-shaped
//! path, with a fixture host root holding the kubelet's and containerd's files → the event names
//! the pod and container; a service-shaped path gives a systemd unit and no pod.

use std::{fs, time::Duration};

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, require_root};

const LIMIT: u64 = 64 << 20;

/// Builds `<root>/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log` (kubelet,
/// pkg/kubelet/kuberuntime/helpers.go BuildPodLogsDirectory) and containerd's task state
/// `<root>/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/config.json` with the CRI
/// annotations (containerd internal/cri/annotations/annotations.go).
fn fixture_host(root: &std::path::Path, ns: &str, pod: &str, uid: &str, container: &str, id: &str) {
    let logs = root.join(format!("var/log/pods/{ns}_{pod}_{uid}/{container}"));
    fs::create_dir_all(&logs).unwrap();
    fs::write(logs.join("0.log"), "").unwrap();
    let task = root.join(format!(
        "run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}"
    ));
    fs::create_dir_all(&task).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.1.0",
        "annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": container,
            "io.kubernetes.cri.sandbox-name": pod,
            "io.kubernetes.cri.sandbox-namespace": ns,
            "io.kubernetes.cri.sandbox-uid": uid,
        }
    });
    fs::write(task.join("config.json"), config.to_string()).unwrap();
}

#[test]
fn kubepods_cgroup_gets_pod_and_container_names() {
    if !require_root() {
        return;
    }
    let host = tempfile::tempdir().unwrap();
    let uid = format!("4c1d2e3f-0000-4000-8000-{:012x}", std::process::id());
    let id = format!(
        "{:064x}",
        u128::from(std::process::id()) * 0x9e37_79b9_7f4a_7c15
    );
    fixture_host(host.path(), "shop", "cart-7d9", &uid, "cart", &id);
    let mut d = Daemon::start(&["run", "--host-root", host.path().to_str().unwrap()]);
    // cgroupfs-driver v1 layout: /kubepods/<qos>/pod<uid>/<container id>.
    let cg = MemCgroup::create(&format!("kubepods/burstable/pod{uid}/{id}"), Some(LIMIT));
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(Duration::from_mins(1));
    let (_, ev) = d.victim(pid, Duration::from_secs(5));
    assert_eq!(ev["victim"]["cgroup"]["path"], cg.path.as_str());
    assert_eq!(ev["pod"]["uid"], uid.as_str(), "{ev}");
    assert_eq!(ev["pod"]["qos"], "burstable");
    assert_eq!(ev["pod"]["name"], "cart-7d9");
    assert_eq!(ev["pod"]["namespace"], "shop");
    assert_eq!(ev["container"]["id"], id.as_str());
    assert_eq!(ev["container"]["runtime"], "containerd");
    assert_eq!(ev["container"]["name"], "cart");
    assert!(ev.get("systemd_unit").is_none());
    d.stop();
}

#[test]
fn service_cgroup_gets_a_systemd_unit_and_no_pod() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["run"]);
    let unit = format!("oomtrace-demo-{}.service", std::process::id());
    let cg = MemCgroup::create(&format!("system.slice/{unit}"), Some(LIMIT));
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(Duration::from_mins(1));
    let (_, ev) = d.victim(pid, Duration::from_secs(5));
    assert_eq!(ev["systemd_unit"], unit.as_str(), "{ev}");
    assert!(ev.get("pod").is_none(), "{ev}");
    assert!(ev.get("container").is_none(), "{ev}");
    d.stop();
}
