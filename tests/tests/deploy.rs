//! Deployment (issue 8): the systemd unit, `cargo xtask install`, the Kubernetes manifests, the
//! man pages and completions, and the release binary on its own. The capability lists of the
//! unit and of the DaemonSet are read from the files and a real OOM kill is traced with exactly
//! them, so the manifests cannot drift from what the code needs.
//!
//! Tools: systemd-analyze, promtool, man, col, bash (scripts/setup.sh --test) and
//! kubernetes-validate + PyYAML in target/venv (scripts/venv.sh, called here when needed).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use oomtrace_tests::{
    cgroup::MemCgroup,
    daemon::Daemon,
    manifest::{container, daemonset, one_yaml, root, venv},
    node_mounts, prom, require_root, unique,
};
use serde_json::Value;

const UNIT: &str = "deploy/systemd/oomtrace.service";
const K8S: &str = "deploy/kubernetes";
/// The Kubernetes version the manifests are validated against (kubernetes-validate 1.37.0
/// bundles its schemas: offline).
const K8S_VERSION: &str = "1.37.0";
/// The capabilities oomtrace needs (README "Capabilities and why").
const NEEDED: [&str; 3] = ["BPF", "PERFMON", "SYSLOG"];

/// Runs `cmd` to completion; panics with its output if it fails to start.
fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (scripts/setup.sh --test installs it)"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd`, asserts success, returns stdout.
fn ok(cmd: &mut Command) -> String {
    let o = output(cmd);
    assert!(o.status.success(), "{cmd:?}: {}\n{}", o.status, text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// `cargo xtask install --destdir <tmp>` (default prefix /usr/local, sysconfdir /etc).
fn install() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    ok(cargo()
        .args(["xtask", "install", "--destdir"])
        .arg(d.path()));
    d
}

/// `Key=` values of the unit (all lines with that key, in order).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
        .collect()
}

/// `CAP_BPF CAP_PERFMON` → {"BPF", "PERFMON"}.
fn unit_caps(value: &str) -> BTreeSet<String> {
    value
        .split_whitespace()
        .map(|c| {
            c.strip_prefix("CAP_")
                .unwrap_or_else(|| panic!("{c}: not CAP_*"))
                .to_string()
        })
        .collect()
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(root().join(UNIT)).expect("unit");
    for (key, want) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30s"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ReadWritePaths", "-/sys/fs/bpf/oomtrace"),
        ("Restart", "on-failure"),
        ("StandardOutput", "journal"),
    ] {
        assert_eq!(unit_values(&unit, key), [want], "{key}=");
    }
    // systemd-analyze verify checks that ExecStart's binary exists and that the Documentation=
    // man pages resolve. Verify the unit `cargo xtask install` wrote, with only ExecStart's path
    // moved under DESTDIR (a copy beside it), and MANPATH on the installed pages: everything
    // else is verified exactly as installed. (`--root=` would resolve /bin/sh and systemd's own
    // targets inside the temporary root too, which has neither.)
    let d = install();
    let prefix = d.path().join("usr/local");
    let installed = std::fs::read_to_string(prefix.join("lib/systemd/system/oomtrace.service"))
        .expect("installed unit");
    let bin = prefix.join("bin/oomtrace");
    let copy = installed.replace(
        "ExecStart=/usr/local/bin/oomtrace ",
        &format!("ExecStart={} ", bin.display()),
    );
    assert_ne!(copy, installed, "ExecStart names /usr/local/bin/oomtrace");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("oomtrace.service");
    std::fs::write(&path, copy).expect("unit copy");
    let o = output(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .env("MANPATH", prefix.join("share/man"))
            .env("SYSTEMD_LOG_COLOR", "0"),
    );
    // Unknown keys and bad values are only warnings (exit 0): any output is a failure.
    assert!(
        o.status.success() && text(&o).trim().is_empty(),
        "systemd-analyze verify: {}\n{}",
        o.status,
        text(&o)
    );
}

/// logrotate itself accepts `snippet` (-d: parse and plan only, nothing rotated; a misspelt
/// option makes it exit 1 with an `error:` line).
fn logrotate_accepts(snippet: &Path) {
    let state = tempfile::NamedTempFile::new().expect("state file");
    let o = output(
        Command::new("logrotate")
            .args(["-d", "-s"])
            .arg(state.path())
            .arg(snippet),
    );
    assert!(
        o.status.success() && !text(&o).contains("error"),
        "logrotate -d: {}\n{}",
        o.status,
        text(&o)
    );
}

