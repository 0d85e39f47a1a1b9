//! oomtrace itself in a container, as the DaemonSet runs it (issue 17): the image is built from
//! the Containerfile (offline: BASE = the binary's ldd closure, BINARY = the test build), and run
//! by podman with exactly what deploy/kubernetes/daemonset.yaml gives the pod — its arguments,
//! user, read-only root, capabilities, no privilege escalation, seccomp profile and host path
//! mounts at the same paths. A kill in another container must then be reported with its
//! attribution, and `/metrics`, read inside the pod's network, must show it. A mount or a
//! capability missing from the manifest makes this fail: fix the manifest, not the test.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use oomtrace_tests::{
    manifest::{container, daemonset, root},
    node_mounts, oomtrace_bin,
    podman::{self, Container},
    require_root, unique,
};
use serde_json::Value;

const IMAGE: &str = "localhost/oomtrace-test-daemonset:latest";

/// An image from a directory tree (tar + `podman import`).
fn import(dir: &Path, tag: &str) {
    let tar = dir.with_extension("tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let out = podman::run(
        &["import", tar.to_str().unwrap(), tag],
        Duration::from_mins(1),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the Containerfile offline: BASE = the test binary's ldd closure plus busybox (for
/// `wget` inside the pod's network), BINARY = an image holding the test binary.
fn build_image() {
    let d = tempfile::tempdir().unwrap();
    let bin = oomtrace_bin();
    let base = d.path().join("base");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", base.join("bin/busybox")).expect("busybox-static");
    std::os::unix::fs::symlink("busybox", base.join("bin/wget")).unwrap();
    let ldd = Command::new("ldd").arg(&bin).output().expect("ldd");
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let dst = base.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dst).unwrap_or_else(|e| panic!("{lib}: {e}"));
    }
    import(&base, "localhost/oomtrace-test-base:latest");
    let binary = d.path().join("binary");
    std::fs::create_dir_all(binary.join("src/target/release")).unwrap();
    std::fs::copy(&bin, binary.join("src/target/release/oomtrace")).unwrap();
    import(&binary, "localhost/oomtrace-test-binary:latest");
    let ctx = d.path().join("context");
    std::fs::create_dir_all(&ctx).unwrap();
    let containerfile = root().join("Containerfile");
    let out = podman::run(
        &[
            "build",
            "--pull=never",
            "--build-arg",
            "BASE=localhost/oomtrace-test-base:latest",
            "--build-arg",
            "BINARY=localhost/oomtrace-test-binary:latest",
            "-t",
            IMAGE,
            "-f",
            containerfile.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
        Duration::from_mins(3),
    );
    assert!(
        out.status.success(),
        "podman build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `podman run` arguments for the DaemonSet's pod spec.
fn run_args(ds: &Value, name: &str) -> Vec<String> {
    let c = container(ds);
    let pod = &ds["spec"]["template"]["spec"];
    assert_ne!(pod["hostNetwork"], true, "the pod has its own network");
    assert_ne!(pod["hostPID"], true);
    let sc = &c["securityContext"];
    let mut a: Vec<String> = ["run", "-d", "--name", name, "--network", "none"]
        .map(String::from)
        .into();
    if let Some(uid) = sc["runAsUser"].as_u64() {
        a.extend(["--user".into(), uid.to_string()]);
    }
    if sc["readOnlyRootFilesystem"] == true {
        a.push("--read-only".into());
    }
    if sc["allowPrivilegeEscalation"] == false {
        a.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    assert_ne!(sc["privileged"], true, "not privileged");
    for cap in sc["capabilities"]["drop"].as_array().into_iter().flatten() {
        a.extend(["--cap-drop".into(), cap.as_str().unwrap().to_lowercase()]);
    }
    for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
        a.extend(["--cap-add".into(), format!("CAP_{}", cap.as_str().unwrap())]);
    }
    // The memory limit the kubelet would set on the pod's cgroup: start-up (the BTF parse) and the
    // pod's BPF maps must fit in it.
    let limit = c["resources"]["limits"]["memory"]
        .as_str()
        .expect("resources.limits.memory");
    let mib: u64 = limit
        .strip_suffix("Mi")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("memory limit {limit:?}: expected NNNMi"));
    a.extend(["--memory".into(), format!("{mib}m")]);
    // RuntimeDefault, or none under the kubelet's SeccompDefault: the runtime's own profile.
    if sc["seccompProfile"]["type"] == "Unconfined" {
        a.extend(["--security-opt".into(), "seccomp=unconfined".into()]);
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let v = e["value"].as_str().unwrap_or("podman-test-node");
        a.extend(["-e".into(), format!("{}={v}", e["name"].as_str().unwrap())]);
    }
    let volumes = pod["volumes"].as_array().expect("volumes");
    for m in c["volumeMounts"].as_array().expect("volumeMounts") {
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("volume {}", m["name"]));
        let host = v["hostPath"]["path"]
            .as_str()
            .expect("hostPath volumes only");
        if v["hostPath"]["type"] == "DirectoryOrCreate" {
            std::fs::create_dir_all(host).unwrap();
        }
        let mut opts = vec![];
        if m["readOnly"] == true {
            opts.push("ro");
        }
        if m["mountPropagation"] == "HostToContainer" {
            opts.push("rslave");
        }
        let mut spec = format!("{host}:{}", m["mountPath"].as_str().unwrap());
        if !opts.is_empty() {
            spec = format!("{spec}:{}", opts.join(","));
        }
        a.extend(["-v".into(), spec]);
    }
    a.push(IMAGE.into());
    // `args` (the image's ENTRYPOINT is the binary, as the manifest expects).
    assert!(
        c["command"].is_null(),
        "the manifest relies on the image's ENTRYPOINT"
    );
    for arg in c["args"].as_array().expect("args") {
        a.push(arg.as_str().unwrap().into());
    }
    a
}

/// `podman logs NAME`: (stdout, stderr).
fn logs(name: &str) -> (String, String) {
    let out = podman::run(&["logs", name], Duration::from_secs(30));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes the DaemonSet's pins (it pins in /sys/fs/bpf/oomtrace) if this test made them.
struct Pins(bool);

impl Drop for Pins {
    fn drop(&mut self) {
        if self.0 {
            let _ = Command::new(oomtrace_bin())
                .args(["cleanup", "--force"])
                .output();
        }
    }
}

#[test]
fn oomtrace_in_a_container_with_the_daemonsets_privileges() {
    if !require_root() || !podman::require() {
        return;
    }
    podman::image();
    build_image();
    let ds = daemonset();
    node_mounts();
    let _pins = Pins(!Path::new("/sys/fs/bpf/oomtrace").exists());
    let pod = Container::named(&unique("oomtrace-pod"));
    let spec = run_args(&ds, &pod.name);
    let argv: Vec<&str> = spec.iter().map(String::as_str).collect();
    let out = podman::run(&argv, Duration::from_mins(1));
    assert!(
        out.status.success(),
        "podman {spec:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("oomtrace's `ready` line", Duration::from_secs(30), || {
        let (_, err) = logs(&pod.name);
        assert_eq!(
            pod.inspect("{{.State.Running}}"),
            "true",
            "oomtrace exited in its container:\n{err}"
        );
        err.lines().any(|l| l.starts_with("ready")).then_some(err)
    });

    // A kill in another container.
    let victim = Container::named(&unique("oomtrace-victim"));
    let out = podman::run(
        &[
            "run",
            "--name",
            &victim.name,
            "--memory",
            "48m",
            podman::IMAGE,
            "tail",
            "/dev/zero",
        ],
        Duration::from_mins(2),
    );
    assert_eq!(out.status.code(), Some(137));
    let id = victim.inspect("{{.Id}}");
    let line = wait_for(
        "the kill's event in the pod's log",
        Duration::from_secs(10),
        || {
            logs(&pod.name)
                .0
                .lines()
                .find(|l| l.contains(&id))
                .map(str::to_owned)
        },
    );
    let ev: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(ev["kind"], "oom_kill", "{ev}");
    assert_eq!(ev["container"]["id"], id.as_str(), "{ev}");
    assert_eq!(ev["container"]["runtime"], "podman", "{ev}");
    assert_eq!(ev["container"]["name"], victim.name.as_str(), "{ev}");
    assert_eq!(
        ev["node"], "podman-test-node",
        "NODE_NAME from the manifest's env: {ev}"
    );

    // /metrics inside the pod's network shows the kill.
    let metrics = wait_for("the kill in /metrics", Duration::from_secs(10), || {
        let out = podman::run(
            &[
                "exec",
                &pod.name,
                "/bin/wget",
                "-qO-",
                "http://127.0.0.1:9464/metrics",
            ],
            Duration::from_secs(30),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .any(|l| l.starts_with("oomtrace_oom_kills_total{") && l.contains(&victim.name))
            .then_some(text)
    });
    assert!(metrics.contains("oomtrace_hook_attached"), "{metrics}");

    // Stopped as Kubernetes stops a pod (SIGTERM), it drains and exits 0.
    let out = podman::run(&["stop", "-t", "10", &pod.name], Duration::from_secs(30));
    assert!(out.status.success());
    assert_eq!(
        pod.inspect("{{.State.ExitCode}}"),
        "0",
        "{}",
        logs(&pod.name).1
    );
}