#[test]
fn xtask_install_puts_every_file_in_place() {
    use std::os::unix::fs::PermissionsExt as _;
    let d = install();
    let p = |rel: &str| d.path().join(rel);
    let mode = |rel: &str| {
        std::fs::metadata(p(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("usr/local/bin/oomtrace"), 0o755);
    let version = ok(Command::new(p("usr/local/bin/oomtrace")).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("oomtrace {}", env!("CARGO_PKG_VERSION"))
    );
    let mut files = vec![
        "usr/local/lib/systemd/system/oomtrace.service",
        "etc/oomtrace/config.toml",
        "etc/logrotate.d/oomtrace",
        "usr/local/share/bash-completion/completions/oomtrace",
        "usr/local/share/zsh/site-functions/_oomtrace",
        "usr/local/share/fish/vendor_completions.d/oomtrace.fish",
        "usr/local/share/man/man1/oomtrace.1",
    ];
    let subs: Vec<String> = subcommands()
        .iter()
        .map(|s| format!("usr/local/share/man/man1/oomtrace-{s}.1"))
        .collect();
    files.extend(subs.iter().map(String::as_str));
    for f in &files {
        assert_eq!(mode(f), 0o644, "{f}");
        assert!(std::fs::metadata(p(f)).expect(f).len() > 0, "{f} is empty");
    }
    assert_eq!(
        std::fs::read(p("etc/oomtrace/config.toml")).expect("config"),
        std::fs::read(root().join("deploy/config.example.toml")).expect("example"),
    );
    assert_eq!(
        std::fs::read(p("etc/logrotate.d/oomtrace")).expect("logrotate snippet"),
        std::fs::read(root().join("deploy/logrotate/oomtrace")).expect("deploy/logrotate"),
    );
    logrotate_accepts(&p("etc/logrotate.d/oomtrace"));
    let unit = std::fs::read_to_string(p(files[0])).expect("unit");
    assert_eq!(
        unit_values(&unit, "ExecStart"),
        ["/usr/local/bin/oomtrace run --config /etc/oomtrace/config.toml"]
    );
    // The installed configuration is accepted by the installed binary (a bad key exits 2
    // before anything is attached; `check` loads no config, so ask `run` with a bad sink to
    // stop right after the config was read).
    let o = output(
        Command::new(p("usr/local/bin/oomtrace"))
            .args(["run", "--config"])
            .arg(p("etc/oomtrace/config.toml"))
            .args(["-o", "json:/nonexistent-dir/x.jsonl"]),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("/nonexistent-dir/x.jsonl"),
        "stopped at the output, not at the config: {}",
        text(&o)
    );

    // Another prefix and sysconfdir: the unit follows; an existing configuration is kept.
    let d2 = tempfile::tempdir().expect("tempdir");
    let conf = d2.path().join("opt/etc/oomtrace/config.toml");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, "ring_size = 4096\n").unwrap();
    let rotate = d2.path().join("opt/etc/logrotate.d/oomtrace");
    std::fs::create_dir_all(rotate.parent().unwrap()).unwrap();
    std::fs::write(&rotate, "# edited\n").unwrap();
    ok(cargo()
        .args([
            "xtask",
            "install",
            "--prefix",
            "/usr",
            "--sysconfdir",
            "/opt/etc",
            "--destdir",
        ])
        .arg(d2.path()));
    let unit = std::fs::read_to_string(d2.path().join("usr/lib/systemd/system/oomtrace.service"))
        .expect("unit under /usr");
    assert_eq!(
        unit_values(&unit, "ExecStart"),
        ["/usr/bin/oomtrace run --config /opt/etc/oomtrace/config.toml"]
    );
    assert!(d2.path().join("usr/bin/oomtrace").exists());
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "ring_size = 4096\n",
        "kept"
    );
    assert_eq!(
        std::fs::read_to_string(&rotate).unwrap(),
        "# edited\n",
        "logrotate snippet kept"
    );
}

/// The subcommands `oomtrace help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let help = ok(Command::new(oomtrace_tests::oomtrace_bin()).arg("help"));
    let subs: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .map(str::to_string)
        .collect();
    assert!(subs.len() >= 3, "{help}");
    subs
}

#[test]
fn man_pages_render_and_name_every_subcommand() {
    let d = tempfile::tempdir().expect("tempdir");
    ok(cargo().args(["xtask", "man", "--out"]).arg(d.path()));
    let render = |page: &Path| {
        let out = ok(Command::new("sh")
            .args(["-c", "man -l \"$1\" | col -b", "sh"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0"));
        assert!(
            !out.contains("warning") && out.lines().count() > 10,
            "{}:\n{out}",
            page.display()
        );
        out
    };
    let main = render(&d.path().join("oomtrace.1"));
    assert!(main.starts_with("oomtrace(1)"), "{main}");
    for s in subcommands() {
        // SUBCOMMANDS lists each as a reference to its own page.
        assert!(
            main.lines().any(|l| l.trim() == format!("oomtrace-{s}(1)")),
            "oomtrace(1) does not list `{s}`:\n{main}"
        );
        let sub = render(&d.path().join(format!("oomtrace-{s}.1")));
        assert!(sub.contains(&format!("oomtrace-{s}")), "{sub}");
    }
}

#[test]
fn bash_completion_loads_and_completes_subcommands() {
    let d = tempfile::tempdir().expect("tempdir");
    ok(cargo()
        .args(["xtask", "completions", "--out"])
        .arg(d.path()));
    let file = d.path().join("oomtrace.bash");
    let out = ok(Command::new("bash")
        .args([
            "--norc",
            "-c",
            "source \"$1\" && complete -p oomtrace",
            "bash",
        ])
        .arg(&file));
    assert!(out.contains("oomtrace"), "{out}");
    // And it completes: `oomtrace <TAB>` offers every subcommand, `oomtrace run --so<TAB>`
    // offers --source.
    let complete = |words: &str| {
        ok(Command::new("bash")
            .args([
                "--norc",
                "-c",
                r#"source "$1"; COMP_WORDS=($2); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}
                   f=$(complete -p oomtrace | sed -n 's/.*-F \([^ ]*\).*/\1/p'); "$f" oomtrace "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                   printf '%s\n' "${COMPREPLY[@]}""#,
                "bash",
            ])
            .arg(&file)
            .arg(words))
    };
    let subs = complete("oomtrace ''");
    for s in subcommands() {
        assert!(
            subs.lines().any(|l| l.trim() == s),
            "{s} not offered: {subs}"
        );
    }
    let opts = complete("oomtrace run --so");
    assert_eq!(opts.trim(), "--source", "{opts}");
}

/// kubernetes-validate --strict on every core manifest; an unknown kind (no schema) is only a
/// warning there, so any WARN fails too.
#[test]
fn kubernetes_core_manifests_validate_strict() {
    let dir = root().join(K8S);
    let core = [
        "namespace.yaml",
        "serviceaccount.yaml",
        "daemonset.yaml",
        "service.yaml",
    ];
    let bin = venv().join("bin/kubernetes-validate");
    let o = output(
        Command::new(&bin)
            .args(["--strict", "-k", K8S_VERSION])
            .args(core.map(|f| dir.join(f))),
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains("WARN") && !t.contains("ERROR"), "{t}");
    for f in core {
        assert!(
            t.lines()
                .any(|l| l.starts_with("INFO") && l.contains(f) && l.contains("passed")),
            "{f} not validated: {t}"
        );
    }
    // The tool does catch a bad manifest: a misspelt securityContext field.
    let bad = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(
        bad.path(),
        std::fs::read_to_string(dir.join("daemonset.yaml"))
            .unwrap()
            .replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"),
    )
    .unwrap();
    let o = output(
        Command::new(&bin)
            .args(["--strict", "-k", K8S_VERSION])
            .arg(bad.path()),
    );
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn kubernetes_daemonset_settings() {
    let ds = daemonset();
    let pod = &ds["spec"]["template"]["spec"];
    let c = container(&ds);
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsUser"], 0);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"operator": "Exists"}])
    );
    assert!(pod["hostPID"].is_null() || pod["hostPID"] == false);
    assert_eq!(
        c["env"][0],
        serde_json::json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    );
    // Every hostPath is read-only and lands where oomtrace reads it: kernel interfaces at
    // their own path, the node's files under --host-root.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--host-root=/host"), "{args:?}");
    let mounts = c["volumeMounts"].as_array().unwrap();
    for v in pod["volumes"].as_array().unwrap() {
        let host = v["hostPath"]["path"].as_str().expect("hostPath volume");
        let m = mounts
            .iter()
            .find(|m| m["name"] == v["name"])
            .unwrap_or_else(|| panic!("volume {} not mounted", v["name"]));
        // bpffs holds the pins; everything else is read-only.
        assert_eq!(m["readOnly"] == true, host != "/sys/fs/bpf", "{host}");
        let at = m["mountPath"].as_str().unwrap();
        if host.starts_with("/sys/") {
            assert_eq!(at, host);
        } else {
            assert_eq!(at, format!("/host{host}"));
        }
    }
    // The relevant node paths are all there.
    for want in [
        "/sys/kernel/btf",
        "/sys/kernel/tracing",
        "/sys/fs/bpf",
        "/sys/fs/cgroup",
        "/var/log/pods",
        "/run/containerd",
        "/run/containers",
    ] {
        assert!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["hostPath"]["path"] == want),
            "{want} not mounted"
        );
    }
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["path"], "/healthz");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics");
    }
    assert_eq!(metrics_port(c), 9464);
    assert!(args.contains(&"--metrics-addr=0.0.0.0:9464"), "{args:?}");
    for k in ["requests", "limits"] {
        assert!(
            c["resources"][k]["memory"].is_string(),
            "resources.{k}.memory"
        );
    }
}

/// The containerPort named `metrics`.
fn metrics_port(c: &Value) -> u64 {
    c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .and_then(|p| p["containerPort"].as_u64())
        .expect("port named metrics")
}

#[test]
fn kubernetes_crd_examples_match_the_rest() {
    let dir = root().join(K8S);
    // kustomization.yaml lists every manifest of the directory, and only those.
    let k = one_yaml(&dir.join("kustomization.yaml"));
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            Path::new(n).extension().is_some_and(|e| e == "yaml") && n != "kustomization.yaml"
        })
        .collect();
    assert_eq!(listed, present);
    for f in &present {
        let v = one_yaml(&dir.join(f));
        if v["kind"] != "Namespace" {
            assert_eq!(v["metadata"]["namespace"], k["namespace"], "{f}");
        }
    }

    // ServiceMonitor → the Service's port, by name; the Service → the DaemonSet's pods.
    let sm = one_yaml(&dir.join("servicemonitor.yaml"));
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["kind"], "ServiceMonitor");
    let svc = one_yaml(&dir.join("service.yaml"));
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        svc["metadata"]["labels"]
    );
    let port = &svc["spec"]["ports"][0];
    assert_eq!(sm["spec"]["endpoints"][0]["port"], port["name"]);
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    let ds = daemonset();
    assert_eq!(
        svc["spec"]["selector"],
        ds["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(port["port"].as_u64(), Some(metrics_port(container(&ds))));
    // The job label the alert OOMTraceDown expects (`up{job="oomtrace"}`).
    let job_label = sm["spec"]["jobLabel"].as_str().expect("jobLabel");
    assert_eq!(svc["metadata"]["labels"][job_label], "oomtrace");

    // PrometheusRule: the same rules as deploy/prometheus, and promtool accepts its spec.
    let pr = one_yaml(&dir.join("prometheusrule.yaml"));
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pr["kind"], "PrometheusRule");
    let alerts = one_yaml(&root().join("deploy/prometheus/oomtrace-alerts.yaml"));
    assert_eq!(pr["spec"], alerts);
    let spec = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("tmp");
    // JSON is YAML: promtool reads it as a rules file.
    std::fs::write(spec.path(), pr["spec"].to_string()).unwrap();
    let out = ok(Command::new("promtool")
        .args(["check", "rules"])
        .arg(spec.path()));
    let rules = pr["spec"]["groups"][0]["rules"].as_array().unwrap().len();
    assert!(
        out.contains(&format!("SUCCESS: {rules} rules found")),
        "{out}"
    );
}

/// A pin root of this test, removed (hooks detached) on drop.
struct Pins(PathBuf);

impl Pins {
    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = Command::new(oomtrace_tests::oomtrace_bin())
            .args(["cleanup", "--pin-dir", self.arg()])
            .output();
    }
}

const fn cap_bit(name: &str) -> u64 {
    match name.as_bytes() {
        b"BPF" => 1 << 39,
        b"PERFMON" => 1 << 38,
        b"SYSLOG" => 1 << 34,
        _ => panic!("unexpected capability"),
    }
}

fn cap_eff(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff");
    u64::from_str_radix(hex.trim(), 16).expect("hex")
}

/// The unit's and the DaemonSet's capabilities are the same three, and with exactly those
/// (and the DaemonSet's own arguments) the real daemon traces a real OOM kill through BPF and
/// answers its probes.
#[test]
fn manifest_capabilities_trace_a_real_kill() {
    let unit = std::fs::read_to_string(root().join(UNIT)).expect("unit");
    let bounding = unit_values(&unit, "CapabilityBoundingSet");
    let ambient = unit_values(&unit, "AmbientCapabilities");
    assert_eq!(bounding.len(), 1, "one CapabilityBoundingSet=");
    let from_unit = unit_caps(&bounding[0]);
    assert_eq!(ambient.len(), 1, "one AmbientCapabilities=");
    assert_eq!(unit_caps(&ambient[0]), from_unit, "ambient = bounding set");
    let ds = daemonset();
    let c = container(&ds);
    let from_ds: BTreeSet<String> = c["securityContext"]["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect();
    let needed: BTreeSet<String> = NEEDED.iter().map(|s| (*s).to_string()).collect();
    assert_eq!(from_unit, needed, "{UNIT}: CapabilityBoundingSet");
    assert_eq!(from_ds, needed, "daemonset.yaml: capabilities.add");

    if !require_root() {
        return;
    }
    node_mounts();
    // setpriv with exactly the DaemonSet's list, as the container runtime would grant it.
    let caps = from_ds
        .iter()
        .map(|c| format!("+{}", c.to_lowercase()))
        .collect::<Vec<_>>()
        .join(",");
    let wrap = [
        "setpriv".to_string(),
        format!("--inh-caps=-all,{caps}"),
        format!("--ambient-caps=-all,{caps}"),
        format!("--bounding-set=-all,{caps}"),
        "--no-new-privs".into(),
        "--".into(),
    ];
    let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
    // The DaemonSet's arguments, with the metrics address on a free loopback port.
    let addr = format!("127.0.0.1:{}", prom::free_port());
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            if a.starts_with("--metrics-addr=") {
                format!("--metrics-addr={addr}")
            } else {
                a.to_string()
            }
        })
        .collect();
    assert!(args.iter().any(|a| a.contains(&addr)), "{args:?}");
    // Pinning too (the DaemonSet and the unit pin), into a pin root of this test, removed
    // (hooks detached) at the end.
    let pins = Pins(PathBuf::from(format!(
        "/sys/fs/bpf/{}",
        unique("oomtrace-deploy")
    )));
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--pin-dir", pins.arg()]);
    let mut d = Daemon::start_wrapped(&wrap, &args);
    assert!(
        !d.stderr_text().contains("not pinning"),
        "{}",
        d.stderr_text()
    );
    assert!(
        std::fs::read_dir(&pins.0).is_ok_and(|mut r| r.next().is_some()),
        "nothing pinned in {}",
        pins.0.display()
    );
    let want: u64 = from_ds.iter().map(|c| cap_bit(c)).sum();
    assert_eq!(
        cap_eff(d.pid()),
        want,
        "the daemon holds exactly {from_ds:?}"
    );
    let (code, body) = prom::http_get(
        &addr,
        c["livenessProbe"]["httpGet"]["path"].as_str().unwrap(),
        None,
    );
    assert_eq!((code, body.trim()), (200, "ok"));

    let cg = MemCgroup::create(&unique("oomtrace-deploy"), Some(64 << 20));
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(Duration::from_mins(1));
    let (_, ev) = d.victim(pid, Duration::from_secs(5));
    assert_eq!(ev["hook"], "tp_btf", "BPF, not the kernel-log fallback");
    assert_eq!(ev["victim"]["cgroup"]["path"], cg.path.as_str());
    d.stop();
}

/// The release binary needs nothing beside it: copied alone into an empty directory, run from
/// there with an empty environment, `check --json` finds a victim hook and `run` attaches.
#[test]
fn release_binary_runs_alone_from_an_empty_directory() {
    if !require_root() {
        return;
    }
    let inst = install();
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("oomtrace");
    std::fs::copy(inst.path().join("usr/local/bin/oomtrace"), &bin).expect("copy");
    drop(inst);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The runtime image (gcr.io/distroless/cc-debian12) has glibc and libgcc_s, nothing else.
    let libs = ok(Command::new("ldd").arg(&bin));
    for l in libs.lines() {
        let name = l.split_whitespace().next().unwrap_or_default();
        let name = name.rsplit('/').next().unwrap_or_default();
        assert!(
            ["linux-vdso.so.1", "libgcc_s.so.1", "libc.so.6", "libm.so.6"].contains(&name)
                || name.starts_with("ld-linux"),
            "{name} is not in the runtime image:\n{libs}"
        );
    }
    let alone = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args).current_dir(dir.path()).env_clear();
        c
    };
    let out = ok(&mut alone(&["check", "--json"]));
    let v: Value = serde_json::from_str(&out).expect("check --json");
    assert_eq!(v["btf"], true, "{v}");

    let mut child = alone(&["run", "--source", "bpf", "--no-pin"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    let ready = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("ready") => break true,
            Ok(l) => seen.push_str(&(l + "\n")),
            Err(_) => break false,
        }
    };
    // SAFETY: plain kill(2) of our child.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    let st = child.wait().expect("wait");
    assert!(ready, "no `ready` line; stderr:\n{seen}");
    assert!(st.success(), "{st:?}\n{seen}");
}
